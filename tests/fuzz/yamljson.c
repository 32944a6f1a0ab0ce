/* libFuzzer target: any bytes through yamljson_load_all must either parse or
 * fail with a message, without crashing, leaking or recursing unbounded. */
#include <stddef.h>
#include <stdint.h>

#include "yamljson.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *j = NULL;

	if (yamljson_load_all(&j, (const char *)data, size) == 0)
		json_decref(j);
	return 0;
}
