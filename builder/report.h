/* report: sends a build's log and result to the HTTP endpoint that asked for
 * the build (gitd's internal endpoint, DESIGN.md "Builder contract"). The
 * protocol, also in docs/builder.md:
 *
 *   POST URL/log     Content-Type: text/plain; charset=utf-8
 *                    a batch of log lines in order, each ending in "\n";
 *                    one request at a time, never retried
 *   POST URL/result  Content-Type: application/json
 *                    {"image": "REF", "digest": "sha256:HEX" | null,
 *                     "succeeded": true | false, "reason": "Pushed" | ...,
 *                     "message": "one line", "exitCode": N}
 *                    sent once at the end, tried up to REPORT_RESULT_TRIES
 *
 * Both carry "Authorization: Bearer TOKEN"; any 2xx status is success. */
#ifndef SLIP_REPORT_H
#define SLIP_REPORT_H

#include <stdbool.h>

#define REPORT_BATCH_MAX (64 * 1024)   /* a batch is sent once it is this big, */
#define REPORT_BATCH_MS 1000           /* or once its first line is this old */
#define REPORT_LOG_TIMEOUT_MS 10000    /* longest wait for one log request */
#define REPORT_RESULT_TIMEOUT_MS 30000 /* longest wait for one result request */
#define REPORT_RESULT_TRIES 3          /* 1 s, then 2 s between them */

struct report;

/* Creates a reporter for base URL (http:// or https://, a trailing "/" is
 * ignored, no user:password@) and bearer TOKEN (copied; wiped by
 * report_free). *OUT belongs to the caller: free it with report_free().
 * Returns 0 or -1 with err_msg(). */
int report_new(struct report **out, const char *url, const char *token);

/* Queues LINE (without its newline) for URL/log, and sends the batch once it
 * holds REPORT_BATCH_MAX bytes, or at once when LINE is a step marker
 * (starts with "-----> "). The first failed log request is reported
 * once on stderr and turns log reporting off: the build goes on. */
void report_line(struct report *r, const char *line);

/* Sends the queued lines if the oldest has waited REPORT_BATCH_MS, or now
 * when FORCE is set. */
void report_flush(struct report *r, bool force);

/* Sends the queued lines, then the result (DIGEST may be NULL; strings that
 * are not UTF-8 are sent with '?' for each non-ASCII byte). Returns 0, or -1
 * with err_msg() when no try got a 2xx answer. */
int report_result(struct report *r, const char *image, const char *digest, bool succeeded,
                  const char *reason, const char *message, int exit_code);

/* Wipes the token and frees R. R may be NULL. */
void report_free(struct report *r);

#endif
