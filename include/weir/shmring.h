/*
 * shmring.h - a single-producer, single-consumer packet ring in shared
 * memory: how the demultiplexer (weir-tap, which owns the capture
 * socket) hands one tenant's packets to that tenant's pipeline process.
 *
 * The ring is a memfd: one 4 KiB header page, then a data area of a
 * power-of-two size mapped twice in a row, so a record that runs past
 * the end of the area continues at its start without a wrap case in the
 * code (the "magic ring buffer").  Records are 8-byte aligned:
 *
 *   struct weir_ring_rec (24 bytes) | caplen bytes of packet | padding
 *
 * The producer reserves, fills and commits records, then publishes them
 * in one store of `head` (release) per batch; the consumer reads records
 * between `tail` and `head` (acquire) and gives them back by storing
 * `tail` only when it asks for the next batch, so a batch stays valid
 * while the pipeline uses it (the contract of input.h).  The 24 record
 * header bytes before each packet belong to that packet alone and give
 * the WEIR_HEADROOM a pipeline may write into.
 *
 * Trust: the consumer is a tenant's process and may be buggy; nothing it
 * writes can make the producer misbehave.  The producer reads only
 * `tail` and `waiting` from the shared page, and a `tail` outside
 * [head - size, head] marks the ring broken (counted; the producer stops
 * writing to it).  The consumer checks every record against the area
 * too.  A full ring drops the packet and counts it (`full_drops`): a
 * slow tenant loses its own packets, never anyone else's.
 *
 * Wake-ups: a consumer that finds the ring empty sets `waiting` and
 * sleeps on the futex word `wake` (shared, not private: two processes)
 * with a timeout, so that it can still run its timers on an idle link.
 * The producer does not wake a sleeper for every batch: a consumer that
 * gets a few packets per wake-up spends its time switching in and out.
 * weir_ring_publish() wakes it only once an eighth of the ring is
 * waiting; otherwise the wake-up is left pending and weir_ring_kick(),
 * which the producer calls every few milliseconds, delivers it.  So a
 * packet waits at most that long, and a tenant that gets little traffic
 * is woken at most a few hundred times a second.
 */
#ifndef WEIR_SHMRING_H
#define WEIR_SHMRING_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "weir/err.h"
#include "weir/pkt.h"

#define WEIR_RING_MAGIC		0x474e5257u	/* "WRNG" */
#define WEIR_RING_VERSION	1u
#define WEIR_RING_HDRSIZE	4096u
#define WEIR_RING_MINSIZE	(64u << 10)
#define WEIR_RING_MAXSIZE	(1u << 30)
#define WEIR_RING_MAXIFACES	16
/*
 * flags: the producer captures live, so an idle ring means idle time
 * (the consumer runs its timers on the wall clock); without it the
 * producer replays a file, and only packet time counts.
 */
#define WEIR_RING_LIVE		0x1u

/* Record header; the packet's bytes follow it. */
struct weir_ring_rec {
	uint32_t	size;		/* header + caplen, rounded up to 8 */
	uint32_t	caplen;
	uint32_t	wirelen;
	uint16_t	iface;		/* index in the ring's iface table */
	uint8_t		dir;		/* enum weir_dir */
	uint8_t		flags;		/* reserved, 0 */
	uint64_t	ts;		/* ns since the epoch */
};

struct weir_ring_iface {
	uint16_t	linktype;
	uint8_t		tsresol;
	uint8_t		pad;
	uint32_t	snaplen;
	char		name[40];
};

/* The header page.  Producer and consumer fields on their own lines. */
struct weir_ring_hdr {
	uint32_t	magic;
	uint32_t	version;
	uint64_t	size;		/* data area bytes (power of two) */
	uint32_t	niface;
	uint32_t	flags;		/* WEIR_RING_LIVE */
	struct weir_ring_iface iface[WEIR_RING_MAXIFACES];
	char		source[64];	/* what feeds it, for messages */

	/* written by the producer */
	_Alignas(64) _Atomic uint64_t head;	/* bytes published */
	_Atomic uint32_t wake;		/* futex word */
	_Atomic uint32_t done;		/* no more records will come */
	_Atomic uint64_t offered;	/* packets the producer had for us */
	_Atomic uint64_t written;	/* packets put in the ring */
	_Atomic uint64_t full_drops;	/* packets dropped: ring full */
	_Atomic uint64_t kernel_received;	/* the capture socket's */
	_Atomic uint64_t kernel_dropped;	/* counters, for metadata */
	/*
	 * Live: how far behind the wall clock a packet may still come
	 * (the capture's block retire horizon), for the consumer's idle
	 * timers.
	 */
	uint64_t	horizon_ns;

	/* written by the consumer */
	_Alignas(64) _Atomic uint64_t tail;	/* bytes released */
	_Atomic uint32_t waiting;	/* asleep on `wake` */
	_Atomic uint32_t consumer_pid;
};

_Static_assert(sizeof(struct weir_ring_hdr) <= WEIR_RING_HDRSIZE,
    "ring header must fit its page");
_Static_assert(sizeof(struct weir_ring_rec) >= WEIR_HEADROOM,
    "record header gives the packet its headroom");

/* One end of a ring, in either process. */
struct weir_ring {
	int		 fd;
	struct weir_ring_hdr *hdr;
	uint8_t		*data;		/* 2 * size bytes, mapped twice */
	uint64_t	 size;
	uint64_t	 mask;
	void		*map;		/* whole reservation */
	size_t		 maplen;

	/* producer side (private) */
	uint64_t	 whead;		/* reserved, not yet published */
	uint64_t	 ctail;		/* last tail read from the consumer */
	int		 broken;	/* the consumer wrote a bad tail */
	uint64_t	 broken_drops;	/* packets not written because */
	uint64_t	 woken_at;	/* head at the last wake-up */
	int		 wake_pending;	/* published, sleeper not woken */
	uint64_t	 wakes;		/* FUTEX_WAKE calls made */

	/* consumer side (private) */
	uint64_t	 rpos;		/* next record to read */
	uint32_t	 flags;
	char		 source[64];
	uint32_t	 niface;	/* the table, copied and checked */
	struct weir_ring_iface iface[WEIR_RING_MAXIFACES];
};

/*
 * Producer: a new ring of `size` data bytes (rounded up to a power of
 * two, WEIR_RING_MINSIZE..WEIR_RING_MAXSIZE) in a memfd named name.  The
 * fd (r->fd, close-on-exec cleared by the caller when it passes it on) is
 * what the consumer attaches to.
 */
int	weir_ring_create(struct weir_ring *r, const char *name, size_t size,
	    struct weir_err *err);
/* Add an interface to the table (before the consumer attaches). */
int	weir_ring_add_iface(struct weir_ring *r, uint16_t linktype,
	    uint32_t snaplen, uint8_t tsresol, const char *name);
/* Consumer: map a ring from its fd (checked: magic, version, sizes). */
int	weir_ring_attach(struct weir_ring *r, int fd, struct weir_err *err);
/* Unmap and close. */
void	weir_ring_close(struct weir_ring *r);

/*
 * Producer: copy one packet (caplen bytes at data) into the ring, not yet
 * visible.  Returns 0, or -ENOSPC when the ring is full or broken (the
 * drop is counted in the header).
 */
int	weir_ring_put(struct weir_ring *r, const uint8_t *data,
	    uint32_t caplen, uint32_t wirelen, uint64_t ts, uint16_t iface,
	    uint8_t dir);
/*
 * Producer: would a packet of caplen bytes fit now?  (Refreshes the
 * consumer's tail; counts nothing.  For producers that wait instead of
 * dropping, such as tests and a file replayer.)
 */
int	weir_ring_fits(struct weir_ring *r, uint32_t caplen);
/*
 * Producer: make the records put so far visible; wake a sleeper if an
 * eighth of the ring waits for it, else leave the wake-up pending.
 */
void	weir_ring_publish(struct weir_ring *r);
/* Producer: deliver a pending wake-up (call every few ms); 1 if woken. */
int	weir_ring_kick(struct weir_ring *r);
/* Producer: no more records; the consumer ends once it has read all. */
void	weir_ring_finish(struct weir_ring *r);

/*
 * Consumer: up to max packets, data pointing into the ring.  Releases
 * the previous batch first.  Waits up to timeout_ms when the ring is
 * empty.  Returns the count, 0 when the producer finished and all was
 * read, -EAGAIN when the wait timed out, -WEIR_EFORMAT for a bad record
 * (a message in err).  Packets get their iface from the ring's table
 * through ifmap (ring iface -> pipeline iface index).
 */
int	weir_ring_read(struct weir_ring *r, struct weir_pkt *pkts,
	    unsigned max, int timeout_ms, const uint16_t *ifmap,
	    struct weir_err *err);


/*
 * The consumer end as a trace input (src/lib/ring/ring_input.c): the
 * pipeline reads a ring like a file.  fd is the memfd the producer
 * passed; the input owns it from then on.  next_batch returns -EAGAIN
 * after WEIR_RING_IDLE_MS without packets (so the pipeline can look at
 * its stop flag and, on a live ring, run its timers); weir_input's
 * `lost` is the producer's full_drops for this ring.
 */
#define WEIR_RING_IDLE_MS	100
struct weir_input;
int	weir_input_open_ring(struct weir_input *in, int fd, unsigned index,
	    struct weir_ifaces *ifaces, struct weir_err *err);
/* Is this input a ring? */
int	weir_ring_input_is(const struct weir_input *in);
/*
 * The time before which no packet can still come from this ring, given
 * the wall clock now (ns); 0 for a ring that replays a file, whose
 * consumer keeps packet time only.
 */
uint64_t weir_ring_input_horizon(const struct weir_input *in, uint64_t now);
/* The producer's counters for this ring (header fields), as JSON-able. */
struct weir_ring_counts {
	uint64_t	offered, written, full_drops;
	uint64_t	kernel_received, kernel_dropped;
};
void	weir_ring_input_counts(const struct weir_input *in,
	    struct weir_ring_counts *c);

#endif
