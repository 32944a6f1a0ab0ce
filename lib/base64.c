/* base64: decoding with OpenSSL's EVP_Decode* (which accepts the line
 * breaks kubectl and base64(1) put in), strict decoding with EVP_DecodeBlock
 * after a check of the alphabet and padding, encoding with EVP_EncodeBlock. */
#include "base64.h"

#include <stdbool.h>
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

/* RFC 4648 section 4's alphabet, without the padding character. */
static bool is_alphabet(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '+' || c == '/';
}

int base64_decode_strict(struct buf *out, const char *text, size_t len)
{
	unsigned char *tmp = NULL;
	size_t pad = 0, cap;
	int n, ret = -1;

	if (len % 4) {
		err_set("base64 of %zu characters: not a multiple of 4", len);
		return BASE64_EINVALID;
	}
	if (len > (size_t)0x7ffffffc) {
		err_set("base64 text longer than %d bytes", 0x7ffffffc);
		return BASE64_EINVALID;
	}
	if (len && text[len - 1] == '=')
		pad = text[len - 2] == '=' ? 2 : 1;
	for (size_t i = 0; i < len - pad; i++)
		if (!is_alphabet(text[i])) {
			err_set("base64 has a character outside its alphabet at offset %zu", i);
			return BASE64_EINVALID;
		}
	cap = len / 4 * 3 + 1;
	if (!(tmp = malloc(cap)))
		return err_set("out of memory");
	n = EVP_DecodeBlock(tmp, (const unsigned char *)text, (int)len);
	if (n < 0 || (size_t)n < pad) {
		err_set("malformed base64");
		ret = BASE64_EINVALID;
		goto out;
	}
	/* EVP_DecodeBlock counts the bytes the padding stands for */
	ret = buf_add(out, tmp, (size_t)n - pad);
out:
	explicit_bzero(tmp, cap);
	free(tmp);
	return ret;
}

int base64_encode(char **out, const void *data, size_t len)
{
	size_t size;

	*out = NULL;
	if (len > (size_t)1 << 30)
		return err_set("%zu bytes are too many to encode as base64", len);
	size = (len + 2) / 3 * 4 + 1;
	if (!(*out = malloc(size)))
		return err_set("out of memory");
	EVP_EncodeBlock((unsigned char *)*out, data, (int)len);
	return 0;
}
