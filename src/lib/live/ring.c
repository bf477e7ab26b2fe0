/*
 * ring.c - bounds-checked reading of TPACKET_V3 block descriptors and
 * frame headers (see ring.h).
 *
 * Block layout (Documentation/networking/packet_mmap.rst):
 *
 *   block: tpacket_block_desc | ... | frame | frame | ...
 *   frame: tpacket3_hdr | sockaddr_ll | gap | data (at tp_mac)
 *
 * offset_to_first_pkt and each tp_next_offset chain the frames; blk_len
 * is where the last frame ends.  For a block of the kernel's, the gap
 * before the data is at least 14 bytes plus the 68 of the two headers
 * (Ethernet: data at 82), so WEIR_HEADROOM (16) and a re-inserted VLAN
 * tag (4) fit inside the frame.
 */
#include <linux/if_packet.h>

#include <string.h>

#include "lib/live/ring.h"

size_t
live_frame_min(void)
{
	return TPACKET_ALIGN(sizeof(struct tpacket3_hdr)) +
	    sizeof(struct sockaddr_ll);
}

int
live_block_parse(const uint8_t *blk, size_t bsize, struct live_block *b)
{
	struct tpacket_block_desc d;
	size_t maxpk;

	memset(b, 0, sizeof(*b));
	if (bsize < sizeof(d))
		return -1;
	memcpy(&d, blk, sizeof(d));
	b->status = d.hdr.bh1.block_status;
	b->first = d.hdr.bh1.offset_to_first_pkt;
	b->end = d.hdr.bh1.blk_len;
	maxpk = (bsize - sizeof(d)) / live_frame_min();
	if (d.hdr.bh1.num_pkts > maxpk)
		return -1;
	b->num_pkts = d.hdr.bh1.num_pkts;
	if (b->num_pkts == 0)
		return 0;
	if (b->first < sizeof(d) || b->end > bsize || b->first >= b->end ||
	    b->end - b->first < live_frame_min())
		return -1;
	return 0;
}

int
live_frame_parse(const uint8_t *blk, const struct live_block *b,
    uint32_t off, int last, uint32_t head, struct live_frame *f)
{
	struct tpacket3_hdr h;
	struct sockaddr_ll sll;
	uint64_t end, dend;

	memset(f, 0, sizeof(*f));
	/* The frame's two headers lie inside the used part of the block. */
	if (off < b->first || (uint64_t)off + live_frame_min() > b->end)
		return -1;
	memcpy(&h, blk + off, sizeof(h));
	memcpy(&sll, blk + off + TPACKET_ALIGN(sizeof(h)), sizeof(sll));
	end = b->end;
	/* Data: after the headers, room for head before it, inside. */
	if (h.tp_mac < live_frame_min() || h.tp_mac < head)
		return -1;
	dend = (uint64_t)off + h.tp_mac + h.tp_snaplen;
	if (dend > end)
		return -1;
	if (h.tp_len < h.tp_snaplen)
		return -1;
	if (!last) {
		/* The next frame starts after this frame's data. */
		if (h.tp_next_offset == 0 ||
		    (uint64_t)off + h.tp_next_offset < dend ||
		    (uint64_t)off + h.tp_next_offset + live_frame_min() > end)
			return -1;
		f->next = off + h.tp_next_offset;
	}
	f->mac = off + h.tp_mac;
	f->snaplen = h.tp_snaplen;
	f->len = h.tp_len;
	f->sec = h.tp_sec;
	f->nsec = h.tp_nsec;
	f->status = h.tp_status;
	f->vlan_tci = h.hv1.tp_vlan_tci;
	f->vlan_tpid = h.hv1.tp_vlan_tpid;
	f->pkttype = sll.sll_pkttype;
	if (f->nsec >= 1000000000u)
		return -1;
	return 0;
}
