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

#include "weir/decode.h"
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
	"inputs", "stages", "outputs", "metadata", "count", NULL };
static const char *const policy_keys[] = { "max_snaplen",
	"require_anonymization", "allowed_outputs", "anonymization_method",
	NULL };
static const char *const input_keys[] = { "path", NULL };

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
	int rank, prev_rank = 0, rc;
	long long count;

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
		    "experiment: no input (give -r FILE or 'inputs')");
	if (json_array_size(arr) > WEIR_MAX_INPUTS)
		return weir_seterr(err, -WEIR_ECONFIG,
		    "experiment: at most %d inputs", WEIR_MAX_INPUTS);
	json_array_foreach(arr, i, o) {
		char name[32];

		snprintf(name, sizeof(name), "inputs[%zu]", i);
		if (!json_is_object(o))
			return weir_seterr(err, -WEIR_ECONFIG,
			    "%s: must be an object", name);
		if ((rc = weir_conf_known(o, name, input_keys, err)) < 0 ||
		    (rc = weir_conf_str(o, name, "path", NULL, 0, NULL,
		    err)) < 0)
			return rc;
	}
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

	arr = json_object_get(exp, "inputs");
	json_array_foreach(arr, i, o) {
		rc = weir_input_open(&pl->inputs[i], json_string_value(
		    json_object_get(o, "path")), (unsigned)i, &pl->ifaces,
		    err);
		if (rc < 0)
			return rc;
		pl->ninputs = (unsigned)i + 1;
	}
	if ((rc = weir_merge_init(&pl->merge, pl->inputs, pl->ninputs)) < 0)
		return weir_seterr(err, rc, "out of memory");
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

int
weir_pipeline_run(struct weir_pipeline *pl, struct weir_err *err)
{
	struct weir_batch b;
	struct weir_inst *x;
	unsigned i, j, max, decoded;
	int rc;

	for (;;) {
		if (pl->stop != NULL && *pl->stop)
			break;
		max = WEIR_BATCH_MAX;
		/* Stages only drop, so asking for no more than the
		 * remaining count keeps -c exact without cutting a batch. */
		if (pl->limit) {
			if (pl->passed >= pl->limit)
				break;
			if (pl->limit - pl->passed < max)
				max = (unsigned)(pl->limit - pl->passed);
		}
		b.p = pl->ptrs;
		b.n = weir_merge_next(&pl->merge, b.p, max);
		if (b.n == 0)
			break;
		pl->read += b.n;
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
				return weir_seterr(err, rc, "stage '%s' failed",
				    x->mod->name);
			}
			x->dropped += compact(&b);
		}
		pl->passed += b.n;
		for (i = 0; i < pl->noutputs && b.n > 0; i++) {
			x = &pl->outputs[i];
			x->in += b.n;
			if ((rc = x->mod->packet(x->st, &b)) < 0) {
				pl->failed = 1;
				log_err("output '%s' failed: %s", x->mod->name,
				    weir_strerror(rc));
			}
		}
		for (i = 0; i < pl->nstages + pl->noutputs; i++) {
			x = i < pl->nstages ? &pl->stages[i] :
			    &pl->outputs[i - pl->nstages];
			if (x->mod->tick != NULL)
				x->mod->tick(x->st, pl->last_ts);
		}
	}
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
	for (i = 0; i < pl->ninputs; i++)
		weir_input_close(&pl->inputs[i]);
	pl->ninputs = 0;
	free(pl->ptrs);
	pl->ptrs = NULL;
	json_decref(pl->exp);
	pl->exp = NULL;
	return ret;
}
