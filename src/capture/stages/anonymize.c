/*
 * anonymize.c - the "anonymize" stage: rewrite every IP address a packet
 * carries with Crypto-PAn (prefix-preserving) or netblock truncation, and
 * fix, blank or leave the checksums that covered them.
 *
 * Config:
 *   "method":      "cryptopan" | "netblock"           (default cryptopan)
 *   "key_file":    path, cryptopan only, required; 32 raw bytes or 64 hex
 *                  digits.  Read at open(); the key is never logged and
 *                  never part of the config or metadata.
 *   "addresses":   "both" | "src" | "dst"              (default both)
 *   "ipv4_prefix": netblock only, bits kept, 0..32     (default 24)
 *   "ipv6_prefix": netblock only, bits kept, 0..128    (default 48)
 *   "checksums":   "update" | "blank" | "leave"        (default update)
 * Policy: "anonymization_method" (a string or a list of strings) restricts
 * "method".
 *
 * What is rewritten (docs/anonymization.md has the full list and the
 * reasons): the source and destination of every IPv4 and IPv6 header the
 * decoder found (outer, tunnelled, and quoted inside ICMP/ICMPv6 errors,
 * whose fields are taken as they are: the quoted source is the src),
 * addresses inside IPv4 options (record route, timestamp, source routes)
 * and IPv6 routing headers (types 0, 2, 4), which follow "dst", the IPv6
 * home address option, which follows "src", and the sender (src) and
 * target (dst) protocol addresses of ARP.  An address is rewritten only
 * when all its bytes are inside caplen and inside every enclosing IP
 * payload; otherwise it is counted in skipped_truncated.
 *
 * Checksums: before rewriting, every checksum of the packet is described
 * as a region (the bytes it covers, where its field is, and which IP
 * layer's pseudo-header it includes).  Each byte change is then pushed
 * into every region that covers it, and each resulting change of a
 * checksum field is pushed on in turn, so nested cases (the quoted
 * header inside an ICMP error, a tunnel inside UDP or GRE with checksum)
 * come out right without special cases.  "update" applies RFC 1624,
 * "blank" zeroes the affected fields, "leave" touches nothing.  A UDP
 * checksum of zero (none computed) is never touched.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "weir/bytes.h"
#include "weir/cryptopan.h"
#include "weir/csum.h"
#include "weir/decode.h"
#include "weir/module.h"

#define MOD		"anonymize"
#define NO_OFF		UINT32_MAX
#define MAX_DEPTH	8	/* nesting of checksum regions followed */

enum { M_CRYPTOPAN, M_NETBLOCK };
enum { A_BOTH, A_SRC, A_DST };
enum { C_UPDATE, C_BLANK, C_LEAVE };

static const char *const methods[] = { "cryptopan", "netblock", NULL };
static const char *const selections[] = { "both", "src", "dst", NULL };
static const char *const csum_modes[] = { "update", "blank", "leave", NULL };
static const char *const anon_keys[] = { "type", "method", "key_file",
	"addresses", "ipv4_prefix", "ipv6_prefix", "checksums", "incomplete",
	NULL };
/*
 * A packet whose addresses cannot all be rewritten (an IP header the
 * decoder could not follow, nesting too deep, or an address cut
 * by the capture's snaplen) could leak an address in clear: by default
 * it is dropped and counted, never passed on.
 */
static const char *const incomplete_modes[] = { "drop", "keep", NULL };

/* A checksum and the bytes it covers. */
struct region {
	uint32_t	start, end;	/* covered bytes [start, end) */
	uint32_t	field;		/* offset of the 16-bit field */
	uint8_t		pseudo;		/* IP layer of its pseudo-hdr */
	uint8_t		udp;		/* computed 0 is sent as ffff */
};

struct anon {
	int		 method, sel, csum;
	int		 v4_prefix, v6_prefix;
	struct weir_cryptopan *cp;

	uint64_t	 packets_anonymized, addresses_v4, addresses_v6;
	uint64_t	 addresses_arp, quoted_headers, skipped_truncated;
	uint64_t	 dropped_incomplete;
	int		 keep_incomplete;
	int		 skipped;	/* this packet had an address skipped */

	/*
	 * Per-packet scratch, filled by scan(), indexed by layer: limit is
	 * the end of the enclosing IP payloads (and caplen), psrc/pdst the
	 * offsets of an IP layer's pseudo-header addresses, ext the type of
	 * an IPv6 extension header and owner its IPv6 layer.
	 */
	struct region	 r[WEIR_MAX_LAYERS];
	unsigned	 nr;
	uint32_t	 limit[WEIR_MAX_LAYERS];
	uint32_t	 psrc[WEIR_MAX_LAYERS];
	uint32_t	 pdst[WEIR_MAX_LAYERS];
	uint8_t		 ext[WEIR_MAX_LAYERS];
	uint8_t		 owner[WEIR_MAX_LAYERS];
	int		 touched;
};

/*
 * Copies and compares of at most 16 bytes whose length is not a
 * constant: inline loops, since a libc call per address shows in
 * profiles of the full pipeline.
 */
static inline void
cp_small(uint8_t *d, const uint8_t *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		d[i] = s[i];
}

static inline int
eq_small(const uint8_t *a, const uint8_t *b, size_t n)
{
	uint8_t x = 0;
	size_t i;

	for (i = 0; i < n; i++)
		x |= a[i] ^ b[i];
	return x == 0;
}

static int
is_ip(uint8_t kind)
{
	return kind == WEIR_L_IPV4 || kind == WEIR_L_IPV6;
}

static int
policy_check(const char *method, const json_t *policy, struct weir_err *err)
{
	const json_t *rule, *v;
	char list[256];
	size_t i, used = 0;

	if (policy == NULL ||
	    (rule = json_object_get(policy, "anonymization_method")) == NULL)
		return 0;
	if (json_is_string(rule)) {
		if (strcmp(json_string_value(rule), method) == 0)
			return 0;
		return weir_seterr(err, -WEIR_EPOLICY, MOD ": policy rule "
		    "'anonymization_method' requires '%s', not '%s'",
		    json_string_value(rule), method);
	}
	if (!json_is_array(rule))
		return weir_seterr(err, -WEIR_EPOLICY, MOD ": policy rule "
		    "'anonymization_method' must be a string or a list of "
		    "strings");
	list[0] = '\0';
	json_array_foreach(rule, i, v) {
		if (!json_is_string(v))
			return weir_seterr(err, -WEIR_EPOLICY, MOD ": policy "
			    "rule 'anonymization_method' must be a string or a "
			    "list of strings");
		if (strcmp(json_string_value(v), method) == 0)
			return 0;
		if (used < sizeof(list))
			used += (size_t)snprintf(list + used,
			    sizeof(list) - used, "%s'%s'", i ? " or " : "",
			    json_string_value(v));
	}
	return weir_seterr(err, -WEIR_EPOLICY, MOD ": policy rule "
	    "'anonymization_method' requires %s, not '%s'",
	    used ? list : "(nothing allowed)", method);
}

static int
anon_check(json_t *conf, const json_t *policy, struct weir_err *err)
{
	const char *key_file;
	int rc, method;

	if ((rc = weir_conf_known(conf, MOD, anon_keys, err)) < 0)
		return rc;
	if ((rc = weir_conf_enum(conf, MOD, "method", "cryptopan", methods,
	    &method, err)) < 0)
		return rc;
	if ((rc = policy_check(methods[method], policy, err)) < 0)
		return rc;
	if (method == M_CRYPTOPAN) {
		if (json_object_get(conf, "ipv4_prefix") != NULL ||
		    json_object_get(conf, "ipv6_prefix") != NULL)
			return weir_seterr(err, -WEIR_ECONFIG, MOD ": "
			    "'ipv4_prefix' and 'ipv6_prefix' are only used "
			    "with method 'netblock'");
		if ((rc = weir_conf_str(conf, MOD, "key_file", NULL, 0,
		    &key_file, err)) < 0)
			return rc;
		if (key_file[0] == '\0')
			return weir_seterr(err, -WEIR_ECONFIG, MOD ": "
			    "'key_file' is empty");
	} else {
		if (json_object_get(conf, "key_file") != NULL)
			return weir_seterr(err, -WEIR_ECONFIG, MOD ": "
			    "'key_file' is only used with method 'cryptopan'");
		if ((rc = weir_conf_int(conf, MOD, "ipv4_prefix", 24, 0, 32,
		    NULL, err)) < 0)
			return rc;
		if ((rc = weir_conf_int(conf, MOD, "ipv6_prefix", 48, 0, 128,
		    NULL, err)) < 0)
			return rc;
	}
	if ((rc = weir_conf_enum(conf, MOD, "addresses", "both", selections,
	    NULL, err)) < 0)
		return rc;
	if ((rc = weir_conf_enum(conf, MOD, "incomplete", "drop",
	    incomplete_modes, NULL, err)) < 0)
		return rc;
	return weir_conf_enum(conf, MOD, "checksums", "update", csum_modes,
	    NULL, err);
}

static int
anon_close(void *stp, struct weir_err *err)
{
	struct anon *st = stp;

	if (st == NULL)
		return 0;
	weir_cryptopan_free(st->cp);
	free(st);
	return 0;
}

static int
anon_open(void **stp, const json_t *conf, const struct weir_env *env,
    struct weir_err *err)
{
	struct anon *st;
	const char *path;
	uint8_t key[32];
	int rc;

	if ((st = calloc(1, sizeof(*st))) == NULL)
		return weir_seterr(err, -ENOMEM, MOD ": out of memory");
	st->method = weir_conf_choice(conf, "method", methods);
	st->sel = weir_conf_choice(conf, "addresses", selections);
	st->csum = weir_conf_choice(conf, "checksums", csum_modes);
	st->keep_incomplete = weir_conf_choice(conf, "incomplete", incomplete_modes);
	st->v4_prefix = (int)json_integer_value(json_object_get(conf,
	    "ipv4_prefix"));
	st->v6_prefix = (int)json_integer_value(json_object_get(conf,
	    "ipv6_prefix"));
	if (st->method == M_CRYPTOPAN) {
		path = json_string_value(json_object_get(conf, "key_file"));
		if (path == NULL) {
			rc = weir_seterr(err, -WEIR_ECONFIG, MOD ": "
			    "'key_file' is required");
			goto fail;
		}
		/* A missing or malformed key file is a configuration error. */
		if ((rc = weir_cryptopan_load_key(path, key, err)) < 0)
			rc = -WEIR_ECONFIG;
		if (rc == 0 && (st->cp = weir_cryptopan_new(key, err)) ==
		    NULL)
			rc = -WEIR_EUNSUPP;
		OPENSSL_cleanse(key, sizeof(key));
		if (rc < 0)
			goto fail;
	}
	*stp = st;
	return 0;
fail:
	anon_close(st, NULL);
	return rc;
}

/*
 * Update the checksum field f for a change of n bytes at offset rel from
 * the start of its data.  weir_csum_replace wants an even offset and
 * length: pad both spans with the same byte, which adds nothing to the
 * difference the update is made of.
 */
static void
csum_fix(uint8_t *f, uint32_t rel, const uint8_t *old, const uint8_t *new_,
    size_t n)
{
	uint8_t wo[20], wn[20];
	size_t k = 0;

	if (!(rel & 1) && !(n & 1)) {
		weir_csum_replace(f, old, new_, n);
		return;
	}
	if (rel & 1) {
		wo[0] = wn[0] = 0;
		k = 1;
	}
	cp_small(wo + k, old, n);
	cp_small(wn + k, new_, n);
	k += n;
	if (k & 1) {
		wo[k] = wn[k] = 0;
		k++;
	}
	weir_csum_replace(f, wo, wn, k);
}

static void changed(struct anon *, struct weir_pkt *, uint32_t,
    const uint8_t *, const uint8_t *, size_t, int);

/* Region ri saw a change of n bytes at rel (in its data or pseudo-header). */
static void
region_apply(struct anon *st, struct weir_pkt *p, unsigned ri, uint32_t rel,
    const uint8_t *old, const uint8_t *new_, size_t n, int depth)
{
	struct region *r = &st->r[ri];
	uint8_t *f = p->data + r->field, of[2];

	of[0] = f[0];
	of[1] = f[1];
	if (st->csum == C_BLANK) {
		f[0] = f[1] = 0;
	} else {
		csum_fix(f, rel, old, new_, n);
		if (r->udp && f[0] == 0 && f[1] == 0)
			f[0] = f[1] = 0xff;
	}
	if (of[0] != f[0] || of[1] != f[1])
		changed(st, p, r->field, of, f, 2, depth + 1);
}

/* Bytes [off, off + n) changed from old to new_: fix what covers them. */
static void
changed(struct anon *st, struct weir_pkt *p, uint32_t off,
    const uint8_t *old, const uint8_t *new_, size_t n, int depth)
{
	uint8_t o[16], w[16];
	unsigned i;

	if (depth > MAX_DEPTH)
		return;
	/* The field may be rewritten below: work on copies. */
	cp_small(o, old, n);
	cp_small(w, new_, n);
	for (i = 0; i < st->nr; i++) {
		struct region *r = &st->r[i];

		if (off < r->start || (uint64_t)off + n > r->end)
			continue;
		if (off < r->field + 2 && r->field < off + n)
			continue;	/* its own field */
		region_apply(st, p, i, off - r->start, o, w, n, depth);
	}
}

/* A pseudo-header address of IP layer ip changed. */
static void
pseudo_changed(struct anon *st, struct weir_pkt *p, unsigned ip,
    const uint8_t *old, const uint8_t *new_, size_t n)
{
	unsigned i;

	for (i = 0; i < st->nr; i++)
		if (st->r[i].pseudo == ip)
			region_apply(st, p, i, 0, old, new_, n, 0);
}

static void
map_addr(struct anon *st, const uint8_t *in, uint8_t *out, size_t n)
{
	int bits, i;

	if (st->method == M_CRYPTOPAN) {
		if (n == 4)
			weir_cryptopan_v4(st->cp, in, out);
		else
			weir_cryptopan_v6(st->cp, in, out);
		return;
	}
	bits = n == 4 ? st->v4_prefix : st->v6_prefix;
	for (i = 0; i < (int)n; i++) {
		if (bits >= 8)
			out[i] = in[i];
		else if (bits <= 0)
			out[i] = 0;
		else
			out[i] = (uint8_t)(in[i] & (0xff << (8 - bits)));
		bits -= 8;
	}
}

/*
 * Rewrite the n-byte address at off, carried by layer k (whose IP layer,
 * for pseudo-headers, is ip; NO_LAYER for ARP).  Returns 1 if rewritten.
 */
static int
rewrite(struct anon *st, struct weir_pkt *p, unsigned k, unsigned ip,
    uint32_t off, size_t n)
{
	uint8_t old[16], new_[16];

	if ((uint64_t)off + n > st->limit[k]) {
		st->skipped_truncated++;
		st->skipped = 1;
		return 0;
	}
	cp_small(old, p->data + off, n);
	map_addr(st, old, new_, n);
	st->touched = 1;
	if (eq_small(old, new_, n))
		return 1;
	cp_small(p->data + off, new_, n);
	p->modified = 1;
	if (st->csum == C_LEAVE)
		return 1;
	changed(st, p, off, old, new_, n, 0);
	if (ip != WEIR_NO_LAYER && (off == st->psrc[ip] || off == st->pdst[ip]))
		pseudo_changed(st, p, ip, old, new_, n);
	return 1;
}

/* Nominal end of the payload of IP layer k, NO_OFF when unknown. */
static uint32_t
ip_end(const struct weir_pkt *p, const struct weir_layer *l)
{
	uint32_t hl, tl;

	if (l->kind == WEIR_L_IPV4) {
		if ((uint64_t)l->off + 4 > p->caplen)
			return NO_OFF;
		hl = (uint32_t)(p->data[l->off] & 0x0f) * 4;
		tl = weir_get16(p->data + l->off + 2);
		/* 0 (TSO captures) or shorter than the header: unknown */
		return tl < hl || tl < 20 ? NO_OFF : l->off + tl;
	}
	if ((uint64_t)l->off + 6 > p->caplen)
		return NO_OFF;
	tl = weir_get16(p->data + l->off + 4);
	return tl == 0 ? NO_OFF : l->off + 40 + tl;	/* 0: jumbogram */
}

static uint32_t
ipv4_hl(const struct weir_pkt *p, const struct weir_layer *l)
{
	if (l->off < p->caplen)
		return (uint32_t)(p->data[l->off] & 0x0f) * 4;
	return l->len;
}

/*
 * IPv4 source route options: the pseudo-header destination is the final
 * one, the last address of the route, while the route is unfinished.
 */
static void
scan_v4_options(struct anon *st, const struct weir_pkt *p, unsigned k)
{
	const struct weir_layer *l = &p->dec.l[k];
	const uint8_t *b = p->data;
	uint32_t o = l->off + 20, end = l->off + ipv4_hl(p, l);
	uint32_t len, ptr;

	if (end > p->caplen)
		end = p->caplen;
	while (o < end && b[o] != 0) {
		if (b[o] == 1) {
			o++;
			continue;
		}
		if (o + 3 > end || (len = b[o + 1]) < 2 ||
		    o + len > l->off + ipv4_hl(p, l))
			return;
		ptr = b[o + 2];
		if ((b[o] == 131 || b[o] == 137) && len >= 7 && ptr <= len)
			st->pdst[k] = o + 3 + (len - 3) / 4 * 4 - 4;
		o += len;
	}
}

/*
 * IPv6 extension headers of IP layer ip at layer k: a Routing header with
 * segments left names the pseudo-header destination, a Home Address
 * option the pseudo-header source (RFC 8200 8.1, RFC 6275 6.3).
 */
static void
scan_v6_ext(struct anon *st, const struct weir_pkt *p, unsigned k,
    unsigned ip)
{
	const struct weir_layer *l = &p->dec.l[k];
	const uint8_t *b = p->data;
	uint32_t hl, o, n;

	if ((uint64_t)l->off + 8 > p->caplen)
		return;
	hl = ((uint32_t)b[l->off + 1] + 1) * 8;
	if (st->ext[k] == 43 && b[l->off + 3] != 0) {
		if (b[l->off + 2] == 0 || b[l->off + 2] == 2) {
			n = (hl - 8) / 16;
			if (n > 0)
				st->pdst[ip] = l->off + 8 + (n - 1) * 16;
		} else if (b[l->off + 2] == 4 && hl >= 24)
			st->pdst[ip] = l->off + 8;
	} else if (st->ext[k] == 60) {
		for (o = l->off + 2; o + 2 <= l->off + hl && o + 2 <= p->caplen;
		    ) {
			if (b[o] == 0) {
				o++;
				continue;
			}
			if (b[o] == 0xc9 && b[o + 1] == 16)
				st->psrc[ip] = o + 2;
			o += 2 + (uint32_t)b[o + 1];
		}
	}
}

/* The IP layer directly carrying layer k (through IPv6 ext headers). */
static unsigned
carrier(const struct weir_decoded *d, unsigned k)
{
	while (k > 0) {
		k--;
		if (is_ip(d->l[k].kind))
			return k;
		if (d->l[k].kind != WEIR_L_IPV6_EXT &&
		    d->l[k].kind != WEIR_L_IPV6_FRAG)
			break;
	}
	return WEIR_NO_LAYER;
}

static void
add_region(struct anon *st, const struct weir_pkt *p, unsigned k,
    uint32_t start, uint32_t end, uint32_t field, unsigned pseudo, int udp)
{
	struct region *r;

	if ((uint64_t)field + 2 > st->limit[k] || st->nr >= WEIR_MAX_LAYERS)
		return;
	r = &st->r[st->nr++];
	r->start = start;
	r->end = end;
	r->field = field;
	r->pseudo = (uint8_t)pseudo;
	r->udp = (uint8_t)udp;
}

/*
 * First pass over the layers: bounds, extension header types, pseudo-
 * header addresses and checksum regions, all from the original bytes.
 */
static void
scan(struct anon *st, const struct weir_pkt *p)
{
	const struct weir_decoded *d = &p->dec;
	const struct weir_layer *l;
	uint32_t lim = p->caplen, e;
	unsigned k, ip, n = d->n < WEIR_MAX_LAYERS ? d->n : WEIR_MAX_LAYERS;
	unsigned cur6 = WEIR_NO_LAYER;
	uint8_t nh = 0;

	st->nr = 0;
	for (k = 0; k < n; k++) {
		l = &d->l[k];
		st->limit[k] = lim;
		st->psrc[k] = st->pdst[k] = NO_OFF;
		st->owner[k] = WEIR_NO_LAYER;
		switch (l->kind) {
		case WEIR_L_IPV4:
			cur6 = WEIR_NO_LAYER;
			if ((uint64_t)l->off + 20 <= p->caplen) {
				st->psrc[k] = l->off + 12;
				st->pdst[k] = l->off + 16;
				if (ipv4_hl(p, l) > 20)
					scan_v4_options(st, p, k);
			}
			if (ipv4_hl(p, l) >= 20)
				add_region(st, p, k, l->off, l->off +
				    ipv4_hl(p, l), l->off + 10, WEIR_NO_LAYER,
				    0);
			break;
		case WEIR_L_IPV6:
			cur6 = k;
			st->psrc[k] = l->off + 8;
			st->pdst[k] = l->off + 24;
			nh = (uint64_t)l->off + 7 <= p->caplen ?
			    p->data[l->off + 6] : 0;
			break;
		case WEIR_L_IPV6_EXT:
		case WEIR_L_IPV6_FRAG:
			st->ext[k] = nh;
			st->owner[k] = (uint8_t)cur6;
			nh = l->off < p->caplen ? p->data[l->off] : 0;
			if (cur6 != WEIR_NO_LAYER)
				scan_v6_ext(st, p, k, cur6);
			break;
		default:
			cur6 = WEIR_NO_LAYER;
			break;
		}
		if (is_ip(l->kind) || st->csum == C_LEAVE)
			goto next;
		ip = carrier(d, k);
		e = ip == WEIR_NO_LAYER ? NO_OFF : ip_end(p, &d->l[ip]);
		if (ip != WEIR_NO_LAYER && (d->l[ip].flags & WEIR_LF_LATERFRAG))
			goto next;
		switch (l->kind) {
		case WEIR_L_TCP:
			if (ip != WEIR_NO_LAYER)
				add_region(st, p, k, l->off, e, l->off + 16, ip,
				    0);
			break;
		case WEIR_L_UDP:
			/* Checksum 0: none computed, leave it so. */
			if (ip != WEIR_NO_LAYER &&
			    (uint64_t)l->off + 8 <= st->limit[k] &&
			    weir_get16(p->data + l->off + 6) != 0)
				add_region(st, p, k, l->off, e, l->off + 6, ip,
				    1);
			break;
		case WEIR_L_ICMP:
			add_region(st, p, k, l->off, e, l->off + 2,
			    WEIR_NO_LAYER, 0);
			break;
		case WEIR_L_ICMP6:
			if (ip != WEIR_NO_LAYER)
				add_region(st, p, k, l->off, e, l->off + 2, ip,
				    0);
			break;
		case WEIR_L_GRE:
			/* The C bit: checksum over GRE header and payload. */
			if (l->off < st->limit[k] && (p->data[l->off] & 0x80))
				add_region(st, p, k, l->off, e, l->off + 4,
				    WEIR_NO_LAYER, 0);
			break;
		}
next:
		/* What follows an IP header is inside its payload. */
		if (is_ip(l->kind) && (e = ip_end(p, l)) < lim)
			lim = e;
	}
}

static int
sel_src(const struct anon *st)
{
	return st->sel != A_DST;
}

static int
sel_dst(const struct anon *st)
{
	return st->sel != A_SRC;
}

/* Addresses inside IPv4 options: route and timestamp records. */
static void
rewrite_v4_options(struct anon *st, struct weir_pkt *p, unsigned k)
{
	const struct weir_layer *l = &p->dec.l[k];
	uint32_t o = l->off + 20, hend = l->off + ipv4_hl(p, l);
	uint32_t end = hend < p->caplen ? hend : p->caplen, len, ptr, a, used;
	int flag;

	while (o < end && p->data[o] != 0) {
		if (p->data[o] == 1) {
			o++;
			continue;
		}
		if (o + 3 > end || (len = p->data[o + 1]) < 2 ||
		    o + len > hend)
			return;
		ptr = p->data[o + 2];
		switch (p->data[o]) {
		case 7:		/* record route: the filled slots */
			used = ptr > 4 ? ptr - 1 : 3;
			for (a = 3; a + 4 <= len && a + 4 <= used; a += 4)
				st->addresses_v4 += rewrite(st, p, k, k, o + a,
				    4);
			break;
		case 131:	/* loose and strict source route: all */
		case 137:
			for (a = 3; a + 4 <= len; a += 4)
				st->addresses_v4 += rewrite(st, p, k, k, o + a,
				    4);
			break;
		case 68:	/* timestamp with addresses */
			if (o + 4 > end)
				return;
			flag = p->data[o + 3] & 0x0f;
			used = flag == 3 ? len : (ptr > 5 ? ptr - 1 : 4);
			if (flag != 1 && flag != 3)
				break;
			for (a = 4; a + 8 <= len && a + 8 <= used; a += 8)
				st->addresses_v4 += rewrite(st, p, k, k, o + a,
				    4);
			break;
		}
		o += len;
	}
}

static void
rewrite_v6_ext(struct anon *st, struct weir_pkt *p, unsigned k)
{
	const struct weir_layer *l = &p->dec.l[k];
	const uint8_t *b = p->data;
	unsigned ip = st->owner[k];
	uint32_t hl, o, n, i;

	if (ip == WEIR_NO_LAYER || (uint64_t)l->off + 8 > p->caplen)
		return;
	hl = ((uint32_t)b[l->off + 1] + 1) * 8;
	if (st->ext[k] == 43 && sel_dst(st)) {
		if (b[l->off + 2] == 0 || b[l->off + 2] == 2)
			n = (hl - 8) / 16;
		else if (b[l->off + 2] == 4) {
			n = (uint32_t)b[l->off + 4] + 1;
			if (n > (hl - 8) / 16)
				n = (hl - 8) / 16;
		} else
			return;
		for (i = 0; i < n; i++)
			st->addresses_v6 += rewrite(st, p, k, ip,
			    l->off + 8 + i * 16, 16);
	} else if (st->ext[k] == 60 && sel_src(st)) {
		for (o = l->off + 2; o + 2 <= l->off + hl && o + 2 <= p->caplen;
		    ) {
			if (b[o] == 0) {
				o++;
				continue;
			}
			if (b[o] == 0xc9 && b[o + 1] == 16)
				st->addresses_v6 += rewrite(st, p, k, ip,
				    o + 2, 16);
			o += 2 + (uint32_t)b[o + 1];
		}
	}
}

static void
anon_one(struct anon *st, struct weir_pkt *p)
{
	const struct weir_decoded *d;
	const struct weir_layer *l;
	unsigned k, n;
	uint32_t hlen;

	weir_pkt_decode(p);
	d = &p->dec;
	n = d->n < WEIR_MAX_LAYERS ? d->n : WEIR_MAX_LAYERS;
	scan(st, p);
	st->touched = 0;
	for (k = 0; k < n; k++) {
		l = &d->l[k];
		switch (l->kind) {
		case WEIR_L_IPV4:
			if (l->flags & WEIR_LF_QUOTED)
				st->quoted_headers++;
			if (sel_src(st))
				st->addresses_v4 += rewrite(st, p, k, k,
				    l->off + 12, 4);
			if (sel_dst(st)) {
				st->addresses_v4 += rewrite(st, p, k, k,
				    l->off + 16, 4);
				if (ipv4_hl(p, l) > 20)
					rewrite_v4_options(st, p, k);
			}
			break;
		case WEIR_L_IPV6:
			if (l->flags & WEIR_LF_QUOTED)
				st->quoted_headers++;
			if (sel_src(st))
				st->addresses_v6 += rewrite(st, p, k, k,
				    l->off + 8, 16);
			if (sel_dst(st))
				st->addresses_v6 += rewrite(st, p, k, k,
				    l->off + 24, 16);
			break;
		case WEIR_L_IPV6_EXT:
			rewrite_v6_ext(st, p, k);
			break;
		case WEIR_L_ARP:
			/* IPv4 protocol addresses only, any hardware size. */
			if ((uint64_t)l->off + 8 > st->limit[k] ||
			    weir_get16(p->data + l->off + 2) != 0x0800 ||
			    p->data[l->off + 5] != 4)
				break;
			hlen = p->data[l->off + 4];
			if (sel_src(st))
				st->addresses_arp += rewrite(st, p, k,
				    WEIR_NO_LAYER, l->off + 8 + hlen, 4);
			if (sel_dst(st))
				st->addresses_arp += rewrite(st, p, k,
				    WEIR_NO_LAYER, l->off + 12 + 2 * hlen, 4);
			break;
		}
	}
	st->packets_anonymized += st->touched;
}

static int
anon_packet(void *stp, struct weir_batch *b)
{
	struct anon *st = stp;
	unsigned i;

	struct weir_pkt *p;

	for (i = 0; i < b->n; i++) {
		p = b->p[i];
		st->skipped = 0;
		anon_one(st, p);
		if (!st->keep_incomplete && (st->skipped || (p->dec.flags &
		    (WEIR_DF_BADIP | WEIR_DF_TOODEEP)))) {
			p->drop = 1;
			st->dropped_incomplete++;
		}
	}
	return 0;
}

static size_t
anon_stats(void *stp, struct weir_counter *c, size_t max)
{
	struct anon *st = stp;
	uint64_t lookups = 0, hits = 0;

	if (st->cp != NULL)
		weir_cryptopan_stats(st->cp, &lookups, &hits);
	struct weir_counter v[] = {
		{ "packets_anonymized", st->packets_anonymized },
		{ "addresses_v4", st->addresses_v4 },
		{ "addresses_v6", st->addresses_v6 },
		{ "addresses_arp", st->addresses_arp },
		{ "quoted_headers", st->quoted_headers },
		{ "cache_hits", hits },
		{ "cache_lookups", lookups },
		{ "skipped_truncated", st->skipped_truncated },
		{ "dropped_incomplete", st->dropped_incomplete },
	};

	return WEIR_COUNTERS_PUT(c, max, v);
}

const struct weir_module weir_mod_anonymize = {
	.name		= MOD,
	.kind		= WEIR_MOD_STAGE,
	.needs_decode	= 1,
	.check		= anon_check,
	.open		= anon_open,
	.packet		= anon_packet,
	.stats		= anon_stats,
	.close		= anon_close,
};
