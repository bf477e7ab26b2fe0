/*
 * fuzz_erf.c - the erf reader on hostile bytes (see fuzz_reader.h).
 */
#include <stddef.h>
#include <stdint.h>

#include "lib/fmt/fmt.h"
#include "fuzz_reader.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_reader(&weir_fmt_erf, data, size);
	return 0;
}
