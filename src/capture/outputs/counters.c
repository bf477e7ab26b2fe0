/*
 * counters.c - the "counters" output: packets and bytes per interval,
 * in total and per direction, as JSON lines or CSV (the SNMP-like
 * counters of GIMS, capstats' per-interval numbers).
 *
 * Intervals are [k * interval, (k + 1) * interval) in packet time since
 * the epoch.  The first line is the first packet's interval; empty
 * intervals between packets are written as zero lines, but a run of
 * more than GAP_MAX of them becomes one line with "gap" covering the
 * whole run, because a trace may jump by years.  A packet older than
 * the current interval is counted in the current one ("late_packets"):
 * lines already written are never rewritten.
 *
 * A regular file is written under ".NAME.part" and renamed at close;
 * "-" (stdout) and a FIFO are written directly, line by line, for live
 * use.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "weir/log.h"
#include "weir/module.h"
#include "capture/outputs/filewriter.h"

#define NS		1000000000ULL
#define GAP_MAX		1000

struct ctr_out {
	int		 finished;	/* finish() ran */
	FILE		*f;
	int		 csv, captured, direct, is_stdout, dirty, failed;
	uint64_t	 iv;			/* interval, ns */
	int		 have;			/* cur is open */
	uint64_t	 cur;			/* its start */
	uint64_t	 pk[3], by[3];		/* by enum weir_dir */
	char		*path, *hidden;
	uint64_t	 counted, lines, gaps, late;
};

static const char *const ctr_keys[] = { "type", "path", "format",
	"interval", "bytes", NULL };
static const char *const formats[] = { "json", "csv", NULL };
static const char *const byte_kinds[] = { "wire", "captured", NULL };

static int
ctr_check(json_t *conf, const json_t *policy, struct weir_err *err)
{
	int rc;

	if ((rc = weir_conf_known(conf, "counters", ctr_keys, err)) < 0 ||
	    (rc = weir_conf_str(conf, "counters", "path", NULL, 0, NULL,
	    err)) < 0 ||
	    (rc = weir_conf_enum(conf, "counters", "format", "json", formats,
	    NULL, err)) < 0 ||
	    (rc = weir_conf_num(conf, "counters", "interval", 1.0, 0.001,
	    31622400.0, NULL, err)) < 0 ||
	    (rc = weir_conf_enum(conf, "counters", "bytes", "wire",
	    byte_kinds, NULL, err)) < 0)
		return rc;
	if (json_string_value(json_object_get(conf, "path"))[0] == '\0')
		return weir_seterr(err, -WEIR_ECONFIG,
		    "counters: 'path' must not be empty");
	return 0;
}

static void
ctr_fail(struct ctr_out *o, int code)
{
	if (o->failed)
		return;
	o->failed = code < 0 ? code : -EIO;
	log_err("counters: cannot write '%s': %s", o->hidden ? o->hidden :
	    o->path, weir_strerror(code));
}

static void
emit(struct ctr_out *o, uint64_t start, uint64_t end, int gap)
{
	char s[64], e[64];
	uint64_t p = o->pk[0] + o->pk[1] + o->pk[2];
	uint64_t b = o->by[0] + o->by[1] + o->by[2];
	int rc;

	if (gap) {
		p = b = 0;
		o->gaps++;
	}
	weir_fw_rfc3339(start, s, sizeof(s));
	weir_fw_rfc3339(end, e, sizeof(e));
	if (o->csv)
		rc = fprintf(o->f, "%" PRIu64 ",%s,%" PRIu64 ",%s,%" PRIu64
		    ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64
		    ",%" PRIu64 ",%" PRIu64 ",%d\n", start, s, end, e, p, b,
		    gap ? 0 : o->pk[WEIR_DIR_IN], gap ? 0 : o->by[WEIR_DIR_IN],
		    gap ? 0 : o->pk[WEIR_DIR_OUT],
		    gap ? 0 : o->by[WEIR_DIR_OUT],
		    gap ? 0 : o->pk[WEIR_DIR_UNKNOWN],
		    gap ? 0 : o->by[WEIR_DIR_UNKNOWN], gap);
	else
		rc = fprintf(o->f, "{\"start_ns\":%" PRIu64 ",\"start\":\"%s\","
		    "\"end_ns\":%" PRIu64 ",\"end\":\"%s\",\"packets\":%" PRIu64
		    ",\"bytes\":%" PRIu64 ",\"packets_in\":%" PRIu64
		    ",\"bytes_in\":%" PRIu64 ",\"packets_out\":%" PRIu64
		    ",\"bytes_out\":%" PRIu64 ",\"packets_unknown\":%" PRIu64
		    ",\"bytes_unknown\":%" PRIu64 "%s}\n", start, s, end, e, p,
		    b, gap ? 0 : o->pk[WEIR_DIR_IN],
		    gap ? 0 : o->by[WEIR_DIR_IN],
		    gap ? 0 : o->pk[WEIR_DIR_OUT],
		    gap ? 0 : o->by[WEIR_DIR_OUT],
		    gap ? 0 : o->pk[WEIR_DIR_UNKNOWN],
		    gap ? 0 : o->by[WEIR_DIR_UNKNOWN],
		    gap ? ",\"gap\":true" : "");
	if (rc < 0)
		ctr_fail(o, errno ? -errno : -EIO);
	o->lines++;
	o->dirty = 1;
}

static void
zero(struct ctr_out *o)
{
	memset(o->pk, 0, sizeof(o->pk));
	memset(o->by, 0, sizeof(o->by));
}

/* Write the current interval and the empty ones up to target. */
static void
advance(struct ctr_out *o, uint64_t target)
{
	uint64_t t, empty;

	emit(o, o->cur, o->cur + o->iv, 0);
	zero(o);
	empty = (target - o->cur) / o->iv - 1;
	if (empty > GAP_MAX)
		emit(o, o->cur + o->iv, target, 1);
	else
		for (t = o->cur + o->iv; t < target; t += o->iv)
			emit(o, t, t + o->iv, 0);
	o->cur = target;
}

static int
ctr_open(void **st, const json_t *conf, const struct weir_env *env,
    struct weir_err *err)
{
	struct ctr_out *o;
	struct stat sb;
	const char *path = json_string_value(json_object_get(conf, "path"));
	const char *fmt = json_string_value(json_object_get(conf, "format"));
	const char *bk = json_string_value(json_object_get(conf, "bytes"));
	const char *slash;
	double iv = json_number_value(json_object_get(conf, "interval"));
	int fd, rc = -ENOMEM;

	*st = NULL;
	if (path == NULL)
		return weir_seterr(err, -WEIR_ECONFIG,
		    "counters: 'path' is required");
	if ((o = calloc(1, sizeof(*o))) == NULL)
		goto fail;
	o->csv = fmt != NULL && strcmp(fmt, "csv") == 0;
	o->captured = bk != NULL && strcmp(bk, "captured") == 0;
	if (!(iv >= 0.001))
		iv = 1.0;
	o->iv = (uint64_t)llround(iv * 1e9);
	if ((o->path = strdup(path)) == NULL)
		goto fail;
	if (strcmp(path, "-") == 0) {
		o->f = stdout;
		o->is_stdout = o->direct = 1;
	} else if (stat(path, &sb) == 0 && S_ISFIFO(sb.st_mode)) {
		/* Blocks until a reader opens the FIFO, as FIFOs do. */
		o->direct = 1;
		if ((o->f = fopen(path, "w")) == NULL) {
			rc = -errno;
			weir_seterr(err, rc, "counters: cannot open '%s': %s",
			    path, weir_strerror(rc));
			goto fail_msg;
		}
	} else {
		slash = strrchr(path, '/');
		if (asprintf(&o->hidden, "%.*s.%s.part", slash ?
		    (int)(slash - path + 1) : 0, path, slash ? slash + 1 :
		    path) < 0) {
			o->hidden = NULL;
			goto fail;
		}
		fd = open(o->hidden, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
		    0640);
		if (fd < 0 || (o->f = fdopen(fd, "w")) == NULL) {
			rc = -errno;
			if (fd >= 0)
				close(fd);
			weir_seterr(err, rc, "counters: cannot create '%s': %s",
			    o->hidden, weir_strerror(rc));
			goto fail_msg;
		}
	}
	if (o->direct)
		setvbuf(o->f, NULL, _IOLBF, 0);
	if (o->csv && fputs("start_ns,start,end_ns,end,packets,bytes,"
	    "packets_in,bytes_in,packets_out,bytes_out,packets_unknown,"
	    "bytes_unknown,gap\n", o->f) < 0)
		ctr_fail(o, -errno);
	*st = o;
	return 0;
fail:
	weir_seterr(err, rc, "counters: %s", weir_strerror(rc));
fail_msg:
	if (o != NULL) {
		if (o->f != NULL && !o->is_stdout)
			fclose(o->f);
		if (o->hidden != NULL)
			unlink(o->hidden);
		free(o->hidden);
		free(o->path);
		free(o);
	}
	return rc;
}

static int
ctr_packet(void *st, struct weir_batch *b)
{
	struct ctr_out *o = st;
	struct weir_pkt *p;
	uint64_t k;
	unsigned i, d;

	for (i = 0; i < b->n; i++) {
		p = b->p[i];
		k = p->ts - p->ts % o->iv;
		if (!o->have) {
			o->have = 1;
			o->cur = k;
		} else if (k > o->cur)
			advance(o, k);
		else if (k < o->cur)
			o->late++;
		d = p->dir <= WEIR_DIR_OUT ? p->dir : WEIR_DIR_UNKNOWN;
		o->pk[d]++;
		o->by[d] += o->captured ? p->caplen : p->wirelen;
		o->counted++;
	}
	return o->failed;
}

static int
ctr_flush(void *st)
{
	struct ctr_out *o = st;

	if (!o->dirty)
		return o->failed;
	o->dirty = 0;
	if (fflush(o->f) != 0)
		ctr_fail(o, -errno);
	return o->failed;
}

static int
ctr_tick(void *st, uint64_t now)
{
	struct ctr_out *o = st;

	if (o->have && now >= o->cur + o->iv)
		advance(o, now - now % o->iv);
	return ctr_flush(o);
}

static size_t
ctr_stats(void *st, struct weir_counter *c, size_t max)
{
	struct ctr_out *o = st;
	const struct weir_counter v[] = {
		{ "written", o->counted },
		{ "dropped", 0 },
		{ "lines", o->lines },
		{ "gap_lines", o->gaps },
		{ "late_packets", o->late },
	};

	return WEIR_COUNTERS_PUT(c, max, v);
}

static int
ctr_finish(void *st, struct weir_err *err)
{
	struct ctr_out *o = st;
	int rc = 0;

	if (o->finished)
		return 0;
	o->finished = 1;
	/* The last interval, partial as it may be. */
	if (o->have)
		emit(o, o->cur, o->cur + o->iv, 0);
	if (fflush(o->f) != 0 || ferror(o->f))
		ctr_fail(o, errno ? -errno : -EIO);
	if (!o->is_stdout && fclose(o->f) != 0)
		ctr_fail(o, -errno);
	if (o->hidden != NULL) {
		if (o->failed == 0 && rename(o->hidden, o->path) < 0) {
			o->failed = -errno;
			log_err("counters: cannot rename '%s' to '%s': %s",
			    o->hidden, o->path, strerror(errno));
		}
		if (o->failed)
			unlink(o->hidden);
	}
	if (o->failed) {
		rc = o->failed;
		weir_seterr(err, rc, "counters: cannot write '%s': %s",
		    o->path, weir_strerror(rc));
	}
	return rc;
}

static int
ctr_close(void *st, struct weir_err *err)
{
	struct ctr_out *o = st;
	int rc;

	if (o == NULL)
		return 0;
	rc = ctr_finish(o, err);
	free(o->hidden);
	free(o->path);
	free(o);
	return rc;
}

const struct weir_module weir_mod_counters = {
	.name		= "counters",
	.kind		= WEIR_MOD_OUTPUT,
	.needs_decode	= 0,
	.check		= ctr_check,
	.open		= ctr_open,
	.packet		= ctr_packet,
	.tick		= ctr_tick,
	.flush		= ctr_flush,
	.stats		= ctr_stats,
	.finish		= ctr_finish,
	.close		= ctr_close,
};
