/*
 * flowpcap_writer.h - the publishing side of the flowpcap output
 * (flowpcap.c): a writer that creates, writes, compresses and renames
 * the per-flow files of ended flows and appends their index lines, in a
 * thread of its own (or inline when no thread can be started or the
 * configuration asks for none).  docs/flows.md, "Writer thread".
 *
 * Ownership.  The pipeline thread (flowpcap.c) owns the flow table, the
 * chunk pool's free list and the stream files still being written; it
 * fills a job for each ended flow in the ring (fpw_job_slot), hands it
 * over (fpw_job_commit) and never touches the job, its chunk chain or
 * its descriptor again.  The writer owns its own day directories, index
 * descriptors, compressor and buffers.  When a job is done its chunks
 * go on a returned list the pipeline takes back (fpw_reclaim).  The
 * ring has a fixed length: a full ring makes the pipeline wait
 * (back-pressure, counted), nothing is dropped for it.  Counters and
 * the first error are shared under the writer's mutex.
 */
#ifndef WEIR_FLOWPCAP_WRITER_H
#define WEIR_FLOWPCAP_WRITER_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "weir/flow.h"

#define FPW_NONE	UINT32_MAX	/* end of a chunk chain */
#define FPW_PCAP_HDR	16
#define FPW_FILE_HDR	24

/* struct fpw_job.flags */
#define FJ_FILE		0x1	/* .UUID.pcap.part exists */
#define FJ_FAILED	0x2	/* a write to it failed: publish as is */

/* Chunk header, at the start of every chunk of the pool. */
struct fpw_chunk {
	uint32_t	next;
	uint32_t	used;
};

/*
 * One ended flow to publish.  Filled by the pipeline; the chain
 * (head..., FPW_NONE-terminated) and fd (-1: none open) are the
 * writer's from commit on.
 */
struct fpw_job {
	struct weir_flow_key key;
	uint8_t		uuid[16];
	uint64_t	first_ts, last_ts;
	uint64_t	pkts[2], bytes[2];
	uint64_t	file_size;	/* bytes already in the hidden file */
	uint64_t	written;	/* packets already in it */
	uint64_t	skipped, lt_dropped, missed;
	uint32_t	head;		/* records still in memory */
	uint32_t	pending;	/* their bytes */
	uint32_t	npending;	/* their packets */
	uint32_t	nchunks;	/* chunks in the chain */
	int		fd;
	uint16_t	linktype;
	uint8_t		flags;
	uint8_t		end_reason;
};

struct fpw_conf {
	uint8_t		*pool;
	size_t		 csize;
	uint32_t	 snap;
	int		 nano, compress, clevel, index;
	int		 thread;	/* start a writer thread */
	uint32_t	 queue;		/* ring length */
	int		 dirfd;		/* top directory, not owned */
};

/* Counters of the writer, summed into the module's stats. */
struct fpw_stats {
	uint64_t	done_packets;	/* of done jobs: written+missed */
	uint64_t	written, written_bytes, missed;
	uint64_t	files, write_errors, publish_errors, index_errors;
	uint64_t	jobs, queue_peak, waits_full, waits_memory;
	uint64_t	index_writes;
	uint64_t	tmpfile;	/* files created with O_TMPFILE */
	int		threaded;	/* a thread was started */
};

struct fpw;

int	fpw_new(struct fpw **, const struct fpw_conf *, char *, size_t);
void	fpw_free(struct fpw *);

/* The next free job (waits while the ring is full); then commit it. */
struct fpw_job *fpw_job_slot(struct fpw *);
void	fpw_job_commit(struct fpw *);

/*
 * Take back the chunks of finished jobs: *head is a chain to put on the
 * free list (its tail in *tail), the return value its length.
 */
uint32_t fpw_reclaim(struct fpw *, uint32_t *, uint32_t *);
uint32_t fpw_queued(struct fpw *);	/* jobs not finished */
void	fpw_wait(struct fpw *);		/* until a job finishes */
void	fpw_idle(struct fpw *);		/* end of a batch */
void	fpw_drain(struct fpw *);	/* every job done, thread gone */
void	fpw_stats(struct fpw *, struct fpw_stats *, char *, size_t);

void	fpw_note_error(struct fpw *, const char *, ...)
    __attribute__((format(printf, 2, 3)));

/* Helpers shared with flowpcap.c. */
void	fpw_uuid_str(const uint8_t *, char *);
void	fpw_hidden_name(const uint8_t *, char *, size_t, int);
void	fpw_file_header(uint8_t *, int, uint32_t, uint16_t);
int	fpw_writev_all(int, struct iovec *, int);
int	fpw_day_path(int, int64_t, char *, size_t, int *);

#endif
