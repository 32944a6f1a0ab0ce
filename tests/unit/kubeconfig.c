/* Unit tests of lib/kubeconfig: contexts, inline and file credentials,
 * tokens, errors, the in-cluster configuration and kubectl's lookup order.
 * Files live in a mkdtemp directory removed at the end. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tap.h"
#include "err.h"
#include "kubeconfig.h"

static char dir[64];

static void put(const char *name, const char *text)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	if (!f || fputs(text, f) < 0) {
		ok(0, "write %s", path);
		if (f)
			fclose(f);
		return;
	}
	fclose(f);
}

/* "-----BEGIN CERTIFICATE-----\nCA\n" base64-encoded, and the key's. */
#define CA_B64 "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCkNBCg=="
#define CA_PEM "-----BEGIN CERTIFICATE-----\nCA\n"

static const char kubeconfig[] = "apiVersion: v1\n"
                                 "kind: Config\n"
                                 "current-context: dev\n"
                                 "clusters:\n"
                                 "- name: c1\n"
                                 "  cluster:\n"
                                 "    server: https://10.0.0.1:6443\n"
                                 "    certificate-authority-data: " CA_B64 "\n"
                                 "- name: c2\n"
                                 "  cluster:\n"
                                 "    server: https://c2.example.com/\n"
                                 "    certificate-authority: pki/ca.crt\n"
                                 "    insecure-skip-tls-verify: true\n"
                                 "    tls-server-name: kubernetes\n"
                                 "users:\n"
                                 "- name: certuser\n"
                                 "  user:\n"
                                 "    client-certificate: pki/admin.crt\n"
                                 "    client-key: pki/admin.key\n"
                                 "- name: tokenuser\n"
                                 "  user:\n"
                                 "    token: s3cr3t-token\n"
                                 "- name: fileuser\n"
                                 "  user:\n"
                                 "    tokenFile: tok\n"
                                 "- name: badb64\n"
                                 "  user:\n"
                                 "    client-certificate-data: '!!!not base64!!!'\n"
                                 "    client-key-data: '!!!'\n"
                                 "contexts:\n"
                                 "- name: dev\n"
                                 "  context: {cluster: c1, user: tokenuser, namespace: team-a}\n"
                                 "- name: files\n"
                                 "  context: {cluster: c2, user: certuser}\n"
                                 "- name: tokfile\n"
                                 "  context: {cluster: c1, user: fileuser}\n"
                                 "- name: nocluster\n"
                                 "  context: {cluster: missing, user: tokenuser}\n"
                                 "- name: nouser\n"
                                 "  context: {cluster: c1, user: ghost}\n"
                                 "- name: bad\n"
                                 "  context: {cluster: c1, user: badb64}\n";

static void test_contexts(void)
{
	struct kube_config c;
	char path[256];

	kube_config_init(&c);
	snprintf(path, sizeof(path), "%s/config", dir);
	ok(kube_config_load_file(&c, path, NULL) == 0, "the current-context loads: %s", err_msg());
	is_str(c.server, "https://10.0.0.1:6443", "server of the current context");
	is_str(c.namespace, "team-a", "namespace of the context");
	is_str(c.context, "dev", "context name");
	is_str(c.token, "s3cr3t-token", "inline token");
	is_str(c.ca.data, CA_PEM, "certificate-authority-data is base64-decoded");
	is_int(c.ca.len, strlen(CA_PEM), "and its length is right");
	ok(!c.insecure_skip_tls_verify, "TLS is verified by default");

	ok(kube_config_load_file(&c, path, "files") == 0, "an explicit context loads: %s",
	   err_msg());
	is_str(c.namespace, "default", "namespace defaults to \"default\"");
	is_str(c.ca.data, "CA FROM FILE\n", "certificate-authority is read relative to the file");
	is_str(c.client_cert.data, "CERT\n", "client-certificate from a file");
	is_str(c.client_key.data, "KEY\n", "client-key from a file");
	ok(c.token == NULL, "no token for a certificate user");
	ok(c.insecure_skip_tls_verify, "insecure-skip-tls-verify is read");
	is_str(c.tls_server_name, "kubernetes", "tls-server-name is read");

	ok(kube_config_load_file(&c, path, "tokfile") == 0, "a tokenFile user loads");
	ok(c.token_file && strstr(c.token_file, "/tok") && c.token_file[0] == '/',
	   "tokenFile is resolved against the kubeconfig's directory");
	kube_config_release(&c);
}

static void test_errors(void)
{
	struct kube_config c;
	char path[256];

	kube_config_init(&c);
	snprintf(path, sizeof(path), "%s/config", dir);
	ok(kube_config_load_file(&c, path, "nope") < 0, "an unknown context is an error");
	ok(strstr(err_msg(), "context \"nope\" not found") && strstr(err_msg(), path),
	   "naming the context and the file: %s", err_msg());
	ok(kube_config_load_file(&c, path, "nocluster") < 0 &&
	       strstr(err_msg(), "cluster \"missing\" not found"),
	   "a missing cluster is named");
	ok(kube_config_load_file(&c, path, "nouser") < 0 &&
	       strstr(err_msg(), "user \"ghost\" not found"),
	   "a missing user is named");
	ok(kube_config_load_file(&c, path, "bad") < 0 &&
	       strstr(err_msg(), "client-certificate-data is not valid base64"),
	   "bad base64 is named: %s", err_msg());
	ok(c.server == NULL, "a failed load leaves the config empty");
	put("broken", "clusters: [\n");
	snprintf(path, sizeof(path), "%s/broken", dir);
	ok(kube_config_load_file(&c, path, NULL) < 0 && strstr(err_msg(), "yaml: line"),
	   "malformed YAML is an error with a line: %s", err_msg());
	snprintf(path, sizeof(path), "%s/absent", dir);
	ok(kube_config_load_file(&c, path, NULL) < 0 && strstr(err_msg(), "No such file"),
	   "a missing file is an error");
	ok(kube_config_load_yaml(&c, "users: []\n", 10, NULL, NULL) < 0 &&
	       strstr(err_msg(), "no current-context"),
	   "no current-context is an error");
	ok(kube_config_load_yaml(&c, "- a\n- b\n", 8, NULL, NULL) < 0 &&
	       strstr(err_msg(), "not a kubeconfig"),
	   "a YAML list is not a kubeconfig");
	kube_config_release(&c);
}

static void test_in_cluster(void)
{
	struct kube_config c;
	char sa[256];

	kube_config_init(&c);
	snprintf(sa, sizeof(sa), "%s/sa", dir);
	unsetenv("KUBERNETES_SERVICE_HOST");
	ok(kube_config_in_cluster(&c, sa) < 0 && strstr(err_msg(), "not running in a cluster"),
	   "without the service variables there is no in-cluster config");
	setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
	setenv("KUBERNETES_SERVICE_PORT", "443", 1);
	ok(kube_config_in_cluster(&c, sa) == 0, "in-cluster config loads: %s", err_msg());
	is_str(c.server, "https://10.96.0.1:443", "server from the service variables");
	is_str(c.token, "sa-token", "token read, newline trimmed");
	ok(c.token_file && strstr(c.token_file, "/sa/token"),
	   "the token file is kept for rotation");
	is_str(c.ca.data, "SA CA\n", "CA from ca.crt");
	is_str(c.namespace, "slipway", "namespace from the namespace file");
	setenv("KUBERNETES_SERVICE_HOST", "fd00::1", 1);
	ok(kube_config_in_cluster(&c, sa) == 0 && !strcmp(c.server, "https://[fd00::1]:443"),
	   "an IPv6 service host is bracketed");
	kube_config_release(&c);
}

static void test_default_order(void)
{
	struct kube_config c;
	char path[512], home[256];

	kube_config_init(&c);
	snprintf(path, sizeof(path), "%s/other:%s/config", dir, dir);
	put("other", "current-context: o\nclusters: [{name: oc, cluster: {server: https://o:1}}]\n"
	             "contexts: [{name: o, context: {cluster: oc}}]\n");
	setenv("KUBECONFIG", path, 1);
	ok(kube_config_load_default(&c, NULL, NULL) == 0 && !strcmp(c.server, "https://o:1"),
	   "the first file of $KUBECONFIG is used");
	snprintf(path, sizeof(path), "%s/config", dir);
	ok(kube_config_load_default(&c, path, NULL) == 0 &&
	       !strcmp(c.server, "https://10.0.0.1:6443"),
	   "an explicit path wins over $KUBECONFIG");
	unsetenv("KUBECONFIG");
	snprintf(home, sizeof(home), "%s/home", dir);
	setenv("HOME", home, 1);
	ok(kube_config_load_default(&c, NULL, NULL) == 0 && !strcmp(c.server, "https://h:2"),
	   "then ~/.kube/config");
	setenv("HOME", "/nonexistent", 1);
	setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
	unsetenv("KUBERNETES_SERVICE_PORT");
	ok(kube_config_load_default(&c, NULL, NULL) < 0 && strstr(err_msg(), "no kubeconfig"),
	   "with nothing found the error says what to set");
	kube_config_release(&c);
}

int main(void)
{
	char cmd[128];

	snprintf(dir, sizeof(dir), "/tmp/slipway-unit-XXXXXX");
	if (!mkdtemp(dir))
		return 1;
	snprintf(cmd, sizeof(cmd), "%s/pki", dir);
	mkdir(cmd, 0700);
	snprintf(cmd, sizeof(cmd), "%s/sa", dir);
	mkdir(cmd, 0700);
	snprintf(cmd, sizeof(cmd), "%s/home", dir);
	mkdir(cmd, 0700);
	snprintf(cmd, sizeof(cmd), "%s/home/.kube", dir);
	mkdir(cmd, 0700);
	put("config", kubeconfig);
	put("pki/ca.crt", "CA FROM FILE\n");
	put("pki/admin.crt", "CERT\n");
	put("pki/admin.key", "KEY\n");
	put("tok", "file-token\n");
	put("sa/token", "sa-token\n");
	put("sa/ca.crt", "SA CA\n");
	put("sa/namespace", "slipway");
	put("home/.kube/config", "current-context: h\nclusters: [{name: hc, cluster: {server: "
	                         "https://h:2}}]\ncontexts: [{name: h, context: {cluster: hc}}]\n");
	test_contexts();
	test_errors();
	test_in_cluster();
	test_default_order();
	{
		/* remove the scratch directory; the names are ours, no user input */
		static const char *const files[] = {
		    "config",        "pki/ca.crt",   "pki/admin.crt",
		    "pki/admin.key", "tok",          "sa/token",
		    "sa/ca.crt",     "sa/namespace", "home/.kube/config",
		    "broken",        "other",        "home/.kube",
		    "home",          "pki",          "sa",
		};
		for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
			snprintf(cmd, sizeof(cmd), "%s/%s", dir, files[i]);
			if (remove(cmd) < 0)
				ok(0, "remove %s", cmd);
		}
		rmdir(dir);
	}
	return tap_done();
}
