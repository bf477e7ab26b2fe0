/*
 * priv.h - least privilege for the capture processes (docs/privileges.md).
 *
 * weir-capture and weir-tap get CAP_NET_RAW (and CAP_NET_ADMIN for
 * promiscuous mode or hardware timestamps) from a file capability or
 * from their parent, never from a setuid bit.  Once they have opened
 * their capture sockets and output files they call weir_priv_drop(),
 * which, in this order:
 *
 *  1. clears PR_SET_KEEPCAPS and every capability bounding set entry it
 *     may clear (it needs CAP_SETPCAP for that, so a process that got
 *     only cap_net_raw from a file keeps its bounding set: with no
 *     capability left and no_new_privs set, it cannot gain any);
 *  2. switches to an unprivileged user and that user's primary group
 *     (setgroups(0), setresgid, setresuid), and checks that setuid(0)
 *     then fails;
 *  3. empties the permitted, effective, inheritable and ambient sets
 *     (capset) of the calling thread;
 *  4. sets PR_SET_NO_NEW_PRIVS;
 *  5. installs a seccomp-BPF allowlist of the system calls the packet
 *     path needs, on every thread (SECCOMP_FILTER_FLAG_TSYNC).
 *
 * Threads: capset acts on the calling thread only.  weir_priv_prepare(),
 * called before opening, narrows every set to what opening needs, so
 * threads started while opening inherit at most that; setresuid goes
 * through every thread (glibc), and leaving uid 0 clears every thread's
 * capabilities.  Every thread Weir starts goes through
 * weir_thread_start(), which empties the new thread's own sets before
 * it runs anything, so no thread but the opening one ever holds a
 * capability, with or without --user.  The seccomp filter covers every
 * thread.
 */
#ifndef WEIR_PRIV_H
#define WEIR_PRIV_H

#include <pthread.h>

#include <jansson.h>

#include "weir/err.h"

enum weir_seccomp_mode {
	WEIR_SECCOMP_OFF,	/* no filter */
	WEIR_SECCOMP_LOG,	/* calls off the list are allowed and logged
				   by the kernel (SECCOMP_RET_LOG) */
	WEIR_SECCOMP_KILL,	/* calls off the list kill the process */
};

/*
 * The default of --seccomp.  A build with -DWEIR_SECCOMP_DEFAULT=1
 * (WEIR_SECCOMP_LOG) runs the whole test suite with logging instead of
 * killing, to find a call the list lacks from the kernel log (audit
 * type 1326, code 0x7ffc0000).
 */
#ifndef WEIR_SECCOMP_DEFAULT
#define WEIR_SECCOMP_DEFAULT	WEIR_SECCOMP_KILL
#endif

/* Which allowlist: the capture pipeline, or weir-tap (which also forks
 * and executes its tenants, who then run under both filters). */
enum weir_priv_profile {
	WEIR_PRIV_CAPTURE,
	WEIR_PRIV_TAP,
};

struct weir_priv_conf {
	/*
	 * User to become (and its primary group).  NULL: no switch (a
	 * process started as root stays uid 0, but with no capability:
	 * output files are created after the drop, at their first packet
	 * and at each rotation, in directories that must be writable by
	 * the user, so a default switch would break every root-owned
	 * output directory; docs/privileges.md).  A name while not root
	 * is an error (only root can change user).
	 */
	const char	*user;
	int		 seccomp;	/* enum weir_seccomp_mode */
	int		 profile;	/* enum weir_priv_profile */
};

/* "off", "log" or "kill"; -1 for anything else. */
int	weir_priv_seccomp_mode(const char *s);

/*
 * Before opening sockets and files: empty the bounding, inheritable and
 * ambient sets and keep in the permitted and effective sets only
 * CAP_NET_RAW and CAP_NET_ADMIN (need_net: live interfaces) and, with
 * a user to switch to, CAP_SETUID, CAP_SETGID and CAP_SETPCAP.  Threads
 * started while opening inherit no more than that.
 */
int	weir_priv_prepare(const struct weir_priv_conf *c, int need_net,
	    struct weir_err *err);
/* Do all of the above; 0 or a negative code with err set. */
int	weir_priv_drop(const struct weir_priv_conf *c, struct weir_err *err);

/* The steps, for tests. */
int	weir_priv_switch_user(const char *user, struct weir_err *err);
int	weir_priv_drop_caps(struct weir_err *err);
int	weir_priv_seccomp(int mode, int profile, struct weir_err *err);

/*
 * Start a thread (named, if name is not NULL: at most 15 bytes) that
 * first empties its own capability sets (keeping only CAP_SETUID and
 * CAP_SETGID if it has them, for glibc's per-thread part of a coming
 * --user switch, which then clears them); returns once it has, 0 or a
 * negative errno (then the thread did not run fn and is joined).  Every
 * thread of weir-capture and weir-tap is started this way.
 */
int	weir_thread_start(pthread_t *th, const char *name,
	    void *(*fn)(void *), void *arg);
/* Empty the calling thread's capability sets; 0 or -errno. */
int	weir_thread_drop_caps(void);

/*
 * Status lines (weir-capture --status-fd, SIGUSR1): one JSON object per
 * line, with "event" (why it was written) and "time" (RFC 3339, UTC)
 * added.  A descriptor other than 2 is made non-blocking: a parent that
 * does not read must not stall the capture.  A line that does not fit
 * is kept and finished before the next one; a line that finds the
 * previous one still unfinished is skipped and counted
 * (weir_status_skipped).  weir_status_final() waits up to wait_ms for
 * the descriptor to take the last line.
 */
int	weir_status_open(int fd, struct weir_err *err);
void	weir_status_line(json_t *o, const char *event);
void	weir_status_final(json_t *o, int wait_ms);
unsigned long long weir_status_skipped(void);

#endif
