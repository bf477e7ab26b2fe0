/*
 * weir-tap - one capture, many tenants.
 *
 * weir-tap reads packets once (trace files now; live interfaces through
 * the same input contract), finds for every packet the tenants whose
 * filter accepts it with one cached lookup over all their BPF programs
 * (bpfverdict.h), and copies to each such tenant only the bytes it may
 * see into that tenant's shared-memory ring (shmring.h).  Each tenant is
 * its own weir-capture process, started here, reading its ring as its
 * input and running its own pipeline and outputs.  So:
 *
 *  - a tenant sees only what its filter (and the node policy's snaplen)
 *    gives it: nothing else is ever copied into its ring;
 *  - a slow, stalled or crashed tenant fills only its own ring; weir-tap
 *    never waits for a tenant, drops what does not fit and counts it
 *    (ring full_drops, or tenant_down once its process is gone);
 *  - the cost of N tenants is one verdict lookup per packet plus one copy
 *    per tenant that takes the packet, not N filter runs.
 *
 * The design, the alternative (a kernel socket per tenant, as GIMS) and
 * the measurements: docs/tap.md.
 */
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "weir/input.h"
#include "weir/live.h"
#include "weir/log.h"
#include "weir/priv.h"
#include "weir/shmring.h"
#include "capture/bpfverdict.h"
#include "capture/pipeline.h"

#define EXIT_RUNTIME	1
#define EXIT_USAGE	2

#define TAP_MAX_TENANTS	256
#define TAP_RING_MB	8
#define TAP_STOP_WAIT	10	/* seconds a tenant gets to finish */
/* Pending wake-ups are delivered this often (shmring.h): the longest a
 * packet waits in a ring before its tenant is woken. */
#define TAP_KICK_MS	10
/* The tenant's ring is this descriptor in its process. */
#define TENANT_RING_FD	3
#define TENANT_CONF_FD	4

struct tenant {
	char		 name[128];
	json_t		*exp;		/* the tenant's document, checked */
	char		*expr;		/* its filter ("" = all) */
	uint32_t	 copy;		/* bytes of a packet it may get */
	struct weir_ring ring;
	pid_t		 pid;
	int		 status;	/* wait status once gone */
	int		 gone;
	uint64_t	 down_drops;	/* packets for it after it died */
	unsigned	 touched;	/* batch number of its last put */
};

struct tap {
	struct tenant	*t;
	unsigned	 nt;
	struct bpfv	*v;
	struct weir_ifaces ifaces;
	struct weir_input inputs[WEIR_MAX_INPUTS];
	unsigned	 ninputs;
	struct weir_merge merge;
	const char	*capture;	/* the weir-capture binary */
	const char	*policy_path;
	const char	*summaries;	/* directory for tenant summaries */
	const char	*seccomp;	/* --seccomp, passed to tenants */
	size_t		 ring_bytes;
	uint64_t	 read;		/* packets read */
	uint64_t	 unclaimed;	/* packets no tenant's filter took */
	uint64_t	 copies;	/* packets put in rings */
	uint64_t	 late_iface;	/* copies not made: interface found
					   after the rings were made */
	unsigned	 nlive;		/* live interfaces among the inputs */
	uint64_t	 duration;	/* ns of capture, 0 = until stopped */
	uint64_t	 last_update;	/* CLOCK_MONOTONIC of the last
					   kernel counter read */
	uint64_t	 last_kick;	/* ... of the last kick round */
};

static volatile sig_atomic_t stop_flag, child_flag, hup_flag, usr1_flag;
static int ending;		/* tenants are told to finish */
struct tap;
static void	tap_signals(struct tap *);

static void
on_signal(int sig)
{
	if (sig == SIGCHLD)
		child_flag = 1;
	else if (sig == SIGHUP)
		hup_flag = 1;
	else if (sig == SIGUSR1)
		usr1_flag = 1;
	else
		stop_flag = 1;
}

static void
usage(FILE *f)
{
	fprintf(f,
"usage: weir-tap [-pqv] (-r file... | -i interface...) [--ring-size MB]\n"
"                [--ring-blocks N] [--block-size bytes] [--duration s]\n"
"                [--capture path] [--policy policy.json] [--summary file]\n"
"                [--tenant-summaries dir] [--user name]\n"
"                [--seccomp off|log|kill] [--status-fd fd] tenant.json...\n");
}

/*
 * The bytes of each packet a tenant may get: everything, unless the
 * document cuts packets to a snaplen (its own, or the node policy's,
 * which weir_exp_check has turned into a truncate stage) and no stage
 * before that cut needs more of the packet: checksum verification reads
 * the whole packet, and headers-only truncation must see the headers it
 * keeps.  The filter runs here on the whole packet, as captured.
 */
static uint32_t
copy_bound(const json_t *exp)
{
	const json_t *st, *s;
	const char *type;
	json_int_t snap;
	size_t i;

	st = json_object_get(exp, "stages");
	json_array_foreach(st, i, s) {
		type = json_string_value(json_object_get(s, "type"));
		if (type == NULL || strcmp(type, "checksum") == 0)
			return UINT32_MAX;
		if (strcmp(type, "truncate") != 0)
			continue;
		if (json_is_true(json_object_get(s, "headers_only")))
			return UINT32_MAX;
		snap = json_integer_value(json_object_get(s, "snaplen"));
		return snap > 0 ? (uint32_t)snap : UINT32_MAX;
	}
	return UINT32_MAX;
}

static int
tenant_load(struct tap *tp, struct tenant *t, const char *path,
    const json_t *policy)
{
	struct weir_err err = { "" };
	const json_t *s0;
	const char *name, *type, *expr = "";
	unsigned i;

	if ((t->exp = weir_conf_load(path, "tenant")) == NULL)
		return -1;
	if (json_object_get(t->exp, "inputs") != NULL) {
		log_err("tenant '%s': has 'inputs': weir-tap gives every "
		    "tenant its packets", path);
		return -1;
	}
	json_object_set_new(t->exp, "inputs", json_pack("[{s:i}]", "ring_fd",
	    TENANT_RING_FD));
	if (weir_exp_check(t->exp, policy, &err) < 0) {
		log_err("tenant '%s': %s", path, err.msg);
		return -1;
	}
	name = json_string_value(json_object_get(t->exp, "name"));
	snprintf(t->name, sizeof(t->name), "%s", name ? name : "weir");
	for (i = 0; t != &tp->t[i]; i++)
		if (strcmp(tp->t[i].name, t->name) == 0) {
			log_err("tenant '%s': name '%s' is already taken by "
			    "another tenant", path, t->name);
			return -1;
		}
	s0 = json_array_get(json_object_get(t->exp, "stages"), 0);
	type = json_string_value(json_object_get(s0, "type"));
	if (type != NULL && strcmp(type, "filter") == 0)
		expr = json_string_value(json_object_get(s0, "expr"));
	if ((t->expr = strdup(expr ? expr : "")) == NULL)
		return -1;
	t->copy = copy_bound(t->exp);
	return 0;
}

static int
tenant_ring(struct tap *tp, struct tenant *t)
{
	struct weir_err err = { "" };
	const struct weir_iface *f;
	unsigned i;

	if (weir_ring_create(&t->ring, t->name, tp->ring_bytes, &err) < 0) {
		log_err("tenant '%s': %s", t->name, err.msg);
		return -1;
	}
	for (i = 0; i < tp->ifaces.n; i++) {
		f = &tp->ifaces.v[i];
		if (weir_ring_add_iface(&t->ring, f->linktype, f->snaplen <
		    t->copy ? f->snaplen : t->copy, f->tsresol, f->name) < 0) {
			log_err("tenant '%s': more than %d interfaces",
			    t->name, WEIR_RING_MAXIFACES);
			return -1;
		}
	}
	if (tp->nlive) {
		uint64_t now = weir_live_now();

		t->ring.hdr->flags |= WEIR_RING_LIVE;
		t->ring.hdr->horizon_ns = now - weir_live_horizon(
		    &tp->inputs[0], now);
	}
	/* The name the tenant's messages and metadata give its input. */
	snprintf(t->ring.hdr->source, sizeof(t->ring.hdr->source),
	    "weir-tap:%.50s", tp->ninputs ? tp->inputs[0].path : "");
	return 0;
}

/* Start the tenant's weir-capture on its ring. */
static int
tenant_start(struct tap *tp, struct tenant *t)
{
	char summary[PATH_MAX];
	char *doc;
	size_t len;
	int cfd;
	pid_t pid;

	doc = json_dumps(t->exp, JSON_COMPACT);
	cfd = memfd_create("tenant-config", MFD_CLOEXEC);
	if (doc == NULL || cfd < 0) {
		log_err("tenant '%s': config: %s", t->name, strerror(errno));
		free(doc);
		return -1;
	}
	len = strlen(doc);
	if (write(cfd, doc, len) != (ssize_t)len) {
		log_err("tenant '%s': config: %s", t->name, strerror(errno));
		free(doc);
		close(cfd);
		return -1;
	}
	free(doc);
	if (tp->summaries != NULL)
		snprintf(summary, sizeof(summary), "%s/%s.summary.json",
		    tp->summaries, t->name);
	fflush(NULL);
	if ((pid = fork()) < 0) {
		log_err("tenant '%s': fork: %s", t->name, strerror(errno));
		close(cfd);
		return -1;
	}
	if (pid == 0) {
		char *argv[12];
		int n = 0;

		/* A tenant never outlives weir-tap. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		/* Terminal signals go to weir-tap alone, which ends the
		 * tenants by ending their rings, so they drain them. */
		setpgid(0, 0);
		signal(SIGCHLD, SIG_DFL);
		int rfd, cf;

		/* Out of the way first: either may be 3 or 4 already. */
		rfd = fcntl(t->ring.fd, F_DUPFD, 10);
		cf = fcntl(cfd, F_DUPFD, 10);
		if (rfd < 0 || cf < 0 || dup2(rfd, TENANT_RING_FD) < 0 ||
		    dup2(cf, TENANT_CONF_FD) < 0)
			_exit(EXIT_RUNTIME);
		close(rfd);
		close(cf);
		lseek(TENANT_CONF_FD, 0, SEEK_SET);
		argv[n++] = (char *)(uintptr_t)"weir-capture";
		argv[n++] = (char *)(uintptr_t)"-q";
		argv[n++] = (char *)(uintptr_t)"--config";
		argv[n++] = (char *)(uintptr_t)"/dev/fd/4";
		argv[n++] = (char *)(uintptr_t)"--seccomp";
		argv[n++] = (char *)(uintptr_t)tp->seccomp;
		if (tp->summaries != NULL) {
			argv[n++] = (char *)(uintptr_t)"--summary";
			argv[n++] = summary;
		}
		argv[n] = NULL;
		execv(tp->capture, argv);
		fprintf(stderr, "weir-tap: tenant '%s': exec '%s': %s\n",
		    t->name, tp->capture, strerror(errno));
		_exit(127);
	}
	close(cfd);
	t->pid = pid;
	return 0;
}

/* Reap tenants that ended; say so once each. */
static void
reap(struct tap *tp, int block)
{
	unsigned i;
	pid_t pid;
	int st;

	for (;;) {
		pid = waitpid(-1, &st, block ? 0 : WNOHANG);
		if (pid <= 0)
			return;
		for (i = 0; i < tp->nt; i++) {
			if (tp->t[i].pid != pid)
				continue;
			tp->t[i].gone = 1;
			tp->t[i].status = st;
			if (!ending && !stop_flag)
				log_err("tenant '%s' (pid %d) ended early: %s "
				    "%d; its packets are now dropped and "
				    "counted", tp->t[i].name, (int)pid,
				    WIFSIGNALED(st) ? "signal" : "status",
				    WIFSIGNALED(st) ? WTERMSIG(st) :
				    WEXITSTATUS(st));
		}
	}
}

/*
 * The capture socket's counters (read once a second: they are 32 bits
 * and reset when read) go into every tenant's ring header, so each
 * tenant's summary and metadata say what the kernel dropped.
 */
static void
kernel_counts_due(struct tap *tp, int force)
{
	struct weir_live_stats ls;
	uint64_t mono = weir_mono_ns(), rx = 0, drop = 0;
	unsigned i;

	if (!force && mono - tp->last_update < 1000000000ull)
		return;
	tp->last_update = mono;
	for (i = 0; i < tp->ninputs; i++) {
		if (!weir_live_is(&tp->inputs[i]))
			continue;
		(void)weir_live_update(&tp->inputs[i]);
		weir_live_stats(&tp->inputs[i], &ls);
		rx += ls.kernel_received;
		drop += ls.kernel_dropped;
	}
	for (i = 0; i < tp->nt; i++) {
		atomic_store(&tp->t[i].ring.hdr->kernel_received, rx);
		atomic_store(&tp->t[i].ring.hdr->kernel_dropped, drop);
	}
}

/* Deliver the tenants' pending wake-ups, every TAP_KICK_MS. */
static void
kick_due(struct tap *tp, int force)
{
	uint64_t mono = weir_mono_ns();
	unsigned i;

	if (!force && mono - tp->last_kick < TAP_KICK_MS * 1000000ull)
		return;
	tp->last_kick = mono;
	for (i = 0; i < tp->nt; i++)
		if (!tp->t[i].gone)
			(void)weir_ring_kick(&tp->t[i].ring);
}

/* Every live input is idle: wait (bounded) for a block. */
static void
live_idle(struct tap *tp)
{
	struct weir_input *v[WEIR_MAX_INPUTS];
	unsigned i, n = 0;

	for (i = 0; i < tp->merge.n; i++)
		if (tp->merge.src[i].waiting && !tp->merge.src[i].done)
			v[n++] = &tp->inputs[i];
	(void)weir_live_wait(v, n, TAP_KICK_MS);
	kick_due(tp, 0);
}

static int
tap_run(struct tap *tp)
{
	struct weir_pkt *ptrs[WEIR_BATCH_MAX];
	struct weir_pkt *p;
	struct tenant *t;
	uint64_t *bits, w;
	unsigned n, i, k, words, batch = 0, nt;
	uint32_t len;
	unsigned touched[TAP_MAX_TENANTS];
	uint64_t start;
	int stopping = 0;

	words = bpfv_words(tp->v);
	bits = calloc((size_t)WEIR_BATCH_MAX * words, sizeof(*bits));
	if (bits == NULL)
		return -ENOMEM;
	start = weir_mono_ns();
	for (;;) {
		if (child_flag) {
			child_flag = 0;
			reap(tp, 0);
		}
		if (hup_flag || usr1_flag)
			tap_signals(tp);
		if (stop_flag || (tp->duration &&
		    weir_mono_ns() - start >= tp->duration)) {
			/* Files stop at once; rings hand out what the kernel
			 * has already counted, then end. */
			if (tp->nlive == 0)
				break;
			if (!stopping) {
				stopping = 1;
				for (i = 0; i < tp->ninputs; i++)
					(void)weir_live_stop(&tp->inputs[i]);
			}
		}
		if (tp->nlive)
			kernel_counts_due(tp, 0);
		n = weir_merge_next(&tp->merge, ptrs, WEIR_BATCH_MAX);
		if (n == 0) {
			if (tp->nlive == 0 ||
			    weir_merge_waiting(&tp->merge) == 0)
				break;
			live_idle(tp);
			continue;
		}
		batch++;
		tp->read += n;
		bpfv_eval_batch(tp->v, ptrs, n, bits);
		nt = 0;
		for (i = 0; i < n; i++) {
			p = ptrs[i];
			w = 0;
			for (k = 0; k < words; k++)
				w |= bits[i * words + k];
			if (w == 0) {
				tp->unclaimed++;
				continue;
			}
			for (k = 0; k < words; k++) {
				w = bits[i * words + k];
				while (w != 0) {
					t = &tp->t[k * 64 +
					    (unsigned)__builtin_ctzll(w)];
					w &= w - 1;
					if (t->gone) {
						t->down_drops++;
						continue;
					}
					if (p->iface >= t->ring.hdr->niface) {
						/* an interface that appeared
						   after the ring was made */
						tp->late_iface++;
						continue;
					}
					len = p->caplen < t->copy ? p->caplen :
					    t->copy;
					if (weir_ring_put(&t->ring, p->data, len,
					    p->wirelen, p->ts, p->iface,
					    p->dir) == 0)
						tp->copies++;
					if (t->touched != batch) {
						t->touched = batch;
						touched[nt++] =
						    (unsigned)(t - tp->t);
					}
				}
			}
		}
		for (i = 0; i < nt; i++)
			weir_ring_publish(&tp->t[touched[i]].ring);
		kick_due(tp, 0);
	}
	free(bits);
	if (tp->nlive) {
		for (i = 0; i < tp->ninputs; i++)
			(void)weir_live_stop(&tp->inputs[i]);
		kernel_counts_due(tp, 1);
	}
	return 0;
}

static json_t	*tap_stats(const struct tap *);

/*
 * SIGHUP and SIGUSR1 go on to every running tenant (a new file, a
 * status line on its stderr); SIGUSR1 also writes weir-tap's own
 * counters as a status line (--status-fd, or stderr).
 */
static void
tap_signals(struct tap *tp)
{
	json_t *o;
	unsigned i;
	int sig = hup_flag ? SIGHUP : SIGUSR1;

	if (hup_flag && usr1_flag)
		hup_flag = 0;		/* USR1 on the next round */
	else
		hup_flag = usr1_flag = 0;
	for (i = 0; i < tp->nt; i++)
		if (tp->t[i].pid > 0 && !tp->t[i].gone)
			kill(tp->t[i].pid, sig);
	if (sig == SIGUSR1) {
		o = tap_stats(tp);
		weir_status_line(o, "signal");
		json_decref(o);
	}
}

/* End every ring; give tenants TAP_STOP_WAIT seconds, then kill. */
static void
tap_end(struct tap *tp)
{
	struct timespec ts = { 0, 50 * 1000 * 1000 };
	unsigned i, left, waited;

	ending = 1;
	for (i = 0; i < tp->nt; i++)
		if (tp->t[i].ring.hdr != NULL)
			weir_ring_finish(&tp->t[i].ring);
	for (waited = 0; waited < TAP_STOP_WAIT * 20; waited++) {
		reap(tp, 0);
		for (i = left = 0; i < tp->nt; i++)
			left += tp->t[i].pid > 0 && !tp->t[i].gone;
		if (left == 0)
			return;
		nanosleep(&ts, NULL);
	}
	for (i = 0; i < tp->nt; i++)
		if (tp->t[i].pid > 0 && !tp->t[i].gone) {
			log_err("tenant '%s' (pid %d) did not finish in %d s: "
			    "killed", tp->t[i].name, (int)tp->t[i].pid,
			    TAP_STOP_WAIT);
			kill(tp->t[i].pid, SIGKILL);
		}
	reap(tp, 1);
}

static json_t *
tap_stats(const struct tap *tp)
{
	const struct tenant *t;
	json_t *o, *a, *x, *kern = NULL;
	struct bpfv_stats vs;
	unsigned i;
	int st;

	a = json_array();
	for (i = 0; i < tp->nt; i++) {
		t = &tp->t[i];
		st = t->status;
		x = json_pack("{s:s,s:s,s:I,s:I,s:I,s:I,s:I}", "name", t->name,
		    "filter", t->expr,
		    "copy_bytes", (json_int_t)(t->copy == UINT32_MAX ? 0 :
		    t->copy),
		    "matched", (json_int_t)(t->ring.hdr->offered +
		    t->down_drops),
		    "written", (json_int_t)t->ring.hdr->written,
		    "ring_full_drops", (json_int_t)t->ring.hdr->full_drops,
		    "tenant_down_drops", (json_int_t)t->down_drops);
		if (t->gone && WIFEXITED(st))
			json_object_set_new(x, "exit_status",
			    json_integer(WEXITSTATUS(st)));
		else if (t->gone && WIFSIGNALED(st))
			json_object_set_new(x, "killed_by_signal",
			    json_integer(WTERMSIG(st)));
		json_array_append_new(a, x);
	}
	if (tp->nlive) {
		struct weir_live_stats ls;
		uint64_t rx = 0, drop = 0, unread = 0, skipped = 0;

		for (i = 0; i < tp->ninputs; i++) {
			weir_live_stats(&tp->inputs[i], &ls);
			rx += ls.kernel_received;
			drop += ls.kernel_dropped;
			unread += ls.ring_unread;
			skipped += ls.frames_skipped;
		}
		/* received = dropped + read + skipped + unread */
		kern = json_pack("{s:I,s:I,s:I,s:I}", "received",
		    (json_int_t)rx, "dropped", (json_int_t)drop,
		    "frames_skipped", (json_int_t)skipped,
		    "ring_unread", (json_int_t)unread);
	}
	o = json_pack("{s:I,s:I,s:I,s:I,s:o}", "read", (json_int_t)tp->read,
	    "unclaimed", (json_int_t)tp->unclaimed,
	    "copies", (json_int_t)tp->copies,
	    "late_interface_drops", (json_int_t)tp->late_iface,
	    "tenants", a);
	if (kern != NULL)
		json_object_set_new(o, "kernel", kern);
	bpfv_get_stats(tp->v, &vs);
	json_object_set_new(o, "verdicts", json_pack("{s:I,s:I,s:I,s:I,s:I,"
	    "s:I}", "cache_hits", (json_int_t)vs.hits,
	    "cache_misses", (json_int_t)vs.misses,
	    "group_runs", (json_int_t)vs.group_misses,
	    "uncached_runs", (json_int_t)vs.uncached_runs,
	    "bypass", (json_int_t)vs.bypass,
	    "class_flushes", (json_int_t)vs.class_flushes));
	return o;
}

/* weir-capture next to this binary, unless told otherwise. */
static const char *
default_capture(void)
{
	static char path[PATH_MAX];
	ssize_t n;
	char *s;

	n = readlink("/proc/self/exe", path, sizeof(path) - 32);
	if (n <= 0)
		return "weir-capture";
	path[n] = '\0';
	if ((s = strrchr(path, '/')) == NULL)
		return "weir-capture";
	strcpy(s + 1, "weir-capture");
	return path;
}

enum { OPT_RING = 256, OPT_CAPTURE, OPT_POLICY, OPT_SUMMARY, OPT_TSUM,
    OPT_BLOCKS, OPT_BSIZE, OPT_DURATION, OPT_HELP, OPT_USER, OPT_SECCOMP,
    OPT_STATUSFD };

static const struct option longopts[] = {
	{ "ring-size",	required_argument, NULL, OPT_RING },
	{ "capture",	required_argument, NULL, OPT_CAPTURE },
	{ "policy",	required_argument, NULL, OPT_POLICY },
	{ "summary",	required_argument, NULL, OPT_SUMMARY },
	{ "tenant-summaries", required_argument, NULL, OPT_TSUM },
	{ "ring-blocks", required_argument, NULL, OPT_BLOCKS },
	{ "block-size",	required_argument, NULL, OPT_BSIZE },
	{ "duration",	required_argument, NULL, OPT_DURATION },
	{ "help",	no_argument,	   NULL, OPT_HELP },
	{ "user",	required_argument, NULL, OPT_USER },
	{ "seccomp",	required_argument, NULL, OPT_SECCOMP },
	{ "status-fd",	required_argument, NULL, OPT_STATUSFD },
	{ NULL, 0, NULL, 0 }
};

int
main(int argc, char **argv)
{
	static struct tap tap;
	struct tap *tp = &tap;
	struct weir_err err = { "" };
	struct sigaction sa;
	const char *rfiles[WEIR_MAX_INPUTS], *summary = NULL;
	const char *ifnames[WEIR_MAX_INPUTS];
	struct weir_live_conf lc;
	unsigned ni = 0;
	long long lv;
	int promisc = 0;
	json_t *policy = NULL, *stats;
	unsigned nr = 0, i;
	int ch, verbosity = WEIR_LOG_WARN, status = 0, quiet = 0;
	long mb = TAP_RING_MB;
	char *end;
	struct weir_priv_conf priv = { NULL, WEIR_SECCOMP_DEFAULT,
	    WEIR_PRIV_TAP };
	long status_fd = -1;

	tp->capture = default_capture();
	weir_live_conf_defaults(&lc);
	while ((ch = getopt_long(argc, argv, "i:pqr:v", longopts, NULL)) !=
	    -1) {
		switch (ch) {
		case 'i':
			if (ni == WEIR_MAX_INPUTS) {
				fprintf(stderr, "weir-tap: at most %d "
				    "interfaces\n", WEIR_MAX_INPUTS);
				return EXIT_USAGE;
			}
			ifnames[ni++] = optarg;
			break;
		case 'p':
			promisc = 1;
			break;
		case OPT_BLOCKS:
		case OPT_BSIZE:
		case OPT_DURATION:
			errno = 0;
			lv = strtoll(optarg, &end, 10);
			if (errno || *end != '\0' || lv < (ch == OPT_BLOCKS ? 2 :
			    ch == OPT_BSIZE ? 4096 : 1) || lv > (ch == OPT_BSIZE ?
			    (1 << 30) : (1 << 20)) || (ch == OPT_BSIZE &&
			    (lv & (lv - 1)) != 0)) {
				fprintf(stderr, "weir-tap: option %s: '%s' is "
				    "out of range\n", ch == OPT_BLOCKS ?
				    "--ring-blocks" : ch == OPT_BSIZE ?
				    "--block-size (a power of two)" :
				    "--duration", optarg);
				return EXIT_USAGE;
			}
			if (ch == OPT_BLOCKS)
				lc.blocks = (uint32_t)lv;
			else if (ch == OPT_BSIZE)
				lc.block_size = (uint32_t)lv;
			else
				tp->duration = (uint64_t)lv * 1000000000ull;
			break;
		case 'q':
			quiet = 1;
			break;
		case 'r':
			if (nr == WEIR_MAX_INPUTS) {
				fprintf(stderr, "weir-tap: at most %d inputs\n",
				    WEIR_MAX_INPUTS);
				return EXIT_USAGE;
			}
			rfiles[nr++] = optarg;
			break;
		case 'v':
			verbosity++;
			break;
		case OPT_RING:
			errno = 0;
			mb = strtol(optarg, &end, 10);
			if (errno || *end != '\0' || mb < 1 || mb > 1024) {
				fprintf(stderr, "weir-tap: option --ring-size: "
				    "'%s' must be a number of MiB in 1..1024\n",
				    optarg);
				return EXIT_USAGE;
			}
			break;
		case OPT_CAPTURE:
			tp->capture = optarg;
			break;
		case OPT_POLICY:
			tp->policy_path = optarg;
			break;
		case OPT_SUMMARY:
			summary = optarg;
			break;
		case OPT_TSUM:
			tp->summaries = optarg;
			break;
		case OPT_USER:
			priv.user = optarg;
			break;
		case OPT_SECCOMP:
			priv.seccomp = weir_priv_seccomp_mode(optarg);
			if (priv.seccomp < 0) {
				fprintf(stderr, "weir-tap: option --seccomp: "
				    "'%s' must be 'off', 'log' or 'kill'\n",
				    optarg);
				return EXIT_USAGE;
			}
			break;
		case OPT_STATUSFD:
			errno = 0;
			status_fd = strtol(optarg, &end, 10);
			if (errno || *end != '\0' || status_fd < 1 ||
			    status_fd > 1023) {
				fprintf(stderr, "weir-tap: option --status-fd: "
				    "'%s' must be a descriptor in 1..1023\n",
				    optarg);
				return EXIT_USAGE;
			}
			break;
		case OPT_HELP:
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	weir_log_init("weir-tap", verbosity);
	tp->ring_bytes = (size_t)mb << 20;
	tp->seccomp = priv.seccomp == WEIR_SECCOMP_OFF ? "off" :
	    priv.seccomp == WEIR_SECCOMP_LOG ? "log" : "kill";
	if (status_fd >= 0 && weir_status_open((int)status_fd, &err) < 0) {
		log_err("%s", err.msg);
		return EXIT_USAGE;
	}
	if ((nr == 0) == (ni == 0) || optind == argc) {
		if (nr && ni)
			log_err("trace files (-r) and interfaces (-i) cannot "
			    "be mixed");
		usage(stderr);
		return EXIT_USAGE;
	}
	if (argc - optind > TAP_MAX_TENANTS) {
		log_err("%d tenants: at most %d", argc - optind,
		    TAP_MAX_TENANTS);
		return EXIT_USAGE;
	}
	if (tp->policy_path != NULL &&
	    (policy = weir_conf_load(tp->policy_path, "policy")) == NULL)
		return EXIT_USAGE;

	/* Tenants first: a bad document stops everything before a read. */
	tp->t = calloc((size_t)(argc - optind), sizeof(*tp->t));
	if (tp->t == NULL)
		return EXIT_RUNTIME;
	for (i = 0; i < (unsigned)(argc - optind); i++) {
		tp->nt = i + 1;
		tp->t[i].ring.fd = -1;
		if (tenant_load(tp, &tp->t[i], argv[optind + i], policy) < 0)
			return EXIT_USAGE;
	}
	if (bpfv_create(&tp->v, tp->nt, BPFV_DEFAULT_ENTRIES, &err) < 0) {
		log_err("%s", err.msg);
		return EXIT_RUNTIME;
	}
	for (i = 0; i < tp->nt; i++)
		if (bpfv_set(tp->v, i, tp->t[i].expr, &err) < 0) {
			log_err("tenant '%s': filter: %s", tp->t[i].name,
			    err.msg);
			return EXIT_USAGE;
		}

	/* Only what opening the interfaces needs (docs/privileges.md). */
	if (weir_priv_prepare(&priv, ni > 0, &err) < 0) {
		log_err("cannot drop privileges: %s", err.msg);
		return EXIT_RUNTIME;
	}
	for (i = 0; i < nr; i++) {
		if (weir_input_open(&tp->inputs[i], rfiles[i], i, &tp->ifaces,
		    &err) < 0) {
			log_err("%s", err.msg);
			return EXIT_RUNTIME;
		}
		tp->ninputs = i + 1;
	}
	/*
	 * Interfaces: the kernel copies no more of a packet than the
	 * tenant that may see the most of it gets; the filter runs here
	 * (no kernel filter: the union of 256 tenants' filters would cost
	 * the kernel more than the verdict cache costs us).
	 */
	lc.promisc = promisc;
	lc.snaplen = 0;
	for (i = 0; i < tp->nt; i++)
		if (tp->t[i].copy == UINT32_MAX)
			break;
		else if (tp->t[i].copy > lc.snaplen)
			lc.snaplen = tp->t[i].copy;
	if (i < tp->nt)
		lc.snaplen = 0;
	for (i = 0; i < ni; i++) {
		lc.ifname = ifnames[i];
		if (weir_live_open(&tp->inputs[i], &lc, i, &tp->ifaces,
		    &err) < 0) {
			log_err("%s", err.msg);
			return EXIT_RUNTIME;
		}
		tp->ninputs = i + 1;
		tp->nlive++;
	}
	if (weir_merge_init(&tp->merge, tp->inputs, tp->ninputs) < 0) {
		log_err("out of memory");
		return EXIT_RUNTIME;
	}
	for (i = 0; i < tp->ifaces.n; i++)
		if (bpfv_add_linktype(tp->v, tp->ifaces.v[i].linktype) < 0) {
			log_err("out of memory");
			return EXIT_RUNTIME;
		}

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sa.sa_flags = SA_RESTART;
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_flags = SA_NOCLDSTOP;
	sigaction(SIGCHLD, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	for (i = 0; i < tp->nt; i++)
		if (tenant_ring(tp, &tp->t[i]) < 0) {
			status = EXIT_RUNTIME;
			goto end;
		}
	/* Inputs and rings are made: tenants start unprivileged. */
	if (weir_priv_drop(&priv, &err) < 0) {
		log_err("cannot drop privileges: %s", err.msg);
		status = EXIT_RUNTIME;
		goto end;
	}
	for (i = 0; i < tp->nt; i++)
		if (tenant_start(tp, &tp->t[i]) < 0) {
			status = EXIT_RUNTIME;
			goto end;
		}
	if (tap_run(tp) < 0)
		status = EXIT_RUNTIME;
	for (i = 0; i < tp->merge.n; i++)
		if (tp->merge.src[i].error) {
			log_err("%s", tp->inputs[i].err.msg);
			status = EXIT_RUNTIME;
		}
end:
	tap_end(tp);
	for (i = 0; i < tp->nt; i++) {
		const struct tenant *t = &tp->t[i];

		if (t->pid > 0 && (!WIFEXITED(t->status) ||
		    WEXITSTATUS(t->status) != 0))
			status = EXIT_RUNTIME;
	}
	stats = tap_stats(tp);
	if (summary != NULL && json_dump_file(stats, summary,
	    JSON_INDENT(2)) != 0) {
		log_err("summary '%s': cannot write", summary);
		status = EXIT_RUNTIME;
	}
	if (!quiet && tp->nlive) {
		json_t *ks = json_object_get(stats, "kernel");

		fprintf(stderr, "%lld packets received by the kernel, %lld "
		    "dropped by the kernel\n",
		    (long long)json_integer_value(json_object_get(ks,
		    "received")),
		    (long long)json_integer_value(json_object_get(ks,
		    "dropped")));
	}
	if (!quiet)
		fprintf(stderr, "%llu packets read, %llu copies to %u tenants, "
		    "%llu taken by no tenant\n",
		    (unsigned long long)tp->read,
		    (unsigned long long)tp->copies, tp->nt,
		    (unsigned long long)tp->unclaimed);
	json_decref(stats);
	for (i = 0; i < tp->nt; i++) {
		weir_ring_close(&tp->t[i].ring);
		json_decref(tp->t[i].exp);
		free(tp->t[i].expr);
	}
	free(tp->t);
	bpfv_destroy(tp->v);
	weir_merge_free(&tp->merge);
	for (i = 0; i < tp->ninputs; i++)
		weir_input_close(&tp->inputs[i]);
	json_decref(policy);
	return status;
}
