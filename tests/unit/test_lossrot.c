/*
 * test_lossrot.c - rotate.on_loss and the capture-loss fields of the
 * file metadata (docs/outputs.md "Rotation"), driven through the pcap and
 * pcapng modules with a fake pipeline loss counter in struct weir_env.
 * Packet counts come from tcpdump (and capinfos for pcapng); the loss
 * counts expected are the ones this test feeds in.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <jansson.h>

#include "weir/module.h"
#include "weir/pkt.h"
#include "../modrun.h"
#include "../tap.h"

extern const struct weir_module weir_mod_pcap, weir_mod_pcapng;

#define NS	UINT64_C(1000000000)
#define MAXP	16
#define HR	WEIR_HEADROOM

static char tmp[256];
static struct weir_ifaces ifaces;
static struct weir_env env;
static struct weir_loss loss;	/* what the "pipeline" has counted */

struct tb {
	struct weir_pkt	 pk[MAXP];
	struct weir_pkt	*pp[MAXP];
	uint8_t		 mem[MAXP][HR + 128];
	struct weir_batch b;
};

static void
tb_reset(struct tb *t)
{
	memset(t, 0, sizeof(*t));
	t->b.p = t->pp;
}

/* An Ethernet/IPv4/UDP packet of 60 bytes at ts. */
static void
tb_add(struct tb *t, uint64_t ts)
{
	static const uint8_t eth[14] = { 0, 0x11, 0x22, 0x33, 0x44, 0x55,
	    0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0x08, 0x00 };
	unsigned i = t->b.n;
	uint8_t *d = t->mem[i] + HR, *ip = d + 14;

	memcpy(d, eth, 14);
	ip[0] = 0x45;
	ip[3] = 46;
	ip[8] = 64;
	ip[9] = 17;
	ip[12] = 10; ip[15] = 1;
	ip[16] = 10; ip[19] = 2;
	ip[21] = (uint8_t)i; ip[23] = 53;
	ip[25] = 26;
	t->pk[i].data = d;
	t->pk[i].caplen = 60;
	t->pk[i].wirelen = 60;
	t->pk[i].ts = ts;
	t->pk[i].linktype = WEIR_LT_EN10MB;
	t->pp[i] = &t->pk[i];
	t->b.n++;
}

/* the tests open modules against env */
#define run_open(r, m, ...)	modrun_open((r), (m), &env, __VA_ARGS__)

/* Hand over a batch of n packets at t0, t0 + 1 ms, ... */
static int
feed(struct run *r, uint64_t t0, unsigned n)
{
	struct tb t;
	unsigned i;

	tb_reset(&t);
	for (i = 0; i < n; i++)
		tb_add(&t, t0 + i * 1000000);
	return r->m->packet(r->st, &t.b);
}

/* Packets in a trace file, as tcpdump reads them (-1: unreadable). */
static int
tcpdump_count(const char *dir, const char *name)
{
	char cmd[1024], line[512];
	FILE *f;
	int n = 0;

	snprintf(cmd, sizeof(cmd), "tcpdump -nr '%s/%s' 2>/dev/null; "
	    "echo \"rc=$?\"", dir, name);
	if ((f = popen(cmd, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, "rc=", 3) == 0) {
			if (atoi(line + 3) != 0)
				n = -1;
			break;
		}
		n++;
	}
	pclose(f);
	return n;
}

/* Data files of a directory (no sidecars), one per line, sorted. */
static void
list(const char *dir, char *out, size_t len)
{
	char cmd[1024];
	FILE *f;
	size_t n;

	snprintf(cmd, sizeof(cmd), "ls -A '%s' | grep -v '\\.meta\\.' | "
	    "LC_ALL=C sort",
	    dir);
	out[0] = '\0';
	if ((f = popen(cmd, "r")) == NULL)
		return;
	n = fread(out, 1, len - 1, f);
	out[n] = '\0';
	pclose(f);
}

static json_t *
meta(const char *dir, const char *name)
{
	char p[1024];

	snprintf(p, sizeof(p), "%s/%s.meta.json", dir, name);
	return json_load_file(p, 0, NULL);
}

static long long
jint(const json_t *m, const char *k)
{
	const json_t *v = json_object_get(m, k);

	return json_is_integer(v) ? json_integer_value(v) : -1;
}

static const char *
jstr(const json_t *m, const char *k)
{
	const char *s = json_string_value(json_object_get(m, k));

	return s != NULL ? s : "(none)";
}

/*
 * Does file name of dir hold want packets, closed for reason, with
 * these loss fields (after < 0: no lost_after key)?
 */
static int
check_file(const char *dir, const char *name, int want, const char *reason,
    long long before, long long bk, long long br, long long within,
    long long after)
{
	json_t *m = meta(dir, name);
	int n = tcpdump_count(dir, name), good;

	good = m != NULL && n == want && strcmp(jstr(m, "reason"),
	    reason) == 0 && jint(m, "packets") == want &&
	    jint(m, "lost_before") == before &&
	    jint(m, "lost_before_kernel") == bk &&
	    jint(m, "lost_before_ring") == br &&
	    jint(m, "lost_within") == within &&
	    jint(m, "lost_after") == after;
	if (!good)
		printf("# %s: tcpdump %d packets (want %d); meta reason %s "
		    "packets %lld lost_before %lld (%lld+%lld) within %lld "
		    "after %lld\n", name, n, want, m ? jstr(m, "reason") : "-",
		    m ? jint(m, "packets") : -1, m ? jint(m, "lost_before") :
		    -1, m ? jint(m, "lost_before_kernel") : -1,
		    m ? jint(m, "lost_before_ring") : -1,
		    m ? jint(m, "lost_within") : -1,
		    m ? jint(m, "lost_after") : -1);
	json_decref(m);
	return good;
}

/*
 * The common story: 5 kernel drops before the first packet; 3 packets;
 * 7 kernel drops; 2 packets; a tick; 1 kernel drop, a tick, 2 kernel
 * drops and 4 ring drops, a tick; 1 packet; 3 ring drops after it; end.
 */
static int
story(struct run *r, uint64_t t0)
{
	int rc = 0;

	loss.kernel = 5;
	loss.ring = 0;
	rc |= feed(r, t0, 3);
	loss.kernel += 7;
	rc |= feed(r, t0 + NS, 2);
	rc |= r->m->tick(r->st, t0 + 2 * NS);
	loss.kernel += 1;
	rc |= r->m->tick(r->st, t0 + 3 * NS);
	loss.kernel += 2;
	loss.ring += 4;
	rc |= r->m->tick(r->st, t0 + 4 * NS);
	rc |= feed(r, t0 + 5 * NS, 1);
	loss.ring += 3;
	return rc;
}

static void
test_on_loss(const struct weir_module *m, const char *ext)
{
	char dir[512], out[1024], want[256], f0[64], f1[64], f2[64];
	uint64_t t0 = 1700000000 * NS;
	struct run r;
	int rc;

	snprintf(dir, sizeof(dir), "%s/on-%s", tmp, ext);
	rc = run_open(&r, m, "{\"path\":\"%s/l.%s\",\"rotate\":"
	    "{\"on_loss\":true}}", dir, ext);
	ok(rc == 0 && story(&r, t0) == 0 && run_close(&r) == 0,
	    "%s on_loss: the story runs", ext);
	snprintf(f0, sizeof(f0), "l.%s", ext);
	snprintf(f1, sizeof(f1), "l-000001.%s", ext);
	snprintf(f2, sizeof(f2), "l-000002.%s", ext);
	list(dir, out, sizeof(out));
	/* sort(1) in the C locale: '-' before '.' */
	snprintf(want, sizeof(want), "%s\n%s\n%s\n", f1, f2, f0);
	ok(strcmp(out, want) == 0, "%s on_loss: three files, none for the "
	    "losses without packets (got '%s')", ext, out);
	ok(check_file(dir, f0, 3, "loss", 5, 5, 0, 0, -1),
	    "%s: first file: 3 packets, closed for loss, 5 lost before it "
	    "(since the start)", ext);
	ok(check_file(dir, f1, 2, "loss", 7, 7, 0, 0, -1),
	    "%s: second file: 2 packets, 7 lost before, closed by the tick "
	    "that saw the next loss", ext);
	ok(check_file(dir, f2, 1, "end", 7, 3, 4, 0, 3),
	    "%s: third file: 1 + 2 kernel and 4 ring drops with no file open "
	    "recorded before it, 3 ring drops after its last packet", ext);
}

static void
test_off(void)
{
	char dir[512], out[1024];
	uint64_t t0 = 1700000000 * NS;
	struct run r;
	json_t *c;
	int rc;

	snprintf(dir, sizeof(dir), "%s/off", tmp);
	rc = run_open(&r, &weir_mod_pcap, "{\"path\":\"%s/l.pcap\"}", dir);
	c = json_object_get(json_object_get(r.conf, "rotate"), "on_loss");
	ok(rc == 0 && json_is_false(c), "on_loss defaults to false in the "
	    "effective config");
	ok(story(&r, t0) == 0 && run_close(&r) == 0, "on_loss off: story");
	list(dir, out, sizeof(out));
	ok(strcmp(out, "l.pcap\n") == 0, "on_loss off: one file");
	ok(check_file(dir, "l.pcap", 6, "end", 5, 5, 0, 14, 3),
	    "on_loss off: the file records 5 before, 7 + 1 + 2 + 4 within, "
	    "3 after");
}

/* Loss with packets and time rotation: which reason is recorded. */
static void
test_order(void)
{
	char dir[512], out[1024];
	uint64_t t0 = 1700000000 * NS - 1700000000 % 60 * NS;
	struct run r;
	int rc;

	/* packets 2: the third packet is due for packets and for loss */
	snprintf(dir, sizeof(dir), "%s/pk", tmp);
	loss.kernel = loss.ring = 0;
	rc = run_open(&r, &weir_mod_pcap, "{\"path\":\"%s/p.pcap\",\"rotate\":"
	    "{\"on_loss\":true,\"packets\":2}}", dir);
	rc |= feed(&r, t0, 2);
	loss.kernel = 9;
	rc |= feed(&r, t0 + NS, 1);
	ok(rc == 0 && run_close(&r) == 0, "order: packets + loss written");
	list(dir, out, sizeof(out));
	ok(strcmp(out, "p-000000.pcap\np-000001.pcap\n") == 0 &&
	    check_file(dir, "p-000000.pcap", 2, "loss", 0, 0, 0, 0, -1) &&
	    check_file(dir, "p-000001.pcap", 1, "end", 9, 9, 0, 0, 0),
	    "loss is recorded before packets (got '%s')", out);

	/* seconds 60: a loss that falls on a time boundary */
	snprintf(dir, sizeof(dir), "%s/tm", tmp);
	loss.kernel = loss.ring = 0;
	rc = run_open(&r, &weir_mod_pcap, "{\"path\":\"%s/t.pcap\",\"rotate\":"
	    "{\"on_loss\":true,\"seconds\":60}}", dir);
	rc |= feed(&r, t0, 2);
	loss.ring = 4;
	rc |= feed(&r, t0 + 60 * NS, 1);
	ok(rc == 0 && run_close(&r) == 0, "order: time + loss written");
	list(dir, out, sizeof(out));
	ok(strcmp(out, "t-000000.pcap\nt-000001.pcap\n") == 0 &&
	    check_file(dir, "t-000000.pcap", 2, "time", 0, 0, 0, 0, -1) &&
	    check_file(dir, "t-000001.pcap", 1, "end", 4, 0, 4, 0, 0),
	    "time is recorded before loss; the new file has the count");
}

/* pcapng files split by a loss stay readable for the peers' tools. */
static void
test_pcapng_tools(void)
{
	char dir[512], cmd[1024];

	snprintf(dir, sizeof(dir), "%s/on-pcapng", tmp);
	snprintf(cmd, sizeof(cmd), "for f in '%s'/l*.pcapng; do "
	    "capinfos -c \"$f\" >/dev/null 2>&1 || exit 1; done", dir);
	ok(system(cmd) == 0, "pcapng: capinfos reads every file");
}

/* Without a loss counter (trace inputs) there are no loss fields. */
static void
test_no_counter(void)
{
	char dir[512];
	struct run r;
	json_t *m;
	int rc;

	env.loss = NULL;
	snprintf(dir, sizeof(dir), "%s/none", tmp);
	rc = run_open(&r, &weir_mod_pcap, "{\"path\":\"%s/n.pcap\",\"rotate\":"
	    "{\"on_loss\":true}}", dir);
	rc |= feed(&r, 1700000000 * NS, 2);
	rc |= feed(&r, 1700000001 * NS, 2);
	ok(rc == 0 && run_close(&r) == 0, "no loss counter: written");
	m = meta(dir, "n.pcap");
	ok(m != NULL && jint(m, "packets") == 4 &&
	    json_object_get(m, "lost_before") == NULL &&
	    json_object_get(m, "lost_within") == NULL,
	    "no loss counter: one file, no lost_* fields");
	json_decref(m);
	env.loss = &loss;
}

static void
test_config(void)
{
	struct run r;
	int rc;

	rc = run_open(&r, &weir_mod_pcap, "{\"path\":\"x.pcap\",\"rotate\":"
	    "{\"on_loss\":1}}");
	ok(rc < 0 && strstr(r.err.msg, "on_loss") != NULL,
	    "on_loss must be a boolean: '%s'", r.err.msg);
	json_decref(r.conf);
}

int
main(void)
{
	char cmd[512];

	snprintf(tmp, sizeof(tmp), "/tmp/weir-lossrot.XXXXXX");
	if (mkdtemp(tmp) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	env.exp_name = "lossrot";
	env.ifaces = &ifaces;
	env.loss = &loss;
	weir_iface_add(&ifaces, 0, WEIR_LT_EN10MB, 65535, 9, "eth0");

	test_config();
	test_on_loss(&weir_mod_pcap, "pcap");
	test_on_loss(&weir_mod_pcapng, "pcapng");
	test_pcapng_tools();
	test_off();
	test_order();
	test_no_counter();

	if (tap_failed == 0 && getenv("WEIR_KEEP") == NULL) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
		if (system(cmd) != 0)
			printf("# could not remove %s\n", tmp);
	} else
		printf("# files kept in %s\n", tmp);
	return tap_done();
}
