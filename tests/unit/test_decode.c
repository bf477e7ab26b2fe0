/*
 * test_decode.c - weir_decode() and weir_pkt_tuple().
 *
 * Part 1 checks real traces packet by packet against tshark, the
 * independent oracle: the protocol stack, every IPv4/IPv6 address and
 * TCP/UDP port occurrence (outer, tunnelled and quoted), VLAN IDs and
 * MPLS labels, and the flow tuple against tshark's innermost non-quoted
 * IP and ports.  Pcaps are read with libpcap so this test does not
 * depend on our own readers.
 *
 * Part 2 decodes hand-built packets for the corner cases; the expected
 * offsets are computed by hand from the RFC header layouts.
 */
#include <arpa/inet.h>
#include <pcap/pcap.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weir/decode.h"
#include "../tap.h"

#define DATA	"tests/data/"

/* ------------------------------------------------------------------ */
/* Invariants that hold for every decode, whatever the input.          */

static int
check_invariants(const struct weir_pkt *p, char *why, size_t whylen)
{
	const struct weir_decoded	*d = &p->dec;
	const struct weir_layer		*l;
	unsigned			 i;
	uint32_t			 prev = 0;

	if (d->n > WEIR_MAX_LAYERS)
		return snprintf(why, whylen, "n %u", d->n), 0;
	if (d->hdr_end > p->caplen)
		return snprintf(why, whylen, "hdr_end %u > caplen %u",
		    d->hdr_end, p->caplen), 0;
	for (i = 0; i < d->n; i++) {
		l = &d->l[i];
		if (l->kind < WEIR_L_ETH || l->kind > WEIR_L_OTHER_L4)
			return snprintf(why, whylen, "layer %u kind %u", i,
			    l->kind), 0;
		if (!(l->flags & WEIR_LF_TRUNC) &&
		    (uint64_t)l->off + l->len > p->caplen)
			return snprintf(why, whylen, "layer %u past caplen", i),
			    0;
		if (l->off > p->caplen || l->off < prev)
			return snprintf(why, whylen, "layer %u off %u", i,
			    l->off), 0;
		if ((l->flags & WEIR_LF_TRUNC) &&
		    !(d->flags & (WEIR_DF_TRUNC | WEIR_DF_MALFORMED)) &&
		    !(l->flags & WEIR_LF_QUOTED))
			return snprintf(why, whylen, "layer %u cut, no flag",
			    i), 0;
		prev = l->off;
	}
	if (d->ip != WEIR_NO_LAYER && (d->ip >= d->n ||
	    (d->l[d->ip].kind != WEIR_L_IPV4 &&
	    d->l[d->ip].kind != WEIR_L_IPV6)))
		return snprintf(why, whylen, "bad ip index"), 0;
	if (d->inner_ip != WEIR_NO_LAYER && (d->inner_ip >= d->n ||
	    d->inner_ip < d->ip ||
	    (d->l[d->inner_ip].flags & WEIR_LF_QUOTED) ||
	    (d->l[d->inner_ip].kind != WEIR_L_IPV4 &&
	    d->l[d->inner_ip].kind != WEIR_L_IPV6)))
		return snprintf(why, whylen, "bad inner_ip index"), 0;
	if ((d->ip == WEIR_NO_LAYER) != (d->inner_ip == WEIR_NO_LAYER))
		return snprintf(why, whylen, "ip/inner_ip disagree"), 0;
	if (d->l4 != WEIR_NO_LAYER) {
		if (d->l4 >= d->n || d->inner_ip == WEIR_NO_LAYER ||
		    d->l4 <= d->inner_ip ||
		    (d->l[d->l4].flags & WEIR_LF_QUOTED))
			return snprintf(why, whylen, "bad l4 index"), 0;
		switch (d->l[d->l4].kind) {
		case WEIR_L_TCP: case WEIR_L_UDP: case WEIR_L_ICMP:
		case WEIR_L_ICMP6: case WEIR_L_OTHER_L4:
			break;
		default:
			return snprintf(why, whylen, "l4 kind"), 0;
		}
	}
	return 1;
}

/* ------------------------------------------------------------------ */
/* Part 1: real traces against tshark.                                 */

static uint16_t
dlt_to_linktype(int dlt)
{
	switch (dlt) {
	case DLT_NULL:		return WEIR_LT_NULL;
	case DLT_EN10MB:	return WEIR_LT_EN10MB;
	case DLT_RAW:		return WEIR_LT_RAW;
#ifdef DLT_LOOP
	case DLT_LOOP:		return WEIR_LT_LOOP;
#endif
	case DLT_LINUX_SLL:	return WEIR_LT_LINUX_SLL;
#ifdef DLT_LINUX_SLL2
	case DLT_LINUX_SLL2:	return WEIR_LT_LINUX_SLL2;
#endif
	case DLT_IPV4:		return WEIR_LT_IPV4;
	case DLT_IPV6:		return WEIR_LT_IPV6;
	default:		return 0xffff;
	}
}

/* A growable string for building comma/colon lists. */
struct sbuf {
	char	s[4096];
	size_t	n;
};

static void
sb_add(struct sbuf *b, char sep, const char *x)
{
	int	r;

	r = snprintf(b->s + b->n, sizeof(b->s) - b->n, "%s%s",
	    b->n && sep ? (char []){ sep, 0 } : "", x);
	if (r > 0 && (size_t)r < sizeof(b->s) - b->n)
		b->n += (size_t)r;
}

enum { F_NO, F_PROTOS, F_IPSRC, F_IPDST, F_IP6SRC, F_IP6DST, F_TSPORT,
    F_TDPORT, F_USPORT, F_UDPORT, F_VLAN, F_QINQ, F_MPLS, F_N };

static const char *tshark_fields[F_N] = {
	"frame.number", "frame.protocols", "ip.src", "ip.dst", "ipv6.src",
	"ipv6.dst", "tcp.srcport", "tcp.dstport", "udp.srcport",
	"udp.dstport", "vlan.id", "ieee8021ad.id", "mpls.label",
};

/* Our view of a packet, in tshark's terms. */
struct view {
	struct sbuf	f[F_N];
};

static int
has(const struct weir_pkt *p, uint32_t off, uint32_t n)
{
	return off <= p->caplen && n <= p->caplen - off;
}

static uint16_t
be16(const uint8_t *q)
{
	return (uint16_t)(q[0] << 8 | q[1]);
}

/* Map tshark's frame.protocols to the header tokens we decode. */
static void
tshark_stack(const char *protos, struct sbuf *out)
{
	static const struct { const char *ts, *ours; } map[] = {
		{ "eth", "eth" }, { "vlan", "vlan" },
		{ "ieee8021ad", "vlan" }, { "mpls", "mpls" },
		{ "sll", "sll" }, { "null", "null" }, { "arp", "arp" },
		{ "ip", "ip" }, { "ipv6", "ipv6" },
		{ "ipv6.hopopts", "ext" }, { "ipv6.routing", "ext" },
		{ "ipv6.dstopts", "ext" }, { "ah", "ext" },
		{ "ipv6.fraghdr", "frag" }, { "tcp", "tcp" },
		{ "udp", "udp" }, { "icmp", "icmp" }, { "icmpv6", "icmpv6" },
		{ "gre", "gre" }, { "erspan", "erspan" }, { "vxlan", "vxlan" },
	};
	char		 tmp[2048], *tok, *save;
	const char	*last = "";
	size_t		 i;

	out->n = 0;
	out->s[0] = 0;
	snprintf(tmp, sizeof(tmp), "%s", protos);
	for (tok = strtok_r(tmp, ":", &save); tok;
	    tok = strtok_r(NULL, ":", &save)) {
		for (i = 0; i < sizeof(map) / sizeof(map[0]); i++)
			if (strcmp(tok, map[i].ts) == 0)
				break;
		if (i == sizeof(map) / sizeof(map[0]))
			continue;
		/* tshark shows one "mpls" per label stack */
		if (strcmp(map[i].ours, "mpls") == 0 &&
		    strcmp(last, "mpls") == 0)
			continue;
		last = map[i].ours;
		sb_add(out, ':', map[i].ours);
	}
}

static void
our_view(const struct weir_pkt *p, struct view *v)
{
	const struct weir_decoded	*d = &p->dec;
	const struct weir_layer		*l;
	const uint8_t			*q;
	char				 a[INET6_ADDRSTRLEN], tmp[16];
	const char			*name, *last = "";
	unsigned			 i, k;

	for (k = 0; k < F_N; k++) {
		v->f[k].n = 0;
		v->f[k].s[0] = 0;
	}
	for (i = 0; i < d->n; i++) {
		l = &d->l[i];
		q = p->data + l->off;
		name = NULL;
		switch (l->kind) {
		case WEIR_L_ETH:	name = "eth"; break;
		case WEIR_L_VLAN:
			name = "vlan";
			if (has(p, l->off, 2) && l->off >= 2) {
				snprintf(tmp, sizeof(tmp), "%u",
				    be16(q) & 0x0fff);
				sb_add(&v->f[be16(q - 2) == 0x88a8 ?
				    F_QINQ : F_VLAN], ',', tmp);
			}
			break;
		case WEIR_L_MPLS:
			name = "mpls";
			if (has(p, l->off, 3)) {
				snprintf(tmp, sizeof(tmp), "%u",
				    (unsigned)(q[0] << 12 | q[1] << 4 |
				    q[2] >> 4));
				sb_add(&v->f[F_MPLS], ',', tmp);
			}
			break;
		case WEIR_L_SLL: case WEIR_L_SLL2: name = "sll"; break;
		case WEIR_L_LOOP:	name = "null"; break;
		case WEIR_L_ARP:	name = "arp"; break;
		case WEIR_L_IPV4:
			name = "ip";
			if (has(p, l->off + 12, 4)) {
				inet_ntop(AF_INET, q + 12, a, sizeof(a));
				sb_add(&v->f[F_IPSRC], ',', a);
			}
			if (has(p, l->off + 16, 4)) {
				inet_ntop(AF_INET, q + 16, a, sizeof(a));
				sb_add(&v->f[F_IPDST], ',', a);
			}
			break;
		case WEIR_L_IPV6:
			name = "ipv6";
			if (has(p, l->off + 8, 16)) {
				inet_ntop(AF_INET6, q + 8, a, sizeof(a));
				sb_add(&v->f[F_IP6SRC], ',', a);
			}
			if (has(p, l->off + 24, 16)) {
				inet_ntop(AF_INET6, q + 24, a, sizeof(a));
				sb_add(&v->f[F_IP6DST], ',', a);
			}
			break;
		case WEIR_L_IPV6_EXT:	name = "ext"; break;
		case WEIR_L_IPV6_FRAG:	name = "frag"; break;
		case WEIR_L_TCP:
		case WEIR_L_UDP:
			name = l->kind == WEIR_L_TCP ? "tcp" : "udp";
			k = l->kind == WEIR_L_TCP ? F_TSPORT : F_USPORT;
			if (has(p, l->off, 2)) {
				snprintf(tmp, sizeof(tmp), "%u", be16(q));
				sb_add(&v->f[k], ',', tmp);
			}
			if (has(p, l->off + 2, 2)) {
				snprintf(tmp, sizeof(tmp), "%u", be16(q + 2));
				sb_add(&v->f[k + 1], ',', tmp);
			}
			break;
		case WEIR_L_ICMP:	name = "icmp"; break;
		case WEIR_L_ICMP6:	name = "icmpv6"; break;
		case WEIR_L_GRE:	name = "gre"; break;
		case WEIR_L_ERSPAN:	name = "erspan"; break;
		case WEIR_L_VXLAN:	name = "vxlan"; break;
		default:		break;
		}
		if (name == NULL)
			continue;
		if (strcmp(name, "mpls") == 0 && strcmp(last, "mpls") == 0)
			continue;
		last = name;
		sb_add(&v->f[F_PROTOS], ':', name);
	}
}

/*
 * tshark's innermost non-quoted IP: the last ip/ipv6 token before any
 * icmp/icmpv6 token that is followed by a quoted IP.  Returns the
 * family (4 or 6, 0 if none) and its index among that family's
 * occurrences; *l4 gets "tcp", "udp" or "" and *l4idx the occurrence.
 */
static int
tshark_inner(const char *stack, int *idx, char *l4, int *l4idx)
{
	char	 tmp[1024], *tok, *save;
	int	 fam = 0, n4 = 0, n6 = 0, nt = 0, nu = 0, quoted = 0;

	snprintf(tmp, sizeof(tmp), "%s", stack);
	*l4 = 0;
	for (tok = strtok_r(tmp, ":", &save); tok;
	    tok = strtok_r(NULL, ":", &save)) {
		if (quoted)
			break;
		if (strcmp(tok, "ip") == 0) {
			fam = 4;
			*idx = n4++;
			*l4 = 0;
		} else if (strcmp(tok, "ipv6") == 0) {
			fam = 6;
			*idx = n6++;
			*l4 = 0;
		} else if (strcmp(tok, "tcp") == 0) {
			strcpy(l4, "tcp");
			*l4idx = nt++;
		} else if (strcmp(tok, "udp") == 0) {
			strcpy(l4, "udp");
			*l4idx = nu++;
		} else if (strcmp(tok, "icmp") == 0 ||
		    strcmp(tok, "icmpv6") == 0)
			quoted = 1;
	}
	return fam;
}

/* The n-th comma-separated item of s into out ("" if none). */
static void
nth(const char *s, int n, char *out, size_t outlen)
{
	const char	*e;

	while (n-- > 0 && s) {
		s = strchr(s, ',');
		if (s)
			s++;
	}
	if (s == NULL) {
		*out = 0;
		return;
	}
	e = strchr(s, ',');
	snprintf(out, outlen, "%.*s", (int)(e ? e - s : (long)strlen(s)), s);
}

struct trace_stats {
	unsigned	pkts, mism[F_N], tuple_bad, inv_bad, tunnel, quoted,
			vlan, mpls, nolines, zerotail;
};

/*
 * tshark names a protocol whose header starts exactly at caplen (zero
 * bytes of it present); we record no layer there but set DF_TRUNC.
 */
static int
zero_byte_tail(const struct weir_pkt *p, const char *ours, const char *ts)
{
	size_t	n = strlen(ours);

	return (p->dec.flags & WEIR_DF_TRUNC) && p->dec.hdr_end == p->caplen &&
	    strncmp(ours, ts, n) == 0 && ts[n] == ':' &&
	    strchr(ts + n + 1, ':') == NULL;
}

static int
split_tabs(char *line, char **f, int nf)
{
	int	n = 0;

	line[strcspn(line, "\r\n")] = 0;
	f[n++] = line;
	while (n < nf && (line = strchr(line, '\t')) != NULL) {
		*line++ = 0;
		f[n++] = line;
	}
	return n;
}

/* "addr/port" of both endpoints, smaller first, as weir_pkt_tuple. */
static void
endpoints(int fam, const char *s, unsigned ps, const char *d, unsigned pd,
    char *a, char *b, size_t len)
{
	uint8_t	as[16] = { 0 }, ad[16] = { 0 };
	int	c;

	inet_pton(fam == 4 ? AF_INET : AF_INET6, s, as);
	inet_pton(fam == 4 ? AF_INET : AF_INET6, d, ad);
	c = memcmp(as, ad, 16);
	if (c > 0 || (c == 0 && ps > pd)) {
		snprintf(a, len, "%s/%u", d, pd);
		snprintf(b, len, "%s/%u", s, ps);
	} else {
		snprintf(a, len, "%s/%u", s, ps);
		snprintf(b, len, "%s/%u", d, pd);
	}
}

static void
check_tuple(const struct weir_pkt *p, char **tf, struct trace_stats *st,
    unsigned pktno)
{
	struct weir_tuple	 t;
	char			 want_a[128], want_b[128], got_a[128];
	char			 got_b[128], l4[8], sp[16], dp[16];
	char			 s[64], d[64];
	char			 a[INET6_ADDRSTRLEN], b[INET6_ADDRSTRLEN];
	int			 fam, idx = 0, l4idx = 0, r, k;
	unsigned		 ps = 0, pd = 0;

	fam = tshark_inner(tf[F_PROTOS], &idx, l4, &l4idx);
	r = weir_pkt_tuple(p, &t);
	if (fam == 0 || r == 0) {
		if ((fam != 0) != (r != 0) && st->tuple_bad++ < 5)
			printf("# pkt %u: tuple %d, tshark family %d\n",
			    pktno, r, fam);
		return;
	}
	nth(tf[fam == 4 ? F_IPSRC : F_IP6SRC], idx, s, sizeof(s));
	nth(tf[fam == 4 ? F_IPDST : F_IP6DST], idx, d, sizeof(d));
	if (*l4) {
		k = strcmp(l4, "tcp") == 0 ? F_TSPORT : F_USPORT;
		nth(tf[k], l4idx, sp, sizeof(sp));
		nth(tf[k + 1], l4idx, dp, sizeof(dp));
		ps = (unsigned)atoi(sp);
		pd = (unsigned)atoi(dp);
	}
	endpoints(fam, s, ps, d, pd, want_a, want_b, sizeof(want_a));
	inet_ntop(t.family == 4 ? AF_INET : AF_INET6, t.addr_a, a, sizeof(a));
	inet_ntop(t.family == 4 ? AF_INET : AF_INET6, t.addr_b, b, sizeof(b));
	snprintf(got_a, sizeof(got_a), "%s/%u", a, t.port_a);
	snprintf(got_b, sizeof(got_b), "%s/%u", b, t.port_b);
	if (t.family != fam || strcmp(want_a, got_a) != 0 ||
	    strcmp(want_b, got_b) != 0) {
		if (st->tuple_bad++ < 5)
			printf("# pkt %u: tuple %s %s, tshark %s %s\n", pktno,
			    got_a, got_b, want_a, want_b);
	}
}

static void
run_trace(const char *name, struct trace_stats *st)
{
	char			 path[256], cmd[1024], errbuf[PCAP_ERRBUF_SIZE];
	char			*line = NULL, *tf[F_N + 1], why[128];
	size_t			 cap = 0;
	struct pcap_pkthdr	*h;
	const u_char		*data;
	pcap_t			*pc;
	FILE			*ts;
	struct weir_pkt		 p;
	struct view		 v;
	unsigned		 k, i;
	int			 nf;
	static uint8_t		 buf[262144];

	memset(st, 0, sizeof(*st));
	snprintf(path, sizeof(path), DATA "%s", name);
	pc = pcap_open_offline(path, errbuf);
	if (pc == NULL) {
		ok(0, "%s: open: %s", name, errbuf);
		return;
	}
	k = (unsigned)snprintf(cmd, sizeof(cmd),
	    "tshark -n -r '%s' -o ip.defragment:FALSE "
	    "-o ipv6.defragment:FALSE --disable-protocol teredo "
	    "-T fields -E occurrence=a "
	    "-E aggregator=, -E separator=/t", path);
	for (i = 0; i < F_N; i++)
		k += (unsigned)snprintf(cmd + k, sizeof(cmd) - k, " -e %s",
		    tshark_fields[i]);
	snprintf(cmd + k, sizeof(cmd) - k, " 2>/dev/null");
	ts = popen(cmd, "r");
	if (ts == NULL) {
		ok(0, "%s: cannot run tshark", name);
		pcap_close(pc);
		return;
	}
	memset(&p, 0, sizeof(p));
	p.linktype = dlt_to_linktype(pcap_datalink(pc));
	while (pcap_next_ex(pc, &h, &data) == 1) {
		st->pkts++;
		/* A copy of exactly caplen bytes, so ASan sees overreads. */
		memcpy(buf, data, h->caplen);
		p.data = malloc(h->caplen ? h->caplen : 1);
		memcpy(p.data, buf, h->caplen);
		p.caplen = h->caplen;
		p.wirelen = h->len;
		p.decoded = 0;
		weir_pkt_decode(&p);
		if (!check_invariants(&p, why, sizeof(why))) {
			if (st->inv_bad++ < 5)
				printf("# %s pkt %u: %s\n", name, st->pkts,
				    why);
		}
		for (i = 0; i < p.dec.n; i++) {
			if ((p.dec.l[i].flags & WEIR_LF_TUNNEL) &&
			    (p.dec.l[i].kind == WEIR_L_IPV4 ||
			    p.dec.l[i].kind == WEIR_L_IPV6)) {
				st->tunnel++;
				break;
			}
		}
		for (i = 0; i < p.dec.n; i++) {
			if (p.dec.l[i].flags & WEIR_LF_QUOTED) {
				st->quoted++;
				break;
			}
		}
		for (i = 0; i < p.dec.n; i++)
			if (p.dec.l[i].kind == WEIR_L_VLAN)
				st->vlan++;
		for (i = 0; i < p.dec.n; i++)
			if (p.dec.l[i].kind == WEIR_L_MPLS)
				st->mpls++;
		our_view(&p, &v);
		if (getline(&line, &cap, ts) <= 0) {
			st->nolines++;
			free(p.data);
			continue;
		}
		nf = split_tabs(line, tf, F_N);
		for (k = (unsigned)nf; k < F_N; k++)
			tf[k] = (char *)"";
		{
			struct sbuf	stk;

			tshark_stack(tf[F_PROTOS], &stk);
			for (k = F_PROTOS; k < F_N; k++) {
				const char *want = k == F_PROTOS ? stk.s :
				    tf[k];

				if (strcmp(want, v.f[k].s) == 0)
					continue;
				if (k == F_PROTOS && zero_byte_tail(&p,
				    v.f[k].s, want)) {
					st->zerotail++;
					continue;
				}
				if (st->mism[k]++ < 3)
					printf("# %s pkt %u %s: ours '%s' "
					    "tshark '%s'\n", name, st->pkts,
					    tshark_fields[k], v.f[k].s, want);
			}
			tf[F_PROTOS] = stk.s;
			check_tuple(&p, tf, st, st->pkts);
		}
		free(p.data);
	}
	if (getline(&line, &cap, ts) > 0)
		st->nolines++;
	free(line);
	pclose(ts);
	pcap_close(pc);
}

static void
test_traces(void)
{
	static const struct {
		const char	*file;
		unsigned	 pkts;	/* capinfos */
	} tr[] = {
		{ "tcpdump-802.1ad_QinQ.pcap", 2 },
		{ "zeek-vlan-qinqinq.pcap", 14 },
		{ "libtrace-ip-in-mpls.pcap", 10507 },
		{ "zeek-mixed-vlan-mpls.pcap", 47 },
		{ "zeek-gre-sample.pcap", 40 },
		{ "zeek-erspan.pcap", 287 },
		{ "zeek-vxlan-encapsulated-http.pcap", 12 },
		{ "ndpi-6in4tunnel.pcap", 127 },
		{ "ndpi-nintendo.pcap", 1000 },
		{ "zeek-communityid-icmp6.pcap", 49 },
		{ "ndpi-dns_fragmented.pcap", 66 },
		{ "zeek-linux_dlt_sll2.pcap", 6 },
		{ "ndpi-KakaoTalk_talk-sll.pcap", 3203 },
		{ "ndpi-ocs-rawip.pcap", 946 },
		{ "tcpdump-tcp-handshake-nano.pcap", 3 },
		{ "zeek-tcp-timestamp-snap96.pcap", 878 },
		{ "libtrace-100_packets.pcap", 100 },
		{ "arkime-socks5-http-302-frag.pcap", 72 },
		{ "suricata-decode-sll2-02.pcap", 159 },
		{ "libtrace-vlan.pcap", 395 },
		{ "ndpi-reddit-ipv6.pcap", 1942 },
		{ "libtrace-fragtest-ether.pcapng", 10000 },
		{ "ndpi-1kxun.pcap", 1723 },
		{ "ndpi-gnutella.pcap", 3905 },
		{ "zeek-dns-edns-ecs.pcap", 89 },
		{ "suricata-tls-subjectaltname.pcap", 3138 },
		{ "ndpi-nfsv3-bigendian.pcap", 128 },
	};
	struct trace_stats	st;
	size_t			i;
	unsigned		k, m;
	FILE			*f;

	f = popen("tshark -v >/dev/null 2>&1 && echo yes", "r");
	if (f == NULL || fgetc(f) != 'y') {
		if (f)
			pclose(f);
		printf("# tshark not found: trace comparisons skipped\n");
		ok(0, "tshark is needed for the oracle comparisons");
		return;
	}
	pclose(f);
	for (i = 0; i < sizeof(tr) / sizeof(tr[0]); i++) {
		run_trace(tr[i].file, &st);
		ok(st.pkts == tr[i].pkts && st.nolines == 0,
		    "%s: %u packets, one tshark line each", tr[i].file,
		    st.pkts);
		ok(st.inv_bad == 0, "%s: invariants hold", tr[i].file);
		for (m = 0, k = F_PROTOS; k < F_N; k++)
			m += st.mism[k];
		ok(m == 0, "%s: stack, addresses, ports, vlan ids, mpls "
		    "labels match tshark (%u mismatches)", tr[i].file, m);
		ok(st.tuple_bad == 0, "%s: tuple = tshark innermost ip/ports",
		    tr[i].file);
		if (st.zerotail)
			printf("# %s: %u packets end at caplen right where "
			    "a header would start\n", tr[i].file, st.zerotail);
		/* Counts from SOURCES.md, themselves from tshark. */
		if (strcmp(tr[i].file, "zeek-gre-sample.pcap") == 0)
			ok(st.tunnel == 40 && st.quoted == 2,
			    "gre: 40 tunnelled, 2 quoting (%u, %u)",
			    st.tunnel, st.quoted);
		if (strcmp(tr[i].file, "zeek-vlan-qinqinq.pcap") == 0)
			ok(st.vlan == 14 * 3, "qinqinq: 3 tags x 14 (%u)",
			    st.vlan);
		if (strcmp(tr[i].file, "ndpi-nintendo.pcap") == 0)
			ok(st.quoted == 30, "nintendo: 30 icmp errors with "
			    "quotes (%u)", st.quoted);
		if (strcmp(tr[i].file, "ndpi-6in4tunnel.pcap") == 0)
			ok(st.tunnel == 127, "6in4: 127 tunnelled (%u)",
			    st.tunnel);
		if (strcmp(tr[i].file, "zeek-vxlan-encapsulated-http.pcap")
		    == 0)
			ok(st.tunnel == 12, "vxlan: 12 tunnelled (%u)",
			    st.tunnel);
		if (strcmp(tr[i].file, "libtrace-ip-in-mpls.pcap") == 0)
			ok(st.mpls == 10503, "mpls: 10503 labels (%u)",
			    st.mpls);
	}
}

/* ------------------------------------------------------------------ */
/* Part 2: hand-built packets.                                          */

struct pb {
	uint8_t		b[2048];
	uint32_t	n;
};

static uint32_t
put(struct pb *b, const void *x, uint32_t n)
{
	uint32_t	at = b->n;

	memcpy(b->b + b->n, x, n);
	b->n += n;
	return at;
}

static void
put8(struct pb *b, unsigned v)
{
	b->b[b->n++] = (uint8_t)v;
}

static void
put16(struct pb *b, unsigned v)
{
	put8(b, v >> 8);
	put8(b, v);
}

static void
put32(struct pb *b, uint32_t v)
{
	put16(b, v >> 16);
	put16(b, v & 0xffff);
}

static void
set16(struct pb *b, uint32_t at, unsigned v)
{
	b->b[at] = (uint8_t)(v >> 8);
	b->b[at + 1] = (uint8_t)v;
}

static void
eth(struct pb *b, unsigned type)
{
	static const uint8_t macs[12] = { 2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2 };

	put(b, macs, 12);
	put16(b, type);
}

/* IPv4 header: returns its offset; total length is fixed up later. */
static uint32_t
ipv4(struct pb *b, unsigned ihl, unsigned proto, unsigned frag,
    uint32_t src, uint32_t dst)
{
	uint32_t	at = b->n;
	unsigned	i;

	put8(b, 0x40 | ihl);
	put8(b, 0);
	put16(b, 0);		/* total length: ipv4_done() */
	put16(b, 0x1234);
	put16(b, frag);
	put8(b, 64);
	put8(b, proto);
	put16(b, 0);
	put32(b, src);
	put32(b, dst);
	for (i = 5; i < ihl; i++)
		put32(b, 0x01010101);	/* NOP options */
	return at;
}

static void
ipv4_done(struct pb *b, uint32_t at)
{
	set16(b, at + 2, b->n - at);
}

static uint32_t
ipv6(struct pb *b, unsigned nh, const uint8_t *src, const uint8_t *dst)
{
	uint32_t	at = b->n;

	put32(b, 0x60000000);
	put16(b, 0);		/* payload length: ipv6_done() */
	put8(b, nh);
	put8(b, 64);
	put(b, src, 16);
	put(b, dst, 16);
	return at;
}

static void
ipv6_done(struct pb *b, uint32_t at)
{
	set16(b, at + 4, b->n - at - 40);
}

static uint32_t
tcp(struct pb *b, unsigned sport, unsigned dport, unsigned doff)
{
	uint32_t	at = b->n;
	unsigned	i;

	put16(b, sport);
	put16(b, dport);
	put32(b, 1000);
	put32(b, 0);
	put8(b, doff << 4);
	put8(b, 0x02);
	put16(b, 65535);
	put16(b, 0);
	put16(b, 0);
	for (i = 5; i < doff; i++)
		put32(b, 0x01010101);
	return at;
}

static uint32_t
udp(struct pb *b, unsigned sport, unsigned dport, unsigned len)
{
	uint32_t	at = b->n;

	put16(b, sport);
	put16(b, dport);
	put16(b, len);
	put16(b, 0);
	return at;
}

static const uint8_t A6[16] = { 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 1 };
static const uint8_t B6[16] = { 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 2 };

/* Decode b[0..caplen) from a heap copy of exactly caplen bytes. */
static void
dec(struct weir_pkt *p, const struct pb *b, uint32_t caplen, uint16_t lt)
{
	memset(p, 0, sizeof(*p));
	p->data = malloc(caplen ? caplen : 1);
	memcpy(p->data, b->b, caplen);
	p->caplen = caplen;
	p->wirelen = b->n;
	p->linktype = lt;
	weir_decode(p);
}

/* "kind@off/len" for every layer, for compact assertions. */
static const char *
layers(const struct weir_pkt *p)
{
	static char	 s[1024];
	static const char *nm[] = { "?", "eth", "vlan", "mpls", "sll",
	    "sll2", "loop", "arp", "ip4", "ip6", "ext", "frag", "tcp", "udp",
	    "icmp", "icmp6", "gre", "erspan", "vxlan", "l4" };
	size_t		 n = 0;
	unsigned	 i;
	const struct weir_layer *l;

	s[0] = 0;
	for (i = 0; i < p->dec.n && n < sizeof(s) - 64; i++) {
		l = &p->dec.l[i];
		n += (size_t)snprintf(s + n, sizeof(s) - n, "%s%s@%u/%u%s%s%s",
		    i ? " " : "", l->kind < 20 ? nm[l->kind] : "?", l->off,
		    l->len, l->flags & WEIR_LF_TUNNEL ? "T" : "",
		    l->flags & WEIR_LF_QUOTED ? "Q" : "",
		    l->flags & WEIR_LF_TRUNC ? "!" : "");
	}
	return s;
}

#define EXPECT(p, want, what) do {					\
	const char *got_ = layers(p);					\
	ok(strcmp(got_, (want)) == 0, "%s: %s", (what), got_);		\
	if (strcmp(got_, (want)) != 0)					\
		printf("#   want %s\n", (want));			\
} while (0)

static void
test_truncation_sweep(const struct pb *b, uint16_t lt, const char *what)
{
	struct weir_pkt	p;
	struct weir_decoded full;
	char		why[128];
	uint32_t	c, bad = 0, noflag = 0, lost = 0;
	unsigned	i;

	dec(&p, b, b->n, lt);
	full = p.dec;
	free(p.data);
	for (c = 0; c < b->n; c++) {
		dec(&p, b, c, lt);
		if (!check_invariants(&p, why, sizeof(why))) {
			if (bad++ < 3)
				printf("# caplen %u: %s\n", c, why);
		}
		if (!(p.dec.flags & WEIR_DF_TRUNC) && c < full.hdr_end)
			noflag++;
		/* Every complete layer is found again, identically. */
		for (i = 0; i < p.dec.n; i++) {
			if (p.dec.l[i].flags & WEIR_LF_TRUNC)
				break;
			if (p.dec.l[i].off != full.l[i].off ||
			    p.dec.l[i].len != full.l[i].len ||
			    p.dec.l[i].kind != full.l[i].kind)
				lost++;
		}
		for (i = 0; i < full.n; i++)
			if ((uint64_t)full.l[i].off + full.l[i].len <= c &&
			    (i >= p.dec.n || p.dec.l[i].kind !=
			    full.l[i].kind))
				lost++;
		free(p.data);
	}
	ok(bad == 0, "%s: invariants at every caplen 0..%u", what, b->n - 1);
	ok(noflag == 0, "%s: DF_TRUNC whenever a header is cut (%u missing)",
	    what, noflag);
	ok(lost == 0, "%s: complete headers decoded the same when cut "
	    "later (%u)", what, lost);
}

static void
test_hand(void)
{
	struct pb	 b;
	struct weir_pkt	 p, q;
	struct weir_tuple t, t2;
	uint32_t	 ip, l4, at;
	unsigned	 i;

	/* IPv4 with options, TCP with options, Ethernet padding. */
	memset(&b, 0, sizeof(b));
	eth(&b, 0x0800);
	ip = ipv4(&b, 7, 6, 0x4000, 0x0a000001, 0x0a000002);
	tcp(&b, 1234, 80, 8);
	ipv4_done(&b, ip);
	while (b.n < 100)
		put8(&b, 0xee);		/* trailer: not IP payload */
	dec(&p, &b, b.n, WEIR_LT_EN10MB);
	EXPECT(&p, "eth@0/14 ip4@14/28 tcp@42/32", "ipv4 ihl 7, tcp doff 8");
	ok(p.dec.flags == 0 && p.dec.hdr_end == 74 && p.dec.ip == 1 &&
	    p.dec.inner_ip == 1 && p.dec.l4 == 2,
	    "flags 0, hdr_end 74, indexes (%u %u %u %u %u)", p.dec.flags,
	    p.dec.hdr_end, p.dec.ip, p.dec.inner_ip, p.dec.l4);
	ok(weir_pkt_tuple(&p, &t) == 1 && t.family == 4 && t.proto == 6 &&
	    t.port_a == 1234 && t.port_b == 80 && t.addr_a[3] == 1 &&
	    t.addr_b[3] == 2, "tuple 10.0.0.1:1234 10.0.0.2:80 tcp");
	/* Swap the endpoints: the same tuple. */
	q = p;
	q.data = malloc(b.n);
	memcpy(q.data, p.data, b.n);
	memcpy(q.data + ip + 12, p.data + ip + 16, 4);
	memcpy(q.data + ip + 16, p.data + ip + 12, 4);
	memcpy(q.data + 42, p.data + 44, 2);
	memcpy(q.data + 44, p.data + 42, 2);
	ok(weir_pkt_tuple(&q, &t2) == 1 && memcmp(&t, &t2, sizeof(t)) == 0,
	    "tuple is direction independent");
	free(q.data);
	free(p.data);
	test_truncation_sweep(&b, WEIR_LT_EN10MB, "eth/ipv4+opts/tcp+opts");

	/* IHL < 5 and TCP doff < 5: malformed. */
	b.b[14] = 0x44;
	dec(&p, &b, b.n, WEIR_LT_EN10MB);
	ok((p.dec.flags & WEIR_DF_MALFORMED) && p.dec.ip == WEIR_NO_LAYER &&
	    p.dec.n == 1, "ihl 4: malformed, no ip layer");
	free(p.data);
	b.b[14] = 0x47;
	b.b[42 + 12] = 0x40;
	dec(&p, &b, b.n, WEIR_LT_EN10MB);
	ok((p.dec.flags & WEIR_DF_MALFORMED) && p.dec.l4 == WEIR_NO_LAYER &&
	    p.dec.n == 2, "tcp doff 4: malformed, no tcp layer");
	free(p.data);
	/* IP says version 6 under ethertype 0x0800. */
	b.b[42 + 12] = 0x80;
	b.b[14] = 0x67;
	dec(&p, &b, b.n, WEIR_LT_EN10MB);
	ok(p.dec.flags == (WEIR_DF_MALFORMED | WEIR_DF_BADIP) &&
	    p.dec.n == 1, "version 6 in an 0x0800 frame: malformed, bad ip");
	free(p.data);
	b.b[14] = 0x47;
	/* Total length shorter than the TCP header: cut by the IP bound,
	   which is inconsistent, not a capture truncation. */
	set16(&b, ip + 2, 28 + 20);
	dec(&p, &b, b.n, WEIR_LT_EN10MB);
	ok(p.dec.flags == WEIR_DF_MALFORMED && p.dec.n == 3 &&
	    (p.dec.l[2].flags & WEIR_LF_TRUNC) && p.dec.hdr_end == 62,
	    "tcp header past ip total length: malformed, layer cut at 62 "
	    "(%s, flags %#x)", layers(&p), p.dec.flags);
	free(p.data);
	/* Total length 0 (TSO): decode what is there. */
	set16(&b, ip + 2, 0);
	dec(&p, &b, b.n, WEIR_LT_EN10MB);
	ok(p.dec.flags == 0 && p.dec.l4 == 2, "ipv4 total length 0: tso");
	free(p.data);

	/* IPv4 fragments. */
	memset(&b, 0, sizeof(b));
	eth(&b, 0x0800);
	ip = ipv4(&b, 5, 17, 0x2000, 0xc0000201, 0xc0000202);
	udp(&b, 53, 4000, 16);
	put32(&b, 0);
	put32(&b, 0);
	ipv4_done(&b, ip);
	dec(&p, &b, b.n, WEIR_LT_EN10MB);
	ok(p.dec.l[1].flags == WEIR_LF_FRAG && p.dec.l4 == 2 &&
	    p.dec.flags == 0, "first fragment: FRAG, udp decoded");
	free(p.data);
	set16(&b, ip + 6, 0x0003);	/* offset 24 bytes, last */
	dec(&p, &b, b.n, WEIR_LT_EN10MB);
	ok(p.dec.l[1].flags == (WEIR_LF_FRAG | WEIR_LF_LATERFRAG) &&
	    p.dec.n == 2 && p.dec.l4 == WEIR_NO_LAYER && p.dec.flags == 0 &&
	    p.dec.hdr_end == 34, "later fragment: LATERFRAG, no l4");
	ok(weir_pkt_tuple(&p, &t) == 1 && t.proto == 17 && t.port_a == 0 &&
	    t.port_b == 0, "later fragment tuple: udp, ports 0");
	free(p.data);

	/* IPv6 with hop-by-hop, routing, destination options, TCP. */
	memset(&b, 0, sizeof(b));
	eth(&b, 0x86dd);
	ip = ipv6(&b, 0, A6, B6);
	put8(&b, 43); put8(&b, 0); put16(&b, 0x0104); put32(&b, 0);
	put8(&b, 60); put8(&b, 2); put16(&b, 0); put32(&b, 0);	/* RH0 */
	for (i = 0; i < 4; i++)
		put32(&b, 0);
	put8(&b, 51); put8(&b, 0); put16(&b, 0x0104); put32(&b, 0);
	put8(&b, 6); put8(&b, 4); put16(&b, 0); put32(&b, 1); /* AH 24 */
	for (i = 0; i < 4; i++)
		put32(&b, 0);
	tcp(&b, 443, 50000, 5);
	ipv6_done(&b, ip);
	dec(&p, &b, b.n, WEIR_LT_EN10MB);
	EXPECT(&p, "eth@0/14 ip6@14/40 ext@54/8 ext@62/24 ext@86/8 "
	    "ext@94/24 tcp@118/20", "ipv6 hbh, rh, dst, ah, tcp");
	ok(p.dec.flags == 0 && p.dec.hdr_end == 138 && p.dec.l4 == 6,
	    "ipv6 ext chain: no flags, hdr_end 138");
	ok(weir_pkt_tuple(&p, &t) == 1 && t.family == 6 && t.proto == 6 &&
	    t.port_a == 443 && memcmp(t.addr_a, A6, 16) == 0,
	    "ipv6 tuple through the extension chain");
	free(p.data);
	test_truncation_sweep(&b, WEIR_LT_EN10MB, "eth/ipv6+4 ext/tcp");

	/* IPv6 fragment header. */
	memset(&b, 0, sizeof(b));
	ip = ipv6(&b, 44, A6, B6);
	at = b.n;
	put8(&b, 17); put8(&b, 0); put16(&b, 0x0001); put32(&b, 7);
	udp(&b, 1, 2, 100);
	ipv6_done(&b, ip);
	dec(&p, &b, b.n, WEIR_LT_RAW);
	EXPECT(&p, "ip6@0/40 frag@40/8 udp@48/8", "raw ipv6 first fragment");
	ok(p.dec.l[0].flags == WEIR_LF_FRAG && p.dec.l[1].flags ==
	    WEIR_LF_FRAG, "first fragment: FRAG on ipv6 and fragment layer");
	free(p.data);
	set16(&b, at + 2, 0x00a8);	/* offset 168, last */
	dec(&p, &b, b.n, WEIR_LT_IPV6);
	ok(p.dec.n == 2 && p.dec.l[0].flags == (WEIR_LF_FRAG |
	    WEIR_LF_LATERFRAG) && p.dec.l4 == WEIR_NO_LAYER &&
	    p.dec.hdr_end == 48, "ipv6 later fragment: stop after it");
	ok(weir_pkt_tuple(&p, &t) == 1 && t.proto == 17 && t.port_a == 0,
	    "ipv6 later fragment tuple: proto from the fragment header");
	free(p.data);

	/* GRE with checksum, key and sequence, carrying IPv4/UDP. */
	memset(&b, 0, sizeof(b));
	eth(&b, 0x0800);
	ip = ipv4(&b, 5, 47, 0, 0x0a000001, 0x0a000002);
	put16(&b, 0xb000); put16(&b, 0x0800);
	put32(&b, 0); put32(&b, 42); put32(&b, 7);
	at = ipv4(&b, 5, 17, 0, 0xac100001, 0xac100002);
	udp(&b, 5000, 6000, 8);
	ipv4_done(&b, at);
	ipv4_done(&b, ip);
	dec(&p, &b, b.n, WEIR_LT_EN10MB);
	EXPECT(&p, "eth@0/14 ip4@14/20 gre@34/16 ip4@50/20T udp@70/8T",
	    "gre with C, K, S");
	ok(p.dec.ip == 1 && p.dec.inner_ip == 3 && p.dec.l4 == 4 &&
	    p.dec.flags == 0, "gre: outer ip 1, inner ip 3, l4 4");
	ok(weir_pkt_tuple(&p, &t) == 1 && t.addr_a[0] == 172 &&
	    t.port_a == 5000, "gre tuple is the inner one");
	free(p.data);
	test_truncation_sweep(&b, WEIR_LT_EN10MB, "gre c/k/s");

	/* ERSPAN type III with the O bit (platform subheader). */
	memset(&b, 0, sizeof(b));
	eth(&b, 0x0800);
	ip = ipv4(&b, 5, 47, 0, 0x0a000001, 0x0a000002);
	put16(&b, 0x1000); put16(&b, 0x22eb); put32(&b, 1);
	put32(&b, 0x20000001); put32(&b, 0x12345678);
	put16(&b, 0); put8(&b, 0x00); put8(&b, 0x01);	/* FT 0, O */
	put32(&b, 0x0c000000); put32(&b, 0);		/* platform */
	eth(&b, 0x86dd);
	at = ipv6(&b, 58, A6, B6);
	put8(&b, 128); put8(&b, 0); put16(&b, 0); put32(&b, 1);
	ipv6_done(&b, at);
	ipv4_done(&b, ip);
	dec(&p, &b, b.n, WEIR_LT_EN10MB);
	EXPECT(&p, "eth@0/14 ip4@14/20 gre@34/8 erspan@42/20 eth@62/14T "
	    "ip6@76/40T icmp6@116/8T", "erspan iii with platform subheader");
	free(p.data);
	/* Without the O bit: 12 bytes. */
	b.b[42 + 11] = 0x00;
	dec(&p, &b, b.n, WEIR_LT_EN10MB);
	ok(p.dec.n >= 5 && p.dec.l[3].len == 12 && p.dec.l[4].off == 54,
	    "erspan iii without O: 12 bytes (%s)", layers(&p));
	free(p.data);
	test_truncation_sweep(&b, WEIR_LT_EN10MB, "erspan iii");

	/* ERSPAN type II (S bit) and type I (no S bit). */
	memset(&b, 0, sizeof(b));
	eth(&b, 0x0800);
	ip = ipv4(&b, 5, 47, 0, 0x0a000001, 0x0a000002);
	put16(&b, 0x1000); put16(&b, 0x88be); put32(&b, 9);
	put32(&b, 0x10010064); put32(&b, 0);
	eth(&b, 0x0806);
	put16(&b, 1); put16(&b, 0x0800); put8(&b, 6); put8(&b, 4);
	put16(&b, 1);
	for (i = 0; i < 20; i++)
		put8(&b, i);
	ipv4_done(&b, ip);
	dec(&p, &b, b.n, WEIR_LT_EN10MB);
	EXPECT(&p, "eth@0/14 ip4@14/20 gre@34/8 erspan@42/8 eth@50/14T "
	    "arp@64/28T", "erspan ii carrying arp");
	free(p.data);

	/* VXLAN; and the same without the I flag stops after UDP. */
	memset(&b, 0, sizeof(b));
	eth(&b, 0x0800);
	ip = ipv4(&b, 5, 17, 0, 0x0a000001, 0x0a000002);
	udp(&b, 33333, 4789, 0);
	put32(&b, 0x08000000); put32(&b, 0x00007b00);
	eth(&b, 0x0800);
	at = ipv4(&b, 5, 6, 0, 0xc0a80001, 0xc0a80002);
	tcp(&b, 1, 2, 5);
	ipv4_done(&b, at);
	ipv4_done(&b, ip);
	dec(&p, &b, b.n, WEIR_LT_EN10MB);
	EXPECT(&p, "eth@0/14 ip4@14/20 udp@34/8 vxlan@42/8 eth@50/14T "
	    "ip4@64/20T tcp@84/20T", "vxlan");
	ok(p.dec.l4 == 6 && p.dec.inner_ip == 5, "vxlan: l4 is inner tcp");
	free(p.data);
	b.b[42] = 0;
	dec(&p, &b, b.n, WEIR_LT_EN10MB);
	EXPECT(&p, "eth@0/14 ip4@14/20 udp@34/8", "vxlan port, no I flag");
	free(p.data);

	/* ICMP error quoting a TCP packet cut after 8 bytes. */
	memset(&b, 0, sizeof(b));
	eth(&b, 0x0800);
	ip = ipv4(&b, 5, 1, 0, 0x0a000009, 0x0a000001);
	put8(&b, 11); put8(&b, 0); put16(&b, 0); put32(&b, 0);
	at = ipv4(&b, 5, 6, 0, 0x0a000001, 0x08080808);
	set16(&b, at + 2, 60);
	tcp(&b, 40000, 443, 5);
	b.n -= 12;			/* keep 8 bytes of TCP */
	ipv4_done(&b, ip);
	while (b.n < 80)
		put8(&b, 0);		/* padding after the IP packet */
	dec(&p, &b, b.n, WEIR_LT_EN10MB);
	EXPECT(&p, "eth@0/14 ip4@14/20 icmp@34/8 ip4@42/20Q tcp@62/20Q!",
	    "icmp time exceeded quoting tcp");
	ok(p.dec.flags == 0 && p.dec.hdr_end == 70 && p.dec.l4 == 2 &&
	    p.dec.inner_ip == 1, "quote: no flags, hdr_end 70 (%u), "
	    "l4 is the icmp", p.dec.hdr_end);
	ok(weir_pkt_tuple(&p, &t) == 1 && t.proto == 1 && t.port_a == 0 &&
	    t.addr_a[3] == 1 && t.addr_b[3] == 9, "icmp tuple: outer, "
	    "ports 0");
	free(p.data);
	test_truncation_sweep(&b, WEIR_LT_EN10MB, "icmp error");

	/* ICMPv6 packet too big quoting IPv6/UDP. */
	memset(&b, 0, sizeof(b));
	ip = ipv6(&b, 58, B6, A6);
	put8(&b, 2); put8(&b, 0); put16(&b, 0); put32(&b, 1280);
	at = ipv6(&b, 17, A6, B6);
	set16(&b, at + 4, 1400);
	udp(&b, 7, 9, 1400);
	ipv6_done(&b, ip);
	dec(&p, &b, b.n, WEIR_LT_RAW);
	EXPECT(&p, "ip6@0/40 icmp6@40/8 ip6@48/40Q udp@88/8Q",
	    "icmpv6 packet too big");
	ok(p.dec.flags == 0 && p.dec.hdr_end == 96, "icmpv6 quote flags");
	free(p.data);

	/* Tunnels: 4in6, 6in6, 6in4. */
	memset(&b, 0, sizeof(b));
	ip = ipv6(&b, 4, A6, B6);
	at = ipv4(&b, 5, 41, 0, 1, 2);
	l4 = ipv6(&b, 17, B6, A6);
	udp(&b, 10, 11, 8);
	ipv6_done(&b, l4);
	ipv4_done(&b, at);
	ipv6_done(&b, ip);
	dec(&p, &b, b.n, WEIR_LT_IPV6);
	EXPECT(&p, "ip6@0/40 ip4@40/20T ip6@60/40T udp@100/8T",
	    "ipv6 > ipv4 > ipv6 > udp");
	ok(p.dec.ip == 0 && p.dec.inner_ip == 2 && p.dec.l4 == 3,
	    "nested tunnels: indexes");
	free(p.data);

	/* Stacked VLAN tags beyond WEIR_MAX_LAYERS. */
	memset(&b, 0, sizeof(b));
	eth(&b, 0x88a8);
	for (i = 0; i < 30; i++) {
		put16(&b, 100 + i);
		put16(&b, i == 29 ? 0x0800 : 0x8100);
	}
	ipv4(&b, 5, 6, 0, 1, 2);
	dec(&p, &b, b.n, WEIR_LT_EN10MB);
	ok(p.dec.n == WEIR_MAX_LAYERS && (p.dec.flags & WEIR_DF_TOODEEP) &&
	    p.dec.l[WEIR_MAX_LAYERS - 1].kind == WEIR_L_VLAN,
	    "30 vlan tags: TOODEEP, %u layers", p.dec.n);
	free(p.data);

	/* MPLS: two labels, then an Ethernet pseudowire control word. */
	memset(&b, 0, sizeof(b));
	eth(&b, 0x8847);
	put32(&b, 1000u << 12 | 0x40);
	put32(&b, 2000u << 12 | 0x140);
	put32(&b, 0);				/* control word */
	eth(&b, 0x0800);
	at = ipv4(&b, 5, 17, 0, 1, 2);
	udp(&b, 1, 2, 8);
	ipv4_done(&b, at);
	dec(&p, &b, b.n, WEIR_LT_EN10MB);
	EXPECT(&p, "eth@0/14 mpls@14/4 mpls@18/4 eth@26/14T ip4@40/20T "
	    "udp@60/8T", "mpls ethernet pseudowire with control word");
	free(p.data);
	b.b[22] = 0x45;			/* no control word: IPv4 guess */
	memmove(b.b + 22, b.b + 40, b.n - 40);
	b.n -= 18;
	dec(&p, &b, b.n, WEIR_LT_EN10MB);
	EXPECT(&p, "eth@0/14 mpls@14/4 mpls@18/4 ip4@22/20 udp@42/8",
	    "mpls then ipv4 by nibble");
	free(p.data);

	/* PPPoE session carrying IPv6. */
	memset(&b, 0, sizeof(b));
	eth(&b, 0x8864);
	put8(&b, 0x11); put8(&b, 0); put16(&b, 0x1234); put16(&b, 2 + 48);
	put16(&b, 0x0057);
	at = ipv6(&b, 17, A6, B6);
	udp(&b, 1, 2, 8);
	ipv6_done(&b, at);
	dec(&p, &b, b.n, WEIR_LT_EN10MB);
	EXPECT(&p, "eth@0/14 ip6@22/40 udp@62/8", "pppoe session ipv6");
	free(p.data);

	/* 802.3 + LLC/SNAP carrying IPv4; and plain LLC (unknown). */
	memset(&b, 0, sizeof(b));
	eth(&b, 8 + 28);
	put16(&b, 0xaaaa); put8(&b, 3); put8(&b, 0); put16(&b, 0);
	put16(&b, 0x0800);
	at = ipv4(&b, 5, 17, 0, 1, 2);
	udp(&b, 1, 2, 8);
	ipv4_done(&b, at);
	dec(&p, &b, b.n, WEIR_LT_EN10MB);
	EXPECT(&p, "eth@0/22 ip4@22/20 udp@42/8", "802.3 llc/snap");
	free(p.data);
	b.b[14] = 0x42;
	dec(&p, &b, b.n, WEIR_LT_EN10MB);
	ok(p.dec.n == 1 && p.dec.flags == WEIR_DF_UNKNOWN,
	    "802.3 with stp llc: unknown");
	free(p.data);

	/* Loopback headers: DLT_NULL either order, DLT_LOOP. */
	memset(&b, 0, sizeof(b));
	put32(&b, 0x1e000000);			/* 30, little-endian */
	at = ipv6(&b, 59, A6, B6);
	ipv6_done(&b, at);
	dec(&p, &b, b.n, WEIR_LT_NULL);
	EXPECT(&p, "loop@0/4 ip6@4/40", "null, darwin inet6, le");
	free(p.data);
	set16(&b, 0, 0); set16(&b, 2, 24);	/* 24, big-endian */
	dec(&p, &b, b.n, WEIR_LT_NULL);
	EXPECT(&p, "loop@0/4 ip6@4/40", "null, bsd inet6, be");
	free(p.data);
	dec(&p, &b, b.n, WEIR_LT_LOOP);
	EXPECT(&p, "loop@0/4 ip6@4/40", "loop, inet6");
	free(p.data);
	set16(&b, 2, 7);
	dec(&p, &b, b.n, WEIR_LT_NULL);
	ok(p.dec.n == 1 && p.dec.flags == WEIR_DF_UNKNOWN, "null af 7");
	free(p.data);

	/* ESP and SCTP: OTHER_L4. */
	memset(&b, 0, sizeof(b));
	ip = ipv4(&b, 5, 50, 0, 0x0a000002, 0x0a000001);
	put32(&b, 0x100); put32(&b, 1);
	ipv4_done(&b, ip);
	dec(&p, &b, b.n, WEIR_LT_IPV4);
	EXPECT(&p, "ip4@0/20 l4@20/0", "esp: other_l4 len 0");
	ok(p.dec.l4 == 1 && p.dec.flags == WEIR_DF_UNKNOWN &&
	    p.dec.hdr_end == 20, "esp: l4 set, unknown");
	free(p.data);
	b.b[9] = 132;
	put32(&b, 0);
	ipv4_done(&b, ip);
	set16(&b, 20, 5060); set16(&b, 22, 2905);
	dec(&p, &b, b.n, WEIR_LT_IPV4);
	EXPECT(&p, "ip4@0/20 l4@20/12", "sctp common header");
	ok(weir_pkt_tuple(&p, &t) == 1 && t.proto == 132 &&
	    t.port_a == 2905 && t.port_b == 5060,
	    "sctp tuple with ports, sorted by address");
	free(p.data);

	/* ARP that is not Ethernet/IPv4 is not an ARP layer. */
	memset(&b, 0, sizeof(b));
	eth(&b, 0x0806);
	put16(&b, 6); put16(&b, 0x0800); put8(&b, 6); put8(&b, 16);
	put16(&b, 1);
	for (i = 0; i < 44; i++)
		put8(&b, 0);
	dec(&p, &b, b.n, WEIR_LT_EN10MB);
	ok(p.dec.n == 1 && p.dec.flags == WEIR_DF_UNKNOWN,
	    "arp with protocol length 16: unknown");
	free(p.data);

	/* Unknown link type and empty packets. */
	dec(&p, &b, b.n, 147);
	ok(p.dec.n == 0 && p.dec.flags == WEIR_DF_UNKNOWN &&
	    weir_pkt_tuple(&p, &t) == 0, "unknown link type");
	free(p.data);
	dec(&p, &b, 0, WEIR_LT_LINUX_SLL2);
	ok(p.dec.n == 0 && p.dec.flags == WEIR_DF_TRUNC &&
	    p.dec.hdr_end == 0, "empty sll2 packet: trunc");
	free(p.data);
}

int
main(void)
{
	test_hand();
	test_traces();
	return tap_done();
}
