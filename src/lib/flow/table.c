/*
 * table.c - the flow table: RFC 5103 biflows in one preallocated array
 * under a hard memory bound (API in include/weir/flow.h, rules and the
 * comparison with softflowd and YAF in docs/flows.md).
 *
 * Memory.  weir_flowtab_new() makes every allocation: max entries of
 * `stride' bytes (struct entry, then the consumer's user area, rounded up
 * to 64 bytes so no entry shares a cache line), an open-addressing index
 * of 2^k >= 2 max slots (linear probing, 8 bytes a slot: the low 32 bits
 * of the hash as a tag and home, and the entry number + 1), and a small
 * fixed fragment map.  Entries are handed out from a high-water mark and
 * then from a free list, so pages of the array are only touched once a
 * flow lives there.  Nothing is allocated after creation: a full table
 * evicts its least recently seen flow.
 *
 * Lists, all intrusive and doubly linked by entry number:
 *   lru  every live flow, in order of its last packet (moved to the tail
 *        on each packet): idle expiry and eviction walk it from the head
 *        and stop at the first flow that is not due;
 *   act  live flows by record start (creation, or the last active-timeout
 *        export): active expiry walks it from the head the same way;
 *   fin  TCP flows that have seen a FIN each way, by the time the second
 *        FIN was seen: they end one grace period later at the latest.
 * A flow is on act or on fin, never on both, so they share one link pair.
 *
 * Hash.  SipHash-1-3 keyed with 128 random bits from getrandom() at
 * creation, over the key in a direction-independent form (endpoints
 * sorted), so both directions find the same slot and nobody outside can
 * aim a SYN flood at one probe chain.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "weir/flow.h"
#include "weir/siphash.h"

#define NIL		UINT32_MAX
#define MAX_ENTRIES	(1u << 30)
#define MAX_USER	(1u << 20)
#define MIN_SLOTS	16u

/* TCP: after both FINs, end at the next tick past this grace at the latest. */
#define FIN_GRACE_NS	2000000000ull
/* A first fragment is remembered this long (Linux ipfrag_time). */
#define FRAG_TIMEOUT_NS	30000000000ull
#define FRAG_SETS	256u
#define FRAG_WAYS	4u

#define TH_FIN		0x01
#define TH_SYN		0x02
#define TH_RST		0x04
#define TH_ACK		0x10

/* weir_flow.state: the TCP close machine. */
#define ST_FIN0		0x01	/* endpoint 0 sent a FIN */
#define ST_FIN1		0x02
#define ST_FINACK0	0x04	/* endpoint 0's FIN was acknowledged */
#define ST_FINACK1	0x08
#define ST_CLOSING	0x10	/* both FINs seen: on the fin list */
#define ST_FINS		(ST_FIN0 | ST_FIN1)
#define ST_CLOSED	(ST_FIN0 | ST_FIN1 | ST_FINACK0 | ST_FINACK1)

/* entry.isnst */
#define ISN_SET(d)	(0x01u << (d))	/* isn[d] holds a seq number */
#define ISN_SYN(d)	(0x04u << (d))	/* ... taken from a SYN */

/* ICMP messages without a header (later fragments, cut short). */
#define ICMP_NOHDR	0xffffu

struct entry {
	struct weir_flow f;
	uint64_t	last;		/* latest packet time: lru order */
	uint64_t	mark;		/* act: record start; fin: when the
					   second FIN was seen */
	uint32_t	lprev, lnext;	/* lru; lnext links free entries */
	uint32_t	tprev, tnext;	/* act or fin */
	uint32_t	h32;		/* low hash bits: home and tag */
	uint32_t	finack[2];	/* ack number covering each FIN */
	uint16_t	mport[2];	/* matched ports (ICMP: id, class) */
	uint8_t		isnst;
};

struct slot {
	uint32_t	h32;
	uint32_t	idx1;		/* entry number + 1; 0: empty */
};

struct list {
	uint32_t	head, tail;
};

/* A first fragment: where its later fragments go. */
struct frag {
	uint8_t		src[16], dst[16];
	uint64_t	ts;
	uint64_t	flow_id;
	uint32_t	ipid;
	uint32_t	idx;
	uint8_t		proto, family, rev, used;
};

struct weir_flowtab {
	struct weir_flowtab_conf conf;
	weir_flow_expire_fn	*expire;
	void			*arg;
	uint8_t			*ent;
	size_t			 stride;
	size_t			 user_off;
	uint32_t		 max;
	uint32_t		 used;		/* entries handed out */
	uint32_t		 freel;
	uint32_t		 pending;	/* ended by the last packet */
	struct slot		*slots;
	uint32_t		 mask;
	struct list		 lru, act, fin;
	struct frag		*frags;
	uint64_t		 k0, k1, fk0, fk1;
	uint64_t		 next_id;
	uint64_t		 fin_grace;
	size_t			 mem;

	uint64_t		 created, active, peak;
	uint64_t		 end_idle, end_active, end_eof, end_forced;
	uint64_t		 evicted, notflow, frag_attr, frag_unm;
};

/* A packet's key as parsed: src/dst as in the packet. */
struct pkey {
	uint8_t		src[16], dst[16];
	uint16_t	sp, dp;		/* matched (ICMP: id, class) */
	uint16_t	icmp_tc;	/* ICMP: type << 8 | code, as stored */
	uint16_t	vlan;
	uint8_t		proto, family;
	uint8_t		icmp;		/* ports not tied to endpoints */
};

struct pinfo {
	uint64_t	ipbytes;
	uint32_t	seq, ack, paylen;
	uint32_t	ipid;
	uint8_t		tcpflags;
	uint8_t		tcp;		/* flags, seq and ack read */
	uint8_t		firstfrag, laterfrag;
};

static inline struct entry *
ent(const struct weir_flowtab *t, uint32_t i)
{
	return (struct entry *)(void *)(t->ent + (size_t)i * t->stride);
}

/* ------------------------------------------------------------------ */
/* Bounds-checked reads: nothing at or past caplen is touched.         */

static int
rd8(const struct weir_pkt *p, uint32_t off, uint8_t *v)
{
	if (off >= p->caplen)
		return 0;
	*v = p->data[off];
	return 1;
}

static int
rd16(const struct weir_pkt *p, uint32_t off, uint16_t *v)
{
	if ((uint64_t)off + 2 > p->caplen)
		return 0;
	*v = (uint16_t)(p->data[off] << 8 | p->data[off + 1]);
	return 1;
}

static int
rd32(const struct weir_pkt *p, uint32_t off, uint32_t *v)
{
	if ((uint64_t)off + 4 > p->caplen)
		return 0;
	*v = (uint32_t)p->data[off] << 24 | (uint32_t)p->data[off + 1] << 16 |
	    (uint32_t)p->data[off + 2] << 8 | p->data[off + 3];
	return 1;
}

static int
rdn(const struct weir_pkt *p, uint32_t off, uint8_t *v, uint32_t n)
{
	if ((uint64_t)off + n > p->caplen)
		return 0;
	memcpy(v, p->data + off, n);
	return 1;
}

static inline uint64_t
ld64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

/* 16-byte equality without a call into the C library */
static inline int
eq16(const uint8_t *a, const uint8_t *b)
{
	return ((ld64(a) ^ ld64(b)) | (ld64(a + 8) ^ ld64(b + 8))) == 0;
}

/* memcmp(a, b, 16) sign, inline: big-endian word compares */
static inline int
cmp16(const uint8_t *a, const uint8_t *b)
{
	uint64_t x = __builtin_bswap64(ld64(a)), y = __builtin_bswap64(ld64(b));

	if (x == y) {
		x = __builtin_bswap64(ld64(a + 8));
		y = __builtin_bswap64(ld64(b + 8));
	}
	return (x > y) - (x < y);
}

static inline uint64_t
ld32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

/*
 * Direction independence: endpoints (address, port) sorted.  ICMP ports
 * (id, class) belong to the exchange, not to an endpoint: only the
 * addresses are sorted.
 */
static uint64_t
key_hash(const struct weir_flowtab *t, const struct pkey *k)
{
	const uint8_t	*lo, *hi;
	uint16_t	 plo, phi;
	uint64_t	 w[5];
	int		 c;

	c = cmp16(k->src, k->dst);
	if (k->icmp) {
		lo = c <= 0 ? k->src : k->dst;
		hi = c <= 0 ? k->dst : k->src;
		plo = k->sp;
		phi = k->dp;
	} else if (c < 0 || (c == 0 && k->sp <= k->dp)) {
		lo = k->src;
		hi = k->dst;
		plo = k->sp;
		phi = k->dp;
	} else {
		lo = k->dst;
		hi = k->src;
		plo = k->dp;
		phi = k->sp;
	}
	if (k->family == 4) {
		w[0] = ld32(lo) << 32 | ld32(hi);
		w[1] = (uint64_t)plo << 48 | (uint64_t)phi << 32 |
		    (uint64_t)k->vlan << 16 | (uint64_t)k->proto << 8 | 4;
		return weir_siphash13w(t->k0, t->k1, w, 2);
	}
	w[0] = ld64(lo);
	w[1] = ld64(lo + 8);
	w[2] = ld64(hi);
	w[3] = ld64(hi + 8);
	w[4] = (uint64_t)plo << 48 | (uint64_t)phi << 32 |
	    (uint64_t)k->vlan << 16 | (uint64_t)k->proto << 8 | 6;
	return weir_siphash13w(t->k0, t->k1, w, 5);
}

/* ------------------------------------------------------------------ */
/* Packet parsing (p->dec from weir_decode)                            */

/*
 * ICMP query/response pairs share one class (the request type) so that
 * an echo request and its reply are one flow; their identifier is part
 * of the key.  Returns the request type, or -1 for other messages.
 */
static int
icmp_query(uint8_t family, uint8_t type)
{
	if (family == 4) {
		switch (type) {
		case 8:			/* echo */
		case 0:
			return 8;
		case 13:		/* timestamp */
		case 14:
			return 13;
		case 15:		/* information */
		case 16:
			return 15;
		case 17:		/* address mask */
		case 18:
			return 17;
		}
		return -1;
	}
	if (type == 128 || type == 129)
		return 128;				/* echo */
	return -1;
}

static int
parse(const struct weir_pkt *p, struct pkey *k, struct pinfo *pi)
{
	const struct weir_decoded	*d = &p->dec;
	const struct weir_layer		*ip, *l, *fl = NULL;
	uint16_t			 v16 = 0, fo = 0, id16;
	uint8_t				 mf = 0, type, code;
	uint32_t			 hl, end;
	unsigned			 i;
	int				 q, havelen = 0;

	memset(k, 0, sizeof(*k));
	memset(pi, 0, sizeof(*pi));
	if (!p->decoded || d->n > WEIR_MAX_LAYERS ||
	    d->inner_ip == WEIR_NO_LAYER || d->inner_ip >= d->n)
		return 0;
	ip = &d->l[d->inner_ip];
	if (ip->kind == WEIR_L_IPV4) {
		if (!rdn(p, ip->off + 12, k->src, 4) ||
		    !rdn(p, ip->off + 16, k->dst, 4))
			return 0;
		k->family = 4;
		(void)rd8(p, ip->off + 9, &k->proto);
		if (rd16(p, ip->off + 6, &v16)) {
			fo = v16 & 0x1fff;
			mf = (v16 & 0x2000) != 0;
		}
		if (rd16(p, ip->off + 4, &id16))
			pi->ipid = id16;
		if (rd16(p, ip->off + 2, &v16) && v16 != 0) {
			pi->ipbytes = v16;
			havelen = 1;
		}
	} else if (ip->kind == WEIR_L_IPV6) {
		if (!rdn(p, ip->off + 8, k->src, 16) ||
		    !rdn(p, ip->off + 24, k->dst, 16))
			return 0;
		k->family = 6;
		(void)rd8(p, ip->off + 6, &k->proto);
		/* the last header of the chain names the protocol */
		for (i = d->inner_ip + 1u; i < d->n; i++) {
			l = &d->l[i];
			if ((l->kind != WEIR_L_IPV6_EXT &&
			    l->kind != WEIR_L_IPV6_FRAG) ||
			    (l->flags & WEIR_LF_QUOTED))
				break;
			if (!rd8(p, l->off, &k->proto))
				break;
			if (l->kind == WEIR_L_IPV6_FRAG && fl == NULL)
				fl = l;
		}
		if (fl != NULL && rd16(p, fl->off + 2, &v16)) {
			fo = v16 >> 3;
			mf = v16 & 1;
			(void)rd32(p, fl->off + 4, &pi->ipid);
		}
		if (rd16(p, ip->off + 4, &v16) && v16 != 0) {
			pi->ipbytes = 40u + v16;
			havelen = 1;
		}
	} else
		return 0;
	/* TSO captures and jumbograms say 0: take the frame from here on */
	if (!havelen)
		pi->ipbytes = p->wirelen > ip->off ? p->wirelen - ip->off : 0;
	pi->firstfrag = mf && fo == 0;
	pi->laterfrag = fo != 0;

	for (i = 0; i < d->n; i++)
		if (d->l[i].kind == WEIR_L_VLAN) {
			if (rd16(p, d->l[i].off, &v16))
				k->vlan = v16 & 0x0fff;
			break;
		}

	k->icmp = (k->family == 4 && k->proto == 1) ||
	    (k->family == 6 && k->proto == 58);
	if (k->icmp)
		k->dp = ICMP_NOHDR;
	if (pi->laterfrag || d->l4 == WEIR_NO_LAYER || d->l4 >= d->n)
		return 1;
	l = &d->l[d->l4];
	switch (l->kind) {
	case WEIR_L_TCP:
	case WEIR_L_UDP:
		if (!rd16(p, l->off, &k->sp) || !rd16(p, l->off + 2, &k->dp))
			k->sp = k->dp = 0;
		if (l->kind != WEIR_L_TCP ||
		    !rd8(p, l->off + 13, &pi->tcpflags) ||
		    !rd32(p, l->off + 4, &pi->seq) ||
		    !rd32(p, l->off + 8, &pi->ack)) {
			pi->tcpflags = 0;
			break;
		}
		pi->tcp = 1;
		/* payload length: what the IP length leaves after TCP */
		hl = l->len;
		end = havelen ? ip->off + (uint32_t)pi->ipbytes : 0;
		if (havelen && end > l->off + hl)
			pi->paylen = end - (l->off + hl);
		break;
	case WEIR_L_OTHER_L4:
		if (k->proto == 132 && l->len >= 4 &&
		    (!rd16(p, l->off, &k->sp) || !rd16(p, l->off + 2, &k->dp)))
			k->sp = k->dp = 0;
		break;
	case WEIR_L_ICMP:
	case WEIR_L_ICMP6:
		if (!k->icmp || !rd8(p, l->off, &type) ||
		    !rd8(p, l->off + 1, &code))
			break;
		k->icmp_tc = (uint16_t)(type << 8 | code);
		if ((q = icmp_query(k->family, type)) >= 0) {
			if (!rd16(p, l->off + 4, &k->sp))
				k->sp = 0;
			k->dp = (uint16_t)(q << 8 | code);
		} else
			k->dp = k->icmp_tc;
		break;
	}
	return 1;
}

/* ------------------------------------------------------------------ */
/* Lists                                                               */

static void
lru_unlink(struct weir_flowtab *t, uint32_t i)
{
	struct entry *e = ent(t, i);

	if (e->lprev != NIL)
		ent(t, e->lprev)->lnext = e->lnext;
	else
		t->lru.head = e->lnext;
	if (e->lnext != NIL)
		ent(t, e->lnext)->lprev = e->lprev;
	else
		t->lru.tail = e->lprev;
}

static void
lru_append(struct weir_flowtab *t, uint32_t i)
{
	struct entry *e = ent(t, i);

	e->lnext = NIL;
	e->lprev = t->lru.tail;
	if (t->lru.tail != NIL)
		ent(t, t->lru.tail)->lnext = i;
	else
		t->lru.head = i;
	t->lru.tail = i;
}

static void
tl_unlink(struct weir_flowtab *t, struct list *l, uint32_t i)
{
	struct entry *e = ent(t, i);

	if (e->tprev != NIL)
		ent(t, e->tprev)->tnext = e->tnext;
	else
		l->head = e->tnext;
	if (e->tnext != NIL)
		ent(t, e->tnext)->tprev = e->tprev;
	else
		l->tail = e->tprev;
}

static void
tl_append(struct weir_flowtab *t, struct list *l, uint32_t i)
{
	struct entry *e = ent(t, i);

	e->tnext = NIL;
	e->tprev = l->tail;
	if (l->tail != NIL)
		ent(t, l->tail)->tnext = i;
	else
		l->head = i;
	l->tail = i;
}

/* ------------------------------------------------------------------ */
/* Index: linear probing, backward-shift deletion (no tombstones)      */

static int
key_match(const struct entry *e, const struct pkey *k, int *rev)
{
	const struct weir_flow_key *fk = &e->f.key;

	if (fk->family != k->family || fk->proto != k->proto ||
	    fk->vlan != k->vlan)
		return 0;
	if (k->icmp) {
		if (e->mport[0] != k->sp || e->mport[1] != k->dp)
			return 0;
		if (eq16(fk->addr[0], k->src) &&
		    eq16(fk->addr[1], k->dst)) {
			*rev = 0;
			return 1;
		}
		if (eq16(fk->addr[0], k->dst) &&
		    eq16(fk->addr[1], k->src)) {
			*rev = 1;
			return 1;
		}
		return 0;
	}
	if (e->mport[0] == k->sp && e->mport[1] == k->dp &&
	    eq16(fk->addr[0], k->src) &&
	    eq16(fk->addr[1], k->dst)) {
		*rev = 0;
		return 1;
	}
	if (e->mport[0] == k->dp && e->mport[1] == k->sp &&
	    eq16(fk->addr[0], k->dst) &&
	    eq16(fk->addr[1], k->src)) {
		*rev = 1;
		return 1;
	}
	return 0;
}

static uint32_t
idx_find(const struct weir_flowtab *t, uint32_t h32, const struct pkey *k,
    int *rev)
{
	const struct slot	*s;
	uint32_t		 j = h32 & t->mask;

	for (;;) {
		s = &t->slots[j];
		if (s->idx1 == 0)
			return NIL;
		if (s->h32 == h32 && key_match(ent(t, s->idx1 - 1), k, rev))
			return s->idx1 - 1;
		j = (j + 1) & t->mask;
	}
}

static void
idx_insert(struct weir_flowtab *t, uint32_t h32, uint32_t i)
{
	uint32_t j = h32 & t->mask;

	while (t->slots[j].idx1 != 0)
		j = (j + 1) & t->mask;
	t->slots[j].h32 = h32;
	t->slots[j].idx1 = i + 1;
}

static void
idx_remove(struct weir_flowtab *t, uint32_t i)
{
	uint32_t j = ent(t, i)->h32 & t->mask, k, home;

	while (t->slots[j].idx1 != i + 1)
		j = (j + 1) & t->mask;
	/* pull back every later member of the run that may move to j */
	for (k = (j + 1) & t->mask; t->slots[k].idx1 != 0;
	    k = (k + 1) & t->mask) {
		home = t->slots[k].h32 & t->mask;
		/* stays if its home lies cyclically in (j, k] */
		if (j <= k ? (j < home && home <= k) : (j < home || home <= k))
			continue;
		t->slots[j] = t->slots[k];
		j = k;
	}
	t->slots[j].idx1 = 0;
	t->slots[j].h32 = 0;
}

/* ------------------------------------------------------------------ */
/* Fragment map: 4-way sets keyed by (src, dst, protocol, IP id)       */

static struct frag *
frag_set(const struct weir_flowtab *t, const struct pkey *k, uint32_t ipid)
{
	uint64_t w[5];
	unsigned n;

	if (k->family == 4) {
		w[0] = ld32(k->src) << 32 | ld32(k->dst);
		n = 1;
	} else {
		w[0] = ld64(k->src);
		w[1] = ld64(k->src + 8);
		w[2] = ld64(k->dst);
		w[3] = ld64(k->dst + 8);
		n = 4;
	}
	w[n++] = (uint64_t)ipid << 16 | (uint64_t)k->proto << 8 | k->family;
	return &t->frags[(weir_siphash13w(t->fk0, t->fk1, w, n) & (FRAG_SETS - 1)) *
	    FRAG_WAYS];
}

static int
frag_match(const struct frag *fr, const struct pkey *k, uint32_t ipid)
{
	return fr->used && fr->ipid == ipid && fr->proto == k->proto &&
	    fr->family == k->family && memcmp(fr->src, k->src, 16) == 0 &&
	    memcmp(fr->dst, k->dst, 16) == 0;
}

static int
frag_stale(const struct frag *fr, uint64_t now)
{
	return now > fr->ts && now - fr->ts > FRAG_TIMEOUT_NS;
}

static void
frag_put(struct weir_flowtab *t, const struct pkey *k, uint32_t ipid,
    uint32_t i, int rev, uint64_t now)
{
	struct frag	*set = frag_set(t, k, ipid), *v = NULL;
	unsigned	 w;

	for (w = 0; w < FRAG_WAYS && v == NULL; w++)
		if (frag_match(&set[w], k, ipid))
			v = &set[w];
	for (w = 0; w < FRAG_WAYS && v == NULL; w++)
		if (!set[w].used || frag_stale(&set[w], now))
			v = &set[w];
	if (v == NULL) {
		v = &set[0];
		for (w = 1; w < FRAG_WAYS; w++)
			if (set[w].ts < v->ts)
				v = &set[w];
	}
	memcpy(v->src, k->src, 16);
	memcpy(v->dst, k->dst, 16);
	v->ipid = ipid;
	v->proto = k->proto;
	v->family = k->family;
	v->rev = (uint8_t)rev;
	v->idx = i;
	v->flow_id = ent(t, i)->f.id;
	v->ts = now;
	v->used = 1;
}

/* The live flow of this later fragment's first fragment, or NIL. */
static uint32_t
frag_find(const struct weir_flowtab *t, const struct pkey *k, uint32_t ipid,
    uint64_t now, int *rev)
{
	const struct frag	*set = frag_set(t, k, ipid), *fr;
	const struct entry	*e;
	unsigned		 w;

	for (w = 0; w < FRAG_WAYS; w++) {
		fr = &set[w];
		if (!frag_match(fr, k, ipid) || frag_stale(fr, now))
			continue;
		if (fr->idx >= t->used)
			return NIL;
		e = ent(t, fr->idx);
		if (e->f.key.family == 0 || e->f.id != fr->flow_id)
			return NIL;
		*rev = fr->rev;
		return fr->idx;
	}
	return NIL;
}

/* ------------------------------------------------------------------ */
/* Flow life                                                           */

static void
end_flow(struct weir_flowtab *t, uint32_t i, uint8_t reason)
{
	struct entry *e = ent(t, i);

	e->f.end_reason = reason;
	switch (reason) {
	case WEIR_FLOW_END_IDLE:
		t->end_idle++;
		break;
	case WEIR_FLOW_END_EOF:
		t->end_eof++;
		break;
	case WEIR_FLOW_END_FORCED:
		t->end_forced++;
		break;
	case WEIR_FLOW_END_LACK:
		t->evicted++;
		break;
	}
	if (t->expire != NULL)
		t->expire(t->arg, &e->f);
	idx_remove(t, i);
	lru_unlink(t, i);
	tl_unlink(t, (e->f.state & ST_CLOSING) ? &t->fin : &t->act, i);
	e->f.key.family = 0;
	e->lnext = t->freel;
	t->freel = i;
	t->active--;
}

/* Export the record (RFC 7011 delta counts) and start a fresh one. */
static void
export_active(struct weir_flowtab *t, uint32_t i, uint64_t now)
{
	struct entry	*e = ent(t, i);
	struct weir_flow *f = &e->f;

	if (f->pkts[0] + f->pkts[1] != 0) {
		f->end_reason = WEIR_FLOW_END_ACTIVE;
		t->end_active++;
		if (t->expire != NULL)
			t->expire(t->arg, f);
		f->end_reason = WEIR_FLOW_END_NONE;
		memset(f->start, 0, sizeof(f->start));
		memset(f->end, 0, sizeof(f->end));
		memset(f->pkts, 0, sizeof(f->pkts));
		memset(f->bytes, 0, sizeof(f->bytes));
		memset(f->tcp_flags, 0, sizeof(f->tcp_flags));
	}
	e->mark = now;
	tl_unlink(t, &t->act, i);
	tl_append(t, &t->act, i);
}

static void
end_pending(struct weir_flowtab *t)
{
	uint32_t i = t->pending;

	if (i != NIL) {
		t->pending = NIL;
		end_flow(t, i, WEIR_FLOW_END_EOF);
	}
}

static int
due(uint64_t now, uint64_t since, uint64_t timeout)
{
	return now > since && now - since > timeout;
}

static void
expire_idle(struct weir_flowtab *t, uint64_t now)
{
	uint32_t i;

	if (t->conf.idle_ns == 0)
		return;
	while ((i = t->lru.head) != NIL &&
	    due(now, ent(t, i)->last, t->conf.idle_ns))
		end_flow(t, i, WEIR_FLOW_END_IDLE);
}

/*
 * Timeouts of one flow checked when its packet arrives, so that results
 * do not depend on how often the caller ticks.  Returns 1 if it ended.
 */
static int
check_due(struct weir_flowtab *t, uint32_t i, uint64_t now)
{
	struct entry *e = ent(t, i);

	if (t->conf.idle_ns != 0 && due(now, e->last, t->conf.idle_ns)) {
		end_flow(t, i, WEIR_FLOW_END_IDLE);
		return 1;
	}
	if (e->f.state & ST_CLOSING) {
		if (due(now, e->mark, t->fin_grace)) {
			end_flow(t, i, WEIR_FLOW_END_EOF);
			return 1;
		}
	} else if (t->conf.active_ns != 0 &&
	    due(now, e->mark, t->conf.active_ns))
		export_active(t, i, now);
	return 0;
}

static uint32_t
new_flow(struct weir_flowtab *t, const struct pkey *k, uint32_t h32,
    const struct weir_pkt *p, uint64_t now)
{
	struct entry	*e;
	uint32_t	 i;

	if (t->freel == NIL && t->used == t->max) {
		/* full: flows due anyway first, then the least recently seen */
		expire_idle(t, now);
		if (t->freel == NIL)
			end_flow(t, t->lru.head, WEIR_FLOW_END_LACK);
	}
	if (t->freel != NIL) {
		i = t->freel;
		t->freel = ent(t, i)->lnext;
	} else
		i = t->used++;
	e = ent(t, i);
	memset(e, 0, t->stride);
	memcpy(e->f.key.addr[0], k->src, 16);
	memcpy(e->f.key.addr[1], k->dst, 16);
	if (k->icmp) {
		e->f.key.port[0] = 0;
		e->f.key.port[1] = k->icmp_tc;
	} else {
		e->f.key.port[0] = k->sp;
		e->f.key.port[1] = k->dp;
	}
	e->f.key.vlan = k->vlan;
	e->f.key.proto = k->proto;
	e->f.key.family = k->family;
	e->f.id = ++t->next_id;
	e->f.dir = p->dir;
	e->f.user = t->conf.user_size ? (uint8_t *)e + t->user_off : NULL;
	e->mport[0] = k->sp;
	e->mport[1] = k->dp;
	e->h32 = h32;
	e->last = e->mark = now;
	idx_insert(t, h32, i);
	lru_append(t, i);
	tl_append(t, &t->act, i);
	t->created++;
	if (++t->active > t->peak)
		t->peak = t->active;
	return i;
}

/*
 * The TCP end rule (docs/flows.md): RST ends the flow after this packet;
 * so does the ACK that covers the second of the two FINs (each FIN must
 * be acknowledged by the ack number, not just by any ACK).  Both FINs
 * without that ACK: the fin list ends the flow a grace period later.
 */
static void
tcp_end(struct weir_flowtab *t, uint32_t i, int d, const struct pinfo *pi,
    uint64_t now)
{
	struct entry	*e = ent(t, i);
	uint8_t		*st = &e->f.state;
	uint8_t		 fin = d ? ST_FIN1 : ST_FIN0;
	uint8_t		 ofin = d ? ST_FIN0 : ST_FIN1;
	uint8_t		 oack = d ? ST_FINACK0 : ST_FINACK1;

	if (pi->tcpflags & TH_RST) {
		t->pending = i;
		return;
	}
	if ((pi->tcpflags & TH_FIN) && !(*st & fin)) {
		*st |= fin;
		e->finack[d] = pi->seq + pi->paylen + 1;
	}
	if ((pi->tcpflags & TH_ACK) && (*st & ofin) &&
	    (int32_t)(pi->ack - e->finack[!d]) >= 0)
		*st |= oack;
	if ((*st & ST_FINS) == ST_FINS && !(*st & ST_CLOSING)) {
		tl_unlink(t, &t->act, i);
		*st |= ST_CLOSING;
		e->mark = now;
		tl_append(t, &t->fin, i);
	}
	if ((*st & ST_CLOSED) == ST_CLOSED)
		t->pending = i;
}

static void
account(struct weir_flowtab *t, uint32_t i, int d, const struct pinfo *pi,
    uint64_t now)
{
	struct entry	*e = ent(t, i);
	struct weir_flow *f = &e->f;

	if (f->pkts[d] == 0)
		f->start[d] = f->end[d] = now;
	else if (now < f->start[d])
		f->start[d] = now;
	else if (now > f->end[d])
		f->end[d] = now;
	f->pkts[d]++;
	f->bytes[d] += pi->ipbytes;
	if (now > e->last)
		e->last = now;
	if (t->lru.tail != i) {
		lru_unlink(t, i);
		lru_append(t, i);
	}
	if (!pi->tcp || f->key.proto != 6)
		return;
	f->tcp_flags[d] |= pi->tcpflags;
	if (!(e->isnst & ISN_SET(d)) ||
	    ((pi->tcpflags & TH_SYN) && !(e->isnst & ISN_SYN(d)))) {
		f->isn[d] = pi->seq;
		e->isnst |= ISN_SET(d);
		if (pi->tcpflags & TH_SYN)
			e->isnst |= ISN_SYN(d);
	}
	if (t->conf.tcp_end)
		tcp_end(t, i, d, pi, now);
}

/* ------------------------------------------------------------------ */
/* API                                                                 */

static size_t
roundup(size_t v, size_t a)
{
	return (v + a - 1) / a * a;
}

static uint64_t
nslots(uint64_t n)
{
	uint64_t s = MIN_SLOTS;

	while (s < 2 * n)
		s <<= 1;
	return s;
}

struct weir_flowtab *
weir_flowtab_new(const struct weir_flowtab_conf *c, weir_flow_expire_fn *expire,
    void *arg, struct weir_err *err)
{
	struct weir_flowtab	*t = NULL;
	uint64_t		 key[4], n, fixed, s;
	size_t			 stride, user_off;
	void			*mem = NULL;

	if (c->user_size > MAX_USER) {
		weir_seterr(err, -WEIR_ECONFIG, "flow table: user area of %zu "
		    "bytes is over the limit of %u", c->user_size, MAX_USER);
		return NULL;
	}
	user_off = roundup(sizeof(struct entry), 16);
	stride = roundup(user_off + c->user_size, 64);
	fixed = sizeof(*t) + FRAG_SETS * FRAG_WAYS * sizeof(struct frag);
	n = c->max_flows;
	if (c->max_bytes != 0) {
		if (c->max_bytes <= fixed + stride + MIN_SLOTS * 8) {
			weir_seterr(err, -WEIR_ECONFIG, "flow table: max_bytes "
			    "%llu is too small for one flow (%llu needed)",
			    (unsigned long long)c->max_bytes,
			    (unsigned long long)(fixed + stride +
			    MIN_SLOTS * 8 + 1));
			return NULL;
		}
		/* every flow costs at least its entry and 2 slots */
		s = (c->max_bytes - fixed) / (stride + 2 * sizeof(struct slot));
		if (n == 0 || n > s)
			n = s;
		/* the index may be up to 2x larger: shrink to fit, once */
		if (fixed + n * stride + nslots(n) * sizeof(struct slot) >
		    c->max_bytes)
			n = (c->max_bytes - fixed - nslots(n) *
			    sizeof(struct slot)) / stride;
	}
	if (n == 0 || n > MAX_ENTRIES) {
		weir_seterr(err, -WEIR_ECONFIG, "flow table: max_flows %llu "
		    "must be between 1 and %u", (unsigned long long)n,
		    MAX_ENTRIES);
		return NULL;
	}
	if (getrandom(key, sizeof(key), 0) != (ssize_t)sizeof(key)) {
		weir_seterr(err, -errno, "flow table: getrandom: %s",
		    strerror(errno));
		return NULL;
	}
	if ((t = calloc(1, sizeof(*t))) == NULL)
		goto nomem;
	t->conf = *c;
	t->expire = expire;
	t->arg = arg;
	t->max = (uint32_t)n;
	t->stride = stride;
	t->user_off = user_off;
	t->conf.max_flows = n;
	if (posix_memalign(&mem, 64, (size_t)n * stride) != 0)
		goto nomem;
	t->ent = mem;
	s = nslots(n);
	t->mask = (uint32_t)(s - 1);
	if ((t->slots = calloc(s, sizeof(*t->slots))) == NULL)
		goto nomem;
	if ((t->frags = calloc(FRAG_SETS * FRAG_WAYS,
	    sizeof(*t->frags))) == NULL)
		goto nomem;
	t->k0 = key[0];
	t->k1 = key[1];
	t->fk0 = key[2];
	t->fk1 = key[3];
	t->freel = t->pending = NIL;
	t->lru.head = t->lru.tail = NIL;
	t->act.head = t->act.tail = NIL;
	t->fin.head = t->fin.tail = NIL;
	t->fin_grace = FIN_GRACE_NS;
	if (c->idle_ns != 0 && c->idle_ns < t->fin_grace)
		t->fin_grace = c->idle_ns;
	t->mem = fixed + (size_t)n * stride + s * sizeof(struct slot);
	return t;
nomem:
	weir_seterr(err, -ENOMEM, "flow table: cannot allocate %llu flows "
	    "(%zu bytes each)", (unsigned long long)n, stride);
	weir_flowtab_free(t);
	return NULL;
}

void
weir_flowtab_free(struct weir_flowtab *t)
{
	if (t == NULL)
		return;
	free(t->ent);
	free(t->slots);
	free(t->frags);
	free(t);
}

struct weir_flow *
weir_flowtab_packet(struct weir_flowtab *t, const struct weir_pkt *p,
    int *revp, int *createdp)
{
	struct pkey	k;
	struct pinfo	pi;
	uint32_t	i = NIL, h32;
	uint64_t	now = p->ts;
	int		rev = 0, created = 0;

	if (revp != NULL)
		*revp = 0;
	if (createdp != NULL)
		*createdp = 0;
	end_pending(t);
	if (!parse(p, &k, &pi)) {
		t->notflow++;
		return NULL;
	}
	if (pi.laterfrag) {
		i = frag_find(t, &k, pi.ipid, now, &rev);
		if (i != NIL && check_due(t, i, now))
			i = NIL;
		if (i != NIL)
			t->frag_attr++;
		else
			t->frag_unm++;
	}
	if (i == NIL) {
		h32 = (uint32_t)key_hash(t, &k);
		i = idx_find(t, h32, &k, &rev);
		if (i != NIL && check_due(t, i, now))
			i = NIL;
		if (i == NIL) {
			i = new_flow(t, &k, h32, p, now);
			rev = 0;
			created = 1;
		}
	}
	account(t, i, rev, &pi, now);
	if (pi.firstfrag)
		frag_put(t, &k, pi.ipid, i, rev, now);
	if (revp != NULL)
		*revp = rev;
	if (createdp != NULL)
		*createdp = created;
	return &ent(t, i)->f;
}

void
weir_flowtab_tick(struct weir_flowtab *t, uint64_t now)
{
	struct entry	*e;
	uint32_t	 i;

	end_pending(t);
	expire_idle(t, now);
	while ((i = t->fin.head) != NIL && due(now, ent(t, i)->mark,
	    t->fin_grace))
		end_flow(t, i, WEIR_FLOW_END_EOF);
	if (t->conf.active_ns == 0)
		return;
	/* export_active() moves the flow to the tail with mark = now */
	while ((i = t->act.head) != NIL) {
		e = ent(t, i);
		if (!due(now, e->mark, t->conf.active_ns))
			break;
		export_active(t, i, now);
	}
}

void
weir_flowtab_flush(struct weir_flowtab *t)
{
	end_pending(t);
	while (t->lru.head != NIL)
		end_flow(t, t->lru.head, WEIR_FLOW_END_FORCED);
}

size_t
weir_flowtab_stats(const struct weir_flowtab *t, struct weir_counter *c,
    size_t max)
{
	const struct weir_counter v[] = {
		{ "flows_created", t->created },
		{ "flows_active", t->active },
		{ "peak_flows", t->peak },
		{ "ended_idle", t->end_idle },
		{ "ended_active", t->end_active },
		{ "ended_eof", t->end_eof },
		{ "ended_forced", t->end_forced },
		{ "evicted", t->evicted },
		{ "not_flow_packets", t->notflow },
		{ "frag_attributed", t->frag_attr },
		{ "frag_unmatched", t->frag_unm },
		{ "max_flows", t->max },
		{ "memory_bytes", t->mem },
	};

	return WEIR_COUNTERS_PUT(c, max, v);
}

size_t
weir_flowtab_entry_bytes(const struct weir_flowtab *t)
{
	return t->stride + ((size_t)(t->mask + 1) * sizeof(struct slot) +
	    t->max - 1) / t->max;
}
