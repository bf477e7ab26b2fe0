/*
 * flowpcap_writer.c - publishes the files of ended flows for the
 * flowpcap output: writes (and compresses) each file under a name no
 * reader takes for a finished file, gives it its final name, and
 * appends its index line.  Ownership and the ring: flowpcap_writer.h.
 *
 * A file written in one go (a flow whose records are all in memory) is
 * created with O_TMPFILE and linked under its final name once whole:
 * it has no name at all before, so kill -9 leaves nothing behind, and
 * it costs one call less than create + rename of a hidden name.  Where
 * O_TMPFILE or linkat() of it is refused (filesystem, privileges, no
 * /proc), the writer falls back, for good, to .UUID.pcap.part +
 * renameat().  Index lines are gathered per day directory and appended
 * with one write() when the buffer is full, when the writer runs out of
 * work, and at the end; each write holds whole lines (O_APPEND).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <zstd.h>

#include "weir/log.h"
#include "weir/priv.h"
#include "capture/outputs/filewriter.h"
#include "capture/outputs/flowpcap_writer.h"

#define MOD		"flowpcap"
#define NS		UINT64_C(1000000000)
#define DAY_NS		(UINT64_C(86400) * NS)
#define NDAYS		4
#define IBUF		(32 * 1024)	/* index lines per write */
#define IDX_LINE_MAX	2048		/* > the longest index line */
#define ZBUF		(128 * 1024)
#define NIOV		1024		/* <= IOV_MAX */
#define WAKE_BATCH	32		/* jobs that wake the writer */

/* How a tmpfile gets its name (w->link). */
#define LK_EMPTY	0	/* linkat(fd, "", AT_EMPTY_PATH) */
#define LK_PROC		1	/* linkat("/proc/self/fd/N") */
#define LK_NONE		2	/* no O_TMPFILE: hidden name + rename */

struct wday {
	int64_t		day;		/* -1 unused */
	int		dfd, ifd;
	uint64_t	used;
	char		rel[48];
	char		*ibuf;		/* index lines to write */
	size_t		ilen;
	uint64_t	nlines;
};

/* Counters a job adds when it is done. */
struct wres {
	uint64_t	written, written_bytes, missed, files;
	uint64_t	write_errors, publish_errors, tmpfile;
};

struct fpw {
	struct fpw_conf	 c;
	pthread_mutex_t	 mu;
	pthread_cond_t	 cv_work, cv_done;
	pthread_t	 th;
	int		 started, quit, wsleep, pwait;
	uint32_t	 pwant;		/* pipeline waits for count <= */

	/* ring: the pipeline fills ring[head], the writer runs ring[tail] */
	struct fpw_job	*ring;
	uint32_t	 cap, head, tail, count;

	/* chunks of finished jobs, for the pipeline */
	uint32_t	 rhead, rtail, rn;

	struct fpw_stats st;		/* under mu */
	char		 first_error[256];

	/* the writer's own (the thread's, or the pipeline's inline) */
	struct wday	 days[NDAYS];
	uint64_t	 day_clock;
	int		 link;
	int		 idirty;	/* some ibuf holds lines */
	struct iovec	 iov[NIOV];
	uint8_t		 fhdr[FPW_FILE_HDR];
	ZSTD_CCtx	*zc;
	uint8_t		*zin, *zout;
	uint64_t	 index_errors, index_writes; /* into st */
};

static struct fpw_chunk *
CH(const struct fpw *w, uint32_t i)
{
	return (struct fpw_chunk *)(void *)(w->c.pool + (size_t)i *
	    w->c.csize);
}

/* ---- shared helpers ---- */

static void
put16(uint8_t *b, uint16_t v)
{
	memcpy(b, &v, 2);
}

static void
put32(uint8_t *b, uint32_t v)
{
	memcpy(b, &v, 4);
}

/* "0190a3b2-...": 36 characters and a NUL. */
void
fpw_uuid_str(const uint8_t *u, char *s)
{
	static const char hex[] = "0123456789abcdef";
	int i, j = 0;

	for (i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			s[j++] = '-';
		s[j++] = hex[u[i] >> 4];
		s[j++] = hex[u[i] & 15];
	}
	s[j] = '\0';
}

void
fpw_hidden_name(const uint8_t *uuid, char *buf, size_t len, int zst)
{
	char us[40];

	fpw_uuid_str(uuid, us);
	snprintf(buf, len, ".%s.pcap%s.part", us, zst ? ".zst" : "");
}

void
fpw_file_header(uint8_t *h, int nano, uint32_t snap, uint16_t linktype)
{
	put32(h, nano ? 0xa1b23c4dU : 0xa1b2c3d4U);
	put16(h + 4, 2);
	put16(h + 6, 4);
	put32(h + 8, 0);
	put32(h + 12, 0);
	put32(h + 16, snap);
	put32(h + 20, linktype);
}

/* writev() all of iov[0..n), resuming short writes. */
int
fpw_writev_all(int fd, struct iovec *iov, int n)
{
	ssize_t w;

	while (n > 0) {
		w = writev(fd, iov, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		while (n > 0 && (size_t)w >= iov->iov_len) {
			w -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (uint8_t *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
	return 0;
}

/*
 * Create DIR/YYYY/MM/DD for day (days since the epoch) under dirfd and
 * open it into *dfd; rel gets "YYYY/MM/DD".  0 or -errno.
 */
int
fpw_day_path(int dirfd, int64_t day, char *rel, size_t len, int *dfd)
{
	char yy[16], mm[32];
	struct tm tm;
	time_t t = (time_t)(day * 86400);

	gmtime_r(&t, &tm);
	snprintf(yy, sizeof(yy), "%04d", tm.tm_year + 1900);
	snprintf(mm, sizeof(mm), "%s/%02d", yy, tm.tm_mon + 1);
	snprintf(rel, len, "%s/%02d", mm, tm.tm_mday);
	/* Most days exist already: try the open first. */
	if ((*dfd = openat(dirfd, rel, O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC)) >= 0)
		return 0;
	if ((mkdirat(dirfd, yy, 0750) < 0 && errno != EEXIST) ||
	    (mkdirat(dirfd, mm, 0750) < 0 && errno != EEXIST) ||
	    (mkdirat(dirfd, rel, 0750) < 0 && errno != EEXIST) ||
	    (*dfd = openat(dirfd, rel, O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC)) < 0)
		return -errno;
	return 0;
}

static void
note_verror(struct fpw *w, const char *fmt, va_list ap)
{
	char msg[256];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	/* The first error is logged and kept; later ones are counted. */
	pthread_mutex_lock(&w->mu);
	if (w->first_error[0] == '\0') {
		snprintf(w->first_error, sizeof(w->first_error), "%s", msg);
		pthread_mutex_unlock(&w->mu);
		log_err("%s: %s", MOD, msg);
		return;
	}
	pthread_mutex_unlock(&w->mu);
}

void
fpw_note_error(struct fpw *w, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	note_verror(w, fmt, ap);
	va_end(ap);
}

/* ---- index lines ---- */

static void
index_flush(struct fpw *w, struct wday *d)
{
	ssize_t n;

	if (d->ilen == 0)
		return;
	if (d->ifd < 0 && (d->ifd = openat(d->dfd, "index.jsonl",
	    O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640)) < 0) {
		w->index_errors += d->nlines;
		fpw_note_error(w, "cannot open '%s/index.jsonl': %s", d->rel,
		    strerror(errno));
		goto out;
	}
	/* One write of whole lines: O_APPEND keeps writers apart. */
	do
		n = write(d->ifd, d->ibuf, d->ilen);
	while (n < 0 && errno == EINTR);
	w->index_writes++;
	if (n != (ssize_t)d->ilen) {
		w->index_errors += d->nlines;
		fpw_note_error(w, "cannot write '%s/index.jsonl': %s", d->rel,
		    strerror(n < 0 ? errno : ENOSPC));
	}
out:
	d->ilen = 0;
	d->nlines = 0;
}

static void
index_flush_all(struct fpw *w)
{
	int i;

	for (i = 0; i < NDAYS; i++)
		if (w->days[i].day >= 0)
			index_flush(w, &w->days[i]);
	w->idirty = 0;
}

static const char *
reason_name(int r)
{
	switch (r) {
	case WEIR_FLOW_END_IDLE:
		return "idle";
	case WEIR_FLOW_END_ACTIVE:
		return "active";
	case WEIR_FLOW_END_EOF:
		return "eof";
	case WEIR_FLOW_END_FORCED:
		return "forced";
	case WEIR_FLOW_END_LACK:
		return "lack";
	}
	return "none";
}

static void
addr_str(const struct weir_flow_key *k, int i, char *buf, size_t len)
{
	if (inet_ntop(k->family == 6 ? AF_INET6 : AF_INET, k->addr[i], buf,
	    (socklen_t)len) == NULL)
		snprintf(buf, len, "?");
}

/*
 * Index lines are formatted by hand: snprintf() and strftime() were a
 * tenth of a writer's time.  The text is the same as printf's
 * (unsigned decimal) and as weir_fw_rfc3339()'s (tests compare).
 */
static char *
p_str(char *p, const char *s)
{
	size_t n = strlen(s);

	memcpy(p, s, n);
	return p + n;
}

static char *
p_u64(char *p, uint64_t v)
{
	char b[20];
	int n = 0;

	do {
		b[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	while (n > 0)
		*p++ = b[--n];
	return p;
}

static char *
p_dig(char *p, unsigned v, int n)
{
	int i;

	for (i = n - 1; i >= 0; i--) {
		p[i] = (char)('0' + v % 10);
		v /= 10;
	}
	return p + n;
}

/*
 * "2024-01-02T03:04:05.123456789Z".  Civil date from days since the
 * epoch (the proleptic Gregorian calendar, as gmtime()).
 */
static char *
p_time(char *p, uint64_t ns)
{
	uint64_t sec = ns / NS;
	int64_t z = (int64_t)(sec / 86400) + 719468, era, doe, yoe, y, doy,
	    mp, d, m;
	unsigned sod = (unsigned)(sec % 86400);

	era = z / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	y = yoe + era * 400;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	d = doy - (153 * mp + 2) / 5 + 1;
	m = mp < 10 ? mp + 3 : mp - 9;
	y += m <= 2;
	if (y < 0 || y > 9999) {
		/* Not a pcap time; as weir_fw_rfc3339() would. */
		char t[40];

		weir_fw_rfc3339(ns, t, sizeof(t));
		return p_str(p, t);
	}
	p = p_dig(p, (unsigned)y, 4);
	*p++ = '-';
	p = p_dig(p, (unsigned)m, 2);
	*p++ = '-';
	p = p_dig(p, (unsigned)d, 2);
	*p++ = 'T';
	p = p_dig(p, sod / 3600, 2);
	*p++ = ':';
	p = p_dig(p, sod / 60 % 60, 2);
	*p++ = ':';
	p = p_dig(p, sod % 60, 2);
	*p++ = '.';
	p = p_dig(p, (unsigned)(ns % NS), 9);
	*p++ = 'Z';
	return p;
}

/* Add the published file's line to its day's index buffer. */
static void
index_line(struct fpw *w, const struct fpw_job *j, struct wday *d,
    const char *file, uint64_t written, uint64_t missed)
{
	const struct weir_flow_key *k = &j->key;
	char us[40], a[INET6_ADDRSTRLEN], *p;
	uint64_t last = j->last_ts;
	int i;

	if (!w->c.index)
		return;
	if (IBUF - d->ilen < IDX_LINE_MAX)
		index_flush(w, d);
	p = d->ibuf + d->ilen;
	fpw_uuid_str(j->uuid, us);
	if (last < j->first_ts)
		last = j->first_ts;
	p = p_str(p, "{\"uuid\":\"");
	p = p_str(p, us);
	p = p_str(p, "\",\"file\":\"");
	p = p_str(p, file);
	p = p_str(p, "\",\"path\":\"");
	p = p_str(p, d->rel);
	*p++ = '/';
	p = p_str(p, file);
	p = p_str(p, "\",\"family\":");
	p = p_u64(p, k->family);
	p = p_str(p, ",\"proto\":");
	p = p_u64(p, k->proto);
	for (i = 0; i < 2; i++) {
		addr_str(k, i, a, sizeof(a));
		p = p_str(p, i == 0 ? ",\"src\":\"" : "\",\"dst\":\"");
		p = p_str(p, a);
	}
	if (k->proto == 1 || k->proto == 58) {
		p = p_str(p, "\",\"icmp_type\":");
		p = p_u64(p, k->port[1] >> 8);
		p = p_str(p, ",\"icmp_code\":");
		p = p_u64(p, k->port[1] & 0xff);
	} else {
		p = p_str(p, "\",\"sport\":");
		p = p_u64(p, k->port[0]);
		p = p_str(p, ",\"dport\":");
		p = p_u64(p, k->port[1]);
	}
	p = p_str(p, ",\"vlan\":");
	p = p_u64(p, k->vlan);
	p = p_str(p, ",\"first_ts\":\"");
	p = p_time(p, j->first_ts);
	p = p_str(p, "\",\"first_ts_ns\":");
	p = p_u64(p, j->first_ts);
	p = p_str(p, ",\"last_ts\":\"");
	p = p_time(p, last);
	p = p_str(p, "\",\"last_ts_ns\":");
	p = p_u64(p, last);
	p = p_str(p, ",\"packets_fwd\":");
	p = p_u64(p, j->pkts[0]);
	p = p_str(p, ",\"bytes_fwd\":");
	p = p_u64(p, j->bytes[0]);
	p = p_str(p, ",\"packets_rev\":");
	p = p_u64(p, j->pkts[1]);
	p = p_str(p, ",\"bytes_rev\":");
	p = p_u64(p, j->bytes[1]);
	p = p_str(p, ",\"packets_written\":");
	p = p_u64(p, written);
	p = p_str(p, ",\"skipped_after_duration\":");
	p = p_u64(p, j->skipped);
	p = p_str(p, ",\"dropped_linktype\":");
	p = p_u64(p, j->lt_dropped);
	p = p_str(p, ",\"missed_packets\":");
	p = p_u64(p, missed);
	p = p_str(p, ",\"linktype\":");
	p = p_u64(p, j->linktype);
	p = p_str(p, ",\"snaplen\":");
	p = p_u64(p, w->c.snap);
	p = p_str(p, ",\"end_reason\":\"");
	p = p_str(p, reason_name(j->end_reason));
	p = p_str(p, "\"}\n");
	d->ilen = (size_t)(p - d->ibuf);
	d->nlines++;
	w->idirty = 1;
}

/* ---- day directories (the writer's own) ---- */

static struct wday *
wday_get(struct fpw *w, uint64_t ts)
{
	struct wday *d, *lru = &w->days[0];
	int64_t day = (int64_t)(ts / DAY_NS);
	int i, rc;

	for (i = 0; i < NDAYS; i++) {
		d = &w->days[i];
		if (d->day == day) {
			d->used = ++w->day_clock;
			return d;
		}
		if (d->used < lru->used)
			lru = d;
	}
	d = lru;
	if (d->day >= 0)
		index_flush(w, d);
	if (d->dfd >= 0)
		close(d->dfd);
	if (d->ifd >= 0)
		close(d->ifd);
	d->dfd = d->ifd = -1;
	d->day = -1;
	if ((rc = fpw_day_path(w->c.dirfd, day, d->rel, sizeof(d->rel),
	    &d->dfd)) < 0) {
		fpw_note_error(w, "cannot create directory '%s': %s", d->rel,
		    strerror(-rc));
		d->dfd = -1;
		return NULL;
	}
	d->day = day;
	d->used = ++w->day_clock;
	return d;
}

/* ---- files ---- */

/*
 * A new file for name (hidden is the fallback's hidden name): an
 * unnamed O_TMPFILE, or hidden created.  *tmp says which.
 */
static int
pub_create(struct fpw *w, struct wday *d, const char *hidden, int *tmp)
{
	int fd;

	if (w->link != LK_NONE) {
		fd = openat(d->dfd, ".", O_WRONLY | O_TMPFILE | O_CLOEXEC,
		    0640);
		if (fd >= 0) {
			*tmp = 1;
			return fd;
		}
		/* Unsupported here (ext2, NFS, old kernels): names. */
		if (errno != EOPNOTSUPP && errno != EISDIR &&
		    errno != EINVAL && errno != ENOENT)
			return -errno;
		w->link = LK_NONE;
	}
	*tmp = 0;
	if ((fd = openat(d->dfd, hidden, O_WRONLY | O_CREAT | O_TRUNC |
	    O_CLOEXEC, 0640)) < 0)
		return -errno;
	return fd;
}

/*
 * Give a whole file its final name and close it.  1: published; 0:
 * the tmpfile cannot be linked here (w->link is now LK_NONE, write it
 * again under a hidden name); negative: -errno, nothing published.
 */
static int
pub_commit(struct fpw *w, struct wday *d, int fd, int tmp,
    const char *hidden, const char *file)
{
	char proc[64];
	int rc = 0;

	if (!tmp) {
		if (close(fd) < 0)
			return -errno;
		if (renameat(d->dfd, hidden, d->dfd, file) < 0)
			return -errno;
		return 1;
	}
	if (w->link == LK_EMPTY) {
		if (linkat(fd, "", d->dfd, file, AT_EMPTY_PATH) == 0)
			goto done;
		/* Needs CAP_DAC_READ_SEARCH: go through /proc instead. */
		if (errno != ENOENT && errno != EPERM && errno != EINVAL) {
			rc = -errno;
			goto done;
		}
		w->link = LK_PROC;
	}
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	if (linkat(AT_FDCWD, proc, d->dfd, file, AT_SYMLINK_FOLLOW) == 0)
		goto done;
	if (errno != ENOENT && errno != EPERM && errno != EACCES &&
	    errno != EXDEV) {
		rc = -errno;
		goto done;
	}
	w->link = LK_NONE;
	close(fd);
	return 0;
done:
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	return rc < 0 ? rc : 1;
}

/* Feed len bytes to the compressor, writing its output to fd. */
static int
z_feed(struct fpw *w, int fd, const void *buf, size_t len, int end)
{
	ZSTD_inBuffer in = { buf, len, 0 };
	ZSTD_outBuffer out;
	size_t left;
	struct iovec v;
	int rc;

	do {
		out.dst = w->zout;
		out.size = ZBUF;
		out.pos = 0;
		left = ZSTD_compressStream2(w->zc, &out, &in,
		    end ? ZSTD_e_end : ZSTD_e_continue);
		if (ZSTD_isError(left))
			return -EIO;
		if (out.pos > 0) {
			v.iov_base = w->zout;
			v.iov_len = out.pos;
			if ((rc = fpw_writev_all(fd, &v, 1)) < 0)
				return rc;
		}
	} while (end ? left != 0 : in.pos < in.size);
	return 0;
}

/* Header and chain of j into fd, compressed or not. */
static int
put_memory(struct fpw *w, const struct fpw_job *j, int fd)
{
	uint32_t c;
	int n = 0, rc = 0;

	fpw_file_header(w->fhdr, w->c.nano, w->c.snap, j->linktype);
	if (w->c.compress) {
		ZSTD_CCtx_reset(w->zc, ZSTD_reset_session_only);
		ZSTD_CCtx_setPledgedSrcSize(w->zc, FPW_FILE_HDR +
		    j->pending);
		rc = z_feed(w, fd, w->fhdr, FPW_FILE_HDR, 0);
		for (c = j->head; rc == 0 && c != FPW_NONE; c = CH(w, c)->next)
			rc = z_feed(w, fd, CH(w, c) + 1, CH(w, c)->used, 0);
		return rc == 0 ? z_feed(w, fd, NULL, 0, 1) : rc;
	}
	w->iov[n].iov_base = w->fhdr;
	w->iov[n++].iov_len = FPW_FILE_HDR;
	for (c = j->head; c != FPW_NONE; c = CH(w, c)->next) {
		w->iov[n].iov_base = CH(w, c) + 1;
		w->iov[n++].iov_len = CH(w, c)->used;
		if (n == NIOV || CH(w, c)->next == FPW_NONE) {
			if ((rc = fpw_writev_all(fd, w->iov, n)) < 0)
				return rc;
			n = 0;
		}
	}
	return 0;
}

/* A flow whose records are all in memory: one new file. */
static void
run_memory(struct fpw *w, struct fpw_job *j, struct wday *d,
    struct wres *r)
{
	char us[40], hidden[64], file[64];
	int fd, tmp, rc;

	fpw_uuid_str(j->uuid, us);
	snprintf(file, sizeof(file), "%s.pcap%s", us,
	    w->c.compress ? ".zst" : "");
	fpw_hidden_name(j->uuid, hidden, sizeof(hidden), w->c.compress);
	for (;;) {
		if ((fd = pub_create(w, d, hidden, &tmp)) < 0) {
			rc = fd;
			fpw_note_error(w, "cannot create '%s/%s': %s", d->rel,
			    tmp ? file : hidden, strerror(-rc));
			goto lost;
		}
		if ((rc = put_memory(w, j, fd)) < 0) {
			fpw_note_error(w, "cannot write '%s/%s': %s", d->rel,
			    tmp ? file : hidden, strerror(-rc));
			close(fd);
			if (!tmp)
				unlinkat(d->dfd, hidden, 0);
			goto lost;
		}
		if ((rc = pub_commit(w, d, fd, tmp, hidden, file)) > 0)
			break;
		if (rc < 0) {
			r->publish_errors++;
			fpw_note_error(w, "cannot publish '%s/%s': %s", d->rel,
			    file, strerror(-rc));
			if (!tmp)
				unlinkat(d->dfd, hidden, 0);
			goto lost_counted;
		}
		/* rc 0: O_TMPFILE cannot be linked; again with a name */
	}
	r->tmpfile += tmp;
	r->files++;
	r->written += j->npending;
	r->written_bytes += j->pending - (uint64_t)j->npending *
	    FPW_PCAP_HDR;
	index_line(w, j, d, file, j->npending, j->missed);
	return;
lost:
	r->write_errors++;
lost_counted:
	r->missed += j->npending;
}

/* Compress the hidden file part into a new file named file. */
static int
compress_part(struct fpw *w, struct wday *d, const char *part,
    uint64_t size, const char *file)
{
	char zpart[64];
	ssize_t n;
	int zfd, ifd, tmp, rc;

	snprintf(zpart, sizeof(zpart), "%.*s.zst.part",
	    (int)(strlen(part) - 5), part);
	for (;;) {
		if ((zfd = pub_create(w, d, zpart, &tmp)) < 0)
			return zfd;
		ZSTD_CCtx_reset(w->zc, ZSTD_reset_session_only);
		ZSTD_CCtx_setPledgedSrcSize(w->zc, size);
		rc = 0;
		if ((ifd = openat(d->dfd, part, O_RDONLY | O_CLOEXEC)) < 0)
			rc = -errno;
		while (rc == 0 && (n = read(ifd, w->zin, ZBUF)) != 0) {
			if (n < 0) {
				if (errno != EINTR)
					rc = -errno;
				continue;
			}
			rc = z_feed(w, zfd, w->zin, (size_t)n, 0);
		}
		if (rc == 0)
			rc = z_feed(w, zfd, NULL, 0, 1);
		if (ifd >= 0)
			close(ifd);
		if (rc < 0) {
			close(zfd);
			if (!tmp)
				unlinkat(d->dfd, zpart, 0);
			return rc;
		}
		if ((rc = pub_commit(w, d, zfd, tmp, zpart, file)) > 0)
			break;
		if (rc < 0) {
			if (!tmp)
				unlinkat(d->dfd, zpart, 0);
			return rc;
		}
	}
	/* Published whole: the uncompressed copy goes. */
	unlinkat(d->dfd, part, 0);
	return 0;
}

/*
 * A stream flow: append what is left in memory to its hidden file,
 * close it, compress it if asked, rename it.
 */
static void
run_stream(struct fpw *w, struct fpw_job *j, struct wday *d,
    struct wres *r)
{
	char us[40], part[64], file[64];
	uint64_t written = j->written, missed = j->missed;
	uint32_t c;
	int fd = j->fd, n = 0, rc = 0;

	j->fd = -1;
	fpw_uuid_str(j->uuid, us);
	fpw_hidden_name(j->uuid, part, sizeof(part), 0);
	if (j->head != FPW_NONE && !(j->flags & FJ_FAILED)) {
		if (fd < 0 && (fd = openat(d->dfd, part, O_WRONLY | O_APPEND |
		    O_CLOEXEC)) < 0) {
			rc = -errno;
			fpw_note_error(w, "cannot open '%s/%s': %s", d->rel,
			    part, strerror(-rc));
		}
		for (c = j->head; rc == 0 && c != FPW_NONE;
		    c = CH(w, c)->next) {
			w->iov[n].iov_base = CH(w, c) + 1;
			w->iov[n++].iov_len = CH(w, c)->used;
			if (n == NIOV || CH(w, c)->next == FPW_NONE) {
				rc = fpw_writev_all(fd, w->iov, n);
				n = 0;
			}
		}
		if (rc < 0) {
			r->write_errors++;
			r->missed += j->npending;
			missed += j->npending;
			if (fd >= 0) {
				fpw_note_error(w, "cannot write '%s/%s': %s",
				    d->rel, part, strerror(-rc));
				/* Keep the file whole: back to a record. */
				if (ftruncate(fd, (off_t)j->file_size) < 0)
					fpw_note_error(w, "cannot truncate "
					    "'%s/%s': %s", d->rel, part,
					    strerror(errno));
			}
		} else {
			written += j->npending;
			r->written += j->npending;
			r->written_bytes += j->pending -
			    (uint64_t)j->npending * FPW_PCAP_HDR;
		}
	} else if (j->head != FPW_NONE) {
		r->missed += j->npending;
		missed += j->npending;
	}
	if (fd >= 0)
		close(fd);
	if (written == 0) {
		/* Nothing was ever written (a failed first write). */
		unlinkat(d->dfd, part, 0);
		return;
	}
	if (w->c.compress) {
		snprintf(file, sizeof(file), "%s.pcap.zst", us);
		if ((rc = compress_part(w, d, part, j->file_size +
		    (written > j->written ? j->pending : 0), file)) == 0)
			goto published;
		/* The data is safe uncompressed: publish that. */
		r->write_errors++;
		fpw_note_error(w, "cannot compress into '%s/%s': %s", d->rel,
		    file, strerror(-rc));
	}
	snprintf(file, sizeof(file), "%s.pcap", us);
	if (renameat(d->dfd, part, d->dfd, file) < 0) {
		r->publish_errors++;
		fpw_note_error(w, "cannot rename '%s/%s': %s", d->rel, part,
		    strerror(errno));
		return;
	}
published:
	r->files++;
	index_line(w, j, d, file, written, missed);
}

/* Run one job; the chain stays linked for the caller to return. */
static void
job_run(struct fpw *w, struct fpw_job *j, struct wres *r)
{
	struct wday *d;

	if ((d = wday_get(w, j->first_ts)) == NULL) {
		/* Noted by wday_get. */
		if (j->fd >= 0)
			close(j->fd);
		j->fd = -1;
		r->write_errors++;
		r->missed += j->npending;
		return;
	}
	if (j->flags & FJ_FILE)
		run_stream(w, j, d, r);
	else if (j->head != FPW_NONE)
		run_memory(w, j, d, r);
}

/* Under mu: count j's results and return its chunks. */
static void
job_done(struct fpw *w, struct fpw_job *j, const struct wres *r)
{
	struct fpw_stats *s = &w->st;
	uint32_t c, last = FPW_NONE;

	s->done_packets += j->npending;
	s->written += r->written;
	s->written_bytes += r->written_bytes;
	s->missed += r->missed;
	s->files += r->files;
	s->write_errors += r->write_errors;
	s->publish_errors += r->publish_errors;
	s->tmpfile += r->tmpfile;
	s->index_errors += w->index_errors;
	s->index_writes += w->index_writes;
	w->index_errors = w->index_writes = 0;
	s->jobs++;
	if (j->head == FPW_NONE)
		return;
	for (c = j->head; c != FPW_NONE; c = CH(w, c)->next)
		last = c;
	CH(w, last)->next = w->rhead;
	if (w->rhead == FPW_NONE)
		w->rtail = last;
	w->rhead = j->head;
	/* Read without the lock by fpw_reclaim(): atomic. */
	__atomic_store_n(&w->rn, w->rn + j->nchunks, __ATOMIC_RELAXED);
	j->head = FPW_NONE;
}

static void *
writer_main(void *arg)
{
	struct fpw *w = arg;
	struct fpw_job *j;
	struct wres r;

	/* For top -H, perf and the like. */
	pthread_mutex_lock(&w->mu);
	for (;;) {
		if (w->count == 0) {
			if (w->idirty) {
				/* Out of work: the index lines go out. */
				pthread_mutex_unlock(&w->mu);
				index_flush_all(w);
				pthread_mutex_lock(&w->mu);
				w->st.index_errors += w->index_errors;
				w->st.index_writes += w->index_writes;
				w->index_errors = w->index_writes = 0;
				continue;
			}
			if (w->quit)
				break;
			w->wsleep = 1;
			pthread_cond_wait(&w->cv_work, &w->mu);
			w->wsleep = 0;
			continue;
		}
		j = &w->ring[w->tail];
		pthread_mutex_unlock(&w->mu);
		memset(&r, 0, sizeof(r));
		job_run(w, j, &r);
		pthread_mutex_lock(&w->mu);
		job_done(w, j, &r);
		w->tail = (w->tail + 1) % w->cap;
		__atomic_store_n(&w->count, w->count - 1, __ATOMIC_RELEASE);
		/*
		 * Woken at a low-water mark, not per job, so that a full
		 * ring does not switch threads for every file.
		 */
		if (w->pwait && w->count <= w->pwant)
			pthread_cond_signal(&w->cv_done);
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

/* ---- the pipeline's side ---- */

struct fpw_job *
fpw_job_slot(struct fpw *w)
{
	uint32_t n;

	if (w->started) {
		n = __atomic_load_n(&w->count, __ATOMIC_ACQUIRE);
		if (n >= w->cap) {
			pthread_mutex_lock(&w->mu);
			w->st.waits_full++;
			if (w->wsleep)
				pthread_cond_signal(&w->cv_work);
			w->pwant = w->cap / 2;
			while (w->count > w->pwant) {
				w->pwait = 1;
				pthread_cond_wait(&w->cv_done, &w->mu);
				w->pwait = 0;
			}
			pthread_mutex_unlock(&w->mu);
		}
	}
	memset(&w->ring[w->head], 0, sizeof(w->ring[w->head]));
	w->ring[w->head].fd = -1;
	w->ring[w->head].head = FPW_NONE;
	return &w->ring[w->head];
}

void
fpw_job_commit(struct fpw *w)
{
	struct fpw_job *j = &w->ring[w->head];
	struct wres r;

	if (!w->started) {
		/* Inline: the ring has one slot, run it now. */
		memset(&r, 0, sizeof(r));
		job_run(w, j, &r);
		pthread_mutex_lock(&w->mu);
		job_done(w, j, &r);
		pthread_mutex_unlock(&w->mu);
		return;
	}
	pthread_mutex_lock(&w->mu);
	w->head = (w->head + 1) % w->cap;
	__atomic_store_n(&w->count, w->count + 1, __ATOMIC_RELEASE);
	if (w->count > w->st.queue_peak)
		w->st.queue_peak = w->count;
	/* A sleeping writer is woken per WAKE_BATCH jobs or by fpw_idle. */
	if (w->wsleep && (w->count >= WAKE_BATCH || w->count >= w->cap))
		pthread_cond_signal(&w->cv_work);
	pthread_mutex_unlock(&w->mu);
}

uint32_t
fpw_reclaim(struct fpw *w, uint32_t *head, uint32_t *tail)
{
	uint32_t n;

	if (__atomic_load_n(&w->rn, __ATOMIC_RELAXED) == 0)
		return 0;
	pthread_mutex_lock(&w->mu);
	*head = w->rhead;
	*tail = w->rtail;
	n = w->rn;
	w->rhead = w->rtail = FPW_NONE;
	__atomic_store_n(&w->rn, 0, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&w->mu);
	return n;
}

uint32_t
fpw_queued(struct fpw *w)
{
	return w->started ? __atomic_load_n(&w->count, __ATOMIC_ACQUIRE) :
	    0;
}

void
fpw_wait(struct fpw *w)
{
	if (!w->started)
		return;
	pthread_mutex_lock(&w->mu);
	if (w->count > 0 && w->rn == 0) {
		/* Half of what is queued done (at least one job). */
		w->st.waits_memory++;
		if (w->wsleep)
			pthread_cond_signal(&w->cv_work);
		w->pwant = w->count / 2;
		while (w->count > w->pwant) {
			w->pwait = 1;
			pthread_cond_wait(&w->cv_done, &w->mu);
			w->pwait = 0;
		}
	}
	pthread_mutex_unlock(&w->mu);
}

void
fpw_idle(struct fpw *w)
{
	if (w->started) {
		/* End of a batch: a sleeping writer gets what is queued. */
		if (__atomic_load_n(&w->count, __ATOMIC_ACQUIRE) > 0) {
			pthread_mutex_lock(&w->mu);
			if (w->wsleep)
				pthread_cond_signal(&w->cv_work);
			pthread_mutex_unlock(&w->mu);
		}
		return;
	}
	if (!w->idirty)
		return;
	index_flush_all(w);
	pthread_mutex_lock(&w->mu);
	w->st.index_errors += w->index_errors;
	w->st.index_writes += w->index_writes;
	w->index_errors = w->index_writes = 0;
	pthread_mutex_unlock(&w->mu);
}

void
fpw_drain(struct fpw *w)
{
	if (w->started) {
		pthread_mutex_lock(&w->mu);
		w->quit = 1;
		pthread_cond_signal(&w->cv_work);
		pthread_mutex_unlock(&w->mu);
		pthread_join(w->th, NULL);
		w->started = 0;
		w->head = w->tail = w->count = 0;
	}
	fpw_idle(w);
}

void
fpw_stats(struct fpw *w, struct fpw_stats *s, char *first_error,
    size_t len)
{
	pthread_mutex_lock(&w->mu);
	*s = w->st;
	if (first_error != NULL)
		snprintf(first_error, len, "%s", w->first_error);
	pthread_mutex_unlock(&w->mu);
}

void
fpw_free(struct fpw *w)
{
	int i;

	if (w == NULL)
		return;
	fpw_drain(w);
	for (i = 0; i < NDAYS; i++) {
		if (w->days[i].dfd >= 0)
			close(w->days[i].dfd);
		if (w->days[i].ifd >= 0)
			close(w->days[i].ifd);
		free(w->days[i].ibuf);
	}
	pthread_cond_destroy(&w->cv_work);
	pthread_cond_destroy(&w->cv_done);
	pthread_mutex_destroy(&w->mu);
	ZSTD_freeCCtx(w->zc);
	free(w->zin);
	free(w->zout);
	free(w->ring);
	free(w);
}

int
fpw_new(struct fpw **wp, const struct fpw_conf *c, char *msg, size_t len)
{
	sigset_t all, old;
	struct fpw *w;
	int i, rc;

	*wp = NULL;
	if ((w = calloc(1, sizeof(*w))) == NULL)
		goto nomem;
	w->c = *c;
	w->cap = c->thread && c->queue > 0 ? c->queue : 1;
	w->rhead = w->rtail = FPW_NONE;
	w->link = LK_EMPTY;
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv_work, NULL);
	pthread_cond_init(&w->cv_done, NULL);
	for (i = 0; i < NDAYS; i++) {
		w->days[i].day = -1;
		w->days[i].dfd = w->days[i].ifd = -1;
	}
	if ((w->ring = calloc(w->cap, sizeof(*w->ring))) == NULL)
		goto nomem;
	for (i = 0; i < NDAYS; i++)
		if (c->index && (w->days[i].ibuf = malloc(IBUF)) == NULL)
			goto nomem;
	if (c->compress) {
		if ((w->zc = ZSTD_createCCtx()) == NULL ||
		    (w->zin = malloc(ZBUF)) == NULL ||
		    (w->zout = malloc(ZBUF)) == NULL)
			goto nomem;
		ZSTD_CCtx_setParameter(w->zc, ZSTD_c_compressionLevel,
		    c->clevel);
		ZSTD_CCtx_setParameter(w->zc, ZSTD_c_checksumFlag, 1);
		ZSTD_CCtx_setParameter(w->zc, ZSTD_c_contentSizeFlag, 1);
	}
	if (c->thread) {
		/* Signals are the pipeline thread's business. */
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		rc = weir_thread_start(&w->th, "weir-flowpcap", writer_main,
		    w);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		if (rc == 0)
			w->started = w->st.threaded = 1;
		else {
			/* Still correct, only slower: publish inline. */
			log_warn("%s: cannot start the writer thread (%s): "
			    "files are written inline", MOD, strerror(-rc));
			w->cap = 1;
		}
	}
	*wp = w;
	return 0;
nomem:
	snprintf(msg, len, "out of memory");
	fpw_free(w);
	return -ENOMEM;
}
