/*
 * direction.c - the "direction" stage: tag each packet inbound or
 * outbound with BPF expressions, as WDCap does.
 *
 * Config: { "inbound": "dst net 10.0.0.0/8", "outbound": "src net ...",
 *           "keep_existing": true }
 * At least one of inbound/outbound is required.  inbound is tested
 * first; a packet that matches both is inbound and also counted as
 * ambiguous; one that matches neither is unknown.  With keep_existing
 * (the default) a packet whose input already gave it a direction (p->dir,
 * or the pcapng EPB flags' inbound/outbound bits) keeps it and the
 * expressions are not run.  The stage sets p->dir and the two direction
 * bits of p->epb_flags (RFC pcapng: 01 inbound, 10 outbound) so both
 * agree.  It never drops.
 *
 * Counters: inbound, outbound, unknown (these three add up to the packets
 * seen), ambiguous, existing (kept the input's direction; also in
 * inbound/outbound), no_filter_for_linktype (an expression that does not
 * compile for the packet's link type counts as no match).
 */
#include <errno.h>
#include <stdlib.h>

#include "weir/module.h"
#include "capture/stages/bpfcache.h"

#define MOD	"direction"

#define EPB_DIR_MASK	0x3u
#define EPB_DIR_IN	0x1u
#define EPB_DIR_OUT	0x2u

struct direction {
	struct bpfcache	in, out;
	int		has_in, has_out;
	int		keep_existing;
	uint64_t	inbound, outbound, unknown, ambiguous, existing;
	uint64_t	no_filter;
};

static const char *const direction_keys[] = {
	"type", "inbound", "outbound", "keep_existing", NULL
};

static int
direction_check(json_t *conf, const json_t *policy, struct weir_err *err)
{
	const char *in, *out;
	int rc;

	if ((rc = weir_conf_known(conf, MOD, direction_keys, err)) < 0)
		return rc;
	if ((rc = weir_conf_str(conf, MOD, "inbound", NULL, 1, &in, err)) < 0)
		return rc;
	if ((rc = weir_conf_str(conf, MOD, "outbound", NULL, 1, &out,
	    err)) < 0)
		return rc;
	if (in == NULL && out == NULL)
		return weir_seterr(err, -WEIR_ECONFIG,
		    MOD ": 'inbound' or 'outbound' is required");
	if ((rc = weir_conf_bool(conf, MOD, "keep_existing", 1, NULL,
	    err)) < 0)
		return rc;
	if (in != NULL && (rc = bpfcache_check(MOD, "inbound", in, err)) < 0)
		return rc;
	if (out != NULL && (rc = bpfcache_check(MOD, "outbound", out,
	    err)) < 0)
		return rc;
	return 0;
}

static int direction_close(void *, struct weir_err *);

static int
direction_open(void **stp, const json_t *conf, const struct weir_env *env,
    struct weir_err *err)
{
	const struct weir_ifaces *ifs = env ? env->ifaces : NULL;
	struct direction *st;
	const char *in, *out;
	int rc;

	in = json_string_value(json_object_get(conf, "inbound"));
	out = json_string_value(json_object_get(conf, "outbound"));
	if ((st = calloc(1, sizeof(*st))) == NULL)
		return weir_seterr(err, -ENOMEM, MOD ": out of memory");
	st->keep_existing = !json_is_false(json_object_get(conf,
	    "keep_existing"));
	if (in != NULL) {
		st->has_in = 1;
		if ((rc = bpfcache_init(&st->in, MOD, "inbound", in, ifs,
		    err)) < 0)
			goto fail;
	}
	if (out != NULL) {
		st->has_out = 1;
		if ((rc = bpfcache_init(&st->out, MOD, "outbound", out, ifs,
		    err)) < 0)
			goto fail;
	}
	*stp = st;
	return 0;
fail:
	(void)direction_close(st, NULL);
	return rc;
}

/* 1 match, 0 no match; a missing program counts as no match. */
static int
run(struct direction *st, struct bpfcache *c, const struct weir_pkt *p)
{
	int m = bpfcache_match(c, p);

	if (m < 0) {
		st->no_filter++;
		return 0;
	}
	return m;
}

static int
direction_packet(void *stp, struct weir_batch *b)
{
	struct direction *st = stp;
	struct weir_pkt *p;
	unsigned i;
	int in, out, dir;

	for (i = 0; i < b->n; i++) {
		p = b->p[i];
		dir = WEIR_DIR_UNKNOWN;
		if (st->keep_existing) {
			if (p->dir == WEIR_DIR_IN || p->dir == WEIR_DIR_OUT)
				dir = p->dir;
			else if ((p->epb_flags & EPB_DIR_MASK) == EPB_DIR_IN)
				dir = WEIR_DIR_IN;
			else if ((p->epb_flags & EPB_DIR_MASK) == EPB_DIR_OUT)
				dir = WEIR_DIR_OUT;
			if (dir != WEIR_DIR_UNKNOWN)
				st->existing++;
		}
		if (dir == WEIR_DIR_UNKNOWN) {
			in = st->has_in && run(st, &st->in, p);
			out = st->has_out && run(st, &st->out, p);
			if (in && out)
				st->ambiguous++;
			if (in)
				dir = WEIR_DIR_IN;
			else if (out)
				dir = WEIR_DIR_OUT;
		}
		p->dir = (uint8_t)dir;
		p->epb_flags &= ~EPB_DIR_MASK;
		if (dir == WEIR_DIR_IN) {
			p->epb_flags |= EPB_DIR_IN;
			st->inbound++;
		} else if (dir == WEIR_DIR_OUT) {
			p->epb_flags |= EPB_DIR_OUT;
			st->outbound++;
		} else
			st->unknown++;
	}
	return 0;
}

static size_t
direction_stats(void *stp, struct weir_counter *c, size_t max)
{
	struct direction *st = stp;
	struct weir_counter v[] = {
		{ "inbound", st->inbound },
		{ "outbound", st->outbound },
		{ "unknown", st->unknown },
		{ "ambiguous", st->ambiguous },
		{ "existing", st->existing },
		{ "no_filter_for_linktype", st->no_filter },
	};

	return WEIR_COUNTERS_PUT(c, max, v);
}

static int
direction_close(void *stp, struct weir_err *err)
{
	struct direction *st = stp;

	if (st == NULL)
		return 0;
	if (st->has_in)
		bpfcache_free(&st->in);
	if (st->has_out)
		bpfcache_free(&st->out);
	free(st);
	return 0;
}

const struct weir_module weir_mod_direction = {
	.name		= MOD,
	.kind		= WEIR_MOD_STAGE,
	.needs_decode	= 0,
	.check		= direction_check,
	.open		= direction_open,
	.packet		= direction_packet,
	.stats		= direction_stats,
	.close		= direction_close,
};
