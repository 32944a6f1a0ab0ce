/* Unit tests of gitd's internal endpoint for builders (buildsrv.h): a server
 * on 127.0.0.1 driven with libcurl as a builder would, plus the requests a
 * builder should never send (wrong token, wrong method, too big, too late). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "tap.h"
#include "buf.h"
#include "buildsrv.h"
#include "clock.h"
#include "err.h"

static char scratch[] = "/tmp/slipway-unit-buildsrv-XXXXXX";
static char source_path[128], events_path[160], held_path[128];
static char first_token[65]; /* kept to look for it in the log */

struct reply {
	long code;
	struct buf body;
};

static size_t on_body(char *p, size_t size, size_t nmemb, void *arg)
{
	struct reply *r = arg;

	return buf_add(&r->body, p, size * nmemb) < 0 ? 0 : size * nmemb;
}

/* One request; TOKEN NULL sends no Authorization. Returns the status, or -1
 * when no HTTP answer came (a closed connection). R may be NULL. */
static long request(struct reply *r, const char *method, const char *url, const char *token,
                    const char *body, size_t len)
{
	struct reply local;
	struct curl_slist *h = NULL;
	char auth[128];
	CURL *c = curl_easy_init();
	CURLcode rc;

	if (!r)
		r = &local;
	r->code = -1;
	buf_init(&r->body, 1 << 20);
	if (token) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
		h = curl_slist_append(h, auth);
	}
	h = curl_slist_append(h, "Content-Type: text/plain");
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
	if (body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	}
	rc = curl_easy_perform(c);
	if (rc == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->code);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	if (r == &local)
		buf_release(&local.body);
	return r->code;
}

static long post(const char *base, const char *what, const char *token, const char *body)
{
	char url[600];

	snprintf(url, sizeof(url), "%s/%s", base, what);
	return request(NULL, "POST", url, token, body, strlen(body));
}

static struct buf drained;

static void on_line(void *arg, const char *line)
{
	buf_adds(&drained, line);
	buf_adds(&drained, "|");
}

static void test_buildsrv(void)
{
	struct buildsrv *s = NULL;
	struct buildsrv_build *b = NULL, *b2 = NULL;
	struct buildsrv_result res;
	struct reply r;
	char url[600], wrong[65], *big;
	const char *src, *rep, *tok;
	size_t n;
	FILE *f;

	f = fopen(source_path, "wb");
	fwrite("\x1f\x8b source bytes\0 with a NUL", 1, 27, f);
	fclose(f);

	is_int(buildsrv_start(&s, "127.0.0.1", NULL), 0, "the server starts on 127.0.0.1");
	if (!s) {
		printf("# %s\n", err_msg());
		return;
	}
	is_int(buildsrv_add(&b, s, source_path), 0, "a build is registered");
	src = buildsrv_source_url(b);
	rep = buildsrv_report_url(b);
	tok = buildsrv_token(b);
	snprintf(first_token, sizeof(first_token), "%s", tok);
	ok(!strncmp(src, "http://127.0.0.1:", 17) && strstr(src, "/builds/") &&
	       strlen(strstr(src, "/builds/")) == 8 + 16 + strlen("/source.tar.gz"),
	   "source URL is http://127.0.0.1:PORT/builds/ID/source.tar.gz: %s", src);
	ok(!strncmp(src, rep, strlen(rep)) && !strcmp(src + strlen(rep), "/source.tar.gz"),
	   "report URL is the build's base: %s", rep);
	ok(strlen(tok) == 64 && strspn(tok, "0123456789abcdef") == 64, "token is 64 hex digits");

	is_int(request(&r, "GET", src, tok, NULL, 0), 200, "GET source with the token: 200");
	ok(r.body.len == 27 && !memcmp(r.body.data, "\x1f\x8b source bytes\0 with a NUL", 27),
	   "the body is the file's bytes");
	buf_release(&r.body);
	is_int(buildsrv_source_fetches(b), 1, "one source fetch counted");

	snprintf(wrong, sizeof(wrong), "%s", tok);
	wrong[0] = wrong[0] == 'a' ? 'b' : 'a';
	is_int(request(NULL, "GET", src, wrong, NULL, 0), 401, "a wrong token: 401");
	is_int(request(NULL, "GET", src, NULL, NULL, 0), 401, "no token: 401");
	is_int(request(NULL, "GET", src, "short", NULL, 0), 401, "a short token: 401");
	is_int(buildsrv_source_fetches(b), 1, "refused requests are not fetches");
	is_int(post(rep, "log", wrong, "x\n"), 401, "a log with a wrong token: 401");
	is_int(request(NULL, "POST", src, tok, "x", 1), 405, "POST to the source: 405");
	snprintf(url, sizeof(url), "%s/log", rep);
	is_int(request(NULL, "GET", url, tok, NULL, 0), 405, "GET of the log: 405");
	is_int(request(NULL, "GET", "http://127.0.0.1:1/", NULL, NULL, 0), -1,
	       "(port 1 is closed)");
	snprintf(url, sizeof(url), "%.*s0123456789abcdef/source.tar.gz",
	         (int)(strstr(src, "/builds/") + 8 - src), src);
	is_int(request(NULL, "GET", url, tok, NULL, 0), 404, "an unknown build id: 404");
	snprintf(url, sizeof(url), "%s/other", rep);
	is_int(request(NULL, "GET", url, tok, NULL, 0), 404, "an unknown path: 404");

	is_int(post(rep, "log", tok, "first line\nsecond li"), 200, "a log chunk ending mid-line");
	is_int(post(rep, "log", tok, "ne\nthird line\n"), 200, "the rest of it");
	buf_init(&drained, 1 << 20);
	n = buildsrv_drain(b, on_line, NULL);
	is_int(n, 3, "three lines drained");
	is_str(buf_str(&drained), "first line|second line|third line|",
	       "whole lines, in order, without newlines");
	buf_release(&drained);
	is_int(buildsrv_drain(b, on_line, NULL), 0, "a second drain has nothing");

	big = malloc(BUILDSRV_LOG_MAX + 2);
	memset(big, 'x', BUILDSRV_LOG_MAX + 1);
	big[BUILDSRV_LOG_MAX] = '\n';
	big[BUILDSRV_LOG_MAX + 1] = '\0';
	is_int(post(rep, "log", tok, big), 413, "a log body over BUILDSRV_LOG_MAX: 413");
	/* fill the queue past BUILDSRV_QUEUE_MAX with 1 KiB lines */
	for (size_t i = 0; i < BUILDSRV_LOG_MAX; i++)
		big[i] = (i % 1024 == 1023) ? '\n' : 'y';
	big[BUILDSRV_LOG_MAX] = '\0';
	for (int i = 0; i < 17; i++)
		post(rep, "log", tok, big);
	buf_init(&drained, 64 << 20);
	n = buildsrv_drain(b, on_line, NULL);
	is_int(n, 4096 + 1, "a full queue keeps 4 MiB of lines, then says how many were dropped");
	ok(drained.len > 20 && strstr(drained.data, "|[256 log lines dropped]|"),
	   "the last line counts the dropped lines");
	buf_release(&drained);
	free(big);

	ok(!buildsrv_result(&res, b), "no result yet");
	is_int(post(rep, "result", tok, "{\"image\": 3}"), 400, "a malformed result: 400");
	is_int(post(rep, "result", tok, "not json"), 400, "a result that is not JSON: 400");
	ok(!buildsrv_result(&res, b), "and nothing is stored");
	is_int(post(rep, "result", tok,
	            "{\"image\":\"127.0.0.1:5000/app:v1\",\"digest\":\"sha256:"
	            "252d0c5a6e2f4c2a3b9d1e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b\","
	            "\"succeeded\":true,\"reason\":\"Pushed\",\"message\":\"\",\"exitCode\":0}"),
	       200, "the result: 200");
	ok(buildsrv_result(&res, b), "the result is stored");
	ok(res.succeeded && res.exit_code == 0 && !strcmp(res.image, "127.0.0.1:5000/app:v1") &&
	       !strcmp(res.digest,
	               "sha256:"
	               "252d0c5a6e2f4c2a3b9d1e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b") &&
	       !strcmp(res.reason, "Pushed") && !strcmp(res.message, ""),
	   "and parsed");
	is_int(request(NULL, "GET", src, tok, NULL, 0), 410,
	       "after the result the token is dead: 410");
	is_int(post(rep, "log", tok, "late\n"), 410, "a late log line: 410");
	is_int(post(rep, "result", tok, "{}"), 410, "a second result: 410");

	is_int(buildsrv_add(&b2, s, source_path), 0, "a second build");
	is_int(post(buildsrv_report_url(b2), "result", buildsrv_token(b2),
	            "{\"image\":\"r/x:1\",\"digest\":null,\"succeeded\":false,"
	            "\"reason\":\"BuildFailed\",\"message\":\"build of r/x:1 failed\\n(x)\","
	            "\"exitCode\":4}"),
	       200, "a failed build's result");
	ok(buildsrv_result(&res, b2) && !res.succeeded && res.exit_code == 4 && !*res.digest &&
	       !strcmp(res.reason, "BuildFailed") &&
	       !strcmp(res.message, "build of r/x:1 failed (x)"),
	   "null digest, reason and a one-line message");
	snprintf(url, sizeof(url), "%s", buildsrv_source_url(b2));
	buildsrv_remove(s, b2);
	is_int(request(NULL, "GET", url, wrong, NULL, 0), 410, "a removed build: 410");
	snprintf(url, sizeof(url), "%s", src); /* src dies with b */
	buildsrv_remove(s, b);
	is_int(request(NULL, "GET", url, NULL, NULL, 0), 410, "the first build removed: 410");
	buildsrv_remove(s, NULL);
	buildsrv_free(s);
	buildsrv_free(NULL);
}

/* A GET of URL with TOKEN on a thread of its own, as a builder started
 * before its source is complete. */
struct fetch {
	pthread_t thread;
	const char *url, *token;
	struct reply r;
	atomic_bool is_done;
};

static void *fetch_main(void *arg)
{
	struct fetch *f = arg;

	request(&f->r, "GET", f->url, f->token, NULL, 0);
	atomic_store(&f->is_done, true);
	return NULL;
}

/* Polls until B's builder asked for its source, for at most 10 s. */
static bool source_asked(const struct buildsrv_build *b)
{
	long long deadline = clock_now_ms() + 10000, at = 0, result_at;

	while (!at && clock_now_ms() < deadline) {
		buildsrv_times(&at, &result_at, b);
		if (!at)
			usleep(1000);
	}
	return at != 0;
}

/* A source still being written: its request waits until it is complete. */
static void test_held_source(void)
{
	struct buildsrv *s = NULL;
	struct buildsrv_build *b = NULL;
	struct fetch f = {0};
	FILE *file;

	unlink(held_path);
	if (buildsrv_start(&s, "127.0.0.1", NULL) < 0 || buildsrv_source_hold(s, held_path) < 0 ||
	    buildsrv_add(&b, s, held_path) < 0) {
		ok(0, "a server with a held source: %s", err_msg());
		buildsrv_free(s);
		return;
	}
	f.url = buildsrv_source_url(b);
	f.token = buildsrv_token(b);
	pthread_create(&f.thread, NULL, fetch_main, &f);
	ok(source_asked(b), "the builder's source request arrives while the source is held");
	/* it was parked in the same critical section that recorded it */
	ok(!atomic_load(&f.is_done), "it is not answered while the source is held");
	file = fopen(held_path, "wb");
	fwrite(" written late", 1, 15, file);
	fclose(file);
	buildsrv_source_ready(s, held_path);
	pthread_join(f.thread, NULL);
	is_int(f.r.code, 200, "once ready, it is answered 200");
	ok(f.r.body.len == 15 && !memcmp(f.r.body.data, " written late", 15),
	   "with the file as it was completed");
	buf_release(&f.r.body);
	is_int(buildsrv_source_fetches(b), 1, "one source fetch counted");
	buildsrv_source_ready(s, held_path); /* not held: a no-op */

	/* a held source that is never written: 500 when released */
	unlink(held_path);
	buildsrv_source_hold(s, held_path);
	memset(&f, 0, sizeof(f));
	f.url = buildsrv_source_url(b);
	f.token = buildsrv_token(b);
	pthread_create(&f.thread, NULL, fetch_main, &f);
	buildsrv_source_ready(s, held_path);
	pthread_join(f.thread, NULL);
	is_int(f.r.code, 500, "a source released without its file: 500");
	buf_release(&f.r.body);

	/* freed with a request still waiting: it ends, nothing hangs */
	buildsrv_remove(s, b);
	buildsrv_source_hold(s, held_path);
	if (buildsrv_add(&b, s, held_path) < 0) {
		ok(0, "a second build: %s", err_msg());
		buildsrv_free(s);
		return;
	}
	memset(&f, 0, sizeof(f));
	f.url = buildsrv_source_url(b);
	f.token = buildsrv_token(b);
	pthread_create(&f.thread, NULL, fetch_main, &f);
	ok(source_asked(b), "another build's request arrives while its source is held");
	buildsrv_free(s);
	pthread_join(f.thread, NULL);
	ok(f.r.code != 200,
	   "the server freed with a waiting request answers it without the "
	   "source (%ld)",
	   f.r.code);
	buf_release(&f.r.body);
}

/* Every refused request is logged, and no log line holds a token. */
static void check_events(const char *token)
{
	FILE *f = fopen(events_path, "r");
	char line[4096];
	int refused = 0, with_token = 0, with_401 = 0;

	while (f && fgets(line, sizeof(line), f)) {
		refused += strstr(line, "\"event\":\"buildsrv_refused\"") != NULL;
		with_401 += strstr(line, "\"status\":401") != NULL;
		with_token += strstr(line, token) != NULL;
	}
	if (f)
		fclose(f);
	is_int(refused, 16, "each of the 16 refused requests is logged once");
	is_int(with_401, 4, "the four 401s among them");
	is_int(with_token, 0, "no log line holds the token (or the wrong one)");
}

int main(void)
{
	int saved = dup(2);
	FILE *events;

	curl_global_init(CURL_GLOBAL_ALL);
	if (!mkdtemp(scratch)) {
		printf("Bail out! cannot create %s\n", scratch);
		return 1;
	}
	snprintf(source_path, sizeof(source_path), "%s/source.tar.gz", scratch);
	snprintf(events_path, sizeof(events_path), "%s/events", scratch);
	snprintf(held_path, sizeof(held_path), "%s/held.tar.gz", scratch);
	events = fopen(events_path, "w");
	dup2(fileno(events), 2); /* event_log writes to stderr */
	test_buildsrv();
	test_held_source();
	dup2(saved, 2);
	fclose(events);
	/* without its first digit: also finds the wrong token sent above */
	check_events(first_token + 1);
	unlink(source_path);
	unlink(events_path);
	unlink(held_path);
	rmdir(scratch);
	curl_global_cleanup();
	return tap_done();
}
