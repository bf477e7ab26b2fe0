/*
 * lossq.h - where losses lie in a packet sequence.
 *
 * A reader learns of losses (kernel drops, full-ring drops) some time
 * after they happened, as a count and the position in its own packet
 * sequence before which they lie.  It queues them here until the packets
 * before them are handed on, so that outputs see each loss at its place
 * (rotate.on_loss, lost_before in metadata).  Positions put never go
 * back: a loss no later than the last one queued joins it, and a full
 * queue moves its last entry later rather than forget a loss.  Used by
 * the live input (src/lib/live/afpacket.c) and by the pipeline for
 * weir-tap rings (src/capture/pipeline.c).
 */
#ifndef WEIR_LOSSQ_H
#define WEIR_LOSSQ_H

#include <stdint.h>
#include <string.h>

#define WEIR_LOSSQ	8

struct weir_lossq {
	uint64_t	pos[WEIR_LOSSQ];	/* before packet number pos */
	uint64_t	n[WEIR_LOSSQ];		/* losses there */
	unsigned	nq;
	uint64_t	reached;	/* losses popped: before what was used */
};

/* n losses lie before packet number pos. */
static inline void
weir_lossq_put(struct weir_lossq *q, uint64_t pos, uint64_t n)
{
	if (q->nq > 0 && (q->nq == WEIR_LOSSQ || q->pos[q->nq - 1] >= pos)) {
		if (pos > q->pos[q->nq - 1])
			q->pos[q->nq - 1] = pos;
		q->n[q->nq - 1] += n;
		return;
	}
	q->pos[q->nq] = pos;
	q->n[q->nq++] = n;
}

/* The first queued position after pos, or UINT64_MAX. */
static inline uint64_t
weir_lossq_next(const struct weir_lossq *q, uint64_t pos)
{
	unsigned i;

	for (i = 0; i < q->nq; i++)
		if (q->pos[i] > pos)
			return q->pos[i];
	return UINT64_MAX;
}

/*
 * All the losses that lie before packet number pos (which must not
 * decrease from call to call).
 */
static inline uint64_t
weir_lossq_reached(struct weir_lossq *q, uint64_t pos)
{
	unsigned i = 0;

	while (i < q->nq && q->pos[i] <= pos)
		q->reached += q->n[i++];
	if (i > 0) {
		memmove(q->pos, q->pos + i, (q->nq - i) * sizeof(q->pos[0]));
		memmove(q->n, q->n + i, (q->nq - i) * sizeof(q->n[0]));
		q->nq -= i;
	}
	return q->reached;
}

#endif
