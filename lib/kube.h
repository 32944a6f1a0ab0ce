/* kube: a small Kubernetes REST client on libcurl and jansson.
 *
 * Resources are named by "group/version/resource" ("apps/v1/deployments",
 * "slipway.dev/v1alpha1/remotes") or "version/resource" for the core group
 * ("v1/configmaps"), as in the API paths /apis/GROUP/VERSION/... and
 * /api/VERSION/... (Kubernetes API concepts, "Resource URIs"). A NULL or ""
 * namespace addresses cluster-scoped resources or all namespaces (list, watch).
 *
 * Every call that fails returns a negative code below and fills the client's
 * last status (kube_client_status()): the API's Status object when the server
 * sent one, else a transport message. err_msg() holds the same message as a
 * one-line error. Connection errors, 429 (Retry-After honoured) and 5xx are
 * retried with capped exponential backoff and jitter before a call fails.
 *
 * A client is not thread-safe: use one per thread. */
#ifndef SLIP_KUBE_H
#define SLIP_KUBE_H

#include <signal.h>
#include <stdbool.h>
#include <jansson.h>

#include "kubeconfig.h"

/* Return codes a caller branches on; everything else is -1 (KUBE_ERROR). */
enum {
	KUBE_ERROR = -1,         /* transport failure, bad response, other status */
	KUBE_ENOTFOUND = -3,     /* 404, reason NotFound */
	KUBE_EEXISTS = -4,       /* 409, reason AlreadyExists */
	KUBE_ECONFLICT = -5,     /* 409, reason Conflict: stale resourceVersion */
	KUBE_EFORBIDDEN = -6,    /* 403, reason Forbidden (RBAC) */
	KUBE_EUNAUTHORIZED = -7, /* 401, bad or missing credentials */
	KUBE_EINVALID = -8,      /* 422 Invalid or 400 BadRequest: object refused */
	KUBE_EGONE = -9,         /* 410 Gone/Expired: resourceVersion too old */
	KUBE_ETIMEOUT = -10,     /* 504 Timeout, or the request timed out */
};

/* What the API server said about a failed call (the meta/v1 Status kind,
 * Kubernetes API conventions "Response Status Kind"). */
struct kube_status {
	long code;          /* HTTP status code; 0 when no response arrived */
	char reason[64];    /* Status.reason ("NotFound", "Conflict", ...) or "" */
	char message[1024]; /* Status.message, or the transport error */
};

/* Fills OUT from an HTTP status CODE and response BODY of LEN bytes (which may
 * be a Status object, other JSON, truncated or not JSON at all) and returns
 * the named code for it (0 for 2xx). Never fails; exposed for unit tests. */
int kube_status_from_response(struct kube_status *out, long code, const char *body, size_t len);

/* Maps a filled status to its named return code (0 for 2xx). */
int kube_status_to_code(const struct kube_status *st);

struct kube_client;

/* Tuning; zero fields take the defaults in brackets. */
struct kube_client_opts {
	int max_retries;        /* retries after the first try [8]: with the
	                           defaults, 16-32 s of backoff in all, enough
	                           to ride out an API server restart */
	int backoff_base_ms;    /* first backoff, doubled each retry [250] */
	int backoff_max_ms;     /* cap of one backoff [8000] */
	long timeout_ms;        /* whole-request timeout, except watches [30000] */
	const char *user_agent; /* User-Agent header ["slipway/0.1"] */
};

/* Creates a client in *OUT from CFG. CFG's contents move into the client and
 * CFG is left empty (as after kube_config_release). OPTS may be NULL.
 * Returns 0, or -1 with err_msg() (CFG is then left untouched).
 * Free with kube_client_free(). */
int kube_client_new(struct kube_client **out, struct kube_config *cfg,
                    const struct kube_client_opts *opts);

/* Creates a client the way kubectl finds its configuration:
 * kube_config_load_default(KUBECONFIG, CONTEXT) (both may be NULL), then
 * kube_client_new with default options. Returns 0 or -1 with err_msg(). */
int kube_client_new_default(struct kube_client **out, const char *kubeconfig, const char *context);

/* Frees the client and wipes its secrets. NULL is allowed. */
void kube_client_free(struct kube_client *c);

/* The status of the client's last failed call (borrowed, valid until the
 * next call on C). After a successful call its code is the 2xx received. */
const struct kube_status *kube_client_status(const struct kube_client *c);

/* The namespace of the client's context ("default" when none; borrowed). */
const char *kube_client_namespace(const struct kube_client *c);

/* The configuration the client uses (borrowed). */
const struct kube_config *kube_client_config(const struct kube_client *c);

/* Sends METHOD to PATH (starting with "/", query included) with BODY (NULL
 * for none) as CONTENT_TYPE, retrying as described above. On 2xx sets *OUT to
 * the decoded JSON response (caller frees with json_decref; NULL when the
 * body was empty) and returns 0. OUT may be NULL to discard the response. */
int kube_request(json_t **out, struct kube_client *c, const char *method, const char *path,
                 const char *content_type, const json_t *body);

/* Builds the path of a resource collection or object into BUF of SIZE bytes:
 * NAME and SUBRESOURCE may be NULL. Returns 0, or -1 when GVR is malformed or
 * the path does not fit. Names are path-escaped. */
int kube_path(char *buf, size_t size, const char *gvr, const char *ns, const char *name,
              const char *subresource);

/* GET one object into *OUT (caller frees). */
int kube_get(json_t **out, struct kube_client *c, const char *gvr, const char *ns,
             const char *name);

/* Options of list and watch calls; NULL or zero means unset. */
struct kube_list_opts {
	const char *label_selector;   /* e.g. "app=web,tier!=db" */
	const char *field_selector;   /* e.g. "metadata.name=web" */
	long limit;                   /* page size for kube_list/_page */
	const char *continue_token;   /* kube_list_page: the page to fetch */
	const char *resource_version; /* list: consistency; watch: start point */
};

/* LIST one page into *OUT: a List object whose metadata.continue, when
 * present and non-empty, names the next page (pass it back in
 * opts->continue_token). Caller frees. */
int kube_list_page(json_t **out, struct kube_client *c, const char *gvr, const char *ns,
                   const struct kube_list_opts *opts);

/* LIST every page (following metadata.continue) into one List object in *OUT
 * whose "items" holds all items and whose metadata.resourceVersion is the
 * list's. A continue token that expires (410) restarts the list once from the
 * beginning. Caller frees. */
int kube_list(json_t **out, struct kube_client *c, const char *gvr, const char *ns,
              const struct kube_list_opts *opts);

/* POST OBJ into the collection; *OUT (may be NULL) gets the created object. */
int kube_create(json_t **out, struct kube_client *c, const char *gvr, const char *ns,
                const json_t *obj);

/* PUT OBJ over NAME. With metadata.resourceVersion set in OBJ a stale write
 * fails with KUBE_ECONFLICT. SUBRESOURCE may be NULL or e.g. "status". */
int kube_replace(json_t **out, struct kube_client *c, const char *gvr, const char *ns,
                 const char *name, const char *subresource, const json_t *obj);

/* PUT OBJ to NAME's status subresource (kube_replace with "status"). */
int kube_update_status(json_t **out, struct kube_client *c, const char *gvr, const char *ns,
                       const char *name, const json_t *obj);

/* DELETE NAME. PROPAGATION is NULL or "Foreground", "Background", "Orphan".
 * *OUT (may be NULL) gets what the server returned (the object or a Status). */
int kube_delete(json_t **out, struct kube_client *c, const char *gvr, const char *ns,
                const char *name, const char *propagation);

/* The patch formats of PATCH (Kubernetes API concepts, "Patch operations"). */
enum kube_patch_type {
	KUBE_PATCH_STRATEGIC, /* application/strategic-merge-patch+json */
	KUBE_PATCH_MERGE,     /* application/merge-patch+json, RFC 7386 */
	KUBE_PATCH_JSON,      /* application/json-patch+json, RFC 6902 */
	KUBE_PATCH_APPLY,     /* server-side apply, application/apply-patch+yaml */
};

struct kube_patch_opts {
	const char *field_manager; /* required for KUBE_PATCH_APPLY */
	bool force;                /* apply: take over conflicting fields */
	const char *subresource;   /* e.g. "status", or NULL */
	bool dry_run;              /* dryRun=All: validate, persist nothing */
};

/* PATCH NAME with PATCH (JSON; for server-side apply sent as JSON, which is
 * valid YAML). OPTS may be NULL except for KUBE_PATCH_APPLY. */
int kube_patch(json_t **out, struct kube_client *c, const char *gvr, const char *ns,
               const char *name, enum kube_patch_type type, const json_t *patch,
               const struct kube_patch_opts *opts);

/* Events delivered by kube_watch. */
enum kube_event {
	KUBE_EVENT_ADDED,
	KUBE_EVENT_MODIFIED,
	KUBE_EVENT_DELETED,
	KUBE_EVENT_BOOKMARK, /* only resourceVersion is meaningful */
	KUBE_EVENT_LISTED,   /* one item of a (re-)list */
	KUBE_EVENT_SYNCED,   /* a (re-)list ended: objects not LISTED since
	                        the list began are gone; OBJ is NULL */
};

/* Returns a short lowercase name of EV ("added", ...). */
const char *kube_event_name(enum kube_event ev);

/* Called for each event with the object (borrowed; incref to keep). A
 * non-zero return stops the watch and is returned by kube_watch. */
typedef int (*kube_watch_fn)(void *arg, enum kube_event ev, json_t *obj);

struct kube_watch_opts {
	const char *label_selector;
	const char *field_selector;
	const char *resource_version;      /* start here; NULL: list first */
	long timeout_seconds;              /* server-side length of one watch [300] */
	const volatile sig_atomic_t *stop; /* checked at least once a second */
	long max_duration_ms;              /* give up after this long; 0: never */
};

/* Watches GVR in NS (all namespaces when NULL) until FN returns non-zero or
 * *opts->stop becomes non-zero. Starts with a list (LISTED..., SYNCED) unless
 * a resource_version is given; asks for bookmarks; on a dropped connection or
 * a server restart resumes from the last resourceVersion seen, with backoff;
 * on 410 Gone lists again (LISTED..., SYNCED). Returns FN's value, 0 when
 * stopped, KUBE_ETIMEOUT when max_duration_ms passed, or a negative code for
 * failures that retrying cannot fix (403, 404 of the resource type, 401). */
int kube_watch(struct kube_client *c, const char *gvr, const char *ns,
               const struct kube_watch_opts *opts, kube_watch_fn fn, void *arg);

/* Longest line kube_stream_lines delivers whole; longer ones come in
 * pieces of this many bytes. */
#define KUBE_STREAM_LINE_MAX (16u << 10)

/* GETs PATH (from "/", query included), an endpoint whose body is a stream
 * of text lines such as a Pod's log with follow=true
 * (GET /api/v1/namespaces/NS/pods/NAME/log, Kubernetes API reference "Pod"),
 * and calls ON_LINE with each line, without its newline (a "\r" before it is
 * dropped), on the caller's thread as it arrives. The line is borrowed for
 * the call. Runs until the server ends the body, *STOP becomes non-zero
 * (STOP may be NULL; checked at least once a second) or MAX_MS passes
 * (<= 0: no limit). Not retried: what was delivered cannot be taken back.
 * Returns 0 when the body ended or STOP asked, KUBE_ETIMEOUT when MAX_MS
 * passed, or a named code for a failure (a non-2xx answer's Status is in
 * kube_client_status()), with err_msg(). */
int kube_stream_lines(struct kube_client *c, const char *path,
                      void (*on_line)(void *arg, const char *line), void *arg,
                      const volatile sig_atomic_t *stop, long max_ms);

#endif
