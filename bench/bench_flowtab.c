/*
 * bench_flowtab.c - flow table microbenchmark, one core.
 *
 * Build (from the repository root, optimised, no sanitizers):
 *   cc -std=c11 -D_GNU_SOURCE -O2 -I. -Iinclude -Isrc bench/bench_flowtab.c \
 *       src/lib/flow/table.c src/lib/pkt/decode.c src/lib/pkt/iface.c \
 *       src/lib/log.c src/lib/conf/confutil.c src/lib/fmt/input.c \
 *       src/lib/fmt/rbuf.c src/lib/fmt/pcap_read.c \
 *       src/lib/fmt/pcapng_read.c src/lib/fmt/erf_read.c \
 *       -o build/bench_flowtab -lpcap -lcrypto -ljansson -lzstd -lm
 *
 * Usage: bench_flowtab [TRACE [MAX_FLOWS [RUNS]]]
 *   TRACE defaults to /dev/shm/x.pcap, made by
 *   tools/gentrace.py --packets 1000000 --seed 1 --out /dev/shm/x.pcap
 *
 * The trace is read once into memory with the library's readers; then
 * each run times, on the same packets: decode alone, and, as the
 * pipeline runs, batches of 256 packets decoded then accounted by
 * weir_flowtab_packet() with a tick after each batch and a final
 * flush (idle 15 s, active 1800 s, TCP end on: YAF's defaults), and
 * the flow table alone on the packets decoded by that pass.  The
 * median of RUNS (default 5) is printed, in packets per CPU second of
 * this thread.  Each run makes a fresh table, so its first-touch page
 * faults are in the figures.  Memory per active flow
 * is printed twice: as allocated (weir_flowtab_entry_bytes: entry, user
 * area, index share) and as measured (growth of anonymous resident
 * memory over the run, divided by the peak number of flows).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "weir/decode.h"
#include "weir/flow.h"
#include "weir/input.h"

#define MAXRUNS	32
#define BATCH	256

struct sinkc {
	uint64_t	records, pkts;
};

static void
on_expire(void *arg, struct weir_flow *f)
{
	struct sinkc *s = arg;

	s->records++;
	s->pkts += f->pkts[0] + f->pkts[1];
}

static double
cpu_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static long
anon_kb(void)
{
	FILE	*fp = fopen("/proc/self/statm", "r");
	long	 size, res, shared, kb = -1;

	if (fp == NULL)
		return -1;
	if (fscanf(fp, "%ld %ld %ld", &size, &res, &shared) == 3)
		kb = (res - shared) * (sysconf(_SC_PAGESIZE) / 1024);
	fclose(fp);
	return kb;
}

static int
cmpd(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double
median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmpd);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int
main(int argc, char **argv)
{
	const char		*path = argc > 1 ? argv[1] :
				    "/dev/shm/x.pcap";
	uint64_t		 maxf = argc > 2 ? strtoull(argv[2], NULL, 10) :
				    1000000;
	int			 runs = argc > 3 ? atoi(argv[3]) : 5;
	static struct weir_ifaces ifaces;
	struct weir_input	 in;
	struct weir_err		 err;
	struct weir_pkt		*pk = NULL, batch[1024];
	struct weir_flowtab_conf c;
	struct weir_flowtab	*t;
	struct weir_counter	 cnt[WEIR_MAX_COUNTERS];
	struct sinkc		 s;
	uint8_t			*arena = NULL;
	size_t			 n = 0, cap = 0, used = 0, acap = 0;
	size_t			 i, nc, k;
	size_t			 eb = 0, e;
	double			 tdec[MAXRUNS], tall[MAXRUNS];
	double			 tft[MAXRUNS];
	double			 t0, md, ma, mf;
	uint64_t		 peak = 0, created = 0, evicted = 0;
	long			 kb0, kb1 = 0;
	int			 r, m, j;

	if (runs < 1 || runs > MAXRUNS)
		runs = 5;
	if (weir_input_open(&in, path, 0, &ifaces, &err) < 0) {
		fprintf(stderr, "bench_flowtab: %s\n", err.msg);
		return 1;
	}
	/* the whole trace in one arena, headroom before each packet */
	while ((m = weir_input_next(&in, batch, 1024)) > 0) {
		for (j = 0; j < m; j++) {
			size_t need = WEIR_HEADROOM + batch[j].caplen;

			if (n == cap) {
				cap = cap ? 2 * cap : 65536;
				pk = realloc(pk, cap * sizeof(*pk));
			}
			if (used + need > acap) {
				acap = acap ? 2 * acap : (64u << 20);
				while (acap < used + need)
					acap *= 2;
				arena = realloc(arena, acap);
			}
			pk[n] = batch[j];
			memcpy(arena + used + WEIR_HEADROOM, batch[j].data,
			    batch[j].caplen);
			/* an offset until the arena stops moving */
			pk[n].data = (uint8_t *)(uintptr_t)(used +
			    WEIR_HEADROOM);
			used += need;
			n++;
		}
	}
	if (m < 0) {
		fprintf(stderr, "bench_flowtab: %s\n", in.err.msg);
		return 1;
	}
	weir_input_close(&in);
	if (n == 0 || arena == NULL) {
		fprintf(stderr, "bench_flowtab: '%s' holds no packets\n", path);
		return 1;
	}
	for (i = 0; i < n; i++)
		pk[i].data = arena + (uintptr_t)pk[i].data;

	memset(&c, 0, sizeof(c));
	c.idle_ns = 15ull * 1000000000;
	c.active_ns = 1800ull * 1000000000;
	c.max_flows = maxf;
	c.tcp_end = 1;
	for (r = 0; r < runs; r++) {
		t0 = cpu_s();
		for (i = 0; i < n; i++) {
			pk[i].decoded = 0;
			weir_decode(&pk[i]);
		}
		tdec[r] = cpu_s() - t0;

		memset(&s, 0, sizeof(s));
		kb0 = anon_kb();
		if ((t = weir_flowtab_new(&c, on_expire, &s, &err)) == NULL) {
			fprintf(stderr, "bench_flowtab: %s\n", err.msg);
			return 1;
		}
		/* as the pipeline does: decode a batch, then account it */
		t0 = cpu_s();
		for (i = 0; i < n; i = e) {
			e = i + BATCH < n ? i + BATCH : n;
			for (k = i; k < e; k++) {
				pk[k].decoded = 0;
				weir_decode(&pk[k]);
			}
			for (k = i; k < e; k++)
				(void)weir_flowtab_packet(t, &pk[k], NULL,
				    NULL);
			weir_flowtab_tick(t, pk[e - 1].ts);
		}
		kb1 = anon_kb() - kb0;
		weir_flowtab_flush(t);
		tall[r] = cpu_s() - t0;
		nc = weir_flowtab_stats(t, cnt, WEIR_MAX_COUNTERS);
		for (k = 0; k < nc; k++) {
			if (strcmp(cnt[k].name, "peak_flows") == 0)
				peak = cnt[k].value;
			else if (strcmp(cnt[k].name, "flows_created") == 0)
				created = cnt[k].value;
			else if (strcmp(cnt[k].name, "evicted") == 0)
				evicted = cnt[k].value;
		}
		eb = weir_flowtab_entry_bytes(t);
		weir_flowtab_free(t);

		/* the table alone, on packets decoded above */
		if ((t = weir_flowtab_new(&c, on_expire, &s, &err)) == NULL) {
			fprintf(stderr, "bench_flowtab: %s\n", err.msg);
			return 1;
		}
		memset(&s, 0, sizeof(s));
		t0 = cpu_s();
		for (i = 0; i < n; i++) {
			(void)weir_flowtab_packet(t, &pk[i], NULL, NULL);
			if (i % BATCH == BATCH - 1)
				weir_flowtab_tick(t, pk[i].ts);
		}
		weir_flowtab_flush(t);
		tft[r] = cpu_s() - t0;
		weir_flowtab_free(t);
		if (s.pkts != n) {
			fprintf(stderr, "bench_flowtab: %llu packets in "
			    "records, %zu in the trace\n",
			    (unsigned long long)s.pkts, n);
			return 1;
		}
	}
	md = median(tdec, runs);
	ma = median(tall, runs);
	mf = median(tft, runs);
	printf("trace: %s, %zu packets, %llu flows (peak %llu active, "
	    "%llu evicted), %llu records\n", path, n,
	    (unsigned long long)created, (unsigned long long)peak,
	    (unsigned long long)evicted, (unsigned long long)s.records);
	printf("decode only:          %7.2f Mpps (%.1f ns/packet)\n",
	    n / md / 1e6, md / n * 1e9);
	printf("decode + flow table:  %7.2f Mpps (%.1f ns/packet; the "
	    "table's share %.1f ns)\n", n / ma / 1e6, ma / n * 1e9,
	    (ma - md) / n * 1e9);
	printf("flow table alone:     %7.2f Mpps (%.1f ns/packet, packets "
	    "decoded beforehand, cold in cache)\n", n / mf / 1e6,
	    mf / n * 1e9);
	printf("memory per active flow: %zu bytes allocated, %.0f bytes "
	    "resident (%ld KiB over %llu flows)\n",
	    eb, peak ?
	    kb1 * 1024.0 / (double)peak : 0.0, kb1,
	    (unsigned long long)peak);
	free(pk);
	free(arena);
	return 0;
}
