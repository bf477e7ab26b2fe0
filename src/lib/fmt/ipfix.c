/*
 * ipfix.c - IPFIX messages (RFC 7011): header, template sets, data sets,
 * and the biflow record layout (RFC 5103) of the flow export.
 *
 * Written here rather than taken from libfixbuf: see docs/flows.md.
 */
#include <errno.h>
#include <string.h>

#include "weir/err.h"
#include "weir/ipfix.h"

#define NS		1000000000ULL
#define NTP_UNIX	2208988800ULL	/* seconds from 1900 to 1970 */

void
weir_ipfix_begin(struct weir_ipfix_msg *m, uint8_t *buf, size_t cap,
    uint32_t export_time, uint32_t seq, uint32_t domain)
{
	m->buf = buf;
	m->cap = cap > WEIR_IPFIX_MAX_MSG ? WEIR_IPFIX_MAX_MSG : cap;
	m->len = WEIR_IPFIX_HDR_LEN;
	m->set_off = 0;
	m->set_id = 0;
	m->records = m->templates = 0;
	weir_put16(buf, WEIR_IPFIX_VERSION);
	weir_put16(buf + 2, WEIR_IPFIX_HDR_LEN);
	weir_put32(buf + 4, export_time);
	weir_put32(buf + 8, seq);
	weir_put32(buf + 12, domain);
}

size_t
weir_ipfix_template_len(const struct weir_ipfix_field *f, unsigned n)
{
	size_t len = 4;
	unsigned i;

	for (i = 0; i < n; i++)
		len += f[i].pen != 0 ? 8 : 4;
	return len;
}

size_t
weir_ipfix_record_len(const struct weir_ipfix_field *f, unsigned n)
{
	size_t len = 0;
	unsigned i;

	for (i = 0; i < n; i++)
		len += f[i].len;
	return len;
}

static void
close_set(struct weir_ipfix_msg *m)
{
	if (m->set_off == 0)
		return;
	weir_put16(m->buf + m->set_off + 2, (uint16_t)(m->len - m->set_off));
	m->set_off = 0;
	m->set_id = 0;
}

/* Room for len bytes in a set of id (a new set header if needed)? */
static int
room(const struct weir_ipfix_msg *m, uint16_t id, size_t len)
{
	size_t need = len;

	if (m->set_off == 0 || m->set_id != id)
		need += WEIR_IPFIX_SET_HDR_LEN;
	return m->len + need <= m->cap;
}

static uint8_t *
reserve(struct weir_ipfix_msg *m, uint16_t id, size_t len)
{
	uint8_t *p;

	if (!room(m, id, len))
		return NULL;
	if (m->set_off == 0 || m->set_id != id) {
		close_set(m);
		m->set_off = m->len;
		m->set_id = id;
		weir_put16(m->buf + m->len, id);
		weir_put16(m->buf + m->len + 2, 0);
		m->len += WEIR_IPFIX_SET_HDR_LEN;
	}
	p = m->buf + m->len;
	m->len += len;
	return p;
}

int
weir_ipfix_add_template(struct weir_ipfix_msg *m, uint16_t tid,
    const struct weir_ipfix_field *f, unsigned n)
{
	uint8_t *p;
	unsigned i;

	if (tid < 256 || n == 0 || n > 0xffff)
		return -EINVAL;
	for (i = 0; i < n; i++)
		if (f[i].id >= WEIR_IPFIX_ENTERPRISE || f[i].len == 0)
			return -EINVAL;
	p = reserve(m, WEIR_IPFIX_SET_TEMPLATE, weir_ipfix_template_len(f, n));
	if (p == NULL)
		return -ENOSPC;
	weir_put16(p, tid);
	weir_put16(p + 2, (uint16_t)n);
	p += 4;
	for (i = 0; i < n; i++) {
		weir_put16(p, (uint16_t)(f[i].id |
		    (f[i].pen != 0 ? WEIR_IPFIX_ENTERPRISE : 0)));
		weir_put16(p + 2, f[i].len);
		p += 4;
		if (f[i].pen != 0) {
			weir_put32(p, f[i].pen);
			p += 4;
		}
	}
	m->templates++;
	return 0;
}

int
weir_ipfix_fits(const struct weir_ipfix_msg *m, uint16_t tid, size_t len)
{
	return room(m, tid, len);
}

uint8_t *
weir_ipfix_add_record(struct weir_ipfix_msg *m, uint16_t tid, size_t len)
{
	uint8_t *p;

	if (tid < 256 || len == 0)
		return NULL;
	if ((p = reserve(m, tid, len)) != NULL)
		m->records++;
	return p;
}

size_t
weir_ipfix_finish(struct weir_ipfix_msg *m)
{
	close_set(m);
	weir_put16(m->buf + 2, (uint16_t)m->len);
	return m->len;
}

int
weir_ipfix_parse_hdr(const uint8_t *buf, size_t len, struct weir_ipfix_hdr *h)
{
	if (len < WEIR_IPFIX_HDR_LEN)
		return -WEIR_EFORMAT;
	h->version = weir_get16(buf);
	h->length = weir_get16(buf + 2);
	h->export_time = weir_get32(buf + 4);
	h->seq = weir_get32(buf + 8);
	h->domain = weir_get32(buf + 12);
	if (h->version != WEIR_IPFIX_VERSION || h->length < WEIR_IPFIX_HDR_LEN ||
	    h->length > len)
		return -WEIR_EFORMAT;
	return 0;
}

int
weir_ipfix_next_set(const uint8_t *buf, size_t len, size_t *off,
    uint16_t *id, const uint8_t **body, size_t *blen)
{
	size_t slen;

	if (*off >= len)
		return 0;
	if (len - *off < WEIR_IPFIX_SET_HDR_LEN)
		return -WEIR_EFORMAT;
	*id = weir_get16(buf + *off);
	slen = weir_get16(buf + *off + 2);
	if (slen < WEIR_IPFIX_SET_HDR_LEN || slen > len - *off)
		return -WEIR_EFORMAT;
	*body = buf + *off + WEIR_IPFIX_SET_HDR_LEN;
	*blen = slen - WEIR_IPFIX_SET_HDR_LEN;
	*off += slen;
	return 1;
}

int
weir_ipfix_parse_template(const uint8_t *p, size_t len, uint16_t *tid,
    struct weir_ipfix_field *f, unsigned max, unsigned *n)
{
	size_t off = 4;
	unsigned i, cnt;
	uint16_t id;

	if (len < 4)
		return -WEIR_EFORMAT;
	*tid = weir_get16(p);
	cnt = weir_get16(p + 2);
	if (*tid < 256)
		return -WEIR_EFORMAT;
	for (i = 0; i < cnt; i++) {
		if (len - off < 4)
			return -WEIR_EFORMAT;
		id = weir_get16(p + off);
		if (i < max) {
			f[i].id = id & (WEIR_IPFIX_ENTERPRISE - 1);
			f[i].len = weir_get16(p + off + 2);
			f[i].pen = 0;
		}
		off += 4;
		if (id & WEIR_IPFIX_ENTERPRISE) {
			if (len - off < 4)
				return -WEIR_EFORMAT;
			if (i < max)
				f[i].pen = weir_get32(p + off);
			off += 4;
		}
	}
	*n = cnt;
	return (int)off;
}

uint64_t
weir_ipfix_ntp(uint64_t unix_ns)
{
	uint64_t s = unix_ns / NS + NTP_UNIX, rem = unix_ns % NS;

	/*
	 * Rounded up, so a reader that truncates (tshark, ours) gets the
	 * nanosecond back: the fraction step is 0.23 ns.
	 */
	return s << 32 | ((rem << 32) + NS - 1) / NS;
}

uint64_t
weir_ipfix_ntp_to_unix(uint64_t ntp)
{
	uint64_t s = ntp >> 32, frac = ntp & 0xffffffffULL;

	return (s - NTP_UNIX) * NS + ((frac * NS) >> 32);
}

/*
 * The flow record, in this order (lengths in bytes).  Eight-byte fields
 * first, then four, two and one, so the record needs no padding to keep
 * the wide fields where a reader expects them.  R marks a reverse
 * element (enterprise bit, PEN 29305).  The reverse timestamps come
 * before the forward ones because nfdump 1.7 ignores the enterprise bit
 * of time elements and keeps the last value it reads: this order gives
 * it the biflow's times, and changes nothing for a reader that knows
 * RFC 5103.
 */
enum {
	F_RSTART, F_REND, F_START, F_END, F_OCT, F_PKT, F_ROCT, F_RPKT,
	F_SRC, F_DST, F_ISN, F_RISN, F_SPORT, F_DPORT, F_VLAN, F_FLAGS,
	F_RFLAGS, F_PROTO, F_REASON, F_DIR, F_N
};

unsigned
weir_ipfix_flow_template(int family, int ns, struct weir_ipfix_field *f)
{
	const uint16_t ts_start = ns ? 156 : 152, ts_end = ns ? 157 : 153;
	const uint16_t alen = family == 6 ? 16 : 4;
	const struct weir_ipfix_field v[F_N] = {
		[F_START]  = { ts_start, 8, 0 },
		[F_END]    = { ts_end, 8, 0 },
		[F_RSTART] = { ts_start, 8, WEIR_IPFIX_PEN_REVERSE },
		[F_REND]   = { ts_end, 8, WEIR_IPFIX_PEN_REVERSE },
		[F_OCT]    = { 1, 8, 0 },	/* octetDeltaCount */
		[F_PKT]    = { 2, 8, 0 },	/* packetDeltaCount */
		[F_ROCT]   = { 1, 8, WEIR_IPFIX_PEN_REVERSE },
		[F_RPKT]   = { 2, 8, WEIR_IPFIX_PEN_REVERSE },
		[F_SRC]    = { family == 6 ? 27 : 8, alen, 0 },
		[F_DST]    = { family == 6 ? 28 : 12, alen, 0 },
		[F_ISN]    = { 184, 4, 0 },	/* tcpSequenceNumber */
		[F_RISN]   = { 184, 4, WEIR_IPFIX_PEN_REVERSE },
		[F_SPORT]  = { 7, 2, 0 },	/* sourceTransportPort */
		[F_DPORT]  = { 11, 2, 0 },	/* destinationTransportPort */
		[F_VLAN]   = { 58, 2, 0 },	/* vlanId */
		[F_FLAGS]  = { 6, 2, 0 },	/* tcpControlBits */
		[F_RFLAGS] = { 6, 2, WEIR_IPFIX_PEN_REVERSE },
		[F_PROTO]  = { 4, 1, 0 },	/* protocolIdentifier */
		[F_REASON] = { 136, 1, 0 },	/* flowEndReason */
		[F_DIR]    = { 61, 1, 0 },	/* flowDirection */
	};

	memcpy(f, v, sizeof(v));
	return F_N;
}

uint16_t
weir_ipfix_flow_tid(int family, int ns)
{
	if (family == 6)
		return ns ? WEIR_IPFIX_TID_FLOW6_NS : WEIR_IPFIX_TID_FLOW6_MS;
	return ns ? WEIR_IPFIX_TID_FLOW4_NS : WEIR_IPFIX_TID_FLOW4_MS;
}

size_t
weir_ipfix_flow_len(int family, int ns)
{
	(void)ns;
	/* 8 x 8 + 2 addresses + 2 x 4 + 5 x 2 + 3 x 1 */
	return 64 + (family == 6 ? 32 : 8) + 8 + 10 + 3;
}

static uint64_t
ts_enc(uint64_t t, int ns)
{
	if (t == 0)
		return 0;
	return ns ? weir_ipfix_ntp(t) : t / 1000000;
}

size_t
weir_ipfix_flow_encode(uint8_t *rec, const struct weir_flow *f, int ns)
{
	const struct weir_flow_key *k = &f->key;
	size_t alen = k->family == 6 ? 16 : 4;
	uint64_t start, end;
	uint8_t *p = rec;
	uint8_t dir;

	/* flowStart/End cover the biflow; the reverse pair its back half. */
	start = f->start[0];
	if (f->pkts[1] != 0 && (start == 0 || f->start[1] < start))
		start = f->start[1];
	end = f->end[0] > f->end[1] ? f->end[0] : f->end[1];
	weir_put64(p, f->pkts[1] ? ts_enc(f->start[1], ns) : 0);
	weir_put64(p + 8, f->pkts[1] ? ts_enc(f->end[1], ns) : 0);
	weir_put64(p + 16, ts_enc(start, ns));
	weir_put64(p + 24, ts_enc(end, ns));
	weir_put64(p + 32, f->bytes[0]);
	weir_put64(p + 40, f->pkts[0]);
	weir_put64(p + 48, f->bytes[1]);
	weir_put64(p + 56, f->pkts[1]);
	p += 64;
	memcpy(p, k->addr[0], alen);
	memcpy(p + alen, k->addr[1], alen);
	p += 2 * alen;
	weir_put32(p, f->isn[0]);
	weir_put32(p + 4, f->isn[1]);
	weir_put16(p + 8, k->port[0]);
	weir_put16(p + 10, k->port[1]);
	weir_put16(p + 12, k->vlan);
	weir_put16(p + 14, f->tcp_flags[0]);
	weir_put16(p + 16, f->tcp_flags[1]);
	p[18] = k->proto;
	p[19] = f->end_reason;
	/* flowDirection: 0 ingress, 1 egress; unknown has no value. */
	dir = f->dir == WEIR_DIR_IN ? 0 : f->dir == WEIR_DIR_OUT ? 1 :
	    WEIR_IPFIX_DIR_UNKNOWN;
	p[20] = dir;
	p += 21;
	return (size_t)(p - rec);
}
