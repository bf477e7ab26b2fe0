/*
 * input.h - trace file readers behind one small vtable.
 *
 * A reader fills an array of struct weir_pkt whose data point into the
 * reader's own buffer.  The buffer is only refilled at the start of the
 * next next_batch() call, so a batch stays valid until then.  Readers
 * leave WEIR_HEADROOM writable bytes before each packet's data that
 * overlap no other packet of the batch (see pkt.h); every format we read
 * gives them without a copy (docs/readers.md).
 *
 * Errors carry the file name and the byte offset of the bad record:
 *   "file 'x.pcap': offset 2715456: record header cut short ..."
 * Packets before a bad record are returned first; the error comes from
 * the following call.
 */
#ifndef WEIR_INPUT_H
#define WEIR_INPUT_H

#include <stddef.h>
#include <stdint.h>

#include "weir/err.h"
#include "weir/pkt.h"

struct weir_input;
struct rbuf_ra;

struct weir_input_ops {
	const char	*name;		/* "pcap", "pcapng", "erf" */
	/* Does this magic (the first n >= 4 bytes) look like our format? */
	int		(*probe)(const uint8_t *magic, size_t n);
	/* Read the file header; register interfaces known so far. */
	int		(*open)(struct weir_input *in);
	/*
	 * Fill up to max packets.  Returns the count (> 0), 0 at a clean
	 * end of file, or a negative error with in->err set.
	 */
	int		(*next_batch)(struct weir_input *in,
			    struct weir_pkt *pkts, unsigned max);
	void		(*close)(struct weir_input *in);
};

struct weir_input {
	const struct weir_input_ops *ops;
	char		 path[256];
	int		 fd;
	unsigned	 index;		/* position on the command line */
	struct weir_ifaces *ifaces;	/* shared table to register into */

	/* Read buffer, managed by the helpers below. */
	uint8_t		*buf;		/* WEIR_HEADROOM bytes before base */
	uint8_t		*base;		/* first byte held */
	size_t		 cap;		/* bytes available at base */
	size_t		 len;		/* bytes held at base */
	size_t		 pos;		/* next unparsed byte */
	uint64_t	 file_off;	/* file offset of base[0] */
	int		 eof;		/* read() returned 0 */

	uint64_t	 pkts;		/* packets returned */
	uint64_t	 bytes;		/* captured bytes returned */
	uint64_t	 skipped;	/* packet records of a type we do not
					   read (ERF ATM...), not returned */
	uint64_t	 lenfix;	/* records with caplen > wirelen,
					   returned with wirelen = caplen */
	uint64_t	 lost;		/* losses the file reports (ERF lctr) */
	struct weir_err	 err;
	void		*priv;		/* format state */
	struct rbuf_ra	*ra;		/* read-ahead thread, or NULL */
};

/* Registry of readers, in probe order. */
extern const struct weir_input_ops *const weir_input_formats[];

/*
 * Open path (or "-" for stdin), detect its format and read its header.
 * On failure returns a negative code with err->msg naming the file.
 */
int	weir_input_open(struct weir_input *in, const char *path,
	    unsigned index, struct weir_ifaces *ifaces, struct weir_err *err);
/*
 * The same on an open descriptor (fuzzers, pipes); name is used in
 * messages.  The input owns fd from then on, also when this fails, and
 * closes it unless it is 0, 1 or 2.
 */
int	weir_input_open_fd(struct weir_input *in, int fd, const char *name,
	    unsigned index, struct weir_ifaces *ifaces, struct weir_err *err);
int	weir_input_next(struct weir_input *in, struct weir_pkt *pkts,
	    unsigned max);
void	weir_input_close(struct weir_input *in);

/*
 * Buffer helpers for readers (src/lib/fmt/rbuf.c).
 *
 * weir_rbuf_avail(): bytes held from pos.
 * weir_rbuf_fill(): move unparsed bytes to the front and read until at
 * least need bytes are held from pos (growing the buffer up to
 * WEIR_RBUF_MAX) or end of file.  Returns bytes held from pos, or -errno.
 * Calling it invalidates every pointer into the buffer.
 */
#define WEIR_RBUF_SIZE	(1u << 20)
#define WEIR_RBUF_MAX	(64u << 20)
static inline size_t
weir_rbuf_avail(const struct weir_input *in)
{
	return in->len - in->pos;
}
long	weir_rbuf_fill(struct weir_input *in, size_t need);
/*
 * Read-ahead: a thread reads the next WEIR_RBUF_SIZE bytes of the file
 * into a second buffer while the pipeline works on the first, and
 * weir_rbuf_fill() swaps the two (copying only the unparsed tail).  For
 * large regular files, where the kernel copy of read() is a good part of
 * a plain copy's cost.  Call once the format header is read, when no
 * pointer into the buffer is held; returns 0 if started, 1 if not worth
 * it (small file, pipe), or a negative code.  weir_rbuf_stop() joins the
 * thread and frees its buffer (input close does it).
 */
int	weir_rbuf_readahead(struct weir_input *in);
void	weir_rbuf_stop(struct weir_input *in);
/* Current file offset of in->base[in->pos]. */
static inline uint64_t
weir_rbuf_off(const struct weir_input *in)
{
	return in->file_off + in->pos;
}

#endif
