/*
 * fuzz_config.c - the experiment document parser and checker.  The input
 * is "POLICY\0EXPERIMENT" (or just an experiment); both are parsed as
 * JSON and the experiment is checked against the policy.  A document
 * that passes must print and check again to the same text (round trip).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "capture/pipeline.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, 0, size);
	json_t *policy = NULL, *exp, *again;
	struct weir_err err;
	char *a, *b;

	if (nul != NULL) {
		policy = json_loadb((const char *)data, (size_t)(nul - data),
		    0, NULL);
		size -= (size_t)(nul - data) + 1;
		data = nul + 1;
	}
	exp = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES,
	    NULL);
	if (exp != NULL && weir_exp_check(exp, policy, &err) == 0) {
		a = json_dumps(exp, JSON_PRESERVE_ORDER);
		again = json_loads(a, 0, NULL);
		if (again == NULL || weir_exp_check(again, policy, &err) != 0)
			abort();
		b = json_dumps(again, JSON_PRESERVE_ORDER);
		if (strcmp(a, b) != 0)
			abort();
		free(a);
		free(b);
		json_decref(again);
	}
	json_decref(exp);
	json_decref(policy);
	return 0;
}
