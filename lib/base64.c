/* base64: decoding with OpenSSL's EVP_Decode* (which accepts the line
 * breaks kubectl and base64(1) put in). */
#include "base64.h"

#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>

#include "err.h"
#include "banned.h"

int base64_decode(struct buf *out, const char *text, size_t max)
{
	EVP_ENCODE_CTX *ctx = NULL;
	size_t len = strlen(text), cap = len / 4 * 3 + 4;
	unsigned char *tmp = NULL;
	int n = 0, fin = 0, ret = -1;

	if (len > max || len > (size_t)0x7fffffff)
		return err_set("base64 text longer than %zu bytes", max);
	ctx = EVP_ENCODE_CTX_new();
	tmp = malloc(cap);
	if (!ctx || !tmp) {
		err_set("out of memory");
		goto out;
	}
	EVP_DecodeInit(ctx);
	if (EVP_DecodeUpdate(ctx, tmp, &n, (const unsigned char *)text, (int)len) < 0 ||
	    EVP_DecodeFinal(ctx, tmp + n, &fin) < 0) {
		err_set("malformed base64");
		goto out;
	}
	ret = buf_add(out, tmp, (size_t)(n + fin));
out:
	if (tmp) {
		explicit_bzero(tmp, cap);
		free(tmp);
	}
	EVP_ENCODE_CTX_free(ctx);
	return ret;
}
