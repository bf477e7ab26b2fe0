/*
 * test_live.c - the AF_PACKET TPACKET_V3 live input.
 *
 * 1. The block and frame parser on hand-built blocks: a good block, then
 *    one bad field at a time (each must be refused, never read past).
 * 2. The real ring: in a network namespace of its own (unshare), the test
 *    brings lo up, sends frames of known bytes on it with a raw packet
 *    socket and reads them back through weir_live_open/weir_input_next:
 *    exact bytes and lengths, direction, timestamps between the send and
 *    the read, a VLAN tag the kernel took off put back in place, a batch
 *    limit smaller than a block, the kernel filter, and the accounting
 *    (kernel_received = returned, nothing dropped) after weir_live_stop.
 *    Skipped (not failed) without the privilege to make a namespace.
 */
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "weir/input.h"
#include "weir/live.h"
#include "weir/log.h"
#include "weir/pkt.h"
#include "lib/live/ring.h"
#include "../tap.h"

#define BSIZE		65536
#define HDR		TPACKET_ALIGN(sizeof(struct tpacket3_hdr))
#define MAC		82	/* where the kernel puts Ethernet data */

/* A block with n frames of len bytes of data each. */
static size_t
mkblock(uint8_t *blk, unsigned n, uint32_t len)
{
	struct tpacket_block_desc d;
	struct tpacket3_hdr h;
	uint32_t off, first = 48, step;
	unsigned i;

	memset(blk, 0, BSIZE);
	step = TPACKET_ALIGN(MAC + len);
	off = first;
	for (i = 0; i < n; i++) {
		memset(&h, 0, sizeof(h));
		h.tp_next_offset = i + 1 < n ? step : 0;
		h.tp_sec = 1700000000;
		h.tp_nsec = 123456789;
		h.tp_snaplen = len;
		h.tp_len = len + 10;
		h.tp_mac = MAC;
		h.tp_net = MAC + 14;
		memcpy(blk + off, &h, sizeof(h));
		memset(blk + off + MAC, 0xa0 + i, len);
		off += step;
	}
	memset(&d, 0, sizeof(d));
	d.hdr.bh1.block_status = TP_STATUS_USER;
	d.hdr.bh1.num_pkts = n;
	d.hdr.bh1.offset_to_first_pkt = first;
	d.hdr.bh1.blk_len = first + (n - 1) * step + MAC + len;
	memcpy(blk, &d, sizeof(d));
	return first;
}

/* Walk a block as afpacket.c does; returns frames read, -1 at a bad one. */
static int
walk(const uint8_t *blk, uint32_t head)
{
	struct live_block b;
	struct live_frame f;
	uint32_t off, i;

	if (live_block_parse(blk, BSIZE, &b) < 0)
		return -1;
	off = b.first;
	for (i = 0; i < b.num_pkts; i++) {
		if (live_frame_parse(blk, &b, off, i + 1 == b.num_pkts, head,
		    &f) < 0)
			return -1;
		off = f.next;
	}
	return (int)i;
}

static void
poke32(uint8_t *blk, size_t off, uint32_t v)
{
	memcpy(blk + off, &v, 4);
}

static void
test_parser(void)
{
	static uint8_t blk[BSIZE];
	struct tpacket3_hdr h;
	struct live_block b;
	struct live_frame f;
	uint32_t first, step = TPACKET_ALIGN(MAC + 100);
	size_t hoff;

	first = (uint32_t)mkblock(blk, 3, 100);
	ok(walk(blk, 20) == 3, "parser: good block of 3 frames");
	ok(live_block_parse(blk, BSIZE, &b) == 0 &&
	    live_frame_parse(blk, &b, first, 0, 20, &f) == 0 &&
	    f.mac == first + MAC && f.snaplen == 100 && f.len == 110 &&
	    f.next == first + step && f.nsec == 123456789,
	    "parser: frame fields (mac %u, snaplen %u, next %u)", f.mac,
	    f.snaplen, f.next);

	/* tpacket_block_desc.hdr.bh1 fields at 8 (status), 12 (num_pkts),
	 * 16 (offset_to_first_pkt), 20 (blk_len) */
	mkblock(blk, 3, 100);
	poke32(blk, 12, 0xffffffffu);
	ok(walk(blk, 20) == -1, "parser: absurd num_pkts refused");
	mkblock(blk, 3, 100);
	poke32(blk, 16, BSIZE + 8);
	ok(walk(blk, 20) == -1, "parser: first frame past the block");
	mkblock(blk, 3, 100);
	poke32(blk, 16, 4);
	ok(walk(blk, 20) == -1, "parser: first frame inside the descriptor");
	mkblock(blk, 3, 100);
	poke32(blk, 20, BSIZE * 2);
	ok(walk(blk, 20) == -1, "parser: blk_len past the block");
	mkblock(blk, 3, 100);
	poke32(blk, 12, 4);	/* one more frame than blk_len holds */
	ok(walk(blk, 20) == -1, "parser: num_pkts beyond blk_len");

	hoff = first + step;	/* second frame header */
	mkblock(blk, 3, 100);
	memcpy(&h, blk + hoff, sizeof(h));
	h.tp_snaplen = BSIZE;
	memcpy(blk + hoff, &h, sizeof(h));
	ok(walk(blk, 20) == -1, "parser: tp_snaplen past the block");
	mkblock(blk, 3, 100);
	memcpy(&h, blk + hoff, sizeof(h));
	h.tp_mac = 10;
	memcpy(blk + hoff, &h, sizeof(h));
	ok(walk(blk, 20) == -1, "parser: tp_mac leaves no headroom");
	mkblock(blk, 3, 100);
	memcpy(&h, blk + hoff, sizeof(h));
	h.tp_mac = 0xfff0;
	memcpy(blk + hoff, &h, sizeof(h));
	ok(walk(blk, 20) == -1, "parser: tp_mac past the block");
	mkblock(blk, 3, 100);
	memcpy(&h, blk + first, sizeof(h));
	h.tp_next_offset = 0;
	memcpy(blk + first, &h, sizeof(h));
	ok(walk(blk, 20) == -1, "parser: tp_next_offset 0 before the last");
	mkblock(blk, 3, 100);
	memcpy(&h, blk + first, sizeof(h));
	h.tp_next_offset = MAC + 50;	/* into its own data */
	memcpy(blk + first, &h, sizeof(h));
	ok(walk(blk, 20) == -1, "parser: next frame overlapping the data");
	mkblock(blk, 3, 100);
	memcpy(&h, blk + first, sizeof(h));
	h.tp_next_offset = 0x7ffffff0u;
	memcpy(blk + first, &h, sizeof(h));
	ok(walk(blk, 20) == -1, "parser: tp_next_offset past the block");
	mkblock(blk, 3, 100);
	memcpy(&h, blk + hoff, sizeof(h));
	h.tp_len = 50;
	memcpy(blk + hoff, &h, sizeof(h));
	ok(walk(blk, 20) == -1, "parser: tp_len below tp_snaplen");
	mkblock(blk, 3, 100);
	ok(walk(blk, MAC + 1) == -1, "parser: headroom wanted above tp_mac");
	mkblock(blk, 0, 100);
	poke32(blk, 12, 0);
	ok(walk(blk, 20) == 0, "parser: empty block is fine");
}

static int
lo_up(void)
{
	struct ifreq ifr;
	int fd, rc;

	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
	rc = ioctl(fd, SIOCGIFFLAGS, &ifr);
	if (rc == 0) {
		ifr.ifr_flags |= IFF_UP;
		rc = ioctl(fd, SIOCSIFFLAGS, &ifr);
	}
	close(fd);
	return rc < 0 ? -errno : 0;
}

#define NSEND	40
static uint8_t frames[NSEND][1600];
static size_t flen[NSEND];

/* Frame i: zero MACs (lo's), EtherType et, a pattern, a length of its own. */
static void
mkframe(unsigned i, uint16_t et, int vlan)
{
	uint8_t *f = frames[i];
	size_t n = 60 + (i * 37) % 1400, j, o = 12;

	memset(f, 0, 12);
	if (vlan) {
		f[o++] = 0x81;
		f[o++] = 0x00;
		f[o++] = 0x20 | (uint8_t)(i >> 8);
		f[o++] = (uint8_t)(100 + i);
	}
	f[o++] = (uint8_t)(et >> 8);
	f[o++] = (uint8_t)et;
	for (j = o; j < n; j++)
		f[j] = (uint8_t)(i * 7 + j);
	flen[i] = n;
}

static int
send_all(int fd, int ifindex, unsigned from, unsigned to)
{
	struct sockaddr_ll sll;
	unsigned i;

	memset(&sll, 0, sizeof(sll));
	sll.sll_family = AF_PACKET;
	sll.sll_ifindex = ifindex;
	sll.sll_halen = 6;
	for (i = from; i < to; i++)
		if (sendto(fd, frames[i], flen[i], 0, (struct sockaddr *)&sll,
		    sizeof(sll)) != (ssize_t)flen[i])
			return -errno;
	return 0;
}

/* Read until want packets came or 2 s passed; returns the count. */
static unsigned
read_n(struct weir_input *in, struct weir_pkt *got, unsigned want,
    unsigned max, int *calls)
{
	struct weir_input *v[1] = { in };
	unsigned n = 0, tries = 0;
	int rc;

	*calls = 0;
	while (n < want && tries < 40) {
		rc = weir_input_next(in, got + n, want - n < max ? want - n :
		    max);
		if (rc > 0) {
			/* the batch is valid until the next call: keep a
			 * copy of each packet's bytes */
			unsigned j;

			for (j = 0; j < (unsigned)rc; j++) {
				uint8_t *c = malloc(got[n + j].caplen);

				memcpy(c, got[n + j].data, got[n + j].caplen);
				got[n + j].data = c;
			}
			n += (unsigned)rc;
			(*calls)++;
			continue;
		}
		if (rc != -EAGAIN)
			break;
		weir_live_wait(v, 1, 50);
		tries++;
	}
	return n;
}

static void
free_got(struct weir_pkt *got, unsigned n)
{
	unsigned i;

	for (i = 0; i < n; i++)
		free(got[i].data);
}

static void
test_ring(void)
{
	static struct weir_ifaces ifaces;
	static struct weir_pkt got[NSEND];
	struct weir_input in, in2;
	struct weir_live_conf c;
	struct weir_live_stats st;
	struct weir_err err = { "" };
	uint64_t t0, t1;
	unsigned i, n, same, lens, dirs, tsok;
	int fd, ifindex, rc, calls;

	if (unshare(CLONE_NEWNET) < 0) {
		printf("ok %d # SKIP no network namespace (%s)\n", ++tap_n,
		    strerror(errno));
		return;
	}
	ok(lo_up() == 0, "ring: lo is up in a namespace of our own");
	ifindex = (int)if_nametoindex("lo");
	fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
	ok(fd >= 0 && ifindex > 0, "ring: sending socket");

	weir_live_conf_defaults(&c);
	c.ifname = "lo";
	c.block_size = 16384;	/* small: frames spread over blocks */
	c.blocks = 8;
	c.timeout_ms = 5;
	rc = weir_live_open(&in, &c, 0, &ifaces, &err);
	ok(rc == 0, "ring: open on lo (%s)", err.msg);
	if (rc < 0)
		return;
	ok(ifaces.n == 1 && ifaces.v[0].linktype == WEIR_LT_EN10MB &&
	    ifaces.v[0].tsresol == 9 && strcmp(ifaces.v[0].name, "lo") == 0,
	    "ring: interface registered (Ethernet, ns)");
	ok(weir_input_next(&in, got, NSEND) == -EAGAIN,
	    "ring: nothing yet gives -EAGAIN");

	for (i = 0; i < NSEND; i++)
		mkframe(i, 0x88b5, i % 10 == 3);
	t0 = weir_live_now();
	ok(send_all(fd, ifindex, 0, NSEND) == 0, "ring: sent %d frames",
	    NSEND);
	n = read_n(&in, got, NSEND, 7, &calls);
	t1 = weir_live_now();
	ok(n == NSEND, "ring: read %u of %d frames in batches of 7 (%d "
	    "batches)", n, NSEND, calls);
	same = lens = dirs = tsok = 0;
	for (i = 0; i < n; i++) {
		if (got[i].caplen == flen[i] && got[i].wirelen == flen[i])
			lens++;
		if (got[i].caplen == flen[i] &&
		    memcmp(got[i].data, frames[i], flen[i]) == 0)
			same++;
		if (got[i].dir == WEIR_DIR_IN && got[i].iface == 0 &&
		    got[i].linktype == WEIR_LT_EN10MB)
			dirs++;
		if (got[i].ts >= t0 - 1000000 && got[i].ts <= t1)
			tsok++;
	}
	ok(lens == n && n > 0, "ring: exact lengths (%u of %u)", lens, n);
	ok(same == n && n > 0, "ring: exact bytes, VLAN tags put back "
	    "(%u of %u)", same, n);
	ok(dirs == n && n > 0, "ring: inbound, interface 0, Ethernet");
	ok(tsok == n && n > 0, "ring: timestamps between send and read");
	free_got(got, n);

	ok(weir_live_update(&in) == 0, "ring: PACKET_STATISTICS read");
	weir_live_stats(&in, &st);
	ok(st.kernel_received == NSEND && st.kernel_dropped == 0 &&
	    st.bad_frames == 0, "ring: kernel counted %llu received, %llu "
	    "dropped", (unsigned long long)st.kernel_received,
	    (unsigned long long)st.kernel_dropped);
	ok(st.vlan_reinserted == NSEND / 10, "ring: %llu VLAN tags put back",
	    (unsigned long long)st.vlan_reinserted);

	/* Stop with packets still in the ring: they come out, then 0. */
	ok(send_all(fd, ifindex, 0, 5) == 0, "ring: 5 more sent");
	usleep(2000);
	ok(weir_live_stop(&in) == 0, "ring: stop");
	ok(send_all(fd, ifindex, 5, 10) == 0, "ring: 5 sent after the stop");
	n = read_n(&in, got, NSEND, NSEND, &calls);
	ok(n == 5, "ring: drain gives the 5 sent before the stop (%u)", n);
	free_got(got, n);
	rc = weir_input_next(&in, got, NSEND);
	ok(rc == 0, "ring: then end of input (%d)", rc);
	weir_live_stats(&in, &st);
	ok(st.kernel_received == NSEND + 5 && st.ring_unread == 0 &&
	    in.pkts == NSEND + 5, "ring: accounting: received %llu = "
	    "returned %llu", (unsigned long long)st.kernel_received,
	    (unsigned long long)in.pkts);
	weir_live_close(&in);
	weir_input_close(&in);	/* a second close is harmless */

	/* Kernel filter: only EtherType 0x88b6 (and VLAN-tagged, which
	 * user space must decide on) reach the ring. */
	c.filter = "ether proto 0x88b6";
	rc = weir_live_open(&in2, &c, 1, &ifaces, &err);
	ok(rc == 0, "filter: open (%s)", err.msg);
	if (rc < 0)
		return;
	weir_live_stats(&in2, &st);
	ok(st.kernel_filter == 1, "filter: attached to the socket");
	for (i = 0; i < 20; i++)
		mkframe(i, i % 2 ? 0x88b6 : 0x88b5, i == 4);
	ok(send_all(fd, ifindex, 0, 20) == 0, "filter: sent 20");
	n = read_n(&in2, got, 11, NSEND, &calls);
	same = 0;
	for (i = 0; i < n; i++) {
		unsigned src = i < 2 ? 2 * i + 1 : (i == 2 ? 4 : 2 * i - 1);

		if (got[i].caplen == flen[src] &&
		    memcmp(got[i].data, frames[src], flen[src]) == 0)
			same++;
	}
	ok(n == 11 && same == 11, "filter: the 10 frames of 0x88b6 and the "
	    "tagged one, exact (%u read, %u same)", n, same);
	free_got(got, n);
	weir_live_update(&in2);
	weir_live_stats(&in2, &st);
	ok(st.kernel_received == 11, "filter: the kernel counted only what "
	    "passed (%llu)", (unsigned long long)st.kernel_received);
	weir_live_close(&in2);

	/*
	 * Two sockets in a new fanout group, as weir-capture --workers
	 * makes them: each frame reaches one of them.  Frames stamped
	 * before the start (weir_live_set_start) are discarded and
	 * counted: the 10 sent before it, none of the 10 after.
	 */
	c.filter = NULL;
	c.fanout = WEIR_LIVE_FANOUT_NEW;
	rc = weir_live_open(&in, &c, 2, &ifaces, &err);
	ok(rc == 0 && weir_live_fanout(&in) >= 0, "fanout: a new group "
	    "(%d) (%s)", rc == 0 ? weir_live_fanout(&in) : -1, err.msg);
	if (rc < 0)
		return;
	c.fanout = weir_live_fanout(&in);
	rc = weir_live_open(&in2, &c, 3, &ifaces, &err);
	ok(rc == 0 && weir_live_fanout(&in2) == c.fanout,
	    "fanout: a second socket joins it (%s)", err.msg);
	if (rc < 0)
		return;
	for (i = 0; i < 20; i++)
		mkframe(i, 0x88b5, 0);
	ok(send_all(fd, ifindex, 0, 10) == 0, "fanout: 10 sent before the "
	    "start");
	usleep(2000);
	t0 = weir_live_now();
	ok(weir_live_set_start(&in, t0) == 0 &&
	    weir_live_set_start(&in2, t0) == 0, "fanout: start set");
	ok(send_all(fd, ifindex, 10, 20) == 0, "fanout: 10 sent after");
	usleep(20000);
	{
		static struct weir_pkt g2[NSEND];
		struct weir_live_stats st2;
		unsigned n2, seen[20] = { 0 }, twice = 0, miss = 0, j, k;

		n = read_n(&in, got, 10, NSEND, &calls);
		n2 = read_n(&in2, g2, 10 - n, NSEND, &calls);
		for (j = 0; j < n + n2; j++) {
			struct weir_pkt *q = j < n ? &got[j] : &g2[j - n];

			for (k = 0; k < 20; k++)
				if (q->caplen == flen[k] &&
				    memcmp(q->data, frames[k], flen[k]) == 0)
					seen[k]++;
		}
		for (k = 0; k < 20; k++) {
			if (seen[k] > 1)
				twice++;
			if ((k >= 10) != (seen[k] == 1))
				miss++;
		}
		ok(n + n2 == 10 && twice == 0 && miss == 0, "fanout: the 10 "
		    "sent after the start, each once (%u + %u read, %u twice, "
		    "%u wrong)", n, n2, twice, miss);
		free_got(got, n);
		free_got(g2, n2);
		weir_live_stop(&in);
		weir_live_stop(&in2);
		while (weir_input_next(&in, got, NSEND) > 0)
			;
		while (weir_input_next(&in2, got, NSEND) > 0)
			;
		weir_live_stats(&in, &st);
		weir_live_stats(&in2, &st2);
		ok(st.before_start + st2.before_start == 10 &&
		    st.kernel_received + st2.kernel_received == 20 &&
		    st.ring_unread + st2.ring_unread == 0,
		    "fanout: before_start %llu + %llu = 10, received %llu + "
		    "%llu = 20, nothing unaccounted",
		    (unsigned long long)st.before_start,
		    (unsigned long long)st2.before_start,
		    (unsigned long long)st.kernel_received,
		    (unsigned long long)st2.kernel_received);
	}
	weir_live_close(&in);
	weir_live_close(&in2);
	c.fanout = -1;
	close(fd);

	/* Errors name the interface. */
	c.filter = NULL;
	c.ifname = "nosuch0";
	rc = weir_live_open(&in, &c, 0, &ifaces, &err);
	ok(rc < 0 && strstr(err.msg, "'nosuch0'") != NULL,
	    "open: unknown interface refused: %s", err.msg);
	c.ifname = "lo";
	c.block_size = 5000;
	rc = weir_live_open(&in, &c, 0, &ifaces, &err);
	ok(rc == -WEIR_ECONFIG, "open: block size not a power of two: %s",
	    err.msg);
}

int
main(void)
{
	weir_log_init("test_live", WEIR_LOG_WARN);
	test_parser();
	test_ring();
	return tap_done();
}
