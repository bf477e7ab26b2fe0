/*
 * ring.h - TPACKET_V3 block and frame parsing, for afpacket.c and its
 * unit test (kept apart from the socket so it can be fed crafted
 * blocks).  Internal to libweir.
 *
 * The kernel writes these headers, but a value is never trusted: every
 * offset and length is checked against the block before anything at
 * that offset is read, and headers are copied out (memcpy), so a bad
 * value costs a skipped block, never a read outside the mapping or an
 * unaligned access.
 */
#ifndef WEIR_LIVE_RING_H
#define WEIR_LIVE_RING_H

#include <stddef.h>
#include <stdint.h>

/* One block descriptor, as read and checked. */
struct live_block {
	uint32_t	status;
	uint32_t	num_pkts;
	uint32_t	first;		/* offset_to_first_pkt */
	uint32_t	end;		/* blk_len: end of the last frame */
};

/* One frame header, as read and checked. */
struct live_frame {
	uint32_t	mac;		/* offset of the data in the block */
	uint32_t	snaplen;	/* bytes at mac */
	uint32_t	len;		/* length on the wire */
	uint32_t	sec, nsec;
	uint32_t	status;		/* TP_STATUS_* of the frame */
	uint32_t	next;		/* offset of the next frame in the
					   block (0 for the last one) */
	uint16_t	vlan_tci, vlan_tpid;
	uint8_t		pkttype;	/* PACKET_HOST... */
};

/* Smallest frame: the V3 frame header plus the sockaddr_ll after it. */
size_t	live_frame_min(void);

/*
 * Read the descriptor of the block at blk (bsize bytes).  Returns 0, or
 * -1 when a field is out of bounds (b->num_pkts is then 0 if it was not
 * plausible either).
 */
int	live_block_parse(const uint8_t *blk, size_t bsize,
	    struct live_block *b);

/*
 * Read the frame at offset off of a checked block; last says it is the
 * block's last frame.  head is the room the caller needs before the data
 * inside the frame (WEIR_HEADROOM, plus 4 when a VLAN tag will be put
 * back).  Returns 0, or -1 when the frame does not fit the block, its
 * data leaves less than head bytes of its own frame before it, or its
 * successor would overlap its data.
 */
int	live_frame_parse(const uint8_t *blk, const struct live_block *b,
	    uint32_t off, int last, uint32_t head, struct live_frame *f);

#endif
