/*
 * test_anonymize.c - the anonymize stage on hand-built packets and real
 * traces.
 *
 * Expected addresses come from the published Crypto-PAn vectors
 * (tests/data/cryptopan/vectors.tsv, key of the original distribution);
 * checksums are verified by full RFC 1071 recomputation with a checksum
 * routine written here, independent of src/lib/pkt/csum.c.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <pcap/pcap.h>

#include "weir/cryptopan.h"
#include "weir/decode.h"
#include "weir/module.h"
#include "../tap.h"

extern const struct weir_module weir_mod_anonymize;

#define KEY_HEX "1522178d33a4cf80130a5b1649907d10" \
		"d8988f837979652762574c2d2a842202"

/* Pairs from vectors.tsv (ref-sample-trace and Yawning/cryptopan). */
static const char *const vec[][2] = {
	{ "24.5.0.80", "100.9.15.210" },		/* A */
	{ "208.234.120.210", "227.154.67.17" },		/* B */
	{ "192.102.249.13", "252.138.62.131" },		/* C */
	{ "209.238.72.3", "226.6.119.243" },		/* D */
	{ "2001:db8::1", "4401:2bc:603f:d91d:27f:ff8e:e6f1:dc1e" },
	{ "2001:db8::2", "4401:2bc:603f:d91d:27f:ff8e:e6f1:dc1c" },
	{ "::1", "78ff:f001:9fc0:20df:8380:b1f1:704:ed" },
};
enum { A, B, C, D, X6, Y6, R6 };

static uint8_t orig[7][16], anon[7][16];
static char keypath[64];

/* ---- an independent Internet checksum ---- */

static uint32_t
sum16(const uint8_t *b, size_t n, uint32_t s)
{
	size_t i;

	for (i = 0; i + 1 < n; i += 2)
		s += (uint32_t)(b[i] << 8 | b[i + 1]);
	if (n & 1)
		s += (uint32_t)b[n - 1] << 8;
	return s;
}

static uint16_t
fold(uint32_t s)
{
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

static uint16_t
rd16(const uint8_t *b)
{
	return (uint16_t)(b[0] << 8 | b[1]);
}

static void
wr16(uint8_t *b, uint16_t v)
{
	b[0] = (uint8_t)(v >> 8);
	b[1] = (uint8_t)v;
}

static int
ip4_ok(const uint8_t *ip)
{
	return fold(sum16(ip, (size_t)(ip[0] & 0x0f) * 4, 0)) == 0;
}

static void
ip4_fill(uint8_t *ip)
{
	wr16(ip + 10, 0);
	wr16(ip + 10, fold(sum16(ip, (size_t)(ip[0] & 0x0f) * 4, 0)));
}

/*
 * Sum of the pseudo-header of a transport segment of len bytes; src and
 * dst point to the addresses (4 or 16 bytes).
 */
static uint32_t
pseudo(const uint8_t *src, const uint8_t *dst, int alen, uint8_t proto,
    size_t len)
{
	uint32_t s = sum16(src, (size_t)alen, 0);

	s = sum16(dst, (size_t)alen, s);
	return s + proto + (uint32_t)(len >> 16) + (uint32_t)(len & 0xffff);
}

/* Verify (or with fill, compute) a transport checksum at field offset. */
static int
l4_sum(const uint8_t *src, const uint8_t *dst, int alen, uint8_t proto,
    uint8_t *l4, size_t len, size_t field, int fill)
{
	uint32_t s = proto == 1 ? 0 : pseudo(src, dst, alen, proto, len);

	if (fill) {
		wr16(l4 + field, 0);
		wr16(l4 + field, fold(sum16(l4, len, s)));
		if (proto == 17 && rd16(l4 + field) == 0)
			wr16(l4 + field, 0xffff);
		return 1;
	}
	return fold(sum16(l4, len, s)) == 0;
}

/* ---- packet builders ---- */

static size_t
put_eth(uint8_t *b, uint16_t et)
{
	static const uint8_t mac[12] = { 2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2 };

	memcpy(b, mac, 12);
	wr16(b + 12, et);
	return 14;
}

static size_t
put_ip4(uint8_t *b, int src, int dst, uint8_t proto, size_t payload)
{
	memset(b, 0, 20);
	b[0] = 0x45;
	wr16(b + 2, (uint16_t)(20 + payload));
	wr16(b + 4, 0x1234);
	b[8] = 64;
	b[9] = proto;
	memcpy(b + 12, orig[src], 4);
	memcpy(b + 16, orig[dst], 4);
	ip4_fill(b);
	return 20;
}

static size_t
put_ip6(uint8_t *b, int src, int dst, uint8_t nh, size_t payload)
{
	memset(b, 0, 40);
	b[0] = 0x60;
	wr16(b + 4, (uint16_t)payload);
	b[6] = nh;
	b[7] = 64;
	memcpy(b + 8, orig[src], 16);
	memcpy(b + 24, orig[dst], 16);
	return 40;
}

static size_t
put_tcp(uint8_t *b, const char *payload)
{
	size_t n = strlen(payload);

	memset(b, 0, 20);
	wr16(b, 40000);
	wr16(b + 2, 80);
	b[4] = 0x11;
	b[8] = 0x22;
	b[12] = 0x50;
	b[13] = 0x18;
	wr16(b + 14, 512);
	memcpy(b + 20, payload, n);
	return 20 + n;
}

static size_t
put_udp(uint8_t *b, const char *payload)
{
	size_t n = strlen(payload);

	wr16(b, 5000);
	wr16(b + 2, 33434);
	wr16(b + 4, (uint16_t)(8 + n));
	wr16(b + 6, 0);
	memcpy(b + 8, payload, n);
	return 8 + n;
}

/* ---- running the stage ---- */

struct run {
	struct weir_counter	c[WEIR_MAX_COUNTERS];
	size_t			nc;
	int			rc;
	char			msg[512];
};

static uint64_t
counter(const struct run *r, const char *name)
{
	size_t i;

	for (i = 0; i < r->nc; i++)
		if (strcmp(r->c[i].name, name) == 0)
			return r->c[i].value;
	return UINT64_MAX;
}

/* Run the stage with extra config (a JSON fragment) over one packet. */
static int
run_stage(const char *extra, uint8_t *data, uint32_t caplen,
    uint16_t linktype, struct run *r)
{
	struct weir_pkt pkt, *pp = &pkt;
	struct weir_batch b = { &pp, 1 };
	struct weir_env env;
	struct weir_err err;
	char js[1024];
	json_t *conf;
	void *st = NULL;

	memset(r, 0, sizeof(*r));
	memset(&env, 0, sizeof(env));
	if (strstr(extra, "netblock") == NULL)
		snprintf(js, sizeof(js), "{\"type\": \"anonymize\", "
		    "\"key_file\": \"%s\"%s}", keypath, extra);
	else
		snprintf(js, sizeof(js), "{\"type\": \"anonymize\"%s}",
		    extra);
	conf = json_loads(js, 0, NULL);
	if (conf == NULL) {
		r->rc = -1;
		return -1;
	}
	err.msg[0] = '\0';
	if ((r->rc = weir_mod_anonymize.check(conf, NULL, &err)) < 0 ||
	    (r->rc = weir_mod_anonymize.open(&st, conf, &env, &err)) < 0) {
		snprintf(r->msg, sizeof(r->msg), "%s", err.msg);
		json_decref(conf);
		return r->rc;
	}
	memset(&pkt, 0, sizeof(pkt));
	pkt.data = data;
	pkt.caplen = caplen;
	pkt.wirelen = caplen;
	pkt.linktype = linktype;
	r->rc = weir_mod_anonymize.packet(st, &b);
	r->nc = weir_mod_anonymize.stats(st, r->c, WEIR_MAX_COUNTERS);
	weir_mod_anonymize.close(st, &err);
	json_decref(conf);
	return r->rc;
}

/* ---- the hand-built packets ---- */

static void
test_ipv4_tcp(void)
{
	uint8_t pkt[128], p[128];
	size_t n, ipo = 14, to = 34;
	struct run r;

	n = put_eth(pkt, 0x0800);
	n += put_ip4(pkt + n, A, B, 6, 31);
	n += put_tcp(pkt + n, "hello, world, an odd length");
	l4_sum(pkt + 26, pkt + 30, 4, 6, pkt + to, n - to, 16, 1);
	ok(n == 14 + 20 + 20 + 27 && ip4_ok(pkt + ipo) && l4_sum(pkt + 26,
	    pkt + 30, 4, 6, pkt + to, n - to, 16, 0), "ipv4/tcp built");

	memcpy(p, pkt, n);
	run_stage("", p, (uint32_t)n, 1, &r);
	ok(r.rc == 0 && memcmp(p + ipo + 12, anon[A], 4) == 0 &&
	    memcmp(p + ipo + 16, anon[B], 4) == 0,
	    "ipv4/tcp: both addresses are the Crypto-PAn vectors");
	ok(ip4_ok(p + ipo) && l4_sum(p + 26, p + 30, 4, 6, p + to, n - to,
	    16, 0), "ipv4/tcp update: ip and tcp checksums verify");
	ok(memcmp(p + to, pkt + to, 16) == 0 && memcmp(p + to + 18,
	    pkt + to + 18, n - to - 18) == 0 && memcmp(p, pkt, 14) == 0,
	    "ipv4/tcp: nothing else changed");
	ok(counter(&r, "packets_anonymized") == 1 &&
	    counter(&r, "addresses_v4") == 2 &&
	    counter(&r, "cache_lookups") == 2 &&
	    counter(&r, "skipped_truncated") == 0, "ipv4/tcp counters");

	memcpy(p, pkt, n);
	run_stage(", \"checksums\": \"blank\"", p, (uint32_t)n, 1, &r);
	ok(memcmp(p + ipo + 12, anon[A], 4) == 0 && rd16(p + ipo + 10) == 0 &&
	    rd16(p + to + 16) == 0, "ipv4/tcp blank: both checksums zero");

	memcpy(p, pkt, n);
	run_stage(", \"checksums\": \"leave\"", p, (uint32_t)n, 1, &r);
	ok(memcmp(p + ipo + 16, anon[B], 4) == 0 &&
	    memcmp(p + ipo + 10, pkt + ipo + 10, 2) == 0 &&
	    memcmp(p + to + 16, pkt + to + 16, 2) == 0 && !ip4_ok(p + ipo),
	    "ipv4/tcp leave: checksums untouched (now wrong)");

	memcpy(p, pkt, n);
	run_stage(", \"addresses\": \"src\"", p, (uint32_t)n, 1, &r);
	ok(memcmp(p + ipo + 12, anon[A], 4) == 0 &&
	    memcmp(p + ipo + 16, orig[B], 4) == 0 && ip4_ok(p + ipo) &&
	    l4_sum(p + 26, p + 30, 4, 6, p + to, n - to, 16, 0) &&
	    counter(&r, "addresses_v4") == 1,
	    "ipv4/tcp src only: dst kept, checksums verify");

	memcpy(p, pkt, n);
	run_stage(", \"addresses\": \"dst\"", p, (uint32_t)n, 1, &r);
	ok(memcmp(p + ipo + 12, orig[A], 4) == 0 &&
	    memcmp(p + ipo + 16, anon[B], 4) == 0 && ip4_ok(p + ipo) &&
	    l4_sum(p + 26, p + 30, 4, 6, p + to, n - to, 16, 0),
	    "ipv4/tcp dst only: src kept, checksums verify");

	memcpy(p, pkt, n);
	run_stage(", \"method\": \"netblock\"", p, (uint32_t)n, 1, &r);
	ok(memcmp(p + ipo + 12, "\x18\x05\x00\x00", 4) == 0 &&
	    memcmp(p + ipo + 16, "\xd0\xea\x78\x00", 4) == 0 &&
	    ip4_ok(p + ipo) && l4_sum(p + 26, p + 30, 4, 6, p + to, n - to,
	    16, 0), "ipv4/tcp netblock /24: 24.5.0.0 and 208.234.120.0");

	memcpy(p, pkt, n);
	run_stage(", \"method\": \"netblock\", \"ipv4_prefix\": 12", p,
	    (uint32_t)n, 1, &r);
	ok(memcmp(p + ipo + 12, "\x18\x00\x00\x00", 4) == 0 &&
	    memcmp(p + ipo + 16, "\xd0\xe0\x00\x00", 4) == 0,
	    "ipv4 netblock /12: 24.0.0.0 and 208.224.0.0");

	/* Cut in the middle of the destination address. */
	memcpy(p, pkt, n);
	run_stage("", p, 14 + 18, 1, &r);
	ok(memcmp(p + ipo + 12, anon[A], 4) == 0 &&
	    memcmp(p + ipo + 16, orig[B], 4) == 0 &&
	    counter(&r, "skipped_truncated") == 1 &&
	    counter(&r, "addresses_v4") == 1,
	    "truncated header: src rewritten, partial dst left and counted");
}

static void
test_ipv6_udp(void)
{
	uint8_t pkt[128], p[128];
	size_t n, ipo = 14, uo = 54;
	struct run r;

	n = put_eth(pkt, 0x86dd);
	n += put_ip6(pkt + n, X6, Y6, 17, 8 + 5);
	n += put_udp(pkt + n, "abcde");
	l4_sum(pkt + 22, pkt + 38, 16, 17, pkt + uo, n - uo, 6, 1);
	ok(l4_sum(pkt + 22, pkt + 38, 16, 17, pkt + uo, n - uo, 6, 0),
	    "ipv6/udp built");

	memcpy(p, pkt, n);
	run_stage("", p, (uint32_t)n, 1, &r);
	ok(memcmp(p + ipo + 8, anon[X6], 16) == 0 &&
	    memcmp(p + ipo + 24, anon[Y6], 16) == 0 &&
	    counter(&r, "addresses_v6") == 2,
	    "ipv6/udp: both addresses are the Crypto-PAn vectors");
	ok(l4_sum(p + 22, p + 38, 16, 17, p + uo, n - uo, 6, 0),
	    "ipv6/udp update: udp checksum verifies");

	memcpy(p, pkt, n);
	run_stage(", \"checksums\": \"blank\"", p, (uint32_t)n, 1, &r);
	ok(rd16(p + uo + 6) == 0, "ipv6/udp blank: checksum zero");

	memcpy(p, pkt, n);
	memcpy(p + ipo + 8,
	    "\x20\x01\x0d\xb8\x12\x34\x56\x78\0\0\0\0\0\0\0\x09", 16);
	run_stage(", \"method\": \"netblock\"", p, (uint32_t)n, 1, &r);
	ok(memcmp(p + ipo + 8, "\x20\x01\x0d\xb8\x12\x34\0\0\0\0\0\0\0\0\0\0",
	    16) == 0, "ipv6 netblock default /48");
	memcpy(p, pkt, n);
	run_stage(", \"method\": \"netblock\", \"ipv6_prefix\": 20", p,
	    (uint32_t)n, 1, &r);
	ok(memcmp(p + ipo + 8, "\x20\x01\x00\0\0\0\0\0\0\0\0\0\0\0\0\0",
	    16) == 0 && l4_sum(p + 22, p + 38, 16, 17, p + uo, n - uo, 6, 0),
	    "ipv6 netblock /20, udp checksum verifies");

	/* UDP over IPv4 without checksum keeps 0. */
	n = put_eth(pkt, 0x0800);
	n += put_ip4(pkt + n, A, B, 17, 8 + 3);
	n += put_udp(pkt + n, "xyz");
	run_stage("", pkt, (uint32_t)n, 1, &r);
	ok(rd16(pkt + 34 + 6) == 0 && ip4_ok(pkt + 14) &&
	    memcmp(pkt + 26, anon[A], 4) == 0,
	    "udp over ipv4 with checksum 0 stays 0");
}

static void
test_icmp_quote(void)
{
	uint8_t o[128], pkt[160], p[160];
	const char *pl = "traceroute!!!";
	size_t on, n, io = 34, qo = 42;
	struct run r;
	uint8_t full[128];

	/* The original datagram A -> B. */
	on = put_ip4(o, A, B, 17, 8 + strlen(pl));
	on += put_udp(o + on, pl);
	l4_sum(o + 12, o + 16, 4, 17, o + 20, on - 20, 6, 1);

	/* Router C tells A: time exceeded, quoting 28 bytes. */
	n = put_eth(pkt, 0x0800);
	n += put_ip4(pkt + n, C, A, 1, 8 + 28);
	memset(pkt + n, 0, 8);
	pkt[n] = 11;
	memcpy(pkt + n + 8, o, 28);
	n += 36;
	l4_sum(NULL, NULL, 0, 1, pkt + io, n - io, 2, 1);
	ok(l4_sum(NULL, NULL, 0, 1, pkt + io, n - io, 2, 0),
	    "icmp time exceeded built");

	memcpy(p, pkt, n);
	run_stage("", p, (uint32_t)n, 1, &r);
	ok(memcmp(p + 26, anon[C], 4) == 0 && memcmp(p + 30, anon[A], 4) ==
	    0 && memcmp(p + qo + 12, anon[A], 4) == 0 &&
	    memcmp(p + qo + 16, anon[B], 4) == 0,
	    "icmp error: outer and quoted addresses rewritten");
	ok(ip4_ok(p + 14) && ip4_ok(p + qo) &&
	    l4_sum(NULL, NULL, 0, 1, p + io, n - io, 2, 0),
	    "icmp error: outer ip, quoted ip and icmp checksums verify");
	/* The quoted UDP checksum, with the payload the quote lacks. */
	memcpy(full, p + qo, 28);
	memcpy(full + 28, o + 28, on - 28);
	ok(l4_sum(full + 12, full + 16, 4, 17, full + 20, on - 20, 6, 0),
	    "icmp error: quoted udp checksum matches the quoted addresses");
	ok(counter(&r, "quoted_headers") == 1 &&
	    counter(&r, "addresses_v4") == 4, "icmp error counters");

	memcpy(p, pkt, n);
	run_stage(", \"addresses\": \"src\"", p, (uint32_t)n, 1, &r);
	ok(memcmp(p + 26, anon[C], 4) == 0 && memcmp(p + 30, orig[A], 4) ==
	    0 && memcmp(p + qo + 12, anon[A], 4) == 0 &&
	    memcmp(p + qo + 16, orig[B], 4) == 0 && ip4_ok(p + 14) &&
	    ip4_ok(p + qo) && l4_sum(NULL, NULL, 0, 1, p + io, n - io, 2, 0),
	    "icmp error src only: quoted src field is a src");

	memcpy(p, pkt, n);
	run_stage(", \"checksums\": \"blank\"", p, (uint32_t)n, 1, &r);
	ok(rd16(p + 24) == 0 && rd16(p + io + 2) == 0 && rd16(p + qo + 10) ==
	    0 && rd16(p + qo + 26) == 0,
	    "icmp error blank: ip, icmp, quoted ip and quoted udp zero");

	memcpy(p, pkt, n);
	run_stage(", \"checksums\": \"leave\"", p, (uint32_t)n, 1, &r);
	ok(rd16(p + 24) == rd16(pkt + 24) && rd16(p + io + 2) ==
	    rd16(pkt + io + 2) && rd16(p + qo + 10) == rd16(pkt + qo + 10) &&
	    rd16(p + qo + 26) == rd16(pkt + qo + 26),
	    "icmp error leave: no checksum touched");
}

static void
test_icmp6_quote(void)
{
	uint8_t o[128], pkt[200], p[200], full[128];
	const char *pl = "0123456789";
	size_t on, n, io = 54, qo = 62, ql = 64;
	struct run r;

	on = put_ip6(o, X6, Y6, 6, 20 + strlen(pl));
	on += put_tcp(o + on, pl);
	l4_sum(o + 8, o + 24, 16, 6, o + 40, on - 40, 16, 1);

	n = put_eth(pkt, 0x86dd);
	n += put_ip6(pkt + n, R6, X6, 58, 8 + ql);
	memset(pkt + n, 0, 8);
	pkt[n] = 1;
	pkt[n + 1] = 3;
	memcpy(pkt + n + 8, o, ql);
	n += 8 + ql;
	l4_sum(pkt + 22, pkt + 38, 16, 58, pkt + io, n - io, 2, 1);
	ok(l4_sum(pkt + 22, pkt + 38, 16, 58, pkt + io, n - io, 2, 0),
	    "icmpv6 dest unreachable built");

	memcpy(p, pkt, n);
	run_stage("", p, (uint32_t)n, 1, &r);
	ok(memcmp(p + 22, anon[R6], 16) == 0 && memcmp(p + 38, anon[X6], 16)
	    == 0 && memcmp(p + qo + 8, anon[X6], 16) == 0 &&
	    memcmp(p + qo + 24, anon[Y6], 16) == 0,
	    "icmpv6 error: outer and quoted addresses rewritten");
	ok(l4_sum(p + 22, p + 38, 16, 58, p + io, n - io, 2, 0),
	    "icmpv6 error: icmpv6 checksum verifies");
	memcpy(full, p + qo, ql);
	memcpy(full + ql, o + ql, on - ql);
	ok(l4_sum(full + 8, full + 24, 16, 6, full + 40, on - 40, 16, 0),
	    "icmpv6 error: quoted tcp checksum matches the quoted addresses");
	ok(counter(&r, "quoted_headers") == 1 &&
	    counter(&r, "addresses_v6") == 4, "icmpv6 error counters");

	memcpy(p, pkt, n);
	run_stage(", \"addresses\": \"dst\"", p, (uint32_t)n, 1, &r);
	ok(memcmp(p + 22, orig[R6], 16) == 0 && memcmp(p + 38, anon[X6], 16)
	    == 0 && memcmp(p + qo + 8, orig[X6], 16) == 0 &&
	    memcmp(p + qo + 24, anon[Y6], 16) == 0 &&
	    l4_sum(p + 22, p + 38, 16, 58, p + io, n - io, 2, 0),
	    "icmpv6 error dst only: quoted dst field is a dst");

	memcpy(p, pkt, n);
	run_stage(", \"checksums\": \"blank\"", p, (uint32_t)n, 1, &r);
	ok(rd16(p + io + 2) == 0 && rd16(p + qo + 40 + 16) == 0,
	    "icmpv6 error blank: icmpv6 and quoted tcp checksums zero");
}

static void
test_tunnels(void)
{
	uint8_t pkt[200], p[200];
	size_t n, go, io, to, uo, vo;
	struct run r;

	/* GRE with checksum: C -> D carrying A -> B TCP. */
	n = put_eth(pkt, 0x0800);
	n += put_ip4(pkt + n, C, D, 47, 8 + 20 + 20 + 4);
	go = n;
	memset(pkt + n, 0, 8);
	wr16(pkt + n, 0x8000);
	wr16(pkt + n + 2, 0x0800);
	n += 8;
	io = n;
	n += put_ip4(pkt + n, A, B, 6, 24);
	to = n;
	n += put_tcp(pkt + n, "gre!");
	l4_sum(pkt + io + 12, pkt + io + 16, 4, 6, pkt + to, n - to, 16, 1);
	l4_sum(NULL, NULL, 0, 1, pkt + go, n - go, 4, 1);
	memcpy(p, pkt, n);
	run_stage("", p, (uint32_t)n, 1, &r);
	ok(memcmp(p + 26, anon[C], 4) == 0 && memcmp(p + 30, anon[D], 4) ==
	    0 && memcmp(p + io + 12, anon[A], 4) == 0 &&
	    memcmp(p + io + 16, anon[B], 4) == 0 &&
	    counter(&r, "addresses_v4") == 4,
	    "gre: outer and inner addresses rewritten");
	ok(ip4_ok(p + 14) && ip4_ok(p + io) &&
	    l4_sum(NULL, NULL, 0, 1, p + go, n - go, 4, 0) &&
	    l4_sum(p + io + 12, p + io + 16, 4, 6, p + to, n - to, 16, 0),
	    "gre: outer ip, gre, inner ip and inner tcp checksums verify");

	/* IP in IP carrying UDP, and 6in4. */
	n = put_eth(pkt, 0x0800);
	n += put_ip4(pkt + n, C, D, 4, 20 + 8 + 4);
	io = n;
	n += put_ip4(pkt + n, A, B, 17, 12);
	uo = n;
	n += put_udp(pkt + n, "ipip");
	l4_sum(pkt + io + 12, pkt + io + 16, 4, 17, pkt + uo, n - uo, 6, 1);
	memcpy(p, pkt, n);
	run_stage("", p, (uint32_t)n, 1, &r);
	ok(memcmp(p + io + 12, anon[A], 4) == 0 && memcmp(p + 30, anon[D], 4)
	    == 0 && ip4_ok(p + 14) && ip4_ok(p + io) &&
	    l4_sum(p + io + 12, p + io + 16, 4, 17, p + uo, n - uo, 6, 0),
	    "ip-in-ip: both headers rewritten, checksums verify");

	n = put_eth(pkt, 0x0800);
	n += put_ip4(pkt + n, C, D, 41, 40 + 8 + 3);
	io = n;
	n += put_ip6(pkt + n, X6, Y6, 17, 11);
	uo = n;
	n += put_udp(pkt + n, "6o4");
	l4_sum(pkt + io + 8, pkt + io + 24, 16, 17, pkt + uo, n - uo, 6, 1);
	memcpy(p, pkt, n);
	run_stage("", p, (uint32_t)n, 1, &r);
	ok(memcmp(p + io + 8, anon[X6], 16) == 0 &&
	    memcmp(p + 26, anon[C], 4) == 0 && ip4_ok(p + 14) &&
	    l4_sum(p + io + 8, p + io + 24, 16, 17, p + uo, n - uo, 6, 0),
	    "6in4: both headers rewritten, checksums verify");

	/* VXLAN: the outer UDP checksum covers the inner packet. */
	n = put_eth(pkt, 0x0800);
	n += put_ip4(pkt + n, C, D, 17, 8 + 8 + 14 + 20 + 8 + 2);
	vo = n;
	n += put_udp(pkt + n, "");
	wr16(pkt + vo + 2, 4789);
	wr16(pkt + vo + 4, 8 + 8 + 14 + 20 + 8 + 2);
	memset(pkt + n, 0, 8);
	pkt[n] = 0x08;
	n += 8;
	n += put_eth(pkt + n, 0x0800);
	io = n;
	n += put_ip4(pkt + n, A, B, 17, 10);
	uo = n;
	n += put_udp(pkt + n, "vx");
	l4_sum(pkt + io + 12, pkt + io + 16, 4, 17, pkt + uo, n - uo, 6, 1);
	l4_sum(pkt + 26, pkt + 30, 4, 17, pkt + vo, n - vo, 6, 1);
	memcpy(p, pkt, n);
	run_stage("", p, (uint32_t)n, 1, &r);
	ok(memcmp(p + io + 12, anon[A], 4) == 0 && memcmp(p + 26, anon[C], 4)
	    == 0 && ip4_ok(p + io) &&
	    l4_sum(p + 26, p + 30, 4, 17, p + vo, n - vo, 6, 0) &&
	    l4_sum(p + io + 12, p + io + 16, 4, 17, p + uo, n - uo, 6, 0),
	    "vxlan: outer udp checksum covering the inner packet verifies");
}

static void
test_arp(void)
{
	uint8_t pkt[64];
	size_t n;
	struct run r;

	n = put_eth(pkt, 0x0806);
	wr16(pkt + n, 1);
	wr16(pkt + n + 2, 0x0800);
	pkt[n + 4] = 6;
	pkt[n + 5] = 4;
	wr16(pkt + n + 6, 1);
	memset(pkt + n + 8, 0xaa, 6);
	memcpy(pkt + n + 14, orig[A], 4);
	memset(pkt + n + 18, 0, 6);
	memcpy(pkt + n + 24, orig[B], 4);
	n += 28;
	run_stage("", pkt, (uint32_t)n, 1, &r);
	ok(memcmp(pkt + 28, anon[A], 4) == 0 && memcmp(pkt + 38, anon[B], 4)
	    == 0 && counter(&r, "addresses_arp") == 2 &&
	    pkt[22] == 0xaa && pkt[27] == 0xaa,
	    "arp: sender and target protocol addresses rewritten");
}

static void
test_options(void)
{
	uint8_t pkt[128], p[128];
	size_t n, to = 14 + 32;
	struct run r;

	/* A -> C (next hop), loose source route C... via D to B. */
	n = put_eth(pkt, 0x0800);
	put_ip4(pkt + n, A, C, 6, 12 + 23);
	pkt[n] = 0x48;
	wr16(pkt + n + 2, 32 + 23);
	pkt[n + 20] = 131;
	pkt[n + 21] = 11;
	pkt[n + 22] = 4;
	memcpy(pkt + n + 23, orig[D], 4);
	memcpy(pkt + n + 27, orig[B], 4);
	pkt[n + 31] = 0;
	ip4_fill(pkt + n);
	n += 32;
	n += put_tcp(pkt + n, "lsr");
	/* The pseudo-header holds the final destination, B. */
	l4_sum(pkt + 26, pkt + 14 + 27, 4, 6, pkt + to, n - to, 16, 1);
	memcpy(p, pkt, n);
	run_stage("", p, (uint32_t)n, 1, &r);
	ok(memcmp(p + 26, anon[A], 4) == 0 && memcmp(p + 30, anon[C], 4) ==
	    0 && memcmp(p + 14 + 23, anon[D], 4) == 0 &&
	    memcmp(p + 14 + 27, anon[B], 4) == 0 &&
	    counter(&r, "addresses_v4") == 4,
	    "ipv4 source route option: addresses at odd offsets rewritten");
	ok(ip4_ok(p + 14) && l4_sum(p + 26, p + 14 + 27, 4, 6, p + to,
	    n - to, 16, 0), "source route: ip and tcp (final destination) "
	    "checksums verify");
	memcpy(p, pkt, n);
	run_stage(", \"addresses\": \"src\"", p, (uint32_t)n, 1, &r);
	ok(memcmp(p + 14 + 23, orig[D], 4) == 0 && ip4_ok(p + 14) &&
	    l4_sum(p + 26, p + 14 + 27, 4, 6, p + to, n - to, 16, 0),
	    "source route follows dst: kept with src only");
}

static void
test_ipv6_ext(void)
{
	uint8_t pkt[160], p[160];
	size_t n, ro, uo;
	struct run r;

	/* X6 -> R6 (next segment), routing header type 0 with final Y6. */
	n = put_eth(pkt, 0x86dd);
	n += put_ip6(pkt + n, X6, R6, 43, 24 + 8 + 4);
	ro = n;
	memset(pkt + n, 0, 24);
	pkt[n] = 17;
	pkt[n + 1] = 2;
	pkt[n + 3] = 1;		/* segments left */
	memcpy(pkt + n + 8, orig[Y6], 16);
	n += 24;
	uo = n;
	n += put_udp(pkt + n, "rth0");
	l4_sum(pkt + 22, pkt + ro + 8, 16, 17, pkt + uo, n - uo, 6, 1);
	memcpy(p, pkt, n);
	run_stage("", p, (uint32_t)n, 1, &r);
	ok(memcmp(p + 22, anon[X6], 16) == 0 && memcmp(p + 38, anon[R6], 16)
	    == 0 && memcmp(p + ro + 8, anon[Y6], 16) == 0 &&
	    counter(&r, "addresses_v6") == 3,
	    "ipv6 routing header: its address is rewritten too");
	ok(l4_sum(p + 22, p + ro + 8, 16, 17, p + uo, n - uo, 6, 0),
	    "routing header: udp checksum over the final destination "
	    "verifies");

	/* Care-of R6 -> Y6 with home address X6 in destination options. */
	n = put_eth(pkt, 0x86dd);
	n += put_ip6(pkt + n, R6, Y6, 60, 24 + 8 + 3);
	ro = n;
	memset(pkt + n, 0, 24);
	pkt[n] = 17;
	pkt[n + 1] = 2;
	pkt[n + 2] = 1;		/* PadN, 2 bytes */
	pkt[n + 3] = 2;
	pkt[n + 6] = 0xc9;	/* home address option */
	pkt[n + 7] = 16;
	memcpy(pkt + n + 8, orig[X6], 16);
	n += 24;
	uo = n;
	n += put_udp(pkt + n, "hao");
	l4_sum(pkt + ro + 8, pkt + 38, 16, 17, pkt + uo, n - uo, 6, 1);
	memcpy(p, pkt, n);
	run_stage("", p, (uint32_t)n, 1, &r);
	ok(memcmp(p + 22, anon[R6], 16) == 0 && memcmp(p + ro + 8,
	    anon[X6], 16) == 0 && memcmp(p + 38, anon[Y6], 16) == 0 &&
	    l4_sum(p + ro + 8, p + 38, 16, 17, p + uo, n - uo, 6, 0),
	    "home address option rewritten, udp over the home address "
	    "verifies");
	memcpy(p, pkt, n);
	run_stage(", \"addresses\": \"dst\"", p, (uint32_t)n, 1, &r);
	ok(memcmp(p + ro + 8, orig[X6], 16) == 0 &&
	    l4_sum(p + ro + 8, p + 38, 16, 17, p + uo, n - uo, 6, 0),
	    "home address option follows src");
}

static void
test_config(void)
{
	const char *bad[][2] = {
		{ "{\"key_file\": \"k\", \"adresses\": \"src\"}",
		  "unknown key 'adresses'" },
		{ "{}", "'key_file' is required" },
		{ "{\"method\": \"netblock\", \"key_file\": \"k\"}",
		  "only used with method 'cryptopan'" },
		{ "{\"key_file\": \"k\", \"ipv4_prefix\": 16}",
		  "only used with method 'netblock'" },
		{ "{\"method\": \"netblock\", \"ipv6_prefix\": 129}",
		  "'ipv6_prefix'" },
		{ "{\"key_file\": \"k\", \"checksums\": \"fix\"}",
		  "'checksums'" },
		{ "{\"method\": \"md5\"}", "'method'" },
	};
	struct weir_err err;
	json_t *conf, *pol;
	size_t i;
	int rc;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		conf = json_loads(bad[i][0], 0, NULL);
		err.msg[0] = '\0';
		rc = weir_mod_anonymize.check(conf, NULL, &err);
		ok(rc < 0 && strstr(err.msg, bad[i][1]) != NULL,
		    "config %s refused: %s", bad[i][0], err.msg);
		json_decref(conf);
	}
	conf = json_loads("{\"method\": \"netblock\"}", 0, NULL);
	rc = weir_mod_anonymize.check(conf, NULL, &err);
	ok(rc == 0 && json_integer_value(json_object_get(conf,
	    "ipv4_prefix")) == 24 && json_integer_value(json_object_get(conf,
	    "ipv6_prefix")) == 48 && strcmp(json_string_value(
	    json_object_get(conf, "checksums")), "update") == 0 &&
	    strcmp(json_string_value(json_object_get(conf, "addresses")),
	    "both") == 0, "netblock defaults: /24, /48, update, both");
	pol = json_loads("{\"anonymization_method\": \"cryptopan\"}", 0, NULL);
	rc = weir_mod_anonymize.check(conf, pol, &err);
	ok(rc == -WEIR_EPOLICY && strstr(err.msg, "policy rule "
	    "'anonymization_method' requires 'cryptopan'") != NULL,
	    "policy refuses netblock: %s", err.msg);
	json_decref(pol);
	json_decref(conf);
	conf = json_loads("{\"key_file\": \"/nonexistent/key\"}", 0, NULL);
	pol = json_loads("{\"anonymization_method\": [\"cryptopan\"]}", 0,
	    NULL);
	rc = weir_mod_anonymize.check(conf, pol, &err);
	ok(rc == 0 && strcmp(json_string_value(json_object_get(conf,
	    "method")), "cryptopan") == 0, "policy list allows cryptopan");
	{
		struct weir_env env;
		void *st = NULL;

		memset(&env, 0, sizeof(env));
		err.msg[0] = '\0';
		rc = weir_mod_anonymize.open(&st, conf, &env, &err);
		ok(rc < 0 && strstr(err.msg, "/nonexistent/key") != NULL,
		    "missing key file fails at open: %s", err.msg);
	}
	json_decref(pol);
	json_decref(conf);
}

/* ---- real traces ---- */

static unsigned
carrier(const struct weir_decoded *d, unsigned k)
{
	while (k-- > 0) {
		if (d->l[k].kind == WEIR_L_IPV4 || d->l[k].kind == WEIR_L_IPV6)
			return k;
		if (d->l[k].kind != WEIR_L_IPV6_EXT &&
		    d->l[k].kind != WEIR_L_IPV6_FRAG)
			break;
	}
	return WEIR_NO_LAYER;
}

/*
 * Verdicts for every checksum that can be verified in full: each IPv4
 * header (quoted ones too) and each non-quoted TCP/UDP/ICMP/ICMPv6 whose
 * whole datagram is present.  One character per check: g(ood), b(ad).
 */
static void
verdicts(struct weir_pkt *pk, char *v, size_t max, int *good)
{
	const struct weir_decoded *d;
	const struct weir_layer *l, *ip;
	const uint8_t *b = pk->data;
	size_t nv = 0, len, field;
	unsigned k, j;
	uint32_t end;
	uint8_t proto = 0;
	int r, skip;

	pk->decoded = 0;
	weir_decode(pk);
	d = &pk->dec;
	for (k = 0; k < d->n && nv + 1 < max; k++) {
		l = &d->l[k];
		if (l->kind == WEIR_L_IPV4) {
			if ((l->flags & WEIR_LF_TRUNC) ||
			    l->off + l->len > pk->caplen)
				continue;
			r = ip4_ok(b + l->off);
			v[nv++] = r ? 'g' : 'b';
			*good += r;
			continue;
		}
		if (l->flags & WEIR_LF_QUOTED)
			continue;
		switch (l->kind) {
		case WEIR_L_TCP: proto = 6; field = 16; break;
		case WEIR_L_UDP: proto = 17; field = 6; break;
		case WEIR_L_ICMP: proto = 1; field = 2; break;
		case WEIR_L_ICMP6: proto = 58; field = 2; break;
		default: continue;
		}
		if ((j = carrier(d, k)) == WEIR_NO_LAYER)
			continue;
		ip = &d->l[j];
		skip = (ip->flags & (WEIR_LF_FRAG | WEIR_LF_TRUNC)) != 0;
		if (ip->kind == WEIR_L_IPV4)
			end = ip->off + rd16(b + ip->off + 2);
		else {
			end = ip->off + 40 + rd16(b + ip->off + 4);
			skip |= j + 1 != k;	/* ext headers: not here */
		}
		if (skip || end > pk->caplen || end < l->off + field + 2)
			continue;
		len = end - l->off;
		if (proto == 17 && rd16(b + l->off + 6) == 0) {
			v[nv++] = 'z';
			continue;
		}
		if (ip->kind == WEIR_L_IPV4)
			r = l4_sum(b + ip->off + 12, b + ip->off + 16, 4, proto,
			    (uint8_t *)(uintptr_t)(b + l->off), len, field, 0);
		else
			r = l4_sum(b + ip->off + 8, b + ip->off + 24, 16, proto,
			    (uint8_t *)(uintptr_t)(b + l->off), len, field, 0);
		v[nv++] = r ? 'g' : 'b';
		*good += r;
	}
	v[nv] = '\0';
}

static void
test_trace(const char *path, int min_good, int min_quoted)
{
	static uint8_t buf[65536 + 64], copy[65536 + 64];
	char errbuf[PCAP_ERRBUF_SIZE], v0[64], v1[64];
	struct pcap_pkthdr *h;
	const u_char *data;
	struct weir_pkt pk, *pp = &pk;
	struct weir_batch batch = { &pp, 1 };
	struct weir_counter c[WEIR_MAX_COUNTERS];
	struct weir_cryptopan *ref;
	struct weir_env env;
	struct weir_err err;
	uint8_t key[32], want[16];
	json_t *conf;
	pcap_t *pc;
	void *st = NULL;
	int npk = 0, differ = 0, good0 = 0, good1 = 0, wrong = 0, lt;
	size_t nc, i;
	uint64_t quoted = 0;
	char js[256];

	pc = pcap_open_offline(path, errbuf);
	ok(pc != NULL, "open %s", path);
	if (pc == NULL)
		return;
	lt = pcap_datalink(pc);
	snprintf(js, sizeof(js), "{\"key_file\": \"%s\"}", keypath);
	conf = json_loads(js, 0, NULL);
	memset(&env, 0, sizeof(env));
	if (weir_mod_anonymize.check(conf, NULL, &err) < 0 ||
	    weir_mod_anonymize.open(&st, conf, &env, &err) < 0) {
		ok(0, "stage opens: %s", err.msg);
		return;
	}
	weir_cryptopan_load_key(keypath, key, &err);
	ref = weir_cryptopan_new(key, &err);
	while (pcap_next_ex(pc, &h, &data) == 1) {
		if (h->caplen > 65536)
			continue;
		memcpy(buf, data, h->caplen);
		memset(&pk, 0, sizeof(pk));
		pk.data = buf;
		pk.caplen = h->caplen;
		pk.wirelen = h->len;
		pk.linktype = (uint16_t)lt;
		verdicts(&pk, v0, sizeof(v0), &good0);
		memcpy(copy, buf, h->caplen);
		pk.decoded = 0;
		weir_mod_anonymize.packet(st, &batch);
		verdicts(&pk, v1, sizeof(v1), &good1);
		npk++;
		if (strcmp(v0, v1) != 0) {
			if (differ++ < 5)
				printf("# packet %d: verdicts %s -> %s\n", npk,
				    v0, v1);
		}
		/* The outer IP addresses against the reference mapping. */
		if (pk.dec.ip != WEIR_NO_LAYER) {
			const struct weir_layer *l = &pk.dec.l[pk.dec.ip];
			size_t a = l->kind == WEIR_L_IPV4 ? 4 : 16;
			uint32_t so = l->off + (a == 4 ? 12 : 8);

			if (so + 2 * a <= pk.caplen) {
				if (a == 4)
					weir_cryptopan_v4(ref, copy + so, want);
				else
					weir_cryptopan_v6(ref, copy + so, want);
				wrong += memcmp(buf + so, want, a) != 0;
			}
		}
	}
	nc = weir_mod_anonymize.stats(st, c, WEIR_MAX_COUNTERS);
	for (i = 0; i < nc; i++)
		if (strcmp(c[i].name, "quoted_headers") == 0)
			quoted = c[i].value;
	ok(npk > 0 && differ == 0, "%s: %d packets, checksum verdicts "
	    "unchanged by anonymization (%d differ)", path, npk, differ);
	ok(good0 >= min_good && good0 == good1, "%s: %d good checksums "
	    "before, %d after", path, good0, good1);
	ok(wrong == 0, "%s: outer source addresses are the reference "
	    "Crypto-PAn mapping (%d wrong)", path, wrong);
	ok((int)quoted >= min_quoted, "%s: %llu quoted headers rewritten",
	    path, (unsigned long long)quoted);
	weir_mod_anonymize.close(st, &err);
	weir_cryptopan_free(ref);
	json_decref(conf);
	pcap_close(pc);
}

/* A packet whose addresses cannot all be rewritten never passes. */
static void
test_incomplete(void)
{
	uint8_t pk[40];
	struct run r;

	memset(pk, 0, sizeof(pk));
	pk[0] = 0x45;
	pk[3] = 40;
	pk[8] = 64;
	pk[9] = 6;
	memcpy(pk + 12, orig[0], 4);
	memcpy(pk + 16, orig[1], 4);
	/* Cut inside the source address (raw IP, caplen 14). */
	run_stage("", pk, 14, WEIR_LT_RAW, &r);
	ok(counter(&r, "dropped_incomplete") == 1,
	    "a source address cut by the snaplen drops the packet");
	ok(pk[12] == orig[0][0] && pk[13] == orig[0][1],
	    "the cut address was not half rewritten");
	run_stage(", \"incomplete\": \"keep\"", pk, 14, WEIR_LT_RAW, &r);
	ok(counter(&r, "dropped_incomplete") == 0 &&
	    counter(&r, "skipped_truncated") >= 1,
	    "incomplete 'keep' passes it, counted as skipped");
	/* IHL 4: the decoder cannot follow the header at all. */
	pk[0] = 0x44;
	run_stage("", pk, 40, WEIR_LT_RAW, &r);
	ok(counter(&r, "dropped_incomplete") == 1,
	    "a malformed IPv4 header drops the packet");
	pk[0] = 0x45;
	pk[32] = 0x50;		/* TCP data offset 5 */
	run_stage("", pk, 40, WEIR_LT_RAW, &r);
	ok(counter(&r, "dropped_incomplete") == 0 &&
	    counter(&r, "addresses_v4") == 2,
	    "a whole header passes with both addresses rewritten");
}

int
main(void)
{
	FILE *f;
	int fd;
	size_t i;

	for (i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
		int af = strchr(vec[i][0], ':') ? AF_INET6 : AF_INET;

		if (inet_pton(af, vec[i][0], orig[i]) != 1 ||
		    inet_pton(af, vec[i][1], anon[i]) != 1)
			return 99;
	}
	snprintf(keypath, sizeof(keypath), "/tmp/weir_anon_keyXXXXXX");
	if ((fd = mkstemp(keypath)) < 0 || (f = fdopen(fd, "w")) == NULL)
		return 99;
	fprintf(f, "%s\n", KEY_HEX);
	fclose(f);

	test_ipv4_tcp();
	test_ipv6_udp();
	test_icmp_quote();
	test_icmp6_quote();
	test_tunnels();
	test_arp();
	test_options();
	test_ipv6_ext();
	test_incomplete();
	test_config();
	test_trace("tests/data/ndpi-nintendo.pcap", 900, 30);
	test_trace("tests/data/zeek-communityid-icmp6.pcap", 40, 10);
	test_trace("tests/data/ndpi-6in4tunnel.pcap", 100, 0);
	test_trace("tests/data/zeek-vxlan-encapsulated-http.pcap", 1, 0);
	test_trace("tests/data/zeek-gre-sample.pcap", 1, 0);
	test_trace("tests/data/ndpi-1kxun.pcap", 1000, 0);
	unlink(keypath);
	return tap_done();
}
