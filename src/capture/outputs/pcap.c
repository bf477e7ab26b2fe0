/*
 * pcap.c - the "pcap" and "pcapng" file outputs.  Files, rotation,
 * compression and metadata are filewriter.c's; this file only encodes.
 *
 * pcap fast path: when the 16 bytes just before p->data already are the
 * record header we would write (a pcap input of the same precision and
 * byte order, packet unchanged), the record is the span
 * [p->data - 16, p->data + caplen) as it lies in the input, and spans
 * that touch are merged: a pcap to pcap copy becomes one iovec per read
 * buffer or mapping, written without copying a packet byte.  Otherwise
 * the header goes to a side buffer (with the data too, for short
 * records); nothing is ever written into the packet's memory, which may
 * be a read-only file mapping (weir_rbuf_map).
 *
 * pcapng copies into a 1 MiB buffer instead: an EPB has a trailer and
 * padding after the data, so it cannot be built in place.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "weir/log.h"
#include "weir/module.h"
#include "capture/outputs/filewriter.h"

#define PCAP_HDR	16
#define MAX_SNAPLEN	262144
#define NG_BUF		(1024 * 1024)
#define SIDE_REC_MAX	256			/* caplen copied to side */
#define SIDE_BUF	(WEIR_BATCH_MAX * (16 + SIDE_REC_MAX))
#define NG_SHB		0x0A0D0D0AU
#define NG_IDB		1U
#define NG_EPB		6U
#define NG_BOM		0x1A2B3C4DU
#define MAX_COMMENT	60000
/* IDB: 20 fixed + if_name (4 + 64) + if_tsresol (8) + end (4). */
#define NG_IDB_MAX	(20 + 4 + 64 + 8 + 4)

#if WEIR_HEADROOM < PCAP_HDR
#error "the pcap fast path reads the 16 bytes before each packet"
#endif

struct pcap_out {
	struct weir_filewriter *fw;
	const struct weir_env *env;
	int		 ng;		/* pcapng */
	int		 nano;		/* pcap: ns timestamps */
	uint32_t	 snaplen;

	/* pcap: link type of the current file. */
	int		 lt_set;
	uint16_t	 linktype;
	uint8_t		 fhdr[24];
	struct iovec	*iov;
	int		 niov, maxiov;
	/*
	 * Records whose header differs from the bytes before their data
	 * and that are short are copied here instead of written in place:
	 * the input may be a private file mapping, where a write costs a
	 * page copy, and a run of short records becomes one iovec.
	 */
	uint8_t		*side;
	size_t		 side_len;

	/* pcapng: write buffer, header buffer, interfaces of the file. */
	uint8_t		*buf, *hbuf;
	size_t		 len, shb_len;
	int16_t		 map[WEIR_MAX_IFACES];	/* iface -> IDB id, -1 */
	uint16_t	 order[WEIR_MAX_IFACES];	/* IDB id -> iface */
	uint16_t	 idb_lt[WEIR_MAX_IFACES];	/* IDB id -> fallback */
	unsigned	 nidb, idb_flushed;
	char		*comment;

	uint64_t	 dropped_linktype, dropped_iface, truncated_snaplen;
};

static const char *const pcap_keys[] = { "type", WEIR_FW_KEYS, "precision",
	"snaplen", NULL };
static const char *const pcapng_keys[] = { "type", WEIR_FW_KEYS,
	"snaplen", "comment", NULL };
static const char *const precisions[] = { "us", "ns", NULL };

static int
out_check(json_t *conf, int ng, struct weir_err *err)
{
	const char *mod = ng ? "pcapng" : "pcap", *c;
	int rc;

	if ((rc = weir_conf_known(conf, mod, ng ? pcapng_keys : pcap_keys,
	    err)) < 0 || (rc = weir_fw_check(conf, mod, err)) < 0 ||
	    (rc = weir_conf_int(conf, mod, "snaplen", MAX_SNAPLEN, 1,
	    MAX_SNAPLEN, NULL, err)) < 0)
		return rc;
	if (!ng)
		return weir_conf_enum(conf, mod, "precision", "us", precisions,
		    NULL, err);
	/* The default names the experiment, known only at open(). */
	if ((rc = weir_conf_str(conf, mod, "comment", NULL, 1, &c, err)) < 0)
		return rc;
	if (c != NULL && strlen(c) > MAX_COMMENT)
		return weir_seterr(err, -WEIR_ECONFIG,
		    "%s: 'comment' is longer than %d bytes", mod, MAX_COMMENT);
	return 0;
}

static int
pcap_check(json_t *conf, const json_t *policy, struct weir_err *err)
{
	return out_check(conf, 0, err);
}

static int
pcapng_check(json_t *conf, const json_t *policy, struct weir_err *err)
{
	return out_check(conf, 1, err);
}

static void
put16(uint8_t *b, uint16_t v)
{
	memcpy(b, &v, 2);
}

static void
put32(uint8_t *b, uint32_t v)
{
	memcpy(b, &v, 4);
}

static size_t
pad4(size_t n)
{
	return (4 - (n & 3)) & 3;
}

/* One option: code, length, value, zero padding; returns its size. */
static size_t
put_opt(uint8_t *b, uint16_t code, const void *v, size_t len)
{
	size_t p = pad4(len);

	put16(b, code);
	put16(b + 2, (uint16_t)len);
	memcpy(b + 4, v, len);
	memset(b + 4 + len, 0, p);
	return 4 + len + p;
}

/* pcap: the 24-byte file header for the current file's link type. */
static int
pcap_header(void *arg, const void **buf, size_t *len)
{
	struct pcap_out *o = arg;

	put32(o->fhdr, o->nano ? 0xa1b23c4dU : 0xa1b2c3d4U);
	put16(o->fhdr + 4, 2);
	put16(o->fhdr + 6, 4);
	put32(o->fhdr + 8, 0);
	put32(o->fhdr + 12, 0);
	put32(o->fhdr + 16, o->snaplen);
	put32(o->fhdr + 20, o->linktype);
	*buf = o->fhdr;
	*len = sizeof(o->fhdr);
	return 0;
}

static uint32_t
idb_snaplen(const struct pcap_out *o, const struct weir_iface *f)
{
	if (f == NULL || f->snaplen == 0 || f->snaplen > o->snaplen)
		return o->snaplen;
	return f->snaplen;
}

static const struct weir_iface *
iface_of(const struct pcap_out *o, unsigned idx)
{
	if (o->env == NULL || o->env->ifaces == NULL ||
	    idx >= o->env->ifaces->n)
		return NULL;
	return &o->env->ifaces->v[idx];
}

/*
 * An IDB for interface idx; lt is used when the interface table does
 * not know idx (a packet made up by a test or a future input).
 */
static size_t
idb_put(const struct pcap_out *o, uint8_t *b, unsigned idx, uint16_t lt)
{
	const struct weir_iface *f = iface_of(o, idx);
	uint8_t res = 9;
	size_t n = 16, nl;

	put32(b, NG_IDB);
	put16(b + 8, f ? f->linktype : lt);
	put16(b + 10, 0);
	put32(b + 12, idb_snaplen(o, f));
	if (f != NULL && (nl = strnlen(f->name, sizeof(f->name))) > 0)
		n += put_opt(b + n, 2, f->name, nl);
	n += put_opt(b + n, 9, &res, 1);
	put32(b + n, 0);		/* opt_endofopt */
	n += 4;
	n += 4;
	put32(b + 4, (uint32_t)n);
	put32(b + n - 4, (uint32_t)n);
	return n;
}

/*
 * pcapng: the SHB and every IDB the pending data relies on (those
 * already in the file: after a write error the pending data moves to a
 * fresh file and must find the same interface ids there).
 */
static int
pcapng_header(void *arg, const void **buf, size_t *len)
{
	struct pcap_out *o = arg;
	size_t n = o->shb_len;
	unsigned i;

	for (i = 0; i < o->idb_flushed; i++)
		n += idb_put(o, o->hbuf + n, o->order[i], o->idb_lt[i]);
	*buf = o->hbuf;
	*len = n;
	return 0;
}

static void
pcap_meta(void *arg, json_t *doc)
{
	struct pcap_out *o = arg;
	json_t *drops = json_object_get(doc, "drops"), *a;
	const struct weir_iface *f;
	unsigned i;

	json_object_set_new(doc, "snaplen", json_integer(o->snaplen));
	if (!o->ng) {
		json_object_set_new(doc, "linktype", json_integer(o->linktype));
		json_object_set_new(doc, "precision",
		    json_string(o->nano ? "ns" : "us"));
		json_object_set_new(drops, "dropped_linktype",
		    json_integer((json_int_t)o->dropped_linktype));
		return;
	}
	json_object_set_new(doc, "comment", json_string(o->comment));
	a = json_array();
	for (i = 0; i < o->idb_flushed; i++) {
		f = iface_of(o, o->order[i]);
		json_array_append_new(a, json_pack("{s:i,s:s,s:i}", "index",
		    (int)o->order[i], "name", f ? f->name : "",
		    "linktype", f ? (int)f->linktype : -1));
	}
	json_object_set_new(doc, "interfaces", a);
	json_object_set_new(drops, "dropped_iface",
	    json_integer((json_int_t)o->dropped_iface));
}

static const struct weir_fw_ops pcap_ops = { pcap_header, pcap_meta };
static const struct weir_fw_ops pcapng_ops = { pcapng_header, pcap_meta };

static void
ng_reset(struct pcap_out *o)
{
	memset(o->map, 0xff, sizeof(o->map));
	o->nidb = o->idb_flushed = 0;
}

static int
out_open(void **st, const json_t *conf, const struct weir_env *env,
    struct weir_err *err, int ng)
{
	const char *mod = ng ? "pcapng" : "pcap", *c, *name;
	struct pcap_out *o;
	uint8_t *b;
	size_t n, cl;
	int rc = -ENOMEM;

	*st = NULL;
	if ((o = calloc(1, sizeof(*o))) == NULL)
		goto fail;
	o->env = env;
	/* An empty file still names the link type of the first input. */
	if (env->ifaces != NULL && env->ifaces->n > 0)
		o->linktype = env->ifaces->v[0].linktype;
	o->ng = ng;
	o->snaplen = (uint32_t)json_integer_value(json_object_get(conf,
	    "snaplen"));
	if (o->snaplen == 0 || o->snaplen > MAX_SNAPLEN)
		o->snaplen = MAX_SNAPLEN;
	c = json_string_value(json_object_get(conf, "precision"));
	o->nano = c != NULL && strcmp(c, "ns") == 0;
	if (!ng) {
		o->maxiov = WEIR_BATCH_MAX;
		if ((o->iov = calloc((size_t)o->maxiov, sizeof(*o->iov))) ==
		    NULL || (o->side = malloc(SIDE_BUF)) == NULL)
			goto fail;
	} else {
		ng_reset(o);
		c = json_string_value(json_object_get(conf, "comment"));
		name = env && env->exp_name ? env->exp_name : "";
		if (c != NULL)
			o->comment = strdup(c);
		else if (asprintf(&o->comment, "weir experiment '%s'",
		    name) < 0)
			o->comment = NULL;
		if (o->comment == NULL)
			goto fail;
		cl = strlen(o->comment);
		if (cl > MAX_COMMENT)
			cl = MAX_COMMENT;
		if ((o->buf = malloc(NG_BUF)) == NULL ||
		    (o->hbuf = malloc(28 + cl + 8 + 16 + 8 + 4 +
		    (size_t)WEIR_MAX_IFACES * NG_IDB_MAX)) == NULL)
			goto fail;
		b = o->hbuf;
		put32(b, NG_SHB);
		put32(b + 8, NG_BOM);
		put16(b + 12, 1);
		put16(b + 14, 0);
		memset(b + 16, 0xff, 8);	/* section length unknown */
		n = 24;
		if (cl > 0)
			n += put_opt(b + n, 1, o->comment, cl);
		n += put_opt(b + n, 4, "weir-capture", 12);
		put32(b + n, 0);
		n += 8;
		put32(b + 4, (uint32_t)n);
		put32(b + n - 4, (uint32_t)n);
		o->shb_len = n;
	}
	if ((rc = weir_fw_open(&o->fw, mod, mod, conf, env, ng ? &pcapng_ops :
	    &pcap_ops, o, err)) < 0)
		goto fail_msg;
	*st = o;
	return 0;
fail:
	weir_seterr(err, rc, "%s: %s", mod, weir_strerror(rc));
fail_msg:
	if (o != NULL) {
		free(o->iov);
		free(o->side);
		free(o->buf);
		free(o->hbuf);
		free(o->comment);
		free(o);
	}
	return rc;
}

static int
pcap_open(void **st, const json_t *conf, const struct weir_env *env,
    struct weir_err *err)
{
	return out_open(st, conf, env, err, 0);
}

static int
pcapng_open(void **st, const json_t *conf, const struct weir_env *env,
    struct weir_err *err)
{
	return out_open(st, conf, env, err, 1);
}

/* Append a span, merging it with the last one when they touch. */
static inline void
pcap_iov_add(struct pcap_out *o, uint8_t *b, size_t n)
{
	struct iovec *last = o->niov > 0 ? &o->iov[o->niov - 1] : NULL;

	if (last != NULL && (uint8_t *)last->iov_base + last->iov_len == b)
		last->iov_len += n;
	else {
		o->iov[o->niov].iov_base = b;
		o->iov[o->niov++].iov_len = n;
	}
}

/* 16 bytes equal?  Inline: a libc call per packet shows in profiles. */
static inline int
same16(const uint8_t *a, const uint32_t *h)
{
	uint64_t x[2], y[2];

	memcpy(x, a, 16);
	memcpy(y, h, 16);
	return ((x[0] ^ y[0]) | (x[1] ^ y[1])) == 0;
}

/* Hand what is pending to the writer; drops were counted there. */
static int
pcap_flush_iov(struct pcap_out *o)
{
	int rc = weir_fw_write(o->fw, o->iov, o->niov);

	o->niov = 0;
	o->side_len = 0;
	return rc < 0 ? rc : 0;
}

static int
pcap_packet(void *st, struct weir_batch *b)
{
	struct pcap_out *o = st;
	struct weir_pkt *p;
	uint32_t h[4], caplen;
	uint8_t *rec;
	size_t reclen;
	unsigned i;
	int reason, rc;

	for (i = 0; i < b->n; i++) {
		p = b->p[i];
		caplen = p->caplen < o->snaplen ? p->caplen : o->snaplen;
		reclen = PCAP_HDR + (size_t)caplen;
		if ((reason = weir_fw_due(o->fw, p->ts, reclen)) != 0 ||
		    o->niov == o->maxiov) {
			if ((rc = pcap_flush_iov(o)) < 0)
				return rc;
		}
		if (reason != 0) {
			weir_fw_rotate(o->fw, reason);
			o->lt_set = 0;
		}
		if (!weir_fw_active(o->fw))
			o->lt_set = 0;
		if (!o->lt_set) {
			o->linktype = p->linktype;
			o->lt_set = 1;
		} else if (p->linktype != o->linktype) {
			o->dropped_linktype++;
			continue;
		}
		if (caplen < p->caplen)
			o->truncated_snaplen++;
		h[0] = (uint32_t)(p->ts / 1000000000ULL);
		h[1] = (uint32_t)(p->ts % 1000000000ULL);
		if (!o->nano)
			h[1] /= 1000;
		h[2] = caplen;
		h[3] = p->wirelen;
		rec = p->data - PCAP_HDR;
		if (!same16(rec, h)) {
			/*
			 * Never write into the packet's memory: it may be a
			 * read-only file mapping.  A short record is copied
			 * whole; a long one gets its header from the side
			 * buffer and its data in place (two iovecs).
			 */
			if (o->niov + 2 > o->maxiov || o->side_len + PCAP_HDR +
			    (caplen <= SIDE_REC_MAX ? caplen : 0) > SIDE_BUF) {
				if ((rc = pcap_flush_iov(o)) < 0)
					return rc;
			}
			rec = o->side + o->side_len;
			memcpy(rec, h, sizeof(h));
			if (caplen <= SIDE_REC_MAX) {
				memcpy(rec + PCAP_HDR, p->data, caplen);
				o->side_len += reclen;
			} else {
				o->side_len += PCAP_HDR;
				pcap_iov_add(o, rec, PCAP_HDR);
				rec = p->data;
				reclen = caplen;
			}
		}
		pcap_iov_add(o, rec, reclen);
		weir_fw_add(o->fw, p->ts, caplen, p->wirelen, PCAP_HDR +
		    (size_t)caplen);
	}
	return pcap_flush_iov(o);
}

/* pcapng: write the buffer; forget interfaces whose IDB was lost. */
static int
ng_flush(struct pcap_out *o)
{
	struct iovec v = { o->buf, o->len };
	unsigned i;
	int rc;

	rc = weir_fw_write(o->fw, &v, o->len > 0 ? 1 : 0);
	o->len = 0;
	if (rc == 0) {
		o->idb_flushed = o->nidb;
		return 0;
	}
	for (i = o->idb_flushed; i < o->nidb; i++)
		o->map[o->order[i]] = -1;
	o->nidb = o->idb_flushed;
	return rc < 0 ? rc : 0;
}

static int
pcapng_packet(void *st, struct weir_batch *b)
{
	struct pcap_out *o = st;
	struct weir_pkt *p;
	uint32_t caplen, flags;
	size_t reclen, need, idblen, pad;
	uint8_t *e, dummy[NG_IDB_MAX];
	unsigned i;
	int reason, rc, hasflags;

	for (i = 0; i < b->n; i++) {
		p = b->p[i];
		if (p->iface >= WEIR_MAX_IFACES) {
			o->dropped_iface++;
			continue;
		}
		caplen = p->caplen;
		if (caplen > o->snaplen) {
			caplen = o->snaplen;
			o->truncated_snaplen++;
		}
		hasflags = p->dir != WEIR_DIR_UNKNOWN || p->epb_flags != 0;
		flags = p->epb_flags;
		if (p->dir != WEIR_DIR_UNKNOWN)
			flags = (flags & ~3U) | (p->dir & 3U);
		pad = pad4(caplen);
		reclen = 28 + (size_t)caplen + pad + (hasflags ? 12 : 0) + 4;
		if (!weir_fw_active(o->fw))
			ng_reset(o);
		idblen = o->map[p->iface] < 0 ? idb_put(o, dummy, p->iface,
		    p->linktype) : 0;
		if ((reason = weir_fw_due(o->fw, p->ts, reclen + idblen)) !=
		    0) {
			if ((rc = ng_flush(o)) < 0)
				return rc;
			weir_fw_rotate(o->fw, reason);
			ng_reset(o);
			idblen = idb_put(o, dummy, p->iface, p->linktype);
		}
		need = reclen + idblen;
		if (o->len + need > NG_BUF && (rc = ng_flush(o)) < 0)
			return rc;
		/* A flush that lost data may have forgotten the IDB. */
		if (o->map[p->iface] < 0) {
			idblen = idb_put(o, o->buf + o->len, p->iface,
			    p->linktype);
			o->len += idblen;
			weir_fw_add_extra(o->fw, idblen);
			o->map[p->iface] = (int16_t)o->nidb;
			o->idb_lt[o->nidb] = p->linktype;
			o->order[o->nidb++] = p->iface;
		}
		e = o->buf + o->len;
		put32(e, NG_EPB);
		put32(e + 4, (uint32_t)reclen);
		put32(e + 8, (uint32_t)o->map[p->iface]);
		put32(e + 12, (uint32_t)(p->ts >> 32));
		put32(e + 16, (uint32_t)p->ts);
		put32(e + 20, caplen);
		put32(e + 24, p->wirelen);
		memcpy(e + 28, p->data, caplen);
		memset(e + 28 + caplen, 0, pad);
		need = 28 + caplen + pad;
		if (hasflags) {
			need += put_opt(e + need, 2, &flags, 4);
			put32(e + need, 0);
			need += 4;
		}
		put32(e + need, (uint32_t)reclen);
		o->len += reclen;
		weir_fw_add(o->fw, p->ts, caplen, p->wirelen, reclen);
	}
	return ng_flush(o);
}

static int
out_tick(void *st, uint64_t now)
{
	struct pcap_out *o = st;
	int reason;

	/* Nothing is pending between packet() calls. */
	if ((reason = weir_fw_tick_due(o->fw, now)) != 0) {
		weir_fw_rotate(o->fw, reason);
		o->lt_set = 0;
		if (o->ng)
			ng_reset(o);
	}
	return 0;
}

static size_t
out_stats(void *st, struct weir_counter *c, size_t max)
{
	struct pcap_out *o = st;
	size_t n = 0;

	n = weir_fw_stats(o->fw, c, n, max);
	if (n < max) {
		c[n].name = "dropped";
		c[n++].value = weir_fw_dropped(o->fw) + o->dropped_linktype +
		    o->dropped_iface;
	}
	if (n < max) {
		c[n].name = o->ng ? "dropped_iface" : "dropped_linktype";
		c[n++].value = o->ng ? o->dropped_iface : o->dropped_linktype;
	}
	if (n < max) {
		c[n].name = "truncated_snaplen";
		c[n++].value = o->truncated_snaplen;
	}
	return n;
}

static int
out_finish(void *st, struct weir_err *err)
{
	struct pcap_out *o = st;

	return weir_fw_finish(o->fw, err);
}

static int
out_close(void *st, struct weir_err *err)
{
	struct pcap_out *o = st;
	int rc;

	if (o == NULL)
		return 0;
	rc = weir_fw_close(o->fw, err);
	if (o->dropped_linktype > 0)
		log_warn("pcap: %llu packets dropped: link type differs from "
		    "the file's", (unsigned long long)o->dropped_linktype);
	free(o->iov);
	free(o->side);
	free(o->buf);
	free(o->hbuf);
	free(o->comment);
	free(o);
	return rc;
}

const struct weir_module weir_mod_pcap = {
	.name		= "pcap",
	.kind		= WEIR_MOD_OUTPUT,
	.needs_decode	= 0,
	.check		= pcap_check,
	.open		= pcap_open,
	.packet		= pcap_packet,
	.tick		= out_tick,
	.flush		= NULL,
	.stats		= out_stats,
	.finish		= out_finish,
	.close		= out_close,
};

const struct weir_module weir_mod_pcapng = {
	.name		= "pcapng",
	.kind		= WEIR_MOD_OUTPUT,
	.needs_decode	= 0,
	.check		= pcapng_check,
	.open		= pcapng_open,
	.packet		= pcapng_packet,
	.tick		= out_tick,
	.flush		= NULL,
	.stats		= out_stats,
	.finish		= out_finish,
	.close		= out_close,
};
