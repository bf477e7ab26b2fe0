/*
 * pcapng_read.c - pcapng files (draft-ietf-opsawg-pcapng), parsed in
 * place.
 *
 * A file is one or more sections.  Each Section Header Block sets the
 * byte order of its section (its type 0x0a0d0d0a reads the same either
 * way) and starts a fresh list of interfaces: an EPB's interface id
 * indexes the IDBs of its own section only.  Every IDB registers one
 * global interface (weir_iface_add), in file order, so a file with 3
 * sections of 2 IDBs each gives 6 interfaces.
 *
 * Blocks read: SHB, IDB, EPB, SPB and the obsolete PB.  NRB, ISB, DSB,
 * custom and unknown blocks are skipped (after the same length checks).
 *
 * Every block is checked before use: total length >= 12, a multiple of
 * 4, equal in header and trailer, at most FMT_MAX_BLOCK; fixed fields
 * inside the body; packet data inside the body; each option inside the
 * body.  A zero length can therefore never stall the loop.
 *
 * Headroom: EPB and PB data start 28 bytes into the block.  SPB data
 * start 12 bytes in, and the 4 bytes before the block are the previous
 * block's trailer (or the read buffer's spare front after a refill),
 * which is no packet's data: 16 bytes of headroom without a copy.
 *
 * SPBs carry no timestamp: they get the timestamp of the previous
 * packet of the file (0 if none), so merging by time keeps them in
 * place.  tshark shows them without a time.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weir/err.h"
#include "weir/input.h"
#include "weir/log.h"
#include "lib/fmt/fmt.h"

#define PNG_SHB		0x0a0d0d0au
#define PNG_IDB		0x00000001u
#define PNG_PB		0x00000002u	/* obsolete Packet Block */
#define PNG_SPB		0x00000003u
#define PNG_EPB		0x00000006u
#define PNG_BOM		0x1a2b3c4du

#define PNG_MINBLOCK	12		/* type, length, trailer */
#define PNG_SHB_BODY	16		/* BOM, major, minor, section len */
#define PNG_IDB_BODY	8		/* linktype, reserved, snaplen */
#define PNG_EPB_BODY	20		/* ifid, ts hi, ts lo, caplen, len */
#define PNG_PB_BODY	20		/* ifid16, drops16, ts, caplen, len */
#define PNG_SPB_BODY	4		/* original length */

#define OPT_ENDOFOPT	0
#define OPT_IF_NAME	2
#define OPT_IF_TSRESOL	9
#define OPT_IF_TSOFFSET	14
#define OPT_EPB_FLAGS	2		/* also pack_flags of the PB */

#define PAD4(x)		(((x) + 3u) & ~3u)

struct png_if {
	uint64_t	mul;		/* ns per unit (10^-n, n <= 9), or 0 */
	uint64_t	maxunits;	/* largest unit count mul can scale */
	int64_t		off_ns;		/* if_tsoffset, in ns */
	uint32_t	snaplen;
	uint16_t	gidx;		/* global interface index */
	uint16_t	linktype;
	uint8_t		resol;		/* if_tsresol as stored */
};

struct png_state {
	int		swap;		/* of the current section */
	unsigned	nif;		/* IDBs of the current section */
	unsigned	nidb;		/* IDBs of the whole file */
	uint64_t	last_ts;	/* of the previous packet, for SPBs */
	struct png_if	ifs[WEIR_MAX_IFACES];
};

static const char *
png_blockname(uint32_t type)
{
	switch (type) {
	case PNG_SHB:	return "section header block";
	case PNG_IDB:	return "interface description block";
	case PNG_PB:	return "packet block";
	case PNG_SPB:	return "simple packet block";
	case PNG_EPB:	return "enhanced packet block";
	default:	return "block";
	}
}

static int
png_probe(const uint8_t *m, size_t n)
{
	uint32_t bom;

	if (n < 4 || fmt_ld32(m) != PNG_SHB)
		return 0;
	if (n < 12)
		return 1;	/* a cut-short SHB: let open() say so */
	bom = fmt_ld32(m + 8);
	return bom == PNG_BOM || bom == __builtin_bswap32(PNG_BOM);
}

/*
 * Walk the options in [*pp, end).  Returns 1 with one option, 0 at the
 * end (or opt_endofopt), -1 when an option runs past end.
 */
static int
png_opt(const uint8_t **pp, const uint8_t *end, int swap, uint16_t *code,
    uint16_t *len, const uint8_t **val)
{
	const uint8_t *p = *pp;

	if (p == end)
		return 0;
	if (end - p < 4)
		return -1;
	*code = fmt_rd16(p, swap);
	*len = fmt_rd16(p + 2, swap);
	if (*code == OPT_ENDOFOPT)
		return 0;
	if ((size_t)(end - p - 4) < PAD4((uint32_t)*len))
		return -1;
	*val = p + 4;
	*pp = p + 4 + PAD4((uint32_t)*len);
	return 1;
}

static int
png_opterr(struct weir_input *in, uint64_t off, uint32_t type,
    const uint8_t *opt, const uint8_t *end, int swap)
{
	if (end - opt < 4)
		return fmt_errat(in, -WEIR_EFORMAT, off, "%s: option header "
		    "runs past the end of the block", png_blockname(type));
	return fmt_errat(in, -WEIR_EFORMAT, off, "%s: option %u of length "
	    "%u runs past the end of the block", png_blockname(type),
	    fmt_rd16(opt, swap), fmt_rd16(opt + 2, swap));
}

/* Check that the options of a block we do not otherwise read fit. */
static int
png_optcheck(struct weir_input *in, uint64_t off, uint32_t type,
    const uint8_t *p, const uint8_t *end, int swap)
{
	const uint8_t *o = p, *val;
	uint16_t code, len;
	int r;

	while ((r = png_opt(&o, end, swap, &code, &len, &val)) > 0)
		;
	return r < 0 ? png_opterr(in, off, type, o, end, swap) : 0;
}

static uint64_t
pow10u(unsigned e)
{
	uint64_t v = 1;

	while (e-- > 0)
		v *= 10;
	return v;
}

/* Units of if_tsresol to ns, for every resolution but 10^-0..10^-9. */
static int
png_ts_slow(const struct png_if *f, uint64_t u, uint64_t *ns)
{
	unsigned e = f->resol & 0x7f, sh;
	uint64_t sec, frac, fns;

	if ((f->resol & 0x80) == 0) {
		/* 10^-e with e > 9: only ever shrinks. */
		*ns = e - 9 > 19 ? 0 : u / pow10u(e - 9);
		return 0;
	}
	if (e >= 64) {
		sec = 0;
		frac = u;
	} else {
		sec = u >> e;
		frac = e == 0 ? 0 : u & ((UINT64_C(1) << e) - 1);
	}
	/* frac < 2^34 keeps frac * 10^9 below 2^64. */
	sh = e;
	if (sh > 34) {
		frac = sh - 34 >= 64 ? 0 : frac >> (sh - 34);
		sh = 34;
	}
	fns = (frac * 1000000000u) >> sh;
	if (sec > (UINT64_MAX - fns) / 1000000000u)
		return -1;
	*ns = sec * 1000000000u + fns;
	return 0;
}

static inline int
png_ts(const struct png_if *f, uint64_t u, uint64_t *ns)
{
	uint64_t v;

	if (__builtin_expect(f->mul != 0, 1)) {
		if (u > f->maxunits)
			return -1;
		v = u * f->mul;
	} else if (png_ts_slow(f, u, &v) != 0)
		return -1;
	if (__builtin_expect(f->off_ns != 0, 0)) {
		if (f->off_ns > 0) {
			if (v > UINT64_MAX - (uint64_t)f->off_ns)
				return -1;
			v += (uint64_t)f->off_ns;
		} else {
			/* -off_ns cannot overflow: |off_ns| is bounded. */
			if (v < (uint64_t)-f->off_ns)
				return -1;
			v -= (uint64_t)-f->off_ns;
		}
	}
	*ns = v;
	return 0;
}

static int
png_shb(struct weir_input *in, struct png_state *st, const uint8_t *p,
    uint32_t blen, int swap, uint64_t off)
{
	uint16_t major, minor;
	int rc;

	if (blen - PNG_MINBLOCK < PNG_SHB_BODY)
		return fmt_errat(in, -WEIR_EFORMAT, off, "section header "
		    "block of %u bytes is too short", blen);
	major = fmt_rd16(p + 12, swap);
	minor = fmt_rd16(p + 14, swap);
	if (major != 1)
		return fmt_errat(in, -WEIR_EUNSUPP, off, "unsupported pcapng "
		    "version %u.%u", major, minor);
	rc = png_optcheck(in, off, PNG_SHB, p + 8 + PNG_SHB_BODY,
	    p + blen - 4, swap);
	if (rc != 0)
		return rc;
	st->swap = swap;
	st->nif = 0;
	return 0;
}

static int
png_idb(struct weir_input *in, struct png_state *st, const uint8_t *p,
    uint32_t blen, int swap, uint64_t off)
{
	const uint8_t *o, *end, *val;
	struct png_if *f;
	char name[64];
	uint16_t code, len;
	uint8_t resol = 6;
	int64_t tsoff = 0;
	size_t i, nl = 0;
	int r, idx;

	if (blen - PNG_MINBLOCK < PNG_IDB_BODY)
		return fmt_errat(in, -WEIR_EFORMAT, off, "interface "
		    "description block of %u bytes is too short", blen);
	if (st->nif >= WEIR_MAX_IFACES)
		return fmt_errat(in, -WEIR_EUNSUPP, off, "more than %d "
		    "interfaces in one section", WEIR_MAX_IFACES);
	o = p + 8 + PNG_IDB_BODY;
	end = p + blen - 4;
	while ((r = png_opt(&o, end, swap, &code, &len, &val)) > 0) {
		switch (code) {
		case OPT_IF_NAME:
			/* Printable bytes only: names end up in logs. */
			for (i = 0; i < len && nl < sizeof(name) - 1; i++) {
				if (val[i] == '\0')
					break;
				name[nl++] = (val[i] < 0x20 || val[i] > 0x7e) ?
				    '?' : (char)val[i];
			}
			break;
		case OPT_IF_TSRESOL:
			if (len != 1)
				return fmt_errat(in, -WEIR_EFORMAT, off,
				    "if_tsresol of length %u (not 1)", len);
			resol = val[0];
			break;
		case OPT_IF_TSOFFSET:
			if (len != 8)
				return fmt_errat(in, -WEIR_EFORMAT, off,
				    "if_tsoffset of length %u (not 8)", len);
			tsoff = (int64_t)fmt_rd64(val, swap);
			break;
		default:
			break;
		}
	}
	if (r < 0)
		return png_opterr(in, off, PNG_IDB, o, end, swap);
	/* About 292 years either way; beyond that it is no timestamp. */
	if (tsoff > INT64_MAX / 1000000000 || tsoff < -(INT64_MAX /
	    1000000000))
		return fmt_errat(in, -WEIR_EFORMAT, off, "if_tsoffset %lld "
		    "is out of range", (long long)tsoff);

	f = &st->ifs[st->nif];
	memset(f, 0, sizeof(*f));
	f->linktype = fmt_rd16(p + 8, swap);
	f->snaplen = fmt_rd32(p + 12, swap);
	f->resol = resol;
	f->off_ns = tsoff * 1000000000;
	if ((resol & 0x80) == 0 && resol <= 9) {
		f->mul = pow10u(9u - resol);
		f->maxunits = UINT64_MAX / f->mul;
	}
	name[nl] = '\0';
	if (nl == 0)
		snprintf(name, sizeof(name), "%.50s#%u",
		    fmt_basename(in->path), st->nidb);
	idx = weir_iface_add(in->ifaces, in->index, f->linktype, f->snaplen,
	    resol, name);
	if (idx < 0)
		return fmt_errat(in, -WEIR_EUNSUPP, off, "too many interfaces "
		    "(at most %d)", WEIR_MAX_IFACES);
	f->gidx = (uint16_t)idx;
	st->nif++;
	st->nidb++;
	return 0;
}

/* Scan packet options for the flags word; check they fit. */
static int
png_pktopts(struct weir_input *in, uint32_t type, const uint8_t *o,
    const uint8_t *end, int swap, uint64_t off, uint32_t *flags)
{
	const uint8_t *val;
	uint16_t code, len;
	int r;

	while ((r = png_opt(&o, end, swap, &code, &len, &val)) > 0) {
		if (code != OPT_EPB_FLAGS)
			continue;
		if (len != 4)
			return fmt_errat(in, -WEIR_EFORMAT, off, "%s: flags "
			    "option of length %u (not 4)", png_blockname(type),
			    len);
		*flags = fmt_rd32(val, swap);
	}
	return r < 0 ? png_opterr(in, off, type, o, end, swap) : 0;
}

static inline void
png_fill(struct weir_pkt *pk, const struct png_if *f, uint8_t *data,
    uint32_t caplen, uint32_t wirelen, uint64_t ts, uint32_t flags)
{
	static const uint8_t dirmap[4] = { WEIR_DIR_UNKNOWN, WEIR_DIR_IN,
	    WEIR_DIR_OUT, WEIR_DIR_UNKNOWN };

	pk->data = data;
	pk->caplen = caplen;
	pk->wirelen = wirelen;
	pk->ts = ts;
	pk->iface = f->gidx;
	pk->linktype = f->linktype;
	pk->dir = dirmap[flags & 3];
	pk->drop = 0;
	pk->decoded = 0;
	pk->modified = 0;
	pk->epb_flags = flags;
}

static void
png_lenfix(struct weir_input *in, uint64_t off, uint32_t caplen,
    uint32_t wirelen)
{
	if (in->lenfix++ == 0)
		log_warn("file '%s': offset %llu: captured length %u is "
		    "larger than the wire length %u, using %u as wire length "
		    "(later cases are only counted)", in->path,
		    (unsigned long long)off, caplen, wirelen, caplen);
}

/*
 * Process blocks from in->pos.  With pkts == NULL (from open) stop
 * before the first packet block or the first incomplete block, without
 * refilling; otherwise fill up to max packets, refilling only while the
 * batch is still empty.  Errors leave in->pos at the bad block, so after
 * a partial batch the next call finds the error again, with no packet
 * pending.
 */
static int
png_run(struct weir_input *in, struct weir_pkt *pkts, unsigned max)
{
	struct png_state *st = in->priv;
	const struct png_if *f;
	uint8_t *p;
	uint64_t off, units, ts, bytes = 0;
	uint32_t type, blen, bom, ifid, caplen, wirelen, body, flags;
	size_t avail;
	unsigned n = 0;
	int rc = 0, swap;

	while (pkts == NULL || n < max) {
		avail = in->len - in->pos;
		off = weir_rbuf_off(in);
		if (avail < PNG_MINBLOCK) {
			if (n > 0 || pkts == NULL)
				break;
			rc = fmt_need(in, PNG_MINBLOCK, "block header");
			if (rc == WEIR_EOF) {
				rc = 0;
				break;
			}
			if (rc < 0)
				return rc;
			continue;
		}
		p = in->base + in->pos;
		type = fmt_ld32(p);
		swap = st->swap;
		if (type == PNG_SHB) {
			bom = fmt_ld32(p + 8);
			if (bom == PNG_BOM)
				swap = 0;
			else if (bom == __builtin_bswap32(PNG_BOM))
				swap = 1;
			else {
				rc = fmt_errat(in, -WEIR_EFORMAT, off,
				    "section header block with byte-order "
				    "magic 0x%08x", fmt_rd32(p + 8, 0));
				break;
			}
		} else
			type = swap ? __builtin_bswap32(type) : type;
		blen = fmt_rd32(p + 4, swap);
		if (blen < PNG_MINBLOCK || (blen & 3) != 0 ||
		    blen > FMT_MAX_BLOCK) {
			rc = fmt_errat(in, -WEIR_EFORMAT, off,
			    "%s with invalid total length %u",
			    png_blockname(type), blen);
			break;
		}
		if (avail < blen) {
			if (n > 0 || pkts == NULL)
				break;
			rc = fmt_need(in, blen, png_blockname(type));
			if (rc == WEIR_EOF)
				rc = 0;
			if (rc != 0)
				return rc;
			continue;
		}
		if (fmt_rd32(p + blen - 4, swap) != blen) {
			rc = fmt_errat(in, -WEIR_EFORMAT, off,
			    "%s total length %u in header and %u in trailer "
			    "differ",
			    png_blockname(type), blen,
			    fmt_rd32(p + blen - 4, swap));
			break;
		}
		body = blen - PNG_MINBLOCK;

		switch (type) {
		case PNG_EPB:
		case PNG_PB:
			if (pkts == NULL)
				goto out;
			if (body < PNG_EPB_BODY) {
				rc = fmt_errat(in, -WEIR_EFORMAT, off,
				    "%s of %u bytes is too short",
				    png_blockname(type), blen);
				goto out;
			}
			if (type == PNG_EPB)
				ifid = fmt_rd32(p + 8, swap);
			else
				ifid = fmt_rd16(p + 8, swap);
			if (ifid >= st->nif) {
				rc = fmt_errat(in, -WEIR_EFORMAT, off, "%s for "
				    "interface %u, but the section has %u",
				    png_blockname(type), ifid, st->nif);
				goto out;
			}
			f = &st->ifs[ifid];
			caplen = fmt_rd32(p + 20, swap);
			if (caplen > body - PNG_EPB_BODY) {
				rc = fmt_errat(in, -WEIR_EFORMAT, off, "%s "
				    "captured length %u runs past the block "
				    "(%u bytes of data)", png_blockname(type),
				    caplen, body - PNG_EPB_BODY);
				goto out;
			}
			units = (uint64_t)fmt_rd32(p + 12, swap) << 32 |
			    fmt_rd32(p + 16, swap);
			if (png_ts(f, units, &ts) != 0) {
				rc = fmt_errat(in, -WEIR_EFORMAT, off, "%s "
				    "timestamp %llu (resolution 0x%02x) is out "
				    "of range", png_blockname(type),
				    (unsigned long long)units, f->resol);
				goto out;
			}
			flags = 0;
			if (body > PNG_EPB_BODY + PAD4(caplen) &&
			    (rc = png_pktopts(in, type, p + 28 + PAD4(caplen),
			    p + blen - 4, swap, off, &flags)) != 0)
				goto out;
			wirelen = fmt_rd32(p + 24, swap);
			if (__builtin_expect(caplen > wirelen, 0)) {
				png_lenfix(in, off, caplen, wirelen);
				wirelen = caplen;
			}
			/* PB drops_count: 0xffff means unknown */
			if (type == PNG_PB && fmt_rd16(p + 10, swap) != 0xffff)
				in->lost += fmt_rd16(p + 10, swap);
			png_fill(&pkts[n++], f, p + 28, caplen, wirelen, ts,
			    flags);
			st->last_ts = ts;
			bytes += caplen;
			break;
		case PNG_SPB:
			if (pkts == NULL)
				goto out;
			if (body < PNG_SPB_BODY) {
				rc = fmt_errat(in, -WEIR_EFORMAT, off, "simple "
				    "packet block of %u bytes is too short",
				    blen);
				goto out;
			}
			if (st->nif == 0) {
				rc = fmt_errat(in, -WEIR_EFORMAT, off, "simple "
				    "packet block before any interface "
				    "description block of its section");
				goto out;
			}
			f = &st->ifs[0];
			wirelen = fmt_rd32(p + 8, swap);
			/* min(original length, snaplen of IDB 0); 0: none */
			caplen = wirelen;
			if (f->snaplen != 0 && f->snaplen < caplen)
				caplen = f->snaplen;
			if (caplen > body - PNG_SPB_BODY) {
				rc = fmt_errat(in, -WEIR_EFORMAT, off, "simple "
				    "packet block of %u bytes is too short for "
				    "%u bytes of data", blen, caplen);
				goto out;
			}
			png_fill(&pkts[n++], f, p + 12, caplen, wirelen,
			    st->last_ts, 0);
			bytes += caplen;
			break;
		case PNG_SHB:
			rc = png_shb(in, st, p, blen, swap, off);
			break;
		case PNG_IDB:
			rc = png_idb(in, st, p, blen, swap, off);
			break;
		default:
			/* NRB, ISB, DSB, custom, unknown: not ours. */
			break;
		}
		if (rc != 0)
			break;
		in->pos += blen;
	}
out:
	in->pkts += n;
	in->bytes += bytes;
	if (rc < 0 && n == 0)
		return rc;
	return (int)n;
}

static int
png_open(struct weir_input *in)
{
	struct png_state *st;
	const uint8_t *p;
	uint32_t bom, blen;
	int rc, swap;

	rc = fmt_need(in, PNG_MINBLOCK, "section header block");
	if (rc != 0)
		return rc == WEIR_EOF ? -WEIR_ETRUNC : rc;
	if (fmt_ld32(in->base + in->pos) != PNG_SHB)
		return fmt_errat(in, -WEIR_EFORMAT, 0, "first block is no "
		    "section header block");
	if ((st = calloc(1, sizeof(*st))) == NULL)
		return weir_seterr(&in->err, -ENOMEM, "file '%s': %s",
		    in->path, strerror(ENOMEM));
	in->priv = st;

	/* Make the whole SHB available; png_run checks it in detail. */
	p = in->base + in->pos;
	bom = fmt_ld32(p + 8);
	swap = bom != PNG_BOM;
	blen = fmt_rd32(p + 4, swap);
	if (blen >= PNG_MINBLOCK && blen <= FMT_MAX_BLOCK &&
	    (rc = fmt_need(in, blen, "section header block")) != 0)
		return rc == WEIR_EOF ? -WEIR_ETRUNC : rc;

	/* SHB and the IDBs after it: interfaces known from the start. */
	rc = png_run(in, NULL, 0);
	if (rc < 0)
		return rc;
	if (in->file_off + in->pos == 0)
		return fmt_errat(in, -WEIR_ETRUNC, 0, "section header block "
		    "cut short (%zu bytes)", in->len);
	return 0;
}

static int
png_next(struct weir_input *in, struct weir_pkt *pkts, unsigned max)
{
	return png_run(in, pkts, max);
}

static void
png_close(struct weir_input *in)
{
	(void)in;	/* priv is freed by input.c */
}

const struct weir_input_ops weir_fmt_pcapng = {
	.name		= "pcapng",
	.probe		= png_probe,
	.open		= png_open,
	.next_batch	= png_next,
	.close		= png_close,
};
