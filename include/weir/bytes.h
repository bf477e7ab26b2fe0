/*
 * bytes.h - network (big-endian) byte order loads and stores at any
 * alignment.  memcpy compiles to single, possibly unaligned, moves and
 * the conversions to one bswap, so these are as fast as hand-written
 * shifts on every hot path that uses them (Crypto-PAn, IPFIX, stages).
 */
#ifndef WEIR_BYTES_H
#define WEIR_BYTES_H

#include <endian.h>
#include <stdint.h>
#include <string.h>

static inline void
weir_put16(uint8_t *p, uint16_t v)
{
	v = htobe16(v);
	memcpy(p, &v, sizeof(v));
}

static inline void
weir_put32(uint8_t *p, uint32_t v)
{
	v = htobe32(v);
	memcpy(p, &v, sizeof(v));
}

static inline void
weir_put64(uint8_t *p, uint64_t v)
{
	v = htobe64(v);
	memcpy(p, &v, sizeof(v));
}

static inline uint16_t
weir_get16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, sizeof(v));
	return be16toh(v);
}

static inline uint32_t
weir_get32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return be32toh(v);
}

static inline uint64_t
weir_get64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return be64toh(v);
}

#endif
