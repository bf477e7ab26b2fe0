/*
 * sample.c - the "sample" stage: 1-in-N, uniform random with a seed, or
 * flow-hash sampling.  docs/stages.md has the details and the reasons.
 *
 *   { "mode": "count",  "n": 10, "offset": 0 }
 *	keep packet i (0-based, counting packets that reach this stage)
 *	when i % n == offset (GIMS capture-daemon -t 3 -r N -n offset).
 *   { "mode": "random", "p": 0.1, "seed": 1 }
 *	keep each packet with probability p, drawn from xoshiro256**
 *	seeded by splitmix64(seed): the same seed and input give the same
 *	selection on every run and machine.
 *   { "mode": "flow", "n": 8, "offset": 0, "seed": 1,
 *     "flow_key": "5tuple", "non_ip": "drop" }
 *	keep every packet of the flows whose keyed hash (SipHash-1-3 of
 *	the symmetric tuple, key from splitmix64(seed)) satisfies
 *	hash % n == offset, so a flow is kept with probability 1/n.
 *
 * Counters: kept, sampled_out, non_ip (flow mode: packets without an IP
 * layer; also counted in kept or sampled_out).
 *
 * needs_decode is 0: only flow mode needs the decoded layers, and it
 * decodes itself with weir_pkt_decode() (a no-op when an earlier stage
 * already decoded), so 1-in-N and random sampling cost no decoding.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "weir/decode.h"
#include "weir/module.h"
#include "weir/siphash.h"

#define MOD	"sample"

enum { M_COUNT, M_RANDOM, M_FLOW };
enum { K_5TUPLE, K_HOSTS };

struct sample {
	int		mode;
	uint64_t	n, offset;
	uint64_t	phase;		/* count: index % n */
	uint64_t	s[4];		/* random: xoshiro256** state */
	uint64_t	thr;		/* random: keep if 53-bit draw < thr */
	uint64_t	k0, k1;		/* flow: SipHash key */
	int		key;		/* flow: K_* */
	int		keep_non_ip;
	uint64_t	kept, sampled_out, non_ip;
};

static const char *const modes[] = { "count", "random", "flow", NULL };
static const char *const flow_keys[] = { "5tuple", "hosts", NULL };
static const char *const non_ip_choices[] = { "drop", "keep", NULL };

/* Keys each mode takes (besides "type" and "mode"). */
static const char *const mode_keys[][6] = {
	[M_COUNT] = { "n", "offset", NULL },
	[M_RANDOM] = { "p", "seed", NULL },
	[M_FLOW] = { "n", "offset", "seed", "flow_key", "non_ip", NULL },
};
static const char *const all_keys[] = {
	"type", "mode", "n", "offset", "p", "seed", "flow_key", "non_ip",
	NULL
};

/* splitmix64 (Steele, Lea, Flood 2014): expands a seed into state words. */
static uint64_t
splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static inline uint64_t
rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

/* xoshiro256** (Blackman and Vigna 2018). */
static inline uint64_t
xoshiro_next(uint64_t *s)
{
	uint64_t r = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return r;
}

static int
sample_check(json_t *conf, const json_t *policy, struct weir_err *err)
{
	const char *k;
	json_t *v;
	long long n = 1;
	double p;
	int mode, i, rc;

	if ((rc = weir_conf_known(conf, MOD, all_keys, err)) < 0)
		return rc;
	if ((rc = weir_conf_enum(conf, MOD, "mode", NULL, modes, &mode,
	    err)) < 0)
		return rc;
	/* A key of another mode is a mistake, not something to ignore. */
	json_object_foreach(conf, k, v) {
		if (strcmp(k, "type") == 0 || strcmp(k, "mode") == 0)
			continue;
		for (i = 0; mode_keys[mode][i] != NULL; i++)
			if (strcmp(k, mode_keys[mode][i]) == 0)
				break;
		if (mode_keys[mode][i] == NULL)
			return weir_seterr(err, -WEIR_ECONFIG,
			    MOD ": '%s' is not used in mode '%s'", k,
			    modes[mode]);
	}
	if (mode == M_COUNT || mode == M_FLOW) {
		if (json_object_get(conf, "n") == NULL)
			return weir_seterr(err, -WEIR_ECONFIG,
			    MOD ": 'n' is required in mode '%s'", modes[mode]);
		if ((rc = weir_conf_int(conf, MOD, "n", 1, 1, LLONG_MAX, &n,
		    err)) < 0)
			return rc;
		if ((rc = weir_conf_int(conf, MOD, "offset", 0, 0, n - 1,
		    NULL, err)) < 0)
			return rc;
	}
	if (mode == M_RANDOM) {
		if (json_object_get(conf, "p") == NULL)
			return weir_seterr(err, -WEIR_ECONFIG,
			    MOD ": 'p' is required in mode 'random'");
		if ((rc = weir_conf_num(conf, MOD, "p", 1, 0, 1, &p, err)) < 0)
			return rc;
		if (p <= 0)
			return weir_seterr(err, -WEIR_ECONFIG,
			    MOD ": 'p' is %g, must be more than 0 and at "
			    "most 1", p);
	}
	if (mode == M_RANDOM || mode == M_FLOW) {
		if ((rc = weir_conf_int(conf, MOD, "seed", 1, 0, LLONG_MAX,
		    NULL, err)) < 0)
			return rc;
	}
	if (mode == M_FLOW) {
		if ((rc = weir_conf_enum(conf, MOD, "flow_key", "5tuple",
		    flow_keys, NULL, err)) < 0)
			return rc;
		if ((rc = weir_conf_enum(conf, MOD, "non_ip", "drop",
		    non_ip_choices, NULL, err)) < 0)
			return rc;
	}
	return 0;
}

static int
sample_open(void **stp, const json_t *conf, const struct weir_env *env,
    struct weir_err *err)
{
	struct sample *st;
	uint64_t x;
	double p;
	int i;

	if ((st = calloc(1, sizeof(*st))) == NULL)
		return weir_seterr(err, -ENOMEM, MOD ": out of memory");
	st->mode = weir_conf_choice(conf, "mode", modes);
	st->n = (uint64_t)json_integer_value(json_object_get(conf, "n"));
	st->offset = (uint64_t)json_integer_value(json_object_get(conf,
	    "offset"));
	if (st->n == 0)
		st->n = 1;
	x = (uint64_t)json_integer_value(json_object_get(conf, "seed"));
	if (json_object_get(conf, "seed") == NULL)
		x = 1;
	if (st->mode == M_RANDOM) {
		for (i = 0; i < 4; i++)
			st->s[i] = splitmix64(&x);
		p = json_number_value(json_object_get(conf, "p"));
		if (!(p > 0 && p <= 1))
			p = 1;
		/* Exact: p * 2^53 only moves the exponent. */
		st->thr = (uint64_t)(p * 9007199254740992.0);
	} else if (st->mode == M_FLOW) {
		st->k0 = splitmix64(&x);
		st->k1 = splitmix64(&x);
		st->key = weir_conf_choice(conf, "flow_key", flow_keys);
		st->keep_non_ip = weir_conf_choice(conf, "non_ip",
		    non_ip_choices) == 1;
	}
	*stp = st;
	return 0;
}

/* A flow's IP layer carries a fragment: its ports may be missing. */
static int
is_fragment(const struct weir_pkt *p)
{
	const struct weir_decoded *d = &p->dec;
	unsigned i;

	if (d->inner_ip == WEIR_NO_LAYER)
		return 0;
	for (i = d->inner_ip; i < d->n; i++) {
		if (d->l[i].flags & WEIR_LF_QUOTED)
			break;
		if (d->l[i].kind == WEIR_L_TCP || d->l[i].kind == WEIR_L_UDP)
			break;
		if (d->l[i].flags & (WEIR_LF_FRAG | WEIR_LF_LATERFRAG))
			return 1;
	}
	return 0;
}

/*
 * 1 keep, 0 drop.  The key is the direction-independent tuple laid out
 * in a fixed byte order, so the verdict does not depend on the host.
 * All fragments of a datagram hash without ports (later fragments have
 * none), so a fragmented datagram is kept or dropped whole.
 */
static int
flow_keep(struct sample *st, struct weir_pkt *p)
{
	struct weir_tuple t;
	uint8_t buf[38];
	size_t alen;
	uint64_t h;

	weir_pkt_decode(p);
	memset(&t, 0, sizeof(t));
	if (weir_pkt_tuple(p, &t) == 0) {
		st->non_ip++;
		return st->keep_non_ip;
	}
	alen = t.family == 6 ? 16 : 4;
	memset(buf, 0, sizeof(buf));
	buf[0] = t.family;
	if (st->key == K_5TUPLE) {
		buf[1] = t.proto;
		if (!is_fragment(p)) {
			buf[2] = (uint8_t)(t.port_a >> 8);
			buf[3] = (uint8_t)t.port_a;
			buf[4] = (uint8_t)(t.port_b >> 8);
			buf[5] = (uint8_t)t.port_b;
		}
	}
	memcpy(buf + 6, t.addr_a, alen);
	memcpy(buf + 22, t.addr_b, alen);
	h = weir_siphash(st->k0, st->k1, buf, sizeof(buf), 1, 3);
	return h % st->n == st->offset;
}

static int
sample_packet(void *stp, struct weir_batch *b)
{
	struct sample *st = stp;
	struct weir_pkt *p;
	unsigned i;
	int keep;

	for (i = 0; i < b->n; i++) {
		p = b->p[i];
		switch (st->mode) {
		case M_COUNT:
			keep = st->phase == st->offset;
			if (++st->phase == st->n)
				st->phase = 0;
			break;
		case M_RANDOM:
			keep = (xoshiro_next(st->s) >> 11) < st->thr;
			break;
		default:
			keep = flow_keep(st, p);
			break;
		}
		if (keep)
			st->kept++;
		else {
			p->drop = 1;
			st->sampled_out++;
		}
	}
	return 0;
}

static size_t
sample_stats(void *stp, struct weir_counter *c, size_t max)
{
	struct sample *st = stp;
	struct weir_counter v[] = {
		{ "kept", st->kept },
		{ "sampled_out", st->sampled_out },
		{ "non_ip", st->non_ip },
	};

	return WEIR_COUNTERS_PUT(c, max, v);
}

static int
sample_close(void *stp, struct weir_err *err)
{
	free(stp);
	return 0;
}

const struct weir_module weir_mod_sample = {
	.name		= MOD,
	.kind		= WEIR_MOD_STAGE,
	.needs_decode	= 0,
	.check		= sample_check,
	.open		= sample_open,
	.packet		= sample_packet,
	.stats		= sample_stats,
	.close		= sample_close,
};
