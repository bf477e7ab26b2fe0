/*
 * live.h - live capture from a Linux interface through an AF_PACKET
 * TPACKET_V3 memory-mapped ring, behind the same struct weir_input as
 * the trace file readers (input.h).  See docs/live.md.
 *
 * Ownership and lifetime: weir_live_open() fills a caller-owned struct
 * weir_input; the input owns its socket (in->fd) and the mapped ring
 * until weir_live_close() (or weir_input_close(), which calls the same
 * ops->close).  One thread uses one input.
 *
 * Batches: weir_input_next() (ops->next_batch) never blocks.  It returns
 * packets whose data point into ring blocks, -EAGAIN when no block is
 * ready (wait with weir_live_wait() and ask again), or 0 once the input
 * has been stopped (weir_live_stop()) and drained.  A block goes back to
 * the kernel only at the next next_batch() call, so a batch stays valid
 * until then, as for files.  Each packet's WEIR_HEADROOM bytes before its
 * data lie inside its own ring frame (the frame's tpacket3_hdr area,
 * already read), so they are writable and belong to that packet only.
 *
 * Every frame header field is bounds-checked against the block before
 * use; a bad block descriptor or frame header is counted in bad_frames
 * and the rest of that block is skipped (frames_skipped).
 *
 * Accounting (struct weir_live_stats):
 *   kernel_received = kernel_dropped + returned + frames_skipped
 *                     + ring_unread
 * where returned is in->pkts (packets handed out).  The kernel counters
 * (PACKET_STATISTICS) reset when read, so they are accumulated here;
 * read them at least every hour (tp_packets is 32 bits): the pipeline
 * does every second.  ring_unread is only known once the input is
 * stopped: packets the kernel had put in the ring that were never handed
 * out (a -c stop, or a drain cut short by its deadline).
 */
#ifndef WEIR_LIVE_H
#define WEIR_LIVE_H

#include <stdint.h>

#include "weir/err.h"
#include "weir/input.h"
#include "weir/pkt.h"

/* weir_live_conf.tstamp */
enum {
	WEIR_LIVE_TS_SOFTWARE = 0,	/* kernel receive time, ns */
	WEIR_LIVE_TS_AUTO,		/* hardware when the NIC offers it */
	WEIR_LIVE_TS_HARDWARE,		/* the same, but a warning if not */
};

#define WEIR_LIVE_BLOCK_SIZE	(1u << 20)	/* default block, bytes */
#define WEIR_LIVE_BLOCKS	64		/* default ring, blocks */
#define WEIR_LIVE_TIMEOUT_MS	10		/* default block retire */
#define WEIR_LIVE_RING_MAX	(1ull << 32)	/* ring size cap, bytes */

struct weir_live_conf {
	const char	*ifname;	/* interface name (required) */
	uint32_t	 block_size;	/* power of two, >= page size */
	uint32_t	 blocks;	/* ring size in blocks, >= 2 */
	uint32_t	 timeout_ms;	/* block retire timeout, 1..60000 */
	int		 promisc;	/* PACKET_ADD_MEMBERSHIP promisc */
	int		 tstamp;	/* WEIR_LIVE_TS_* */
	/*
	 * BPF expression compiled for the interface's link type and
	 * attached to the socket (NULL or "": none).  The kernel program
	 * lets through every packet whose VLAN tag the kernel took off
	 * (it cannot see the tag where tcpdump expects it), so the same
	 * expression must still run in user space: the kernel filter only
	 * saves work, the user-space stage keeps the semantics exact.
	 */
	const char	*filter;
	uint32_t	 snaplen;	/* kernel copies at most this; 0 = all */
	int		 fanout;	/* PACKET_FANOUT group id, -1 = none,
					   WEIR_LIVE_FANOUT_NEW = a new group
					   with an id the kernel picks */
};

#define WEIR_LIVE_FANOUT_NEW	(-2)

struct weir_live_stats {
	uint64_t	kernel_received;	/* tp_packets (incl. drops) */
	uint64_t	kernel_dropped;		/* tp_drops: ring was full */
	uint64_t	kernel_freeze_q;	/* tp_freeze_q_cnt */
	uint64_t	blocks;			/* blocks read */
	uint64_t	bad_frames;		/* bad headers seen */
	uint64_t	frames_skipped;		/* frames lost to them */
	uint64_t	before_start;		/* stamped before the start
						   (weir_live_set_start) */
	uint64_t	ring_unread;		/* see above */
	uint64_t	vlan_reinserted;	/* tags put back in place */
	uint64_t	ts_hardware;		/* packets with a NIC stamp */
	uint64_t	csum_notready;		/* TP_STATUS_CSUM_NOTREADY */
	int		kernel_filter;		/* a filter is attached */
	int		hw_timestamps;		/* NIC stamps were enabled */
	int		stopped;		/* weir_live_stop() ran */
};

extern const struct weir_input_ops weir_live_afpacket;

/* Defaults for every field; ifname is left NULL. */
void	weir_live_conf_defaults(struct weir_live_conf *c);

/*
 * Open the ring on c->ifname and register the interface (its link type
 * from the ARPHRD type: Ethernet and loopback as Ethernet, tun/raw IP
 * as raw IP; nanosecond resolution) as input index in ifaces.  Needs
 * CAP_NET_RAW (CAP_NET_ADMIN for hardware timestamps).  On failure
 * returns a negative code with err->msg naming the interface; in is
 * then closed.
 */
int	weir_live_open(struct weir_input *in, const struct weir_live_conf *c,
	    unsigned index, struct weir_ifaces *ifaces, struct weir_err *err);

/* Is this input a live one (opened by weir_live_open)? */
int	weir_live_is(const struct weir_input *in);
/* The PACKET_FANOUT group the input joined (0..65535), or -1. */
int	weir_live_fanout(const struct weir_input *in);

/*
 * Wait up to timeout_ms for a block on any of the n live inputs (the
 * others are ignored).  Returns how many have one ready (0 on timeout or
 * a signal), or -errno.
 */
int	weir_live_wait(struct weir_input *const *v, unsigned n,
	    int timeout_ms);

/*
 * Read PACKET_STATISTICS (which resets them) and add to the totals.
 * Returns 0 or -errno.
 */
int	weir_live_update(struct weir_input *in);
/* Copy the totals (no system call). */
void	weir_live_stats(const struct weir_input *in, struct weir_live_stats *s);
/*
 * The capture starts at ns (CLOCK_REALTIME): frames the kernel stamped
 * earlier are discarded and counted (before_start).  weir-capture
 * --workers sets it, on every worker's sockets, to the time the last
 * one joined the fanout group: a socket must be bound before it can
 * join, and what it receives in between also reaches the group, so
 * without this a packet arriving during start-up could be captured
 * twice.  Software timestamps only: -WEIR_EUNSUPP with hardware ones.
 */
int	weir_live_set_start(struct weir_input *in, uint64_t ns);

/*
 * Of kernel_dropped, the drops that lie before packet number pos of
 * this input (packets counted from 0 in the order handed out); pos must
 * not decrease from call to call.  A batch never spans such a position:
 * next_batch() ends a batch where drops lie, and reads the counters
 * before a block the kernel marked TP_STATUS_LOSING (docs/outputs.md).
 */
uint64_t weir_live_lost_before(struct weir_input *in, uint64_t pos);

/*
 * Stop capturing: a reject-all filter stops new packets, the final
 * kernel counters are read, and from then on next_batch() hands out
 * what the ring still holds (waiting for the last block to be retired,
 * at most the retire timeout plus a margin) and then returns 0.
 */
int	weir_live_stop(struct weir_input *in);

/*
 * Time (ns since the epoch, the packets' clock) before which no packet
 * can still appear in this input, given the current time now: a packet
 * may wait in an unretired block for the retire timeout.
 */
uint64_t weir_live_horizon(const struct weir_input *in, uint64_t now);

/* Current CLOCK_REALTIME in ns (the clock of software timestamps). */
uint64_t weir_live_now(void);

void	weir_live_close(struct weir_input *in);

#endif
