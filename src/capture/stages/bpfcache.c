/*
 * bpfcache.c - per link type BPF programs for one expression.
 * See bpfcache.h for the rules.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <pcap/pcap.h>

#include "weir/log.h"
#include "capture/stages/bpfcache.h"

int
bpfcache_dlt(uint16_t linktype)
{
	/*
	 * LINKTYPE_* and DLT_* agree except for the few values that differ
	 * between BSDs (libpcap's linktype_to_dlt(), which is not exported,
	 * does the same for savefiles; tcpdump sees the DLT).
	 */
	switch (linktype) {
	case 50:			/* LINKTYPE_PPP_HDLC */
		return DLT_PPP_SERIAL;
	case 51:			/* LINKTYPE_PPP_ETHER */
		return DLT_PPP_ETHER;
	case 100:			/* LINKTYPE_ATM_RFC1483 */
		return DLT_ATM_RFC1483;
	case WEIR_LT_RAW:
		return DLT_RAW;
	case WEIR_LT_LOOP:
		return DLT_LOOP;
	default:
		return linktype;
	}
}

/*
 * Compile expr for one DLT.  libpcap 1.10 refuses an expression that the
 * optimiser proves rejects every packet ("ip" on raw IPv6).  That is a
 * valid filter for us (one of several link types), so fall back to the
 * unoptimised program, which gives the same verdicts.
 */
int
bpfcache_compile(int dlt, const char *expr, struct bpf_program *prog,
    char *ebuf, size_t elen)
{
	pcap_t *pd;
	int rc;

	if ((pd = pcap_open_dead(dlt, BPFCACHE_SNAPLEN)) == NULL) {
		snprintf(ebuf, elen, "out of memory");
		return -ENOMEM;
	}
	rc = pcap_compile(pd, prog, expr, 1, 0);
	if (rc < 0) {
		snprintf(ebuf, elen, "%s", pcap_geterr(pd));
		rc = pcap_compile(pd, prog, expr, 0, 0);
	}
	pcap_close(pd);
	return rc < 0 ? -WEIR_ECONFIG : 0;
}

int
bpfcache_check(const char *mod, const char *key, const char *expr,
    struct weir_err *err)
{
	struct bpf_program prog;
	char ebuf[PCAP_ERRBUF_SIZE];
	const char *msg;

	if (expr[0] == '\0')
		return 0;
	if (bpfcache_compile(DLT_EN10MB, expr, &prog, ebuf, sizeof(ebuf)) < 0) {
		/* Keep libpcap's reason, drop its generic prefix. */
		msg = ebuf;
		if (strncmp(msg, "can't parse filter expression: ", 31) == 0)
			msg += 31;
		if (strcmp(key, "expr") == 0)
			return weir_seterr(err, -WEIR_ECONFIG,
			    "%s: bad expression '%s': %s", mod, expr, msg);
		return weir_seterr(err, -WEIR_ECONFIG,
		    "%s: bad expression '%s' in '%s': %s", mod, expr, key, msg);
	}
	pcap_freecode(&prog);
	return 0;
}

/* Add an entry for linktype; returns it, or NULL when the cache is full. */
static struct bpfcache_ent *
add(struct bpfcache *c, uint16_t linktype)
{
	struct bpfcache_ent *e;
	char ebuf[PCAP_ERRBUF_SIZE];

	if (c->n >= BPFCACHE_MAXLT) {
		if (!c->full) {
			c->full = 1;
			log_warn("%s: more than %d link types for '%s': "
			    "packets of link type %u and later new ones are "
			    "counted as no_filter_for_linktype", c->mod,
			    BPFCACHE_MAXLT, c->key, linktype);
		}
		return NULL;
	}
	e = &c->e[c->n];
	memset(e, 0, sizeof(*e));
	e->linktype = linktype;
	if (bpfcache_compile(bpfcache_dlt(linktype), c->expr, &e->prog, ebuf,
	    sizeof(ebuf)) == 0)
		e->state = BPFC_OK;
	else {
		e->state = BPFC_NOFILTER;
		log_warn("%s: '%s' expression '%s' does not compile for link "
		    "type %u (%s): its packets are counted as "
		    "no_filter_for_linktype", c->mod, c->key, c->expr,
		    linktype, ebuf);
	}
	c->last = c->n++;
	return e;
}

static struct bpfcache_ent *
lookup(struct bpfcache *c, uint16_t linktype)
{
	unsigned i;

	if (c->n > 0 && c->e[c->last].linktype == linktype)
		return &c->e[c->last];
	for (i = 0; i < c->n; i++)
		if (c->e[i].linktype == linktype) {
			c->last = i;
			return &c->e[i];
		}
	return NULL;
}

int
bpfcache_init(struct bpfcache *c, const char *mod, const char *key,
    const char *expr, const struct weir_ifaces *ifaces, struct weir_err *err)
{
	unsigned i;

	memset(c, 0, sizeof(*c));
	c->mod = mod;
	c->key = key;
	if ((c->expr = strdup(expr)) == NULL)
		return weir_seterr(err, -ENOMEM, "%s: out of memory", mod);
	c->all = expr[0] == '\0';
	if (c->all || ifaces == NULL)
		return 0;
	for (i = 0; i < ifaces->n && i < WEIR_MAX_IFACES; i++)
		if (lookup(c, ifaces->v[i].linktype) == NULL)
			(void)add(c, ifaces->v[i].linktype);
	return 0;
}

int
bpfcache_match(struct bpfcache *c, const struct weir_pkt *p)
{
	struct bpfcache_ent *e;

	if (c->all)
		return 1;
	/* A new link type compiles here, once (allocates, rare). */
	if ((e = lookup(c, p->linktype)) == NULL &&
	    (e = add(c, p->linktype)) == NULL)
		return -1;
	if (e->state != BPFC_OK)
		return -1;
	return bpf_filter(e->prog.bf_insns, p->data, p->wirelen,
	    p->caplen) != 0;
}

void
bpfcache_free(struct bpfcache *c)
{
	unsigned i;

	for (i = 0; i < c->n; i++)
		if (c->e[i].state == BPFC_OK)
			pcap_freecode(&c->e[i].prog);
	c->n = 0;
	free(c->expr);
	c->expr = NULL;
}
