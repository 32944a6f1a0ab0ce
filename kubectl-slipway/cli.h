/* cli: the command line of kubectl-slipway. kubectl runs a plugin with the
 * words after "kubectl slipway" unchanged, so the global flags kubectl users
 * type (-n, --kubeconfig, --context, -o) may come anywhere; cli_parse takes
 * them out and leaves the command words and command flags in order. */
#ifndef SLIP_PLUGIN_CLI_H
#define SLIP_PLUGIN_CLI_H

#include <stdbool.h>
#include <jansson.h>

/* A usage error (the caller exits 2); err_msg() says what is wrong. */
#define CLI_EUSAGE -2

/* cli_next: the argument is not a flag. */
#define CLI_POSITIONAL -1

/* Output formats of -o. */
enum cli_output {
	CLI_OUTPUT_TABLE, /* the default: text and tables */
	CLI_OUTPUT_JSON,  /* -o json */
	CLI_OUTPUT_YAML,  /* -o yaml: the same objects through yamljson_emit */
};

struct cli {
	const char *kubeconfig; /* --kubeconfig, or NULL */
	const char *context;    /* --context, or NULL */
	const char *ns;         /* -n/--namespace, or NULL: the context's */
	enum cli_output output; /* -o/--output */
	bool help;              /* -h/--help anywhere */
	bool version;           /* --version */
	int argc;               /* what remains, in order ("--" kept) */
	char **argv;            /* (array owned, strings borrowed from main's argv) */
};

/* Takes the global flags (-n NS, -nNS, --namespace[=]NS, --kubeconfig[=]F,
 * --context[=]C, -o[=]FMT, --output[=]FMT, -h, --help, --version) out of
 * ARGV[1..ARGC-1] into OUT; everything after "--" is left alone. Returns 0,
 * CLI_EUSAGE (a flag without its value, or -o other than table, wide, json
 * or yaml), or -1 when out of memory; free with cli_release(). */
int cli_parse(struct cli *out, int argc, char **argv);

/* Frees OUT's argv array. */
void cli_release(struct cli *c);

/* A command flag cli_next knows: "--NAME" with or without a value. */
struct cli_flag {
	const char *name; /* without the dashes, e.g. "timeout" */
	bool has_value;   /* takes "--NAME VALUE" or "--NAME=VALUE" */
};

/* Walks a command's arguments. */
struct cli_iter {
	int argc;
	char **argv;
	int i;                /* next argument */
	bool only_positional; /* "--" was seen */
};

/* cli_next: no arguments left. */
#define CLI_END -3

/* Reads the next argument of IT. Returns the index in FLAGS (ended by a NULL
 * name) of the flag found, its value in *VALUE (NULL for a flag without one);
 * CLI_POSITIONAL with the argument in *VALUE ("-" alone, for stdin, and
 * everything after "--" are positionals); CLI_END when none is left; or
 * CLI_EUSAGE with err_msg() for an unknown flag or a missing value. */
int cli_next(struct cli_iter *it, const struct cli_flag *flags, const char **value);

/* Builds the Remote object of `remote create` from ARGV (the arguments after
 * "create": NAME and its flags, see docs/kubectl-slipway.md) into *OUT
 * (caller frees):
 *   --deployment D          starts a deployment; later --container flags add
 *                           to the latest one
 *   --container C[=PATH]    a container built from PATH (default ".")
 *   --dockerfile F          the latest container's Dockerfile
 *   --build-arg K=V         a build argument of the latest container
 *   --registry URL, --insecure-registry, --branch B (repeatable),
 *   --deny-non-fast-forwards, --no-rollback
 *   --manifests PATH        spec.manifests.path; with it --prune, --no-wait,
 *                           --apply-timeout S (1 to 3600),
 *                           --apply-service-account SA, --helm-release R and
 *                           --helm-set NAME=VALUE (repeatable) set the other
 *                           spec.manifests fields
 * A Remote needs a --deployment with a --container, or --manifests.
 * Returns 0, CLI_EUSAGE with err_msg(), or -1 when out of memory. */
int cli_remote_object(json_t **out, int argc, char **argv);

/* Whether NAME is a DNS-1123 subdomain (an object name the API accepts). */
bool cli_is_dns_name(const char *name);

#endif
