/*
 * csum.h - Internet checksum (RFC 1071) and incremental update (RFC 1624).
 */
#ifndef WEIR_CSUM_H
#define WEIR_CSUM_H

#include <stddef.h>
#include <stdint.h>

/* One's complement sum of len bytes, folded to 32 bits, not inverted. */
uint32_t	weir_csum_partial(const void *buf, size_t len, uint32_t sum);
/* Fold and invert: the checksum field value. */
uint16_t	weir_csum_fold(uint32_t sum);
/*
 * Update the 16-bit checksum field at csum (network byte order, any
 * alignment) for a change of n bytes from old to new at an even offset
 * from the start of the checksummed data.  n must be even.
 */
void		weir_csum_replace(uint8_t *csum, const uint8_t *old,
		    const uint8_t *new_, size_t n);

#endif
