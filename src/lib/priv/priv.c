/*
 * priv.c - drop capabilities, change user, install a seccomp allowlist
 * (include/weir/priv.h, docs/privileges.md).
 *
 * The seccomp program is built here by hand (<linux/filter.h>): no
 * libseccomp.  It checks the architecture first (a process of another
 * ABI would give the numbers other meanings), refuses the x32 ABI on
 * x86_64, then compares the system call number with each allowed one,
 * the most frequent first.  Each comparison is followed by its own
 * "allow" so that no jump is longer than one instruction (BPF
 * conditional jumps reach at most 255 instructions ahead).  socket()
 * is allowed for AF_INET and AF_INET6 only (the IPFIX exporter
 * reconnects over TCP); no packet socket can be opened afterwards.
 *
 * The lists were taken from `strace -f -c` of the test workloads (live
 * capture with rotation, metadata and zstd, flowpcap, IPFIX over UDP
 * and TCP, sessions, weir-tap with tenants) and from reading the code;
 * docs/privileges.md says how to find a missing call with
 * --seccomp log.
 */
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>

#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdint.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "weir/log.h"
#include "weir/priv.h"

#if defined(__x86_64__)
#define PRIV_ARCH	AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define PRIV_ARCH	AUDIT_ARCH_AARCH64
#endif

#ifndef SECCOMP_RET_KILL_PROCESS
#define SECCOMP_RET_KILL_PROCESS 0x80000000U
#endif
#ifndef SECCOMP_RET_LOG
#define SECCOMP_RET_LOG		0x7ffc0000U
#endif
#ifndef SECCOMP_FILTER_FLAG_TSYNC
#define SECCOMP_FILTER_FLAG_TSYNC 1
#endif

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_UNDEFINED__)
#define PRIV_SANITIZER	1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || \
    __has_feature(undefined_behavior_sanitizer)
#define PRIV_SANITIZER	1
#endif
#endif

/* -1 ends a list; numbers this architecture lacks are left out. */
#define SC(name)	__NR_##name

/*
 * The packet path of weir-capture after the drop: reading inputs
 * (trace files, rings, tenant rings), writing and publishing files,
 * IPFIX export, timers, threads (flowpcap writers, hashing, read-ahead
 * are usually started before, but may be started later), signals,
 * exit.  Hot calls first.
 */
static const int capture_calls[] = {
	SC(poll), SC(ppoll), SC(futex), SC(pwritev), SC(write), SC(read),
	SC(writev), SC(pwrite64), SC(pread64), SC(readv), SC(preadv),
	SC(clock_gettime), SC(clock_nanosleep), SC(nanosleep),
	SC(gettimeofday), SC(getsockopt), SC(setsockopt), SC(sendto),
	SC(sendmsg), SC(recvfrom), SC(recvmsg), SC(connect), SC(shutdown),
	SC(getsockname), SC(getpeername),
	SC(lseek), SC(close), SC(openat), SC(fstat), SC(newfstatat),
	SC(statx), SC(fcntl), SC(dup), SC(dup3), SC(ioctl),
	SC(renameat), SC(renameat2), SC(linkat), SC(unlinkat), SC(mkdirat),
	SC(fsync), SC(fdatasync), SC(ftruncate), SC(getdents64),
	SC(mmap), SC(munmap), SC(mremap), SC(madvise), SC(mprotect),
	SC(brk),
	SC(rt_sigreturn), SC(rt_sigprocmask), SC(rt_sigaction),
	SC(restart_syscall), SC(sigaltstack),
	SC(exit), SC(exit_group), SC(getpid), SC(gettid), SC(tgkill),
	SC(kill), SC(tkill),
	SC(clone), SC(clone3), SC(set_robust_list), SC(rseq),
	SC(sched_yield), SC(getrandom), SC(setitimer),
#ifdef __NR_alarm
	SC(alarm),
#endif
#ifdef __NR_open
	SC(open), SC(stat), SC(lstat), SC(rename), SC(link), SC(unlink),
	SC(mkdir), SC(time),
#endif
	SC(getuid), SC(geteuid), SC(getgid), SC(getegid), SC(getresuid),
	SC(getresgid),
	/* weir_thread_start(): a thread started after the drop checks its
	 * (empty) sets; capset cannot raise what permitted lacks. */
	SC(capget), SC(capset),
	-1
};

/*
 * weir-tap also forks and executes tenants, which run under this
 * filter too until they add their own: so everything a starting
 * weir-capture does (dynamic loader, configuration, its own drop) is
 * here.
 */
static const int tap_calls[] = {
	SC(wait4), SC(waitid), SC(execve), SC(memfd_create), SC(setpgid),
	SC(getppid), SC(prctl), SC(seccomp), SC(capget), SC(capset),
	SC(set_tid_address), SC(prlimit64), SC(faccessat),
	SC(readlinkat), SC(getcwd),
	SC(sysinfo), SC(sched_getaffinity), SC(uname), SC(pipe2),
	SC(setsid), SC(getpgid), SC(getpgrp),
#ifdef __NR_arch_prctl
	SC(arch_prctl),
#endif
#ifdef __NR_faccessat2
	SC(faccessat2),
#endif
#ifdef __NR_fork
	SC(fork), SC(vfork), SC(dup2), SC(access), SC(readlink),
	SC(pipe), SC(getrlimit),
#endif
	-1
};

#ifdef PRIV_SANITIZER
/*
 * ASan/UBSan and LeakSanitizer at exit (a tracer process stops the
 * threads with ptrace and reads /proc/self/maps and /proc/self/task):
 * compiled in only in the sanitizer build.
 */
static const int sanitizer_calls[] = {
	SC(prctl), SC(ptrace), SC(wait4), SC(waitid), SC(sched_getaffinity),
	SC(prlimit64), SC(readlinkat), SC(uname), SC(getppid), SC(mincore),
	SC(process_vm_readv), SC(set_tid_address), SC(msync),
#ifdef __NR_getrlimit
	SC(getrlimit), SC(readlink), SC(access), SC(getdents),
#endif
	-1
};
#endif

int
weir_priv_seccomp_mode(const char *s)
{
	if (strcmp(s, "off") == 0)
		return WEIR_SECCOMP_OFF;
	if (strcmp(s, "log") == 0)
		return WEIR_SECCOMP_LOG;
	if (strcmp(s, "kill") == 0)
		return WEIR_SECCOMP_KILL;
	return -1;
}

static int
running_as_root(void)
{
	uid_t r, e, s;

	if (getresuid(&r, &e, &s) < 0)
		return geteuid() == 0;
	return r == 0 || e == 0 || s == 0;
}

int
weir_priv_switch_user(const char *user, struct weir_err *err)
{
	struct passwd *pw;
	uid_t uid;
	gid_t gid;

	errno = 0;
	if ((pw = getpwnam(user)) == NULL)
		return weir_seterr(err, errno ? -errno : -ENOENT,
		    "user '%s': %s", user, errno ? strerror(errno) :
		    "no such user");
	uid = pw->pw_uid;
	gid = pw->pw_gid;
	if (uid == 0)
		return weir_seterr(err, -EINVAL, "user '%s' is root: give an "
		    "unprivileged user", user);
	/* Groups first: changing them needs the privilege we give up. */
	if (setgroups(0, NULL) < 0)
		return weir_seterr(err, -errno, "setgroups: %s",
		    strerror(errno));
	if (setresgid(gid, gid, gid) < 0)
		return weir_seterr(err, -errno, "setresgid %u: %s",
		    (unsigned)gid, strerror(errno));
	if (setresuid(uid, uid, uid) < 0)
		return weir_seterr(err, -errno, "setresuid %u (user '%s'): %s",
		    (unsigned)uid, user, strerror(errno));
	/* There must be no way back. */
	if (setuid(0) == 0 || seteuid(0) == 0)
		return weir_seterr(err, -EPERM, "setuid(0) still works after "
		    "switching to user '%s'", user);
	return 0;
}

int
weir_priv_drop_caps(struct weir_err *err)
{
	struct __user_cap_header_struct h;
	struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3];
	int cap;

	if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
		return weir_seterr(err, -errno, "PR_SET_KEEPCAPS: %s",
		    strerror(errno));
	/* Needs CAP_SETPCAP: without it the entries stay (then nothing
	 * can be gained anyway: no_new_privs follows). */
	for (cap = 0; prctl(PR_CAPBSET_READ, cap, 0, 0, 0) >= 0; cap++)
		(void)prctl(PR_CAPBSET_DROP, cap, 0, 0, 0);
	(void)prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
	memset(&h, 0, sizeof(h));
	memset(d, 0, sizeof(d));
	h.version = _LINUX_CAPABILITY_VERSION_3;
	h.pid = 0;
	if (syscall(SYS_capset, &h, d) < 0)
		return weir_seterr(err, -errno, "capset: %s", strerror(errno));
	return 0;
}

/*
 * Before the privileged opening: keep only what it needs, so that
 * threads started while opening (read-ahead, hashing, flowpcap
 * writers) inherit no more than that.
 */
int
weir_priv_prepare(const struct weir_priv_conf *c, int need_net,
    struct weir_err *err)
{
	struct __user_cap_header_struct h;
	struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3];
	uint64_t keep = 0, prm;
	int cap;

	if (need_net)
		keep |= 1ull << CAP_NET_RAW | 1ull << CAP_NET_ADMIN;
	if (c->user != NULL && c->user[0] != '\0')
		keep |= 1ull << CAP_SETUID | 1ull << CAP_SETGID |
		    1ull << CAP_SETPCAP;
	memset(&h, 0, sizeof(h));
	h.version = _LINUX_CAPABILITY_VERSION_3;
	if (syscall(SYS_capget, &h, d) < 0)
		return weir_seterr(err, -errno, "capget: %s", strerror(errno));
	prm = (uint64_t)d[1].permitted << 32 | d[0].permitted;
	for (cap = 0; prctl(PR_CAPBSET_READ, cap, 0, 0, 0) >= 0; cap++)
		if (!(keep & 1ull << cap))
			(void)prctl(PR_CAPBSET_DROP, cap, 0, 0, 0);
	(void)prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
	keep &= prm;
	memset(d, 0, sizeof(d));
	d[0].permitted = d[0].effective = (uint32_t)keep;
	d[1].permitted = d[1].effective = (uint32_t)(keep >> 32);
	if (syscall(SYS_capset, &h, d) < 0)
		return weir_seterr(err, -errno, "capset: %s", strerror(errno));
	return 0;
}

#define PRIV_MAXPROG	1024

struct prog {
	struct sock_filter f[PRIV_MAXPROG];
	unsigned short	 n;
	int		 over;
};

static void
emit(struct prog *p, unsigned short code, unsigned char jt, unsigned char jf,
    unsigned k)
{
	if (p->n >= PRIV_MAXPROG) {
		p->over = 1;
		return;
	}
	p->f[p->n].code = code;
	p->f[p->n].jt = jt;
	p->f[p->n].jf = jf;
	p->f[p->n].k = k;
	p->n++;
}

static void
allow_list(struct prog *p, const int *v)
{
	for (; *v != -1; v++) {
		emit(p, BPF_JMP | BPF_JEQ | BPF_K, 0, 1, (unsigned)*v);
		emit(p, BPF_RET | BPF_K, 0, 0, SECCOMP_RET_ALLOW);
	}
}

int
weir_priv_seccomp(int mode, int profile, struct weir_err *err)
{
#ifdef PRIV_ARCH
	static struct prog p;
	struct sock_fprog fp;
	unsigned deflt;

	if (mode == WEIR_SECCOMP_OFF)
		return 0;
	deflt = mode == WEIR_SECCOMP_LOG ? SECCOMP_RET_LOG :
	    SECCOMP_RET_KILL_PROCESS;
	memset(&p, 0, sizeof(p));
	emit(&p, BPF_LD | BPF_W | BPF_ABS, 0, 0,
	    offsetof(struct seccomp_data, arch));
	emit(&p, BPF_JMP | BPF_JEQ | BPF_K, 1, 0, PRIV_ARCH);
	emit(&p, BPF_RET | BPF_K, 0, 0, SECCOMP_RET_KILL_PROCESS);
	emit(&p, BPF_LD | BPF_W | BPF_ABS, 0, 0,
	    offsetof(struct seccomp_data, nr));
#ifdef __x86_64__
	/* x32 calls have this bit set and the same arch value. */
	emit(&p, BPF_JMP | BPF_JGE | BPF_K, 0, 1, 0x40000000U);
	emit(&p, BPF_RET | BPF_K, 0, 0, SECCOMP_RET_KILL_PROCESS);
#endif
	/* socket(): the IPFIX exporter's families only. */
	emit(&p, BPF_JMP | BPF_JEQ | BPF_K, 0, 6, __NR_socket);
	emit(&p, BPF_LD | BPF_W | BPF_ABS, 0, 0,
	    offsetof(struct seccomp_data, args[0]));
	emit(&p, BPF_JMP | BPF_JEQ | BPF_K, 2, 0, AF_INET);
	emit(&p, BPF_JMP | BPF_JEQ | BPF_K, 1, 0, AF_INET6);
	emit(&p, BPF_RET | BPF_K, 0, 0, deflt);
	emit(&p, BPF_RET | BPF_K, 0, 0, SECCOMP_RET_ALLOW);
	emit(&p, BPF_LD | BPF_W | BPF_ABS, 0, 0,
	    offsetof(struct seccomp_data, nr));
#ifndef PRIV_SANITIZER
	/*
	 * prctl(): a thread naming itself only (the flowpcap writers call
	 * pthread_setname_np).  weir-tap's children and the sanitizers use
	 * other options: their lists allow prctl whole.
	 */
	if (profile != WEIR_PRIV_TAP) {
		emit(&p, BPF_JMP | BPF_JEQ | BPF_K, 0, 4, __NR_prctl);
		emit(&p, BPF_LD | BPF_W | BPF_ABS, 0, 0,
		    offsetof(struct seccomp_data, args[0]));
		emit(&p, BPF_JMP | BPF_JEQ | BPF_K, 1, 0, PR_SET_NAME);
		emit(&p, BPF_RET | BPF_K, 0, 0, deflt);
		emit(&p, BPF_RET | BPF_K, 0, 0, SECCOMP_RET_ALLOW);
		emit(&p, BPF_LD | BPF_W | BPF_ABS, 0, 0,
		    offsetof(struct seccomp_data, nr));
	}
#endif
	allow_list(&p, capture_calls);
	if (profile == WEIR_PRIV_TAP)
		allow_list(&p, tap_calls);
#ifdef PRIV_SANITIZER
	allow_list(&p, sanitizer_calls);
#endif
	emit(&p, BPF_RET | BPF_K, 0, 0, deflt);
	if (p.over)
		return weir_seterr(err, -E2BIG, "seccomp: program too long");
	fp.len = p.n;
	fp.filter = p.f;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return weir_seterr(err, -errno, "PR_SET_NO_NEW_PRIVS: %s",
		    strerror(errno));
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
	    SECCOMP_FILTER_FLAG_TSYNC, &fp) != 0)
		return weir_seterr(err, errno ? -errno : -EAGAIN,
		    "seccomp: cannot install the filter%s: %s",
		    errno ? "" : " on every thread", errno ? strerror(errno) :
		    "a thread refused");
	return 0;
#else
	if (mode == WEIR_SECCOMP_OFF)
		return 0;
	return weir_seterr(err, -WEIR_EUNSUPP, "seccomp: no allowlist for "
	    "this architecture (use --seccomp off)");
#endif
}

/*
 * Threads that kept capabilities (capset acts on one thread): a
 * non-root process with file capabilities that started threads before
 * the drop.  Named in a warning.
 */
static void
check_threads(void)
{
	char path[64], line[256], names[200];
	unsigned long long prm;
	struct dirent *de;
	size_t used = 0;
	FILE *f;
	DIR *d;

	if ((d = opendir("/proc/self/task")) == NULL)
		return;
	names[0] = '\0';
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%.20s/status",
		    de->d_name);
		if ((f = fopen(path, "r")) == NULL)
			continue;
		prm = 0;
		while (fgets(line, sizeof(line), f) != NULL)
			if (sscanf(line, "CapPrm: %llx", &prm) == 1)
				break;
		fclose(f);
		if (prm != 0 && used + strlen(de->d_name) + 2 < sizeof(names))
			used += (size_t)snprintf(names + used,
			    sizeof(names) - used, "%s%s", used ? " " : "",
			    de->d_name);
	}
	closedir(d);
	if (used)
		log_info("threads started before the drop kept "
		    "CAP_NET_RAW/CAP_NET_ADMIN (thread ids %s): give --user "
		    "to clear them, see docs/privileges.md", names);
}

int
weir_priv_drop(const struct weir_priv_conf *c, struct weir_err *err)
{
	const char *user = c->user;
	int rc, root = running_as_root();

	if (user != NULL && user[0] == '\0')
		user = NULL;
	if (user != NULL && !root)
		return weir_seterr(err, -EPERM, "--user '%s': only root can "
		    "change user (this process runs as uid %u)", user,
		    (unsigned)getuid());
	/* The bounding set needs CAP_SETPCAP, which the switch drops. */
	if ((rc = prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0)) < 0)
		return weir_seterr(err, -errno, "PR_SET_KEEPCAPS: %s",
		    strerror(errno));
	if (user != NULL) {
		int cap;

		for (cap = 0; prctl(PR_CAPBSET_READ, cap, 0, 0, 0) >= 0; cap++)
			(void)prctl(PR_CAPBSET_DROP, cap, 0, 0, 0);
		if ((rc = weir_priv_switch_user(user, err)) < 0)
			return rc;
	}
	if ((rc = weir_priv_drop_caps(err)) < 0)
		return rc;
	check_threads();
#ifdef PRIV_SANITIZER
	/* LeakSanitizer's tracer must be able to ptrace us; a user switch
	 * or a file capability made the process undumpable.  Sanitizer
	 * builds only: a dumpable process lets its user ptrace it. */
	(void)prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
#endif
	if ((rc = weir_priv_seccomp(c->seccomp, c->profile, err)) < 0)
		return rc;
	if (c->seccomp == WEIR_SECCOMP_OFF &&
	    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return weir_seterr(err, -errno, "PR_SET_NO_NEW_PRIVS: %s",
		    strerror(errno));
	log_info("privileges dropped: user %s, no capabilities, seccomp %s",
	    user ? user : "unchanged", c->seccomp == WEIR_SECCOMP_KILL ?
	    "kill" : c->seccomp == WEIR_SECCOMP_LOG ? "log" : "off");
	return 0;
}
