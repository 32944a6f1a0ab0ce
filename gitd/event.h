/* event: gitd's structured log, one JSON object per line on stderr.
 *
 * Every line has "time" (RFC 3339, UTC, milliseconds), "level" and "event",
 * then the event's own fields; the common ones are "remote"
 * (NAMESPACE/REMOTE), "key" (SHA256 fingerprint), "peer" (ADDR:PORT),
 * "bytes" and "duration_ms". Values never hold secrets. A line is written
 * with one write(2) so lines of concurrent processes do not interleave. */
#ifndef SLIP_GITD_EVENT_H
#define SLIP_GITD_EVENT_H

#include <jansson.h>

#include "log.h"

/* Writes one line for EVENT at LEVEL ("info", "warn", "error", "debug")
 * with the fields of the json_pack(3) FORMAT and arguments (an object format
 * such as "{s:s, s:I}", or NULL for none). Lines below the level set by
 * event_set_level are dropped. Never fails visibly: a line that cannot be
 * built is replaced by a minimal one. Values passed with "o" are owned by
 * the call, written or dropped (strings a client chose go as "o" of
 * jsontext_lossy, as jansson refuses invalid UTF-8 in "s" and the whole
 * line with it). */
void event_log(const char *level, const char *event, const char *format, ...);

/* Drops lines below LEVEL ("debug" < "info" < "warn" < "error"); default
 * "info". Also sets lib/log's level (log_set_level) to match, so that with
 * event_log_sink installed one level governs every line. Returns 0, or -1
 * for an unknown level. */
int event_set_level(const char *level);

/* A lib/log sink (log.h's log_sink_fn; ARG unused): writes MESSAGE as a
 * line with event "log", LEVEL's name, "func" (FUNC) and "message"
 * (MESSAGE, logged as a string a client chose since lib/log's messages may
 * quote client input). gitd installs it with log_set_sink so that its
 * stderr carries JSON lines only. */
void event_log_sink(void *arg, enum log_level level, const char *func, const char *message);

#endif
