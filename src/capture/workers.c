/*
 * workers.c - weir-capture --workers N (workers.h, docs/live.md
 * "Workers").
 *
 * Why threads with one pipeline each rather than one reader handing
 * packets to N pipelines: the kernel already spreads packets over
 * sockets by flow (PACKET_FANOUT_HASH, with defragmentation, symmetric
 * in the addresses and ports), so each worker reads its own ring with
 * no copy, no queue and no lock on the packet path, and every flow
 * output (ipfix, flowpcap, sessions) sees a whole flow in one worker.
 * The price is that each worker has its own outputs, as Stenographer's
 * threads have their own files.
 */
#include <sys/stat.h>

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "weir/live.h"
#include "weir/log.h"
#include "capture/pipeline.h"
#include "capture/workers.h"

#define EXIT_RUNTIME	1
#define EXIT_USAGE	2

/* How long a status line waits for every worker's counters. */
#define STATUS_WAIT_NS	(1000ull * 1000000)
/* The main thread's poll period while the workers run. */
#define MAIN_POLL_MS	20

int
weir_worker_path(const char *path, unsigned i, char *out, size_t len)
{
	const char *slash = strrchr(path, '/');
	const char *base = slash != NULL ? slash + 1 : path;
	const char *dot = strrchr(base, '.');
	int n;

	/* ".pcap" alone is a hidden name, not an extension */
	if (dot == NULL || dot == base)
		dot = path + strlen(path);
	n = snprintf(out, len, "%.*s.w%u%s", (int)(dot - path), path, i,
	    dot);
	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	return 0;
}

static const char *
str(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

int
weir_workers_check(const json_t *exp, unsigned n, struct weir_err *err)
{
	const json_t *in, *in2, *o;
	const char *p;
	struct stat sb;
	size_t i, j;
	json_int_t f, dom;

	if (n < 2)
		return 0;
	json_array_foreach(json_object_get(exp, "inputs"), i, in) {
		if (json_object_get(in, "ring_fd") != NULL)
			return weir_seterr(err, -WEIR_ECONFIG, "--workers %u: "
			    "inputs[%zu] is a weir-tap ring, which has one "
			    "reader: workers need live interfaces (-i)", n, i);
		if (json_object_get(in, "interface") == NULL)
			return weir_seterr(err, -WEIR_ECONFIG, "--workers %u: "
			    "inputs[%zu] is the trace file '%s': workers need "
			    "live interfaces (-i), a trace is read by one "
			    "pipeline", n, i, str(in, "path") ? str(in, "path") :
			    "");
		f = json_integer_value(json_object_get(in, "fanout"));
		if (f < 0)
			continue;
		/* A fanout group belongs to one device. */
		json_array_foreach(json_object_get(exp, "inputs"), j, in2) {
			if (j >= i)
				break;
			if (json_integer_value(json_object_get(in2,
			    "fanout")) == f)
				return weir_seterr(err, -WEIR_ECONFIG,
				    "inputs[%zu]: fanout group %lld is already "
				    "that of inputs[%zu] ('%s'): a group "
				    "belongs to one interface", i,
				    (long long)f, j, str(in2, "interface"));
		}
	}
	json_array_foreach(json_object_get(exp, "outputs"), i, o) {
		p = str(o, "path");
		if (p != NULL && strcmp(p, "-") == 0)
			return weir_seterr(err, -WEIR_ECONFIG, "--workers %u: "
			    "outputs[%zu] (%s) writes to stdout ('-'), which "
			    "%u workers cannot share: give a file name", n, i,
			    str(o, "type"), n);
		p = str(o, "control");
		if (p != NULL && p[0] != '\0' && stat(p, &sb) == 0 &&
		    S_ISFIFO(sb.st_mode))
			return weir_seterr(err, -WEIR_ECONFIG, "--workers %u: "
			    "outputs[%zu] (%s): the control FIFO '%s' would "
			    "give each command to one worker only: give a "
			    "regular file of commands (every worker reads "
			    "it) or run one worker", n, i, str(o, "type"), p);
		if (json_object_get(o, "collector") != NULL) {
			dom = json_integer_value(json_object_get(o,
			    "observation_domain"));
			if (dom > (json_int_t)UINT32_MAX - (json_int_t)(n - 1))
				return weir_seterr(err, -WEIR_ECONFIG,
				    "--workers %u: outputs[%zu] (%s): "
				    "observation domain %lld + worker index "
				    "would pass 2^32-1", n, i, str(o, "type"),
				    (long long)dom);
		}
	}
	return 0;
}

/* Replace the string o[key] by worker i's name for it. */
static int
rename_key(json_t *o, const char *key, unsigned i, int subdir,
    struct weir_err *err)
{
	char buf[PATH_MAX], tmp[PATH_MAX];
	const char *p = str(o, key);
	size_t l;

	if (p == NULL || p[0] == '\0')
		return 0;
	if (subdir) {
		/* a directory of outputs: worker i's own subdirectory */
		snprintf(tmp, sizeof(tmp), "%s", p);
		l = strlen(tmp);
		while (l > 1 && tmp[l - 1] == '/')
			tmp[--l] = '\0';
		if ((size_t)snprintf(buf, sizeof(buf), "%s/w%u", tmp, i) >=
		    sizeof(buf))
			goto toolong;
	} else if (weir_worker_path(p, i, buf, sizeof(buf)) < 0)
		goto toolong;
	json_object_set_new(o, key, json_string(buf));
	return 0;
toolong:
	return weir_seterr(err, -ENAMETOOLONG, "worker %u: '%s' of '%s' is "
	    "too long with the worker's suffix", i, key, p);
}

json_t *
weir_worker_exp(const json_t *exp, unsigned i, const int *fanout,
    struct weir_err *err)
{
	json_t *e, *o;
	size_t k;

	if ((e = json_deep_copy(exp)) == NULL) {
		weir_seterr(err, -ENOMEM, "out of memory");
		return NULL;
	}
	json_object_set_new(e, "worker", json_integer(i));
	json_array_foreach(json_object_get(e, "inputs"), k, o)
		if (json_object_get(o, "interface") != NULL)
			json_object_set_new(o, "fanout",
			    json_integer(fanout[k]));
	json_array_foreach(json_object_get(e, "outputs"), k, o) {
		if (rename_key(o, "path", i, 0, err) < 0 ||
		    rename_key(o, "reply", i, 0, err) < 0 ||
		    rename_key(o, "dir", i, 1, err) < 0) {
			json_decref(e);
			return NULL;
		}
		if (json_object_get(o, "collector") != NULL)
			json_object_set_new(o, "observation_domain",
			    json_integer(json_integer_value(json_object_get(o,
			    "observation_domain")) + i));
	}
	return e;
}

/* acc += x: numbers summed, objects by key, arrays by position. */
static void
sum_into(json_t *acc, const json_t *x)
{
	const char *key;
	json_t *a, *v;
	size_t i;

	if (json_is_object(acc) && json_is_object(x)) {
		json_object_foreach((json_t *)(uintptr_t)x, key, v) {
			a = json_object_get(acc, key);
			if (a == NULL)
				json_object_set_new(acc, key,
				    json_deep_copy(v));
			else if (json_is_integer(a) && json_is_integer(v))
				json_object_set_new(acc, key, json_integer(
				    json_integer_value(a) +
				    json_integer_value(v)));
			else if (json_is_number(a) && json_is_number(v))
				json_object_set_new(acc, key, json_real(
				    json_number_value(a) +
				    json_number_value(v)));
			else
				sum_into(a, v);
		}
	} else if (json_is_array(acc) && json_is_array(x)) {
		json_array_foreach((json_t *)(uintptr_t)x, i, v) {
			a = json_array_get(acc, i);
			if (a == NULL)
				json_array_append_new(acc, json_deep_copy(v));
			else if (json_is_integer(a) && json_is_integer(v))
				json_array_set_new(acc, i, json_integer(
				    json_integer_value(a) +
				    json_integer_value(v)));
			else
				sum_into(a, v);
		}
	}
}

json_t *
weir_workers_total(json_t *const *sums, unsigned n)
{
	json_t *tot, *arr, *one;
	unsigned i;

	tot = NULL;
	for (i = 0; i < n; i++) {
		if (sums[i] == NULL)
			continue;
		if (tot == NULL)
			tot = json_deep_copy(sums[i]);
		else
			sum_into(tot, sums[i]);
	}
	if (tot == NULL)
		tot = json_object();
	arr = json_array();
	for (i = 0; i < n; i++) {
		one = json_pack("{s:i}", "worker", (int)i);
		if (sums[i] != NULL)
			json_object_update(one, sums[i]);
		json_array_append_new(arr, one);
	}
	json_object_set_new(tot, "workers", arr);
	return tot;
}

struct worker {
	unsigned	 i;
	struct weir_pipeline pl;
	int		 opened, started;
	pthread_t	 th;
	struct weir_err	 err;
	volatile int	 status_flag;	/* set by the main thread */

	/* Under mu: handed between the worker and the main thread. */
	pthread_mutex_t	 mu;
	unsigned	 want, got;	/* status request generations */
	json_t		*snap;		/* counters at the last request */
	json_t		*final;		/* counters after finish */
	int		 done, failed;
};

/* Called by the worker's own pipeline between batches. */
static void
worker_status(struct weir_pipeline *pl, const char *why, void *arg)
{
	struct worker *w = arg;
	json_t *o;

	(void)why;
	o = weir_pipeline_stats(pl);
	pthread_mutex_lock(&w->mu);
	json_decref(w->snap);
	w->snap = o;
	w->got = w->want;
	pthread_mutex_unlock(&w->mu);
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	struct weir_err e = { "" };
	json_t *s;
	int failed = 0;

	if (weir_pipeline_run(&w->pl, &w->err) < 0)
		failed = 1;
	if (weir_pipeline_finish(&w->pl, &e) < 0) {
		failed = 1;
		if (w->err.msg[0] == '\0')
			w->err = e;
	}
	s = weir_pipeline_stats(&w->pl);
	pthread_mutex_lock(&w->mu);
	w->final = s;
	w->failed = failed;
	w->done = 1;
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

static void
nap(long ms)
{
	struct timespec ts = { 0, ms * 1000000L };

	/* a signal ends it early: that is what we want */
	(void)nanosleep(&ts, NULL);
}

/*
 * One status line with every worker's counters: each running worker is
 * asked (it answers between two batches, or after an idle wait of at
 * most WEIR_IDLE_WAIT_MS); one that has not answered within
 * STATUS_WAIT_NS counts with its previous answer.
 */
static void
status_gather(struct worker *ws, unsigned n, const char *why)
{
	static unsigned gen;
	json_t *sums[WEIR_WORKERS_MAX], *tot;
	uint64_t end;
	unsigned i, ready;

	gen++;
	for (i = 0; i < n; i++) {
		pthread_mutex_lock(&ws[i].mu);
		ws[i].want = gen;
		pthread_mutex_unlock(&ws[i].mu);
		ws[i].status_flag = 1;
	}
	end = weir_mono_ns() + STATUS_WAIT_NS;
	do {
		ready = 0;
		for (i = 0; i < n; i++) {
			pthread_mutex_lock(&ws[i].mu);
			ready += ws[i].done || ws[i].got == gen;
			pthread_mutex_unlock(&ws[i].mu);
		}
		if (ready == n)
			break;
		nap(2);
	} while (weir_mono_ns() < end);
	for (i = 0; i < n; i++) {
		pthread_mutex_lock(&ws[i].mu);
		sums[i] = json_incref(ws[i].final != NULL ? ws[i].final :
		    ws[i].snap);
		pthread_mutex_unlock(&ws[i].mu);
	}
	tot = weir_workers_total(sums, n);
	weir_status_line(tot, why);
	json_decref(tot);
	for (i = 0; i < n; i++)
		json_decref(sums[i]);
}

/* Signals go to the main thread: the workers only watch the flags. */
static void
block_signals(sigset_t *old)
{
	sigset_t s;

	sigemptyset(&s);
	sigaddset(&s, SIGINT);
	sigaddset(&s, SIGTERM);
	sigaddset(&s, SIGHUP);
	sigaddset(&s, SIGUSR1);
	sigaddset(&s, SIGALRM);
	pthread_sigmask(SIG_BLOCK, &s, old);
}

/* Run the started workers to their end, writing status lines. */
static void
supervise(struct worker *ws, unsigned n, const struct weir_workers_conf *c)
{
	uint64_t every, next, now;
	unsigned i, done, failed, told = 0;
	const char *why;

	every = c->status_fd >= 0 ? (uint64_t)(c->status_iv < 0 ? 1 :
	    c->status_iv) * 1000000000ull : 0;
	next = weir_mono_ns() + every;
	for (;;) {
		done = failed = 0;
		for (i = 0; i < n; i++) {
			pthread_mutex_lock(&ws[i].mu);
			done += ws[i].done || !ws[i].started;
			failed += ws[i].failed;
			pthread_mutex_unlock(&ws[i].mu);
		}
		if (done == n)
			break;
		if (failed && !told) {
			/* a stopped worker's share of the flows would be
			 * lost unseen: stop them all */
			log_err("a worker failed: stopping every worker");
			*c->stop = 1;
			told = 1;
		}
		nap(MAIN_POLL_MS);
		why = NULL;
		now = weir_mono_ns();
		if (*c->status_req) {
			*c->status_req = 0;
			why = "signal";
		} else if (every && now >= next)
			why = "interval";
		if (why != NULL) {
			status_gather(ws, n, why);
			next = weir_mono_ns() + every;
		}
	}
}

json_t *
weir_workers_run(json_t *exp, const struct weir_workers_conf *c,
    int *status)
{
	struct worker *ws;
	struct weir_err err = { "" };
	json_t *e, *o, *tot = NULL, *sums[WEIR_WORKERS_MAX];
	int fanout[WEIR_MAX_INPUTS];
	char name[24];
	struct timespec now;
	sigset_t old;
	unsigned i, n = c->n;
	size_t k;
	int rc;

	*status = 0;
	if ((ws = calloc(n, sizeof(*ws))) == NULL) {
		log_err("out of memory");
		*status = EXIT_RUNTIME;
		return NULL;
	}
	for (i = 0; i < n; i++) {
		ws[i].i = i;
		pthread_mutex_init(&ws[i].mu, NULL);
	}
	/* Worker 0 makes each interface's group (unless one was given);
	 * the others join the group it got. */
	json_array_foreach(json_object_get(exp, "inputs"), k, o) {
		fanout[k] = (int)json_integer_value(json_object_get(o,
		    "fanout"));
		if (fanout[k] < 0)
			fanout[k] = WEIR_LIVE_FANOUT_NEW;
	}
	for (i = 0; i < n; i++) {
		if ((e = weir_worker_exp(exp, i, fanout, &err)) == NULL) {
			log_err("%s", err.msg);
			*status = EXIT_USAGE;
			goto out;
		}
		rc = weir_pipeline_open(&ws[i].pl, e, &err);
		json_decref(e);
		ws[i].opened = 1;
		if (rc < 0) {
			log_err("worker %u: %s", i, err.msg);
			*status = rc == -WEIR_ECONFIG || rc == -WEIR_EPOLICY ?
			    EXIT_USAGE : EXIT_RUNTIME;
			goto out;
		}
		if (i > 0)
			continue;
		for (k = 0; k < ws[0].pl.ninputs; k++) {
			fanout[k] = weir_live_fanout(&ws[0].pl.inputs[k]);
			log_info("interface '%s': fanout group %d shared by "
			    "%u workers", ws[0].pl.inputs[k].path, fanout[k],
			    n);
		}
	}
	/*
	 * The capture starts now that every socket is in its group: what
	 * a socket received between its bind and its join also went to
	 * the group, so frames stamped earlier are discarded and counted
	 * (before_start) rather than captured twice.
	 */
	clock_gettime(CLOCK_REALTIME, &now);
	for (i = 0; i < n; i++)
		for (k = 0; k < ws[i].pl.ninputs; k++)
			if (weir_live_is(&ws[i].pl.inputs[k]) &&
			    weir_live_set_start(&ws[i].pl.inputs[k],
			    (uint64_t)now.tv_sec * 1000000000u +
			    (uint64_t)now.tv_nsec) < 0 && i == 0)
				log_info("interface '%s': hardware time "
				    "stamps: packets arriving while the "
				    "workers join may be captured twice",
				    ws[0].pl.inputs[k].path);
	/* Every socket and output file is open (docs/privileges.md). */
	if ((rc = weir_priv_drop(c->priv, &err)) < 0) {
		log_err("cannot drop privileges: %s", err.msg);
		*status = EXIT_RUNTIME;
		goto out;
	}
	for (i = 0; i < n; i++) {
		ws[i].pl.stop = c->stop;
		ws[i].pl.status_req = &ws[i].status_flag;
		ws[i].pl.status = worker_status;
		ws[i].pl.status_arg = &ws[i];
	}
	block_signals(&old);
	for (i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "weir-w%u", i % 100);
		if ((rc = weir_thread_start(&ws[i].th, name, worker_main,
		    &ws[i])) < 0) {
			log_err("worker %u: cannot start its thread: %s", i,
			    weir_strerror(rc));
			*status = EXIT_RUNTIME;
			*c->stop = 1;
			break;
		}
		ws[i].started = 1;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	supervise(ws, n, c);
	for (i = 0; i < n; i++)
		if (ws[i].started)
			pthread_join(ws[i].th, NULL);
	for (i = 0; i < n; i++) {
		if (ws[i].failed) {
			if (ws[i].err.msg[0] != '\0')
				log_err("worker %u: %s", i, ws[i].err.msg);
			*status = EXIT_RUNTIME;
		}
		sums[i] = ws[i].final;
	}
	tot = weir_workers_total(sums, n);
out:
	for (i = 0; i < n; i++) {
		if (ws[i].opened && weir_pipeline_close(&ws[i].pl, &err) < 0 &&
		    tot != NULL)
			*status = EXIT_RUNTIME;
		json_decref(ws[i].final);
		json_decref(ws[i].snap);
		pthread_mutex_destroy(&ws[i].mu);
	}
	free(ws);
	return tot;
}
