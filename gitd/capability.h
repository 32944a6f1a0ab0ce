/* capability: reading the capability list a client sends in protocol v0/v1
 * (git Documentation/gitprotocol-capabilities.txt): after the NUL of the
 * first command of a push, after the first want's id of a fetch. The list
 * is capabilities separated by spaces, each "NAME" or "NAME=VALUE" (e.g.
 * "report-status side-band-64k agent=git/2.39.2 object-format=sha1").
 * Unknown capabilities are the caller's to ignore, as git does. The obj-ids
 * on the same lines are read here too (protocol_parse_oid). */
#ifndef SLIP_GITD_CAPABILITY_H
#define SLIP_GITD_CAPABILITY_H

#include <stdbool.h>
#include <stddef.h>
#include <git2.h>

/* One capability of a list; the pointers are borrowed from the list and are
 * not NUL-terminated. */
struct capability {
	const char *name; /* up to the first '=' */
	size_t name_len;
	const char *value; /* after the first '='; NULL when there is none */
	size_t value_len;
};

/* Takes the next capability of the list [*POS, END) into OUT and moves *POS
 * past it. Empty tokens (a leading space, two spaces in a row) are skipped.
 * Returns true, or false at the end of the list (OUT then unset). */
bool capability_next(struct capability *out, const char **pos, const char *end);

/* Whether CAP is NAME without a value ("report-status", not
 * "report-status=x"). */
bool capability_is(const struct capability *cap, const char *name);

/* Whether CAP is named NAME, with a value or without. */
bool capability_is_named(const struct capability *cap, const char *name);

/* Whether CAP has a value and it is VALUE. */
bool capability_value_is(const struct capability *cap, const char *value);

/* Whether the LEN bytes at S (no NUL needed) are an obj-id: exactly 40 hex
 * digits, either case (SHA-1; git Documentation/gitprotocol-common.txt).
 * When it is and OUT is not NULL, the id is stored in *OUT. */
bool protocol_parse_oid(git_oid *out, const char *s, size_t len);

#endif
