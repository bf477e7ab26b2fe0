/*
 * filewriter.c - rotating trace files for the pcap and pcapng outputs.
 *
 * A file lives in two stages.  While it is written it is ".NAME.part"
 * in its final directory; once every byte is written (and, with
 * "fsync", on stable storage) it is renamed to NAME, optionally after
 * zstd compression to NAME.zst, and then its sidecars NAME.meta.xml and
 * NAME.meta.json appear the same way, JSON last.  rename() within one
 * directory is atomic, so a reader sees either no NAME or a complete
 * one, even if this process is killed at any point; a kill leaves only
 * hidden ".part" debris behind.
 *
 * SHA-256 is computed by a helper thread that reads the committed bytes
 * back (from the page cache) while the writer goes on, so hashing costs
 * a second core rather than time on the packet path; it hashes exactly
 * the bytes of the file.
 *
 * Writes go through pwritev() at the committed offset.  After a failed
 * or short write the file is truncated back to the last committed
 * offset, so a published file always ends on a record boundary and its
 * hash covers exactly its bytes.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <zstd.h>

#include "weir/log.h"
#include "weir/priv.h"
#include "capture/outputs/filewriter.h"

#define NS		1000000000ULL
#define HOUR_NS		(3600ULL * NS)
#define DAY_NS		(86400ULL * NS)
#define ZBUF		(1024 * 1024)
#define FILE_MODE	0640
#define DIR_MODE	0750
#define NAMEBUF		(NAME_MAX + 32)

enum { PERIOD_NONE, PERIOD_HOUR, PERIOD_DAY };

static const char *const reason_names[] = {
	"none", "size", "packets", "time", "signal", "error", "end", "loss"
};
static const char *const period_names[] = { "none", "hour", "day", NULL };
static const char *const compress_names[] = { "none", "zstd", NULL };
static const char *const rotate_keys[] = { "size", "packets", "period",
	"per_period", "seconds", "max_files", "on_error", "on_loss", NULL };

/* Bumped by weir_filewriter_request_rotate(), maybe in a handler. */
static volatile sig_atomic_t rotate_gen;

struct weir_filewriter {
	const char	*mod;
	const char	*format;
	const struct weir_env *env;
	const struct weir_fw_ops *ops;
	void		*arg;

	/* Configuration. */
	char		 tmpl[PATH_MAX];
	uint64_t	 rot_size, rot_packets, per_period, seconds;
	uint64_t	 max_files;
	int		 period, on_error, compress, level, fsync, metadata;
	int		 on_loss;

	/* The logical file: records were added since the last rotation. */
	int		 active;
	sig_atomic_t	 seen_gen;
	uint64_t	 slot_start, slot_end;	/* time rotation */
	uint64_t	 start_ts;		/* for the name */
	size_t		 hdr_len;

	/* Pending: announced but not yet written. */
	uint64_t	 pend_pkts, pend_bytes, pend_cap, pend_wire;
	uint64_t	 pend_min, pend_max;

	/* The physical file. */
	int		 opened, fd, dirfd, hdr_written, hashing;
	int		 tmpl_time;		/* name has strftime parts */
	int		 publish_empty;		/* keep a file of no packets */
	int		 finished;		/* weir_fw_finish() ran */
	uint64_t	 seq, next_seq;
	char		 dir[PATH_MAX];
	char		 base[NAMEBUF];
	char		 hidden[NAMEBUF];
	char		 last_expanded[PATH_MAX];
	uint64_t	 size;			/* committed bytes */
	uint64_t	 pkts, cap, wire, ts_min, ts_max;
	EVP_MD_CTX	*sha;
	int		 failing;		/* the retry failed too */
	uint64_t	 fail_lost;		/* packets lost meanwhile */

	/*
	 * Capture losses (env->loss) when the last packet was added, when
	 * the current file's first one was, and those that lay before it.
	 */
	struct weir_loss loss_last, loss_first, loss_before;

	/* Retention: full paths of published files, oldest first. */
	char		**kept;
	size_t		 nkept;

	/* Compression. */
	ZSTD_CCtx	*zc;
	uint8_t		*zin, *zout;

	struct iovec	*scratch;		/* IOV_MAX entries */

	/* Hasher thread; h* fields under hmu, hctx its own until idle. */
	pthread_t	 hth;
	int		 hstarted;
	pthread_mutex_t	 hmu;
	pthread_cond_t	 hcv;
	int		 hfd, hquit, herr;
	uint64_t	 htarget, hdone;
	EVP_MD_CTX	*hctx;
	uint8_t		*hbuf;

	/* Counters. */
	uint64_t	 written, written_bytes, files, write_errors;
	uint64_t	 dropped_write_error, publish_errors, compress_errors;
	uint64_t	 meta_errors;
	int		 lost;			/* close() must fail */
	struct weir_err	 err;			/* first loss */
};

int
weir_filewriter_request_rotate(void)
{
	rotate_gen++;
	return 0;
}

void
weir_fw_rfc3339(uint64_t ns, char *buf, size_t len)
{
	time_t sec = (time_t)(ns / NS);
	struct tm tm;
	size_t n;

	if (gmtime_r(&sec, &tm) == NULL ||
	    (n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm)) == 0) {
		snprintf(buf, len, "invalid");
		return;
	}
	snprintf(buf + n, len - n, ".%09uZ", (unsigned)(ns % NS));
}

/*
 * Template scan: does it hold %N, does it hold a strftime conversion?
 * "%%" is a literal percent sign and neither.
 */
static void
tmpl_scan(const char *t, int *has_n, int *has_time)
{
	*has_n = *has_time = 0;
	for (; *t != '\0'; t++) {
		if (*t != '%')
			continue;
		t++;
		if (*t == '\0')
			break;
		if (*t == 'N')
			*has_n = 1;
		else if (*t != '%')
			*has_time = 1;
	}
}

/* Copy t to out with "-%N" (or sfx) before the extension of its name. */
static int
tmpl_insert(const char *t, const char *sfx, char *out, size_t len)
{
	const char *slash = strrchr(t, '/'), *base = slash ? slash + 1 : t;
	const char *dot = strrchr(base, '.');
	size_t pre;

	/* ".pcap" alone is a hidden name, not an extension. */
	if (dot == NULL || dot == base)
		dot = t + strlen(t);
	pre = (size_t)(dot - t);
	if ((size_t)snprintf(out, len, "%.*s%s%s", (int)pre, t, sfx, dot) >=
	    len)
		return -ENAMETOOLONG;
	return 0;
}

/* Replace %N by the sequence number, then strftime() in UTC. */
static int
tmpl_expand(const char *t, uint64_t seq, uint64_t ts, char *out, size_t len)
{
	char tmp[PATH_MAX], num[24];
	size_t o = 0, k;
	struct tm tm;
	time_t sec = (time_t)(ts / NS);

	snprintf(num, sizeof(num), "%06llu", (unsigned long long)seq);
	for (; *t != '\0'; t++) {
		if (t[0] == '%' && t[1] == 'N') {
			k = strlen(num);
			if (o + k >= sizeof(tmp))
				return -ENAMETOOLONG;
			memcpy(tmp + o, num, k);
			o += k;
			t++;
			continue;
		}
		if (o + 2 >= sizeof(tmp))
			return -ENAMETOOLONG;
		if (t[0] == '%' && t[1] == '%') {
			tmp[o++] = *t++;
		}
		tmp[o++] = *t;
	}
	tmp[o] = '\0';
	if (gmtime_r(&sec, &tm) == NULL)
		return -EINVAL;
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
	k = strftime(out, len, tmp, &tm);
#pragma GCC diagnostic pop
	if (k == 0)
		return -ENAMETOOLONG;
	return 0;
}

int
weir_fw_check(json_t *conf, const char *mod, struct weir_err *err)
{
	json_t *rot;
	const char *path;
	char m[64], out[PATH_MAX];
	long long size, pkts, per, secs, maxf;
	int rc, period, has_n, has_time;

	if ((rc = weir_conf_str(conf, mod, "path", NULL, 0, &path, err)) < 0)
		return rc;
	if (path[0] == '\0' || path[strlen(path) - 1] == '/')
		return weir_seterr(err, -WEIR_ECONFIG,
		    "%s: 'path' must name a file, not '%s'", mod, path);
	if ((rc = tmpl_expand(path, 0, 0, out, sizeof(out))) < 0)
		return weir_seterr(err, -WEIR_ECONFIG,
		    "%s: 'path' template '%s' does not expand", mod, path);
	tmpl_scan(path, &has_n, &has_time);

	rot = json_object_get(conf, "rotate");
	if (rot == NULL) {
		json_object_set_new(conf, "rotate", json_object());
		rot = json_object_get(conf, "rotate");
	}
	if (!json_is_object(rot))
		return weir_seterr(err, -WEIR_ECONFIG,
		    "%s: 'rotate' must be an object", mod);
	snprintf(m, sizeof(m), "%s rotate", mod);
	if ((rc = weir_conf_known(rot, m, rotate_keys, err)) < 0 ||
	    (rc = weir_conf_int(rot, m, "size", 0, 0, INT64_MAX, &size,
	    err)) < 0 ||
	    (rc = weir_conf_int(rot, m, "packets", 0, 0, INT64_MAX, &pkts,
	    err)) < 0 ||
	    (rc = weir_conf_enum(rot, m, "period", "none", period_names,
	    &period, err)) < 0 ||
	    (rc = weir_conf_int(rot, m, "per_period", 1, 1, 86400, &per,
	    err)) < 0 ||
	    (rc = weir_conf_int(rot, m, "seconds", 0, 0, 315360000LL, &secs,
	    err)) < 0 ||
	    (rc = weir_conf_int(rot, m, "max_files", 0, 0, 1000000, &maxf,
	    err)) < 0 ||
	    (rc = weir_conf_bool(rot, m, "on_error", 1, NULL, err)) < 0 ||
	    (rc = weir_conf_bool(rot, m, "on_loss", 0, NULL, err)) < 0)
		return rc;
	if (period != PERIOD_NONE && secs != 0)
		return weir_seterr(err, -WEIR_ECONFIG,
		    "%s: 'period' and 'seconds' exclude each other", m);
	if (period == PERIOD_NONE && per != 1)
		return weir_seterr(err, -WEIR_ECONFIG,
		    "%s: 'per_period' needs 'period' hour or day", m);
	if ((rc = weir_conf_enum(conf, mod, "compress", "none",
	    compress_names, NULL, err)) < 0 ||
	    (rc = weir_conf_int(conf, mod, "compress_level", 3,
	    ZSTD_minCLevel(), ZSTD_maxCLevel(), NULL, err)) < 0 ||
	    (rc = weir_conf_bool(conf, mod, "fsync", 0, NULL, err)) < 0 ||
	    (rc = weir_conf_bool(conf, mod, "metadata", 1, NULL, err)) < 0)
		return rc;
	return 0;
}

/* Hash [hdone, htarget) of hfd whenever the writer commits more. */
static void *
hasher_main(void *arg)
{
	struct weir_filewriter *fw = arg;
	uint64_t off, end;
	ssize_t n = 0;
	size_t want;
	int fd;

	pthread_mutex_lock(&fw->hmu);
	for (;;) {
		while (!fw->hquit && (fw->hfd < 0 || fw->herr != 0 ||
		    fw->hdone >= fw->htarget))
			pthread_cond_wait(&fw->hcv, &fw->hmu);
		if (fw->hquit)
			break;
		fd = fw->hfd;
		off = fw->hdone;
		end = fw->htarget;
		pthread_mutex_unlock(&fw->hmu);
		while (off < end) {
			want = end - off > ZBUF ? ZBUF : (size_t)(end - off);
			n = pread(fd, fw->hbuf, want, (off_t)off);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
			EVP_DigestUpdate(fw->hctx, fw->hbuf, (size_t)n);
			off += (uint64_t)n;
		}
		pthread_mutex_lock(&fw->hmu);
		if (off < end)
			fw->herr = n < 0 ? errno : EIO;
		fw->hdone = off;
		pthread_cond_broadcast(&fw->hcv);
	}
	pthread_mutex_unlock(&fw->hmu);
	return NULL;
}

static void
hasher_start(struct weir_filewriter *fw)
{
	fw->hfd = -1;
	if ((fw->hctx = EVP_MD_CTX_new()) == NULL ||
	    (fw->hbuf = malloc(ZBUF)) == NULL)
		goto fail;
	if (pthread_mutex_init(&fw->hmu, NULL) != 0)
		goto fail;
	if (pthread_cond_init(&fw->hcv, NULL) != 0) {
		pthread_mutex_destroy(&fw->hmu);
		goto fail;
	}
	if (weir_thread_start(&fw->hth, "weir-hasher", hasher_main, fw) != 0) {
		pthread_cond_destroy(&fw->hcv);
		pthread_mutex_destroy(&fw->hmu);
		goto fail;
	}
	fw->hstarted = 1;
	return;
fail:
	/* Not fatal: files are then hashed after they are closed. */
	log_warn("%s: no hashing thread, hashing after close", fw->mod);
}

static void
hasher_stop(struct weir_filewriter *fw)
{
	if (fw->hstarted) {
		pthread_mutex_lock(&fw->hmu);
		fw->hquit = 1;
		pthread_cond_broadcast(&fw->hcv);
		pthread_mutex_unlock(&fw->hmu);
		pthread_join(fw->hth, NULL);
		pthread_cond_destroy(&fw->hcv);
		pthread_mutex_destroy(&fw->hmu);
		fw->hstarted = 0;
	}
	EVP_MD_CTX_free(fw->hctx);
	free(fw->hbuf);
	fw->hctx = NULL;
	fw->hbuf = NULL;
}

/*
 * Tell the hasher how far the file is committed; wake it only once
 * HASH_STEP bytes wait.  A wake-up per commit cost more than the hashing
 * for slow outputs (256 weir-tap tenants: 256 hasher threads woken at
 * every batch, 13 % of all CPU samples, most of it in the scheduler);
 * what is left at close is hashed then (hasher_finish wakes it).
 */
#define HASH_STEP	(1u << 20)

static void
hasher_commit(struct weir_filewriter *fw)
{
	pthread_mutex_lock(&fw->hmu);
	fw->htarget = fw->size;
	if (fw->htarget - fw->hdone >= HASH_STEP)
		pthread_cond_signal(&fw->hcv);
	pthread_mutex_unlock(&fw->hmu);
}

/* Wait for the hasher to catch up and detach it from the file. */
static int
hasher_finish(struct weir_filewriter *fw, unsigned char *d)
{
	int e;

	pthread_mutex_lock(&fw->hmu);
	/* the rest, fewer than HASH_STEP bytes, was never signalled */
	pthread_cond_broadcast(&fw->hcv);
	while (fw->herr == 0 && fw->hdone < fw->htarget)
		pthread_cond_wait(&fw->hcv, &fw->hmu);
	e = fw->herr;
	fw->hfd = -1;
	fw->herr = 0;
	pthread_mutex_unlock(&fw->hmu);
	if (e != 0) {
		log_err("%s: cannot read back '%s/%s' to hash it: %s",
		    fw->mod, fw->dir, fw->hidden, strerror(e));
		return -e;
	}
	EVP_DigestFinal_ex(fw->hctx, d, NULL);
	return 0;
}

static long long
conf_ll(const json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

int
weir_fw_open(struct weir_filewriter **fwp, const char *mod,
    const char *format, const json_t *conf, const struct weir_env *env,
    const struct weir_fw_ops *ops, void *arg, struct weir_err *err)
{
	struct weir_filewriter *fw;
	const json_t *rot = json_object_get(conf, "rotate");
	const char *path = json_string_value(json_object_get(conf, "path"));
	const char *s;
	int has_n, has_time, rc = -ENOMEM;

	*fwp = NULL;
	if (path == NULL)
		return weir_seterr(err, -WEIR_ECONFIG, "%s: 'path' is required",
		    mod);
	if ((fw = calloc(1, sizeof(*fw))) == NULL)
		goto fail;
	fw->mod = mod;
	fw->format = format;
	fw->env = env;
	fw->ops = ops;
	fw->arg = arg;
	fw->fd = fw->dirfd = -1;
	fw->seen_gen = rotate_gen;
	fw->slot_end = UINT64_MAX;
	fw->rot_size = (uint64_t)conf_ll(rot, "size");
	fw->rot_packets = (uint64_t)conf_ll(rot, "packets");
	fw->per_period = (uint64_t)conf_ll(rot, "per_period");
	if (fw->per_period == 0)
		fw->per_period = 1;
	fw->seconds = (uint64_t)conf_ll(rot, "seconds");
	fw->max_files = (uint64_t)conf_ll(rot, "max_files");
	s = json_string_value(json_object_get(rot, "period"));
	fw->period = s == NULL ? PERIOD_NONE : strcmp(s, "hour") == 0 ?
	    PERIOD_HOUR : strcmp(s, "day") == 0 ? PERIOD_DAY : PERIOD_NONE;
	fw->on_error = !json_is_false(json_object_get(rot, "on_error"));
	fw->on_loss = json_is_true(json_object_get(rot, "on_loss"));
	s = json_string_value(json_object_get(conf, "compress"));
	fw->compress = s != NULL && strcmp(s, "zstd") == 0;
	fw->level = json_object_get(conf, "compress_level") ?
	    (int)conf_ll(conf, "compress_level") : 3;
	fw->fsync = json_is_true(json_object_get(conf, "fsync"));
	fw->metadata = !json_is_false(json_object_get(conf, "metadata"));

	/* Rotating files need distinct names: add the sequence number. */
	tmpl_scan(path, &has_n, &has_time);
	fw->tmpl_time = has_time;
	if ((fw->rot_size || fw->rot_packets || fw->period != PERIOD_NONE ||
	    fw->seconds) && !has_n && !has_time)
		rc = tmpl_insert(path, "-%N", fw->tmpl, sizeof(fw->tmpl));
	else
		rc = snprintf(fw->tmpl, sizeof(fw->tmpl), "%s", path) >=
		    (int)sizeof(fw->tmpl) ? -ENAMETOOLONG : 0;
	if (rc < 0) {
		weir_seterr(err, rc, "%s: 'path' is too long", mod);
		goto fail_msg;
	}

	rc = -ENOMEM;
	if ((fw->sha = EVP_MD_CTX_new()) == NULL)
		goto fail;
	if ((fw->scratch = calloc(IOV_MAX, sizeof(*fw->scratch))) == NULL)
		goto fail;
	if (fw->max_files > 0 && (fw->kept = calloc(fw->max_files + 1,
	    sizeof(*fw->kept))) == NULL)
		goto fail;
	if (fw->compress) {
		if ((fw->zc = ZSTD_createCCtx()) == NULL ||
		    (fw->zin = malloc(ZBUF)) == NULL ||
		    (fw->zout = malloc(ZBUF)) == NULL)
			goto fail;
	}
	if (fw->metadata && !fw->compress)
		hasher_start(fw);
	*fwp = fw;
	return 0;
fail:
	weir_seterr(err, rc, "%s: cannot set up file writer: %s", mod,
	    weir_strerror(rc));
fail_msg:
	if (fw != NULL) {
		free(fw->kept);
		free(fw->scratch);
		EVP_MD_CTX_free(fw->sha);
		ZSTD_freeCCtx(fw->zc);
		free(fw->zin);
		free(fw->zout);
		free(fw);
	}
	return rc;
}

/* Remember the first loss for close(); every error is also logged. */
static void
fw_lost(struct weir_filewriter *fw, int code, const char *what,
    const char *name)
{
	if (!fw->lost)
		weir_seterr(&fw->err, code, "%s '%s/%s': %s", what, fw->dir,
		    name, weir_strerror(code));
	fw->lost = 1;
}

/* [start, end) of the rotation slot holding ts. */
static void
fw_slot(const struct weir_filewriter *fw, uint64_t ts, uint64_t *start,
    uint64_t *end)
{
	uint64_t len, ps, off, k, n = fw->per_period;

	if (fw->seconds != 0) {
		len = fw->seconds * NS;
		*start = ts - ts % len;
		*end = *start + len;
		return;
	}
	if (fw->period == PERIOD_NONE) {
		*start = 0;
		*end = UINT64_MAX;
		return;
	}
	/*
	 * Boundaries b(k) = ps + floor(k * len / n), k = 0..n; off < len
	 * <= 8.64e13 and n <= 86400, so the products fit in 64 bits.
	 */
	len = fw->period == PERIOD_HOUR ? HOUR_NS : DAY_NS;
	ps = ts - ts % len;
	off = ts - ps;
	k = off * n / len;
	while (k > 0 && k * len / n > off)
		k--;
	while (k + 1 < n && (k + 1) * len / n <= off)
		k++;
	*start = ps + k * len / n;
	*end = ps + (k + 1) * len / n;
}

int
weir_fw_active(const struct weir_filewriter *fw)
{
	return fw->active;
}

/* Did the capture lose packets since the last packet was added? */
static int
fw_loss_new(const struct weir_filewriter *fw)
{
	const struct weir_loss *l;

	if (!fw->on_loss || fw->env == NULL || (l = fw->env->loss) == NULL)
		return 0;
	return l->kernel != fw->loss_last.kernel ||
	    l->ring != fw->loss_last.ring;
}

int
weir_fw_due(struct weir_filewriter *fw, uint64_t ts, size_t reclen)
{
	uint64_t cur;

	if (!fw->active) {
		/* A request with no file open has nothing to close. */
		fw->seen_gen = rotate_gen;
		return WEIR_FW_NONE;
	}
	if (fw->seen_gen != rotate_gen) {
		fw->seen_gen = rotate_gen;
		return WEIR_FW_SIGNAL;
	}
	/* Earlier timestamps stay in the current file: no going back. */
	if (ts >= fw->slot_end)
		return WEIR_FW_TIME;
	if (fw_loss_new(fw))
		return WEIR_FW_LOSS;
	if (fw->rot_packets != 0 && fw->pkts + fw->pend_pkts >=
	    fw->rot_packets)
		return WEIR_FW_PACKETS;
	cur = (fw->opened && fw->hdr_written ? fw->size : fw->hdr_len) +
	    fw->pend_bytes;
	if (fw->rot_size != 0 && cur + reclen > fw->rot_size)
		return WEIR_FW_SIZE;
	return WEIR_FW_NONE;
}

int
weir_fw_tick_due(struct weir_filewriter *fw, uint64_t now)
{
	if (!fw->active) {
		fw->seen_gen = rotate_gen;
		return WEIR_FW_NONE;
	}
	if (fw->seen_gen != rotate_gen) {
		fw->seen_gen = rotate_gen;
		return WEIR_FW_SIGNAL;
	}
	if (now >= fw->slot_end)
		return WEIR_FW_TIME;
	/* Close at once: the file should not stay open across the gap. */
	if (fw_loss_new(fw))
		return WEIR_FW_LOSS;
	return WEIR_FW_NONE;
}

void
weir_fw_add(struct weir_filewriter *fw, uint64_t ts, uint32_t caplen,
    uint32_t wirelen, size_t reclen)
{
	const struct weir_loss *l = fw->env != NULL ? fw->env->loss : NULL;
	const void *h;

	if (!fw->active) {
		if (l != NULL) {
			/* What was lost since the previous file's last packet. */
			fw->loss_before.kernel = l->kernel - fw->loss_last.kernel;
			fw->loss_before.ring = l->ring - fw->loss_last.ring;
			fw->loss_first = *l;
		}
		fw->active = 1;
		fw_slot(fw, ts, &fw->slot_start, &fw->slot_end);
		fw->start_ts = fw->slot_end != UINT64_MAX ? fw->slot_start :
		    ts;
		fw->hdr_len = 0;
		if (fw->ops->header(fw->arg, &h, &fw->hdr_len) < 0)
			fw->hdr_len = 0;
	}
	if (fw->pend_pkts == 0) {
		fw->pend_min = fw->pend_max = ts;
	} else {
		if (ts < fw->pend_min)
			fw->pend_min = ts;
		if (ts > fw->pend_max)
			fw->pend_max = ts;
	}
	if (l != NULL)
		fw->loss_last = *l;
	fw->pend_pkts++;
	fw->pend_bytes += reclen;
	fw->pend_cap += caplen;
	fw->pend_wire += wirelen;
}

void
weir_fw_add_extra(struct weir_filewriter *fw, size_t len)
{
	fw->pend_bytes += len;
}

static void
pend_clear(struct weir_filewriter *fw)
{
	fw->pend_pkts = fw->pend_bytes = fw->pend_cap = fw->pend_wire = 0;
}

/* mkdir -p for the directory part of a new file's name. */
static int
mkdirs(const char *dir)
{
	char p[PATH_MAX];
	size_t i, n = strlen(dir);

	if (n >= sizeof(p))
		return -ENAMETOOLONG;
	memcpy(p, dir, n + 1);
	for (i = 1; i <= n; i++) {
		if (p[i] != '/' && p[i] != '\0')
			continue;
		p[i] = '\0';
		if (mkdir(p, DIR_MODE) < 0 && errno != EEXIST)
			return -errno;
		p[i] = i < n ? '/' : '\0';
	}
	return 0;
}

/* Name, create and open the hidden file for the logical file. */
static int
fw_open_file(struct weir_filewriter *fw)
{
	char exp[PATH_MAX], name[PATH_MAX], *slash;
	int rc;

	fw->seq = fw->next_seq++;
	if ((rc = tmpl_expand(fw->tmpl, fw->seq, fw->start_ts, exp,
	    sizeof(exp))) < 0)
		goto name_fail;
	/*
	 * Rotation on error or signal can start two files in one time slot
	 * of a strftime-only template: keep both by adding the number.
	 */
	if (strcmp(exp, fw->last_expanded) == 0) {
		if ((rc = tmpl_insert(fw->tmpl, "-%N", name, sizeof(name))) <
		    0 || (rc = tmpl_expand(name, fw->seq, fw->start_ts, name,
		    sizeof(name))) < 0)
			goto name_fail;
	} else
		memcpy(name, exp, sizeof(name));
	memcpy(fw->last_expanded, exp, sizeof(exp));

	if ((slash = strrchr(name, '/')) == NULL)
		snprintf(fw->dir, sizeof(fw->dir), ".");
	else if (slash == name)
		snprintf(fw->dir, sizeof(fw->dir), "/");
	else
		snprintf(fw->dir, sizeof(fw->dir), "%.*s",
		    (int)(slash - name), name);
	slash = slash ? slash + 1 : name;
	/* Room for the longest sibling: ".NAME.zst.meta.json.part". */
	if (strlen(slash) + sizeof(".zst.meta.json.part") > NAME_MAX) {
		rc = -ENAMETOOLONG;
		goto name_fail;
	}
	if (snprintf(fw->base, sizeof(fw->base), "%s", slash) >=
	    (int)sizeof(fw->base) || snprintf(fw->hidden, sizeof(fw->hidden),
	    ".%s.part", fw->base) >= (int)sizeof(fw->hidden)) {
		rc = -ENAMETOOLONG;
		goto name_fail;
	}

	if ((rc = mkdirs(fw->dir)) < 0) {
		log_err("%s: cannot create directory '%s': %s", fw->mod,
		    fw->dir, weir_strerror(rc));
		return rc;
	}
	fw->dirfd = open(fw->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fw->dirfd < 0) {
		rc = -errno;
		log_err("%s: cannot open directory '%s': %s", fw->mod,
		    fw->dir, weir_strerror(rc));
		return rc;
	}
	/* Read access for the hasher thread. */
	fw->fd = openat(fw->dirfd, fw->hidden, O_RDWR | O_CREAT | O_TRUNC |
	    O_CLOEXEC, FILE_MODE);
	if (fw->fd < 0) {
		rc = -errno;
		log_err("%s: cannot create '%s/%s': %s", fw->mod, fw->dir,
		    fw->hidden, weir_strerror(rc));
		close(fw->dirfd);
		fw->dirfd = -1;
		return rc;
	}
	fw->opened = 1;
	fw->hdr_written = 0;
	fw->size = fw->pkts = fw->cap = fw->wire = 0;
	fw->hashing = fw->hstarted && EVP_DigestInit_ex(fw->hctx,
	    EVP_sha256(), NULL) == 1;
	if (fw->hashing) {
		pthread_mutex_lock(&fw->hmu);
		fw->hfd = fw->fd;
		fw->hdone = fw->htarget = 0;
		fw->herr = 0;
		pthread_mutex_unlock(&fw->hmu);
	}
	return 0;
name_fail:
	log_err("%s: cannot make a file name from '%s': %s", fw->mod,
	    fw->tmpl, weir_strerror(rc));
	return rc;
}

/* pwritev() every byte of v[0..n) at *off; v is consumed. */
static int
pwrite_all(int fd, struct iovec *v, int n, uint64_t *off)
{
	ssize_t w;

	while (n > 0) {
		w = pwritev(fd, v, n, (off_t)*off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (w == 0)
			return -EIO;
		*off += (uint64_t)w;
		while (n > 0 && (size_t)w >= v->iov_len) {
			w -= (ssize_t)v->iov_len;
			v++;
			n--;
		}
		if (n > 0) {
			v->iov_base = (char *)v->iov_base + w;
			v->iov_len -= (size_t)w;
		}
	}
	return 0;
}

/*
 * Write [header] + iov at the committed offset, IOV_MAX at a time.  On
 * failure cut the file back to the committed offset.
 */
static int
fw_put(struct weir_filewriter *fw, const struct iovec *iov, int niov)
{
	const void *hbuf = NULL;
	size_t hlen = 0;
	uint64_t off = fw->size;
	int i = 0, k, rc;

	if (!fw->hdr_written) {
		if ((rc = fw->ops->header(fw->arg, &hbuf, &hlen)) < 0)
			return rc;
	}
	k = 0;
	if (hlen > 0) {
		fw->scratch[k].iov_base = (void *)(uintptr_t)hbuf;
		fw->scratch[k++].iov_len = hlen;
	}
	for (;;) {
		while (k < IOV_MAX && i < niov)
			fw->scratch[k++] = iov[i++];
		if (k == 0)
			break;
		if ((rc = pwrite_all(fw->fd, fw->scratch, k, &off)) < 0) {
			if (ftruncate(fw->fd, (off_t)fw->size) < 0) {
				log_err("%s: cannot cut '%s/%s' back to %llu "
				    "bytes: %s", fw->mod, fw->dir, fw->hidden,
				    (unsigned long long)fw->size,
				    strerror(errno));
				fw_lost(fw, -errno, "cannot repair",
				    fw->hidden);
			}
			return rc;
		}
		k = 0;
	}
	fw->hdr_written = 1;
	fw->size = off;
	if (fw->hashing)
		hasher_commit(fw);
	return 0;
}

static void
fw_commit(struct weir_filewriter *fw)
{
	if (fw->pkts == 0) {
		fw->ts_min = fw->pend_min;
		fw->ts_max = fw->pend_max;
	} else {
		if (fw->pend_min < fw->ts_min)
			fw->ts_min = fw->pend_min;
		if (fw->pend_max > fw->ts_max)
			fw->ts_max = fw->pend_max;
	}
	fw->pkts += fw->pend_pkts;
	fw->cap += fw->pend_cap;
	fw->wire += fw->pend_wire;
	fw->written += fw->pend_pkts;
	fw->written_bytes += fw->pend_cap;
	pend_clear(fw);
}

static int	fw_publish(struct weir_filewriter *, int);

/* Open (if needed) and write; a negative code on failure. */
static int
fw_try(struct weir_filewriter *fw, const struct iovec *iov, int niov)
{
	int rc;

	if (!fw->opened && (rc = fw_open_file(fw)) < 0)
		return rc;	/* logged */
	if ((rc = fw_put(fw, iov, niov)) < 0) {
		if (fw->failing)
			return rc;	/* logged when the failure began */
		log_err("%s: cannot write '%s/%s' at offset %llu: %s",
		    fw->mod, fw->dir, fw->hidden,
		    (unsigned long long)fw->size, weir_strerror(rc));
		return rc;
	}
	return 0;
}

int
weir_fw_write(struct weir_filewriter *fw, const struct iovec *iov, int niov)
{
	uint64_t n;
	int rc;

	if (fw->pend_pkts == 0 && fw->pend_bytes == 0)
		return 0;
	if ((rc = fw_try(fw, iov, niov)) == 0) {
		if (fw->failing)
			log_warn("%s: writing '%s/%s' again after losing "
			    "%llu packets", fw->mod, fw->dir, fw->hidden,
			    (unsigned long long)fw->fail_lost);
		fw->failing = 0;
		fw->fail_lost = 0;
		fw_commit(fw);
		return 0;
	}
	fw->write_errors++;
	if (fw->on_error && !fw->failing) {
		/* Publish what is complete, then retry once in a new file. */
		if (fw->opened)
			fw_publish(fw, WEIR_FW_ERROR);
		if ((rc = fw_try(fw, iov, niov)) == 0) {
			log_warn("%s: rotated after a write error, continuing "
			    "in '%s/%s'", fw->mod, fw->dir, fw->hidden);
			fw_commit(fw);
			return 0;
		}
		fw->write_errors++;
		fw->failing = 1;
	}
	n = fw->pend_pkts;
	fw->dropped_write_error += n;
	fw->fail_lost += n;
	fw_lost(fw, rc, "cannot write", fw->hidden);
	if (fw->fail_lost == n)
		log_err("%s: %llu packets lost, dropping until a write "
		    "succeeds: %s", fw->mod, (unsigned long long)n,
		    weir_strerror(rc));
	pend_clear(fw);
	if (!fw->on_error)
		return rc;
	return n > INT32_MAX ? INT32_MAX : (int)n;
}

/* Write data to a hidden sibling, then rename it to final + suffix. */
static int
fw_sidecar(struct weir_filewriter *fw, const char *final, const char *sfx,
    const char *data, size_t len)
{
	char hidden[2 * NAMEBUF], name[2 * NAMEBUF];
	struct iovec v;
	uint64_t off = 0;
	int fd, rc;

	snprintf(hidden, sizeof(hidden), ".%s%s.part", final, sfx);
	snprintf(name, sizeof(name), "%s%s", final, sfx);
	fd = openat(fw->dirfd, hidden, O_WRONLY | O_CREAT | O_TRUNC |
	    O_CLOEXEC, FILE_MODE);
	if (fd < 0) {
		rc = -errno;
		goto fail;
	}
	v.iov_base = (void *)(uintptr_t)data;
	v.iov_len = len;
	rc = pwrite_all(fd, &v, 1, &off);
	if (rc == 0 && fw->fsync && fsync(fd) < 0)
		rc = -errno;
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && renameat(fw->dirfd, hidden, fw->dirfd, name) < 0)
		rc = -errno;
	if (rc == 0)
		return 0;
	unlinkat(fw->dirfd, hidden, 0);
fail:
	log_err("%s: cannot write metadata '%s/%s': %s", fw->mod, fw->dir,
	    name, weir_strerror(rc));
	fw->meta_errors++;
	return rc;
}

/*
 * Compress the closed hidden file into ".NAME.zst.part", hashing the
 * output (and the input for the record), then drop the input.
 */
static int
fw_compress(struct weir_filewriter *fw, const char *zhidden,
    unsigned char *zsha, unsigned char *usha, uint64_t *zsize)
{
	EVP_MD_CTX *u = NULL;
	ZSTD_inBuffer in;
	ZSTD_outBuffer out;
	struct iovec v;
	ssize_t n;
	size_t r;
	uint64_t off = 0;
	int ifd, ofd = -1, rc = 0, end;

	ifd = openat(fw->dirfd, fw->hidden, O_RDONLY | O_CLOEXEC);
	if (ifd < 0)
		return -errno;
	ofd = openat(fw->dirfd, zhidden, O_WRONLY | O_CREAT | O_TRUNC |
	    O_CLOEXEC, FILE_MODE);
	if (ofd < 0) {
		rc = -errno;
		goto done;
	}
	if (fw->metadata) {
		if ((u = EVP_MD_CTX_new()) == NULL ||
		    EVP_DigestInit_ex(u, EVP_sha256(), NULL) != 1 ||
		    EVP_DigestInit_ex(fw->sha, EVP_sha256(), NULL) != 1) {
			rc = -ENOMEM;
			goto done;
		}
	}
	ZSTD_CCtx_reset(fw->zc, ZSTD_reset_session_and_parameters);
	if (ZSTD_isError(ZSTD_CCtx_setParameter(fw->zc,
	    ZSTD_c_compressionLevel, fw->level)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(fw->zc, ZSTD_c_checksumFlag,
	    1)) ||
	    ZSTD_isError(ZSTD_CCtx_setPledgedSrcSize(fw->zc, fw->size))) {
		rc = -EINVAL;
		goto done;
	}
	do {
		n = read(ifd, fw->zin, ZBUF);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			goto done;
		}
		if (u != NULL && n > 0)
			EVP_DigestUpdate(u, fw->zin, (size_t)n);
		end = n == 0;
		in.src = fw->zin;
		in.size = (size_t)n;
		in.pos = 0;
		do {
			out.dst = fw->zout;
			out.size = ZBUF;
			out.pos = 0;
			r = ZSTD_compressStream2(fw->zc, &out, &in, end ?
			    ZSTD_e_end : ZSTD_e_continue);
			if (ZSTD_isError(r)) {
				log_err("%s: zstd: %s", fw->mod,
				    ZSTD_getErrorName(r));
				rc = -EIO;
				goto done;
			}
			v.iov_base = fw->zout;
			v.iov_len = out.pos;
			if (out.pos > 0 && (rc = pwrite_all(ofd, &v, 1,
			    &off)) < 0)
				goto done;
			if (u != NULL)
				EVP_DigestUpdate(fw->sha, fw->zout, out.pos);
		} while (end ? r != 0 : in.pos < in.size);
	} while (!end);
	if (fw->fsync && fsync(ofd) < 0) {
		rc = -errno;
		goto done;
	}
	if (u != NULL) {
		EVP_DigestFinal_ex(u, usha, NULL);
		EVP_DigestFinal_ex(fw->sha, zsha, NULL);
	}
	*zsize = off;
done:
	EVP_MD_CTX_free(u);
	if (ofd >= 0 && close(ofd) < 0 && rc == 0)
		rc = -errno;
	close(ifd);
	if (rc < 0) {
		log_err("%s: cannot compress '%s/%s' into '%s': %s", fw->mod,
		    fw->dir, fw->hidden, zhidden, weir_strerror(rc));
		unlinkat(fw->dirfd, zhidden, 0);
		return rc;
	}
	unlinkat(fw->dirfd, fw->hidden, 0);
	return 0;
}

static void
hex(const unsigned char *d, size_t n, char *out)
{
	static const char x[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = x[d[i] >> 4];
		out[2 * i + 1] = x[d[i] & 15];
	}
	out[2 * n] = '\0';
}

/* SHA-256 of a published file, when it was not hashed while written. */
static void
fw_rehash(struct weir_filewriter *fw, const char *final, char *out)
{
	unsigned char d[EVP_MAX_MD_SIZE];
	uint8_t *buf;
	ssize_t n;
	int fd = -1;

	if ((buf = malloc(ZBUF)) == NULL ||
	    (fd = openat(fw->dirfd, final, O_RDONLY | O_CLOEXEC)) < 0 ||
	    EVP_DigestInit_ex(fw->sha, EVP_sha256(), NULL) != 1)
		goto fail;
	while ((n = read(fd, buf, ZBUF)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			goto fail;
		}
		EVP_DigestUpdate(fw->sha, buf, (size_t)n);
	}
	close(fd);
	free(buf);
	EVP_DigestFinal_ex(fw->sha, d, NULL);
	hex(d, 32, out);
	return;
fail:
	log_err("%s: cannot hash '%s/%s': %s", fw->mod, fw->dir, final,
	    strerror(errno));
	if (fd >= 0)
		close(fd);
	free(buf);
}

static void
set_ts(json_t *doc, const char *key, uint64_t ns)
{
	char buf[64], k[32];

	weir_fw_rfc3339(ns, buf, sizeof(buf));
	json_object_set_new(doc, key, json_string(buf));
	snprintf(k, sizeof(k), "%s_ns", key);
	json_object_set_new(doc, k, json_integer((json_int_t)ns));
}

/* XML 1.0 escaping; characters XML cannot carry become U+FFFD. */
static void
xml_text(FILE *f, const char *s, int attr)
{
	const unsigned char *p = (const unsigned char *)s;

	for (; *p != '\0'; p++) {
		switch (*p) {
		case '&':
			fputs("&amp;", f);
			continue;
		case '<':
			fputs("&lt;", f);
			continue;
		case '>':
			fputs("&gt;", f);
			continue;
		case '"':
			fputs(attr ? "&quot;" : "\"", f);
			continue;
		case '\t':
		case '\n':
		case '\r':
			if (attr)
				fprintf(f, "&#%d;", *p);
			else
				fputc(*p, f);
			continue;
		}
		if (*p < 0x20) {
			fputs("\xef\xbf\xbd", f);
			continue;
		}
		/* U+FFFE and U+FFFF are not XML characters either. */
		if (p[0] == 0xef && p[1] == 0xbf && (p[2] == 0xbe ||
		    p[2] == 0xbf)) {
			fputs("\xef\xbf\xbd", f);
			p += 2;
			continue;
		}
		fputc(*p, f);
	}
}

/* A key usable as an element name as is (ASCII subset of Name). */
static int
xml_name_ok(const char *k)
{
	const char *p;

	if (!((*k >= 'a' && *k <= 'z') || (*k >= 'A' && *k <= 'Z') ||
	    *k == '_') || strncasecmp(k, "xml", 3) == 0 || strlen(k) > 64)
		return 0;
	for (p = k; *p != '\0'; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '_' || *p == '-' ||
		    *p == '.'))
			return 0;
	return 1;
}

static void
xml_value(FILE *f, const char *key, const json_t *v, int depth)
{
	const char *name = key != NULL && xml_name_ok(key) ? key : "item";
	const char *k;
	json_t *c;
	size_t i;

	fprintf(f, "%*s<%s", depth * 2, "", name);
	if (key != NULL && name != key) {
		fputs(" key=\"", f);
		xml_text(f, key, 1);
		fputc('"', f);
	}
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		fputs(">\n", f);
		json_object_foreach((json_t *)(uintptr_t)v, k, c)
			xml_value(f, k, c, depth + 1);
		fprintf(f, "%*s</%s>\n", depth * 2, "", name);
		return;
	case JSON_ARRAY:
		fputs(" type=\"array\">\n", f);
		json_array_foreach(v, i, c)
			xml_value(f, NULL, c, depth + 1);
		fprintf(f, "%*s</%s>\n", depth * 2, "", name);
		return;
	case JSON_STRING:
		fputc('>', f);
		xml_text(f, json_string_value(v), 0);
		break;
	case JSON_INTEGER:
		fprintf(f, ">%lld", (long long)json_integer_value(v));
		break;
	case JSON_REAL:
		fprintf(f, ">%.17g", json_real_value(v));
		break;
	case JSON_TRUE:
		fputs(">true", f);
		break;
	case JSON_FALSE:
		fputs(">false", f);
		break;
	default:
		fputs(" null=\"true\"/>\n", f);
		return;
	}
	fprintf(f, "</%s>\n", name);
}

static char *
xml_doc(const json_t *doc, size_t *len)
{
	const char *k;
	json_t *c;
	char *buf = NULL;
	FILE *f;

	if ((f = open_memstream(&buf, len)) == NULL)
		return NULL;
	fputs("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	    "<weir-metadata version=\"1\">\n", f);
	json_object_foreach((json_t *)(uintptr_t)doc, k, c)
		xml_value(f, k, c, 1);
	fputs("</weir-metadata>\n", f);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

/*
 * Capture losses around this file (docs/outputs.md): before its first
 * packet (since the previous file's last one, or since the start),
 * between its first and last packets, and at the end of input after its
 * last packet.
 */
static void
fw_meta_loss(const struct weir_filewriter *fw, json_t *doc, int reason)
{
	const struct weir_loss *l = fw->env->loss;
	uint64_t within = 0, after;

	json_object_set_new(doc, "lost_before", json_integer((json_int_t)
	    (fw->loss_before.kernel + fw->loss_before.ring)));
	json_object_set_new(doc, "lost_before_kernel",
	    json_integer((json_int_t)fw->loss_before.kernel));
	json_object_set_new(doc, "lost_before_ring",
	    json_integer((json_int_t)fw->loss_before.ring));
	if (fw->pkts > 0)
		within = fw->loss_last.kernel - fw->loss_first.kernel +
		    fw->loss_last.ring - fw->loss_first.ring;
	json_object_set_new(doc, "lost_within",
	    json_integer((json_int_t)within));
	if (reason == WEIR_FW_END) {
		after = l->kernel - fw->loss_last.kernel + l->ring -
		    fw->loss_last.ring;
		json_object_set_new(doc, "lost_after",
		    json_integer((json_int_t)after));
	}
}

static void
fw_write_meta(struct weir_filewriter *fw, const char *final, int reason,
    uint64_t fsize, const char *sha, int zstd, uint64_t usize,
    const char *usha)
{
	const json_t *user;
	json_t *doc, *drops;
	char path[PATH_MAX + NAMEBUF + 2], now[64], *js, *nl, *xml;
	struct timespec tp;
	size_t xlen;

	doc = json_object();
	json_object_set_new(doc, "weir_metadata", json_integer(1));
	json_object_set_new(doc, "experiment", json_string(
	    fw->env && fw->env->exp_name ? fw->env->exp_name : ""));
	json_object_set_new(doc, "output", json_string(fw->mod));
	json_object_set_new(doc, "format", json_string(fw->format));
	json_object_set_new(doc, "file", json_string(final));
	snprintf(path, sizeof(path), "%s/%s", fw->dir, final);
	json_object_set_new(doc, "path", json_string(path));
	json_object_set_new(doc, "sequence", json_integer((json_int_t)fw->seq));
	json_object_set_new(doc, "reason", json_string(reason_names[reason]));
	if (fw->pkts > 0) {
		set_ts(doc, "first_ts", fw->ts_min);
		set_ts(doc, "last_ts", fw->ts_max);
	}
	json_object_set_new(doc, "packets", json_integer((json_int_t)fw->pkts));
	json_object_set_new(doc, "bytes", json_integer((json_int_t)fw->cap));
	json_object_set_new(doc, "wire_bytes",
	    json_integer((json_int_t)fw->wire));
	json_object_set_new(doc, "file_size", json_integer((json_int_t)fsize));
	json_object_set_new(doc, "sha256", json_string(sha));
	json_object_set_new(doc, "compression",
	    json_string(zstd ? "zstd" : "none"));
	if (zstd) {
		json_object_set_new(doc, "compress_level",
		    json_integer(fw->level));
		json_object_set_new(doc, "uncompressed_size",
		    json_integer((json_int_t)usize));
		json_object_set_new(doc, "uncompressed_sha256",
		    json_string(usha));
	}
	clock_gettime(CLOCK_REALTIME, &tp);
	weir_fw_rfc3339((uint64_t)tp.tv_sec * NS + (uint64_t)tp.tv_nsec, now,
	    sizeof(now));
	json_object_set_new(doc, "closed_at", json_string(now));
	drops = json_object();
	json_object_set_new(drops, "dropped_write_error",
	    json_integer((json_int_t)fw->dropped_write_error));
	json_object_set_new(doc, "drops", drops);
	if (fw->env != NULL && fw->env->loss != NULL)
		fw_meta_loss(fw, doc, reason);
	if (fw->ops->meta != NULL)
		fw->ops->meta(fw->arg, doc);
	if (fw->env != NULL && fw->env->pipeline_stats != NULL)
		json_object_set_new(doc, "pipeline",
		    fw->env->pipeline_stats(fw->env->pl));
	if (fw->env != NULL && fw->env->exp != NULL) {
		user = json_object_get(fw->env->exp, "metadata");
		if (user != NULL)
			json_object_set_new(doc, "metadata",
			    json_deep_copy(user));
		json_object_set_new(doc, "config",
		    json_deep_copy(fw->env->exp));
	}

	/* XML first: the JSON sidecar is the last thing to appear. */
	if ((xml = xml_doc(doc, &xlen)) == NULL) {
		log_err("%s: cannot build XML metadata for '%s'", fw->mod,
		    final);
		fw->meta_errors++;
	} else {
		fw_sidecar(fw, final, ".meta.xml", xml, xlen);
		free(xml);
	}
	if ((js = json_dumps(doc, JSON_INDENT(2))) == NULL ||
	    (nl = realloc(js, strlen(js) + 2)) == NULL) {
		free(js);
		log_err("%s: cannot build JSON metadata for '%s'", fw->mod,
		    final);
		fw->meta_errors++;
	} else {
		/* json_dumps() ends without a newline; files should not. */
		js = nl;
		strcat(js, "\n");
		fw_sidecar(fw, final, ".meta.json", js, strlen(js));
		free(js);
	}
	json_decref(doc);
}

/* Keep at most max_files published files, deleting the oldest. */
static void
fw_retain(struct weir_filewriter *fw, const char *final)
{
	static const char *const sfx[] = { ".meta.json", ".meta.xml", "" };
	char p[PATH_MAX + 2 * NAMEBUF];
	size_t i;

	if (fw->max_files == 0)
		return;
	snprintf(p, sizeof(p), "%s/%s", fw->dir, final);
	if ((fw->kept[fw->nkept] = strdup(p)) == NULL) {
		log_err("%s: out of memory, '%s' will not be rotated away",
		    fw->mod, p);
		return;
	}
	fw->nkept++;
	while (fw->nkept > fw->max_files) {
		/* Sidecars first: the JSON marks a file as complete. */
		for (i = 0; i < 3; i++) {
			snprintf(p, sizeof(p), "%s%s", fw->kept[0], sfx[i]);
			if (unlink(p) < 0 && errno != ENOENT)
				log_err("%s: cannot remove old file '%s': %s",
				    fw->mod, p, strerror(errno));
		}
		log_info("%s: removed '%s' (max_files %llu)", fw->mod,
		    fw->kept[0], (unsigned long long)fw->max_files);
		free(fw->kept[0]);
		memmove(fw->kept, fw->kept + 1, (fw->nkept - 1) *
		    sizeof(*fw->kept));
		fw->nkept--;
	}
}

/*
 * Close, compress, rename into place, write sidecars, apply retention.
 * Leaves the logical state (pending, slot) alone.
 */
static int
fw_publish(struct weir_filewriter *fw, int reason)
{
	unsigned char d[EVP_MAX_MD_SIZE], ud[EVP_MAX_MD_SIZE];
	char final[NAMEBUF], zhidden[NAMEBUF];
	char sha[2 * EVP_MAX_MD_SIZE + 1] = "", usha[2 * EVP_MAX_MD_SIZE + 1];
	uint64_t fsize = fw->size, usize = fw->size;
	int rc = 0, zstd = 0;

	if (!fw->opened)
		return 0;
	fw->opened = 0;
	/* The hasher reads through fd: detach it before closing. */
	if (fw->hashing) {
		if (hasher_finish(fw, d) == 0 && (fw->pkts > 0 ||
		    fw->publish_empty))
			hex(d, 32, sha);
		fw->hashing = 0;
	}
	if (fw->pkts == 0 && !fw->publish_empty) {
		/* Nothing complete was written: no file, no sidecar. */
		close(fw->fd);
		unlinkat(fw->dirfd, fw->hidden, 0);
		goto out;
	}
	if (fw->fsync && fsync(fw->fd) < 0)
		rc = -errno;
	if (close(fw->fd) < 0 && rc == 0)
		rc = -errno;
	if (rc < 0) {
		log_err("%s: cannot finish '%s/%s': %s", fw->mod, fw->dir,
		    fw->hidden, weir_strerror(rc));
		goto lost;
	}
	memcpy(final, fw->base, sizeof(final));
	if (fw->compress) {
		if (snprintf(zhidden, sizeof(zhidden), ".%s.zst.part",
		    fw->base) < (int)sizeof(fw->hidden) &&
		    snprintf(final, sizeof(final), "%s.zst", fw->base) <
		    (int)sizeof(final) &&
		    fw_compress(fw, zhidden, d, ud, &fsize) == 0) {
			zstd = 1;
			memcpy(fw->hidden, zhidden, sizeof(fw->hidden));
			if (fw->metadata) {
				hex(d, 32, sha);
				hex(ud, 32, usha);
			}
		} else {
			/* Keep the data: publish it uncompressed. */
			memcpy(final, fw->base, sizeof(fw->base));
			fw->compress_errors++;
			fsize = fw->size;
		}
	}
	if (renameat(fw->dirfd, fw->hidden, fw->dirfd, final) < 0) {
		rc = -errno;
		log_err("%s: cannot rename '%s/%s' to '%s': %s", fw->mod,
		    fw->dir, fw->hidden, final, weir_strerror(rc));
		goto lost;
	}
	if (fw->fsync && fsync(fw->dirfd) < 0)
		log_err("%s: cannot sync directory '%s': %s", fw->mod,
		    fw->dir, strerror(errno));
	if (fw->metadata) {
		/* No hash yet: compression failed, or no hasher. */
		if (zstd == 0 && sha[0] == '\0')
			fw_rehash(fw, final, sha);
		fw_write_meta(fw, final, reason, fsize, sha, zstd, usize,
		    usha);
	}
	fw->files++;
	log_info("%s: closed '%s/%s' (%s, %llu packets)", fw->mod, fw->dir,
	    final, reason_names[reason], (unsigned long long)fw->pkts);
	fw_retain(fw, final);
	goto out;
lost:
	fw->publish_errors++;
	fw_lost(fw, rc, "cannot publish", fw->hidden);
out:
	close(fw->dirfd);
	fw->fd = fw->dirfd = -1;
	fw->pkts = fw->cap = fw->wire = fw->size = 0;
	/* A file that continues this one (on_error) starts with no gap. */
	fw->loss_before.kernel = fw->loss_before.ring = 0;
	return rc;
}

int
weir_fw_rotate(struct weir_filewriter *fw, int reason)
{
	int rc;

	if (fw->pend_pkts != 0 || fw->pend_bytes != 0) {
		/* A format bug; never lose the count silently. */
		log_err("%s: %llu packets pending at rotation, dropped",
		    fw->mod, (unsigned long long)fw->pend_pkts);
		fw->dropped_write_error += fw->pend_pkts;
		pend_clear(fw);
	}
	rc = fw_publish(fw, reason);
	fw->active = 0;
	fw->slot_end = UINT64_MAX;
	fw->failing = 0;
	return rc;
}

uint64_t
weir_fw_dropped(const struct weir_filewriter *fw)
{
	return fw->dropped_write_error;
}

size_t
weir_fw_stats(const struct weir_filewriter *fw, struct weir_counter *c,
    size_t n, size_t max)
{
	const struct weir_counter v[] = {
		{ "written", fw->written },
		{ "written_bytes", fw->written_bytes },
		{ "files", fw->files },
		{ "write_errors", fw->write_errors },
		{ "dropped_write_error", fw->dropped_write_error },
		{ "publish_errors", fw->publish_errors },
		{ "compress_errors", fw->compress_errors },
		{ "meta_errors", fw->meta_errors },
	};
	size_t i;

	for (i = 0; i < sizeof(v) / sizeof(v[0]) && n < max; i++)
		c[n++] = v[i];
	return n;
}

int
weir_fw_finish(struct weir_filewriter *fw, struct weir_err *err)
{
	int rc = 0;

	if (fw == NULL || fw->finished)
		return 0;
	fw->finished = 1;
	/*
	 * Like tcpdump -w, an output that saw no packet still leaves a
	 * valid empty file, unless its name depends on packet time.
	 */
	if (!fw->active && fw->next_seq == 0 && !fw->tmpl_time) {
		fw->active = 1;
		fw->slot_start = 0;
		fw->slot_end = UINT64_MAX;
		fw->start_ts = 0;
		fw->publish_empty = 1;
		if (fw_try(fw, NULL, 0) < 0)
			fw->active = 0;
	}
	if (fw->active)
		weir_fw_rotate(fw, WEIR_FW_END);
	if (fw->lost) {
		rc = -EIO;
		weir_seterr(err, rc, "%s: %llu packets lost, %llu files not "
		    "published; first: %s", fw->mod,
		    (unsigned long long)fw->dropped_write_error,
		    (unsigned long long)fw->publish_errors, fw->err.msg);
	}
	return rc;
}

int
weir_fw_close(struct weir_filewriter *fw, struct weir_err *err)
{
	size_t i;
	int rc;

	if (fw == NULL)
		return 0;
	rc = weir_fw_finish(fw, err);
	hasher_stop(fw);
	for (i = 0; i < fw->nkept; i++)
		free(fw->kept[i]);
	free(fw->kept);
	free(fw->scratch);
	EVP_MD_CTX_free(fw->sha);
	ZSTD_freeCCtx(fw->zc);
	free(fw->zin);
	free(fw->zout);
	free(fw);
	return rc;
}
