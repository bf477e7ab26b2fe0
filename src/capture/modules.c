/*
 * modules.c - the static registry of stages and outputs (no dlopen).
 * The pipeline builder finds modules here by their config "type".
 */
#include <string.h>

#include "weir/module.h"

extern const struct weir_module weir_mod_filter, weir_mod_direction,
    weir_mod_sample, weir_mod_checksum, weir_mod_anonymize,
    weir_mod_truncate, weir_mod_pcap, weir_mod_pcapng, weir_mod_counters;
extern const struct weir_module weir_mod_sessions;
extern const struct weir_module weir_mod_flowpcap;
extern const struct weir_module weir_mod_ipfix;

const struct weir_module *const weir_modules[] = {
	/* stages */
	&weir_mod_filter,
	&weir_mod_direction,
	&weir_mod_sample,
	&weir_mod_checksum,
	&weir_mod_anonymize,
	&weir_mod_truncate,
	/* outputs */
	&weir_mod_pcap,
	&weir_mod_pcapng,
	&weir_mod_counters,
	&weir_mod_sessions,
	&weir_mod_ipfix,
	&weir_mod_flowpcap,
	NULL
};

const struct weir_module *
weir_module_find(const char *name)
{
	int i;

	for (i = 0; weir_modules[i] != NULL; i++)
		if (strcmp(weir_modules[i]->name, name) == 0)
			return weir_modules[i];
	return NULL;
}
