/* libFuzzer target: gitd/packclosure's marker parser over untrusted bytes.
 * Whatever parses has its tips sorted, distinct, and as many as announced;
 * anything else fails with a message. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "err.h"
#include "packclosure.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct packclosure c;

	if (packclosure_parse(&c, (const char *)data, size) < 0) {
		if (!err_msg()[0] || c.tips || c.ntips)
			abort();
		return 0;
	}
	if (!c.ntips || c.ntips > PACKCLOSURE_TIPS_MAX)
		abort();
	for (size_t i = 1; i < c.ntips; i++)
		if (git_oid_cmp(&c.tips[i - 1], &c.tips[i]) >= 0)
			abort();
	packclosure_release(&c);
	return 0;
}
