/* webhook: the pipeline's events POSTed, signed, to a Remote's webhooks from
 * a delivery thread of the pipeline worker, with retries, blocked targets
 * and the delivery log ConfigMap (delivery.h). */
#include "delivery.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "base64.h"
#include "buf.h"
#include "clock.h"
#include "err.h"
#include "event.h"
#include "kube.h"
#include "banned.h"

#define LOG_RETRIES 5 /* compare-and-swap attempts on the delivery log */

int delivery_sign(char out[DELIVERY_SIGNATURE_SIZE], const void *key, size_t key_len,
                  const void *body, size_t len)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	static const char hex[] = "0123456789abcdef";

	out[0] = '\0';
	if (!HMAC(EVP_sha256(), key, (int)key_len, body, len, mac, &n) || n != 32)
		return err_set("cannot compute the HMAC-SHA256 signature");
	memcpy(out, "sha256=", 7);
	for (unsigned int i = 0; i < n; i++) {
		out[7 + 2 * i] = hex[mac[i] >> 4];
		out[8 + 2 * i] = hex[mac[i] & 15];
	}
	out[7 + 2 * n] = '\0';
	return 0;
}

static bool is_blocked_v4(const unsigned char *a)
{
	return a[0] == 169 && a[1] == 254; /* 169.254.0.0/16, RFC 3927 */
}

bool delivery_is_blocked_address(const struct sockaddr *sa, size_t len)
{
	/* fd00:ec2::254, AWS's Instance Metadata Service over IPv6 */
	static const unsigned char aws6[16] = {0xfd, 0, 0x0e, 0xc2, 0, 0, 0,    0,
	                                       0,    0, 0,    0,    0, 0, 0x02, 0x54};

	if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

		return is_blocked_v4((const unsigned char *)&in->sin_addr);
	}
	if (sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		const unsigned char *a = in6->sin6_addr.s6_addr;

		if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80) /* fe80::/10, RFC 4291 */
			return true;
		if (!memcmp(a, aws6, 16))
			return true;
		if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
			return is_blocked_v4(a + 12);
		return false;
	}
	return true;
}

bool delivery_is_blocked_host(const char *host)
{
	static const char *const names[] = {"metadata.google.internal", "metadata"};
	size_t n = strlen(host);

	if (n && host[n - 1] == '.')
		n--;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strlen(names[i]) == n && !strncasecmp(host, names[i], n))
			return true;
	return false;
}

/* The host and port of URL, each freed by the caller with curl_free; PORT
 * may be NULL when the URL gives none. */
static int url_parts(char **host, char **port, const char *url)
{
	CURLU *u = curl_url();
	char *scheme = NULL;
	int ret = -1;

	*host = *port = NULL;
	if (!u)
		return err_set("out of memory");
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    (strcmp(scheme, "http") && strcmp(scheme, "https")) ||
	    curl_url_get(u, CURLUPART_HOST, host, 0) != CURLUE_OK) {
		err_set("not an http or https URL");
		goto out;
	}
	if (curl_url_get(u, CURLUPART_PORT, port, 0) != CURLUE_OK)
		*port = NULL;
	ret = 0;
out:
	if (ret < 0) {
		curl_free(*host);
		*host = NULL;
	}
	curl_free(scheme);
	curl_url_cleanup(u);
	return ret;
}

int delivery_url_host(char *out, size_t size, const char *url)
{
	char *host, *port;
	int n;

	out[0] = '\0';
	if (url_parts(&host, &port, url) < 0)
		return -1;
	n = snprintf(out, size, "%s%s%s", host, port ? ":" : "", port ? port : "");
	curl_free(host);
	curl_free(port);
	if (n < 0 || (size_t)n >= size) {
		out[0] = '\0';
		return err_set("URL host too long");
	}
	return 0;
}

int delivery_id(char out[DELIVERY_ID_SIZE])
{
	unsigned char b[16];

	if (RAND_bytes(b, sizeof(b)) != 1)
		return err_set("no randomness for a delivery id");
	b[6] = (b[6] & 0x0f) | 0x40; /* version 4, RFC 9562 section 5.4 */
	b[8] = (b[8] & 0x3f) | 0x80; /* variant 10 */
	snprintf(out, DELIVERY_ID_SIZE,
	         "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
	         b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
	         b[15]);
	return 0;
}

/* ---- the sender -------------------------------------------------------- */

struct item {
	char *event, *run, *json;
};

struct delivery_sender {
	struct remote remote; /* parsed from a private copy of the object */
	struct delivery_options o;
	struct kube_client *kube; /* the thread's own */
	struct buf *secrets;      /* per webhook, read at its first delivery */
	bool *is_secret_read;
	bool *is_failing; /* per webhook: a delivery spent its retries */
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct item queue[DELIVERY_QUEUE_MAX];
	size_t head, count; /* ring buffer */
	bool is_closing;
};

/* What one delivery came to, for the log and the delivery log. */
struct delivery {
	char id[DELIVERY_ID_SIZE];
	char host[300];
	long status_code; /* the last answer's, 0 when none */
	int attempts;
	long long duration_ms;
	bool is_ok, is_blocked;
	char error[512];
};

/* curl's opensocket callback: refuses blocked addresses before a socket
 * exists for them, so no connection is ever attempted. */
struct connect_check {
	bool allow_link_local;
	bool is_blocked;
	char address[INET6_ADDRSTRLEN];
};

static curl_socket_t open_socket(void *arg, curlsocktype purpose, struct curl_sockaddr *a)
{
	struct connect_check *cc = arg;

	if (!cc->allow_link_local && delivery_is_blocked_address(&a->addr, a->addrlen)) {
		const void *bytes =
		    a->family == AF_INET6
		        ? (const void *)&((struct sockaddr_in6 *)&a->addr)->sin6_addr
		        : (const void *)&((struct sockaddr_in *)&a->addr)->sin_addr;

		cc->is_blocked = true;
		if (!inet_ntop(a->family, bytes, cc->address, sizeof(cc->address)))
			snprintf(cc->address, sizeof(cc->address), "?");
		return CURL_SOCKET_BAD;
	}
	/* close-on-exec: hooks are forked by the pipeline meanwhile */
	return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

/* The receiver's answer is not used: read and dropped. */
static size_t discard(char *data, size_t size, size_t n, void *arg)
{
	return size * n;
}

/* Reads webhook I's Secret key into s->secrets[I] once. */
static int read_secret(struct delivery_sender *s, size_t i)
{
	const struct remote_webhook *w = &s->remote.webhooks[i];
	const char *b64;
	json_t *obj = NULL;
	int rc;

	if (s->is_secret_read[i])
		return 0;
	rc = kube_get(&obj, s->kube, "v1/secrets", s->remote.ns, w->secret);
	if (rc == KUBE_ENOTFOUND)
		return err_set("secret %s/%s not found", s->remote.ns, w->secret);
	if (rc < 0)
		return err_set("cannot read secret %s/%s: %s", s->remote.ns, w->secret,
		               kube_client_status(s->kube)->message);
	b64 = json_string_value(json_object_get(json_object_get(obj, "data"), w->secret_key));
	if (!b64) {
		json_decref(obj);
		return err_set("secret %s/%s has no key \"%.64s\"", s->remote.ns, w->secret,
		               w->secret_key);
	}
	rc = base64_decode(&s->secrets[i], b64, 2 * DELIVERY_SECRET_MAX);
	json_decref(obj);
	if (rc < 0)
		return err_set("secret %s/%s key \"%.64s\": %s", s->remote.ns, w->secret,
		               w->secret_key, err_msg());
	if (!s->secrets[i].len)
		return err_set("secret %s/%s key \"%.64s\" is empty", s->remote.ns, w->secret,
		               w->secret_key);
	s->is_secret_read[i] = true;
	return 0;
}

/* One POST. Returns 0 when an answer came (*CODE set), or -1 with ERR. */
static int attempt(long *code, struct connect_check *cc, const char *url,
                   struct curl_slist *headers, const char *body, char *err, size_t err_size)
{
	char curl_err[CURL_ERROR_SIZE] = "";
	CURL *k = curl_easy_init();
	CURLcode rc;

	*code = 0;
	if (!k) {
		snprintf(err, err_size, "out of memory");
		return -1;
	}
	curl_easy_setopt(k, CURLOPT_URL, url);
	curl_easy_setopt(k, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(k, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(k, CURLOPT_PROXY, ""); /* no proxy from the environment */
	curl_easy_setopt(k, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(k, CURLOPT_TIMEOUT_MS, DELIVERY_ATTEMPT_TIMEOUT_MS);
	curl_easy_setopt(k, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(k, CURLOPT_USERAGENT, DELIVERY_USER_AGENT);
	curl_easy_setopt(k, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(k, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
	curl_easy_setopt(k, CURLOPT_OPENSOCKETFUNCTION, open_socket);
	curl_easy_setopt(k, CURLOPT_OPENSOCKETDATA, cc);
	curl_easy_setopt(k, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(k, CURLOPT_ERRORBUFFER, curl_err);
	rc = curl_easy_perform(k);
	if (rc == CURLE_OK)
		curl_easy_getinfo(k, CURLINFO_RESPONSE_CODE, code);
	else if (cc->is_blocked)
		snprintf(err, err_size, "blocked address %s (link-local or metadata)", cc->address);
	else
		snprintf(err, err_size, "%s", curl_err[0] ? curl_err : curl_easy_strerror(rc));
	curl_easy_cleanup(k);
	return rc == CURLE_OK ? 0 : -1;
}

static bool is_retried(long code)
{
	return code == 0 || code == 429 || code >= 500;
}

/* Sleeps MS milliseconds (whole, across signals). */
static void pause_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Delivers ITEM to webhook I into D, with the retries of delivery.h. */
static void deliver(struct delivery *d, struct delivery_sender *s, size_t i,
                    const struct item *item)
{
	const struct remote_webhook *w = &s->remote.webhooks[i];
	long long t0 = clock_now_ms();
	long backoff =
	    s->o.backoff_first_ms > 0 ? s->o.backoff_first_ms : DELIVERY_BACKOFF_FIRST_MS;
	struct curl_slist *headers = NULL, *h;
	char line[256], sig[DELIVERY_SIGNATURE_SIZE];
	char *host = NULL, *port = NULL;
	struct buf *secret = &s->secrets[i];
	int max_attempts;

	if (delivery_url_host(d->host, sizeof(d->host), w->url) < 0 ||
	    url_parts(&host, &port, w->url) < 0) {
		snprintf(d->error, sizeof(d->error), "url: %s", err_msg());
		goto out;
	}
	if (!s->o.allow_link_local && delivery_is_blocked_host(host)) {
		d->is_blocked = true;
		snprintf(d->error, sizeof(d->error), "blocked host %.200s (metadata)", host);
		goto out;
	}
	if (read_secret(s, i) < 0) {
		snprintf(d->error, sizeof(d->error), "%s", err_msg());
		goto out;
	}
	if (delivery_sign(sig, secret->data, secret->len, item->json, strlen(item->json)) < 0) {
		snprintf(d->error, sizeof(d->error), "%s", err_msg());
		goto out;
	}
	h = curl_slist_append(NULL, "Content-Type: application/json");
	headers = h;
	snprintf(line, sizeof(line), "X-Slipway-Event: %s", item->event);
	h = h ? curl_slist_append(headers, line) : NULL;
	snprintf(line, sizeof(line), "X-Slipway-Delivery: %s", d->id);
	h = h ? curl_slist_append(headers, line) : NULL;
	snprintf(line, sizeof(line), "X-Slipway-Signature-256: %s", sig);
	h = h ? curl_slist_append(headers, line) : NULL;
	h = h ? curl_slist_append(headers, "Expect:") : NULL; /* no 100-continue round trip */
	if (!h) {
		snprintf(d->error, sizeof(d->error), "out of memory");
		goto out;
	}
	/* a webhook whose last delivery spent its retries gets one attempt per
	 * event, so that a dead receiver cannot keep the worker for long */
	max_attempts = s->is_failing[i] ? 1 : DELIVERY_ATTEMPTS;
	for (d->attempts = 1; d->attempts <= max_attempts; d->attempts++) {
		struct connect_check cc = {.allow_link_local = s->o.allow_link_local};

		if (d->attempts > 1) {
			pause_ms(backoff);
			backoff *= 2;
		}
		d->error[0] = '\0';
		if (attempt(&d->status_code, &cc, w->url, headers, item->json, d->error,
		            sizeof(d->error)) < 0) {
			if (cc.is_blocked) {
				d->is_blocked = true;
				break;
			}
			continue;
		}
		if (d->status_code >= 200 && d->status_code < 300) {
			d->is_ok = true;
			break;
		}
		if (d->status_code >= 300 && d->status_code < 400)
			snprintf(d->error, sizeof(d->error), "HTTP %ld: redirects are not followed",
			         d->status_code);
		else
			snprintf(d->error, sizeof(d->error), "HTTP %ld", d->status_code);
		if (!is_retried(d->status_code))
			break;
	}
	if (d->attempts > max_attempts)
		d->attempts = max_attempts;
	s->is_failing[i] = !d->is_ok && !d->is_blocked && is_retried(d->status_code);
out:
	OPENSSL_cleanse(sig, sizeof(sig));
	curl_slist_free_all(headers);
	curl_free(host);
	curl_free(port);
	d->duration_ms = clock_now_ms() - t0;
}

/* Makes Remote R the owner of object OBJ, so that the garbage collector
 * removes OBJ with R (Kubernetes "Owners and dependents"); nothing when R's
 * object has no uid. */
static void set_owner(json_t *obj, const struct remote *r)
{
	const char *uid =
	    json_string_value(json_object_get(json_object_get(r->obj, "metadata"), "uid"));
	json_t *owners;

	if (!uid || !*uid)
		return;
	owners = json_pack("[{s:s, s:s, s:s, s:s}]", "apiVersion",
	                   r->is_gitkube ? "gitkube.sh/v1alpha1" : "slipway.dev/v1alpha1", "kind",
	                   "Remote", "name", r->name, "uid", uid);
	if (owners)
		json_object_set_new(json_object_get(obj, "metadata"), "ownerReferences", owners);
}

/* Adds D to the front of the delivery log ConfigMap, keeping
 * DELIVERY_LOG_MAX entries, with compare-and-swap retries. */
static int record(struct delivery_sender *s, const json_t *entry)
{
	char name[300];
	int rc = -1;

	if ((size_t)snprintf(name, sizeof(name), "%s-webhook-deliveries", s->remote.name) >= 254)
		return err_set("remote name too long for its delivery log configmap");
	for (int i = 0; i < LOG_RETRIES; i++) {
		json_t *cm = NULL, *list = NULL, *data;
		const char *text;
		char *dumped = NULL;

		rc = kube_get(&cm, s->kube, "v1/configmaps", s->remote.ns, name);
		if (rc < 0 && rc != KUBE_ENOTFOUND)
			return rc;
		text = json_string_value(
		    json_object_get(json_object_get(cm, "data"), "deliveries.json"));
		if (text)
			list = json_loads(text, 0, NULL);
		if (!json_is_array(list)) {
			json_decref(list);
			list = json_array();
		}
		if (!list || json_array_insert(list, 0, (json_t *)entry) < 0) {
			json_decref(list);
			json_decref(cm);
			return err_set("out of memory");
		}
		while (json_array_size(list) > DELIVERY_LOG_MAX)
			json_array_remove(list, json_array_size(list) - 1);
		dumped = json_dumps(list, JSON_COMPACT);
		json_decref(list);
		if (!dumped) {
			json_decref(cm);
			return err_set("out of memory");
		}
		if (!cm) {
			cm = json_pack("{s:s, s:s, s:{s:s, s:s, s:{s:s}}, s:{s:s}}", "apiVersion",
			               "v1", "kind", "ConfigMap", "metadata", "name", name,
			               "namespace", s->remote.ns, "labels",
			               "app.kubernetes.io/managed-by", "slipway", "data",
			               "deliveries.json", dumped);
			if (cm)
				set_owner(cm, &s->remote);
			rc = cm ? kube_create(NULL, s->kube, "v1/configmaps", s->remote.ns, cm)
			        : err_set("out of memory");
		} else {
			data = json_object_get(cm, "data");
			if (!json_is_object(data)) {
				data = json_object();
				json_object_set_new(cm, "data", data);
			}
			json_object_set_new(data, "deliveries.json", json_string(dumped));
			/* metadata.resourceVersion as read: a concurrent writer makes
			 * this a conflict, and we read again */
			rc = kube_replace(NULL, s->kube, "v1/configmaps", s->remote.ns, name, NULL,
			                  cm);
		}
		free(dumped);
		json_decref(cm);
		if (rc != KUBE_ECONFLICT && rc != KUBE_EEXISTS)
			return rc;
	}
	return rc;
}

static void report(const struct delivery_sender *s, const char *result)
{
	char line[64];
	int n;

	if (s->o.report_fd <= 0)
		return;
	n = snprintf(line, sizeof(line), "delivery %s\n", result);
	if (write(s->o.report_fd, line, (size_t)n) < 0)
		event_log("debug", "webhook_report_failed", "{s:s}", "error", strerror(errno));
}

static void deliver_item(struct delivery_sender *s, const struct item *item)
{
	for (size_t i = 0; i < s->remote.nwebhooks; i++) {
		struct delivery d = {0};
		char now[CLOCK_RFC3339_SIZE];
		json_t *entry;

		if (!remote_webhook_wants(&s->remote.webhooks[i], item->event))
			continue;
		if (delivery_id(d.id) < 0) {
			event_log("error", "webhook_failed", "{s:s, s:s, s:s}", "namespace",
			          s->remote.ns, "remote", s->remote.name, "error", err_msg());
			continue;
		}
		deliver(&d, s, i, item);
		event_log(d.is_ok ? "info" : "warn",
		          d.is_ok        ? "webhook_delivered"
		          : d.is_blocked ? "webhook_blocked"
		                         : "webhook_failed",
		          "{s:s, s:s, s:s, s:s, s:s?, s:i, s:s, s:i, s:i, s:I, s:s?}", "namespace",
		          s->remote.ns, "remote", s->remote.name, "hook_event", item->event,
		          "delivery", d.id, "run", item->run, "webhook", (int)i, "host", d.host,
		          "status", (int)d.status_code, "attempts", d.attempts, "duration_ms",
		          (json_int_t)d.duration_ms, "error", d.is_ok ? NULL : d.error);
		report(s, d.is_ok ? "ok" : d.is_blocked ? "blocked" : "error");
		clock_now_rfc3339(now);
		entry = json_pack("{s:s, s:s, s:s?, s:i, s:s, s:i, s:i, s:I, s:s, s:s}", "id", d.id,
		                  "event", item->event, "pipelineRun", item->run, "webhook", (int)i,
		                  "host", d.host, "statusCode", (int)d.status_code, "attempts",
		                  d.attempts, "durationMs", (json_int_t)d.duration_ms, "error",
		                  d.is_ok ? "" : d.error, "time", now);
		if (!entry || record(s, entry) < 0)
			event_log("warn", "webhook_log_failed", "{s:s, s:s, s:s}", "namespace",
			          s->remote.ns, "remote", s->remote.name, "error",
			          entry ? err_msg() : "out of memory");
		json_decref(entry);
	}
}

static void item_release(struct item *it)
{
	free(it->event);
	free(it->run);
	free(it->json);
	memset(it, 0, sizeof(*it));
}

static void *sender_main(void *arg)
{
	struct delivery_sender *s = arg;

	pthread_mutex_lock(&s->lock);
	for (;;) {
		struct item it;

		while (!s->count && !s->is_closing)
			pthread_cond_wait(&s->cond, &s->lock);
		if (!s->count)
			break;
		it = s->queue[s->head];
		memset(&s->queue[s->head], 0, sizeof(it));
		s->head = (s->head + 1) % DELIVERY_QUEUE_MAX;
		s->count--;
		pthread_mutex_unlock(&s->lock);
		deliver_item(s, &it);
		item_release(&it);
		pthread_mutex_lock(&s->lock);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

static void sender_free(struct delivery_sender *s)
{
	for (size_t i = 0; s->secrets && i < s->remote.nwebhooks; i++) {
		if (s->secrets[i].data)
			OPENSSL_cleanse(s->secrets[i].data, s->secrets[i].len);
		buf_release(&s->secrets[i]);
	}
	free(s->secrets);
	free(s->is_secret_read);
	free(s->is_failing);
	for (size_t i = 0; i < DELIVERY_QUEUE_MAX; i++)
		item_release(&s->queue[i]);
	kube_client_free(s->kube);
	remote_release(&s->remote);
	free(s);
}

int delivery_sender_start(struct delivery_sender **out, const struct remote *remote,
                          const struct delivery_options *o)
{
	struct delivery_sender *s;
	json_t *copy;
	int rc;

	*out = NULL;
	if (!remote->nwebhooks)
		return 0;
	s = calloc(1, sizeof(*s));
	copy = json_deep_copy(remote->obj);
	if (!s || !copy) {
		free(s);
		json_decref(copy);
		return err_set("out of memory");
	}
	s->o = *o;
	rc = remote_parse(&s->remote, copy, remote->is_gitkube);
	json_decref(copy);
	if (rc < 0) {
		free(s);
		return -1;
	}
	s->secrets = calloc(s->remote.nwebhooks, sizeof(*s->secrets));
	s->is_secret_read = calloc(s->remote.nwebhooks, sizeof(*s->is_secret_read));
	s->is_failing = calloc(s->remote.nwebhooks, sizeof(*s->is_failing));
	if (!s->secrets || !s->is_secret_read || !s->is_failing) {
		sender_free(s);
		return err_set("out of memory");
	}
	for (size_t i = 0; i < s->remote.nwebhooks; i++)
		buf_init(&s->secrets[i], DELIVERY_SECRET_MAX);
	if (kube_client_new_default(&s->kube, o->kubeconfig, o->context) < 0) {
		sender_free(s);
		return -1;
	}
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	rc = pthread_create(&s->thread, NULL, sender_main, s);
	if (rc) {
		pthread_cond_destroy(&s->cond);
		pthread_mutex_destroy(&s->lock);
		sender_free(s);
		return err_set("cannot start the webhook thread: %s", strerror(rc));
	}
	*out = s;
	return 0;
}

bool delivery_wants(const struct delivery_sender *s, const char *event)
{
	for (size_t i = 0; s && i < s->remote.nwebhooks; i++)
		if (remote_webhook_wants(&s->remote.webhooks[i], event))
			return true;
	return false;
}

void delivery_send(struct delivery_sender *s, const char *event, const char *run, const char *json)
{
	struct item it = {0};

	if (!delivery_wants(s, event))
		return;
	it.event = strdup(event);
	it.run = run ? strdup(run) : NULL;
	it.json = strdup(json);
	if (!it.event || !it.json || (run && !it.run)) {
		item_release(&it);
		event_log("error", "webhook_dropped", "{s:s, s:s, s:s, s:s}", "namespace",
		          s->remote.ns, "remote", s->remote.name, "hook_event", event, "error",
		          "out of memory");
		return;
	}
	pthread_mutex_lock(&s->lock);
	if (s->count == DELIVERY_QUEUE_MAX) {
		pthread_mutex_unlock(&s->lock);
		item_release(&it);
		event_log("warn", "webhook_dropped", "{s:s, s:s, s:s, s:s}", "namespace",
		          s->remote.ns, "remote", s->remote.name, "hook_event", event, "error",
		          "delivery queue full");
		return;
	}
	s->queue[(s->head + s->count) % DELIVERY_QUEUE_MAX] = it;
	s->count++;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

void delivery_sender_finish(struct delivery_sender *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	s->is_closing = true;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
	pthread_join(s->thread, NULL);
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->lock);
	sender_free(s);
}
