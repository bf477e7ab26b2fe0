/*
 * checksum.c - the "checksum" stage: verify IPv4 header checksums and the
 * transport checksum, count the results, and optionally drop bad packets.
 *
 * Config: { "action": "count" | "drop" }   (default "count")
 *
 * What is verified (docs/stages.md has the reasons):
 * - the header checksum of every IPv4 layer that is not inside an ICMP
 *   error's quote (outer and tunnelled headers): routers and NATs may
 *   leave a quoted header's checksum stale, so a quote proves nothing;
 * - the TCP, UDP, ICMP or ICMPv6 checksum of the innermost non-quoted
 *   transport layer, when the whole datagram is captured and is not a
 *   fragment.  UDP over IPv4 with checksum 0 means "not computed"
 *   (udp_zero); over IPv6 zero is invalid (RFC 8200 8.1) and is l4_bad.
 *   An IPv6 packet with a Routing header that still has segments left
 *   is unverifiable: its pseudo-header would need the final destination.
 *
 * Counters (per checked header, except dropped_bad which counts packets):
 * ip_good, ip_bad, l4_good, l4_bad, unverifiable (header or datagram cut
 * by caplen, fragment, jumbogram, inconsistent lengths), udp_zero,
 * dropped_bad.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "weir/bytes.h"
#include "weir/csum.h"
#include "weir/decode.h"
#include "weir/module.h"

#define MOD	"checksum"

enum { R_NONE, R_GOOD, R_BAD, R_UNVERIF, R_ZERO };

struct checksum {
	int		drop;
	uint64_t	ip_good, ip_bad, l4_good, l4_bad, unverifiable;
	uint64_t	udp_zero, dropped_bad;
};

static const char *const checksum_keys[] = { "type", "action", NULL };
static const char *const actions[] = { "count", "drop", NULL };

static int
checksum_check(json_t *conf, const json_t *policy, struct weir_err *err)
{
	int rc;

	if ((rc = weir_conf_known(conf, MOD, checksum_keys, err)) < 0)
		return rc;
	return weir_conf_enum(conf, MOD, "action", "count", actions, NULL,
	    err);
}

static int
checksum_open(void **stp, const json_t *conf, const struct weir_env *env,
    struct weir_err *err)
{
	struct checksum *st;
	const char *a;

	if ((st = calloc(1, sizeof(*st))) == NULL)
		return weir_seterr(err, -ENOMEM, MOD ": out of memory");
	a = json_string_value(json_object_get(conf, "action"));
	st->drop = a != NULL && strcmp(a, "drop") == 0;
	*stp = st;
	return 0;
}

static int
is_ip(uint8_t kind)
{
	return kind == WEIR_L_IPV4 || kind == WEIR_L_IPV6;
}

/*
 * IPv6: walk the extension headers between the IPv6 layer ip and the
 * transport layer l4.  Returns 1 when one of them is a fragment header or
 * a Routing header with segments left.
 */
static int
v6_unverifiable(const struct weir_pkt *p, unsigned ip, unsigned l4)
{
	const struct weir_decoded *d = &p->dec;
	const struct weir_layer *e;
	uint8_t nh;
	unsigned i;

	if (d->l[ip].off + 7 > p->caplen)
		return 1;
	nh = p->data[d->l[ip].off + 6];
	for (i = ip + 1; i < l4; i++) {
		e = &d->l[i];
		if (e->kind == WEIR_L_IPV6_FRAG || (e->flags & WEIR_LF_FRAG))
			return 1;
		if (e->kind != WEIR_L_IPV6_EXT)
			continue;
		if ((uint64_t)e->off + 4 > p->caplen)
			return 1;
		if (nh == 43 && p->data[e->off + 3] != 0)
			return 1;
		nh = p->data[e->off];
	}
	return 0;
}

/* Verify the transport layer at index l4. */
static int
verify_l4(const struct weir_pkt *p, unsigned l4)
{
	const struct weir_decoded *d = &p->dec;
	const struct weir_layer *t = &d->l[l4], *ip;
	const uint8_t *b = p->data;
	uint8_t ph[40];
	size_t phlen = 0;
	uint64_t end;
	uint32_t len, sum;
	unsigned i, j;
	uint8_t proto;

	switch (t->kind) {
	case WEIR_L_TCP:
		proto = 6;
		break;
	case WEIR_L_UDP:
		proto = 17;
		break;
	case WEIR_L_ICMP:
		proto = 1;
		break;
	case WEIR_L_ICMP6:
		proto = 58;
		break;
	default:
		return R_NONE;
	}
	for (j = l4; j > 0 && !is_ip(d->l[j - 1].kind); j--)
		;
	if (j == 0)
		return R_NONE;
	ip = &d->l[--j];
	if (t->flags & WEIR_LF_TRUNC)
		return R_UNVERIF;
	for (i = j; i < l4; i++)
		if (d->l[i].flags & (WEIR_LF_FRAG | WEIR_LF_LATERFRAG |
		    WEIR_LF_TRUNC))
			return R_UNVERIF;
	if (ip->kind == WEIR_L_IPV4) {
		if ((uint64_t)ip->off + 20 > p->caplen)
			return R_UNVERIF;
		end = (uint64_t)ip->off + weir_get16(b + ip->off + 2);
		memcpy(ph, b + ip->off + 12, 8);
		phlen = 12;
	} else {
		if ((uint64_t)ip->off + 40 > p->caplen ||
		    weir_get16(b + ip->off + 4) == 0 || v6_unverifiable(p, j, l4))
			return R_UNVERIF;
		end = (uint64_t)ip->off + 40 + weir_get16(b + ip->off + 4);
		memcpy(ph, b + ip->off + 8, 32);
		phlen = 40;
	}
	if (end > p->caplen || end < (uint64_t)t->off + 8)
		return R_UNVERIF;
	len = (uint32_t)(end - t->off);
	if (t->kind == WEIR_L_UDP) {
		if (weir_get16(b + t->off + 6) == 0)
			return ip->kind == WEIR_L_IPV4 ? R_ZERO : R_BAD;
		if (weir_get16(b + t->off + 4) < 8 || weir_get16(b + t->off + 4) > len)
			return R_BAD;
		len = weir_get16(b + t->off + 4);
	}
	if (t->kind == WEIR_L_ICMP)
		phlen = 0;
	else if (phlen == 12) {
		ph[8] = 0;
		ph[9] = proto;
		ph[10] = (uint8_t)(len >> 8);
		ph[11] = (uint8_t)len;
	} else {
		ph[32] = (uint8_t)(len >> 24);
		ph[33] = (uint8_t)(len >> 16);
		ph[34] = (uint8_t)(len >> 8);
		ph[35] = (uint8_t)len;
		ph[36] = ph[37] = ph[38] = 0;
		ph[39] = proto;
	}
	sum = weir_csum_partial(ph, phlen, 0);
	sum = weir_csum_partial(b + t->off, len, sum);
	return weir_csum_fold(sum) == 0 ? R_GOOD : R_BAD;
}

static int
checksum_packet(void *stp, struct weir_batch *b)
{
	struct checksum *st = stp;
	const struct weir_layer *l;
	struct weir_pkt *p;
	struct weir_decoded *d;
	unsigned i, k;
	int bad, r;

	for (i = 0; i < b->n; i++) {
		p = b->p[i];
		weir_pkt_decode(p);
		d = &p->dec;
		bad = 0;
		for (k = 0; k < d->n && k < WEIR_MAX_LAYERS; k++) {
			l = &d->l[k];
			if (l->kind != WEIR_L_IPV4 ||
			    (l->flags & WEIR_LF_QUOTED))
				continue;
			if ((l->flags & WEIR_LF_TRUNC) || l->len < 20 ||
			    (uint64_t)l->off + l->len > p->caplen)
				st->unverifiable++;
			else if (weir_csum_fold(weir_csum_partial(p->data +
			    l->off, l->len, 0)) == 0)
				st->ip_good++;
			else {
				st->ip_bad++;
				bad = 1;
			}
		}
		r = R_NONE;
		if (d->l4 != WEIR_NO_LAYER && d->l4 < d->n)
			r = verify_l4(p, d->l4);
		else if (d->inner_ip != WEIR_NO_LAYER && d->inner_ip < d->n) {
			/* A later fragment: no transport header to check. */
			for (k = d->inner_ip; k < d->n; k++)
				if (d->l[k].flags & WEIR_LF_LATERFRAG)
					r = R_UNVERIF;
		}
		switch (r) {
		case R_GOOD:
			st->l4_good++;
			break;
		case R_BAD:
			st->l4_bad++;
			bad = 1;
			break;
		case R_UNVERIF:
			st->unverifiable++;
			break;
		case R_ZERO:
			st->udp_zero++;
			break;
		}
		if (bad && st->drop) {
			p->drop = 1;
			st->dropped_bad++;
		}
	}
	return 0;
}

static size_t
checksum_stats(void *stp, struct weir_counter *c, size_t max)
{
	struct checksum *st = stp;
	struct weir_counter v[] = {
		{ "ip_good", st->ip_good },
		{ "ip_bad", st->ip_bad },
		{ "l4_good", st->l4_good },
		{ "l4_bad", st->l4_bad },
		{ "unverifiable", st->unverifiable },
		{ "udp_zero", st->udp_zero },
		{ "dropped_bad", st->dropped_bad },
	};

	return WEIR_COUNTERS_PUT(c, max, v);
}

static int
checksum_close(void *stp, struct weir_err *err)
{
	free(stp);
	return 0;
}

const struct weir_module weir_mod_checksum = {
	.name		= MOD,
	.kind		= WEIR_MOD_STAGE,
	.needs_decode	= 1,
	.check		= checksum_check,
	.open		= checksum_open,
	.packet		= checksum_packet,
	.stats		= checksum_stats,
	.close		= checksum_close,
};
