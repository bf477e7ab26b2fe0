/*
 * weir-capture - run one experiment's pipeline over trace files or live
 * interfaces (AF_PACKET rings, docs/live.md).
 *
 * The experiment is one JSON document (--config); tcpdump-like flags
 * build the same document, or amend a loaded one.  -n prints the
 * effective, policy-merged document and exits, like bgpd -n.
 */
#include <sys/time.h>

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "weir/live.h"
#include "weir/log.h"
#include "weir/priv.h"
#include "capture/outputs/filewriter.h"
#include "capture/pipeline.h"
#include "capture/workers.h"

#define EXIT_RUNTIME	1
#define EXIT_USAGE	2

static volatile int stop_flag, status_flag;
static int term_wait = 5;		/* --term-wait seconds, 0 = none */
static char term_msg[160];

/*
 * SIGINT/SIGTERM: stop, drain and publish; SIGALRM bounds that
 * (--term-wait).  SIGHUP: every rotating file output starts a new file
 * (reason "signal").  SIGUSR1: one status line.
 */
static void
on_signal(int sig)
{
	struct itimerval it;

	switch (sig) {
	case SIGHUP:
		weir_filewriter_request_rotate();
		break;
	case SIGUSR1:
		status_flag = 1;
		break;
	case SIGALRM:
		/* Unpublished files stay hidden .part files. */
		(void)!write(2, term_msg, strlen(term_msg));
		_exit(1);
	default:
		if (!stop_flag && term_wait > 0) {
			memset(&it, 0, sizeof(it));
			it.it_value.tv_sec = term_wait;
			(void)setitimer(ITIMER_REAL, &it, NULL);
		}
		stop_flag = 1;
	}
}

static void
signals_init(void)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGUSR1,
	    SIGALRM };
	struct sigaction sa;
	size_t i;

	snprintf(term_msg, sizeof(term_msg), "weir-capture: error: did not "
	    "finish within %d s of the signal (--term-wait): exiting, files "
	    "not yet published are left as hidden .part files\n", term_wait);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

static void
status_cb(struct weir_pipeline *pl, const char *why, void *arg)
{
	json_t *o;

	(void)arg;
	o = weir_pipeline_stats(pl);
	weir_status_line(o, why);
	json_decref(o);
}

static void
usage(FILE *f)
{
	fprintf(f,
"usage: weir-capture [-npqv] [-r file]... [-i interface]... [-w file]\n"
"                    [-F pcap|pcapng] [-s snaplen] [-c count] [-C megabytes]\n"
"                    [-G seconds] [-W files] [--duration seconds]\n"
"                    [--ring-blocks n] [--block-size bytes]\n"
"                    [--block-timeout ms] [--timestamps software|auto|hardware]\n"
"                    [--no-kernel-filter] [--fanout group]\n"
"                    [--config exp.json] [--policy policy.json] [--nano]\n"
"                    [--anon-key keyfile] [--headers-only] [--counters file]\n"
"                    [--meta] [--zstd] [--summary file] [--user name]\n"
"                    [--seccomp off|log|kill] [--status-fd fd]\n"
"                    [--status-interval seconds] [--term-wait seconds]\n"
"                    [--workers n]\n"
"                    [filter expression]\n");
}

enum {
	OPT_CONFIG = 256, OPT_POLICY, OPT_NANO, OPT_ANON, OPT_HDRS,
	OPT_COUNTERS, OPT_SUMMARY, OPT_META, OPT_ZSTD, OPT_HELP,
	OPT_DURATION, OPT_BLOCKS, OPT_BSIZE, OPT_BTIMEOUT, OPT_TSTAMP,
	OPT_NOKFILTER, OPT_FANOUT, OPT_USER, OPT_SECCOMP, OPT_STATUSFD,
	OPT_STATUSIV, OPT_TERMWAIT, OPT_WORKERS
};

static const struct option longopts[] = {
	{ "config",	required_argument, NULL, OPT_CONFIG },
	{ "policy",	required_argument, NULL, OPT_POLICY },
	{ "nano",	no_argument,	   NULL, OPT_NANO },
	{ "anon-key",	required_argument, NULL, OPT_ANON },
	{ "headers-only", no_argument,	   NULL, OPT_HDRS },
	{ "counters",	required_argument, NULL, OPT_COUNTERS },
	{ "summary",	required_argument, NULL, OPT_SUMMARY },
	{ "meta",	no_argument,	   NULL, OPT_META },
	{ "zstd",	no_argument,	   NULL, OPT_ZSTD },
	{ "help",	no_argument,	   NULL, OPT_HELP },
	{ "duration",	required_argument, NULL, OPT_DURATION },
	{ "ring-blocks", required_argument, NULL, OPT_BLOCKS },
	{ "block-size",	required_argument, NULL, OPT_BSIZE },
	{ "block-timeout", required_argument, NULL, OPT_BTIMEOUT },
	{ "timestamps",	required_argument, NULL, OPT_TSTAMP },
	{ "no-kernel-filter", no_argument, NULL, OPT_NOKFILTER },
	{ "fanout",	required_argument, NULL, OPT_FANOUT },
	{ "user",	required_argument, NULL, OPT_USER },
	{ "seccomp",	required_argument, NULL, OPT_SECCOMP },
	{ "status-fd",	required_argument, NULL, OPT_STATUSFD },
	{ "status-interval", required_argument, NULL, OPT_STATUSIV },
	{ "term-wait",	required_argument, NULL, OPT_TERMWAIT },
	{ "workers",	required_argument, NULL, OPT_WORKERS },
	{ NULL, 0, NULL, 0 }
};

/* A document that must load; a bad one ends the run (status 2). */
static json_t *
load_json(const char *path, const char *what)
{
	json_t *j;

	if ((j = weir_conf_load(path, what)) == NULL)
		exit(EXIT_USAGE);
	return j;
}

static long long
numarg(const char *s, const char *opt, long long min, long long max)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || *end != '\0' || end == s || v < min || v > max) {
		log_err("option %s: '%s' must be a number in %lld..%lld", opt,
		    s, min, max);
		exit(EXIT_USAGE);
	}
	return v;
}

/*
 * The ring flags apply to every -i; they are written into each
 * interface object only when given, so a loaded config keeps its own
 * values otherwise.
 */
struct live_flags {
	int		 promisc, nokfilter;
	long long	 blocks, bsize, btimeout, fanout;
	const char	*tstamp;
};

static void
live_amend(json_t *o, const struct live_flags *f)
{
	if (f->promisc)
		json_object_set_new(o, "promisc", json_true());
	if (f->blocks)
		json_object_set_new(o, "blocks", json_integer(f->blocks));
	if (f->bsize)
		json_object_set_new(o, "block_size", json_integer(f->bsize));
	if (f->btimeout)
		json_object_set_new(o, "block_timeout_ms",
		    json_integer(f->btimeout));
	if (f->tstamp)
		json_object_set_new(o, "timestamps", json_string(f->tstamp));
	if (f->nokfilter)
		json_object_set_new(o, "kernel_filter", json_false());
	if (f->fanout >= 0)
		json_object_set_new(o, "fanout", json_integer(f->fanout));
}

static double
secsarg(const char *s, const char *opt)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || *end != '\0' || end == s || !(v > 0 && v <= 31622400)) {
		log_err("option %s: '%s' must be a number of seconds in "
		    "0..31622400", opt, s);
		exit(EXIT_USAGE);
	}
	return v;
}

static int
has_suffix(const char *s, const char *suf)
{
	size_t a = strlen(s), b = strlen(suf);

	return a >= b && strcmp(s + a - b, suf) == 0;
}

int
main(int argc, char **argv)
{
	struct weir_pipeline pl;
	struct weir_err err = { "" };
	json_t *exp = NULL, *policy = NULL, *inputs, *stages, *prepend;
	json_t *out = NULL, *trunc = NULL, *rotate, *summary;
	const char *wfile = NULL, *format = NULL, *summary_path = NULL;
	const char *anon_key = NULL, *counters = NULL;
	long long snaplen = -1, count = -1, csize = 0, gsecs = 0, wfiles = 0;
	struct live_flags lf = { 0, 0, 0, 0, 0, -1, NULL };
	double duration = 0;
	struct weir_priv_conf priv = { NULL, WEIR_SECCOMP_DEFAULT,
	    WEIR_PRIV_CAPTURE };
	long long status_fd = -1, status_iv = -1, nworkers = 0;
	struct weir_workers_conf wc;
	json_t *o;
	size_t k;
	int print_only = 0, nano = 0, hdrs = 0, meta = 0, zstd = 0;
	int verbosity = WEIR_LOG_WARN, ch, rc, status = 0, live;
	char *filter = NULL;
	size_t flen;
	int i;

	weir_log_init("weir-capture", WEIR_LOG_WARN);
	inputs = json_array();
	while ((ch = getopt_long(argc, argv, "r:i:w:F:s:c:C:G:W:npqvh",
	    longopts, NULL)) != -1) {
		switch (ch) {
		case 'r':
			json_array_append_new(inputs, json_pack("{s:s}",
			    "path", optarg));
			break;
		case 'i':
			json_array_append_new(inputs, json_pack("{s:s}",
			    "interface", optarg));
			break;
		case 'p':
			lf.promisc = 1;
			break;
		case OPT_DURATION:
			duration = secsarg(optarg, "--duration");
			break;
		case OPT_BLOCKS:
			lf.blocks = numarg(optarg, "--ring-blocks", 2,
			    1 << 20);
			break;
		case OPT_BSIZE:
			lf.bsize = numarg(optarg, "--block-size", 4096,
			    1 << 30);
			break;
		case OPT_BTIMEOUT:
			lf.btimeout = numarg(optarg, "--block-timeout", 1,
			    60000);
			break;
		case OPT_TSTAMP:
			if (strcmp(optarg, "software") &&
			    strcmp(optarg, "auto") &&
			    strcmp(optarg, "hardware")) {
				log_err("option --timestamps: '%s' must be "
				    "'software', 'auto' or 'hardware'",
				    optarg);
				status = EXIT_USAGE;
				goto usage_error;
			}
			lf.tstamp = optarg;
			break;
		case OPT_NOKFILTER:
			lf.nokfilter = 1;
			break;
		case OPT_FANOUT:
			lf.fanout = numarg(optarg, "--fanout", 0, 65535);
			break;
		case OPT_USER:
			priv.user = optarg;
			break;
		case OPT_SECCOMP:
			priv.seccomp = weir_priv_seccomp_mode(optarg);
			if (priv.seccomp < 0) {
				log_err("option --seccomp: '%s' must be 'off', "
				    "'log' or 'kill'", optarg);
				status = EXIT_USAGE;
				goto usage_error;
			}
			break;
		case OPT_STATUSFD:
			status_fd = numarg(optarg, "--status-fd", 1, 1023);
			break;
		case OPT_STATUSIV:
			status_iv = numarg(optarg, "--status-interval", 0,
			    86400);
			break;
		case OPT_TERMWAIT:
			term_wait = (int)numarg(optarg, "--term-wait", 0,
			    86400);
			break;
		case OPT_WORKERS:
			nworkers = numarg(optarg, "--workers", 1,
			    WEIR_WORKERS_MAX);
			break;
		case 'w':
			wfile = optarg;
			break;
		case 'F':
			if (strcmp(optarg, "pcap") && strcmp(optarg, "pcapng")) {
				log_err("option -F: '%s' must be 'pcap' or "
				    "'pcapng'", optarg);
				status = EXIT_USAGE;
				goto usage_error;
			}
			format = optarg;
			break;
		case 's':
			snaplen = numarg(optarg, "-s", 0, 262144);
			break;
		case 'c':
			count = numarg(optarg, "-c", 1, INT64_MAX);
			break;
		case 'C':
			csize = numarg(optarg, "-C", 1, 1000000);
			break;
		case 'G':
			gsecs = numarg(optarg, "-G", 1, 86400 * 366);
			break;
		case 'W':
			wfiles = numarg(optarg, "-W", 1, 1000000);
			break;
		case 'n':
			print_only = 1;
			break;
		case 'q':
			verbosity = WEIR_LOG_ERR;
			break;
		case 'v':
			verbosity++;
			break;
		case OPT_CONFIG:
			exp = load_json(optarg, "config");
			break;
		case OPT_POLICY:
			policy = load_json(optarg, "policy");
			break;
		case OPT_NANO:
			nano = 1;
			break;
		case OPT_ANON:
			anon_key = optarg;
			break;
		case OPT_HDRS:
			hdrs = 1;
			break;
		case OPT_COUNTERS:
			counters = optarg;
			break;
		case OPT_SUMMARY:
			summary_path = optarg;
			break;
		case OPT_META:
			meta = 1;
			break;
		case OPT_ZSTD:
			zstd = 1;
			break;
		case 'h':
		case OPT_HELP:
			usage(stdout);
			goto usage_error;
		default:
			usage(stderr);
			status = EXIT_USAGE;
			goto usage_error;
		}
	}
	weir_log_init("weir-capture", verbosity > WEIR_LOG_DEBUG ?
	    WEIR_LOG_DEBUG : verbosity);

	/* The flags amend (or make) the experiment document. */
	if (exp == NULL)
		exp = json_object();
	if (json_array_size(inputs) > 0)
		json_object_set(exp, "inputs", inputs);
	json_decref(inputs);
	json_array_foreach(json_object_get(exp, "inputs"), k, o)
		if (json_is_object(o) && json_object_get(o, "interface") !=
		    NULL)
			live_amend(o, &lf);
	if (count > 0)
		json_object_set_new(exp, "count", json_integer(count));
	if (duration > 0)
		json_object_set_new(exp, "duration", json_real(duration));
	stages = json_object_get(exp, "stages");
	if (stages == NULL) {
		stages = json_array();
		json_object_set_new(exp, "stages", stages);
	}
	if (!json_is_array(stages)) {
		log_err("experiment: 'stages' must be a list");
		status = EXIT_USAGE;
		goto done;
	}
	prepend = json_array();
	for (flen = 0, i = optind; i < argc; i++)
		flen += strlen(argv[i]) + 1;
	if (flen > 0) {
		filter = calloc(1, flen);
		if (filter == NULL)
			weir_fatalx("out of memory");
		for (i = optind; i < argc; i++) {
			if (i > optind)
				strcat(filter, " ");
			strcat(filter, argv[i]);
		}
		json_array_append_new(prepend, json_pack("{s:s,s:s}", "type",
		    "filter", "expr", filter));
		free(filter);
	}
	json_array_extend(prepend, stages);
	json_array_clear(stages);
	json_array_extend(stages, prepend);
	json_decref(prepend);
	if (anon_key != NULL)
		json_array_append_new(stages, json_pack("{s:s,s:s}", "type",
		    "anonymize", "key_file", anon_key));
	if (snaplen > 0 || hdrs) {
		trunc = json_object();
		json_object_set_new(trunc, "type", json_string("truncate"));
		if (snaplen > 0)
			json_object_set_new(trunc, "snaplen",
			    json_integer(snaplen));
		if (hdrs)
			json_object_set_new(trunc, "headers_only",
			    json_true());
		json_array_append_new(stages, trunc);
	}
	if (wfile != NULL || counters != NULL) {
		if (json_object_get(exp, "outputs") == NULL)
			json_object_set_new(exp, "outputs", json_array());
		if (!json_is_array(json_object_get(exp, "outputs"))) {
			log_err("experiment: 'outputs' must be a list");
			status = EXIT_USAGE;
			goto done;
		}
	}
	if (wfile != NULL) {
		if (format == NULL)
			format = has_suffix(wfile, ".pcapng") ? "pcapng" :
			    "pcap";
		out = json_pack("{s:s,s:s,s:b}", "type", format, "path", wfile,
		    "metadata", meta);
		if (nano && strcmp(format, "pcap") == 0)
			json_object_set_new(out, "precision",
			    json_string("ns"));
		if (zstd)
			json_object_set_new(out, "compress",
			    json_string("zstd"));
		if (csize || gsecs || wfiles) {
			rotate = json_object();
			if (csize)
				json_object_set_new(rotate, "size",
				    json_integer(csize * 1000000));
			if (gsecs)
				json_object_set_new(rotate, "seconds",
				    json_integer(gsecs));
			if (wfiles)
				json_object_set_new(rotate, "max_files",
				    json_integer(wfiles));
			json_object_set_new(out, "rotate", rotate);
		}
		json_array_append_new(json_object_get(exp, "outputs"), out);
	}
	if (counters != NULL)
		json_array_append_new(json_object_get(exp, "outputs"),
		    json_pack("{s:s,s:s}", "type", "counters", "path",
		    counters));

	/*
	 * "workers" is weir-capture's, not the pipeline's: taken out for
	 * the check and put back.  "worker" marks each worker's copy
	 * (metadata "config"); a document taken from there runs as one.
	 */
	if (nworkers > 0)
		json_object_set_new(exp, "workers", json_integer(nworkers));
	o = json_object_get(exp, "workers");
	if (o != NULL) {
		if (!json_is_integer(o) || json_integer_value(o) < 1 ||
		    json_integer_value(o) > WEIR_WORKERS_MAX) {
			log_err("experiment: 'workers' must be a number in "
			    "1..%d", WEIR_WORKERS_MAX);
			status = EXIT_USAGE;
			goto done;
		}
		nworkers = json_integer_value(o);
		json_object_del(exp, "workers");
	}
	json_object_del(exp, "worker");
	if ((rc = weir_exp_check(exp, policy, &err)) < 0 ||
	    (rc = weir_workers_check(exp, (unsigned)nworkers, &err)) < 0) {
		log_err("%s", err.msg);
		status = EXIT_USAGE;
		goto done;
	}
	if (nworkers > 0)
		json_object_set_new(exp, "workers", json_integer(nworkers));
	if (print_only) {
		json_dumpf(exp, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		fputc('\n', stdout);
		goto done;
	}

	if (status_fd >= 0 && weir_status_open((int)status_fd, &err) < 0) {
		log_err("%s", err.msg);
		status = EXIT_USAGE;
		goto done;
	}
	signals_init();
	live = 0;
	json_array_foreach(json_object_get(exp, "inputs"), k, o)
		live |= json_object_get(o, "interface") != NULL;
	if ((rc = weir_priv_prepare(&priv, live, &err)) < 0) {
		log_err("cannot drop privileges: %s", err.msg);
		status = EXIT_RUNTIME;
		goto done;
	}
	if (nworkers > 1) {
		wc.n = (unsigned)nworkers;
		wc.priv = &priv;
		wc.stop = &stop_flag;
		wc.status_req = &status_flag;
		wc.status_fd = (int)status_fd;
		wc.status_iv = status_iv;
		summary = weir_workers_run(exp, &wc, &status);
		if (summary == NULL)
			goto done;
		goto report;
	}
	if ((rc = weir_pipeline_open(&pl, exp, &err)) < 0) {
		log_err("%s", err.msg);
		weir_pipeline_close(&pl, NULL);
		status = rc == -WEIR_ECONFIG || rc == -WEIR_EPOLICY ?
		    EXIT_USAGE : EXIT_RUNTIME;
		goto done;
	}
	/* Sockets and output files are open: nothing privileged is left
	 * to do (docs/privileges.md). */
	if ((rc = weir_priv_drop(&priv, &err)) < 0) {
		log_err("cannot drop privileges: %s", err.msg);
		weir_pipeline_close(&pl, NULL);
		status = EXIT_RUNTIME;
		goto done;
	}
	pl.stop = &stop_flag;
	pl.status_req = &status_flag;
	pl.status = status_cb;
	if (status_fd >= 0)
		pl.status_every = (uint64_t)(status_iv < 0 ? 1 : status_iv) *
		    1000000000ull;
	if (weir_pipeline_run(&pl, &err) < 0)
		status = EXIT_RUNTIME;
	if (weir_pipeline_finish(&pl, &err) < 0)
		status = EXIT_RUNTIME;
	summary = weir_pipeline_stats(&pl);
	if (weir_pipeline_close(&pl, &err) < 0)
		status = EXIT_RUNTIME;
report:
	if (summary_path != NULL &&
	    json_dump_file(summary, summary_path, JSON_INDENT(2) |
	    JSON_PRESERVE_ORDER) < 0) {
		log_err("cannot write summary '%s': %s", summary_path,
		    strerror(errno));
		status = EXIT_RUNTIME;
	}
	if (status_fd >= 0) {
		/* the last line: final counts, "event": "end" */
		o = json_copy(summary);
		weir_status_final(o, 1000);
		json_decref(o);
	}
	if (verbosity >= WEIR_LOG_WARN) {
		json_array_foreach(json_object_get(summary, "inputs"), k, o)
			if (json_object_get(o, "interface") != NULL)
				fprintf(stderr, "%s: %llu received by the kernel,"
				    " %llu dropped by the kernel; ",
				    json_string_value(json_object_get(o,
				    "interface")), (unsigned long long)
				    json_integer_value(json_object_get(o,
				    "kernel_received")), (unsigned long long)
				    json_integer_value(json_object_get(o,
				    "kernel_dropped")));
		fprintf(stderr, "%llu packets read",
		    (unsigned long long)json_integer_value(json_object_get(
		    summary, "read")));
		json_array_foreach(json_object_get(summary, "stages"), k, o)
			fprintf(stderr, ", %llu dropped by %s",
			    (unsigned long long)json_integer_value(
			    json_object_get(o, "dropped")),
			    json_string_value(json_object_get(o, "type")));
		fprintf(stderr, ", %llu passed to outputs",
		    (unsigned long long)json_integer_value(json_object_get(
		    summary, "passed")));
		json_array_foreach(json_object_get(summary, "outputs"), k, o)
			fprintf(stderr, "%s%s: %llu written, %llu dropped",
			    k ? "; " : " (", json_string_value(json_object_get(
			    o, "type")), (unsigned long long)json_integer_value(
			    json_object_get(o, "written")),
			    (unsigned long long)json_integer_value(
			    json_object_get(o, "dropped")));
		fprintf(stderr, "%s\n", k ? ")" : "");
	}
	json_decref(summary);
done:
	json_decref(exp);
	json_decref(policy);
	return status;
usage_error:
	json_decref(inputs);
	goto done;
}
