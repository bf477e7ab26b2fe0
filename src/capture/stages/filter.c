/*
 * filter.c - the "filter" stage: keep the packets a libpcap BPF
 * expression selects, exactly as `tcpdump -r FILE EXPR` would.
 *
 * Config: { "expr": "tcp port 80" }   ("" or absent: accept all)
 * Counters: passed, filtered_out, no_filter_for_linktype.
 */
#include <errno.h>
#include <stdlib.h>

#include "weir/module.h"
#include "capture/stages/bpfcache.h"

#define MOD	"filter"

struct filter {
	struct bpfcache	bpf;
	uint64_t	passed;
	uint64_t	filtered_out;
	uint64_t	no_filter;
};

static const char *const filter_keys[] = { "type", "expr", NULL };

static int
filter_check(json_t *conf, const json_t *policy, struct weir_err *err)
{
	const char *expr;
	int rc;

	if ((rc = weir_conf_known(conf, MOD, filter_keys, err)) < 0)
		return rc;
	if ((rc = weir_conf_str(conf, MOD, "expr", "", 0, &expr, err)) < 0)
		return rc;
	return bpfcache_check(MOD, "expr", expr, err);
}

static int
filter_open(void **stp, const json_t *conf, const struct weir_env *env,
    struct weir_err *err)
{
	struct filter *st;
	const char *expr;
	int rc;

	expr = json_string_value(json_object_get(conf, "expr"));
	if (expr == NULL)
		expr = "";
	if ((st = calloc(1, sizeof(*st))) == NULL)
		return weir_seterr(err, -ENOMEM, MOD ": out of memory");
	if ((rc = bpfcache_init(&st->bpf, MOD, "expr", expr,
	    env ? env->ifaces : NULL, err)) < 0) {
		bpfcache_free(&st->bpf);
		free(st);
		return rc;
	}
	*stp = st;
	return 0;
}

static int
filter_packet(void *stp, struct weir_batch *b)
{
	struct filter *st = stp;
	struct weir_pkt *p;
	unsigned i;
	int m;

	if (st->bpf.all) {
		st->passed += b->n;
		return 0;
	}
	for (i = 0; i < b->n; i++) {
		p = b->p[i];
		m = bpfcache_match(&st->bpf, p);
		if (m > 0)
			st->passed++;
		else {
			p->drop = 1;
			if (m == 0)
				st->filtered_out++;
			else
				st->no_filter++;
		}
	}
	return 0;
}

static size_t
filter_stats(void *stp, struct weir_counter *c, size_t max)
{
	struct filter *st = stp;
	struct weir_counter v[] = {
		{ "passed", st->passed },
		{ "filtered_out", st->filtered_out },
		{ "no_filter_for_linktype", st->no_filter },
	};

	return WEIR_COUNTERS_PUT(c, max, v);
}

static int
filter_close(void *stp, struct weir_err *err)
{
	struct filter *st = stp;

	if (st == NULL)
		return 0;
	bpfcache_free(&st->bpf);
	free(st);
	return 0;
}

const struct weir_module weir_mod_filter = {
	.name		= MOD,
	.kind		= WEIR_MOD_STAGE,
	.needs_decode	= 0,
	.check		= filter_check,
	.open		= filter_open,
	.packet		= filter_packet,
	.stats		= filter_stats,
	.close		= filter_close,
};
