/*
 * status.c - JSON status lines on a descriptor given by the parent
 * (weir-capture --status-fd, SIGUSR1; include/weir/priv.h).
 *
 * Never on the packet path's critical section: a line is written at
 * most once a second or on request, between batches.  The descriptor is
 * non-blocking (except stderr, which may be a terminal shared with the
 * parent), so a parent that stops reading costs skipped lines, counted,
 * never a stalled capture.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "weir/priv.h"

static int	 st_fd = 2;
static char	*st_pend;		/* unfinished line */
static size_t	 st_len, st_off;
static unsigned long long st_skipped;

int
weir_status_open(int fd, struct weir_err *err)
{
	int fl;

	if ((fl = fcntl(fd, F_GETFL)) < 0)
		return weir_seterr(err, -errno, "--status-fd %d: %s", fd,
		    strerror(errno));
	if ((fl & O_ACCMODE) == O_RDONLY)
		return weir_seterr(err, -EBADF, "--status-fd %d: not open "
		    "for writing", fd);
	if (fd != 2 && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return weir_seterr(err, -errno, "--status-fd %d: %s", fd,
		    strerror(errno));
	(void)fcntl(fd, F_SETFD, FD_CLOEXEC);
	st_fd = fd;
	return 0;
}

/* Write what is pending; 1 when nothing is left. */
static int
flush_pending(void)
{
	ssize_t n;

	while (st_pend != NULL && st_off < st_len) {
		n = write(st_fd, st_pend + st_off, st_len - st_off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n <= 0) {
			/* the reader is gone: forget the line */
			st_skipped++;
			break;
		}
		st_off += (size_t)n;
	}
	free(st_pend);
	st_pend = NULL;
	st_len = st_off = 0;
	return 1;
}

static void
add_time(json_t *o, const char *event)
{
	struct timespec ts;
	struct tm tm;
	char buf[64];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec, ts.tv_nsec);
	json_object_set_new(o, "event", json_string(event));
	json_object_set_new(o, "time", json_string(buf));
	json_object_set_new(o, "status_lines_skipped",
	    json_integer((json_int_t)st_skipped));
}

void
weir_status_line(json_t *o, const char *event)
{
	char *s;
	size_t len;

	if (!flush_pending()) {
		st_skipped++;
		return;
	}
	add_time(o, event);
	if ((s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER)) == NULL)
		return;
	len = strlen(s);
	/* json_dumps leaves room for nothing more: grow by the newline */
	st_pend = realloc(s, len + 2);
	if (st_pend == NULL) {
		free(s);
		st_skipped++;
		return;
	}
	st_pend[len] = '\n';
	st_pend[len + 1] = '\0';
	st_len = len + 1;
	st_off = 0;
	(void)flush_pending();
}

void
weir_status_final(json_t *o, int wait_ms)
{
	struct pollfd pfd;
	struct timespec t0, t;
	long el;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		if (st_pend == NULL) {
			weir_status_line(o, "end");
			o = NULL;
		} else
			(void)flush_pending();
		if (st_pend == NULL && o == NULL)
			return;
		clock_gettime(CLOCK_MONOTONIC, &t);
		el = (t.tv_sec - t0.tv_sec) * 1000 +
		    (t.tv_nsec - t0.tv_nsec) / 1000000;
		if (el >= wait_ms)
			return;
		pfd.fd = st_fd;
		pfd.events = POLLOUT;
		if (poll(&pfd, 1, (int)(wait_ms - el)) <= 0 ||
		    (pfd.revents & (POLLERR | POLLHUP)))
			return;
	}
}

unsigned long long
weir_status_skipped(void)
{
	return st_skipped;
}
