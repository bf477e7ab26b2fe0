/*
 * pkt.h - the packet as it travels through the pipeline, and the batch.
 *
 * Ownership: a packet's data points into its input's read buffer (or a
 * scratch area of the input).  It is valid, and writable by stages, until
 * the input is asked for its next batch.  Readers guarantee at least
 * WEIR_HEADROOM bytes before every packet's data that overlap no other
 * packet's data (they hold the packet's own record header, a previous
 * block's trailer or the buffer's spare front).  The pcap writer reads
 * them: when they already are the record header it would write, the
 * record is written in place, as one contiguous span with its
 * neighbours (see outputs/pcap.c).  Outputs never write into packet
 * memory.  16 is what classic pcap gives: its record header is 16 bytes.
 * Nothing may keep a pointer into a packet after its packet() call
 * returns: copy what you keep.
 */
#ifndef WEIR_PKT_H
#define WEIR_PKT_H

#include <stdint.h>

#define WEIR_HEADROOM		16
#define WEIR_MAX_LAYERS		24
#define WEIR_BATCH_MAX		1024
#define WEIR_MAX_IFACES		256

/* Link types we decode (values are LINKTYPE_* of pcap/pcapng). */
#define WEIR_LT_NULL		0	/* BSD loopback, host byte order AF */
#define WEIR_LT_EN10MB		1
#define WEIR_LT_RAW		101
#define WEIR_LT_LOOP		108	/* OpenBSD loopback, network order AF */
#define WEIR_LT_LINUX_SLL	113
#define WEIR_LT_IPV4		228
#define WEIR_LT_IPV6		229
#define WEIR_LT_LINUX_SLL2	276

enum weir_dir {
	WEIR_DIR_UNKNOWN = 0,
	WEIR_DIR_IN = 1,
	WEIR_DIR_OUT = 2,
};

enum weir_layer_kind {
	WEIR_L_ETH = 1,		/* Ethernet II / 802.3 header */
	WEIR_L_VLAN,		/* one 802.1Q or 802.1ad tag */
	WEIR_L_MPLS,		/* one MPLS label stack entry */
	WEIR_L_SLL,		/* Linux cooked v1 */
	WEIR_L_SLL2,		/* Linux cooked v2 */
	WEIR_L_LOOP,		/* BSD/OpenBSD loopback family word */
	WEIR_L_ARP,		/* ARP for IPv4 over Ethernet */
	WEIR_L_IPV4,		/* IPv4 header including options */
	WEIR_L_IPV6,		/* IPv6 fixed header */
	WEIR_L_IPV6_EXT,	/* one IPv6 extension header (not fragment) */
	WEIR_L_IPV6_FRAG,	/* IPv6 fragment header */
	WEIR_L_TCP,		/* TCP header including options */
	WEIR_L_UDP,
	WEIR_L_ICMP,		/* ICMPv4: 8 byte header */
	WEIR_L_ICMP6,		/* ICMPv6: 8 byte header */
	WEIR_L_GRE,		/* GRE header with its optional fields */
	WEIR_L_ERSPAN,		/* ERSPAN type II/III header */
	WEIR_L_VXLAN,		/* VXLAN 8 byte header */
	WEIR_L_OTHER_L4,	/* an IP payload we do not decode (ESP...) */
};

/* weir_layer.flags */
#define WEIR_LF_QUOTED		0x01	/* inside an ICMP error's quote */
#define WEIR_LF_TRUNC		0x02	/* header extends past caplen */
#define WEIR_LF_FRAG		0x04	/* IP: MF set or offset != 0 */
#define WEIR_LF_LATERFRAG	0x08	/* IP: offset != 0, no L4 header */
#define WEIR_LF_TUNNEL		0x10	/* header of a tunnelled packet */

struct weir_layer {
	uint32_t	off;	/* offset of the header in data */
	uint16_t	len;	/* header length in bytes (may pass caplen
				   only when WEIR_LF_TRUNC is set) */
	uint8_t		kind;	/* enum weir_layer_kind */
	uint8_t		flags;	/* WEIR_LF_* */
};

/* weir_decoded.flags */
#define WEIR_DF_TRUNC		0x01	/* decoding stopped at caplen */
#define WEIR_DF_MALFORMED	0x02	/* a header was inconsistent */
#define WEIR_DF_UNKNOWN		0x04	/* stopped at a protocol we skip */
#define WEIR_DF_TOODEEP		0x08	/* WEIR_MAX_LAYERS reached */
#define WEIR_DF_BADIP		0x10	/* an IP header we could not follow:
					   its addresses are not in a layer */

#define WEIR_NO_LAYER		0xff

struct weir_decoded {
	uint8_t		n;		/* layers used */
	uint8_t		ip;		/* outermost IPv4/IPv6 layer, or NO_LAYER */
	uint8_t		inner_ip;	/* innermost IP not in a quote */
	uint8_t		l4;		/* innermost transport not in a quote */
	uint16_t	flags;		/* WEIR_DF_* */
	uint16_t	pad;
	uint32_t	hdr_end;	/* offset just past the last header
					   decoded (<= caplen) */
	struct weir_layer l[WEIR_MAX_LAYERS];
};

struct weir_pkt {
	uint8_t		*data;
	uint32_t	 caplen;	/* bytes present at data */
	uint32_t	 wirelen;	/* length on the wire */
	uint64_t	 ts;		/* nanoseconds since the epoch, UTC */
	uint16_t	 iface;		/* index in the interface table */
	uint16_t	 linktype;	/* LINKTYPE_* of the packet */
	uint8_t		 dir;		/* enum weir_dir */
	uint8_t		 drop;		/* set by a stage to drop the packet */
	uint8_t		 decoded;	/* dec is filled in */
	uint8_t		 modified;	/* data or caplen changed */
	uint32_t	 epb_flags;	/* pcapng EPB flags from the input */
	struct weir_decoded dec;
};

struct weir_batch {
	struct weir_pkt	**p;	/* live packets in time order */
	unsigned	  n;
};

/* Interfaces: every (input, interface) pair gets one global index. */
struct weir_iface {
	uint16_t	linktype;
	uint8_t		tsresol;	/* pcapng if_tsresol of the source */
	uint8_t		input;		/* index of the input it came from */
	uint32_t	snaplen;
	char		name[64];	/* if_name, or "inputfile#N" */
};

struct weir_ifaces {
	struct weir_iface v[WEIR_MAX_IFACES];
	unsigned	  n;
};

/*
 * Add an interface; returns its index, or -1 when the table is full.
 * Defined in src/lib/pkt/iface.c.
 */
int	weir_iface_add(struct weir_ifaces *t, unsigned input, uint16_t linktype,
	    uint32_t snaplen, uint8_t tsresol, const char *name);

#endif
