/* buildsrv: gitd's internal HTTP endpoint for builders (DESIGN.md "Builder
 * contract", protocol in docs/builder.md "Reporting"). One server per
 * pipeline process, on an ephemeral port, run by libmicrohttpd on its own
 * thread. Each registered build has a random one-time token and serves:
 *
 *   GET  BASE/builds/ID/source.tar.gz   the source archive (a file)
 *   POST BASE/builds/ID/log             text/plain log lines, each ending "\n"
 *   POST BASE/builds/ID/result          the builder's JSON result (once)
 *
 * every request carrying "Authorization: Bearer TOKEN" (compared in constant
 * time; a wrong or missing token is 401 and is logged without the token).
 * After the result arrives, or the build is removed, the token is dead: any
 * further request is 410 Gone. Bodies have maxima (BUILDSRV_LOG_MAX per log
 * request, BUILDSRV_RESULT_MAX for the result): a larger Content-Length is
 * 413 before the body is read; a chunked body that grows past it closes the
 * connection (HTTP cannot answer in the middle of a body). An unknown path
 * or build id is 404, a wrong method 405, a malformed result 400. Every
 * refused request is logged (event "buildsrv_refused"), without the token.
 *
 * Threads: the server's thread only queues lines and stores the result
 * under a mutex; the pipeline's thread takes them with buildsrv_drain and
 * buildsrv_result, so no callback ever runs on the server's thread. */
#ifndef SLIP_GITD_BUILDSRV_H
#define SLIP_GITD_BUILDSRV_H

#include <stdbool.h>
#include <stddef.h>

#define BUILDSRV_LOG_MAX (256 * 1024)   /* one POST .../log body */
#define BUILDSRV_RESULT_MAX (16 * 1024) /* the POST .../result body */
/* Queued, undrained log bytes; past it lines are dropped and counted. */
#define BUILDSRV_QUEUE_MAX (4u << 20)

struct buildsrv;
struct buildsrv_build;

/* Starts a server listening on BIND_HOST (an IPv4 or IPv6 literal, e.g.
 * "127.0.0.1" or "0.0.0.0") at an ephemeral port. URLs handed to builders
 * use ADVERTISE_HOST (a host name or literal builders can reach, e.g. the
 * pod IP; NULL: BIND_HOST). *OUT belongs to the caller: buildsrv_free().
 * Returns 0 or -1 with err_msg(). */
int buildsrv_start(struct buildsrv **out, const char *bind_host, const char *advertise_host);

/* Stops the server and frees it with every build still registered. NULL is
 * allowed. */
void buildsrv_free(struct buildsrv *s);

/* Marks the file SOURCE_PATH as still being written, so that a builder can
 * be started before it is complete: a source request of a build with this
 * SOURCE_PATH (as given to buildsrv_add, compared as a string) waits, its
 * connection suspended (without a timeout), until buildsrv_source_ready,
 * and is then answered as any. Every hold must be released with
 * buildsrv_source_ready; buildsrv_free releases those left. Returns 0 or -1
 * with err_msg() (out of memory; nothing is held then). */
int buildsrv_source_hold(struct buildsrv *s, const char *source_path);

/* SOURCE_PATH is complete, or will not be (a missing file is answered 500
 * as always): the requests waiting for it are answered. Callable from any
 * thread. */
void buildsrv_source_ready(struct buildsrv *s, const char *source_path);

/* Registers a build whose source is the file SOURCE_PATH (borrowed: it must
 * outlive the build; served with Content-Type application/gzip). *OUT is
 * owned by S; remove it with buildsrv_remove. Returns 0 or -1 with err_msg(). */
int buildsrv_add(struct buildsrv_build **out, struct buildsrv *s, const char *source_path);

/* The build's URLs and token (borrowed, valid until buildsrv_remove):
 * source URL "http://HOST:PORT/builds/ID/source.tar.gz", report URL
 * "http://HOST:PORT/builds/ID" (builder's --report-url), and the token
 * (64 hex digits; a secret: never log it). */
const char *buildsrv_source_url(const struct buildsrv_build *b);
const char *buildsrv_report_url(const struct buildsrv_build *b);
const char *buildsrv_token(const struct buildsrv_build *b);

/* Calls ON_LINE (on the caller's thread) for each log line received since
 * the last drain, in order, without its newline; then, if lines were
 * dropped because the queue was full, once with "[N log lines dropped]".
 * Returns the number of lines delivered. */
size_t buildsrv_drain(struct buildsrv_build *b, void (*on_line)(void *arg, const char *line),
                      void *arg);

/* The builder's result (builder/report.h), as received. */
struct buildsrv_result {
	bool succeeded;
	char image[1024];   /* the image reference built (tag form) */
	char digest[80];    /* "sha256:HEX", or "" */
	char reason[64];    /* "Pushed", "BuildFailed", "PushFailed", ... */
	char message[1024]; /* one line */
	int exit_code;      /* the builder's exit code (docs/builder.md) */
};

/* Parses a builder's result body (BODY, LEN bytes: the JSON object of
 * builder/report.h, from the network) into OUT: every string member must
 * fit its field, the digest be "sha256:" and 64 hex digits or null, the
 * message becomes one line. Returns 0, or -1 with a static reason in *WHY
 * (OUT is then zeroed or partly filled). Exposed for the fuzz target. */
int buildsrv_result_parse(struct buildsrv_result *out, const char *body, size_t len,
                          const char **why);

/* Returns true and fills OUT when the result has arrived (a malformed
 * result body is answered 400 and not stored). Never blocks. */
bool buildsrv_result(struct buildsrv_result *out, struct buildsrv_build *b);

/* Number of source downloads served so far (for tests and logs). */
unsigned buildsrv_source_fetches(const struct buildsrv_build *b);

/* When B's builder first asked for the source (*SOURCE_AT) and when its
 * result was stored (*RESULT_AT), as clock_now_ms() values (clock.h,
 * milliseconds of CLOCK_MONOTONIC); 0 for what has not happened. For the
 * pipeline's timing log. */
void buildsrv_times(long long *source_at, long long *result_at, const struct buildsrv_build *b);

/* Unregisters B, wipes its token (explicit_bzero) and frees it. A request
 * in flight for B keeps it alive until that request ends, and is answered
 * 410; later requests for its id are 410 as well (the last removed ids are
 * remembered, without their tokens). NULL is allowed. */
void buildsrv_remove(struct buildsrv *s, struct buildsrv_build *b);

#endif
