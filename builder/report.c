/* report: POSTs the build log in batches and the final result to the
 * caller's endpoint with libcurl (see report.h for the protocol). */
#include <curl/curl.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "report.h"
#include "buf.h"
#include "clock.h"
#include "err.h"
#include "jsontext.h"
#include "log.h"
#include "source.h"
#include "banned.h"

struct report {
	char *url;               /* base URL, without a trailing "/" */
	char shown[512];         /* the URL for messages (no query) */
	struct curl_slist *auth; /* the Authorization header; wiped on free */
	CURL *h;                 /* reused: one connection for every request */
	struct buf batch;        /* queued log lines */
	long batch_since;        /* monotonic ms of the oldest queued line */
	bool log_off;            /* a log request failed: stop sending */
};

static size_t discard(char *p, size_t size, size_t nmemb, void *arg)
{
	return size * nmemb;
}

int report_new(struct report **out, const char *url, const char *token)
{
	struct report *r = NULL;
	char *header = NULL;
	size_t len;
	int ret = -1;

	*out = NULL;
	if (strncmp(url, "http://", 7) && strncmp(url, "https://", 8)) {
		err_set("report URL must start with http:// or https://");
		goto out;
	}
	len = strcspn(strstr(url, "://") + 3, "/?#");
	if (memchr(strstr(url, "://") + 3, '@', len)) {
		err_set("report URL: credentials in the URL are refused (use the token file)");
		goto out;
	}
	r = calloc(1, sizeof(*r));
	if (!r || !(r->url = strdup(url)) || !(r->h = curl_easy_init()) ||
	    asprintf(&header, "Authorization: Bearer %s", token) < 0) {
		header = NULL;
		err_set("out of memory");
		goto out;
	}
	if (!(r->auth = curl_slist_append(NULL, header))) {
		err_set("out of memory");
		goto out;
	}
	len = strlen(r->url);
	while (len > 0 && r->url[len - 1] == '/')
		r->url[--len] = '\0';
	source_url_redact(r->shown, sizeof(r->shown), r->url);
	/* below REPORT_BATCH_MAX before each line, a line cut to it, and "\n" */
	buf_init(&r->batch, 2 * REPORT_BATCH_MAX + 1);
	*out = r;
	r = NULL;
	ret = 0;
out:
	if (header) {
		explicit_bzero(header, strlen(header));
		free(header);
	}
	report_free(r);
	return ret;
}

/* POSTs BODY (LEN bytes) to URL/PATH. Returns 0 on a 2xx answer, or -1 with
 * err_msg(). */
static int post(struct report *r, const char *path, const char *type, const char *body, size_t len,
                long timeout_ms)
{
	char url[4096], ctype[128], errbuf[CURL_ERROR_SIZE] = "";
	struct curl_slist *headers = NULL, *h;
	long code = 0;
	CURLcode rc;
	int ret = -1;

	if ((size_t)snprintf(url, sizeof(url), "%s/%s", r->url, path) >= sizeof(url)) {
		err_set("report URL too long");
		goto out;
	}
	snprintf(ctype, sizeof(ctype), "Content-Type: %s", type);
	/* a copy of the list: curl_slist_append on r->auth would chain ours */
	for (h = r->auth; h; h = h->next)
		if (!(headers = curl_slist_append(headers, h->data)))
			goto oom;
	if (!(headers = curl_slist_append(headers, ctype)) ||
	    !(headers = curl_slist_append(headers, "Expect:")))
		goto oom;
	curl_easy_reset(r->h);
	curl_easy_setopt(r->h, CURLOPT_URL, url);
	curl_easy_setopt(r->h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(r->h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(r->h, CURLOPT_USERAGENT, "slipway-builder");
	curl_easy_setopt(r->h, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(r->h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(r->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	curl_easy_setopt(r->h, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(r->h, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
	curl_easy_setopt(r->h, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(r->h, CURLOPT_ERRORBUFFER, errbuf);
	rc = curl_easy_perform(r->h);
	curl_easy_getinfo(r->h, CURLINFO_RESPONSE_CODE, &code);
	if (rc != CURLE_OK) {
		err_set("report to %s/%s: %s", r->shown, path,
		        *errbuf ? errbuf : curl_easy_strerror(rc));
		goto out;
	}
	if (code < 200 || code > 299) {
		err_set("report to %s/%s: HTTP status %ld", r->shown, path, code);
		goto out;
	}
	ret = 0;
	goto out;
oom:
	err_set("out of memory");
out:
	for (h = headers; h; h = h->next)
		explicit_bzero(h->data, strlen(h->data));
	curl_slist_free_all(headers);
	return ret;
}

void report_flush(struct report *r, bool force)
{
	if (!r || !r->batch.len)
		return;
	if (!force && clock_now_ms() - r->batch_since < REPORT_BATCH_MS)
		return;
	if (!r->log_off && post(r, "log", "text/plain; charset=utf-8", buf_str(&r->batch),
	                        r->batch.len, REPORT_LOG_TIMEOUT_MS) < 0) {
		log_warn("%s; the log is no longer reported (the build goes on)", err_msg());
		r->log_off = true;
	}
	buf_release(&r->batch);
}

void report_line(struct report *r, const char *line)
{
	size_t len;

	if (!r || r->log_off)
		return;
	len = strnlen(line, REPORT_BATCH_MAX);
	if (!r->batch.len)
		r->batch_since = clock_now_ms();
	if (buf_add(&r->batch, line, len) < 0 || buf_add(&r->batch, "\n", 1) < 0)
		return; /* cannot happen: see the maximum in report_new */
	/* a step marker ("-----> Building ...") goes out at once, so the
	 * pusher sees each step start live even when the batch is young */
	if (r->batch.len >= REPORT_BATCH_MAX || !strncmp(line, "-----> ", 7))
		report_flush(r, true);
}

int report_result(struct report *r, const char *image, const char *digest, bool succeeded,
                  const char *reason, const char *message, int exit_code)
{
	json_t *doc = NULL;
	char *body = NULL;
	int ret = -1;

	report_flush(r, true);
	doc =
	    json_pack("{s:o?, s:o, s:b, s:o?, s:o?, s:i}", "image", jsontext_lossy(image, SIZE_MAX),
	              "digest", digest ? json_string(digest) : json_null(), "succeeded", succeeded,
	              "reason", jsontext_lossy(reason, SIZE_MAX), "message",
	              jsontext_lossy(message, SIZE_MAX), "exitCode", exit_code);
	if (!doc || !(body = json_dumps(doc, JSON_COMPACT))) {
		err_set("out of memory");
		goto out;
	}
	for (int i = 0; i < REPORT_RESULT_TRIES; i++) {
		if (i)
			sleep((unsigned)i);
		if ((ret = post(r, "result", "application/json", body, strlen(body),
		                REPORT_RESULT_TIMEOUT_MS)) == 0)
			break;
		log_warn("%s (try %d of %d)", err_msg(), i + 1, REPORT_RESULT_TRIES);
	}
out:
	free(body);
	json_decref(doc);
	return ret;
}

void report_free(struct report *r)
{
	if (!r)
		return;
	for (struct curl_slist *h = r->auth; h; h = h->next)
		explicit_bzero(h->data, strlen(h->data));
	curl_slist_free_all(r->auth);
	if (r->h)
		curl_easy_cleanup(r->h);
	buf_release(&r->batch);
	free(r->url);
	free(r);
}
