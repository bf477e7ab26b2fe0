/*
 * thread.c - every thread Weir starts begins without capabilities.
 *
 * Capabilities belong to each thread and capset() changes only the
 * caller's, so a thread started while a capture is opening (read-ahead,
 * metadata hasher, flowpcap writers, capture workers) would keep what
 * the process held at that moment, CAP_NET_RAW included, after the main
 * thread dropped everything (a process with file capabilities that does
 * not change user).  None of these threads opens a socket: each empties
 * its own sets first (but for what a coming user switch needs), and weir_thread_start() returns only once it has,
 * so no thread runs Weir code with a capability, whether it got going
 * before or after the seccomp filter (which allows capget/capset).
 */
#include <sys/prctl.h>
#include <sys/syscall.h>

#include <linux/capability.h>

#include <errno.h>
#include <stdint.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "weir/priv.h"

struct start {
	void		*(*fn)(void *);
	void		*arg;
	const char	*name;
	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;
	int		 done;		/* 1: the new thread is ready */
	int		 rc;		/* its capset result, -errno */
};

/*
 * Empty the calling thread's capability sets, but for CAP_SETUID and
 * CAP_SETGID if it has them: those are there only when a --user switch
 * is to come (weir_priv_prepare keeps them for it), and glibc carries
 * setgroups/setresgid/setresuid out in every thread, aborting the
 * process if one thread is refused.  Leaving uid 0 then clears them
 * (and everything else) in every thread.
 */
int
weir_thread_drop_caps(void)
{
	struct __user_cap_header_struct h;
	struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3];
	uint32_t keep;

	memset(&h, 0, sizeof(h));
	h.version = _LINUX_CAPABILITY_VERSION_3;
	if (syscall(SYS_capget, &h, d) < 0)
		return -errno;
	keep = d[0].permitted & (1u << CAP_SETUID | 1u << CAP_SETGID);
	if (d[0].permitted == keep && d[0].effective == keep &&
	    (d[1].permitted | d[1].effective | d[0].inheritable |
	    d[1].inheritable) == 0)
		return 0;
	memset(d, 0, sizeof(d));
	d[0].permitted = d[0].effective = keep;
	if (syscall(SYS_capset, &h, d) < 0)
		return -errno;
	return 0;
}

static void *
trampoline(void *arg)
{
	struct start *s = arg;
	void *(*fn)(void *) = s->fn;
	void *fnarg = s->arg;
	int rc;

	if (s->name != NULL)
		(void)prctl(PR_SET_NAME, s->name, 0, 0, 0);
	rc = weir_thread_drop_caps();
	pthread_mutex_lock(&s->mu);
	s->rc = rc;
	s->done = 1;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
	/* s lives on the creator's stack: not touched past this point. */
	if (rc < 0)
		return NULL;
	return fn(fnarg);
}

int
weir_thread_start(pthread_t *th, const char *name, void *(*fn)(void *),
    void *arg)
{
	struct start s;
	int rc;

	memset(&s, 0, sizeof(s));
	s.fn = fn;
	s.arg = arg;
	s.name = name;
	pthread_mutex_init(&s.mu, NULL);
	pthread_cond_init(&s.cv, NULL);
	if ((rc = pthread_create(th, NULL, trampoline, &s)) != 0) {
		rc = -rc;
		goto out;
	}
	pthread_mutex_lock(&s.mu);
	while (!s.done)
		pthread_cond_wait(&s.cv, &s.mu);
	pthread_mutex_unlock(&s.mu);
	if ((rc = s.rc) < 0)
		/* The thread returned without running fn. */
		pthread_join(*th, NULL);
out:
	pthread_cond_destroy(&s.cv);
	pthread_mutex_destroy(&s.mu);
	return rc;
}
