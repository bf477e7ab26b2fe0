/*
 * interval.h - per-interval packet and byte counts: the part the
 * "counters" and "sessions" outputs share (docs/sessions.md).
 *
 * Clock.  Intervals are [k * iv, (k + 1) * iv) in packet time since the
 * epoch.  The first interval is the first packet's.  A packet in a later
 * interval closes the current one and every empty one before its own:
 * each is handed to the close callback, or, for a run of more than
 * WEIR_IV_GAP_MAX empty intervals (a trace that jumps by years), one
 * "gap" covering the whole run.  A packet older than the current interval
 * counts in the current one and in "late": lines already written are
 * never rewritten.  The boundary callback (optional) runs at each
 * boundary the clock reaches, after the lines of the interval that ends
 * there and before those of the one that starts there; the sessions
 * output applies its commands there.
 *
 * Lines.  One JSON object or CSV row per interval (and per session when
 * a session name is given), written to a regular file under
 * ".NAME.part" and renamed when complete, or directly, line by line, to
 * "-" (stdout) or a FIFO.  Nothing here allocates per packet.
 */
#ifndef WEIR_CAPTURE_INTERVAL_H
#define WEIR_CAPTURE_INTERVAL_H

#include <stdint.h>
#include <stdio.h>

#include "weir/err.h"
#include "weir/pkt.h"

#define WEIR_IV_GAP_MAX	1000

/* One interval's counts, by enum weir_dir. */
struct weir_iv_counts {
	uint64_t	 pk[3], by[3];
};

/* Count p by its direction (any value past OUT is unknown). */
static inline void
weir_iv_count(struct weir_iv_counts *c, const struct weir_pkt *p,
    int captured)
{
	unsigned d = p->dir <= WEIR_DIR_OUT ? p->dir : WEIR_DIR_UNKNOWN;

	c->pk[d]++;
	c->by[d] += captured ? p->caplen : p->wirelen;
}

/* [start, end) is done: write it (gap: a run of empty intervals). */
typedef void weir_iv_close_fn(void *, uint64_t, uint64_t, int);
/* The clock reached boundary t. */
typedef void weir_iv_boundary_fn(void *, uint64_t);

struct weir_iv_clock {
	uint64_t	 iv;		/* interval, ns, > 0 */
	uint64_t	 cur;		/* start of the open interval */
	int		 have;		/* an interval is open */
	uint64_t	 late;		/* packets older than cur */
	weir_iv_close_fn *close;
	weir_iv_boundary_fn *boundary;	/* may be NULL */
	void		*arg;
};

/* The "interval" option (seconds) in ns; 1 s when out of range. */
uint64_t	 weir_iv_ns(double);
void		 weir_iv_init(struct weir_iv_clock *, uint64_t,
		    weir_iv_close_fn *, weir_iv_boundary_fn *, void *);
/* Put packet time ts on the clock: opens the first interval (boundary
 * at its start) or closes up to ts's interval. */
void		 weir_iv_place(struct weir_iv_clock *, uint64_t);
/* Close the open interval and the empty ones before target, a boundary
 * later than cur; target's interval is then open. */
void		 weir_iv_advance(struct weir_iv_clock *, uint64_t);
/* Time passed without packets: close what ended before now. */
void		 weir_iv_tick(struct weir_iv_clock *, uint64_t);
/* End of input: close the open interval, partial as it may be. */
void		 weir_iv_end(struct weir_iv_clock *);

struct weir_iv_out {
	const char	*mod;		/* module name, for messages */
	FILE		*f;
	int		 csv, direct, is_stdout, dirty, failed;
	char		*path, *hidden;
	uint64_t	 lines, gaps;
	/*
	 * WEIR_IV_LOSS: every line also has the capture's losses in the
	 * interval (set by the caller before each line): packets the
	 * kernel received and dropped (live interfaces), and packets a
	 * weir-tap ring dropped for this tenant.
	 */
	int		 loss;
	uint64_t	 kernel_received, kernel_dropped, ring_dropped;
};

/* weir_iv_out_open() flags (1 is the old "session" argument). */
#define WEIR_IV_SESSION	1	/* a "session" column first */
#define WEIR_IV_LOSS	2	/* capture loss columns last */

/* Open path ("-", a FIFO, or a file written under .NAME.part) and write
 * the CSV header; session: lines have a "session" column first. */
int		 weir_iv_out_open(struct weir_iv_out *, const char *,
		    const char *, int, int, struct weir_err *);
/* One line for [start, end); c is ignored for a gap line (all zero). */
void		 weir_iv_out_line(struct weir_iv_out *, const char *,
		    uint64_t, uint64_t, const struct weir_iv_counts *, int);
int		 weir_iv_out_flush(struct weir_iv_out *);
/* Flush, close and rename into place; 0 or the first write error. */
int		 weir_iv_out_close(struct weir_iv_out *, struct weir_err *);
/* Release; removes the .part file of an output that was not closed. */
void		 weir_iv_out_free(struct weir_iv_out *);

#endif
