/*
 * test_cryptopan.c - Crypto-PAn against the published vectors
 * (tests/data/cryptopan/vectors.tsv), prefix preservation, consistency,
 * cache transparency and key file loading.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "weir/cryptopan.h"
#include "../tap.h"

#define VECTORS	"tests/data/cryptopan/vectors.tsv"

static uint64_t rng = 0x853c49e6748fea9bull;

static uint64_t
rnd(void)
{
	/* xorshift64*: reproducible, good enough to pick test addresses */
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * 2685821657736338717ull;
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

/* Key column: 64 hex digits, or a 32-character string used as bytes. */
static int
parse_key(const char *s, uint8_t key[32])
{
	size_t n = strlen(s), i;

	if (n == 64) {
		for (i = 0; i < 32; i++) {
			int h = hexval(s[2 * i]), l = hexval(s[2 * i + 1]);

			if (h < 0 || l < 0)
				return -1;
			key[i] = (uint8_t)(h << 4 | l);
		}
		return 0;
	}
	if (n == 32) {
		memcpy(key, s, 32);
		return 0;
	}
	return -1;
}

/* Number of leading bits two byte strings share. */
static int
common_prefix(const uint8_t *a, const uint8_t *b, int nbytes)
{
	int i, bit;

	for (i = 0; i < nbytes; i++) {
		uint8_t x = a[i] ^ b[i];

		if (x == 0)
			continue;
		for (bit = 0; !(x & 0x80); bit++)
			x <<= 1;
		return i * 8 + bit;
	}
	return nbytes * 8;
}

/* b shares exactly k leading bits with a (k < nbytes * 8). */
static void
make_pair(uint8_t *a, uint8_t *b, int nbytes, int k)
{
	int i;

	for (i = 0; i < nbytes; i++) {
		a[i] = (uint8_t)rnd();
		b[i] = (uint8_t)rnd();
	}
	for (i = 0; i < k; i++) {
		uint8_t m = (uint8_t)(0x80 >> (i % 8));

		b[i / 8] = (uint8_t)((b[i / 8] & ~m) | (a[i / 8] & m));
	}
	/* bit k differs */
	b[k / 8] = (uint8_t)((b[k / 8] & ~(0x80 >> (k % 8))) |
	    (~a[k / 8] & (0x80 >> (k % 8))));
}

static void
test_vectors(void)
{
	FILE *f = fopen(VECTORS, "r");
	char line[512], *key_s, *in_s, *exp_s, *origin, *save;
	uint8_t key[32], in[16], exp[16], out[16], out2[16];
	struct weir_cryptopan *cp;
	struct weir_err err;
	int rows = 0, pass = 0, v6 = 0;

	ok(f != NULL, "open %s", VECTORS);
	if (f == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (line[0] == '#' || line[0] == '\n')
			continue;
		line[strcspn(line, "\r\n")] = '\0';
		key_s = strtok_r(line, "\t", &save);
		in_s = strtok_r(NULL, "\t", &save);
		exp_s = strtok_r(NULL, "\t", &save);
		origin = strtok_r(NULL, "\t", &save);
		rows++;
		if (key_s == NULL || in_s == NULL || exp_s == NULL ||
		    origin == NULL || parse_key(key_s, key) < 0) {
			ok(0, "vector row %d parses", rows);
			continue;
		}
		cp = weir_cryptopan_new(key, &err);
		if (cp == NULL) {
			ok(0, "vector row %d: new: %s", rows, err.msg);
			continue;
		}
		if (inet_pton(AF_INET, in_s, in) == 1 &&
		    inet_pton(AF_INET, exp_s, exp) == 1) {
			weir_cryptopan_v4(cp, in, out);
			/* second call is served by the cache */
			weir_cryptopan_v4(cp, in, out2);
			weir_cryptopan_set_cache(cp, 0);
			memset(out2 + 4, 0, 4);
			weir_cryptopan_v4(cp, in, out2 + 4);
			ok(memcmp(out, exp, 4) == 0 &&
			    memcmp(out2, exp, 4) == 0 &&
			    memcmp(out2 + 4, exp, 4) == 0,
			    "vector %d (%s): %s -> %s", rows, origin, in_s,
			    exp_s);
			pass += memcmp(out, exp, 4) == 0;
		} else if (inet_pton(AF_INET6, in_s, in) == 1 &&
		    inet_pton(AF_INET6, exp_s, exp) == 1) {
			weir_cryptopan_v6(cp, in, out);
			weir_cryptopan_v6(cp, in, out2);
			ok(memcmp(out, exp, 16) == 0 &&
			    memcmp(out2, exp, 16) == 0,
			    "vector %d (%s): %s -> %s", rows, origin, in_s,
			    exp_s);
			pass += memcmp(out, exp, 16) == 0;
			v6++;
		} else
			ok(0, "vector row %d: bad address", rows);
		weir_cryptopan_free(cp);
	}
	fclose(f);
	ok(rows == 108 && pass == 108, "all 108 vectors pass (%d of %d "
	    "rows, %d IPv6)", pass, rows, v6);
}

static struct weir_cryptopan *
ref_ctx(void)
{
	static const uint8_t key[32] = { 21, 34, 23, 141, 51, 164, 207, 128,
	    19, 10, 91, 22, 73, 144, 125, 16, 216, 152, 143, 131, 121, 121,
	    101, 39, 98, 87, 76, 45, 42, 132, 34, 2 };
	struct weir_err err;

	return weir_cryptopan_new(key, &err);
}

static void
test_prefix(void)
{
	struct weir_cryptopan *cp = ref_ctx();
	uint8_t a[16], b[16], oa[16], ob[16];
	int i, k, bad4 = 0, bad6 = 0;

	for (i = 0; i < 20000; i++) {
		k = (int)(rnd() % 32);
		make_pair(a, b, 4, k);
		weir_cryptopan_v4(cp, a, oa);
		weir_cryptopan_v4(cp, b, ob);
		if (common_prefix(a, b, 4) != k ||
		    common_prefix(oa, ob, 4) != k)
			bad4++;
	}
	ok(bad4 == 0, "IPv4 prefix preserved on 20000 pairs (%d bad)", bad4);
	for (i = 0; i < 20000; i++) {
		k = (int)(rnd() % 128);
		make_pair(a, b, 16, k);
		weir_cryptopan_v6(cp, a, oa);
		weir_cryptopan_v6(cp, b, ob);
		if (common_prefix(a, b, 16) != k ||
		    common_prefix(oa, ob, 16) != k)
			bad6++;
	}
	ok(bad6 == 0, "IPv6 prefix preserved on 20000 pairs (%d bad)", bad6);
	/* The same address twice: identical (128 shared bits). */
	make_pair(a, b, 16, 100);
	weir_cryptopan_v6(cp, a, oa);
	memcpy(ob, a, 16);
	weir_cryptopan_v6(cp, ob, ob);		/* in and out alias */
	ok(memcmp(oa, ob, 16) == 0, "IPv6 in/out may alias");
	weir_cryptopan_v4(cp, a, oa);
	memcpy(ob, a, 4);
	weir_cryptopan_v4(cp, ob, ob);
	ok(memcmp(oa, ob, 4) == 0, "IPv4 in/out may alias");
	weir_cryptopan_free(cp);
}

static void
test_consistency(void)
{
	struct weir_cryptopan *c1 = ref_ctx(), *c2 = ref_ctx(), *c3;
	uint8_t key[32], a[16], o1[16], o2[16];
	uint64_t lookups, hits;
	struct weir_err err;
	int i, diff = 0, same = 0, cachediff = 0;

	/* c2 without cache, on a reuse-heavy stream: must not matter. */
	weir_cryptopan_set_cache(c2, 0);
	for (i = 0; i < 50000; i++) {
		uint64_t r = rnd();

		memset(a, 0, sizeof(a));
		a[0] = 10;
		a[2] = (uint8_t)(r % 7);
		a[3] = (uint8_t)(r >> 8);
		if (r >> 63) {
			weir_cryptopan_v6(c1, a, o1);
			weir_cryptopan_v6(c2, a, o2);
			diff += memcmp(o1, o2, 16) != 0;
		} else {
			weir_cryptopan_v4(c1, a, o1);
			weir_cryptopan_v4(c2, a, o2);
			diff += memcmp(o1, o2, 4) != 0;
		}
	}
	ok(diff == 0, "two contexts, same key, cache on/off: same results "
	    "(%d differ)", diff);
	weir_cryptopan_stats(c1, &lookups, &hits);
	ok(lookups == 50000 && hits > 40000 && hits < lookups,
	    "cache statistics: %llu lookups, %llu hits",
	    (unsigned long long)lookups, (unsigned long long)hits);
	weir_cryptopan_stats(c2, &lookups, &hits);
	ok(lookups == 0 && hits == 0, "no lookups counted with cache off");

	/* Many distinct addresses that collide in the cache. */
	for (i = 0; i < 300000; i++) {
		uint32_t x = (uint32_t)rnd() % 200000;

		a[0] = (uint8_t)(x >> 24);
		a[1] = (uint8_t)(x >> 16);
		a[2] = (uint8_t)(x >> 8);
		a[3] = (uint8_t)x;
		weir_cryptopan_v4(c1, a, o1);
		weir_cryptopan_v4(c2, a, o2);
		cachediff += memcmp(o1, o2, 4) != 0;
	}
	ok(cachediff == 0, "cache under eviction gives the same results");

	/* Another key gives other results. */
	for (i = 0; i < 32; i++)
		key[i] = (uint8_t)rnd();
	c3 = weir_cryptopan_new(key, &err);
	ok(c3 != NULL, "context with another key");
	for (i = 0; c3 != NULL && i < 1000; i++) {
		uint64_t r = rnd();

		memcpy(a, &r, 8);
		weir_cryptopan_v4(c1, a, o1);
		weir_cryptopan_v4(c3, a, o2);
		same += memcmp(o1, o2, 4) == 0;
	}
	ok(same < 5, "another key maps differently (%d of 1000 equal)", same);
	weir_cryptopan_free(c1);
	weir_cryptopan_free(c2);
	weir_cryptopan_free(c3);
}

static int
write_file(const char *path, const void *buf, size_t n)
{
	FILE *f = fopen(path, "wb");

	if (f == NULL)
		return -1;
	if (fwrite(buf, 1, n, f) != n) {
		fclose(f);
		return -1;
	}
	return fclose(f);
}

static void
test_keyfile(void)
{
	/* The yacryptopan README key, as a 32-byte string and as hex. */
	static const char raw[] = "32-char-str-for-AES-key-and-pad.";
	static const char hex[] = "33322d636861722d7374722d666f722d"
	    "4145532d6b65792d616e642d7061642e";
	char path[] = "/tmp/weir_test_keyXXXXXX";
	char buf[200];
	uint8_t key[32], out[4], in[4] = { 192, 0, 2, 1 };
	uint8_t want[4] = { 192, 0, 125, 244 };
	struct weir_cryptopan *cp;
	struct weir_err err;
	int fd, rc;

	fd = mkstemp(path);
	ok(fd >= 0, "temporary key file");
	if (fd < 0)
		return;
	close(fd);

	write_file(path, raw, 32);
	memset(key, 0, sizeof(key));
	rc = weir_cryptopan_load_key(path, key, &err);
	ok(rc == 0 && memcmp(key, raw, 32) == 0, "raw 32-byte key file");
	cp = weir_cryptopan_new(key, &err);
	weir_cryptopan_v4(cp, in, out);
	ok(memcmp(out, want, 4) == 0, "raw key gives the yacryptopan "
	    "vector 192.0.2.1 -> 192.0.125.244");
	weir_cryptopan_free(cp);

	snprintf(buf, sizeof(buf), "  %s\n", hex);
	write_file(path, buf, strlen(buf));
	memset(key, 0, sizeof(key));
	rc = weir_cryptopan_load_key(path, key, &err);
	ok(rc == 0 && memcmp(key, raw, 32) == 0,
	    "64 hex digits with whitespace and newline");

	/* 32 characters plus a newline: neither form. */
	snprintf(buf, sizeof(buf), "%s\n", raw);
	write_file(path, buf, 33);
	err.msg[0] = '\0';
	rc = weir_cryptopan_load_key(path, key, &err);
	ok(rc < 0, "33-byte file refused");
	ok(strstr(err.msg, path) != NULL && strstr(err.msg, "32 raw bytes")
	    != NULL && strstr(err.msg, "64 hex") != NULL,
	    "error names the file and the expected forms: %s", err.msg);
	ok(strstr(err.msg, "32-char") == NULL && strstr(err.msg, "AES") ==
	    NULL, "error does not contain the key");

	/* 63 hex digits */
	write_file(path, hex, 63);
	rc = weir_cryptopan_load_key(path, key, &err);
	ok(rc < 0 && strstr(err.msg, "33322d") == NULL &&
	    strstr(err.msg, "7061642e") == NULL,
	    "63 hex digits refused without echoing them: %s", err.msg);

	/* 64 characters, one not hex */
	memcpy(buf, hex, 64);
	buf[10] = 'g';
	write_file(path, buf, 64);
	rc = weir_cryptopan_load_key(path, key, &err);
	ok(rc < 0 && strstr(err.msg, "33322d") == NULL &&
	    strstr(err.msg, "7061642e") == NULL,
	    "non-hex digit refused without echoing the key: %s", err.msg);

	write_file(path, "", 0);
	rc = weir_cryptopan_load_key(path, key, &err);
	ok(rc < 0, "empty key file refused");

	unlink(path);
	rc = weir_cryptopan_load_key(path, key, &err);
	ok(rc < 0 && strstr(err.msg, path) != NULL,
	    "missing key file: %s", err.msg);
}

int
main(void)
{
	test_vectors();
	test_prefix();
	test_consistency();
	test_keyfile();
	return tap_done();
}
