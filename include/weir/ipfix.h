/*
 * ipfix.h - an IPFIX message encoder (RFC 7011) with biflow records
 * (RFC 5103), and the small decoder the tests and the fuzz target use.
 *
 * A message is built in a caller-owned buffer: weir_ipfix_begin(), then
 * template records (set id 2) and data records (set id = template id),
 * then weir_ipfix_finish(), which closes the open set and writes the
 * message length.  Consecutive records of the same kind share one set;
 * sets are not padded.  Nothing here allocates, and nothing writes past
 * the capacity given at begin(): an add that does not fit returns
 * -ENOSPC (templates) or NULL (records) and leaves the message as it
 * was, so the caller finishes it, sends it and starts the next one.
 *
 * All multi-byte fields are in network byte order.  Reduced-size
 * encoding is not used: every field has its natural length.
 * docs/flows.md ("IPFIX export") says why this is not libfixbuf.
 */
#ifndef WEIR_IPFIX_H
#define WEIR_IPFIX_H

#include <stddef.h>
#include <stdint.h>

#include "weir/bytes.h"
#include "weir/flow.h"

#define WEIR_IPFIX_VERSION	10
#define WEIR_IPFIX_HDR_LEN	16	/* message header */
#define WEIR_IPFIX_SET_HDR_LEN	4
#define WEIR_IPFIX_SET_TEMPLATE	2
#define WEIR_IPFIX_MAX_MSG	65535	/* the 16-bit length field */
#define WEIR_IPFIX_PEN_REVERSE	29305	/* RFC 5103 reverse elements */
#define WEIR_IPFIX_ENTERPRISE	0x8000	/* enterprise bit of an IE id */
#define WEIR_IPFIX_MAX_FIELDS	64

/* One field specifier of a template; pen 0 is an IANA element. */
struct weir_ipfix_field {
	uint16_t	id;		/* without the enterprise bit */
	uint16_t	len;
	uint32_t	pen;
};

struct weir_ipfix_msg {
	uint8_t		*buf;
	size_t		 cap;		/* <= WEIR_IPFIX_MAX_MSG */
	size_t		 len;		/* bytes used so far */
	size_t		 set_off;	/* open set's header, 0 if none */
	uint16_t	 set_id;
	uint32_t	 records;	/* data records in this message */
	uint32_t	 templates;	/* template records */
};

/*
 * Start a message in buf (cap bytes, at least WEIR_IPFIX_HDR_LEN +
 * WEIR_IPFIX_SET_HDR_LEN; larger than 65535 is used as 65535).  seq is
 * the count of data records sent in this stream before this message.
 */
void	 weir_ipfix_begin(struct weir_ipfix_msg *m, uint8_t *buf, size_t cap,
	    uint32_t export_time, uint32_t seq, uint32_t domain);
/* Bytes a template record takes (without its set header). */
size_t	 weir_ipfix_template_len(const struct weir_ipfix_field *f,
	    unsigned n);
/* Bytes a data record of that template takes. */
size_t	 weir_ipfix_record_len(const struct weir_ipfix_field *f, unsigned n);
/* Add a template record (tid >= 256); 0, -EINVAL or -ENOSPC. */
int	 weir_ipfix_add_template(struct weir_ipfix_msg *m, uint16_t tid,
	    const struct weir_ipfix_field *f, unsigned n);
/*
 * Room for one data record of len bytes for template tid, in a data set
 * of that template (opened if needed); the caller fills all len bytes.
 * NULL when it does not fit.
 */
uint8_t	*weir_ipfix_add_record(struct weir_ipfix_msg *m, uint16_t tid,
	    size_t len);
/* Would a record of len bytes for tid fit? */
int	 weir_ipfix_fits(const struct weir_ipfix_msg *m, uint16_t tid,
	    size_t len);
/* Close the open set, write the length; returns the message length. */
size_t	 weir_ipfix_finish(struct weir_ipfix_msg *m);

/*
 * Decoding, bounds-checked (tests, fuzzing, and the TCP queue which
 * rewrites sequence numbers).
 */
struct weir_ipfix_hdr {
	uint16_t	version;
	uint16_t	length;
	uint32_t	export_time;
	uint32_t	seq;
	uint32_t	domain;
};
/* Parse a message header; -WEIR_EFORMAT if it is not one of len bytes. */
int	 weir_ipfix_parse_hdr(const uint8_t *buf, size_t len,
	    struct weir_ipfix_hdr *h);
/*
 * Next set of a message (buf, len = the message) from *off (start at
 * WEIR_IPFIX_HDR_LEN).  Returns 1 and the set, 0 at the end, or
 * -WEIR_EFORMAT for a set that overruns the message.
 */
int	 weir_ipfix_next_set(const uint8_t *buf, size_t len, size_t *off,
	    uint16_t *id, const uint8_t **body, size_t *blen);
/*
 * Parse one template record at p (len bytes left in the set).  Returns
 * the bytes it takes, or -WEIR_EFORMAT.  At most max fields are stored;
 * *n is the field count of the record.
 */
int	 weir_ipfix_parse_template(const uint8_t *p, size_t len,
	    uint16_t *tid, struct weir_ipfix_field *f, unsigned max,
	    unsigned *n);

/*
 * Flow records: one template per address family and timestamp kind
 * (dateTimeMilliseconds or dateTimeNanoseconds).  docs/flows.md lists
 * the elements.
 */
#define WEIR_IPFIX_TID_FLOW4_MS	256
#define WEIR_IPFIX_TID_FLOW6_MS	257
#define WEIR_IPFIX_TID_FLOW4_NS	258
#define WEIR_IPFIX_TID_FLOW6_NS	259

/* flowDirection (IE 61) for a flow whose direction is unknown. */
#define WEIR_IPFIX_DIR_UNKNOWN	0xff

/* The template of family (4 or 6); fills f, returns the field count. */
unsigned weir_ipfix_flow_template(int family, int ns,
	    struct weir_ipfix_field *f);
uint16_t weir_ipfix_flow_tid(int family, int ns);
/* Record length of that template. */
size_t	 weir_ipfix_flow_len(int family, int ns);
/* Encode f (its key.family picks the template) at rec; returns bytes. */
size_t	 weir_ipfix_flow_encode(uint8_t *rec, const struct weir_flow *f,
	    int ns);
/*
 * dateTimeNanoseconds (NTP format, RFC 7011 6.1.10) of a Unix ns time;
 * NTP era 0 only (up to 2036-02-07), as RFC 7011 defines it.
 */
uint64_t weir_ipfix_ntp(uint64_t unix_ns);
uint64_t weir_ipfix_ntp_to_unix(uint64_t ntp);

#endif
