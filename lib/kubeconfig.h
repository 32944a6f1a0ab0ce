/* kubeconfig: where and how to reach the Kubernetes API server.
 *
 * Reads a kubeconfig file (the format of `kubectl config view`, documented in
 * Kubernetes' "Organizing Cluster Access Using kubeconfig Files" and the
 * k8s.io/client-go/tools/clientcmd/api/v1 types) with libyaml, or the
 * in-cluster configuration a pod gets from its ServiceAccount. */
#ifndef SLIP_KUBECONFIG_H
#define SLIP_KUBECONFIG_H

#include <stdbool.h>
#include <stddef.h>

/* In-cluster defaults; overridable for tests through kube_config_in_cluster's
 * argument. */
#define KUBE_SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"

/* A PEM blob held in memory (certificate, key or CA bundle). */
struct kube_pem {
	char *data; /* PEM text, NUL-terminated; NULL when unset */
	size_t len; /* bytes of data, without the NUL */
};

/* The resolved configuration of one context. All strings are owned by the
 * struct and freed by kube_config_release(). */
struct kube_config {
	char *server;                  /* "https://host:port", no trailing slash */
	char *namespace;               /* context namespace, or "default" */
	char *context;                 /* context name, or "in-cluster" */
	struct kube_pem ca;            /* CA bundle; empty means the system store */
	struct kube_pem client_cert;   /* client certificate, or empty */
	struct kube_pem client_key;    /* client private key (secret), or empty */
	char *token;                   /* bearer token (secret), or NULL */
	char *token_file;              /* file re-read when it changes, or NULL */
	char *tls_server_name;         /* SNI/verification name, or NULL */
	bool insecure_skip_tls_verify; /* don't verify the server (tests only) */
};

/* Sets up an empty config in place. */
void kube_config_init(struct kube_config *cfg);

/* Frees the contents (wiping token and key) and leaves an empty config. */
void kube_config_release(struct kube_config *cfg);

/* Loads the kubeconfig at PATH and resolves CONTEXT (NULL: the file's
 * current-context) into OUT, which must be initialised. Relative file paths in
 * the kubeconfig (certificate-authority, client-certificate, client-key,
 * tokenFile) are taken relative to the kubeconfig's directory, as kubectl
 * does; *-data fields are base64-decoded.
 * Returns 0, or -1 with err_msg() naming the file and what is wrong (bad
 * YAML, no such context, missing cluster or user, unreadable file, bad
 * base64). OUT is left empty on failure. */
int kube_config_load_file(struct kube_config *out, const char *path, const char *context);

/* Loads the kubeconfig from a YAML string, as kube_config_load_file; BASEDIR
 * resolves relative paths (NULL: the current directory). */
int kube_config_load_yaml(struct kube_config *out, const char *yaml, size_t len,
                          const char *basedir, const char *context);

/* Loads the in-cluster configuration: KUBERNETES_SERVICE_HOST and
 * KUBERNETES_SERVICE_PORT from the environment, the CA and namespace from
 * SA_DIR (NULL: KUBE_SA_DIR) and the token file SA_DIR/token, which the client
 * re-reads when it rotates. Returns 0, or -1 with err_msg() when not running
 * in a cluster. */
int kube_config_in_cluster(struct kube_config *out, const char *sa_dir);

/* Loads what kubectl would use: EXPLICIT_PATH when non-NULL, else the first
 * file of $KUBECONFIG (colon-separated), else ~/.kube/config when it exists,
 * else the in-cluster configuration. CONTEXT as for kube_config_load_file.
 * Returns 0 or -1 with err_msg(). */
int kube_config_load_default(struct kube_config *out, const char *explicit_path,
                             const char *context);

#endif
