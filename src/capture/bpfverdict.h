/*
 * bpfverdict.h - the verdicts of many BPF expressions on one packet, with
 * a cache shared by all of them.
 *
 * A set holds up to BPFV_MAXSLOTS expressions ("slots"), each compiled per
 * link type exactly as the filter stage does (libpcap, optimised, netmask
 * 0, unoptimised fallback; see stages/bpfcache.h), so every verdict is
 * that of `tcpdump -r FILE EXPR`.  bpfv_eval() gives a bitmap: bit s is
 * set when slot s's expression accepts the packet.
 *
 * Most expressions look only at addresses, ports, protocol numbers and
 * framing.  For each link type the programs are analysed (bpfverdict.c
 * has the argument in full):
 *
 *  - a program is cacheable when every load it can perform is absolute,
 *    or relative to an X that comes from BPF_LDX|BPF_MSH (or a constant),
 *    and it never reads the packet length;
 *  - a packet field ("location": offset, size, absolute or MSH-relative)
 *    whose loaded value is only ever compared for equality with constants
 *    (possibly after AND with a constant) enters the key as the index of
 *    the constant it equals, or "none of them" ("variant" fields: the
 *    ethertype, the protocol, the addresses of host/net expressions, the
 *    ports of port expressions);
 *  - every other byte a program may read on a path consistent with the
 *    packet's framing enters the key raw ("raw" bytes: fragment fields,
 *    TCP flags, the IPv4 header length byte...), together with
 *    min(caplen, the highest byte any such load may touch).
 *
 * Two packets with the same key make every cacheable program take the
 * same path and return the same value, so the verdicts of all cacheable
 * programs are kept in a fixed-size, 2-way set-associative cache keyed by
 * the whole key (compared byte for byte, never by hash alone).  A miss
 * runs every cacheable program once and stores the bitmap.  Uncacheable
 * programs ("greater 100", IPv6 protochain...) run on every packet.
 *
 * Changes (bpfv_set, bpfv_unset) compile at once (they allocate) and
 * invalidate the cache; the analysis is redone, without allocating, at
 * the next bpfv_eval() of each link type.  A link type seen for the first
 * time in bpfv_eval() is compiled there (allocates, once; up to
 * BPFV_MAXLT link types; later ones get no verdicts and are counted).
 *
 * Ownership: the set owns copies of the expressions, every program and
 * the cache.  Not thread-safe: one set per thread.
 */
#ifndef WEIR_CAPTURE_BPFVERDICT_H
#define WEIR_CAPTURE_BPFVERDICT_H

#include <stdint.h>

#include "weir/err.h"
#include "weir/pkt.h"

#define BPFV_MAXSLOTS		1024
#define BPFV_MAXLT		16
#define BPFV_DEFAULT_ENTRIES	65536

struct bpfv;

struct bpfv_stats {
	uint64_t	hits;		/* verdicts taken from the cache */
	uint64_t	misses;		/* keys not in the cache: filled from
					   the group cache */
	uint64_t	group_hits;	/* group verdicts reused on a miss */
	uint64_t	group_misses;	/* a group's programs run */
	uint64_t	uncached_runs;	/* packets an uncacheable program ran on */
	uint64_t	bypass;		/* packets whose key did not fit: every
					   program run directly */
	uint64_t	class_builds;	/* framing classes analysed */
	uint64_t	class_flushes;	/* class table full, emptied */
	uint64_t	analyses;	/* per link type analyses */
	uint64_t	no_linktype;	/* packets of a link type beyond
					   BPFV_MAXLT: no verdicts */
};

/*
 * A set of nslots (1..BPFV_MAXSLOTS) empty slots and a verdict cache of
 * about `entries` entries (rounded up to a power of two; 0 disables the
 * cache: every program runs on every packet).
 */
int	bpfv_create(struct bpfv **vp, unsigned nslots, unsigned entries,
	    struct weir_err *err);
void	bpfv_destroy(struct bpfv *v);

/* Words of the bitmap bpfv_eval() fills: (nslots + 63) / 64. */
unsigned bpfv_words(const struct bpfv *v);

/*
 * Compile expr for Ethernet, as the filter stage's check does; 0 or
 * -WEIR_ECONFIG with libpcap's reason in err ("syntax error").
 */
int	bpfv_check(const char *expr, struct weir_err *err);

/*
 * Put expr in slot (replacing what was there) and compile it for every
 * link type known.  "" accepts every packet.  Returns 0, -WEIR_ECONFIG
 * (bad expression: the slot is left as it was) or -ENOMEM.
 */
int	bpfv_set(struct bpfv *v, unsigned slot, const char *expr,
	    struct weir_err *err);
/* Empty slot: its bit is never set. */
void	bpfv_unset(struct bpfv *v, unsigned slot);

/* Compile every slot for linktype now (open() time); 0 or -ENOMEM. */
int	bpfv_add_linktype(struct bpfv *v, uint16_t linktype);

/*
 * bits[0 .. bpfv_words(v) - 1] = the verdicts of every slot on p
 * (data, caplen, wirelen, linktype).  Never allocates, except to compile
 * for a link type seen for the first time.
 */
void	bpfv_eval(struct bpfv *v, const struct weir_pkt *p, uint64_t *bits);
/*
 * The same for n packets: bits[i * bpfv_words(v) + w].  Faster: keys are
 * computed first and the cache lines fetched while the next are computed.
 */
void	bpfv_eval_batch(struct bpfv *v, struct weir_pkt *const *p,
	    unsigned n, uint64_t *bits);

/*
 * 1 when slot's program is cacheable for every known link type on which
 * it compiles, 0 when not, -1 when the slot is empty.  Runs a pending
 * analysis (no allocation).
 */
int	bpfv_slot_cached(struct bpfv *v, unsigned slot);

/* Keep at most n (1..384) framing classes per link type (tests). */
void	bpfv_set_class_limit(struct bpfv *v, unsigned n);

void	bpfv_get_stats(const struct bpfv *v, struct bpfv_stats *s);

#endif
