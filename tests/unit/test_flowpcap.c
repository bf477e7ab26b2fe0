/*
 * test_flowpcap.c - the flowpcap output driven through its module
 * interface with hand-built packets (Ethernet, IPv4, TCP).  Expected
 * record bytes are built here from the same packets with the payload
 * cleared by hand; file layout and index fields are checked against the
 * pcap format (24-byte header, 16-byte records) and the chosen times.
 * tests/integration/flowpcap.sh checks real traces against tshark.
 * The writer threads: thousands of short flows through a ring of two
 * jobs and a 64 KiB pool give the same files as the inline writer,
 * every packet counted while they run; errors met by a writer thread
 * (a day directory that cannot be made, a file size limit) fail
 * finish() with the file's name and are counted.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "weir/decode.h"
#include "weir/module.h"
#include "weir/pkt.h"
#include "../tap.h"

extern const struct weir_module weir_mod_flowpcap;

#define NS	UINT64_C(1000000000)
#define T0	(UINT64_C(1704067200) * NS)	/* 2024-01-01 00:00:00 UTC */
#define PAYLOAD	100
#define PLEN	(14 + 20 + 20 + PAYLOAD)

static char tmp[256];

struct tp {
	uint8_t		 buf[WEIR_HEADROOM + PLEN];
	struct weir_pkt	 p;
};

static void
put16be(uint8_t *b, uint16_t v)
{
	b[0] = (uint8_t)(v >> 8);
	b[1] = (uint8_t)v;
}

/* a -> b TCP segment with flags and npay bytes of 0xab payload */
static void
mk(struct tp *t, int rev, uint8_t flags, int npay, uint64_t ts)
{
	uint8_t *d = t->buf + WEIR_HEADROOM, a[4] = { 10, 0, 0, 1 },
	    b[4] = { 192, 0, 2, 7 };
	size_t len = 14 + 20 + 20 + (size_t)npay;

	memset(t->buf, 0, sizeof(t->buf));
	memset(&t->p, 0, sizeof(t->p));
	memcpy(d, "\x02\0\0\0\0\x01\x02\0\0\0\0\x02\x08\x00", 14);
	d[14] = 0x45;
	put16be(d + 16, (uint16_t)(len - 14));
	d[22] = 64;
	d[23] = 6;
	memcpy(d + 26, rev ? b : a, 4);
	memcpy(d + 30, rev ? a : b, 4);
	put16be(d + 34, rev ? 443 : 40000);
	put16be(d + 36, rev ? 40000 : 443);
	d[46] = 0x50;
	d[47] = flags;
	memset(d + 54, 0xab, (size_t)npay);
	t->p.data = d;
	t->p.caplen = t->p.wirelen = (uint32_t)len;
	t->p.ts = ts;
	t->p.linktype = 1;
}

static int
feed(const struct weir_module *m, void *st, struct tp *t, unsigned n)
{
	struct weir_pkt *pp[16];
	struct weir_batch b = { pp, n };
	unsigned i;

	for (i = 0; i < n; i++)
		pp[i] = &t[i].p;
	return m->packet(st, &b);
}

static uint64_t
ctr(const struct weir_module *m, void *st, const char *name)
{
	struct weir_counter c[WEIR_MAX_COUNTERS];
	size_t n = m->stats(st, c, WEIR_MAX_COUNTERS), i;

	for (i = 0; i < n; i++)
		if (strcmp(c[i].name, name) == 0)
			return c[i].value;
	return UINT64_MAX;
}

/* Three counters from one stats() call (one moment). */
static void
ctr3(const struct weir_module *m, void *st, const char *const name[3],
    uint64_t v[3])
{
	struct weir_counter c[WEIR_MAX_COUNTERS];
	size_t n = m->stats(st, c, WEIR_MAX_COUNTERS), i;
	int k;

	for (k = 0; k < 3; k++) {
		v[k] = UINT64_MAX;
		for (i = 0; i < n; i++)
			if (strcmp(c[i].name, name[k]) == 0)
				v[k] = c[i].value;
	}
}

/* The only *.pcap file in dir (name into out); -1 if not exactly one. */
static int
one_file(const char *dir, char *out, size_t len)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL) {
		size_t l = strlen(e->d_name);

		if (l > 5 && strcmp(e->d_name + l - 5, ".pcap") == 0) {
			snprintf(out, len, "%s/%s", dir, e->d_name);
			n++;
		}
	}
	closedir(d);
	return n == 1 ? 0 : -1;
}

static long
slurp(const char *path, uint8_t *buf, size_t max)
{
	FILE *f = fopen(path, "rb");
	size_t n;

	if (f == NULL)
		return -1;
	n = fread(buf, 1, max, f);
	fclose(f);
	return (long)n;
}

static void
test_check(void)
{
	const struct weir_module *m = &weir_mod_flowpcap;
	struct weir_err err;
	json_t *c;

	c = json_pack("{s:s,s:s}", "type", "flowpcap", "dir", "/tmp/x");
	ok(m->check(c, NULL, &err) == 0, "minimal config accepted");
	ok(json_integer_value(json_object_get(c, "max_header_size")) == 256 &&
	    json_number_value(json_object_get(c, "flow_timeout")) == 30 &&
	    json_number_value(json_object_get(c, "capture_duration")) == 30 &&
	    json_is_true(json_object_get(c, "zero_payload")) &&
	    strcmp(json_string_value(json_object_get(c, "mode")),
	    "buffered") == 0 &&
	    strcmp(json_string_value(json_array_get(json_object_get(c,
	    "protocols"), 0)), "tcp") == 0,
	    "packet-headers defaults written back (256 B, 30 s, 30 s, "
	    "zeroed, buffered, tcp)");
	json_decref(c);
	c = json_pack("{s:s,s:s,s:[s,s]}", "type", "flowpcap", "dir", "/x",
	    "protocols", "udp", "udp");
	ok(m->check(c, NULL, &err) < 0 && strstr(err.msg, "twice") != NULL,
	    "a protocol named twice is refused: %s", err.msg);
	json_decref(c);
	c = json_pack("{s:s,s:s,s:s}", "type", "flowpcap", "dir", "/x",
	    "anonymize", "netblock");
	ok(m->check(c, NULL, &err) < 0, "'anonymize' is not an option here");
	json_decref(c);
	c = json_pack("{s:s}", "type", "flowpcap");
	ok(m->check(c, NULL, &err) < 0 && strstr(err.msg, "dir") != NULL,
	    "'dir' is required: %s", err.msg);
	json_decref(c);
}

/*
 * One connection: handshake, a data segment each way, a segment 31 s
 * after the first packet (after capture_duration 30) and one as raw IP
 * (another link type); it ends at close.
 * max_header_size 80 cuts the 154-byte data packets.
 */
static void
test_flow(const char *mode, int max_open)
{
	const struct weir_module *m = &weir_mod_flowpcap;
	static struct tp t[9];
	struct weir_env env;
	struct weir_err err;
	char dir[300], day[400], file[700], idx[500], line[2048];
	uint8_t fb[8192], exp[PLEN];
	uint32_t h[4];
	void *st = NULL;
	json_t *c;
	long n;
	size_t off;
	int i, good;
	FILE *f;

	snprintf(dir, sizeof(dir), "%s/%s", tmp, mode);
	memset(&env, 0, sizeof(env));
	/* flow_timeout 60: the packet at 31 s is still this flow's */
	c = json_pack("{s:s,s:s,s:s,s:i,s:i,s:i}", "type", "flowpcap", "dir",
	    dir, "mode", mode, "max_header_size", 80, "max_open_files",
	    max_open, "flow_timeout", 60);
	ok(m->check(c, NULL, &err) == 0 && m->open(&st, c, &env, &err) == 0,
	    "%s: open: %s", mode, err.msg);
	if (st == NULL)
		return;
	mk(&t[0], 0, 0x02, 0, T0);
	mk(&t[1], 1, 0x12, 0, T0 + 1000);
	mk(&t[2], 0, 0x10, 0, T0 + 2000);
	mk(&t[3], 0, 0x18, PAYLOAD, T0 + 3000);
	mk(&t[4], 1, 0x18, PAYLOAD, T0 + 4000);
	ok(feed(m, st, t, 5) == 0, "%s: first batch", mode);
	ok(t[3].p.data[54 + 10] == 0xab && t[3].p.data[PLEN - 1] == 0xab,
	    "%s: the packet seen by other outputs keeps its payload", mode);
	mk(&t[5], 0, 0x10, 0, T0 + 31 * NS);	/* after the duration */
	ok(feed(m, st, &t[5], 1) == 0, "%s: late packet", mode);
	ok(ctr(m, st, "skipped_after_duration") == 1,
	    "%s: a packet 31 s in is counted, not written", mode);
	/* the same flow as raw IP (LINKTYPE_RAW) */
	mk(&t[6], 1, 0x10, 0, T0 + 5000);
	t[6].p.data += 14;
	t[6].p.caplen -= 14;
	t[6].p.wirelen -= 14;
	t[6].p.linktype = 101;
	ok(feed(m, st, &t[6], 1) == 0 && ctr(m, st, "dropped_linktype") == 1,
	    "%s: another link type in the flow is dropped, counted", mode);
	ok(ctr(m, st, "flows_started") == 1 && ctr(m, st, "savers_active") == 1,
	    "%s: one flow started, active", mode);
	ok(m->close(st, &err) == 0, "%s: close: %s", mode, err.msg);

	snprintf(day, sizeof(day), "%s/2024/01/01", dir);
	ok(one_file(day, file, sizeof(file)) == 0,
	    "%s: one file under DIR/2024/01/01", mode);
	n = slurp(file, fb, sizeof(fb));
	/* 24 + 5 records: 3 x (16 + 54) and 2 x (16 + 80) */
	ok(n == 24 + 3 * 70 + 2 * 96, "%s: file is %ld bytes, want %d", mode,
	    n, 24 + 3 * 70 + 2 * 96);
	if (n < 24)
		return;
	memcpy(h, fb, 16);
	ok(h[0] == 0xa1b2c3d4U && fb[16] == 80 && fb[20] == 1,
	    "%s: pcap header: us magic, snaplen 80, linktype 1", mode);
	good = 1;
	off = 24;
	for (i = 0; i < 5 && off + 16 <= (size_t)n; i++) {
		uint32_t cl = i >= 3 ? 80 : 54;

		memcpy(h, fb + off, 16);
		memcpy(exp, t[i].p.data, cl);
		if (cl > 54)
			memset(exp + 54, 0, cl - 54);
		if (h[0] != 1704067200 || h[1] != (uint32_t)i ||
		    h[2] != cl || h[3] != t[i].p.wirelen ||
		    memcmp(fb + off + 16, exp, cl) != 0)
			good = 0;
		off += 16 + cl;
	}
	ok(good && off == (size_t)n, "%s: records: times, caplen = min(80, "
	    "caplen), wire length, headers kept and payload zeroed", mode);
	snprintf(idx, sizeof(idx), "%s/index.jsonl", day);
	f = fopen(idx, "r");
	line[0] = '\0';
	if (f != NULL) {
		if (fgets(line, sizeof(line), f) == NULL)
			line[0] = '\0';
		ok(fgetc(f) == EOF, "%s: one index line", mode);
		fclose(f);
	} else
		ok(0, "%s: index exists", mode);
	{
		json_error_t je;
		json_t *x = json_loads(line, 0, &je);
		const char *fn = strrchr(file, '/') + 1;

		ok(x != NULL && strcmp(json_string_value(json_object_get(x,
		    "file")), fn) == 0 &&
		    strcmp(json_string_value(json_object_get(x, "src")),
		    "10.0.0.1") == 0 &&
		    json_integer_value(json_object_get(x, "sport")) == 40000 &&
		    json_integer_value(json_object_get(x, "dport")) == 443 &&
		    json_integer_value(json_object_get(x, "packets_fwd")) == 4 &&
		    json_integer_value(json_object_get(x, "packets_rev")) == 3 &&
		    json_integer_value(json_object_get(x,
		    "packets_written")) == 5 &&
		    json_integer_value(json_object_get(x,
		    "skipped_after_duration")) == 1 &&
		    json_integer_value(json_object_get(x,
		    "dropped_linktype")) == 1 &&
		    (uint64_t)json_integer_value(json_object_get(x,
		    "first_ts_ns")) == T0 &&
		    strncmp(fn, json_string_value(json_object_get(x, "uuid")),
		    36) == 0 && fn[14] == '7',
		    "%s: index line: file, 5-tuple, counts each way, written, "
		    "skipped, first_ts, UUIDv7: %.300s", mode, line);
		json_decref(x);
	}
	json_decref(c);
}

/* Flow i: ports 1024 + i -> 443 (mk() builds 40000 -> 443). */
static void
mkport(struct tp *t, int i, int rev, uint8_t flags, uint64_t ts)
{
	mk(t, rev, flags, 0, ts);
	put16be(t->p.data + (rev ? 36 : 34), (uint16_t)(1024 + i));
}

/* Every file under dir (recursively) but index.jsonl, read, sorted. */
struct blob {
	uint8_t	b[512];
	long	n;
};

static int
blob_cmp(const void *a, const void *b)
{
	const struct blob *x = a, *y = b;

	if (x->n != y->n)
		return x->n < y->n ? -1 : 1;
	return memcmp(x->b, y->b, (size_t)x->n);
}

static int
read_files(const char *day, struct blob *v, int max, int *hidden)
{
	DIR *d = opendir(day);
	struct dirent *e;
	char path[700];
	int n = 0;

	*hidden = 0;
	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.') {
			if (strcmp(e->d_name, ".") != 0 &&
			    strcmp(e->d_name, "..") != 0)
				(*hidden)++;
			continue;
		}
		if (strcmp(e->d_name, "index.jsonl") == 0 || n >= max)
			continue;
		snprintf(path, sizeof(path), "%s/%s", day, e->d_name);
		v[n].n = slurp(path, v[n].b, sizeof(v[n].b));
		n++;
	}
	closedir(d);
	qsort(v, (size_t)n, sizeof(*v), blob_cmp);
	return n;
}

static long
count_lines(const char *path)
{
	FILE *f = fopen(path, "r");
	long n = 0;
	int ch;

	if (f == NULL)
		return -1;
	while ((ch = fgetc(f)) != EOF)
		n += ch == '\n';
	fclose(f);
	return n;
}

#define NFLOWS	3000

/*
 * NFLOWS connections of three packets (SYN, SYN-ACK, RST: the RST ends
 * the flow at once), with threads writers over a ring of queue jobs.
 */
static int
run_many(const char *name, int threads, int queue, struct blob *files,
    uint64_t *waits)
{
	const struct weir_module *m = &weir_mod_flowpcap;
	static struct tp t[15];
	struct weir_env env;
	struct weir_err err;
	char dir[300], day[400], idx[500];
	void *st = NULL;
	json_t *c;
	static const char *const names[3] = { "written", "pending",
	    "dropped" };
	int i, k, n, hidden, good = 1;
	uint64_t in = 0, v[3];

	snprintf(dir, sizeof(dir), "%s/%s", tmp, name);
	memset(&env, 0, sizeof(env));
	c = json_pack("{s:s,s:s,s:i,s:i,s:i}", "type", "flowpcap", "dir",
	    dir, "writer_threads", threads, "queue_length", queue,
	    "max_memory", 65536);
	ok(m->check(c, NULL, &err) == 0 && m->open(&st, c, &env, &err) == 0,
	    "%s: open: %s", name, err.msg);
	json_decref(c);
	if (st == NULL)
		return -1;
	ok(ctr(m, st, "writer_threads") == (uint64_t)threads,
	    "%s: %d writer threads running", name, threads);
	for (i = 0; i < NFLOWS; i += 5) {
		for (k = 0; k < 5; k++) {
			uint64_t ts = T0 + (uint64_t)(i + k) * 1000000;

			mkport(&t[3 * k], i + k, 0, 0x02, ts);
			mkport(&t[3 * k + 1], i + k, 1, 0x12, ts + 1000);
			mkport(&t[3 * k + 2], i + k, 0, 0x04, ts + 2000);
		}
		if (feed(m, st, t, 15) != 0)
			good = 0;
		in += 15;
		/* Every packet counted while the writers run. */
		ctr3(m, st, names, v);
		if (v[0] + v[1] + v[2] != in)
			good = 0;
	}
	ok(good, "%s: written + pending + dropped = in after every batch",
	    name);
	*waits = ctr(m, st, "writer_waits");
	ok(m->finish(st, &err) == 0, "%s: finish drains the writers: %s",
	    name, err.msg);
	ok(ctr(m, st, "files_written") == NFLOWS &&
	    ctr(m, st, "written") == 3 * NFLOWS &&
	    ctr(m, st, "pending") == 0 && ctr(m, st, "dropped") == 0 &&
	    ctr(m, st, "missed_packets") == 0,
	    "%s: after finish: %d files, %d packets written, none pending",
	    name, NFLOWS, 3 * NFLOWS);
	ok(m->close(st, &err) == 0, "%s: close: %s", name, err.msg);
	snprintf(day, sizeof(day), "%s/2024/01/01", dir);
	n = read_files(day, files, NFLOWS, &hidden);
	snprintf(idx, sizeof(idx), "%s/index.jsonl", day);
	ok(n == NFLOWS && hidden == 0 && count_lines(idx) == NFLOWS,
	    "%s: %d files (%d), no hidden file (%d), one index line each "
	    "(%ld)", name, NFLOWS, n, hidden, count_lines(idx));
	return n;
}

static void
test_threads(void)
{
	static struct blob a[NFLOWS], b[NFLOWS];
	uint64_t wa, wb;
	int na, nb, i, good;

	na = run_many("inline", 0, 1, a, &wa);
	nb = run_many("threads", 2, 2, b, &wb);
	ok(wb > 0, "threads: a ring of 2 jobs made the pipeline wait "
	    "(%" PRIu64 " times), counted, nothing dropped", wb);
	good = na == nb && na > 0;
	for (i = 0; good && i < na; i++)
		if (blob_cmp(&a[i], &b[i]) != 0)
			good = 0;
	/* 24 + 3 x (16 + 54) bytes each, as the inline writer's */
	ok(good && a[0].n == 24 + 3 * 70 && a[na - 1].n == 24 + 3 * 70,
	    "threads: the same %d files, byte for byte, as inline", na);
}

/* One three-packet flow; finish() must fail, naming what. */
static void
test_thread_error(const char *name, const char *want)
{
	const struct weir_module *m = &weir_mod_flowpcap;
	static struct tp t[3];
	struct weir_env env;
	struct weir_err err;
	char dir[300];
	void *st = NULL;
	json_t *c;
	int rc;

	snprintf(dir, sizeof(dir), "%s/%s", tmp, name);
	memset(&env, 0, sizeof(env));
	memset(&err, 0, sizeof(err));
	c = json_pack("{s:s,s:s,s:i}", "type", "flowpcap", "dir", dir,
	    "writer_threads", 1);
	ok(m->check(c, NULL, &err) == 0 && m->open(&st, c, &env, &err) == 0,
	    "%s: open: %s", name, err.msg);
	json_decref(c);
	if (st == NULL)
		return;
	mkport(&t[0], 1, 0, 0x02, T0);
	mkport(&t[1], 1, 1, 0x12, T0 + 1000);
	mkport(&t[2], 1, 0, 0x04, T0 + 2000);
	ok(feed(m, st, t, 3) == 0, "%s: packets taken", name);
	rc = m->finish(st, &err);
	ok(rc < 0 && strstr(err.msg, want) != NULL,
	    "%s: finish fails, naming it: %s", name, err.msg);
	ok(ctr(m, st, "missed_packets") == 3 &&
	    ctr(m, st, "write_errors") == 1 &&
	    ctr(m, st, "files_written") == 0 && ctr(m, st, "pending") == 0,
	    "%s: 3 packets missed, 1 write error, no file", name);
	m->close(st, &err);
}

static void
test_errors(void)
{
	char path[400];
	struct rlimit old, lim;
	FILE *f;

	/* The day directory's place is taken by a file. */
	snprintf(path, sizeof(path), "%s/nodir", tmp);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/nodir/2024", tmp);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/nodir/2024/01", tmp);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/nodir/2024/01/01", tmp);
	if ((f = fopen(path, "w")) != NULL)
		fclose(f);
	test_thread_error("nodir", "cannot create directory '2024/01/01'");

	/* A file size limit: writes fail with EFBIG in the thread. */
	signal(SIGXFSZ, SIG_IGN);
	getrlimit(RLIMIT_FSIZE, &old);
	lim = old;
	lim.rlim_cur = 100;
	if (setrlimit(RLIMIT_FSIZE, &lim) < 0) {
		ok(0, "setrlimit: %s", strerror(errno));
		return;
	}
	test_thread_error("fsize", "File too large");
	setrlimit(RLIMIT_FSIZE, &old);
}

int
main(void)
{
	char cmd[300];

	snprintf(tmp, sizeof(tmp), "/tmp/test_flowpcap.%d", (int)getpid());
	if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
		return 1;
	test_check();
	test_flow("buffered", 256);
	test_flow("stream", 1);
	test_threads();
	test_errors();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", tmp);
	return tap_done();
}
