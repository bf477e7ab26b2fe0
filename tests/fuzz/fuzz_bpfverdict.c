/*
 * fuzz_bpfverdict.c - differential: the verdict cache must give, for
 * every packet, exactly the verdict libpcap's bpf_filter() gives for each
 * expression.  A difference is a privacy bug (a tenant would see a packet
 * its filter does not select), so it aborts.  Input: one byte choosing
 * the link type, then the packet; the same packet is evaluated twice (a
 * miss, then a hit) and at every caplen cut of its first 80 bytes.
 */
#include <pcap/pcap.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "capture/bpfverdict.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const exprs[] = {
	"tcp", "udp port 53", "ip6", "vlan", "vlan and tcp", "icmp or icmp6",
	"host 10.0.0.1", "net 192.168.0.0/16", "src port 443",
	"tcp[tcpflags] & tcp-syn != 0", "ip[6:2] & 0x3fff != 0",
	"portrange 1000-2000", "ip6 and tcp port 80", "arp", "ip proto 47",
	"dst host fe80::1", "not ip", "mpls", "udp and greater 100",
	"ether host 02:00:00:00:00:01",
};
#define NEXPR	(sizeof(exprs) / sizeof(exprs[0]))
static const uint16_t lts[] = { 1, 101, 113, 276, 0 };

static struct bpfv *v;
static struct bpf_program prog[sizeof(lts) / sizeof(lts[0])][NEXPR];
static int have[sizeof(lts) / sizeof(lts[0])][NEXPR];

static void
setup(void)
{
	struct weir_err err;
	pcap_t *pd;
	size_t i, j;

	if (bpfv_create(&v, NEXPR, 256, &err) < 0)
		abort();
	for (j = 0; j < NEXPR; j++)
		if (bpfv_set(v, (unsigned)j, exprs[j], &err) < 0)
			abort();
	for (i = 0; i < sizeof(lts) / sizeof(lts[0]); i++) {
		pd = pcap_open_dead(lts[i], 262144);
		for (j = 0; j < NEXPR; j++)
			have[i][j] = pcap_compile(pd, &prog[i][j], exprs[j], 1,
			    0) == 0;
		pcap_close(pd);
	}
}

static void
check(size_t li, const uint8_t *pkt, uint32_t caplen, uint32_t wirelen)
{
	struct weir_pkt p;
	uint64_t bits[1];
	size_t j;
	int want, got;

	memset(&p, 0, sizeof(p));
	p.data = (uint8_t *)(uintptr_t)pkt;
	p.caplen = caplen;
	p.wirelen = wirelen;
	p.linktype = lts[li];
	bpfv_eval(v, &p, bits);
	for (j = 0; j < NEXPR; j++) {
		if (!have[li][j])
			continue;	/* no program for this link type */
		want = bpf_filter(prog[li][j].bf_insns, pkt, wirelen,
		    caplen) != 0;
		got = (int)((bits[0] >> j) & 1);
		if (want != got)
			abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t li, cut;
	uint8_t *pkt;

	if (v == NULL)
		setup();
	if (size < 1)
		return 0;
	li = data[0] % (sizeof(lts) / sizeof(lts[0]));
	size--;
	if ((pkt = malloc(size ? size : 1)) == NULL)
		return 0;
	memcpy(pkt, data + 1, size);
	check(li, pkt, (uint32_t)size, (uint32_t)size);
	check(li, pkt, (uint32_t)size, (uint32_t)size);	/* a hit now */
	for (cut = 0; cut < size && cut < 80; cut += 7)
		check(li, pkt, (uint32_t)cut, (uint32_t)size);
	free(pkt);
	return 0;
}
