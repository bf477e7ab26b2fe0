/*
 * test_priv.c - the privilege drop and the seccomp allowlist
 * (src/lib/priv/priv.c), each case in a child process of its own: the
 * child installs the filter (or drops), makes an allowed call and then
 * a forbidden one, and the parent checks how the child ended.  The
 * expected outcomes come from the kernel (SIGSYS for a killed call,
 * /proc/self/status fields), not from the library.
 */
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "weir/priv.h"
#include "../tap.h"

/* A field of /proc/self/status ("Seccomp", "CapEff"...), -1 if absent. */
static long long
status_of(const char *path, const char *name)
{
	char line[256];
	size_t n = strlen(name);
	long long v = -1;
	FILE *f;

	if ((f = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, name, n) == 0 && line[n] == ':') {
			v = strtoll(line + n + 1, NULL,
			    strncmp(name, "Cap", 3) == 0 ? 16 : 10);
			break;
		}
	fclose(f);
	return v;
}

static long long
status_field(const char *name)
{
	return status_of("/proc/self/status", name);
}

/*
 * Run fn in a child; the child's stdout is a pipe whose bytes come back
 * in out.  Returns the wait status.
 */
static int
child(void (*fn)(int), char *out, size_t len)
{
	int p[2], st;
	ssize_t n;
	size_t got = 0;
	pid_t pid;

	if (pipe(p) < 0)
		return -1;
	fflush(stdout);
	if ((pid = fork()) == 0) {
		close(p[0]);
		fn(p[1]);
		_exit(0);
	}
	close(p[1]);
	while (got + 1 < len && (n = read(p[0], out + got,
	    len - 1 - got)) > 0)
		got += (size_t)n;
	out[got] = '\0';
	while (got > 0 && out[got - 1] == '\n')
		out[--got] = '\0';
	for (; got > 0; got--)
		if (out[got - 1] == '\n')
			out[got - 1] = ';';
	close(p[0]);
	waitpid(pid, &st, 0);
	return st;
}

static void
say(int fd, const char *s)
{
	(void)!write(fd, s, strlen(s));
}

static void
install_or_die(int fd, int mode, int profile)
{
	struct weir_err err = { "" };

	if (weir_priv_seccomp(mode, profile, &err) < 0) {
		say(fd, err.msg);
		_exit(3);
	}
}

/* kill mode: allowed calls work, acct(2) kills. */
static void
c_kill_acct(int fd)
{
	char buf[64];

	install_or_die(fd, WEIR_SECCOMP_KILL, WEIR_PRIV_CAPTURE);
	snprintf(buf, sizeof(buf), "pid %d seccomp %lld nnp %lld\n",
	    (int)getpid(), status_field("Seccomp"),
	    status_field("NoNewPrivs"));
	say(fd, buf);
	syscall(SYS_acct, NULL);
	say(fd, "survived\n");
}

/* A packet socket may not be opened after the drop. */
static void
c_kill_packet_socket(int fd)
{
	int s;

	install_or_die(fd, WEIR_SECCOMP_KILL, WEIR_PRIV_CAPTURE);
	s = socket(AF_INET, SOCK_DGRAM, 0);
	say(fd, s >= 0 ? "inet ok\n" : "inet refused\n");
	socket(AF_PACKET, SOCK_RAW, 0);
	say(fd, "survived\n");
}

/* The capture profile may not execute anything. */
static void
c_kill_exec(int fd)
{
	char *argv[] = { (char *)(uintptr_t)"true", NULL };

	install_or_die(fd, WEIR_SECCOMP_KILL, WEIR_PRIV_CAPTURE);
	say(fd, "installed\n");
	execv("/bin/true", argv);
	say(fd, "survived\n");
}

/* weir-tap's profile starts programs (its tenants). */
static void
c_tap_exec(int fd)
{
	char *argv[] = { (char *)(uintptr_t)"true", NULL };
	pid_t pid;
	int st;

	install_or_die(fd, WEIR_SECCOMP_KILL, WEIR_PRIV_TAP);
	if ((pid = fork()) == 0) {
		execv("/bin/true", argv);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &st, 0) != pid)
		say(fd, "fork/wait failed\n");
	else if (WIFSIGNALED(st))
		say(fd, "tenant killed\n");
	else
		say(fd, WEXITSTATUS(st) == 0 ? "tenant ran\n" :
		    "tenant failed\n");
}

/* log mode: the forbidden call is made (and logged by the kernel). */
static void
c_log_acct(int fd)
{
	long r;

	install_or_die(fd, WEIR_SECCOMP_LOG, WEIR_PRIV_CAPTURE);
	r = syscall(SYS_acct, NULL);
	say(fd, r == 0 || errno == EPERM ? "acct returned\n" :
	    "acct odd\n");
}

static void
c_off(int fd)
{
	char buf[64];

	install_or_die(fd, WEIR_SECCOMP_OFF, WEIR_PRIV_CAPTURE);
	snprintf(buf, sizeof(buf), "seccomp %lld\n", status_field("Seccomp"));
	say(fd, buf);
}

/* The whole drop as root: user nobody, no capability, filter. */
static void
c_drop_root(int fd)
{
	/* seccomp after the check: setuid(0) is off the allowlist */
	struct weir_priv_conf c = { "nobody", WEIR_SECCOMP_OFF,
	    WEIR_PRIV_CAPTURE };
	struct weir_err err = { "" };
	char buf[200];
	int back;

	if (weir_priv_prepare(&c, 1, &err) < 0 ||
	    weir_priv_drop(&c, &err) < 0) {
		say(fd, err.msg);
		_exit(3);
	}
	back = setuid(0);
	install_or_die(fd, WEIR_SECCOMP_KILL, WEIR_PRIV_CAPTURE);
	snprintf(buf, sizeof(buf), "uid %d euid %d gid %d setuid0 %d "
	    "capeff %llx capprm %llx capinh %llx capamb %llx nnp %lld "
	    "seccomp %lld\n", (int)getuid(), (int)geteuid(), (int)getgid(),
	    back, status_field("CapEff"), status_field("CapPrm"),
	    status_field("CapInh"), status_field("CapAmb"),
	    status_field("NoNewPrivs"), status_field("Seccomp"));
	say(fd, buf);
}

/* What a thread started by weir_thread_start() sees of itself. */
static void *
thread_report(void *arg)
{
	char *buf = arg, comm[32] = "";
	FILE *f;

	if ((f = fopen("/proc/thread-self/comm", "r")) != NULL) {
		if (fgets(comm, sizeof(comm), f) != NULL)
			comm[strcspn(comm, "\n")] = '\0';
		fclose(f);
	}
	snprintf(buf, 200, "thread %s capprm %llx capeff %llx",
	    comm, status_of("/proc/thread-self/status", "CapPrm"),
	    status_of("/proc/thread-self/status", "CapEff"));
	return NULL;
}

/*
 * Threads start without capabilities: one started while the opening
 * thread holds the network capabilities (no --user, the file
 * capability case) and one started after the seccomp filter.
 */
static void
c_thread_caps(int fd)
{
	struct weir_priv_conf c = { NULL, WEIR_SECCOMP_OFF,
	    WEIR_PRIV_CAPTURE };
	struct weir_err err = { "" };
	char buf[640], t1[200] = "", t2[200] = "";
	long long mainprm;
	pthread_t th;

	if (weir_priv_prepare(&c, 1, &err) < 0) {
		say(fd, err.msg);
		_exit(3);
	}
	mainprm = status_field("CapPrm");
	if (weir_thread_start(&th, "weir-t1", thread_report, t1) < 0)
		_exit(4);
	pthread_join(th, NULL);
	if (weir_priv_drop(&c, &err) < 0) {
		say(fd, err.msg);
		_exit(3);
	}
	install_or_die(fd, WEIR_SECCOMP_KILL, WEIR_PRIV_CAPTURE);
	if (weir_thread_start(&th, "weir-t2", thread_report, t2) < 0)
		_exit(5);
	pthread_join(th, NULL);
	snprintf(buf, sizeof(buf), "main before drop %llx; %s; main after "
	    "drop %llx; %s\n", mainprm, t1, status_field("CapPrm"), t2);
	say(fd, buf);
}

/*
 * A thread started before a --user switch: it must not block the
 * switch (glibc runs setgroups/setresuid in every thread and aborts if
 * one is refused) and ends with nothing, like the main thread.
 */
static pthread_mutex_t tu_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t tu_cv = PTHREAD_COND_INITIALIZER;
static int tu_go;

static void *
thread_wait_report(void *arg)
{
	pthread_mutex_lock(&tu_mu);
	while (!tu_go)
		pthread_cond_wait(&tu_cv, &tu_mu);
	pthread_mutex_unlock(&tu_mu);
	thread_report(arg);
	snprintf((char *)arg + strlen(arg), 40, " uid %d", (int)getuid());
	return NULL;
}

static void
c_thread_user(int fd)
{
	struct weir_priv_conf c = { "nobody", WEIR_SECCOMP_KILL,
	    WEIR_PRIV_CAPTURE };
	struct weir_err err = { "" };
	char buf[300], t1[240] = "";
	pthread_t th;

	if (weir_priv_prepare(&c, 1, &err) < 0) {
		say(fd, err.msg);
		_exit(3);
	}
	if (weir_thread_start(&th, "weir-t3", thread_wait_report, t1) < 0)
		_exit(4);
	if (weir_priv_drop(&c, &err) < 0) {
		say(fd, err.msg);
		_exit(3);
	}
	pthread_mutex_lock(&tu_mu);
	tu_go = 1;
	pthread_cond_signal(&tu_cv);
	pthread_mutex_unlock(&tu_mu);
	pthread_join(th, NULL);
	snprintf(buf, sizeof(buf), "%s; main uid %d capprm %llx\n", t1,
	    (int)getuid(), status_field("CapPrm"));
	say(fd, buf);
}

/* A user name while not root is refused. */
static void
c_user_not_root(int fd)
{
	struct weir_priv_conf c = { "nobody", WEIR_SECCOMP_OFF,
	    WEIR_PRIV_CAPTURE };
	struct weir_err err = { "" };

	if (setresuid(65534, 65534, 65534) < 0 && geteuid() == 0) {
		say(fd, "cannot become nobody\n");
		return;
	}
	say(fd, weir_priv_drop(&c, &err) < 0 ? "refused\n" : "accepted\n");
}

int
main(void)
{
	char out[512];
	int st;

	ok(weir_priv_seccomp_mode("off") == WEIR_SECCOMP_OFF &&
	    weir_priv_seccomp_mode("log") == WEIR_SECCOMP_LOG &&
	    weir_priv_seccomp_mode("kill") == WEIR_SECCOMP_KILL &&
	    weir_priv_seccomp_mode("KILL") < 0 &&
	    weir_priv_seccomp_mode("") < 0, "--seccomp words");

	st = child(c_kill_acct, out, sizeof(out));
	ok(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS,
	    "kill: a forbidden call (acct) kills the process with SIGSYS "
	    "(status %#x)", st);
	ok(strstr(out, "seccomp 2 nnp 1") != NULL &&
	    strstr(out, "survived") == NULL,
	    "kill: allowed calls work before it, filter mode 2, "
	    "no_new_privs ('%.60s')", out);

	st = child(c_kill_packet_socket, out, sizeof(out));
	ok(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS &&
	    strstr(out, "inet ok") != NULL && strstr(out, "survived") == NULL,
	    "kill: socket(AF_INET) allowed, socket(AF_PACKET) kills ('%s')",
	    out);

	st = child(c_kill_exec, out, sizeof(out));
	ok(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS &&
	    strstr(out, "installed") != NULL,
	    "kill: the capture profile cannot execve");

	st = child(c_tap_exec, out, sizeof(out));
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 0 &&
	    strstr(out, "tenant ran") != NULL,
	    "kill: the weir-tap profile forks and executes /bin/true ('%s')",
	    out);

	st = child(c_log_acct, out, sizeof(out));
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 0 &&
	    strstr(out, "acct returned") != NULL,
	    "log: the forbidden call is made, the process lives ('%s')", out);

	st = child(c_off, out, sizeof(out));
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 0 &&
	    strstr(out, "seccomp 0") != NULL, "off: no filter ('%s')", out);

	if (geteuid() != 0) {
		ok(1, "# SKIP not root: user switch");
		ok(1, "# SKIP not root: user refused");
		return tap_done();
	}
	st = child(c_drop_root, out, sizeof(out));
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 0 &&
	    strstr(out, "uid 65534 euid 65534 gid 65534 setuid0 -1 capeff 0 "
	    "capprm 0 capinh 0 capamb 0 nnp 1 seccomp 2") != NULL,
	    "root -> nobody: ids, no capability, no way back, filter ('%s')",
	    out);
	st = child(c_thread_caps, out, sizeof(out));
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 0 &&
	    strstr(out, "main before drop 3000; thread weir-t1 capprm 0 "
	    "capeff 0; main after drop 0; thread weir-t2 capprm 0 "
	    "capeff 0") != NULL,
	    "threads start without capabilities while the opener holds "
	    "CAP_NET_RAW|CAP_NET_ADMIN, and under the filter (status %#x, '%s')", st, out);
	st = child(c_thread_user, out, sizeof(out));
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 0 &&
	    strstr(out, "thread weir-t3 capprm 0 capeff 0 uid 65534; main "
	    "uid 65534 capprm 0") != NULL,
	    "a thread started before --user nobody lets the switch through "
	    "and ends with no capability (status %#x, '%s')", st, out);
	st = child(c_user_not_root, out, sizeof(out));
	ok(WIFEXITED(st) && strstr(out, "refused") != NULL,
	    "--user while not root is refused ('%s')", out);
	return tap_done();
}
