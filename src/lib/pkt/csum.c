/*
 * csum.c - Internet checksum (RFC 1071) and incremental update (RFC 1624
 * eqn. 3).
 *
 * Sums are values of the big-endian 16-bit words of the data, as host
 * integers: the sum of the bytes 12 34 is 0x1234, so a caller may add
 * host-order pseudo-header fields (protocol, length) to a partial sum,
 * and weir_csum_fold() returns the field value to store big-endian.
 * A buffer may be summed in pieces if every piece but the last has an
 * even length.
 *
 * The bulk loop adds 8 native-order bytes at a time into a 64-bit
 * accumulator with end-around carry, which is byte-order independent
 * (RFC 1071 section 2(B)); the result is swapped once at the end on a
 * little-endian host.  Loads go through memcpy, so any alignment works.
 */
#include <stdint.h>
#include <string.h>

#include "weir/csum.h"

static inline uint64_t
add64(uint64_t acc, uint64_t v)
{
	acc += v;
	return acc + (acc < v);		/* end-around carry */
}

static inline uint32_t
fold64(uint64_t acc)
{
	acc = (acc & 0xffffffffu) + (acc >> 32);
	acc = (acc & 0xffffffffu) + (acc >> 32);
	acc = (acc & 0xffff) + (acc >> 16);
	acc = (acc & 0xffff) + (acc >> 16);
	acc = (acc & 0xffff) + (acc >> 16);
	return (uint32_t)acc;
}

uint32_t
weir_csum_partial(const void *buf, size_t len, uint32_t sum)
{
	const uint8_t	*p = buf;
	uint64_t	 acc = 0, a, b, c, d;
	uint32_t	 w32;
	uint16_t	 w16, s16;
	uint8_t		 last[2];

	while (len >= 32) {
		memcpy(&a, p, 8);
		memcpy(&b, p + 8, 8);
		memcpy(&c, p + 16, 8);
		memcpy(&d, p + 24, 8);
		acc = add64(acc, a);
		acc = add64(acc, b);
		acc = add64(acc, c);
		acc = add64(acc, d);
		p += 32;
		len -= 32;
	}
	while (len >= 8) {
		memcpy(&a, p, 8);
		acc = add64(acc, a);
		p += 8;
		len -= 8;
	}
	if (len >= 4) {
		memcpy(&w32, p, 4);
		acc = add64(acc, w32);
		p += 4;
		len -= 4;
	}
	if (len >= 2) {
		memcpy(&w16, p, 2);
		acc = add64(acc, w16);
		p += 2;
		len -= 2;
	}
	if (len) {
		/* The odd byte is the high half of a zero-padded word. */
		last[0] = p[0];
		last[1] = 0;
		memcpy(&w16, last, 2);
		acc = add64(acc, w16);
	}
	s16 = (uint16_t)fold64(acc);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	s16 = __builtin_bswap16(s16);
#endif
	a = (uint64_t)sum + s16;
	return (uint32_t)((a & 0xffffffffu) + (a >> 32));
}

uint16_t
weir_csum_fold(uint32_t sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

void
weir_csum_replace(uint8_t *csum, const uint8_t *old, const uint8_t *new_,
    size_t n)
{
	uint32_t	sum;
	size_t		i;

	/*
	 * RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m').  Unlike eqn. 2 it never
	 * turns a checksum that should be 0x0000 into 0xffff: the sum of
	 * ~HC and the words is only +0 if all of them are +0.
	 */
	sum = (uint16_t)~(csum[0] << 8 | csum[1]);
	for (i = 0; i + 1 < n; i += 2) {
		sum += (uint16_t)~(old[i] << 8 | old[i + 1]);
		sum += (uint16_t)(new_[i] << 8 | new_[i + 1]);
		sum = (sum & 0xffff) + (sum >> 16);
	}
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = ~sum & 0xffff;
	csum[0] = (uint8_t)(sum >> 8);
	csum[1] = (uint8_t)sum;
}
