/*
 * cryptopan.h - prefix-preserving address anonymization (Crypto-PAn,
 * Xu, Fan, Ammar, Moon 2002), IPv4 and its 128-bit IPv6 generalisation.
 *
 * The key is 32 bytes: bytes 0..15 are the AES-128 key, bytes 16..31 are
 * encrypted once to make the pad.  The context never exposes the key.
 */
#ifndef WEIR_CRYPTOPAN_H
#define WEIR_CRYPTOPAN_H

#include <stdint.h>

#include "weir/err.h"

struct weir_cryptopan;

/* Returns NULL on failure (err says why). */
struct weir_cryptopan	*weir_cryptopan_new(const uint8_t key[32],
			    struct weir_err *err);
void			 weir_cryptopan_free(struct weir_cryptopan *cp);

/* Addresses in network byte order; in and out may alias. */
void	weir_cryptopan_v4(struct weir_cryptopan *cp, const uint8_t in[4],
	    uint8_t out[4]);
void	weir_cryptopan_v6(struct weir_cryptopan *cp, const uint8_t in[16],
	    uint8_t out[16]);

/*
 * Result cache (on by default): lookups and hits since _new.  The cache
 * only makes repeated addresses faster; results are identical with it
 * off (for benchmarks and tests).
 */
void	weir_cryptopan_stats(const struct weir_cryptopan *cp,
	    uint64_t *lookups, uint64_t *hits);
void	weir_cryptopan_set_cache(struct weir_cryptopan *cp, int on);

/*
 * Read a key file: exactly 32 raw bytes, or 64 hex digits with optional
 * surrounding whitespace.  The error names the file, never the content.
 */
int	weir_cryptopan_load_key(const char *path, uint8_t key[32],
	    struct weir_err *err);

#endif
