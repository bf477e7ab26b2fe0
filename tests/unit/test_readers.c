/*
 * test_readers.c - the pcap, pcapng and ERF readers against tshark and
 * tcpdump on real traces, plus hand-built files for what no trace has
 * (EPB direction flags, if_tsresol 2^-n, if_tsoffset, huge records,
 * zero-length blocks).
 *
 * Every tshark/tcpdump run is started first and read later, so they run
 * side by side and the test stays quick.
 */
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "weir/err.h"
#include "weir/input.h"
#include "weir/pkt.h"
#include "../tap.h"

#define D	"tests/data/"

struct rec {
	uint64_t	ts;
	uint64_t	hash;
	uint32_t	caplen, wirelen, flags;
	uint16_t	iface, linktype;
	uint8_t		dir;
};

struct run {
	struct rec	*r;
	size_t		 n, cap;
	int		 rc;		/* 0, or the error code returned */
	int		 at_open;	/* the error came from open */
	char		 msg[512];
	unsigned	 if0;		/* first interface it registered */
	unsigned	 nif;		/* interfaces it registered */
	uint64_t	 lenfix, skipped;
	int		 headroom_ok;
};

/* One row of tshark -T fields output. */
struct trow {
	int		 has_if, has_ts, erfif, pdir;
	unsigned	 ifid;
	uint64_t	 ts;
	uint32_t	 len, caplen;
	int		 encap;
	char		 name[80];
};

struct tshark {
	FILE		*fp;
	pid_t		 pid;
	struct trow	*row;
	size_t		 n;
};

static struct weir_ifaces ifaces;

static uint64_t
fnv(const uint8_t *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	while (n-- > 0)
		h = (h ^ *p++) * 0x100000001b3ULL;
	return h;
}

/* Read a whole input, max packets per call, checking the headroom. */
static void
collect(struct weir_input *in, struct run *ru, unsigned max)
{
	struct weir_pkt *pk;
	uint64_t h[64];
	int n, i;

	pk = calloc(max, sizeof(*pk));
	for (;;) {
		n = weir_input_next(in, pk, max);
		if (n <= 0) {
			ru->rc = n;
			if (n < 0)
				snprintf(ru->msg, sizeof(ru->msg), "%s",
				    in->err.msg);
			break;
		}
		while (ru->n + (size_t)n > ru->cap) {
			ru->cap = ru->cap ? 2 * ru->cap : 256;
			ru->r = realloc(ru->r, ru->cap * sizeof(*ru->r));
		}
		for (i = 0; i < n; i++) {
			struct rec *r = &ru->r[ru->n + (size_t)i];

			r->ts = pk[i].ts;
			r->caplen = pk[i].caplen;
			r->wirelen = pk[i].wirelen;
			r->iface = pk[i].iface;
			r->linktype = pk[i].linktype;
			r->dir = pk[i].dir;
			r->flags = pk[i].epb_flags;
			r->hash = fnv(pk[i].data, pk[i].caplen);
			if (i < 64)
				h[i] = r->hash;
		}
		/*
		 * Headroom contract: scribble over the WEIR_HEADROOM bytes
		 * before every packet, as a writer laying down its record
		 * headers would, then no packet's data may have changed.
		 */
		for (i = 0; i < n; i++)
			memset(pk[i].data - WEIR_HEADROOM, 0x5a, WEIR_HEADROOM);
		for (i = 0; i < n && i < 64; i++)
			if (fnv(pk[i].data, pk[i].caplen) != h[i])
				ru->headroom_ok = 0;
		ru->n += (size_t)n;
	}
	ru->lenfix = in->lenfix;
	ru->skipped = in->skipped;
	free(pk);
}

static void
read_file(const char *path, struct run *ru, unsigned max)
{
	struct weir_input in;
	struct weir_err err;
	int rc;

	memset(ru, 0, sizeof(*ru));
	ru->headroom_ok = 1;
	ru->if0 = ifaces.n;
	rc = weir_input_open(&in, path, 0, &ifaces, &err);
	if (rc < 0) {
		ru->rc = rc;
		ru->at_open = 1;
		snprintf(ru->msg, sizeof(ru->msg), "%s", err.msg);
		return;
	}
	collect(&in, ru, max);
	weir_input_close(&in);
	ru->nif = ifaces.n - ru->if0;
}

static void
read_fd(int fd, const char *name, struct run *ru, unsigned max)
{
	struct weir_input in;
	struct weir_err err;
	int rc;

	memset(ru, 0, sizeof(*ru));
	ru->headroom_ok = 1;
	ru->if0 = ifaces.n;
	rc = weir_input_open_fd(&in, fd, name, 0, &ifaces, &err);
	if (rc < 0) {
		ru->rc = rc;
		ru->at_open = 1;
		snprintf(ru->msg, sizeof(ru->msg), "%s", err.msg);
		return;
	}
	collect(&in, ru, max);
	weir_input_close(&in);
	ru->nif = ifaces.n - ru->if0;
}

/*
 * Start argv with its stdout on a pipe and stderr on /dev/null.
 * posix_spawn, not popen: under ASan, fork() of the test costs about
 * half a second per child.
 */
static int
spawn_fd(char *const argv[], pid_t *pid)
{
	posix_spawn_file_actions_t fa;
	int p[2], fd = -1;

	*pid = -1;
	if (pipe2(p, O_CLOEXEC) != 0)
		return -1;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, p[1], 1);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	if (posix_spawnp(pid, argv[0], &fa, NULL, argv, environ) == 0)
		fd = p[0];
	else
		close(p[0]);
	close(p[1]);
	posix_spawn_file_actions_destroy(&fa);
	return fd;
}

static FILE *
spawn(char *const argv[], pid_t *pid)
{
	int fd = spawn_fd(argv, pid);

	return fd < 0 ? NULL : fdopen(fd, "r");
}

static void
reap(FILE *fp, pid_t pid)
{
	if (fp != NULL)
		fclose(fp);
	if (pid > 0)
		waitpid(pid, NULL, 0);
}

static void
tshark_start(struct tshark *t, const char *path)
{
	char file[256];
	char *argv[] = { "tshark", "-n", "-r", file, "-T", "fields",
	    "-E", "separator=/t", "-e", "frame.interface_id",
	    "-e", "frame.time_epoch", "-e", "frame.len", "-e", "frame.cap_len",
	    "-e", "frame.encap_type", "-e", "erf.flags.cap",
	    "-e", "frame.packet_flags_direction", "-e", "frame.interface_name",
	    NULL };

	snprintf(file, sizeof(file), "%s", path);
	memset(t, 0, sizeof(*t));
	t->fp = spawn(argv, &t->pid);
}

/* "1095292801.000721395" -> ns, exactly. */
static uint64_t
parse_ts(const char *s)
{
	uint64_t sec = 0, frac = 0;
	int digits = 0;

	while (*s >= '0' && *s <= '9')
		sec = sec * 10 + (uint64_t)(*s++ - '0');
	if (*s == '.')
		s++;
	while (*s >= '0' && *s <= '9' && digits < 9) {
		frac = frac * 10 + (uint64_t)(*s++ - '0');
		digits++;
	}
	while (digits++ < 9)
		frac *= 10;
	return sec * 1000000000ULL + frac;
}

static void
tshark_finish(struct tshark *t)
{
	char line[1024], *p, *f[8];
	struct trow *r;
	int i;

	if (t->fp == NULL)
		return;
	while (fgets(line, sizeof(line), t->fp) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		p = line;
		for (i = 0; i < 8; i++)
			f[i] = p != NULL ? strsep(&p, "\t") : (char *)"";
		/* Rows without an encapsulation are custom blocks. */
		if (f[4][0] == '\0')
			continue;
		if ((t->n & (t->n - 1)) == 0)	/* 0, 1, 2, 4, ...: double */
			t->row = realloc(t->row, (t->n ? 2 * t->n : 1) *
			    sizeof(*t->row));
		r = &t->row[t->n++];
		memset(r, 0, sizeof(*r));
		r->has_if = f[0][0] != '\0';
		r->ifid = (unsigned)strtoul(f[0], NULL, 10);
		r->has_ts = f[1][0] != '\0';
		r->ts = parse_ts(f[1]);
		r->len = (uint32_t)strtoul(f[2], NULL, 10);
		r->caplen = (uint32_t)strtoul(f[3], NULL, 10);
		r->encap = atoi(f[4]);
		r->erfif = f[5][0] != '\0' ? atoi(f[5]) : -1;
		r->pdir = f[6][0] != '\0' ? (int)strtol(f[6], NULL, 0) : -1;
		snprintf(r->name, sizeof(r->name), "%s", f[7]);
	}
	reap(t->fp, t->pid);
	t->fp = NULL;
}

/* Lines tcpdump prints for a file: its packet count. */
static FILE *
tcpdump_start(const char *path, pid_t *pid)
{
	char file[256];
	char *argv[] = { "tcpdump", "-n", "-r", file, NULL };

	snprintf(file, sizeof(file), "%s", path);
	return spawn(argv, pid);
}

static long
count_lines(FILE *fp, pid_t pid)
{
	char line[4096];
	long n = 0;

	if (fp == NULL)
		return -1;
	while (fgets(line, sizeof(line), fp) != NULL)
		if (strchr(line, '\n') != NULL)
			n++;
	reap(fp, pid);
	return n;
}

/* Wireshark encapsulation numbers to LINKTYPE_* (only those we meet). */
static int
encap_lt(int encap)
{
	switch (encap) {
	case 1:		return WEIR_LT_EN10MB;
	case 7:		return WEIR_LT_RAW;
	case 15:	return WEIR_LT_NULL;
	case 25:	return WEIR_LT_LINUX_SLL;
	default:	return -1;
	}
}

/* Compare ts/len/caplen with tshark; linktype too unless ERF. */
static void
vs_tshark(const char *what, const struct run *ru, const struct tshark *t,
    int check_lt)
{
	size_t i, bad = 0, first = 0;

	ok(t->n > 0, "%s: tshark gave rows", what);
	ok(ru->n == t->n, "%s: %zu packets, tshark %zu", what, ru->n, t->n);
	for (i = 0; i < ru->n && i < t->n; i++) {
		const struct rec *r = &ru->r[i];
		const struct trow *w = &t->row[i];
		int b = 0;

		if (w->has_ts && r->ts != w->ts)
			b = 1;
		if (r->wirelen != w->len || r->caplen != w->caplen)
			b = 1;
		if (check_lt && encap_lt(w->encap) != r->linktype)
			b = 1;
		if (b && bad++ == 0)
			first = i;
	}
	ok(bad == 0, "%s: ts, len, caplen%s equal tshark's for every packet "
	    "(%zu differ, first #%zu)", what, check_lt ? ", link type" : "",
	    bad, first);
	ok(ru->headroom_ok, "%s: headroom writes leave every packet intact",
	    what);
}

static int
same_seq(const struct run *a, const struct run *b, int with_ts)
{
	size_t i;

	if (a->n != b->n)
		return 0;
	for (i = 0; i < a->n; i++) {
		if (with_ts && a->r[i].ts != b->r[i].ts)
			return 0;
		if (a->r[i].caplen != b->r[i].caplen ||
		    a->r[i].wirelen != b->r[i].wirelen ||
		    a->r[i].hash != b->r[i].hash)
			return 0;
	}
	return 1;
}

/* ---- hand-built files ------------------------------------------------ */

struct bb {
	uint8_t		b[1 << 16];
	size_t		n;
};

static void
put(struct bb *b, const void *p, size_t n)
{
	memcpy(b->b + b->n, p, n);
	b->n += n;
}

static void
put16(struct bb *b, uint16_t v)
{
	put(b, &v, 2);
}

static void
put32(struct bb *b, uint32_t v)
{
	put(b, &v, 4);
}

static void
put64(struct bb *b, uint64_t v)
{
	put(b, &v, 8);
}

static void
png_shb(struct bb *b)
{
	put32(b, 0x0a0d0d0a);
	put32(b, 28);
	put32(b, 0x1a2b3c4d);
	put16(b, 1);
	put16(b, 0);
	put64(b, (uint64_t)-1);
	put32(b, 28);
}

/* IDB with optional if_tsresol and if_tsoffset. */
static void
png_idb(struct bb *b, uint16_t lt, int resol, int64_t tsoff)
{
	uint32_t len = 20 + (resol >= 0 ? 8 : 0) + (tsoff ? 12 : 0);

	put32(b, 1);
	put32(b, len);
	put16(b, lt);
	put16(b, 0);
	put32(b, 0);
	if (resol >= 0) {
		uint8_t v[4] = { (uint8_t)resol, 0, 0, 0 };

		put16(b, 9);
		put16(b, 1);
		put(b, v, 4);
	}
	if (tsoff) {
		put16(b, 14);
		put16(b, 8);
		put64(b, (uint64_t)tsoff);
	}
	put32(b, len);
}

/* EPB with 60 bytes of data and an epb_flags option unless flags < 0. */
static void
png_epb(struct bb *b, uint64_t units, long long flags, uint8_t fill)
{
	uint8_t data[60];
	uint32_t len = 32 + 60 + (flags >= 0 ? 12 : 0);

	memset(data, fill, sizeof(data));
	put32(b, 6);
	put32(b, len);
	put32(b, 0);
	put32(b, (uint32_t)(units >> 32));
	put32(b, (uint32_t)units);
	put32(b, 60);
	put32(b, 60);
	put(b, data, 60);
	if (flags >= 0) {
		put16(b, 2);
		put16(b, 4);
		put32(b, (uint32_t)flags);
		put32(b, 0);		/* opt_endofopt */
	}
	put32(b, len);
}

static int
memfd_of(const struct bb *b)
{
	int fd = memfd_create("test_readers", MFD_CLOEXEC);

	if (fd < 0)
		return -1;
	if (write(fd, b->b, b->n) != (ssize_t)b->n ||
	    lseek(fd, 0, SEEK_SET) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void
write_file(const char *path, const struct bb *b)
{
	FILE *f = fopen(path, "wb");

	if (f != NULL) {
		fwrite(b->b, 1, b->n, f);
		fclose(f);
	}
}

static struct bb epbdir;
static char epbdir_path[] = "/tmp/weir-test-readers-epbdir.pcapng";

static void
build_epbdir(void)
{
	png_shb(&epbdir);
	png_idb(&epbdir, WEIR_LT_EN10MB, -1, 0);
	png_epb(&epbdir, 1000000, -1, 1);	/* no option */
	png_epb(&epbdir, 2000000, 1, 2);	/* inbound */
	png_epb(&epbdir, 3000000, 2, 3);	/* outbound */
	png_epb(&epbdir, 4000000, 0x01000002, 4); /* outbound + FCS len */
	png_epb(&epbdir, 5000000, 0, 5);	/* flags, no direction */
	write_file(epbdir_path, &epbdir);
}

static void
test_epb_flags(struct tshark *t)
{
	struct run ru;
	size_t i, bad = 0;
	int want[5] = { WEIR_DIR_UNKNOWN, WEIR_DIR_IN, WEIR_DIR_OUT,
	    WEIR_DIR_OUT, WEIR_DIR_UNKNOWN };

	read_fd(memfd_of(&epbdir), "epbdir.pcapng", &ru, 2);
	ok(ru.rc == 0 && ru.n == 5, "epb flags: 5 packets (rc %d, %zu)",
	    ru.rc, ru.n);
	ok(t->n == 5, "epb flags: tshark reads our hand-built file (%zu)",
	    t->n);
	for (i = 0; i < ru.n && i < 5; i++) {
		if (ru.r[i].dir != want[i])
			bad++;
		/* tshark: 1 inbound, 2 outbound, 0 or absent: unknown */
		if (i < t->n && (t->row[i].pdir <= 0 ? WEIR_DIR_UNKNOWN :
		    t->row[i].pdir) != ru.r[i].dir)
			bad++;
	}
	ok(bad == 0, "epb flags: pkt->dir from bits 0-1 agrees with tshark's "
	    "frame.packet_flags_direction");
	ok(ru.n == 5 && ru.r[3].flags == 0x01000002 && ru.r[0].flags == 0,
	    "epb flags: pkt->epb_flags carries the whole word");
	ok(ru.n == 5 && ru.r[1].ts == 2000000000ULL, "epb flags: default "
	    "resolution is microseconds");
	free(ru.r);
}

/* SPB timestamps, 2^-n resolution, if_tsoffset, skipped blocks. */
static void
test_pcapng_misc(void)
{
	struct bb *b = calloc(1, sizeof(*b));
	struct run ru;
	uint8_t spbdata[8] = { 9, 9, 9, 9, 9, 9, 9, 9 };

	png_shb(b);
	/* 2^-20 s units, +10 s offset: 3.5 s + 10 s. */
	png_idb(b, WEIR_LT_RAW, 0x80 | 20, 10);
	/* an NRB with just opt_endofopt... and an unknown block */
	put32(b, 4); put32(b, 16); put32(b, 0); put32(b, 16);
	put32(b, 0x12345); put32(b, 12); put32(b, 12);
	png_epb(b, (UINT64_C(7) << 19), -1, 7);
	/* SPB: 6 bytes of 8 held (original length 6). */
	put32(b, 3); put32(b, 24); put32(b, 6); put(b, spbdata, 8);
	put32(b, 24);
	read_fd(memfd_of(b), "misc.pcapng", &ru, 16);
	ok(ru.rc == 0 && ru.n == 2, "pcapng misc: 2 packets (rc %d, %zu) %s",
	    ru.rc, ru.n, ru.msg);
	ok(ru.n >= 1 && ru.r[0].ts == 13500000000ULL, "pcapng misc: "
	    "if_tsresol 2^-20 and if_tsoffset 10 s give 13.5 s (%" PRIu64
	    ")", ru.n ? ru.r[0].ts : 0);
	ok(ru.n == 2 && ru.r[1].ts == ru.r[0].ts && ru.r[1].caplen == 6 &&
	    ru.r[1].wirelen == 6, "pcapng misc: SPB takes the previous "
	    "timestamp and min(original length, data) as caplen");
	ok(ru.n == 2 && ru.r[1].linktype == WEIR_LT_RAW &&
	    ifaces.v[ru.r[1].iface].tsresol == (0x80 | 20),
	    "pcapng misc: interface keeps link type and if_tsresol");
	free(ru.r);

	/* SPB whose original length needs more data than it holds. */
	b->n = 0;
	png_shb(b);
	png_idb(b, 1, -1, 0);
	put32(b, 3); put32(b, 24); put32(b, 100); put(b, spbdata, 8);
	put32(b, 24);
	read_fd(memfd_of(b), "spb.pcapng", &ru, 16);
	ok(ru.n == 0 && ru.rc == -WEIR_EFORMAT && strstr(ru.msg,
	    "offset 48: simple packet block of 24 bytes is too short for 100"),
	    "pcapng: SPB too short for its length: %s", ru.msg);
	free(ru.r);

	/* A zero block length must be an error, not a loop. */
	b->n = 0;
	png_shb(b);
	png_idb(b, 1, -1, 0);
	png_epb(b, 1, -1, 1);
	put32(b, 6); put32(b, 0); put32(b, 0);
	read_fd(memfd_of(b), "zero.pcapng", &ru, 16);
	ok(ru.n == 1 && ru.rc == -WEIR_EFORMAT && strstr(ru.msg,
	    "file 'zero.pcapng': offset 140:") != NULL, "pcapng: zero block "
	    "length after 1 packet is a format error at its offset: %s",
	    ru.msg);
	free(ru.r);

	/* EPB for an interface the section does not have. */
	b->n = 0;
	png_shb(b);
	png_epb(b, 1, -1, 1);
	read_fd(memfd_of(b), "noidb.pcapng", &ru, 16);
	ok(ru.n == 0 && ru.rc == -WEIR_EFORMAT && strstr(ru.msg,
	    "offset 28:") != NULL, "pcapng: EPB without IDB: %s", ru.msg);
	free(ru.r);

	/* Trailer differs from header. */
	b->n = 0;
	png_shb(b);
	png_idb(b, 1, -1, 0);
	png_epb(b, 1, -1, 1);
	b->b[b->n - 1] ^= 1;
	read_fd(memfd_of(b), "trailer.pcapng", &ru, 16);
	ok(ru.n == 0 && ru.rc == -WEIR_EFORMAT && strstr(ru.msg, "trailer"),
	    "pcapng: header/trailer mismatch: %s", ru.msg);
	free(ru.r);

	/* Option running past its block. */
	b->n = 0;
	png_shb(b);
	png_idb(b, 1, 6, 0);
	b->b[28 + 16 + 2] = 200;	/* if_tsresol length 200 */
	read_fd(memfd_of(b), "opt.pcapng", &ru, 16);
	ok(ru.rc == -WEIR_EFORMAT && strstr(ru.msg, "offset 28:") &&
	    strstr(ru.msg, "runs past"), "pcapng: option too long: %s",
	    ru.msg);
	free(ru.r);
	free(b);
}

static void
pcap_hdr(struct bb *b, uint32_t magic, uint32_t lt)
{
	put32(b, magic);
	put16(b, 2);
	put16(b, 4);
	put32(b, 0);
	put32(b, 0);
	put32(b, 65535);
	put32(b, lt);
}

static void
test_pcap_misc(void)
{
	struct bb *b = calloc(1, sizeof(*b));
	struct run ru;
	uint8_t d[64];
	size_t big = 3u << 20, i;
	uint8_t *bigf;
	int fd;

	/* caplen > wirelen; FCS bits in the link type field. */
	memset(d, 0x11, sizeof(d));
	pcap_hdr(b, 0xa1b2c3d4, 0x14000000 | WEIR_LT_EN10MB);
	put32(b, 5); put32(b, 6); put32(b, 64); put32(b, 60); put(b, d, 64);
	put32(b, 5); put32(b, 7); put32(b, 10); put32(b, 10); put(b, d, 10);
	read_fd(memfd_of(b), "fix.pcap", &ru, 16);
	ok(ru.rc == 0 && ru.n == 2 && ru.r[0].wirelen == 64 &&
	    ru.lenfix == 1 && ru.r[0].ts == 5000006000ULL,
	    "pcap: caplen > wirelen raises wirelen and is counted");
	ok(ru.n == 2 && ru.r[0].linktype == WEIR_LT_EN10MB, "pcap: FCS "
	    "bits masked off the link type");
	free(ru.r);

	/* Empty, short and foreign files. */
	b->n = 0;
	read_fd(memfd_of(b), "empty.pcap", &ru, 16);
	ok(ru.at_open && ru.rc == -WEIR_EFORMAT && strstr(ru.msg, "empty"),
	    "empty file: %s", ru.msg);
	put(b, "hello, world\n", 13);
	read_fd(memfd_of(b), "hello.txt", &ru, 16);
	ok(ru.at_open && strstr(ru.msg, "file 'hello.txt': not a pcap, "
	    "pcapng or ERF file (magic 0x68656c6c)") != NULL, "text file: %s",
	    ru.msg);
	b->n = 0;
	pcap_hdr(b, 0xa1b2c3d4, 1);
	b->n = 20;
	read_fd(memfd_of(b), "short.pcap", &ru, 16);
	ok(ru.at_open && ru.rc == -WEIR_ETRUNC && strstr(ru.msg,
	    "(20 of 24 bytes)"), "short pcap header: %s", ru.msg);

	/* A 3 MiB record: the buffer grows past WEIR_RBUF_SIZE. */
	bigf = malloc(24 + 16 + big + 16 + 4);
	b->n = 0;
	pcap_hdr(b, 0xa1b23c4d, 1);
	memcpy(bigf, b->b, 24);
	{
		uint32_t h[4] = { 1, 999999999, (uint32_t)big, (uint32_t)big };
		uint32_t h2[4] = { 2, 1, 4, 4 };

		memcpy(bigf + 24, h, 16);
		for (i = 0; i < big; i++)
			bigf[40 + i] = (uint8_t)i;
		memcpy(bigf + 40 + big, h2, 16);
		memcpy(bigf + 56 + big, "abcd", 4);
	}
	fd = memfd_create("big", MFD_CLOEXEC);
	if (write(fd, bigf, 60 + big) != (ssize_t)(60 + big))
		fd = -1;
	lseek(fd, 0, SEEK_SET);
	read_fd(fd, "big.pcap", &ru, 16);
	ok(ru.rc == 0 && ru.n == 2 && ru.r[0].caplen == big &&
	    ru.r[0].hash == fnv(bigf + 40, big) && ru.r[0].ts ==
	    1999999999ULL && ru.r[1].hash == fnv((const uint8_t *)"abcd", 4),
	    "pcap: 3 MiB record read whole, ns timestamps");
	free(ru.r);

	/* caplen above the limit: error naming the offset. */
	{
		uint32_t h[4] = { 1, 0, 17u << 20, 17u << 20 };

		memcpy(bigf + 24, h, 16);
	}
	fd = memfd_create("huge", MFD_CLOEXEC);
	if (write(fd, bigf, 60 + big) != (ssize_t)(60 + big))
		fd = -1;
	lseek(fd, 0, SEEK_SET);
	read_fd(fd, "huge.pcap", &ru, 16);
	ok(ru.n == 0 && ru.rc == -WEIR_EFORMAT && strstr(ru.msg,
	    "file 'huge.pcap': offset 24: record captured length 17825792"),
	    "pcap: caplen over 16 MiB: %s", ru.msg);
	free(bigf);
	free(b);
}

/* ERF hand-built: extension headers, IPv4 type, skipped ATM. */
static void
test_erf_misc(void)
{
	struct bb *b = calloc(1, sizeof(*b));
	struct run ru;
	uint8_t ip[20] = { 0x45, 0, 0, 20 };
	uint8_t hdr[16];
	unsigned i;

	/* IPv4 record on port 2 with one extension header. */
	memset(hdr, 0, sizeof(hdr));
	hdr[4] = 100;				/* 100 s, LE */
	hdr[3] = 0x80;				/* + 0.5 s */
	hdr[8] = 22 | 0x80;
	hdr[9] = 0x04 | 2;
	hdr[10] = 0; hdr[11] = 16 + 8 + 20;
	hdr[14] = 0; hdr[15] = 20;
	put(b, hdr, 16);
	put64(b, 0);				/* ext header, last */
	put(b, ip, 20);
	/* ATM record: skipped and counted. */
	hdr[8] = 3;
	hdr[11] = 16 + 52;
	put(b, hdr, 16);
	memset(b->b + b->n, 0, 52);
	b->n += 52;
	read_fd(memfd_of(b), "misc.erf", &ru, 16);
	ok(ru.rc == 0 && ru.n == 1 && ru.skipped == 1, "erf: 1 packet, ATM "
	    "skipped and counted (rc %d n %zu) %s", ru.rc, ru.n, ru.msg);
	ok(ru.n == 1 && ru.r[0].linktype == WEIR_LT_RAW &&
	    ru.r[0].caplen == 20 && ru.r[0].ts == 100500000000ULL &&
	    ru.r[0].hash == fnv(ip, 20) && ru.r[0].dir == WEIR_DIR_UNKNOWN,
	    "erf: IPv4 record after an extension header");
	free(ru.r);

	/*
	 * rlen 0 must stop with an error.  The probe looks at the first 4
	 * records, so the bad one is the fifth.
	 */
	b->n = 0;
	hdr[8] = 2;
	hdr[9] = 0x04;
	hdr[11] = 80;
	hdr[15] = 64;
	for (i = 0; i < 4; i++) {
		put(b, hdr, 16);
		memset(b->b + b->n, (int)i, 64);
		b->n += 64;
	}
	hdr[11] = 0;
	put(b, hdr, 16);
	put(b, hdr, 16);
	read_fd(memfd_of(b), "zero.erf", &ru, 3);
	ok(ru.n == 4 && ru.rc == -WEIR_EFORMAT && strstr(ru.msg,
	    "file 'zero.erf': offset 320: record length 0") != NULL,
	    "erf: rlen 0 after 4 records: %s", ru.msg);
	ok(ru.n == 4 && ru.r[0].caplen == 62 && ru.r[0].wirelen == 64 &&
	    ru.r[0].dir == WEIR_DIR_OUT, "erf: Ethernet caplen is rlen - 18 "
	    "and port 0 is outbound");
	free(ru.r);

	/* A gzip'd file is named as such, not taken for ERF. */
	b->n = 0;
	put(b, "\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\x03\x00\x40"
	    "\x00\x00\x00\x00", 16);
	read_fd(memfd_of(b), "x.pcap.gz", &ru, 16);
	ok(ru.at_open && strstr(ru.msg, "gzip") != NULL, "gzip file: %s",
	    ru.msg);
	free(b);
}

int
main(void)
{
	struct tshark t100, t100ns, t100ng, t100erf, tfrag, tnfs, tnano;
	struct tshark tzeek, t202le, t202be, tepb;
	struct run r100, r100ns, r100ng, r100erf, rfrag, rnfs, rnano, rzeek;
	struct run r202le, r202be, rbug, rmime, rshb, rfragns, rpipe;
	FILE *cbug, *cmime;
	pid_t pbug, pmime;
	long nbug, nmime;
	struct stat sb;
	size_t i, bad;
	char want[128];

	build_epbdir();
	tshark_start(&t100, D "libtrace-100_packets.pcap");
	tshark_start(&t100ns, D "libtrace-100_packetsns.pcap");
	tshark_start(&t100ng, D "libtrace-100_packets.pcapng");
	tshark_start(&t100erf, D "libtrace-100_packets.erf");
	tshark_start(&tfrag, D "libtrace-fragtest.erf");
	tshark_start(&tnfs, D "ndpi-nfsv3-bigendian.pcap");
	tshark_start(&tnano, D "tcpdump-tcp-handshake-nano.pcap");
	tshark_start(&tzeek, D "zeek-pcapng-multi-interface.pcapng");
	tshark_start(&t202le, D "gopacket-test202-le.pcapng");
	tshark_start(&t202be, D "gopacket-test202-be.pcapng");
	tshark_start(&tepb, epbdir_path);
	cbug = tcpdump_start(D "suricata-bug6875-fuzz.pcap", &pbug);
	cmime = tcpdump_start(D "suricata-http-mime-truncated.pcap", &pmime);

	/* The same 100 packets in four containers. */
	read_file(D "libtrace-100_packets.pcap", &r100, 1024);
	read_file(D "libtrace-100_packetsns.pcap", &r100ns, 7);
	read_file(D "libtrace-100_packets.pcapng", &r100ng, 1);
	read_file(D "libtrace-100_packets.erf", &r100erf, 33);
	tshark_finish(&t100);
	tshark_finish(&t100ns);
	tshark_finish(&t100ng);
	tshark_finish(&t100erf);
	ok(r100.n == 100 && r100ns.n == 100 && r100ng.n == 100 &&
	    r100erf.n == 100, "100_packets: 100 packets in pcap, ns pcap, "
	    "pcapng, erf");
	vs_tshark("100_packets.pcap", &r100, &t100, 1);
	vs_tshark("100_packetsns.pcap", &r100ns, &t100ns, 1);
	vs_tshark("100_packets.pcapng", &r100ng, &t100ng, 1);
	vs_tshark("100_packets.erf", &r100erf, &t100erf, 0);
	ok(same_seq(&r100, &r100ns, 1) && same_seq(&r100, &r100ng, 1),
	    "100_packets: pcap, ns pcap and pcapng give identical "
	    "(ts, caplen, wirelen, data)");
	/*
	 * The ERF copy differs in data (other MAC anonymisation) and its
	 * timestamps are not simply rounded: only lengths are shared.
	 */
	for (bad = 0, i = 0; i < r100.n && i < r100erf.n; i++)
		if (r100erf.r[i].caplen != r100.r[i].caplen ||
		    r100erf.r[i].wirelen != r100.r[i].wirelen)
			bad++;
	ok(bad == 0 && r100erf.n == r100.n, "100_packets: erf gives the "
	    "pcap's caplen and wirelen (Ethernet FCS counted in both)");
	for (bad = 0, i = 0; i < r100erf.n && i < t100erf.n; i++) {
		const struct trow *w = &t100erf.row[i];

		if (r100erf.r[i].iface - r100erf.if0 != w->ifid ||
		    r100erf.r[i].dir != (w->erfif == 0 ? WEIR_DIR_OUT :
		    w->erfif == 1 ? WEIR_DIR_IN : WEIR_DIR_UNKNOWN) ||
		    r100erf.r[i].linktype != WEIR_LT_EN10MB)
			bad++;
	}
	ok(bad == 0 && r100erf.nif == 2, "100_packets.erf: interfaces in "
	    "tshark's order, direction from the ERF port (%zu bad, %u ifs)",
	    bad, r100erf.nif);
	ok(r100.nif == 1 && ifaces.v[r100.if0].linktype == WEIR_LT_EN10MB &&
	    ifaces.v[r100ns.if0].tsresol == 9 && ifaces.v[r100.if0].tsresol
	    == 6 && strcmp(ifaces.v[r100.if0].name,
	    "libtrace-100_packets.pcap") == 0, "pcap: one interface named "
	    "after the file, tsresol 6/9");

	/* 10,000 ERF records on 3 ports. */
	read_file(D "libtrace-fragtest.erf", &rfrag, 1024);
	tshark_finish(&tfrag);
	vs_tshark("fragtest.erf", &rfrag, &tfrag, 0);
	for (bad = 0, i = 0; i < rfrag.n && i < tfrag.n; i++)
		if (rfrag.r[i].iface - rfrag.if0 != tfrag.row[i].ifid ||
		    (tfrag.row[i].erfif == 0) != (rfrag.r[i].dir ==
		    WEIR_DIR_OUT))
			bad++;
	ok(bad == 0 && rfrag.nif == 3, "fragtest.erf: 3 interfaces, each "
	    "packet's interface as tshark's (%zu bad)", bad);
	/* editcap -T ether -F nsecpcap made this from the ERF file. */
	read_file(D "libtrace-fragtest-ether-ns.pcap", &rfragns, 100);
	ok(rfragns.n == 10000 && same_seq(&rfrag, &rfragns, 1),
	    "fragtest.erf: identical (ts, caplen, wirelen, data) to editcap's "
	    "ns pcap conversion");

	/* The same through a pipe: short reads, no file size. */
	{
		char *argv[] = { "cat", D "libtrace-fragtest.erf", NULL };
		pid_t pid;
		int fd = spawn_fd(argv, &pid);

		read_fd(fd, "pipe", &rpipe, 1024);
		waitpid(pid, NULL, 0);
		ok(rpipe.rc == 0 && same_seq(&rfrag, &rpipe, 1),
		    "fragtest.erf through a pipe reads the same (%zu, rc %d)",
		    rpipe.n, rpipe.rc);
	}

	read_file(D "ndpi-nfsv3-bigendian.pcap", &rnfs, 50);
	tshark_finish(&tnfs);
	vs_tshark("nfsv3-bigendian.pcap", &rnfs, &tnfs, 1);

	read_file(D "tcpdump-tcp-handshake-nano.pcap", &rnano, 2);
	tshark_finish(&tnano);
	vs_tshark("tcp-handshake-nano.pcap", &rnano, &tnano, 1);
	ok(rnano.n == 3 && rnano.r[0].ts % 1000 != 0, "nano pcap: true ns "
	    "fractions kept");

	/* Two IDBs, ns and µs. */
	read_file(D "zeek-pcapng-multi-interface.pcapng", &rzeek, 3);
	tshark_finish(&tzeek);
	vs_tshark("pcapng-multi-interface", &rzeek, &tzeek, 1);
	for (bad = 0, i = 0; i < rzeek.n && i < tzeek.n; i++)
		if (rzeek.r[i].iface - rzeek.if0 != tzeek.row[i].ifid ||
		    strcmp(ifaces.v[rzeek.r[i].iface].name,
		    tzeek.row[i].name) != 0)
			bad++;
	ok(bad == 0 && rzeek.nif == 2 && ifaces.v[rzeek.if0].tsresol == 9 &&
	    ifaces.v[rzeek.if0 + 1].tsresol == 6, "pcapng-multi-interface: "
	    "interface ids and if_name as tshark's, tsresol 9 and 6");

	/* Three sections, mixed link types, SPBs, both byte orders. */
	read_file(D "gopacket-test202-le.pcapng", &r202le, 1024);
	read_file(D "gopacket-test202-be.pcapng", &r202be, 2);
	tshark_finish(&t202le);
	tshark_finish(&t202be);
	vs_tshark("test202-le", &r202le, &t202le, 1);
	vs_tshark("test202-be", &r202be, &t202be, 1);
	ok(same_seq(&r202le, &r202be, 1), "test202: le and be files read "
	    "the same");
	for (bad = 0, i = 0; i < r202le.n && i < t202le.n; i++) {
		if (ifaces.v[r202le.r[i].iface].linktype !=
		    r202le.r[i].linktype)
			bad++;
		/* SPB: no time in tshark; ours is the previous packet's */
		if (!t202le.row[i].has_ts && (i == 0 ||
		    r202le.r[i].ts != r202le.r[i - 1].ts))
			bad++;
	}
	ok(bad == 0 && r202le.nif == 5, "test202: 5 IDBs in 3 sections, "
	    "every packet on an interface of its link type, SPB timestamps "
	    "(%zu bad, %u ifs)", bad, r202le.nif);
	/* Section 2's only IDB: "silly ethernet interface 2", snaplen 128 */
	ok(r202le.n == 8 && strcmp(ifaces.v[r202le.r[3].iface].name,
	    "silly ethernet interface 2") == 0 &&
	    ifaces.v[r202le.r[3].iface].snaplen == 128 &&
	    r202le.r[3].iface == r202le.if0 + 2 &&
	    r202le.r[7].iface == r202le.if0 + 4, "test202: section-local "
	    "interface ids map to the section's own IDBs");

	/* Corrupt and cut-short files. */
	read_file(D "suricata-bug6875-fuzz.pcap", &rbug, 1024);
	nbug = count_lines(cbug, pbug);
	snprintf(want, sizeof(want), "file '" D "suricata-bug6875-fuzz.pcap'"
	    ": offset %u:", 24 + 16 + (rbug.n ? rbug.r[0].caplen : 0));
	ok(nbug == 1 && (long)rbug.n == nbug, "bug6875: %zu packets before "
	    "the bad record, tcpdump %ld", rbug.n, nbug);
	ok(rbug.rc == -WEIR_EFORMAT && strstr(rbug.msg, want) != NULL,
	    "bug6875: %s", rbug.msg);

	read_file(D "suricata-http-mime-truncated.pcap", &rmime, 1024);
	nmime = count_lines(cmime, pmime);
	stat(D "suricata-http-mime-truncated.pcap", &sb);
	snprintf(want, sizeof(want), "file '" D "suricata-http-mime-"
	    "truncated.pcap': offset %lld: record header cut short (1 of 16 "
	    "bytes)", (long long)sb.st_size - 1);
	ok(nmime == 2696 && (long)rmime.n == nmime, "mime-truncated: %zu "
	    "packets before the cut, tcpdump %ld", rmime.n, nmime);
	ok(rmime.rc == -WEIR_ETRUNC && strcmp(rmime.msg, want) == 0,
	    "mime-truncated: %s", rmime.msg);

	read_file(D "libpcap-shb-option-too-long.pcapng", &rshb, 1024);
	ok(rshb.n == 0 && rshb.rc == -WEIR_EFORMAT && strstr(rshb.msg,
	    "file '" D "libpcap-shb-option-too-long.pcapng': offset 0:"),
	    "shb-option-too-long: no packet, %s", rshb.msg);

	tshark_finish(&tepb);
	test_epb_flags(&tepb);
	unlink(epbdir_path);
	test_pcapng_misc();
	test_pcap_misc();
	test_erf_misc();

	free(r100.r); free(r100ns.r); free(r100ng.r); free(r100erf.r);
	free(rfrag.r); free(rnfs.r); free(rnano.r); free(rzeek.r);
	free(r202le.r); free(r202be.r); free(rbug.r); free(rmime.r);
	free(rshb.r); free(rfragns.r); free(rpipe.r);
	free(t100.row); free(t100ns.row); free(t100ng.row); free(t100erf.row);
	free(tfrag.row); free(tnfs.row); free(tnano.row); free(tzeek.row);
	free(t202le.row); free(t202be.row); free(tepb.row);
	return tap_done();
}
