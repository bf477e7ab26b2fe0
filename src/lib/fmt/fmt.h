/*
 * fmt.h - helpers shared by the trace readers (private to src/lib/fmt).
 *
 * Loads are memcpy based: record headers sit at any alignment in the
 * read buffer.  Callers check bounds before every load.
 */
#ifndef WEIR_FMT_H
#define WEIR_FMT_H

#include <stdarg.h>
#include <stdint.h>
#include <string.h>

#include "weir/err.h"
#include "weir/input.h"

/*
 * Largest captured length we accept in one record.  Anything above is
 * a corrupt header (libpcap's own limit is 256 KiB), and refusing it
 * keeps a hostile file from making the read buffer grow without end.
 */
#define FMT_MAX_CAPLEN		(16u << 20)
/* Largest pcapng block: a maximal packet plus generous options. */
#define FMT_MAX_BLOCK		(FMT_MAX_CAPLEN + (1u << 20))

extern const struct weir_input_ops weir_fmt_pcap;
extern const struct weir_input_ops weir_fmt_pcapng;
extern const struct weir_input_ops weir_fmt_erf;

static inline uint16_t
fmt_ld16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static inline uint32_t
fmt_ld32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static inline uint64_t
fmt_ld64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

/* Host-order load, byte swapped when the file's order differs. */
static inline uint16_t
fmt_rd16(const uint8_t *p, int swap)
{
	uint16_t v = fmt_ld16(p);

	return swap ? __builtin_bswap16(v) : v;
}

static inline uint32_t
fmt_rd32(const uint8_t *p, int swap)
{
	uint32_t v = fmt_ld32(p);

	return swap ? __builtin_bswap32(v) : v;
}

static inline uint64_t
fmt_rd64(const uint8_t *p, int swap)
{
	uint64_t v = fmt_ld64(p);

	return swap ? __builtin_bswap64(v) : v;
}

/*
 * Set in->err to "file 'path': offset N: <what>" and return code.
 * Defined in input.c.
 */
int	fmt_errat(struct weir_input *in, int code, uint64_t off,
	    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/*
 * Make need bytes available at in->pos (refilling when short).
 * Returns 0, or a negative code with in->err set: -WEIR_ETRUNC naming
 * the offset and what when the file ends first, -errno on read errors.
 * A clean end (no byte at all held, wanting a new record) is reported
 * as WEIR_EOF (positive) so the caller can return 0.
 */
int	fmt_need(struct weir_input *in, size_t need, const char *what);

/* Base name of a path, for interface names. */
const char *fmt_basename(const char *path);

#endif
