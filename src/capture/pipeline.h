/*
 * pipeline.h - one experiment's pipeline: inputs -> merge -> stages ->
 * outputs, built from the effective experiment document.
 *
 * Accounting invariant, checked by tests through the summary:
 *   read == sum over stages of dropped + passed
 *   for every output: passed == what it wrote + what it dropped
 */
#ifndef WEIR_PIPELINE_H
#define WEIR_PIPELINE_H

#include <stdint.h>

#include <jansson.h>

#include "weir/input.h"
#include "weir/lossq.h"
#include "weir/module.h"

#define WEIR_MAX_INPUTS		64
#define WEIR_MAX_STAGES		32
#define WEIR_MAX_OUTPUTS	16

struct weir_inst {
	const struct weir_module *mod;
	void		*st;
	const json_t	*conf;
	uint64_t	 in;		/* packets handed to it */
	uint64_t	 dropped;	/* stages: packets it dropped */
	json_t		*final;		/* counters kept once it is closed */
};

struct merge_src {
	struct weir_input *in;
	struct weir_pkt	*pk;		/* WEIR_BATCH_MAX packets */
	unsigned	 n, i;		/* filled, consumed */
	int		 done;
	int		 error;		/* negative code, or 0 */
	int		 waiting;	/* live: nothing ready at the last
					   refill (-EAGAIN) */
	uint64_t	 used, used_bytes;	/* handed to the pipeline */
};

struct weir_merge {
	struct merge_src src[WEIR_MAX_INPUTS];
	unsigned	 n;
	/*
	 * Live: the oldest packet held back because an idle ring might
	 * still deliver an older one (0: none), and the horizon it was
	 * held against.
	 */
	uint64_t	 held_ts, held_horizon;
};

/*
 * Where a weir-tap ring's full-ring drops lie in its packet sequence
 * (pipeline.c): the producer drops only when the ring is full, so drops
 * first seen while it had written `pos` records lie at or before pos.
 */
struct weir_ringloss {
	uint64_t	 seen;		/* full_drops placed so far */
	struct weir_lossq q;		/* where they lie */
};

struct weir_pipeline {
	json_t		*exp;		/* effective config (owned) */
	struct weir_ifaces ifaces;
	struct weir_input inputs[WEIR_MAX_INPUTS];
	unsigned	 ninputs;
	struct weir_merge merge;
	struct weir_inst stages[WEIR_MAX_STAGES];
	unsigned	 nstages;
	struct weir_inst outputs[WEIR_MAX_OUTPUTS];
	unsigned	 noutputs;
	struct weir_env	 env;
	struct weir_pkt	**ptrs;		/* batch pointer array */

	uint64_t	 read;		/* packets that entered the stages */
	uint64_t	 passed;	/* packets that reached the outputs */
	uint64_t	 limit;		/* stop after this many passed; 0 = no */
	uint64_t	 last_ts;
	int		 failed;	/* an input or output reported an error */
	volatile int	*stop;		/* set asynchronously to stop early */

	/* Live inputs (include/weir/live.h). */
	unsigned	 nlive;		/* how many inputs are live */
	unsigned	 nring;		/* a weir-tap ring is the input */
	uint64_t	 duration;	/* stop after this many ns; 0 = no */
	int		 stopping;	/* live inputs stopped, draining */
	uint64_t	 last_tick;	/* last time given to tick() */
	uint64_t	 last_update;	/* CLOCK_MONOTONIC of the last
					   PACKET_STATISTICS read */
	uint64_t	 out_of_order;	/* live: packets older than the one
					   before them (merge limit) */
	/*
	 * Capture losses that lie before the packets the outputs have
	 * been given (env.loss points here when an input can lose).
	 */
	struct weir_loss loss;
	struct weir_ringloss *rloss;	/* per input, when nring > 0 */

	/*
	 * Status lines (weir-capture --status-fd, SIGUSR1), set by the
	 * caller after open: status() is called between batches (or
	 * after an idle wait) when *status_req is set (it is cleared
	 * first; why = "signal") or every status_every ns (why =
	 * "interval"); NULL/0 = never.  A trace read blocked on a FIFO
	 * delays it until data comes.
	 */
	volatile int	*status_req;
	uint64_t	 status_every;
	uint64_t	 status_last;	/* CLOCK_MONOTONIC ns */
	void		(*status)(struct weir_pipeline *pl, const char *why,
			    void *arg);
	void		*status_arg;
};

/*
 * Check and normalise an experiment document in place against an
 * optional policy; on success the document is the effective config.
 */
int	weir_exp_check(json_t *exp, const json_t *policy, struct weir_err *err);

/* Open inputs, stages and outputs.  Takes a reference to exp. */
int	weir_pipeline_open(struct weir_pipeline *pl, json_t *exp,
	    struct weir_err *err);
/*
 * Run to the end of the inputs.  Returns 0, or < 0 if anything failed.
 * With live inputs it runs until *stop is set, "duration" passed or
 * "count" packets passed; on a stop or the duration it stops the rings
 * and drains what they hold (weir_live_stop), so nothing counted by the
 * kernel is left behind.  When every live input is idle it waits up to
 * WEIR_IDLE_WAIT_MS and ticks every module with the current time, less
 * the rings' retire timeout (weir_live_horizon), so time-driven work
 * (rotation, counter intervals) goes on on a quiet link.
 */
#define WEIR_IDLE_WAIT_MS	100
int	weir_pipeline_run(struct weir_pipeline *pl, struct weir_err *err);
/*
 * End of input: every output ends its flows and publishes its last files
 * (finish); counters are final afterwards.  Returns < 0 on error.
 */
int	weir_pipeline_finish(struct weir_pipeline *pl, struct weir_err *err);
/* Close everything (final files and metadata); returns < 0 on error. */
int	weir_pipeline_close(struct weir_pipeline *pl, struct weir_err *err);
/* Accounting and every module's counters, as a new JSON object. */
json_t	*weir_pipeline_stats(void *pl);

/* CLOCK_MONOTONIC in ns: run time limits and periodic work. */
uint64_t weir_mono_ns(void);

/* merge.c */
int	weir_merge_init(struct weir_merge *m, struct weir_input *in,
	    unsigned n);
void	weir_merge_free(struct weir_merge *m);
/*
 * Up to max packet pointers in timestamp order (ties: lower input
 * first).  Returns the count, 0 at the end of every input or when every
 * input not at its end is live and has nothing ready (then
 * weir_merge_waiting() > 0).  A live input with nothing ready is left out
 * of that round, but packets newer than its horizon (weir_live_horizon:
 * what it may still deliver) are held back until the horizon passes
 * them (held_ts), so the rings merge in time order as long as the
 * kernel retires blocks within that horizon (docs/live.md).
 */
unsigned weir_merge_next(struct weir_merge *m, struct weir_pkt **out,
	    unsigned max);
/* Inputs not at their end that had nothing ready at the last refill. */
unsigned weir_merge_waiting(const struct weir_merge *m);

#endif
