/*
 * siphash.h - SipHash (Aumasson and Bernstein, 2012), a keyed 64-bit
 * PRF: flow-hash sampling and the flow table's index hash use it, so
 * that with a secret or per-run key neither the selection nor the hash
 * chains can be steered by choosing addresses and ports.
 *
 * k0 is the little-endian value of key bytes 0..7, k1 of bytes 8..15.
 */
#ifndef WEIR_SIPHASH_H
#define WEIR_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

#define WEIR_SIP_ROTL(x, b)	(uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define WEIR_SIPROUND(v0, v1, v2, v3) do {				\
	v0 += v1; v1 = WEIR_SIP_ROTL(v1, 13); v1 ^= v0;			\
	v0 = WEIR_SIP_ROTL(v0, 32);					\
	v2 += v3; v3 = WEIR_SIP_ROTL(v3, 16); v3 ^= v2;			\
	v0 += v3; v3 = WEIR_SIP_ROTL(v3, 21); v3 ^= v0;			\
	v2 += v1; v1 = WEIR_SIP_ROTL(v1, 17); v1 ^= v2;			\
	v2 = WEIR_SIP_ROTL(v2, 32);					\
} while (0)
#define WEIR_SIP_INIT(v0, v1, v2, v3, k0, k1) do {			\
	v0 = (k0) ^ 0x736f6d6570736575ULL;				\
	v1 = (k1) ^ 0x646f72616e646f6dULL;				\
	v2 = (k0) ^ 0x6c7967656e657261ULL;				\
	v3 = (k1) ^ 0x7465646279746573ULL;				\
} while (0)

/*
 * SipHash-c-d of len bytes at msg.  crounds/drounds: 2/4 is the
 * reference SipHash-2-4, 1/3 the faster variant Weir uses.
 */
uint64_t	weir_siphash(uint64_t k0, uint64_t k1, const void *msg,
		    size_t len, int crounds, int drounds);

/*
 * SipHash-1-3 of the 8n-byte message whose little-endian 64-bit words
 * are w[0..n-1] (on a little-endian host: the bytes of w): equal to
 * weir_siphash(k0, k1, w, 8 * n, 1, 3), inline for the flow table's
 * per-packet key hash.
 */
static inline uint64_t
weir_siphash13w(uint64_t k0, uint64_t k1, const uint64_t *w, unsigned n)
{
	uint64_t v0, v1, v2, v3, b = (uint64_t)(8 * n) << 56;
	unsigned i;

	WEIR_SIP_INIT(v0, v1, v2, v3, k0, k1);
	for (i = 0; i < n; i++) {
		v3 ^= w[i];
		WEIR_SIPROUND(v0, v1, v2, v3);
		v0 ^= w[i];
	}
	v3 ^= b;
	WEIR_SIPROUND(v0, v1, v2, v3);
	v0 ^= b;
	v2 ^= 0xff;
	WEIR_SIPROUND(v0, v1, v2, v3);
	WEIR_SIPROUND(v0, v1, v2, v3);
	WEIR_SIPROUND(v0, v1, v2, v3);
	return v0 ^ v1 ^ v2 ^ v3;
}

#endif
