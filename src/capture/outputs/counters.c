/*
 * counters.c - the "counters" output: packets and bytes per interval,
 * in total and per direction, as JSON lines or CSV (the SNMP-like
 * counters of GIMS, capstats' per-interval numbers): one line per
 * interval.  Intervals, empty intervals and gaps, late packets, and the
 * file (".NAME.part" renamed at close, or "-" and FIFOs written line by
 * line) are those of interval.h, shared with the sessions output.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "weir/module.h"
#include "capture/outputs/interval.h"

struct ctr_out {
	int		 finished;	/* finish() ran */
	int		 captured;
	struct weir_iv_clock clk;
	struct weir_iv_counts n;	/* the open interval's */
	struct weir_iv_out out;
	uint64_t	 counted;
	const struct weir_env *env;
	uint64_t	 rx, drop, ring;	/* loss counters at the last line */
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

/*
 * Sum the capture's loss counters over the inputs (live interfaces:
 * kernel_received and kernel_dropped; a weir-tap ring: lost_at_capture).
 * Returns 1 if any input has them.
 */
static int
ctr_losses(const struct weir_env *env, uint64_t *rx, uint64_t *drop,
    uint64_t *ring)
{
	json_t *st, *in;
	size_t i;
	int any = 0;

	*rx = *drop = *ring = 0;
	if (env == NULL || env->pipeline_stats == NULL)
		return 0;
	if ((st = env->pipeline_stats(env->pl)) == NULL)
		return 0;
	json_array_foreach(json_object_get(st, "inputs"), i, in) {
		if (json_object_get(in, "kernel_received") == NULL)
			continue;
		any = 1;
		*rx += (uint64_t)json_integer_value(json_object_get(in,
		    "kernel_received"));
		*drop += (uint64_t)json_integer_value(json_object_get(in,
		    "kernel_dropped"));
		if (strcmp(json_string_value(json_object_get(in, "format")) ?
		    json_string_value(json_object_get(in, "format")) : "",
		    "ring") == 0)
			*ring += (uint64_t)json_integer_value(
			    json_object_get(in, "lost_at_capture"));
	}
	json_decref(st);
	return any;
}

/* The clock closed [start, end): its line, then a fresh interval. */
static void
ctr_line(void *arg, uint64_t start, uint64_t end, int gap)
{
	struct ctr_out *o = arg;
	uint64_t rx, drop, ring;

	if (o->out.loss) {
		/* losses since the last line, as counted when it is
		 * written (the kernel counts by wall clock, lines are in
		 * packet time) */
		(void)ctr_losses(o->env, &rx, &drop, &ring);
		o->out.kernel_received = rx - o->rx;
		o->out.kernel_dropped = drop - o->drop;
		o->out.ring_dropped = ring - o->ring;
		o->rx = rx;
		o->drop = drop;
		o->ring = ring;
	}
	weir_iv_out_line(&o->out, NULL, start, end, &o->n, gap);
	memset(&o->n, 0, sizeof(o->n));
}

static int
ctr_open(void **st, const json_t *conf, const struct weir_env *env,
    struct weir_err *err)
{
	struct ctr_out *o;
	const char *path = json_string_value(json_object_get(conf, "path"));
	const char *fmt = json_string_value(json_object_get(conf, "format"));
	const char *bk = json_string_value(json_object_get(conf, "bytes"));
	int rc, loss;

	*st = NULL;
	if (path == NULL)
		return weir_seterr(err, -WEIR_ECONFIG,
		    "counters: 'path' is required");
	if ((o = calloc(1, sizeof(*o))) == NULL)
		return weir_seterr(err, -ENOMEM, "counters: %s",
		    weir_strerror(-ENOMEM));
	o->captured = bk != NULL && strcmp(bk, "captured") == 0;
	o->env = env;
	/*
	 * Inputs are open: live or ring inputs give loss columns.  The
	 * first line carries every loss since the capture began (a tenant
	 * may start after weir-tap has already dropped for it).
	 */
	loss = ctr_losses(env, &o->rx, &o->drop, &o->ring);
	o->rx = o->drop = o->ring = 0;
	weir_iv_init(&o->clk, weir_iv_ns(json_number_value(
	    json_object_get(conf, "interval"))), ctr_line, NULL, o);
	if ((rc = weir_iv_out_open(&o->out, "counters", path, fmt != NULL &&
	    strcmp(fmt, "csv") == 0, loss ? WEIR_IV_LOSS : 0, err)) < 0) {
		weir_iv_out_free(&o->out);
		free(o);
		return rc;
	}
	*st = o;
	return 0;
}

static int
ctr_packet(void *st, struct weir_batch *b)
{
	struct ctr_out *o = st;
	unsigned i;

	for (i = 0; i < b->n; i++) {
		weir_iv_place(&o->clk, b->p[i]->ts);
		weir_iv_count(&o->n, b->p[i], o->captured);
		o->counted++;
	}
	return o->out.failed;
}

static int
ctr_flush(void *st)
{
	struct ctr_out *o = st;

	return weir_iv_out_flush(&o->out);
}

static int
ctr_tick(void *st, uint64_t now)
{
	struct ctr_out *o = st;

	weir_iv_tick(&o->clk, now);
	return weir_iv_out_flush(&o->out);
}

static size_t
ctr_stats(void *st, struct weir_counter *c, size_t max)
{
	struct ctr_out *o = st;
	const struct weir_counter v[] = {
		{ "written", o->counted },
		{ "dropped", 0 },
		{ "lines", o->out.lines },
		{ "gap_lines", o->out.gaps },
		{ "late_packets", o->clk.late },
	};

	return WEIR_COUNTERS_PUT(c, max, v);
}

static int
ctr_finish(void *st, struct weir_err *err)
{
	struct ctr_out *o = st;

	if (o->finished)
		return 0;
	o->finished = 1;
	weir_iv_end(&o->clk);
	return weir_iv_out_close(&o->out, err);
}

static int
ctr_close(void *st, struct weir_err *err)
{
	struct ctr_out *o = st;
	int rc;

	if (o == NULL)
		return 0;
	rc = ctr_finish(o, err);
	weir_iv_out_free(&o->out);
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
