/* pubkey: OpenSSH public key lines as Remote.spec.authorizedKeys holds them
 * (sshd(8) AUTHORIZED_KEYS FILE FORMAT, without options): "TYPE BASE64
 * [COMMENT]", checked and fingerprinted the way ssh-keygen -l does. */
#ifndef SLIP_PLUGIN_PUBKEY_H
#define SLIP_PLUGIN_PUBKEY_H

#include <stdbool.h>
#include <stddef.h>

/* Longest key line accepted (the CRD's maxLength for one authorizedKeys item). */
#define PUBKEY_LINE_MAX 16384

/* Return codes a caller branches on; other failures are -1. */
enum {
	PUBKEY_EPRIVATE = -2, /* the text is a private key */
};

/* One parsed key line. */
struct pubkey {
	char type[64];        /* "ssh-ed25519", "ecdsa-sha2-nistp256", ... */
	char fingerprint[64]; /* "SHA256:<base64 without padding>", as ssh-keygen -l */
	char comment[1024];   /* the rest of the line after the blob, or "" */
	char *line;           /* "TYPE BASE64[ COMMENT]" normalised to single
	                         spaces and no line ending (owned) */
};

/* Parses LINE (LEN bytes, no NUL needed; surrounding whitespace and a final
 * newline are ignored) into OUT: a known key type, a base64 blob whose first
 * string names the same type, and an optional comment. Key options in front
 * of the type are refused, as the Remote CRD refuses them. Returns 0 (free
 * OUT with pubkey_release), PUBKEY_EPRIVATE for PEM or OpenSSH private key
 * text, or -1; both with err_msg() saying what is wrong. */
int pubkey_parse(struct pubkey *out, const char *line, size_t len);

/* Frees OUT's contents. */
void pubkey_release(struct pubkey *k);

/* Whether TEXT (LEN bytes) holds a private key ("-----BEGIN ... PRIVATE KEY-----"). */
bool pubkey_is_private(const char *text, size_t len);

/* Writes the "SHA256:..." fingerprint of the key BLOB (LEN bytes, decoded
 * from base64) into BUF of SIZE bytes: SHA-256, base64 without "=" padding
 * (ssh-keygen -l, OpenSSH sshkey_fingerprint). Returns 0 or -1 with err_msg(). */
int pubkey_fingerprint(char *buf, size_t size, const unsigned char *blob, size_t len);

/* Whether FP names the same fingerprint as WANT, a "SHA256:..." string:
 * FP may also be given without its "SHA256:" prefix. */
bool pubkey_fingerprint_matches(const char *fp, const char *want);

#endif
