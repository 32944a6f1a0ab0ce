/* libFuzzer target: an API server response (HTTP code from the first two
 * bytes, body from the rest) maps to a status without crashing; the message
 * stays NUL-terminated and free of control characters. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kube.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kube_status st;
	long code;

	if (size < 2)
		return 0;
	code = 100 + (data[0] << 8 | data[1]) % 500;
	kube_status_from_response(&st, code, (const char *)data + 2, size - 2);
	if (strnlen(st.message, sizeof(st.message)) == sizeof(st.message) ||
	    strnlen(st.reason, sizeof(st.reason)) == sizeof(st.reason))
		abort();
	for (const char *p = st.message; *p; p++)
		if ((unsigned char)*p < 0x20)
			abort();
	return 0;
}
