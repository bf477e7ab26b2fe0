/*
 * cryptopan.c - reference Crypto-PAn (Xu, Fan, Ammar, Moon 2002) for IPv4
 * and its 128-bit generalisation for IPv6, on OpenSSL 3 AES-128-ECB.
 *
 * Output bit i is address bit i XOR the most significant bit of
 * AES_K(block_i), where block_i is the first i bits of the address
 * followed by bits i..127 of the pad (pad = AES_K(key[16..31])).  The
 * blocks of one address are independent, so all of them are built at
 * once and encrypted in one EVP_EncryptUpdate call, which lets AES-NI
 * pipeline them.  Unlike libtrace's traceanon, the pad bits are part of
 * every encrypted block: this matches the published vectors.
 *
 * Two speedups, both exact:
 *  - the first PREFIX_BITS output bits depend only on the first
 *    PREFIX_BITS address bits, and the blocks for them are the same for
 *    IPv4 and IPv6; they are computed once per key into a table of
 *    one-time-pad bits (2^16 entries, 65535 AES blocks at _new), so each
 *    address needs 16 instead of 32 (IPv4) or 112 instead of 128 (IPv6)
 *    blocks;
 *  - a 2-way set-associative cache of recent results per family, for the
 *    address reuse of real traffic.
 *
 * A context is not thread-safe (it owns its EVP context, block buffers
 * and caches); use one per thread.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "weir/bytes.h"
#include "weir/cryptopan.h"
#include "weir/log.h"

/* Bits covered by the prefix table (0 disables it; at most 16). */
#ifndef WEIR_CP_PREFIX_BITS
#define WEIR_CP_PREFIX_BITS	16
#endif
#define PREFIX_BITS		WEIR_CP_PREFIX_BITS
#if PREFIX_BITS < 0 || PREFIX_BITS > 16
#error "WEIR_CP_PREFIX_BITS must be 0..16"
#endif

#define V4_BLOCKS		(32 - PREFIX_BITS)
#define V6_BLOCKS		(128 - PREFIX_BITS)
#define CACHE4_SETS_LOG		15	/* 2 ways: 64 K IPv4 entries */
#define CACHE6_SETS_LOG		13	/* 2 ways: 16 K IPv6 entries */
#define TABLE_CHUNK		1024	/* blocks per EVP call at _new */
#define KEYFILE_MAX		4096

struct cache4 {
	uint32_t	in, out;	/* host order */
};

struct cache6 {
	uint64_t	in[2], out[2];	/* host order, [0] = high half */
};

struct weir_cryptopan {
	EVP_CIPHER_CTX	*ctx;
	EVP_CIPHER	*cipher;
	int		 use_cache;
	uint64_t	 pad_hi, pad_lo;	/* the pad, host order */
	uint64_t	 lookups, hits;
	struct cache4	*c4;		/* 2 << CACHE4_SETS_LOG */
	struct cache6	*c6;		/* 2 << CACHE6_SETS_LOG */
	uint16_t	*otp;		/* 1 << PREFIX_BITS pads */
	uint8_t		*blk4;		/* V4_BLOCKS * 16 */
	uint8_t		*blk6;		/* V6_BLOCKS * 16 */
	uint8_t		*enc;		/* 128 * 16 + 16 */
};

/* Mask of the first n bits of a 64-bit word, 0 <= n <= 64. */
static uint64_t
mask64(int n)
{
	return n == 0 ? 0 : ~(uint64_t)0 << (64 - n);
}

static int
ssl_err(struct weir_err *err, const char *what)
{
	char buf[256];
	unsigned long e = ERR_get_error();

	if (e != 0)
		ERR_error_string_n(e, buf, sizeof(buf));
	else
		strcpy(buf, "unknown error");
	ERR_clear_error();
	return weir_seterr(err, -WEIR_EUNSUPP, "crypto-pan: %s: %s", what,
	    buf);
}

/*
 * Encrypt n blocks in place into cp->enc.  The context was set up once;
 * a failure here means OpenSSL itself is broken, and carrying on would
 * leak addresses, so it is fatal.
 */
static void
encrypt_blocks(struct weir_cryptopan *cp, const uint8_t *in, int n)
{
	int outl = 0;

	if (EVP_EncryptUpdate(cp->ctx, cp->enc, &outl, in, n * 16) != 1 ||
	    outl != n * 16)
		weir_fatalx("crypto-pan: aes encryption failed");
}

/* Fill the table of the first PREFIX_BITS one-time-pad bits. */
static int
build_prefix_table(struct weir_cryptopan *cp, struct weir_err *err)
{
	uint8_t *bits = NULL, *blk = NULL;
	size_t nbits = ((size_t)1 << PREFIX_BITS) - 1;
	uint32_t x, q, base, k, chunk;
	int i, rc = 0;

	if (PREFIX_BITS == 0) {
		cp->otp[0] = 0;
		return 0;
	}
	/* bits[(1 << i) - 1 + q]: output MSB for the i-bit prefix q. */
	bits = calloc(nbits, 1);
	blk = calloc(TABLE_CHUNK, 16);
	if (bits == NULL || blk == NULL) {
		rc = weir_seterr(err, -ENOMEM, "crypto-pan: out of memory");
		goto done;
	}
	for (i = 0; i < PREFIX_BITS; i++) {
		base = ((uint32_t)1 << i) - 1;
		for (q = 0; q < (uint32_t)1 << i; q += chunk) {
			chunk = ((uint32_t)1 << i) - q;
			if (chunk > TABLE_CHUNK)
				chunk = TABLE_CHUNK;
			for (k = 0; k < chunk; k++) {
				uint64_t m = mask64(i);
				uint64_t pre = i ? (uint64_t)(q + k) <<
				    (64 - i) : 0;

				weir_put64(blk + k * 16, (pre & m) |
				    (cp->pad_hi & ~m));
				weir_put64(blk + k * 16 + 8, cp->pad_lo);
			}
			/* At most TABLE_CHUNK blocks: enc holds 129. */
			for (k = 0; k < chunk; k += 128) {
				int n = chunk - k < 128 ? (int)(chunk - k) :
				    128;
				int j;

				encrypt_blocks(cp, blk + k * 16, n);
				for (j = 0; j < n; j++)
					bits[base + q + k + (uint32_t)j] =
					    cp->enc[j * 16] >> 7;
			}
		}
	}
	for (x = 0; x < (uint32_t)1 << PREFIX_BITS; x++) {
		uint16_t o = 0;

		for (i = 0; i < PREFIX_BITS; i++) {
			q = x >> (PREFIX_BITS - i);
			o |= (uint16_t)(bits[((uint32_t)1 << i) - 1 + q] <<
			    (PREFIX_BITS - 1 - i));
		}
		cp->otp[x] = o;
	}
done:
	if (bits != NULL)
		OPENSSL_clear_free(bits, nbits);
	if (blk != NULL)
		OPENSSL_clear_free(blk, TABLE_CHUNK * 16);
	return rc;
}

/*
 * Give every cache slot a tag that cannot match a lookup in that set:
 * tag 0 everywhere except in the set 0 hashes to, which gets a tag that
 * hashes elsewhere.
 */
static uint32_t
hash4(uint32_t a)
{
	return (a * 0x9e3779b1u) >> (32 - CACHE4_SETS_LOG);
}

static uint32_t
hash6(uint64_t hi, uint64_t lo)
{
	uint64_t h = hi * 0x9e3779b97f4a7c15ull ^ lo * 0xc2b2ae3d27d4eb4full;

	h ^= h >> 29;
	return (uint32_t)(h * 0xbf58476d1ce4e5b9ull >> (64 - CACHE6_SETS_LOG));
}

static void
cache_init(struct weir_cryptopan *cp)
{
	size_t i, n4 = (size_t)2 << CACHE4_SETS_LOG;
	size_t n6 = (size_t)2 << CACHE6_SETS_LOG;
	uint32_t h0 = hash4(0), other = 1;
	uint64_t other6 = 1;

	while (hash4(other) == h0)
		other++;
	for (i = 0; i < n4; i++)
		cp->c4[i].in = (i >> 1) == h0 ? other : 0;
	h0 = hash6(0, 0);
	while (hash6(0, other6) == h0)
		other6++;
	for (i = 0; i < n6; i++) {
		cp->c6[i].in[0] = 0;
		cp->c6[i].in[1] = (i >> 1) == h0 ? other6 : 0;
	}
}

struct weir_cryptopan *
weir_cryptopan_new(const uint8_t key[32], struct weir_err *err)
{
	struct weir_cryptopan *cp;
	uint8_t pad[16];
	int i;

	if ((cp = calloc(1, sizeof(*cp))) == NULL) {
		weir_seterr(err, -ENOMEM, "crypto-pan: out of memory");
		return NULL;
	}
	cp->use_cache = 1;
	cp->c4 = calloc((size_t)2 << CACHE4_SETS_LOG, sizeof(*cp->c4));
	cp->c6 = calloc((size_t)2 << CACHE6_SETS_LOG, sizeof(*cp->c6));
	cp->otp = calloc((size_t)1 << PREFIX_BITS, sizeof(*cp->otp));
	cp->blk4 = calloc(V4_BLOCKS ? V4_BLOCKS : 1, 16);
	cp->blk6 = calloc(V6_BLOCKS, 16);
	cp->enc = calloc(129, 16);
	if (cp->c4 == NULL || cp->c6 == NULL || cp->otp == NULL ||
	    cp->blk4 == NULL || cp->blk6 == NULL || cp->enc == NULL) {
		weir_seterr(err, -ENOMEM, "crypto-pan: out of memory");
		goto fail;
	}
	cp->cipher = EVP_CIPHER_fetch(NULL, "AES-128-ECB", NULL);
	if (cp->cipher == NULL) {
		ssl_err(err, "cannot fetch AES-128-ECB");
		goto fail;
	}
	if ((cp->ctx = EVP_CIPHER_CTX_new()) == NULL ||
	    EVP_EncryptInit_ex2(cp->ctx, cp->cipher, key, NULL, NULL) != 1 ||
	    EVP_CIPHER_CTX_set_padding(cp->ctx, 0) != 1) {
		ssl_err(err, "cannot set up AES-128-ECB");
		goto fail;
	}
	encrypt_blocks(cp, key + 16, 1);
	memcpy(pad, cp->enc, 16);
	cp->pad_hi = weir_get64(pad);
	cp->pad_lo = weir_get64(pad + 8);
	OPENSSL_cleanse(pad, sizeof(pad));
	/*
	 * IPv4 blocks keep pad bits 32..127, and IPv6 blocks below 64 keep
	 * pad bits 64..127: store them once.
	 */
	for (i = 0; i < V4_BLOCKS; i++) {
		weir_put64(cp->blk4 + i * 16, cp->pad_hi);
		weir_put64(cp->blk4 + i * 16 + 8, cp->pad_lo);
	}
	for (i = 0; i < 64 - PREFIX_BITS; i++)
		weir_put64(cp->blk6 + i * 16 + 8, cp->pad_lo);
	if (build_prefix_table(cp, err) < 0)
		goto fail;
	cache_init(cp);
	OPENSSL_cleanse(cp->enc, 129 * 16);
	return cp;
fail:
	weir_cryptopan_free(cp);
	return NULL;
}

void
weir_cryptopan_free(struct weir_cryptopan *cp)
{
	if (cp == NULL)
		return;
	EVP_CIPHER_CTX_free(cp->ctx);
	EVP_CIPHER_free(cp->cipher);
	/* Everything below is derived from the key: wipe it. */
	if (cp->c4 != NULL)
		OPENSSL_clear_free(cp->c4,
		    ((size_t)2 << CACHE4_SETS_LOG) * sizeof(*cp->c4));
	if (cp->c6 != NULL)
		OPENSSL_clear_free(cp->c6,
		    ((size_t)2 << CACHE6_SETS_LOG) * sizeof(*cp->c6));
	if (cp->otp != NULL)
		OPENSSL_clear_free(cp->otp,
		    ((size_t)1 << PREFIX_BITS) * sizeof(*cp->otp));
	if (cp->blk4 != NULL)
		OPENSSL_clear_free(cp->blk4, (V4_BLOCKS ? V4_BLOCKS : 1) * 16);
	if (cp->blk6 != NULL)
		OPENSSL_clear_free(cp->blk6, V6_BLOCKS * 16);
	if (cp->enc != NULL)
		OPENSSL_clear_free(cp->enc, 129 * 16);
	OPENSSL_cleanse(cp, sizeof(*cp));
	free(cp);
}

void
weir_cryptopan_set_cache(struct weir_cryptopan *cp, int on)
{
	cp->use_cache = on != 0;
}

void
weir_cryptopan_stats(const struct weir_cryptopan *cp, uint64_t *lookups,
    uint64_t *hits)
{
	if (lookups != NULL)
		*lookups = cp->lookups;
	if (hits != NULL)
		*hits = cp->hits;
}

static uint32_t
anon4(struct weir_cryptopan *cp, uint32_t a)
{
	uint32_t r = 0, pad32 = (uint32_t)(cp->pad_hi >> 32);
	uint32_t m = (uint32_t)(mask64(PREFIX_BITS) >> 32);
	const uint8_t *e = cp->enc;
	uint8_t *b = cp->blk4;
	int i;

	/* Only the first 32 bits vary; bits 32..127 are the pad's. */
	for (i = PREFIX_BITS; i < 32; i++, b += 16) {
		weir_put32(b, (a & m) | (pad32 & ~m));
		m = m >> 1 | (uint32_t)1 << 31;
	}
	if (V4_BLOCKS > 0)
		encrypt_blocks(cp, cp->blk4, V4_BLOCKS);
	for (i = PREFIX_BITS; i < 32; i++, e += 16)
		r |= (uint32_t)(*e >> 7) << (31 - i);
#if PREFIX_BITS > 0
	r |= (uint32_t)cp->otp[a >> (32 - PREFIX_BITS)] << (32 - PREFIX_BITS);
#endif
	return a ^ r;
}

void
weir_cryptopan_v4(struct weir_cryptopan *cp, const uint8_t in[4],
    uint8_t out[4])
{
	uint32_t a = weir_get32(in), r;
	struct cache4 *s;

	if (!cp->use_cache) {
		weir_put32(out, anon4(cp, a));
		return;
	}
	cp->lookups++;
	s = &cp->c4[hash4(a) << 1];
	if (s[0].in == a) {
		cp->hits++;
		weir_put32(out, s[0].out);
		return;
	}
	if (s[1].in == a) {
		struct cache4 t = s[1];

		/* Most recently used first: the older one is evicted. */
		s[1] = s[0];
		s[0] = t;
		cp->hits++;
		weir_put32(out, t.out);
		return;
	}
	r = anon4(cp, a);
	s[1] = s[0];
	s[0].in = a;
	s[0].out = r;
	weir_put32(out, r);
}

static void
anon6(struct weir_cryptopan *cp, uint64_t hi, uint64_t lo, uint64_t *ohi,
    uint64_t *olo)
{
	uint64_t rh = 0, rl = 0, m, ph = cp->pad_hi, pl = cp->pad_lo;
	uint8_t *b = cp->blk6;
	const uint8_t *e = cp->enc;
	int i;

	/*
	 * Blocks PREFIX_BITS..63 vary in the high half only (the low half,
	 * the pad's, was stored at _new); blocks 64..127 carry the whole high
	 * half of the address.  m is the mask of the first i bits.
	 */
	m = mask64(PREFIX_BITS);
	for (i = PREFIX_BITS; i < 64; i++, b += 16) {
		weir_put64(b, (hi & m) | (ph & ~m));
		m = m >> 1 | (uint64_t)1 << 63;
	}
	m = 0;
	for (; i < 128; i++, b += 16) {
		weir_put64(b, hi);
		weir_put64(b + 8, (lo & m) | (pl & ~m));
		m = m >> 1 | (uint64_t)1 << 63;
	}
	encrypt_blocks(cp, cp->blk6, V6_BLOCKS);
	for (i = PREFIX_BITS; i < 64; i++, e += 16)
		rh |= (uint64_t)(*e >> 7) << (63 - i);
	for (; i < 128; i++, e += 16)
		rl |= (uint64_t)(*e >> 7) << (127 - i);
#if PREFIX_BITS > 0
	rh |= (uint64_t)cp->otp[hi >> (64 - PREFIX_BITS)] << (64 - PREFIX_BITS);
#endif
	*ohi = hi ^ rh;
	*olo = lo ^ rl;
}

void
weir_cryptopan_v6(struct weir_cryptopan *cp, const uint8_t in[16],
    uint8_t out[16])
{
	uint64_t hi = weir_get64(in), lo = weir_get64(in + 8), oh, ol;
	struct cache6 *s, t;

	if (!cp->use_cache) {
		anon6(cp, hi, lo, &oh, &ol);
		goto out;
	}
	cp->lookups++;
	s = &cp->c6[hash6(hi, lo) << 1];
	if (s[0].in[0] == hi && s[0].in[1] == lo) {
		cp->hits++;
		oh = s[0].out[0];
		ol = s[0].out[1];
		goto out;
	}
	if (s[1].in[0] == hi && s[1].in[1] == lo) {
		t = s[1];
		s[1] = s[0];
		s[0] = t;
		cp->hits++;
		oh = t.out[0];
		ol = t.out[1];
		goto out;
	}
	anon6(cp, hi, lo, &oh, &ol);
	s[1] = s[0];
	s[0].in[0] = hi;
	s[0].in[1] = lo;
	s[0].out[0] = oh;
	s[0].out[1] = ol;
out:
	weir_put64(out, oh);
	weir_put64(out + 8, ol);
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int
is_space(int c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' ||
	    c == '\v' || c == '\f';
}

int
weir_cryptopan_load_key(const char *path, uint8_t key[32],
    struct weir_err *err)
{
	uint8_t buf[KEYFILE_MAX + 1];
	size_t len = 0, b, e;
	ssize_t r;
	int fd, rc = 0, i;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return weir_seterr(err, -errno, "key file '%s': %s", path,
		    strerror(errno));
	while (len < sizeof(buf)) {
		r = read(fd, buf + len, sizeof(buf) - len);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			rc = weir_seterr(err, -errno, "key file '%s': %s", path,
			    strerror(errno));
			goto done;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	if (len > KEYFILE_MAX) {
		rc = weir_seterr(err, -WEIR_EFORMAT, "key file '%s': too "
		    "large, expected exactly 32 raw bytes or 64 hex digits",
		    path);
		goto done;
	}
	/* 32 bytes are taken as raw even if they happen to be text. */
	if (len == 32) {
		memcpy(key, buf, 32);
		goto done;
	}
	for (b = 0; b < len && is_space(buf[b]); b++)
		;
	for (e = len; e > b && is_space(buf[e - 1]); e--)
		;
	if (e - b != 64) {
		rc = weir_seterr(err, -WEIR_EFORMAT, "key file '%s': %zu "
		    "bytes, expected exactly 32 raw bytes (no newline) or 64 "
		    "hex digits with optional surrounding whitespace", path,
		    len);
		goto done;
	}
	for (i = 0; i < 32; i++) {
		int h = hexval(buf[b + 2 * (size_t)i]);
		int l = hexval(buf[b + 2 * (size_t)i + 1]);

		if (h < 0 || l < 0) {
			rc = weir_seterr(err, -WEIR_EFORMAT, "key file '%s': "
			    "not 64 hex digits, expected exactly 32 raw bytes "
			    "or 64 hex digits with optional surrounding "
			    "whitespace", path);
			OPENSSL_cleanse(key, 32);
			goto done;
		}
		key[i] = (uint8_t)(h << 4 | l);
	}
done:
	OPENSSL_cleanse(buf, sizeof(buf));
	close(fd);
	return rc;
}
