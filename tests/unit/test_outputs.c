/*
 * test_outputs.c - the pcap, pcapng and counters outputs, driven
 * directly through their module interface with synthetic packets, and
 * checked with the real tools: tcpdump, tshark, capinfos, zstd,
 * sha256sum and python3's XML parser.  Expected timestamps come from
 * timegm(), expected names from the UTC times chosen below.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "weir/module.h"
#include "weir/pkt.h"
#include "capture/outputs/filewriter.h"
#include "../modrun.h"
#include "../tap.h"

extern const struct weir_module weir_mod_pcap, weir_mod_pcapng,
    weir_mod_counters;

#define NS	UINT64_C(1000000000)
#define MAXP	64
#define HR	WEIR_HEADROOM

static char tmp[256];
static int sh_lines;		/* newlines in the last sh() output */
static json_t *exp_doc;
static struct weir_ifaces ifaces;
static struct weir_env env;
static uint64_t fake_read = 12345;

/* One batch of synthetic packets, each in its own buffer. */
struct tb {
	struct weir_pkt	 pk[MAXP];
	struct weir_pkt	*pp[MAXP];
	uint8_t		*mem[MAXP];
	struct weir_batch b;
};

static json_t *
fake_stats(void *pl)
{
	return json_pack("{s:I}", "read", (json_int_t)*(uint64_t *)pl);
}

/* 2024-mm-dd hh:mm:ss UTC plus ns, through libc's timegm(). */
static uint64_t
utc(int y, int mo, int d, int h, int mi, int s, uint64_t ns)
{
	struct tm tm = { 0 };

	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = s;
	return (uint64_t)timegm(&tm) * NS + ns;
}

static void
tb_init(struct tb *t)
{
	memset(t, 0, sizeof(*t));
	t->b.p = t->pp;
}

static void
tb_free(struct tb *t)
{
	unsigned i;

	for (i = 0; i < MAXP; i++)
		free(t->mem[i]);
	tb_init(t);
}

/* Ethernet/IPv4/UDP (or raw IPv4 for link type 101) of caplen bytes. */
static void
tb_add(struct tb *t, uint64_t ts, uint32_t caplen, uint16_t iface,
    uint16_t lt, uint8_t dir)
{
	static const uint8_t eth[14] = { 0, 0x11, 0x22, 0x33, 0x44, 0x55,
	    0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0x08, 0x00 };
	unsigned i = t->b.n;
	struct weir_pkt *p = &t->pk[i];
	uint8_t *d, *ip;
	size_t l2 = lt == WEIR_LT_EN10MB ? 14 : 0, j;
	uint16_t iplen = (uint16_t)(caplen - l2);

	t->mem[i] = calloc(1, HR + caplen + 64);
	d = t->mem[i] + HR;
	if (l2)
		memcpy(d, eth, 14);
	ip = d + l2;
	ip[0] = 0x45;
	ip[2] = (uint8_t)(iplen >> 8);
	ip[3] = (uint8_t)iplen;
	ip[8] = 64;
	ip[9] = 17;
	ip[12] = 10; ip[15] = 1;
	ip[16] = 10; ip[19] = 2;
	ip[20] = 0x03; ip[21] = (uint8_t)i;
	ip[22] = 0; ip[23] = 53;
	ip[24] = (uint8_t)((iplen - 20) >> 8);
	ip[25] = (uint8_t)(iplen - 20);
	for (j = l2 + 28; j < caplen; j++)
		d[j] = (uint8_t)(j + i);
	p->data = d;
	p->caplen = caplen;
	p->wirelen = caplen + 4;
	p->ts = ts;
	p->iface = iface;
	p->linktype = lt;
	p->dir = dir;
	t->pp[i] = p;
	t->b.n++;
}

/* the tests open modules against env */
#define run_open(r, m, ...)	modrun_open((r), (m), &env, __VA_ARGS__)

static uint64_t
stat_of(struct run *r, const char *name)
{
	struct weir_counter c[WEIR_MAX_COUNTERS];
	size_t i, n = r->m->stats(r->st, c, WEIR_MAX_COUNTERS);

	for (i = 0; i < n; i++)
		if (strcmp(c[i].name, name) == 0)
			return c[i].value;
	return UINT64_MAX;
}

static int
count_lines(const char *s)
{
	int n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

/* Run a shell command; its stdout in out; returns the exit status. */
static int
sh(char *out, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
sh(char *out, size_t len, const char *fmt, ...)
{
	char cmd[4096];
	size_t n = 0, k;
	va_list ap;
	FILE *f;
	int st, c;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	sh_lines = 0;
	if ((f = popen(cmd, "r")) == NULL)
		return -1;
	if (out != NULL && len > 0) {
		while (n + 1 < len && (k = fread(out + n, 1, len - 1 - n,
		    f)) > 0)
			n += k;
		out[n] = '\0';
		sh_lines = count_lines(out);
	}
	while ((c = fgetc(f)) != EOF)
		sh_lines += c == '\n';
	st = pclose(f);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int
exists(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int
exists(const char *fmt, ...)
{
	char p[1024];
	struct stat sb;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(p, sizeof(p), fmt, ap);
	va_end(ap);
	return stat(p, &sb) == 0;
}


/*
 * tshark reads the file without complaint (exit 0, nothing on stderr
 * but the root warning) and prints one epoch time per packet.
 */
static int
tshark_times(const char *file, char *out, size_t len)
{
	char err[4096];

	if (sh(out, len, "tshark -r '%s' -T fields -e frame.time_epoch "
	    "2>/dev/null", file) != 0)
		return -1;
	if (sh_lines != count_lines(out))
		return -1;	/* out too small */
	sh(err, sizeof(err), "tshark -r '%s' 2>&1 >/dev/null | "
	    "grep -v 'Running as user'", file);
	if (err[0] != '\0') {
		printf("# tshark on %s: %s", file, err);
		return -1;
	}
	return count_lines(out);
}

static int
tcpdump_count(const char *file, const char *extra, char *out, size_t len)
{
	/* Packet lines start with the time; hex dumps with a tab. */
	if (sh(out, len, "tcpdump %s -r '%s' -nn -tt 2>/dev/null "
	    ">'%s/tcpdump.txt' && grep '^[0-9]' '%s/tcpdump.txt'", extra,
	    file, tmp, tmp) != 0)
		return -1;
	return sh_lines;
}

static json_t *
load_meta(const char *file)
{
	char p[1024];
	json_error_t je;
	json_t *j;

	snprintf(p, sizeof(p), "%s.meta.json", file);
	if ((j = json_load_file(p, 0, &je)) == NULL)
		printf("# %s: %s\n", p, je.text);
	return j;
}

static long long
jint(const json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

static const char *
jstr(const json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s ? s : "";
}

static void
sha256sum(const char *file, char *out)
{
	char buf[256];

	out[0] = '\0';
	if (sh(buf, sizeof(buf), "sha256sum '%s'", file) == 0)
		sscanf(buf, "%64s", out);
}

static void
fmt_epoch(uint64_t ts, int us, char *out, size_t len)
{
	uint64_t f = ts % NS;

	if (us)
		f = f / 1000 * 1000;
	snprintf(out, len, "%" PRIu64 ".%09" PRIu64, ts / NS, f);
}

/* Every packet time of a file, as tshark prints them, in order. */
static int
times_match(const char *file, const uint64_t *ts, int n, int us)
{
	char out[8192], want[64], *line, *save = NULL;
	int i = 0;

	if (tshark_times(file, out, sizeof(out)) != n)
		return 0;
	for (line = strtok_r(out, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save), i++) {
		fmt_epoch(ts[i], us, want, sizeof(want));
		if (strcmp(line, want) != 0) {
			printf("# %s packet %d: tshark %s, want %s\n", file, i,
			    line, want);
			return 0;
		}
	}
	return i == n;
}

static void
test_pcap_basic(int nano)
{
	struct run r;
	struct tb t;
	char f[512], out[8192], want[64], sha[80];
	uint64_t ts[5];
	json_t *m;
	int i, rc;

	snprintf(f, sizeof(f), "%s/basic-%s.pcap", tmp, nano ? "ns" : "us");
	tb_init(&t);
	for (i = 0; i < 5; i++) {
		ts[i] = utc(2024, 3, 1, 12, 0, i, 123456789ULL + (uint64_t)i);
		tb_add(&t, ts[i], 60 + (uint32_t)i * 10, 0, WEIR_LT_EN10MB,
		    WEIR_DIR_UNKNOWN);
	}
	rc = run_open(&r, &weir_mod_pcap, "{\"path\":\"%s\",\"precision\":"
	    "\"%s\"}", f, nano ? "ns" : "us");
	ok(rc == 0, "pcap %s: open", nano ? "ns" : "us");
	if (rc < 0)
		return;
	ok(r.m->packet(r.st, &t.b) == 0, "pcap %s: packet()", nano ? "ns" :
	    "us");
	ok(!exists("%s", f) && exists("%s/.basic-%s.pcap.part", tmp,
	    nano ? "ns" : "us"), "pcap %s: only the hidden name exists "
	    "before close", nano ? "ns" : "us");
	ok(stat_of(&r, "written") == 5 && stat_of(&r, "dropped") == 0,
	    "pcap: stats written 5, dropped 0");
	ok(run_close(&r) == 0, "pcap: close");
	ok(exists("%s", f) && !exists("%s/.basic-%s.pcap.part", tmp,
	    nano ? "ns" : "us"), "pcap: renamed into place at close");
	ok(tcpdump_count(f, nano ? "--time-stamp-precision=nano" : "", out,
	    sizeof(out)) == 5, "tcpdump reads 5 packets from %s", f);
	fmt_epoch(ts[3], !nano, want, sizeof(want));
	if (!nano)
		want[strlen(want) - 3] = '\0';	/* tcpdump -tt: 6 digits */
	ok(strstr(out, want) != NULL, "tcpdump shows timestamp %s", want);
	ok(times_match(f, ts, 5, !nano), "tshark reads %s, timestamps "
	    "exact to the %s", f, nano ? "ns" : "us");

	m = load_meta(f);
	sha256sum(f, sha);
	ok(m != NULL && jint(m, "packets") == 5 &&
	    jint(m, "bytes") == 60 + 70 + 80 + 90 + 100 &&
	    jint(m, "wire_bytes") == 60 + 70 + 80 + 90 + 100 + 20,
	    "metadata: 5 packets, bytes and wire bytes");
	ok(m != NULL && strcmp(jstr(m, "sha256"), sha) == 0 && sha[0],
	    "metadata sha256 equals sha256sum (%s)", sha);
	ok(m != NULL && (uint64_t)jint(m, "first_ts_ns") == ts[0] &&
	    (uint64_t)jint(m, "last_ts_ns") == ts[4] &&
	    strcmp(jstr(m, "first_ts"), "2024-03-01T12:00:00.123456789Z") ==
	    0, "metadata first/last timestamps (%s)", jstr(m, "first_ts"));
	ok(m != NULL && strcmp(jstr(m, "reason"), "end") == 0 &&
	    jint(m, "sequence") == 0 && strcmp(jstr(m, "experiment"),
	    "exp<1>") == 0, "metadata reason end, sequence 0, experiment");
	ok(m != NULL && strcmp(jstr(json_object_get(m, "metadata"), "owner"),
	    "alice") == 0 && json_is_object(json_object_get(m, "config")) &&
	    jint(json_object_get(m, "pipeline"), "read") == 12345 &&
	    jint(json_object_get(m, "drops"), "dropped_linktype") == 0 &&
	    jint(m, "linktype") == 1, "metadata user fields, config, "
	    "pipeline counters, drops");
	ok(m != NULL && jint(m, "file_size") == 24 + 5 * 16 + 400,
	    "metadata file_size");
	json_decref(m);
	ok(sh(out, sizeof(out), "python3 -c 'import xml.dom.minidom,sys; "
	    "d=xml.dom.minidom.parse(sys.argv[1]); "
	    "print(d.getElementsByTagName(\"note\")[0].firstChild.data)' "
	    "'%s.meta.xml'", f) == 0 && strcmp(out, "a<b & \"c\" 'd'\n") == 0,
	    "XML metadata is well-formed, escaped text survives");
	ok(sh(out, sizeof(out), "python3 -c 'import xml.dom.minidom,sys; "
	    "d=xml.dom.minidom.parse(sys.argv[1]); "
	    "print(d.getElementsByTagName(\"packets\")[0].firstChild.data, "
	    "d.getElementsByTagName(\"item\")[0].getAttribute(\"key\"))' "
	    "'%s.meta.xml'", f) == 0 && strcmp(out, "5 two words\n") == 0,
	    "XML: packets element, odd key as item/@key");
	tb_free(&t);
}

/*
 * Fast path: packets laid out as in a pcap file's read buffer; the
 * output must equal the independently built pcap image byte for byte.
 */
static void
test_pcap_image(void)
{
	uint8_t *img, *p;
	struct run r;
	struct tb t;
	char f[512], out[4096];
	uint32_t h[6] = { 0xa1b2c3d4U, 0x00040002U, 0, 0, 262144, 1 };
	uint32_t rec[4];
	size_t off, len;
	unsigned i;
	FILE *fp;
	int rc;

	tb_init(&t);
	img = calloc(1, 1 << 16);
	memcpy(img, h, 24);
	off = 24;
	for (i = 0; i < 40; i++) {
		rec[0] = 1700000000 + i;
		rec[1] = i * 1000;
		rec[2] = 64 + i;
		rec[3] = 1500;
		memcpy(img + off, rec, 16);
		p = img + off + 16;
		memset(p, (int)i, rec[2]);
		t.pk[i].data = p;
		t.pk[i].caplen = rec[2];
		t.pk[i].wirelen = 1500;
		t.pk[i].ts = (uint64_t)rec[0] * NS + (uint64_t)rec[1] * 1000;
		t.pk[i].linktype = 1;
		t.pp[i] = &t.pk[i];
		off += 16 + rec[2];
	}
	t.b.n = 40;
	snprintf(f, sizeof(f), "%s/image.pcap", tmp);
	rc = run_open(&r, &weir_mod_pcap, "{\"path\":\"%s\",\"metadata\":"
	    "false}", f);
	ok(rc == 0 && r.m->packet(r.st, &t.b) == 0 && run_close(&r) == 0,
	    "pcap fast path: contiguous records written");
	fp = fopen(f, "rb");
	p = malloc(1 << 16);
	len = fp ? fread(p, 1, 1 << 16, fp) : 0;
	if (fp)
		fclose(fp);
	ok(len == off && memcmp(p, img, off) == 0, "output is byte-identical "
	    "to the pcap image (%zu bytes)", len);
	ok(!exists("%s.meta.json", f), "metadata false: no sidecar");
	ok(tcpdump_count(f, "", out, sizeof(out)) == 40, "tcpdump reads the "
	    "40 packets");
	free(p);
	free(img);
}

static void
test_pcapng(void)
{
	struct run r;
	struct tb t;
	char f[512], out[8192], want[2048], line[256];
	uint64_t ts[6];
	int rc, i;
	json_t *m;
	static const uint8_t dirs[6] = { WEIR_DIR_IN, WEIR_DIR_OUT,
	    WEIR_DIR_UNKNOWN, WEIR_DIR_IN, WEIR_DIR_OUT, WEIR_DIR_UNKNOWN };

	tb_init(&t);
	for (i = 0; i < 6; i++) {
		ts[i] = utc(2024, 5, 5, 5, 5, 5, (uint64_t)i * 111111111ULL +
		    7);
		/* Interfaces 1 (raw IP) and 0 (Ethernet), 1 used first. */
		tb_add(&t, ts[i], 80, i % 2 == 0 ? 1 : 0, i % 2 == 0 ?
		    WEIR_LT_RAW : WEIR_LT_EN10MB, dirs[i]);
	}
	t.pk[2].epb_flags = 0x1c;	/* reception type + FCS length bits */
	snprintf(f, sizeof(f), "%s/dir.pcapng", tmp);
	rc = run_open(&r, &weir_mod_pcapng, "{\"path\":\"%s\"}", f);
	ok(rc == 0 && r.m->packet(r.st, &t.b) == 0 && run_close(&r) == 0,
	    "pcapng: write 6 packets on 2 interfaces");
	ok(times_match(f, ts, 6, 0), "pcapng: tshark reads it, ns "
	    "timestamps exact");
	sh(out, sizeof(out), "tshark -r '%s' -T fields -e frame.interface_name"
	    " -e frame.packet_flags_direction -e frame.packet_flags "
	    "2>/dev/null", f);
	want[0] = '\0';
	for (i = 0; i < 6; i++) {
		snprintf(line, sizeof(line), "%s\t%s\t%s\n",
		    i % 2 == 0 ? "tun0" : "eth0",
		    dirs[i] == 1 ? "0x00000001" : dirs[i] == 2 ? "0x00000002" :
		    i == 2 ? "0x00000000" : "",
		    dirs[i] == 1 ? "0x00000001" : dirs[i] == 2 ? "0x00000002" :
		    i == 2 ? "0x0000001c" : "");
		strcat(want, line);
	}
	ok(strcmp(out, want) == 0, "pcapng: interface names and direction "
	    "flags as tshark shows them");
	if (strcmp(out, want) != 0)
		printf("# got:\n%s# want:\n%s", out, want);
	sh(out, sizeof(out), "capinfos -k '%s' 2>/dev/null", f);
	ok(strstr(out, "weir experiment 'exp<1>'") != NULL, "pcapng: SHB "
	    "comment names the experiment");
	/* libpcap 1.10 refuses a second link type in one pcapng. */
	sh(out, sizeof(out), "tcpdump -r '%s' -nn 2>&1 >/dev/null", f);
	ok(strstr(out, "different from the type of the first interface") !=
	    NULL, "tcpdump refuses the two link types, as libpcap 1.10 does");
	m = load_meta(f);
	ok(m != NULL && jint(m, "packets") == 6 && json_array_size(
	    json_object_get(m, "interfaces")) == 2 &&
	    strcmp(jstr(m, "format"), "pcapng") == 0, "pcapng metadata: 6 "
	    "packets, 2 interfaces");
	json_decref(m);
	tb_free(&t);

	/* One link type, a new file every 2 packets: SHB and IDB again. */
	for (i = 0; i < 5; i++) {
		ts[i] = utc(2024, 5, 5, 5, 5, 6, (uint64_t)i);
		tb_add(&t, ts[i], 90, 0, WEIR_LT_EN10MB, dirs[i]);
	}
	rc = run_open(&r, &weir_mod_pcapng, "{\"path\":\"%s/ng/n.pcapng\","
	    "\"comment\":\"hello\",\"rotate\":{\"packets\":2}}", tmp);
	ok(rc == 0 && r.m->packet(r.st, &t.b) == 0 && run_close(&r) == 0,
	    "pcapng rotation: write 5 packets, 2 per file");
	for (i = 0; i < 3; i++) {
		snprintf(f, sizeof(f), "%s/ng/n-%06d.pcapng", tmp, i);
		ok(tcpdump_count(f, "", out, sizeof(out)) == (i < 2 ? 2 : 1) &&
		    times_match(f, ts + 2 * i, i < 2 ? 2 : 1, 0),
		    "tcpdump and tshark read %s", f);
	}
	sh(out, sizeof(out), "capinfos -k '%s' 2>/dev/null", f);
	ok(strstr(out, "hello") != NULL, "pcapng: configured comment");
	tb_free(&t);
}

/* WDCap: 4 rotations a day at 00:00, 06:00, 12:00, 18:00 UTC. */
static void
test_rotate_time(void)
{
	struct run r;
	struct tb t;
	char f[512], out[4096];
	uint64_t ts[6];
	int rc, i;
	json_t *m;
	static const char *const names[] = { "t-20240101-000000.pcap",
	    "t-20240101-060000.pcap", "t-20240101-120000.pcap",
	    "t-20240102-180000.pcap" };
	static const int first[] = { 0, 2, 4, 5 }, cnt[] = { 2, 2, 1, 1 };

	ts[0] = utc(2024, 1, 1, 0, 0, 0, 0);
	ts[1] = utc(2024, 1, 1, 5, 59, 59, 999999999);
	ts[2] = utc(2024, 1, 1, 6, 0, 0, 0);
	ts[3] = utc(2024, 1, 1, 11, 59, 59, 999999999);
	ts[4] = utc(2024, 1, 1, 12, 0, 0, 0);
	/* No packets from 12:00:00 to the next evening: no empty files. */
	ts[5] = utc(2024, 1, 2, 23, 59, 59, 999999999);
	rc = run_open(&r, &weir_mod_pcap, "{\"path\":\"%s/rt/t-%%Y%%m%%d-"
	    "%%H%%M%%S.pcap\",\"precision\":\"ns\",\"rotate\":{\"period\":"
	    "\"day\",\"per_period\":4}}", tmp);
	ok(rc == 0, "time rotation: open");
	if (rc < 0)
		return;
	/* Two batches: the boundary also works across packet() calls. */
	tb_init(&t);
	for (i = 0; i < 2; i++)
		tb_add(&t, ts[i], 60, 0, WEIR_LT_EN10MB, 0);
	ok(r.m->packet(r.st, &t.b) == 0, "time rotation: batch 1");
	tb_free(&t);
	for (i = 2; i < 6; i++)
		tb_add(&t, ts[i], 60, 0, WEIR_LT_EN10MB, 0);
	ok(r.m->packet(r.st, &t.b) == 0, "time rotation: batch 2");
	tb_free(&t);
	ok(stat_of(&r, "files") == 3, "three files closed before the end");
	ok(run_close(&r) == 0, "time rotation: close");
	sh(out, sizeof(out), "ls '%s/rt' | grep -v meta", tmp);
	ok(strcmp(out, "t-20240101-000000.pcap\nt-20240101-060000.pcap\n"
	    "t-20240101-120000.pcap\nt-20240102-180000.pcap\n") == 0,
	    "exactly four files, named by their aligned period start");
	for (i = 0; i < 4; i++) {
		snprintf(f, sizeof(f), "%s/rt/%s", tmp, names[i]);
		ok(times_match(f, ts + first[i], cnt[i], 0),
		    "%s holds exactly its packets", names[i]);
		m = load_meta(f);
		ok(m != NULL && strcmp(jstr(m, "reason"), i == 3 ? "end" :
		    "time") == 0 && jint(m, "sequence") == i,
		    "%s: reason %s, sequence %d", names[i], i == 3 ? "end" :
		    "time", i);
		json_decref(m);
	}
}

/* tcpdump -G style: boundaries at multiples of S seconds. */
static void
test_rotate_seconds(void)
{
	struct run r;
	struct tb t;
	char out[4096];
	int rc;

	tb_init(&t);
	tb_add(&t, utc(2024, 2, 2, 2, 2, 59, 999999999), 60, 0, 1, 0);
	tb_add(&t, utc(2024, 2, 2, 2, 3, 0, 0), 60, 0, 1, 0);
	tb_add(&t, utc(2024, 2, 2, 2, 3, 59, 0), 60, 0, 1, 0);
	rc = run_open(&r, &weir_mod_pcap, "{\"path\":\"%s/rs/s.pcap\","
	    "\"rotate\":{\"seconds\":60}}", tmp);
	ok(rc == 0 && r.m->packet(r.st, &t.b) == 0 && run_close(&r) == 0,
	    "seconds rotation: write");
	sh(out, sizeof(out), "ls '%s/rs' | grep -v meta", tmp);
	ok(strcmp(out, "s-000000.pcap\ns-000001.pcap\n") == 0,
	    "seconds 60: 02:02:59.999999999 and 02:03:00 in different files; "
	    "-%%N added to a plain name");
	ok(tcpdump_count(strcat(strcpy(out, tmp), "/rs/s-000001.pcap"), "",
	    out + 1024, sizeof(out) - 1024) == 2, "second file has 2 packets");
	tb_free(&t);
}

static void
test_rotate_count_size(void)
{
	struct run r;
	struct tb t;
	char f[512], out[4096];
	struct stat sb;
	int rc, i, total = 0, okc = 1;
	json_t *m;

	tb_init(&t);
	for (i = 0; i < 10; i++)
		tb_add(&t, utc(2024, 1, 1, 0, 0, 0, (uint64_t)i), 100, 0, 1, 0);
	rc = run_open(&r, &weir_mod_pcap, "{\"path\":\"%s/rp/p.pcap\","
	    "\"rotate\":{\"packets\":3}}", tmp);
	ok(rc == 0 && r.m->packet(r.st, &t.b) == 0 && run_close(&r) == 0,
	    "packet rotation: write 10 packets, 3 per file");
	for (i = 0; i < 4; i++) {
		snprintf(f, sizeof(f), "%s/rp/p-%06d.pcap", tmp, i);
		rc = tcpdump_count(f, "", out, sizeof(out));
		total += rc;
		m = load_meta(f);
		if (rc != (i < 3 ? 3 : 1) || m == NULL || strcmp(jstr(m,
		    "reason"), i < 3 ? "packets" : "end") != 0)
			okc = 0;
		json_decref(m);
	}
	ok(okc && total == 10 && !exists("%s/rp/p-000004.pcap", tmp),
	    "files of 3, 3, 3, 1 packets, reasons packets and end");

	/* 24 + 3 * (16 + 100) = 372: exactly three records per file. */
	rc = run_open(&r, &weir_mod_pcap, "{\"path\":\"%s/rz/z-%%N.pcap\","
	    "\"rotate\":{\"size\":372}}", tmp);
	ok(rc == 0 && r.m->packet(r.st, &t.b) == 0 && run_close(&r) == 0,
	    "size rotation: write");
	okc = 1;
	for (i = 0; i < 4; i++) {
		snprintf(f, sizeof(f), "%s/rz/z-%06d.pcap", tmp, i);
		if (stat(f, &sb) < 0 || sb.st_size != (i < 3 ? 372 : 24 + 116))
			okc = 0;
		m = load_meta(f);
		if (m == NULL || strcmp(jstr(m, "reason"), i < 3 ? "size" :
		    "end") != 0)
			okc = 0;
		json_decref(m);
	}
	ok(okc, "size 372: files of exactly 372 bytes, then the rest");
	tb_free(&t);
}

static void
test_max_files(void)
{
	struct run r;
	struct tb t;
	char out[4096];
	int rc, i;

	tb_init(&t);
	for (i = 0; i < 5; i++)
		tb_add(&t, utc(2024, 1, 1, 0, 0, i, 0), 70, 0, 1, 0);
	rc = run_open(&r, &weir_mod_pcap, "{\"path\":\"%s/mf/m.pcap\","
	    "\"rotate\":{\"packets\":1,\"max_files\":2}}", tmp);
	ok(rc == 0 && r.m->packet(r.st, &t.b) == 0 && run_close(&r) == 0,
	    "max_files 2: write 5 files");
	sh(out, sizeof(out), "ls -A '%s/mf'", tmp);
	ok(strcmp(out, "m-000003.pcap\nm-000003.pcap.meta.json\n"
	    "m-000003.pcap.meta.xml\nm-000004.pcap\nm-000004.pcap.meta.json\n"
	    "m-000004.pcap.meta.xml\n") == 0, "only the newest 2 files and "
	    "their sidecars are kept");
	tb_free(&t);
}

static void
test_zstd(void)
{
	struct run r;
	struct tb t;
	char f[512], out[4096], sha[80], usha[80];
	int rc, i;
	uint64_t ts[20];
	json_t *m;

	tb_init(&t);
	for (i = 0; i < 20; i++) {
		ts[i] = utc(2024, 1, 1, 0, 0, i, 5000);
		tb_add(&t, ts[i], 300, 0, 1, 0);
	}
	rc = run_open(&r, &weir_mod_pcap, "{\"path\":\"%s/zs/c.pcap\","
	    "\"compress\":\"zstd\",\"compress_level\":5}", tmp);
	ok(rc == 0 && r.m->packet(r.st, &t.b) == 0 && run_close(&r) == 0,
	    "zstd: write");
	snprintf(f, sizeof(f), "%s/zs/c.pcap.zst", tmp);
	ok(exists("%s", f) && !exists("%s/zs/c.pcap", tmp) &&
	    !exists("%s/zs/.c.pcap.part", tmp) &&
	    !exists("%s/zs/.c.pcap.zst.part", tmp), "zstd: only c.pcap.zst");
	ok(sh(NULL, 0, "zstd -q -dc '%s' > '%s/zs/plain.pcap'", f, tmp) == 0,
	    "zstd -dc decompresses it");
	snprintf(out, sizeof(out), "%s/zs/plain.pcap", tmp);
	ok(times_match(out, ts, 20, 1), "tshark reads the decompressed file");
	sha256sum(f, sha);
	sha256sum(out, usha);
	m = load_meta(f);
	ok(m != NULL && strcmp(jstr(m, "sha256"), sha) == 0 &&
	    strcmp(jstr(m, "uncompressed_sha256"), usha) == 0 &&
	    strcmp(jstr(m, "compression"), "zstd") == 0 &&
	    jint(m, "packets") == 20, "zstd metadata: sha256 of the .zst and "
	    "of its content match sha256sum");
	json_decref(m);
	tb_free(&t);
}

static void
test_linktype_snaplen_signal(void)
{
	struct run r;
	struct tb t;
	char f[512], out[4096];
	int rc;
	json_t *m;

	tb_init(&t);
	tb_add(&t, utc(2024, 1, 1, 1, 0, 0, 0), 100, 0, WEIR_LT_EN10MB, 0);
	tb_add(&t, utc(2024, 1, 1, 1, 0, 1, 0), 100, 1, WEIR_LT_RAW, 0);
	tb_add(&t, utc(2024, 1, 1, 1, 0, 2, 0), 100, 0, WEIR_LT_EN10MB, 0);
	rc = run_open(&r, &weir_mod_pcap, "{\"path\":\"%s/lt.pcap\","
	    "\"snaplen\":64}", tmp);
	ok(rc == 0 && r.m->packet(r.st, &t.b) == 0, "pcap: mixed link types");
	ok(stat_of(&r, "dropped_linktype") == 1 && stat_of(&r, "written") ==
	    2 && stat_of(&r, "truncated_snaplen") == 2 &&
	    stat_of(&r, "dropped") == 1, "one packet dropped for its link "
	    "type, two cut to snaplen 64");
	tb_free(&t);
	/* SIGHUP: the next packet starts a new file, reason "signal". */
	weir_filewriter_request_rotate();
	tb_add(&t, utc(2024, 1, 1, 1, 0, 3, 0), 100, 1, WEIR_LT_RAW, 0);
	ok(r.m->packet(r.st, &t.b) == 0 && run_close(&r) == 0,
	    "rotation request, then a raw IP packet");
	snprintf(f, sizeof(f), "%s/lt.pcap", tmp);
	m = load_meta(f);
	ok(m != NULL && strcmp(jstr(m, "reason"), "signal") == 0 &&
	    jint(m, "packets") == 2, "first file closed for the signal");
	json_decref(m);
	ok(sh(out, sizeof(out), "tcpdump -r '%s' -nn 2>&1 | grep -c "
	    "'snapshot length 64'", f) == 0 && atoi(out) == 1,
	    "tcpdump: snapshot length 64");
	snprintf(f, sizeof(f), "%s/lt-000001.pcap", tmp);
	ok(tcpdump_count(f, "", out, sizeof(out)) == 1 &&
	    sh(out, sizeof(out), "tcpdump -r '%s' 2>&1 | grep -c 'RAW'", f) ==
	    0, "the second file is raw IP (its first packet's link type)");
	tb_free(&t);
}

/* Write errors via RLIMIT_FSIZE: EFBIG part way through a write. */
static void
test_write_error(void)
{
	struct rlimit old, lim;
	struct run r;
	struct tb t;
	char f[512], out[4096];
	int rc, i, okc;
	json_t *m;

	getrlimit(RLIMIT_FSIZE, &old);
	signal(SIGXFSZ, SIG_IGN);
	rc = run_open(&r, &weir_mod_pcap, "{\"path\":\"%s/we/err.pcap\"}",
	    tmp);
	ok(rc == 0, "write errors: open");
	if (rc < 0)
		return;
	lim = old;
	lim.rlim_cur = 20000;
	setrlimit(RLIMIT_FSIZE, &lim);
	/* Records of 1000 bytes: 10, then 15 (the file would pass 20000). */
	tb_init(&t);
	for (i = 0; i < 10; i++)
		tb_add(&t, utc(2024, 1, 1, 0, 0, 0, (uint64_t)i), 984, 0, 1, 0);
	ok(r.m->packet(r.st, &t.b) == 0, "10 records fit");
	tb_free(&t);
	for (i = 0; i < 15; i++)
		tb_add(&t, utc(2024, 1, 1, 0, 0, 1, (uint64_t)i), 984, 0, 1, 0);
	ok(r.m->packet(r.st, &t.b) == 0 && stat_of(&r, "write_errors") == 1 &&
	    stat_of(&r, "dropped") == 0 && stat_of(&r, "written") == 25,
	    "EFBIG: rotated on error, the retry wrote all 15");
	tb_free(&t);
	/* 25 records fit in no file: rotate, retry fails, count drops. */
	for (i = 0; i < 25; i++)
		tb_add(&t, utc(2024, 1, 1, 0, 0, 2, (uint64_t)i), 984, 0, 1, 0);
	ok(r.m->packet(r.st, &t.b) == 0 && stat_of(&r, "dropped") == 25 &&
	    stat_of(&r, "dropped_write_error") == 25, "retry failed too: 25 "
	    "packets counted as output drops, the output goes on");
	tb_free(&t);
	setrlimit(RLIMIT_FSIZE, &old);
	rc = run_close(&r);
	ok(rc < 0 && strstr(r.err.msg, "25 packets lost") != NULL &&
	    strstr(r.err.msg, "File too large") != NULL, "close reports the "
	    "loss and the errno text");
	okc = 1;
	for (i = 0; i < 2; i++) {
		snprintf(f, sizeof(f), "%s/we/err%s.pcap", tmp, i == 0 ? "" :
		    "-000001");
		m = load_meta(f);
		if (tcpdump_count(f, "", out, sizeof(out)) != (i == 0 ? 10 : 15)
		    || m == NULL || strcmp(jstr(m, "reason"), "error") != 0)
			okc = 0;
		json_decref(m);
	}
	ok(okc, "files of 10 and 15 packets, both complete, reason error");
	sh(out, sizeof(out), "ls -A '%s/we' | grep -c -v meta", tmp);
	ok(atoi(out) == 2, "no empty or hidden file left behind");
}

/* kill -9 between packet() and close(): no final name may appear. */
static void
test_kill9(void)
{
	struct run r;
	struct tb t;
	char out[1024];
	pid_t pid;
	int st, i;

	pid = fork();
	if (pid == 0) {
		tb_init(&t);
		for (i = 0; i < 8; i++)
			tb_add(&t, utc(2024, 1, 1, 0, 0, i, 0), 100, 0, 1, 0);
		if (run_open(&r, &weir_mod_pcap, "{\"path\":\"%s/k9/k.pcap\","
		    "\"rotate\":{\"packets\":5}}", tmp) == 0)
			r.m->packet(r.st, &t.b);
		raise(SIGKILL);
		_exit(0);
	}
	waitpid(pid, &st, 0);
	ok(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "child killed with "
	    "SIGKILL after writing");
	sh(out, sizeof(out), "ls -A '%s/k9'", tmp);
	ok(strcmp(out, ".k-000001.pcap.part\nk-000000.pcap\n"
	    "k-000000.pcap.meta.json\nk-000000.pcap.meta.xml\n") == 0,
	    "after kill -9: the closed file is complete, the open one only "
	    "has its hidden name");
	ok(tcpdump_count(strcat(strcpy(out, tmp), "/k9/k-000000.pcap"), "",
	    out + 512, sizeof(out) - 512) == 5, "and the closed file holds "
	    "its 5 packets");
}

static int
sum_json(const char *file, long long *pk, long long *by, int *lines,
    int *gaps, long long *in, long long *outp)
{
	char line[1024];
	json_error_t je;
	json_t *j;
	FILE *fp = fopen(file, "r");

	*pk = *by = *in = *outp = 0;
	*lines = *gaps = 0;
	if (fp == NULL)
		return -1;
	while (fgets(line, sizeof(line), fp) != NULL) {
		if ((j = json_loads(line, 0, &je)) == NULL) {
			fclose(fp);
			return -1;
		}
		*pk += jint(j, "packets");
		*by += jint(j, "bytes");
		*in += jint(j, "packets_in");
		*outp += jint(j, "packets_out");
		if (jint(j, "packets") != jint(j, "packets_in") +
		    jint(j, "packets_out") + jint(j, "packets_unknown"))
			*pk = -1000000;
		*gaps += json_is_true(json_object_get(j, "gap"));
		(*lines)++;
		json_decref(j);
	}
	fclose(fp);
	return 0;
}

#define CSV_HEAD "start_ns,start,end_ns,end,packets,bytes,packets_in," \
	"bytes_in,packets_out,bytes_out,packets_unknown,bytes_unknown,gap\n"

static void
test_counters(void)
{
	struct run r;
	struct tb t;
	char f[512], out[8192], *line, *save = NULL;
	long long pk, by, in, outp, v[12];
	int rc, lines, gaps, okc;
	uint64_t base = utc(2024, 1, 1, 0, 0, 0, 0);

	tb_init(&t);
	/* 0.0, 0.2, 0.7 | 1.1 | (2, 3 empty) | 4.5 | ... 5000 s later */
	tb_add(&t, base, 100, 0, 1, WEIR_DIR_IN);
	tb_add(&t, base + 200000000, 100, 0, 1, WEIR_DIR_OUT);
	tb_add(&t, base + 700000000, 100, 0, 1, WEIR_DIR_IN);
	tb_add(&t, base + 1100000000, 200, 0, 1, WEIR_DIR_UNKNOWN);
	tb_add(&t, base + 4500000000ULL, 300, 0, 1, WEIR_DIR_OUT);
	tb_add(&t, base + 5004 * NS, 400, 0, 1, WEIR_DIR_IN);
	snprintf(f, sizeof(f), "%s/ctr.json", tmp);
	rc = run_open(&r, &weir_mod_counters, "{\"path\":\"%s\"}", f);
	ok(rc == 0 && r.m->packet(r.st, &t.b) == 0, "counters json: packets");
	ok(!exists("%s", f) && exists("%s/.ctr.json.part", tmp),
	    "counters: hidden until close");
	ok(run_close(&r) == 0, "counters json: close");
	ok(sum_json(f, &pk, &by, &lines, &gaps, &in, &outp) == 0 &&
	    pk == 6 && by == 100 + 100 + 100 + 200 + 300 + 400 + 6 * 4 &&
	    in == 3 && outp == 2, "JSON lines sum to 6 packets, wire bytes, "
	    "per direction");
	/* [0,1) [1,2) [2,3) [3,4) [4,5) gap [5,5004) [5004,5005) */
	ok(lines == 7 && gaps == 1, "zero lines for short gaps, one gap "
	    "line for 4999 empty intervals (%d lines, %d gaps)", lines, gaps);

	snprintf(f, sizeof(f), "%s/ctr.csv", tmp);
	rc = run_open(&r, &weir_mod_counters, "{\"path\":\"%s\",\"format\":"
	    "\"csv\",\"interval\":0.5,\"bytes\":\"captured\"}", f);
	ok(rc == 0 && r.m->packet(r.st, &t.b) == 0 && run_close(&r) == 0,
	    "counters csv: write");
	sh(out, sizeof(out), "cat '%s'", f);
	okc = strncmp(out, CSV_HEAD, strlen(CSV_HEAD)) == 0;
	pk = by = 0;
	lines = 0;
	line = strtok_r(out, "\n", &save);
	while ((line = strtok_r(NULL, "\n", &save)) != NULL) {
		char s1[64], s2[64];

		if (sscanf(line, "%lld,%63[^,],%lld,%63[^,],%lld,%lld,%lld,"
		    "%lld,%lld,%lld,%lld,%lld,%lld", &v[0], s1, &v[1], s2,
		    &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9],
		    &v[10]) != 13)
			okc = 0;
		pk += v[2];
		by += v[3];
		if (lines == 0 && (v[0] != (long long)base ||
		    strcmp(s1, "2024-01-01T00:00:00.000000000Z") != 0 ||
		    v[1] - v[0] != 500000000 || v[2] != 2))
			okc = 0;
		lines++;
	}
	/* 0, .5, 1, 1.5..4 (6 empty), 4.5, gap, 5004 */
	ok(okc && pk == 6 && by == 1200 && lines == 12, "CSV: header, "
	    "0.5 s intervals aligned to the epoch, captured bytes sum "
	    "(%lld packets, %lld bytes, %d lines)", pk, by, lines);
	tb_free(&t);
}

static void
test_config(void)
{
	struct run r;
	int rc;

	rc = run_open(&r, &weir_mod_pcap, "{\"path\":\"x.pcap\",\"rotat\":{}}");
	ok(rc < 0 && strstr(r.err.msg, "unknown key 'rotat'") != NULL,
	    "unknown key refused: %s", r.err.msg);
	json_decref(r.conf);
	rc = run_open(&r, &weir_mod_pcap, "{\"path\":\"x.pcap\",\"rotate\":"
	    "{\"period\":\"hour\",\"seconds\":10}}");
	ok(rc < 0, "period and seconds together refused: %s", r.err.msg);
	json_decref(r.conf);
	rc = run_open(&r, &weir_mod_pcapng, "{\"path\":\"x.pcap\","
	    "\"precision\":\"ns\"}");
	ok(rc < 0, "pcapng refuses 'precision': %s", r.err.msg);
	json_decref(r.conf);
	rc = run_open(&r, &weir_mod_counters, "{\"path\":\"-\",\"interval\":"
	    "0.0001}");
	ok(rc < 0, "counters: interval below 1 ms refused: %s", r.err.msg);
	json_decref(r.conf);
	r.conf = json_pack("{s:s}", "path", "a.pcap");
	ok(weir_mod_pcap.check(r.conf, NULL, &r.err) == 0 &&
	    json_integer_value(json_object_get(json_object_get(r.conf,
	    "rotate"), "per_period")) == 1 && json_is_true(json_object_get(
	    json_object_get(r.conf, "rotate"), "on_error")) &&
	    strcmp(json_string_value(json_object_get(r.conf, "precision")),
	    "us") == 0, "check fills in the defaults");
	json_decref(r.conf);
}

int
main(void)
{
	char cmd[512];

	snprintf(tmp, sizeof(tmp), "/tmp/weir-outputs.XXXXXX");
	if (mkdtemp(tmp) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	exp_doc = json_pack("{s:s,s:{s:s,s:s,s:i}}", "name", "exp<1>",
	    "metadata", "owner", "alice", "note", "a<b & \"c\" 'd'",
	    "two words", 2);
	env.exp_name = "exp<1>";
	env.exp = exp_doc;
	env.ifaces = &ifaces;
	env.pipeline_stats = fake_stats;
	env.pl = &fake_read;
	weir_iface_add(&ifaces, 0, WEIR_LT_EN10MB, 65535, 9, "eth0");
	weir_iface_add(&ifaces, 0, WEIR_LT_RAW, 65535, 9, "tun0");

	test_config();
	test_pcap_basic(0);
	test_pcap_basic(1);
	test_pcap_image();
	test_pcapng();
	test_rotate_time();
	test_rotate_seconds();
	test_rotate_count_size();
	test_max_files();
	test_zstd();
	test_linktype_snaplen_signal();
	test_write_error();
	test_kill9();
	test_counters();

	json_decref(exp_doc);
	if (tap_failed == 0 && getenv("WEIR_KEEP") == NULL) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
		if (system(cmd) != 0)
			printf("# could not remove %s\n", tmp);
	} else
		printf("# files kept in %s\n", tmp);
	return tap_done();
}
