/* manifests: reads a folder of Kubernetes manifests from a git tree, checks
 * the objects against the Remote's namespace, orders them for applying and
 * substitutes built images into workloads (see manifests.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "manifests.h"
#include "yamljson.h"
#include "banned.h"

void manifests_init(struct manifests *m)
{
	m->objs = NULL;
	m->n = 0;
	m->is_helm_chart = 0;
}

void manifests_release(struct manifests *m)
{
	for (size_t i = 0; i < m->n; i++) {
		json_decref(m->objs[i].obj);
		free(m->objs[i].path);
	}
	free(m->objs);
	manifests_init(m);
}

char *manifests_where(char out[static MANIFESTS_WHERE_MAX], const struct manifest_obj *o)
{
	if (o->item)
		snprintf(out, MANIFESTS_WHERE_MAX, "%s: document %zu: item %zu", o->path, o->doc,
		         o->item);
	else
		snprintf(out, MANIFESTS_WHERE_MAX, "%s: document %zu", o->path, o->doc);
	return out;
}

/* --- loading -------------------------------------------------------------- */

/* libgit2's message for its last failure (borrowed). */
static const char *git_message(void)
{
	const git_error *e = git_error_last();

	return e && e->message ? e->message : "unknown libgit2 error";
}

struct file {
	char *path; /* full path in the tree */
	git_oid id;
};

struct walk {
	const char *base; /* the manifests folder, "" for the root */
	struct file *files;
	size_t n;
	int failed; /* err_msg() says why the walk stopped */
};

static int has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);

	return n >= k && !strcmp(s + n - k, suffix);
}

static int is_manifest_name(const char *name)
{
	return has_suffix(name, ".yaml") || has_suffix(name, ".yml") || has_suffix(name, ".json");
}

static int is_kustomization(const char *name)
{
	return !strcmp(name, "kustomization.yaml") || !strcmp(name, "kustomization.yml") ||
	       !strcmp(name, "Kustomization");
}

/* Joins the walk's folder, the entry's folder ROOT (relative to it, "" or
 * ending in "/") and NAME. */
static char *join_path(const char *base, const char *root, const char *name)
{
	struct buf b;

	buf_init(&b, 16384);
	if ((*base && (buf_adds(&b, base) < 0 || buf_adds(&b, "/") < 0)) ||
	    buf_adds(&b, root) < 0 || buf_adds(&b, name) < 0) {
		buf_release(&b);
		return NULL;
	}
	return buf_detach(&b);
}

static int walk_entry(const char *root, const git_tree_entry *e, void *payload)
{
	struct walk *w = payload;
	const char *name = git_tree_entry_name(e);
	git_filemode_t mode = git_tree_entry_filemode(e);
	char *path = NULL;
	int is_subfolder = *root != '\0';

	/* dot folders and files hold tools' settings (.github/workflows/ci.yml,
	 * .gitlab-ci.yml, .pre-commit-config.yaml), not manifests */
	if (name[0] == '.')
		return mode == GIT_FILEMODE_TREE ? 1 : 0;
	if (mode == GIT_FILEMODE_TREE)
		return 0;
	if (!is_kustomization(name) && !is_manifest_name(name))
		return 0;
	path = join_path(w->base, root, name);
	if (!path) {
		w->failed = 1;
		return -1;
	}
	if (is_kustomization(name)) {
		err_set("kustomize is not supported: %s: render it (kustomize build) and commit "
		        "the output, or remove it",
		        path);
		goto fail;
	}
	if (is_subfolder && !strcmp(name, "Chart.yaml")) {
		err_set("%s: a Helm chart inside the manifests folder: set the manifests path "
		        "to the chart's folder",
		        path);
		goto fail;
	}
	if (mode != GIT_FILEMODE_BLOB && mode != GIT_FILEMODE_BLOB_EXECUTABLE) {
		err_set("%s: %s are not followed", path,
		        mode == GIT_FILEMODE_LINK ? "symbolic links" : "submodules");
		goto fail;
	}
	if (w->n >= MANIFESTS_MAX_FILES) {
		err_set("manifests: more than %d files under '%s'", MANIFESTS_MAX_FILES,
		        *w->base ? w->base : ".");
		goto fail;
	}
	w->files[w->n].path = path;
	git_oid_cpy(&w->files[w->n].id, git_tree_entry_id(e));
	w->n++;
	return 0;
fail:
	free(path);
	w->failed = 1;
	return -1;
}

static int cmp_files(const void *a, const void *b)
{
	return strcmp(((const struct file *)a)->path, ((const struct file *)b)->path);
}

/* Appends OBJ (reference taken) from PATH, document DOC, item ITEM to M. */
static int add_obj(struct manifests *m, json_t *obj, const char *path, size_t doc, size_t item)
{
	struct manifest_obj *o;

	if (m->n >= MANIFESTS_MAX_OBJECTS) {
		json_decref(obj);
		return err_set("manifests: more than %d objects (%s: document %zu)",
		               MANIFESTS_MAX_OBJECTS, path, doc);
	}
	o = &m->objs[m->n];
	o->path = strdup(path);
	if (!o->path) {
		json_decref(obj);
		return err_set("out of memory");
	}
	o->obj = obj;
	o->doc = doc;
	o->item = item;
	o->order = m->n;
	m->n++;
	return 0;
}

static int is_list(const json_t *obj)
{
	const char *kind = json_string_value(json_object_get(obj, "kind"));

	return kind && !strcmp(kind, "List") && json_is_array(json_object_get(obj, "items"));
}

/* Adds the documents DOCS (an array; null for empty ones) of PATH to M. */
static int add_documents(struct manifests *m, const char *path, json_t *docs)
{
	json_t *doc, *item;
	size_t i, j;

	json_array_foreach(docs, i, doc)
	{
		if (json_is_null(doc))
			continue;
		if (!json_is_object(doc))
			return err_set("%s: document %zu: not a Kubernetes object (a mapping)",
			               path, i + 1);
		if (!is_list(doc)) {
			if (add_obj(m, json_incref(doc), path, i + 1, 0) < 0)
				return -1;
			continue;
		}
		json_array_foreach(json_object_get(doc, "items"), j, item)
		{
			if (!json_is_object(item))
				return err_set(
				    "%s: document %zu: item %zu: not a Kubernetes object "
				    "(a mapping)",
				    path, i + 1, j + 1);
			if (add_obj(m, json_incref(item), path, i + 1, j + 1) < 0)
				return -1;
		}
	}
	return 0;
}

/* Parses the blob of F (LEN bytes at DATA) and adds its objects to M. */
static int load_file(struct manifests *m, const struct file *f, const char *data, size_t len)
{
	json_t *docs = NULL, *one;
	json_error_t jerr;
	int ret = -1;

	if (has_suffix(f->path, ".json")) {
		one = json_loadb(data, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
		if (!one)
			return err_set("%s: json: line %d column %d: %s", f->path, jerr.line,
			               jerr.column, jerr.text);
		docs = json_array();
		if (!docs || json_array_append_new(docs, one) < 0) {
			err_set("out of memory");
			goto out;
		}
	} else if (yamljson_load_documents(&docs, data, len) < 0) {
		return err_set("%s: %s", f->path, err_msg());
	}
	ret = add_documents(m, f->path, docs);
out:
	json_decref(docs);
	return ret;
}

/* Whether FOLDER (a tree) holds an entry named NAME. */
static int has_entry(const git_tree *folder, const char *name)
{
	return git_tree_entry_byname(folder, name) != NULL;
}

/* Reads the files of W into M, within the byte bound. */
static int load_files(struct manifests *m, git_repository *repo, const struct walk *w)
{
	git_odb *odb = NULL;
	git_blob *blob = NULL;
	size_t total = 0, size;
	git_object_t type;
	int ret = -1;

	if (git_repository_odb(&odb, repo) < 0)
		return err_set("manifests: cannot open the object database: %s", git_message());
	for (size_t i = 0; i < w->n; i++) {
		const struct file *f = &w->files[i];

		/* the header gives the size without inflating the blob */
		if (git_odb_read_header(&size, &type, odb, &f->id) < 0) {
			err_set("%s: cannot read: %s", f->path, git_message());
			goto out;
		}
		if (size > MANIFESTS_MAX_BYTES - total) {
			err_set("manifests: more than %d bytes in all (%s)", MANIFESTS_MAX_BYTES,
			        f->path);
			goto out;
		}
		total += size;
		if (git_blob_lookup(&blob, repo, &f->id) < 0) {
			err_set("%s: cannot read: %s", f->path, git_message());
			goto out;
		}
		if (load_file(m, f, git_blob_rawcontent(blob), (size_t)git_blob_rawsize(blob)) < 0)
			goto out;
		git_blob_free(blob);
		blob = NULL;
	}
	ret = 0;
out:
	git_blob_free(blob);
	git_odb_free(odb);
	return ret;
}

int manifests_load(struct manifests *m, const git_tree *tree, const char *path)
{
	git_repository *repo = git_tree_owner(tree);
	git_tree_entry *entry = NULL;
	git_tree *folder = NULL;
	struct walk w = {.base = path, .files = NULL, .n = 0, .failed = 0};
	int ret = -1;

	manifests_init(m);
	if (!strcmp(path, "."))
		w.base = path = "";
	if (!*path) {
		if (git_tree_dup(&folder, (git_tree *)tree) < 0) {
			err_set("out of memory");
			goto out;
		}
	} else {
		if (git_tree_entry_bypath(&entry, tree, path) < 0) {
			err_set("manifests path '%s' not found in the pushed tree", path);
			goto out;
		}
		if (git_tree_entry_type(entry) != GIT_OBJECT_TREE) {
			err_set("manifests path '%s' is not a folder in the pushed tree", path);
			goto out;
		}
		if (git_tree_lookup(&folder, repo, git_tree_entry_id(entry)) < 0) {
			err_set("manifests path '%s': %s", path, git_message());
			goto out;
		}
	}
	if (has_entry(folder, "Chart.yaml")) {
		m->is_helm_chart = 1;
		ret = 0;
		goto out;
	}
	w.files = calloc(MANIFESTS_MAX_FILES, sizeof(*w.files));
	m->objs = calloc(MANIFESTS_MAX_OBJECTS, sizeof(*m->objs));
	if (!w.files || !m->objs) {
		err_set("out of memory");
		goto out;
	}
	if (git_tree_walk(folder, GIT_TREEWALK_PRE, walk_entry, &w) < 0) {
		if (!w.failed)
			err_set("manifests path '%s': %s", path, git_message());
		goto out;
	}
	/* git orders a folder's entries as if folder names ended in "/"; the
	 * order promised is byte order of the full paths */
	qsort(w.files, w.n, sizeof(*w.files), cmp_files);
	if (load_files(m, repo, &w) < 0)
		goto out;
	ret = 0;
out:
	for (size_t i = 0; w.files && i < w.n; i++)
		free(w.files[i].path);
	free(w.files);
	git_tree_free(folder);
	git_tree_entry_free(entry);
	if (ret < 0)
		manifests_release(m);
	return ret;
}

/* --- validation ----------------------------------------------------------- */

/* The API group of APIVERSION ("apps/v1" -> "apps", "v1" -> ""), into OUT. */
static void api_group(char out[static 256], const char *api_version)
{
	const char *slash = strchr(api_version, '/');
	size_t n = slash ? (size_t)(slash - api_version) : 0;

	if (n > 255)
		n = 255;
	memcpy(out, api_version, n);
	out[n] = '\0';
}

struct removed_api {
	const char *api_version;
	const char *kind; /* NULL: every kind of that version */
	const char *release;
	const char *advice;
};

/* The API versions Kubernetes stopped serving, after the Deprecated API
 * Migration Guide (https://kubernetes.io/docs/reference/using-api/
 * deprecation-guide/), by kind where later releases brought new kinds back
 * into the same version (networking.k8s.io/v1beta1 IPAddress, storage.k8s.io/
 * v1beta1 VolumeAttributesClass...). The first match wins. */
#define SELECTOR "use apps/v1 (and add spec.selector)"
#define INGRESS                                                                                    \
	"use networking.k8s.io/v1 (spec.backend is spec.defaultBackend, serviceName and "          \
	"servicePort are service.name and service.port, pathType is required)"
#define NO_PSP "PodSecurityPolicy is gone since 1.25: use Pod Security Admission"
static const struct removed_api removed_apis[] = {
    /* 1.16 */
    {"extensions/v1beta1", "Deployment", "1.16", SELECTOR},
    {"extensions/v1beta1", "DaemonSet", "1.16", SELECTOR},
    {"extensions/v1beta1", "ReplicaSet", "1.16", SELECTOR},
    {"extensions/v1beta1", "NetworkPolicy", "1.16", "use networking.k8s.io/v1"},
    {"extensions/v1beta1", "PodSecurityPolicy", "1.16", NO_PSP},
    {"apps/v1beta1", "Deployment", "1.16", SELECTOR},
    {"apps/v1beta1", "StatefulSet", "1.16", SELECTOR},
    {"apps/v1beta1", NULL, "1.16", "use apps/v1"},
    {"apps/v1beta2", NULL, "1.16", "use apps/v1"},
    /* 1.22 */
    {"extensions/v1beta1", "Ingress", "1.22", INGRESS},
    {"networking.k8s.io/v1beta1", "Ingress", "1.22", INGRESS},
    {"networking.k8s.io/v1beta1", "IngressClass", "1.22", "use networking.k8s.io/v1"},
    {"rbac.authorization.k8s.io/v1beta1", NULL, "1.22", "use rbac.authorization.k8s.io/v1"},
    {"admissionregistration.k8s.io/v1beta1", "MutatingWebhookConfiguration", "1.22",
     "use admissionregistration.k8s.io/v1"},
    {"admissionregistration.k8s.io/v1beta1", "ValidatingWebhookConfiguration", "1.22",
     "use admissionregistration.k8s.io/v1"},
    {"apiextensions.k8s.io/v1beta1", "CustomResourceDefinition", "1.22",
     "use apiextensions.k8s.io/v1 (spec.versions[*].schema is required)"},
    {"apiregistration.k8s.io/v1beta1", "APIService", "1.22", "use apiregistration.k8s.io/v1"},
    {"authentication.k8s.io/v1beta1", "TokenReview", "1.22", "use authentication.k8s.io/v1"},
    {"authorization.k8s.io/v1beta1", "SubjectAccessReview", "1.22", "use authorization.k8s.io/v1"},
    {"authorization.k8s.io/v1beta1", "LocalSubjectAccessReview", "1.22",
     "use authorization.k8s.io/v1"},
    {"authorization.k8s.io/v1beta1", "SelfSubjectAccessReview", "1.22",
     "use authorization.k8s.io/v1"},
    {"authorization.k8s.io/v1beta1", "SelfSubjectRulesReview", "1.22",
     "use authorization.k8s.io/v1"},
    {"certificates.k8s.io/v1beta1", "CertificateSigningRequest", "1.22",
     "use certificates.k8s.io/v1 (spec.signerName is required)"},
    {"coordination.k8s.io/v1beta1", "Lease", "1.22", "use coordination.k8s.io/v1"},
    {"scheduling.k8s.io/v1beta1", "PriorityClass", "1.22", "use scheduling.k8s.io/v1"},
    {"storage.k8s.io/v1beta1", "CSIDriver", "1.22", "use storage.k8s.io/v1"},
    {"storage.k8s.io/v1beta1", "CSINode", "1.22", "use storage.k8s.io/v1"},
    {"storage.k8s.io/v1beta1", "StorageClass", "1.22", "use storage.k8s.io/v1"},
    {"storage.k8s.io/v1beta1", "VolumeAttachment", "1.22", "use storage.k8s.io/v1"},
    /* 1.25 */
    {"batch/v1beta1", "CronJob", "1.25", "use batch/v1"},
    {"discovery.k8s.io/v1beta1", "EndpointSlice", "1.25",
     "use discovery.k8s.io/v1 (topology is now per-endpoint zone and hints)"},
    {"events.k8s.io/v1beta1", "Event", "1.25", "use events.k8s.io/v1"},
    {"autoscaling/v2beta1", "HorizontalPodAutoscaler", "1.25",
     "use autoscaling/v2 (targetAverageUtilization is target.averageUtilization)"},
    {"policy/v1beta1", "PodDisruptionBudget", "1.25",
     "use policy/v1 (an empty spec.selector now selects every pod in the namespace)"},
    {"policy/v1beta1", "PodSecurityPolicy", "1.25", NO_PSP},
    {"node.k8s.io/v1beta1", "RuntimeClass", "1.25", "use node.k8s.io/v1 (spec.handler is handler)"},
    /* 1.26, 1.27, 1.29, 1.32 */
    {"autoscaling/v2beta2", "HorizontalPodAutoscaler", "1.26", "use autoscaling/v2"},
    {"flowcontrol.apiserver.k8s.io/v1beta1", NULL, "1.26", "use flowcontrol.apiserver.k8s.io/v1"},
    {"storage.k8s.io/v1beta1", "CSIStorageCapacity", "1.27", "use storage.k8s.io/v1"},
    {"flowcontrol.apiserver.k8s.io/v1beta2", NULL, "1.29", "use flowcontrol.apiserver.k8s.io/v1"},
    {"flowcontrol.apiserver.k8s.io/v1beta3", NULL, "1.32", "use flowcontrol.apiserver.k8s.io/v1"},
};

static const struct removed_api *find_removed(const char *api_version, const char *kind)
{
	for (size_t i = 0; i < sizeof(removed_apis) / sizeof(removed_apis[0]); i++) {
		const struct removed_api *r = &removed_apis[i];

		if (!strcmp(r->api_version, api_version) && (!r->kind || !strcmp(r->kind, kind)))
			return r;
	}
	return NULL;
}

struct group_kind {
	const char *group;
	const char *kind;
};

/* Built-in kinds that are not namespaced (`kubectl api-resources
 * --namespaced=false` of Kubernetes 1.30, and PodSecurityPolicy). */
static const struct group_kind cluster_scoped[] = {
    {"", "Namespace"},
    {"", "Node"},
    {"", "PersistentVolume"},
    {"", "ComponentStatus"},
    {"admissionregistration.k8s.io", "MutatingWebhookConfiguration"},
    {"admissionregistration.k8s.io", "ValidatingWebhookConfiguration"},
    {"admissionregistration.k8s.io", "ValidatingAdmissionPolicy"},
    {"admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding"},
    {"apiextensions.k8s.io", "CustomResourceDefinition"},
    {"apiregistration.k8s.io", "APIService"},
    {"authentication.k8s.io", "TokenReview"},
    {"authentication.k8s.io", "SelfSubjectReview"},
    {"authorization.k8s.io", "SelfSubjectAccessReview"},
    {"authorization.k8s.io", "SelfSubjectRulesReview"},
    {"authorization.k8s.io", "SubjectAccessReview"},
    {"certificates.k8s.io", "CertificateSigningRequest"},
    {"certificates.k8s.io", "ClusterTrustBundle"},
    {"flowcontrol.apiserver.k8s.io", "FlowSchema"},
    {"flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration"},
    {"networking.k8s.io", "IngressClass"},
    {"networking.k8s.io", "IPAddress"},
    {"networking.k8s.io", "ServiceCIDR"},
    {"node.k8s.io", "RuntimeClass"},
    {"policy", "PodSecurityPolicy"},
    {"extensions", "PodSecurityPolicy"},
    {"rbac.authorization.k8s.io", "ClusterRole"},
    {"rbac.authorization.k8s.io", "ClusterRoleBinding"},
    {"scheduling.k8s.io", "PriorityClass"},
    {"storage.k8s.io", "CSIDriver"},
    {"storage.k8s.io", "CSINode"},
    {"storage.k8s.io", "StorageClass"},
    {"storage.k8s.io", "VolumeAttachment"},
};

static int is_in(const struct group_kind *table, size_t n, const char *group, const char *kind)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(table[i].group, group) && !strcmp(table[i].kind, kind))
			return 1;
	return 0;
}

/* Built-in namespaced kinds whose names are DNS-1123 subdomains (the API
 * server's ValidateObjectMeta with NameIsDNSSubdomain). */
static const struct group_kind subdomain_named[] = {
    {"", "ConfigMap"},
    {"", "Secret"},
    {"", "ServiceAccount"},
    {"", "PersistentVolumeClaim"},
    {"", "Pod"},
    {"", "PodTemplate"},
    {"", "ReplicationController"},
    {"", "Endpoints"},
    {"", "LimitRange"},
    {"", "ResourceQuota"},
    {"apps", "Deployment"},
    {"apps", "StatefulSet"},
    {"apps", "DaemonSet"},
    {"apps", "ReplicaSet"},
    {"apps", "ControllerRevision"},
    {"batch", "Job"},
    {"batch", "CronJob"},
    {"networking.k8s.io", "Ingress"},
    {"networking.k8s.io", "NetworkPolicy"},
    {"policy", "PodDisruptionBudget"},
    {"autoscaling", "HorizontalPodAutoscaler"},
    {"coordination.k8s.io", "Lease"},
    {"discovery.k8s.io", "EndpointSlice"},
};

static int is_alnum_lower(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* Whether S[0..N) is a DNS-1123 label: lowercase alphanumerics and '-',
 * starting and ending alphanumeric, at most 63 characters. With
 * LETTER_FIRST, a DNS-1035 label, whose first character is a letter. */
static int is_label(const char *s, size_t n, int letter_first)
{
	if (n == 0 || n > 63 || !is_alnum_lower(s[0]) || !is_alnum_lower(s[n - 1]))
		return 0;
	if (letter_first && !(s[0] >= 'a' && s[0] <= 'z'))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!is_alnum_lower(s[i]) && s[i] != '-')
			return 0;
	return 1;
}

/* Whether S is a DNS-1123 subdomain: dot-separated labels, at most 253. */
static int is_subdomain(const char *s)
{
	size_t n = strlen(s);
	const char *dot;

	if (n == 0 || n > 253)
		return 0;
	for (;;) {
		dot = strchr(s, '.');
		if (!is_label(s, dot ? (size_t)(dot - s) : strlen(s), 0))
			return 0;
		if (!dot)
			return 1;
		s = dot + 1;
	}
}

/* Checks NAME as the API server does for an object of GROUP and KIND;
 * returns what it must be, or NULL when it is valid. */
static const char *name_problem(const char *group, const char *kind, const char *name)
{
	size_t n = strlen(name);

	if (!*group && !strcmp(kind, "Service"))
		return is_label(name, n, 1) ? NULL
		                            : "a Service name must be a DNS-1035 label (lowercase "
		                              "letters, digits and '-', starting with a letter, at "
		                              "most 63 characters)";
	if (is_in(subdomain_named, sizeof(subdomain_named) / sizeof(subdomain_named[0]), group,
	          kind))
		return is_subdomain(name)
		           ? NULL
		           : "the name must be a DNS-1123 subdomain (lowercase "
		             "letters, digits, '-' and '.', starting and ending with a "
		             "letter or digit, at most 253 characters)";
	if (!strcmp(name, ".") || !strcmp(name, "..") || strpbrk(name, "/%"))
		return "the name may not be '.' or '..' or contain '/' or '%'";
	return NULL;
}

/* Whether S (NULL: no) holds an ASCII control character. */
static int has_control(const char *s)
{
	for (; s && *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 1;
	return 0;
}

static int validate_obj(struct manifest_obj *o, const char *namespace)
{
	char where[MANIFESTS_WHERE_MAX], group[256];
	const char *api_version, *kind, *name, *ns, *problem;
	const struct removed_api *removed;
	json_t *meta;

	manifests_where(where, o);
	api_version = json_string_value(json_object_get(o->obj, "apiVersion"));
	kind = json_string_value(json_object_get(o->obj, "kind"));
	meta = json_object_get(o->obj, "metadata");
	name = json_string_value(json_object_get(meta, "name"));
	/* messages below quote these; each stays one line */
	if (has_control(api_version) || has_control(kind) || has_control(name) ||
	    has_control(json_string_value(json_object_get(meta, "namespace"))))
		return err_set("%s: apiVersion, kind, metadata.name or metadata.namespace holds "
		               "control characters",
		               where);
	if (!api_version || !*api_version)
		return err_set("%s: apiVersion is missing", where);
	if (!kind || !*kind)
		return err_set("%s: kind is missing", where);
	if (json_is_object(meta) && json_object_get(meta, "name") && !name)
		return err_set("%s: %s: metadata.name is not a string", where, kind);
	if (!json_is_object(meta) || !name || !*name)
		return err_set("%s: %s: metadata.name is missing", where, kind);
	removed = find_removed(api_version, kind);
	if (removed)
		return err_set("%s: %s '%s': %s %s was removed in Kubernetes %s: %s", where, kind,
		               name, api_version, kind, removed->release, removed->advice);
	api_group(group, api_version);
	if (is_in(cluster_scoped, sizeof(cluster_scoped) / sizeof(cluster_scoped[0]), group, kind))
		return err_set("%s: %s '%s': cluster-scoped kinds are not applied from a "
		               "repository: only objects in namespace '%s' are",
		               where, kind, name, namespace);
	ns = json_string_value(json_object_get(meta, "namespace"));
	if (json_object_get(meta, "namespace") &&
	    !json_is_null(json_object_get(meta, "namespace")) && !ns)
		return err_set("%s: %s '%s': metadata.namespace is not a string", where, kind,
		               name);
	if (ns && *ns && strcmp(ns, namespace))
		return err_set("%s: %s '%s': in namespace '%s': only objects in namespace '%s' "
		               "are applied",
		               where, kind, name, ns, namespace);
	problem = name_problem(group, kind, name);
	if (problem)
		return err_set("%s: %s '%s': %s", where, kind, name, problem);
	if ((!ns || !*ns) && json_object_set_new(meta, "namespace", json_string(namespace)) < 0)
		return err_set("out of memory");
	return 0;
}

int manifests_validate(struct manifests *m, const char *namespace)
{
	for (size_t i = 0; i < m->n; i++)
		if (validate_obj(&m->objs[i], namespace) < 0)
			return -1;
	return 0;
}

/* --- ordering ------------------------------------------------------------- */

struct kind_class {
	const char *group;
	const char *kind;
	int class;
};

/* Apply order: what others refer to first (see manifests_sort). */
static const struct kind_class apply_classes[] = {
    {"", "ServiceAccount", 0},
    {"", "ConfigMap", 1},
    {"", "Secret", 2},
    {"rbac.authorization.k8s.io", "Role", 3},
    {"rbac.authorization.k8s.io", "RoleBinding", 4},
    {"", "LimitRange", 5},
    {"", "ResourceQuota", 5},
    {"", "PersistentVolumeClaim", 6},
    {"", "Service", 7},
    {"apps", "Deployment", 8},
    {"apps", "StatefulSet", 8},
    {"apps", "DaemonSet", 8},
    {"apps", "ReplicaSet", 8},
    {"", "Pod", 8},
    {"", "ReplicationController", 8},
    {"batch", "Job", 8},
    {"batch", "CronJob", 8},
};
#define CLASS_REST 9

static int apply_class(const json_t *obj)
{
	const char *api_version = json_string_value(json_object_get(obj, "apiVersion"));
	const char *kind = json_string_value(json_object_get(obj, "kind"));
	char group[256];

	if (!api_version || !kind)
		return CLASS_REST;
	api_group(group, api_version);
	for (size_t i = 0; i < sizeof(apply_classes) / sizeof(apply_classes[0]); i++)
		if (!strcmp(apply_classes[i].group, group) && !strcmp(apply_classes[i].kind, kind))
			return apply_classes[i].class;
	return CLASS_REST;
}

static int cmp_apply(const void *a, const void *b)
{
	const struct manifest_obj *x = a, *y = b;
	int cx = apply_class(x->obj), cy = apply_class(y->obj);

	if (cx != cy)
		return cx < cy ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

void manifests_sort(struct manifests *m)
{
	/* qsort is not stable; the load order breaks ties */
	if (m->n > 1)
		qsort(m->objs, m->n, sizeof(*m->objs), cmp_apply);
}

/* --- images --------------------------------------------------------------- */

/* The pod spec of OBJ when it is a workload whose images are substituted,
 * else NULL (borrowed). */
static json_t *pod_spec(json_t *obj)
{
	const char *api_version = json_string_value(json_object_get(obj, "apiVersion"));
	const char *kind = json_string_value(json_object_get(obj, "kind"));
	json_t *spec = json_object_get(obj, "spec");
	char group[256];

	if (!api_version || !kind)
		return NULL;
	api_group(group, api_version);
	if (!strcmp(group, "batch") && !strcmp(kind, "CronJob"))
		spec = json_object_get(json_object_get(spec, "jobTemplate"), "spec");
	else if (!(!strcmp(group, "apps") &&
	           (!strcmp(kind, "Deployment") || !strcmp(kind, "StatefulSet") ||
	            !strcmp(kind, "DaemonSet"))) &&
	         !(!strcmp(group, "batch") && !strcmp(kind, "Job")))
		return NULL;
	spec = json_object_get(json_object_get(spec, "template"), "spec");
	return json_is_object(spec) ? spec : NULL;
}

/* Sets the image of the container named NAME in the array LIST; returns 1
 * when one was found, 0 when none, -1 when out of memory. */
static int set_container_image(json_t *list, const char *name, const char *image)
{
	json_t *c;
	size_t i;

	json_array_foreach(list, i, c)
	{
		const char *cname = json_string_value(json_object_get(c, "name"));

		if (!json_is_object(c) || !cname || strcmp(cname, name))
			continue;
		if (json_object_set_new(c, "image", json_string(image)) < 0)
			return err_set("out of memory");
		return 1;
	}
	return 0;
}

/* Applies IMAGES to the single object OBJ. */
static int set_images_obj(json_t *obj, struct manifests_image *images, size_t n)
{
	json_t *spec = pod_spec(obj);
	const char *name =
	    json_string_value(json_object_get(json_object_get(obj, "metadata"), "name"));

	if (!spec || !name)
		return 0;
	for (size_t i = 0; i < n; i++) {
		int found;

		if (strcmp(images[i].workload, name))
			continue;
		found = set_container_image(json_object_get(spec, "containers"),
		                            images[i].container, images[i].image);
		if (found == 0)
			found = set_container_image(json_object_get(spec, "initContainers"),
			                            images[i].container, images[i].image);
		if (found < 0)
			return -1;
		images[i].matched += (size_t)found;
	}
	return 0;
}

int manifests_set_images(struct manifests *m, struct manifests_image *images, size_t n)
{
	for (size_t i = 0; i < n; i++)
		images[i].matched = 0;
	for (size_t i = 0; i < m->n; i++)
		if (set_images_obj(m->objs[i].obj, images, n) < 0)
			return -1;
	return 0;
}

int manifests_set_images_stream(char **out, const char *in, size_t len,
                                struct manifests_image *images, size_t n)
{
	json_t *docs = NULL, *doc, *item;
	struct buf b;
	char *yaml;
	size_t i, j;
	int ret = -1;

	*out = NULL;
	buf_init(&b, (size_t)YAMLJSON_EMIT_MAX);
	for (i = 0; i < n; i++)
		images[i].matched = 0;
	if (len > MANIFESTS_MAX_BYTES)
		return err_set("manifests: more than %d bytes of input", MANIFESTS_MAX_BYTES);
	if (yamljson_load_documents(&docs, in, len) < 0)
		return -1;
	if (json_array_size(docs) > MANIFESTS_MAX_OBJECTS) {
		err_set("manifests: more than %d documents", MANIFESTS_MAX_OBJECTS);
		goto out;
	}
	json_array_foreach(docs, i, doc)
	{
		if (json_is_null(doc))
			continue;
		if (is_list(doc)) {
			json_array_foreach(json_object_get(doc, "items"), j, item)
			{
				if (set_images_obj(item, images, n) < 0)
					goto out;
			}
		} else if (set_images_obj(doc, images, n) < 0) {
			goto out;
		}
		if (yamljson_emit(&yaml, doc) < 0) {
			err_set("document %zu: %s", i + 1, err_msg());
			goto out;
		}
		if (buf_adds(&b, "---\n") < 0 || buf_adds(&b, yaml) < 0) {
			free(yaml);
			goto out;
		}
		free(yaml);
	}
	*out = buf_detach(&b);
	if (!*out) {
		err_set("out of memory");
		goto out;
	}
	ret = 0;
out:
	buf_release(&b);
	json_decref(docs);
	return ret;
}
