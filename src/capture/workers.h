/*
 * workers.h - weir-capture --workers N: N threads, each running its own
 * pipeline (struct weir_pipeline) over its own AF_PACKET sockets, all
 * members of one PACKET_FANOUT hash group per interface, so the kernel
 * gives each flow to one worker (docs/live.md "Workers").
 *
 * Ownership: the main thread opens every pipeline (sockets and outputs,
 * before the privilege drop), starts the threads, writes the status
 * lines and closes the pipelines after joining.  A worker thread runs
 * its pipeline and finishes it; it touches nothing of the others.
 *
 * Each worker writes its own files: weir_worker_exp() gives worker i a
 * copy of the experiment where every output "path" and "reply" gets
 * ".w<i>" before its extension (weir_worker_path), every flowpcap "dir"
 * a subdirectory "w<i>", and every IPFIX exporter to a collector the
 * observation domain configured + i.
 */
#ifndef WEIR_WORKERS_H
#define WEIR_WORKERS_H

#include <stddef.h>

#include <jansson.h>

#include "weir/err.h"
#include "weir/priv.h"

#define WEIR_WORKERS_MAX	64

/*
 * Worker i's name for path: ".w<i>" inserted before the extension (the
 * last dot) of its last component, or appended when that component has
 * none or is a dot name (".pcap", ".hidden").  "x.pcap" -> "x.w1.pcap",
 * "d/cap-%Y" -> "d/cap-%Y.w1".  Returns 0 or -ENAMETOOLONG.
 */
int	weir_worker_path(const char *path, unsigned i, char *out,
	    size_t len);

/*
 * Can the effective experiment exp run as n > 1 workers?  0, or
 * -WEIR_ECONFIG with err saying what does not fit (trace or weir-tap
 * inputs, stdout, a control FIFO, one fanout group on two interfaces,
 * an observation domain that would overflow).
 */
int	weir_workers_check(const json_t *exp, unsigned n,
	    struct weir_err *err);

/*
 * Worker i's experiment (new reference): a deep copy with its own
 * outputs (above), "worker": i, and each live input's "fanout" set to
 * fanout[k] (one per input).  NULL on a name too long (err set).
 */
json_t	*weir_worker_exp(const json_t *exp, unsigned i, const int *fanout,
	    struct weir_err *err);

/*
 * Totals of n summaries (new reference): integers and reals summed
 * key by key and element by element, anything else taken from the
 * first; then "workers": the n summaries, each with "worker": i first.
 */
json_t	*weir_workers_total(json_t *const *sums, unsigned n);

struct weir_workers_conf {
	unsigned	 n;
	const struct weir_priv_conf *priv;
	volatile int	*stop;		/* set by SIGINT/SIGTERM */
	volatile int	*status_req;	/* set by SIGUSR1 */
	int		 status_fd;	/* -1: no periodic lines */
	long long	 status_iv;	/* seconds, < 0: default 1 */
};

/*
 * Open n pipelines over exp (privileges must be prepared), drop
 * privileges, run every worker to its end, finish and close.  Returns
 * the total summary (weir_workers_total), or NULL when nothing ran;
 * *status is the exit status (0, 1 runtime, 2 configuration).
 */
json_t	*weir_workers_run(json_t *exp, const struct weir_workers_conf *c,
	    int *status);

#endif
