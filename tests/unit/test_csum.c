/*
 * test_csum.c - Internet checksum: RFC 1071 and RFC 1624 examples, odd
 * lengths and unaligned buffers against a naive reference, and the
 * incremental update against full recomputation on random data.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "weir/csum.h"
#include "../tap.h"

/* Straight from RFC 1071 section 4.1, one 16-bit word at a time. */
static uint16_t
ref_sum(const uint8_t *p, size_t len)
{
	uint32_t	sum = 0;

	while (len > 1) {
		sum += (uint32_t)(p[0] << 8 | p[1]);
		p += 2;
		len -= 2;
	}
	if (len > 0)
		sum += (uint32_t)p[0] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

static uint16_t
ref_csum(const uint8_t *p, size_t len)
{
	return (uint16_t)~ref_sum(p, len);
}

/* Deterministic generator so failures reproduce (xorshift64*). */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t
rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (uint32_t)((rng_state * 0x2545f4914f6cdd1dull) >> 32);
}

static void
test_vectors(void)
{
	/* RFC 1071 section 3, numerical example. */
	static const uint8_t rfc1071[] = {
		0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7
	};
	/* IPv4 header with its checksum 0xb861 in place (bytes 10-11). */
	static const uint8_t ip[] = {
		0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00,
		0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00, 0x01,
		0xc0, 0xa8, 0x00, 0xc7
	};
	uint8_t		ipz[sizeof(ip)];
	uint8_t		f[2];
	uint32_t	s;

	s = weir_csum_partial(rfc1071, sizeof(rfc1071), 0);
	ok(weir_csum_fold(s) == (uint16_t)~0xddf2,
	    "rfc 1071 example: sum 0xddf2 (got 0x%04x)",
	    (uint16_t)~weir_csum_fold(s));
	ok(weir_csum_fold(s) == 0x220d, "rfc 1071 example: checksum 0x220d");
	/* The example's byte-order independence claim: same sum in pieces. */
	s = weir_csum_partial(rfc1071, 4, 0);
	s = weir_csum_partial(rfc1071 + 4, 4, s);
	ok(weir_csum_fold(s) == 0x220d, "rfc 1071 example in two pieces");

	memcpy(ipz, ip, sizeof(ip));
	ipz[10] = ipz[11] = 0;
	ok(weir_csum_fold(weir_csum_partial(ipz, sizeof(ipz), 0)) == 0xb861,
	    "ipv4 header checksum 0xb861");
	ok(weir_csum_fold(weir_csum_partial(ip, sizeof(ip), 0)) == 0,
	    "ipv4 header verifies to 0");

	ok(weir_csum_fold(0) == 0xffff, "fold(0) = 0xffff");
	ok(weir_csum_fold(0xffff) == 0, "fold(0xffff) = 0");
	ok(weir_csum_fold(0x0001fffe) == 0, "fold(0x1fffe) = 0");
	ok(weir_csum_fold(0xffffffff) == 0, "fold(0xffffffff) = 0");
	/* A host-order pseudo-header field can be added to a sum. */
	s = weir_csum_partial(rfc1071, sizeof(rfc1071), 17 + 0x20);
	ok(weir_csum_fold(s) == (uint16_t)~(0xddf2 + 0x31),
	    "host-order value added to a partial sum");

	/* RFC 1624 section 4: HC 0xdd2f, m 0x5555 -> m' 0x3285 gives
	   0x0000 (eqn. 2 would wrongly give 0xffff). */
	f[0] = 0xdd;
	f[1] = 0x2f;
	weir_csum_replace(f, (const uint8_t []){ 0x55, 0x55 },
	    (const uint8_t []){ 0x32, 0x85 }, 2);
	ok(f[0] == 0x00 && f[1] == 0x00,
	    "rfc 1624 example gives 0x0000 (got 0x%02x%02x)", f[0], f[1]);
	/* and back again */
	weir_csum_replace(f, (const uint8_t []){ 0x32, 0x85 },
	    (const uint8_t []){ 0x55, 0x55 }, 2);
	ok(f[0] == 0xdd && f[1] == 0x2f, "rfc 1624 example reversed");
}

static void
test_lengths(void)
{
	uint8_t		 buf[600 + 16];
	size_t		 len, al, cut;
	unsigned	 bad = 0, badsplit = 0, n = 0;
	uint32_t	 s;

	for (len = 0; len < sizeof(buf); len++)
		buf[len] = (uint8_t)rnd();
	/* Every length 0..600 at every alignment 0..15. */
	for (al = 0; al < 16; al++) {
		for (len = 0; len <= 600; len++) {
			n++;
			s = weir_csum_partial(buf + al, len, 0);
			if (weir_csum_fold(s) != ref_csum(buf + al, len))
				bad++;
			/* Two pieces split at an even offset. */
			cut = (len / 2) & ~(size_t)1;
			s = weir_csum_partial(buf + al, cut, 0);
			s = weir_csum_partial(buf + al + cut, len - cut, s);
			if (weir_csum_fold(s) != ref_csum(buf + al, len))
				badsplit++;
		}
	}
	ok(bad == 0, "%u lengths x alignments match the reference (%u bad)",
	    n, bad);
	ok(badsplit == 0, "split sums match the reference (%u bad)", badsplit);

	/* All ones and all zeros: the one's complement corners. */
	memset(buf, 0xff, sizeof(buf));
	ok(weir_csum_fold(weir_csum_partial(buf + 1, 601, 0)) ==
	    ref_csum(buf + 1, 601), "all-ones buffer, odd length, unaligned");
	ok(weir_csum_fold(weir_csum_partial(buf, 600, 0)) == 0x0000,
	    "all-ones buffer sums to 0xffff");
	memset(buf, 0, sizeof(buf));
	ok(weir_csum_fold(weir_csum_partial(buf + 3, 77, 0)) == 0xffff,
	    "all-zero buffer checksum 0xffff");
	/* Large buffer: many carries out of 64 bits. */
	{
		static uint8_t big[1 << 17];

		memset(big, 0xff, sizeof(big));
		big[5] = 0x12;
		ok(weir_csum_fold(weir_csum_partial(big + 1, sizeof(big) - 1,
		    0)) == ref_csum(big + 1, sizeof(big) - 1),
		    "128 KiB nearly all-ones buffer");
	}
}

/* Set word w (at even byte offset) so the whole buffer sums to 0xffff. */
static void
force_zero_csum(uint8_t *d, size_t len, size_t w)
{
	uint16_t	rest;

	d[w] = d[w + 1] = 0;
	rest = ref_sum(d, len);
	d[w] = (uint8_t)(~rest >> 8);
	d[w + 1] = (uint8_t)~rest;
}

static void
test_replace(void)
{
	uint8_t		 d[128], old[16], f[2];
	uint16_t	 want;
	size_t		 len, off, n, i;
	unsigned	 trial, bad = 0, zeros = 0, fromzero = 0;
	const unsigned	 ntrials = 20000;

	for (trial = 0; trial < ntrials; trial++) {
		len = 2 * (1 + rnd() % 64);
		for (i = 0; i < len; i++)
			d[i] = (uint8_t)rnd();
		n = 2 * (1 + rnd() % 8);
		if (n > len)
			n = len;
		off = 2 * (rnd() % ((len - n) / 2 + 1));
		/* A quarter of the trials start from checksum 0x0000. */
		if (trial % 4 == 1)
			force_zero_csum(d, len, off);
		want = ref_csum(d, len);
		if (want == 0)
			fromzero++;
		f[0] = (uint8_t)(want >> 8);
		f[1] = (uint8_t)want;
		memcpy(old, d + off, n);
		for (i = 0; i < n; i++)
			d[off + i] = (uint8_t)rnd();
		/* A quarter end on 0x0000; some change nothing at all. */
		if (trial % 4 == 2)
			force_zero_csum(d, len, off + n - 2);
		if (trial % 16 == 3)
			memcpy(d + off, old, n);
		weir_csum_replace(f, old, d + off, n);
		want = ref_csum(d, len);
		if (want == 0)
			zeros++;
		if ((uint16_t)(f[0] << 8 | f[1]) != want) {
			if (bad++ < 5)
				printf("# trial %u: got 0x%02x%02x want 0x%04x\n",
				    trial, f[0], f[1], want);
		}
	}
	ok(bad == 0, "%u random replacements match full recomputation "
	    "(%u bad)", ntrials, bad);
	ok(zeros >= ntrials / 4, "%u trials ended on checksum 0x0000", zeros);
	ok(fromzero >= ntrials / 4, "%u trials started from checksum 0x0000",
	    fromzero);
}

int
main(void)
{
	test_vectors();
	test_lengths();
	test_replace();
	return tap_done();
}
