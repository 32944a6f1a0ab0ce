/* Unit tests of lib/manifests: trees built with libgit2 in a scratch bare
 * repository are loaded (order, documents, JSON, Lists, kustomize and Helm
 * folders, bounds, parse errors), validated against a namespace, sorted for
 * applying, and given images, as objects and as a YAML stream. */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <git2.h>

#include "tap.h"
#include "buf.h"
#include "err.h"
#include "manifests.h"
#include "yamljson.h"

static char scratch[] = "/tmp/slipway-unit-manifests-XXXXXX";
static git_repository *repo;

struct file {
	const char *path;
	const char *data;
	git_filemode_t mode; /* 0: a regular file */
};

/* Writes FILES (ended by a NULL path) as a tree; NULL when libgit2 fails. */
static git_tree *tree_of(const struct file *files)
{
	git_index *index = NULL;
	git_tree *tree = NULL;
	git_oid id;

	if (git_index_new(&index) < 0)
		goto out;
	for (; files->path; files++) {
		git_index_entry e = {.path = files->path,
		                     .mode = files->mode ? files->mode : GIT_FILEMODE_BLOB};

		if (git_blob_create_from_buffer(&e.id, repo, files->data, strlen(files->data)) <
		        0 ||
		    git_index_add(index, &e) < 0)
			goto out;
	}
	if (git_index_write_tree_to(&id, index, repo) < 0)
		goto out;
	git_tree_lookup(&tree, repo, &id);
out:
	if (!tree)
		printf("# libgit2: %s\n", git_error_last() ? git_error_last()->message : "?");
	git_index_free(index);
	return tree;
}

/* Loads PATH of a tree of FILES into M; returns manifests_load's result. */
static int load(struct manifests *m, const struct file *files, const char *path)
{
	git_tree *t = tree_of(files);
	int ret;

	err_clear();
	if (!t) {
		manifests_init(m);
		return -2;
	}
	ret = manifests_load(m, t, path);
	git_tree_free(t);
	return ret;
}

static const char *name_of(const struct manifest_obj *o)
{
	const char *n =
	    json_string_value(json_object_get(json_object_get(o->obj, "metadata"), "name"));

	return n ? n : "(none)";
}

static const char *ns_of(const struct manifest_obj *o)
{
	const char *n =
	    json_string_value(json_object_get(json_object_get(o->obj, "metadata"), "namespace"));

	return n ? n : "(none)";
}

/* The names of M's objects, comma-separated, into OUT. */
static const char *names(char *out, size_t size, const struct manifests *m)
{
	size_t used = 0;

	out[0] = '\0';
	for (size_t i = 0; i < m->n && used < size; i++)
		used += (size_t)snprintf(out + used, size - used, "%s%s", i ? "," : "",
		                         name_of(&m->objs[i]));
	return out;
}

static int has(const char *haystack, const char *needle)
{
	return strstr(haystack, needle) != NULL;
}

#define CM(name) "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: " name "\n"

static void test_order_and_documents(void)
{
	struct file files[] = {
	    {"app/b.yaml", CM("b"), 0},
	    {"app/a/z.yaml", CM("a-z"), 0},
	    {"app/a.yaml", CM("a") "---\n---\n# nothing\n---\n" CM("a-doc4"), 0},
	    {"app/a-b.yml", CM("a-b"), 0},
	    {"app/c.json",
	     "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"c\"}}", 0},
	    {"app/d.yaml",
	     "apiVersion: v1\nkind: List\nitems:\n- "
	     "apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: d1}\n"
	     "- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: d2}\n",
	     0},
	    {"app/README.md", "not: [a manifest", 0},
	    {"app/notes.txt", "not: [a manifest", 0},
	    {"app/.github/workflows/ci.yml", "on: push\njobs: {}\n", 0},
	    {"app/.pre-commit-config.yaml", "repos: []\n", 0},
	    {"other.yaml", CM("outside"), 0},
	    {NULL, NULL, 0},
	};
	struct manifests m;
	char buf[512], where[MANIFESTS_WHERE_MAX];

	ok(load(&m, files, "app") == 0, "a folder of .yaml, .yml and .json files loads: %s",
	   err_msg());
	is_str(names(buf, sizeof(buf), &m), "a-b,a,a-doc4,a-z,b,c,d1,d2",
	       "objects come in byte order of the full paths, then document order, without "
	       "other files or dot files and folders");
	ok(!m.is_helm_chart, "a folder without Chart.yaml is not a Helm chart");
	if (m.n == 8) {
		is_str(m.objs[1].path, "app/a.yaml", "an object records its file's full path");
		is_int(m.objs[1].doc, 1, "the first document is document 1");
		is_int(m.objs[2].doc, 4, "empty documents are skipped but counted");
		is_int(m.objs[5].doc, 1, "a .json file is one document");
		is_int(m.objs[7].item, 2, "a List's items are objects of their own");
		is_str(manifests_where(where, &m.objs[7]), "app/d.yaml: document 1: item 2",
		       "manifests_where names file, document and item");
		is_str(manifests_where(where, &m.objs[2]), "app/a.yaml: document 4",
		       "manifests_where names file and document");
	}
	manifests_release(&m);

	ok(load(&m, files, "") == 0 && m.n == 9, "the root folder is \"\"");
	manifests_release(&m);
	ok(load(&m, files, ".") == 0 && m.n == 9, "and \".\"");
	manifests_release(&m);
}

static void test_refusals(void)
{
	struct file kustomize[] = {
	    {"k/kustomization.yaml", "resources: [a.yaml]\n", 0},
	    {"k/a.yaml", CM("a"), 0},
	    {NULL, NULL, 0},
	};
	struct file kustomize_below[] = {
	    {"k/a.yaml", CM("a"), 0},
	    {"k/base/Kustomization", "resources: []\n", 0},
	    {NULL, NULL, 0},
	};
	struct file chart[] = {
	    {"chart/Chart.yaml", "apiVersion: v2\nname: web\nversion: 1.0.0\n", 0},
	    {"chart/templates/d.yaml", "{{ .Values.broken", 0},
	    {NULL, NULL, 0},
	};
	struct file link[] = {
	    {"m/a.yaml", CM("a"), 0},
	    {"m/l.yaml", "a.yaml", GIT_FILEMODE_LINK},
	    {NULL, NULL, 0},
	};
	struct file bad[] = {
	    {"m/a.yaml", CM("a"), 0},
	    {"m/bad.yaml", CM("ok") "---\nkey: [unterminated\nother: 1\n", 0},
	    {"n/list.yaml", "- a\n- b\n", 0},
	    {"n/x.yaml", "just a string\n", 0},
	    {NULL, NULL, 0},
	};
	struct file badjson[] = {{"j/bad.json", "{\"a\": }", 0}, {NULL, NULL, 0}};
	struct manifests m;

	ok(load(&m, kustomize, "k") == -1, "a folder with kustomization.yaml is refused");
	ok(has(err_msg(), "kustomize is not supported: k/kustomization.yaml"),
	   "saying kustomize is not supported, naming the file: %s", err_msg());
	ok(load(&m, kustomize_below, "k") == -1 &&
	       has(err_msg(), "kustomize is not supported: k/base/Kustomization"),
	   "so is a Kustomization in a folder below: %s", err_msg());
	is_int(m.n, 0, "and nothing is loaded");

	ok(load(&m, chart, "chart") == 0 && m.is_helm_chart && m.n == 0,
	   "a folder with Chart.yaml is reported as a Helm chart, its templates unread");
	manifests_release(&m);
	ok(load(&m, chart, "") == -1 &&
	       has(err_msg(), "chart/Chart.yaml: a Helm chart inside the manifests folder"),
	   "a chart below the manifests folder is refused: %s", err_msg());

	ok(load(&m, link, "m") == -1 && has(err_msg(), "m/l.yaml: symbolic links are not followed"),
	   "a symbolic link is refused: %s", err_msg());

	ok(load(&m, bad, "m") == -1, "a malformed YAML file fails the load");
	ok(has(err_msg(), "m/bad.yaml: yaml: line 7 column"), "naming the file and the line: %s",
	   err_msg());
	ok(load(&m, badjson, "j") == -1 && has(err_msg(), "j/bad.json: json: line 1"),
	   "a malformed JSON file names the file: %s", err_msg());
	ok(load(&m, bad, "n") == -1 &&
	       has(err_msg(), "n/list.yaml: document 1: not a Kubernetes object"),
	   "a document that is not a mapping is refused: %s", err_msg());

	ok(load(&m, bad, "nowhere") == -1 &&
	       has(err_msg(), "manifests path 'nowhere' not found in the pushed tree"),
	   "a missing path is named: %s", err_msg());
	ok(load(&m, bad, "m/a.yaml") == -1 && has(err_msg(), "'m/a.yaml' is not a folder"),
	   "a path that is a file is refused: %s", err_msg());
}

static void test_bounds(void)
{
	struct file *many = calloc(MANIFESTS_MAX_FILES + 2, sizeof(*many));
	char(*paths)[32] = calloc(MANIFESTS_MAX_FILES + 1, sizeof(*paths));
	char *big = NULL, *big2 = NULL;
	struct manifests m;
	struct buf docs;
	size_t i, half;

	if (!ok(many && paths, "allocated the file table"))
		goto out;
	for (i = 0; i < MANIFESTS_MAX_FILES; i++) {
		snprintf(paths[i], sizeof(paths[i]), "m/f%04zu.yaml", i);
		many[i] = (struct file){paths[i], "", 0};
	}
	ok(load(&m, many, "m") == 0 && m.n == 0, "MANIFESTS_MAX_FILES (empty) files load");
	manifests_release(&m);
	many[i] = (struct file){"m/one-more.yml", "", 0};
	ok(load(&m, many, "m") == -1 && has(err_msg(), "more than 1000 files"),
	   "one file more is refused: %s", err_msg());

	buf_init(&docs, 1 << 20);
	for (i = 0; i <= MANIFESTS_MAX_OBJECTS; i++)
		buf_adds(&docs, "{kind: X}\n---\n");
	many[0] = (struct file){"m/many.yaml", buf_str(&docs), 0};
	many[1] = (struct file){NULL, NULL, 0};
	ok(load(&m, many, "m") == -1 && has(err_msg(), "more than 5000 objects (m/many.yaml"),
	   "one object more than MANIFESTS_MAX_OBJECTS is refused: %s", err_msg());
	buf_release(&docs);

	/* two comment lines of exactly half the bound, the second a byte longer
	 * the second time */
	half = MANIFESTS_MAX_BYTES / 2;
	big = malloc(half + 2);
	if (!ok(big != NULL, "allocated a file of half MANIFESTS_MAX_BYTES"))
		goto out;
	memset(big, 'x', half + 1);
	big[0] = '#';
	big[half - 1] = '\n';
	big[half] = '\0';
	many[0] = (struct file){"m/a.yaml", big, 0};
	many[1] = (struct file){"m/b.yaml", big, 0};
	many[2] = (struct file){NULL, NULL, 0};
	ok(load(&m, many, "m") == 0, "two files of half MANIFESTS_MAX_BYTES load: %s", err_msg());
	manifests_release(&m);
	big2 = malloc(half + 2);
	if (big2) {
		memcpy(big2, big, half);
		big2[half - 1] = 'x';
		big2[half] = '\n';
		big2[half + 1] = '\0';
	}
	many[1] = (struct file){"m/b.yaml", big2 ? big2 : "", 0};
	ok(load(&m, many, "m") == -1 &&
	       has(err_msg(), "more than 16777216 bytes in all (m/b.yaml)"),
	   "a byte more is refused, naming the file that crossed it: %s", err_msg());
out:
	free(big2);
	free(big);
	free(paths);
	free(many);
}

/* Loads the single file m/x.yaml holding YAML and validates it against
 * namespace "web"; returns manifests_validate's result. */
static int validate_yaml(struct manifests *m, const char *yaml)
{
	struct file files[] = {{"m/x.yaml", yaml, 0}, {NULL, NULL, 0}};

	if (load(m, files, "m") < 0) {
		printf("# load: %s\n", err_msg());
		return -2;
	}
	return manifests_validate(m, "web");
}

static void refused(const char *yaml, const char *want, const char *what)
{
	struct manifests m;

	ok(validate_yaml(&m, yaml) == -1 && has(err_msg(), want), "%s: %s", what, err_msg());
	manifests_release(&m);
}

static void test_validate(void)
{
	struct manifests m;

	ok(validate_yaml(
	       &m, CM("a") "---\n" CM("b") "  namespace: web\n---\n" CM("c") "  namespace: \"\"\n"
	                                                                     "---\n"
	                                                                     "apiVersion: "
	                                                                     "example.com/"
	                                                                     "v1\nkind: "
	                                                                     "Widget\nmetadat"
	                                                                     "a: {name: "
	                                                                     "'w:1'}\n") == 0,
	   "objects in or without a namespace, and a custom resource, pass: %s", err_msg());
	if (m.n == 4) {
		is_str(ns_of(&m.objs[0]), "web", "an object without a namespace gets the Remote's");
		is_str(ns_of(&m.objs[1]), "web", "one in the Remote's keeps it");
		is_str(ns_of(&m.objs[2]), "web", "an empty namespace is the Remote's");
		is_str(ns_of(&m.objs[3]), "web", "custom resources are taken as namespaced");
	}
	manifests_release(&m);

	refused(CM("a") "---\n" CM("b") "  namespace: other\n",
	        "m/x.yaml: document 2: ConfigMap 'b': in namespace 'other': only objects in "
	        "namespace 'web' are applied",
	        "an object in another namespace is refused, naming file and object");
	refused("apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata:\n"
	        "  name: admin\n",
	        "m/x.yaml: document 1: ClusterRoleBinding 'admin': cluster-scoped kinds are not "
	        "applied from a repository",
	        "a ClusterRoleBinding is refused");
	refused("apiVersion: v1\nkind: Namespace\nmetadata: {name: web}\n",
	        "Namespace 'web': cluster-scoped", "a Namespace is refused");
	refused("apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: "
	        "{name: widgets.example.com}\n",
	        "CustomResourceDefinition 'widgets.example.com': cluster-scoped",
	        "a CustomResourceDefinition is refused");
	refused("apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {name: fast}\n",
	        "StorageClass 'fast': cluster-scoped", "a StorageClass is refused");
	refused("kind: ConfigMap\nmetadata: {name: a}\n",
	        "m/x.yaml: document 1: apiVersion is missing", "a missing apiVersion is refused");
	refused("apiVersion: v1\nmetadata: {name: a}\n", "m/x.yaml: document 1: kind is missing",
	        "a missing kind is refused");
	refused("apiVersion: v1\nkind: ConfigMap\nmetadata: {generateName: a-}\n",
	        "ConfigMap: metadata.name is missing", "a missing name is refused");
	refused("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: 12}\n",
	        "ConfigMap: metadata.name is not a string", "a name that is a number is refused");
	refused("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: \"a\\nb\"}\n",
	        "m/x.yaml: document 1: apiVersion, kind, metadata.name or metadata.namespace "
	        "holds control characters",
	        "a name with a line break is refused without being quoted");
	refused("apiVersion: v1\nkind: Service\nmetadata: {name: 1web}\n",
	        "Service '1web': a Service name must be a DNS-1035 label",
	        "a Service name starting with a digit is refused");
	refused("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: Web}\n",
	        "Deployment 'Web': the name must be a DNS-1123 subdomain",
	        "an upper-case Deployment name is refused");
	refused("apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: a/b}\n",
	        "Role 'a/b': the name may not be", "a Role name with '/' is refused");
	ok(validate_yaml(&m, "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: "
	                     "{name: 'system:reader'}\n") == 0,
	   "a Role name with ':' passes, as the API server takes it: %s", err_msg());
	manifests_release(&m);
}

static void test_removed_apis(void)
{
	static const struct {
		const char *api_version, *kind, *want;
	} cases[] = {
	    {"extensions/v1beta1", "Deployment",
	     "extensions/v1beta1 Deployment was removed in Kubernetes 1.16: use apps/v1 (and add "
	     "spec.selector)"},
	    {"extensions/v1beta1", "DaemonSet", "was removed in Kubernetes 1.16: use apps/v1"},
	    {"extensions/v1beta1", "ReplicaSet", "was removed in Kubernetes 1.16: use apps/v1"},
	    {"extensions/v1beta1", "NetworkPolicy",
	     "was removed in Kubernetes 1.16: use networking.k8s.io/v1"},
	    {"extensions/v1beta1", "Ingress",
	     "extensions/v1beta1 Ingress was removed in Kubernetes 1.22: use networking.k8s.io/v1"},
	    {"apps/v1beta1", "Deployment",
	     "apps/v1beta1 Deployment was removed in Kubernetes 1.16: use apps/v1"},
	    {"apps/v1beta1", "StatefulSet", "was removed in Kubernetes 1.16: use apps/v1"},
	    {"apps/v1beta2", "DaemonSet",
	     "apps/v1beta2 DaemonSet was removed in Kubernetes 1.16: "
	     "use apps/v1"},
	    {"networking.k8s.io/v1beta1", "Ingress",
	     "networking.k8s.io/v1beta1 Ingress was removed in Kubernetes 1.22: use "
	     "networking.k8s.io/v1"},
	    {"rbac.authorization.k8s.io/v1beta1", "Role",
	     "was removed in Kubernetes 1.22: use rbac.authorization.k8s.io/v1"},
	    {"rbac.authorization.k8s.io/v1beta1", "RoleBinding",
	     "was removed in Kubernetes 1.22: use rbac.authorization.k8s.io/v1"},
	    {"batch/v1beta1", "CronJob",
	     "batch/v1beta1 CronJob was removed in Kubernetes 1.25: use batch/v1"},
	    {"policy/v1beta1", "PodDisruptionBudget",
	     "policy/v1beta1 PodDisruptionBudget was removed in Kubernetes 1.25: use policy/v1"},
	    {"autoscaling/v2beta1", "HorizontalPodAutoscaler",
	     "was removed in Kubernetes 1.25: use autoscaling/v2"},
	    {"autoscaling/v2beta2", "HorizontalPodAutoscaler",
	     "was removed in Kubernetes 1.26: use autoscaling/v2"},
	    {"discovery.k8s.io/v1beta1", "EndpointSlice",
	     "was removed in Kubernetes 1.25: use discovery.k8s.io/v1"},
	    {"coordination.k8s.io/v1beta1", "Lease",
	     "was removed in Kubernetes 1.22: use coordination.k8s.io/v1"},
	    {"storage.k8s.io/v1beta1", "CSIStorageCapacity",
	     "was removed in Kubernetes 1.27: use storage.k8s.io/v1"},
	};
	char yaml[256];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char what[128];

		snprintf(yaml, sizeof(yaml), "apiVersion: %s\nkind: %s\nmetadata: {name: x}\n",
		         cases[i].api_version, cases[i].kind);
		snprintf(what, sizeof(what), "%s %s is refused with its replacement",
		         cases[i].api_version, cases[i].kind);
		refused(yaml, cases[i].want, what);
	}
	refused("apiVersion: extensions/v1beta1\nkind: Deployment\nmetadata: {name: web}\n",
	        "m/x.yaml: document 1: Deployment 'web': extensions/v1beta1 Deployment",
	        "the message names the file and the object");
	{
		struct manifests m;

		ok(validate_yaml(&m, "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: c}\n"
		                     "---\napiVersion: policy/v1\nkind: PodDisruptionBudget\n"
		                     "metadata: {name: p}\n---\napiVersion: autoscaling/v2\nkind: "
		                     "HorizontalPodAutoscaler\nmetadata: {name: h}\n") == 0,
		   "their replacements pass: %s", err_msg());
		manifests_release(&m);
		ok(validate_yaml(&m, "apiVersion: coordination.k8s.io/v1beta1\nkind: "
		                     "LeaseCandidate\nmetadata: {name: l}\n") == 0,
		   "a kind served in a version whose older kinds were removed passes: %s",
		   err_msg());
		manifests_release(&m);
	}
}

static void test_sort(void)
{
	struct file files[] = {
	    {"m/all.yaml",
	     "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: ing}\n---\n"
	     "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: deploy}\n---\n"
	     "apiVersion: v1\nkind: Service\nmetadata: {name: svc}\n---\n"
	     "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: cron}\n---\n"
	     "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: rb}\n"
	     "---\n"
	     "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: pvc}\n---\n"
	     "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm1}\n---\n"
	     "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: hpa}\n"
	     "---\n"
	     "apiVersion: v1\nkind: Secret\nmetadata: {name: sec}\n---\n"
	     "apiVersion: batch/v1\nkind: Job\nmetadata: {name: job}\n---\n"
	     "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: role}\n---\n"
	     "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: sa}\n---\n"
	     "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: sts}\n---\n"
	     "apiVersion: example.com/v1\nkind: Service\nmetadata: {name: not-core}\n---\n"
	     "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm2}\n---\n"
	     "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: ds}\n",
	     0},
	    {NULL, NULL, 0},
	};
	struct manifests m;
	char buf[512];

	ok(load(&m, files, "m") == 0, "a mix of kinds loads");
	manifests_sort(&m);
	is_str(names(buf, sizeof(buf), &m),
	       "sa,cm1,cm2,sec,role,rb,pvc,svc,deploy,cron,job,sts,ds,ing,hpa,not-core",
	       "service accounts, config, secrets, RBAC, claims, services, workloads, the rest; "
	       "source order within each");
	manifests_release(&m);
}

#define DEPLOY(kind, api, name, podspec_prefix)                                                    \
	"apiVersion: " api "\nkind: " kind "\nmetadata: {name: " name "}\nspec:\n" podspec_prefix

static const char *image_at(const json_t *obj, const char *const *path, const char *list,
                            size_t index)
{
	const json_t *v = obj;

	for (; *path; path++)
		v = json_object_get(v, *path);
	return json_string_value(
	    json_object_get(json_array_get(json_object_get(v, list), index), "image"));
}

static void test_images(void)
{
	static const char *const template_path[] = {"spec", "template", "spec", NULL};
	static const char *const cron_path[] = {"spec",     "jobTemplate", "spec",
	                                        "template", "spec",        NULL};
	struct file files[] = {
	    {"m/web.yaml",
	     "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  template:\n"
	     "    spec:\n      initContainers:\n      - {name: migrate, image: placeholder}\n"
	     "      containers:\n      - {name: app, image: placeholder}\n"
	     "      - {name: sidecar, image: envoy:1}\n---\n"
	     "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  template:\n    spec:\n"
	     "      containers:\n      - {name: app, image: untouched}\n---\n"
	     "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: nightly}\nspec:\n"
	     "  schedule: '@daily'\n  jobTemplate:\n    spec:\n      template:\n        spec:\n"
	     "          containers:\n          - {name: app, image: placeholder}\n---\n"
	     "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: db}\nspec:\n  template:\n"
	     "    spec:\n      containers:\n      - {name: db, image: postgres:16}\n",
	     0},
	    {NULL, NULL, 0},
	};
	struct manifests_image images[] = {
	    {"web", "app", "r.example/web@sha256:aaaa", 99},
	    {"web", "migrate", "r.example/migrate@sha256:bbbb", 99},
	    {"nightly", "app", "r.example/web@sha256:aaaa", 99},
	    {"missing", "app", "r.example/x@sha256:cccc", 99},
	    {"db", "no-such-container", "r.example/x@sha256:dddd", 99},
	};
	struct manifests m;

	ok(load(&m, files, "m") == 0 && m.n == 4, "workloads load: %s", err_msg());
	if (m.n != 4)
		goto out;
	ok(manifests_set_images(&m, images, 5) == 0, "images are substituted");
	is_str(image_at(m.objs[0].obj, template_path, "containers", 0), images[0].image,
	       "a Deployment's container gets the image by digest");
	is_str(image_at(m.objs[0].obj, template_path, "initContainers", 0), images[1].image,
	       "so does an init container");
	is_str(image_at(m.objs[0].obj, template_path, "containers", 1), "envoy:1",
	       "a container not named keeps its image");
	is_str(image_at(m.objs[1].obj, template_path, "containers", 0), "untouched",
	       "a Service of the same name is not a workload and is left alone");
	is_str(image_at(m.objs[2].obj, cron_path, "containers", 0), images[2].image,
	       "a CronJob's container, under spec.jobTemplate, gets the image");
	is_str(image_at(m.objs[3].obj, template_path, "containers", 0), "postgres:16",
	       "a workload whose container is not named keeps its image");
	is_int(images[0].matched, 1, "the Deployment's substitution is counted");
	is_int(images[2].matched, 1, "and the CronJob's");
	is_int(images[3].matched, 0, "a workload not in the manifests is reported as not found");
	is_int(images[4].matched, 0, "so is a container not in the workload");
out:
	manifests_release(&m);
}

static void test_images_stream(void)
{
	const char *in =
	    "# Source: web/templates/service.yaml\n"
	    "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  labels: {on: 'yes', n: "
	    "'0123'}\nspec:\n  ports:\n  - port: 80\n---\n---\n"
	    "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: 2\n"
	    "  template:\n    spec:\n      containers:\n      - name: app\n        image: "
	    "placeholder\n        args: [\"--flag=true\", \"multi\\nline\"]\n---\n"
	    "apiVersion: v1\nkind: List\nitems:\n- apiVersion: batch/v1\n  kind: Job\n  metadata: "
	    "{name: migrate}\n  spec:\n    template:\n      spec:\n        containers:\n"
	    "        - {name: app, image: placeholder}\n";
	struct manifests_image images[] = {
	    {"web", "app", "r.example/web@sha256:aaaa", 0},
	    {"migrate", "app", "r.example/web@sha256:aaaa", 0},
	    {"gone", "app", "r.example/web@sha256:aaaa", 0},
	};
	json_t *before = NULL, *after = NULL, *want = NULL;
	char *out = NULL;

	ok(manifests_set_images_stream(&out, in, strlen(in), images, 3) == 0,
	   "a rendered chart goes through the stream substitution: %s", err_msg());
	if (!out)
		return;
	ok(!strncmp(out, "---\n", 4), "each document starts with ---");
	ok(yamljson_load_all(&before, in, strlen(in)) == 0 &&
	       yamljson_load_all(&after, out, strlen(out)) == 0,
	   "the output reads back as YAML");
	is_int(json_array_size(after), 3, "empty documents are dropped, the others kept");
	ok(json_equal(json_array_get(before, 0), json_array_get(after, 0)),
	   "an object not substituted reads back the same, quoted strings included");
	want = json_deep_copy(json_array_get(before, 1));
	json_object_set_new(
	    json_array_get(
	        json_object_get(
	            json_object_get(json_object_get(json_object_get(want, "spec"), "template"),
	                            "spec"),
	            "containers"),
	        0),
	    "image", json_string("r.example/web@sha256:aaaa"));
	ok(json_equal(want, json_array_get(after, 1)),
	   "the Deployment differs only in the substituted image");
	is_str(json_string_value(json_object_get(
	           json_array_get(
	               json_object_get(
	                   json_object_get(
	                       json_object_get(
	                           json_object_get(
	                               json_array_get(
	                                   json_object_get(json_array_get(after, 2), "items"), 0),
	                               "spec"),
	                           "template"),
	                       "spec"),
	                   "containers"),
	               0),
	           "image")),
	       "r.example/web@sha256:aaaa", "a Job inside a List gets the image");
	is_int(images[0].matched, 1, "the Deployment's substitution is counted");
	is_int(images[1].matched, 1, "the Job's too");
	is_int(images[2].matched, 0, "a workload absent from the stream is reported");
	free(out);
	out = NULL;

	ok(manifests_set_images_stream(&out, "a: [1\n", 6, images, 3) == -1 && !out &&
	       has(err_msg(), "yaml: line"),
	   "a stream that does not parse fails with the line: %s", err_msg());
	ok(manifests_set_images_stream(&out, "", 0, images, 3) == 0 && out && !*out,
	   "an empty stream gives empty output");
	free(out);
	json_decref(want);
	json_decref(before);
	json_decref(after);
}

static void test_stream_bounds(void)
{
	struct buf b;
	char *out = NULL;
	size_t i;

	buf_init(&b, 1 << 20);
	for (i = 0; i <= MANIFESTS_MAX_OBJECTS; i++)
		buf_adds(&b, "{kind: X}\n---\n");
	ok(manifests_set_images_stream(&out, b.data, b.len, NULL, 0) == -1 && !out &&
	       has(err_msg(), "more than 5000 documents"),
	   "a stream of more than MANIFESTS_MAX_OBJECTS documents is refused: %s", err_msg());
	ok(manifests_set_images_stream(&out, b.data, MANIFESTS_MAX_BYTES + 1, NULL, 0) == -1 &&
	       has(err_msg(), "more than 16777216 bytes"),
	   "and one of more than MANIFESTS_MAX_BYTES: %s", err_msg());
	buf_release(&b);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

int main(void)
{
	char repo_path[sizeof(scratch) + 16];
	int rc;

	git_libgit2_init();
	if (!mkdtemp(scratch) ||
	    snprintf(repo_path, sizeof(repo_path), "%s/repo.git", scratch) < 0 ||
	    git_repository_init(&repo, repo_path, 1) < 0) {
		printf("Bail out! cannot set up %s\n", scratch);
		return 1;
	}
	test_order_and_documents();
	test_refusals();
	test_bounds();
	test_validate();
	test_removed_apis();
	test_sort();
	test_images();
	test_images_stream();
	test_stream_bounds();
	git_repository_free(repo);
	git_libgit2_shutdown();
	rc = tap_done();
	nftw(scratch, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return rc;
}
