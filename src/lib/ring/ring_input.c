/*
 * ring_input.c - a tenant pipeline's input: the consumer end of a
 * shared-memory ring filled by weir-tap (shmring.h), behind the same
 * reader vtable as the trace files.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "weir/input.h"
#include "weir/shmring.h"

struct ring_in {
	struct weir_ring r;
	uint16_t	 ifmap[WEIR_RING_MAXIFACES];
};

static int
ring_next(struct weir_input *in, struct weir_pkt *pkts, unsigned max)
{
	struct ring_in *ri = in->priv;
	uint64_t bytes = 0;
	int i, k;

	k = weir_ring_read(&ri->r, pkts, max, WEIR_RING_IDLE_MS, ri->ifmap,
	    &in->err);
	in->lost = atomic_load_explicit(&ri->r.hdr->full_drops,
	    memory_order_relaxed);
	if (k <= 0)
		return k;
	for (i = 0; i < k; i++)
		bytes += pkts[i].caplen;
	in->pkts += (uint64_t)k;
	in->bytes += bytes;
	return k;
}

static void
ring_close(struct weir_input *in)
{
	struct ring_in *ri = in->priv;

	if (ri != NULL) {
		weir_ring_close(&ri->r);
		/* weir_ring_close closed the fd */
		in->fd = -1;
	}
}

static const struct weir_input_ops ring_ops = {
	.name		= "ring",
	.probe		= NULL,
	.open		= NULL,
	.next_batch	= ring_next,
	.close		= ring_close,
};

int
weir_input_open_ring(struct weir_input *in, int fd, unsigned index,
    struct weir_ifaces *ifaces, struct weir_err *err)
{
	struct ring_in *ri;
	const struct weir_ring_iface *f;
	uint32_t i;
	int rc, idx;

	memset(in, 0, sizeof(*in));
	in->fd = -1;
	in->index = index;
	in->ifaces = ifaces;
	snprintf(in->path, sizeof(in->path), "ring fd %d", fd);
	if ((ri = calloc(1, sizeof(*ri))) == NULL) {
		if (fd > 2)
			close(fd);
		return weir_seterr(err, -ENOMEM, "%s: out of memory",
		    in->path);
	}
	if ((rc = weir_ring_attach(&ri->r, fd, err)) < 0) {
		free(ri);
		if (fd > 2)
			close(fd);
		return rc;
	}
	in->fd = fd;
	in->priv = ri;
	in->ops = &ring_ops;
	if (ri->r.source[0] != '\0')
		snprintf(in->path, sizeof(in->path), "%s", ri->r.source);
	for (i = 0; i < ri->r.niface; i++) {
		f = &ri->r.iface[i];
		idx = weir_iface_add(ifaces, index, f->linktype, f->snaplen,
		    f->tsresol, f->name);
		if (idx < 0) {
			rc = weir_seterr(err, -WEIR_EUNSUPP, "%s: too many "
			    "interfaces (at most %d)", in->path,
			    WEIR_MAX_IFACES);
			weir_input_close(in);
			return rc;
		}
		ri->ifmap[i] = (uint16_t)idx;
	}
	return 0;
}

int
weir_ring_input_is(const struct weir_input *in)
{
	return in->ops == &ring_ops;
}

uint64_t
weir_ring_input_horizon(const struct weir_input *in, uint64_t now)
{
	const struct ring_in *ri = in->priv;
	uint64_t h;

	if (!weir_ring_input_is(in) || !(ri->r.flags & WEIR_RING_LIVE))
		return 0;
	h = ri->r.hdr->horizon_ns;
	return now > h ? now - h : 0;
}

void
weir_ring_input_counts(const struct weir_input *in,
    struct weir_ring_counts *c)
{
	const struct weir_ring_hdr *h;

	memset(c, 0, sizeof(*c));
	if (!weir_ring_input_is(in))
		return;
	h = ((const struct ring_in *)in->priv)->r.hdr;
	c->offered = atomic_load(&h->offered);
	c->written = atomic_load(&h->written);
	c->full_drops = atomic_load(&h->full_drops);
	c->kernel_received = atomic_load(&h->kernel_received);
	c->kernel_dropped = atomic_load(&h->kernel_dropped);
}
