/*
 * truncate.c - the "truncate" stage: snaplen, headers-only, payload
 * zeroing (M-Lab packet-headers) and zeroing of named header fields
 * (GIMS: "individual fields of interest in the IPv4 header").
 *
 * Config (defaults shown):
 *   { "snaplen": 0,            0: no cut; 1..262144
 *     "headers_only": false,   cut at the end of the last decoded header
 *     "zero_payload": false,   zero every byte after it, keep lengths
 *     "zero_fields": [],       names from the table below
 *     "zero_all_layers": false,
 *     "checksums": "update" }  update | blank | leave
 *
 * Order per packet: cut (the smaller of snaplen and, with headers_only,
 * p->dec.hdr_end), then zero fields, then zero the payload.  Zeroing
 * only touches bytes below caplen.  wirelen never changes.
 *
 * Checksums after zeroing: "update" patches, with RFC 1624 incremental
 * updates, every checksum that covers a changed byte: the IPv4 header
 * checksum of a changed IPv4 header and the TCP/UDP/ICMP/ICMPv6 checksum
 * of every transport layer whose datagram contains it, outer tunnel
 * layers included (and the change of an inner checksum field is itself
 * propagated outwards).  So a packet whose checksums were right stays
 * right, even when it was captured truncated.  "blank" sets those fields
 * to 0, "leave" keeps them (then they no longer verify).  A UDP checksum
 * of 0 (none) stays 0.  GRE checksums are not updated.
 *
 * Policy: "max_snaplen" M in the node policy caps snaplen: an absent or
 * 0 snaplen becomes M (and shows in the effective config), a larger one
 * is refused naming the rule.
 *
 * Counters (packets): truncated, zeroed_payload, zeroed_fields.
 *
 * needs_decode is 0: a plain snaplen cut needs no decoding; the other
 * features decode with weir_pkt_decode() (a no-op if already done).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "weir/bytes.h"
#include "weir/csum.h"
#include "weir/decode.h"
#include "weir/module.h"

#define MOD		"truncate"
#define MAX_SNAPLEN	262144
#define CHUNK		64		/* largest patch(): options */

enum { CS_UPDATE, CS_BLANK, CS_LEAVE };

/* A header field that zero_fields can name. */
struct field {
	const char	*name;
	uint8_t		 kind;		/* WEIR_L_* */
	uint8_t		 off;		/* from the start of the header */
	uint8_t		 len;		/* 0: options, to the header's end */
	uint8_t		 mask[4];	/* bits to clear (fixed fields) */
};

static const struct field fields[] = {
	{ "ip.tos",		WEIR_L_IPV4, 1, 1, { 0xff } },
	{ "ip.id",		WEIR_L_IPV4, 4, 2, { 0xff, 0xff } },
	/* the whole word: DF, MF and the fragment offset */
	{ "ip.flags_frag",	WEIR_L_IPV4, 6, 2, { 0xff, 0xff } },
	{ "ip.ttl",		WEIR_L_IPV4, 8, 1, { 0xff } },
	{ "ip.options",		WEIR_L_IPV4, 20, 0, { 0 } },
	{ "ipv6.tclass",	WEIR_L_IPV6, 0, 2, { 0x0f, 0xf0 } },
	{ "ipv6.flowlabel",	WEIR_L_IPV6, 1, 3, { 0x0f, 0xff, 0xff } },
	{ "ipv6.hlim",		WEIR_L_IPV6, 7, 1, { 0xff } },
	{ "tcp.seq",		WEIR_L_TCP, 4, 4, { 0xff, 0xff, 0xff, 0xff } },
	{ "tcp.ack",		WEIR_L_TCP, 8, 4, { 0xff, 0xff, 0xff, 0xff } },
	{ "tcp.window",		WEIR_L_TCP, 14, 2, { 0xff, 0xff } },
	{ "tcp.urgptr",		WEIR_L_TCP, 18, 2, { 0xff, 0xff } },
	{ "tcp.options",	WEIR_L_TCP, 20, 0, { 0 } },
	{ "udp.checksum",	WEIR_L_UDP, 6, 2, { 0xff, 0xff } },
};
#define NFIELDS		(sizeof(fields) / sizeof(fields[0]))

/* A checksum field and the byte range it covers, in packet offsets. */
struct csent {
	uint32_t	start, end;	/* end clipped to caplen */
	uint32_t	field;
	uint8_t		kind;
	uint8_t		dirty;
};

struct trunc {
	uint32_t	snaplen;
	int		headers_only, zero_payload, all_layers;
	int		csums;
	int		need_decode;
	uint32_t	fmask;		/* bit i: fields[i] */
	uint64_t	truncated, zeroed_payload, zeroed_fields;
	/* per packet scratch, filled by csents() */
	struct csent	e[WEIR_MAX_LAYERS];
	unsigned	ne;
};

static const char *const trunc_keys[] = {
	"type", "snaplen", "headers_only", "zero_payload", "zero_fields",
	"zero_all_layers", "checksums", NULL
};
static const char *const csum_modes[] = { "update", "blank", "leave", NULL };

static int
field_index(const char *name)
{
	size_t i;

	for (i = 0; i < NFIELDS; i++)
		if (strcmp(name, fields[i].name) == 0)
			return (int)i;
	return -1;
}

static int
trunc_check(json_t *conf, const json_t *policy, struct weir_err *err)
{
	json_t *zf, *v, *pm;
	long long snap, max;
	size_t i;
	int rc;

	if ((rc = weir_conf_known(conf, MOD, trunc_keys, err)) < 0)
		return rc;
	if ((rc = weir_conf_int(conf, MOD, "snaplen", 0, 0, MAX_SNAPLEN,
	    &snap, err)) < 0)
		return rc;
	pm = policy ? json_object_get(policy, "max_snaplen") : NULL;
	if (pm != NULL) {
		if (!json_is_integer(pm) || json_integer_value(pm) < 1 ||
		    json_integer_value(pm) > MAX_SNAPLEN)
			return weir_seterr(err, -WEIR_EPOLICY,
			    MOD ": policy rule 'max_snaplen' must be an "
			    "integer 1..%d", MAX_SNAPLEN);
		max = json_integer_value(pm);
		if (snap == 0)
			json_object_set_new(conf, "snaplen", json_integer(max));
		else if (snap > max)
			return weir_seterr(err, -WEIR_EPOLICY,
			    MOD ": 'snaplen' is %lld, policy rule "
			    "'max_snaplen' allows at most %lld", snap, max);
	}
	if ((rc = weir_conf_bool(conf, MOD, "headers_only", 0, NULL,
	    err)) < 0 ||
	    (rc = weir_conf_bool(conf, MOD, "zero_payload", 0, NULL,
	    err)) < 0 ||
	    (rc = weir_conf_bool(conf, MOD, "zero_all_layers", 0, NULL,
	    err)) < 0 ||
	    (rc = weir_conf_enum(conf, MOD, "checksums", "update",
	    csum_modes, NULL, err)) < 0)
		return rc;
	if ((zf = json_object_get(conf, "zero_fields")) == NULL)
		json_object_set_new(conf, "zero_fields", json_array());
	else if (!json_is_array(zf))
		return weir_seterr(err, -WEIR_ECONFIG,
		    MOD ": 'zero_fields' must be a list of field names");
	else
		json_array_foreach(zf, i, v) {
			if (!json_is_string(v))
				return weir_seterr(err, -WEIR_ECONFIG,
				    MOD ": 'zero_fields' must be a list of "
				    "field names");
			if (field_index(json_string_value(v)) < 0)
				return weir_seterr(err, -WEIR_ECONFIG,
				    MOD ": unknown field '%s' in 'zero_fields'",
				    json_string_value(v));
		}
	return 0;
}

static int
trunc_open(void **stp, const json_t *conf, const struct weir_env *env,
    struct weir_err *err)
{
	struct trunc *st;
	json_t *zf, *v;
	const char *s;
	size_t i;
	int k;

	if ((st = calloc(1, sizeof(*st))) == NULL)
		return weir_seterr(err, -ENOMEM, MOD ": out of memory");
	st->snaplen = (uint32_t)json_integer_value(json_object_get(conf,
	    "snaplen"));
	st->headers_only = json_is_true(json_object_get(conf,
	    "headers_only"));
	st->zero_payload = json_is_true(json_object_get(conf,
	    "zero_payload"));
	st->all_layers = json_is_true(json_object_get(conf,
	    "zero_all_layers"));
	st->csums = CS_UPDATE;
	if ((s = json_string_value(json_object_get(conf, "checksums"))))
		for (k = 0; csum_modes[k] != NULL; k++)
			if (strcmp(s, csum_modes[k]) == 0)
				st->csums = k;
	zf = json_object_get(conf, "zero_fields");
	json_array_foreach(zf, i, v)
		if ((k = field_index(json_string_value(v) ?
		    json_string_value(v) : "")) >= 0)
			st->fmask |= 1u << k;
	st->need_decode = st->headers_only || st->zero_payload ||
	    st->fmask != 0;
	*stp = st;
	return 0;
}

/*
 * Every layer after an IP header lies inside that IP datagram, so a
 * running limit (the smallest datagram end so far, starting at caplen)
 * keeps Ethernet padding and the bytes after a short ICMP quote out of
 * every header and checksum range.  Tighten *lim for the IP layer l;
 * returns 0 when l's length field is not captured.
 */
static int
ip_limit(const struct weir_pkt *p, const struct weir_layer *l, uint64_t *lim)
{
	uint64_t end;
	uint16_t v;

	if (l->kind == WEIR_L_IPV4) {
		if ((uint64_t)l->off + 20 > p->caplen)
			return 0;
		v = weir_get16(p->data + l->off + 2);
		end = (uint64_t)l->off + v;
	} else {
		if ((uint64_t)l->off + 40 > p->caplen)
			return 0;
		v = weir_get16(p->data + l->off + 4);
		end = (uint64_t)l->off + 40 + v;
	}
	/* 0: a TSO capture (IPv4) or a jumbogram (IPv6): no limit */
	if (v != 0 && end < *lim)
		*lim = end;
	return 1;
}

/* Collect the checksum fields of p and the bytes each covers. */
static void
csents(struct trunc *st, const struct weir_pkt *p)
{
	const struct weir_decoded *d = &p->dec;
	const struct weir_layer *l;
	struct csent *e;
	uint64_t lim = p->caplen;
	unsigned i;
	uint16_t v;

	st->ne = 0;
	for (i = 0; i < d->n && i < WEIR_MAX_LAYERS; i++) {
		l = &d->l[i];
		e = &st->e[st->ne];
		e->start = l->off;
		e->dirty = 0;
		e->kind = l->kind;
		switch (l->kind) {
		case WEIR_L_IPV4:
			if (!ip_limit(p, l, &lim))
				return;
			e->field = l->off + 10;
			e->end = l->off + l->len;
			break;
		case WEIR_L_IPV6:
			if (!ip_limit(p, l, &lim))
				return;
			continue;
		case WEIR_L_TCP:
			e->field = l->off + 16;
			break;
		case WEIR_L_UDP:
			e->field = l->off + 6;
			break;
		case WEIR_L_ICMP:
		case WEIR_L_ICMP6:
			e->field = l->off + 2;
			break;
		default:
			continue;
		}
		/* a quoted header may end before its checksum field */
		if ((uint64_t)e->field + 2 > lim)
			continue;
		if (l->kind != WEIR_L_IPV4)
			e->end = (uint32_t)lim;
		if (l->kind == WEIR_L_UDP) {
			/* zero: no checksum to keep right */
			if (weir_get16(p->data + e->field) == 0)
				continue;
			v = weir_get16(p->data + l->off + 4);
			if (v >= 8 && (uint64_t)l->off + v < e->end)
				e->end = l->off + v;
		}
		if (e->end > lim)
			e->end = (uint32_t)lim;
		st->ne++;
	}
}

/*
 * Write n bytes nw at offset off (all below caplen) and keep the
 * checksums of entries 0..upto-1 right.  Innermost entries first: the
 * change of an inner checksum field is itself a change that the outer
 * checksums must see, so it goes through patch() with upto = its index.
 */
static void
patch(struct trunc *st, struct weir_pkt *p, unsigned upto, uint32_t off,
    uint32_t n, const uint8_t *nw)
{
	uint8_t ow[CHUNK + 4], nwin[CHUNK + 4], c[2];
	struct csent *e;
	uint32_t rs, re, ws, we, k;
	unsigned i;

	for (i = upto; i-- > 0;) {
		e = &st->e[i];
		rs = off > e->start ? off : e->start;
		re = off + n < e->end ? off + n : e->end;
		if (rs >= re)
			continue;
		/* The field itself is being rewritten (udp.checksum). */
		if (e->field < off + n && off < e->field + 2)
			continue;
		e->dirty = 1;
		if (st->csums != CS_UPDATE)
			continue;
		/* A window of whole 16-bit words, relative to e->start. */
		ws = rs - ((rs - e->start) & 1);
		we = re + ((re - e->start) & 1);
		for (k = ws; k < we; k++) {
			ow[k - ws] = k < p->caplen ? p->data[k] : 0;
			nwin[k - ws] = k >= off && k < off + n ? nw[k - off] :
			    ow[k - ws];
		}
		memcpy(c, p->data + e->field, 2);
		weir_csum_replace(c, ow, nwin, we - ws);
		/* UDP sends a computed 0 as 0xffff; 0 would mean "none". */
		if (e->kind == WEIR_L_UDP && c[0] == 0 && c[1] == 0)
			c[0] = c[1] = 0xff;
		patch(st, p, i, e->field, 2, c);
	}
	memcpy(p->data + off, nw, n);
}

/*
 * Zero one field of the layer l, whose bytes end at lim at the latest;
 * returns 1 if the field is present.
 */
static int
zero_field(struct trunc *st, struct weir_pkt *p, const struct weir_layer *l,
    const struct field *f, uint64_t lim)
{
	uint8_t nw[64];
	uint32_t off = l->off + f->off, n, i;
	uint64_t hend;

	if (f->len == 0) {
		/* Options: the header bytes after the fixed part. */
		hend = (uint64_t)l->off + l->len;
		if (hend > lim)
			hend = lim;
		if (off >= hend)
			return 0;
		n = (uint32_t)(hend - off);
		if (n > sizeof(nw))
			n = sizeof(nw);
		memset(nw, 0, n);
	} else {
		n = f->len;
		if ((uint64_t)off + n > lim)
			return 0;
		for (i = 0; i < n; i++)
			nw[i] = p->data[off + i] & (uint8_t)~f->mask[i];
	}
	patch(st, p, st->ne, off, n, nw);
	return 1;
}

static int
zero_fields(struct trunc *st, struct weir_pkt *p)
{
	const struct weir_decoded *d = &p->dec;
	const struct weir_layer *l;
	uint64_t lim = p->caplen, next;
	unsigned i, k;
	int any = 0;

	for (i = 0; i < d->n && i < WEIR_MAX_LAYERS; i++) {
		l = &d->l[i];
		next = lim;
		if (l->kind == WEIR_L_IPV4 || l->kind == WEIR_L_IPV6)
			(void)ip_limit(p, l, &next);
		if (st->all_layers || i == d->inner_ip || i == d->l4)
			for (k = 0; k < NFIELDS; k++)
				if ((st->fmask & (1u << k)) &&
				    fields[k].kind == l->kind)
					any |= zero_field(st, p, l, &fields[k],
					    lim);
		lim = next;
	}
	return any;
}

/*
 * Zero [from, caplen).  With checksum updates, the payload's sum m is
 * taken once per covering checksum (weir_csum_partial, fast), and
 * zeroing it is the RFC 1624 update of a word m to 0; the changed
 * checksum field then goes through patch() for the enclosing ones.
 */
static void
zero_payload(struct trunc *st, struct weir_pkt *p, uint32_t from)
{
	static const uint8_t zero2[2];
	struct csent *e;
	uint32_t rs, re, sum;
	uint16_t m;
	uint8_t mb[2], c[2];
	unsigned i;

	for (i = st->csums == CS_LEAVE ? 0 : st->ne; i-- > 0;) {
		e = &st->e[i];
		rs = from > e->start ? from : e->start;
		re = p->caplen < e->end ? p->caplen : e->end;
		if (rs >= re || (e->field < re && rs < e->field + 2))
			continue;
		e->dirty = 1;
		if (st->csums != CS_UPDATE)
			continue;
		sum = weir_csum_partial(p->data + rs, re - rs, 0);
		m = (uint16_t)~weir_csum_fold(sum);
		/* summed from an odd offset of e's data: bytes swap roles */
		if ((rs - e->start) & 1)
			m = (uint16_t)(m << 8 | m >> 8);
		mb[0] = (uint8_t)(m >> 8);
		mb[1] = (uint8_t)m;
		memcpy(c, p->data + e->field, 2);
		weir_csum_replace(c, mb, zero2, 2);
		if (e->kind == WEIR_L_UDP && c[0] == 0 && c[1] == 0)
			c[0] = c[1] = 0xff;
		patch(st, p, i, e->field, 2, c);
	}
	memset(p->data + from, 0, p->caplen - from);
}

static int
trunc_packet(void *stp, struct weir_batch *b)
{
	struct trunc *st = stp;
	struct weir_pkt *p;
	uint32_t cut, from;
	unsigned i, k;

	for (i = 0; i < b->n; i++) {
		p = b->p[i];
		if (st->need_decode)
			weir_pkt_decode(p);
		cut = p->caplen;
		if (st->snaplen && st->snaplen < cut)
			cut = st->snaplen;
		if (st->headers_only && p->dec.hdr_end < cut)
			cut = p->dec.hdr_end;
		if (cut < p->caplen) {
			p->caplen = cut;
			p->modified = 1;
			st->truncated++;
		}
		if (!st->fmask && !st->zero_payload)
			goto next;
		st->ne = 0;
		if (st->csums != CS_LEAVE)
			csents(st, p);
		if (st->fmask && zero_fields(st, p)) {
			p->modified = 1;
			st->zeroed_fields++;
		}
		from = p->dec.hdr_end;
		if (st->zero_payload && from < p->caplen) {
			zero_payload(st, p, from);
			p->modified = 1;
			st->zeroed_payload++;
		}
		if (st->csums == CS_BLANK)
			for (k = 0; k < st->ne; k++)
				if (st->e[k].dirty)
					memset(p->data + st->e[k].field, 0, 2);
next:
		/* Layers past the cut are stale: let a later stage redo it. */
		if (p->decoded && p->dec.hdr_end > p->caplen)
			p->decoded = 0;
	}
	return 0;
}

static size_t
trunc_stats(void *stp, struct weir_counter *c, size_t max)
{
	struct trunc *st = stp;
	struct weir_counter v[] = {
		{ "truncated", st->truncated },
		{ "zeroed_payload", st->zeroed_payload },
		{ "zeroed_fields", st->zeroed_fields },
	};

	return WEIR_COUNTERS_PUT(c, max, v);
}

static int
trunc_close(void *stp, struct weir_err *err)
{
	free(stp);
	return 0;
}

const struct weir_module weir_mod_truncate = {
	.name		= MOD,
	.kind		= WEIR_MOD_STAGE,
	.needs_decode	= 0,
	.check		= trunc_check,
	.open		= trunc_open,
	.packet		= trunc_packet,
	.stats		= trunc_stats,
	.close		= trunc_close,
};
