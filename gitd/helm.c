/* helm: runs helm upgrade --install on a chart of the pushed tree, with
 * slipway-post-render setting the built images (see helm.h). */
#include "helm.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <openssl/evp.h>

#include "buf.h"
#include "err.h"
#include "spawn.h"
#include "banned.h"

/* helm gets this long past its own --timeout before it is killed: it
 * rolls back (--atomic) or records the failure after the timeout. */
#define HELM_KILL_AFTER_S 60
/* The longest --timeout asked for. */
#define HELM_TIMEOUT_MAX_S 86400
/* Most arguments of one helm command: the fixed ones and one per value. */
#define HELM_ARGV_MAX (32 + HELM_VALUES_MAX)

/* ---- spec.manifests ----------------------------------------------------- */

static int is_str_or_unset(const json_t *v)
{
	return !v || json_is_null(v) || json_is_string(v);
}

/* Checks a manifests path: relative, no "." or ".." component, no empty
 * component inside, no control characters. */
static int path_is_ok(const char *p)
{
	const char *s = p;

	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f || *s == '\\')
			return 0;
	s = p;
	while (*s) {
		const char *slash = strchr(s, '/');
		size_t n = slash ? (size_t)(slash - s) : strlen(s);

		if (n == 0 || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
			return 0;
		s += n;
		if (*s == '/')
			s++;
	}
	return 1;
}

int helm_spec_read(struct helm_spec *out, const json_t *obj)
{
	const json_t *m = json_object_get(json_object_get(obj, "spec"), "manifests");
	const json_t *helm, *values, *v;
	const char *path;
	size_t i, n;

	memset(out, 0, sizeof(*out));
	out->wait = true;
	out->sa = HELM_DEFAULT_SA;
	if (!m || json_is_null(m))
		return 0;
	if (!json_is_object(m))
		return err_set("spec.manifests: not an object");
	v = json_object_get(m, "path");
	if (!is_str_or_unset(v))
		return err_set("spec.manifests.path: not a string");
	path = json_string_value(v);
	if (path) {
		/* "/chart/" and "./chart" name the same folder as "chart" */
		while (path[0] == '/' || (path[0] == '.' && path[1] == '/'))
			path += path[0] == '/' ? 1 : 2;
		n = strlen(path);
		while (n && path[n - 1] == '/')
			n--;
		if (n == 1 && path[0] == '.')
			n = 0;
		if (n >= sizeof(out->path))
			return err_set("spec.manifests.path: longer than %zu bytes",
			               sizeof(out->path) - 1);
		memcpy(out->path, path, n);
		out->path[n] = '\0';
		if (!path_is_ok(out->path))
			return err_set("spec.manifests.path: '%s': '.', '..', '\\', empty "
			               "components and control characters are not allowed",
			               out->path);
		out->has_path = true;
	}
	v = json_object_get(m, "wait");
	if (v && !json_is_null(v) && !json_is_boolean(v))
		return err_set("spec.manifests.wait: not a boolean");
	if (json_is_boolean(v))
		out->wait = json_is_true(v);
	v = json_object_get(m, "timeoutSeconds");
	if (v && !json_is_null(v)) {
		if (!json_is_integer(v) || json_integer_value(v) < 1 ||
		    json_integer_value(v) > HELM_TIMEOUT_MAX_S)
			return err_set("spec.manifests.timeoutSeconds: not an integer from 1 to %d",
			               HELM_TIMEOUT_MAX_S);
		out->timeout_s = (long)json_integer_value(v);
	}
	v = json_object_get(m, "serviceAccountName");
	if (!is_str_or_unset(v))
		return err_set("spec.manifests.serviceAccountName: not a string");
	if (json_string_value(v) && *json_string_value(v))
		out->sa = json_string_value(v);
	helm = json_object_get(m, "helm");
	if (!helm || json_is_null(helm))
		return 0;
	if (!json_is_object(helm))
		return err_set("spec.manifests.helm: not an object");
	out->has_helm = true;
	v = json_object_get(helm, "release");
	if (!is_str_or_unset(v))
		return err_set("spec.manifests.helm.release: not a string");
	if (json_string_value(v) && *json_string_value(v))
		out->release = json_string_value(v);
	values = json_object_get(helm, "values");
	if (!values || json_is_null(values))
		return 0;
	if (!json_is_array(values))
		return err_set("spec.manifests.helm.values: not an array");
	if (json_array_size(values) > HELM_VALUES_MAX)
		return err_set("spec.manifests.helm.values: %zu items, at most %d",
		               json_array_size(values), HELM_VALUES_MAX);
	json_array_foreach(values, i, v)
	{
		const json_t *name = json_object_get(v, "name"),
		             *value = json_object_get(v, "value");

		if (!json_is_object(v))
			return err_set("spec.manifests.helm.values[%zu]: not an object", i);
		if (!json_string_value(name) || !*json_string_value(name))
			return err_set("spec.manifests.helm.values[%zu].name: missing", i);
		if (strchr(json_string_value(name), '='))
			return err_set("spec.manifests.helm.values[%zu].name: holds '='", i);
		if (!is_str_or_unset(value))
			return err_set("spec.manifests.helm.values[%zu].value: not a string", i);
		out->values[i].name = json_string_value(name);
		out->values[i].value = json_string_value(value) ? json_string_value(value) : "";
	}
	out->nvalues = json_array_size(values);
	return 0;
}

/* ---- the chart in the tree ----------------------------------------------- */

struct chart_walk {
	const char *base;
	int failed;
};

static int chart_entry(const char *root, const git_tree_entry *e, void *payload)
{
	struct chart_walk *w = payload;
	git_filemode_t mode = git_tree_entry_filemode(e);

	if (mode == GIT_FILEMODE_LINK || mode == GIT_FILEMODE_COMMIT) {
		err_set("chart '%s': %s%s%s%s: %s are not followed", *w->base ? w->base : ".",
		        w->base, *w->base ? "/" : "", root, git_tree_entry_name(e),
		        mode == GIT_FILEMODE_LINK ? "symbolic links" : "submodules");
		w->failed = 1;
		return -1;
	}
	return 0;
}

int helm_chart_find(const git_tree *tree, const char *path)
{
	git_tree_entry *chart_yaml = NULL, *entry = NULL;
	git_tree *folder = NULL;
	struct chart_walk w = {.base = path, .failed = 0};
	char file[PATH_MAX];
	int ret = 0;

	if ((size_t)snprintf(file, sizeof(file), "%s%sChart.yaml", path, *path ? "/" : "") >=
	    sizeof(file))
		return 0;
	if (git_tree_entry_bypath(&chart_yaml, tree, file) < 0)
		goto out;
	if (git_tree_entry_type(chart_yaml) != GIT_OBJECT_BLOB ||
	    git_tree_entry_filemode(chart_yaml) == GIT_FILEMODE_LINK)
		goto out;
	if (!*path) {
		if (git_tree_dup(&folder, (git_tree *)tree) < 0) {
			ret = err_set("out of memory");
			goto out;
		}
	} else if (git_tree_entry_bypath(&entry, tree, path) < 0 ||
	           git_tree_lookup(&folder, git_tree_owner(tree), git_tree_entry_id(entry)) < 0) {
		ret = err_set("chart '%s': cannot read the folder", path);
		goto out;
	}
	if (git_tree_walk(folder, GIT_TREEWALK_PRE, chart_entry, &w) < 0) {
		ret = w.failed ? -1 : err_set("chart '%s': cannot read the folder", path);
		goto out;
	}
	ret = 1;
out:
	git_tree_free(folder);
	git_tree_entry_free(entry);
	git_tree_entry_free(chart_yaml);
	return ret;
}

/* ---- release names ------------------------------------------------------- */

bool helm_release_is_valid(const char *name)
{
	size_t n = strlen(name), label = 0;

	if (n == 0 || n > HELM_RELEASE_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		bool is_alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');

		if (c == '.') {
			/* a label ends with a letter or digit */
			if (label == 0 || name[i - 1] == '-')
				return false;
			label = 0;
		} else if (c == '-') {
			if (label == 0)
				return false;
			label++;
		} else if (is_alnum) {
			label++;
		} else {
			return false;
		}
	}
	return name[n - 1] != '-' && name[n - 1] != '.';
}

char *helm_release_derive(char out[static HELM_RELEASE_MAX + 1], const char *name)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	size_t n;

	if (helm_release_is_valid(name)) {
		snprintf(out, HELM_RELEASE_MAX + 1, "%s", name);
		return out;
	}
	/* 44 + "-" + 8 = 53; a Kubernetes name is lowercase already, but this
	 * holds for any string */
	n = 0;
	for (const char *c = name; *c && n < 44; c++) {
		bool is_alnum = (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9');

		if (is_alnum || n > 0)
			out[n++] = is_alnum ? *c : '-';
	}
	while (n && out[n - 1] == '-')
		n--;
	out[n] = '\0';
	if (!EVP_Digest(name, strlen(name), md, &mdlen, EVP_sha256(), NULL) || mdlen < 4)
		memset(md, 0, 4);
	snprintf(out + n, HELM_RELEASE_MAX + 1 - n, "%s%02x%02x%02x%02x", n ? "-" : "r", md[0],
	         md[1], md[2], md[3]);
	return out;
}

/* ---- running helm -------------------------------------------------------- */

struct run {
	const struct helm_request *req;
	struct helm_result *out;
	char error[1024]; /* the last "Error: " line */
	char last[1024];  /* the last line */
};

static void on_helm_line(void *arg, const char *line)
{
	struct run *r = arg;
	int rev;

	if (!strncmp(line, "Error: ", 7))
		snprintf(r->error, sizeof(r->error), "%s", line + 7);
	else if (sscanf(line, "REVISION: %d", &rev) == 1)
		r->out->revision = rev;
	if (*line)
		snprintf(r->last, sizeof(r->last), "%s", line);
	if (r->req->on_line)
		r->req->on_line(r->req->arg, line);
}

/* Writes the images of REQ as slipway-post-render's IMAGES-FILE. */
static int write_images(const char *path, const struct helm_request *req)
{
	json_t *list = json_array();
	int ret = -1;

	if (!list)
		return err_set("out of memory");
	for (size_t i = 0; i < req->nimages; i++)
		if (json_array_append_new(list, json_pack("{s:s, s:s, s:s}", "deployment",
		                                          req->images[i].deployment, "container",
		                                          req->images[i].container, "image",
		                                          req->images[i].image)) < 0) {
			err_set("out of memory");
			goto out;
		}
	if (json_dump_file(list, path, JSON_COMPACT) < 0) {
		err_set("cannot write %s", path);
		goto out;
	}
	ret = 0;
out:
	json_decref(list);
	return ret;
}

/* Sets is_rendered on REQ's images from the post-renderer's report. A
 * missing report (helm failed before rendering) leaves them false. */
static void read_report(const char *path, const struct helm_request *req)
{
	json_t *list = json_load_file(path, 0, NULL), *e;
	size_t i;

	json_array_foreach(list, i, e)
	{
		if (i < req->nimages && json_integer_value(json_object_get(e, "matched")) > 0)
			req->images[i].is_rendered = true;
	}
	json_decref(list);
}

/* Appends to ARGV (N used of HELM_ARGV_MAX) a string it then owns. */
static int push_arg(char **argv, size_t *n, char *s)
{
	if (!s)
		return err_set("out of memory");
	if (*n >= HELM_ARGV_MAX - 1) {
		free(s);
		return err_set("helm: too many arguments");
	}
	argv[(*n)++] = s;
	argv[*n] = NULL;
	return 0;
}

static char *str_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *str_printf(const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;
	int rc;

	va_start(ap, fmt);
	rc = vasprintf(&s, fmt, ap);
	va_end(ap);
	return rc < 0 ? NULL : s;
}

/* Runs helm with ARGV (what follows the program) in REQ's environment and
 * reads its output into OUT. Returns 0 when it exited 0, or -1 with
 * err_msg(). */
static int run_helm(struct helm_result *out, const struct helm_request *req, char **argv)
{
	char *env[12] = {NULL}, how[64];
	struct spawn_opts o = {0};
	struct spawn_result res;
	struct run r = {.req = req, .out = out};
	size_t ne = 0;
	int ret = -1;

	env[ne++] =
	    str_printf("PATH=%s", req->path_env ? req->path_env : "/usr/local/bin:/usr/bin:/bin");
	env[ne++] = str_printf("HOME=%s", req->work_dir);
	env[ne++] = str_printf("HELM_CACHE_HOME=%s/.helm/cache", req->work_dir);
	env[ne++] = str_printf("HELM_CONFIG_HOME=%s/.helm/config", req->work_dir);
	env[ne++] = str_printf("HELM_DATA_HOME=%s/.helm/data", req->work_dir);
	env[ne++] = str_printf("KUBECONFIG=%s", req->kubeconfig);
	/* release records in ConfigMaps: the identity need not read Secrets */
	env[ne++] = str_printf("HELM_DRIVER=configmap");
	for (size_t i = 0; i < ne; i++)
		if (!env[i]) {
			err_set("out of memory");
			goto out;
		}
	o.argv = (const char *const *)argv;
	o.env = (const char *const *)env;
	o.cwd = req->work_dir;
	o.in_fd = -1;
	o.out_fd = -1;
	o.on_line = on_helm_line;
	o.arg = &r;
	o.timeout_ms = (req->timeout_s + HELM_KILL_AFTER_S) * 1000L;
	o.cancel = req->cancel;
	o.die_with_parent = true;
	if (spawn_run(&res, &o) < 0) {
		err_set("cannot run %s: %s", req->helm, err_msg());
		goto out;
	}
	if (WIFEXITED(res.status) && WEXITSTATUS(res.status) == 0) {
		ret = 0;
		goto out;
	}
	if (res.timed_out)
		err_set("helm timed out after %lds", req->timeout_s + HELM_KILL_AFTER_S);
	else if (res.cancelled)
		err_set("helm was stopped: the push was interrupted");
	else if (r.error[0])
		err_set("%s", r.error);
	else
		err_set("helm ended with %s%s%s", spawn_describe(how, sizeof(how), res.status),
		        r.last[0] ? ": " : "", r.last);
out:
	for (size_t i = 0; i < ne; i++)
		free(env[i]);
	return ret;
}

/* Checks what every helm command of REQ needs. */
static int check_request(const struct helm_request *req)
{
	if (!helm_release_is_valid(req->release))
		return err_set("release name '%s' is not valid for Helm (at most %d lowercase "
		               "letters, digits, '-' and '.')",
		               req->release, HELM_RELEASE_MAX);
	if (req->timeout_s < 1 || req->timeout_s > HELM_TIMEOUT_MAX_S)
		return err_set("helm timeout of %lds: not from 1 to %d", req->timeout_s,
		               HELM_TIMEOUT_MAX_S);
	return 0;
}

int helm_apply(struct helm_result *out, const struct helm_request *req)
{
	char *argv[HELM_ARGV_MAX] = {NULL};
	char images[PATH_MAX], report[PATH_MAX];
	size_t n = 0;
	int ret = -1;

	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < req->nimages; i++)
		req->images[i].is_rendered = false;
	if (check_request(req) < 0)
		goto out;
	snprintf(images, sizeof(images), "%.4000s/images.json", req->work_dir);
	snprintf(report, sizeof(report), "%.4000s/post-render-report.json", req->work_dir);
	unlink(report);
	if (write_images(images, req) < 0)
		goto out;
	if (push_arg(argv, &n, strdup(req->helm)) < 0 ||
	    push_arg(argv, &n, strdup("upgrade")) < 0 ||
	    push_arg(argv, &n, strdup("--install")) < 0 ||
	    push_arg(argv, &n, strdup(req->release)) < 0 ||
	    push_arg(argv, &n, strdup(req->chart_dir)) < 0 ||
	    push_arg(argv, &n, str_printf("--namespace=%s", req->ns)) < 0 ||
	    push_arg(argv, &n, str_printf("--post-renderer=%s", req->post_renderer)) < 0 ||
	    push_arg(argv, &n, str_printf("--post-renderer-args=%s", images)) < 0 ||
	    push_arg(argv, &n, str_printf("--post-renderer-args=%s", report)) < 0 ||
	    push_arg(argv, &n, str_printf("--timeout=%lds", req->timeout_s)) < 0)
		goto out;
	for (size_t i = 0; i < req->nvalues; i++)
		if (push_arg(argv, &n,
		             str_printf("--set=%s=%s", req->values[i].name, req->values[i].value)) <
		    0)
			goto out;
	if (req->wait && (push_arg(argv, &n, strdup("--wait")) < 0 ||
	                  push_arg(argv, &n, strdup("--wait-for-jobs")) < 0))
		goto out;
	if (req->atomic && req->wait && push_arg(argv, &n, strdup("--atomic")) < 0)
		goto out;
	ret = run_helm(out, req, argv);
	read_report(report, req);
out:
	if (ret < 0)
		snprintf(out->message, sizeof(out->message), "%s", err_msg());
	for (size_t i = 0; i < n; i++)
		free(argv[i]);
	return ret;
}

int helm_rollback(struct helm_result *out, const struct helm_request *req, int revision)
{
	char *argv[HELM_ARGV_MAX] = {NULL};
	size_t n = 0;
	int ret = -1;

	memset(out, 0, sizeof(*out));
	if (check_request(req) < 0)
		goto out;
	if (revision < 0) {
		err_set("release %s: no revision %d", req->release, revision);
		goto out;
	}
	if (push_arg(argv, &n, strdup(req->helm)) < 0 ||
	    push_arg(argv, &n, strdup("rollback")) < 0 ||
	    push_arg(argv, &n, strdup(req->release)) < 0 ||
	    push_arg(argv, &n, str_printf("%d", revision)) < 0 ||
	    push_arg(argv, &n, str_printf("--namespace=%s", req->ns)) < 0 ||
	    push_arg(argv, &n, str_printf("--timeout=%lds", req->timeout_s)) < 0)
		goto out;
	if (req->wait && (push_arg(argv, &n, strdup("--wait")) < 0 ||
	                  push_arg(argv, &n, strdup("--wait-for-jobs")) < 0))
		goto out;
	ret = run_helm(out, req, argv);
out:
	if (ret < 0)
		snprintf(out->message, sizeof(out->message), "%s", err_msg());
	for (size_t i = 0; i < n; i++)
		free(argv[i]);
	return ret;
}
