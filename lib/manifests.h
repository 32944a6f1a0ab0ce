/* manifests: the Kubernetes objects a repository holds in a folder of its
 * pushed tree (a Remote's spec.manifests.path), read from git, checked
 * against the Remote's namespace, put in the order they are applied in, and
 * given the images just built. The same image substitution runs over a
 * multi-document stream, for a Helm --post-renderer.
 *
 * Objects are jansson trees as yamljson reads them (YAML 1.1 scalars, as
 * sigs.k8s.io/yaml resolves them for kubectl). */
#ifndef SLIP_MANIFESTS_H
#define SLIP_MANIFESTS_H

#include <stddef.h>
#include <git2.h>
#include <jansson.h>

/* Bounds on what manifests_load reads: files matched, bytes of those files
 * together, and objects (documents, and items of kind List) in all. */
#define MANIFESTS_MAX_FILES 1000
#define MANIFESTS_MAX_BYTES (16 * 1024 * 1024)
#define MANIFESTS_MAX_OBJECTS 5000

/* Longest text manifests_where writes, with its NUL. */
#define MANIFESTS_WHERE_MAX 1200

struct manifest_obj {
	json_t *obj;  /* the object: a JSON object with apiVersion, kind, metadata */
	char *path;   /* its file, the full path in the tree ("deploy/web.yaml") */
	size_t doc;   /* 1-based document of the file (empty documents count) */
	size_t item;  /* 1-based index in the items of a kind List, else 0 */
	size_t order; /* 0-based position in the load order (files, then documents) */
};

struct manifests {
	struct manifest_obj *objs; /* n objects, owned */
	size_t n;
	int is_helm_chart; /* the folder holds a Chart.yaml: objs is empty */
};

/* Sets up an empty list in place. */
void manifests_init(struct manifests *m);

/* Frees the objects and their paths and leaves an empty list. */
void manifests_release(struct manifests *m);

/* Reads the manifests under the folder PATH of TREE ("" or "." for the
 * root; no leading or trailing "/") into M, which must be empty
 * (manifests_init). Every blob named *.yaml, *.yml or *.json below PATH, at
 * any depth, is read in byte order of its full path. YAML files may hold
 * several documents ("---"), of which the empty ones are skipped; a .json file
 * holds one JSON value (read by jansson). An object of kind List (what
 * `kubectl get -o yaml` prints) contributes its items. Every document that is
 * not empty must be a mapping. Files and folders whose names start with "."
 * are skipped: they hold tools' settings (.github/workflows/ci.yml,
 * .gitlab-ci.yml), not manifests. Symbolic links and submodules are refused,
 * not followed. The lookups go through TREE's repository.
 *
 * A Chart.yaml directly in PATH makes M a Helm chart: is_helm_chart is set,
 * nothing is read, and the caller runs helm on the folder instead.
 *
 * Returns 0, or -1 with err_msg(), one line naming the file where one is at
 * fault:
 *   "manifests path 'P' not found in the pushed tree" (or "is not a folder");
 *   "kustomize is not supported: P/kustomization.yaml: ..." when PATH or a
 *     folder below holds kustomization.yaml, kustomization.yml or
 *     Kustomization;
 *   "P/sub/Chart.yaml: a Helm chart inside the manifests folder: ...";
 *   "FILE: yaml: line L column C: PROBLEM" or "FILE: json: ..." for a file
 *     that does not parse;
 *   "FILE: document N: not a Kubernetes object (a mapping)";
 *   "manifests: more than MANIFESTS_MAX_FILES files ...", "... bytes ...",
 *     "... objects ..." past the bounds above.
 * On failure M is left empty. */
int manifests_load(struct manifests *m, const git_tree *tree, const char *path);

/* Writes where O came from, "FILE: document N" or "FILE: document N: item
 * I", into OUT (NUL-terminated, cut to fit). Returns OUT. */
char *manifests_where(char out[static MANIFESTS_WHERE_MAX], const struct manifest_obj *o);

/* Checks every object of M against the Remote's NAMESPACE and fills in
 * metadata.namespace where it is missing or empty. In that order, each object
 * must have:
 *   - a non-empty string apiVersion and kind, and metadata.name, which like
 *     metadata.namespace holds no control characters (messages quote them);
 *   - an API version the API server still serves: the versions removed in
 *     Kubernetes 1.16 to 1.32 are refused with the replacement named, e.g.
 *     "extensions/v1beta1 Deployment was removed in Kubernetes 1.16: use
 *     apps/v1 (and add spec.selector)". The table follows the Deprecated API
 *     Migration Guide, https://kubernetes.io/docs/reference/using-api/
 *     deprecation-guide/;
 *   - a namespaced kind: the cluster-scoped built-in kinds (Namespace, Node,
 *     PersistentVolume, ClusterRole, ClusterRoleBinding,
 *     CustomResourceDefinition, StorageClass, CSIDriver, CSINode,
 *     VolumeAttachment, PriorityClass, IngressClass, RuntimeClass,
 *     Validating/MutatingWebhookConfiguration, ValidatingAdmissionPolicy(Binding),
 *     APIService, CertificateSigningRequest, FlowSchema,
 *     PriorityLevelConfiguration, PodSecurityPolicy, the token and access
 *     reviews, ...) are refused, matched by API group and kind. Kinds not in
 *     that list, custom resources among them, are taken as namespaced; the
 *     API server's discovery decides when they are applied;
 *   - no metadata.namespace, or NAMESPACE;
 *   - a name the API server accepts for the kind: a DNS-1035 label for a
 *     Service, a DNS-1123 subdomain for the other built-in kinds, and for
 *     RBAC and unknown kinds a path segment (not "." or "..", no "/" or "%").
 * Returns 0, or -1 at the first object at fault, with err_msg()
 * "FILE: document N: KIND 'NAME': PROBLEM", e.g.
 * "app/rbac.yaml: document 2: ClusterRoleBinding 'admin': cluster-scoped kinds
 * are not applied from a repository: only objects in namespace 'web' are".
 * Objects before the one at fault may have had their namespace filled in. */
int manifests_validate(struct manifests *m, const char *namespace);

/* Sorts M into the order objects are applied in, so that what an object
 * refers to exists first: ServiceAccounts, ConfigMaps, Secrets, Roles,
 * RoleBindings, then LimitRanges and ResourceQuotas (they apply to pods as
 * they are created), PersistentVolumeClaims, Services, then workloads
 * (Deployments, StatefulSets, DaemonSets, ReplicaSets, Pods, Jobs, CronJobs),
 * then every other kind (Ingresses, HorizontalPodAutoscalers,
 * PodDisruptionBudgets, NetworkPolicies, custom resources...). Within a
 * class, objects keep their load order. */
void manifests_sort(struct manifests *m);

/* One built image for the containers of a workload. */
struct manifests_image {
	const char *workload;  /* metadata.name of the workload */
	const char *container; /* name of a container or init container in it */
	const char *image;     /* the reference to set, by digest ("R/app@sha256:...") */
	size_t matched;        /* out: how many workloads had the container set */
};

/* Sets, for each of the N IMAGES, the image of the container (or init
 * container) named CONTAINER in every workload of M named WORKLOAD: apps
 * Deployments, StatefulSets and DaemonSets and batch Jobs (pod template at
 * spec.template.spec), and batch CronJobs (spec.jobTemplate.spec.template.
 * spec). Kind List items are single objects in M already. IMAGES[i].matched
 * is set to the number of objects changed, so 0 says the workload or
 * container was not found; the caller decides whether that is an error.
 * Nothing else in the objects changes. Returns 0, or -1 with err_msg() when
 * memory runs out (some images may then be set already). */
int manifests_set_images(struct manifests *m, struct manifests_image *images, size_t n);

/* The same substitution over the multi-document YAML stream IN (LEN bytes),
 * for a Helm --post-renderer, which gets the rendered chart on stdin and must
 * write it back on stdout. Every document, changed or not, is written to *OUT
 * (NUL-terminated; caller frees with free()) as YAML, each starting with
 * "---\n"; empty documents are dropped and comments are not kept. Helm splits
 * the output on "---" lines and reads each with sigs.k8s.io/yaml; YAML rather
 * than JSON so that `helm get manifest` stays readable, and yamljson_emit
 * quotes every string a YAML 1.1 or 1.2 reader could take for another type, so
 * each document reads back as the same JSON. Items of a kind List are
 * substituted in place. IMAGES[i].matched counts as in manifests_set_images.
 * Returns 0, or -1 with err_msg() when IN does not parse ("document N: yaml:
 * ..." or "yaml: line L column C: ..."), exceeds MANIFESTS_MAX_BYTES or
 * MANIFESTS_MAX_OBJECTS documents, or memory runs out (*OUT stays NULL). */
int manifests_set_images_stream(char **out, const char *in, size_t len,
                                struct manifests_image *images, size_t n);

#endif
