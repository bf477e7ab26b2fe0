/*
 * test_ipfix.c - the IPFIX encoder against messages written out by hand
 * from RFC 7011 (sections 3.1, 3.3, 3.4) and RFC 5103 (reverse
 * elements), and flow records decoded back through their own template.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "weir/ipfix.h"
#include "tests/tap.h"

/*
 * Template 256: sourceIPv4Address (8, 4 bytes), packetDeltaCount (2, 8),
 * reversePacketDeltaCount (2 with the enterprise bit, 8, PEN 29305);
 * one record 192.0.2.1, 5 packets, 7 back.  Export time 0x5f5e1000,
 * sequence 3, observation domain 42.
 */
static const uint8_t rfc_msg[] = {
	/* message header: version 10, length 64 */
	0x00, 0x0a, 0x00, 0x40, 0x5f, 0x5e, 0x10, 0x00,
	0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x2a,
	/* template set: id 2, length 24 */
	0x00, 0x02, 0x00, 0x18,
	0x01, 0x00, 0x00, 0x03,		/* template 256, 3 fields */
	0x00, 0x08, 0x00, 0x04,		/* sourceIPv4Address */
	0x00, 0x02, 0x00, 0x08,		/* packetDeltaCount */
	0x80, 0x02, 0x00, 0x08,		/* E=1, 2, length 8 */
	0x00, 0x00, 0x72, 0x79,		/* PEN 29305 */
	/* data set: id 256, length 24 */
	0x01, 0x00, 0x00, 0x18,
	0xc0, 0x00, 0x02, 0x01,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07,
};

static const struct weir_ipfix_field tiny[] = {
	{ 8, 4, 0 }, { 2, 8, 0 }, { 2, 8, WEIR_IPFIX_PEN_REVERSE },
};

static void
test_rfc_message(void)
{
	uint8_t buf[256], *r;
	struct weir_ipfix_msg m;
	size_t len;

	memset(buf, 0xee, sizeof(buf));
	weir_ipfix_begin(&m, buf, sizeof(buf), 0x5f5e1000, 3, 42);
	ok(weir_ipfix_add_template(&m, 256, tiny, 3) == 0, "template added");
	ok(weir_ipfix_record_len(tiny, 3) == 20, "record length 20");
	ok(weir_ipfix_template_len(tiny, 3) == 20, "template record length");
	r = weir_ipfix_add_record(&m, 256, 20);
	ok(r != NULL, "record room");
	if (r == NULL)
		return;
	r[0] = 192; r[1] = 0; r[2] = 2; r[3] = 1;
	weir_put64(r + 4, 5);
	weir_put64(r + 12, 7);
	len = weir_ipfix_finish(&m);
	ok(len == sizeof(rfc_msg), "message length %zu", len);
	ok(memcmp(buf, rfc_msg, sizeof(rfc_msg)) == 0,
	    "bytes as written by hand from RFC 7011");
	ok(buf[sizeof(rfc_msg)] == 0xee, "nothing written past the message");
	ok(m.records == 1 && m.templates == 1, "counts");
}

static void
test_sets_and_space(void)
{
	uint8_t buf[16 + 4 + 20 + 20 + 4 + 20];
	struct weir_ipfix_msg m;
	struct weir_ipfix_hdr h;
	const uint8_t *body;
	size_t off, blen, len;
	uint16_t id;
	int n = 0, rc;

	/* Two records share a set; another template opens another set. */
	weir_ipfix_begin(&m, buf, sizeof(buf), 1, 0, 0);
	ok(weir_ipfix_add_record(&m, 256, 20) != NULL, "first record");
	ok(weir_ipfix_add_record(&m, 256, 20) != NULL, "second record");
	ok(weir_ipfix_fits(&m, 257, 20), "a set of 257 fits exactly");
	ok(!weir_ipfix_fits(&m, 257, 21), "one byte more does not");
	ok(weir_ipfix_add_record(&m, 257, 21) == NULL &&
	    m.len == 16 + 4 + 40, "a refused record leaves the message as it was");
	ok(weir_ipfix_add_record(&m, 257, 20) != NULL, "record of 257");
	ok(weir_ipfix_add_record(&m, 257, 1) == NULL, "full");
	ok(weir_ipfix_add_template(&m, 300, tiny, 3) == -ENOSPC,
	    "template refused when full");
	len = weir_ipfix_finish(&m);
	ok(len == sizeof(buf), "fills the buffer");
	ok(weir_ipfix_parse_hdr(buf, len, &h) == 0 && h.length == len &&
	    h.export_time == 1, "header parses");
	off = WEIR_IPFIX_HDR_LEN;
	while ((rc = weir_ipfix_next_set(buf, len, &off, &id, &body,
	    &blen)) == 1) {
		n++;
		if (n == 1)
			ok(id == 256 && blen == 40, "set 1: 256, 2 records");
		else
			ok(id == 257 && blen == 20, "set 2: 257, 1 record");
	}
	ok(rc == 0 && n == 2, "two sets");
	ok(weir_ipfix_add_template(&m, 255, tiny, 3) == -EINVAL,
	    "template id below 256 refused");
	/* A set length past the message is caught. */
	buf[16 + 3] = 0xff;
	off = WEIR_IPFIX_HDR_LEN;
	ok(weir_ipfix_next_set(buf, len, &off, &id, &body, &blen) ==
	    -WEIR_EFORMAT, "overrunning set refused");
	buf[1] = 9;
	ok(weir_ipfix_parse_hdr(buf, len, &h) == -WEIR_EFORMAT,
	    "version 9 refused");
}

static void
test_ntp(void)
{
	uint64_t v[] = { 0, 1, 999999999, 1500000000123456789ULL,
	    1704067200000000001ULL, 2082758399999999999ULL };
	size_t i;
	int good = 1;

	/* RFC 5905: 1970-01-01 is 2208988800 s after 1900. */
	ok(weir_ipfix_ntp(0) == 2208988800ULL << 32, "NTP of the Unix epoch");
	ok(weir_ipfix_ntp(500000000) == (2208988800ULL << 32 | 0x80000000),
	    "half a second is fraction 2^31");
	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		if (weir_ipfix_ntp_to_unix(weir_ipfix_ntp(v[i])) != v[i])
			good = 0;
	srand(7);
	for (i = 0; i < 100000; i++) {
		uint64_t t = 1700000000ULL * 1000000000ULL +
		    (uint64_t)rand() * 1000 + (uint64_t)(rand() % 1000);
		if (weir_ipfix_ntp_to_unix(weir_ipfix_ntp(t)) != t)
			good = 0;
	}
	ok(good, "nanoseconds survive the NTP round trip");
}

/* Find field (id, pen) in a parsed template: its offset, or -1. */
static long
field_off(const struct weir_ipfix_field *f, unsigned n, uint16_t id,
    uint32_t pen, uint16_t *len)
{
	long off = 0;
	unsigned i;

	for (i = 0; i < n; i++) {
		if (f[i].id == id && f[i].pen == pen) {
			*len = f[i].len;
			return off;
		}
		off += f[i].len;
	}
	return -1;
}

static uint64_t
get(const uint8_t *rec, const struct weir_ipfix_field *f, unsigned n,
    uint16_t id, uint32_t pen)
{
	uint16_t len = 0;
	long off = field_off(f, n, id, pen, &len);
	uint64_t v = 0;
	uint16_t i;

	if (off < 0)
		return UINT64_MAX;
	for (i = 0; i < len && i < 8; i++)
		v = v << 8 | rec[off + i];
	return v;
}

#define R	WEIR_IPFIX_PEN_REVERSE

static void
test_flow(int family, int ns)
{
	uint8_t buf[1500];
	struct weir_ipfix_msg m;
	struct weir_ipfix_field tf[WEIR_IPFIX_MAX_FIELDS], pf[64];
	struct weir_flow fl;
	const uint8_t *body, *rec = NULL;
	size_t off, blen, len;
	uint16_t id, tid = 0, alen = family == 6 ? 16 : 4, flen = 0;
	unsigned n, pn = 0;
	long aoff;
	int rc;

	memset(&fl, 0, sizeof(fl));
	fl.key.family = (uint8_t)family;
	fl.key.proto = 6;
	memset(fl.key.addr[0], 0x11, alen);
	memset(fl.key.addr[1], 0x22, alen);
	fl.key.addr[0][0] = 10;
	fl.key.port[0] = 40000;
	fl.key.port[1] = 443;
	fl.key.vlan = 100;
	fl.start[0] = 1704067200123456789ULL;
	fl.end[0] = 1704067260000000001ULL;
	fl.start[1] = 1704067200200000000ULL;
	fl.end[1] = 1704067261999999999ULL;
	fl.pkts[0] = 12;
	fl.pkts[1] = 10;
	fl.bytes[0] = 5000000000ULL;	/* more than 32 bits */
	fl.bytes[1] = 800;
	fl.isn[0] = 0xdeadbeef;
	fl.isn[1] = 0x01020304;
	fl.tcp_flags[0] = 0x1b;
	fl.tcp_flags[1] = 0x12;
	fl.dir = WEIR_DIR_OUT;
	fl.end_reason = WEIR_FLOW_END_EOF;

	n = weir_ipfix_flow_template(family, ns, tf);
	weir_ipfix_begin(&m, buf, sizeof(buf), 7, 0, 1);
	ok(weir_ipfix_add_template(&m, weir_ipfix_flow_tid(family, ns), tf,
	    n) == 0, "IPv%d %s template", family, ns ? "ns" : "ms");
	ok(weir_ipfix_record_len(tf, n) == weir_ipfix_flow_len(family, ns),
	    "record length agrees with the template");
	{
		uint8_t *r = weir_ipfix_add_record(&m,
		    weir_ipfix_flow_tid(family, ns),
		    weir_ipfix_flow_len(family, ns));
		ok(r != NULL && weir_ipfix_flow_encode(r, &fl, ns) ==
		    weir_ipfix_flow_len(family, ns), "record encoded");
	}
	len = weir_ipfix_finish(&m);

	/* Decode through the template as a collector would. */
	off = WEIR_IPFIX_HDR_LEN;
	while ((rc = weir_ipfix_next_set(buf, len, &off, &id, &body,
	    &blen)) == 1) {
		if (id == WEIR_IPFIX_SET_TEMPLATE)
			rc = weir_ipfix_parse_template(body, blen, &tid, pf,
			    64, &pn);
		else if (id == tid)
			rec = body;
		if (rc < 0)
			break;
	}
	ok(rc == 0 && pn == n && rec != NULL, "template and record parsed");
	if (rec == NULL)
		return;
	if (ns) {
		ok(weir_ipfix_ntp_to_unix(get(rec, pf, pn, 156, 0)) ==
		    fl.start[0], "flowStartNanoseconds");
		ok(weir_ipfix_ntp_to_unix(get(rec, pf, pn, 157, 0)) ==
		    fl.end[1], "flowEndNanoseconds: the biflow's last packet");
		ok(weir_ipfix_ntp_to_unix(get(rec, pf, pn, 156, R)) ==
		    fl.start[1], "reverseFlowStartNanoseconds");
		ok(weir_ipfix_ntp_to_unix(get(rec, pf, pn, 157, R)) ==
		    fl.end[1], "reverseFlowEndNanoseconds");
	} else {
		ok(get(rec, pf, pn, 152, 0) == 1704067200123ULL,
		    "flowStartMilliseconds");
		ok(get(rec, pf, pn, 153, 0) == 1704067261999ULL,
		    "flowEndMilliseconds: the biflow's last packet");
		ok(get(rec, pf, pn, 152, R) == 1704067200200ULL,
		    "reverseFlowStartMilliseconds");
		ok(get(rec, pf, pn, 153, R) == 1704067261999ULL,
		    "reverseFlowEndMilliseconds");
	}
	ok(get(rec, pf, pn, 1, 0) == 5000000000ULL, "octetDeltaCount");
	ok(get(rec, pf, pn, 2, 0) == 12, "packetDeltaCount");
	ok(get(rec, pf, pn, 1, R) == 800, "reverseOctetDeltaCount");
	ok(get(rec, pf, pn, 2, R) == 10, "reversePacketDeltaCount");
	aoff = field_off(pf, pn, family == 6 ? 27 : 8, 0, &flen);
	ok(aoff >= 0 && flen == alen &&
	    memcmp(rec + aoff, fl.key.addr[0], alen) == 0, "source address");
	aoff = field_off(pf, pn, family == 6 ? 28 : 12, 0, &flen);
	ok(aoff >= 0 && flen == alen &&
	    memcmp(rec + aoff, fl.key.addr[1], alen) == 0,
	    "destination address");
	ok(get(rec, pf, pn, 7, 0) == 40000 && get(rec, pf, pn, 11, 0) == 443,
	    "ports");
	ok(get(rec, pf, pn, 4, 0) == 6, "protocolIdentifier");
	ok(get(rec, pf, pn, 6, 0) == 0x1b && get(rec, pf, pn, 6, R) == 0x12,
	    "tcpControlBits both ways (2 bytes)");
	ok(field_off(pf, pn, 6, 0, &flen) >= 0 && flen == 2,
	    "tcpControlBits is 2 bytes");
	ok(get(rec, pf, pn, 58, 0) == 100, "vlanId");
	ok(get(rec, pf, pn, 136, 0) == 3, "flowEndReason endOfFlowDetected");
	ok(get(rec, pf, pn, 61, 0) == 1, "flowDirection egress");
	ok(get(rec, pf, pn, 184, 0) == 0xdeadbeef &&
	    get(rec, pf, pn, 184, R) == 0x01020304, "tcpSequenceNumber both");

	/* No reverse packet: reverse counts and times are zero. */
	fl.pkts[1] = fl.bytes[1] = 0;
	fl.start[1] = fl.end[1] = 0;
	fl.dir = WEIR_DIR_UNKNOWN;
	weir_ipfix_flow_encode((uint8_t *)(uintptr_t)rec, &fl, ns);
	ok(get(rec, pf, pn, 2, R) == 0 && get(rec, pf, pn, ns ? 156 : 152,
	    R) == 0 && get(rec, pf, pn, ns ? 157 : 153, 0) ==
	    (ns ? weir_ipfix_ntp(fl.end[0]) : fl.end[0] / 1000000),
	    "uniflow: reverse zero, end is the forward end");
	ok(get(rec, pf, pn, 61, 0) == WEIR_IPFIX_DIR_UNKNOWN,
	    "flowDirection unknown");
}

int
main(void)
{
	test_rfc_message();
	test_sets_and_space();
	test_ntp();
	test_flow(4, 0);
	test_flow(6, 0);
	test_flow(4, 1);
	test_flow(6, 1);
	return tap_done();
}
