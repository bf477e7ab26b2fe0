/*
 * interval.c - the interval clock and line file of the "counters" and
 * "sessions" outputs; interval.h says what they promise.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "weir/log.h"
#include "capture/outputs/filewriter.h"
#include "capture/outputs/interval.h"

uint64_t
weir_iv_ns(double sec)
{
	if (!(sec >= 0.001))
		sec = 1.0;
	return (uint64_t)llround(sec * 1e9);
}

void
weir_iv_init(struct weir_iv_clock *c, uint64_t iv, weir_iv_close_fn *close,
    weir_iv_boundary_fn *boundary, void *arg)
{
	memset(c, 0, sizeof(*c));
	c->iv = iv > 0 ? iv : 1000000000ULL;
	c->close = close;
	c->boundary = boundary;
	c->arg = arg;
}

void
weir_iv_advance(struct weir_iv_clock *c, uint64_t target)
{
	uint64_t t, empty, b = c->cur + c->iv;

	c->close(c->arg, c->cur, b, 0);
	empty = (target - c->cur) / c->iv - 1;
	if (empty > WEIR_IV_GAP_MAX) {
		if (c->boundary != NULL)
			c->boundary(c->arg, b);
		c->close(c->arg, b, target, 1);
	} else
		for (t = b; t < target; t += c->iv) {
			if (c->boundary != NULL)
				c->boundary(c->arg, t);
			c->close(c->arg, t, t + c->iv, 0);
		}
	if (c->boundary != NULL)
		c->boundary(c->arg, target);
	c->cur = target;
}

void
weir_iv_place(struct weir_iv_clock *c, uint64_t ts)
{
	uint64_t k = ts - ts % c->iv;

	if (!c->have) {
		c->have = 1;
		c->cur = k;
		if (c->boundary != NULL)
			c->boundary(c->arg, k);
	} else if (k > c->cur)
		weir_iv_advance(c, k);
	else if (k < c->cur)
		c->late++;
}

void
weir_iv_tick(struct weir_iv_clock *c, uint64_t now)
{
	if (c->have && now >= c->cur + c->iv)
		weir_iv_advance(c, now - now % c->iv);
}

void
weir_iv_end(struct weir_iv_clock *c)
{
	if (c->have)
		c->close(c->arg, c->cur, c->cur + c->iv, 0);
}

static void
out_fail(struct weir_iv_out *o, int code)
{
	if (o->failed)
		return;
	o->failed = code < 0 ? code : -EIO;
	log_err("%s: cannot write '%s': %s", o->mod, o->hidden ? o->hidden :
	    o->path, weir_strerror(code));
}

int
weir_iv_out_open(struct weir_iv_out *o, const char *mod, const char *path,
    int csv, int session, struct weir_err *err)
{
	struct stat sb;
	const char *slash;
	int fd, rc;

	memset(o, 0, sizeof(*o));
	o->mod = mod;
	o->csv = csv;
	o->loss = (session & WEIR_IV_LOSS) != 0;
	session &= WEIR_IV_SESSION;
	if ((o->path = strdup(path)) == NULL)
		return weir_seterr(err, -ENOMEM, "%s: out of memory", mod);
	if (strcmp(path, "-") == 0) {
		o->f = stdout;
		o->is_stdout = o->direct = 1;
	} else if (stat(path, &sb) == 0 && S_ISFIFO(sb.st_mode)) {
		/* Blocks until a reader opens the FIFO, as FIFOs do. */
		o->direct = 1;
		if ((o->f = fopen(path, "w")) == NULL) {
			rc = -errno;
			return weir_seterr(err, rc, "%s: cannot open '%s': %s",
			    mod, path, weir_strerror(rc));
		}
	} else {
		slash = strrchr(path, '/');
		if (asprintf(&o->hidden, "%.*s.%s.part", slash ?
		    (int)(slash - path + 1) : 0, path, slash ? slash + 1 :
		    path) < 0) {
			o->hidden = NULL;
			return weir_seterr(err, -ENOMEM, "%s: out of memory",
			    mod);
		}
		fd = open(o->hidden, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
		    0640);
		if (fd < 0 || (o->f = fdopen(fd, "w")) == NULL) {
			rc = -errno;
			if (fd >= 0)
				close(fd);
			return weir_seterr(err, rc, "%s: cannot create '%s': "
			    "%s", mod, o->hidden, weir_strerror(rc));
		}
	}
	if (o->direct)
		setvbuf(o->f, NULL, _IOLBF, 0);
	if (csv && fprintf(o->f, "%sstart_ns,start,end_ns,end,packets,bytes,"
	    "packets_in,bytes_in,packets_out,bytes_out,packets_unknown,"
	    "bytes_unknown,gap%s\n", session ? "session," : "", o->loss ?
	    ",kernel_received,kernel_dropped,ring_dropped" : "") < 0)
		out_fail(o, -errno);
	return 0;
}

void
weir_iv_out_line(struct weir_iv_out *o, const char *session,
    uint64_t start, uint64_t end, const struct weir_iv_counts *c, int gap)
{
	static const struct weir_iv_counts none;
	char a[64], b[64], l[128];
	uint64_t p, y;
	int rc;

	if (gap) {
		c = &none;
		o->gaps++;
	}
	p = c->pk[0] + c->pk[1] + c->pk[2];
	y = c->by[0] + c->by[1] + c->by[2];
	weir_fw_rfc3339(start, a, sizeof(a));
	weir_fw_rfc3339(end, b, sizeof(b));
	l[0] = '\0';
	if (o->loss && o->csv)
		snprintf(l, sizeof(l), ",%" PRIu64 ",%" PRIu64 ",%" PRIu64,
		    o->kernel_received, o->kernel_dropped, o->ring_dropped);
	else if (o->loss)
		snprintf(l, sizeof(l), ",\"kernel_received\":%" PRIu64
		    ",\"kernel_dropped\":%" PRIu64 ",\"ring_dropped\":%" PRIu64,
		    o->kernel_received, o->kernel_dropped, o->ring_dropped);
	if (o->csv)
		rc = fprintf(o->f, "%s%s%" PRIu64 ",%s,%" PRIu64 ",%s,%" PRIu64
		    ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64
		    ",%" PRIu64 ",%" PRIu64 ",%d%s\n", session ? session : "",
		    session ? "," : "", start, a, end, b, p, y,
		    c->pk[WEIR_DIR_IN], c->by[WEIR_DIR_IN], c->pk[WEIR_DIR_OUT],
		    c->by[WEIR_DIR_OUT], c->pk[WEIR_DIR_UNKNOWN],
		    c->by[WEIR_DIR_UNKNOWN], gap, l);
	else
		rc = fprintf(o->f, "{%s%s%s\"start_ns\":%" PRIu64
		    ",\"start\":\"%s\",\"end_ns\":%" PRIu64 ",\"end\":\"%s\","
		    "\"packets\":%" PRIu64 ",\"bytes\":%" PRIu64
		    ",\"packets_in\":%" PRIu64 ",\"bytes_in\":%" PRIu64
		    ",\"packets_out\":%" PRIu64 ",\"bytes_out\":%" PRIu64
		    ",\"packets_unknown\":%" PRIu64 ",\"bytes_unknown\":%"
		    PRIu64 "%s%s}\n", session ? "\"session\":\"" : "",
		    session ? session : "", session ? "\"," : "", start, a,
		    end, b, p, y, c->pk[WEIR_DIR_IN], c->by[WEIR_DIR_IN],
		    c->pk[WEIR_DIR_OUT], c->by[WEIR_DIR_OUT],
		    c->pk[WEIR_DIR_UNKNOWN], c->by[WEIR_DIR_UNKNOWN],
		    gap ? ",\"gap\":true" : "", l);
	if (rc < 0)
		out_fail(o, errno ? -errno : -EIO);
	o->lines++;
	o->dirty = 1;
}

int
weir_iv_out_flush(struct weir_iv_out *o)
{
	if (!o->dirty)
		return o->failed;
	o->dirty = 0;
	if (fflush(o->f) != 0)
		out_fail(o, -errno);
	return o->failed;
}

int
weir_iv_out_close(struct weir_iv_out *o, struct weir_err *err)
{
	int rc = 0;

	if (o->f == NULL)
		return o->failed;
	if (fflush(o->f) != 0 || ferror(o->f))
		out_fail(o, errno ? -errno : -EIO);
	if (!o->is_stdout && fclose(o->f) != 0)
		out_fail(o, -errno);
	o->f = NULL;
	if (o->hidden != NULL) {
		if (o->failed == 0 && rename(o->hidden, o->path) < 0) {
			o->failed = -errno;
			log_err("%s: cannot rename '%s' to '%s': %s", o->mod,
			    o->hidden, o->path, strerror(errno));
		}
		if (o->failed)
			unlink(o->hidden);
		free(o->hidden);
		o->hidden = NULL;
	}
	if (o->failed) {
		rc = o->failed;
		weir_seterr(err, rc, "%s: cannot write '%s': %s", o->mod,
		    o->path, weir_strerror(rc));
	}
	return rc;
}

void
weir_iv_out_free(struct weir_iv_out *o)
{
	if (o->f != NULL && !o->is_stdout)
		fclose(o->f);
	o->f = NULL;
	if (o->hidden != NULL)
		unlink(o->hidden);
	free(o->hidden);
	free(o->path);
	o->hidden = o->path = NULL;
}
