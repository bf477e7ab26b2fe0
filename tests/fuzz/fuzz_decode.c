/*
 * fuzz_decode.c - libFuzzer target for weir_decode() and weir_pkt_tuple().
 *
 * Input: the first byte selects the link type (modulo the list below),
 * the rest is the packet.  The packet is copied into a heap block of
 * exactly its length so that any read past caplen is an ASan report.
 * After decoding, the invariants of include/weir/pkt.h are checked and
 * a violation aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "weir/decode.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static const uint16_t linktypes[] = {
	WEIR_LT_EN10MB, WEIR_LT_LINUX_SLL, WEIR_LT_LINUX_SLL2, WEIR_LT_RAW,
	WEIR_LT_IPV4, WEIR_LT_IPV6, WEIR_LT_NULL, WEIR_LT_LOOP,
};

#define CHECK(c)	do { if (!(c)) abort(); } while (0)

static int
is_ip(const struct weir_layer *l)
{
	return l->kind == WEIR_L_IPV4 || l->kind == WEIR_L_IPV6;
}

static void
check(const struct weir_pkt *p)
{
	const struct weir_decoded	*d = &p->dec;
	const struct weir_layer		*l;
	unsigned			 i;
	uint32_t			 prev = 0;

	CHECK(p->decoded);
	CHECK(d->n <= WEIR_MAX_LAYERS);
	CHECK(d->hdr_end <= p->caplen);
	for (i = 0; i < d->n; i++) {
		l = &d->l[i];
		CHECK(l->kind >= WEIR_L_ETH && l->kind <= WEIR_L_OTHER_L4);
		CHECK(l->off <= p->caplen);
		CHECK(l->off >= prev);
		if (!(l->flags & WEIR_LF_TRUNC))
			CHECK((uint64_t)l->off + l->len <= p->caplen);
		/* A cut layer is the last one, and the cut is explained. */
		if (l->flags & WEIR_LF_TRUNC) {
			CHECK(i == d->n - 1u);
			CHECK((l->flags & WEIR_LF_QUOTED) ||
			    (d->flags & (WEIR_DF_TRUNC | WEIR_DF_MALFORMED)));
		}
		if (l->flags & WEIR_LF_LATERFRAG)
			CHECK(l->flags & WEIR_LF_FRAG);
		CHECK(l->off <= d->hdr_end);
		prev = l->off;
	}
	if (d->n == 0)
		CHECK(d->hdr_end == 0);
	if (d->ip == WEIR_NO_LAYER) {
		CHECK(d->inner_ip == WEIR_NO_LAYER);
		CHECK(d->l4 == WEIR_NO_LAYER);
	} else {
		CHECK(d->ip < d->n && is_ip(&d->l[d->ip]));
		CHECK(!(d->l[d->ip].flags & WEIR_LF_QUOTED));
		CHECK(d->inner_ip < d->n && d->inner_ip >= d->ip);
		CHECK(is_ip(&d->l[d->inner_ip]));
		CHECK(!(d->l[d->inner_ip].flags & WEIR_LF_QUOTED));
		for (i = 0; i < d->ip; i++)
			CHECK(!is_ip(&d->l[i]));
	}
	if (d->l4 != WEIR_NO_LAYER) {
		CHECK(d->l4 < d->n && d->l4 > d->inner_ip);
		l = &d->l[d->l4];
		CHECK(!(l->flags & WEIR_LF_QUOTED));
		CHECK(l->kind == WEIR_L_TCP || l->kind == WEIR_L_UDP ||
		    l->kind == WEIR_L_ICMP || l->kind == WEIR_L_ICMP6 ||
		    l->kind == WEIR_L_OTHER_L4);
		if (l->kind == WEIR_L_TCP && !(l->flags & WEIR_LF_TRUNC))
			CHECK(l->len >= 20 && l->len <= 60);
	}
	if (d->flags & WEIR_DF_TOODEEP)
		CHECK(d->n == WEIR_MAX_LAYERS);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct weir_pkt		 p;
	struct weir_decoded	 first;
	struct weir_tuple	 t;
	uint8_t			*buf;
	size_t			 len;

	if (size < 1)
		return 0;
	len = size - 1;
	buf = malloc(len ? len : 1);
	if (buf == NULL)
		return 0;
	memcpy(buf, data + 1, len);
	memset(&p, 0, sizeof(p));
	p.data = buf;
	p.caplen = (uint32_t)len;
	p.wirelen = (uint32_t)len;
	p.linktype = linktypes[data[0] % (sizeof(linktypes) /
	    sizeof(linktypes[0]))];
	weir_pkt_decode(&p);
	check(&p);
	if (weir_pkt_tuple(&p, &t)) {
		CHECK(t.family == 4 || t.family == 6);
		CHECK(memcmp(t.addr_a, t.addr_b, 16) < 0 ||
		    (memcmp(t.addr_a, t.addr_b, 16) == 0 &&
		    t.port_a <= t.port_b));
	}
	/* Decoding is a pure function of the bytes. */
	first = p.dec;
	p.decoded = 0;
	weir_pkt_decode(&p);
	CHECK(first.n == p.dec.n && first.flags == p.dec.flags &&
	    first.hdr_end == p.dec.hdr_end && first.l4 == p.dec.l4 &&
	    memcmp(first.l, p.dec.l, first.n * sizeof(first.l[0])) == 0);
	free(buf);
	return 0;
}
