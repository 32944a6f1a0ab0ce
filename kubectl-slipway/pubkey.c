/* pubkey: parse and fingerprint OpenSSH public key lines (see pubkey.h), with
 * libcrypto for SHA-256 and base64, so the plugin needs no libssh. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>

#include "base64.h"
#include "buf.h"
#include "err.h"
#include "pubkey.h"
#include "banned.h"

/* The key types the Remote CRD's authorizedKeys pattern admits. */
static const char *const key_types[] = {
    "ssh-ed25519",
    "ssh-rsa",
    "ssh-dss",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
};

static bool is_key_type(const char *s, size_t len)
{
	for (size_t i = 0; i < sizeof(key_types) / sizeof(key_types[0]); i++)
		if (strlen(key_types[i]) == len && !memcmp(key_types[i], s, len))
			return true;
	return false;
}

bool pubkey_is_private(const char *text, size_t len)
{
	const char *p = memmem(text, len, "-----BEGIN ", 11);

	if (!p)
		return false;
	len -= (size_t)(p - text);
	/* "-----BEGIN OPENSSH PRIVATE KEY-----", "... RSA PRIVATE KEY-----", ... */
	for (size_t i = 11; i < len && i < 64 && p[i] != '\n'; i++)
		if (i + 16 <= len && !memcmp(p + i, "PRIVATE KEY-----", 16))
			return true;
	return false;
}

int pubkey_fingerprint(char *buf, size_t size, const unsigned char *blob, size_t len)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char *b64 = NULL;
	size_t n;
	int ret;

	if (!EVP_Digest(blob, len, md, &mdlen, EVP_sha256(), NULL))
		return err_set("cannot hash public key");
	if (base64_encode(&b64, md, mdlen) < 0)
		return -1;
	/* OpenSSH writes the fingerprint without base64's padding */
	n = strcspn(b64, "=");
	ret = (size_t)snprintf(buf, size, "SHA256:%.*s", (int)n, b64) >= size
	          ? err_set("key fingerprint too long")
	          : 0;
	free(b64);
	return ret;
}

bool pubkey_fingerprint_matches(const char *fp, const char *want)
{
	if (!strncmp(fp, "SHA256:", 7))
		fp += 7;
	if (!strncmp(want, "SHA256:", 7))
		want += 7;
	return *fp && !strcmp(fp, want);
}

/* Checks that BLOB starts with the SSH string TYPE (RFC 4253 6.6: uint32
 * big-endian length, then the name). */
static bool blob_names_type(const struct buf *blob, const char *type)
{
	const unsigned char *p = (const unsigned char *)blob->data;
	size_t n;

	if (blob->len < 4)
		return false;
	n = (size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3];
	return n == strlen(type) && n <= blob->len - 4 && !memcmp(p + 4, type, n);
}

void pubkey_release(struct pubkey *k)
{
	free(k->line);
	k->line = NULL;
}

int pubkey_parse(struct pubkey *out, const char *line, size_t len)
{
	const char *p = line, *end = line + len, *type, *b64, *comment;
	size_t type_len, b64_len, comment_len;
	struct buf blob, norm;
	char *b64z = NULL;
	int ret = -1;

	memset(out, 0, sizeof(*out));
	buf_init(&blob, PUBKEY_LINE_MAX);
	buf_init(&norm, PUBKEY_LINE_MAX + 1);
	if (pubkey_is_private(line, len)) {
		ret = PUBKEY_EPRIVATE;
		err_set("this is a private key; give the public key (the .pub file)");
		goto out;
	}
	if (len > PUBKEY_LINE_MAX) {
		err_set("key line longer than %d bytes", PUBKEY_LINE_MAX);
		goto out;
	}
	while (p < end && isspace((unsigned char)*p))
		p++;
	while (end > p && isspace((unsigned char)end[-1]))
		end--;
	if (memchr(p, '\n', (size_t)(end - p))) {
		err_set("expected one key line, got several lines");
		goto out;
	}
	type = p;
	while (p < end && !isspace((unsigned char)*p))
		p++;
	type_len = (size_t)(p - type);
	if (!type_len) {
		err_set("empty key line");
		goto out;
	}
	if (!is_key_type(type, type_len)) {
		err_set("not an OpenSSH public key: unknown key type \"%.*s\" (key options "
		        "in front of the type are not allowed)",
		        (int)(type_len > 64 ? 64 : type_len), type);
		goto out;
	}
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	b64 = p;
	while (p < end && !isspace((unsigned char)*p))
		p++;
	b64_len = (size_t)(p - b64);
	for (size_t i = 0; i < b64_len; i++) {
		char ch = b64[i];

		if (!isalnum((unsigned char)ch) && ch != '+' && ch != '/' &&
		    !(ch == '=' && b64_len - i <= 3)) {
			b64_len = 0;
			break;
		}
	}
	if (!b64_len) {
		err_set("not an OpenSSH public key: missing or malformed base64 key data");
		goto out;
	}
	b64z = strndup(b64, b64_len);
	if (!b64z) {
		err_set("out of memory");
		goto out;
	}
	memcpy(out->type, type, type_len);
	if (base64_decode(&blob, b64z, PUBKEY_LINE_MAX) < 0 || !blob_names_type(&blob, out->type)) {
		err_set("not an OpenSSH public key: the key data is not a %s key", out->type);
		goto out;
	}
	if (pubkey_fingerprint(out->fingerprint, sizeof(out->fingerprint),
	                       (const unsigned char *)blob.data, blob.len) < 0)
		goto out;
	while (p < end && isspace((unsigned char)*p))
		p++;
	comment = p;
	comment_len = (size_t)(end - p);
	snprintf(out->comment, sizeof(out->comment), "%.*s", (int)comment_len, comment);
	if (buf_addf(&norm, "%s %s", out->type, b64z) < 0 ||
	    (comment_len && buf_addf(&norm, " %.*s", (int)comment_len, comment) < 0))
		goto out;
	out->line = buf_detach(&norm);
	if (!out->line) {
		err_set("out of memory");
		goto out;
	}
	ret = 0;
out:
	if (ret < 0)
		out->type[0] = out->fingerprint[0] = out->comment[0] = '\0';
	free(b64z);
	buf_release(&blob);
	buf_release(&norm);
	return ret;
}
