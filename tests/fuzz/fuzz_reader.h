/*
 * fuzz_reader.h - shared driver of the reader fuzz targets (fuzz_pcap.c,
 * fuzz_pcapng.c, fuzz_erf.c).  Each input is put in a memfd and read
 * twice: once through weir_input_open_fd() (format probing included) and
 * once with the target's reader forced, so mutations that break the magic
 * still reach the parser.  Checked on every packet: caplen <= wirelen,
 * every data byte readable (ASan), and the WEIR_HEADROOM bytes before
 * each packet writable without changing any packet of the batch.  A
 * reader that neither advances nor stops is a hang: abort.
 */
#ifndef WEIR_FUZZ_READER_H
#define WEIR_FUZZ_READER_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "weir/input.h"
#include "weir/log.h"
#include "weir/pkt.h"

#define FUZZ_BATCH	16

static struct weir_pkt fuzz_pkts[FUZZ_BATCH];
static struct weir_ifaces fuzz_ifaces;

static uint64_t
fuzz_hash(const uint8_t *p, uint32_t n)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	while (n-- > 0)
		h = (h ^ *p++) * 0x100000001b3ULL;
	return h;
}

static int
fuzz_memfd(const uint8_t *data, size_t size)
{
	int fd = memfd_create("fuzz", MFD_CLOEXEC);

	if (fd < 0)
		abort();
	if (size > 0 && write(fd, data, size) != (ssize_t)size)
		abort();
	if (lseek(fd, 0, SEEK_SET) != 0)
		abort();
	return fd;
}

static void
fuzz_drain(struct weir_input *in, size_t size)
{
	uint64_t h[FUZZ_BATCH];
	size_t calls = 0;
	unsigned max = 1;
	int n, i;

	for (;;) {
		if (++calls > size + 8)
			abort();	/* no progress: a hang */
		n = weir_input_next(in, fuzz_pkts, max);
		if (n <= 0) {
			if (n < 0 && in->err.msg[0] == '\0')
				abort();	/* errors must say why */
			break;
		}
		if ((unsigned)n > max)
			abort();
		for (i = 0; i < n; i++) {
			if (fuzz_pkts[i].caplen > fuzz_pkts[i].wirelen)
				abort();
			h[i] = fuzz_hash(fuzz_pkts[i].data,
			    fuzz_pkts[i].caplen);
		}
		for (i = 0; i < n; i++)
			memset(fuzz_pkts[i].data - WEIR_HEADROOM, 0xa5,
			    WEIR_HEADROOM);
		for (i = 0; i < n; i++)
			if (fuzz_hash(fuzz_pkts[i].data,
			    fuzz_pkts[i].caplen) != h[i])
				abort();
		/* Vary the batch size to move the refill points. */
		max = max % FUZZ_BATCH + 1;
	}
}

static void
fuzz_reader(const struct weir_input_ops *ops, const uint8_t *data,
    size_t size)
{
	struct weir_input in;
	struct weir_err err;

	weir_log_level = -1;	/* quiet: lenfix warnings */

	fuzz_ifaces.n = 0;
	memset(&err, 0, sizeof(err));
	if (weir_input_open_fd(&in, fuzz_memfd(data, size), "fuzz", 0,
	    &fuzz_ifaces, &err) == 0) {
		fuzz_drain(&in, size);
		weir_input_close(&in);
	} else if (err.msg[0] == '\0')
		abort();

	/* The same bytes straight into this reader. */
	fuzz_ifaces.n = 0;
	memset(&in, 0, sizeof(in));
	in.fd = fuzz_memfd(data, size);
	in.ifaces = &fuzz_ifaces;
	in.cap = 64 << 10;	/* size hint for the first fill */
	snprintf(in.path, sizeof(in.path), "fuzz");
	in.ops = ops;
	if (ops->open(&in) == 0)
		fuzz_drain(&in, size);
	weir_input_close(&in);
}

#endif
