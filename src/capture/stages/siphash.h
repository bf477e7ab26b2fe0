/*
 * siphash.h - SipHash (Aumasson and Bernstein, 2012), a keyed 64-bit
 * PRF, for flow-hash sampling: with a secret or per-experiment key the
 * selection cannot be steered by choosing ports.
 */
#ifndef WEIR_STAGES_SIPHASH_H
#define WEIR_STAGES_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

/*
 * SipHash-c-d of len bytes at msg with the 128-bit key (k0, k1), where
 * k0 is the little-endian value of key bytes 0..7 and k1 of bytes 8..15.
 * crounds/drounds: 2/4 is the reference SipHash-2-4, 1/3 the faster
 * variant the sample stage uses.
 */
uint64_t	stage_siphash(uint64_t k0, uint64_t k1, const void *msg,
		    size_t len, int crounds, int drounds);

#endif
