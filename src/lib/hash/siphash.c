/*
 * siphash.c - SipHash-c-d, written from the paper's description
 * ("SipHash: a fast short-input PRF", section 2).
 */
#include <string.h>

#include "weir/siphash.h"

static uint64_t
le64(const uint8_t *b)
{
	return (uint64_t)b[0] | (uint64_t)b[1] << 8 | (uint64_t)b[2] << 16 |
	    (uint64_t)b[3] << 24 | (uint64_t)b[4] << 32 |
	    (uint64_t)b[5] << 40 | (uint64_t)b[6] << 48 |
	    (uint64_t)b[7] << 56;
}

uint64_t
weir_siphash(uint64_t k0, uint64_t k1, const void *msg, size_t len,
    int crounds, int drounds)
{
	const uint8_t *m = msg;
	uint64_t v0, v1, v2, v3, w;
	uint8_t last[8];
	size_t i, rest = len & 7;
	int r;

	WEIR_SIP_INIT(v0, v1, v2, v3, k0, k1);
	for (i = 0; i + 8 <= len; i += 8) {
		w = le64(m + i);
		v3 ^= w;
		for (r = 0; r < crounds; r++)
			WEIR_SIPROUND(v0, v1, v2, v3);
		v0 ^= w;
	}
	/* The last word: the remaining bytes, and len mod 256 on top. */
	memset(last, 0, sizeof(last));
	if (rest)
		memcpy(last, m + i, rest);
	last[7] = (uint8_t)len;
	w = le64(last);
	v3 ^= w;
	for (r = 0; r < crounds; r++)
		WEIR_SIPROUND(v0, v1, v2, v3);
	v0 ^= w;
	v2 ^= 0xff;
	for (r = 0; r < drounds; r++)
		WEIR_SIPROUND(v0, v1, v2, v3);
	return v0 ^ v1 ^ v2 ^ v3;
}
