/*
 * module.h - the one small interface of every pipeline stage and output.
 *
 * A module is a const descriptor registered in a static table
 * (src/capture/modules.c).  Its configuration is a JSON object (jansson)
 * taken from the experiment document.  check() validates that object,
 * fills in defaults (so `weir-capture -n` prints the effective config)
 * and enforces the node policy; open() allocates everything the module
 * will need; packet() never allocates.
 *
 * Stages drop a packet by setting p->drop = 1 (and counting the reason
 * in their own counters); the pipeline removes dropped packets from the
 * batch after each stage and counts them per stage.  Outputs consume the
 * batch and must not keep pointers into it after packet() returns.
 */
#ifndef WEIR_MODULE_H
#define WEIR_MODULE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "weir/err.h"
#include "weir/pkt.h"

enum weir_mod_kind { WEIR_MOD_STAGE, WEIR_MOD_OUTPUT };

struct weir_counter {
	const char	*name;	/* static string, snake_case */
	uint64_t	 value;
};
#define WEIR_MAX_COUNTERS	32

/*
 * Packets the capture lost before they reached the pipeline, summed over
 * its inputs: live interfaces' kernel drops (PACKET_STATISTICS
 * tp_drops) and a weir-tap ring's full-ring drops.  Counts only grow.
 */
struct weir_loss {
	uint64_t	kernel;
	uint64_t	ring;
};

/* Everything a module may learn about its surroundings at open(). */
struct weir_env {
	const char		*exp_name;	/* experiment name */
	const json_t		*exp;		/* effective config, no secrets */
	struct weir_ifaces	*ifaces;
	/*
	 * Snapshot of every stage's and input's counters as a JSON object
	 * (new reference), for metadata documents.
	 */
	json_t			*(*pipeline_stats)(void *pl);
	void			*pl;
	/*
	 * The losses that lie before the packets handed to the outputs so
	 * far (owned and updated by the pipeline between batches, one per
	 * pipeline); NULL when no input can lose packets (trace files).
	 * See docs/outputs.md "Rotation" for how exact the position is.
	 */
	const struct weir_loss	*loss;
};

struct weir_module {
	const char	*name;		/* the "type" in the config */
	int		 kind;		/* enum weir_mod_kind */
	int		 needs_decode;	/* pipeline decodes before packet() */
	/*
	 * Validate and normalise conf in place; policy may be NULL.
	 * Errors name the field: "truncate: 'snaplen' must be 1..262144".
	 */
	int		(*check)(json_t *conf, const json_t *policy,
			    struct weir_err *err);
	int		(*open)(void **st, const json_t *conf,
			    const struct weir_env *env, struct weir_err *err);
	/* Returns 0, or a negative error that stops the pipeline. */
	int		(*packet)(void *st, struct weir_batch *b);
	/* Time has moved to now (ns); optional. */
	int		(*tick)(void *st, uint64_t now);
	/* Push buffered data to the kernel; optional. */
	int		(*flush)(void *st);
	/* Fill up to max counters; returns how many. */
	size_t		(*stats)(void *st, struct weir_counter *c, size_t max);
	/*
	 * End of input (outputs; optional): end open flows, publish the
	 * last files with their metadata, send what is pending.  Called in
	 * output order once the last batch is through, so that --summary
	 * and the metadata of later outputs see final counters.  stats()
	 * stays valid after it; close() then only frees.
	 */
	int		(*finish)(void *st, struct weir_err *err);
	/* Finish if not done yet, and free; err on failure. */
	int		(*close)(void *st, struct weir_err *err);
};

/* Lookup in the static registry; NULL if unknown. */
const struct weir_module *weir_module_find(const char *name);
extern const struct weir_module *const weir_modules[];

/* Small helpers for check() implementations (src/lib/conf/confutil.c). */
int	weir_conf_int(json_t *o, const char *mod, const char *key,
	    long long def, long long min, long long max, long long *out,
	    struct weir_err *err);
int	weir_conf_num(json_t *o, const char *mod, const char *key,
	    double def, double min, double max, double *out,
	    struct weir_err *err);
int	weir_conf_bool(json_t *o, const char *mod, const char *key,
	    int def, int *out, struct weir_err *err);
/* String; def may be NULL (then the key is required unless optional). */
int	weir_conf_str(json_t *o, const char *mod, const char *key,
	    const char *def, int optional, const char **out,
	    struct weir_err *err);
/* String that must be one of the NULL-terminated choices. */
int	weir_conf_enum(json_t *o, const char *mod, const char *key,
	    const char *def, const char *const *choices, int *out,
	    struct weir_err *err);
/* Index of the (checked) string value of key in choices; 0 if absent. */
int	weir_conf_choice(const json_t *o, const char *key,
	    const char *const *choices);
/* Copy a module's counter table into stats()'s array; returns the count. */
size_t	weir_counters_put(struct weir_counter *c, size_t max,
	    const struct weir_counter *v, size_t n);
#define WEIR_COUNTERS_PUT(c, max, v) \
	weir_counters_put((c), (max), (v), sizeof(v) / sizeof((v)[0]))
/* Refuse keys not in the NULL-terminated list (typos must not pass). */
/*
 * Load a JSON document that must be an object (an experiment, a tenant,
 * a policy).  NULL on failure, with the reason logged as
 * "WHAT 'PATH': line L column C: ..." or "... must be a JSON object".
 */
json_t	*weir_conf_load(const char *path, const char *what);
int	weir_conf_known(const json_t *o, const char *mod,
	    const char *const *keys, struct weir_err *err);

#endif
