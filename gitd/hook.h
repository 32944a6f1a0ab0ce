/* hook: runs the hook scripts of one pipeline event (DESIGN.md "Hooks:
 * pipeline events"; contract and event JSON Schema in hooks/README.md and
 * hooks/event.schema.json).
 *
 * The scripts of an event are, in this order: the admin's, from gitd's
 * --hooks-dir (DIR/EVENT/NAME, every executable regular file, by name), then
 * the Remote's, from spec.hooks[] entries whose event matches, in spec
 * order, each read from ConfigMap configMapRef.name key configMapRef.key in
 * the Remote's namespace. A ConfigMap script is written to a private file
 * (mode 0700) and run as it is: it needs its own "#!" line.
 *
 * Each script is a child process (lib/spawn.h: argv, never a shell) with
 * the event JSON on stdin, a clean environment (PATH, HOME, LANG, and the
 * SLIPWAY_* variables in hooks/README.md taken from the event; KUBECONFIG
 * when the caller gives one), the caller's working directory, its own
 * process group, stdout and stderr merged and delivered line by line, and a
 * timeout (spec.hooks[].timeoutSeconds, else the default); it dies with
 * gitd.
 *
 * Image hooks (spec.hooks[].image) run as Pods instead (hookpod.h), with
 * the same event, the SLIPWAY_* variables and the same verdict. So does an
 * admin hook whose first lines hold a header
 *
 *     # slipway-pod: {"image": "slipway/hooks", "serviceAccountName": "x"}
 *
 * (a JSON object: image required, serviceAccountName and timeoutSeconds
 * optional; docs/hooks.md "Admin hooks as Pods"): the file is copied into
 * the Pod's event ConfigMap and run there, in the Remote's namespace.
 *
 * Admin hooks: names starting with "." are skipped (editors' swap files),
 * as are directories and files we cannot execute; symbolic links are
 * followed. A missing DIR/EVENT means none; an unreadable one is a failure.
 * Environment values from the event that hold a NUL or a line break are
 * left out. The event JSON reaches stdin through an unlinked file in
 * WORK_DIR, so a hook that never reads it cannot block gitd. */
#ifndef SLIP_GITD_HOOK_H
#define SLIP_GITD_HOOK_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

#include "hookpod.h"
#include "kube.h"
#include "remote.h"

/* The events, in pipeline order (hooks/README.md). */
#define HOOK_EVENTS                                                                                \
	"pre-receive", "post-receive", "pre-build", "post-build", "pre-deploy", "post-deploy",     \
	    "pipeline-succeeded", "pipeline-failed"

/* Longest script read from a ConfigMap key. */
#define HOOK_SCRIPT_MAX (1u << 20)
/* The timeout of a hook when neither it nor the caller sets one. */
#define HOOK_TIMEOUT_DEFAULT_MS 60000L
/* The shortest token lifetime the TokenRequest API grants (10 minutes). */
#define HOOK_TOKEN_TTL_MIN 600

struct hook_opts {
	const char *admin_dir;   /* gitd's --hooks-dir, or NULL */
	const char *event;       /* one of HOOK_EVENTS */
	const char *event_json;  /* the event (hooks/event.schema.json), given on
	                            stdin; its fields also fill SLIPWAY_* */
	const char *cwd;         /* the hooks' working directory (the pushed tree
	                            for build-phase events), or NULL: WORK_DIR */
	const char *work_dir;    /* a private directory (0700) the caller owns,
	                            for the scripts read from ConfigMaps */
	const char *kubeconfig;  /* KUBECONFIG for the hooks, or NULL: none
	                            (hook_kubeconfig_write) */
	long default_timeout_ms; /* admin hooks, and Remote hooks without
	                            timeoutSeconds; <= 0: HOOK_TIMEOUT_DEFAULT_MS */
	/* Each output line of each hook, without its newline, as it arrives
	 * (on the caller's thread); lines are not prefixed. May be NULL. */
	void (*on_line)(void *arg, const char *line);
	/* Called before each hook starts with its display name
	 * ("configmap/NAME:KEY" or "DIR/EVENT/NAME"). May be NULL. */
	void (*on_start)(void *arg, const char *hook);
	void *arg;
	const volatile sig_atomic_t *cancel; /* may be NULL */
	const struct hookpod_config *pod;    /* image hooks and admin Pod hooks
	                                        (hookpod.h); NULL: they fail */
};

struct hook_result {
	unsigned nrun;      /* hooks started */
	bool failed;        /* one exited non-zero, timed out, or could not run */
	char hook[300];     /* the failing hook's display name */
	char message[1024]; /* e.g. "hook configmap/deploy-hooks:check exited
	                       with status 3", "... timed out after 30s",
	                       "configmap default/x not found" */
};

/* Runs the hooks of O->event, the admin ones then REMOTE's (borrowed; may be
 * NULL), with client C (for the ConfigMaps; may be NULL when only admin
 * hooks are wanted), one after another, stopping at the first
 * that fails. A missing ConfigMap or key is a failure of that hook. OUT is
 * always filled. Returns 0 when every hook exited 0 (or there were none),
 * 1 when one failed (OUT says which and why), -1 with err_msg() on an
 * internal error (no memory, O malformed). */
int hook_run_event(struct hook_result *out, struct kube_client *c, const struct remote *remote,
                   const struct hook_opts *o);

/* Whether REMOTE (may be NULL) or ADMIN_DIR has any hook for EVENT (so the
 * caller can skip preparing a working tree). Never fails: an unreadable
 * ADMIN_DIR is false. */
bool hook_has_event(const struct remote *remote, const char *admin_dir, const char *event);

/* Writes a kubeconfig for hooks to PATH (mode 0600): the server and CA of
 * C's configuration and a bearer token for ServiceAccount NS/SA obtained
 * with the TokenRequest API (POST .../serviceaccounts/SA/token) valid for
 * TTL_SECONDS (raised to HOOK_TOKEN_TTL_MIN; the API server may shorten
 * it), namespace NS as the context's namespace. The file is JSON (valid
 * YAML), written next to PATH and renamed over it. With C's configuration
 * insecure-skip-tls-verify is copied, else its CA as
 * certificate-authority-data (none: the system store). Returns 0,
 * KUBE_ENOTFOUND when the ServiceAccount does not exist (nothing written),
 * or another kube.h code with err_msg(). The token is never logged, and
 * the copies this function makes are wiped before they are freed. */
int hook_kubeconfig_write(const char *path, struct kube_client *c, const char *ns, const char *sa,
                          long ttl_seconds);

#endif
