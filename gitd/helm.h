/* helm: installs or upgrades a Helm chart of the pushed tree, the Helm half of
 * a Remote's spec.manifests (docs/helm.md). helm runs as a program (argv, no
 * shell: spawn.h) with a ServiceAccount's kubeconfig, release records in
 * ConfigMaps (HELM_DRIVER=configmap), and slipway-post-render as its
 * --post-renderer, which sets the images the push built on the rendered
 * workloads, so one push makes one rollout. */
#ifndef SLIP_GITD_HELM_H
#define SLIP_GITD_HELM_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <git2.h>
#include <jansson.h>

/* Longest Helm release name (Helm 3 refuses longer ones: the name goes into
 * labels and its release records' names). */
#define HELM_RELEASE_MAX 53
/* Most spec.manifests.helm.values[] entries read. */
#define HELM_VALUES_MAX 100
/* The ServiceAccount helm acts as when spec.manifests.serviceAccountName is
 * unset. */
#define HELM_DEFAULT_SA "slipway-apply"

/* One spec.manifests.helm.values[] entry: passed as --set=NAME=VALUE. */
struct helm_value {
	const char *name;  /* not empty, no "=" */
	const char *value; /* "" when unset */
};

/* spec.manifests of a Remote as this module reads it. Strings other than
 * path are borrowed from the Remote's object. */
struct helm_spec {
	bool has_path;       /* spec.manifests.path is set */
	char path[1024];     /* it, without leading "/" or "./" and trailing "/";
	                        "" for the root */
	bool has_helm;       /* spec.manifests.helm is an object */
	const char *release; /* spec.manifests.helm.release, or NULL when unset/"" */
	struct helm_value values[HELM_VALUES_MAX];
	size_t nvalues;
	bool wait;      /* spec.manifests.wait, true when unset */
	long timeout_s; /* spec.manifests.timeoutSeconds, 0 when unset */
	const char *sa; /* spec.manifests.serviceAccountName, HELM_DEFAULT_SA
	                   when unset/"" */
};

/* Reads spec.manifests of the Remote object OBJ (the API server's JSON,
 * either kind; borrowed, and OUT's strings point into it) into OUT.
 * Returns 0, or -1 with err_msg() naming the field, e.g.
 * "spec.manifests.helm.values[2].name: missing", "spec.manifests.path:
 * '..' is not allowed", "spec.manifests.helm.values: 101 items, at most
 * 100". No spec.manifests at all is 0 with OUT->has_path false. */
int helm_spec_read(struct helm_spec *out, const json_t *obj);

/* Whether the folder PATH of TREE ("" for the root) is a Helm chart: it
 * holds a Chart.yaml blob. Returns 1 when it is, 0 when not (PATH missing or
 * not a folder included: plain manifests are someone else's business), or -1
 * with err_msg() when it is a chart holding a symbolic link or submodule at
 * any depth ("chart 'P': P/templates/x.yaml: symbolic links are not
 * followed"): helm would follow a link out of the checked-out tree, into
 * gitd's own files. */
int helm_chart_find(const git_tree *tree, const char *path);

/* Writes into OUT the release name of a Remote NAME (metadata.name) whose
 * spec.manifests.helm gives no release: NAME itself when it is a valid
 * release name (helm_release_is_valid), else its first 44 characters with
 * every one but a lowercase letter or digit turned into '-', without
 * leading or trailing '-', then "-" and the first 8 hex digits of
 * SHA-256(NAME) (just "r" and those digits when nothing is left). The same
 * Remote gets the same name at every push. Returns OUT. */
char *helm_release_derive(char out[static HELM_RELEASE_MAX + 1], const char *name);

/* Whether NAME is a name Helm 3 accepts for a release: 1 to 53 characters,
 * DNS-1123 labels of lowercase letters, digits and '-' joined by '.' (Helm's
 * validName). */
bool helm_release_is_valid(const char *name);

/* One built image for slipway-post-render. */
struct helm_image {
	const char *deployment; /* workload name (spec.deployments[].name) */
	const char *container;  /* container name */
	const char *image;      /* by digest */
	bool is_rendered;       /* out: the chart renders it, the image was set */
};

struct helm_request {
	const char *helm;          /* helm program: a path, or a name on PATH */
	const char *post_renderer; /* slipway-post-render: an absolute path */
	const char *chart_dir;     /* the chart's folder on disk (absolute) */
	const char *ns;            /* --namespace */
	const char *release;       /* valid (helm_release_is_valid) */
	const struct helm_value *values;
	size_t nvalues;
	struct helm_image *images; /* set on the rendered objects; is_rendered
	                              filled in */
	size_t nimages;
	bool wait;              /* --wait (and --wait-for-jobs) */
	bool atomic;            /* --atomic: a failed install or upgrade is
	                           rolled back (needs wait) */
	long timeout_s;         /* --timeout; > 0 */
	const char *kubeconfig; /* the identity helm acts as (0600 file) */
	const char *work_dir;   /* private, existing: helm's homes, the
	                           images and report files go here */
	const char *path_env;   /* PATH for helm; NULL: "/usr/local/bin:
	                           /usr/bin:/bin" */
	/* Each output line of helm (stdout and stderr), without its newline, as
	 * it arrives. May be NULL. */
	void (*on_line)(void *arg, const char *line);
	void *arg;
	const volatile sig_atomic_t *cancel; /* may be NULL */
};

struct helm_result {
	int revision;       /* the release's revision after the run ("REVISION:"),
	                       0 when helm did not say */
	char message[1024]; /* on failure: helm's "Error: ..." line (without
	                       "Error: "), or how it ended */
};

/* Runs `helm upgrade --install RELEASE CHART_DIR --namespace=NS
 * --post-renderer=POST_RENDERER --post-renderer-args=IMAGES
 * --post-renderer-args=REPORT [--set=NAME=VALUE]... [--wait --wait-for-jobs]
 * [--atomic] --timeout=Ns` with REQ's kubeconfig and HELM_DRIVER=configmap,
 * in REQ->work_dir, with an environment of its own (HOME and Helm's cache,
 * config and data homes under work_dir; nothing of gitd's but PATH). Every
 * argument is one argv element, so values never pass through a shell, and
 * each option is given as --opt=VALUE, so a value starting with "-" stays a
 * value. helm is given timeout_s plus a minute before it is killed. Fills
 * OUT. Returns 0 when the release is deployed, or -1 with err_msg() (and
 * OUT->message) saying why: helm's own error, "helm timed out", "cannot run
 * helm: ..." when it could not be started. */
int helm_apply(struct helm_result *out, const struct helm_request *req);

/* Runs `helm rollback RELEASE REVISION --namespace=NS --timeout=Ns [--wait
 * --wait-for-jobs]` with REQ's identity and environment, as helm_apply does
 * (REQ's chart, values, images, post-renderer and atomic are not used):
 * Helm records a new revision holding REVISION's objects; REVISION 0 is
 * Helm's "the previous release". Fills OUT (its revision stays 0: helm
 * rollback does not print one). Returns 0, or -1 with err_msg() and
 * OUT->message: helm's error (a release with one revision has nothing to
 * roll back to), or "release R: no revision N" when REVISION < 0. */
int helm_rollback(struct helm_result *out, const struct helm_request *req, int revision);

#endif
