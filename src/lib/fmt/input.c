/*
 * input.c - open a trace file, find its format, hand out batches.
 *
 * The format is found from the first bytes, never from the file name:
 * pcap and pcapng have magic numbers, ERF has none and is probed last
 * with a heuristic (erf_read.c).
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "weir/err.h"
#include "weir/input.h"
#include "lib/fmt/fmt.h"

const struct weir_input_ops *const weir_input_formats[] = {
	&weir_fmt_pcap,
	&weir_fmt_pcapng,
	&weir_fmt_erf,
	NULL
};

/* Bytes wanted for probing: enough for ERF to look at a few records. */
#define PROBE_BYTES	256
/* Smallest read buffer, for files smaller than WEIR_RBUF_SIZE. */
#define SMALL_RBUF	(64u << 10)

int
fmt_errat(struct weir_input *in, int code, uint64_t off, const char *fmt,
    ...)
{
	char what[384];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return weir_seterr(&in->err, code, "file '%s': offset %llu: %s",
	    in->path, (unsigned long long)off, what);
}

int
fmt_need(struct weir_input *in, size_t need, const char *what)
{
	long r;
	size_t avail;

	r = weir_rbuf_fill(in, need);
	if (r < 0) {
		if (r == -EFBIG)
			return fmt_errat(in, -WEIR_EFORMAT, weir_rbuf_off(in),
			    "%s of %zu bytes is too large", what, need);
		return weir_seterr(&in->err, (int)r, "file '%s': read: %s",
		    in->path, strerror((int)-r));
	}
	avail = (size_t)r;
	if (avail >= need)
		return 0;
	if (avail == 0)
		return WEIR_EOF;
	return fmt_errat(in, -WEIR_ETRUNC, weir_rbuf_off(in),
	    "%s cut short (%zu of %zu bytes)", what, avail, need);
}

const char *
fmt_basename(const char *path)
{
	const char *s;

	if (strcmp(path, "-") == 0)
		return "stdin";
	s = strrchr(path, '/');
	return (s != NULL && s[1] != '\0') ? s + 1 : path;
}

/*
 * A compressed trace is a common mistake; say so instead of "not a
 * trace" (and keep gzip, whose bytes 8-9 can look like an ERF Ethernet
 * record, away from the ERF probe).
 */
static const char *
compressed(const uint8_t *m, size_t n)
{
	if (n >= 2 && m[0] == 0x1f && m[1] == 0x8b)
		return "gzip";
	if (n >= 4 && memcmp(m, "\x28\xb5\x2f\xfd", 4) == 0)
		return "zstd";
	if (n >= 6 && memcmp(m, "\xfd" "7zXZ\x00", 6) == 0)
		return "xz";
	if (n >= 3 && memcmp(m, "BZh", 3) == 0)
		return "bzip2";
	return NULL;
}

static void
input_release(struct weir_input *in)
{
	if (in->ops != NULL && in->ops->close != NULL)
		in->ops->close(in);
	in->ops = NULL;
	weir_rbuf_stop(in);
	free(in->priv);
	in->priv = NULL;
	free(in->buf);
	in->buf = in->base = NULL;
	in->cap = in->len = in->pos = 0;
	if (in->fd > 2)
		close(in->fd);
	in->fd = -1;
}

int
weir_input_open_fd(struct weir_input *in, int fd, const char *name,
    unsigned index, struct weir_ifaces *ifaces, struct weir_err *err)
{
	const struct weir_input_ops *const *f;
	const uint8_t *m;
	const char *what;
	struct stat sb;
	long r;
	int rc;

	memset(in, 0, sizeof(*in));
	in->fd = fd;
	in->index = index;
	in->ifaces = ifaces;
	snprintf(in->path, sizeof(in->path), "%s", name);
	/*
	 * A small regular file gets a small buffer (the first fill
	 * allocates in->cap bytes): many short traces, or a fuzzer, should
	 * not cost a MiB each.  The buffer still grows if the file does.
	 */
	if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) &&
	    sb.st_size < (off_t)WEIR_RBUF_SIZE)
		in->cap = sb.st_size < (off_t)SMALL_RBUF ? SMALL_RBUF :
		    (size_t)sb.st_size + 1;

	r = weir_rbuf_fill(in, PROBE_BYTES);
	if (r < 0) {
		rc = weir_seterr(err, (int)r, "file '%s': read: %s", in->path,
		    strerror((int)-r));
		goto fail;
	}
	if (r == 0) {
		rc = weir_seterr(err, -WEIR_EFORMAT,
		    "file '%s': empty file, not a trace", in->path);
		goto fail;
	}
	if (r < 4) {
		rc = weir_seterr(err, -WEIR_EFORMAT, "file '%s': too short "
		    "to be a trace file (%ld bytes)", in->path, r);
		goto fail;
	}
	m = in->base;
	if ((what = compressed(m, (size_t)r)) != NULL) {
		rc = weir_seterr(err, -WEIR_EFORMAT, "file '%s': %s-compressed,"
		    " decompress it first", in->path, what);
		goto fail;
	}
	for (f = weir_input_formats; *f != NULL; f++)
		if ((*f)->probe(m, (size_t)r))
			break;
	if (*f == NULL) {
		rc = weir_seterr(err, -WEIR_EFORMAT, "file '%s': not a pcap, "
		    "pcapng or ERF file (magic 0x%02x%02x%02x%02x)",
		    in->path, m[0], m[1], m[2], m[3]);
		goto fail;
	}
	in->ops = *f;
	if ((rc = in->ops->open(in)) < 0) {
		if (err != NULL)
			*err = in->err;
		goto fail;
	}
	/* Large regular files: read the next MiB on the other core. */
	if ((rc = weir_rbuf_readahead(in)) < 0) {
		rc = weir_seterr(err, rc, "file '%s': read-ahead: %s",
		    in->path, strerror(-rc));
		goto fail;
	}
	return 0;
fail:
	input_release(in);
	return rc;
}

int
weir_input_open(struct weir_input *in, const char *path, unsigned index,
    struct weir_ifaces *ifaces, struct weir_err *err)
{
	int fd;

	if (strcmp(path, "-") == 0) {
		fd = STDIN_FILENO;
	} else {
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd == -1) {
			memset(in, 0, sizeof(*in));
			in->fd = -1;
			return weir_seterr(err, -errno, "file '%s': %s", path,
			    strerror(errno));
		}
		/* We read it once, front to back. */
		(void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	}
	return weir_input_open_fd(in, fd, path, index, ifaces, err);
}

int
weir_input_next(struct weir_input *in, struct weir_pkt *pkts, unsigned max)
{
	if (in->ops == NULL)
		return -EBADF;
	if (max == 0)
		return -EINVAL;
	return in->ops->next_batch(in, pkts, max);
}

void
weir_input_close(struct weir_input *in)
{
	input_release(in);
}
