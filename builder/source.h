/* source: the bytes of a build context: a tar archive fetched over HTTP(S)
 * with libcurl, and unpacked with libarchive into a private directory so
 * that no entry can land outside it. */
#ifndef SLIP_SOURCE_H
#define SLIP_SOURCE_H

#include <signal.h>
#include <stdint.h>

/* Downloads URL (http:// or https://; redirects are not followed) into the
 * new file PATH (created 0600; it must not exist). TOKEN, when not NULL, is
 * sent as "Authorization: Bearer TOKEN" and appears in no message. Gives up
 * past MAX_BYTES, after TIMEOUT_MS (0: no limit) or when *CANCEL becomes
 * non-zero (CANCEL may be NULL). A URL carrying user:password@ is refused.
 * Returns 0, or -1 with err_msg() (naming the URL without its query string)
 * and PATH removed. */
int source_fetch(const char *url, const char *token, const char *path, uint64_t max_bytes,
                 long timeout_ms, const volatile sig_atomic_t *cancel);

/* Unpacks the tar archive TARBALL (ustar, pax or GNU; plain or gzip) into
 * the existing directory DIR; LABEL names the archive in messages. The archive is parsed in a child
 * process that works inside DIR. Refused, with nothing written past DIR: absolute names, names or
 * hard link targets with a ".." component, writes through a symbolic link, and entries other than
 * files, directories and links. Owners and set-id bits are not restored. Fails past MAX_BYTES of
 * file data or MAX_ENTRIES entries. Returns 0, or -1 with err_msg() naming the archive and the
 * entry; DIR may then hold part of the archive. */
int source_extract(const char *tarball, const char *label, const char *dir, uint64_t max_bytes,
                   uint64_t max_entries);

/* Writes URL without user information, query and fragment into BUF of SIZE
 * bytes, for messages ("https://host/path"); returns BUF. */
const char *source_url_redact(char *buf, size_t size, const char *url);

#endif
