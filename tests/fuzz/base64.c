/* libFuzzer target: strict base64 decoding of any text either refuses it
 * or gives bytes whose encoding has the same length; the encoding of any
 * bytes decodes back to them. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf b;
	char *text = NULL;
	int ret;

	buf_init(&b, size + 1);
	ret = base64_decode_strict(&b, (const char *)data, size);
	if (ret != 0 && ret != BASE64_EINVALID)
		abort();
	if (ret == 0 && (b.len + 2) / 3 * 4 != size)
		abort();
	buf_release(&b);

	if (base64_encode(&text, data, size) < 0)
		abort();
	buf_init(&b, size + 1);
	if (base64_decode_strict(&b, text, strlen(text)) != 0 || b.len != size ||
	    (size && memcmp(b.data, data, size)))
		abort();
	buf_release(&b);
	free(text);
	return 0;
}
