/*
 * merge.c - several inputs merged in timestamp order (WDCap's
 * reordering module), each packet keeping its interface.
 *
 * A source is refilled only when every packet it handed out has been
 * through the pipeline, because refilling invalidates its buffer.  So a
 * merged batch ends as soon as some source that is not at its end runs
 * dry; the next call refills it.  With one input this degenerates to
 * passing its batches on.
 *
 * Live inputs (AF_PACKET rings) may have nothing ready: their refill
 * says -EAGAIN.  Such a source cannot hold the others back for ever on
 * an idle link, but it may still deliver packets stamped up to its
 * horizon (now less twice its block retire timeout and a margin): the
 * others' packets newer than that wait.  The limit: a ring whose block
 * comes later than the horizon (a stalled core) delivers after newer
 * packets of other rings; the pipeline counts those (out_of_order).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "weir/live.h"
#include "weir/log.h"
#include "capture/pipeline.h"

int
weir_merge_init(struct weir_merge *m, struct weir_input *in, unsigned n)
{
	unsigned i;

	memset(m, 0, sizeof(*m));
	for (i = 0; i < n; i++) {
		m->src[i].in = &in[i];
		m->src[i].pk = calloc(WEIR_BATCH_MAX, sizeof(struct weir_pkt));
		if (m->src[i].pk == NULL) {
			m->n = i;
			weir_merge_free(m);
			return -ENOMEM;
		}
	}
	m->n = n;
	return 0;
}

void
weir_merge_free(struct weir_merge *m)
{
	unsigned i;

	for (i = 0; i < m->n; i++)
		free(m->src[i].pk);
	m->n = 0;
}

/* Refill every source whose packets are all consumed. */
static void
merge_refill(struct weir_merge *m)
{
	struct merge_src *s;
	unsigned i;
	int rc;

	for (i = 0; i < m->n; i++) {
		s = &m->src[i];
		if (s->done || s->i < s->n)
			continue;
		rc = weir_input_next(s->in, s->pk, WEIR_BATCH_MAX);
		s->i = 0;
		s->n = rc > 0 ? (unsigned)rc : 0;
		s->waiting = rc == -EAGAIN;
		if (rc == -EAGAIN)
			continue;
		if (rc == 0)
			s->done = 1;
		else if (rc < 0) {
			s->done = 1;
			s->error = rc;
			log_err("%s", s->in->err.msg);
		}
	}
}

unsigned
weir_merge_next(struct weir_merge *m, struct weir_pkt **out, unsigned max)
{
	struct merge_src *s, *best;
	uint64_t lim, now, h;
	unsigned i, k = 0;

	merge_refill(m);
	if (m->n == 1) {
		s = &m->src[0];
		while (s->i < s->n && k < max) {
			s->used_bytes += s->pk[s->i].caplen;
			out[k++] = &s->pk[s->i++];
		}
		s->used += k;
		return k;
	}
	/* What idle live sources may still deliver. */
	m->held_ts = 0;
	lim = UINT64_MAX;
	now = 0;
	for (i = 0; i < m->n; i++) {
		s = &m->src[i];
		if (!s->waiting || s->done || !weir_live_is(s->in))
			continue;
		if (now == 0)
			now = weir_live_now();
		h = weir_live_horizon(s->in, now);
		if (h < lim)
			lim = h;
	}
	while (k < max) {
		best = NULL;
		for (i = 0; i < m->n; i++) {
			s = &m->src[i];
			if (s->i >= s->n) {
				if (!s->done && !s->waiting)
					return k;	/* must refill first */
				continue;
			}
			if (best == NULL || s->pk[s->i].ts < best->pk[best->i].ts)
				best = s;
		}
		if (best == NULL)
			break;
		if (best->pk[best->i].ts > lim) {
			m->held_ts = best->pk[best->i].ts;
			m->held_horizon = lim;
			break;
		}
		best->used++;
		best->used_bytes += best->pk[best->i].caplen;
		out[k++] = &best->pk[best->i++];
	}
	return k;
}

unsigned
weir_merge_waiting(const struct weir_merge *m)
{
	unsigned i, n = 0;

	for (i = 0; i < m->n; i++)
		if (m->src[i].waiting && !m->src[i].done)
			n++;
	return n;
}
