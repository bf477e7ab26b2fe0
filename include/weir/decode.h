/*
 * decode.h - bounds-checked L2..L4 decoding into layer offsets.
 *
 * weir_decode() never reads past p->caplen.  It records every header it
 * walks through (outer and tunnelled, and the packet quoted inside ICMP
 * and ICMPv6 errors) so that stages can rewrite them in place.
 */
#ifndef WEIR_DECODE_H
#define WEIR_DECODE_H

#include "weir/pkt.h"

/* Fill p->dec and set p->decoded.  Always succeeds; problems are flags. */
void	weir_decode(struct weir_pkt *p);

/* Decode if not done yet. */
static inline void
weir_pkt_decode(struct weir_pkt *p)
{
	if (!p->decoded)
		weir_decode(p);
}

/*
 * A direction-independent 5-tuple of the innermost non-quoted IP packet,
 * for flow hashing.  Returns 0 when the packet has no IP layer.
 */
struct weir_tuple {
	uint8_t		addr_a[16], addr_b[16];	/* v4 in the first 4 bytes */
	uint16_t	port_a, port_b;
	uint8_t		proto;
	uint8_t		family;		/* 4 or 6 */
};
int	weir_pkt_tuple(const struct weir_pkt *p, struct weir_tuple *t);

#endif
