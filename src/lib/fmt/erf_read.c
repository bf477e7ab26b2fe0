/*
 * erf_read.c - Endace ERF (DAG) record files, parsed in place.
 *
 * A file is a bare sequence of records, no file header.  Record header
 * (16 bytes): timestamp (64-bit little-endian 32.32 fixed point seconds),
 * type, flags, rlen, lctr, wlen (these three big-endian).  Type bit 0x80
 * means 8-byte extension headers follow, each with bit 0x80 of its first
 * byte set when another one follows.  Then the payload:
 *   ETH and its colour variants: 2 bytes (offset, pad), then the frame;
 *   IPV4, IPV6: the IP packet (LINKTYPE_RAW).
 * Other types (ATM, HDLC/PoS, ...) are skipped and counted in
 * in->skipped; PAD and META records are skipped silently (no packet).
 *
 * Lengths: rlen covers header, extension headers, pad and data, and may
 * include alignment padding, so caplen = min(rlen - headers, wlen).
 * wlen is the length on the wire; for Ethernet it includes the 4-byte
 * FCS (tshark's frame.len and libtrace's pcap conversion agree).
 *
 * Interfaces: flags & 3 is the DAG port.  Each (port, link type) pair
 * seen registers one interface, in order of first appearance (which is
 * also tshark's interface numbering), named "<file>#<port>" (Ethernet)
 * or "<file>#<port>-ip" (raw IP).  Direction follows libtrace, which
 * returns the port as the direction: port 0 outbound, port 1 inbound,
 * ports 2 and 3 unknown.  A direction-tagging stage can override it.
 *
 * lctr of non-colour records counts frames the card lost before this
 * record; it is summed into in->lost.
 */
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weir/bytes.h"
#include "weir/err.h"
#include "weir/input.h"
#include "lib/fmt/fmt.h"

#define ERF_HDR			16
#define ERF_EXT			8

#define ERF_HDLC_POS		1
#define ERF_ETH			2
#define ERF_COLOR_ETH		11
#define ERF_DSM_COLOR_ETH	16
#define ERF_COLOR_HASH_ETH	20
#define ERF_IPV4		22
#define ERF_IPV6		23
#define ERF_META		27
#define ERF_PAD			48
#define ERF_TYPE_LAST		27	/* highest assigned type but PAD */

#define ERF_PORTS		4

struct erf_state {
	int		ifidx[ERF_PORTS][2];	/* global index, -1: none yet */
};

/* Does the record header at p look like ERF? */
static int
erf_plausible(const uint8_t *p, unsigned *rlen)
{
	unsigned t = p[8] & 0x7f;

	if (t == 0 || (t > ERF_TYPE_LAST && t != ERF_PAD))
		return 0;
	*rlen = weir_get16(p + 10);
	if (*rlen < ERF_HDR + ((p[8] & 0x80) ? ERF_EXT : 0u))
		return 0;
	/* Flag bits 6-7 are reserved and always 0 from DAG cards. */
	if (p[9] & 0xc0)
		return 0;
	return 1;
}

/*
 * ERF has no magic.  Accept when the first record, and every following
 * record held in the probe bytes (up to 4), have a known type, a sane
 * length and clear reserved flags; never claim a pcap or pcapng magic.
 */
static int
erf_probe(const uint8_t *m, size_t n)
{
	unsigned rlen, i;
	size_t off = 0;
	uint32_t be;

	if (n < ERF_HDR)
		return 0;
	be = (uint32_t)m[0] << 24 | (uint32_t)m[1] << 16 |
	    (uint32_t)m[2] << 8 | m[3];
	if (be == 0xa1b2c3d4 || be == 0xd4c3b2a1 || be == 0xa1b23c4d ||
	    be == 0x4d3cb2a1 || be == 0x0a0d0d0a)
		return 0;
	for (i = 0; i < 4 && n - off >= ERF_HDR; i++) {
		if (!erf_plausible(m + off, &rlen))
			return 0;
		off += rlen;
		if (off >= n)
			break;
	}
	return 1;
}

static int
erf_open(struct weir_input *in)
{
	struct erf_state *st;
	int i, j;

	if ((st = calloc(1, sizeof(*st))) == NULL)
		return weir_seterr(&in->err, -ENOMEM, "file '%s': %s",
		    in->path, strerror(ENOMEM));
	for (i = 0; i < ERF_PORTS; i++)
		for (j = 0; j < 2; j++)
			st->ifidx[i][j] = -1;
	in->priv = st;
	return 0;
}

static int
erf_iface(struct weir_input *in, struct erf_state *st, unsigned port,
    int raw, uint64_t off)
{
	char name[64];
	int idx;

	snprintf(name, sizeof(name), "%.50s#%u%s", fmt_basename(in->path),
	    port, raw ? "-ip" : "");
	idx = weir_iface_add(in->ifaces, in->index,
	    raw ? WEIR_LT_RAW : WEIR_LT_EN10MB, 0, 9, name);
	if (idx < 0)
		return fmt_errat(in, -WEIR_EUNSUPP, off, "too many interfaces "
		    "(at most %d)", WEIR_MAX_IFACES);
	st->ifidx[port][raw] = idx;
	return 0;
}

static int
erf_next(struct weir_input *in, struct weir_pkt *pkts, unsigned max)
{
	static const uint8_t dirmap[ERF_PORTS] = { WEIR_DIR_OUT, WEIR_DIR_IN,
	    WEIR_DIR_UNKNOWN, WEIR_DIR_UNKNOWN };
	struct erf_state *st = in->priv;
	struct weir_pkt *pk;
	uint8_t *p;
	uint64_t off, ts, frac, bytes = 0;
	uint32_t sec;
	unsigned rlen, hlen, pad, type, port, caplen, wlen, n = 0;
	size_t avail;
	int rc = 0, raw, more;

	while (n < max) {
		avail = in->len - in->pos;
		off = weir_rbuf_off(in);
		if (avail < ERF_HDR) {
			if (n > 0)
				break;
			rc = fmt_need(in, ERF_HDR, "record header");
			if (rc == WEIR_EOF) {
				rc = 0;
				break;
			}
			if (rc < 0)
				return rc;
			continue;
		}
		p = in->base + in->pos;
		rlen = weir_get16(p + 10);
		if (rlen < ERF_HDR) {
			rc = fmt_errat(in, -WEIR_EFORMAT, off, "record length "
			    "%u is shorter than the record header", rlen);
			break;
		}
		if (avail < rlen) {
			if (n > 0)
				break;
			rc = fmt_need(in, rlen, "record");
			if (rc == WEIR_EOF)
				rc = 0;
			if (rc != 0)
				return rc;
			continue;
		}
		hlen = ERF_HDR;
		if (p[8] & 0x80) {
			do {
				if (hlen + ERF_EXT > rlen) {
					rc = fmt_errat(in, -WEIR_EFORMAT, off,
					    "extension headers run past the "
					    "record of %u bytes", rlen);
					goto out;
				}
				more = p[hlen] & 0x80;
				hlen += ERF_EXT;
			} while (more);
		}
		type = p[8] & 0x7f;
		switch (type) {
		case ERF_ETH:
		case ERF_COLOR_ETH:
		case ERF_DSM_COLOR_ETH:
		case ERF_COLOR_HASH_ETH:
			raw = 0;
			pad = 2;
			break;
		case ERF_IPV4:
		case ERF_IPV6:
			raw = 1;
			pad = 0;
			break;
		case ERF_PAD:
		case ERF_META:
			in->pos += rlen;
			continue;
		default:
			in->skipped++;
			in->pos += rlen;
			continue;
		}
		if (hlen + pad > rlen) {
			rc = fmt_errat(in, -WEIR_EFORMAT, off, "record of %u "
			    "bytes is too short for its type %u", rlen, type);
			break;
		}
		port = p[9] & 3;
		if (st->ifidx[port][raw] < 0 &&
		    (rc = erf_iface(in, st, port, raw, off)) != 0)
			break;
		caplen = rlen - hlen - pad;
		wlen = weir_get16(p + 14);
		if (caplen > wlen)
			caplen = wlen;	/* the rest is alignment padding */
		if (type == ERF_ETH || type == ERF_IPV4 || type == ERF_IPV6)
			in->lost += weir_get16(p + 12);

		/* 32.32 fixed point, rounded to the nearest ns. */
		ts = le64toh(fmt_ld64(p));
		sec = (uint32_t)(ts >> 32);
		frac = ((ts & 0xffffffffu) * 1000000000u + 0x80000000u) >> 32;
		pk = &pkts[n++];
		pk->data = p + hlen + pad;
		pk->caplen = caplen;
		pk->wirelen = wlen;
		pk->ts = (uint64_t)sec * 1000000000u + frac;
		pk->iface = (uint16_t)st->ifidx[port][raw];
		pk->linktype = raw ? WEIR_LT_RAW : WEIR_LT_EN10MB;
		pk->dir = dirmap[port];
		pk->drop = 0;
		pk->decoded = 0;
		pk->modified = 0;
		pk->epb_flags = 0;
		bytes += caplen;
		in->pos += rlen;
	}
out:
	in->pkts += n;
	in->bytes += bytes;
	if (rc < 0 && n == 0)
		return rc;
	return (int)n;
}

static void
erf_close(struct weir_input *in)
{
	(void)in;	/* priv is freed by input.c */
}

const struct weir_input_ops weir_fmt_erf = {
	.name		= "erf",
	.probe		= erf_probe,
	.open		= erf_open,
	.next_batch	= erf_next,
	.close		= erf_close,
};
