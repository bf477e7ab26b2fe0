/*
 * test_stages.c - the filter, direction, sample, checksum and truncate
 * stages on hand-built packets and real traces.
 *
 * Independent sources: BPF verdicts are compared packet by packet with
 * what `tcpdump -r TRACE -w OUT EXPR` writes (run here; tcpdump is a
 * test dependency of scripts/install-deps.sh); checksum counts come from
 * tshark (commands in the comments); one IPv4 header is the well-known
 * example with checksum 0xb861; SipHash-2-4 is checked against the
 * paper's vectors; sampling rates against binomial 99.9% intervals.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <pcap/pcap.h>

#include "weir/csum.h"
#include "weir/decode.h"
#include "weir/module.h"
#include "capture/stages/bpfcache.h"
#include "weir/siphash.h"
#include "tests/tap.h"

extern const struct weir_module weir_mod_filter, weir_mod_direction,
    weir_mod_sample, weir_mod_checksum, weir_mod_truncate;

#define D	"tests/data/"

/* ------------------------------------------------------------------ */
/* Traces in memory                                                    */

struct trace {
	struct weir_pkt	*p;
	uint8_t		**orig;		/* pristine copy of each packet */
	unsigned	 n;
	uint16_t	 linktype;
};

static uint16_t
dlt_to_linktype(int dlt)
{
	return dlt == DLT_RAW ? WEIR_LT_RAW : (uint16_t)dlt;
}

static int
load(const char *path, struct trace *t)
{
	char ebuf[PCAP_ERRBUF_SIZE];
	struct pcap_pkthdr *h;
	const u_char *data;
	pcap_t *pd;
	unsigned cap = 0;
	uint8_t *buf;

	memset(t, 0, sizeof(*t));
	if ((pd = pcap_open_offline(path, ebuf)) == NULL) {
		printf("# %s\n", ebuf);
		return -1;
	}
	t->linktype = dlt_to_linktype(pcap_datalink(pd));
	while (pcap_next_ex(pd, &h, &data) == 1) {
		if (t->n == cap) {
			cap = cap ? cap * 2 : 256;
			t->p = realloc(t->p, cap * sizeof(*t->p));
			t->orig = realloc(t->orig, cap * sizeof(*t->orig));
		}
		/* headroom as the readers give it, and exact-size data */
		buf = malloc(WEIR_HEADROOM + h->caplen + 1);
		memcpy(buf + WEIR_HEADROOM, data, h->caplen);
		memset(&t->p[t->n], 0, sizeof(t->p[t->n]));
		t->p[t->n].data = buf + WEIR_HEADROOM;
		t->p[t->n].caplen = h->caplen;
		t->p[t->n].wirelen = h->len;
		t->p[t->n].ts = (uint64_t)h->ts.tv_sec * 1000000000u +
		    (uint64_t)h->ts.tv_usec * 1000u;
		t->p[t->n].linktype = t->linktype;
		t->orig[t->n] = malloc(h->caplen + 1);
		memcpy(t->orig[t->n], data, h->caplen);
		t->n++;
	}
	pcap_close(pd);
	return 0;
}

static void
trace_free(struct trace *t)
{
	unsigned i;

	for (i = 0; i < t->n; i++) {
		free(t->p[i].data - WEIR_HEADROOM);
		free(t->orig[i]);
	}
	free(t->p);
	free(t->orig);
	memset(t, 0, sizeof(*t));
}

/* ------------------------------------------------------------------ */
/* Running one stage                                                   */

struct run {
	uint64_t	c[WEIR_MAX_COUNTERS];
	const char	*name[WEIR_MAX_COUNTERS];
	size_t		nc;
	char		err[512];
	json_t		*eff;		/* effective config after check() */
};

static uint64_t
counter(const struct run *r, const char *name)
{
	size_t i;

	for (i = 0; i < r->nc; i++)
		if (strcmp(r->name[i], name) == 0)
			return r->c[i];
	printf("# no counter '%s'\n", name);
	return (uint64_t)-1;
}

/* check() only; returns its result, message in r->err. */
static int
check_conf(const struct weir_module *m, const char *conf,
    const char *policy, struct run *r)
{
	struct weir_err err;
	json_t *c, *pol = NULL;
	int rc;

	memset(r, 0, sizeof(*r));
	err.msg[0] = '\0';
	c = json_loads(conf, 0, NULL);
	if (policy)
		pol = json_loads(policy, 0, NULL);
	rc = m->check(c, pol, &err);
	snprintf(r->err, sizeof(r->err), "%s", err.msg);
	r->eff = c;
	json_decref(pol);
	return rc;
}

/*
 * Run stage m with conf over pk[0..n-1] in batches of bsz, as the
 * pipeline does (decode first if the stage asks).  Verdicts stay in
 * p->drop; each batch only holds packets not dropped before.
 */
static int
run_stage(const struct weir_module *m, const char *conf, const char *policy,
    struct weir_pkt *pk, unsigned n, unsigned bsz, struct weir_ifaces *ifs,
    struct run *r)
{
	struct weir_pkt *ptrs[WEIR_BATCH_MAX];
	struct weir_counter cs[WEIR_MAX_COUNTERS];
	struct weir_env env;
	struct weir_batch b;
	struct weir_err err;
	void *st = NULL;
	unsigned i, k;
	int rc;

	if ((rc = check_conf(m, conf, policy, r)) < 0) {
		printf("# check: %s\n", r->err);
		json_decref(r->eff);
		return rc;
	}
	memset(&env, 0, sizeof(env));
	env.exp_name = "test";
	env.ifaces = ifs;
	if ((rc = m->open(&st, r->eff, &env, &err)) < 0) {
		printf("# open: %s\n", err.msg);
		json_decref(r->eff);
		return rc;
	}
	if (bsz > WEIR_BATCH_MAX)
		bsz = WEIR_BATCH_MAX;
	for (i = 0; i < n; i += k) {
		b.p = ptrs;
		b.n = 0;
		for (k = 0; k < bsz && i + k < n; k++)
			if (!pk[i + k].drop)
				ptrs[b.n++] = &pk[i + k];
		if (m->needs_decode)
			for (unsigned j = 0; j < b.n; j++)
				weir_pkt_decode(b.p[j]);
		if ((rc = m->packet(st, &b)) < 0)
			break;
	}
	r->nc = m->stats(st, cs, WEIR_MAX_COUNTERS);
	for (i = 0; i < r->nc; i++) {
		r->name[i] = cs[i].name;
		r->c[i] = cs[i].value;
	}
	m->close(st, &err);
	json_decref(r->eff);
	r->eff = NULL;
	return rc;
}

static void
clear_flags(struct weir_pkt *pk, unsigned n)
{
	unsigned i;

	for (i = 0; i < n; i++) {
		pk[i].drop = 0;
		pk[i].dir = 0;
		pk[i].decoded = 0;
		pk[i].modified = 0;
		pk[i].epb_flags = 0;
	}
}

/* Restore data and lengths of a trace from its pristine copies. */
static void
restore(struct trace *t, const struct trace *orig_len)
{
	unsigned i;

	for (i = 0; i < t->n; i++) {
		t->p[i].caplen = orig_len->p[i].caplen;
		memcpy(t->p[i].data, t->orig[i], t->p[i].caplen);
	}
	clear_flags(t->p, t->n);
}

/* ------------------------------------------------------------------ */
/* tcpdump as the reference                                            */

static char tmpdir[64];

/*
 * sel[i] = 1 for each packet of t that `tcpdump -r path -w - expr`
 * writes.  Returns the number written, -1 when tcpdump refuses the
 * expression, -2 when its output is not a subsequence of the trace.
 */
static int
tcpdump_select(const char *path, const struct trace *t, const char *expr,
    uint8_t *sel)
{
	char cmd[1024], out[128], ebuf[PCAP_ERRBUF_SIZE];
	struct pcap_pkthdr *h;
	const u_char *data;
	pcap_t *pd;
	unsigned i = 0;
	int n = 0, rc;

	snprintf(out, sizeof(out), "%s/sel.pcap", tmpdir);
	snprintf(cmd, sizeof(cmd), "tcpdump -r '%s' -w '%s' '%s' "
	    "2>/dev/null", path, out, expr);
	unlink(out);
	rc = system(cmd);
	memset(sel, 0, t->n);
	if (rc != 0)
		return -1;
	if ((pd = pcap_open_offline(out, ebuf)) == NULL)
		return -1;
	while ((rc = pcap_next_ex(pd, &h, &data)) == 1) {
		for (; i < t->n; i++) {
			const struct weir_pkt *p = &t->p[i];

			if (p->caplen == h->caplen && p->wirelen == h->len &&
			    p->ts == (uint64_t)h->ts.tv_sec * 1000000000u +
			    (uint64_t)h->ts.tv_usec * 1000u &&
			    memcmp(t->orig[i], data, h->caplen) == 0)
				break;
		}
		if (i == t->n) {
			n = -2;
			break;
		}
		sel[i++] = 1;
		n++;
	}
	pcap_close(pd);
	return n;
}

static int
have_tcpdump(void)
{
	return system("tcpdump --version >/dev/null 2>&1") == 0;
}

/* ------------------------------------------------------------------ */
/* Hand-built packets                                                  */

/* Ethernet + IPv4 (the textbook header, checksum 0xb861) + UDP. */
static const uint8_t eth_ip_udp[] = {
	0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
	0x88, 0x99, 0xaa, 0xbb, 0x08, 0x00,
	0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00,
	0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00, 0x01,
	0xc0, 0xa8, 0x00, 0xc7,
	/* UDP 53 -> 1234, length 0x5f, checksum 0 (none) */
	0x00, 0x35, 0x04, 0xd2, 0x00, 0x5f, 0x00, 0x00,
};

static void
mkpkt(struct weir_pkt *p, uint8_t *buf, const uint8_t *src, size_t len,
    uint32_t wirelen)
{
	memset(p, 0, sizeof(*p));
	memcpy(buf, src, len);
	p->data = buf;
	p->caplen = (uint32_t)len;
	p->wirelen = wirelen;
	p->linktype = WEIR_LT_EN10MB;
}

/* ------------------------------------------------------------------ */
/* filter                                                              */

static const char *const filter_traces[] = {
	D "libtrace-vlan.pcap",
	D "ndpi-KakaoTalk_talk-sll.pcap",
	D "ndpi-1kxun.pcap",
	D "ndpi-ocs-rawip.pcap",
	D "ndpi-reddit-ipv6.pcap",
	D "zeek-linux_dlt_sll2.pcap",
	D "zeek-mixed-vlan-mpls.pcap",
	NULL
};

/* "host X" with X the outermost IPv4 source of the first IPv4 packet. */
static int
first_host(struct trace *t, char *buf, size_t len)
{
	const uint8_t *a;
	unsigned i;

	for (i = 0; i < t->n; i++) {
		weir_pkt_decode(&t->p[i]);
		if (t->p[i].dec.ip != WEIR_NO_LAYER && t->p[i].dec.l[
		    t->p[i].dec.ip].kind == WEIR_L_IPV4) {
			a = t->p[i].data + t->p[i].dec.l[t->p[i].dec.ip].off +
			    12;
			snprintf(buf, len, "%u.%u.%u.%u", a[0], a[1], a[2],
			    a[3]);
			return 0;
		}
	}
	return -1;
}

static void
test_filter_traces(void)
{
	static const char *const exprs[] = { "tcp", "udp port 53", "ip6",
	    "vlan and tcp", "vlan and udp", "not vlan", "ip broadcast",
	    "ether host 1:2:3:4:5:6", "ip and ip6",
	    "ip[6:2] & 0x3fff != 0 or vlan and ip[6:2] & 0x3fff != 0",
	    "tcp[tcpflags] & tcp-syn != 0", "less 100", NULL };
	char expr[128], conf[256], host[64];
	struct weir_ifaces ifs;
	struct trace t;
	struct run r;
	uint8_t *sel;
	unsigned i, k, same, kept, nexpr, pre;
	int j, ref;

	for (j = 0; filter_traces[j] != NULL; j++) {
		if (load(filter_traces[j], &t) < 0 || t.n == 0) {
			ok(0, "load %s", filter_traces[j]);
			continue;
		}
		sel = malloc(t.n);
		nexpr = 0;
		while (exprs[nexpr])
			nexpr++;
		for (k = 0; k <= nexpr + 1; k++) {
			if (k < nexpr)
				snprintf(expr, sizeof(expr), "%s", exprs[k]);
			else {
				if (first_host(&t, host, sizeof(host)) < 0)
					continue;
				snprintf(expr, sizeof(expr), k == nexpr ?
				    "host %s" : "vlan and host %s", host);
			}
			clear_flags(t.p, t.n);
			ref = tcpdump_select(filter_traces[j], &t, expr, sel);
			/* half the runs compile at open(), half lazily */
			pre = k & 1;
			memset(&ifs, 0, sizeof(ifs));
			weir_iface_add(&ifs, 0, t.linktype, 262144, 6, "x");
			snprintf(conf, sizeof(conf), "{\"expr\": \"%s\"}",
			    expr);
			if (run_stage(&weir_mod_filter, conf, NULL, t.p, t.n,
			    k % 3 == 0 ? 1024 : 7, pre ? &ifs : NULL, &r) < 0) {
				ok(0, "filter '%s' runs", expr);
				continue;
			}
			kept = 0;
			same = 0;
			for (i = 0; i < t.n; i++) {
				kept += !t.p[i].drop;
				if (ref >= 0)
					same += sel[i] == !t.p[i].drop;
			}
			if (ref == -2)
				ok(0, "%s '%s': tcpdump output not matched",
				    filter_traces[j], expr);
			else if (ref >= 0) {
				ok(same == t.n && counter(&r, "passed") ==
				    (uint64_t)ref && counter(&r,
				    "filtered_out") == t.n - (uint64_t)ref,
				    "%s '%s': %u of %u packets agree with "
				    "tcpdump (%d kept, we keep %u)",
				    filter_traces[j] + strlen(D), expr, same,
				    t.n, ref, kept);
			} else {
				/*
				 * tcpdump refuses the expression for this
				 * link type: we drop everything as
				 * no_filter_for_linktype - or, for "ip and
				 * ip6", a reject-all program.
				 */
				ok(kept == 0 && (counter(&r,
				    "no_filter_for_linktype") == t.n ||
				    strcmp(expr, "ip and ip6") == 0),
				    "%s '%s': tcpdump refuses it, we drop all "
				    "%u (no_filter_for_linktype %llu)",
				    filter_traces[j] + strlen(D), expr, t.n,
				    (unsigned long long)counter(&r,
				    "no_filter_for_linktype"));
			}
		}
		free(sel);
		trace_free(&t);
	}
}

static void
test_filter_conf(void)
{
	struct weir_pkt p;
	uint8_t buf[64];
	struct run r;
	json_t *v;

	ok(check_conf(&weir_mod_filter, "{\"expr\": \"tcp prot 80\"}",
	    NULL, &r) < 0 && strcmp(r.err, "filter: bad expression "
	    "'tcp prot 80': syntax error") == 0,
	    "syntax error caught by check(): %s", r.err);
	json_decref(r.eff);
	ok(check_conf(&weir_mod_filter, "{\"expr\": \"tcp\", \"exp\": 1}",
	    NULL, &r) < 0 && strstr(r.err, "unknown key 'exp'") != NULL,
	    "unknown key refused: %s", r.err);
	json_decref(r.eff);
	ok(check_conf(&weir_mod_filter, "{}", NULL, &r) == 0 &&
	    (v = json_object_get(r.eff, "expr")) != NULL &&
	    strcmp(json_string_value(v), "") == 0,
	    "default expr \"\" is in the effective config");
	json_decref(r.eff);

	/* Hand-built UDP packet: udp port 53 passes, tcp does not. */
	mkpkt(&p, buf, eth_ip_udp, sizeof(eth_ip_udp), 129);
	run_stage(&weir_mod_filter, "{\"expr\": \"udp port 53\"}", NULL, &p,
	    1, 1, NULL, &r);
	ok(!p.drop && counter(&r, "passed") == 1, "udp port 53 passes");
	p.drop = 0;
	run_stage(&weir_mod_filter, "{\"expr\": \"tcp\"}", NULL, &p, 1, 1,
	    NULL, &r);
	ok(p.drop && counter(&r, "filtered_out") == 1, "tcp filters it out");
	p.drop = 0;
	run_stage(&weir_mod_filter, "{}", NULL, &p, 1, 1, NULL, &r);
	ok(!p.drop, "empty expression accepts");
	/* "greater" tests wirelen, not caplen, as tcpdump does */
	p.drop = 0;
	run_stage(&weir_mod_filter, "{\"expr\": \"greater 100\"}", NULL, &p,
	    1, 1, NULL, &r);
	ok(!p.drop, "'greater 100' looks at wirelen (129), not caplen (%u)",
	    p.caplen);
	/* a link type the expression cannot compile for */
	p.drop = 0;
	p.linktype = WEIR_LT_RAW;
	run_stage(&weir_mod_filter, "{\"expr\": \"ether host 1:2:3:4:5:6\"}",
	    NULL, &p, 1, 1, NULL, &r);
	ok(p.drop && counter(&r, "no_filter_for_linktype") == 1,
	    "ether host on raw IP: no_filter_for_linktype");
}

/* ------------------------------------------------------------------ */
/* direction                                                           */

static void
test_direction(void)
{
	const char *path = D "ndpi-1kxun.pcap";
	char conf[512];
	const char *in_e = "dst net 192.168.0.0/16";
	const char *out_e = "src net 192.168.0.0/16";
	uint8_t *si, *so;
	struct weir_pkt p;
	uint8_t buf[64];
	struct trace t;
	struct run r;
	unsigned i, good = 0, amb = 0, nin = 0, nout = 0, nunk = 0;
	int a, b;

	ok(check_conf(&weir_mod_direction, "{}", NULL, &r) < 0 &&
	    strstr(r.err, "'inbound' or 'outbound' is required") != NULL,
	    "direction needs an expression: %s", r.err);
	json_decref(r.eff);
	ok(check_conf(&weir_mod_direction, "{\"inbound\": \"tcp\"}", NULL,
	    &r) == 0 && json_is_true(json_object_get(r.eff,
	    "keep_existing")), "keep_existing defaults to true");
	json_decref(r.eff);
	ok(check_conf(&weir_mod_direction, "{\"outbound\": \"src hots x\"}",
	    NULL, &r) < 0 && strstr(r.err, "in 'outbound'") != NULL,
	    "bad outbound expression named: %s", r.err);
	json_decref(r.eff);

	if (load(path, &t) < 0) {
		ok(0, "load %s", path);
		return;
	}
	/* traffic inside 192.168/16 matches both: ambiguous */
	si = malloc(t.n);
	so = malloc(t.n);
	a = tcpdump_select(path, &t, in_e, si);
	b = tcpdump_select(path, &t, out_e, so);
	clear_flags(t.p, t.n);
	snprintf(conf, sizeof(conf), "{\"inbound\": \"%s\", \"outbound\": "
	    "\"%s\"}", in_e, out_e);
	run_stage(&weir_mod_direction, conf, NULL, t.p, t.n, 100, NULL, &r);
	for (i = 0; i < t.n; i++) {
		int want = si[i] ? WEIR_DIR_IN : so[i] ? WEIR_DIR_OUT :
		    WEIR_DIR_UNKNOWN;

		good += t.p[i].dir == want && !t.p[i].drop &&
		    (t.p[i].epb_flags & 3) == (unsigned)want;
		amb += si[i] && so[i];
		nin += want == WEIR_DIR_IN;
		nout += want == WEIR_DIR_OUT;
		nunk += want == WEIR_DIR_UNKNOWN;
	}
	ok(a > 0 && b > 0 && good == t.n,
	    "direction of %u/%u packets as tcpdump's two selections say",
	    good, t.n);
	ok(counter(&r, "inbound") == nin && counter(&r, "outbound") == nout &&
	    counter(&r, "unknown") == nunk && counter(&r, "ambiguous") == amb &&
	    amb > 0, "counters in %u out %u unknown %u ambiguous %u", nin,
	    nout, nunk, amb);
	free(si);
	free(so);
	trace_free(&t);

	/* A direction from the input is kept, or replaced. */
	mkpkt(&p, buf, eth_ip_udp, sizeof(eth_ip_udp), sizeof(eth_ip_udp));
	p.epb_flags = 2;	/* outbound, from a pcapng EPB */
	run_stage(&weir_mod_direction, "{\"inbound\": \"udp\"}", NULL, &p, 1,
	    1, NULL, &r);
	ok(p.dir == WEIR_DIR_OUT && counter(&r, "existing") == 1 &&
	    counter(&r, "outbound") == 1, "keep_existing keeps EPB outbound");
	p.dir = 0;
	run_stage(&weir_mod_direction, "{\"inbound\": \"udp\", "
	    "\"keep_existing\": false}", NULL, &p, 1, 1, NULL, &r);
	ok(p.dir == WEIR_DIR_IN && (p.epb_flags & 3) == 1 &&
	    counter(&r, "inbound") == 1,
	    "keep_existing false: the expression decides, EPB flags follow");
}

/* ------------------------------------------------------------------ */
/* sample                                                              */

#define NSYN	100000

static struct weir_pkt *
synthetic(unsigned n, uint8_t *buf)
{
	struct weir_pkt *pk = calloc(n, sizeof(*pk));
	unsigned i;

	for (i = 0; i < n; i++) {
		pk[i].data = buf;
		pk[i].caplen = 14;
		pk[i].wirelen = 60;
		pk[i].linktype = WEIR_LT_EN10MB;
	}
	return pk;
}

/* |k - np| <= 3.29 sqrt(np(1-p)): the two-sided 99.9% interval. */
static int
in_binomial(uint64_t k, uint64_t n, double p)
{
	double mu = (double)n * p, sd = sqrt((double)n * p * (1 - p));

	return fabs((double)k - mu) <= 3.29 * sd;
}

static void
test_sample_count_random(void)
{
	uint8_t buf[64] = { 0 }, *s1, *s2;
	struct weir_pkt *pk;
	struct run r;
	unsigned i, exact, diff, same, k;
	const double ps[] = { 0.1, 0.5 };

	pk = synthetic(NSYN, buf);
	/* count mode, odd batch size so phases cross batches */
	run_stage(&weir_mod_sample, "{\"mode\": \"count\", \"n\": 7, "
	    "\"offset\": 3}", NULL, pk, NSYN, 333, NULL, &r);
	exact = 0;
	for (i = 0; i < NSYN; i++)
		exact += !pk[i].drop == (i % 7 == 3);
	ok(exact == NSYN && counter(&r, "kept") == (NSYN - 3 + 6) / 7,
	    "1-in-7 offset 3 keeps exactly packets 3, 10, 17... (%llu)",
	    (unsigned long long)counter(&r, "kept"));
	clear_flags(pk, NSYN);
	run_stage(&weir_mod_sample, "{\"mode\": \"count\", \"n\": 1}", NULL,
	    pk, NSYN, 1024, NULL, &r);
	ok(counter(&r, "kept") == NSYN, "1-in-1 keeps all");
	ok(check_conf(&weir_mod_sample, "{\"mode\": \"count\", \"n\": 4, "
	    "\"offset\": 4}", NULL, &r) < 0, "offset must be below n: %s",
	    r.err);
	json_decref(r.eff);
	ok(check_conf(&weir_mod_sample, "{\"mode\": \"count\", \"n\": 4, "
	    "\"p\": 0.5}", NULL, &r) < 0 && strstr(r.err, "'p' is not used")
	    != NULL, "a key of another mode is refused: %s", r.err);
	json_decref(r.eff);
	ok(check_conf(&weir_mod_sample, "{\"mode\": \"random\", \"p\": 0}",
	    NULL, &r) < 0, "p = 0 refused: %s", r.err);
	json_decref(r.eff);
	ok(check_conf(&weir_mod_sample, "{\"mode\": \"random\", \"p\": 0.25}",
	    NULL, &r) == 0 && json_integer_value(json_object_get(r.eff,
	    "seed")) == 1, "random: seed defaults to 1");
	json_decref(r.eff);

	s1 = malloc(NSYN);
	s2 = malloc(NSYN);
	for (k = 0; k < 2; k++) {
		char conf[128];

		snprintf(conf, sizeof(conf), "{\"mode\": \"random\", \"p\": "
		    "%g, \"seed\": 42}", ps[k]);
		clear_flags(pk, NSYN);
		run_stage(&weir_mod_sample, conf, NULL, pk, NSYN, 1000, NULL,
		    &r);
		for (i = 0; i < NSYN; i++)
			s1[i] = pk[i].drop;
		ok(in_binomial(counter(&r, "kept"), NSYN, ps[k]) &&
		    counter(&r, "kept") + counter(&r, "sampled_out") == NSYN,
		    "p = %g keeps %llu of %u, inside the 99.9%% interval",
		    ps[k], (unsigned long long)counter(&r, "kept"), NSYN);
		/* same seed, other batch sizes: the same packets */
		clear_flags(pk, NSYN);
		run_stage(&weir_mod_sample, conf, NULL, pk, NSYN, 17, NULL,
		    &r);
		for (same = 0, i = 0; i < NSYN; i++)
			same += s1[i] == pk[i].drop;
		ok(same == NSYN, "p = %g, seed 42 twice: same selection",
		    ps[k]);
		snprintf(conf, sizeof(conf), "{\"mode\": \"random\", \"p\": "
		    "%g, \"seed\": 43}", ps[k]);
		clear_flags(pk, NSYN);
		run_stage(&weir_mod_sample, conf, NULL, pk, NSYN, 1000, NULL,
		    &r);
		for (diff = 0, i = 0; i < NSYN; i++) {
			s2[i] = pk[i].drop;
			diff += s1[i] != s2[i];
		}
		/* two independent selections differ on 2p(1-p) of them */
		ok(in_binomial(diff, NSYN, 2 * ps[k] * (1 - ps[k])),
		    "p = %g, seed 43 differs from seed 42 on %u packets",
		    ps[k], diff);
	}
	free(s1);
	free(s2);
	free(pk);
}

/* SipHash-2-4 vectors of the paper (appendix A): key 00..0f. */
static void
test_siphash(void)
{
	uint8_t msg[15];
	uint64_t k0 = 0x0706050403020100ULL, k1 = 0x0f0e0d0c0b0a0908ULL;
	unsigned i;

	for (i = 0; i < sizeof(msg); i++)
		msg[i] = (uint8_t)i;
	ok(weir_siphash(k0, k1, msg, 15, 2, 4) == 0xa129ca6149be45e5ULL,
	    "siphash-2-4 of 00..0e is a129ca6149be45e5");
	ok(weir_siphash(k0, k1, msg, 0, 2, 4) == 0x726fdb47dd0e0e31ULL,
	    "siphash-2-4 of the empty message is 726fdb47dd0e0e31");
	{
		/* the flow table's inline word form is the same function */
		uint64_t w[5];
		unsigned wn, wi, same = 0;

		for (wn = 1; wn <= 5; wn++) {
			for (wi = 0; wi < wn; wi++)
				w[wi] = 0x0123456789abcdefULL * (wi + wn) ^ k0;
			same += weir_siphash13w(k0, k1, w, wn) ==
			    weir_siphash(k0, k1, w, 8 * wn, 1, 3);
		}
		ok(same == 5, "siphash-1-3 over words equals the byte form "
		    "for 8..40 bytes (%u of 5)", same);
	}
}

struct fv {
	struct weir_tuple	t;
	uint8_t			drop;
};

static int
fv_cmp(const void *a, const void *b)
{
	const struct fv *x = a, *y = b;

	return memcmp(&x->t, &y->t, sizeof(x->t));
}

/*
 * Every packet of a flow (same weir_pkt_tuple, no fragments) has one
 * verdict; returns the number of flows and kept flows, and of flows with
 * mixed verdicts.
 */
static void
flows(struct weir_pkt *pk, unsigned n, unsigned *nf, unsigned *kept,
    unsigned *mixed)
{
	struct fv *v = calloc(n, sizeof(*v));
	unsigned i, m = 0, j;

	for (i = 0; i < n; i++) {
		weir_pkt_decode(&pk[i]);
		if (!weir_pkt_tuple(&pk[i], &v[m].t))
			continue;
		/*
		 * The stage's documented flow key: fragments hash without
		 * ports, so they form their own group (marked by port 1).
		 */
		for (unsigned k = 0; k < pk[i].dec.n; k++)
			if (pk[i].dec.l[k].flags & WEIR_LF_FRAG) {
				v[m].t.port_a = v[m].t.port_b = 1;
				break;
			}
		v[m++].drop = pk[i].drop;
	}
	qsort(v, m, sizeof(*v), fv_cmp);
	*nf = *kept = *mixed = 0;
	for (i = 0; i < m; i = j) {
		int mix = 0;

		for (j = i + 1; j < m && fv_cmp(&v[i], &v[j]) == 0; j++)
			mix |= v[j].drop != v[i].drop;
		(*nf)++;
		*kept += !v[i].drop;
		*mixed += mix;
	}
	free(v);
}

static void
test_sample_flow(void)
{
	static const char *const traces[] = { D "ndpi-1kxun.pcap",
	    D "libtrace-fragtest-ether-ns.pcap", NULL };
	struct weir_pkt *pk;
	struct trace t;
	struct run r;
	uint8_t *bufs;
	unsigned nf, kept, mixed, i, j, n = 4, tot_f = 0, tot_k = 0;
	uint32_t x = 12345;
	char conf[128];

	for (j = 0; traces[j] != NULL; j++) {
		if (load(traces[j], &t) < 0) {
			ok(0, "load %s", traces[j]);
			continue;
		}
		for (i = 0; i < 3; i++) {
			clear_flags(t.p, t.n);
			snprintf(conf, sizeof(conf), "{\"mode\": \"flow\", "
			    "\"n\": %u, \"offset\": %u, \"seed\": %u}", n,
			    i % n, 7 + i);
			run_stage(&weir_mod_sample, conf, NULL, t.p, t.n, 256,
			    NULL, &r);
			flows(t.p, t.n, &nf, &kept, &mixed);
			ok(mixed == 0 && nf > 100,
			    "%s seed %u: all packets of each of %u flows "
			    "share a verdict (%u mixed)",
			    traces[j] + strlen(D), 7 + i, nf, mixed);
			tot_f += nf;
			tot_k += kept;
		}
		trace_free(&t);
	}
	ok(in_binomial(tot_k, tot_f, 1.0 / n), "real flows: %u of %u kept, "
	    "inside the 99.9%% interval of 1/%u", tot_k, tot_f, n);

	/*
	 * 50000 synthetic UDP flows, each a packet in both directions:
	 * the same verdict both ways, and 1/n of the flows kept.
	 */
	bufs = calloc(2 * 50000, 64);
	pk = calloc(2 * 50000, sizeof(*pk));
	for (i = 0; i < 2 * 50000; i += 2) {
		uint8_t *a = bufs + (size_t)i * 64, *b = a + 64;
		unsigned k;

		memcpy(a, eth_ip_udp, sizeof(eth_ip_udp));
		for (k = 0; k < 10; k++) {	/* addresses and ports */
			x = x * 1103515245u + 12345u;
			a[26 + k] = (uint8_t)(x >> 16);
		}
		memcpy(b, a, sizeof(eth_ip_udp));
		memcpy(b + 26, a + 30, 4);	/* swap addresses */
		memcpy(b + 30, a + 26, 4);
		memcpy(b + 34, a + 36, 2);	/* swap ports */
		memcpy(b + 36, a + 34, 2);
		mkpkt(&pk[i], a, a, sizeof(eth_ip_udp), 60);
		mkpkt(&pk[i + 1], b, b, sizeof(eth_ip_udp), 60);
	}
	run_stage(&weir_mod_sample, "{\"mode\": \"flow\", \"n\": 10}", NULL,
	    pk, 2 * 50000, 1024, NULL, &r);
	for (kept = 0, mixed = 0, i = 0; i < 2 * 50000; i += 2) {
		kept += !pk[i].drop;
		mixed += pk[i].drop != pk[i + 1].drop;
	}
	ok(mixed == 0, "both directions of a flow share a verdict (%u not)",
	    mixed);
	ok(in_binomial(kept, 50000, 0.1), "1/10 flow sampling kept %u of "
	    "50000 flows, inside the 99.9%% interval", kept);
	/* non-IP: dropped by default, kept on request */
	memcpy(bufs + 12, "\x08\x06", 2);	/* ARP ethertype */
	clear_flags(pk, 1);
	run_stage(&weir_mod_sample, "{\"mode\": \"flow\", \"n\": 1000000}",
	    NULL, pk, 1, 1, NULL, &r);
	ok(pk[0].drop && counter(&r, "non_ip") == 1, "non-IP dropped");
	clear_flags(pk, 1);
	run_stage(&weir_mod_sample, "{\"mode\": \"flow\", \"n\": 1000000, "
	    "\"non_ip\": \"keep\"}", NULL, pk, 1, 1, NULL, &r);
	ok(!pk[0].drop, "non-IP kept with non_ip keep");
	free(pk);
	free(bufs);
}

/* ------------------------------------------------------------------ */
/* checksum                                                            */

static void
test_checksum(void)
{
	struct weir_pkt p;
	uint8_t buf[64];
	struct trace t, t2;
	struct run r;
	unsigned i, dropped;

	/* the textbook IPv4 header: good, then bad */
	mkpkt(&p, buf, eth_ip_udp, sizeof(eth_ip_udp), 129);
	run_stage(&weir_mod_checksum, "{}", NULL, &p, 1, 1, NULL, &r);
	ok(counter(&r, "ip_good") == 1 && counter(&r, "ip_bad") == 0 &&
	    counter(&r, "unverifiable") == 1 && !p.drop,
	    "textbook header good; its UDP datagram is cut: unverifiable");
	buf[14 + 8] = 0x3f;	/* TTL */
	clear_flags(&p, 1);
	run_stage(&weir_mod_checksum, "{\"action\": \"drop\"}", NULL, &p, 1,
	    1, NULL, &r);
	ok(counter(&r, "ip_bad") == 1 && counter(&r, "dropped_bad") == 1 &&
	    p.drop, "changed TTL: ip_bad, dropped");
	/* UDP checksum 0 over IPv4, whole datagram present */
	mkpkt(&p, buf, eth_ip_udp, sizeof(eth_ip_udp), sizeof(eth_ip_udp));
	buf[16] = 0;
	buf[17] = 28;			/* total length 28 */
	buf[38] = 0;
	buf[39] = 8;			/* UDP length 8 */
	buf[24] = buf[25] = 0;		/* recompute the header checksum */
	{
		uint16_t c = weir_csum_fold(weir_csum_partial(buf + 14, 20,
		    0));

		buf[24] = (uint8_t)(c >> 8);
		buf[25] = (uint8_t)c;
	}
	run_stage(&weir_mod_checksum, "{}", NULL, &p, 1, 1, NULL, &r);
	ok(counter(&r, "udp_zero") == 1 && counter(&r, "ip_good") == 1,
	    "UDP checksum 0 over IPv4 counts as udp_zero");

	/*
	 * ndpi-ocs-rawip.pcap, raw IP: every checksum is good.  tshark -o
	 * ip.check_checksum:TRUE -o tcp.check_checksum:TRUE -o
	 * udp.check_checksum:TRUE -T fields -e ip.checksum.status -e
	 * tcp.checksum.status -e udp.checksum.status | sort | uniq -c
	 * gives 938 "1 1" (TCP) and 8 "1 _ 1" (UDP).
	 */
	if (load(D "ndpi-ocs-rawip.pcap", &t) == 0 &&
	    load(D "ndpi-ocs-rawip.pcap", &t2) == 0) {
		run_stage(&weir_mod_checksum, "{}", NULL, t.p, t.n, 1024, NULL,
		    &r);
		ok(counter(&r, "ip_good") == 946 && counter(&r, "ip_bad") == 0 &&
		    counter(&r, "l4_good") == 946 && counter(&r, "l4_bad") == 0
		    && counter(&r, "unverifiable") == 0,
		    "ocs-rawip: 946 IP and 946 TCP/UDP checksums good "
		    "(tshark)");
		/* corrupt: IP header of packets 0..9, payload of 10..29 */
		for (i = 0; i < 10; i++)
			t.p[i].data[10] ^= 0x01;	/* IP checksum */
		for (i = 10; i < 30; i++)
			t.p[i].data[t.p[i].caplen - 1] ^= 0x40;
		clear_flags(t.p, t.n);
		run_stage(&weir_mod_checksum, "{\"action\": \"drop\"}", NULL,
		    t.p, t.n, 1024, NULL, &r);
		for (dropped = 0, i = 0; i < t.n; i++)
			dropped += t.p[i].drop && i < 30;
		ok(counter(&r, "ip_bad") == 10 && counter(&r, "l4_bad") == 20 &&
		    counter(&r, "l4_good") == 926 && counter(&r,
		    "dropped_bad") == 30 && dropped == 30,
		    "10 IP and 20 payload corruptions found and dropped");
		/* cut the last byte off: the datagrams are unverifiable */
		restore(&t, &t2);
		for (i = 0; i < t.n; i++)
			t.p[i].caplen--;
		run_stage(&weir_mod_checksum, "{}", NULL, t.p, t.n, 1024, NULL,
		    &r);
		ok(counter(&r, "unverifiable") == 946 && counter(&r,
		    "l4_good") == 0 && counter(&r, "ip_good") == 946,
		    "one byte short: every L4 checksum unverifiable");
		trace_free(&t);
		trace_free(&t2);
	} else
		ok(0, "load ocs-rawip");

	/*
	 * ndpi-nintendo.pcap: tshark (as above plus -e icmp.checksum.status)
	 * gives 869 UDP, 97 TCP and 30 ICMP errors good; 4 frames are not
	 * IP.  The quoted IPv4 headers of the errors are not counted.
	 */
	if (load(D "ndpi-nintendo.pcap", &t) == 0) {
		run_stage(&weir_mod_checksum, "{}", NULL, t.p, t.n, 1024, NULL,
		    &r);
		ok(counter(&r, "ip_good") == 996 && counter(&r, "l4_good") ==
		    996 && counter(&r, "ip_bad") + counter(&r, "l4_bad") == 0,
		    "nintendo: 996 IP and 996 UDP/TCP/ICMP good (tshark)");
		trace_free(&t);
	} else
		ok(0, "load nintendo");
	/* zeek-communityid-icmp6.pcap: tshark: 49 ICMPv6 checksums good */
	if (load(D "zeek-communityid-icmp6.pcap", &t) == 0) {
		run_stage(&weir_mod_checksum, "{}", NULL, t.p, t.n, 1024, NULL,
		    &r);
		ok(counter(&r, "l4_good") == 49 && counter(&r, "l4_bad") == 0,
		    "icmp6: 49 ICMPv6 checksums good (tshark)");
		trace_free(&t);
	} else
		ok(0, "load icmp6");
}

/* ------------------------------------------------------------------ */
/* truncate                                                            */

/* not ip.flags_frag: it turns fragments into whole datagrams */
static const char *const all_fields = "[\"ip.tos\", \"ip.id\", "
    "\"ip.ttl\", \"ip.options\", \"ipv6.tclass\", "
    "\"ipv6.flowlabel\", \"ipv6.hlim\", \"tcp.seq\", \"tcp.ack\", "
    "\"tcp.window\", \"tcp.urgptr\", \"tcp.options\"]";

struct csc {
	uint64_t	ip_good, ip_bad, l4_good, l4_bad;
};

static void
count_csums(struct trace *t, struct csc *c)
{
	struct run r;
	unsigned i;

	for (i = 0; i < t->n; i++) {
		t->p[i].drop = 0;
		t->p[i].decoded = 0;
	}
	run_stage(&weir_mod_checksum, "{}", NULL, t->p, t->n, 1024, NULL, &r);
	c->ip_good = counter(&r, "ip_good");
	c->ip_bad = counter(&r, "ip_bad");
	c->l4_good = counter(&r, "l4_good");
	c->l4_bad = counter(&r, "l4_bad");
}

/*
 * Verify every UDP checksum (outer tunnel ones too, which the checksum
 * stage leaves alone) of IPv4 packets whose datagram is whole: *good of
 * *total nonzero ones.
 */
static void
udp_sums(struct trace *t, unsigned *good, unsigned *total)
{
	unsigned i, k;
	uint8_t ph[12];

	*good = *total = 0;
	for (i = 0; i < t->n; i++) {
		struct weir_pkt *p = &t->p[i];
		const struct weir_decoded *d = &p->dec;

		p->decoded = 0;
		weir_pkt_decode(p);
		for (k = 1; k < d->n; k++) {
			const struct weir_layer *u = &d->l[k], *ip = &d->l[k - 1];
			const uint8_t *b = p->data;
			uint16_t ulen;

			if (u->kind != WEIR_L_UDP || ip->kind != WEIR_L_IPV4 ||
			    (u->flags & WEIR_LF_QUOTED) || (ip->flags &
			    (WEIR_LF_FRAG | WEIR_LF_TRUNC)))
				continue;
			ulen = (uint16_t)(b[u->off + 4] << 8 | b[u->off + 5]);
			if ((b[u->off + 6] | b[u->off + 7]) == 0 ||
			    u->off + ulen > p->caplen)
				continue;
			memcpy(ph, b + ip->off + 12, 8);
			ph[8] = 0;
			ph[9] = 17;
			ph[10] = (uint8_t)(ulen >> 8);
			ph[11] = (uint8_t)ulen;
			(*total)++;
			*good += weir_csum_fold(weir_csum_partial(b + u->off,
			    ulen, weir_csum_partial(ph, 12, 0))) == 0;
		}
	}
}

/*
 * zeek-vxlan-encapsulated-http.pcap: tshark says the 12 outer UDP
 * checksums (VXLAN, nonzero) and the inner TCP ones are all good.
 * Rewriting the inner packet must carry the change out to the outer UDP
 * checksum.
 */
static void
test_truncate_vxlan(void)
{
	struct trace t, t2;
	struct csc before, after;
	struct run r;
	unsigned g, n, k;
	char conf[1024];

	if (load(D "zeek-vxlan-encapsulated-http.pcap", &t) < 0 ||
	    load(D "zeek-vxlan-encapsulated-http.pcap", &t2) < 0) {
		ok(0, "load vxlan");
		return;
	}
	udp_sums(&t, &g, &n);
	ok(n == 12 && g == 12, "vxlan: 12 outer UDP checksums good (tshark)");
	count_csums(&t, &before);
	for (k = 0; k < 3; k++) {
		restore(&t, &t2);
		if (k < 2)
			snprintf(conf, sizeof(conf), "{\"zero_fields\": %s, "
			    "\"zero_all_layers\": %s}", all_fields,
			    k ? "true" : "false");
		else
			snprintf(conf, sizeof(conf), "{\"zero_payload\": "
			    "true}");
		run_stage(&weir_mod_truncate, conf, NULL, t.p, t.n, 1024,
		    NULL, &r);
		udp_sums(&t, &g, &n);
		count_csums(&t, &after);
		ok(n == 12 && g == 12 && after.l4_good == before.l4_good &&
		    after.ip_good == before.ip_good && after.l4_bad == 0 &&
		    after.ip_bad == 0 && (k == 2 ? counter(&r,
		    "zeroed_payload") : counter(&r, "zeroed_fields")) > 0,
		    "vxlan %s: %u/%u outer UDP, %llu inner TCP, %llu IP "
		    "checksums good", k == 0 ? "inner fields" : k == 1 ?
		    "all layers' fields" : "zero_payload", g, n,
		    (unsigned long long)after.l4_good,
		    (unsigned long long)after.ip_good);
	}
	trace_free(&t);
	trace_free(&t2);
}

static void
test_truncate_conf(void)
{
	struct run r;

	ok(check_conf(&weir_mod_truncate, "{}", "{\"max_snaplen\": 96}", &r)
	    == 0 && json_integer_value(json_object_get(r.eff, "snaplen")) ==
	    96, "policy max_snaplen 96 merged into an absent snaplen");
	json_decref(r.eff);
	ok(check_conf(&weir_mod_truncate, "{\"snaplen\": 64}",
	    "{\"max_snaplen\": 96}", &r) == 0 && json_integer_value(
	    json_object_get(r.eff, "snaplen")) == 64, "snaplen 64 under 96");
	json_decref(r.eff);
	ok(check_conf(&weir_mod_truncate, "{\"snaplen\": 1500}",
	    "{\"max_snaplen\": 96}", &r) == -WEIR_EPOLICY &&
	    strstr(r.err, "policy rule 'max_snaplen'") != NULL,
	    "snaplen over the policy refused: %s", r.err);
	json_decref(r.eff);
	ok(check_conf(&weir_mod_truncate, "{\"snaplen\": 300000}", NULL, &r)
	    < 0, "snaplen over 262144 refused: %s", r.err);
	json_decref(r.eff);
	ok(check_conf(&weir_mod_truncate, "{\"zero_fields\": [\"ip.tos\", "
	    "\"ip.tso\"]}", NULL, &r) < 0 && strstr(r.err, "'ip.tso'"),
	    "unknown field refused: %s", r.err);
	json_decref(r.eff);
	ok(check_conf(&weir_mod_truncate, "{\"snap\": 1}", NULL, &r) < 0,
	    "unknown key refused: %s", r.err);
	json_decref(r.eff);
	ok(check_conf(&weir_mod_truncate, "{}", NULL, &r) == 0 &&
	    json_is_false(json_object_get(r.eff, "headers_only")) &&
	    json_is_array(json_object_get(r.eff, "zero_fields")) &&
	    strcmp(json_string_value(json_object_get(r.eff, "checksums")),
	    "update") == 0, "defaults are in the effective config");
	json_decref(r.eff);
}

static void
test_truncate_trace(const char *path)
{
	const char *name = path + strlen(D);
	struct trace t, t2;
	struct csc before, after;
	struct run r;
	uint32_t *hend;
	unsigned i, j, good, k, zf, outer, oc, quoted, qgood;
	char conf[1024];

	if (load(path, &t) < 0 || load(path, &t2) < 0) {
		ok(0, "load %s", path);
		return;
	}
	hend = calloc(t.n, sizeof(*hend));
	for (i = 0; i < t.n; i++) {
		weir_pkt_decode(&t.p[i]);
		hend[i] = t.p[i].dec.hdr_end;
	}
	count_csums(&t, &before);

	/* snaplen */
	restore(&t, &t2);
	run_stage(&weir_mod_truncate, "{\"snaplen\": 64}", NULL, t.p, t.n,
	    1024, NULL, &r);
	for (good = 0, k = 0, i = 0; i < t.n; i++) {
		uint32_t want = t2.p[i].caplen < 64 ? t2.p[i].caplen : 64;

		good += t.p[i].caplen == want && t.p[i].wirelen ==
		    t2.p[i].wirelen && memcmp(t.p[i].data, t.orig[i], want) ==
		    0 && t.p[i].modified == (want < t2.p[i].caplen);
		k += want < t2.p[i].caplen;
	}
	ok(good == t.n && counter(&r, "truncated") == k,
	    "%s snaplen 64: %u/%u right, %u cut", name, good, t.n, k);

	/* headers_only, and with a smaller snaplen */
	restore(&t, &t2);
	run_stage(&weir_mod_truncate, "{\"headers_only\": true}", NULL, t.p,
	    t.n, 1024, NULL, &r);
	for (good = 0, i = 0; i < t.n; i++)
		good += t.p[i].caplen == hend[i] && t.p[i].wirelen ==
		    t2.p[i].wirelen && memcmp(t.p[i].data, t.orig[i],
		    hend[i]) == 0;
	ok(good == t.n, "%s headers_only: caplen = hdr_end for %u/%u", name,
	    good, t.n);
	restore(&t, &t2);
	run_stage(&weir_mod_truncate, "{\"headers_only\": true, \"snaplen\": "
	    "40}", NULL, t.p, t.n, 1024, NULL, &r);
	for (good = 0, i = 0; i < t.n; i++)
		good += t.p[i].caplen == (hend[i] < 40 ? hend[i] : 40);
	ok(good == t.n, "%s headers_only + snaplen 40: the smaller wins",
	    name);

	/* zero_payload: lengths kept, zeros after hdr_end */
	restore(&t, &t2);
	run_stage(&weir_mod_truncate, "{\"zero_payload\": true, "
	    "\"checksums\": \"leave\"}", NULL, t.p, t.n, 1024, NULL, &r);
	for (good = 0, k = 0, i = 0; i < t.n; i++) {
		unsigned z = 1;

		for (j = hend[i]; j < t.p[i].caplen; j++)
			z &= t.p[i].data[j] == 0;
		good += z && t.p[i].caplen == t2.p[i].caplen &&
		    t.p[i].wirelen == t2.p[i].wirelen &&
		    memcmp(t.p[i].data, t.orig[i], hend[i]) == 0;
		k += hend[i] < t2.p[i].caplen;
	}
	ok(good == t.n && counter(&r, "zeroed_payload") == k,
	    "%s zero_payload: %u/%u keep lengths and headers, zero the rest",
	    name, good, t.n);
	count_csums(&t, &after);
	ok(before.l4_good == 0 || after.l4_good < before.l4_good,
	    "%s zero_payload, checksums leave: %llu of %llu still verify",
	    name, (unsigned long long)after.l4_good,
	    (unsigned long long)before.l4_good);
	/* and with checksums updated every sum verifies as before */
	restore(&t, &t2);
	run_stage(&weir_mod_truncate, "{\"zero_payload\": true}", NULL, t.p,
	    t.n, 1024, NULL, &r);
	for (good = 0, i = 0; i < t.n; i++) {
		unsigned z = 1;

		for (j = hend[i]; j < t.p[i].caplen; j++)
			z &= t.p[i].data[j] == 0;
		good += z;
	}
	count_csums(&t, &after);
	ok(good == t.n && after.ip_bad == before.ip_bad &&
	    after.l4_bad == before.l4_bad && after.l4_good == before.l4_good,
	    "%s zero_payload, checksums update: l4 good %llu bad %llu, as "
	    "before", name, (unsigned long long)after.l4_good,
	    (unsigned long long)after.l4_bad);

	/* zero_fields on every layer: the fields are 0, sums still ok */
	for (k = 0; k < 2; k++) {
		restore(&t, &t2);
		snprintf(conf, sizeof(conf), "{\"zero_fields\": %s, "
		    "\"zero_all_layers\": %s}", all_fields,
		    k ? "true" : "false");
		run_stage(&weir_mod_truncate, conf, NULL, t.p, t.n, 1024,
		    NULL, &r);
		for (zf = 0, good = 0, i = 0; i < t.n; i++) {
			const struct weir_decoded *d;
			const struct weir_layer *l;
			const uint8_t *b;

			t.p[i].decoded = 0;
			weir_pkt_decode(&t.p[i]);
			d = &t.p[i].dec;
			if (d->inner_ip == WEIR_NO_LAYER)
				continue;
			l = &d->l[d->inner_ip];
			b = t.p[i].data + l->off;
			if (l->flags & WEIR_LF_TRUNC)
				continue;
			zf++;
			if (l->kind == WEIR_L_IPV4)
				good += b[1] == 0 && b[4] == 0 && b[5] == 0 &&
				    b[8] == 0;
			else
				good += (b[0] & 0x0f) == 0 && b[1] == 0 &&
				    b[2] == 0 && b[3] == 0 && b[7] == 0;
		}
		ok(zf > 0 && good == zf && counter(&r, "zeroed_fields") >= zf,
		    "%s zero_fields%s: the IP fields are 0 in %u/%u", name,
		    k ? " (all layers)" : "", good, zf);
		/*
		 * Outer IP headers of tunnels: untouched unless all layers.
		 * Quoted IPv4 headers (all good in these traces, tshark):
		 * still good after zeroing.
		 */
		for (outer = 0, oc = 0, quoted = 0, qgood = 0, i = 0; i < t.n;
		    i++) {
			const struct weir_decoded *d = &t.p[i].dec;
			const struct weir_layer *l;

			for (j = 0; j < d->n; j++) {
				l = &d->l[j];
				if (l->flags & WEIR_LF_TRUNC)
					continue;
				if ((l->kind == WEIR_L_IPV4 || l->kind ==
				    WEIR_L_IPV6) && j < d->inner_ip) {
					outer++;
					oc += memcmp(t.p[i].data + l->off,
					    t.orig[i] + l->off, l->len) != 0;
				}
				if (l->kind == WEIR_L_IPV4 &&
				    (l->flags & WEIR_LF_QUOTED)) {
					quoted++;
					qgood += weir_csum_fold(
					    weir_csum_partial(t.p[i].data +
					    l->off, l->len, 0)) == 0 &&
					    (!k || t.p[i].data[l->off + 8] == 0);
				}
			}
		}
		if (outer > 0)
			ok(k ? oc == outer : oc == 0, "%s zero_fields%s: %u of "
			    "%u outer IP headers changed", name, k ?
			    " (all layers)" : "", oc, outer);
		if (quoted > 0)
			ok(qgood == quoted, "%s zero_fields%s: %u/%u quoted "
			    "IPv4 header checksums good", name, k ?
			    " (all layers)" : "", qgood, quoted);
		count_csums(&t, &after);
		ok(after.ip_bad == before.ip_bad && after.l4_bad ==
		    before.l4_bad && after.l4_good == before.l4_good &&
		    after.ip_good == before.ip_good,
		    "%s zero_fields%s: checksums verify as before (ip %llu/%llu"
		    ", l4 %llu/%llu good/bad)", name, k ? " (all layers)" : "",
		    (unsigned long long)after.ip_good,
		    (unsigned long long)after.ip_bad,
		    (unsigned long long)after.l4_good,
		    (unsigned long long)after.l4_bad);
	}
	/* blank: the changed checksums are 0 (every IPv4 layer) */
	restore(&t, &t2);
	run_stage(&weir_mod_truncate, "{\"zero_fields\": [\"ip.ttl\"], "
	    "\"checksums\": \"blank\", \"zero_all_layers\": true}", NULL,
	    t.p, t.n, 1024, NULL, &r);
	for (zf = 0, good = 0, i = 0; i < t.n; i++) {
		const struct weir_decoded *d = &t.p[i].dec;

		weir_pkt_decode(&t.p[i]);
		for (k = 0; k < d->n; k++) {
			const struct weir_layer *l = &d->l[k];

			if (l->kind != WEIR_L_IPV4 ||
			    (l->flags & WEIR_LF_TRUNC))
				continue;
			zf++;
			good += t.p[i].data[l->off + 10] == 0 &&
			    t.p[i].data[l->off + 11] == 0 &&
			    t.p[i].data[l->off + 8] == 0;
		}
	}
	if (zf > 0)
		ok(good == zf, "%s checksums blank: %u/%u IPv4 checksums "
		    "are 0", name, good, zf);
	free(hend);
	trace_free(&t);
	trace_free(&t2);
}

static void
test_truncate_hand(void)
{
	/* IPv4 with a 4-byte option (NOP NOP NOP EOL) + TCP with options */
	uint8_t pkt[] = {
		0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0x08, 0x00,
		0x46, 0x10, 0x00, 0x38, 0x12, 0x34, 0x40, 0x00,
		0x40, 0x06, 0x00, 0x00, 10, 0, 0, 1, 10, 0, 0, 2,
		0x01, 0x01, 0x01, 0x00,
		/* TCP: ports, seq, ack, doff 6, flags, window, csum, urg */
		0x30, 0x39, 0x00, 0x50, 0xde, 0xad, 0xbe, 0xef,
		0x00, 0x00, 0x00, 0x01, 0x60, 0x18, 0x72, 0x10,
		0x00, 0x00, 0x00, 0x07, 0x02, 0x04, 0x05, 0xb4,
		/* payload */
		'h', 'e', 'l', 'l', 'o', '!', '!', '!',
	};
	uint8_t buf[sizeof(pkt)], ph[12];
	struct weir_pkt p;
	struct run r;
	uint16_t c;
	uint32_t s;

	/* fill in both checksums with weir_csum (RFC 1071) */
	c = weir_csum_fold(weir_csum_partial(pkt + 14, 24, 0));
	pkt[24] = (uint8_t)(c >> 8);
	pkt[25] = (uint8_t)c;
	memcpy(ph, pkt + 26, 8);
	ph[8] = 0;
	ph[9] = 6;
	ph[10] = 0;
	ph[11] = 32;
	s = weir_csum_partial(ph, 12, 0);
	c = weir_csum_fold(weir_csum_partial(pkt + 38, 32, s));
	pkt[54] = (uint8_t)(c >> 8);
	pkt[55] = (uint8_t)c;

	mkpkt(&p, buf, pkt, sizeof(pkt), sizeof(pkt));
	run_stage(&weir_mod_checksum, "{}", NULL, &p, 1, 1, NULL, &r);
	ok(counter(&r, "ip_good") == 1 && counter(&r, "l4_good") == 1,
	    "hand-built IPv4+options/TCP+options: checksums good");

	mkpkt(&p, buf, pkt, sizeof(pkt), sizeof(pkt));
	run_stage(&weir_mod_truncate, "{\"zero_fields\": [\"ip.tos\", "
	    "\"ip.id\", \"ip.ttl\", \"ip.flags_frag\", \"ip.options\", "
	    "\"tcp.seq\", "
	    "\"tcp.window\", \"tcp.urgptr\", \"tcp.options\"]}", NULL, &p, 1,
	    1, NULL, &r);
	ok(buf[15] == 0 && buf[18] == 0 && buf[19] == 0 && buf[22] == 0 &&
	    buf[20] == 0 && buf[21] == 0 &&
	    memcmp(buf + 34, "\0\0\0\0", 4) == 0 &&
	    memcmp(buf + 42, "\0\0\0\0", 4) == 0 &&
	    memcmp(buf + 46, pkt + 46, 4) == 0 &&	/* ack kept */
	    buf[52] == 0 && buf[53] == 0 && buf[56] == 0 && buf[57] == 0 &&
	    memcmp(buf + 58, "\0\0\0\0", 4) == 0 &&
	    memcmp(buf + 62, "hello!!!", 8) == 0 && p.caplen == sizeof(pkt),
	    "named fields zeroed, others kept");
	clear_flags(&p, 1);
	run_stage(&weir_mod_checksum, "{}", NULL, &p, 1, 1, NULL, &r);
	ok(counter(&r, "ip_good") == 1 && counter(&r, "l4_good") == 1,
	    "after zeroing: IPv4 and TCP checksums updated");

	mkpkt(&p, buf, pkt, sizeof(pkt), sizeof(pkt));
	run_stage(&weir_mod_truncate, "{\"headers_only\": true}", NULL, &p, 1,
	    1, NULL, &r);
	ok(p.caplen == 62 && p.wirelen == sizeof(pkt) && p.modified,
	    "headers_only cuts after the TCP options (62)");
	mkpkt(&p, buf, pkt, sizeof(pkt), sizeof(pkt));
	run_stage(&weir_mod_truncate, "{\"zero_payload\": true}", NULL, &p, 1,
	    1, NULL, &r);
	ok(memcmp(buf + 62, "\0\0\0\0\0\0\0\0", 8) == 0 &&
	    p.caplen == sizeof(pkt), "zero_payload zeroes the 8 payload bytes");
	clear_flags(&p, 1);
	run_stage(&weir_mod_checksum, "{}", NULL, &p, 1, 1, NULL, &r);
	ok(counter(&r, "l4_good") == 1, "and the TCP checksum still verifies");
	/*
	 * ICMP time exceeded quoting IPv4 + the first 8 bytes of TCP, then
	 * 12 bytes of Ethernet padding: the quoted TCP header ends at the
	 * ICMP message's end, so tcp.window and the quoted TCP checksum
	 * would fall into the padding, which must stay as it is.
	 */
	{
		uint8_t ic[] = {
			0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0x08, 0x00,
			0x45, 0x00, 0x00, 0x38, 0xab, 0xcd, 0x00, 0x00,
			0xff, 0x01, 0x00, 0x00, 10, 0, 0, 254, 10, 0, 0, 1,
			0x0b, 0x00, 0x00, 0x00, 0, 0, 0, 0,
			0x45, 0x00, 0x00, 0x3c, 0x11, 0x22, 0x40, 0x00,
			0x01, 0x06, 0x33, 0x44, 10, 0, 0, 1, 8, 8, 8, 8,
			0x30, 0x39, 0x00, 0x50, 0xde, 0xad, 0xbe, 0xef,
			0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa,
			0xaa, 0xaa, 0xaa, 0xaa,
		};
		uint8_t ib[sizeof(ic)];

		c = weir_csum_fold(weir_csum_partial(ic + 14, 20, 0));
		ic[24] = (uint8_t)(c >> 8);
		ic[25] = (uint8_t)c;
		ic[52] = ic[53] = 0;
		c = weir_csum_fold(weir_csum_partial(ic + 42, 20, 0));
		ic[52] = (uint8_t)(c >> 8);
		ic[53] = (uint8_t)c;
		c = weir_csum_fold(weir_csum_partial(ic + 34, 36, 0));
		ic[36] = (uint8_t)(c >> 8);
		ic[37] = (uint8_t)c;
		mkpkt(&p, ib, ic, sizeof(ic), sizeof(ic));
		run_stage(&weir_mod_truncate, "{\"zero_fields\": [\"tcp.seq\", "
		    "\"tcp.window\", \"ip.id\"], \"zero_all_layers\": true}",
		    NULL, &p, 1, 1, NULL, &r);
		ok(memcmp(ib + 66, "\0\0\0\0", 4) == 0 &&
		    memcmp(ib + 70, ic + 70, 12) == 0 &&
		    ib[46] == 0 && ib[47] == 0 && ib[18] == 0 && ib[19] == 0,
		    "quoted TCP: seq zeroed, the padding after the quote kept");
		clear_flags(&p, 1);
		run_stage(&weir_mod_checksum, "{}", NULL, &p, 1, 1, NULL, &r);
		ok(counter(&r, "ip_good") == 1 && counter(&r, "l4_good") == 1,
		    "ICMP error: IPv4 and ICMP checksums still good");
		ok(weir_csum_fold(weir_csum_partial(ib + 42, 20, 0)) == 0,
		    "quoted IPv4 header checksum updated");
	}
	/* ipv6 fields' masks: tclass and flow label share byte 1 */
	{
		uint8_t v6[14 + 40] = { [12] = 0x86, [13] = 0xdd,
		    [14] = 0x6a, [15] = 0xbc, [16] = 0xde, [17] = 0xf1,
		    [18] = 0, [19] = 0, [20] = 59, [21] = 64 };

		mkpkt(&p, buf, v6, sizeof(v6), sizeof(v6));
		run_stage(&weir_mod_truncate, "{\"zero_fields\": "
		    "[\"ipv6.tclass\"]}", NULL, &p, 1, 1, NULL, &r);
		ok(buf[14] == 0x60 && buf[15] == 0x0c && buf[16] == 0xde &&
		    buf[21] == 64, "ipv6.tclass zeroes only the 8 class bits");
		mkpkt(&p, buf, v6, sizeof(v6), sizeof(v6));
		run_stage(&weir_mod_truncate, "{\"zero_fields\": "
		    "[\"ipv6.flowlabel\", \"ipv6.hlim\"]}", NULL, &p, 1, 1,
		    NULL, &r);
		ok(buf[14] == 0x6a && buf[15] == 0xb0 && buf[16] == 0 &&
		    buf[17] == 0 && buf[21] == 0,
		    "ipv6.flowlabel zeroes the 20 label bits, hlim the limit");
	}
}

int
main(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/weir-stages.XXXXXX");
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	test_filter_conf();
	if (have_tcpdump()) {
		test_filter_traces();
		test_direction();
	} else
		ok(0, "tcpdump is needed (scripts/install-deps.sh)");
	test_siphash();
	test_sample_count_random();
	test_sample_flow();
	test_checksum();
	test_truncate_conf();
	test_truncate_hand();
	test_truncate_trace(D "ndpi-ocs-rawip.pcap");
	test_truncate_trace(D "ndpi-nintendo.pcap");
	test_truncate_trace(D "ndpi-6in4tunnel.pcap");
	test_truncate_trace(D "libtrace-vlan.pcap");
	test_truncate_trace(D "zeek-communityid-icmp6.pcap");
	test_truncate_trace(D "zeek-vxlan-encapsulated-http.pcap");
	test_truncate_vxlan();
	{
		char cmd[128];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
		if (system(cmd) != 0)
			printf("# could not remove %s\n", tmpdir);
	}
	return tap_done();
}
