/*
 * modrun.h - drive one module (stage or output) in a unit test: build
 * its configuration from a printf format, check and open it against an
 * environment, close it; failures are printed as TAP comments.
 */
#ifndef WEIR_TESTS_MODRUN_H
#define WEIR_TESTS_MODRUN_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "weir/module.h"

struct run {
	const struct weir_module *m;
	json_t	*conf;
	void	*st;
	struct weir_err err;
};

static int
modrun_open(struct run *r, const struct weir_module *m,
    const struct weir_env *env, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int
modrun_open(struct run *r, const struct weir_module *m,
    const struct weir_env *env, const char *fmt, ...)
{
	char buf[2048];
	json_error_t je;
	va_list ap;
	int rc;

	memset(r, 0, sizeof(*r));
	r->m = m;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if ((r->conf = json_loads(buf, 0, &je)) == NULL) {
		printf("# bad test json: %s: %s\n", buf, je.text);
		return -1;
	}
	if ((rc = m->check(r->conf, NULL, &r->err)) < 0) {
		printf("# check: %s\n", r->err.msg);
		return rc;
	}
	if ((rc = m->open(&r->st, r->conf, env, &r->err)) < 0)
		printf("# open: %s\n", r->err.msg);
	return rc;
}

static int
run_close(struct run *r)
{
	int rc = r->m->close(r->st, &r->err);

	if (rc < 0)
		printf("# close: %s\n", r->err.msg);
	json_decref(r->conf);
	return rc;
}

#endif
