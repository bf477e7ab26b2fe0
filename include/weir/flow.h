/*
 * flow.h - the flow table: bidirectional flows (RFC 5103 biflows) under
 * a hard memory bound.
 *
 * Each consumer (the IPFIX output, the per-flow pcap output...) owns its
 * own table with its own timeouts.  All memory is allocated at
 * weir_flowtab_new(): max_flows entries (each with user_size bytes for
 * the consumer) and the hash index.  When the table is full a new flow
 * evicts the least recently seen one (reason LACK_OF_RESOURCES, counted),
 * so a SYN flood or a scan cannot grow memory past the bound.
 *
 * Time is packet time (ns).  Expiry callbacks run from
 * weir_flowtab_packet() (a flow ended by FIN/RST, or an eviction),
 * weir_flowtab_tick() (idle and active timeouts) and weir_flowtab_flush()
 * (end of input).  A flow pointer is valid until its expiry callback
 * returns with a reason that ends it.
 *
 * (flow table, src/lib/flow/table.c; details in docs/flows.md)
 * - A flow that a packet ends (RST, the ACK of the last FIN) is expired
 *   at the start of the next call on the table, so the pointer that
 *   weir_flowtab_packet() returns stays valid until that next call.
 * - The callback must not call into the same table.
 * - After an active-timeout record the flow goes on with zeroed counts;
 *   if no packet comes before it ends, its final record has
 *   pkts[0] + pkts[1] == 0 (exporters skip it; it still tells per-flow
 *   consumers that the flow is gone).
 * - idle_ns 0: no idle timeout.  weir_flowtab_free() runs no callbacks:
 *   flush first.
 */
#ifndef WEIR_FLOW_H
#define WEIR_FLOW_H

#include <stddef.h>
#include <stdint.h>

#include "weir/err.h"
#include "weir/module.h"
#include "weir/pkt.h"

/* flowEndReason (IPFIX IE 136) values. */
enum weir_flow_end {
	WEIR_FLOW_END_NONE = 0,
	WEIR_FLOW_END_IDLE = 1,		/* idleTimeout */
	WEIR_FLOW_END_ACTIVE = 2,	/* activeTimeout: record exported,
					   the flow goes on with fresh counts */
	WEIR_FLOW_END_EOF = 3,		/* endOfFlowDetected: FIN both ways, RST */
	WEIR_FLOW_END_FORCED = 4,	/* forcedEnd: end of input, shutdown */
	WEIR_FLOW_END_LACK = 5,		/* lackOfResources: evicted early */
};

/*
 * The key.  Endpoint 0 is the initiator: the source of the first packet
 * seen.  Lookup is direction-independent.  family 0 is never a flow.
 */
struct weir_flow_key {
	uint8_t		addr[2][16];	/* IPv4 in the first 4 bytes */
	uint16_t	port[2];	/* TCP/UDP/SCTP ports; ICMP: 0 and
					   type << 8 | code in port[1] (the
					   initiator's message; echo request
					   and reply are one flow, told apart
					   from other pings by the ICMP id,
					   which is matched, not stored) */
	uint16_t	vlan;		/* outermost VLAN id, 0 if none */
	uint8_t		proto;
	uint8_t		family;		/* 4 or 6 */
};

struct weir_flow {
	struct weir_flow_key key;
	uint64_t	id;		/* unique in the table, increasing */
	uint64_t	start[2];	/* first packet each way (ns); 0 if none */
	uint64_t	end[2];		/* last packet each way (ns) */
	uint64_t	pkts[2];	/* [0] initiator -> responder, [1] back */
	uint64_t	bytes[2];	/* IP bytes (octetDeltaCount semantics:
					   the IP total length of each packet) */
	uint32_t	isn[2];		/* TCP initial sequence number each way */
	uint8_t		tcp_flags[2];	/* union of TCP flags each way */
	uint8_t		dir;		/* enum weir_dir of the first packet */
	uint8_t		end_reason;	/* set when the expiry callback runs */
	uint8_t		state;		/* table-private (FIN seen...) */
	void		*user;		/* user_size bytes for the consumer,
					   zeroed when the flow is created */
};

struct weir_flowtab_conf {
	uint64_t	idle_ns;	/* idle timeout (ns) */
	uint64_t	active_ns;	/* active timeout (ns), 0 = none */
	uint64_t	max_flows;	/* hard bound on concurrent flows */
	uint64_t	max_bytes;	/* if non-zero, also bounds memory:
					   max_flows is lowered to fit */
	size_t		user_size;	/* per-flow bytes for the consumer */
	int		tcp_end;	/* end TCP flows on FIN both ways / RST */
};

/* Called once per record; reason is in f->end_reason. */
typedef void	weir_flow_expire_fn(void *arg, struct weir_flow *f);

struct weir_flowtab;

struct weir_flowtab *weir_flowtab_new(const struct weir_flowtab_conf *c,
		    weir_flow_expire_fn *expire, void *arg,
		    struct weir_err *err);
void		 weir_flowtab_free(struct weir_flowtab *t);

/*
 * Account one decoded packet (the caller has run weir_pkt_decode()).
 * Returns its flow, or NULL when the packet belongs to no flow (not IP:
 * counted).  *rev is set to 1 when the packet goes responder ->
 * initiator, *created to 1 when this packet started the flow.  IP
 * fragments are attributed to the flow of their first fragment.
 */
struct weir_flow *weir_flowtab_packet(struct weir_flowtab *t,
		    const struct weir_pkt *p, int *rev, int *created);
/* Expire flows idle or active too long at time now (ns). */
void		 weir_flowtab_tick(struct weir_flowtab *t, uint64_t now);
/* Expire every flow with reason FORCED. */
void		 weir_flowtab_flush(struct weir_flowtab *t);
/* Counters: flows_created, flows_active, ended_idle, ended_active,
 * ended_eof, ended_forced, evicted, not_flow_packets, frag_attributed,
 * frag_unmatched, memory_bytes, max_flows... */
size_t		 weir_flowtab_stats(const struct weir_flowtab *t,
		    struct weir_counter *c, size_t max);
/* Bytes allocated per flow (entry + user area + index share). */
size_t		 weir_flowtab_entry_bytes(const struct weir_flowtab *t);

#endif
