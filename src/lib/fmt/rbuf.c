/*
 * rbuf.c - the read buffer every trace reader parses in place.
 *
 * Layout: buf -> [RBUF_FRONT spare bytes][cap bytes from base].  The
 * spare front gives the first record after a refill the same headroom
 * as any other (WEIR_HEADROOM writable bytes before its data that belong
 * to no other packet).  base stays 64-byte aligned.
 *
 * A refill moves only the unparsed tail (at most one partial record) to
 * base and then reads into the rest, so each file byte is copied once by
 * the kernel and almost never by us.  The buffer grows, by doubling, only
 * for a record larger than it (up to WEIR_RBUF_MAX) and is kept at that
 * size: peak memory is bounded by the largest record, not the file.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "weir/input.h"

#define RBUF_FRONT	64

_Static_assert(RBUF_FRONT >= WEIR_HEADROOM, "front must hold the headroom");

static int
rbuf_grow(struct weir_input *in, size_t need)
{
	size_t cap;
	void *nb;

	/* The first call may find a size hint in in->cap (input.c). */
	cap = in->cap ? in->cap : WEIR_RBUF_SIZE;
	while (cap < need)
		cap *= 2;
	if (cap > WEIR_RBUF_MAX)
		cap = WEIR_RBUF_MAX;
	if (cap < need)
		return -EFBIG;
	if (posix_memalign(&nb, 64, RBUF_FRONT + cap) != 0)
		return -ENOMEM;
	/* Only held bytes matter; the caller moved them to base. */
	if (in->buf != NULL) {
		memcpy((uint8_t *)nb + RBUF_FRONT, in->base, in->len);
		free(in->buf);
	}
	in->buf = nb;
	in->base = in->buf + RBUF_FRONT;
	in->cap = cap;
	return 0;
}

long
weir_rbuf_fill(struct weir_input *in, size_t need)
{
	size_t avail;
	ssize_t r;
	int rc;

	avail = in->len - in->pos;
	if (avail >= need)
		return (long)avail;
	if (need > WEIR_RBUF_MAX)
		return -EFBIG;

	/* Keep the unparsed tail only. */
	if (in->pos > 0) {
		if (avail > 0)
			memmove(in->base, in->base + in->pos, avail);
		in->file_off += in->pos;
		in->pos = 0;
		in->len = avail;
	}
	if (in->buf == NULL || need > in->cap) {
		/* (with no buffer yet, in->cap is only a size hint) */
		if ((rc = rbuf_grow(in, need)) != 0)
			return rc;
	}

	/*
	 * Read until need bytes are held, asking for the whole free space
	 * each time: one read() per MiB on a regular file, and on a pipe
	 * we do not wait for more than the caller needs.
	 */
	while (in->len < need && !in->eof) {
		r = read(in->fd, in->base + in->len, in->cap - in->len);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			in->eof = 1;
		in->len += (size_t)r;
	}
	return (long)(in->len - in->pos);
}
