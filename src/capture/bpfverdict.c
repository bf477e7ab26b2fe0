/*
 * bpfverdict.c - many BPF programs, one verdict cache.  See bpfverdict.h.
 *
 * Why a cached verdict is the verdict.  libpcap's bpf_filter() is a
 * deterministic function of the program, the packet bytes it loads, the
 * captured length (every load is bounds-checked against it: a load that
 * does not fit makes the program return 0) and the wire length (only
 * BPF_LEN reads it).  A program is cacheable when we can name, before
 * running it, a set of bytes that contains every byte it may load: every
 * load is BPF_ABS, or BPF_IND with X set by BPF_LDX|BPF_MSH (or a
 * constant), and nothing reads BPF_LEN.  The analysis is a walk over every
 * path of the program (BPF jumps only forward, so paths are finite),
 * tracking for the A and X registers only "unknown", "constant" and, for
 * A, "the value of field F" (X: "4 * (byte at M & 0xf)").
 *
 * Variant fields.  A field (offset, size, absolute or relative to one MSH
 * byte) whose loaded value, in every cacheable program, is used only by
 * "jeq #k" or by "and #k" (which makes another variant of the same field)
 * and is otherwise overwritten, influences a program only through the
 * answers to "value & mask == k?" for the constants k the programs
 * compare it with.  Such a field enters the key as one byte per
 * (field, mask): the index of the constant the masked value equals, NONE,
 * or ABSENT (does not fit in caplen).  Any other use (jgt, jset, ALU,
 * TAX, ST, ret A, jeq x) makes the field "bad": its bytes enter the key
 * raw wherever it may be loaded.
 *
 * Classes.  Reading every raw byte any program may load on any path would
 * put TCP sequence numbers in the key of every IPv4 packet (libpcap's
 * "host" reads byte 38 on the ARP path).  So variants whose jeq decides
 * whether raw loads follow (the ethertype, the IP protocol, typically)
 * and that have at most DISP_CONST constants are "dispatch" variants: the
 * packet's indices for them form its class, and for each class seen a
 * second walk with those jeqs decided lists the raw bytes, the other
 * variants and the highest byte reachable.  The key is: link type, the
 * class (dispatch indices), the indices of the other variants the class
 * may read, min(caplen, highest byte reachable), and the raw bytes (zero
 * where past caplen).
 *
 * The argument.  Take two packets P and Q with equal keys and run a
 * cacheable program on both in lockstep.  At every step both are at the
 * same instruction and their registers are equal, except that A may hold
 * two values of one variant field with the same index.  A jeq on a
 * variant goes the same way (same index); an "and #k" turns it into
 * another variant whose index is also in the key; nothing else may use
 * it.  Every other load is on a path consistent with the class (the
 * dispatch jeqs were decided by the same indices), so the class walk
 * listed it: its bytes are equal, and so is its bounds check, because
 * either both caplens reach the highest reachable byte or both are the
 * same (the clamp is in the key).  MSH bytes are raw, so X is equal and
 * relative loads read equal positions.  Hence both runs return the same
 * value.  Walk failures (budget, table limits) only ever make a program
 * uncacheable or a class uncached (run directly), never shrink a key.
 * tests/unit/test_bpfverdict.c checks cached against direct verdicts for
 * every packet of real traces, truncated and mutated copies of them.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <pcap/pcap.h>

#include "weir/log.h"
#include "capture/bpfverdict.h"
#include "capture/stages/bpfcache.h"

#define MAXOFF		65535		/* loads beyond: uncacheable */
#define MAXLOC		64		/* fields per link type */
#define MAXVAR		64		/* (field, mask) variants */
#define MAXCONST	250		/* constants per variant */
#define IDX_NONE	0xfe
#define IDX_ABSENT	0xff
#define MAXBUCKET	256		/* >= MAXCONST / 2, power of 2 */
#define DISP_CONST	16		/* dispatch variants: at most this */
#define MAXDISP		24
#define MAXBASE		4		/* MSH bytes per class */
#define MAXRUN		32
#define MAXRNG		256
#define KEYMAX		80		/* multiple of 8 */
#define STRIDE_MAX	((16 + KEYMAX + BPFV_MAXSLOTS / 8 + 63) & ~63)
#define CLASS_CAP	512		/* power of 2 */
#define CLASS_FULL	384
#define MEMO_CAP	8192		/* power of 2 */
#define MEMO_FULL	6144
#define BUDGET		(1U << 18)	/* instructions walked per program */
#define MAXGRP		16		/* program groups per class */
#define PREFETCH_RUN	16		/* packets per lookup round */

enum { PS_EMPTY, PS_NOPROG, PS_CACHED, PS_DIRECT };
enum { T_UNK, T_CONST, T_VAR, T_MSH };
#define F_RAW		1

struct loc {
	uint32_t	base;		/* MSH byte offset, when rel */
	uint32_t	off;
	uint8_t		rel;
	uint8_t		size;
	uint8_t		bad;		/* used other than jeq/and #k */
	int8_t		dpos;		/* a dispatch variant's position */
};

struct var {
	uint32_t	mask;
	uint8_t		loc;
	uint8_t		relevant;	/* a jeq on it guards raw loads */
	int8_t		dpos;		/* dispatch position or -1 */
	uint8_t		live;		/* its field is not bad */
	unsigned	nconst;
	unsigned	hshift;		/* 32 - log2(buckets) */
	uint32_t	cval[MAXCONST];
	int		slow;		/* buckets overflowed: linear */
	/*
	 * Buckets of 4, looked up without a branch; empty slots hold a
	 * value that is not a constant, with index NONE.
	 */
	struct {
		uint32_t k[4];
		uint32_t i[4];
	}		bk[MAXBUCKET];
};

/* A variant to evaluate, with its field copied in: one tight loop. */
struct vplan {
	const struct var *x;
	uint32_t	off, base;
	uint8_t		rel, size;
	uint8_t		same;		/* same field as the entry before */
};

struct run {
	uint32_t	base;
	uint16_t	off;
	uint16_t	len;
	uint8_t		rel;
};

/*
 * Programs of a class that read the same variants (and raw bytes or not)
 * form a group.  A miss of the whole key is filled group by group from a
 * second cache keyed by what the group reads, so one new flow costs a
 * few lookups instead of running every program: a new port pair does
 * not rerun the host expressions.
 */
struct grp {
	uint64_t	varmask;	/* value variants its programs read */
	uint8_t		hasraw;		/* they read raw bytes */
	uint16_t	start, count;	/* in the class's perm[] */
};

struct cls {
	uint64_t	h;
	uint8_t		state;		/* 0 empty, 1 cached, 2 bypass */
	uint8_t		ngrp;
	struct grp	grp[MAXGRP];
	uint8_t		nvar, nrun, nbase;
	uint16_t	rawlen;
	uint32_t	abs_need;
	uint32_t	rbase[MAXBASE], rneed[MAXBASE];
	uint8_t		dvec[MAXDISP];
	uint8_t		var[MAXVAR];	/* by field, then id */
	struct vplan	plan[MAXVAR];	/* of var[] */
	struct run	run[MAXRUN];
};

struct ltctx {
	uint16_t		 linktype;
	uint8_t			 idx;
	uint8_t			 dirty;
	struct bpf_program	*prog;		/* [nslots] */
	uint8_t			*pstate;	/* [nslots] PS_* */
	unsigned		*cached, ncached;
	unsigned		*direct, ndirect;
	unsigned		 nloc, nvar, ndisp;
	struct loc		 loc[MAXLOC];
	struct var		*var;		/* [MAXVAR] */
	uint8_t			 disp[MAXDISP];	/* variant ids */
	struct vplan		 dplan[MAXDISP];
	struct cls		*mru;		/* last class found */
	struct cls		*cls;		/* [CLASS_CAP] */
	uint16_t		*perm;		/* [CLASS_CAP][nslots] programs
						   of each class by group */
	unsigned		 ncls;
};

struct memo {
	uint32_t	stamp;
	uint32_t	av, xv;
	uint16_t	pc;
	uint8_t		at, xt;
	uint8_t		res;
};

struct rng {
	uint32_t	base, off;
	uint8_t		rel, size;
};

struct bpfv {
	unsigned		 nslots, nw;
	char			**expr;		/* [nslots], NULL: empty */
	unsigned		 nlt;
	struct ltctx		*lt[BPFV_MAXLT];
	int			 lt_full_logged;
	/* cache: nsets * 2 entries of stride bytes */
	uint8_t			*ent;
	size_t			 stride;
	uint64_t		 setmask;
	size_t			 entlen, ent2len;
	uint8_t			*ent2;		/* group cache, same layout */
	uint64_t		 setmask2;
	uint32_t		 gen;
	unsigned		 class_full;	/* classes kept per link type */
	struct bpfv_stats	 st;
	/* walk scratch */
	struct memo		*memo;
	uint32_t		 mstamp;
	unsigned		 mcount;
	struct rng		 rng[MAXRNG];
	unsigned		 nrng;
	uint8_t			*gid;		/* [nslots] class build scratch */
	/* make_key's by-products, for the group keys of a miss */
	uint8_t			 key[KEYMAX];
	uint32_t		 clamp;
	unsigned		 rawpos;
	/* batches: keys, hashes and what to do, per packet */
	uint8_t			*bkey;		/* [WEIR_BATCH_MAX][KEYMAX] */
	uint64_t		*bh;
	uint16_t		*blen;		/* 0: nothing left to do */
	struct ltctx		**blt;
	struct cls		*bcls[PREFETCH_RUN];
	uint8_t			 bdvec[PREFETCH_RUN][MAXDISP];
	uint64_t		 bval[PREFETCH_RUN][MAXVAR];
};

/* Walk state for one program. */
struct walk {
	struct bpfv		*v;
	struct ltctx		*l;
	const struct bpf_insn	*ins;
	unsigned		 len;
	unsigned		 steps;
	int			 pass;		/* 1 analyse, 2 class */
	int			 fail;
	const uint8_t		*dvec;		/* pass 2 */
	uint64_t		 seen;		/* pass 2: variants loaded */
	int			 praw;		/* pass 2: raw bytes read */
	uint32_t		 abs_need;
	unsigned		 nbase;
	uint32_t		 rbase[MAXBASE], rneed[MAXBASE];
};

/* Entry layout: h, gen, klen, key[KEYMAX], bits[nw]. */
#define E_H(e)		((uint64_t *)(void *)(e))
#define E_GEN(e)	((uint32_t *)(void *)((e) + 8))
#define E_KLEN(e)	((uint16_t *)(void *)((e) + 12))
#define E_KEY(e)	((e) + 16)
#define E_BITS(e)	((uint64_t *)(void *)((e) + 16 + KEYMAX))

static uint64_t
hashbytes(const uint8_t *k, size_t n, uint64_t seed)
{
	uint64_t h = seed ^ (n * 0x9e3779b97f4a7c15ULL), x;
	size_t i;

	for (i = 0; i + 8 <= n; i += 8) {
		memcpy(&x, k + i, 8);
		h = (h ^ x) * 0x9e3779b97f4a7c15ULL;
		h ^= h >> 29;
	}
	if (i < n) {
		x = 0;
		memcpy(&x, k + i, n - i);
		h = (h ^ x) * 0x9e3779b97f4a7c15ULL;
		h ^= h >> 29;
	}
	h *= 0xbf58476d1ce4e5b9ULL;
	return h ^ (h >> 31);
}

/* ---------------------------------------------------------------- */
/* Compilation */

/* As bpfcache.c: optimised, netmask 0, unoptimised when refused. */
int
bpfv_check(const char *expr, struct weir_err *err)
{
	struct bpf_program prog;
	char ebuf[PCAP_ERRBUF_SIZE];
	const char *msg = ebuf;

	if (bpfcache_compile(DLT_EN10MB, expr, &prog, ebuf, sizeof(ebuf)) < 0) {
		if (strncmp(msg, "can't parse filter expression: ", 31) == 0)
			msg += 31;
		return weir_seterr(err, -WEIR_ECONFIG, "%s", msg);
	}
	pcap_freecode(&prog);
	return 0;
}

static void
slot_free(struct ltctx *l, unsigned s)
{
	if (l->pstate[s] == PS_CACHED || l->pstate[s] == PS_DIRECT)
		pcap_freecode(&l->prog[s]);
	memset(&l->prog[s], 0, sizeof(l->prog[s]));
	l->pstate[s] = PS_EMPTY;
}

/* Compile slot s for l; a failure leaves PS_NOPROG (logged). */
static int
slot_compile(struct ltctx *l, unsigned s, const char *expr)
{
	struct bpf_program prog;
	char ebuf[PCAP_ERRBUF_SIZE];
	int rc;

	rc = bpfcache_compile(bpfcache_dlt(l->linktype), expr, &prog, ebuf,
	    sizeof(ebuf));
	if (rc == -ENOMEM)
		return rc;
	slot_free(l, s);
	if (rc < 0) {
		l->pstate[s] = PS_NOPROG;
		log_warn("sessions: expression '%s' does not compile for link "
		    "type %u (%s): it matches no packet of that link type",
		    expr, l->linktype, ebuf);
	} else {
		l->prog[s] = prog;
		l->pstate[s] = PS_DIRECT;	/* until analysed */
	}
	l->dirty = 1;
	return 0;
}

static void
lt_free(struct bpfv *v, struct ltctx *l)
{
	unsigned s;

	if (l == NULL)
		return;
	if (l->pstate != NULL)
		for (s = 0; s < v->nslots; s++)
			slot_free(l, s);
	free(l->prog);
	free(l->pstate);
	free(l->cached);
	free(l->direct);
	free(l->var);
	free(l->cls);
	free(l->perm);
	free(l);
}

static struct ltctx *
lt_find(struct bpfv *v, uint16_t linktype)
{
	unsigned i;

	for (i = 0; i < v->nlt; i++)
		if (v->lt[i]->linktype == linktype)
			return v->lt[i];
	return NULL;
}

static struct ltctx *
lt_new(struct bpfv *v, uint16_t linktype)
{
	struct ltctx *l;
	unsigned s;

	if (v->nlt >= BPFV_MAXLT) {
		if (!v->lt_full_logged) {
			v->lt_full_logged = 1;
			log_warn("sessions: more than %d link types: packets "
			    "of link type %u and later new ones match no "
			    "session", BPFV_MAXLT, linktype);
		}
		return NULL;
	}
	if ((l = calloc(1, sizeof(*l))) == NULL ||
	    (l->prog = calloc(v->nslots, sizeof(*l->prog))) == NULL ||
	    (l->pstate = calloc(v->nslots, 1)) == NULL ||
	    (l->cached = calloc(v->nslots, sizeof(unsigned))) == NULL ||
	    (l->direct = calloc(v->nslots, sizeof(unsigned))) == NULL ||
	    (l->var = calloc(MAXVAR, sizeof(*l->var))) == NULL ||
	    (l->cls = calloc(CLASS_CAP, sizeof(*l->cls))) == NULL ||
	    (l->perm = calloc((size_t)CLASS_CAP * v->nslots,
	    sizeof(*l->perm))) == NULL)
		goto fail;
	l->linktype = linktype;
	l->idx = (uint8_t)v->nlt;
	l->dirty = 1;
	for (s = 0; s < v->nslots; s++)
		if (v->expr[s] != NULL && slot_compile(l, s, v->expr[s]) < 0)
			goto fail;
	v->lt[v->nlt++] = l;
	return l;
fail:
	lt_free(v, l);
	return NULL;
}

/* ---------------------------------------------------------------- */
/* Fields and variants */

static int
loc_get(struct ltctx *l, int rel, uint32_t base, uint32_t off, unsigned size,
    int create)
{
	struct loc *c;
	unsigned i;

	for (i = 0; i < l->nloc; i++) {
		c = &l->loc[i];
		if (c->rel == rel && c->off == off && c->size == size &&
		    (!rel || c->base == base))
			return (int)i;
	}
	if (!create || l->nloc >= MAXLOC)
		return -1;
	c = &l->loc[l->nloc];
	memset(c, 0, sizeof(*c));
	c->rel = (uint8_t)rel;
	c->base = rel ? base : 0;
	c->off = off;
	c->size = (uint8_t)size;
	c->dpos = -1;
	return (int)l->nloc++;
}

static int
var_get(struct ltctx *l, unsigned li, uint32_t mask, int create)
{
	struct var *x;
	unsigned i;

	for (i = 0; i < l->nvar; i++)
		if (l->var[i].loc == li && l->var[i].mask == mask)
			return (int)i;
	if (!create || l->nvar >= MAXVAR)
		return -1;
	x = &l->var[l->nvar];
	x->mask = mask;
	x->loc = (uint8_t)li;
	x->relevant = 0;
	x->dpos = -1;
	x->live = 0;
	x->nconst = 0;
	return (int)l->nvar++;
}

static void
var_addconst(struct ltctx *l, unsigned vi, uint32_t k)
{
	struct var *x = &l->var[vi];
	unsigned i;

	for (i = 0; i < x->nconst; i++)
		if (x->cval[i] == k)
			return;
	if (x->nconst >= MAXCONST) {
		l->loc[x->loc].bad = 1;
		return;
	}
	x->cval[x->nconst++] = k;
}

static inline unsigned
chash(const struct var *x, uint32_t k)
{
	return (unsigned)((uint64_t)(uint32_t)(k * 0x9e3779b1U) >> x->hshift);
}

/* Index of k among the variant's constants, or IDX_NONE. */
static inline uint8_t
var_index(const struct var *x, uint32_t k)
{
	unsigned i, h;
	uint32_t r = IDX_NONE, m;

	if (x->slow) {
		for (i = 0; i < x->nconst; i++)
			if (x->cval[i] == k)
				return (uint8_t)i;
		return IDX_NONE;
	}
	h = chash(x, k);
	/* masks rather than ?: so that the compiler emits no branch */
	for (i = 0; i < 4; i++) {
		m = 0U - (uint32_t)(x->bk[h].k[i] == k);
		r = (r & ~m) | (x->bk[h].i[i] & m);
	}
	return (uint8_t)r;
}

static int
var_try(struct var *x, unsigned nb, uint32_t empty)
{
	unsigned i, h, j;

	for (x->hshift = 32; (1U << (32 - x->hshift)) < nb; x->hshift--)
		;
	for (h = 0; h < nb; h++)
		for (j = 0; j < 4; j++) {
			x->bk[h].k[j] = empty;
			x->bk[h].i[j] = IDX_NONE;
		}
	for (i = 0; i < x->nconst; i++) {
		h = chash(x, x->cval[i]);
		for (j = 0; j < 4 && x->bk[h].i[j] != IDX_NONE; j++)
			;
		if (j == 4)
			return -1;
		x->bk[h].k[j] = x->cval[i];
		x->bk[h].i[j] = i;
	}
	return 0;
}

static void
var_buildhash(struct var *x)
{
	uint32_t empty = 0xffffffffU;
	unsigned i, nb;

	/* a filler no constant equals */
	for (i = 0; i < x->nconst; i++)
		if (x->cval[i] == empty) {
			empty--;
			i = (unsigned)-1;
		}
	for (nb = 1; nb * 2 < x->nconst; nb *= 2)
		;
	x->slow = 0;
	for (; nb <= MAXBUCKET; nb *= 2)
		if (var_try(x, nb, empty) == 0)
			return;
	x->slow = 1;
}

static void
plan_set(const struct ltctx *l, struct vplan *pl, unsigned vi,
    const struct vplan *prev)
{
	const struct loc *c = &l->loc[l->var[vi].loc];

	pl->x = &l->var[vi];
	pl->off = c->off;
	pl->base = c->base;
	pl->rel = c->rel;
	pl->size = c->size;
	pl->same = prev != NULL && prev->rel == pl->rel &&
	    prev->off == pl->off && prev->size == pl->size &&
	    prev->base == pl->base;
}

/* out[i] = the index of plan entry i's variant in packet d. */
static inline void
plan_eval(const struct vplan *pl, unsigned n, const uint8_t *d,
    uint32_t caplen, uint8_t *out)
{
	uint64_t o;
	uint32_t val = 0;
	unsigned i;
	int absent = 1;

	for (i = 0; i < n; i++, pl++) {
		if (!pl->same) {
			o = pl->off;
			absent = 1;
			if (pl->rel) {
				if (pl->base >= caplen)
					goto put;
				o += (uint64_t)(d[pl->base] & 0xf) << 2;
			}
			if (o + pl->size > caplen)
				goto put;
			absent = 0;
			if (pl->size == 1)
				val = d[o];
			else if (pl->size == 2)
				val = (uint32_t)d[o] << 8 | d[o + 1];
			else
				val = (uint32_t)d[o] << 24 |
				    (uint32_t)d[o + 1] << 16 |
				    (uint32_t)d[o + 2] << 8 | d[o + 3];
		}
put:
		out[i] = absent ? IDX_ABSENT : var_index(pl->x,
		    val & pl->x->mask);
	}
}

#define VAL_ABSENT	(1ULL << 32)

/*
 * plan_eval in two steps, so that a run of packets can have the buckets
 * it will read fetched while the next packet's fields are loaded.
 */
static inline void
plan_load(const struct vplan *pl, unsigned n, const uint8_t *d,
    uint32_t caplen, uint64_t *vals)
{
	uint64_t o, val = VAL_ABSENT;
	unsigned i;

	for (i = 0; i < n; i++, pl++) {
		if (!pl->same) {
			o = pl->off;
			val = VAL_ABSENT;
			if (pl->rel) {
				if (pl->base >= caplen)
					goto put;
				o += (uint64_t)(d[pl->base] & 0xf) << 2;
			}
			if (o + pl->size > caplen)
				goto put;
			if (pl->size == 1)
				val = d[o];
			else if (pl->size == 2)
				val = (uint32_t)d[o] << 8 | d[o + 1];
			else
				val = (uint32_t)d[o] << 24 |
				    (uint32_t)d[o + 1] << 16 |
				    (uint32_t)d[o + 2] << 8 | d[o + 3];
		}
put:
		vals[i] = val;
		if (val != VAL_ABSENT && !pl->x->slow)
			__builtin_prefetch(&pl->x->bk[chash(pl->x,
			    (uint32_t)val & pl->x->mask)]);
	}
}

static inline void
plan_finish(const struct vplan *pl, unsigned n, const uint64_t *vals,
    uint8_t *out)
{
	unsigned i;

	for (i = 0; i < n; i++, pl++)
		out[i] = vals[i] == VAL_ABSENT ? IDX_ABSENT :
		    var_index(pl->x, (uint32_t)vals[i] & pl->x->mask);
}

/* ---------------------------------------------------------------- */
/* The walk */

static void
memo_reset(struct bpfv *v)
{
	if (++v->mstamp == 0) {
		memset(v->memo, 0, MEMO_CAP * sizeof(*v->memo));
		v->mstamp = 1;
	}
	v->mcount = 0;
}

/* Returns the memo entry for the state (found: *hit = 1), or NULL. */
static struct memo *
memo_get(struct bpfv *v, unsigned pc, int at, uint32_t av, int xt,
    uint32_t xv, int *hit)
{
	struct memo *m;
	unsigned h;

	h = (unsigned)hashbytes((const uint8_t *)(uint32_t[]){ pc,
	    (uint32_t)at << 8 | (uint32_t)xt, av, xv }, 16, 7) &
	    (MEMO_CAP - 1);
	for (;; h = (h + 1) & (MEMO_CAP - 1)) {
		m = &v->memo[h];
		if (m->stamp != v->mstamp) {
			*hit = 0;
			if (v->mcount >= MEMO_FULL)
				return NULL;
			v->mcount++;
			m->stamp = v->mstamp;
			m->pc = (uint16_t)pc;
			m->at = (uint8_t)at;
			m->xt = (uint8_t)xt;
			m->av = av;
			m->xv = xv;
			m->res = 0;
			return m;
		}
		if (m->pc == pc && m->at == at && m->xt == xt && m->av == av &&
		    m->xv == xv) {
			*hit = 1;
			return m;
		}
	}
}

static void
need_rel(struct walk *w, uint32_t base, uint32_t end)
{
	unsigned i;

	for (i = 0; i < w->nbase; i++)
		if (w->rbase[i] == base) {
			if (end > w->rneed[i])
				w->rneed[i] = end;
			return;
		}
	if (w->nbase >= MAXBASE) {
		w->fail = 1;
		return;
	}
	w->rbase[w->nbase] = base;
	w->rneed[w->nbase++] = end;
}

static void
note_raw(struct walk *w, int rel, uint32_t base, uint32_t off, unsigned size)
{
	struct bpfv *v = w->v;
	struct rng *r;
	unsigned i;

	if (w->pass != 2)
		return;
	w->praw = 1;
	if (rel)
		need_rel(w, base, off + size);
	else if (off + size > w->abs_need)
		w->abs_need = off + size;
	/* Every program reads the same few raw bytes: keep each once. */
	for (i = 0; i < v->nrng; i++) {
		r = &v->rng[i];
		if (r->rel == rel && (!rel || r->base == base) &&
		    r->off <= off && off + size <= r->off + r->size)
			return;
	}
	if (v->nrng >= MAXRNG) {
		w->fail = 1;
		return;
	}
	r = &v->rng[v->nrng++];
	r->rel = (uint8_t)rel;
	r->base = rel ? base : 0;
	r->off = off;
	r->size = (uint8_t)size;
}

/*
 * A load of (rel, base, off, size) into A.  Returns 0 and the new A, or 1
 * when the path ends here (pass 2: a dispatch field known to be past
 * caplen), or -1 (fail set).
 */
static int
do_load(struct walk *w, int rel, uint32_t base, uint32_t off, unsigned size,
    int *at, uint32_t *av, int *flags)
{
	struct ltctx *l = w->l;
	struct loc *c;
	int li, vi;

	if ((uint64_t)off + size > MAXOFF || (rel && base > MAXOFF)) {
		w->fail = 1;
		return -1;
	}
	li = loc_get(l, rel, base, off, size, w->pass == 1);
	if (li < 0 || l->loc[li].bad) {
		note_raw(w, rel, base, off, size);
		*flags |= F_RAW;
		*at = T_UNK;
		return w->fail ? -1 : 0;
	}
	c = &l->loc[li];
	vi = var_get(l, (unsigned)li, 0xffffffffU, w->pass == 1);
	if (vi < 0) {
		if (w->pass == 1) {
			c->bad = 1;
			*flags |= F_RAW;
			*at = T_UNK;
			return 0;
		}
		w->fail = 1;		/* cannot happen: be safe */
		return -1;
	}
	if (w->pass == 2) {
		if (rel)
			need_rel(w, base, off + size);
		else if (off + size > w->abs_need)
			w->abs_need = off + size;
		w->seen |= 1ULL << vi;
		if (c->dpos >= 0 && w->dvec[c->dpos] == IDX_ABSENT)
			return 1;	/* bpf_filter returns 0 here */
	}
	*at = T_VAR;
	*av = (uint32_t)vi;
	return w->fail ? -1 : 0;
}

/* A use of A other than jeq #k / and #k. */
static void
bad_use(struct walk *w, int at, uint32_t av)
{
	if (at != T_VAR)
		return;
	if (w->pass == 1)
		w->l->loc[w->l->var[av].loc].bad = 1;
	else
		w->fail = 1;		/* pass 1 marked it bad: unreachable */
}

static int
cond(uint16_t code, uint32_t a, uint32_t b)
{
	switch (BPF_OP(code)) {
	case BPF_JEQ:
		return a == b;
	case BPF_JGT:
		return a > b;
	case BPF_JGE:
		return a >= b;
	default:			/* BPF_JSET */
		return (a & b) != 0;
	}
}

static int walk(struct walk *, unsigned, int, uint32_t, int, uint32_t);

/*
 * Walk every path from pc with the given register states; returns the
 * F_RAW flag of what follows, or -1 (w->fail) when the program cannot be
 * cached (pass 1) or the class cannot be described (pass 2).
 */
static int
walk(struct walk *w, unsigned pc, int at, uint32_t av, int xt, uint32_t xv)
{
	const struct bpf_insn *i;
	struct memo *m;
	struct ltctx *l = w->l;
	struct var *x;
	uint32_t k, cmp;
	int flags = 0, hit, ft, ff, rc, taken, vi, j;

	if ((m = memo_get(w->v, pc, at, av, xt, xv, &hit)) != NULL && hit)
		return m->res;
	for (;;) {
		if (pc >= w->len || ++w->steps > BUDGET) {
			w->fail = 1;
			return -1;
		}
		i = &w->ins[pc];
		k = i->k;
		switch (BPF_CLASS(i->code)) {
		case BPF_RET:
			if (BPF_RVAL(i->code) == BPF_A)
				bad_use(w, at, av);
			goto done;
		case BPF_LD:
			switch (BPF_MODE(i->code)) {
			case BPF_ABS:
			case BPF_IND: {
				unsigned size = BPF_SIZE(i->code) == BPF_W ?
				    4 : BPF_SIZE(i->code) == BPF_H ? 2 : 1;
				int rel = 0;
				uint64_t off = k;

				if (BPF_SIZE(i->code) != BPF_W &&
				    BPF_SIZE(i->code) != BPF_H &&
				    BPF_SIZE(i->code) != BPF_B) {
					w->fail = 1;
					return -1;
				}
				if (BPF_MODE(i->code) == BPF_IND) {
					if (xt == T_CONST)
						off += xv;
					else if (xt == T_MSH)
						rel = 1;
					else {
						w->fail = 1;
						return -1;
					}
				}
				if (off > MAXOFF) {
					w->fail = 1;
					return -1;
				}
				rc = do_load(w, rel, xv, (uint32_t)off, size,
				    &at, &av, &flags);
				if (rc < 0)
					return -1;
				if (rc > 0)
					goto done;
				break;
			}
			case BPF_IMM:
				at = T_CONST;
				av = k;
				break;
			case BPF_MEM:
				at = T_UNK;
				break;
			default:	/* BPF_LEN and anything unknown */
				w->fail = 1;
				return -1;
			}
			pc++;
			break;
		case BPF_LDX:
			switch (BPF_MODE(i->code)) {
			case BPF_IMM:
				xt = T_CONST;
				xv = k;
				break;
			case BPF_MEM:
				xt = T_UNK;
				break;
			case BPF_MSH:
				if (BPF_SIZE(i->code) != BPF_B || k > MAXOFF) {
					w->fail = 1;
					return -1;
				}
				note_raw(w, 0, 0, k, 1);
				flags |= F_RAW;
				xt = T_MSH;
				xv = k;
				break;
			default:
				w->fail = 1;
				return -1;
			}
			if (w->fail)
				return -1;
			pc++;
			break;
		case BPF_ST:
			bad_use(w, at, av);
			pc++;
			break;
		case BPF_STX:
			pc++;
			break;
		case BPF_ALU:
			if (at == T_VAR && BPF_OP(i->code) == BPF_AND &&
			    BPF_SRC(i->code) == BPF_K) {
				x = &l->var[av];
				vi = var_get(l, x->loc, x->mask & k,
				    w->pass == 1);
				if (vi >= 0) {
					av = (uint32_t)vi;
					w->seen |= 1ULL << vi;
				} else if (w->pass == 1) {
					l->loc[x->loc].bad = 1;
					at = T_UNK;
				} else {
					w->fail = 1;
					return -1;
				}
			} else {
				bad_use(w, at, av);
				at = T_UNK;
			}
			pc++;
			break;
		case BPF_JMP:
			if (BPF_OP(i->code) == BPF_JA) {
				pc += 1 + k;
				break;
			}
			taken = -1;
			if (at == T_VAR) {
				if (BPF_OP(i->code) != BPF_JEQ ||
				    BPF_SRC(i->code) != BPF_K)
					bad_use(w, at, av);
				else if (w->pass == 1)
					var_addconst(l, av, k);
				else if ((x = &l->var[av])->dpos >= 0) {
					for (j = 0; j < (int)x->nconst; j++)
						if (x->cval[j] == k)
							break;
					if (j == (int)x->nconst) {
						w->fail = 1;
						return -1;
					}
					taken = w->dvec[x->dpos] == j;
				}
			} else if (at == T_CONST && (BPF_SRC(i->code) ==
			    BPF_K || xt == T_CONST)) {
				cmp = BPF_SRC(i->code) == BPF_K ? k : xv;
				taken = cond(i->code, av, cmp);
			}
			if (w->fail)
				return -1;
			if (taken == 1) {
				pc += 1 + i->jt;
				break;
			}
			if (taken == 0) {
				pc += 1 + i->jf;
				break;
			}
			ft = walk(w, pc + 1 + i->jt, at, av, xt, xv);
			if (ft < 0)
				return -1;
			ff = walk(w, pc + 1 + i->jf, at, av, xt, xv);
			if (ff < 0)
				return -1;
			if (at == T_VAR && ((ft | ff) & F_RAW))
				l->var[av].relevant = 1;
			flags |= ft | ff;
			goto done;
		case BPF_MISC:
			if (BPF_MISCOP(i->code) == BPF_TAX) {
				bad_use(w, at, av);
				if (at == T_CONST) {
					xt = T_CONST;
					xv = av;
				} else
					xt = T_UNK;
			} else {	/* BPF_TXA */
				if (xt == T_CONST) {
					at = T_CONST;
					av = xv;
				} else
					at = T_UNK;
			}
			pc++;
			break;
		default:
			w->fail = 1;
			return -1;
		}
		if (w->fail)
			return -1;
	}
done:
	if (w->fail)
		return -1;
	if (m != NULL)
		m->res = (uint8_t)flags;
	return flags;
}

static int
walk_prog(struct walk *w, const struct bpf_program *p)
{
	w->ins = p->bf_insns;
	w->len = p->bf_len;
	w->steps = 0;
	w->fail = 0;
	memo_reset(w->v);
	if (w->len == 0 || w->len > 0xffff)
		return -1;
	return walk(w, 0, T_UNK, 0, T_UNK, 0) < 0 ? -1 : 0;
}

/*
 * Did the walk just made make a field of 4 bytes or more (an address)
 * "bad", that was not before?  Such a field enters the key raw, so the
 * key of every packet holds its addresses and the cache stops working
 * for every program, not only the one to blame (`net 0.0.0.0/8`
 * compiles to a jset on the address; the 251st constant compared with
 * one field overflows MAXCONST).  That program is better run directly
 * on every packet: the others stay cached.
 */
static int
poisons(const struct ltctx *l, const uint8_t *badsave, unsigned nloc)
{
	unsigned i;

	for (i = 0; i < l->nloc; i++)
		if (l->loc[i].bad && (i >= nloc || !badsave[i]) &&
		    l->loc[i].size >= 4)
			return 1;
	return 0;
}

/* Pass 1 over every program of l: cacheability, fields, dispatch. */
static void
analyse(struct bpfv *v, struct ltctx *l)
{
	struct walk w;
	struct var *x;
	uint8_t badsave[MAXLOC];
	unsigned s, i, nloc;

	l->nloc = l->nvar = l->ndisp = 0;
	l->ncached = l->ndirect = 0;
	memset(&w, 0, sizeof(w));
	w.v = v;
	w.l = l;
	w.pass = 1;
	for (s = 0; s < v->nslots; s++) {
		if (l->pstate[s] != PS_CACHED && l->pstate[s] != PS_DIRECT)
			continue;
		nloc = l->nloc;
		for (i = 0; i < nloc; i++)
			badsave[i] = l->loc[i].bad;
		if (v->ent != NULL && walk_prog(&w, &l->prog[s]) == 0 &&
		    !poisons(l, badsave, nloc)) {
			l->pstate[s] = PS_CACHED;
			l->cached[l->ncached++] = s;
		} else {
			/*
			 * Whatever this walk marked bad is undone: the
			 * program runs directly and the cached ones never
			 * read the field in a bad way.  (The fields and
			 * constants it added only lengthen keys.)
			 */
			for (i = 0; i < l->nloc; i++)
				l->loc[i].bad = i < nloc ? badsave[i] : 0;
			l->pstate[s] = PS_DIRECT;
			l->direct[l->ndirect++] = s;
		}
	}
	for (i = 0; i < l->nvar; i++) {
		x = &l->var[i];
		x->live = !l->loc[x->loc].bad;
		x->dpos = -1;
		if (x->live && x->relevant && x->nconst <= DISP_CONST &&
		    l->ndisp < MAXDISP) {
			x->dpos = (int8_t)l->ndisp;
			l->disp[l->ndisp++] = (uint8_t)i;
			l->loc[x->loc].dpos = x->dpos;
		}
		var_buildhash(x);
	}
	for (i = 0; i < l->ndisp; i++)
		plan_set(l, &l->dplan[i], l->disp[i], NULL);
	l->mru = NULL;
	memset(l->cls, 0, CLASS_CAP * sizeof(*l->cls));
	l->ncls = 0;
	l->dirty = 0;
	v->st.analyses++;
	if (++v->gen == 0)
		v->gen = 1;
}

static int
rng_cmp(const void *a, const void *b)
{
	const struct rng *x = a, *y = b;

	if (x->rel != y->rel)
		return x->rel < y->rel ? -1 : 1;
	if (x->base != y->base)
		return x->base < y->base ? -1 : 1;
	if (x->off != y->off)
		return x->off < y->off ? -1 : 1;
	return 0;
}

/* Pass 2: describe the class of dispatch vector dvec into c. */
static void
class_build(struct bpfv *v, struct ltctx *l, const uint8_t *dvec,
    struct cls *c)
{
	struct walk w;
	struct rng *r;
	struct run *u;
	struct grp *g;
	uint16_t *perm = l->perm + (size_t)(c - l->cls) * v->nslots;
	uint64_t seen = 0, vm, vals = 0;
	unsigned s, i, nv = 0;
	uint32_t end;

	memset(&w, 0, sizeof(w));
	w.v = v;
	w.l = l;
	w.pass = 2;
	w.dvec = dvec;
	v->nrng = 0;
	v->st.class_builds++;
	memcpy(c->dvec, dvec, l->ndisp);
	c->state = 2;
	c->nvar = c->nrun = c->nbase = 0;
	c->rawlen = 0;
	c->ngrp = 0;
	/*
	 * Without constants an index says nothing the clamp does not say
	 * already; dispatch indices are in every key.
	 */
	for (i = 0; i < l->nvar; i++)
		if (l->var[i].dpos < 0 && l->var[i].nconst > 0)
			vals |= 1ULL << i;
	for (s = 0; s < l->ncached; s++) {
		w.seen = 0;
		w.praw = 0;
		if (walk_prog(&w, &l->prog[l->cached[s]]) < 0)
			return;
		/* need and ranges accumulate over programs */
		seen |= w.seen;
		vm = w.seen & vals;
		for (i = 0; i < c->ngrp; i++)
			if (c->grp[i].varmask == vm &&
			    c->grp[i].hasraw == w.praw)
				break;
		if (i == c->ngrp) {
			if (c->ngrp < MAXGRP) {
				g = &c->grp[c->ngrp++];
				g->varmask = vm;
				g->hasraw = (uint8_t)w.praw;
				g->count = 0;
			} else {
				/* the last group reads the union */
				i = MAXGRP - 1;
				c->grp[i].varmask |= vm;
				c->grp[i].hasraw |= (uint8_t)w.praw;
			}
		}
		v->gid[s] = (uint8_t)i;
		c->grp[i].count++;
	}
	for (i = 0, s = 0; i < c->ngrp; i++) {
		c->grp[i].start = (uint16_t)s;
		s += c->grp[i].count;
		c->grp[i].count = 0;
	}
	for (s = 0; s < l->ncached; s++) {
		g = &c->grp[v->gid[s]];
		perm[g->start + g->count++] = (uint16_t)l->cached[s];
	}
	/* by field, so that one load serves every mask of it */
	for (s = 0; s < l->nloc; s++)
		for (i = 0; i < l->nvar; i++)
			if ((seen >> i & 1) && (vals >> i & 1) &&
			    l->var[i].loc == s) {
				plan_set(l, &c->plan[nv], i, nv > 0 ?
				    &c->plan[nv - 1] : NULL);
				c->var[nv++] = (uint8_t)i;
			}
	c->nvar = (uint8_t)nv;
	/* Merge ranges of one base into runs. */
	qsort(v->rng, v->nrng, sizeof(v->rng[0]), rng_cmp);
	for (i = 0; i < v->nrng; i++) {
		r = &v->rng[i];
		end = r->off + r->size;
		u = c->nrun > 0 ? &c->run[c->nrun - 1] : NULL;
		if (u != NULL && u->rel == r->rel && u->base == r->base &&
		    r->off <= (uint32_t)u->off + u->len) {
			if (end > (uint32_t)u->off + u->len) {
				c->rawlen += (uint16_t)(end - u->off - u->len);
				u->len = (uint16_t)(end - u->off);
			}
			continue;
		}
		if (c->nrun >= MAXRUN)
			return;
		u = &c->run[c->nrun++];
		u->rel = r->rel;
		u->base = r->base;
		u->off = (uint16_t)r->off;
		u->len = (uint16_t)r->size;
		c->rawlen += r->size;
	}
	/* room for the group byte of the group keys */
	if (1 + l->ndisp + nv + 4 + c->rawlen + 1 > KEYMAX)
		return;
	c->abs_need = w.abs_need;
	c->nbase = (uint8_t)w.nbase;
	memcpy(c->rbase, w.rbase, sizeof(c->rbase));
	memcpy(c->rneed, w.rneed, sizeof(c->rneed));
	c->state = 1;
}

static struct cls *
class_get(struct bpfv *v, struct ltctx *l, const uint8_t *dvec)
{
	struct cls *c;
	uint64_t h = hashbytes(dvec, l->ndisp, 11);
	unsigned i;

	for (i = (unsigned)h & (CLASS_CAP - 1);;
	    i = (i + 1) & (CLASS_CAP - 1)) {
		c = &l->cls[i];
		if (c->state == 0)
			break;
		if (c->h == h && memcmp(c->dvec, dvec, l->ndisp) == 0)
			return c;
	}
	if (l->ncls >= v->class_full) {
		/* Keys hold the dispatch vector itself: the cache stays valid. */
		memset(l->cls, 0, CLASS_CAP * sizeof(*l->cls));
		l->ncls = 0;
		l->mru = NULL;
		v->st.class_flushes++;
		for (i = (unsigned)h & (CLASS_CAP - 1); l->cls[i].state != 0;
		    i = (i + 1) & (CLASS_CAP - 1))
			;
		c = &l->cls[i];
	}
	l->ncls++;
	class_build(v, l, dvec, c);
	c->h = h;
	return c;
}

/* ---------------------------------------------------------------- */
/* Evaluation */

static inline void
run_list(const struct ltctx *l, const unsigned *list, unsigned n,
    const struct weir_pkt *p, uint64_t *bits)
{
	unsigned i, s;

	for (i = 0; i < n; i++) {
		s = list[i];
		if (bpf_filter(l->prog[s].bf_insns, p->data, p->wirelen,
		    p->caplen) != 0)
			bits[s >> 6] |= 1ULL << (s & 63);
	}
}

/* Build the key of p in v->key; returns its length. */
static unsigned
make_key(struct bpfv *v, const struct ltctx *l, const struct cls *c,
    const struct weir_pkt *p, uint8_t *k, const uint64_t *vals)
{
	const uint8_t *d = p->data;
	uint32_t caplen = p->caplen, need = c->abs_need, x, o, e, clamp;
	unsigned n = 0, i, j;

	k[n++] = l->idx;
	memcpy(k + n, c->dvec, l->ndisp);
	n += l->ndisp;
	if (vals != NULL)
		plan_finish(c->plan, c->nvar, vals, k + n);
	else
		plan_eval(c->plan, c->nvar, d, caplen, k + n);
	n += c->nvar;
	for (i = 0; i < c->nbase; i++) {
		x = c->rbase[i] < caplen ? (uint32_t)(d[c->rbase[i]] & 0xf) << 2 :
		    0;
		if (x + c->rneed[i] > need)
			need = x + c->rneed[i];
	}
	clamp = caplen < need ? caplen : need;
	memcpy(k + n, &clamp, 4);
	n += 4;
	v->clamp = clamp;
	v->rawpos = n;
	for (i = 0; i < c->nrun; i++) {
		o = c->run[i].off;
		if (c->run[i].rel)
			o += c->run[i].base < caplen ?
			    (uint32_t)(d[c->run[i].base] & 0xf) << 2 : 0;
		e = o + c->run[i].len;
		if (e <= caplen) {
			memcpy(k + n, d + o, c->run[i].len);
			n += c->run[i].len;
		} else
			for (j = o; j < e; j++)
				k[n++] = j < caplen ? d[j] : 0;
	}
	return n;
}

/* Keys are zero-padded to a multiple of 8 bytes in buffers and entries. */
static inline int
keyeq(const uint8_t *a, const uint8_t *b, unsigned klen)
{
	uint64_t x, y;
	unsigned i;

	for (i = 0; i < klen; i += 8) {
		memcpy(&x, a + i, 8);
		memcpy(&y, b + i, 8);
		if (x != y)
			return 0;
	}
	return 1;
}

static inline unsigned
pad8(uint8_t *k, unsigned n)
{
	while (n & 7)
		k[n++] = 0;
	return n;
}

/*
 * Look key up in a 2-way set (most recent way first): the entry, with
 * *hit; or, on a miss, way 0 emptied for it (the old way 0 moves to 1).
 */
static uint8_t *
lookup(struct bpfv *v, uint8_t *ent, uint64_t setmask, const uint8_t *key,
    unsigned klen, uint64_t h, int *hit)
{
	uint8_t *e = ent + (h & setmask) * 2 * v->stride, *e1 = e + v->stride;
	uint8_t tmp[STRIDE_MAX];

	*hit = 1;
	if (*E_H(e) == h && *E_GEN(e) == v->gen && *E_KLEN(e) == klen &&
	    keyeq(E_KEY(e), key, klen))
		return e;
	if (*E_H(e1) == h && *E_GEN(e1) == v->gen && *E_KLEN(e1) == klen &&
	    keyeq(E_KEY(e1), key, klen)) {
		memcpy(tmp, e, v->stride);
		memcpy(e, e1, v->stride);
		memcpy(e1, tmp, v->stride);
		return e;
	}
	*hit = 0;
	memcpy(e1, e, v->stride);
	*E_H(e) = h;
	*E_GEN(e) = v->gen;
	*E_KLEN(e) = (uint16_t)klen;
	memcpy(E_KEY(e), key, (klen + 7) & ~7U);
	memset(E_BITS(e), 0, v->nw * sizeof(uint64_t));
	return e;
}

/*
 * The whole key of p missed: fill out (an entry's bits) group by group.
 * The class is found again from the key's dispatch bytes because a later
 * packet of the batch may have emptied the class table since.
 */
static void
fill_miss(struct bpfv *v, struct ltctx *l, const struct weir_pkt *p,
    const uint8_t *dvec, uint64_t *out)
{
	struct cls *c = class_get(v, l, dvec);
	const struct grp *g;
	const uint16_t *perm = l->perm + (size_t)(c - l->cls) * v->nslots;
	uint8_t k2[KEYMAX + 8], *e;
	uint64_t h;
	unsigned gi, i, n, klen;
	int hit;

	if (c->state != 1) {
		run_list(l, l->cached, l->ncached, p, out);
		return;
	}
	klen = make_key(v, l, c, p, v->key, NULL);
	for (gi = 0; gi < c->ngrp; gi++) {
		g = &c->grp[gi];
		n = 0;
		k2[n++] = l->idx;
		memcpy(k2 + n, c->dvec, l->ndisp);
		n += l->ndisp;
		k2[n++] = (uint8_t)gi;
		for (i = 0; i < c->nvar; i++)
			if (g->varmask >> c->var[i] & 1)
				k2[n++] = v->key[1 + l->ndisp + i];
		memcpy(k2 + n, &v->clamp, 4);
		n += 4;
		if (g->hasraw) {
			memcpy(k2 + n, v->key + v->rawpos, klen - v->rawpos);
			n += klen - v->rawpos;
		}
		h = hashbytes(k2, n, 0x2545f491);
		(void)pad8(k2, n);
		e = lookup(v, v->ent2, v->setmask2, k2, n, h, &hit);
		if (hit)
			v->st.group_hits++;
		else {
			v->st.group_misses++;
			for (i = 0; i < g->count; i++) {
				unsigned s = perm[g->start + i];

				if (bpf_filter(l->prog[s].bf_insns, p->data,
				    p->wirelen, p->caplen) != 0)
					E_BITS(e)[s >> 6] |= 1ULL << (s & 63);
			}
		}
		for (i = 0; i < v->nw; i++)
			out[i] |= E_BITS(e)[i];
	}
}

void
bpfv_eval_batch(struct bpfv *v, struct weir_pkt *const *pk, unsigned n,
    uint64_t *bits)
{
	const struct weir_pkt *p;
	struct ltctx *l;
	struct cls *c;
	uint8_t *dvec, *e, *key;
	uint64_t *out, flushes;
	unsigned i, j, nw = v->nw;
	int hit;

	/*
	 * Enough packets in flight to hide the cache's latency, few enough
	 * that their prefetched lines are still in L1 when looked up.
	 */
	while (n > PREFETCH_RUN) {
		bpfv_eval_batch(v, pk, PREFETCH_RUN, bits);
		pk += PREFETCH_RUN;
		bits += (size_t)PREFETCH_RUN * nw;
		n -= PREFETCH_RUN;
	}
	memset(bits, 0, (size_t)n * nw * sizeof(*bits));
	/* 1: classes and fields; prefetch the constants' buckets */
	flushes = v->st.class_flushes;
	for (i = 0; i < n; i++) {
		p = pk[i];
		out = bits + (size_t)i * nw;
		v->blen[i] = 0;
		if ((l = lt_find(v, p->linktype)) == NULL &&
		    (l = lt_new(v, p->linktype)) == NULL) {
			v->st.no_linktype++;
			continue;
		}
		if (l->dirty)
			analyse(v, l);
		v->blt[i] = l;
		if (l->ndirect > 0) {
			v->st.uncached_runs++;
			run_list(l, l->direct, l->ndirect, p, out);
		}
		if (l->ncached == 0)
			continue;
		dvec = v->bdvec[i];
		plan_eval(l->dplan, l->ndisp, p->data, p->caplen, dvec);
		if ((c = l->mru) != NULL)
			for (j = 0; j < l->ndisp; j++)
				if (c->dvec[j] != dvec[j]) {
					c = NULL;
					break;
				}
		if (c == NULL)
			l->mru = c = class_get(v, l, dvec);
		if (c->state != 1) {
			v->st.bypass++;
			run_list(l, l->cached, l->ncached, p, out);
			continue;
		}
		v->blen[i] = 1;
		v->bcls[i] = c;
		plan_load(c->plan, c->nvar, p->data, p->caplen, v->bval[i]);
	}
	/* 2: keys and hashes; prefetch the cache sets */
	for (i = 0; i < n; i++) {
		if (v->blen[i] == 0)
			continue;
		p = pk[i];
		l = v->blt[i];
		c = v->bcls[i];
		if (v->st.class_flushes != flushes) {
			/* the class table was emptied since: find it again */
			c = class_get(v, l, v->bdvec[i]);
			plan_load(c->plan, c->nvar, p->data, p->caplen,
			    v->bval[i]);
		}
		key = v->bkey + (size_t)i * KEYMAX;
		v->blen[i] = (uint16_t)make_key(v, l, c, p, key, v->bval[i]);
		v->bh[i] = hashbytes(key, v->blen[i], 0x5bd1e995);
		(void)pad8(key, v->blen[i]);
		e = v->ent + (v->bh[i] & v->setmask) * 2 * v->stride;
		__builtin_prefetch(e);
		__builtin_prefetch(e + 64);
		__builtin_prefetch(e + v->stride);
	}
	/* 3: look up, fill misses */
	for (i = 0; i < n; i++) {
		if (v->blen[i] == 0)
			continue;
		l = v->blt[i];
		out = bits + (size_t)i * nw;
		key = v->bkey + (size_t)i * KEYMAX;
		e = lookup(v, v->ent, v->setmask, key, v->blen[i], v->bh[i],
		    &hit);
		if (hit)
			v->st.hits++;
		else {
			v->st.misses++;
			fill_miss(v, l, pk[i], key + 1, E_BITS(e));
		}
		for (j = 0; j < nw; j++)
			out[j] |= E_BITS(e)[j];
	}
}

void
bpfv_eval(struct bpfv *v, const struct weir_pkt *p, uint64_t *bits)
{
	struct weir_pkt *one = (struct weir_pkt *)(uintptr_t)p;

	bpfv_eval_batch(v, &one, 1, bits);
}

/* ---------------------------------------------------------------- */
/* Set management */

/* Zeroed, and in huge pages where the kernel allows: fewer TLB misses. */
static uint8_t *
table_alloc(size_t len)
{
	void *p;

	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE |
	    MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
#ifdef MADV_HUGEPAGE
	(void)madvise(p, len, MADV_HUGEPAGE);
#endif
	return p;
}

int
bpfv_create(struct bpfv **vp, unsigned nslots, unsigned entries,
    struct weir_err *err)
{
	struct bpfv *v;
	uint64_t sets = 1;

	*vp = NULL;
	if (nslots == 0 || nslots > BPFV_MAXSLOTS)
		return weir_seterr(err, -EINVAL, "sessions: 1 to %d "
		    "expressions", BPFV_MAXSLOTS);
	if ((v = calloc(1, sizeof(*v))) == NULL)
		goto nomem;
	v->nslots = nslots;
	v->nw = (nslots + 63) / 64;
	v->gen = 1;
	v->class_full = CLASS_FULL;
	if ((v->expr = calloc(nslots, sizeof(*v->expr))) == NULL ||
	    (v->memo = calloc(MEMO_CAP, sizeof(*v->memo))) == NULL ||
	    (v->gid = calloc(nslots, 1)) == NULL ||
	    (v->bkey = calloc(WEIR_BATCH_MAX, KEYMAX)) == NULL ||
	    (v->bh = calloc(WEIR_BATCH_MAX, sizeof(*v->bh))) == NULL ||
	    (v->blen = calloc(WEIR_BATCH_MAX, sizeof(*v->blen))) == NULL ||
	    (v->blt = calloc(WEIR_BATCH_MAX, sizeof(*v->blt))) == NULL)
		goto nomem;
	if (entries > 0) {
		while (sets * 2 < entries)
			sets <<= 1;
		/* whole cache lines: a hit reads the first two of way 0 */
		v->stride = (16 + KEYMAX + 8 * v->nw + 63) & ~(size_t)63;
		v->setmask = sets - 1;
		/* groups repeat across keys: a quarter is plenty */
		v->setmask2 = (sets >= 16 ? sets / 4 : 4) - 1;
		v->entlen = sets * 2 * v->stride;
		v->ent2len = (v->setmask2 + 1) * 2 * v->stride;
		if ((v->ent = table_alloc(v->entlen)) == NULL ||
		    (v->ent2 = table_alloc(v->ent2len)) == NULL)
			goto nomem;
	}
	*vp = v;
	return 0;
nomem:
	bpfv_destroy(v);
	return weir_seterr(err, -ENOMEM, "sessions: out of memory for the "
	    "verdict cache");
}

void
bpfv_destroy(struct bpfv *v)
{
	unsigned i;

	if (v == NULL)
		return;
	for (i = 0; i < v->nlt; i++)
		lt_free(v, v->lt[i]);
	if (v->expr != NULL)
		for (i = 0; i < v->nslots; i++)
			free(v->expr[i]);
	free(v->expr);
	free(v->memo);
	if (v->ent != NULL)
		munmap(v->ent, v->entlen);
	if (v->ent2 != NULL)
		munmap(v->ent2, v->ent2len);
	free(v->gid);
	free(v->bkey);
	free(v->bh);
	free(v->blen);
	free(v->blt);
	free(v);
}

unsigned
bpfv_words(const struct bpfv *v)
{
	return v->nw;
}

int
bpfv_set(struct bpfv *v, unsigned slot, const char *expr,
    struct weir_err *err)
{
	char *copy;
	unsigned i;
	int rc;

	if (slot >= v->nslots)
		return weir_seterr(err, -EINVAL, "slot %u out of range", slot);
	if ((rc = bpfv_check(expr, err)) < 0)
		return rc;
	if ((copy = strdup(expr)) == NULL)
		return weir_seterr(err, -ENOMEM, "out of memory");
	free(v->expr[slot]);
	v->expr[slot] = copy;
	for (i = 0; i < v->nlt; i++)
		if (slot_compile(v->lt[i], slot, copy) < 0)
			return weir_seterr(err, -ENOMEM, "out of memory");
	return 0;
}

void
bpfv_unset(struct bpfv *v, unsigned slot)
{
	unsigned i;

	if (slot >= v->nslots || v->expr[slot] == NULL)
		return;
	free(v->expr[slot]);
	v->expr[slot] = NULL;
	for (i = 0; i < v->nlt; i++) {
		slot_free(v->lt[i], slot);
		v->lt[i]->dirty = 1;
	}
}

int
bpfv_add_linktype(struct bpfv *v, uint16_t linktype)
{
	if (lt_find(v, linktype) != NULL)
		return 0;
	if (lt_new(v, linktype) == NULL && v->nlt < BPFV_MAXLT)
		return -ENOMEM;
	return 0;
}

int
bpfv_slot_cached(struct bpfv *v, unsigned slot)
{
	unsigned i;
	int r = 1;

	if (slot >= v->nslots || v->expr[slot] == NULL)
		return -1;
	for (i = 0; i < v->nlt; i++) {
		if (v->lt[i]->dirty)
			analyse(v, v->lt[i]);
		if (v->lt[i]->pstate[slot] == PS_DIRECT)
			r = 0;
	}
	return r;
}

void
bpfv_set_class_limit(struct bpfv *v, unsigned n)
{
	v->class_full = n < 1 ? 1 : n > CLASS_FULL ? CLASS_FULL : n;
}

void
bpfv_get_stats(const struct bpfv *v, struct bpfv_stats *s)
{
	*s = v->st;
}
