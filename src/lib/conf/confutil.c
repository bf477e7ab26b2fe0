/*
 * confutil.c - typed, bounded getters with defaults for module configs.
 * Each getter writes the effective value back into the object, so the
 * printed config (weir-capture -n) shows every default that applied.
 */
#include <string.h>

#include "weir/log.h"
#include "weir/module.h"

int
weir_conf_int(json_t *o, const char *mod, const char *key, long long def,
    long long min, long long max, long long *out, struct weir_err *err)
{
	json_t *v = json_object_get(o, key);
	long long x;

	if (v == NULL) {
		x = def;
		json_object_set_new(o, key, json_integer(x));
	} else if (json_is_integer(v)) {
		x = json_integer_value(v);
	} else if (json_is_real(v) && json_real_value(v) ==
	    (double)(long long)json_real_value(v)) {
		x = (long long)json_real_value(v);
		json_object_set_new(o, key, json_integer(x));
	} else
		return weir_seterr(err, -WEIR_ECONFIG,
		    "%s: '%s' must be an integer", mod, key);
	if (x < min || x > max)
		return weir_seterr(err, -WEIR_ECONFIG,
		    "%s: '%s' is %lld, must be %lld..%lld", mod, key, x, min,
		    max);
	if (out)
		*out = x;
	return 0;
}

int
weir_conf_num(json_t *o, const char *mod, const char *key, double def,
    double min, double max, double *out, struct weir_err *err)
{
	json_t *v = json_object_get(o, key);
	double x;

	if (v == NULL) {
		x = def;
		json_object_set_new(o, key, json_real(x));
	} else if (json_is_number(v))
		x = json_number_value(v);
	else
		return weir_seterr(err, -WEIR_ECONFIG,
		    "%s: '%s' must be a number", mod, key);
	if (!(x >= min && x <= max))
		return weir_seterr(err, -WEIR_ECONFIG,
		    "%s: '%s' is %g, must be %g..%g", mod, key, x, min, max);
	if (out)
		*out = x;
	return 0;
}

int
weir_conf_bool(json_t *o, const char *mod, const char *key, int def,
    int *out, struct weir_err *err)
{
	json_t *v = json_object_get(o, key);
	int x;

	if (v == NULL) {
		x = def;
		json_object_set_new(o, key, json_boolean(x));
	} else if (json_is_boolean(v))
		x = json_is_true(v);
	else
		return weir_seterr(err, -WEIR_ECONFIG,
		    "%s: '%s' must be true or false", mod, key);
	if (out)
		*out = x;
	return 0;
}

int
weir_conf_str(json_t *o, const char *mod, const char *key, const char *def,
    int optional, const char **out, struct weir_err *err)
{
	json_t *v = json_object_get(o, key);

	if (v == NULL) {
		if (def == NULL) {
			if (optional) {
				if (out)
					*out = NULL;
				return 0;
			}
			return weir_seterr(err, -WEIR_ECONFIG,
			    "%s: '%s' is required", mod, key);
		}
		json_object_set_new(o, key, json_string(def));
		v = json_object_get(o, key);
	}
	if (!json_is_string(v))
		return weir_seterr(err, -WEIR_ECONFIG,
		    "%s: '%s' must be a string", mod, key);
	if (out)
		*out = json_string_value(v);
	return 0;
}

int
weir_conf_enum(json_t *o, const char *mod, const char *key, const char *def,
    const char *const *choices, int *out, struct weir_err *err)
{
	const char *s;
	char list[256];
	size_t used = 0;
	int i, rc;

	if ((rc = weir_conf_str(o, mod, key, def, 0, &s, err)) < 0)
		return rc;
	for (i = 0; choices[i] != NULL; i++) {
		if (strcmp(s, choices[i]) == 0) {
			if (out)
				*out = i;
			return 0;
		}
	}
	list[0] = '\0';
	for (i = 0; choices[i] != NULL && used < sizeof(list); i++)
		used += (size_t)snprintf(list + used, sizeof(list) - used,
		    "%s'%s'", i ? ", " : "", choices[i]);
	return weir_seterr(err, -WEIR_ECONFIG,
	    "%s: '%s' is '%s', must be one of %s", mod, key, s, list);
}

int
weir_conf_known(const json_t *o, const char *mod, const char *const *keys,
    struct weir_err *err)
{
	const char *k;
	json_t *v;
	int i;

	json_object_foreach((json_t *)(uintptr_t)o, k, v) {
		for (i = 0; keys[i] != NULL; i++)
			if (strcmp(k, keys[i]) == 0)
				break;
		if (keys[i] == NULL)
			return weir_seterr(err, -WEIR_ECONFIG,
			    "%s: unknown key '%s'", mod, k);
	}
	return 0;
}

int
weir_conf_choice(const json_t *o, const char *key, const char *const *choices)
{
	const char *s = json_string_value(json_object_get(o, key));
	int i;

	for (i = 0; s != NULL && choices[i] != NULL; i++)
		if (strcmp(s, choices[i]) == 0)
			return i;
	return 0;
}

size_t
weir_counters_put(struct weir_counter *c, size_t max,
    const struct weir_counter *v, size_t n)
{
	size_t i;

	for (i = 0; i < max && i < n; i++)
		c[i] = v[i];
	return i;
}

json_t *
weir_conf_load(const char *path, const char *what)
{
	json_error_t je;
	json_t *j;

	j = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
	if (j == NULL) {
		if (je.line < 1)
			log_err("%s '%s': %s", what, path, je.text);
		else
			log_err("%s '%s': line %d column %d: %s", what, path,
			    je.line, je.column, je.text);
		return NULL;
	}
	if (!json_is_object(j)) {
		log_err("%s '%s': must be a JSON object", what, path);
		json_decref(j);
		return NULL;
	}
	return j;
}
