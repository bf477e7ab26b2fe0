/*
 * test_shmring.c - the packet ring between weir-tap and a tenant, with
 * the two ends in two processes as in production (fork: the child
 * attaches to the memfd it inherited).
 *
 * Every packet's length, timestamp and bytes follow from a sequence
 * number, so the consumer can check each one on its own; the producer
 * reports which sequence numbers it put, so losses are checked exactly.
 */
#include <sys/wait.h>

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "weir/shmring.h"
#include "../tap.h"

static uint32_t
plen(uint32_t i)
{
	return 4 + (i * 2654435761u >> 7) % 1600;
}

static void
fill(uint8_t *b, uint32_t i, uint32_t len)
{
	uint32_t j;

	memcpy(b, &i, len < 4 ? len : 4);
	for (j = 4; j < len; j++)
		b[j] = (uint8_t)(i + j * 13u);
}

/* Consumer child: read until done; checks; results on fd out. */
struct cres {
	uint64_t	n, bad, bytes, eagain;
	uint64_t	seqsum;		/* sum of sequence numbers seen */
	int		rc;
	char		msg[600];
};

static void
consumer(int ringfd, int out, int startfd, int timeout_ms)
{
	static struct weir_pkt pk[256];
	static uint8_t want[2048];
	struct weir_ring r;
	struct weir_err err = { "" };
	struct cres c;
	uint32_t seq;
	char go;
	int k, m;

	memset(&c, 0, sizeof(c));
	if (startfd >= 0 && read(startfd, &go, 1) != 1)
		_exit(3);
	if ((c.rc = weir_ring_attach(&r, ringfd, &err)) < 0)
		goto out;
	for (;;) {
		k = weir_ring_read(&r, pk, 256, timeout_ms, NULL, &err);
		if (k == -EAGAIN) {
			c.eagain++;
			continue;
		}
		if (k <= 0) {
			c.rc = k;
			break;
		}
		for (m = 0; m < k; m++) {
			seq = 0;
			memcpy(&seq, pk[m].data, pk[m].caplen < 4 ?
			    pk[m].caplen : 4);
			fill(want, seq, plen(seq));
			if (pk[m].caplen != plen(seq) || pk[m].wirelen !=
			    plen(seq) + 100 || pk[m].ts != 1000ull * seq ||
			    pk[m].linktype != 1 || pk[m].iface != 0 ||
			    memcmp(pk[m].data, want, pk[m].caplen) != 0)
				c.bad++;
			/* The pipeline may write into the headroom. */
			memset(pk[m].data - WEIR_HEADROOM, 0xee,
			    WEIR_HEADROOM);
			c.n++;
			c.bytes += pk[m].caplen;
			c.seqsum += seq;
		}
	}
out:
	snprintf(c.msg, sizeof(c.msg), "%s", err.msg);
	if (write(out, &c, sizeof(c)) != (ssize_t)sizeof(c))
		_exit(2);
	_exit(0);
}

static pid_t
spawn(struct weir_ring *r, int *res, int *start, int timeout_ms)
{
	int p[2], s[2] = { -1, -1 };
	pid_t pid;

	if (pipe(p) != 0 || (start != NULL && pipe(s) != 0))
		exit(1);
	if ((pid = fork()) == 0) {
		close(p[0]);
		if (s[1] >= 0)
			close(s[1]);
		consumer(r->fd, p[1], s[0], timeout_ms);
	}
	close(p[1]);
	if (s[0] >= 0)
		close(s[0]);
	*res = p[0];
	if (start != NULL)
		*start = s[1];
	return pid;
}

static int
collect(pid_t pid, int res, struct cres *c)
{
	int st;

	memset(c, 0, sizeof(*c));
	if (read(res, c, sizeof(*c)) != (ssize_t)sizeof(*c))
		c->rc = -999;
	close(res);
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void
test_lossless(void)
{
	static uint8_t b[2048];
	struct weir_ring r;
	struct weir_err err = { "" };
	struct cres c;
	uint64_t bytes = 0, seqsum = 0;
	uint32_t i, n = 300000;
	int res, st;
	pid_t pid;

	ok(weir_ring_create(&r, "test", 64u << 10, &err) == 0,
	    "create a 64 KiB ring: %s", err.msg);
	ok(weir_ring_add_iface(&r, 1, 65535, 9, "veth0") == 0,
	    "interface 0 added");
	pid = spawn(&r, &res, NULL, 50);
	for (i = 0; i < n; i++) {
		while (!weir_ring_fits(&r, plen(i))) {
			weir_ring_publish(&r);
			weir_ring_kick(&r);
			usleep(50);
		}
		fill(b, i, plen(i));
		if (weir_ring_put(&r, b, plen(i), plen(i) + 100, 1000ull * i,
		    0, 0) != 0)
			break;
		bytes += plen(i);
		seqsum += i;
		if (i % 37 == 0)
			weir_ring_publish(&r);
	}
	weir_ring_finish(&r);
	st = collect(pid, res, &c);
	ok(i == n, "producer put all %u packets (%u)", n, i);
	ok(st == 0 && c.rc == 0, "consumer ended cleanly (%d, %d: %s)", st,
	    c.rc, c.msg);
	ok(c.n == n && c.bad == 0 && c.bytes == bytes && c.seqsum == seqsum,
	    "consumer got every packet intact, in a ring many times smaller "
	    "than the data (%llu packets, %llu bad, %llu bytes)",
	    (unsigned long long)c.n, (unsigned long long)c.bad,
	    (unsigned long long)c.bytes);
	ok(r.hdr->written == n && r.hdr->offered == n &&
	    r.hdr->full_drops == 0, "header counters: %llu offered, %llu "
	    "written, %llu dropped", (unsigned long long)r.hdr->offered,
	    (unsigned long long)r.hdr->written,
	    (unsigned long long)r.hdr->full_drops);
	weir_ring_close(&r);
}

/* A consumer that does not read: the ring fills, drops are counted. */
static void
test_full(void)
{
	static uint8_t b[2048];
	struct weir_ring r;
	struct weir_err err = { "" };
	struct cres c;
	uint64_t put = 0, seqsum = 0;
	uint32_t i, n = 5000;
	int res, start, st;
	pid_t pid;

	weir_ring_create(&r, "full", 64u << 10, &err);
	weir_ring_add_iface(&r, 1, 65535, 9, "veth0");
	pid = spawn(&r, &res, &start, 50);
	for (i = 0; i < n; i++) {
		fill(b, i, plen(i));
		if (weir_ring_put(&r, b, plen(i), plen(i) + 100, 1000ull * i,
		    0, 0) == 0) {
			put++;
			seqsum += i;
		}
		weir_ring_publish(&r);
	}
	weir_ring_finish(&r);
	ok(put > 0 && put < n, "a stalled consumer: %llu of %u put",
	    (unsigned long long)put, n);
	ok(r.hdr->offered == n && r.hdr->written == put &&
	    r.hdr->full_drops == n - put, "offered %llu = written %llu + "
	    "full_drops %llu", (unsigned long long)r.hdr->offered,
	    (unsigned long long)r.hdr->written,
	    (unsigned long long)r.hdr->full_drops);
	if (write(start, "g", 1) != 1)
		exit(1);
	close(start);
	st = collect(pid, res, &c);
	ok(st == 0 && c.rc == 0 && c.n == put && c.bad == 0 &&
	    c.seqsum == seqsum, "the consumer then reads exactly the %llu "
	    "packets put (%llu, %llu bad)", (unsigned long long)put,
	    (unsigned long long)c.n, (unsigned long long)c.bad);
	weir_ring_close(&r);
}

/* Idle ring: the consumer's wait times out; the producer's end ends it. */
static void
test_idle_and_end(void)
{
	static struct weir_pkt pk[4];
	struct weir_ring r, c;
	struct weir_err err = { "" };
	int rc1, rc2, rc3, dupfd;

	weir_ring_create(&r, "idle", 64u << 10, &err);
	weir_ring_add_iface(&r, 101, 65535, 9, "tun0");
	dupfd = dup(r.fd);
	ok(weir_ring_attach(&c, dupfd, &err) == 0, "attach: %s", err.msg);
	rc1 = weir_ring_read(&c, pk, 4, 20, NULL, &err);
	weir_ring_put(&r, (const uint8_t *)"\x45", 1, 1, 7, 0, 2);
	weir_ring_publish(&r);
	rc2 = weir_ring_read(&c, pk, 4, 20, NULL, &err);
	ok(rc1 == -EAGAIN, "empty ring: -EAGAIN after the wait (%d)", rc1);
	ok(rc2 == 1 && pk[0].linktype == 101 && pk[0].dir == 2 &&
	    pk[0].ts == 7, "one packet with the interface's link type");
	weir_ring_finish(&r);
	rc3 = weir_ring_read(&c, pk, 4, 20, NULL, &err);
	ok(rc3 == 0, "finished and read: end (%d)", rc3);
	weir_ring_close(&c);
	weir_ring_close(&r);
}

/* A consumer that scribbles on tail cannot hurt the producer. */
static void
test_bad_tail(void)
{
	static uint8_t b[2048];
	struct weir_ring r;
	struct weir_err err = { "" };
	uint32_t i, ok_put = 0;

	weir_ring_create(&r, "bad", 64u << 10, &err);
	weir_ring_add_iface(&r, 1, 65535, 9, "veth0");
	for (i = 0; i < 10; i++)
		ok_put += weir_ring_put(&r, b, 1000, 1000, i, 0, 0) == 0;
	weir_ring_publish(&r);
	atomic_store(&r.hdr->tail, (uint64_t)1 << 60);
	for (i = 0; i < 200; i++)
		ok_put += weir_ring_put(&r, b, 1000, 1000, i, 0, 0) == 0;
	ok(r.broken && r.hdr->full_drops == 210 - ok_put && ok_put >= 10 &&
	    ok_put < 210, "tail past head: ring marked broken, the rest "
	    "dropped and counted (%u put)", ok_put);
	weir_ring_close(&r);
}

/* A consumer that dies: the producer goes on, dropping once full. */
static void
test_consumer_dies(void)
{
	static uint8_t b[2048];
	struct weir_ring r;
	struct weir_err err = { "" };
	struct cres c;
	uint32_t i, put = 0;
	int res, start;
	pid_t pid;

	weir_ring_create(&r, "dies", 64u << 10, &err);
	weir_ring_add_iface(&r, 1, 65535, 9, "veth0");
	pid = spawn(&r, &res, &start, 50);
	kill(pid, SIGKILL);
	collect(pid, res, &c);
	close(start);
	for (i = 0; i < 1000; i++)
		put += weir_ring_put(&r, b, 500, 500, i, 0, 0) == 0;
	weir_ring_publish(&r);
	ok(put > 0 && put < 1000 && r.hdr->full_drops == 1000 - put,
	    "killed consumer: producer unharmed, %u put, %llu dropped", put,
	    (unsigned long long)r.hdr->full_drops);
	weir_ring_close(&r);
}

static void
test_attach_errors(void)
{
	struct weir_ring c;
	struct weir_err err = { "" };
	FILE *f = tmpfile();
	char junk[8192];
	int rc;

	memset(junk, 'x', sizeof(junk));
	fwrite(junk, 1, sizeof(junk), f);
	fflush(f);
	rc = weir_ring_attach(&c, fileno(f), &err);
	ok(rc == -WEIR_EFORMAT && strstr(err.msg, "not a weir ring") != NULL,
	    "a file that is not a ring: '%s'", err.msg);
	fclose(f);
	rc = weir_ring_create(&c, "huge", (size_t)WEIR_RING_MAXSIZE + 1, &err);
	ok(rc == -EINVAL && strstr(err.msg, "larger than") != NULL,
	    "oversized ring refused: '%s'", err.msg);
}

int
main(void)
{
	test_lossless();
	test_full();
	test_idle_and_end();
	test_bad_tail();
	test_consumer_dies();
	test_attach_errors();
	return tap_done();
}
