/*
 * test_interval.c - the interval clock and line file shared by the
 * counters and sessions outputs (src/capture/outputs/interval.c), on
 * hand-built packets.  Expected intervals and lines are worked out by
 * hand from the rules in interval.h and docs/sessions.md.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "capture/outputs/interval.h"
#include "tests/tap.h"

#define S	1000000000ULL

struct rec {
	uint64_t	 start, end;
	int		 gap;
	struct weir_iv_counts n;
};

static struct rec recs[32];
static unsigned nrecs, ncloses, ngaps;	/* nrecs: those kept */
static uint64_t bounds[32];
static unsigned nbounds;
static struct weir_iv_counts cur;

static void
on_close(void *arg, uint64_t start, uint64_t end, int gap)
{
	(void)arg;
	ncloses++;
	ngaps += gap;
	if (nrecs < 32) {
		recs[nrecs].start = start;
		recs[nrecs].end = end;
		recs[nrecs].gap = gap;
		recs[nrecs].n = cur;
		nrecs++;
	}
	memset(&cur, 0, sizeof(cur));
}

static void
on_boundary(void *arg, uint64_t t)
{
	(void)arg;
	if (nbounds < 32)
		bounds[nbounds++] = t;
}

static void
pkt(struct weir_iv_clock *c, uint64_t ts, unsigned dir, uint32_t wire,
    uint32_t cap, int captured)
{
	struct weir_pkt p;

	memset(&p, 0, sizeof(p));
	p.ts = ts;
	p.dir = (uint8_t)dir;
	p.wirelen = wire;
	p.caplen = cap;
	weir_iv_place(c, ts);
	weir_iv_count(&cur, &p, captured);
}

static int
is_rec(unsigned i, uint64_t start, uint64_t end, int gap, uint64_t pin,
    uint64_t bin, uint64_t pout, uint64_t bout, uint64_t punk,
    uint64_t bunk)
{
	const struct rec *r = &recs[i];

	return i < nrecs && r->start == start && r->end == end &&
	    r->gap == gap && r->n.pk[WEIR_DIR_IN] == pin &&
	    r->n.by[WEIR_DIR_IN] == bin && r->n.pk[WEIR_DIR_OUT] == pout &&
	    r->n.by[WEIR_DIR_OUT] == bout &&
	    r->n.pk[WEIR_DIR_UNKNOWN] == punk &&
	    r->n.by[WEIR_DIR_UNKNOWN] == bunk;
}

static void
test_clock(void)
{
	struct weir_iv_clock c;
	static const uint64_t want_b[] = { 10 * S, 11 * S, 12 * S, 13 * S,
	    14 * S, 15 * S, 16 * S, 2015 * S };
	unsigned i;
	int same;

	ok(weir_iv_ns(0.5) == S / 2 && weir_iv_ns(0.0) == S &&
	    weir_iv_ns(0.001) == 1000000, "interval option in ns; 1 s when "
	    "below 1 ms");
	weir_iv_init(&c, S, on_close, on_boundary, NULL);
	pkt(&c, 10 * S + 200000000, WEIR_DIR_IN, 100, 60, 0);
	pkt(&c, 10 * S + 999999999, WEIR_DIR_OUT, 200, 200, 0);
	ok(nrecs == 0 && c.cur == 10 * S, "first interval opens at the "
	    "first packet's boundary (10 s), nothing written yet");
	/* exactly on a boundary: the next interval's */
	pkt(&c, 11 * S, WEIR_DIR_UNKNOWN, 50, 50, 0);
	/* a direction past OUT counts as unknown */
	pkt(&c, 11 * S + 500000000, 7, 70, 40, 0);
	ok(nrecs == 1 && is_rec(0, 10 * S, 11 * S, 0, 1, 100, 1, 200, 0, 0),
	    "[10 s, 11 s): 1 in (100 B), 1 out (200 B), wire lengths");
	pkt(&c, 14 * S + 300000000, WEIR_DIR_IN, 10, 10, 0);
	ok(nrecs == 4 && is_rec(1, 11 * S, 12 * S, 0, 0, 0, 0, 0, 2, 120),
	    "[11 s, 12 s): the packet at 11.0 and the one of direction 7, "
	    "unknown, 120 B");
	ok(is_rec(2, 12 * S, 13 * S, 0, 0, 0, 0, 0, 0, 0) &&
	    is_rec(3, 13 * S, 14 * S, 0, 0, 0, 0, 0, 0, 0),
	    "empty intervals [12, 13) and [13, 14) written as zero lines");
	/* older than the open interval: counted in it, and as late */
	pkt(&c, 13 * S + 900000000, WEIR_DIR_OUT, 20, 20, 0);
	ok(c.late == 1 && nrecs == 4, "a packet at 13.9 s while [14, 15) is "
	    "open is late and rewrites nothing");
	/* captured lengths when asked */
	pkt(&c, 14 * S + 400000000, WEIR_DIR_IN, 1500, 64, 1);
	weir_iv_tick(&c, 15 * S - 1);
	ok(nrecs == 4, "a tick before the end of [14, 15) closes nothing");
	weir_iv_tick(&c, 15 * S);
	ok(nrecs == 5 && is_rec(4, 14 * S, 15 * S, 0, 2, 74, 1, 20, 0, 0) &&
	    c.cur == 15 * S, "tick at 15 s closes [14, 15): 2 in (10 + 64 "
	    "captured), 1 out (the late one)");
	/* 2000 s later: 1999 empty intervals, more than WEIR_IV_GAP_MAX */
	pkt(&c, 2015 * S + 1, WEIR_DIR_OUT, 30, 30, 0);
	ok(nrecs == 7 && is_rec(5, 15 * S, 16 * S, 0, 0, 0, 0, 0, 0, 0) &&
	    is_rec(6, 16 * S, 2015 * S, 1, 0, 0, 0, 0, 0, 0),
	    "a jump of 2000 s: [15, 16) zero, then one gap [16 s, 2015 s)");
	weir_iv_end(&c);
	ok(nrecs == 8 && is_rec(7, 2015 * S, 2016 * S, 0, 0, 0, 1, 30, 0, 0),
	    "end of input writes the open interval [2015, 2016)");
	same = nbounds == sizeof(want_b) / sizeof(want_b[0]);
	for (i = 0; same && i < nbounds; i++)
		same = bounds[i] == want_b[i];
	ok(same, "boundary callback at 10 (first), 11, 12, 13, 14, 15, "
	    "16 (before the gap) and 2015 s (%u calls)", nbounds);

	/* a boundary of 1000 empty intervals is not yet a gap */
	nrecs = ncloses = ngaps = 0;
	memset(&cur, 0, sizeof(cur));
	weir_iv_init(&c, S, on_close, NULL, NULL);
	pkt(&c, 0, WEIR_DIR_IN, 1, 1, 0);
	pkt(&c, 1001 * S, WEIR_DIR_IN, 1, 1, 0);
	ok(ncloses == 1001 && ngaps == 0 && recs[31].start == 31 * S &&
	    recs[31].end == 32 * S, "exactly %d empty intervals are written "
	    "one by one (%u lines)", WEIR_IV_GAP_MAX, ncloses);
	nrecs = 0;
	weir_iv_init(&c, S / 2, on_close, NULL, NULL);
	pkt(&c, 7 * S + S / 4, WEIR_DIR_IN, 1, 1, 0);
	pkt(&c, 7 * S + S / 2, WEIR_DIR_IN, 1, 1, 0);
	ok(nrecs == 1 && recs[0].start == 7 * S && recs[0].end == 7 * S +
	    S / 2, "0.5 s intervals: 7.25 s is in [7.0, 7.5), 7.5 s starts "
	    "the next");
}

static char *
slurp(const char *path)
{
	static char buf[4096];
	FILE *f = fopen(path, "r");
	size_t n;

	buf[0] = '\0';
	if (f == NULL)
		return NULL;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static void
test_lines(void)
{
	struct weir_iv_out o;
	struct weir_iv_counts n;
	struct weir_err err;
	char dir[] = "/tmp/test_interval.XXXXXX", path[256], part[256];
	const char *got;

	if (mkdtemp(dir) == NULL) {
		ok(0, "mkdtemp");
		return;
	}
	memset(&n, 0, sizeof(n));
	n.pk[WEIR_DIR_IN] = 1;
	n.by[WEIR_DIR_IN] = 100;
	n.pk[WEIR_DIR_OUT] = 2;
	n.by[WEIR_DIR_OUT] = 300;
	n.pk[WEIR_DIR_UNKNOWN] = 3;
	n.by[WEIR_DIR_UNKNOWN] = 7;

	snprintf(path, sizeof(path), "%s/c.json", dir);
	snprintf(part, sizeof(part), "%s/.c.json.part", dir);
	ok(weir_iv_out_open(&o, "counters", path, 0, 0, &err) == 0,
	    "open a JSON file");
	weir_iv_out_line(&o, NULL, 10 * S, 11 * S, &n, 0);
	weir_iv_out_line(&o, NULL, 11 * S, 2015 * S, &n, 1);
	weir_iv_out_flush(&o);
	ok(access(path, F_OK) != 0 && access(part, F_OK) == 0,
	    "written under .c.json.part until closed");
	ok(weir_iv_out_close(&o, &err) == 0 && access(path, F_OK) == 0 &&
	    access(part, F_OK) != 0, "renamed into place at close");
	got = slurp(path);
	ok(got != NULL && strcmp(got,
	    "{\"start_ns\":10000000000,\"start\":\"1970-01-01T00:00:10.000000000Z\","
	    "\"end_ns\":11000000000,\"end\":\"1970-01-01T00:00:11.000000000Z\","
	    "\"packets\":6,\"bytes\":407,\"packets_in\":1,\"bytes_in\":100,"
	    "\"packets_out\":2,\"bytes_out\":300,\"packets_unknown\":3,"
	    "\"bytes_unknown\":7}\n"
	    "{\"start_ns\":11000000000,\"start\":\"1970-01-01T00:00:11.000000000Z\","
	    "\"end_ns\":2015000000000,\"end\":\"1970-01-01T00:33:35.000000000Z\","
	    "\"packets\":0,\"bytes\":0,\"packets_in\":0,\"bytes_in\":0,"
	    "\"packets_out\":0,\"bytes_out\":0,\"packets_unknown\":0,"
	    "\"bytes_unknown\":0,\"gap\":true}\n") == 0,
	    "JSON lines: totals are the sum of the directions; a gap line is "
	    "all zero and says gap");
	ok(o.lines == 2 && o.gaps == 1, "lines 2, gap_lines 1");
	weir_iv_out_free(&o);
	unlink(path);

	snprintf(path, sizeof(path), "%s/s.csv", dir);
	ok(weir_iv_out_open(&o, "sessions", path, 1, 1, &err) == 0,
	    "open a CSV file with a session column");
	weir_iv_out_line(&o, "web", 10 * S, 11 * S, &n, 0);
	weir_iv_out_line(&o, "web", 11 * S, 2015 * S, &n, 1);
	ok(weir_iv_out_close(&o, &err) == 0, "close");
	got = slurp(path);
	ok(got != NULL && strcmp(got,
	    "session,start_ns,start,end_ns,end,packets,bytes,packets_in,"
	    "bytes_in,packets_out,bytes_out,packets_unknown,bytes_unknown,gap\n"
	    "web,10000000000,1970-01-01T00:00:10.000000000Z,11000000000,"
	    "1970-01-01T00:00:11.000000000Z,6,407,1,100,2,300,3,7,0\n"
	    "web,11000000000,1970-01-01T00:00:11.000000000Z,2015000000000,"
	    "1970-01-01T00:33:35.000000000Z,0,0,0,0,0,0,0,0,1\n") == 0,
	    "CSV: header, a row per interval and session, gap flag last");
	weir_iv_out_free(&o);
	unlink(path);

	snprintf(path, sizeof(path), "%s/s.json", dir);
	ok(weir_iv_out_open(&o, "sessions", path, 0, 1, &err) == 0 &&
	    (weir_iv_out_line(&o, "a.b", 0, S, &n, 0),
	    weir_iv_out_close(&o, &err)) == 0, "JSON with a session");
	got = slurp(path);
	ok(got != NULL && strncmp(got, "{\"session\":\"a.b\",\"start_ns\":0,",
	    30) == 0, "JSON: the session name comes first");
	weir_iv_out_free(&o);
	unlink(path);

	snprintf(path, sizeof(path), "%s/no/such/dir/x.json", dir);
	ok(weir_iv_out_open(&o, "counters", path, 0, 0, &err) < 0 &&
	    strstr(err.msg, "counters: cannot create") != NULL,
	    "an unwritable path fails at open: %s", err.msg);
	weir_iv_out_free(&o);
	rmdir(dir);
}

int
main(void)
{
	test_clock();
	test_lines();
	return tap_done();
}
