/*
 * test_bpfverdict.c - the verdict cache gives exactly the verdicts of
 * bpf_filter() (through stages/bpfcache.c, the filter stage's path, which
 * test_stages checks against tcpdump) for every packet of real traces,
 * for truncated and byte-mutated copies of every packet, with a big and
 * a tiny cache, with one expression at a time and all at once, and
 * across changes of the set.  Also: which expressions are cacheable.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pcap/pcap.h>

#include "tests/tap.h"
#include "weir/log.h"
#include "capture/bpfverdict.h"
#include "capture/stages/bpfcache.h"

static const char *const traces[] = {
	"tests/data/ndpi-1kxun.pcap",
	"tests/data/libtrace-vlan.pcap",
	"tests/data/zeek-echo-connections.pcap",
	"tests/data/ndpi-reddit-ipv6.pcap",
	"tests/data/ndpi-dns_fragmented.pcap",
	"tests/data/ndpi-KakaoTalk_talk-sll.pcap",
	NULL
};

static const char *const exprs[] = {
	"",
	"ip",
	"ip6",
	"arp",
	"tcp",
	"udp",
	"icmp",
	"icmp6",
	"ip proto 47",
	"host 192.168.2.126",
	"host 161.117.13.29",
	"src host 192.168.115.8",
	"dst host 106.187.35.246",
	"host 10.24.82.188",
	"host 1.201.1.174 and udp",
	"host 127.0.0.1",
	"host 131.151.32.129",
	"host 194.247.5.14",
	"host 2a00:1450:4007:805::2002",
	"ip6 host 2a01:cb01:2049:8b07:991d:ec85:28df:f629",
	"net 192.168.0.0/16",
	"net 106.187.0.0/16",
	"src net 10.0.0.0/8",
	"net 131.151.32.0/24",
	"net 2001:470:1f0b:16b0::/64",
	"net 2a00:1450::/32",
	"port 80",
	"tcp port 80",
	"udp port 53",
	"port 443",
	"tcp port 7000",
	"src port 11320",
	"dst port 6000",
	"port 23044 or port 23046",
	"portrange 1000-2000",
	"tcp portrange 38000-38300",
	"udp portrange 50000-65535",
	"ip6 and tcp port 80",
	"ip6 and tcp port 443",
	"ip6 and udp",
	"vlan",
	"vlan 10",
	"vlan 104 and tcp",
	"vlan and host 131.151.32.21",
	"tcp[13] & 2 != 0",
	"tcp[tcpflags] & (tcp-syn|tcp-fin) != 0",
	"tcp[tcpflags] & tcp-rst != 0",
	"ip[6:2] & 0x1fff != 0",
	"ip[6] & 0x20 != 0",
	"ip[8] < 64",
	"ip[1] & 0xfc == 0",
	"udp[8:2] = 0",
	"ether host 00:0c:29:7c:a4:cb",
	"ether broadcast",
	"ether proto 0x8137",
	"broadcast or multicast",
	"ip broadcast",
	"host 192.168.2.126 and tcp port 80",
	"not tcp",
	"tcp and not port 80 and not port 443",
	"greater 100",
	"less 200",
	"len > 1000",
	"ip6 protochain 6",
	"ip6 proto 58",
	"tcp and (tcp[tcpflags] & tcp-push != 0)",
	"icmp[icmptype] = icmp-echo",
	NULL
};

#define NEXPR	(sizeof(exprs) / sizeof(exprs[0]) - 1)

struct pk {
	uint8_t		*data;
	uint32_t	 caplen, wirelen;
	uint16_t	 linktype;
};

struct trace {
	struct pk	*p;
	size_t		 n;
};

static int
load(const char *path, struct trace *t)
{
	char ebuf[PCAP_ERRBUF_SIZE];
	struct pcap_pkthdr *h;
	const u_char *d;
	pcap_t *pd;
	size_t cap = 0;

	memset(t, 0, sizeof(*t));
	if ((pd = pcap_open_offline(path, ebuf)) == NULL)
		return -1;
	while (pcap_next_ex(pd, &h, &d) == 1) {
		if (t->n == cap) {
			cap = cap ? cap * 2 : 1024;
			t->p = realloc(t->p, cap * sizeof(*t->p));
		}
		t->p[t->n].data = malloc(h->caplen + 1);
		memcpy(t->p[t->n].data, d, h->caplen);
		t->p[t->n].caplen = h->caplen;
		t->p[t->n].wirelen = h->len;
		/* these files' DLTs equal their LINKTYPEs */
		t->p[t->n].linktype = (uint16_t)pcap_datalink(pd);
		t->n++;
	}
	pcap_close(pd);
	return 0;
}

static void
trace_free(struct trace *t)
{
	size_t i;

	for (i = 0; i < t->n; i++)
		free(t->p[i].data);
	free(t->p);
}

/* Reference verdicts, one bpfcache per expression. */
static struct bpfcache refs[NEXPR];

static uint64_t rnd_state = 0x1234567;

static uint64_t
rnd(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 7;
	rnd_state ^= rnd_state << 17;
	return rnd_state;
}

/*
 * Compare v's verdicts for the slots in map (slot -> expression index,
 * -1: empty) with the references on one packet; returns mismatches.
 */
static unsigned
compare(struct bpfv *v, const int *map, unsigned nslots, struct weir_pkt *p,
    const char **bad)
{
	uint64_t bits[BPFV_MAXSLOTS / 64];
	unsigned s, miss = 0;
	int want, got;

	bpfv_eval(v, p, bits);
	for (s = 0; s < nslots; s++) {
		got = (int)(bits[s / 64] >> (s % 64) & 1);
		want = map[s] < 0 ? 0 : bpfcache_match(&refs[map[s]], p) == 1;
		if (got != want) {
			if (miss == 0 && bad != NULL)
				*bad = map[s] < 0 ? "(empty)" : exprs[map[s]];
			miss++;
		}
	}
	return miss;
}

/* Every packet as it is, truncated, and mutated. */
static unsigned
run_trace(struct bpfv *v, const int *map, unsigned nslots,
    const struct trace *t, int variants, const char **bad)
{
	static const uint32_t cuts[] = { 0, 1, 13, 14, 15, 18, 20, 23, 24,
	    26, 30, 33, 34, 36, 38, 40, 42, 54, 55, 56, 58, 62, 70 };
	uint8_t buf[65536 + 16];
	struct weir_pkt p;
	unsigned miss = 0, c, m;
	size_t i;
	uint32_t len;

	for (i = 0; i < t->n; i++) {
		memset(&p, 0, sizeof(p));
		p.data = t->p[i].data;
		p.caplen = t->p[i].caplen;
		p.wirelen = t->p[i].wirelen;
		p.linktype = t->p[i].linktype;
		miss += compare(v, map, nslots, &p, bad);
		if (!variants)
			continue;
		len = t->p[i].caplen < 65536 ? t->p[i].caplen : 65536;
		memcpy(buf, t->p[i].data, len);
		p.data = buf;
		for (c = 0; c < sizeof(cuts) / sizeof(cuts[0]); c++)
			if (cuts[c] < len && (i + c) % 3 == 0) {
				p.caplen = cuts[c];
				miss += compare(v, map, nslots, &p, bad);
			}
		p.caplen = len;
		/* one to three bytes of the headers changed */
		for (m = 0; m < 3 && len > 0; m++) {
			uint32_t o = (uint32_t)(rnd() % (len < 80 ? len : 80));
			uint8_t old = buf[o];

			buf[o] = (uint8_t)rnd();
			if (m == 1 && len > 14)
				buf[14] = (uint8_t)(0x40 | (rnd() & 0xf));
			miss += compare(v, map, nslots, &p, bad);
			buf[o] = old;
			memcpy(buf, t->p[i].data, len < 80 ? len : 80);
		}
	}
	return miss;
}

int
main(void)
{
	struct trace tr[8];
	struct bpfv *v;
	struct bpfv_stats st;
	struct weir_err err;
	int map[BPFV_MAXSLOTS];
	unsigned ntr, i, e, miss, ncached;
	const char *bad;

	weir_log_init("test_bpfverdict", WEIR_LOG_ERR);
	for (ntr = 0; traces[ntr] != NULL; ntr++)
		ok(load(traces[ntr], &tr[ntr]) == 0 && tr[ntr].n > 0,
		    "read %s (%zu packets)", traces[ntr], tr[ntr].n);
	for (e = 0; e < NEXPR; e++)
		if (bpfcache_init(&refs[e], "test", "expr", exprs[e], NULL,
		    &err) < 0)
			return 1;

	ok(bpfv_check("tcp prot 80", &err) < 0 &&
	    strstr(err.msg, "syntax") != NULL, "bad expression refused: %s",
	    err.msg);
	ok(bpfv_check("tcp port 80", &err) == 0, "good expression accepted");

	/* All expressions at once, one set across every link type. */
	for (e = 0; e < NEXPR; e++)
		map[e] = (int)e;
	ok(bpfv_create(&v, NEXPR, 65536, &err) == 0, "create");
	for (e = 0; e < NEXPR; e++)
		if (bpfv_set(v, e, exprs[e], &err) < 0)
			ok(0, "set '%s': %s", exprs[e], err.msg);
	for (i = 0; i < ntr; i++) {
		bad = NULL;
		miss = run_trace(v, map, NEXPR, &tr[i], 1, &bad);
		ok(miss == 0, "%u expressions at once, %s (as is, truncated, "
		    "mutated): %u wrong verdicts%s%s", (unsigned)NEXPR,
		    traces[i], miss, bad ? ", first in " : "", bad ? bad : "");
	}
	bpfv_get_stats(v, &st);
	printf("# all at once: hits %llu misses %llu uncached_runs %llu "
	    "bypass %llu classes %llu flushes %llu\n",
	    (unsigned long long)st.hits, (unsigned long long)st.misses,
	    (unsigned long long)st.uncached_runs,
	    (unsigned long long)st.bypass,
	    (unsigned long long)st.class_builds,
	    (unsigned long long)st.class_flushes);
	ok(st.hits > st.misses, "the cache is used (hits %llu > misses %llu)",
	    (unsigned long long)st.hits, (unsigned long long)st.misses);

	/* Cacheability. */
	ncached = 0;
	for (e = 0; e < NEXPR; e++) {
		int c = bpfv_slot_cached(v, e);

		ncached += c == 1;
		printf("# %-45s %s\n", exprs[e][0] ? exprs[e] : "\"\"",
		    c == 1 ? "cached" : "uncached");
	}
	printf("# %u of %u expressions cacheable on every link type seen\n",
	    ncached, (unsigned)NEXPR);
	for (e = 0; e < NEXPR; e++) {
		int want = -1;

		if (strncmp(exprs[e], "greater", 7) == 0 ||
		    strncmp(exprs[e], "less", 4) == 0 ||
		    strncmp(exprs[e], "len", 3) == 0)
			want = 0;
		else if (strncmp(exprs[e], "host", 4) == 0 ||
		    strncmp(exprs[e], "net", 3) == 0 ||
		    strncmp(exprs[e], "port", 4) == 0 ||
		    strncmp(exprs[e], "tcp port", 8) == 0 ||
		    strcmp(exprs[e], "vlan") == 0 ||
		    strcmp(exprs[e], "ip6 and tcp port 80") == 0)
			want = 1;
		if (want >= 0)
			ok(bpfv_slot_cached(v, e) == want, "'%s' is %s",
			    exprs[e], want ? "cacheable" : "not cacheable "
			    "(reads the length)");
	}

	/* Changes: drop every third, replace others, keep comparing. */
	for (e = 0; e < NEXPR; e += 3) {
		bpfv_unset(v, e);
		map[e] = -1;
	}
	for (e = 1; e < NEXPR; e += 3) {
		unsigned to = (e * 7 + 3) % NEXPR;

		ok(bpfv_set(v, e, exprs[to], &err) == 0, "slot %u: '%s' -> "
		    "'%s'", e, exprs[e], exprs[to]);
		map[e] = (int)to;
	}
	ok(bpfv_set(v, 2, "tcp prot", &err) < 0 && map[2] >= 0,
	    "a bad expression leaves the slot as it was");
	for (i = 0; i < ntr; i++) {
		bad = NULL;
		miss = run_trace(v, map, NEXPR, &tr[i], 0, &bad);
		ok(miss == 0, "after changes, %s: %u wrong verdicts%s%s",
		    traces[i], miss, bad ? ", first in " : "", bad ? bad : "");
	}
	bpfv_destroy(v);

	/* A tiny cache: evictions and set conflicts all the time. */
	for (e = 0; e < NEXPR; e++)
		map[e] = (int)e;
	ok(bpfv_create(&v, NEXPR, 4, &err) == 0, "create tiny");
	for (e = 0; e < NEXPR; e++)
		(void)bpfv_set(v, e, exprs[e], &err);
	miss = 0;
	bad = NULL;
	for (i = 0; i < ntr; i++)
		miss += run_trace(v, map, NEXPR, &tr[i], 1, &bad);
	ok(miss == 0, "tiny cache: %u wrong verdicts%s%s", miss,
	    bad ? ", first in " : "", bad ? bad : "");
	bpfv_destroy(v);

	/* Each expression alone (other dispatch choices, other keys). */
	miss = 0;
	bad = NULL;
	for (e = 0; e < NEXPR; e++) {
		map[0] = (int)e;
		if (bpfv_create(&v, 1, 1024, &err) < 0 ||
		    bpfv_set(v, 0, exprs[e], &err) < 0) {
			ok(0, "alone '%s': %s", exprs[e], err.msg);
			continue;
		}
		for (i = 0; i < ntr; i++)
			miss += run_trace(v, map, 1, &tr[i], i != 2, &bad);
		bpfv_destroy(v);
	}
	ok(miss == 0, "each of %u expressions alone: %u wrong verdicts%s%s",
	    (unsigned)NEXPR, miss, bad ? ", first in " : "", bad ? bad : "");

	/* 1024 slots (the sessions maximum), pairs of expressions. */
	ok(bpfv_create(&v, BPFV_MAXSLOTS, 8192, &err) == 0, "create 1024");
	for (e = 0; e < BPFV_MAXSLOTS; e++) {
		map[e] = (int)(e % NEXPR);
		(void)bpfv_set(v, e, exprs[map[e]], &err);
	}
	miss = 0;
	bad = NULL;
	for (i = 0; i < ntr; i++)
		miss += run_trace(v, map, BPFV_MAXSLOTS, &tr[i], 0, &bad);
	ok(miss == 0, "1024 slots: %u wrong verdicts%s%s", miss,
	    bad ? ", first in " : "", bad ? bad : "");
	bpfv_destroy(v);

	/*
	 * Batches, with framing bytes scrambled so that classes come and go
	 * (the class table is emptied in the middle of batches).
	 */
	{
		static struct weir_pkt bp[WEIR_BATCH_MAX];
		static struct weir_pkt *bpp[WEIR_BATCH_MAX];
		static uint64_t bb[WEIR_BATCH_MAX * 2];
		static uint8_t store[WEIR_BATCH_MAX][128];
		unsigned k, s, nb = 0, tot = 0;

		for (e = 0; e < NEXPR; e++)
			map[e] = (int)e;
		ok(bpfv_create(&v, NEXPR, 4096, &err) == 0, "create batch");
		bpfv_set_class_limit(v, 3);
		for (e = 0; e < NEXPR; e++)
			(void)bpfv_set(v, e, exprs[e], &err);
		miss = 0;
		for (i = 0; i < ntr; i++)
			for (k = 0; k < tr[i].n && k < 20000; k++) {
				struct weir_pkt *q = &bp[nb];
				uint32_t len = tr[i].p[k].caplen < 128 ?
				    tr[i].p[k].caplen : 128;

				memcpy(store[nb], tr[i].p[k].data, len);
				if (k % 2 && len > 24) {
					store[nb][12 + rnd() % 12] =
					    (uint8_t)rnd();
					store[nb][23] = (uint8_t)rnd();
				}
				memset(q, 0, sizeof(*q));
				q->data = store[nb];
				q->caplen = len;
				q->wirelen = tr[i].p[k].wirelen;
				q->linktype = tr[i].p[k].linktype;
				bpp[nb++] = q;
				if (nb < WEIR_BATCH_MAX && !(i == ntr - 1 &&
				    k + 1 == tr[i].n))
					continue;
				bpfv_eval_batch(v, bpp, nb, bb);
				for (s = 0; s < nb; s++)
					for (e = 0; e < NEXPR; e++)
						if ((int)(bb[s * 2 + e / 64] >>
						    (e % 64) & 1) != (bpfcache_match(
						    &refs[e], bpp[s]) == 1))
							miss++;
				tot += nb;
				nb = 0;
			}
		bpfv_get_stats(v, &st);
		ok(miss == 0 && st.class_flushes > 0, "batches of %d, %u "
		    "packets, half scrambled: %u wrong verdicts, class table "
		    "emptied %llu times", WEIR_BATCH_MAX, tot, miss,
		    (unsigned long long)st.class_flushes);
		bpfv_destroy(v);
	}

	/* 256 port sessions: all cached, keys fit, the cache hits. */
	{
		static char pe[256][32];
		static const char *pex[256];

		ok(bpfv_create(&v, 256, 65536, &err) == 0, "create 256");
		for (e = 0; e < 256; e++) {
			snprintf(pe[e], sizeof(pe[e]), "tcp port %u", 37900 + e);
			pex[e] = pe[e];
			(void)bpfv_set(v, e, pex[e], &err);
		}
		miss = 0;
		for (i = 0; i < tr[2].n; i++) {
			struct weir_pkt p;
			uint64_t bits[4];
			struct bpf_program prog;
			pcap_t *pd = pcap_open_dead(DLT_EN10MB, 262144);

			memset(&p, 0, sizeof(p));
			p.data = tr[2].p[i].data;
			p.caplen = tr[2].p[i].caplen;
			p.wirelen = tr[2].p[i].wirelen;
			p.linktype = tr[2].p[i].linktype;
			bpfv_eval(v, &p, bits);
			/* spot-check one slot per packet against libpcap */
			e = (unsigned)(i % 256);
			if (pcap_compile(pd, &prog, pex[e], 1, 0) == 0) {
				if ((bpf_filter(prog.bf_insns, p.data,
				    p.wirelen, p.caplen) != 0) !=
				    (int)(bits[e / 64] >> (e % 64) & 1))
					miss++;
				pcap_freecode(&prog);
			}
			pcap_close(pd);
		}
		bpfv_get_stats(v, &st);
		printf("# 256 ports: hits %llu misses %llu bypass %llu\n",
		    (unsigned long long)st.hits,
		    (unsigned long long)st.misses,
		    (unsigned long long)st.bypass);
		ok(miss == 0 && st.bypass == 0 && st.hits > 9 * st.misses,
		    "256 port sessions: %u wrong, no bypass, hits > 9 x misses",
		    miss);
		bpfv_destroy(v);
	}

	/*
	 * One program that would put addresses in every key (`net 0/8` is
	 * a jset on the address; 256 `net X/8` overflow the constants of
	 * one field) runs directly; the others stay cached and the cache
	 * keeps hitting on a trace whose every packet has new addresses.
	 */
	{
		static char ne[257][40];
		static const char *nex[257];
		static struct weir_pkt qp[512];
		static struct weir_pkt *qpp[512];
		static uint8_t qs[512][64];
		static uint64_t qb[512 * 5];
		struct bpf_program prog;
		pcap_t *pd = pcap_open_dead(DLT_EN10MB, 262144);
		unsigned k, s, ndirect = 0, round;

		ok(bpfv_create(&v, 257, 65536, &err) == 0, "create 257");
		for (e = 0; e < 257; e++) {
			snprintf(ne[e], sizeof(ne[e]), e < 256 ?
			    "net %u.0.0.0/8" : "udp port 53", e);
			nex[e] = ne[e];
			(void)bpfv_set(v, e, nex[e], &err);
		}
		miss = 0;
		for (round = 0; round < 40; round++) {
			for (k = 0; k < 512; k++) {
				/* IPv4/UDP, new addresses every packet */
				unsigned n = round * 512 + k;
				uint8_t *b = qs[k];

				memset(b, 0, 64);
				b[12] = 8;
				b[14] = 0x45;
				b[23] = 17;
				b[26] = (uint8_t)n;
				b[27] = (uint8_t)(n >> 8);
				b[28] = (uint8_t)(n >> 3);
				b[30] = (uint8_t)(n * 7);
				b[31] = (uint8_t)(n >> 4);
				b[37] = n % 3 ? 53 : 54;
				memset(&qp[k], 0, sizeof(qp[k]));
				qp[k].data = b;
				qp[k].caplen = qp[k].wirelen = 64;
				qp[k].linktype = 1;
				qpp[k] = &qp[k];
			}
			bpfv_eval_batch(v, qpp, 512, qb);
			/* spot-check 8 slots per packet against libpcap */
			for (k = 0; k < 512; k++)
				for (s = 0; s < 8; s++) {
					e = (k * 37 + s * 33 + round) % 257;
					if (s == 0)
						e = 0;
					if (pcap_compile(pd, &prog, nex[e], 1,
					    0) != 0)
						continue;
					if ((bpf_filter(prog.bf_insns,
					    qp[k].data, 64, 64) != 0) !=
					    (int)(qb[k * 5 + e / 64] >>
					    (e % 64) & 1))
						miss++;
					pcap_freecode(&prog);
				}
		}
		pcap_close(pd);
		for (e = 0; e < 257; e++)
			ndirect += bpfv_slot_cached(v, e) == 0;
		bpfv_get_stats(v, &st);
		printf("# 256 nets + 1 port: hits %llu misses %llu direct "
		    "programs %u\n", (unsigned long long)st.hits,
		    (unsigned long long)st.misses, ndirect);
		ok(miss == 0, "256 nets + a port: 0 wrong verdicts (%u)",
		    miss);
		ok(bpfv_slot_cached(v, 0) == 0 && bpfv_slot_cached(v, 1) ==
		    1 && bpfv_slot_cached(v, 256) == 1 && ndirect < 10,
		    "'net 0.0.0.0/8' and the nets past the constants limit "
		    "run directly (%u), the rest stay cached", ndirect);
		ok(st.hits > 9 * st.misses, "the cache still hits on new "
		    "addresses every packet (hits %llu, misses %llu)",
		    (unsigned long long)st.hits,
		    (unsigned long long)st.misses);
		bpfv_destroy(v);
	}

	/* Cache disabled: everything runs directly. */
	ok(bpfv_create(&v, 4, 0, &err) == 0, "create without cache");
	for (e = 0; e < 4; e++) {
		map[e] = (int)e + 9;
		(void)bpfv_set(v, e, exprs[e + 9], &err);
	}
	miss = run_trace(v, map, 4, &tr[0], 0, &bad);
	bpfv_get_stats(v, &st);
	ok(miss == 0 && st.hits == 0 && bpfv_slot_cached(v, 0) == 0,
	    "no cache: %u wrong verdicts, no hits", miss);
	bpfv_destroy(v);

	for (e = 0; e < NEXPR; e++)
		bpfcache_free(&refs[e]);
	for (i = 0; i < ntr; i++)
		trace_free(&tr[i]);
	return tap_done();
}
