/*
 * pcap_read.c - classic libpcap files, parsed in place.
 *
 * File header (24 bytes): magic, version 2.x, thiszone, sigfigs,
 * snaplen, link type.  Records: ts_sec, ts_frac, caplen, wirelen (16
 * bytes, file byte order) then caplen bytes.  The fraction is in
 * microseconds (magic a1b2c3d4) or nanoseconds (a1b23c4d); either magic
 * may be stored in either byte order.
 *
 * The record header is exactly WEIR_HEADROOM bytes: writers may reuse it
 * for their own header without touching the previous packet.
 *
 * The hot loop is specialised for each (byte order, resolution) pair so
 * a record costs four loads, a bounds check and the stores into the
 * weir_pkt; no byte swap unless the file needs it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weir/err.h"
#include "weir/input.h"
#include "weir/log.h"
#include "lib/fmt/fmt.h"

#define PCAP_MAGIC_US	0xa1b2c3d4u
#define PCAP_MAGIC_NS	0xa1b23c4du
#define PCAP_FILEHDR	24
#define PCAP_RECHDR	16

/* Upper bits of the link type field (pcap-linktype(7)). */
#define PCAP_LT_MASK	0x03ffffffu	/* link type proper */
/* 0xf0000000: FCS length in 16-bit words, 0x04000000: FCS length valid */

_Static_assert(PCAP_RECHDR >= WEIR_HEADROOM, "pcap headroom");

struct pcap_state {
	int		swap;		/* file order differs from ours */
	int		nano;		/* fraction in ns */
	uint16_t	iface;		/* global interface index */
	uint16_t	linktype;
};

static int
pcap_probe(const uint8_t *m, size_t n)
{
	uint32_t be;

	if (n < 4)
		return 0;
	be = (uint32_t)m[0] << 24 | (uint32_t)m[1] << 16 |
	    (uint32_t)m[2] << 8 | m[3];
	return be == PCAP_MAGIC_US || be == PCAP_MAGIC_NS ||
	    be == __builtin_bswap32(PCAP_MAGIC_US) ||
	    be == __builtin_bswap32(PCAP_MAGIC_NS);
}

static int
pcap_open(struct weir_input *in)
{
	struct pcap_state *st;
	const uint8_t *h;
	uint32_t magic, lt, snaplen;
	uint16_t major, minor;
	int rc, idx;

	if ((rc = fmt_need(in, PCAP_FILEHDR, "pcap file header")) != 0)
		return rc == WEIR_EOF ? -WEIR_ETRUNC : rc;
	if ((st = calloc(1, sizeof(*st))) == NULL)
		return weir_seterr(&in->err, -ENOMEM, "file '%s': %s",
		    in->path, strerror(ENOMEM));
	in->priv = st;

	h = in->base + in->pos;
	magic = fmt_ld32(h);
	if (magic == PCAP_MAGIC_US || magic == PCAP_MAGIC_NS) {
		st->swap = 0;
	} else {
		st->swap = 1;
		magic = __builtin_bswap32(magic);
	}
	st->nano = magic == PCAP_MAGIC_NS;
	major = fmt_rd16(h + 4, st->swap);
	minor = fmt_rd16(h + 6, st->swap);
	snaplen = fmt_rd32(h + 16, st->swap);
	lt = fmt_rd32(h + 20, st->swap);
	if (major != 2)
		return fmt_errat(in, -WEIR_EUNSUPP, 4,
		    "unsupported pcap version %u.%u", major, minor);
	/* The FCS bits say what trails each frame; the type is below. */
	lt &= PCAP_LT_MASK;
	if (lt > 0xffff)
		return fmt_errat(in, -WEIR_EUNSUPP, 20,
		    "unsupported link type %u", lt);
	st->linktype = (uint16_t)lt;
	idx = weir_iface_add(in->ifaces, in->index, st->linktype, snaplen,
	    st->nano ? 9 : 6, fmt_basename(in->path));
	if (idx < 0)
		return weir_seterr(&in->err, -WEIR_EUNSUPP, "file '%s': too "
		    "many interfaces (at most %d)", in->path, WEIR_MAX_IFACES);
	st->iface = (uint16_t)idx;
	in->pos += PCAP_FILEHDR;
	return 0;
}

static void
pcap_lenfix(struct weir_input *in, uint32_t caplen, uint32_t wirelen)
{
	if (in->lenfix++ == 0)
		log_warn("file '%s': offset %llu: captured length %u is "
		    "larger than the wire length %u, using %u as wire length "
		    "(later cases are only counted)", in->path,
		    (unsigned long long)weir_rbuf_off(in), caplen, wirelen,
		    caplen);
}

/*
 * Fill up to max packets.  Stops early (returning what it has) when the
 * next record is not wholly in the buffer: the buffer may only be
 * refilled at the start of a call, while the batch is not in use.
 */
static inline __attribute__((always_inline)) int
pcap_batch(struct weir_input *in, const struct pcap_state *st,
    struct weir_pkt *pkts, unsigned max, const int swap, const int nano)
{
	struct weir_pkt *pk;
	uint8_t *p;
	uint64_t bytes = 0;
	uint32_t caplen, wirelen;
	size_t avail;
	unsigned n = 0;
	int rc;

	while (n < max) {
		avail = in->len - in->pos;
		if (avail < PCAP_RECHDR) {
			if (n > 0)
				break;
			rc = fmt_need(in, PCAP_RECHDR, "record header");
			if (rc == WEIR_EOF)
				break;
			if (rc < 0)
				return rc;
			continue;
		}
		p = in->base + in->pos;
		caplen = fmt_rd32(p + 8, swap);
		if (caplen > FMT_MAX_CAPLEN) {
			rc = fmt_errat(in, -WEIR_EFORMAT, weir_rbuf_off(in),
			    "record captured length %u is larger than %u",
			    caplen, FMT_MAX_CAPLEN);
			if (n > 0)
				break;
			return rc;
		}
		if (avail < PCAP_RECHDR + (size_t)caplen) {
			if (n > 0)
				break;
			rc = fmt_need(in, PCAP_RECHDR + (size_t)caplen,
			    "record");
			if (rc == WEIR_EOF)
				break;
			if (rc < 0)
				return rc;
			continue;
		}
		wirelen = fmt_rd32(p + 12, swap);
		if (__builtin_expect(caplen > wirelen, 0)) {
			pcap_lenfix(in, caplen, wirelen);
			wirelen = caplen;
		}
		pk = &pkts[n++];
		pk->data = p + PCAP_RECHDR;
		pk->caplen = caplen;
		pk->wirelen = wirelen;
		pk->ts = (uint64_t)fmt_rd32(p, swap) * 1000000000u +
		    (uint64_t)fmt_rd32(p + 4, swap) * (nano ? 1u : 1000u);
		pk->iface = st->iface;
		pk->linktype = st->linktype;
		pk->dir = WEIR_DIR_UNKNOWN;
		pk->drop = 0;
		pk->decoded = 0;
		pk->modified = 0;
		pk->epb_flags = 0;
		bytes += caplen;
		in->pos += PCAP_RECHDR + (size_t)caplen;
	}
	in->pkts += n;
	in->bytes += bytes;
	return (int)n;
}

static int
pcap_next(struct weir_input *in, struct weir_pkt *pkts, unsigned max)
{
	const struct pcap_state *st = in->priv;

	if (st->swap)
		return st->nano ? pcap_batch(in, st, pkts, max, 1, 1) :
		    pcap_batch(in, st, pkts, max, 1, 0);
	return st->nano ? pcap_batch(in, st, pkts, max, 0, 1) :
	    pcap_batch(in, st, pkts, max, 0, 0);
}

static void
pcap_close(struct weir_input *in)
{
	(void)in;	/* priv is freed by input.c */
}

const struct weir_input_ops weir_fmt_pcap = {
	.name		= "pcap",
	.probe		= pcap_probe,
	.open		= pcap_open,
	.next_batch	= pcap_next,
	.close		= pcap_close,
};
