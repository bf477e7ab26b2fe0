/*
 * pipeline.c - builds one experiment's pipeline from its effective
 * configuration, runs the batch loop and keeps the accounting.
 *
 * Stage order is data: every stage type has a rank, and a stage may not
 * follow one of a higher rank.  Stages that must see the packet as it
 * was captured (BPF filters, direction tags, checksum verification) come
 * before those that rewrite it, anonymization comes before truncation so
 * that no address is ever cut in half and left in clear, and sampling
 * may go anywhere.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "weir/decode.h"
#include "weir/live.h"
#include "weir/shmring.h"
#include "weir/log.h"
#include "capture/pipeline.h"

static const struct {
	const char	*type;
	int		 rank;		/* -1: anywhere */
	const char	*why;
} stage_order[] = {
	{ "filter",	10, "BPF must see the packet as captured" },
	{ "direction",	10, "BPF must see the packet as captured" },
	{ "checksum",	10, "checksums must be verified before rewriting" },
	{ "sample",	-1, NULL },
	{ "anonymize",	50, "no address may be cut before it is rewritten" },
	{ "truncate",	60, NULL },
};

static int
stage_rank(const char *type, const char **why)
{
	size_t i;

	for (i = 0; i < sizeof(stage_order) / sizeof(stage_order[0]); i++)
		if (strcmp(stage_order[i].type, type) == 0) {
			if (why)
				*why = stage_order[i].why;
			return stage_order[i].rank;
		}
	return -1;
}

static const char *const exp_keys[] = { "name", "owner", "description",
	"inputs", "stages", "outputs", "metadata", "count", "duration", NULL };
static const char *const policy_keys[] = { "max_snaplen",
	"require_anonymization", "allowed_outputs", "anonymization_method",
	NULL };
static const char *const input_keys[] = { "path", NULL };
static const char *const ring_keys[] = { "ring_fd", NULL };
static const char *const live_keys[] = { "interface", "promisc",
	"block_size", "blocks", "block_timeout_ms", "timestamps",
	"kernel_filter", "snaplen", "fanout", NULL };
static const char *const ts_modes[] = { "software", "auto", "hardware",
	NULL };

/*
 * One entry of "inputs": a trace file {"path"} or a live interface
 * {"interface", ring options}.  *live says which.
 */
static int
check_input(json_t *o, const char *name, int *live, struct weir_err *err)
{
	long long bs, nb;
	int rc;

	if (!json_is_object(o))
		return weir_seterr(err, -WEIR_ECONFIG,
		    "%s: must be an object", name);
	*live = json_object_get(o, "interface") != NULL;
	if (json_object_get(o, "ring_fd") != NULL) {
		/* weir-tap's ring for this tenant (docs/tap.md) */
		*live = 2;
		return (rc = weir_conf_known(o, name, ring_keys, err)) < 0 ?
		    rc : weir_conf_int(o, name, "ring_fd", 0, 3, 1023, NULL,
		    err);
	}
	if (!*live)
		return (rc = weir_conf_known(o, name, input_keys, err)) < 0 ?
		    rc : weir_conf_str(o, name, "path", NULL, 0, NULL, err);
	if ((rc = weir_conf_known(o, name, live_keys, err)) < 0 ||
	    (rc = weir_conf_str(o, name, "interface", NULL, 0, NULL,
	    err)) < 0 ||
	    (rc = weir_conf_bool(o, name, "promisc", 0, NULL, err)) < 0 ||
	    (rc = weir_conf_int(o, name, "block_size", WEIR_LIVE_BLOCK_SIZE,
	    4096, 1 << 30, &bs, err)) < 0 ||
	    (rc = weir_conf_int(o, name, "blocks", WEIR_LIVE_BLOCKS, 2,
	    1 << 20, &nb, err)) < 0 ||
	    (rc = weir_conf_int(o, name, "block_timeout_ms",
	    WEIR_LIVE_TIMEOUT_MS, 1, 60000, NULL, err)) < 0 ||
	    (rc = weir_conf_enum(o, name, "timestamps", "software", ts_modes,
	    NULL, err)) < 0 ||
	    (rc = weir_conf_bool(o, name, "kernel_filter", 1, NULL, err)) < 0 ||
	    (rc = weir_conf_int(o, name, "snaplen", 0, 0, 262144, NULL,
	    err)) < 0 ||
	    (rc = weir_conf_int(o, name, "fanout", -1, -1, 65535, NULL,
	    err)) < 0)
		return rc;
	if (json_string_value(json_object_get(o, "interface"))[0] == '\0' ||
	    strlen(json_string_value(json_object_get(o, "interface"))) >= 16)
		return weir_seterr(err, -WEIR_ECONFIG, "%s: 'interface' must "
		    "be an interface name of 1..15 characters", name);
	if ((bs & (bs - 1)) != 0)
		return weir_seterr(err, -WEIR_ECONFIG, "%s: 'block_size' is "
		    "%lld, must be a power of two", name, bs);
	if ((unsigned long long)bs * (unsigned long long)nb >
	    WEIR_LIVE_RING_MAX)
		return weir_seterr(err, -WEIR_ECONFIG, "%s: the ring "
		    "('block_size' x 'blocks') must be at most 4 GiB", name);
	return 0;
}

static int
check_policy(json_t *exp, const json_t *policy, struct weir_err *err)
{
	json_t *stages = json_object_get(exp, "stages");
	json_t *outputs = json_object_get(exp, "outputs");
	json_t *v, *st, *allowed, *a;
	size_t i, j;
	int found;

	if (weir_conf_known(policy, "policy", policy_keys, err) < 0)
		return -WEIR_ECONFIG;
	v = json_object_get(policy, "require_anonymization");
	if (v != NULL && !json_is_boolean(v))
		return weir_seterr(err, -WEIR_ECONFIG,
		    "policy: 'require_anonymization' must be true or false");
	if (json_is_true(v)) {
		found = 0;
		json_array_foreach(stages, i, st)
			if (strcmp(json_string_value(json_object_get(st,
			    "type")), "anonymize") == 0)
				found = 1;
		if (!found)
			return weir_seterr(err, -WEIR_EPOLICY,
			    "policy rule 'require_anonymization': the "
			    "experiment has no anonymize stage");
	}
	allowed = json_object_get(policy, "allowed_outputs");
	if (allowed != NULL) {
		if (!json_is_array(allowed))
			return weir_seterr(err, -WEIR_ECONFIG, "policy: "
			    "'allowed_outputs' must be a list of output types");
		json_array_foreach(outputs, i, st) {
			const char *t = json_string_value(json_object_get(st,
			    "type"));
			found = 0;
			json_array_foreach(allowed, j, a)
				if (json_is_string(a) &&
				    strcmp(json_string_value(a), t) == 0)
					found = 1;
			if (!found)
				return weir_seterr(err, -WEIR_EPOLICY,
				    "policy rule 'allowed_outputs': output "
				    "type '%s' is not allowed", t);
		}
	}
	v = json_object_get(policy, "max_snaplen");
	if (v != NULL) {
		if (!json_is_integer(v) || json_integer_value(v) < 1)
			return weir_seterr(err, -WEIR_ECONFIG, "policy: "
			    "'max_snaplen' must be a positive integer");
		/* Merge: a policy cap with no truncate stage adds one. */
		found = 0;
		json_array_foreach(stages, i, st)
			if (strcmp(json_string_value(json_object_get(st,
			    "type")), "truncate") == 0)
				found = 1;
		if (!found)
			json_array_append_new(stages, json_pack("{s:s}",
			    "type", "truncate"));
	}
	return 0;
}

int
weir_exp_check(json_t *exp, const json_t *policy, struct weir_err *err)
{
	const struct weir_module *mod;
	struct weir_err sub;
	json_t *arr, *o, *v, *t;
	const char *type, *why, *prev_type = NULL;
	size_t i;
	int rank, prev_rank = 0, rc, live;
	long long count;
	size_t nlive;

	if (!json_is_object(exp))
		return weir_seterr(err, -WEIR_ECONFIG,
		    "experiment: the document must be a JSON object");
	if ((rc = weir_conf_known(exp, "experiment", exp_keys, err)) < 0)
		return rc;
	if ((rc = weir_conf_str(exp, "experiment", "name", "weir", 0, NULL,
	    err)) < 0)
		return rc;
	if ((rc = weir_conf_int(exp, "experiment", "count", 0, 0,
	    INT64_MAX, &count, err)) < 0)
		return rc;
	if ((rc = weir_conf_num(exp, "experiment", "duration", 0, 0,
	    31622400.0, NULL, err)) < 0)
		return rc;
	v = json_object_get(exp, "metadata");
	if (v == NULL)
		json_object_set_new(exp, "metadata", json_object());
	else if (!json_is_object(v))
		return weir_seterr(err, -WEIR_ECONFIG,
		    "experiment: 'metadata' must be an object");
	for (i = 0; i < 3; i++) {
		static const char *const lists[] = { "inputs", "stages",
		    "outputs" };
		v = json_object_get(exp, lists[i]);
		if (v == NULL)
			json_object_set_new(exp, lists[i], json_array());
		else if (!json_is_array(v))
			return weir_seterr(err, -WEIR_ECONFIG,
			    "experiment: '%s' must be a list", lists[i]);
	}

	arr = json_object_get(exp, "inputs");
	if (json_array_size(arr) == 0)
		return weir_seterr(err, -WEIR_ECONFIG,
		    "experiment: no input (give -r FILE, -i IFACE or "
		    "'inputs')");
	if (json_array_size(arr) > WEIR_MAX_INPUTS)
		return weir_seterr(err, -WEIR_ECONFIG,
		    "experiment: at most %d inputs", WEIR_MAX_INPUTS);
	nlive = 0;
	json_array_foreach(arr, i, o) {
		char name[32];
		size_t j;
		json_t *o2;

		snprintf(name, sizeof(name), "inputs[%zu]", i);
		live = 0;
		if ((rc = check_input(o, name, &live, err)) < 0)
			return rc;
		if (live == 2) {
			if (json_array_size(arr) > 1)
				return weir_seterr(err, -WEIR_ECONFIG,
				    "%s: a ring must be the only input", name);
			continue;
		}
		nlive += live;
		if (!live)
			continue;
		/* Two rings on one interface would see every packet twice. */
		json_array_foreach(arr, j, o2) {
			if (j >= i)
				break;
			if (json_equal(json_object_get(o, "interface"),
			    json_object_get(o2, "interface")))
				return weir_seterr(err, -WEIR_ECONFIG,
				    "%s: interface '%s' is already inputs[%zu]",
				    name, json_string_value(json_object_get(o,
				    "interface")), j);
		}
	}
	if (nlive > 0 && nlive < json_array_size(arr))
		return weir_seterr(err, -WEIR_ECONFIG, "experiment: live "
		    "interfaces and trace files cannot be mixed in 'inputs' "
		    "(their times have nothing in common)");
	if (json_array_size(json_object_get(exp, "outputs")) == 0)
		return weir_seterr(err, -WEIR_ECONFIG,
		    "experiment: no output (give -w FILE or 'outputs')");

	/* Stage and output entries must name a known module of their kind. */
	for (i = 0; i < 2; i++) {
		const char *list = i ? "outputs" : "stages";
		int kind = i ? WEIR_MOD_OUTPUT : WEIR_MOD_STAGE;
		size_t j;

		arr = json_object_get(exp, list);
		if (json_array_size(arr) > (i ? WEIR_MAX_OUTPUTS :
		    WEIR_MAX_STAGES))
			return weir_seterr(err, -WEIR_ECONFIG,
			    "experiment: too many %s", list);
		json_array_foreach(arr, j, o) {
			type = json_string_value(json_object_get(o, "type"));
			if (!json_is_object(o) || type == NULL)
				return weir_seterr(err, -WEIR_ECONFIG,
				    "%s[%zu]: must be an object with a "
				    "'type'", list, j);
			mod = weir_module_find(type);
			if (mod == NULL || mod->kind != kind)
				return weir_seterr(err, -WEIR_ECONFIG,
				    "%s[%zu]: unknown %s type '%s'", list, j,
				    i ? "output" : "stage", type);
		}
	}

	if (policy != NULL && (rc = check_policy(exp, policy, err)) < 0)
		return rc;

	/* Each module checks and normalises its own object. */
	for (i = 0; i < 2; i++) {
		const char *list = i ? "outputs" : "stages";
		size_t j;

		arr = json_object_get(exp, list);
		json_array_foreach(arr, j, o) {
			type = json_string_value(json_object_get(o, "type"));
			mod = weir_module_find(type);
			/* "type" is ours: the module checks the rest, and
			 * the effective object keeps "type" first. */
			v = json_deep_copy(o);
			json_object_del(v, "type");
			sub.msg[0] = '\0';
			rc = mod->check(v, policy, &sub);
			if (rc < 0) {
				json_decref(v);
				return weir_seterr(err, rc, "%s[%zu]: %s",
				    list, j, sub.msg);
			}
			t = json_incref(json_object_get(o, "type"));
			json_object_clear(o);
			json_object_set_new(o, "type", t);
			json_object_update(o, v);
			json_decref(v);
		}
	}

	/* Order of stages. */
	arr = json_object_get(exp, "stages");
	json_array_foreach(arr, i, o) {
		type = json_string_value(json_object_get(o, "type"));
		rank = stage_rank(type, &why);
		if (rank < 0)
			continue;
		if (rank < prev_rank)
			return weir_seterr(err, -WEIR_ECONFIG,
			    "stages[%zu]: stage '%s' must come before '%s'"
			    "%s%s", i, type, prev_type, why ? ": " : "",
			    why ? why : "");
		prev_rank = rank;
		prev_type = type;
	}
	return 0;
}

static void
inst_stats(struct weir_inst *x, json_t *o)
{
	struct weir_counter c[WEIR_MAX_COUNTERS];
	size_t n, i;

	if (x->final != NULL) {
		json_object_update(o, x->final);
		return;
	}
	if (x->mod->stats == NULL || x->st == NULL)
		return;
	n = x->mod->stats(x->st, c, WEIR_MAX_COUNTERS);
	for (i = 0; i < n && i < WEIR_MAX_COUNTERS; i++)
		json_object_set_new(o, c[i].name, json_integer(
		    (json_int_t)c[i].value));
}

/*
 * A live input's counters, the kernel's read afresh (PACKET_STATISTICS
 * resets them; the input accumulates).  Invariant, checked by
 * tests/integration/live.sh:
 *   kernel_received = kernel_dropped + packets + read_ahead
 *                     + frames_skipped + before_start + ring_unread
 */
static json_t *
live_stats(struct weir_pipeline *pl, unsigned i)
{
	struct weir_input *in = &pl->inputs[i];
	const struct merge_src *ms = &pl->merge.src[i];
	struct weir_live_stats ls;
	json_t *x;

	(void)weir_live_update(in);
	weir_live_stats(in, &ls);
	x = json_pack("{s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}",
	    "interface", in->path, "format", in->ops->name,
	    "packets", (json_int_t)ms->used,
	    "bytes", (json_int_t)ms->used_bytes,
	    "read_ahead", (json_int_t)(in->pkts - ms->used),
	    "kernel_received", (json_int_t)ls.kernel_received,
	    "kernel_dropped", (json_int_t)ls.kernel_dropped,
	    "kernel_freeze_q", (json_int_t)ls.kernel_freeze_q,
	    "ring_unread", (json_int_t)ls.ring_unread,
	    "bad_frames", (json_int_t)ls.bad_frames,
	    "frames_skipped", (json_int_t)ls.frames_skipped);
	json_object_set_new(x, "before_start",
	    json_integer((json_int_t)ls.before_start));
	json_object_set_new(x, "blocks", json_integer((json_int_t)ls.blocks));
	json_object_set_new(x, "vlan_reinserted",
	    json_integer((json_int_t)ls.vlan_reinserted));
	json_object_set_new(x, "csum_notready",
	    json_integer((json_int_t)ls.csum_notready));
	json_object_set_new(x, "ts_hardware",
	    json_integer((json_int_t)ls.ts_hardware));
	json_object_set_new(x, "kernel_filter",
	    json_boolean(ls.kernel_filter));
	json_object_set_new(x, "hw_timestamps",
	    json_boolean(ls.hw_timestamps));
	if (ms->error)
		json_object_set_new(x, "error", json_string(in->err.msg));
	return x;
}

/*
 * A tenant's ring: what weir-tap had for it (offered), put in the ring
 * (written) and dropped because the ring was full; the capture socket's
 * counters as weir-tap last saw them.  written = packets + read_ahead
 * once the ring is drained.
 */
static json_t *
ring_stats(struct weir_pipeline *pl, unsigned i)
{
	struct weir_input *in = &pl->inputs[i];
	const struct merge_src *ms = &pl->merge.src[i];
	struct weir_ring_counts c;
	json_t *x;

	weir_ring_input_counts(in, &c);
	x = json_pack("{s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "path",
	    in->path, "format", in->ops->name,
	    "packets", (json_int_t)ms->used,
	    "bytes", (json_int_t)ms->used_bytes,
	    "read_ahead", (json_int_t)(in->pkts - ms->used),
	    "offered", (json_int_t)c.offered,
	    "written", (json_int_t)c.written,
	    "lost_at_capture", (json_int_t)c.full_drops,
	    "kernel_dropped", (json_int_t)c.kernel_dropped);
	json_object_set_new(x, "kernel_received",
	    json_integer((json_int_t)c.kernel_received));
	if (ms->error)
		json_object_set_new(x, "error", json_string(in->err.msg));
	return x;
}

json_t *
weir_pipeline_stats(void *arg)
{
	struct weir_pipeline *pl = arg;
	json_t *o, *a, *x;
	unsigned i;

	o = json_object();
	a = json_array();
	for (i = 0; i < pl->ninputs; i++) {
		struct weir_input *in = &pl->inputs[i];
		const struct merge_src *ms = &pl->merge.src[i];

		if (weir_live_is(in)) {
			json_array_append_new(a, live_stats(pl, i));
			continue;
		}
		if (weir_ring_input_is(in)) {
			json_array_append_new(a, ring_stats(pl, i));
			continue;
		}
		/*
		 * "packets" are those handed to the stages (a -c stop can
		 * leave some read ahead, counted in "read_ahead").
		 */
		x = json_pack("{s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:I}", "path",
		    in->path, "format", in->ops ? in->ops->name : "",
		    "packets", (json_int_t)ms->used,
		    "bytes", (json_int_t)ms->used_bytes,
		    "read_ahead", (json_int_t)(in->pkts - ms->used),
		    "skipped_records", (json_int_t)in->skipped,
		    "caplen_fixed", (json_int_t)in->lenfix,
		    "lost_at_capture", (json_int_t)in->lost);
		if (pl->merge.n > i && pl->merge.src[i].error)
			json_object_set_new(x, "error",
			    json_string(pl->inputs[i].err.msg));
		json_array_append_new(a, x);
	}
	json_object_set_new(o, "inputs", a);
	if (pl->nlive > 1)
		json_object_set_new(o, "out_of_order",
		    json_integer((json_int_t)pl->out_of_order));
	json_object_set_new(o, "read", json_integer((json_int_t)pl->read));
	a = json_array();
	for (i = 0; i < pl->nstages; i++) {
		x = json_pack("{s:s,s:I,s:I}", "type", pl->stages[i].mod->name,
		    "in", (json_int_t)pl->stages[i].in,
		    "dropped", (json_int_t)pl->stages[i].dropped);
		inst_stats(&pl->stages[i], x);
		json_array_append_new(a, x);
	}
	json_object_set_new(o, "stages", a);
	json_object_set_new(o, "passed", json_integer((json_int_t)pl->passed));
	a = json_array();
	for (i = 0; i < pl->noutputs; i++) {
		x = json_pack("{s:s,s:I}", "type", pl->outputs[i].mod->name,
		    "in", (json_int_t)pl->outputs[i].in);
		inst_stats(&pl->outputs[i], x);
		json_array_append_new(a, x);
	}
	json_object_set_new(o, "outputs", a);
	return o;
}

static int
open_insts(struct weir_pipeline *pl, const char *list, struct weir_inst *v,
    unsigned *nv, struct weir_err *err)
{
	json_t *arr = json_object_get(pl->exp, list), *o;
	struct weir_err sub;
	size_t i;
	int rc;

	json_array_foreach(arr, i, o) {
		struct weir_inst *x = &v[i];

		x->mod = weir_module_find(json_string_value(
		    json_object_get(o, "type")));
		x->conf = o;
		sub.msg[0] = '\0';
		rc = x->mod->open(&x->st, o, &pl->env, &sub);
		if (rc < 0)
			return weir_seterr(err, rc, "%s[%zu] (%s): %s", list,
			    i, x->mod->name, sub.msg);
		*nv = (unsigned)i + 1;
	}
	return 0;
}

/*
 * The kernel may run the experiment's filter when it is the first stage
 * (nothing before it needs the packets it rejects).  The stage still
 * runs in user space: the kernel program lets through what it cannot
 * judge (packets whose VLAN tag the kernel took off), and a packet that
 * passed once passes again.
 */
static const char *
kernel_filter_expr(const json_t *exp, const json_t *in)
{
	const json_t *st0;
	const char *expr;

	if (!json_is_true(json_object_get(in, "kernel_filter")))
		return NULL;
	st0 = json_array_get(json_object_get(exp, "stages"), 0);
	if (st0 == NULL || strcmp(json_string_value(json_object_get(st0,
	    "type")), "filter") != 0)
		return NULL;
	expr = json_string_value(json_object_get(st0, "expr"));
	return expr != NULL && expr[0] != '\0' ? expr : NULL;
}

static int
open_live(struct weir_pipeline *pl, const json_t *o, unsigned i,
    struct weir_err *err)
{
	struct weir_live_conf c;
	int ts;

	weir_live_conf_defaults(&c);
	c.ifname = json_string_value(json_object_get(o, "interface"));
	c.promisc = json_is_true(json_object_get(o, "promisc"));
	c.block_size = (uint32_t)json_integer_value(json_object_get(o,
	    "block_size"));
	c.blocks = (uint32_t)json_integer_value(json_object_get(o, "blocks"));
	c.timeout_ms = (uint32_t)json_integer_value(json_object_get(o,
	    "block_timeout_ms"));
	ts = weir_conf_choice(o, "timestamps", ts_modes);
	c.tstamp = ts == 2 ? WEIR_LIVE_TS_HARDWARE : ts == 1 ?
	    WEIR_LIVE_TS_AUTO : WEIR_LIVE_TS_SOFTWARE;
	c.snaplen = (uint32_t)json_integer_value(json_object_get(o,
	    "snaplen"));
	c.fanout = (int)json_integer_value(json_object_get(o, "fanout"));
	c.filter = kernel_filter_expr(pl->exp, o);
	return weir_live_open(&pl->inputs[i], &c, i, &pl->ifaces, err);
}

int
weir_pipeline_open(struct weir_pipeline *pl, json_t *exp,
    struct weir_err *err)
{
	json_t *arr, *o;
	size_t i;
	int rc;

	memset(pl, 0, sizeof(*pl));
	pl->exp = json_incref(exp);
	pl->limit = (uint64_t)json_integer_value(json_object_get(exp,
	    "count"));
	pl->env.exp_name = json_string_value(json_object_get(exp, "name"));
	pl->env.exp = exp;
	pl->env.ifaces = &pl->ifaces;
	pl->env.pipeline_stats = weir_pipeline_stats;
	pl->env.pl = pl;

	pl->duration = (uint64_t)(json_number_value(json_object_get(exp,
	    "duration")) * 1e9);
	arr = json_object_get(exp, "inputs");
	json_array_foreach(arr, i, o) {
		if (json_object_get(o, "interface") != NULL) {
			rc = open_live(pl, o, (unsigned)i, err);
			pl->nlive += rc == 0;
		} else if (json_object_get(o, "ring_fd") != NULL) {
			rc = weir_input_open_ring(&pl->inputs[i],
			    (int)json_integer_value(json_object_get(o,
			    "ring_fd")), (unsigned)i, &pl->ifaces, err);
			pl->nring += rc == 0;
		} else
			rc = weir_input_open(&pl->inputs[i], json_string_value(
			    json_object_get(o, "path")), (unsigned)i,
			    &pl->ifaces, err);
		if (rc < 0)
			return rc;
		pl->ninputs = (unsigned)i + 1;
	}
	if ((rc = weir_merge_init(&pl->merge, pl->inputs, pl->ninputs)) < 0)
		return weir_seterr(err, rc, "out of memory");
	if (pl->nring > 0 && (pl->rloss = calloc(pl->ninputs,
	    sizeof(*pl->rloss))) == NULL)
		return weir_seterr(err, -ENOMEM, "out of memory");
	/* Outputs learn of capture losses (rotate.on_loss, metadata). */
	if (pl->nlive > 0 || pl->nring > 0)
		pl->env.loss = &pl->loss;
	pl->ptrs = calloc(WEIR_BATCH_MAX, sizeof(*pl->ptrs));
	if (pl->ptrs == NULL)
		return weir_seterr(err, -ENOMEM, "out of memory");
	if ((rc = open_insts(pl, "stages", pl->stages, &pl->nstages,
	    err)) < 0)
		return rc;
	return open_insts(pl, "outputs", pl->outputs, &pl->noutputs, err);
}

/* Remove dropped packets, keeping order; returns how many went. */
static unsigned
compact(struct weir_batch *b)
{
	unsigned i, k = 0;

	for (i = 0; i < b->n; i++)
		if (!b->p[i]->drop)
			b->p[k++] = b->p[i];
	i = b->n - k;
	b->n = k;
	return i;
}

uint64_t
weir_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void
tick_all(struct weir_pipeline *pl, uint64_t now)
{
	struct weir_inst *x;
	unsigned i;

	for (i = 0; i < pl->nstages + pl->noutputs; i++) {
		x = i < pl->nstages ? &pl->stages[i] :
		    &pl->outputs[i - pl->nstages];
		if (x->mod->tick != NULL)
			x->mod->tick(x->st, now);
	}
}

/*
 * A ring's new full-ring drops lie at or before what the producer had
 * written when they were seen: queue them there.
 */
static void
ring_loss_sample(struct weir_pipeline *pl)
{
	struct weir_ring_counts c;
	struct weir_ringloss *r;
	unsigned i;

	for (i = 0; i < pl->ninputs; i++) {
		if (!weir_ring_input_is(&pl->inputs[i]))
			continue;
		r = &pl->rloss[i];
		weir_ring_input_counts(&pl->inputs[i], &c);
		if (c.full_drops <= r->seen)
			continue;
		weir_lossq_put(&r->q, c.written, c.full_drops - r->seen);
		r->seen = c.full_drops;
	}
}

/* How many packets the outputs may get before the next ring loss. */
static unsigned
ring_loss_cap(const struct weir_pipeline *pl, unsigned max)
{
	uint64_t used, next;
	unsigned i;

	for (i = 0; i < pl->ninputs; i++) {
		if (!weir_ring_input_is(&pl->inputs[i]))
			continue;
		used = pl->merge.src[i].used;
		next = weir_lossq_next(&pl->rloss[i].q, used);
		if (next - used < max)
			max = (unsigned)(next - used);
	}
	return max;
}

/*
 * Set pl->loss to the losses that lie before packet number pos[i] of
 * every input i (NULL: the packets used so far); pos never decreases.
 */
static void
loss_refresh(struct weir_pipeline *pl, const uint64_t *pos)
{
	struct weir_input *in;
	uint64_t k = 0, g = 0, at;
	unsigned i;

	for (i = 0; i < pl->ninputs; i++) {
		in = &pl->inputs[i];
		at = pos != NULL ? pos[i] : pl->merge.src[i].used;
		if (weir_live_is(in)) {
			k += weir_live_lost_before(in, at);
			continue;
		}
		if (weir_ring_input_is(in))
			g += weir_lossq_reached(&pl->rloss[i].q, at);
	}
	pl->loss.kernel = k;
	pl->loss.ring = g;
}

/* End of input: every loss counted lies before what comes next. */
static void
loss_final(struct weir_pipeline *pl)
{
	struct weir_live_stats ls;
	struct weir_ring_counts c;
	unsigned i;

	if (pl->env.loss == NULL)
		return;
	pl->loss.kernel = pl->loss.ring = 0;
	for (i = 0; i < pl->ninputs; i++) {
		if (weir_live_is(&pl->inputs[i])) {
			weir_live_stats(&pl->inputs[i], &ls);
			pl->loss.kernel += ls.kernel_dropped;
		} else if (weir_ring_input_is(&pl->inputs[i])) {
			weir_ring_input_counts(&pl->inputs[i], &c);
			pl->loss.ring += c.full_drops;
		}
	}
}

/* Stop every live input (they drain what their rings hold). */
static void
live_stop_all(struct weir_pipeline *pl)
{
	unsigned i;

	for (i = 0; i < pl->ninputs; i++)
		if (weir_live_is(&pl->inputs[i]))
			(void)weir_live_stop(&pl->inputs[i]);
}

/*
 * Kernel counters are 32 bits and reset when read: read them once a
 * second so they never wrap, whatever the rate.
 */
static void
live_update_due(struct weir_pipeline *pl, uint64_t mono)
{
	unsigned i;

	if (mono - pl->last_update < 1000000000ull)
		return;
	pl->last_update = mono;
	for (i = 0; i < pl->ninputs; i++)
		if (weir_live_is(&pl->inputs[i]))
			(void)weir_live_update(&pl->inputs[i]);
}

/*
 * Every live input is idle: wait for a ring (bounded), then tell the
 * modules the time, less what may still sit in an unretired block.
 */
static int
live_idle(struct weir_pipeline *pl, struct weir_err *err)
{
	struct weir_input *v[WEIR_MAX_INPUTS];
	uint64_t now, h, t;
	unsigned i, n = 0;
	int rc, wait;

	for (i = 0; i < pl->merge.n; i++)
		if (pl->merge.src[i].waiting && !pl->merge.src[i].done)
			v[n++] = &pl->inputs[i];
	/* Packets held for an idle ring: wait until its horizon passes
	 * them (or it delivers), not a full idle period. */
	wait = WEIR_IDLE_WAIT_MS;
	if (pl->merge.held_ts > pl->merge.held_horizon &&
	    (pl->merge.held_ts - pl->merge.held_horizon) / 1000000 + 1 <
	    (uint64_t)wait)
		wait = (int)((pl->merge.held_ts - pl->merge.held_horizon) /
		    1000000) + 1;
	rc = weir_live_wait(v, n, wait);
	if (rc < 0) {
		pl->failed = 1;
		return weir_seterr(err, rc, "waiting for packets: %s",
		    weir_strerror(rc));
	}
	now = weir_live_now();
	h = now;
	for (i = 0; i < pl->ninputs; i++)
		if (weir_live_is(&pl->inputs[i]) &&
		    (t = weir_live_horizon(&pl->inputs[i], now)) < h)
			h = t;
	/* Idle, every ready block is read: drops read now lie here. */
	live_update_due(pl, weir_mono_ns());
	loss_refresh(pl, NULL);
	if (h > pl->last_tick) {
		pl->last_tick = h;
		tick_all(pl, h);
	}
	return 0;
}

/*
 * A tenant's ring was idle for WEIR_RING_IDLE_MS: on a live capture the
 * modules learn the time (less weir-tap's horizon); a replayed file has
 * packet time only.
 */
static void
ring_idle(struct weir_pipeline *pl)
{
	uint64_t h;

	h = weir_ring_input_horizon(&pl->inputs[0], weir_live_now());
	ring_loss_sample(pl);
	loss_refresh(pl, NULL);
	if (h > pl->last_tick) {
		pl->last_tick = h;
		tick_all(pl, h);
	}
}

/* A status line asked for (SIGUSR1) or due (interval). */
static void
status_due(struct weir_pipeline *pl)
{
	uint64_t now;

	if (pl->status == NULL)
		return;
	if (pl->status_req != NULL && *pl->status_req) {
		*pl->status_req = 0;
		pl->status_last = weir_mono_ns();
		pl->status(pl, "signal", pl->status_arg);
		return;
	}
	if (pl->status_every == 0)
		return;
	now = weir_mono_ns();
	if (pl->status_last == 0)
		pl->status_last = now;
	else if (now - pl->status_last >= pl->status_every) {
		pl->status_last = now;
		pl->status(pl, "interval", pl->status_arg);
	}
}

int
weir_pipeline_run(struct weir_pipeline *pl, struct weir_err *err)
{
	uint64_t pos[WEIR_MAX_INPUTS];
	struct weir_batch b;
	struct weir_inst *x;
	unsigned i, j, max, decoded;
	uint64_t start, mono = 0, t;
	int rc, stop;

	start = pl->last_update = weir_mono_ns();
	for (;;) {
		status_due(pl);
		stop = pl->stop != NULL && *pl->stop;
		if (pl->duration && (mono = weir_mono_ns()) - start >= pl->duration)
			stop = 1;
		if (stop) {
			/* Files stop at once; rings first give back what
			 * the kernel already counted. */
			if (pl->nlive == 0)
				break;
			if (!pl->stopping) {
				pl->stopping = 1;
				live_stop_all(pl);
			}
		}
		max = WEIR_BATCH_MAX;
		/* Stages only drop, so asking for no more than the
		 * remaining count keeps -c exact without cutting a batch. */
		if (pl->limit) {
			if (pl->passed >= pl->limit)
				break;
			if (pl->limit - pl->passed < max)
				max = (unsigned)(pl->limit - pl->passed);
		}
		if (pl->env.loss != NULL) {
			/* where this batch starts, for loss_refresh() */
			for (i = 0; i < pl->ninputs; i++)
				pos[i] = pl->merge.src[i].used;
			if (pl->nring) {
				ring_loss_sample(pl);
				max = ring_loss_cap(pl, max);
			}
		}
		b.p = pl->ptrs;
		b.n = weir_merge_next(&pl->merge, b.p, max);
		if (b.n == 0) {
			if ((pl->nlive == 0 && pl->nring == 0) ||
			    weir_merge_waiting(&pl->merge) == 0)
				break;
			if (pl->nring) {
				/* the ring read waited already */
				ring_idle(pl);
				continue;
			}
			if ((rc = live_idle(pl, err)) < 0)
				return rc;
			continue;
		}
		pl->read += b.n;
		if (pl->nlive > 1) {
			/* count what the merge of rings could not order */
			for (j = 0; j < b.n; j++) {
				if (b.p[j]->ts < pl->last_ts)
					pl->out_of_order++;
				else
					pl->last_ts = b.p[j]->ts;
			}
		} else
			pl->last_ts = b.p[b.n - 1]->ts;
		decoded = 0;
		for (i = 0; i < pl->nstages && b.n > 0; i++) {
			x = &pl->stages[i];
			if (x->mod->needs_decode && !decoded) {
				for (j = 0; j < b.n; j++)
					weir_pkt_decode(b.p[j]);
				decoded = 1;
			}
			x->in += b.n;
			if ((rc = x->mod->packet(x->st, &b)) < 0) {
				pl->failed = 1;
				if (pl->nlive)
					live_stop_all(pl);
				return weir_seterr(err, rc, "stage '%s' failed",
				    x->mod->name);
			}
			x->dropped += compact(&b);
		}
		pl->passed += b.n;
		if (pl->env.loss != NULL && b.n > 0)
			loss_refresh(pl, pos);
		for (i = 0; i < pl->noutputs && b.n > 0; i++) {
			x = &pl->outputs[i];
			x->in += b.n;
			if ((rc = x->mod->packet(x->st, &b)) < 0) {
				pl->failed = 1;
				log_err("output '%s' failed: %s", x->mod->name,
				    weir_strerror(rc));
			}
		}
		t = pl->last_ts;
		if (pl->nlive || pl->nring) {
			/* ring order is not quite time order: keep the
			 * modules' clock from going back */
			if (t < pl->last_tick)
				t = pl->last_tick;
			pl->last_tick = t;
			live_update_due(pl, mono ? mono : weir_mono_ns());
			mono = 0;
			loss_refresh(pl, NULL);
		}
		tick_all(pl, t);
	}
	/* -c or an error: final kernel counters; ring_unread says what
	 * was left in the rings. */
	if (pl->nlive)
		live_stop_all(pl);
	for (i = 0; i < pl->merge.n; i++)
		if (pl->merge.src[i].error) {
			pl->failed = 1;
			weir_seterr(err, pl->merge.src[i].error, "%s",
			    pl->inputs[i].err.msg);
		}
	return pl->failed ? -WEIR_EFORMAT : 0;
}

int
weir_pipeline_finish(struct weir_pipeline *pl, struct weir_err *err)
{
	struct weir_err sub;
	struct weir_inst *x;
	unsigned i;
	int rc, ret = 0;

	loss_final(pl);
	for (i = 0; i < pl->noutputs; i++) {
		x = &pl->outputs[i];
		if (x->mod->finish == NULL)
			continue;
		sub.msg[0] = '\0';
		if ((rc = x->mod->finish(x->st, &sub)) < 0) {
			log_err("output '%s': %s", x->mod->name, sub.msg);
			ret = weir_seterr(err, rc, "output '%s': %s",
			    x->mod->name, sub.msg);
		}
	}
	return ret;
}

int
weir_pipeline_close(struct weir_pipeline *pl, struct weir_err *err)
{
	struct weir_err sub;
	struct weir_inst *x;
	json_t *tmp;
	unsigned i;
	int rc, ret = 0;

	loss_final(pl);
	/*
	 * Outputs first: their final metadata reads every counter, so an
	 * output's own counters are kept before it goes.
	 */
	for (i = 0; i < pl->noutputs; i++) {
		x = &pl->outputs[i];
		tmp = json_object();
		inst_stats(x, tmp);
		x->final = tmp;
		sub.msg[0] = '\0';
		rc = x->mod->close(x->st, &sub);
		x->st = NULL;
		if (rc < 0) {
			log_err("output '%s': %s", x->mod->name, sub.msg);
			ret = weir_seterr(err, rc, "output '%s': %s",
			    x->mod->name, sub.msg);
		}
	}
	for (i = 0; i < pl->nstages; i++) {
		x = &pl->stages[i];
		sub.msg[0] = '\0';
		if ((rc = x->mod->close(x->st, &sub)) < 0)
			ret = weir_seterr(err, rc, "stage '%s': %s",
			    x->mod->name, sub.msg);
	}
	for (i = 0; i < pl->noutputs; i++)
		json_decref(pl->outputs[i].final);
	pl->noutputs = pl->nstages = 0;
	weir_merge_free(&pl->merge);
	free(pl->rloss);
	pl->rloss = NULL;
	for (i = 0; i < pl->ninputs; i++) {
		if (weir_live_is(&pl->inputs[i]))
			weir_live_close(&pl->inputs[i]);
		weir_input_close(&pl->inputs[i]);
	}
	pl->ninputs = 0;
	free(pl->ptrs);
	pl->ptrs = NULL;
	json_decref(pl->exp);
	pl->exp = NULL;
	return ret;
}
