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
 *
 * Read-ahead (weir_rbuf_readahead): two buffers laid out as
 *   [RBUF_FRONT][RA_PREFIX][WEIR_RBUF_SIZE bytes of file data]
 * A thread reads the next WEIR_RBUF_SIZE bytes of the file into the
 * spare buffer's data area while the pipeline parses the current one.
 * A refill waits for that read, copies the unparsed tail (at most one
 * partial record) into the spare's prefix, just before its data, swaps
 * the buffers and hands the old one to the thread.  So the kernel copy
 * of read() runs on the other core; the pipeline thread only pays for
 * the tail copy.  The thread touches nothing but the spare buffer, the
 * descriptor and the fields of struct rbuf_ra under its mutex.  A tail
 * larger than RA_PREFIX (a record of more than half a MiB) ends
 * read-ahead for that file: the two buffers become one ordinary buffer
 * and reading goes on synchronously.
 */
#include <sys/stat.h>

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "weir/input.h"
#include "weir/priv.h"

#define RBUF_FRONT	64
#define RA_PREFIX	(512u << 10)
/* Read-ahead is worth a thread only for files of several buffers. */
#define RA_MIN_FILE	(4 * (off_t)WEIR_RBUF_SIZE)

enum ra_state { RA_IDLE, RA_BUSY, RA_READY };

struct rbuf_ra {
	pthread_t	 thr;
	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;
	int		 fd;
	uint8_t		*spare;		/* [RBUF_FRONT][RA_PREFIX][data] */
	size_t		 len;		/* bytes read into the spare's data */
	enum ra_state	 state;
	int		 eof;		/* the thread saw end of file */
	int		 err;		/* -errno of a failed read, or 0 */
	int		 quit;
};

static inline uint8_t *
ra_data(uint8_t *buf)
{
	return buf + RBUF_FRONT + RA_PREFIX;
}

_Static_assert(RBUF_FRONT >= WEIR_HEADROOM, "front must hold the headroom");

static long	ra_fill(struct weir_input *, size_t);

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
	if (in->ra != NULL)
		return ra_fill(in, need);

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

static void *
ra_main(void *arg)
{
	struct rbuf_ra *ra = arg;
	uint8_t *dst;
	size_t n;
	ssize_t r;
	int err, eof;

	pthread_mutex_lock(&ra->mu);
	for (;;) {
		while (ra->state != RA_BUSY && !ra->quit)
			pthread_cond_wait(&ra->cv, &ra->mu);
		if (ra->quit)
			break;
		dst = ra_data(ra->spare);
		pthread_mutex_unlock(&ra->mu);

		n = 0;
		err = eof = 0;
		while (n < WEIR_RBUF_SIZE) {
			r = read(ra->fd, dst + n, WEIR_RBUF_SIZE - n);
			if (r < 0) {
				if (errno == EINTR)
					continue;
				err = -errno;
				break;
			}
			if (r == 0) {
				eof = 1;
				break;
			}
			n += (size_t)r;
		}

		pthread_mutex_lock(&ra->mu);
		ra->len = n;
		ra->eof = eof;
		ra->err = err;
		ra->state = RA_READY;
		pthread_cond_broadcast(&ra->cv);
	}
	pthread_mutex_unlock(&ra->mu);
	return NULL;
}

/* Wait until the thread is not reading; the caller holds ra->mu. */
static void
ra_wait(struct rbuf_ra *ra)
{
	while (ra->state == RA_BUSY)
		pthread_cond_wait(&ra->cv, &ra->mu);
}

int
weir_rbuf_readahead(struct weir_input *in)
{
	struct rbuf_ra *ra;
	struct stat sb;
	uint8_t *a = NULL, *b = NULL;
	size_t tail, front;

	if (in->ra != NULL)
		return 0;
	if (in->eof || in->buf == NULL || fstat(in->fd, &sb) != 0 ||
	    !S_ISREG(sb.st_mode) || sb.st_size < RA_MIN_FILE)
		return 1;
	/* What is held so far (up to a buffer) goes to the new buffer. */
	tail = in->len - in->pos;
	if (tail > RA_PREFIX + WEIR_RBUF_SIZE)
		return 1;
	front = tail < RA_PREFIX ? RA_PREFIX - tail : 0;
	if ((ra = calloc(1, sizeof(*ra))) == NULL)
		return -ENOMEM;
	if (posix_memalign((void **)&a, 64, RBUF_FRONT + RA_PREFIX +
	    WEIR_RBUF_SIZE) != 0 || posix_memalign((void **)&b, 64,
	    RBUF_FRONT + RA_PREFIX + WEIR_RBUF_SIZE) != 0)
		goto nomem;
	ra->fd = in->fd;
	ra->spare = b;
	ra->state = RA_BUSY;
	if (pthread_mutex_init(&ra->mu, NULL) != 0)
		goto nomem;
	if (pthread_cond_init(&ra->cv, NULL) != 0) {
		pthread_mutex_destroy(&ra->mu);
		goto nomem;
	}
	memcpy(a + RBUF_FRONT + front, in->base + in->pos, tail);
	if (weir_thread_start(&ra->thr, "weir-readahead", ra_main, ra) != 0) {
		pthread_cond_destroy(&ra->cv);
		pthread_mutex_destroy(&ra->mu);
		goto nomem;
	}
	free(in->buf);
	in->buf = a;
	in->base = a + RBUF_FRONT + front;
	in->file_off += in->pos;
	in->pos = 0;
	in->len = tail;
	in->cap = RA_PREFIX + WEIR_RBUF_SIZE - front;
	in->ra = ra;
	return 0;
nomem:
	free(a);
	free(b);
	free(ra);
	return -ENOMEM;
}

void
weir_rbuf_stop(struct weir_input *in)
{
	struct rbuf_ra *ra = in->ra;

	if (ra == NULL)
		return;
	pthread_mutex_lock(&ra->mu);
	ra->quit = 1;
	pthread_cond_broadcast(&ra->cv);
	pthread_mutex_unlock(&ra->mu);
	pthread_join(ra->thr, NULL);
	pthread_cond_destroy(&ra->cv);
	pthread_mutex_destroy(&ra->mu);
	free(ra->spare);
	free(ra);
	in->ra = NULL;
}

/*
 * A record larger than the prefix: end read-ahead and make one ordinary
 * buffer of the tail and what the thread read.  Returns 0 or < 0.
 */
static int
ra_fallback(struct weir_input *in, size_t need)
{
	struct rbuf_ra *ra = in->ra;
	size_t tail = in->len - in->pos, cap = WEIR_RBUF_SIZE, got;
	uint8_t *nb;
	int err, eof;

	pthread_mutex_lock(&ra->mu);
	ra_wait(ra);
	pthread_mutex_unlock(&ra->mu);
	got = ra->state == RA_READY ? ra->len : 0;
	err = ra->state == RA_READY ? ra->err : 0;
	eof = ra->state == RA_READY ? ra->eof : in->eof;
	while (cap < tail + got || cap < need)
		cap *= 2;
	if (cap > WEIR_RBUF_MAX)
		cap = WEIR_RBUF_MAX;
	if (cap < tail + got)
		return -EFBIG;
	if (posix_memalign((void **)&nb, 64, RBUF_FRONT + cap) != 0)
		return -ENOMEM;
	memcpy(nb + RBUF_FRONT, in->base + in->pos, tail);
	memcpy(nb + RBUF_FRONT + tail, ra_data(ra->spare), got);
	weir_rbuf_stop(in);
	free(in->buf);
	in->buf = nb;
	in->base = nb + RBUF_FRONT;
	in->file_off += in->pos;
	in->pos = 0;
	in->len = tail + got;
	in->cap = cap;
	in->eof = eof;
	return err;
}

/* weir_rbuf_fill() with read-ahead running. */
static long
ra_fill(struct weir_input *in, size_t need)
{
	struct rbuf_ra *ra = in->ra;
	size_t tail;
	uint8_t *old;
	int rc;

	while (in->len - in->pos < need && !in->eof) {
		tail = in->len - in->pos;
		if (tail > RA_PREFIX || need > RA_PREFIX + WEIR_RBUF_SIZE) {
			if ((rc = ra_fallback(in, need)) < 0)
				return rc;
			return weir_rbuf_fill(in, need);
		}
		pthread_mutex_lock(&ra->mu);
		ra_wait(ra);
		pthread_mutex_unlock(&ra->mu);
		if (ra->state != RA_READY)
			return ra->err;		/* a failed read, reported */
		/* Tail before the spare's data; swap; hand back the old. */
		memcpy(ra_data(ra->spare) - tail, in->base + in->pos, tail);
		old = in->buf;
		in->buf = ra->spare;
		in->base = ra_data(ra->spare) - tail;
		in->file_off += in->pos;
		in->pos = 0;
		in->len = tail + ra->len;
		in->cap = tail + WEIR_RBUF_SIZE;
		in->eof = ra->eof;
		pthread_mutex_lock(&ra->mu);
		ra->spare = old;
		if (ra->err != 0) {
			/* Bytes before the error first; then the error. */
			ra->state = RA_IDLE;
			if (ra->len == 0)
				return ra->err;
		} else if (!ra->eof) {
			ra->state = RA_BUSY;
			pthread_cond_signal(&ra->cv);
		} else {
			ra->state = RA_IDLE;
		}
		pthread_mutex_unlock(&ra->mu);
	}
	return (long)(in->len - in->pos);
}
