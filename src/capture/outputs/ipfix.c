/*
 * ipfix.c - the "ipfix" output: a flow meter (the flow table of
 * include/weir/flow.h) whose records are exported as IPFIX (RFC 7011)
 * biflows (RFC 5103) to a file, or to a collector over UDP or TCP.
 * docs/flows.md ("IPFIX export") describes what users see.
 *
 * Records are encoded from the table's expiry callback into one open
 * message; a message goes out when the next record does not fit, when
 * its first record is FLUSH_NS old (packet time), and at close.
 *
 * Sequence numbers count data records, including records that were
 * dropped (a UDP send error, a full TCP queue), so a collector sees the
 * gap.  Over TCP every connection is a new transport session: its
 * template message has sequence 0 and every queued message gets its
 * sequence number rewritten as it starts on the wire.
 *
 * Clocks: export time, UDP template refresh and the message age use
 * packet time (a trace gives the same bytes every run; live capture has
 * packet time close to wall time).  TCP reconnection backoff and the
 * close wait use the monotonic wall clock, since they wait for a peer.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "weir/decode.h"
#include "weir/flow.h"
#include "weir/ipfix.h"
#include "weir/log.h"
#include "weir/module.h"
#include "capture/outputs/filewriter.h"

#define NS		1000000000ULL
#define FLUSH_NS	NS		/* oldest record a message holds */
#define FRAME_HDR	12		/* TCP queue: length, records, flows */
#define BACKOFF_MIN	100		/* ms */
#define BACKOFF_MAX	30000
#define TMPL_MAX	512		/* both templates, with headers */

enum { T_FILE, T_UDP, T_TCP };

struct ipx_out {
	int		 finished;	/* finish() ran */
	struct weir_flowtab *ft;
	int		 transport, ns;
	uint32_t	 domain;
	size_t		 mcap;		/* message size limit */
	uint64_t	 refresh_ns, close_wait_ms;
	uint64_t	 now, ticked;	/* packet clock; last table tick */

	/* the open message */
	uint8_t		*mbuf;
	struct weir_ipfix_msg msg;
	int		 open;
	uint32_t	 mflows;	/* records in it that end a flow */
	uint64_t	 mfirst;	/* packet time of its first record */
	uint32_t	 seq;		/* data records produced so far */

	/* template message */
	uint8_t		 tmpl[TMPL_MAX];
	size_t		 tmpl_len;
	uint64_t	 tmpl_at;	/* UDP: packet time of the last send */
	int		 tmpl_once;

	/* file */
	struct weir_filewriter *fw;
	uint32_t	 file_seq;	/* sequence of the message being added */

	/* UDP and TCP */
	int		 fd;
	char		*collector;
	struct sockaddr_storage sa;
	socklen_t	 salen;

	/* TCP: a ring of framed messages, and the connection state */
	uint8_t		*ring;
	size_t		 rcap, rhead, rlen;
	size_t		 head_sent;	/* bytes of the head message sent */
	size_t		 tsent;		/* bytes of tmpl sent on this link */
	int		 connecting, connected, ever_connected;
	uint64_t	 next_try, backoff;	/* ms, monotonic */
	uint32_t	 sess_seq;

	/* counters */
	uint64_t	 metered, not_flow, flows_exported, records_exported;
	uint64_t	 messages, bytes, records_dropped, udp_errors;
	uint64_t	 reconnects, templates_sent;
	int		 failed;
};

static const char *const ipx_keys[] = { "type", "transport", "collector",
	"idle_timeout", "active_timeout", "max_flows", "max_memory",
	"timestamps", "observation_domain", "template_refresh", "mtu",
	"buffer", "close_wait", "tcp_end", WEIR_FW_KEYS, NULL };
static const char *const transports[] = { "file", "udp", "tcp", NULL };
static const char *const ts_kinds[] = { "ms", "ns", NULL };

/* Split "host:port" or "[v6]:port"; port defaults to 4739 (IANA). */
static int
split_hostport(const char *s, char *host, size_t hlen, char *port,
    size_t plen)
{
	const char *colon, *end;
	size_t n;
	long p;
	char *e;

	if (s[0] == '[') {
		if ((end = strchr(s, ']')) == NULL)
			return -1;
		n = (size_t)(end - s - 1);
		colon = end[1] == ':' ? end + 1 : NULL;
		if (end[1] != '\0' && colon == NULL)
			return -1;
		s++;
	} else {
		colon = strrchr(s, ':');
		if (colon != NULL && strchr(s, ':') != colon)
			return -1;	/* bare IPv6: needs brackets */
		n = colon ? (size_t)(colon - s) : strlen(s);
	}
	if (n == 0 || n >= hlen)
		return -1;
	memcpy(host, s, n);
	host[n] = '\0';
	if (colon == NULL) {
		snprintf(port, plen, "4739");
		return 0;
	}
	errno = 0;
	p = strtol(colon + 1, &e, 10);
	if (colon[1] == '\0' || *e != '\0' || errno != 0 || p < 1 ||
	    p > 65535)
		return -1;
	snprintf(port, plen, "%ld", p);
	return 0;
}

static int
ipx_check(json_t *conf, const json_t *policy, struct weir_err *err)
{
	const char *col;
	char host[256], port[8];
	int rc, tr;

	if ((rc = weir_conf_known(conf, "ipfix", ipx_keys, err)) < 0 ||
	    (rc = weir_conf_enum(conf, "ipfix", "transport", "file",
	    transports, &tr, err)) < 0 ||
	    (rc = weir_conf_int(conf, "ipfix", "idle_timeout", 15, 1,
	    86400, NULL, err)) < 0 ||
	    (rc = weir_conf_int(conf, "ipfix", "active_timeout", 1800, 0,
	    604800, NULL, err)) < 0 ||
	    (rc = weir_conf_int(conf, "ipfix", "max_flows", 1000000, 1,
	    1000000000LL, NULL, err)) < 0 ||
	    (rc = weir_conf_int(conf, "ipfix", "max_memory", 0, 0,
	    INT64_MAX, NULL, err)) < 0 ||
	    (rc = weir_conf_enum(conf, "ipfix", "timestamps", "ms", ts_kinds,
	    NULL, err)) < 0 ||
	    (rc = weir_conf_int(conf, "ipfix", "observation_domain", 0, 0,
	    UINT32_MAX, NULL, err)) < 0 ||
	    (rc = weir_conf_int(conf, "ipfix", "template_refresh", 60, 1,
	    86400, NULL, err)) < 0 ||
	    (rc = weir_conf_int(conf, "ipfix", "mtu", 1400, 512, 65535,
	    NULL, err)) < 0 ||
	    (rc = weir_conf_int(conf, "ipfix", "buffer", 8 << 20, 65536 +
	    FRAME_HDR, 1LL << 34, NULL, err)) < 0 ||
	    (rc = weir_conf_num(conf, "ipfix", "close_wait", 5.0, 0.0,
	    3600.0, NULL, err)) < 0 ||
	    (rc = weir_conf_bool(conf, "ipfix", "tcp_end", 1, NULL,
	    err)) < 0)
		return rc;
	if (tr == T_FILE) {
		if (json_object_get(conf, "collector") != NULL)
			return weir_seterr(err, -WEIR_ECONFIG, "ipfix: "
			    "'collector' needs 'transport' udp or tcp");
		return weir_fw_check(conf, "ipfix", err);
	}
	if (json_object_get(conf, "path") != NULL)
		return weir_seterr(err, -WEIR_ECONFIG,
		    "ipfix: 'path' needs 'transport' file");
	if ((rc = weir_conf_str(conf, "ipfix", "collector", NULL, 0, &col,
	    err)) < 0)
		return rc;
	if (split_hostport(col, host, sizeof(host), port, sizeof(port)) < 0)
		return weir_seterr(err, -WEIR_ECONFIG, "ipfix: 'collector' "
		    "must be HOST:PORT or [IPV6]:PORT, not '%s'", col);
	return 0;
}

static uint64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A template message (both templates) with sequence seq. */
static void
build_tmpl(struct ipx_out *o, uint32_t seq)
{
	struct weir_ipfix_field f[WEIR_IPFIX_MAX_FIELDS];
	struct weir_ipfix_msg m;
	unsigned n;
	int fam;

	weir_ipfix_begin(&m, o->tmpl, sizeof(o->tmpl),
	    (uint32_t)(o->now / NS), seq, o->domain);
	for (fam = 4; fam <= 6; fam += 2) {
		n = weir_ipfix_flow_template(fam, o->ns, f);
		/* TMPL_MAX holds both: a failure is a bug, not input. */
		if (weir_ipfix_add_template(&m, weir_ipfix_flow_tid(fam, o->ns),
		    f, n) < 0)
			abort();
	}
	o->tmpl_len = weir_ipfix_finish(&m);
}

/* File transport: every file opens with the templates. */
static int
fw_header(void *arg, const void **buf, size_t *len)
{
	struct ipx_out *o = arg;

	build_tmpl(o, o->file_seq);
	o->templates_sent++;
	*buf = o->tmpl;
	*len = o->tmpl_len;
	return 0;
}

static void
fw_meta(void *arg, json_t *doc)
{
	struct ipx_out *o = arg;

	json_object_set_new(doc, "observation_domain",
	    json_integer(o->domain));
	json_object_set_new(doc, "timestamps", json_string(o->ns ? "ns" :
	    "ms"));
	json_object_set_new(doc, "records_exported",
	    json_integer((json_int_t)o->records_exported));
}

static const struct weir_fw_ops fw_ops = { fw_header, fw_meta };

static void
emit_file(struct ipx_out *o, const uint8_t *buf, size_t len, uint32_t nrec,
    uint32_t nflows)
{
	struct iovec iov = { (void *)(uintptr_t)buf, len };
	int reason, rc;

	o->file_seq = weir_get32(buf + 8);
	if ((reason = weir_fw_due(o->fw, o->now, len)) != WEIR_FW_NONE &&
	    weir_fw_rotate(o->fw, reason) < 0)
		o->failed = -EIO;
	weir_fw_add(o->fw, o->now, (uint32_t)len, (uint32_t)len, len);
	rc = weir_fw_write(o->fw, &iov, 1);
	if (rc != 0) {
		o->records_dropped += nrec;
		if (rc < 0)
			o->failed = rc;
		return;
	}
	o->messages++;
	o->bytes += len;
	o->records_exported += nrec;
	o->flows_exported += nflows;
}

static void
emit_udp(struct ipx_out *o, const uint8_t *buf, size_t len, uint32_t nrec,
    uint32_t nflows)
{
	if (!o->tmpl_once || o->now >= o->tmpl_at + o->refresh_ns) {
		build_tmpl(o, weir_get32(buf + 8));
		o->tmpl_once = 1;
		o->tmpl_at = o->now;
		if (send(o->fd, o->tmpl, o->tmpl_len, MSG_DONTWAIT) < 0)
			o->udp_errors++;
		else {
			o->templates_sent++;
			o->messages++;
			o->bytes += o->tmpl_len;
		}
	}
	if (nrec == 0)
		return;
	if (send(o->fd, buf, len, MSG_DONTWAIT) != (ssize_t)len) {
		/* Connected UDP reports an ICMP unreachable here, once. */
		o->udp_errors++;
		o->records_dropped += nrec;
		return;
	}
	o->messages++;
	o->bytes += len;
	o->records_exported += nrec;
	o->flows_exported += nflows;
}

/* TCP ring: copy n bytes in at logical offset off (from rhead). */
static void
ring_put(struct ipx_out *o, size_t off, const uint8_t *src, size_t n)
{
	size_t at = (o->rhead + off) % o->rcap, first;

	first = o->rcap - at < n ? o->rcap - at : n;
	memcpy(o->ring + at, src, first);
	memcpy(o->ring, src + first, n - first);
}

static void
ring_get(const struct ipx_out *o, size_t off, uint8_t *dst, size_t n)
{
	size_t at = (o->rhead + off) % o->rcap, first;

	first = o->rcap - at < n ? o->rcap - at : n;
	memcpy(dst, o->ring + at, first);
	memcpy(dst + first, o->ring, n - first);
}

static void
tcp_drop_link(struct ipx_out *o, int code)
{
	if (o->connected)
		log_warn("ipfix: collector '%s' lost: %s", o->collector,
		    weir_strerror(code));
	close(o->fd);
	o->fd = -1;
	o->connected = o->connecting = 0;
	o->head_sent = 0;
	o->next_try = mono_ms() + o->backoff;
	o->backoff = o->backoff * 2 > BACKOFF_MAX ? BACKOFF_MAX :
	    o->backoff * 2;
}

static void
tcp_connected(struct ipx_out *o)
{
	o->connecting = 0;
	o->connected = 1;
	if (o->ever_connected)
		o->reconnects++;
	o->ever_connected = 1;
	o->backoff = BACKOFF_MIN;
	o->sess_seq = 0;
	o->head_sent = 0;
	build_tmpl(o, 0);
	o->tsent = 0;
}

static void
tcp_try_connect(struct ipx_out *o)
{
	int fd;

	if (mono_ms() < o->next_try)
		return;
	fd = socket(o->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (fd < 0) {
		o->fd = -1;
		o->next_try = mono_ms() + o->backoff;
		return;
	}
	o->fd = fd;
	if (connect(fd, (struct sockaddr *)&o->sa, o->salen) == 0)
		tcp_connected(o);
	else if (errno == EINPROGRESS)
		o->connecting = 1;
	else
		tcp_drop_link(o, -errno);
}

/* Move what the socket takes; never blocks. */
static void
tcp_pump(struct ipx_out *o)
{
	struct pollfd pfd;
	uint8_t fh[FRAME_HDR], seq[4], junk[256];
	size_t mlen, at, chunk;
	ssize_t w;
	int soerr;
	socklen_t sl = sizeof(soerr);

	if (o->fd < 0)
		tcp_try_connect(o);
	if (o->fd < 0)
		return;
	if (o->connecting) {
		pfd.fd = o->fd;
		pfd.events = POLLOUT;
		if (poll(&pfd, 1, 0) <= 0)
			return;
		if (getsockopt(o->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
			soerr = errno;
		if (soerr != 0) {
			tcp_drop_link(o, -soerr);
			return;
		}
		tcp_connected(o);
	}
	/* A collector that closed shows as readable with nothing to read. */
	pfd.fd = o->fd;
	pfd.events = POLLIN;
	if (poll(&pfd, 1, 0) > 0) {
		w = recv(o->fd, junk, sizeof(junk), MSG_DONTWAIT);
		if (w == 0 || (w < 0 && errno != EAGAIN &&
		    errno != EWOULDBLOCK)) {
			tcp_drop_link(o, w == 0 ? -ECONNRESET : -errno);
			return;
		}
	}
	while (o->tsent < o->tmpl_len) {
		w = send(o->fd, o->tmpl + o->tsent, o->tmpl_len - o->tsent,
		    MSG_DONTWAIT | MSG_NOSIGNAL);
		if (w < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				tcp_drop_link(o, -errno);
			return;
		}
		o->tsent += (size_t)w;
		if (o->tsent == o->tmpl_len) {
			o->templates_sent++;
			o->messages++;
			o->bytes += o->tmpl_len;
		}
	}
	while (o->rlen > 0) {
		ring_get(o, 0, fh, FRAME_HDR);
		mlen = weir_get32(fh);
		if (o->head_sent == 0) {
			/* This session's count, not the producer's. */
			weir_put32(seq, o->sess_seq);
			ring_put(o, FRAME_HDR + 8, seq, 4);
		}
		at = (o->rhead + FRAME_HDR + o->head_sent) % o->rcap;
		chunk = mlen - o->head_sent;
		if (chunk > o->rcap - at)
			chunk = o->rcap - at;
		w = send(o->fd, o->ring + at, chunk, MSG_DONTWAIT |
		    MSG_NOSIGNAL);
		if (w < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				tcp_drop_link(o, -errno);
			return;
		}
		o->head_sent += (size_t)w;
		if (o->head_sent < mlen)
			continue;
		o->sess_seq += weir_get32(fh + 4);
		o->records_exported += weir_get32(fh + 4);
		o->flows_exported += weir_get32(fh + 8);
		o->messages++;
		o->bytes += mlen;
		o->head_sent = 0;
		o->rhead = (o->rhead + FRAME_HDR + mlen) % o->rcap;
		o->rlen -= FRAME_HDR + mlen;
	}
}

static void
emit_tcp(struct ipx_out *o, const uint8_t *buf, size_t len, uint32_t nrec,
    uint32_t nflows)
{
	uint8_t fh[FRAME_HDR];

	if (o->rcap - o->rlen < FRAME_HDR + len) {
		/* Make room if the link can take some now. */
		tcp_pump(o);
		if (o->rcap - o->rlen < FRAME_HDR + len) {
			o->records_dropped += nrec;
			return;
		}
	}
	weir_put32(fh, (uint32_t)len);
	weir_put32(fh + 4, nrec);
	weir_put32(fh + 8, nflows);
	ring_put(o, o->rlen, fh, FRAME_HDR);
	ring_put(o, o->rlen + FRAME_HDR, buf, len);
	o->rlen += FRAME_HDR + len;
	tcp_pump(o);
}

/* Finish the open message and hand it to the transport. */
static void
emit(struct ipx_out *o)
{
	size_t len;
	uint32_t nrec;

	if (!o->open)
		return;
	o->open = 0;
	nrec = o->msg.records;
	if (nrec == 0)
		return;
	len = weir_ipfix_finish(&o->msg);
	/* Export time: when the message leaves, not when it began. */
	weir_put32(o->mbuf + 4, (uint32_t)(o->now / NS));
	/* Records count once produced, sent or not: a gap shows loss. */
	o->seq += nrec;
	if (o->transport == T_FILE)
		emit_file(o, o->mbuf, len, nrec, o->mflows);
	else if (o->transport == T_UDP)
		emit_udp(o, o->mbuf, len, nrec, o->mflows);
	else
		emit_tcp(o, o->mbuf, len, nrec, o->mflows);
}

static void
expire(void *arg, struct weir_flow *f)
{
	struct ipx_out *o = arg;
	uint16_t tid = weir_ipfix_flow_tid(f->key.family, o->ns);
	size_t len = weir_ipfix_flow_len(f->key.family, o->ns);
	uint8_t *rec;

	if (o->open && !weir_ipfix_fits(&o->msg, tid, len))
		emit(o);
	if (!o->open) {
		weir_ipfix_begin(&o->msg, o->mbuf, o->mcap,
		    (uint32_t)(o->now / NS), o->seq, o->domain);
		o->open = 1;
		o->mflows = 0;
		o->mfirst = o->now;
	}
	/* mcap >= 512 always holds one record. */
	if ((rec = weir_ipfix_add_record(&o->msg, tid, len)) == NULL) {
		o->records_dropped++;
		return;
	}
	weir_ipfix_flow_encode(rec, f, o->ns);
	if (f->end_reason != WEIR_FLOW_END_ACTIVE)
		o->mflows++;
}

static int
resolve(struct ipx_out *o, const char *col, int tcp, struct weir_err *err)
{
	struct addrinfo hints, *res = NULL;
	char host[256], port[8];
	int rc;

	if (split_hostport(col, host, sizeof(host), port, sizeof(port)) < 0)
		return weir_seterr(err, -WEIR_ECONFIG,
		    "ipfix: bad 'collector' '%s'", col);
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = tcp ? SOCK_STREAM : SOCK_DGRAM;
	hints.ai_flags = AI_NUMERICSERV;
	if ((rc = getaddrinfo(host, port, &hints, &res)) != 0)
		return weir_seterr(err, -WEIR_ECONFIG,
		    "ipfix: cannot resolve collector '%s': %s", col,
		    gai_strerror(rc));
	memcpy(&o->sa, res->ai_addr, res->ai_addrlen);
	o->salen = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

static void ipx_free(struct ipx_out *);

static int
ipx_open(void **st, const json_t *conf, const struct weir_env *env,
    struct weir_err *err)
{
	struct weir_flowtab_conf fc;
	struct ipx_out *o;
	const char *col;
	int rc = -ENOMEM;

#define CI(k)	json_integer_value(json_object_get(conf, (k)))
	*st = NULL;
	if ((o = calloc(1, sizeof(*o))) == NULL)
		return weir_seterr(err, rc, "ipfix: out of memory");
	o->fd = -1;
	o->transport = weir_conf_choice(conf, "transport", transports);
	o->ns = weir_conf_choice(conf, "timestamps", ts_kinds);
	o->domain = (uint32_t)CI("observation_domain");
	o->refresh_ns = (uint64_t)CI("template_refresh") * NS;
	o->close_wait_ms = (uint64_t)(json_number_value(json_object_get(conf,
	    "close_wait")) * 1000.0);
	o->mcap = o->transport == T_UDP ? (size_t)CI("mtu") :
	    WEIR_IPFIX_MAX_MSG;
	if (o->mcap < 512)
		o->mcap = 512;
	if ((o->mbuf = malloc(o->mcap)) == NULL)
		goto fail;

	memset(&fc, 0, sizeof(fc));
	fc.idle_ns = (uint64_t)CI("idle_timeout") * NS;
	fc.active_ns = (uint64_t)CI("active_timeout") * NS;
	fc.max_flows = (uint64_t)CI("max_flows");
	fc.max_bytes = (uint64_t)CI("max_memory");
	fc.user_size = 0;
	fc.tcp_end = json_is_false(json_object_get(conf, "tcp_end")) ? 0 : 1;
	if (fc.idle_ns == 0)
		fc.idle_ns = 15 * NS;
	if (fc.max_flows == 0)
		fc.max_flows = 1000000;
	if ((o->ft = weir_flowtab_new(&fc, expire, o, err)) == NULL) {
		rc = -ENOMEM;
		goto fail_msg;
	}

	if (o->transport == T_FILE) {
		if ((rc = weir_fw_open(&o->fw, "ipfix", "ipfix", conf, env,
		    &fw_ops, o, err)) < 0)
			goto fail_msg;
	} else {
		col = json_string_value(json_object_get(conf, "collector"));
		if (col == NULL) {
			rc = weir_seterr(err, -WEIR_ECONFIG,
			    "ipfix: 'collector' is required");
			goto fail_msg;
		}
		if ((o->collector = strdup(col)) == NULL)
			goto fail;
		if ((rc = resolve(o, col, o->transport == T_TCP, err)) < 0)
			goto fail_msg;
	}
	if (o->transport == T_UDP) {
		o->fd = socket(o->sa.ss_family, SOCK_DGRAM | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, 0);
		if (o->fd < 0 || connect(o->fd, (struct sockaddr *)&o->sa,
		    o->salen) < 0) {
			rc = -errno;
			weir_seterr(err, rc, "ipfix: cannot reach collector "
			    "'%s' over udp: %s", o->collector,
			    weir_strerror(rc));
			goto fail_msg;
		}
	} else if (o->transport == T_TCP) {
		o->rcap = (size_t)CI("buffer");
		if ((o->ring = malloc(o->rcap)) == NULL)
			goto fail;
		o->backoff = BACKOFF_MIN;
		/* The first attempt now; failure only schedules a retry. */
		tcp_try_connect(o);
	}
#undef CI
	*st = o;
	return 0;
fail:
	weir_seterr(err, rc, "ipfix: %s", weir_strerror(rc));
fail_msg:
	ipx_free(o);
	return rc;
}

static void
ipx_advance(struct ipx_out *o, uint64_t now)
{
	if (now > o->now)
		o->now = now;
	if (o->now > o->ticked) {
		o->ticked = o->now;
		weir_flowtab_tick(o->ft, o->now);
	}
	if (o->open && o->now >= o->mfirst + FLUSH_NS)
		emit(o);
	if (o->transport == T_TCP)
		tcp_pump(o);
}

static int
ipx_packet(void *st, struct weir_batch *b)
{
	struct ipx_out *o = st;
	struct weir_pkt *p;
	unsigned i;
	int rev, created;

	for (i = 0; i < b->n; i++) {
		p = b->p[i];
		weir_pkt_decode(p);
		if (p->ts > o->now)
			o->now = p->ts;
		if (weir_flowtab_packet(o->ft, p, &rev, &created) != NULL)
			o->metered++;
		else
			o->not_flow++;
	}
	if (b->n > 0)
		ipx_advance(o, b->p[b->n - 1]->ts);
	return o->failed;
}

static int
ipx_tick(void *st, uint64_t now)
{
	struct ipx_out *o = st;
	int reason;

	ipx_advance(o, now);
	if (o->fw != NULL && (reason = weir_fw_tick_due(o->fw, o->now)) !=
	    WEIR_FW_NONE && weir_fw_rotate(o->fw, reason) < 0)
		o->failed = -EIO;
	return o->failed;
}

static int
ipx_flush(void *st)
{
	struct ipx_out *o = st;

	emit(o);
	if (o->transport == T_TCP)
		tcp_pump(o);
	return o->failed;
}

static size_t
ipx_stats(void *st, struct weir_counter *c, size_t max)
{
	struct ipx_out *o = st;
	const struct weir_counter v[] = {
		{ "written", o->metered },
		{ "dropped", o->not_flow },
		{ "dropped_not_flow", o->not_flow },
		{ "flows_exported", o->flows_exported },
		{ "records_exported", o->records_exported },
		{ "messages_sent", o->messages },
		{ "bytes_sent", o->bytes },
		{ "records_dropped", o->records_dropped },
		{ "udp_send_errors", o->udp_errors },
		{ "tcp_reconnects", o->reconnects },
		{ "templates_sent", o->templates_sent },
	};
	size_t n, i;

	n = WEIR_COUNTERS_PUT(c, max, v);
	n += weir_flowtab_stats(o->ft, c + n, max - n);
	if (o->fw != NULL) {
		i = n;
		n = weir_fw_stats(o->fw, c, n, max);
		/* The writer counts messages; "written" means packets here. */
		for (; i < n; i++)
			if (strcmp(c[i].name, "written") == 0)
				c[i].name = "file_messages";
			else if (strcmp(c[i].name, "written_bytes") == 0)
				c[i].name = "file_bytes";
	}
	return n;
}

static void
ipx_free(struct ipx_out *o)
{
	if (o == NULL)
		return;
	if (o->ft != NULL)
		weir_flowtab_free(o->ft);
	if (o->fd >= 0)
		close(o->fd);
	free(o->ring);
	free(o->collector);
	free(o->mbuf);
	free(o);
}

/* Wait up to close_wait for the TCP queue to drain; count the rest. */
static void
tcp_drain(struct ipx_out *o)
{
	uint64_t deadline = mono_ms() + o->close_wait_ms, now, left;
	uint8_t fh[FRAME_HDR];
	struct pollfd pfd;
	int wait;

	for (;;) {
		tcp_pump(o);
		if (o->rlen == 0 && (!o->connected || o->tsent == o->tmpl_len))
			break;
		now = mono_ms();
		if (now >= deadline)
			break;
		left = deadline - now;
		if (o->fd >= 0) {
			pfd.fd = o->fd;
			pfd.events = POLLOUT | POLLIN;
			wait = left > 50 ? 50 : (int)left;
			poll(&pfd, 1, wait);
		} else {
			wait = (int)(o->next_try > now ? o->next_try - now : 0);
			if ((uint64_t)wait > left)
				wait = (int)left;
			poll(NULL, 0, wait);
		}
	}
	while (o->rlen > 0) {
		ring_get(o, 0, fh, FRAME_HDR);
		o->records_dropped += weir_get32(fh + 4);
		o->rhead = (o->rhead + FRAME_HDR + weir_get32(fh)) % o->rcap;
		o->rlen -= FRAME_HDR + weir_get32(fh);
	}
}

static int
ipx_finish(void *st, struct weir_err *err)
{
	struct ipx_out *o = st;
	int rc = 0;

	if (o->finished)
		return 0;
	o->finished = 1;
	weir_flowtab_flush(o->ft);
	emit(o);
	if (o->transport == T_TCP)
		tcp_drain(o);
	if (o->fw != NULL) {
		rc = weir_fw_close(o->fw, err);
		o->fw = NULL;
	}
	if (o->records_dropped != 0)
		log_warn("ipfix: %" PRIu64 " flow records dropped (%s)",
		    o->records_dropped, o->transport == T_TCP ?
		    "collector unreachable or queue full" :
		    o->transport == T_UDP ? "send errors" : "write errors");
	log_info("ipfix: %" PRIu64 " records (%" PRIu64 " flows) exported "
	    "in %" PRIu64 " messages, %" PRIu64 " bytes; %" PRIu64
	    " records dropped, %" PRIu64 " udp send errors, %" PRIu64
	    " tcp reconnects", o->records_exported, o->flows_exported,
	    o->messages, o->bytes, o->records_dropped, o->udp_errors,
	    o->reconnects);
	if (rc == 0 && o->failed < 0)
		rc = weir_seterr(err, o->failed, "ipfix: %s",
		    weir_strerror(o->failed));
	return rc;
}

static int
ipx_close(void *st, struct weir_err *err)
{
	struct ipx_out *o = st;
	int rc;

	if (o == NULL)
		return 0;
	rc = ipx_finish(o, err);
	ipx_free(o);
	return rc;
}

const struct weir_module weir_mod_ipfix = {
	.name		= "ipfix",
	.kind		= WEIR_MOD_OUTPUT,
	.needs_decode	= 1,
	.check		= ipx_check,
	.open		= ipx_open,
	.packet		= ipx_packet,
	.tick		= ipx_tick,
	.flush		= ipx_flush,
	.stats		= ipx_stats,
	.finish		= ipx_finish,
	.close		= ipx_close,
};
