/*
 * shmring.c - the shared-memory packet ring between weir-tap and one
 * tenant's pipeline (layout, trust and wake-up rules: shmring.h).
 */
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "weir/shmring.h"

#define REC_HDR		((uint32_t)sizeof(struct weir_ring_rec))

static inline uint32_t
rec_size(uint32_t caplen)
{
	return (REC_HDR + caplen + 7u) & ~7u;
}

static long
futex(_Atomic uint32_t *addr, int op, uint32_t val,
    const struct timespec *ts)
{
	return syscall(SYS_futex, (void *)(uintptr_t)addr, op, val, ts, NULL, 0);
}

/*
 * Map header + data + data again over one reservation, so that
 * data[i] and data[i + size] are the same byte.
 */
static int
ring_map(struct weir_ring *r, int fd, uint64_t size, struct weir_err *err)
{
	uint8_t *base;
	size_t len = WEIR_RING_HDRSIZE + 2 * (size_t)size;

	base = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (base == MAP_FAILED)
		return weir_seterr(err, -errno, "ring: reserve %zu bytes: %s",
		    len, strerror(errno));
	if (mmap(base, WEIR_RING_HDRSIZE + (size_t)size, PROT_READ |
	    PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0) == MAP_FAILED ||
	    mmap(base + WEIR_RING_HDRSIZE + size, (size_t)size, PROT_READ |
	    PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, WEIR_RING_HDRSIZE) ==
	    MAP_FAILED) {
		int e = errno;

		munmap(base, len);
		return weir_seterr(err, -e, "ring: map: %s", strerror(e));
	}
	r->map = base;
	r->maplen = len;
	r->hdr = (struct weir_ring_hdr *)base;
	r->data = base + WEIR_RING_HDRSIZE;
	r->size = size;
	r->mask = size - 1;
	return 0;
}

int
weir_ring_create(struct weir_ring *r, const char *name, size_t size,
    struct weir_err *err)
{
	uint64_t sz = WEIR_RING_MINSIZE;
	int fd, rc;

	memset(r, 0, sizeof(*r));
	r->fd = -1;
	if (size > WEIR_RING_MAXSIZE)
		return weir_seterr(err, -EINVAL, "ring '%s': size %zu is "
		    "larger than %u", name, size, WEIR_RING_MAXSIZE);
	while (sz < size)
		sz <<= 1;
	/* The data area must be a multiple of the page size to map twice. */
	if (sz % (uint64_t)sysconf(_SC_PAGESIZE) != 0)
		return weir_seterr(err, -EINVAL, "ring '%s': size %llu is not "
		    "a multiple of the page size", name,
		    (unsigned long long)sz);
	fd = memfd_create(name, MFD_CLOEXEC);
	if (fd < 0)
		return weir_seterr(err, -errno, "ring '%s': memfd_create: %s",
		    name, strerror(errno));
	if (ftruncate(fd, (off_t)(WEIR_RING_HDRSIZE + sz)) != 0) {
		rc = weir_seterr(err, -errno, "ring '%s': %llu bytes: %s",
		    name, (unsigned long long)sz, strerror(errno));
		close(fd);
		return rc;
	}
	if ((rc = ring_map(r, fd, sz, err)) < 0) {
		close(fd);
		return rc;
	}
	r->fd = fd;
	r->hdr->magic = WEIR_RING_MAGIC;
	r->hdr->version = WEIR_RING_VERSION;
	r->hdr->size = sz;
	return 0;
}

int
weir_ring_add_iface(struct weir_ring *r, uint16_t linktype,
    uint32_t snaplen, uint8_t tsresol, const char *name)
{
	struct weir_ring_iface *f;

	if (r->hdr->niface >= WEIR_RING_MAXIFACES)
		return -ENOSPC;
	f = &r->hdr->iface[r->hdr->niface];
	f->linktype = linktype;
	f->snaplen = snaplen;
	f->tsresol = tsresol;
	snprintf(f->name, sizeof(f->name), "%s", name);
	return (int)r->hdr->niface++;
}

int
weir_ring_attach(struct weir_ring *r, int fd, struct weir_err *err)
{
	struct weir_ring_hdr h;
	struct stat sb;
	uint32_t i;
	int rc;

	memset(r, 0, sizeof(*r));
	r->fd = -1;
	if (fstat(fd, &sb) != 0)
		return weir_seterr(err, -errno, "ring fd %d: %s", fd,
		    strerror(errno));
	if (sb.st_size < (off_t)WEIR_RING_HDRSIZE ||
	    pread(fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h))
		return weir_seterr(err, -WEIR_EFORMAT, "ring fd %d: too short "
		    "for a ring header", fd);
	if (h.magic != WEIR_RING_MAGIC || h.version != WEIR_RING_VERSION)
		return weir_seterr(err, -WEIR_EFORMAT, "ring fd %d: not a weir "
		    "ring (magic 0x%08x version %u)", fd, h.magic, h.version);
	if (h.size < WEIR_RING_MINSIZE || h.size > WEIR_RING_MAXSIZE ||
	    (h.size & (h.size - 1)) != 0 ||
	    (uint64_t)sb.st_size != WEIR_RING_HDRSIZE + h.size)
		return weir_seterr(err, -WEIR_EFORMAT, "ring fd %d: bad data "
		    "size %llu for a file of %lld bytes", fd,
		    (unsigned long long)h.size, (long long)sb.st_size);
	if (h.niface > WEIR_RING_MAXIFACES)
		return weir_seterr(err, -WEIR_EFORMAT, "ring fd %d: %u "
		    "interfaces, at most %u", fd, h.niface,
		    WEIR_RING_MAXIFACES);
	if ((rc = ring_map(r, fd, h.size, err)) < 0)
		return rc;
	r->fd = fd;
	r->niface = h.niface;
	r->flags = h.flags;
	memcpy(r->source, h.source, sizeof(r->source));
	r->source[sizeof(r->source) - 1] = '\0';
	memcpy(r->iface, h.iface, sizeof(r->iface));
	for (i = 0; i < r->niface; i++)
		r->iface[i].name[sizeof(r->iface[i].name) - 1] = '\0';
	r->rpos = atomic_load_explicit(&r->hdr->tail, memory_order_relaxed);
	atomic_store(&r->hdr->consumer_pid, (uint32_t)getpid());
	return 0;
}

void
weir_ring_close(struct weir_ring *r)
{
	if (r->map != NULL)
		munmap(r->map, r->maplen);
	if (r->fd >= 0)
		close(r->fd);
	r->map = NULL;
	r->hdr = NULL;
	r->data = NULL;
	r->fd = -1;
}

int
weir_ring_put(struct weir_ring *r, const uint8_t *data, uint32_t caplen,
    uint32_t wirelen, uint64_t ts, uint16_t iface, uint8_t dir)
{
	struct weir_ring_hdr *h = r->hdr;
	struct weir_ring_rec *rec;
	uint32_t sz;
	uint64_t t;

	atomic_fetch_add_explicit(&h->offered, 1, memory_order_relaxed);
	if (r->broken)
		goto drop;
	sz = rec_size(caplen);
	if (caplen > r->size / 2)
		goto drop;
	if (r->whead + sz - r->ctail > r->size) {
		/* Look again at what the consumer has released. */
		t = atomic_load_explicit(&h->tail, memory_order_acquire);
		if (t > r->whead || r->whead - t > r->size) {
			r->broken = 1;	/* a tail it cannot have written */
			goto drop;
		}
		r->ctail = t;
		if (r->whead + sz - t > r->size)
			goto drop;
	}
	rec = (struct weir_ring_rec *)(r->data + (r->whead & r->mask));
	rec->size = sz;
	rec->caplen = caplen;
	rec->wirelen = wirelen;
	rec->iface = iface;
	rec->dir = dir;
	rec->flags = 0;
	rec->ts = ts;
	memcpy(rec + 1, data, caplen);
	r->whead += sz;
	atomic_fetch_add_explicit(&h->written, 1, memory_order_relaxed);
	return 0;
drop:
	if (r->broken)
		r->broken_drops++;
	atomic_fetch_add_explicit(&h->full_drops, 1, memory_order_relaxed);
	return -ENOSPC;
}

int
weir_ring_fits(struct weir_ring *r, uint32_t caplen)
{
	uint64_t t;

	if (r->broken || caplen > r->size / 2)
		return 0;
	t = atomic_load_explicit(&r->hdr->tail, memory_order_acquire);
	if (t > r->whead || r->whead - t > r->size)
		return 0;
	r->ctail = t;
	return r->whead + rec_size(caplen) - t <= r->size;
}

static void
ring_wake(struct weir_ring *r)
{
	struct weir_ring_hdr *h = r->hdr;

	r->wake_pending = 0;
	r->woken_at = r->whead;
	r->wakes++;
	atomic_fetch_add_explicit(&h->wake, 1, memory_order_relaxed);
	futex(&h->wake, FUTEX_WAKE, 1, NULL);
}

void
weir_ring_publish(struct weir_ring *r)
{
	struct weir_ring_hdr *h = r->hdr;

	if (atomic_load_explicit(&h->head, memory_order_relaxed) == r->whead)
		return;
	atomic_store_explicit(&h->head, r->whead, memory_order_release);
	/* Pairs with the consumer's fence between `waiting` and `head`. */
	atomic_thread_fence(memory_order_seq_cst);
	if (!atomic_load_explicit(&h->waiting, memory_order_relaxed))
		return;
	if (r->whead - r->woken_at >= r->size / 8)
		ring_wake(r);
	else
		r->wake_pending = 1;
}

int
weir_ring_kick(struct weir_ring *r)
{
	if (!r->wake_pending)
		return 0;
	atomic_thread_fence(memory_order_seq_cst);
	if (!atomic_load_explicit(&r->hdr->waiting, memory_order_relaxed)) {
		/* it woke by itself (timeout) and will see the records */
		r->wake_pending = 0;
		return 0;
	}
	ring_wake(r);
	return 1;
}

void
weir_ring_finish(struct weir_ring *r)
{
	weir_ring_publish(r);
	atomic_store_explicit(&r->hdr->done, 1, memory_order_release);
	ring_wake(r);
}

/* Sleep until head moves, done is set, or timeout_ms passes. */
static void
ring_wait(struct weir_ring *r, int timeout_ms)
{
	struct weir_ring_hdr *h = r->hdr;
	struct timespec ts;
	uint32_t w;

	w = atomic_load_explicit(&h->wake, memory_order_acquire);
	atomic_store_explicit(&h->waiting, 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load_explicit(&h->head, memory_order_acquire) == r->rpos &&
	    !atomic_load_explicit(&h->done, memory_order_acquire)) {
		ts.tv_sec = timeout_ms / 1000;
		ts.tv_nsec = (long)(timeout_ms % 1000) * 1000000L;
		futex(&h->wake, FUTEX_WAIT, w, &ts);
	}
	atomic_store_explicit(&h->waiting, 0, memory_order_relaxed);
}

int
weir_ring_read(struct weir_ring *r, struct weir_pkt *pkts, unsigned max,
    int timeout_ms, const uint16_t *ifmap, struct weir_err *err)
{
	struct weir_ring_hdr *h = r->hdr;
	const struct weir_ring_rec *rec;
	struct weir_pkt *pk;
	uint64_t head;
	unsigned n = 0;
	int waited = 0;

	/* The previous batch is done with: give its bytes back. */
	atomic_store_explicit(&h->tail, r->rpos, memory_order_release);
	for (;;) {
		head = atomic_load_explicit(&h->head, memory_order_acquire);
		if (head != r->rpos)
			break;
		if (atomic_load_explicit(&h->done, memory_order_acquire)) {
			/* done is set after the last publish */
			head = atomic_load_explicit(&h->head,
			    memory_order_acquire);
			if (head != r->rpos)
				break;
			return 0;
		}
		if (waited)
			return -EAGAIN;
		ring_wait(r, timeout_ms);
		waited = 1;
	}
	if (head - r->rpos > r->size)
		return weir_seterr(err, -WEIR_EFORMAT, "ring: head %llu is "
		    "more than a ring ahead of %llu",
		    (unsigned long long)head, (unsigned long long)r->rpos);
	while (n < max && r->rpos != head) {
		rec = (const struct weir_ring_rec *)(r->data +
		    (r->rpos & r->mask));
		if (head - r->rpos < REC_HDR || rec->size > head - r->rpos ||
		    rec->size != rec_size(rec->caplen) ||
		    rec->iface >= r->niface || rec->wirelen < rec->caplen)
			return weir_seterr(err, -WEIR_EFORMAT, "ring: bad "
			    "record at %llu (size %u caplen %u wirelen %u "
			    "iface %u)", (unsigned long long)r->rpos,
			    rec->size, rec->caplen, rec->wirelen,
			    rec->iface);
		pk = &pkts[n++];
		pk->data = (uint8_t *)(uintptr_t)(rec + 1);
		pk->caplen = rec->caplen;
		pk->wirelen = rec->wirelen;
		pk->ts = rec->ts;
		pk->iface = ifmap != NULL ? ifmap[rec->iface] : rec->iface;
		pk->linktype = r->iface[rec->iface].linktype;
		pk->dir = rec->dir;
		pk->drop = 0;
		pk->decoded = 0;
		pk->modified = 0;
		pk->epb_flags = 0;
		r->rpos += rec->size;
	}
	return (int)n;
}
