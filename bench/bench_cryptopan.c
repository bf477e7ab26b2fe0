/*
 * bench_cryptopan.c - Crypto-PAn microbenchmark, one core.
 *
 * Build (from the repository root, optimised, no sanitizers):
 *   cc -std=c11 -D_GNU_SOURCE -O2 -Iinclude bench/bench_cryptopan.c \
 *       src/lib/anon/cryptopan.c src/lib/log.c -o build/bench_cryptopan \
 *       -lcrypto -lm
 * Add -DWEIR_CP_PREFIX_BITS=0 to measure without the 16-bit prefix table.
 *
 * Usage: bench_cryptopan [scale]   (scale 1 = 10 M IPv4, 1 M IPv6)
 *
 * Prints Maddr/s (per CPU second of this thread, and per wall second)
 * for distinct IPv4 and IPv6 addresses (a counter through
 * a bijective mix, so every address is new and they arrive unordered) and
 * for a Zipf(1) draw over 50 K addresses, the reuse of real traffic, each
 * with and without the result cache.  A checksum of the outputs keeps the
 * compiler honest and must be equal with and without the cache.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "weir/cryptopan.h"

#define ZIPF_N		50000
#define ZIPF_DRAWS	10000000

/*
 * CPU time of this thread: on a shared machine it counts only the time we
 * ran, so the figure is the rate of one core (wall time is in rate_wall).
 */
static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double
wall(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double w0;

static void
report(const char *what, const char *cache, uint32_t n, double cpu,
    uint64_t chk, const char *extra)
{
	printf("%-16s %-9s %9u addr %8.2f Maddr/s cpu %8.2f wall  "
	    "(chk %016llx%s)\n", what, cache, n, n / cpu / 1e6,
	    n / (wall() - w0) / 1e6, (unsigned long long)chk, extra);
}

/* A bijection of 32-bit integers (odd multipliers and xorshifts). */
static uint32_t
mix32(uint32_t x)
{
	x ^= x >> 16;
	x *= 0x7feb352du;
	x ^= x >> 15;
	x *= 0x846ca68bu;
	x ^= x >> 16;
	return x;
}

static uint64_t
mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	x ^= x >> 31;
	return x;
}

static void
put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint64_t
sum_out(const uint8_t *o, size_t n)
{
	uint64_t s = 0;
	size_t i;

	for (i = 0; i < n; i++)
		s = s * 31 + o[i];
	return s;
}

static void
bench_v4_distinct(struct weir_cryptopan *cp, uint32_t n, const char *what)
{
	uint8_t in[4], out[4];
	uint64_t chk = 0;
	double t0, t1;
	uint32_t i;

	w0 = wall();
	t0 = now();
	for (i = 0; i < n; i++) {
		put32(in, mix32(i));
		weir_cryptopan_v4(cp, in, out);
		chk += sum_out(out, 4);
	}
	t1 = now();
	report("ipv4 distinct", what, n, t1 - t0, chk, "");
}

static void
bench_v6_distinct(struct weir_cryptopan *cp, uint32_t n, const char *what)
{
	uint8_t in[16], out[16];
	uint64_t chk = 0, h;
	double t0, t1;
	uint32_t i;
	int k;

	w0 = wall();
	t0 = now();
	for (i = 0; i < n; i++) {
		/* 2001:db8::/32 with a distinct, scattered low part */
		h = mix64(i);
		in[0] = 0x20;
		in[1] = 0x01;
		in[2] = 0x0d;
		in[3] = 0xb8;
		for (k = 0; k < 8; k++)
			in[8 + k] = (uint8_t)(h >> (8 * k));
		put32(in + 4, mix32(i) & 0xffff);
		weir_cryptopan_v6(cp, in, out);
		chk += sum_out(out, 16);
	}
	t1 = now();
	report("ipv6 distinct", what, n, t1 - t0, chk, "");
}

/* Indices drawn from Zipf(s = 1) over ZIPF_N ranks, by inverse CDF. */
static uint32_t *
zipf_draws(uint32_t n)
{
	double *cdf = malloc(ZIPF_N * sizeof(*cdf)), sum = 0;
	uint32_t *d = malloc(n * sizeof(*d)), i, lo, hi, mid;
	uint64_t r = 42;

	if (cdf == NULL || d == NULL) {
		fprintf(stderr, "out of memory\n");
		exit(1);
	}
	for (i = 0; i < ZIPF_N; i++)
		cdf[i] = (sum += 1.0 / (i + 1));
	for (i = 0; i < n; i++) {
		double u;

		r = mix64(r + 0x9e3779b97f4a7c15ull);
		u = (double)(r >> 11) / 9007199254740992.0 * sum;
		lo = 0;
		hi = ZIPF_N - 1;
		while (lo < hi) {
			mid = (lo + hi) / 2;
			if (cdf[mid] < u)
				lo = mid + 1;
			else
				hi = mid;
		}
		d[i] = lo;
	}
	free(cdf);
	return d;
}

static void
bench_zipf(struct weir_cryptopan *cp, const uint32_t *d, uint32_t n, int v6,
    const char *what)
{
	uint8_t in[16], out[16];
	uint64_t chk = 0, lookups = 0, hits = 0;
	char extra[64];
	double t0, t1;
	uint32_t i;

	memset(in, 0, sizeof(in));
	in[0] = 0x20;
	in[1] = 0x01;
	w0 = wall();
	t0 = now();
	for (i = 0; i < n; i++) {
		/* rank -> a fixed, scattered address */
		if (v6) {
			put32(in + 12, mix32(d[i]));
			put32(in + 4, mix32(d[i] ^ 0x5555u) & 0xff);
			weir_cryptopan_v6(cp, in, out);
			chk += sum_out(out, 16);
		} else {
			put32(in, mix32(d[i]));
			weir_cryptopan_v4(cp, in, out);
			chk += sum_out(out, 4);
		}
	}
	t1 = now();
	weir_cryptopan_stats(cp, &lookups, &hits);
	snprintf(extra, sizeof(extra), ", hit rate %.1f%%",
	    lookups ? 100.0 * (double)hits / (double)lookups : 0.0);
	report(v6 ? "ipv6 zipf50k" : "ipv4 zipf50k", what, n, t1 - t0, chk,
	    extra);
}

int
main(int argc, char **argv)
{
	static const uint8_t key[32] = { 21, 34, 23, 141, 51, 164, 207, 128,
	    19, 10, 91, 22, 73, 144, 125, 16, 216, 152, 143, 131, 121, 121,
	    101, 39, 98, 87, 76, 45, 42, 132, 34, 2 };
	double scale = argc > 1 ? atof(argv[1]) : 1.0;
	uint32_t n4 = (uint32_t)(10e6 * scale), n6 = (uint32_t)(1e6 * scale);
	uint32_t nz = (uint32_t)(ZIPF_DRAWS * scale), *d;
	struct weir_cryptopan *cp;
	struct weir_err err;
	double t0;
	int cache;

	if (n4 == 0 || n6 == 0 || nz == 0) {
		fprintf(stderr, "usage: bench_cryptopan [scale > 0]\n");
		return 2;
	}
	t0 = wall();
	cp = weir_cryptopan_new(key, &err);
	if (cp == NULL) {
		fprintf(stderr, "bench_cryptopan: %s\n", err.msg);
		return 1;
	}
	printf("context setup (key schedule, pad, prefix table): %.2f ms\n",
	    (wall() - t0) * 1e3);
	weir_cryptopan_free(cp);
	d = zipf_draws(nz);
	for (cache = 1; cache >= 0; cache--) {
		const char *what = cache ? "cache" : "no-cache";

		/* A fresh context per run so no run warms the next. */
		cp = weir_cryptopan_new(key, &err);
		weir_cryptopan_set_cache(cp, cache);
		bench_v4_distinct(cp, n4, what);
		weir_cryptopan_free(cp);
		cp = weir_cryptopan_new(key, &err);
		weir_cryptopan_set_cache(cp, cache);
		bench_v6_distinct(cp, n6, what);
		weir_cryptopan_free(cp);
		cp = weir_cryptopan_new(key, &err);
		weir_cryptopan_set_cache(cp, cache);
		bench_zipf(cp, d, nz, 0, what);
		weir_cryptopan_free(cp);
		cp = weir_cryptopan_new(key, &err);
		weir_cryptopan_set_cache(cp, cache);
		bench_zipf(cp, d, nz / 10, 1, what);
		weir_cryptopan_free(cp);
	}
	free(d);
	return 0;
}
