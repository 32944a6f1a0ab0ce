/* Unit tests of gitd/helm: spec.manifests read from a Remote's JSON, release
 * names (valid, derived and stable), charts found in trees built with
 * libgit2 (symbolic links refused), and the command helm_apply runs, seen
 * through a recording program in place of helm (named as a fake: the real
 * helm runs in tests/t8600-helm.sh). */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <git2.h>

#include "tap.h"
#include "err.h"
#include "helm.h"

static char scratch[] = "/tmp/slipway-unit-helm-XXXXXX";
static git_repository *repo;

static int has(const char *s, const char *sub)
{
	return s && strstr(s, sub) != NULL;
}

/* The Remote objects read: a spec borrows from its object. */
static json_t *kept;

static int read_spec(struct helm_spec *spec, const char *json)
{
	json_t *obj = json_loads(json, 0, NULL);
	int rc;

	err_clear();
	if (!obj)
		return -2;
	rc = helm_spec_read(spec, obj);
	json_array_append_new(kept, obj);
	return rc;
}

static void test_spec(void)
{
	struct helm_spec s;

	ok(read_spec(&s, "{\"spec\":{}}") == 0 && !s.has_path && s.wait &&
	       !strcmp(s.sa, HELM_DEFAULT_SA),
	   "a Remote without spec.manifests has no path, wait on, the default ServiceAccount");
	ok(read_spec(&s, "{\"spec\":{\"manifests\":{\"path\":\"mono/chart\",\"helm\":{"
	                 "\"release\":\"www\",\"values\":[{\"name\":\"replicaCount\",\"value\":"
	                 "\"2\"},{\"name\":\"a.b\"}]},\"wait\":false,\"timeoutSeconds\":90,"
	                 "\"serviceAccountName\":\"deployer\"}}}") == 0,
	   "a full spec.manifests reads: %s", err_msg());
	is_str(s.path, "mono/chart", "path");
	ok(s.has_helm, "helm is set");
	is_str(s.release, "www", "release");
	ok(s.nvalues == 2 && !strcmp(s.values[0].name, "replicaCount") &&
	       !strcmp(s.values[0].value, "2") && !strcmp(s.values[1].value, ""),
	   "values, an unset value read as \"\"");
	ok(!s.wait && s.timeout_s == 90 && !strcmp(s.sa, "deployer"),
	   "wait, timeoutSeconds, serviceAccountName");
	ok(read_spec(&s, "{\"spec\":{\"manifests\":{\"path\":\"./chart/\",\"helm\":{}}}}") == 0 &&
	       !strcmp(s.path, "chart") && s.has_helm && !s.release && s.nvalues == 0,
	   "gitkube's helm: {} has no release; ./chart/ is chart");
	ok(read_spec(&s, "{\"spec\":{\"manifests\":{\"path\":\"/\"}}}") == 0 && s.has_path &&
	       !strcmp(s.path, ""),
	   "\"/\" is the root");
	ok(read_spec(&s, "{\"spec\":{\"manifests\":{\"path\":\"a/../../etc\"}}}") == -1 &&
	       has(err_msg(), "spec.manifests.path: 'a/../../etc'"),
	   "'..' in the path is refused: %s", err_msg());
	ok(read_spec(&s, "{\"spec\":{\"manifests\":{\"path\":\"c\",\"helm\":{\"values\":[{"
	                 "\"value\":\"x\"}]}}}}") == -1 &&
	       has(err_msg(), "spec.manifests.helm.values[0].name: missing"),
	   "a value without a name is refused: %s", err_msg());
	ok(read_spec(&s, "{\"spec\":{\"manifests\":{\"path\":\"c\",\"helm\":{\"values\":[{"
	                 "\"name\":\"a=b\",\"value\":\"x\"}]}}}}") == -1 &&
	       has(err_msg(), "holds '='"),
	   "a name holding '=' is refused: %s", err_msg());
	ok(read_spec(&s, "{\"spec\":{\"manifests\":{\"path\":\"c\",\"timeoutSeconds\":0}}}") ==
	           -1 &&
	       has(err_msg(), "spec.manifests.timeoutSeconds"),
	   "timeoutSeconds 0 is refused: %s", err_msg());
	ok(read_spec(&s, "{\"spec\":{\"manifests\":{\"path\":3}}}") == -1 &&
	       has(err_msg(), "spec.manifests.path: not a string"),
	   "a path of the wrong type is refused: %s", err_msg());
}

static void test_release_names(void)
{
	char out[HELM_RELEASE_MAX + 1], again[HELM_RELEASE_MAX + 1];
	const char *long_name = "a-remote-name-that-is-much-longer-than-helm-allows-for-releases";

	ok(helm_release_is_valid("www") && helm_release_is_valid("www-release-1.0") &&
	       helm_release_is_valid("a"),
	   "gitkube's release names are valid");
	ok(!helm_release_is_valid("") && !helm_release_is_valid("-x") &&
	       !helm_release_is_valid("x-") && !helm_release_is_valid("Www") &&
	       !helm_release_is_valid("a..b") && !helm_release_is_valid("a_b") &&
	       !helm_release_is_valid("a.-b"),
	   "empty, dash-ended, upper-case, '..', '_' names are not");
	ok(!helm_release_is_valid(long_name), "a name over 53 characters is not");
	is_str(helm_release_derive(out, "web"), "web", "a Remote's valid name is its release");
	helm_release_derive(out, long_name);
	helm_release_derive(again, long_name);
	ok(strlen(out) <= HELM_RELEASE_MAX && helm_release_is_valid(out),
	   "a long name is cut to a valid release name: %s", out);
	ok(!strncmp(out, long_name, 40) && !strcmp(out, again),
	   "it keeps the name's start and is the same at every push");
	helm_release_derive(again,
	                    "a-remote-name-that-is-much-longer-than-helm-allows-for-releasez");
	ok(strcmp(out, again) != 0, "two long names with the same start differ");
}

struct file {
	const char *path;
	const char *data;
	git_filemode_t mode;
};

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
	git_index_free(index);
	return tree;
}

static void test_chart_find(void)
{
	struct file files[] = {
	    {"chart/Chart.yaml", "name: www\n", 0},
	    {"chart/templates/deploy.yaml", "kind: Deployment\n", 0},
	    {"plain/deploy.yaml", "kind: Deployment\n", 0},
	    {"evil/Chart.yaml", "name: x\n", 0},
	    {"evil/templates/token.yaml", "/var/run/secrets/kubernetes.io/serviceaccount/token",
	     GIT_FILEMODE_LINK},
	    {"Chart.yaml", "name: root\n", 0},
	    {NULL, NULL, 0},
	};
	git_tree *t = tree_of(files);

	if (!ok(t != NULL, "a tree with charts"))
		return;
	ok(helm_chart_find(t, "chart") == 1, "a folder with Chart.yaml is a chart");
	ok(helm_chart_find(t, "plain") == 0, "a folder without is not");
	ok(helm_chart_find(t, "missing") == 0, "a missing folder is not");
	ok(helm_chart_find(t, "chart/templates/deploy.yaml") == 0, "a file is not");
	ok(helm_chart_find(t, "evil") == -1 &&
	       has(err_msg(), "evil/templates/token.yaml: symbolic links are not followed"),
	   "a chart holding a symbolic link is refused: %s", err_msg());
	ok(helm_chart_find(t, "") == -1, "the root chart holds evil/ and its link: refused");
	git_tree_free(t);
}

/* helm_apply with a recording program in place of helm: it writes its
 * arguments and environment, one per line, and prints part of
 * helm's output. */
static void test_apply_command(void)
{
	char fake[256], log[256], work[256], line[4096];
	struct helm_value values[] = {{"replicaCount", "2"}, {"msg", "a b;$(id),x"}};
	struct helm_image images[] = {{"www", "web", "r/www@sha256:abcd", false},
	                              {"other", "web", "r/other@sha256:abcd", false}};
	struct helm_request req = {0};
	struct helm_result res;
	FILE *f;
	int rc, n_set = 0, saw_env = 0;

	snprintf(fake, sizeof(fake), "%s/fake-helm", scratch);
	snprintf(log, sizeof(log), "%s/fake-helm.log", scratch);
	snprintf(work, sizeof(work), "%s/work", scratch);
	mkdir(work, 0700);
	f = fopen(fake, "w");
	if (!ok(f != NULL, "a fake helm"))
		return;
	fprintf(
	    f,
	    "#!/bin/sh\n"
	    "for a in \"$@\"; do printf 'arg %%s\\n' \"$a\"; done >%s\n"
	    "env | sed 's/^/env /' >>%s\n"
	    "echo 'NAME: www'\necho 'REVISION: 3'\n"
	    "case \"$*\" in *fail-please*) echo 'Error: UPGRADE FAILED: boom' >&2; exit 1;; esac\n"
	    "exit 0\n",
	    log, log);
	fclose(f);
	chmod(fake, 0755);
	req.helm = fake;
	req.post_renderer = "/usr/local/bin/slipway-post-render";
	req.chart_dir = "/tree/chart";
	req.ns = "web";
	req.release = "www";
	req.values = values;
	req.nvalues = 2;
	req.images = images;
	req.nimages = 2;
	req.wait = true;
	req.atomic = true;
	req.timeout_s = 120;
	req.kubeconfig = "/work/kubeconfig";
	req.work_dir = work;
	rc = helm_apply(&res, &req);
	ok(rc == 0 && res.revision == 3, "helm's success and REVISION are read: %s", res.message);
	f = fopen(log, "r");
	if (!ok(f != NULL, "the fake helm ran"))
		return;
	{
		const char *want[] = {"arg upgrade",
		                      "arg --install",
		                      "arg www",
		                      "arg /tree/chart",
		                      "arg --namespace=web",
		                      "arg --post-renderer=/usr/local/bin/slipway-post-render",
		                      "arg --timeout=120s",
		                      "arg --wait",
		                      "arg --wait-for-jobs",
		                      "arg --atomic",
		                      NULL};
		char all[8192] = "";

		while (fgets(line, sizeof(line), f)) {
			strncat(all, line, sizeof(all) - strlen(all) - 1);
			if (!strncmp(line, "arg --set=", 10))
				n_set++;
			if (!strcmp(line, "env HELM_DRIVER=configmap\n") ||
			    !strcmp(line, "env KUBECONFIG=/work/kubeconfig\n"))
				saw_env++;
		}
		for (size_t i = 0; want[i]; i++)
			ok(has(all, want[i]), "helm gets %s", want[i]);
		ok(has(all, "arg --set=msg=a b;$(id),x\n"),
		   "a value reaches helm as one argument, untouched by a shell");
		ok(n_set == 2, "one --set per value");
		ok(saw_env == 2, "HELM_DRIVER=configmap and the ServiceAccount's KUBECONFIG");
		ok(!has(all, "env SLIPWAY") && !has(all, "env KUBECONFIG=/tmp"),
		   "nothing else of gitd's environment");
		ok(has(all, "/images.json\n") && has(all, "/post-render-report.json\n"),
		   "the post-renderer gets the images file and the report file");
	}
	fclose(f);
	ok(helm_rollback(&res, &req, 2) == 0, "helm rollback runs: %s", res.message);
	f = fopen(log, "r");
	if (f) {
		char all[4096] = "";

		while (fgets(line, sizeof(line), f))
			strncat(all, line, sizeof(all) - strlen(all) - 1);
		fclose(f);
		ok(has(all,
		       "arg rollback\narg www\narg 2\narg --namespace=web\narg --timeout=120s\n"
		       "arg --wait\narg --wait-for-jobs\n") &&
		       !has(all, "--set") && !has(all, "--post-renderer") && !has(all, "--atomic"),
		   "helm rollback RELEASE REVISION, with the namespace, timeout and wait only");
	}
	req.wait = false;
	ok(helm_apply(&res, &req) == 0, "helm upgrade without wait runs: %s", res.message);
	f = fopen(log, "r");
	if (f) {
		char all[8192] = "";

		while (fgets(line, sizeof(line), f))
			strncat(all, line, sizeof(all) - strlen(all) - 1);
		fclose(f);
		ok(has(all, "arg upgrade\n") && !has(all, "arg --wait") &&
		       !has(all, "arg --atomic"),
		   "without wait: neither --wait nor --atomic (helm's --atomic implies --wait)");
	}
	req.wait = true;
	ok(helm_rollback(&res, &req, -1) == -1 && has(res.message, "no revision -1"),
	   "a negative revision is refused: %s", res.message);
	req.release = "fail-please";
	ok(helm_apply(&res, &req) == -1 && !strcmp(res.message, "UPGRADE FAILED: boom") &&
	       !strcmp(err_msg(), "UPGRADE FAILED: boom"),
	   "helm's Error: line is the failure's message: %s", res.message);
	req.release = "Bad_Name";
	ok(helm_apply(&res, &req) == -1 && has(res.message, "release name 'Bad_Name'"),
	   "an invalid release name is refused before helm runs: %s", res.message);
	req.release = "www";
	req.helm = "/nonexistent/helm";
	ok(helm_apply(&res, &req) == -1 && has(res.message, "cannot run /nonexistent/helm"),
	   "a missing helm says so: %s", res.message);
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
	kept = json_array();
	test_spec();
	test_release_names();
	test_chart_find();
	test_apply_command();
	json_decref(kept);
	git_repository_free(repo);
	git_libgit2_shutdown();
	rc = tap_done();
	nftw(scratch, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return rc;
}
