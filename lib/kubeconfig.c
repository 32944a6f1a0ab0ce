/* kubeconfig: kubeconfig files and in-cluster configuration (see
 * kubeconfig.h). The YAML is read into a JSON tree (yamljson) and the
 * context, cluster and user are looked up by name in it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <openssl/evp.h>

#include "base64.h"
#include "buf.h"
#include "err.h"
#include "kubeconfig.h"
#include "yamljson.h"
#include "banned.h"

#define KUBECONFIG_MAX (1u << 20) /* a kubeconfig or a file it names */

void kube_config_init(struct kube_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
}

static void pem_release(struct kube_pem *p, int secret)
{
	if (p->data && secret)
		explicit_bzero(p->data, p->len);
	free(p->data);
	p->data = NULL;
	p->len = 0;
}

void kube_config_release(struct kube_config *cfg)
{
	free(cfg->server);
	free(cfg->namespace);
	free(cfg->context);
	pem_release(&cfg->ca, 0);
	pem_release(&cfg->client_cert, 0);
	pem_release(&cfg->client_key, 1);
	if (cfg->token)
		explicit_bzero(cfg->token, strlen(cfg->token));
	free(cfg->token);
	free(cfg->token_file);
	free(cfg->tls_server_name);
	kube_config_init(cfg);
}

/* Reads the whole of PATH (at most KUBECONFIG_MAX bytes) into OUT. */
static int read_file(struct buf *out, const char *path)
{
	char chunk[8192];
	FILE *f = fopen(path, "re");
	size_t n;
	int ret = 0;

	if (!f)
		return err_set("cannot read %s: %s", path, strerror(errno));
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		if (buf_add(out, chunk, n) < 0) {
			ret = err_set("%s is larger than %u bytes", path, KUBECONFIG_MAX);
			break;
		}
	if (ret == 0 && ferror(f))
		ret = err_set("cannot read %s: %s", path, strerror(errno));
	fclose(f);
	explicit_bzero(chunk, sizeof(chunk));
	return ret;
}

/* Joins BASEDIR and a relative PATH (absolute paths are kept). */
static char *resolve_path(const char *basedir, const char *path)
{
	struct buf b;

	buf_init(&b, 8192);
	if (path[0] == '/' || !basedir || !*basedir)
		buf_adds(&b, path);
	else
		buf_addf(&b, "%s/%s", basedir, path);
	return b.data ? buf_detach(&b) : NULL;
}

static int pem_from_buf(struct kube_pem *p, struct buf *b)
{
	p->len = b->len;
	p->data = buf_detach(b);
	return p->data ? 0 : err_set("out of memory");
}

/* Loads a PEM either from FIELD-data (base64) or FIELD (a file path) of OBJ. */
static int load_pem(struct kube_pem *p, const json_t *obj, const char *field, const char *basedir,
                    const char *where, const char *who)
{
	char key[64];
	const char *data, *path;
	struct buf b;
	int ret = 0;

	buf_init(&b, KUBECONFIG_MAX);
	snprintf(key, sizeof(key), "%s-data", field);
	data = json_string_value(json_object_get(obj, key));
	path = json_string_value(json_object_get(obj, field));
	if (data && *data) {
		if (base64_decode(&b, data, KUBECONFIG_MAX) < 0 || !b.len)
			ret = err_set("kubeconfig %s: %s: %s is not valid base64", where, who, key);
	} else if (path && *path) {
		char *full = resolve_path(basedir, path);

		if (!full)
			return err_set("out of memory");
		if (read_file(&b, full) < 0)
			ret = err_set("kubeconfig %s: %s: %s: %s", where, who, field, err_msg());
		free(full);
	}
	if (ret == 0 && b.len)
		ret = pem_from_buf(p, &b);
	if (b.data)
		explicit_bzero(b.data, b.len);
	buf_release(&b);
	return ret;
}

/* Finds the entry called NAME in LIST (e.g. "clusters"): returns 1 and sets
 * *INNER to its inner object (e.g. ".cluster"; borrowed, NULL when that is
 * not a mapping), or returns 0. jansson's getters accept NULL. */
static int find_named(const json_t **inner, const json_t *root, const char *list, const char *key,
                      const char *name)
{
	const json_t *e;
	size_t i;

	*inner = NULL;
	json_array_foreach(json_object_get(root, list), i, e)
	{
		const char *n = json_string_value(json_object_get(e, "name"));

		if (n && !strcmp(n, name)) {
			const json_t *in = json_object_get(e, key);

			*inner = json_is_object(in) ? in : NULL;
			return 1;
		}
	}
	return 0;
}

static int dup_str(char **out, const char *s)
{
	if (!s)
		return 0;
	*out = strdup(s);
	return *out ? 0 : err_set("out of memory");
}

static int load_tree(struct kube_config *out, const json_t *root, const char *basedir,
                     const char *where, const char *context)
{
	const json_t *ctx, *cluster, *user;
	const char *cluster_name, *user_name, *ns, *server, *token;
	char who[300];

	if (!json_is_object(root))
		return err_set("kubeconfig %s: not a kubeconfig (no mapping at the top)", where);
	if (!context || !*context)
		context = json_string_value(json_object_get(root, "current-context"));
	if (!context || !*context)
		return err_set("kubeconfig %s: no current-context and no context given", where);
	if (!find_named(&ctx, root, "contexts", "context", context))
		return err_set("kubeconfig %s: context \"%s\" not found", where, context);
	cluster_name = json_string_value(json_object_get(ctx, "cluster"));
	user_name = json_string_value(json_object_get(ctx, "user"));
	if (!cluster_name)
		return err_set("kubeconfig %s: context \"%s\" names no cluster", where, context);
	if (!find_named(&cluster, root, "clusters", "cluster", cluster_name))
		return err_set("kubeconfig %s: cluster \"%s\" not found", where, cluster_name);
	server = json_string_value(json_object_get(cluster, "server"));
	if (!server || !*server)
		return err_set("kubeconfig %s: cluster \"%s\" has no server", where, cluster_name);
	user = NULL;
	if (user_name && *user_name) {
		if (!find_named(&user, root, "users", "user", user_name))
			return err_set("kubeconfig %s: user \"%s\" not found", where, user_name);
	}
	ns = json_string_value(json_object_get(ctx, "namespace"));
	if (dup_str(&out->server, server) < 0 || dup_str(&out->context, context) < 0 ||
	    dup_str(&out->namespace, ns && *ns ? ns : "default") < 0 ||
	    dup_str(&out->tls_server_name,
	            json_string_value(json_object_get(cluster, "tls-server-name"))) < 0)
		return -1;
	out->insecure_skip_tls_verify =
	    json_is_true(json_object_get(cluster, "insecure-skip-tls-verify"));
	snprintf(who, sizeof(who), "cluster \"%s\"", cluster_name);
	if (load_pem(&out->ca, cluster, "certificate-authority", basedir, where, who) < 0)
		return -1;
	if (!user_name || !*user_name)
		return 0;
	snprintf(who, sizeof(who), "user \"%s\"", user_name);
	if (load_pem(&out->client_cert, user, "client-certificate", basedir, where, who) < 0 ||
	    load_pem(&out->client_key, user, "client-key", basedir, where, who) < 0)
		return -1;
	if (!out->client_cert.data != !out->client_key.data)
		return err_set("kubeconfig %s: %s: client certificate and key go together", where,
		               who);
	token = json_string_value(json_object_get(user, "token"));
	if (token && *token && dup_str(&out->token, token) < 0)
		return -1;
	if (!out->token) {
		const char *tf = json_string_value(json_object_get(user, "tokenFile"));

		if (tf && *tf && !(out->token_file = resolve_path(basedir, tf)))
			return err_set("out of memory");
	}
	if (json_object_get(user, "exec") || json_object_get(user, "auth-provider")) {
		if (!out->token && !out->token_file && !out->client_cert.data)
			return err_set("kubeconfig %s: %s: exec and auth-provider credentials are "
			               "not supported; use a token or client certificate",
			               where, who);
	}
	return 0;
}

int kube_config_load_yaml(struct kube_config *out, const char *yaml, size_t len,
                          const char *basedir, const char *context)
{
	json_t *root = NULL;
	int ret;

	kube_config_release(out);
	if (yamljson_load(&root, yaml, len) < 0)
		return err_set("kubeconfig: %s", err_msg());
	ret = load_tree(out, root, basedir, "(inline)", context);
	json_decref(root);
	if (ret < 0)
		kube_config_release(out);
	return ret;
}

int kube_config_load_file(struct kube_config *out, const char *path, const char *context)
{
	struct buf b;
	json_t *root = NULL;
	char *dir = NULL, *slash;
	int ret = -1;

	kube_config_release(out);
	buf_init(&b, KUBECONFIG_MAX);
	if (read_file(&b, path) < 0) {
		err_set("kubeconfig: %s", err_msg());
		goto out;
	}
	if (yamljson_load(&root, buf_str(&b), b.len) < 0) {
		err_set("kubeconfig %s: %s", path, err_msg());
		goto out;
	}
	dir = strdup(path);
	if (!dir) {
		err_set("out of memory");
		goto out;
	}
	slash = strrchr(dir, '/');
	if (slash)
		*(slash == dir ? slash + 1 : slash) = '\0';
	else
		dir[0] = '\0';
	ret = load_tree(out, root, dir, path, context);
out:
	if (ret < 0)
		kube_config_release(out);
	free(dir);
	json_decref(root);
	if (b.data)
		explicit_bzero(b.data, b.len);
	buf_release(&b);
	return ret;
}

int kube_config_in_cluster(struct kube_config *out, const char *sa_dir)
{
	const char *host = getenv("KUBERNETES_SERVICE_HOST");
	const char *port = getenv("KUBERNETES_SERVICE_PORT");
	struct buf b, path;
	int ret = -1;

	kube_config_release(out);
	if (!sa_dir)
		sa_dir = KUBE_SA_DIR;
	if (!host || !*host || !port || !*port)
		return err_set("not running in a cluster: KUBERNETES_SERVICE_HOST and "
		               "KUBERNETES_SERVICE_PORT are not set");
	buf_init(&b, 1024);
	buf_init(&path, 4096);
	if (strchr(host, ':'))
		ret = buf_addf(&b, "https://[%s]:%s", host, port);
	else
		ret = buf_addf(&b, "https://%s:%s", host, port);
	if (ret < 0 || !(out->server = buf_detach(&b)))
		goto fail;
	if (buf_addf(&path, "%s/token", sa_dir) < 0 || !(out->token_file = buf_detach(&path)))
		goto fail;
	buf_init(&b, KUBECONFIG_MAX);
	if (read_file(&b, out->token_file) < 0) {
		err_set("in-cluster configuration: %s", err_msg());
		goto fail;
	}
	while (b.len && (b.data[b.len - 1] == '\n' || b.data[b.len - 1] == '\r'))
		b.data[--b.len] = '\0';
	if (!b.len || !(out->token = buf_detach(&b))) {
		err_set("in-cluster configuration: %s is empty", out->token_file);
		goto fail;
	}
	buf_init(&path, 4096);
	if (buf_addf(&path, "%s/ca.crt", sa_dir) < 0)
		goto fail;
	buf_init(&b, KUBECONFIG_MAX);
	if (read_file(&b, path.data) < 0) {
		err_set("in-cluster configuration: %s", err_msg());
		goto fail;
	}
	if (pem_from_buf(&out->ca, &b) < 0)
		goto fail;
	buf_release(&path);
	if (buf_addf(&path, "%s/namespace", sa_dir) < 0)
		goto fail;
	buf_init(&b, 1024);
	if (read_file(&b, path.data) == 0) {
		while (b.len && (b.data[b.len - 1] == '\n' || b.data[b.len - 1] == ' '))
			b.data[--b.len] = '\0';
		if (b.len)
			out->namespace = buf_detach(&b);
	}
	err_clear();
	buf_release(&b);
	buf_release(&path);
	if (!out->namespace && dup_str(&out->namespace, "default") < 0)
		goto fail;
	if (dup_str(&out->context, "in-cluster") < 0)
		goto fail;
	return 0;
fail:
	if (b.data)
		explicit_bzero(b.data, b.len);
	buf_release(&b);
	buf_release(&path);
	kube_config_release(out);
	return -1;
}

int kube_config_load_default(struct kube_config *out, const char *explicit_path,
                             const char *context)
{
	const char *env = getenv("KUBECONFIG"), *home = getenv("HOME");
	struct buf b;
	struct stat st;
	int ret;

	if (explicit_path && *explicit_path)
		return kube_config_load_file(out, explicit_path, context);
	buf_init(&b, 4096);
	if (env && *env) {
		/* kubectl merges every file of the list; the first is used here */
		if (buf_add(&b, env, strcspn(env, ":")) < 0)
			return -1;
		ret = kube_config_load_file(out, b.data, context);
		buf_release(&b);
		return ret;
	}
	if (home && *home && buf_addf(&b, "%s/.kube/config", home) == 0 && stat(b.data, &st) == 0) {
		ret = kube_config_load_file(out, b.data, context);
		buf_release(&b);
		return ret;
	}
	buf_release(&b);
	if (kube_config_in_cluster(out, NULL) < 0)
		return err_set("no kubeconfig: set --kubeconfig or KUBECONFIG, create "
		               "~/.kube/config, or run in a cluster");
	return 0;
}
