/*
 * decode.c - bounds-checked L2..L4 decoder: records one struct weir_layer
 * per header walked through, outer, tunnelled and quoted alike.
 *
 * One walk per packet, a flat loop over a small state: every byte is read
 * through the cursor helpers below, whose window is min(caplen, the
 * protocol bound), so nothing past p->caplen is ever touched and bytes
 * past an IP packet's total length (Ethernet padding) or an ICMP quote
 * are never taken for headers.  docs/decode.md describes the layer model
 * and the choices made here (MPLS guessing, NULL byte order, tuples).
 */
#include <stdint.h>
#include <string.h>

#include "weir/decode.h"

#define ET_IPV4		0x0800
#define ET_ARP		0x0806
#define ET_RARP		0x8035
#define ET_VLAN		0x8100
#define ET_IPV6		0x86dd
#define ET_MPLS_UC	0x8847
#define ET_MPLS_MC	0x8848
#define ET_PPPOE_S	0x8864
#define ET_QINQ		0x88a8
#define ET_QINQ_OLD	0x9100
#define ET_TEB		0x6558	/* GRE: transparent Ethernet bridging */
#define ET_ERSPAN2	0x88be	/* GRE: ERSPAN type I/II */
#define ET_ERSPAN3	0x22eb	/* GRE: ERSPAN type III */

#define VXLAN_PORT	4789

/* Address family values seen in DLT_NULL / DLT_LOOP headers. */
#define BSD_AF_INET		2
#define WIN_AF_INET6		23	/* Npcap loopback */
#define BSD_AF_INET6_BSD	24	/* NetBSD, OpenBSD */
#define BSD_AF_INET6_FREEBSD	28
#define BSD_AF_INET6_DARWIN	30

/* Where the walk goes next. */
enum step {
	S_ETH,		/* Ethernet header at off */
	S_ETYPE,	/* dispatch on ethertype et; its payload is at off */
	S_MPLS,		/* MPLS label stack entry at off */
	S_IP,		/* IPv4 or IPv6, guessed from the version nibble */
	S_IPV4,
	S_IPV6,
	S_PROTO,	/* dispatch on IP protocol proto; payload at off */
	S_GRE,
};

/*
 * The bounds-checked reader.  end is the number of readable bytes from
 * buf: never more than caplen.  Every helper returns 1 when the value
 * was read and 0 (leaving *v alone) when it lies past end.
 */
struct cursor {
	const uint8_t	*buf;
	uint32_t	 end;
};

static inline int
get_u8(const struct cursor *c, uint32_t off, uint8_t *v)
{
	if (off >= c->end)
		return 0;
	*v = c->buf[off];
	return 1;
}

static inline int
get_be16(const struct cursor *c, uint32_t off, uint16_t *v)
{
	if (off >= c->end || c->end - off < 2)
		return 0;
	*v = (uint16_t)(c->buf[off] << 8 | c->buf[off + 1]);
	return 1;
}

static inline int
get_be32(const struct cursor *c, uint32_t off, uint32_t *v)
{
	if (off >= c->end || c->end - off < 4)
		return 0;
	*v = (uint32_t)c->buf[off] << 24 | (uint32_t)c->buf[off + 1] << 16 |
	    (uint32_t)c->buf[off + 2] << 8 | c->buf[off + 3];
	return 1;
}

static inline int
get_bytes(const struct cursor *c, uint32_t off, void *dst, uint32_t n)
{
	if (off > c->end || c->end - off < n)
		return 0;
	memcpy(dst, c->buf + off, n);
	return 1;
}

/* State of one walk. */
struct walk {
	struct cursor		 c;	/* end = min(lim, caplen) */
	struct weir_decoded	*d;
	uint32_t		 caplen;
	uint32_t		 lim;	/* protocol bound: IP total length,
					   PPPoE length; UINT32_MAX if none */
	uint32_t		 hdr_end;
	unsigned		 n;	/* layers used */
	uint16_t		 dflags;/* WEIR_DF_* */
	uint8_t			 lflags;/* WEIR_LF_TUNNEL/QUOTED for new
					   layers */
};

static inline __attribute__((always_inline)) void
set_lim(struct walk *w, uint64_t lim)
{
	if (lim < w->lim)
		w->lim = (uint32_t)lim;
	w->c.end = w->lim < w->caplen ? w->lim : w->caplen;
}

/*
 * A header that should end at e does not fit in the window: say why.
 * Cut by the capture (the protocol bound lies past caplen): truncated.
 * Cut by the protocol bound: inconsistent headers, except inside an ICMP
 * quote, which is short by design.
 */
static inline __attribute__((always_inline)) void
note_cut(struct walk *w, uint64_t e)
{
	if (e > w->caplen && w->lim > w->caplen)
		w->dflags |= WEIR_DF_TRUNC;
	if (e > w->lim && !(w->lflags & WEIR_LF_QUOTED))
		w->dflags |= WEIR_DF_MALFORMED;
}

/*
 * Record a header of len bytes at off.  Returns its index, or -1 when
 * none of it is present or the layer table is full.  A header that runs
 * past the window is recorded with WEIR_LF_TRUNC; callers stop there.
 */
static inline __attribute__((always_inline)) int
push(struct walk *w, uint32_t off, uint32_t len, uint8_t kind)
{
	struct weir_decoded	*d = w->d;
	struct weir_layer	*l;
	uint64_t		 e = (uint64_t)off + len;
	uint8_t			 fl = w->lflags;

	if (e > w->c.end) {
		note_cut(w, e);
		if (off >= w->c.end)
			return -1;
		fl |= WEIR_LF_TRUNC;
		e = w->c.end;
	}
	if (w->n >= WEIR_MAX_LAYERS) {
		w->dflags |= WEIR_DF_TOODEEP;
		return -1;
	}
	l = &d->l[w->n];
	l->off = off;
	l->len = (uint16_t)len;
	l->kind = kind;
	l->flags = fl;
	if (e > w->hdr_end)
		w->hdr_end = (uint32_t)e;
	return (int)w->n++;
}

#define CUT(d, i)	((d)->l[(i)].flags & WEIR_LF_TRUNC)

static inline __attribute__((always_inline)) void
ip_seen(struct walk *w, int i)
{
	struct weir_decoded	*d = w->d;

	if (d->ip == WEIR_NO_LAYER)
		d->ip = (uint8_t)i;
	if (!(w->lflags & WEIR_LF_QUOTED)) {
		/* l4 always belongs to inner_ip: a tunnel resets it. */
		d->inner_ip = (uint8_t)i;
		d->l4 = WEIR_NO_LAYER;
	}
}

static inline __attribute__((always_inline)) void
l4_seen(struct walk *w, int i)
{
	if (i >= 0 && !(w->lflags & WEIR_LF_QUOTED))
		w->d->l4 = (uint8_t)i;
}

static inline int
icmp_is_error(uint8_t kind, uint8_t type)
{
	if (kind == WEIR_L_ICMP)
		return type == 3 || type == 4 || type == 5 || type == 11 ||
		    type == 12;
	return type >= 1 && type <= 4;
}

void
weir_decode(struct weir_pkt *p)
{
	struct weir_decoded	*d = &p->dec;
	struct walk		 w;
	enum step		 s;
	uint32_t		 off = 0, hl, v32 = 0;
	uint16_t		 et = 0, v16 = 0, v16b = 0;
	uint8_t			 proto = 0, ipver = 0, b = 0, b2 = 0, kind;
	int			 i, cur_ip = -1;

	d->ip = d->inner_ip = d->l4 = WEIR_NO_LAYER;
	p->decoded = 1;

	w.c.buf = p->data;
	w.d = d;
	w.caplen = p->caplen;
	w.lim = UINT32_MAX;
	w.lflags = 0;
	w.n = 0;
	w.hdr_end = 0;
	w.dflags = 0;
	set_lim(&w, UINT32_MAX);

	switch (p->linktype) {
	case WEIR_LT_EN10MB:
		s = S_ETH;
		break;
	case WEIR_LT_LINUX_SLL:
		if ((i = push(&w, 0, 16, WEIR_L_SLL)) < 0 || CUT(d, i))
			goto done;
		(void)get_be16(&w.c, 14, &et);
		off = 16;
		s = S_ETYPE;
		break;
	case WEIR_LT_LINUX_SLL2:
		if ((i = push(&w, 0, 20, WEIR_L_SLL2)) < 0 || CUT(d, i))
			goto done;
		(void)get_be16(&w.c, 0, &et);
		off = 20;
		s = S_ETYPE;
		break;
	case WEIR_LT_RAW:
		s = S_IP;
		break;
	case WEIR_LT_IPV4:
		s = S_IPV4;
		break;
	case WEIR_LT_IPV6:
		s = S_IPV6;
		break;
	case WEIR_LT_NULL:
	case WEIR_LT_LOOP:
		if ((i = push(&w, 0, 4, WEIR_L_LOOP)) < 0 || CUT(d, i))
			goto done;
		(void)get_be32(&w.c, 0, &v32);
		/*
		 * DLT_NULL holds the AF in the byte order of the machine
		 * that captured, which the file does not tell: family
		 * values are small, so the order that gives one wins.
		 */
		if (p->linktype == WEIR_LT_NULL && v32 > 0xff)
			v32 = __builtin_bswap32(v32);
		off = 4;
		switch (v32) {
		case BSD_AF_INET:
			s = S_IPV4;
			break;
		case WIN_AF_INET6:
		case BSD_AF_INET6_BSD:
		case BSD_AF_INET6_FREEBSD:
		case BSD_AF_INET6_DARWIN:
			s = S_IPV6;
			break;
		default:
			w.dflags |= WEIR_DF_UNKNOWN;
			goto done;
		}
		break;
	default:
		w.dflags |= WEIR_DF_UNKNOWN;
		goto done;
	}

	for (;;) {
		switch (s) {
		case S_ETH:
			if ((i = push(&w, off, 14, WEIR_L_ETH)) < 0 ||
			    CUT(d, i))
				goto done;
			(void)get_be16(&w.c, off + 12, &et);
			off += 14;
			s = S_ETYPE;
			continue;

		case S_ETYPE:
			if (et < 0x600) {
				/*
				 * 802.3 length field, after an Ethernet header
				 * or a VLAN tag: only LLC/SNAP names a type.
				 * The LLC/SNAP header becomes part of the layer
				 * that held the length.
				 */
				i = (int)w.n - 1;
				if (i < 0 || (d->l[i].kind != WEIR_L_ETH &&
				    d->l[i].kind != WEIR_L_VLAN)) {
					w.dflags |= WEIR_DF_UNKNOWN;
					goto done;
				}
				if (!get_be16(&w.c, off, &v16)) {
					note_cut(&w, (uint64_t)off + 8);
					goto done;
				}
				if (v16 != 0xaaaa) {
					w.dflags |= WEIR_DF_UNKNOWN;
					goto done;
				}
				if (!get_u8(&w.c, off + 2, &b) ||
				    !get_be16(&w.c, off + 6, &et)) {
					note_cut(&w, (uint64_t)off + 8);
					goto done;
				}
				if (b != 0x03 || et < 0x600) {
					w.dflags |= WEIR_DF_UNKNOWN;
					goto done;
				}
				d->l[i].len += 8;
				off += 8;
				if (off > w.hdr_end)
					w.hdr_end = off;
				continue;
			}
			switch (et) {
			case ET_IPV4:
				s = S_IPV4;
				continue;
			case ET_IPV6:
				s = S_IPV6;
				continue;
			case ET_VLAN:
			case ET_QINQ:
			case ET_QINQ_OLD:
				/* The layer is TCI + inner type. */
				if ((i = push(&w, off, 4, WEIR_L_VLAN)) < 0 ||
				    CUT(d, i))
					goto done;
				(void)get_be16(&w.c, off + 2, &et);
				off += 4;
				continue;
			case ET_MPLS_UC:
			case ET_MPLS_MC:
				s = S_MPLS;
				continue;
			case ET_ARP:
			case ET_RARP:	/* same layout, addresses too */
				if (!get_be16(&w.c, off, &v16) ||
				    !get_be16(&w.c, off + 2, &v16b) ||
				    !get_u8(&w.c, off + 4, &b) ||
				    !get_u8(&w.c, off + 5, &b2)) {
					note_cut(&w, (uint64_t)off + 8);
					goto done;
				}
				if (v16 == 1 && v16b == ET_IPV4 && b == 6 &&
				    b2 == 4)
					(void)push(&w, off, 28, WEIR_L_ARP);
				else
					w.dflags |= WEIR_DF_UNKNOWN;
				goto done;
			case ET_PPPOE_S:
				/* ver/type, code, session, length, PPP proto */
				if (!get_u8(&w.c, off, &b) ||
				    !get_u8(&w.c, off + 1, &b2) ||
				    !get_be16(&w.c, off + 4, &v16) ||
				    !get_be16(&w.c, off + 6, &v16b)) {
					note_cut(&w, (uint64_t)off + 8);
					goto done;
				}
				if (b != 0x11 || b2 != 0 || v16 < 2) {
					w.dflags |= WEIR_DF_MALFORMED;
					goto done;
				}
				set_lim(&w, (uint64_t)off + 6 + v16);
				off += 8;
				if (v16b == 0x0021)
					s = S_IPV4;
				else if (v16b == 0x0057)
					s = S_IPV6;
				else {
					w.dflags |= WEIR_DF_UNKNOWN;
					goto done;
				}
				continue;
			default:
				w.dflags |= WEIR_DF_UNKNOWN;
				goto done;
			}
			goto done;	/* not reached */

		case S_MPLS:
			if ((i = push(&w, off, 4, WEIR_L_MPLS)) < 0 ||
			    CUT(d, i))
				goto done;
			(void)get_u8(&w.c, off + 2, &b);
			off += 4;
			if (!(b & 0x01))
				continue;	/* not bottom of stack */
			/*
			 * MPLS does not say what it carries: guess from the
			 * first nibble.  0 is taken as the pseudowire control
			 * word of an Ethernet pseudowire (RFC 4448).
			 */
			if (!get_u8(&w.c, off, &b)) {
				note_cut(&w, (uint64_t)off + 1);
				goto done;
			}
			switch (b >> 4) {
			case 4:
				s = S_IPV4;
				continue;
			case 6:
				s = S_IPV6;
				continue;
			case 0:
				off += 4;
				w.lflags |= WEIR_LF_TUNNEL;
				s = S_ETH;
				continue;
			default:
				w.dflags |= WEIR_DF_UNKNOWN;
				goto done;
			}
			goto done;	/* not reached */

		case S_IP:
			if (!get_u8(&w.c, off, &b)) {
				note_cut(&w, (uint64_t)off + 20);
				goto done;
			}
			if (b >> 4 == 4)
				s = S_IPV4;
			else if (b >> 4 == 6)
				s = S_IPV6;
			else {
				w.dflags |= WEIR_DF_UNKNOWN;
				goto done;
			}
			continue;

		case S_IPV4:
			if (!get_u8(&w.c, off, &b)) {
				note_cut(&w, (uint64_t)off + 20);
				goto done;
			}
			hl = (uint32_t)(b & 0x0f) * 4;
			if (b >> 4 != 4 || hl < 20) {
				w.dflags |= WEIR_DF_MALFORMED | WEIR_DF_BADIP;
				goto done;
			}
			if ((i = push(&w, off, hl, WEIR_L_IPV4)) < 0)
				goto done;
			ip_seen(&w, i);
			if (CUT(d, i))
				goto done;
			(void)get_be16(&w.c, off + 2, &v16);	/* total */
			(void)get_be16(&w.c, off + 6, &v16b);	/* frag */
			(void)get_u8(&w.c, off + 9, &proto);
			if (v16 != 0 && v16 < hl) {
				w.dflags |= WEIR_DF_MALFORMED;
				goto done;
			}
			if (v16b & 0x3fff) {
				d->l[i].flags |= WEIR_LF_FRAG;
				if (v16b & 0x1fff) {
					d->l[i].flags |= WEIR_LF_LATERFRAG;
					goto done;
				}
			}
			/* Total length 0: TSO capture, use what is there. */
			if (v16 != 0)
				set_lim(&w, (uint64_t)off + v16);
			off += hl;
			ipver = 4;
			cur_ip = i;
			s = S_PROTO;
			continue;

		case S_IPV6:
			if (!get_u8(&w.c, off, &b)) {
				note_cut(&w, (uint64_t)off + 40);
				goto done;
			}
			if (b >> 4 != 6) {
				w.dflags |= WEIR_DF_MALFORMED | WEIR_DF_BADIP;
				goto done;
			}
			if ((i = push(&w, off, 40, WEIR_L_IPV6)) < 0)
				goto done;
			ip_seen(&w, i);
			if (CUT(d, i))
				goto done;
			(void)get_be16(&w.c, off + 4, &v16);	/* payload */
			(void)get_u8(&w.c, off + 6, &proto);
			/* Payload length 0: jumbogram or TSO. */
			if (v16 != 0)
				set_lim(&w, (uint64_t)off + 40 + v16);
			off += 40;
			ipver = 6;
			cur_ip = i;
			s = S_PROTO;
			continue;

		case S_PROTO:
			switch (proto) {
			case 6:		/* TCP */
				hl = 20;
				if (get_u8(&w.c, off + 12, &b)) {
					hl = (uint32_t)(b >> 4) * 4;
					if (hl < 20) {
						w.dflags |= WEIR_DF_MALFORMED;
						goto done;
					}
				}
				l4_seen(&w, push(&w, off, hl, WEIR_L_TCP));
				goto done;
			case 17:	/* UDP */
				i = push(&w, off, 8, WEIR_L_UDP);
				l4_seen(&w, i);
				if (i < 0 || CUT(d, i) ||
				    (w.lflags & WEIR_LF_QUOTED))
					goto done;
				(void)get_be16(&w.c, off + 2, &v16);
				if (v16 != VXLAN_PORT)
					goto done;
				off += 8;
				if (!get_u8(&w.c, off, &b)) {
					note_cut(&w, (uint64_t)off + 8);
					goto done;
				}
				if (!(b & 0x08))	/* I flag: VNI valid */
					goto done;
				if ((i = push(&w, off, 8, WEIR_L_VXLAN)) < 0 ||
				    CUT(d, i))
					goto done;
				off += 8;
				w.lflags |= WEIR_LF_TUNNEL;
				s = S_ETH;
				continue;
			case 1:		/* ICMP */
			case 58:	/* ICMPv6 */
				kind = proto == 1 ? WEIR_L_ICMP : WEIR_L_ICMP6;
				i = push(&w, off, 8, kind);
				l4_seen(&w, i);
				if (i < 0 || CUT(d, i) ||
				    (w.lflags & WEIR_LF_QUOTED))
					goto done;
				(void)get_u8(&w.c, off, &b);
				if (!icmp_is_error(kind, b))
					goto done;
				/* The quote: as much of the offending packet
				   as fits, bounded by this IP packet. */
				w.lflags |= WEIR_LF_QUOTED;
				off += 8;
				if (!get_u8(&w.c, off, &b)) {
					note_cut(&w, (uint64_t)off + 1);
					goto done;
				}
				if (b >> 4 == 4)
					s = S_IPV4;
				else if (b >> 4 == 6)
					s = S_IPV6;
				else
					goto done;
				continue;
			case 4:		/* IPv4 in IP */
				w.lflags |= WEIR_LF_TUNNEL;
				s = S_IPV4;
				continue;
			case 41:	/* IPv6 in IP */
				w.lflags |= WEIR_LF_TUNNEL;
				s = S_IPV6;
				continue;
			case 47:
				s = S_GRE;
				continue;
			case 0:		/* hop-by-hop */
			case 43:	/* routing */
			case 60:	/* destination options */
			case 135:	/* mobility */
			case 51:	/* AH */
				if (ipver != 6)
					break;
				if (get_u8(&w.c, off + 1, &b))
					hl = proto == 51 ?
					    ((uint32_t)b + 2) * 4 :
					    ((uint32_t)b + 1) * 8;
				else
					hl = 8;
				if ((i = push(&w, off, hl, WEIR_L_IPV6_EXT)) <
				    0 || CUT(d, i))
					goto done;
				(void)get_u8(&w.c, off, &proto);
				off += hl;
				continue;
			case 44:	/* IPv6 fragment */
				if (ipver != 6)
					break;
				if ((i = push(&w, off, 8, WEIR_L_IPV6_FRAG)) <
				    0 || CUT(d, i))
					goto done;
				(void)get_u8(&w.c, off, &proto);
				(void)get_be16(&w.c, off + 2, &v16);
				if (v16 & 0xfff9) {
					/* offset or M: a real fragment */
					b = WEIR_LF_FRAG;
					if (v16 & 0xfff8)
						b |= WEIR_LF_LATERFRAG;
					d->l[i].flags |= b;
					if (cur_ip >= 0)
						d->l[cur_ip].flags |= b;
					if (b & WEIR_LF_LATERFRAG)
						goto done;
				}
				off += 8;
				continue;
			case 59:	/* no next header */
				goto done;
			case 132:	/* SCTP common header: ports */
				l4_seen(&w, push(&w, off, 12,
				    WEIR_L_OTHER_L4));
				goto done;
			default:
				break;
			}
			/* A protocol we do not walk into (ESP...). */
			l4_seen(&w, push(&w, off, 0, WEIR_L_OTHER_L4));
			w.dflags |= WEIR_DF_UNKNOWN;
			goto done;

		case S_GRE:
			if (!get_be16(&w.c, off, &v16) ||
			    !get_be16(&w.c, off + 2, &et)) {
				note_cut(&w, (uint64_t)off + 4);
				goto done;
			}
			hl = 4;
			if (v16 & 0xc000)	/* C or R: checksum, offset */
				hl += 4;
			if (v16 & 0x2000)	/* K: key */
				hl += 4;
			if (v16 & 0x1000)	/* S: sequence number */
				hl += 4;
			if ((v16 & 0x0007) == 1 && (v16 & 0x0080))
				hl += 4;	/* PPTP acknowledgment */
			if ((i = push(&w, off, hl, WEIR_L_GRE)) < 0 ||
			    CUT(d, i))
				goto done;
			off += hl;
			/* RFC 1701 source routes and unknown versions. */
			if ((v16 & 0x4000) || (v16 & 0x0007) > 1) {
				w.dflags |= WEIR_DF_UNKNOWN;
				goto done;
			}
			switch (et) {
			case ET_IPV4:
				w.lflags |= WEIR_LF_TUNNEL;
				s = S_IPV4;
				continue;
			case ET_IPV6:
				w.lflags |= WEIR_LF_TUNNEL;
				s = S_IPV6;
				continue;
			case ET_TEB:
				w.lflags |= WEIR_LF_TUNNEL;
				s = S_ETH;
				continue;
			case ET_ERSPAN2:
				/* Type I has no sequence number and no
				   ERSPAN header; type II has both. */
				if (v16 & 0x1000) {
					if ((i = push(&w, off, 8,
					    WEIR_L_ERSPAN)) < 0 || CUT(d, i))
						goto done;
					off += 8;
				}
				w.lflags |= WEIR_LF_TUNNEL;
				s = S_ETH;
				continue;
			case ET_ERSPAN3:
				hl = 12;
				if (get_u8(&w.c, off + 11, &b) && (b & 0x01))
					hl += 8;	/* O: platform
							   subheader */
				if ((i = push(&w, off, hl, WEIR_L_ERSPAN)) <
				    0 || CUT(d, i))
					goto done;
				(void)get_u8(&w.c, off + 10, &b);
				off += hl;
				if (((b >> 2) & 0x1f) != 0) {
					/* frame type other than Ethernet */
					w.dflags |= WEIR_DF_UNKNOWN;
					goto done;
				}
				w.lflags |= WEIR_LF_TUNNEL;
				s = S_ETH;
				continue;
			default:
				w.dflags |= WEIR_DF_UNKNOWN;
				goto done;
			}
		}
	}
done:
	d->n = (uint8_t)w.n;
	d->flags = w.dflags;
	d->hdr_end = w.hdr_end;
}

/* The protocol number a complete IP or extension header announces. */
static int
next_proto(const struct cursor *c, const struct weir_layer *l, uint8_t *pr)
{
	switch (l->kind) {
	case WEIR_L_IPV4:
		return get_u8(c, l->off + 9, pr);
	case WEIR_L_IPV6:
		return get_u8(c, l->off + 6, pr);
	case WEIR_L_IPV6_EXT:
	case WEIR_L_IPV6_FRAG:
		return get_u8(c, l->off, pr);
	default:
		return 0;
	}
}

int
weir_pkt_tuple(const struct weir_pkt *p, struct weir_tuple *t)
{
	const struct weir_decoded	*d = &p->dec;
	const struct weir_layer		*ip, *l;
	struct cursor			 c;
	uint8_t				 tmp[16];
	uint16_t			 tp;
	unsigned			 k;
	int				 cmp;

	memset(t, 0, sizeof(*t));
	if (!p->decoded || d->inner_ip == WEIR_NO_LAYER || d->inner_ip >= d->n)
		return 0;
	c.buf = p->data;
	c.end = p->caplen;
	ip = &d->l[d->inner_ip];
	if (ip->kind == WEIR_L_IPV4) {
		if (!get_bytes(&c, ip->off + 12, t->addr_a, 4) ||
		    !get_bytes(&c, ip->off + 16, t->addr_b, 4))
			return 0;
		t->family = 4;
	} else {
		if (!get_bytes(&c, ip->off + 8, t->addr_a, 16) ||
		    !get_bytes(&c, ip->off + 24, t->addr_b, 16))
			return 0;
		t->family = 6;
	}
	/* The protocol: what the last header of the IP chain announces. */
	if (!next_proto(&c, ip, &t->proto))
		t->proto = 0;
	for (k = d->inner_ip + 1u; k < d->n; k++) {
		l = &d->l[k];
		if ((l->kind != WEIR_L_IPV6_EXT && l->kind != WEIR_L_IPV6_FRAG) ||
		    (l->flags & WEIR_LF_QUOTED))
			break;
		if (!next_proto(&c, l, &t->proto))
			break;
	}
	/* Ports: TCP, UDP and SCTP only; later fragments have none. */
	if (d->l4 != WEIR_NO_LAYER && d->l4 < d->n) {
		l = &d->l[d->l4];
		if (l->kind == WEIR_L_TCP || l->kind == WEIR_L_UDP ||
		    (l->kind == WEIR_L_OTHER_L4 && t->proto == 132 &&
		    l->len >= 4)) {
			if (!get_be16(&c, l->off, &t->port_a) ||
			    !get_be16(&c, l->off + 2, &t->port_b))
				t->port_a = t->port_b = 0;
		}
	}
	/* Direction independence: endpoint A is the smaller one. */
	cmp = memcmp(t->addr_a, t->addr_b, sizeof(t->addr_a));
	if (cmp > 0 || (cmp == 0 && t->port_a > t->port_b)) {
		memcpy(tmp, t->addr_a, sizeof(tmp));
		memcpy(t->addr_a, t->addr_b, sizeof(tmp));
		memcpy(t->addr_b, tmp, sizeof(tmp));
		tp = t->port_a;
		t->port_a = t->port_b;
		t->port_b = tp;
	}
	return 1;
}
