/*
 * bpfcache.h - one BPF expression compiled per link type, for the filter
 * and direction stages.
 *
 * libpcap compiles an expression for one data link type, but one
 * pipeline may see several (pcapng interfaces, several inputs).  A cache
 * holds the expression and one program per link type seen so far.  A
 * link type is compiled the first time a packet of that type arrives
 * (open() pre-compiles those of the known interfaces, so normally this
 * never happens in the packet path).  A link type on which the expression
 * does not compile ("ether host" on raw IP) is remembered as such and
 * logged once.
 *
 * The semantics are those of `tcpdump -r FILE EXPR`: optimised program,
 * netmask 0 (what tcpdump uses for files, so "ip broadcast" works), run
 * by libpcap's bpf_filter() on (data, wirelen, caplen).
 *
 * Ownership: the cache owns a copy of the expression and every program;
 * bpfcache_free() releases them.  Not thread-safe: one cache per stage
 * instance.
 */
#ifndef WEIR_STAGES_BPFCACHE_H
#define WEIR_STAGES_BPFCACHE_H

#include <stdint.h>

#include <pcap/pcap.h>

#include "weir/err.h"
#include "weir/pkt.h"

#define BPFCACHE_MAXLT		16	/* link types per expression */
#define BPFCACHE_SNAPLEN	262144

enum {
	BPFC_OK = 1,		/* prog is valid */
	BPFC_NOFILTER,		/* does not compile for this link type */
};

struct bpfcache_ent {
	uint16_t		linktype;	/* LINKTYPE_* as in weir_pkt */
	uint8_t			state;		/* BPFC_* */
	struct bpf_program	prog;
};

struct bpfcache {
	char			*expr;		/* owned copy */
	const char		*mod;		/* for messages, static */
	const char		*key;		/* config key, static */
	int			 all;		/* expr is empty: accept all */
	int			 full;		/* cache full was logged */
	unsigned		 last;		/* entry of the last lookup */
	unsigned		 n;
	struct bpfcache_ent	 e[BPFCACHE_MAXLT];
};

/*
 * Compile expr for Ethernet to catch syntax errors at check() time.
 * Error: "<mod>: bad expression '<expr>' in '<key>': <libpcap text>".
 */
int	bpfcache_check(const char *mod, const char *key, const char *expr,
	    struct weir_err *err);

/*
 * Initialise c for expr and compile it for every link type in ifaces
 * (may be NULL).  Returns 0 or -ENOMEM.
 */
int	bpfcache_init(struct bpfcache *c, const char *mod, const char *key,
	    const char *expr, const struct weir_ifaces *ifaces,
	    struct weir_err *err);

/*
 * Run the expression on p: 1 match, 0 no match, -1 the expression has no
 * program for p's link type (or the cache is full).
 */
int	bpfcache_match(struct bpfcache *c, const struct weir_pkt *p);

void	bpfcache_free(struct bpfcache *c);

/* The libpcap DLT_* value for a LINKTYPE_* value. */
int	bpfcache_dlt(uint16_t linktype);
/*
 * Compile expr for DLT dlt (optimised, or unoptimised when the optimiser
 * proves it rejects everything); 0, -ENOMEM or -WEIR_ECONFIG with
 * libpcap's reason in ebuf.
 */
int	bpfcache_compile(int dlt, const char *expr, struct bpf_program *prog,
	    char *ebuf, size_t elen);

#endif
