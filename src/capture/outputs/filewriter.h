/*
 * filewriter.h - the machinery shared by the trace file outputs (pcap,
 * pcapng): file names from a template, a hidden file published by
 * rename() only when complete, rotation, zstd compression of closed
 * files, SHA-256, metadata sidecars (JSON and XML) and retention.
 * docs/outputs.md describes the behaviour users see.
 *
 * A format module drives one writer like this, for every packet:
 *
 *	reason = weir_fw_due(fw, p->ts, reclen);
 *	if (reason != 0) {
 *		weir_fw_write(fw, iov, niov);	(what is pending)
 *		weir_fw_rotate(fw, reason);
 *		(reset the format's per-file state)
 *	}
 *	(lay down the record, remember its bytes in iov)
 *	weir_fw_add(fw, p->ts, caplen, wirelen, reclen);
 *
 * and at the end of the batch weir_fw_write(fw, iov, niov), where the
 * iovecs hold exactly the bytes announced by weir_fw_add() and
 * weir_fw_add_extra() since the last write.  Files are opened lazily by
 * the first write, so a period without packets leaves no file.
 *
 * The header callback returns the bytes that open a file; it is called
 * when a file starts and again if a write error moves the pending data
 * to a fresh file (rotate.on_error), so it must describe exactly what
 * the pending data relies on (pcapng: the SHB and the interface blocks
 * already written).  Its buffer belongs to the format and must stay
 * valid until the next call into the writer.
 *
 * Nothing here is thread-safe; one writer belongs to one output.
 */
#ifndef WEIR_FILEWRITER_H
#define WEIR_FILEWRITER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include <jansson.h>

#include "weir/err.h"
#include "weir/module.h"

/* Why a file was closed; recorded in its metadata. */
enum weir_fw_reason {
	WEIR_FW_NONE = 0,
	WEIR_FW_SIZE,
	WEIR_FW_PACKETS,
	WEIR_FW_TIME,
	WEIR_FW_SIGNAL,
	WEIR_FW_ERROR,
	WEIR_FW_END,
	WEIR_FW_LOSS,		/* the capture lost packets (on_loss) */
};

struct weir_fw_ops {
	/* Bytes that open every file (file header, SHB...). */
	int	(*header)(void *arg, const void **buf, size_t *len);
	/* Add format fields (and "drops") to a metadata document; optional. */
	void	(*meta)(void *arg, json_t *doc);
};

struct weir_filewriter;

/*
 * Validate and normalise the keys the writer owns ("path", "rotate",
 * "compress", "compress_level", "fsync", "metadata") in conf, filling
 * in defaults.  mod names the module in messages.
 */
int	weir_fw_check(json_t *conf, const char *mod, struct weir_err *err);

/* Keys weir_fw_check() owns, for weir_conf_known() lists. */
#define WEIR_FW_KEYS	"path", "rotate", "compress", "compress_level", \
			"fsync", "metadata"

/*
 * Create a writer for a checked conf.  format is the file format named
 * in the metadata ("pcap"); env must outlive the writer.
 */
int	weir_fw_open(struct weir_filewriter **fwp, const char *mod,
	    const char *format, const json_t *conf,
	    const struct weir_env *env, const struct weir_fw_ops *ops,
	    void *arg, struct weir_err *err);

/*
 * Must the current file be closed before a record of reclen bytes with
 * timestamp ts?  Returns a reason, or WEIR_FW_NONE.
 */
int	weir_fw_due(struct weir_filewriter *fw, uint64_t ts, size_t reclen);

/* Announce one pending record (reclen: its bytes in the file). */
void	weir_fw_add(struct weir_filewriter *fw, uint64_t ts, uint32_t caplen,
	    uint32_t wirelen, size_t reclen);
/* Announce pending bytes that are not a record (pcapng IDB). */
void	weir_fw_add_extra(struct weir_filewriter *fw, size_t len);

/*
 * Write the pending bytes (the header first if the file is new).
 * Returns 0 when written, a positive count of packets that had to be
 * dropped after a write error (rotate.on_error: the error was logged
 * and counted, the output goes on), or a negative error that must stop
 * the pipeline (on_error off).  Either way nothing is pending after.
 */
int	weir_fw_write(struct weir_filewriter *fw, const struct iovec *iov,
	    int niov);

/*
 * Close and publish the current file, if any, for reason.  Nothing may
 * be pending.  Returns 0 or a negative error (already logged).
 */
int	weir_fw_rotate(struct weir_filewriter *fw, int reason);

/*
 * Time is now (ns, packet time): returns a reason if the current file's
 * period is over or a rotation was requested, so the format writes its
 * pending bytes and calls weir_fw_rotate().
 */
int	weir_fw_tick_due(struct weir_filewriter *fw, uint64_t now);

/* Is a logical file open (records added since the last rotation)? */
int	weir_fw_active(const struct weir_filewriter *fw);

/* Packets lost to write errors so far. */
uint64_t weir_fw_dropped(const struct weir_filewriter *fw);

/*
 * Add the writer's counters ("written", "written_bytes", "files",
 * "write_errors", "dropped_write_error"...) to c[n..max); returns the
 * new count.
 */
size_t	weir_fw_stats(const struct weir_filewriter *fw, struct weir_counter *c,
	    size_t n, size_t max);

/*
 * Publish the last file (reason "end") and free the writer.  Returns 0,
 * or a negative error with err set when packets were lost or a file
 * could not be published during the writer's life.
 */
int	weir_fw_close(struct weir_filewriter *fw, struct weir_err *err);
/* End of input: publish the last file (or an empty one); idempotent. */
int	weir_fw_finish(struct weir_filewriter *fw, struct weir_err *err);

/*
 * Ask every file writer of the process to close its current file at
 * its next packet or tick (reason "signal").  Async-signal-safe: meant
 * for a SIGHUP handler.
 */
int	weir_filewriter_request_rotate(void);

/* "2024-01-02T03:04:05.123456789Z"; buf of at least 40 bytes. */
void	weir_fw_rfc3339(uint64_t ns, char *buf, size_t len);

#endif
