/*
 * sessions.c - the "sessions" output: capstats-style counter sessions.
 * Many named BPF expressions over one pipeline, each with packets and
 * bytes per interval, in total and per direction, as JSON lines or CSV.
 * docs/sessions.md is the user's description; this comment says how.
 *
 * Intervals are those of the counters output (interval.h): [k *
 * interval, (k + 1) * interval) in packet time, the first line in the
 * first packet's interval, zero lines for empty intervals, one "gap" line
 * per session for a run of more than WEIR_IV_GAP_MAX empty ones, late
 * packets counted in the current interval.  One line per active session
 * per interval.
 *
 * Verdicts come from one bpfverdict set (a slot per session), so the cost
 * of a packet hardly grows with the number of sessions.
 *
 * Changes.  Commands (capstats' "new NAME filter EXPR", "modify NAME
 * EXPR", "stop NAME", "list") arrive through the "control" path: a FIFO
 * (opened read-write and non-blocking, so it never blocks nor reaches
 * end of file) or a regular file (read like `tail -f`).  It is read at
 * every tick and at every interval boundary.  A command never changes an
 * interval in progress: it is applied at an interval boundary, after the
 * lines of the interval that ends there are written.  So an added session
 * counts from the start of an interval, a modified one writes its last
 * line with the old expression and then counts afresh, a stopped one
 * writes its last complete line, and the other sessions are untouched.
 * A line may start with "@SECONDS" (packet time, seconds since the epoch,
 * fractional allowed): it is then applied at the first boundary at or
 * after that time, which makes runs over trace files reproducible.  A
 * command without a time is applied at the end of the current interval.
 * Every command is answered with one line ("ok ..." or "refused ...") to
 * the log and, when "reply" is set, to that file or FIFO.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "weir/log.h"
#include "weir/module.h"
#include "capture/bpfverdict.h"
#include "capture/outputs/filewriter.h"
#include "capture/outputs/interval.h"

#define MOD		"sessions"
#define NS		1000000000ULL
#define NAMEMAX		64
#define LINEMAX		4096
#define MAXPEND		4096

enum { C_NEW, C_MODIFY, C_STOP };

struct sess {
	char		 name[NAMEMAX + 1];
	char		*expr;
	int		 active;
	uint64_t	 since;		/* start of its first interval */
	uint64_t	 total_pk, total_by;	/* written lines since 'since' */
};

struct cmd {
	uint64_t	 due;		/* boundary at which it applies */
	int		 verb;
	char		 name[NAMEMAX + 1];
	char		*expr;
};

struct sess_out {
	int		 finished;	/* finish() ran */
	int		 captured;
	struct weir_iv_clock clk;
	struct weir_iv_out out;
	struct bpfv	*bv;
	unsigned	 nslots, nw, nactive;
	struct sess	*s;		/* [nslots] */
	/* The counts of the current interval, apart: the per-packet path
	 * only touches these 48 bytes per matching session. */
	struct weir_iv_counts *c;	/* [nslots] */
	uint64_t	*bits;		/* [WEIR_BATCH_MAX][nw] */
	/* control */
	int		 cfd;
	char		*cpath;
	char		 cbuf[LINEMAX + 1];
	size_t		 clen;
	int		 cskip;		/* discarding an overlong line */
	int		 rfd;
	char		*rpath;
	struct cmd	*pend;		/* [MAXPEND], sorted by due */
	unsigned	 npend;
	/* counters */
	uint64_t	 counted;
	uint64_t	 cmd_ok, cmd_refused, replies_lost;
};

static const char *const sess_keys[] = { "type", "sessions", "path",
	"format", "interval", "bytes", "control", "reply", "cache_entries",
	NULL };
static const char *const one_keys[] = { "name", "expr", NULL };
static const char *const formats[] = { "json", "csv", NULL };
static const char *const byte_kinds[] = { "wire", "captured", NULL };

/* Names are printed raw in JSON and CSV and split on spaces: keep simple. */
static int
name_ok(const char *n)
{
	size_t i;

	if (n[0] == '\0' || strlen(n) > NAMEMAX)
		return 0;
	for (i = 0; n[i] != '\0'; i++)
		if (!((n[i] >= 'a' && n[i] <= 'z') || (n[i] >= 'A' &&
		    n[i] <= 'Z') || (n[i] >= '0' && n[i] <= '9') ||
		    strchr("_-.:/+@", n[i]) != NULL))
			return 0;
	return 1;
}

static int
sess_check(json_t *conf, const json_t *policy, struct weir_err *err)
{
	struct weir_err sub;
	json_t *list, *one, *other;
	const char *name, *expr, *ctl;
	size_t i, j;
	int rc;

	if ((rc = weir_conf_known(conf, MOD, sess_keys, err)) < 0 ||
	    (rc = weir_conf_str(conf, MOD, "path", NULL, 0, NULL, err)) < 0 ||
	    (rc = weir_conf_enum(conf, MOD, "format", "json", formats, NULL,
	    err)) < 0 ||
	    (rc = weir_conf_num(conf, MOD, "interval", 1.0, 0.001,
	    31622400.0, NULL, err)) < 0 ||
	    (rc = weir_conf_enum(conf, MOD, "bytes", "wire", byte_kinds,
	    NULL, err)) < 0 ||
	    (rc = weir_conf_str(conf, MOD, "control", "", 0, &ctl, err)) < 0 ||
	    (rc = weir_conf_str(conf, MOD, "reply", "", 0, NULL, err)) < 0 ||
	    (rc = weir_conf_int(conf, MOD, "cache_entries",
	    BPFV_DEFAULT_ENTRIES, 0, 1 << 22, NULL, err)) < 0)
		return rc;
	if (json_string_value(json_object_get(conf, "path"))[0] == '\0')
		return weir_seterr(err, -WEIR_ECONFIG,
		    MOD ": 'path' must not be empty");
	if ((list = json_object_get(conf, "sessions")) == NULL) {
		list = json_array();
		json_object_set_new(conf, "sessions", list);
	}
	if (!json_is_array(list))
		return weir_seterr(err, -WEIR_ECONFIG,
		    MOD ": 'sessions' must be an array");
	if (json_array_size(list) > BPFV_MAXSLOTS)
		return weir_seterr(err, -WEIR_ECONFIG,
		    MOD ": at most %d sessions", BPFV_MAXSLOTS);
	if (json_array_size(list) == 0 && ctl[0] == '\0')
		return weir_seterr(err, -WEIR_ECONFIG,
		    MOD ": no session and no 'control' to add one");
	json_array_foreach(list, i, one) {
		if (!json_is_object(one))
			return weir_seterr(err, -WEIR_ECONFIG, MOD ": session "
			    "%zu must be an object {\"name\", \"expr\"}", i + 1);
		if ((rc = weir_conf_known(one, MOD, one_keys, err)) < 0 ||
		    (rc = weir_conf_str(one, MOD, "name", NULL, 0, &name,
		    err)) < 0 ||
		    (rc = weir_conf_str(one, MOD, "expr", "", 0, &expr,
		    err)) < 0)
			return rc;
		if (!name_ok(name))
			return weir_seterr(err, -WEIR_ECONFIG, MOD ": bad "
			    "session name '%s': 1 to %d of A-Z a-z 0-9 _-.:/+@",
			    name, NAMEMAX);
		for (j = 0; j < i; j++) {
			other = json_array_get(list, j);
			if (strcmp(json_string_value(json_object_get(other,
			    "name")), name) == 0)
				return weir_seterr(err, -WEIR_ECONFIG, MOD
				    ": session '%s' defined twice", name);
		}
		if (bpfv_check(expr, &sub) < 0)
			return weir_seterr(err, -WEIR_ECONFIG, MOD ": bad "
			    "expression '%s' of session '%s': %s", expr, name,
			    sub.msg);
	}
	return 0;
}

/* ---------------------------------------------------------------- */
/* Output lines */

/* The clock closed [start, end): a line per active session, then zero
 * counts. */
static void
sess_lines(void *arg, uint64_t start, uint64_t end, int gap)
{
	struct sess_out *o = arg;
	struct weir_iv_counts *ct;
	struct sess *s;
	unsigned i, d;

	for (i = 0; i < o->nslots; i++) {
		s = &o->s[i];
		if (!s->active)
			continue;
		ct = &o->c[i];
		if (!gap)
			for (d = 0; d < 3; d++) {
				s->total_pk += ct->pk[d];
				s->total_by += ct->by[d];
			}
		weir_iv_out_line(&o->out, s->name, start, end, ct, gap);
		memset(ct, 0, sizeof(*ct));
	}
}

/* ---------------------------------------------------------------- */
/* Control */

static void
reply(struct sess_out *o, int warn, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
reply(struct sess_out *o, int warn, const char *fmt, ...)
{
	char line[LINEMAX + 256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	if (warn)
		log_warn(MOD ": %s", line);
	else
		log_info(MOD ": %s", line);
	if (o->rfd < 0)
		return;
	line[n++] = '\n';
	if (write(o->rfd, line, (size_t)n) != n)
		o->replies_lost++;
}

static struct sess *
find(struct sess_out *o, const char *name)
{
	unsigned i;

	for (i = 0; i < o->nslots; i++)
		if (o->s[i].active && strcmp(o->s[i].name, name) == 0)
			return &o->s[i];
	return NULL;
}

static void
refuse(struct sess_out *o, const char *line, const char *why)
{
	o->cmd_refused++;
	reply(o, 1, "refused '%s': %s", line, why);
}

/* Apply one queued command at boundary t. */
static void
apply(struct sess_out *o, struct cmd *c, uint64_t t)
{
	struct weir_err err;
	struct sess *s = find(o, c->name);
	char ts[64];
	unsigned i;

	weir_fw_rfc3339(t, ts, sizeof(ts));
	switch (c->verb) {
	case C_NEW:
		if (s != NULL) {
			o->cmd_refused++;
			reply(o, 1, "refused new %s: a session of that name "
			    "exists", c->name);
			return;
		}
		for (i = 0; i < o->nslots && o->s[i].active; i++)
			;
		if (i == o->nslots) {
			o->cmd_refused++;
			reply(o, 1, "refused new %s: %u sessions already",
			    c->name, o->nslots);
			return;
		}
		s = &o->s[i];
		if (bpfv_set(o->bv, i, c->expr, &err) < 0) {
			o->cmd_refused++;
			reply(o, 1, "refused new %s: %s", c->name, err.msg);
			return;
		}
		memset(s, 0, sizeof(*s));
		memset(&o->c[i], 0, sizeof(o->c[i]));
		snprintf(s->name, sizeof(s->name), "%s", c->name);
		s->expr = c->expr;
		c->expr = NULL;
		s->active = 1;
		s->since = t;
		o->nactive++;
		o->cmd_ok++;
		reply(o, 0, "ok new %s filter %s (from %s)", s->name, s->expr,
		    ts);
		return;
	case C_MODIFY:
		if (s == NULL) {
			o->cmd_refused++;
			reply(o, 1, "refused modify %s: no such session",
			    c->name);
			return;
		}
		if (bpfv_set(o->bv, (unsigned)(s - o->s), c->expr, &err) < 0) {
			o->cmd_refused++;
			reply(o, 1, "refused modify %s: %s", c->name, err.msg);
			return;
		}
		free(s->expr);
		s->expr = c->expr;
		c->expr = NULL;
		memset(&o->c[s - o->s], 0, sizeof(o->c[0]));
		s->total_pk = s->total_by = 0;
		s->since = t;
		o->cmd_ok++;
		reply(o, 0, "ok modify %s %s (from %s)", s->name, s->expr, ts);
		return;
	default:
		if (s == NULL) {
			o->cmd_refused++;
			reply(o, 1, "refused stop %s: no such session",
			    c->name);
			return;
		}
		bpfv_unset(o->bv, (unsigned)(s - o->s));
		free(s->expr);
		s->expr = NULL;
		s->active = 0;
		o->nactive--;
		o->cmd_ok++;
		reply(o, 0, "ok stop %s (after %s)", c->name, ts);
		return;
	}
}

/* Apply, in order, every queued command due at or before t. */
static void
apply_due(struct sess_out *o, uint64_t t)
{
	unsigned i, k = 0;

	for (i = 0; i < o->npend; i++) {
		if (o->pend[i].due <= t) {
			apply(o, &o->pend[i], t);
			free(o->pend[i].expr);
		} else
			o->pend[k++] = o->pend[i];
	}
	o->npend = k;
}

static void
list(struct sess_out *o)
{
	char ts[64];
	unsigned i, n = 0;

	for (i = 0; i < o->nslots; i++) {
		if (!o->s[i].active)
			continue;
		n++;
		weir_fw_rfc3339(o->s[i].since, ts, sizeof(ts));
		reply(o, 0, "session %s filter %s since %s packets %" PRIu64
		    " bytes %" PRIu64 " %s", o->s[i].name, o->s[i].expr, ts,
		    o->s[i].total_pk + o->c[i].pk[0] + o->c[i].pk[1] +
		    o->c[i].pk[2], o->s[i].total_by + o->c[i].by[0] +
		    o->c[i].by[1] + o->c[i].by[2],
		    bpfv_slot_cached(o->bv, i) == 1 ? "cached" : "uncached");
	}
	reply(o, 0, "ok list: %u sessions, %u commands pending", n,
	    o->npend);
}

/* "@1700000000.25" -> ns; -1 when malformed. */
static int
parse_ts(const char *t, uint64_t *ns)
{
	uint64_t sec = 0, frac = 0, scale = NS;
	int digits = 0;

	for (; *t >= '0' && *t <= '9'; t++, digits++) {
		if (sec > (UINT64_MAX / NS - 10) / 10)
			return -1;
		sec = sec * 10 + (uint64_t)(*t - '0');
	}
	if (*t == '.')
		for (t++; *t >= '0' && *t <= '9'; t++, digits++)
			if (scale > 1) {
				scale /= 10;
				frac += (uint64_t)(*t - '0') * scale;
			}
	if (*t != '\0' || digits == 0)
		return -1;
	*ns = sec * NS + frac;
	return 0;
}

/* Parse one control line; queue it (or answer it, for list). */
static void
command(struct sess_out *o, char *line)
{
	struct weir_err err;
	struct cmd c;
	char orig[LINEMAX + 1], *p = line, *w, *rest;
	uint64_t ts = 0;
	unsigned i;
	int timed = 0;

	while (*p == ' ' || *p == '\t')
		p++;
	for (w = p + strlen(p); w > p && (w[-1] == ' ' || w[-1] == '\t' ||
	    w[-1] == '\r'); w--)
		w[-1] = '\0';
	if (*p == '\0' || *p == '#')
		return;
	/* strsep cuts the line up: messages quote this copy */
	snprintf(orig, sizeof(orig), "%s", p);
	line = orig;
	memset(&c, 0, sizeof(c));
	if (*p == '@') {
		w = strsep(&p, " \t");
		if (parse_ts(w + 1, &ts) < 0 || p == NULL) {
			refuse(o, line, "expected '@SECONDS COMMAND'");
			return;
		}
		timed = 1;
		while (*p == ' ' || *p == '\t')
			p++;
	}
	rest = p;
	w = strsep(&rest, " \t");
	if (strcmp(w, "list") == 0 && rest == NULL) {
		o->cmd_ok++;
		list(o);
		return;
	}
	if (strcmp(w, "new") == 0)
		c.verb = C_NEW;
	else if (strcmp(w, "modify") == 0)
		c.verb = C_MODIFY;
	else if (strcmp(w, "stop") == 0)
		c.verb = C_STOP;
	else {
		refuse(o, line, "unknown command (new NAME filter EXPR, modify "
		    "NAME EXPR, stop NAME, list)");
		return;
	}
	while (rest != NULL && (*rest == ' ' || *rest == '\t'))
		rest++;
	w = rest != NULL ? strsep(&rest, " \t") : NULL;
	if (w == NULL || !name_ok(w)) {
		refuse(o, line, "missing or bad session name (1 to 64 of "
		    "A-Z a-z 0-9 _-.:/+@)");
		return;
	}
	snprintf(c.name, sizeof(c.name), "%s", w);
	while (rest != NULL && (*rest == ' ' || *rest == '\t'))
		rest++;
	if (c.verb == C_NEW) {
		w = rest != NULL ? strsep(&rest, " \t") : NULL;
		if (w == NULL || strcmp(w, "filter") != 0) {
			refuse(o, line, "expected 'new NAME filter EXPR'");
			return;
		}
		while (rest != NULL && (*rest == ' ' || *rest == '\t'))
			rest++;
	}
	if (c.verb == C_STOP && rest != NULL && *rest != '\0') {
		refuse(o, line, "expected 'stop NAME'");
		return;
	}
	if (c.verb != C_STOP) {
		if (rest == NULL)
			rest = "";
		if (bpfv_check(rest, &err) < 0) {
			refuse(o, line, err.msg);
			return;
		}
		if ((c.expr = strdup(rest)) == NULL) {
			refuse(o, line, "out of memory");
			return;
		}
	}
	if (o->npend >= MAXPEND) {
		free(c.expr);
		refuse(o, line, "too many commands pending");
		return;
	}
	/* When: the boundary at or after ts; untimed: the next one. */
	if (timed)
		c.due = ts % o->clk.iv ? ts - ts % o->clk.iv + o->clk.iv : ts;
	if (o->clk.have && c.due <= o->clk.cur)
		c.due = o->clk.cur + o->clk.iv;
	/* Keep the queue sorted by due, arrival order within. */
	for (i = o->npend; i > 0 && o->pend[i - 1].due > c.due; i--)
		o->pend[i] = o->pend[i - 1];
	o->pend[i] = c;
	o->npend++;
	reply(o, 0, "queued '%s'", line);
}

/* Read whatever the control path holds now; never blocks. */
static void
poll_control(struct sess_out *o)
{
	char *nl, *start;
	ssize_t n;

	if (o->cfd < 0)
		return;
	for (;;) {
		n = read(o->cfd, o->cbuf + o->clen, LINEMAX - o->clen);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		o->clen += (size_t)n;
		o->cbuf[o->clen] = '\0';
		start = o->cbuf;
		while ((nl = memchr(start, '\n', o->clen -
		    (size_t)(start - o->cbuf))) != NULL) {
			*nl = '\0';
			if (o->cskip)
				o->cskip = 0;
			else if (strlen(start) != (size_t)(nl - start))
				refuse(o, "(binary)", "NUL byte in command");
			else
				command(o, start);
			start = nl + 1;
		}
		o->clen -= (size_t)(start - o->cbuf);
		memmove(o->cbuf, start, o->clen);
		if (o->clen == LINEMAX) {
			if (!o->cskip)
				refuse(o, "(too long)", "line longer than 4096 "
				    "bytes");
			o->cskip = 1;
			o->clen = 0;
		}
	}
}

/* ---------------------------------------------------------------- */
/* Intervals */

/* The clock reached boundary t: commands due there apply now. */
static void
sess_boundary(void *arg, uint64_t t)
{
	apply_due(arg, t);
}

static int
sess_packet(void *st, struct weir_batch *b)
{
	struct sess_out *o = st;
	struct weir_pkt *p;
	struct weir_iv_counts *ct;
	uint64_t k, x, len, *bits, iv = o->clk.iv;
	unsigned i, j, m, w, d;

	for (i = 0; i < b->n; i = j) {
		p = b->p[i];
		/* Commands that came in are queued before the boundary. */
		if (o->clk.have && p->ts - p->ts % iv > o->clk.cur)
			poll_control(o);
		weir_iv_place(&o->clk, p->ts);
		/*
		 * The run of packets up to the next boundary is evaluated
		 * at once: commands only ever change sessions at boundaries.
		 */
		for (j = i + 1; j < b->n; j++) {
			k = b->p[j]->ts - b->p[j]->ts % iv;
			if (k > o->clk.cur)
				break;
			if (k < o->clk.cur)
				o->clk.late++;
		}
		o->counted += j - i;
		if (o->nactive == 0)
			continue;
		bpfv_eval_batch(o->bv, b->p + i, j - i, o->bits);
		for (m = i; m < j; m++) {
			p = b->p[m];
			bits = o->bits + (size_t)(m - i) * o->nw;
			d = p->dir <= WEIR_DIR_OUT ? p->dir : WEIR_DIR_UNKNOWN;
			len = o->captured ? p->caplen : p->wirelen;
			for (w = 0; w < o->nw; w++)
				for (x = bits[w]; x != 0; x &= x - 1) {
					ct = &o->c[w * 64 +
					    (unsigned)__builtin_ctzll(x)];
					ct->pk[d]++;
					ct->by[d] += len;
				}
		}
	}
	return o->out.failed;
}

static int
sess_flush(void *st)
{
	struct sess_out *o = st;

	return weir_iv_out_flush(&o->out);
}

static int
sess_tick(void *st, uint64_t now)
{
	struct sess_out *o = st;

	poll_control(o);
	if (!o->clk.have)
		apply_due(o, 0);
	else
		weir_iv_tick(&o->clk, now);
	return sess_flush(o);
}

/* ---------------------------------------------------------------- */
/* Open, stats, close */

static void
sess_free(struct sess_out *o)
{
	unsigned i;

	if (o == NULL)
		return;
	weir_iv_out_free(&o->out);
	if (o->cfd >= 0)
		close(o->cfd);
	if (o->rfd >= 0)
		close(o->rfd);
	if (o->s != NULL)
		for (i = 0; i < o->nslots; i++)
			free(o->s[i].expr);
	if (o->pend != NULL)
		for (i = 0; i < o->npend; i++)
			free(o->pend[i].expr);
	bpfv_destroy(o->bv);
	free(o->s);
	free(o->c);
	free(o->bits);
	free(o->pend);
	free(o->cpath);
	free(o->rpath);
	free(o);
}

/* The control FIFO or file; the reply FIFO or file. */
static int
open_control(struct sess_out *o, const char *cpath, const char *rpath,
    struct weir_err *err)
{
	struct stat sb;
	int rc;

	if (cpath[0] != '\0') {
		if ((o->cpath = strdup(cpath)) == NULL)
			return weir_seterr(err, -ENOMEM, MOD ": out of memory");
		/* A FIFO opened read-write never blocks and never hits EOF. */
		if (stat(cpath, &sb) == 0 && S_ISFIFO(sb.st_mode))
			o->cfd = open(cpath, O_RDWR | O_NONBLOCK | O_CLOEXEC);
		else
			o->cfd = open(cpath, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
		if (o->cfd < 0) {
			rc = -errno;
			return weir_seterr(err, rc, MOD ": cannot open control "
			    "'%s': %s", cpath, weir_strerror(rc));
		}
	}
	if (rpath[0] != '\0') {
		if ((o->rpath = strdup(rpath)) == NULL)
			return weir_seterr(err, -ENOMEM, MOD ": out of memory");
		if (stat(rpath, &sb) == 0 && S_ISFIFO(sb.st_mode))
			o->rfd = open(rpath, O_RDWR | O_NONBLOCK | O_CLOEXEC);
		else
			o->rfd = open(rpath, O_WRONLY | O_CREAT | O_APPEND |
			    O_CLOEXEC, 0640);
		if (o->rfd < 0) {
			rc = -errno;
			return weir_seterr(err, rc, MOD ": cannot open reply "
			    "'%s': %s", rpath, weir_strerror(rc));
		}
	}
	return 0;
}

static int
sess_open(void **st, const json_t *conf, const struct weir_env *env,
    struct weir_err *err)
{
	struct sess_out *o;
	json_t *list = json_object_get(conf, "sessions"), *one;
	const char *path = json_string_value(json_object_get(conf, "path"));
	const char *fmt = json_string_value(json_object_get(conf, "format"));
	const char *bk = json_string_value(json_object_get(conf, "bytes"));
	const char *cpath = json_string_value(json_object_get(conf, "control"));
	const char *rpath = json_string_value(json_object_get(conf, "reply"));
	json_t *ce = json_object_get(conf, "cache_entries");
	unsigned i, n = (unsigned)json_array_size(list), entries;
	int rc;

	*st = NULL;
	if (path == NULL)
		return weir_seterr(err, -WEIR_ECONFIG, MOD ": 'path' is "
		    "required");
	if (cpath == NULL)
		cpath = "";
	if (rpath == NULL)
		rpath = "";
	entries = json_is_integer(ce) ? (unsigned)json_integer_value(ce) :
	    BPFV_DEFAULT_ENTRIES;
	if ((o = calloc(1, sizeof(*o))) == NULL)
		return weir_seterr(err, -ENOMEM, MOD ": out of memory");
	o->cfd = o->rfd = -1;
	o->captured = bk != NULL && strcmp(bk, "captured") == 0;
	weir_iv_init(&o->clk, weir_iv_ns(json_number_value(
	    json_object_get(conf, "interval"))), sess_lines, sess_boundary, o);
	/* Room to add sessions only when they can be added. */
	o->nslots = cpath[0] != '\0' ? BPFV_MAXSLOTS : (n > 0 ? n : 1);
	o->nw = (o->nslots + 63) / 64;
	if ((o->s = calloc(o->nslots, sizeof(*o->s))) == NULL ||
	    (o->c = calloc(o->nslots, sizeof(*o->c))) == NULL ||
	    (o->bits = calloc((size_t)WEIR_BATCH_MAX * o->nw,
	    sizeof(*o->bits))) == NULL ||
	    (o->pend = calloc(MAXPEND, sizeof(*o->pend))) == NULL) {
		rc = weir_seterr(err, -ENOMEM, MOD ": out of memory");
		goto fail;
	}
	if ((rc = bpfv_create(&o->bv, o->nslots, entries, err)) < 0)
		goto fail;
	if (env != NULL && env->ifaces != NULL)
		for (i = 0; i < env->ifaces->n && i < WEIR_MAX_IFACES; i++)
			if ((rc = bpfv_add_linktype(o->bv,
			    env->ifaces->v[i].linktype)) < 0) {
				weir_seterr(err, rc, MOD ": out of memory");
				goto fail;
			}
	json_array_foreach(list, i, one) {
		const char *name = json_string_value(json_object_get(one,
		    "name"));
		const char *expr = json_string_value(json_object_get(one,
		    "expr"));

		if (name == NULL || expr == NULL) {
			rc = weir_seterr(err, -WEIR_ECONFIG, MOD ": session %u "
			    "needs 'name' and 'expr'", i + 1);
			goto fail;
		}
		if ((rc = bpfv_set(o->bv, i, expr, err)) < 0)
			goto fail;
		snprintf(o->s[i].name, sizeof(o->s[i].name), "%s", name);
		if ((o->s[i].expr = strdup(expr)) == NULL) {
			rc = weir_seterr(err, -ENOMEM, MOD ": out of memory");
			goto fail;
		}
		o->s[i].active = 1;
		o->nactive++;
	}
	if ((rc = open_control(o, cpath, rpath, err)) < 0 ||
	    (rc = weir_iv_out_open(&o->out, MOD, path, fmt != NULL &&
	    strcmp(fmt, "csv") == 0, 1, err)) < 0)
		goto fail;
	poll_control(o);
	*st = o;
	return 0;
fail:
	sess_free(o);
	return rc;
}

static size_t
sess_stats(void *st, struct weir_counter *c, size_t max)
{
	struct sess_out *o = st;
	struct bpfv_stats bs;
	uint64_t cached = 0, uncached = 0;
	unsigned i;

	bpfv_get_stats(o->bv, &bs);
	for (i = 0; i < o->nslots; i++)
		if (o->s[i].active) {
			if (bpfv_slot_cached(o->bv, i) == 1)
				cached++;
			else
				uncached++;
		}
	{
		const struct weir_counter v[] = {
			{ "written", o->counted },
			{ "dropped", 0 },
			{ "lines", o->out.lines },
			{ "gap_lines", o->out.gaps },
			{ "late_packets", o->clk.late },
			{ "sessions", o->nactive },
			{ "cached_sessions", cached },
			{ "uncached_sessions", uncached },
			{ "cache_hits", bs.hits },
			{ "cache_misses", bs.misses },
			{ "cache_bypass", bs.bypass },
			{ "class_builds", bs.class_builds },
			{ "commands_ok", o->cmd_ok },
			{ "commands_refused", o->cmd_refused },
			{ "commands_pending", o->npend },
			{ "replies_lost", o->replies_lost },
		};

		return WEIR_COUNTERS_PUT(c, max, v);
	}
}

static int
sess_finish(void *st, struct weir_err *err)
{
	struct sess_out *o = st;

	if (o->finished)
		return 0;
	o->finished = 1;
	weir_iv_end(&o->clk);
	if (o->npend > 0)
		log_warn(MOD ": %u control commands never applied: their "
		    "time came after the last packet", o->npend);
	return weir_iv_out_close(&o->out, err);
}

static int
sess_close(void *st, struct weir_err *err)
{
	struct sess_out *o = st;
	int rc;

	if (o == NULL)
		return 0;
	rc = sess_finish(o, err);
	sess_free(o);
	return rc;
}

const struct weir_module weir_mod_sessions = {
	.name		= MOD,
	.kind		= WEIR_MOD_OUTPUT,
	.needs_decode	= 0,
	.check		= sess_check,
	.open		= sess_open,
	.packet		= sess_packet,
	.tick		= sess_tick,
	.flush		= sess_flush,
	.stats		= sess_stats,
	.finish		= sess_finish,
	.close		= sess_close,
};
