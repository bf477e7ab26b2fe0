/*
 * test_rbuf.c - the read buffer with and without read-ahead.
 *
 * A pcap file of known content (every record's length, timestamp and
 * bytes follow from its index) is read three ways: as a regular file
 * (read-ahead thread), through a pipe (no read-ahead: the synchronous
 * path the reader tests check against tshark), and again as a file with
 * records larger than the read-ahead prefix, which end read-ahead and
 * go on synchronously.  Every packet must come out exactly as written,
 * and a record cut short must give the same error at the same offset
 * either way.
 */
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "weir/input.h"
#include "../tap.h"

#define NPKT	60000u

/* Deterministic record i: length, timestamp, byte j. */
static uint32_t
rec_len(uint32_t i, int big)
{
	uint32_t x = i * 2654435761u;

	if (big && i == 9000)
		return 3u << 20;		/* 3 MiB: past the prefix */
	if (big && i == 30001)
		return (700u << 10) + 3;	/* just past the prefix */
	return 40 + (x >> 8) % 1500;
}

static uint8_t
rec_byte(uint32_t i, uint32_t j)
{
	return (uint8_t)(i * 31u + j * 7u + (j >> 8));
}

static void
put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

/* Write the trace; cut the last record short when cut is set. */
static int
make_trace(const char *path, int big, int cut, uint64_t *cut_off)
{
	static uint8_t buf[(3u << 20) + 64];
	uint8_t fh[24] = { 0 };
	uint32_t i, j, len;
	uint64_t off = 24;
	FILE *f;

	if ((f = fopen(path, "w")) == NULL)
		return -1;
	put32(fh, 0xa1b2c3d4);
	fh[4] = 2;
	fh[6] = 4;
	put32(fh + 16, 1u << 24);
	put32(fh + 20, 1);
	fwrite(fh, 1, 24, f);
	for (i = 0; i < NPKT; i++) {
		len = rec_len(i, big);
		put32(buf, 1700000000u + i / 1000);
		put32(buf + 4, (i % 1000) * 1000);
		put32(buf + 8, len);
		put32(buf + 12, len + (i & 3));
		for (j = 0; j < len; j++)
			buf[16 + j] = rec_byte(i, j);
		if (cut && i == NPKT - 1) {
			*cut_off = off;
			fwrite(buf, 1, 16 + len / 2, f);
			break;
		}
		fwrite(buf, 1, 16 + len, f);
		off += 16 + len;
	}
	return fclose(f);
}

struct result {
	uint32_t	 n;		/* packets read */
	uint32_t	 bad;		/* packets that differ */
	int		 rc;		/* last return of weir_input_next */
	int		 ra_on_open;	/* read-ahead was running after open */
	char		 msg[512];
};

static void
check_batch(struct weir_pkt *p, int k, int big, struct result *r)
{
	uint32_t i, j, len;
	int m;

	for (m = 0; m < k; m++, r->n++) {
		i = r->n;
		len = rec_len(i, big);
		if (p[m].caplen != len || p[m].wirelen != len + (i & 3) ||
		    p[m].ts != (uint64_t)(1700000000u + i / 1000) *
		    1000000000u + (uint64_t)(i % 1000) * 1000000u) {
			r->bad++;
			continue;
		}
		for (j = 0; j < len; j++)
			if (p[m].data[j] != rec_byte(i, j))
				break;
		/* The 16 bytes before data are its own record header. */
		if (j < len || memcmp(p[m].data - 8, &len, 4) != 0)
			r->bad++;
	}
}

static void
read_all(int fd, const char *name, int big, struct result *r)
{
	static struct weir_pkt pk[512];
	struct weir_ifaces ifaces;
	struct weir_input in;
	struct weir_err err = { "" };
	int k;

	memset(r, 0, sizeof(*r));
	memset(&ifaces, 0, sizeof(ifaces));
	if ((r->rc = weir_input_open_fd(&in, fd, name, 0, &ifaces,
	    &err)) < 0) {
		snprintf(r->msg, sizeof(r->msg), "%s", err.msg);
		return;
	}
	r->ra_on_open = in.ra != NULL;
	while ((k = weir_input_next(&in, pk, 512)) > 0)
		check_batch(pk, k, big, r);
	r->rc = k;
	snprintf(r->msg, sizeof(r->msg), "%s", in.err.msg);
	weir_input_close(&in);
}

/* Feed path into a pipe from a child process; returns the read end. */
static int
pipe_from(const char *path, pid_t *pid)
{
	char buf[65536];
	ssize_t n;
	int p[2], fd;

	if (pipe(p) != 0)
		return -1;
	if ((*pid = fork()) == 0) {
		close(p[0]);
		fd = open(path, O_RDONLY);
		while ((n = read(fd, buf, sizeof(buf))) > 0)
			if (write(p[1], buf, (size_t)n) != n)
				_exit(1);
		_exit(0);
	}
	close(p[1]);
	return p[0];
}

static void
run_case(const char *path, int big, int cut)
{
	struct result a, b;
	uint64_t cut_off = 0;
	char want[64];
	pid_t pid;
	int st;

	ok(make_trace(path, big, cut, &cut_off) == 0, "%s: trace written",
	    path);
	read_all(open(path, O_RDONLY), path, big, &a);
	read_all(pipe_from(path, &pid), path, big, &b);
	waitpid(pid, &st, 0);

	ok(a.ra_on_open, "%s: read-ahead runs on a regular file", path);
	ok(!b.ra_on_open, "%s: no read-ahead on a pipe", path);
	ok(a.n == (cut ? NPKT - 1 : NPKT) && a.bad == 0,
	    "%s: read-ahead: %u packets, %u differ", path, a.n, a.bad);
	ok(b.n == a.n && b.bad == 0, "%s: pipe: %u packets, %u differ",
	    path, b.n, b.bad);
	if (!cut) {
		ok(a.rc == 0 && b.rc == 0, "%s: clean end (%d, %d)", path,
		    a.rc, b.rc);
		return;
	}
	snprintf(want, sizeof(want), "offset %llu:",
	    (unsigned long long)cut_off);
	ok(a.rc < 0 && strstr(a.msg, want) != NULL,
	    "%s: cut record reported at its offset: '%s'", path, a.msg);
	ok(b.rc == a.rc && strcmp(a.msg, b.msg) == 0,
	    "%s: same error without read-ahead: '%s'", path, b.msg);
}

int
main(void)
{
	char p1[] = "/tmp/weir-test-rbuf-XXXXXX";
	int fd;

	if ((fd = mkstemp(p1)) < 0) {
		perror("mkstemp");
		return 1;
	}
	close(fd);
	run_case(p1, 0, 0);
	run_case(p1, 1, 0);	/* records past the prefix: fallback */
	run_case(p1, 0, 1);
	run_case(p1, 1, 1);
	unlink(p1);
	return tap_done();
}
