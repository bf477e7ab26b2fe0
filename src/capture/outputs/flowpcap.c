/*
 * flowpcap.c - the "flowpcap" output: one pcap file per flow, holding
 * the headers of the flow's packets (M-Lab packet-headers' output).
 * docs/flows.md ("Per-flow pcap files") describes what users see.
 *
 * Layout: DIR/YYYY/MM/DD/UUID.pcap[.zst] (UTC date of the flow's first
 * packet), UUIDv7 names, and DIR/YYYY/MM/DD/index.jsonl with one line
 * per published file.  A file only gets its final name when its flow
 * has ended and it is whole; its index line is appended only after
 * that, so no index line names a missing file.
 *
 * Threads.  This file is the pipeline thread's side: flow table, pool,
 * stream writes.  When a flow ends, its records still in memory, its
 * open descriptor and what the index line needs go to the writer
 * (flowpcap_writer.c) as one job; the writer thread creates, writes,
 * compresses and publishes the file and writes the index lines, while
 * this thread goes on with the next packets.
 *
 * Memory.  The flow table (include/weir/flow.h) holds max_flows entries,
 * each with a struct fp_flow as its user area.  Records (16-byte pcap
 * record header + the kept bytes, payload zeroed) are copied into
 * fixed-size chunks of one pool of max_memory bytes allocated at open():
 * a flow's records are a chain of chunks.  In buffered mode a chain
 * grows until the flow ends and is then written with one writev(); in
 * stream mode it is written when it fills a chunk (at the end of that
 * packet() call) or STREAM_DELAY of packet time after its oldest record
 * (tick()), so a stream flow costs one writev() per chunk, not per
 * packet.  When the pool is empty, the chunks of jobs the writers have
 * done are taken back (waiting for them while they hold some), then
 * stream flows with records in memory are written, then buffered flows
 * are switched to stream mode (the largest of the 8 oldest), so memory
 * never grows past max_memory.
 *
 * Open files.  Stream flows keep their hidden file open in one of
 * max_open_files slots (LRU); a flow whose slot was taken reopens its
 * file with O_APPEND.  When a stream flow ends its descriptor goes to
 * the writer with its last records; a buffered flow's file is created,
 * written and named by the writer in one go.
 *
 * Nothing is allocated per packet; per flow only the file (and the
 * index line, formatted into a fixed buffer by the writer).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <zstd.h>

#include "weir/decode.h"
#include "weir/flow.h"
#include "weir/log.h"
#include "weir/module.h"
#include "weir/pkt.h"
#include "capture/outputs/filewriter.h"
#include "capture/outputs/flowpcap_writer.h"

#define MOD		"flowpcap"
#define NS		UINT64_C(1000000000)
#define DAY_NS		(UINT64_C(86400) * NS)
#define PCAP_HDR	FPW_PCAP_HDR
#define FILE_HDR	FPW_FILE_HDR
#define MAX_SNAP	262144
#define NONE		FPW_NONE
#define NDAYS		4		/* cached day directories */
#define VICTIM_SCAN	8		/* buffered flows looked at */
#define RND_BYTES	4096
#define NIOV		1024		/* <= IOV_MAX */
#define MAX_WRITERS	16

/* Protocol selection bits. */
#define P_TCP		0x1
#define P_UDP		0x2
#define P_ICMP		0x4

/* struct fp_flow.flags */
#define F_INIT		0x01	/* first packet seen */
#define F_STREAM	0x02	/* written as it comes */
#define F_FILE		0x04	/* the hidden file exists */
#define F_LISTED	0x08	/* on the buffered or the dirty list */
#define F_FAILED	0x10	/* a write failed: nothing more is kept */
#define F_DIRTYLIST	0x20	/* listed on dirty */
#define F_WAITLIST	0x40	/* listed on waiting */

/* Lists a flow with records in memory is on. */
#define L_BUFFERED	0	/* buffered mode: written when it ends */
#define L_DIRTY		1	/* stream: written at the end of the batch */
#define L_WAITING	2	/* stream: written when a chunk is full or
				   STREAM_DELAY after its oldest record */
#define STREAM_DELAY	NS	/* packet time */

/*
 * Per-flow state: the flow table's user area (zeroed at creation).
 * prev/next link the flow on one of two lists while it has records in
 * memory: "buffered" (oldest first) or "dirty" (stream flows, written
 * at the end of the batch).  The pointers stay valid because a flow is
 * taken off its list before its expiry callback returns.
 */
struct fp_flow {
	struct weir_flow *prev, *next;
	uint64_t	first_ts;	/* first packet of the flow (ns) */
	uint64_t	last_ts;	/* last packet kept */
	uint64_t	since;		/* oldest record in memory */
	uint64_t	file_size;	/* bytes committed to the hidden file */
	uint64_t	kept;		/* packets written or pending */
	uint64_t	written;	/* packets in the file */
	uint64_t	skipped;	/* after capture_duration */
	uint64_t	lt_dropped;	/* other link type */
	uint64_t	missed;		/* lost to write errors */
	uint32_t	head, tail;	/* chunk chain */
	uint32_t	pending;	/* bytes in the chain */
	uint32_t	npending;	/* packets in the chain */
	uint32_t	nchunks;	/* chunks in the chain */
	uint32_t	tail_used;	/* = CH(tail)->used, kept here: the
					   chunk is cold, the entry is not */
	int32_t		slot;		/* open file slot, -1 if none */
	uint16_t	linktype;
	uint8_t		flags;
	uint8_t		uuid[16];
};

struct fp_slot {
	int		 fd;
	struct weir_flow *f;
	int32_t		 prev, next;	/* LRU list; -1 ends */
};

/* Day directories of stream files (the writer has its own). */
struct fp_day {
	int64_t		day;		/* days since the epoch, -1 unused */
	int		dfd;		/* the directory */
	uint64_t	used;		/* LRU stamp */
	char		rel[48];	/* "YYYY/MM/DD" */
};

struct fp_list {
	struct weir_flow *head, *tail;
	uint64_t	 n;
};

struct fp_out {
	int		 finished;	/* finish() ran */
	struct weir_flowtab *ft;
	char		*dir;
	int		 dirfd;
	unsigned	 protos;
	uint64_t	 duration_ns;	/* 0 = no limit */
	uint32_t	 snap;
	int		 zero, stream, compress, clevel, nano, index;
	uint64_t	 min_packets;
	int		 nthreads;		/* writer threads wanted */
	uint32_t	 queue;			/* ring length of each */
	struct fpw	*w[MAX_WRITERS];
	int		 nw;			/* >= 1 once open */

	/* chunk pool */
	uint8_t		*pool;
	size_t		 csize;
	uint32_t	 nchunks, fresh, freelist, used, peak;

	struct fp_list	 lists[3];		/* L_* */

	/* open files */
	struct fp_slot	*slots;
	int32_t		 nslots, lru_head, lru_tail, free_slot;

	struct fp_day	 days[NDAYS];
	uint64_t	 day_clock;

	uint8_t		 rnd[RND_BYTES];
	size_t		 rnd_off;

	struct iovec	 iov[NIOV];
	uint8_t		 fhdr[FILE_HDR];

	/* counters (packet-headers' metric in brackets, docs/flows.md) */
	uint64_t	 flows_started;		/* pcap_saver_starts_total */
	uint64_t	 flows_ended;		/* pcap_saver_stops_total */
	uint64_t	 flows_gc;		/* ..._garbage_collected */
	uint64_t	 flows_eof, flows_forced, flows_evicted;
	uint64_t	 missed;		/* pcap_missed_packets_total */
	uint64_t	 active;		/* pcap_demuxer_savers_active */
	uint64_t	 bad;			/* pcap_demuxer_bad_packets */
	uint64_t	 ignored;		/* protocol not selected */
	uint64_t	 skipped;		/* after capture_duration */
	uint64_t	 lt_dropped;
	uint64_t	 written, written_bytes, pending;
	uint64_t	 queued;		/* packets handed to the writer */
	uint64_t	 write_errors;		/* stream writes */
	uint64_t	 switched, reopened, small_flows, small_packets;
	uint64_t	 mem_bound;		/* flow table + pool */
};

static const char *const fp_keys[] = { "type", "dir", "protocols",
	"flow_timeout", "capture_duration", "max_header_size",
	"zero_payload", "mode", "max_memory", "max_flows", "max_open_files",
	"compress", "compress_level", "precision", "min_packets", "index",
	"writer_threads", "queue_length", NULL };
static const char *const modes[] = { "buffered", "stream", NULL };
static const char *const compressions[] = { "none", "zstd", NULL };
static const char *const precisions[] = { "us", "ns", NULL };
static const char *const proto_names[] = { "tcp", "udp", "icmp", NULL };

static int
fp_check(json_t *conf, const json_t *policy, struct weir_err *err)
{
	json_t *a, *v;
	size_t i;
	int rc, k, seen = 0;
	long long lvl;

	if ((rc = weir_conf_known(conf, MOD, fp_keys, err)) < 0 ||
	    (rc = weir_conf_str(conf, MOD, "dir", NULL, 0, NULL, err)) < 0 ||
	    (rc = weir_conf_num(conf, MOD, "flow_timeout", 30, 0.001,
	    86400 * 7, NULL, err)) < 0 ||
	    (rc = weir_conf_num(conf, MOD, "capture_duration", 30, 0,
	    86400 * 366, NULL, err)) < 0 ||
	    (rc = weir_conf_int(conf, MOD, "max_header_size", 256, 1,
	    MAX_SNAP, NULL, err)) < 0 ||
	    (rc = weir_conf_bool(conf, MOD, "zero_payload", 1, NULL,
	    err)) < 0 ||
	    (rc = weir_conf_enum(conf, MOD, "mode", "buffered", modes, NULL,
	    err)) < 0 ||
	    (rc = weir_conf_int(conf, MOD, "max_memory", 256LL << 20,
	    1LL << 16, 1LL << 40, NULL, err)) < 0 ||
	    (rc = weir_conf_int(conf, MOD, "max_flows", 100000, 1,
	    100000000, NULL, err)) < 0 ||
	    (rc = weir_conf_int(conf, MOD, "max_open_files", 256, 1, 65536,
	    NULL, err)) < 0 ||
	    (rc = weir_conf_enum(conf, MOD, "compress", "none", compressions,
	    NULL, err)) < 0 ||
	    (rc = weir_conf_int(conf, MOD, "compress_level", 3,
	    ZSTD_minCLevel(), ZSTD_maxCLevel(), &lvl, err)) < 0 ||
	    (rc = weir_conf_enum(conf, MOD, "precision", "us", precisions,
	    NULL, err)) < 0 ||
	    (rc = weir_conf_int(conf, MOD, "min_packets", 1, 1, 1000000,
	    NULL, err)) < 0 ||
	    (rc = weir_conf_bool(conf, MOD, "index", 1, NULL, err)) < 0 ||
	    (rc = weir_conf_int(conf, MOD, "writer_threads", 2, 0,
	    MAX_WRITERS, NULL, err)) < 0 ||
	    (rc = weir_conf_int(conf, MOD, "queue_length", 1024, 1, 65536,
	    NULL, err)) < 0)
		return rc;
	if ((a = json_object_get(conf, "protocols")) == NULL) {
		json_object_set_new(conf, "protocols", json_pack("[s]",
		    "tcp"));
		return 0;
	}
	if (!json_is_array(a) || json_array_size(a) == 0)
		return weir_seterr(err, -WEIR_ECONFIG, "%s: 'protocols' must "
		    "be a non-empty array of \"tcp\", \"udp\", \"icmp\"", MOD);
	json_array_foreach(a, i, v) {
		for (k = 0; proto_names[k] != NULL; k++)
			if (json_is_string(v) && strcmp(json_string_value(v),
			    proto_names[k]) == 0)
				break;
		if (proto_names[k] == NULL)
			return weir_seterr(err, -WEIR_ECONFIG, "%s: "
			    "'protocols'[%zu] must be \"tcp\", \"udp\" or "
			    "\"icmp\"", MOD, i);
		if (seen & (1 << k))
			return weir_seterr(err, -WEIR_ECONFIG, "%s: "
			    "'protocols' names \"%s\" twice", MOD,
			    proto_names[k]);
		seen |= 1 << k;
	}
	return 0;
}

/* ---- small helpers ---- */

static struct fp_flow *
U(struct weir_flow *f)
{
	return f->user;
}

static struct fpw_chunk *
CH(const struct fp_out *o, uint32_t i)
{
	return (struct fpw_chunk *)(void *)(o->pool + (size_t)i * o->csize);
}

#define note_error(o, ...)	fpw_note_error((o)->w[0], __VA_ARGS__)

/*
 * UUIDv7 (RFC 9562): 48 bits of Unix milliseconds (the flow's first
 * packet), version 7, variant 10, 74 random bits from getrandom(),
 * drawn 4 KiB at a time.
 */
static int
uuid_make(struct fp_out *o, uint64_t ts, uint8_t *u)
{
	uint64_t ms = ts / 1000000;
	ssize_t n;
	int i;

	if (o->rnd_off + 10 > sizeof(o->rnd)) {
		n = getrandom(o->rnd, sizeof(o->rnd), 0);
		if (n != (ssize_t)sizeof(o->rnd))
			return n < 0 ? -errno : -EIO;
		o->rnd_off = 0;
	}
	for (i = 0; i < 6; i++)
		u[i] = (uint8_t)(ms >> (40 - 8 * i));
	memcpy(u + 6, o->rnd + o->rnd_off, 10);
	o->rnd_off += 10;
	u[6] = (uint8_t)(0x70 | (u[6] & 0x0f));
	u[8] = (uint8_t)(0x80 | (u[8] & 0x3f));
	return 0;
}

/* ---- lists ---- */

static void
list_add(struct fp_out *o, struct weir_flow *f, int which)
{
	struct fp_list *l = &o->lists[which];
	struct fp_flow *u = U(f);

	u->prev = l->tail;
	u->next = NULL;
	if (l->tail != NULL)
		U(l->tail)->next = f;
	else
		l->head = f;
	l->tail = f;
	l->n++;
	u->flags |= F_LISTED | (which == L_DIRTY ? F_DIRTYLIST : 0) |
	    (which == L_WAITING ? F_WAITLIST : 0);
}

static int
list_of(const struct fp_flow *u)
{
	return (u->flags & F_DIRTYLIST) ? L_DIRTY :
	    (u->flags & F_WAITLIST) ? L_WAITING : L_BUFFERED;
}

static void
list_del(struct fp_out *o, struct weir_flow *f)
{
	struct fp_flow *u = U(f);
	struct fp_list *l;

	if (!(u->flags & F_LISTED))
		return;
	l = &o->lists[list_of(u)];
	if (u->prev != NULL)
		U(u->prev)->next = u->next;
	else
		l->head = u->next;
	if (u->next != NULL)
		U(u->next)->prev = u->prev;
	else
		l->tail = u->prev;
	l->n--;
	u->prev = u->next = NULL;
	u->flags &= (uint8_t)~(F_LISTED | F_DIRTYLIST | F_WAITLIST);
}

/*
 * Where a flow with records in memory belongs.  Stream flows below
 * min_packets behave as buffered ones until they qualify; a stream
 * flow is written once it fills a chunk (so one writev() carries a few
 * KiB, not one packet), or STREAM_DELAY after its oldest record.
 */
static int
wanted_list(const struct fp_out *o, const struct fp_flow *u)
{
	if (!(u->flags & F_STREAM) || (!(u->flags & F_FILE) &&
	    u->kept < o->min_packets))
		return L_BUFFERED;
	return u->head != u->tail ? L_DIRTY : L_WAITING;
}

/* ---- chunk pool ---- */

static void
chain_free(struct fp_out *o, struct fp_flow *u)
{
	uint32_t i, nx;

	for (i = u->head; i != NONE; i = nx) {
		nx = CH(o, i)->next;
		CH(o, i)->next = o->freelist;
		o->freelist = i;
		o->used--;
	}
	u->head = u->tail = NONE;
	o->pending -= u->npending;
	u->pending = u->npending = u->nchunks = 0;
}

/* ---- day directories ---- */

static struct fp_day *
day_get(struct fp_out *o, uint64_t ts)
{
	struct fp_day *d, *lru = &o->days[0];
	int64_t day = (int64_t)(ts / DAY_NS);
	int i, rc;

	for (i = 0; i < NDAYS; i++) {
		d = &o->days[i];
		if (d->day == day) {
			d->used = ++o->day_clock;
			return d;
		}
		if (d->used < lru->used)
			lru = d;
	}
	d = lru;
	if (d->dfd >= 0)
		close(d->dfd);
	d->dfd = -1;
	d->day = -1;
	if ((rc = fpw_day_path(o->dirfd, day, d->rel, sizeof(d->rel),
	    &d->dfd)) < 0) {
		note_error(o, "cannot create directory '%s': %s", d->rel,
		    strerror(-rc));
		d->dfd = -1;
		return NULL;
	}
	d->day = day;
	d->used = ++o->day_clock;
	return d;
}

/* ---- open file slots (stream mode) ---- */

static void
slot_unlink(struct fp_out *o, int32_t s)
{
	struct fp_slot *x = &o->slots[s];

	if (x->prev >= 0)
		o->slots[x->prev].next = x->next;
	else
		o->lru_head = x->next;
	if (x->next >= 0)
		o->slots[x->next].prev = x->prev;
	else
		o->lru_tail = x->prev;
	x->prev = x->next = -1;
}

/* Most recently used at the tail. */
static void
slot_touch(struct fp_out *o, int32_t s)
{
	struct fp_slot *x = &o->slots[s];

	if (o->lru_tail == s)
		return;
	if (x->prev >= 0 || o->lru_head == s)
		slot_unlink(o, s);
	x->prev = o->lru_tail;
	x->next = -1;
	if (o->lru_tail >= 0)
		o->slots[o->lru_tail].next = s;
	else
		o->lru_head = s;
	o->lru_tail = s;
}

static void
slot_release(struct fp_out *o, struct fp_flow *u)
{
	int32_t s = u->slot;

	if (s < 0)
		return;
	slot_unlink(o, s);
	if (o->slots[s].fd >= 0)
		close(o->slots[s].fd);
	o->slots[s].fd = -1;
	o->slots[s].f = NULL;
	o->slots[s].next = o->free_slot;
	o->free_slot = s;
	u->slot = -1;
}

/* A slot for f's fd: a free one, or the least recently used one. */
static int32_t
slot_get(struct fp_out *o, struct weir_flow *f, int fd)
{
	int32_t s = o->free_slot;

	if (s >= 0)
		o->free_slot = o->slots[s].next;
	else {
		s = o->lru_head;
		slot_release(o, U(o->slots[s].f));
		o->free_slot = o->slots[s].next;
	}
	o->slots[s].fd = fd;
	o->slots[s].f = f;
	o->slots[s].prev = o->slots[s].next = -1;
	slot_touch(o, s);
	U(f)->slot = s;
	return s;
}

/* ---- writing ---- */

/*
 * The fd of f's hidden file: its slot, a reopened file, or a new one.
 * With keep, the fd goes into a slot; else the caller closes it
 * (buffered flows write once).  *fresh is set when the file is new.
 */
static int
flow_fd(struct fp_out *o, struct weir_flow *f, int keep, int *fresh)
{
	struct fp_flow *u = U(f);
	struct fp_day *d;
	char name[64];
	int fd, fl = O_WRONLY | O_APPEND | O_CLOEXEC;

	*fresh = 0;
	if (u->slot >= 0) {
		slot_touch(o, u->slot);
		return o->slots[u->slot].fd;
	}
	if ((d = day_get(o, u->first_ts)) == NULL)
		return -EIO;
	fpw_hidden_name(u->uuid, name, sizeof(name), 0);
	if (!(u->flags & F_FILE)) {
		fl |= O_CREAT | O_TRUNC;
		*fresh = 1;
	} else
		o->reopened++;
	if ((fd = openat(d->dfd, name, fl, 0640)) < 0) {
		fd = -errno;
		note_error(o, "cannot open '%s': %s", name, strerror(errno));
		return fd;
	}
	u->flags |= F_FILE;
	if (keep)
		slot_get(o, f, fd);
	return fd;
}

/*
 * Write f's records in memory to its hidden file and free them.  On a
 * write error the file is cut back to its last record, the flow is
 * marked failed and the records counted in missed_packets.
 */
static int
flow_write(struct fp_out *o, struct weir_flow *f, int keep)
{
	struct fp_flow *u = U(f);
	uint64_t bytes;
	uint32_t c;
	int fd, fresh, n = 0, rc = 0;
	char name[64];

	list_del(o, f);
	if (u->head == NONE)
		return 0;
	if (u->flags & F_FAILED) {
		u->missed += u->npending;
		o->missed += u->npending;
		chain_free(o, u);
		return 0;
	}
	if ((fd = flow_fd(o, f, keep, &fresh)) < 0) {
		rc = fd;
		goto fail;
	}
	bytes = u->pending;
	if (fresh) {
		fpw_file_header(o->fhdr, o->nano, o->snap, u->linktype);
		o->iov[n].iov_base = o->fhdr;
		o->iov[n++].iov_len = FILE_HDR;
		bytes += FILE_HDR;
	}
	for (c = u->head; c != NONE; c = CH(o, c)->next) {
		o->iov[n].iov_base = CH(o, c) + 1;
		o->iov[n++].iov_len = CH(o, c)->used;
		if (n == NIOV || CH(o, c)->next == NONE) {
			if ((rc = fpw_writev_all(fd, o->iov, n)) < 0)
				break;
			n = 0;
		}
	}
	if (rc < 0) {
		o->write_errors++;
		fpw_hidden_name(u->uuid, name, sizeof(name), 0);
		note_error(o, "cannot write '%s': %s", name, strerror(-rc));
		/* Keep the file whole: cut back to the last record. */
		if (ftruncate(fd, (off_t)u->file_size) < 0)
			note_error(o, "cannot truncate '%s': %s", name,
			    strerror(errno));
		if (fresh && u->file_size == 0)
			u->flags &= (uint8_t)~F_FILE;
	} else {
		u->file_size += bytes;
		u->written += u->npending;
		o->written += u->npending;
		o->written_bytes += u->pending - (uint64_t)u->npending *
		    PCAP_HDR;
	}
	if (!keep && u->slot < 0)
		close(fd);
	if (rc == 0) {
		o->pending -= u->npending;
		u->npending = u->pending = 0;
		chain_free(o, u);
		return 0;
	}
fail:
	u->flags |= F_FAILED;
	u->missed += u->npending;
	o->missed += u->npending;
	chain_free(o, u);
	return rc;
}

/* Write the records of every stream flow (end of a batch). */
static void
flush_dirty(struct fp_out *o)
{
	while (o->lists[L_DIRTY].head != NULL)
		flow_write(o, o->lists[L_DIRTY].head, 1);
}

/*
 * Make room in the pool: stream flows first, then switch the largest
 * of the oldest buffered flows to stream mode.
 */
static void
make_room(struct fp_out *o)
{
	struct weir_flow *f, *victim;
	int k, big, vbig = 0;

	if (o->lists[L_DIRTY].head != NULL) {
		flush_dirty(o);
		return;
	}
	if (o->lists[L_WAITING].head != NULL) {
		flow_write(o, o->lists[L_WAITING].head, 1);
		return;
	}
	/*
	 * Flows below min_packets are passed over when possible: writing
	 * them would give a flood's one-packet flows files after all.
	 */
	victim = o->lists[L_BUFFERED].head;
	for (f = victim, k = 0; f != NULL && k < VICTIM_SCAN;
	    f = U(f)->next, k++) {
		big = U(f)->kept >= o->min_packets;
		if (big > vbig || (big == vbig && U(f)->pending >
		    U(victim)->pending)) {
			victim = f;
			vbig = big;
		}
	}
	if (victim == NULL)
		return;
	if (!(U(victim)->flags & F_STREAM)) {
		U(victim)->flags |= F_STREAM;
		o->switched++;
	}
	flow_write(o, victim, 1);
}

/* Chunks of jobs the writer has finished go back on the free list. */
static int
reclaim(struct fp_out *o)
{
	uint32_t head, tail, n;
	int i, got = 0;

	for (i = 0; i < o->nw; i++) {
		if ((n = fpw_reclaim(o->w[i], &head, &tail)) == 0)
			continue;
		CH(o, tail)->next = o->freelist;
		o->freelist = head;
		o->used -= n;
		got = 1;
	}
	return got;
}

/* The writer with the most jobs queued, NULL if all are idle. */
static struct fpw *
busiest(struct fp_out *o)
{
	uint32_t n, max = 0;
	struct fpw *w = NULL;
	int i;

	for (i = 0; i < o->nw; i++)
		if ((n = fpw_queued(o->w[i])) > max) {
			max = n;
			w = o->w[i];
		}
	return w;
}

/* The writer with the fewest jobs queued. */
static struct fpw *
idlest(struct fp_out *o)
{
	uint32_t n, min = UINT32_MAX;
	struct fpw *w = o->w[0];
	int i;

	for (i = 0; i < o->nw && min > 0; i++)
		if ((n = fpw_queued(o->w[i])) < min) {
			min = n;
			w = o->w[i];
		}
	return w;
}

/*
 * A free chunk: from the free list, from the writer's finished jobs
 * (before fresh chunks, so that resident memory follows what is held,
 * not the pool's size), fresh, or, with the pool in use, by waiting
 * for the writer to finish a job, then by writing flows out.
 */
static uint32_t
chunk_alloc(struct fp_out *o)
{
	struct fpw *w;
	uint32_t i;

	for (;;) {
		if (o->freelist != NONE) {
			i = o->freelist;
			o->freelist = CH(o, i)->next;
			break;
		}
		if (reclaim(o))
			continue;
		if (o->fresh < o->nchunks) {
			i = o->fresh++;
			break;
		}
		if ((w = busiest(o)) != NULL) {
			fpw_wait(w);
			continue;
		}
		if (o->lists[L_DIRTY].head == NULL &&
		    o->lists[L_WAITING].head == NULL &&
		    o->lists[L_BUFFERED].head == NULL)
			return NONE;
		make_room(o);
	}
	CH(o, i)->next = NONE;
	CH(o, i)->used = 0;
	if (++o->used > o->peak)
		o->peak = o->used;
	return i;
}

/* ---- publishing ---- */

/*
 * The flow ended: hand its records in memory, its descriptor and its
 * index fields to the writer, which publishes the file.  The flow's
 * entry may be reused as soon as this returns: the job holds copies.
 */
static void
flow_publish(struct fp_out *o, struct weir_flow *f)
{
	struct fp_flow *u = U(f);
	struct fpw *w;
	struct fpw_job *j;
	int32_t s;

	list_del(o, f);
	if (!(u->flags & F_FILE) && u->head == NONE)
		return;		/* nothing was kept (failed, empty) */
	w = idlest(o);
	j = fpw_job_slot(w);
	j->key = f->key;
	memcpy(j->uuid, u->uuid, sizeof(j->uuid));
	j->first_ts = u->first_ts;
	j->last_ts = f->end[0] > f->end[1] ? f->end[0] : f->end[1];
	memcpy(j->pkts, f->pkts, sizeof(j->pkts));
	memcpy(j->bytes, f->bytes, sizeof(j->bytes));
	if ((u->flags & F_FAILED) && u->npending > 0) {
		u->missed += u->npending;
		o->missed += u->npending;
		chain_free(o, u);
	}
	j->file_size = u->file_size;
	j->written = u->written;
	j->skipped = u->skipped;
	j->lt_dropped = u->lt_dropped;
	j->missed = u->missed;
	j->linktype = u->linktype;
	j->end_reason = f->end_reason;
	j->flags = ((u->flags & F_FILE) ? FJ_FILE : 0) |
	    ((u->flags & F_FAILED) ? FJ_FAILED : 0);
	if ((s = u->slot) >= 0) {
		/* The descriptor goes with the job, open. */
		j->fd = o->slots[s].fd;
		o->slots[s].fd = -1;
		slot_release(o, u);
	}
	if (u->head != NONE) {
		j->head = u->head;
		j->pending = u->pending;
		j->npending = u->npending;
		j->nchunks = u->nchunks;
		o->pending -= u->npending;
		o->queued += u->npending;
		u->head = u->tail = NONE;
		u->pending = u->npending = u->nchunks = 0;
	}
	fpw_job_commit(w);
}

/* Expiry callback of the flow table. */
static void
fp_expire(void *arg, struct weir_flow *f)
{
	struct fp_out *o = arg;
	struct fp_flow *u = U(f);

	if (f->end_reason == WEIR_FLOW_END_ACTIVE || !(u->flags & F_INIT))
		return;
	if (!(u->flags & F_FILE) && u->kept < o->min_packets) {
		/* Too small to keep (floods, scans): counted, no file. */
		list_del(o, f);
		o->small_flows++;
		o->small_packets += u->npending;
		chain_free(o, u);
	} else
		flow_publish(o, f);
	o->flows_ended++;
	o->active--;
	switch (f->end_reason) {
	case WEIR_FLOW_END_IDLE:
		o->flows_gc++;
		break;
	case WEIR_FLOW_END_EOF:
		o->flows_eof++;
		break;
	case WEIR_FLOW_END_LACK:
		o->flows_evicted++;
		break;
	default:
		o->flows_forced++;
		break;
	}
	u->flags = 0;
}

/* ---- open ---- */

static int
mkdir_p(const char *path)
{
	char buf[PATH_MAX], *s;

	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
		return -ENAMETOOLONG;
	for (s = buf + 1; *s != '\0'; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(buf, 0750) < 0 && errno != EEXIST)
			return -errno;
		*s = '/';
	}
	if (mkdir(buf, 0750) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static void
fp_free(struct fp_out *o)
{
	int i;

	if (o == NULL)
		return;
	/* The writers first: their jobs use the pool and the directory. */
	for (i = 0; i < o->nw; i++)
		fpw_free(o->w[i]);
	weir_flowtab_free(o->ft);
	for (i = 0; i < o->nslots; i++)
		if (o->slots[i].fd >= 0)
			close(o->slots[i].fd);
	for (i = 0; i < NDAYS; i++)
		if (o->days[i].dfd >= 0)
			close(o->days[i].dfd);
	if (o->dirfd >= 0)
		close(o->dirfd);
	free(o->slots);
	free(o->pool);
	free(o->dir);
	free(o);
}

static int
fp_open(void **st, const json_t *conf, const struct weir_env *env,
    struct weir_err *err)
{
	struct weir_flowtab_conf fc;
	struct fpw_conf wc;
	struct fp_out *o;
	char msg[128];
	const char *s;
	json_t *v;
	size_t i, mem;
	int rc;

	*st = NULL;
	if ((o = calloc(1, sizeof(*o))) == NULL)
		return weir_seterr(err, -ENOMEM, "%s: out of memory", MOD);
	o->dirfd = -1;
	for (i = 0; i < NDAYS; i++) {
		o->days[i].day = -1;
		o->days[i].dfd = -1;
	}
	o->rnd_off = sizeof(o->rnd);
	s = json_string_value(json_object_get(conf, "dir"));
	if (s == NULL || (o->dir = strdup(s)) == NULL) {
		rc = weir_seterr(err, -ENOMEM, "%s: out of memory", MOD);
		goto fail;
	}
	json_array_foreach(json_object_get(conf, "protocols"), i, v) {
		s = json_string_value(v);
		o->protos |= strcmp(s, "tcp") == 0 ? P_TCP :
		    strcmp(s, "udp") == 0 ? P_UDP : P_ICMP;
	}
	if (o->protos == 0)
		o->protos = P_TCP;
	o->duration_ns = (uint64_t)(json_number_value(json_object_get(conf,
	    "capture_duration")) * 1e9 + 0.5);
	o->snap = (uint32_t)json_integer_value(json_object_get(conf,
	    "max_header_size"));
	if (o->snap == 0 || o->snap > MAX_SNAP)
		o->snap = 256;
	v = json_object_get(conf, "zero_payload");
	o->zero = v == NULL || json_is_true(v);
	o->stream = weir_conf_choice(conf, "mode", modes) == 1;
	o->compress = weir_conf_choice(conf, "compress", compressions) == 1;
	o->nano = weir_conf_choice(conf, "precision", precisions) == 1;
	o->clevel = (int)json_integer_value(json_object_get(conf,
	    "compress_level"));
	v = json_object_get(conf, "index");
	o->index = v == NULL || json_is_true(v);
	o->min_packets = (uint64_t)json_integer_value(json_object_get(conf,
	    "min_packets"));
	if (o->min_packets == 0)
		o->min_packets = 1;
	v = json_object_get(conf, "writer_threads");
	o->nthreads = v == NULL ? 2 : (int)json_integer_value(v);
	if (o->nthreads < 0 || o->nthreads > MAX_WRITERS)
		o->nthreads = 2;
	o->queue = (uint32_t)json_integer_value(json_object_get(conf,
	    "queue_length"));
	if (o->queue == 0)
		o->queue = 1024;

	/* The pool: chunks big enough for a few maximal records. */
	o->csize = 2 * (sizeof(struct fpw_chunk) + PCAP_HDR + o->snap);
	if (o->csize < 2048)
		o->csize = 2048;
	o->csize = (o->csize + 63) & ~(size_t)63;
	mem = (size_t)json_integer_value(json_object_get(conf,
	    "max_memory"));
	if (mem / o->csize < 2)
		mem = 2 * o->csize;
	if (mem / o->csize > UINT32_MAX - 1)
		mem = (size_t)(UINT32_MAX - 1) * o->csize;
	o->nchunks = (uint32_t)(mem / o->csize);
	o->freelist = NONE;
	/* Pages are touched only as chunks are first used. */
	if ((o->pool = malloc((size_t)o->nchunks * o->csize)) == NULL) {
		rc = weir_seterr(err, -ENOMEM, "%s: cannot allocate "
		    "'max_memory' (%zu bytes)", MOD, mem);
		goto fail;
	}
	o->nslots = (int32_t)json_integer_value(json_object_get(conf,
	    "max_open_files"));
	if (o->nslots <= 0)
		o->nslots = 256;
	if ((o->slots = calloc((size_t)o->nslots, sizeof(*o->slots))) ==
	    NULL) {
		rc = weir_seterr(err, -ENOMEM, "%s: out of memory", MOD);
		goto fail;
	}
	for (i = 0; i < (size_t)o->nslots; i++) {
		o->slots[i].fd = -1;
		o->slots[i].prev = -1;
		o->slots[i].next = i + 1 < (size_t)o->nslots ?
		    (int32_t)i + 1 : -1;
	}
	o->free_slot = 0;
	o->lru_head = o->lru_tail = -1;
	if ((rc = mkdir_p(o->dir)) < 0 || (o->dirfd = open(o->dir,
	    O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		if (rc == 0)
			rc = -errno;
		rc = weir_seterr(err, rc, "%s: cannot create directory '%s': "
		    "%s", MOD, o->dir, weir_strerror(rc));
		goto fail;
	}
	memset(&wc, 0, sizeof(wc));
	wc.pool = o->pool;
	wc.csize = o->csize;
	wc.snap = o->snap;
	wc.nano = o->nano;
	wc.compress = o->compress;
	wc.clevel = o->clevel;
	wc.index = o->index;
	wc.thread = o->nthreads > 0;
	wc.queue = o->queue;
	wc.dirfd = o->dirfd;
	/* writer_threads 0: one writer, inline in this thread. */
	do {
		if ((rc = fpw_new(&o->w[o->nw], &wc, msg, sizeof(msg))) < 0) {
			rc = weir_seterr(err, rc, "%s: %s", MOD, msg);
			goto fail;
		}
		o->nw++;
	} while (o->nw < o->nthreads);
	memset(&fc, 0, sizeof(fc));
	fc.idle_ns = (uint64_t)(json_number_value(json_object_get(conf,
	    "flow_timeout")) * 1e9 + 0.5);
	fc.active_ns = 0;
	fc.max_flows = (uint64_t)json_integer_value(json_object_get(conf,
	    "max_flows"));
	fc.user_size = sizeof(struct fp_flow);
	fc.tcp_end = 1;
	if ((o->ft = weir_flowtab_new(&fc, fp_expire, o, err)) == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	/* The writer's ring and index buffers are small and fixed. */
	o->mem_bound = (uint64_t)weir_flowtab_entry_bytes(o->ft) *
	    fc.max_flows + (uint64_t)o->nchunks * o->csize +
	    (uint64_t)o->nw * (o->queue * sizeof(struct fpw_job) +
	    4 * 32768);
	*st = o;
	return 0;
fail:
	fp_free(o);
	return rc;
}

/* ---- packets ---- */

/*
 * The IP protocol of the packet's flow (innermost non-quoted IP), or
 * -1 when it has none.  Later fragments have no L4 header: their
 * protocol comes from the IPv4 header or the IPv6 fragment header.
 */
static int
pkt_proto(const struct weir_pkt *p)
{
	const struct weir_decoded *d = &p->dec;
	const struct weir_layer *l;
	int i, proto = -1;

	if (d->l4 != WEIR_NO_LAYER && d->l4 < d->n) {
		switch (d->l[d->l4].kind) {
		case WEIR_L_TCP:
			return 6;
		case WEIR_L_UDP:
			return 17;
		case WEIR_L_ICMP:
			return 1;
		case WEIR_L_ICMP6:
			return 58;
		}
	}
	if (d->inner_ip == WEIR_NO_LAYER || d->inner_ip >= d->n)
		return -1;
	l = &d->l[d->inner_ip];
	if (l->kind == WEIR_L_IPV4) {
		if ((size_t)l->off + 10 <= p->caplen)
			proto = p->data[l->off + 9];
		return proto;
	}
	if ((size_t)l->off + 7 <= p->caplen)
		proto = p->data[l->off + 6];
	for (i = d->inner_ip + 1; i < d->n; i++) {
		l = &d->l[i];
		if (l->kind != WEIR_L_IPV6_EXT && l->kind != WEIR_L_IPV6_FRAG)
			break;
		if (l->flags & WEIR_LF_QUOTED)
			break;
		if ((size_t)l->off + 1 <= p->caplen)
			proto = p->data[l->off];
	}
	return proto;
}

static int
proto_wanted(const struct fp_out *o, int proto)
{
	switch (proto) {
	case 6:
		return o->protos & P_TCP;
	case 17:
		return o->protos & P_UDP;
	case 1:
	case 58:
		return o->protos & P_ICMP;
	}
	return 0;
}

static int
flow_init(struct fp_out *o, struct weir_flow *f, const struct weir_pkt *p)
{
	struct fp_flow *u = U(f);
	int rc;

	memset(u, 0, sizeof(*u));
	if ((rc = uuid_make(o, p->ts, u->uuid)) < 0)
		return rc;
	u->head = u->tail = NONE;
	u->slot = -1;
	u->first_ts = p->ts;
	u->linktype = p->linktype;
	u->flags = F_INIT | (o->stream ? F_STREAM : 0);
	o->flows_started++;
	o->active++;
	return 0;
}

/* Copy p's kept bytes, payload zeroed, as one record of f's chain. */
static void
keep(struct fp_out *o, struct weir_flow *f, const struct weir_pkt *p)
{
	struct fp_flow *u = U(f);
	uint32_t caplen, h[4], c, hdr;
	struct fpw_chunk *ch;
	uint8_t *rec;
	size_t reclen = 0;
	int w;

	caplen = p->caplen < o->snap ? p->caplen : o->snap;
	reclen = PCAP_HDR + (size_t)caplen;
	if (u->npending == 0)
		u->since = p->ts;
	if (u->tail == NONE || o->csize - sizeof(struct fpw_chunk) -
	    u->tail_used < reclen) {
		/* May write f itself out, emptying its chain. */
		if ((c = chunk_alloc(o)) == NONE) {
			u->missed++;
			o->missed++;
			return;
		}
		if (u->tail == NONE)
			u->head = c;
		else
			CH(o, u->tail)->next = c;
		u->tail = c;
		u->nchunks++;
		u->tail_used = 0;
	}
	ch = CH(o, u->tail);
	rec = (uint8_t *)(ch + 1) + u->tail_used;
	h[0] = (uint32_t)(p->ts / NS);
	h[1] = (uint32_t)(p->ts % NS);
	if (!o->nano)
		h[1] /= 1000;
	h[2] = caplen;
	h[3] = p->wirelen;
	memcpy(rec, h, sizeof(h));
	hdr = caplen;
	if (o->zero && p->decoded && p->dec.hdr_end < caplen)
		hdr = p->dec.hdr_end;
	memcpy(rec + PCAP_HDR, p->data, hdr);
	memset(rec + PCAP_HDR + hdr, 0, caplen - hdr);
	u->tail_used += (uint32_t)reclen;
	ch->used = u->tail_used;
	u->pending += (uint32_t)reclen;
	u->npending++;
	u->kept++;
	u->last_ts = p->ts;
	o->pending++;
	w = wanted_list(o, u);
	if (!(u->flags & F_LISTED))
		list_add(o, f, w);
	else if (list_of(u) != w) {
		list_del(o, f);
		list_add(o, f, w);
	}
}

static int
fp_packet(void *st, struct weir_batch *b)
{
	struct fp_out *o = st;
	struct weir_flow *f;
	struct weir_pkt *p;
	struct fp_flow *u;
	unsigned i;
	int proto, rev, created;

	for (i = 0; i < b->n; i++) {
		p = b->p[i];
		weir_pkt_decode(p);
		if ((proto = pkt_proto(p)) < 0) {
			o->bad++;
			continue;
		}
		if (!proto_wanted(o, proto)) {
			o->ignored++;
			continue;
		}
		rev = created = 0;
		if ((f = weir_flowtab_packet(o->ft, p, &rev, &created)) ==
		    NULL) {
			o->bad++;
			continue;
		}
		u = U(f);
		if (!(u->flags & F_INIT) && flow_init(o, f, p) < 0) {
			o->missed++;
			continue;
		}
		if (p->linktype != u->linktype) {
			u->lt_dropped++;
			o->lt_dropped++;
			continue;
		}
		if (o->duration_ns != 0 && p->ts >= u->first_ts &&
		    p->ts - u->first_ts >= o->duration_ns) {
			u->skipped++;
			o->skipped++;
			continue;
		}
		if (u->flags & F_FAILED) {
			u->missed++;
			o->missed++;
			continue;
		}
		keep(o, f, p);
	}
	flush_dirty(o);
	for (i = 0; i < (unsigned)o->nw; i++)
		fpw_idle(o->w[i]);
	return 0;
}

static int
fp_tick(void *st, uint64_t now)
{
	struct fp_out *o = st;
	struct weir_flow *f;
	int i;

	weir_flowtab_tick(o->ft, now);
	while ((f = o->lists[L_WAITING].head) != NULL &&
	    U(f)->since + STREAM_DELAY <= now)
		flow_write(o, f, 1);
	for (i = 0; i < o->nw; i++)
		fpw_idle(o->w[i]);
	return 0;
}

/* The writers' counters added up; the first error of the first. */
static void
sum_stats(struct fp_out *o, struct fpw_stats *s, char *first, size_t len)
{
	struct fpw_stats x;
	char e[256];
	int i;

	memset(s, 0, sizeof(*s));
	if (first != NULL)
		first[0] = '\0';
	for (i = 0; i < o->nw; i++) {
		fpw_stats(o->w[i], &x, e, sizeof(e));
		s->done_packets += x.done_packets;
		s->written += x.written;
		s->written_bytes += x.written_bytes;
		s->missed += x.missed;
		s->files += x.files;
		s->write_errors += x.write_errors;
		s->publish_errors += x.publish_errors;
		s->index_errors += x.index_errors;
		s->index_writes += x.index_writes;
		s->jobs += x.jobs;
		s->waits_full += x.waits_full;
		s->waits_memory += x.waits_memory;
		s->tmpfile += x.tmpfile;
		s->threaded += x.threaded;
		if (x.queue_peak > s->queue_peak)
			s->queue_peak = x.queue_peak;
		if (first != NULL && first[0] == '\0')
			snprintf(first, len, "%s", e);
	}
}

static size_t
fp_stats(void *st, struct weir_counter *c, size_t max)
{
	struct fp_out *o = st;
	struct fpw_stats w;
	uint64_t pending, missed;

	sum_stats(o, &w, NULL, 0);
	pending = o->pending + o->queued - w.done_packets;
	missed = o->missed + w.missed;
	{
	const struct weir_counter v[] = {
		{ "written", o->written + w.written },
		{ "written_bytes", o->written_bytes + w.written_bytes },
		{ "pending", pending },
		{ "dropped", o->bad + o->ignored + o->lt_dropped + o->skipped +
		    missed + o->small_packets },
		{ "flows_started", o->flows_started },
		{ "flows_ended", o->flows_ended },
		{ "flows_garbage_collected", o->flows_gc },
		{ "flows_eof", o->flows_eof },
		{ "flows_forced", o->flows_forced },
		{ "flows_evicted", o->flows_evicted },
		{ "savers_active", o->active },
		{ "missed_packets", missed },
		{ "bad_packets", o->bad },
		{ "ignored_protocol", o->ignored },
		{ "dropped_linktype", o->lt_dropped },
		{ "skipped_after_duration", o->skipped },
		{ "small_flows", o->small_flows },
		{ "small_flow_packets", o->small_packets },
		{ "files_written", w.files },
		{ "write_errors", o->write_errors + w.write_errors },
		{ "publish_errors", w.publish_errors },
		{ "index_errors", w.index_errors },
		{ "index_writes", w.index_writes },
		{ "switched_to_stream", o->switched },
		{ "reopened_files", o->reopened },
		{ "memory_chunks_peak", o->peak },
		{ "memory_bytes_peak", (uint64_t)o->peak * o->csize },
		{ "memory_bound_bytes", o->mem_bound },
		/* WEIR_MAX_COUNTERS (32) is reached here */
		{ "writer_threads", (uint64_t)w.threaded },
		{ "writer_queue_peak", w.queue_peak },
		{ "writer_waits", w.waits_full + w.waits_memory },
		{ "files_tmpfile", w.tmpfile },
	};

	return WEIR_COUNTERS_PUT(c, max, v);
	}
}

static int
fp_finish(void *st, struct weir_err *err)
{
	struct fp_out *o = st;
	struct fpw_stats w;
	char first[256];
	int i, rc = 0;

	if (o->finished)
		return 0;
	o->finished = 1;
	weir_flowtab_flush(o->ft);
	/* Every job done, every index line out, the threads gone. */
	for (i = 0; i < o->nw; i++)
		fpw_drain(o->w[i]);
	reclaim(o);
	sum_stats(o, &w, first, sizeof(first));
	log_info("%s: %" PRIu64 " flows, %" PRIu64 " files, %" PRIu64
	    " packets written, %" PRIu64 " missed, %" PRIu64 " skipped after "
	    "capture_duration", MOD, o->flows_started, w.files,
	    o->written + w.written, o->missed + w.missed, o->skipped);
	if (o->missed + w.missed > 0 || w.publish_errors > 0)
		rc = weir_seterr(err, -EIO, "%" PRIu64 " packets lost, %"
		    PRIu64 " files not published; first: %s",
		    o->missed + w.missed, w.publish_errors, first);
	return rc;
}

static int
fp_close(void *st, struct weir_err *err)
{
	struct fp_out *o = st;
	int rc;

	if (o == NULL)
		return 0;
	rc = fp_finish(o, err);
	fp_free(o);
	return rc;
}

const struct weir_module weir_mod_flowpcap = {
	.name		= "flowpcap",
	.kind		= WEIR_MOD_OUTPUT,
	.needs_decode	= 1,
	.check		= fp_check,
	.open		= fp_open,
	.packet		= fp_packet,
	.tick		= fp_tick,
	.flush		= NULL,
	.stats		= fp_stats,
	.finish		= fp_finish,
	.close		= fp_close,
};
