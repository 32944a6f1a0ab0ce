/* kubectl-slipway: the kubectl plugin. `kubectl slipway ...` creates and lists
 * Remotes, manages their authorized keys, and shows, follows and waits for
 * PipelineRuns, through lib/kube. kubectl finds it on PATH by its name. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base64.h"
#include "buf.h"
#include "cli.h"
#include "clock.h"
#include "dashboard.h"
#include "duration.h"
#include "err.h"
#include "kube.h"
#include "pubkey.h"
#include "release.h"
#include "remote.h"
#include "table.h"
#include "yamljson.h"
#include "banned.h"

#define PLUGIN_VERSION "0.1.0"
#define PLUGIN_AGENT "kubectl-slipway/" PLUGIN_VERSION
#define REMOTES "slipway.dev/v1alpha1/remotes"
#define GITKUBE_REMOTES "gitkube.sh/v1alpha1/remotes" /* served the same way */
#define RUNS "slipway.dev/v1alpha1/pipelineruns"

/* Largest key file read by `key add` (an authorized_keys file of many keys). */
#define KEY_FILE_MAX (1024 * 1024)
/* Read-modify-write rounds of the key commands before giving up. */
#define KEY_RETRIES 5
/* Poll interval of `wait` when the watch cannot be used. */
#define WAIT_POLL_MS 2000

/* Exit codes, documented in the help and docs/kubectl-slipway.md. */
enum {
	EXIT_OK = 0,
	EXIT_FAIL = 1,     /* the run failed, the API refused or failed, bad input */
	EXIT_USAGE = 2,    /* bad command line */
	EXIT_NOTFOUND = 3, /* the Remote, PipelineRun, key, release or config key
	                      does not exist */
};
/* wait: the run did not finish in time; shares 2 with usage errors, so that
 * the codes stay 0-3 (a usage error comes with a "Try" line on stderr). */
#define EXIT_TIMEOUT 2

/* What every command works with. */
struct ctx {
	struct cli *cli;
	struct kube_client *c; /* connected by ctx_connect */
	const char *ns;        /* -n, or the context's namespace */
};

static const char main_help[] =
    "usage: kubectl slipway [-n NAMESPACE] [--kubeconfig FILE] [--context NAME]\n"
    "                       [-o json|yaml]\n"
    "                       COMMAND ...\n"
    "\n"
    "Slipway's kubectl plugin: git push-to-deploy Remotes, their keys, the\n"
    "PipelineRuns of their pushes, releases, rollback and config vars.\n"
    "\n"
    "commands:\n"
    "  remote create NAME --deployment D --container C=PATH ...   create a Remote\n"
    "  remote list                    Remotes: URL, readiness, keys, last run, age\n"
    "  remote url NAME                the git URL to push to\n"
    "  remote delete NAME             delete a Remote\n"
    "  key add REMOTE FILE|-          authorize an OpenSSH public key to push\n"
    "  key list REMOTE                the keys of a Remote with their fingerprints\n"
    "  key rm REMOTE FINGERPRINT      remove a key\n"
    "  runs [REMOTE]                  PipelineRuns, oldest first\n"
    "  logs RUN | --latest REMOTE     stages of a run, then its log tail\n"
    "  wait RUN | --latest REMOTE [--timeout 10m]\n"
    "                                 wait until a run succeeds or fails\n"
    "  releases REMOTE                release history: vN, commit, images, trigger\n"
    "  rollback REMOTE [vN|RUN] [--wait]\n"
    "                                 deploy an earlier release again, no build\n"
    "  config set REMOTE KEY=VALUE... [--no-restart]\n"
    "                                 set config vars (a Secret); starts a release\n"
    "  config unset REMOTE KEY...     remove config vars; starts a release\n"
    "  config get REMOTE [KEY] [--reveal]\n"
    "                                 config keys (values with --reveal)\n"
    "  dashboard [-A] [--address A] [--port N] [--no-open]\n"
    "                                 a read-only status page in the browser\n"
    "  webhooks deliveries REMOTE     the last outbound webhook deliveries\n"
    "\n"
    "global options (anywhere on the line):\n"
    "  -n, --namespace NS    namespace (default: the kubeconfig context's)\n"
    "  --kubeconfig FILE     kubeconfig (default: $KUBECONFIG, ~/.kube/config,\n"
    "                        then the in-cluster ServiceAccount)\n"
    "  --context NAME        kubeconfig context (default: current-context)\n"
    "  -o, --output FORMAT   print API objects instead of tables: json, or yaml\n"
    "                        (keys sorted, as kubectl -o yaml)\n"
    "  -h, --help            help of the command it follows\n"
    "  --version             print the version\n"
    "\n"
    "exit status:\n"
    "  0  done (wait, rollback --wait: the run succeeded)\n"
    "  1  failed: the run failed (wait, rollback --wait), the API server refused or failed,\n"
    "     bad key file, no URL yet\n"
    "  2  usage error; wait: the timeout passed before the run finished\n"
    "  3  the Remote, PipelineRun, key, release or config key does not exist\n";

static const char remote_help[] =
    "usage: kubectl slipway remote create|list|url|delete ...\n"
    "\n"
    "  remote create NAME --deployment D --container C[=PATH] [options]\n"
    "  remote list\n"
    "  remote url NAME\n"
    "  remote delete NAME\n"
    "\n"
    "Run 'kubectl slipway remote COMMAND --help' for one command.\n";

static const char remote_create_help[] =
    "usage: kubectl slipway remote create NAME --deployment D --container C[=PATH]\n"
    "           [--dockerfile F] [--build-arg K=V]... [--container ...]...\n"
    "           [--deployment D2 --container ...]... [--registry URL]\n"
    "           [--insecure-registry] [--branch B]... [--deny-non-fast-forwards]\n"
    "           [--no-rollback] [--manifests PATH [--prune] [--no-wait]\n"
    "           [--apply-timeout S] [--apply-service-account SA]\n"
    "           [--helm-release R] [--helm-set K=V]...]\n"
    "\n"
    "Creates the Remote NAME (remotes.slipway.dev). Each --deployment starts a\n"
    "Deployment of the Remote's namespace; the --container flags after it add\n"
    "its containers, each built from PATH in the repository (default \".\");\n"
    "--dockerfile and --build-arg apply to the container before them.\n"
    "\n"
    "  --registry URL           image prefix, e.g. registry.example.com/team\n"
    "  --insecure-registry      the registry speaks plain HTTP\n"
    "  --branch B               a branch that deploys (repeatable; default main,\n"
    "                           master)\n"
    "  --deny-non-fast-forwards refuse force pushes\n"
    "  --no-rollback            keep a failed rollout instead of rolling back\n"
    "  --manifests PATH         apply the Kubernetes objects in PATH of the pushed\n"
    "                           tree on every deploying push (spec.manifests);\n"
    "                           the --deployment flags may then be left out\n"
    "  --prune                  delete what an earlier push applied and PATH no\n"
    "                           longer holds\n"
    "  --no-wait                do not wait for the applied workloads\n"
    "  --apply-timeout S        longest wait for them, in seconds [300]\n"
    "  --apply-service-account SA  apply as this ServiceAccount [slipway-apply]\n"
    "  --helm-release R         PATH is a Helm chart: its release name\n"
    "  --helm-set K=V           a chart value (repeatable)\n"
    "\n"
    "example:\n"
    "  kubectl slipway remote create web --deployment web --container app=. \\\n"
    "      --registry registry.example.com/team\n"
    "  kubectl slipway remote create web --manifests deploy/k8s --prune \\\n"
    "      --deployment www --container www=. --registry registry.example.com/team\n";

static const char remote_list_help[] =
    "usage: kubectl slipway remote list [-n NS] [-o json|yaml]\n"
    "\n"
    "Lists the Remotes of the namespace: NAME, URL (status.remoteUrl, set by\n"
    "gitd), READY (the Ready condition), KEYS (authorized keys), LAST RUN\n"
    "(status.lastRun) and AGE.\n";

static const char remote_url_help[] =
    "usage: kubectl slipway remote url NAME\n"
    "\n"
    "Prints the git URL of the Remote (status.remoteUrl), e.g.\n"
    "  git remote add slipway \"$(kubectl slipway remote url web)\"\n"
    "Exits 1 when gitd has not set the URL yet, 3 when there is no such Remote.\n";

static const char remote_delete_help[] =
    "usage: kubectl slipway remote delete NAME\n"
    "\n"
    "Deletes the Remote. Its PipelineRuns and the Deployments stay.\n";

static const char key_help[] = "usage: kubectl slipway key add|list|rm ...\n"
                               "\n"
                               "  key add REMOTE FILE|-\n"
                               "  key list REMOTE\n"
                               "  key rm REMOTE FINGERPRINT\n"
                               "\n"
                               "Run 'kubectl slipway key COMMAND --help' for one command.\n";

static const char key_add_help[] =
    "usage: kubectl slipway key add REMOTE FILE|-\n"
    "\n"
    "Adds the OpenSSH public key lines of FILE (- reads stdin; blank lines and\n"
    "# comments are skipped) to the Remote's spec.authorizedKeys. A key that is\n"
    "already there is reported and left alone. Private keys are refused. The\n"
    "update is conditional on the Remote's resourceVersion and retried when\n"
    "someone else changed the Remote in between.\n"
    "\n"
    "example:\n"
    "  kubectl slipway key add web ~/.ssh/id_ed25519.pub\n";

static const char key_list_help[] =
    "usage: kubectl slipway key list REMOTE [-o json|yaml]\n"
    "\n"
    "Lists the Remote's authorized keys: FINGERPRINT (SHA256, as ssh-keygen -l\n"
    "prints it), TYPE and COMMENT.\n";

static const char key_rm_help[] =
    "usage: kubectl slipway key rm REMOTE FINGERPRINT\n"
    "\n"
    "Removes the key with FINGERPRINT (\"SHA256:...\", the prefix may be left\n"
    "out) from the Remote. Exits 3 when the Remote has no such key.\n";

static const char runs_help[] =
    "usage: kubectl slipway runs [REMOTE] [-o json|yaml]\n"
    "\n"
    "Lists PipelineRuns (of REMOTE, or all in the namespace), oldest first:\n"
    "NAME, REMOTE, REF, COMMIT, SUCCEEDED, REASON, DURATION and AGE.\n";

static const char releases_help[] =
    "usage: kubectl slipway releases REMOTE [-o json|yaml]\n"
    "\n"
    "Lists the runs of REMOTE in the order they finished: RELEASE (vN, counted\n"
    "per Remote over successful runs; a rollback shows the release it put back),\n"
    "COMMIT, IMAGES (container@short digest), PUSHER (key comment or\n"
    "fingerprint), TRIGGER, RESULT, AGE and RUN (the PipelineRun). -o prints\n"
    "the PipelineRuns. Exits 3 when the Remote does not exist.\n";

static const char rollback_help[] =
    "usage: kubectl slipway rollback REMOTE [vN|PIPELINERUN] [--wait]\n"
    "           [--timeout DURATION] [-o json|yaml]\n"
    "\n"
    "Deploys a release of REMOTE again (default: the release before the current\n"
    "one): creates a PipelineRun with spec.trigger rollback that gitd runs through\n"
    "the Remote's queue, pre-deploy hooks, the deploy of that release's images by\n"
    "digest, the rollout and post-deploy hooks, without a build. The branch does\n"
    "not move. Needs the right to create PipelineRuns (the slipway-releaser Role).\n"
    "\n"
    "  --wait              follow the run, as wait does, and exit as it does\n"
    "  --timeout DURATION  with --wait: longest wait (default 10m)\n"
    "\n"
    "exit status: 0 created (with --wait: succeeded), 1 failed, 2 usage or timed\n"
    "out, 3 no such Remote or release.\n";

static const char config_help[] = "usage: kubectl slipway config set|unset|get ...\n"
                                  "\n"
                                  "  config set REMOTE KEY=VALUE... [--no-restart]\n"
                                  "  config unset REMOTE KEY... [--no-restart]\n"
                                  "  config get REMOTE [KEY] [--reveal]\n"
                                  "\n"
                                  "Run 'kubectl slipway config COMMAND --help' for one command.\n";

static const char config_set_help[] =
    "usage: kubectl slipway config set REMOTE KEY=VALUE... [--no-restart]\n"
    "\n"
    "Stores each KEY=VALUE in the Secret REMOTE-config, which gitd wires into\n"
    "every container of the Remote's Deployments (envFrom), then starts a\n"
    "release (a PipelineRun with spec.trigger config) that rolls them once with\n"
    "hooks and rollout wait. Keys are environment variable names\n"
    "([A-Za-z_][A-Za-z0-9_]*). Values are never printed, logged or recorded\n"
    "outside the Secret. Needs Secret rights (the slipway-configurer role).\n"
    "\n"
    "  --no-restart  store only: the values take effect with the next deploy\n";

static const char config_unset_help[] =
    "usage: kubectl slipway config unset REMOTE KEY... [--no-restart]\n"
    "\n"
    "Removes each KEY from the Secret REMOTE-config, then starts a release as\n"
    "config set does (unless --no-restart).\n";

static const char config_get_help[] =
    "usage: kubectl slipway config get REMOTE [KEY] [--reveal]\n"
    "\n"
    "Prints the keys of the Secret REMOTE-config, one a line, sorted; with\n"
    "--reveal KEY=VALUE lines (with KEY: its value alone). Exits 3 when KEY is\n"
    "not set.\n";

static const char logs_help[] =
    "usage: kubectl slipway logs RUN | --latest REMOTE [-o json|yaml]\n"
    "\n"
    "Prints a PipelineRun: its outcome, each stage with its phase and duration,\n"
    "then the end of the pipeline's log (status.logTail).\n";

static const char wait_help[] =
    "usage: kubectl slipway wait RUN | --latest REMOTE [--timeout DURATION]\n"
    "           [-o json|yaml]\n"
    "\n"
    "Waits until the PipelineRun's Succeeded condition is True or False, with a\n"
    "watch on the run (polling when watching is not allowed).\n"
    "\n"
    "  --latest REMOTE     the newest run of REMOTE\n"
    "  --timeout DURATION  longest wait, e.g. 90s, 10m, 1h (default 10m)\n"
    "  -o json|yaml        print the finished run\n"
    "\n"
    "exit status: 0 succeeded, 1 failed (reason and message on stderr),\n"
    "2 timed out, 3 no such run.\n";

static const char webhooks_help[] = "usage: kubectl slipway webhooks deliveries REMOTE\n"
                                    "\n"
                                    "  webhooks deliveries REMOTE\n";

static const char webhooks_deliveries_help[] =
    "usage: kubectl slipway webhooks deliveries REMOTE [-o json|yaml]\n"
    "\n"
    "Lists the last outbound webhook deliveries of REMOTE (spec.webhooks[]),\n"
    "newest first, from the ConfigMap REMOTE-webhook-deliveries gitd keeps:\n"
    "DELIVERY, EVENT, HOST, STATUS (the last HTTP status, 0 when none), ATTEMPTS,\n"
    "DURATION, AGE and ERROR. -o prints the entries as stored.\n"
    "Exits 3 when the Remote does not exist.\n";

static int usage_error(const char *msg, const char *help_cmd)
{
	fprintf(stderr, "kubectl-slipway: %s\nTry 'kubectl slipway %s--help'.\n", msg, help_cmd);
	return EXIT_USAGE;
}

/* Prints the first-cause error of a failed API call on WHAT and returns the
 * exit code for RET. */
static int api_fail(int ret, const char *what)
{
	if (ret == KUBE_ENOTFOUND) {
		fprintf(stderr, "kubectl-slipway: %s not found\n", what);
		return EXIT_NOTFOUND;
	}
	fprintf(stderr, "kubectl-slipway: %s: %s\n", what, err_msg());
	return EXIT_FAIL;
}

static int ctx_connect(struct ctx *x)
{
	const struct kube_client_opts opts = {.max_retries = 3, .user_agent = PLUGIN_AGENT};
	struct kube_config cfg;

	kube_config_init(&cfg);
	if (kube_config_load_default(&cfg, x->cli->kubeconfig, x->cli->context) < 0 ||
	    kube_client_new(&x->c, &cfg, &opts) < 0) {
		fprintf(stderr, "kubectl-slipway: %s\n", err_msg());
		kube_config_release(&cfg);
		return EXIT_FAIL;
	}
	x->ns = x->cli->ns ? x->cli->ns : kube_client_namespace(x->c);
	return EXIT_OK;
}

/* Prints OBJ (NULL: it could not be built) as -o asked: JSON with a 4-space
 * indent in the API server's key order, or YAML with sorted keys as
 * kubectl -o yaml prints it. Returns EXIT_OK, or EXIT_FAIL with a message. */
static int print_object(const struct ctx *x, const json_t *obj)
{
	char *yaml = NULL;

	if (!obj) {
		fprintf(stderr, "kubectl-slipway: out of memory\n");
		return EXIT_FAIL;
	}
	if (x->cli->output == CLI_OUTPUT_YAML) {
		if (yamljson_emit(&yaml, obj) < 0) {
			fprintf(stderr, "kubectl-slipway: %s\n", err_msg());
			return EXIT_FAIL;
		}
		fputs(yaml, stdout);
		free(yaml);
		return EXIT_OK;
	}
	json_dumpf(obj, stdout, JSON_INDENT(4) | JSON_PRESERVE_ORDER);
	fputc('\n', stdout);
	return EXIT_OK;
}

static const char *str_at(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

static const char *meta_str(const json_t *obj, const char *key)
{
	return str_at(json_object_get(obj, "metadata"), key);
}

/* The condition TYPE of OBJ's status.conditions (borrowed), or NULL. */
static const json_t *condition(const json_t *obj, const char *type)
{
	const json_t *c;
	size_t i;

	json_array_foreach(json_object_get(json_object_get(obj, "status"), "conditions"), i, c)
	{
		const char *t = str_at(c, "type");

		if (t && !strcmp(t, type))
			return c;
	}
	return NULL;
}

static int print_table(const struct table *t)
{
	struct buf out;
	int ret;

	buf_init(&out, 64 * 1024 * 1024);
	ret = table_render(&out, t);
	if (ret == 0)
		fwrite(buf_str(&out), 1, out.len, stdout);
	else
		fprintf(stderr, "kubectl-slipway: %s\n", err_msg());
	buf_release(&out);
	return ret < 0 ? EXIT_FAIL : EXIT_OK;
}

/* Reads the single positional NAME of a command taking no flags but its
 * own (FLAGS may be NULL); HELP_CMD names it in usage errors. */
static int one_name(const char **name, int argc, char **argv, const char *what,
                    const char *help_cmd)
{
	struct cli_iter it = {.argc = argc, .argv = argv};
	const char *v;
	int f;

	*name = NULL;
	while ((f = cli_next(&it, NULL, &v)) != CLI_END) {
		if (f == CLI_EUSAGE)
			return usage_error(err_msg(), help_cmd);
		if (*name) {
			fprintf(stderr, "kubectl-slipway: unexpected argument \"%s\"\n", v);
			return usage_error("one name only", help_cmd);
		}
		*name = v;
	}
	if (!*name) {
		char msg[128];

		snprintf(msg, sizeof(msg), "missing %s", what);
		return usage_error(msg, help_cmd);
	}
	return EXIT_OK;
}

/* --- remote -------------------------------------------------------------- */

static int cmd_remote_create(struct ctx *x, int argc, char **argv)
{
	json_t *obj = NULL, *created = NULL;
	struct remote r;
	char what[600];
	int ret, rc;

	ret = cli_remote_object(&obj, argc, argv);
	if (ret == CLI_EUSAGE)
		return usage_error(err_msg(), "remote create ");
	if (ret < 0) {
		fprintf(stderr, "kubectl-slipway: %s\n", err_msg());
		return EXIT_FAIL;
	}
	rc = ctx_connect(x);
	if (rc != EXIT_OK)
		goto out;
	snprintf(what, sizeof(what), "remote %s/%s", x->ns, meta_str(obj, "name"));
	/* what gitd would refuse is refused here, with the field named */
	if (json_object_set_new(json_object_get(obj, "metadata"), "namespace", json_string(x->ns)) <
	    0) {
		rc = api_fail(err_set("out of memory"), what);
		goto out;
	}
	if (remote_parse(&r, obj, false) < 0) {
		char msg[ERR_MAX + 16];

		snprintf(msg, sizeof(msg), "%s", err_msg());
		rc = usage_error(msg, "remote create ");
		goto out;
	}
	remote_release(&r);
	ret = kube_create(&created, x->c, REMOTES, x->ns, obj);
	if (ret == KUBE_EEXISTS) {
		fprintf(stderr, "kubectl-slipway: %s already exists\n", what);
		rc = EXIT_FAIL;
	} else if (ret < 0) {
		rc = api_fail(ret, what);
	} else if (x->cli->output != CLI_OUTPUT_TABLE) {
		rc = print_object(x, created);
	} else {
		printf("remote.slipway.dev/%s created\n", meta_str(created, "name"));
	}
out:
	json_decref(created);
	json_decref(obj);
	return rc;
}

/* status.lastRun: an object {name, succeeded, ...} as gitd writes it. */
static const char *last_run_name(const json_t *remote)
{
	const json_t *lr = json_object_get(json_object_get(remote, "status"), "lastRun");

	return json_is_string(lr) ? json_string_value(lr) : str_at(lr, "name");
}

static int cmd_remote_list(struct ctx *x, int argc, char **argv)
{
	static const char *const headers[] = {"NAME", "URL", "READY", "KEYS", "LAST RUN", "AGE"};
	struct cli_iter it = {.argc = argc, .argv = argv};
	json_t *list = NULL, *item;
	struct table t;
	const char *v;
	size_t i;
	int f, ret, rc;

	if ((f = cli_next(&it, NULL, &v)) != CLI_END)
		return usage_error(f == CLI_EUSAGE ? err_msg() : "remote list takes no arguments",
		                   "remote list ");
	rc = ctx_connect(x);
	if (rc != EXIT_OK)
		return rc;
	ret = kube_list(&list, x->c, REMOTES, x->ns, NULL);
	if (ret < 0)
		return api_fail(ret, "list remotes");
	if (x->cli->output != CLI_OUTPUT_TABLE) {
		rc = print_object(x, list);
		json_decref(list);
		return rc;
	}
	table_init(&t, 6, headers);
	json_array_foreach(json_object_get(list, "items"), i, item)
	{
		const json_t *status = json_object_get(item, "status");
		char keys[32] = "-", age[32];
		const char *cells[6];
		struct remote r;

		/* a malformed Remote is listed too, its keys uncounted */
		if (remote_parse(&r, item, false) == 0)
			snprintf(keys, sizeof(keys), "%zu", r.nauthorized_keys);
		remote_release(&r);
		table_age(age, sizeof(age), meta_str(item, "creationTimestamp"), time(NULL));
		cells[0] = meta_str(item, "name");
		cells[1] = str_at(status, "remoteUrl");
		cells[2] = str_at(condition(item, "Ready"), "status");
		cells[3] = keys;
		cells[4] = last_run_name(item);
		cells[5] = age;
		if (table_add(&t, cells) < 0) {
			rc = EXIT_FAIL;
			fprintf(stderr, "kubectl-slipway: %s\n", err_msg());
			break;
		}
	}
	if (rc == EXIT_OK) {
		if (!t.nrows)
			fprintf(stderr, "No remotes found in %s namespace.\n", x->ns);
		else
			rc = print_table(&t);
	}
	table_release(&t);
	json_decref(list);
	return rc;
}

static int cmd_remote_url(struct ctx *x, int argc, char **argv)
{
	json_t *r = NULL;
	const char *name, *url;
	char what[600];
	int ret, rc;

	rc = one_name(&name, argc, argv, "remote NAME", "remote url ");
	if (rc != EXIT_OK || (rc = ctx_connect(x)) != EXIT_OK)
		return rc;
	snprintf(what, sizeof(what), "remote %s/%s", x->ns, name);
	ret = kube_get(&r, x->c, REMOTES, x->ns, name);
	if (ret < 0)
		return api_fail(ret, what);
	url = str_at(json_object_get(r, "status"), "remoteUrl");
	if (!url || !*url) {
		fprintf(stderr,
		        "kubectl-slipway: %s has no URL yet: gitd has not set status.remoteUrl "
		        "(is gitd running and watching namespace %s?)\n",
		        what, x->ns);
		rc = EXIT_FAIL;
	} else if (x->cli->output != CLI_OUTPUT_TABLE) {
		json_t *o = json_pack("{s:s, s:s, s:s}", "namespace", x->ns, "name", name,
		                      "remoteUrl", url);

		rc = print_object(x, o);
		json_decref(o);
	} else {
		printf("%s\n", url);
	}
	json_decref(r);
	return rc;
}

static int cmd_remote_delete(struct ctx *x, int argc, char **argv)
{
	const char *name;
	char what[600];
	int ret, rc;

	rc = one_name(&name, argc, argv, "remote NAME", "remote delete ");
	if (rc != EXIT_OK || (rc = ctx_connect(x)) != EXIT_OK)
		return rc;
	snprintf(what, sizeof(what), "remote %s/%s", x->ns, name);
	ret = kube_delete(NULL, x->c, REMOTES, x->ns, name, NULL);
	if (ret < 0)
		return api_fail(ret, what);
	printf("remote.slipway.dev/%s deleted\n", name);
	return EXIT_OK;
}

/* --- key ----------------------------------------------------------------- */

/* Reads PATH ("-": stdin) into OUT. */
static int read_key_file(struct buf *out, const char *path)
{
	FILE *f = strcmp(path, "-") ? fopen(path, "r") : stdin;
	char chunk[4096];
	size_t n;
	int ret = 0;

	if (!f)
		return err_set("cannot open %s: %s", path, strerror(errno));
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		if (buf_add(out, chunk, n) < 0) {
			ret = err_set("%s: larger than %d bytes", path, KEY_FILE_MAX);
			break;
		}
	if (!ret && ferror(f))
		ret = err_set("cannot read %s: %s", path, strerror(errno));
	if (f != stdin)
		fclose(f);
	return ret;
}

/* Parses the key lines of TEXT into KEYS (at most MAX, deduplicated by
 * fingerprint); *N gets the count. Prints the error itself. */
static int parse_key_lines(struct pubkey *keys, size_t max, size_t *n, const struct buf *text,
                           const char *path)
{
	const char *p = buf_str(text), *end = p + text->len;
	const char *label = strcmp(path, "-") ? path : "stdin";
	size_t lineno = 0;

	*n = 0;
	if (pubkey_is_private(p, text->len)) {
		fprintf(stderr,
		        "kubectl-slipway: %s holds a private key; give the public key instead "
		        "(e.g. %s.pub)\n",
		        label, strcmp(path, "-") ? path : "~/.ssh/id_ed25519");
		return EXIT_FAIL;
	}
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p)), *s = p;
		size_t len = (size_t)((nl ? nl : end) - p);
		bool dup = false;

		p = nl ? nl + 1 : end;
		lineno++;
		while (len && (*s == ' ' || *s == '\t' || *s == '\r'))
			s++, len--;
		if (!len || *s == '#' || (len == 1 && *s == '\r'))
			continue;
		if (*n == max) {
			fprintf(stderr, "kubectl-slipway: %s: more than %zu keys\n", label, max);
			return EXIT_FAIL;
		}
		if (pubkey_parse(&keys[*n], s, len) < 0) {
			fprintf(stderr, "kubectl-slipway: %s line %zu: %s\n", label, lineno,
			        err_msg());
			return EXIT_FAIL;
		}
		for (size_t i = 0; i < *n; i++)
			dup = dup || !strcmp(keys[i].fingerprint, keys[*n].fingerprint);
		if (dup)
			pubkey_release(&keys[*n]);
		else
			(*n)++;
	}
	if (!*n) {
		fprintf(stderr, "kubectl-slipway: %s: no public key found\n", label);
		return EXIT_FAIL;
	}
	return EXIT_OK;
}

/* Merge-patches spec.authorizedKeys of REMOTE to KEYS, only if the Remote is
 * still at resourceVersion RV (else KUBE_ECONFLICT). */
static int patch_keys(struct ctx *x, const char *remote, const char *rv, json_t *keys)
{
	json_t *patch = json_pack("{s:{s:s}, s:{s:O}}", "metadata", "resourceVersion", rv, "spec",
	                          "authorizedKeys", keys);
	int ret;

	if (!patch)
		return err_set("out of memory");
	ret = kube_patch(NULL, x->c, REMOTES, x->ns, remote, KUBE_PATCH_MERGE, patch, NULL);
	json_decref(patch);
	return ret;
}

/* The fingerprint of an authorizedKeys line into FP, or "" when it does not
 * parse; TYPE and COMMENT (may be NULL) as pubkey_parse. */
static void line_key(struct pubkey *k, const char *line)
{
	if (pubkey_parse(k, line, strlen(line)) < 0) {
		snprintf(k->type, sizeof(k->type), "%.*s", (int)strcspn(line, " \t"), line);
		k->fingerprint[0] = '\0';
	}
}

static int cmd_key_add(struct ctx *x, int argc, char **argv)
{
	struct cli_iter it = {.argc = argc, .argv = argv};
	struct pubkey keys[256];
	const char *remote = NULL, *path = NULL, *v;
	json_t *r = NULL, *list = NULL;
	bool is_new[256];
	struct buf text;
	size_t n = 0, added = 0;
	char what[600];
	int f, ret, rc = EXIT_OK;

	while ((f = cli_next(&it, NULL, &v)) != CLI_END) {
		if (f == CLI_EUSAGE)
			return usage_error(err_msg(), "key add ");
		if (!remote)
			remote = v;
		else if (!path)
			path = v;
		else
			return usage_error("key add takes REMOTE and one FILE", "key add ");
	}
	if (!path)
		return usage_error(remote ? "missing FILE (or - for stdin)" : "missing REMOTE",
		                   "key add ");
	buf_init(&text, KEY_FILE_MAX);
	if (read_key_file(&text, path) < 0) {
		fprintf(stderr, "kubectl-slipway: %s\n", err_msg());
		buf_release(&text);
		return EXIT_FAIL;
	}
	rc = parse_key_lines(keys, sizeof(keys) / sizeof(keys[0]), &n, &text, path);
	buf_release(&text);
	if (rc != EXIT_OK || (rc = ctx_connect(x)) != EXIT_OK)
		goto out;
	snprintf(what, sizeof(what), "remote %s/%s", x->ns, remote);
	for (int round = 0;; round++) {
		const json_t *have = NULL, *line;
		size_t i;

		json_decref(r);
		json_decref(list);
		r = list = NULL;
		ret = kube_get(&r, x->c, REMOTES, x->ns, remote);
		if (ret < 0) {
			rc = api_fail(ret, what);
			goto out;
		}
		have = json_object_get(json_object_get(r, "spec"), "authorizedKeys");
		list = json_is_array(have) ? json_copy((json_t *)have) : json_array();
		if (!list) {
			rc = api_fail(err_set("out of memory"), what);
			goto out;
		}
		added = 0;
		for (size_t k = 0; k < n; k++) {
			is_new[k] = true;
			json_array_foreach(have, i, line)
			{
				struct pubkey hk;

				line_key(&hk,
				         json_string_value(line) ? json_string_value(line) : "");
				if (hk.fingerprint[0] &&
				    !strcmp(hk.fingerprint, keys[k].fingerprint))
					is_new[k] = false;
				pubkey_release(&hk);
			}
			if (is_new[k]) {
				if (json_array_append_new(list, json_string(keys[k].line)) < 0) {
					rc = api_fail(err_set("out of memory"), what);
					goto out;
				}
				added++;
			}
		}
		if (!added)
			break;
		if (json_array_size(list) > REMOTE_KEYS_MAX) {
			fprintf(stderr, "kubectl-slipway: %s would have %zu keys, at most %d\n",
			        what, json_array_size(list), REMOTE_KEYS_MAX);
			rc = EXIT_FAIL;
			goto out;
		}
		ret = patch_keys(x, remote, meta_str(r, "resourceVersion"), list);
		if (ret == KUBE_ECONFLICT && round + 1 < KEY_RETRIES)
			continue;
		if (ret < 0) {
			rc = api_fail(ret, what);
			goto out;
		}
		break;
	}
	for (size_t k = 0; k < n; k++) {
		const char *c = keys[k].comment;

		if (is_new[k])
			printf("key %s%s%s%s added to %s\n", keys[k].fingerprint, *c ? " (" : "", c,
			       *c ? ")" : "", what);
		else
			printf("key %s%s%s%s is already authorized on %s\n", keys[k].fingerprint,
			       *c ? " (" : "", c, *c ? ")" : "", what);
	}
out:
	for (size_t k = 0; k < n; k++)
		pubkey_release(&keys[k]);
	json_decref(list);
	json_decref(r);
	return rc;
}

static int cmd_key_list(struct ctx *x, int argc, char **argv)
{
	static const char *const headers[] = {"FINGERPRINT", "TYPE", "COMMENT"};
	json_t *r = NULL, *out = NULL;
	struct remote rm = {0};
	const char *remote;
	struct table t;
	char what[600];
	int ret, rc;

	rc = one_name(&remote, argc, argv, "REMOTE", "key list ");
	if (rc != EXIT_OK || (rc = ctx_connect(x)) != EXIT_OK)
		return rc;
	snprintf(what, sizeof(what), "remote %s/%s", x->ns, remote);
	ret = kube_get(&r, x->c, REMOTES, x->ns, remote);
	if (ret < 0)
		return api_fail(ret, what);
	table_init(&t, 3, headers);
	if (remote_parse(&rm, r, false) < 0) {
		fprintf(stderr, "kubectl-slipway: %s: %s\n", what, err_msg());
		rc = EXIT_FAIL;
		goto out;
	}
	out = json_array();
	for (size_t i = 0; i < rm.nauthorized_keys; i++) {
		const char *s = rm.authorized_keys[i];
		struct pubkey k;
		const char *cells[3];

		line_key(&k, s);
		cells[0] = k.fingerprint[0] ? k.fingerprint : "<invalid>";
		cells[1] = k.type;
		cells[2] = k.comment;
		if (table_add(&t, cells) < 0 || !out ||
		    json_array_append_new(out, json_pack("{s:s, s:s, s:s}", "fingerprint", cells[0],
		                                         "type", k.type, "comment", k.comment)) <
		        0) {
			pubkey_release(&k);
			rc = api_fail(err_set_if_empty("out of memory"), what);
			goto out;
		}
		pubkey_release(&k);
	}
	if (x->cli->output != CLI_OUTPUT_TABLE)
		rc = print_object(x, out);
	else if (!t.nrows)
		fprintf(stderr, "No keys on %s.\n", what);
	else
		rc = print_table(&t);
out:
	remote_release(&rm);
	table_release(&t);
	json_decref(out);
	json_decref(r);
	return rc;
}

static int cmd_key_rm(struct ctx *x, int argc, char **argv)
{
	struct cli_iter it = {.argc = argc, .argv = argv};
	const char *remote = NULL, *fp = NULL, *v;
	json_t *r = NULL, *list = NULL;
	char what[600];
	int f, ret, rc;

	while ((f = cli_next(&it, NULL, &v)) != CLI_END) {
		if (f == CLI_EUSAGE)
			return usage_error(err_msg(), "key rm ");
		if (!remote)
			remote = v;
		else if (!fp)
			fp = v;
		else
			return usage_error("key rm takes REMOTE and one FINGERPRINT", "key rm ");
	}
	if (!fp)
		return usage_error(remote ? "missing FINGERPRINT" : "missing REMOTE", "key rm ");
	if ((rc = ctx_connect(x)) != EXIT_OK)
		return rc;
	snprintf(what, sizeof(what), "remote %s/%s", x->ns, remote);
	for (int round = 0;; round++) {
		const json_t *have, *line;
		size_t i, removed = 0;

		json_decref(r);
		json_decref(list);
		r = NULL;
		list = json_array();
		ret = kube_get(&r, x->c, REMOTES, x->ns, remote);
		if (ret < 0 || !list) {
			rc = api_fail(ret < 0 ? ret : err_set("out of memory"), what);
			goto out;
		}
		have = json_object_get(json_object_get(r, "spec"), "authorizedKeys");
		json_array_foreach(have, i, line)
		{
			struct pubkey k;

			line_key(&k, json_string_value(line) ? json_string_value(line) : "");
			if (k.fingerprint[0] && pubkey_fingerprint_matches(fp, k.fingerprint))
				removed++;
			else if (json_array_append(list, (json_t *)line) < 0)
				rc = EXIT_FAIL;
			pubkey_release(&k);
		}
		if (rc != EXIT_OK) {
			rc = api_fail(err_set("out of memory"), what);
			goto out;
		}
		if (!removed) {
			fprintf(stderr, "kubectl-slipway: %s has no key %s\n", what, fp);
			rc = EXIT_NOTFOUND;
			goto out;
		}
		ret = patch_keys(x, remote, meta_str(r, "resourceVersion"), list);
		if (ret == KUBE_ECONFLICT && round + 1 < KEY_RETRIES)
			continue;
		if (ret < 0) {
			rc = api_fail(ret, what);
			goto out;
		}
		break;
	}
	printf("key %s%s removed from %s\n", strncmp(fp, "SHA256:", 7) ? "SHA256:" : "", fp, what);
out:
	json_decref(list);
	json_decref(r);
	return rc;
}

/* --- runs ---------------------------------------------------------------- */

static int by_creation(const void *a, const void *b)
{
	const json_t *x = *(const json_t *const *)a, *y = *(const json_t *const *)b;
	const char *tx = meta_str(x, "creationTimestamp"), *ty = meta_str(y, "creationTimestamp");
	time_t ax = 0, ay = 0;
	int c;

	clock_parse_rfc3339(&ax, tx);
	clock_parse_rfc3339(&ay, ty);
	if (ax != ay)
		return ax < ay ? -1 : 1;
	c = strcmp(meta_str(x, "name") ? meta_str(x, "name") : "",
	           meta_str(y, "name") ? meta_str(y, "name") : "");
	return c;
}

/* Lists the PipelineRuns of REMOTE (NULL: all) into *OUT, a List sorted by
 * creation (oldest first). Prints its own error and returns the exit code. */
static int list_runs(json_t **out, struct ctx *x, const char *remote)
{
	json_t *list = NULL, *items, *item, *sorted = NULL, **v = NULL;
	size_t i, n = 0;
	char what[600];
	int ret, rc = EXIT_OK;

	*out = NULL;
	if (remote) {
		snprintf(what, sizeof(what), "remote %s/%s", x->ns, remote);
		ret = kube_get(NULL, x->c, REMOTES, x->ns, remote);
		if (ret == KUBE_ENOTFOUND)
			ret = kube_get(NULL, x->c, GITKUBE_REMOTES, x->ns, remote);
		if (ret < 0)
			return api_fail(ret, what);
	}
	ret = kube_list(&list, x->c, RUNS, x->ns, NULL);
	if (ret < 0)
		return api_fail(ret, "list pipelineruns");
	items = json_object_get(list, "items");
	v = calloc(json_array_size(items) + 1, sizeof(*v));
	sorted =
	    json_pack("{s:s, s:s, s:{s:s?}, s:[]}", "apiVersion", "v1", "kind", "List", "metadata",
	              "resourceVersion", meta_str(list, "resourceVersion"), "items");
	if (!v || !sorted) {
		rc = api_fail(err_set("out of memory"), "list pipelineruns");
		goto out;
	}
	json_array_foreach(items, i, item)
	{
		const char *r = str_at(json_object_get(item, "spec"), "remote");

		if (!remote || (r && !strcmp(r, remote)))
			v[n++] = item;
	}
	qsort(v, n, sizeof(*v), by_creation);
	for (i = 0; i < n; i++)
		if (json_array_append(json_object_get(sorted, "items"), v[i]) < 0) {
			rc = api_fail(err_set("out of memory"), "list pipelineruns");
			goto out;
		}
	*out = sorted;
	sorted = NULL;
out:
	free(v);
	json_decref(sorted);
	json_decref(list);
	return rc;
}

/* "refs/heads/main" -> "main", "refs/tags/v1" -> "v1". */
static const char *short_ref(const char *ref)
{
	if (ref && !strncmp(ref, "refs/heads/", 11))
		return ref + 11;
	if (ref && !strncmp(ref, "refs/tags/", 10))
		return ref + 10;
	return ref;
}

static int cmd_runs(struct ctx *x, int argc, char **argv)
{
	static const char *const headers[] = {"NAME",      "REMOTE", "REF",      "COMMIT",
	                                      "SUCCEEDED", "REASON", "DURATION", "AGE"};
	struct cli_iter it = {.argc = argc, .argv = argv};
	const char *remote = NULL, *v;
	json_t *list = NULL, *item;
	struct table t;
	time_t now = time(NULL);
	size_t i;
	int f, rc;

	while ((f = cli_next(&it, NULL, &v)) != CLI_END) {
		if (f == CLI_EUSAGE)
			return usage_error(err_msg(), "runs ");
		if (remote)
			return usage_error("runs takes at most one REMOTE", "runs ");
		remote = v;
	}
	if ((rc = ctx_connect(x)) != EXIT_OK || (rc = list_runs(&list, x, remote)) != EXIT_OK)
		return rc;
	if (x->cli->output != CLI_OUTPUT_TABLE) {
		rc = print_object(x, list);
		json_decref(list);
		return rc;
	}
	table_init(&t, 8, headers);
	json_array_foreach(json_object_get(list, "items"), i, item)
	{
		const json_t *spec = json_object_get(item, "spec");
		const json_t *status = json_object_get(item, "status");
		const json_t *cond = condition(item, "Succeeded");
		const char *after = str_at(spec, "after");
		char commit[8] = "", dur[32], age[32];
		const char *cells[8];

		snprintf(commit, sizeof(commit), "%.7s", after ? after : "");
		table_span(dur, sizeof(dur), str_at(status, "startTime"),
		           str_at(status, "completionTime"), now);
		table_age(age, sizeof(age), meta_str(item, "creationTimestamp"), now);
		cells[0] = meta_str(item, "name");
		cells[1] = str_at(spec, "remote");
		cells[2] = short_ref(str_at(spec, "ref"));
		cells[3] = commit;
		cells[4] = str_at(cond, "status");
		cells[5] = str_at(cond, "reason");
		cells[6] = dur;
		cells[7] = age;
		if (table_add(&t, cells) < 0) {
			fprintf(stderr, "kubectl-slipway: %s\n", err_msg());
			rc = EXIT_FAIL;
			break;
		}
	}
	if (rc == EXIT_OK) {
		if (!t.nrows)
			fprintf(stderr, "No pipelineruns found in %s namespace.\n", x->ns);
		else
			rc = print_table(&t);
	}
	table_release(&t);
	json_decref(list);
	return rc;
}

/* Resolves the RUN or --latest REMOTE arguments of logs and wait into *NAME
 * (borrowed from ARGV, or from *HOLD which the caller frees). */
static int run_name(struct ctx *x, const char **name, json_t **hold, const char *latest)
{
	json_t *list = NULL, *items;
	int rc;

	*hold = NULL;
	if (!latest)
		return EXIT_OK;
	rc = list_runs(&list, x, latest);
	if (rc != EXIT_OK)
		return rc;
	items = json_object_get(list, "items");
	if (!json_array_size(items)) {
		fprintf(stderr, "kubectl-slipway: remote %s/%s has no pipelineruns\n", x->ns,
		        latest);
		json_decref(list);
		return EXIT_NOTFOUND;
	}
	*name = meta_str(json_array_get(items, json_array_size(items) - 1), "name");
	*hold = list;
	return EXIT_OK;
}

static int cmd_logs(struct ctx *x, int argc, char **argv)
{
	static const char *const headers[] = {"STAGE", "PHASE", "DURATION", "MESSAGE"};
	static const struct cli_flag flags[] = {{"latest", true}, {NULL, false}};
	struct cli_iter it = {.argc = argc, .argv = argv};
	const char *name = NULL, *latest = NULL, *v, *tail;
	json_t *run = NULL, *hold = NULL, *stage;
	const json_t *spec, *status, *cond;
	time_t now = time(NULL);
	struct table t;
	char what[600], dur[32];
	size_t i;
	int f, ret, rc;

	while ((f = cli_next(&it, flags, &v)) != CLI_END) {
		if (f == CLI_EUSAGE)
			return usage_error(err_msg(), "logs ");
		if (f == 0 ? latest || name : name || latest)
			return usage_error("logs takes one RUN or --latest REMOTE", "logs ");
		if (f == 0)
			latest = v;
		else
			name = v;
	}
	if (!name && !latest)
		return usage_error("missing RUN (or --latest REMOTE)", "logs ");
	if ((rc = ctx_connect(x)) != EXIT_OK || (rc = run_name(x, &name, &hold, latest)) != EXIT_OK)
		return rc;
	snprintf(what, sizeof(what), "pipelinerun %s/%s", x->ns, name);
	ret = kube_get(&run, x->c, RUNS, x->ns, name);
	if (ret < 0) {
		rc = api_fail(ret, what);
		goto out;
	}
	if (x->cli->output != CLI_OUTPUT_TABLE) {
		rc = print_object(x, run);
		goto out;
	}
	spec = json_object_get(run, "spec");
	status = json_object_get(run, "status");
	cond = condition(run, "Succeeded");
	table_span(dur, sizeof(dur), str_at(status, "startTime"), str_at(status, "completionTime"),
	           now);
	printf("PipelineRun: %s\n", name);
	printf("Remote:      %s\n", str_at(spec, "remote") ? str_at(spec, "remote") : "");
	printf("Ref:         %s\n", str_at(spec, "ref") ? str_at(spec, "ref") : "");
	printf("Commit:      %s\n", str_at(spec, "after") ? str_at(spec, "after") : "");
	printf("Succeeded:   %s", str_at(cond, "status") ? str_at(cond, "status") : "Unknown");
	if (str_at(cond, "reason") && *str_at(cond, "reason"))
		printf(" (%s)", str_at(cond, "reason"));
	if (str_at(cond, "message") && *str_at(cond, "message"))
		printf(": %s", str_at(cond, "message"));
	printf("\nDuration:    %s\n", *dur ? dur : "<none>");
	table_init(&t, 4, headers);
	json_array_foreach(json_object_get(status, "stages"), i, stage)
	{
		const char *cells[4];
		char sdur[32];

		table_span(sdur, sizeof(sdur), str_at(stage, "startTime"),
		           str_at(stage, "completionTime"), now);
		cells[0] = str_at(stage, "name");
		cells[1] = str_at(stage, "phase");
		cells[2] = sdur;
		cells[3] = str_at(stage, "message") ? str_at(stage, "message") : "";
		if (table_add(&t, cells) < 0) {
			fprintf(stderr, "kubectl-slipway: %s\n", err_msg());
			rc = EXIT_FAIL;
			break;
		}
	}
	if (rc == EXIT_OK && t.nrows) {
		printf("\n");
		fflush(stdout);
		rc = print_table(&t);
	}
	table_release(&t);
	tail = str_at(status, "logTail");
	if (rc == EXIT_OK && tail && *tail) {
		size_t n = strlen(tail);

		printf("\nLog:\n%s%s", tail, tail[n - 1] == '\n' ? "" : "\n");
	}
out:
	json_decref(run);
	json_decref(hold);
	return rc;
}

/* --- wait ---------------------------------------------------------------- */

/* What the watch of `wait` found. */
enum wait_outcome {
	WAIT_SUCCEEDED = 1,
	WAIT_FAILED,
	WAIT_DELETED,
	WAIT_NOTFOUND,
};

struct wait_state {
	const char *name;
	bool seen;   /* the run was listed or added */
	json_t *obj; /* the run when it finished (owned) */
};

/* The outcome the run OBJ reached, or 0 while it runs. */
static int run_outcome(const json_t *obj)
{
	const char *s = str_at(condition(obj, "Succeeded"), "status");

	if (s && !strcmp(s, "True"))
		return WAIT_SUCCEEDED;
	if (s && !strcmp(s, "False"))
		return WAIT_FAILED;
	return 0;
}

static int wait_event(void *arg, enum kube_event ev, json_t *obj)
{
	struct wait_state *w = arg;
	const char *name = obj ? meta_str(obj, "name") : NULL;
	int outcome;

	if (ev == KUBE_EVENT_SYNCED)
		return w->seen ? 0 : WAIT_NOTFOUND;
	if (!name || strcmp(name, w->name))
		return 0;
	if (ev == KUBE_EVENT_DELETED)
		return WAIT_DELETED;
	if (ev == KUBE_EVENT_BOOKMARK)
		return 0;
	w->seen = true;
	outcome = run_outcome(obj);
	if (outcome) {
		json_decref(w->obj);
		w->obj = json_incref(obj);
	}
	return outcome;
}

/* Polls the run every WAIT_POLL_MS until it finishes or DEADLINE passes. */
static int wait_poll(struct ctx *x, struct wait_state *w, long long deadline)
{
	for (;;) {
		json_t *obj = NULL;
		int ret = kube_get(&obj, x->c, RUNS, x->ns, w->name), outcome;

		if (ret == KUBE_ENOTFOUND)
			return w->seen ? WAIT_DELETED : WAIT_NOTFOUND;
		if (ret < 0)
			return ret;
		w->seen = true;
		outcome = run_outcome(obj);
		if (outcome) {
			w->obj = obj;
			return outcome;
		}
		json_decref(obj);
		if (clock_now_ms() + WAIT_POLL_MS > deadline)
			return KUBE_ETIMEOUT;
		usleep(WAIT_POLL_MS * 1000);
	}
}

static int follow_run(struct ctx *x, const char *name, const char *timeout, long long deadline);

static int cmd_wait(struct ctx *x, int argc, char **argv)
{
	static const struct cli_flag flags[] = {{"latest", true}, {"timeout", true}, {NULL, false}};
	struct cli_iter it = {.argc = argc, .argv = argv};
	const char *name = NULL, *latest = NULL, *timeout = "10m", *v;
	json_t *hold = NULL;
	long timeout_ms;
	long long deadline;
	int f, rc;

	while ((f = cli_next(&it, flags, &v)) != CLI_END) {
		if (f == CLI_EUSAGE)
			return usage_error(err_msg(), "wait ");
		if (f == 1) {
			timeout = v;
			continue;
		}
		if (name || latest)
			return usage_error("wait takes one RUN or --latest REMOTE", "wait ");
		if (f == 0)
			latest = v;
		else
			name = v;
	}
	if (!name && !latest)
		return usage_error("missing RUN (or --latest REMOTE)", "wait ");
	timeout_ms = duration_parse_ms(timeout);
	if (timeout_ms <= 0)
		return usage_error("invalid --timeout (e.g. 90s, 10m, 1h)", "wait ");
	deadline = clock_now_ms() + timeout_ms;
	if ((rc = ctx_connect(x)) != EXIT_OK || (rc = run_name(x, &name, &hold, latest)) != EXIT_OK)
		return rc;
	rc = follow_run(x, name, timeout, deadline);
	json_decref(hold);
	return rc;
}

/* Follows run NAME until it finishes or DEADLINE (clock_now_ms) passes,
 * prints the outcome as `wait` does and returns wait's exit code. TIMEOUT
 * is the duration as given, for the message. */
static int follow_run(struct ctx *x, const char *name, const char *timeout, long long deadline)
{
	struct wait_state w = {0};
	struct kube_watch_opts wo = {0};
	const json_t *cond;
	char fsel[600], what[600];
	int ret, rc;

	w.name = name;
	snprintf(what, sizeof(what), "pipelinerun %s/%s", x->ns, name);
	snprintf(fsel, sizeof(fsel), "metadata.name=%s", name);
	wo.field_selector = fsel;
	wo.max_duration_ms = deadline - clock_now_ms();
	if (wo.max_duration_ms <= 0)
		wo.max_duration_ms = 1;
	ret = kube_watch(x->c, RUNS, x->ns, &wo, wait_event, &w);
	if (ret < 0 && ret != KUBE_ETIMEOUT && ret != KUBE_ENOTFOUND) {
		fprintf(stderr, "kubectl-slipway: watching %s failed (%s); polling instead\n", what,
		        err_msg());
		ret = wait_poll(x, &w, deadline);
	}
	switch (ret) {
	case WAIT_SUCCEEDED:
		rc = EXIT_OK;
		if (x->cli->output != CLI_OUTPUT_TABLE)
			rc = print_object(x, w.obj);
		else
			printf("pipelinerun.slipway.dev/%s succeeded\n", name);
		break;
	case WAIT_FAILED:
		cond = condition(w.obj, "Succeeded");
		if (x->cli->output != CLI_OUTPUT_TABLE)
			print_object(x, w.obj); /* exits 1 either way */
		fprintf(stderr, "kubectl-slipway: %s failed: %s%s%s\n", what,
		        str_at(cond, "reason") ? str_at(cond, "reason") : "Failed",
		        str_at(cond, "message") ? ": " : "",
		        str_at(cond, "message") ? str_at(cond, "message") : "");
		rc = EXIT_FAIL;
		break;
	case WAIT_DELETED:
		fprintf(stderr, "kubectl-slipway: %s was deleted before it finished\n", what);
		rc = EXIT_FAIL;
		break;
	case WAIT_NOTFOUND:
	case KUBE_ENOTFOUND:
		fprintf(stderr, "kubectl-slipway: %s not found\n", what);
		rc = EXIT_NOTFOUND;
		break;
	case KUBE_ETIMEOUT:
		fprintf(stderr, "kubectl-slipway: timed out after %s waiting for %s\n", timeout,
		        what);
		rc = EXIT_TIMEOUT;
		break;
	default:
		rc = api_fail(ret < 0 ? ret : KUBE_ERROR, what);
		break;
	}
	json_decref(w.obj);
	return rc;
}

/* --- releases and rollback ------------------------------------------------ */

/* Lists the runs of REMOTE, which must exist, into *OUT (a List whose items
 * are in release_sort order). Prints its own error and returns the exit
 * code. */
static int list_releases(json_t **out, struct ctx *x, const char *remote)
{
	int rc = list_runs(out, x, remote);

	if (rc == EXIT_OK && release_sort(json_object_get(*out, "items")) < 0) {
		json_decref(*out);
		*out = NULL;
		return api_fail(KUBE_ERROR, "list pipelineruns");
	}
	return rc;
}

/* "CONTAINER@SHORT-DIGEST,..." of RUN's status.images into OUT of SIZE
 * bytes: the first 12 hex digits of each digest, as docker shows image ids. */
static void short_images(char *out, size_t size, const json_t *run)
{
	const json_t *img;
	size_t i, n = 0;

	out[0] = '\0';
	json_array_foreach(json_object_get(json_object_get(run, "status"), "images"), i, img)
	{
		const char *c = str_at(img, "container"), *ref = str_at(img, "image");
		const char *d = ref ? strstr(ref, "@sha256:") : NULL;
		int w;

		w = snprintf(out + n, size - n, "%s%s@%.12s", n ? "," : "", c ? c : "?",
		             d ? d + 8 : "?");
		if (w < 0 || (size_t)w >= size - n) {
			out[n] = '\0';
			break;
		}
		n += (size_t)w;
	}
}

/* The RESULT column: Succeeded, the failure's reason, Running or Pending. */
static const char *result_of(const json_t *run)
{
	const json_t *cond = condition(run, "Succeeded");
	const char *status = str_at(cond, "status");

	if (!status)
		return "Pending";
	if (!strcmp(status, "True"))
		return "Succeeded";
	if (!strcmp(status, "False"))
		return str_at(cond, "reason") ? str_at(cond, "reason") : "Failed";
	return "Running";
}

static int cmd_releases(struct ctx *x, int argc, char **argv)
{
	static const char *const headers[] = {"RELEASE", "COMMIT", "IMAGES", "PUSHER",
	                                      "TRIGGER", "RESULT", "AGE",    "RUN"};
	const char *remote;
	json_t *list = NULL, *item;
	struct table t;
	time_t now = time(NULL);
	size_t i;
	int rc;

	if ((rc = one_name(&remote, argc, argv, "REMOTE", "releases ")) != EXIT_OK)
		return rc;
	if ((rc = ctx_connect(x)) != EXIT_OK || (rc = list_releases(&list, x, remote)) != EXIT_OK)
		return rc;
	if (x->cli->output != CLI_OUTPUT_TABLE) {
		rc = print_object(x, list);
		json_decref(list);
		return rc;
	}
	table_init(&t, 8, headers);
	json_array_foreach(json_object_get(list, "items"), i, item)
	{
		const json_t *spec = json_object_get(item, "spec");
		const json_t *pusher = json_object_get(spec, "pusher");
		const char *after = str_at(spec, "after"), *who = str_at(pusher, "comment");
		char rel[48] = "", commit[8] = "", images[512], age[32], trigger[300];
		const char *cells[8];

		if (release_number(item))
			snprintf(rel, sizeof(rel), "v%ld", release_number(item));
		snprintf(commit, sizeof(commit), "%.7s", after ? after : "");
		short_images(images, sizeof(images), item);
		table_age(age, sizeof(age), meta_str(item, "creationTimestamp"), now);
		if (str_at(spec, "rollbackOf"))
			snprintf(trigger, sizeof(trigger), "%s %.200s", release_trigger(item),
			         str_at(spec, "rollbackOf"));
		else
			snprintf(trigger, sizeof(trigger), "%s", release_trigger(item));
		cells[0] = rel;
		cells[1] = commit;
		cells[2] = images;
		cells[3] = who && *who ? who : str_at(pusher, "fingerprint");
		cells[4] = trigger;
		cells[5] = result_of(item);
		cells[6] = age;
		cells[7] = meta_str(item, "name");
		if (table_add(&t, cells) < 0) {
			fprintf(stderr, "kubectl-slipway: %s\n", err_msg());
			rc = EXIT_FAIL;
			break;
		}
	}
	if (rc == EXIT_OK) {
		if (!t.nrows)
			fprintf(stderr, "No releases of %s/%s yet.\n", x->ns, remote);
		else
			rc = print_table(&t);
	}
	table_release(&t);
	json_decref(list);
	return rc;
}

/* Creates a PipelineRun of REMOTE for gitd's controller: spec.trigger
 * TRIGGER, the REF and AFTER commit it deploys, BEFORE (the current
 * release's commit, may be NULL) and ROLLBACK_OF (may be NULL). *OUT gets
 * the created object. Returns the exit code, having printed any error. */
static int create_run(json_t **out, struct ctx *x, const char *remote, const char *trigger,
                      const char *ref, const char *after, const char *before,
                      const char *rollback_of)
{
	char gen[300], what[600];
	json_t *obj;
	int ret;

	snprintf(gen, sizeof(gen), "%.200s-", remote);
	snprintf(what, sizeof(what), "create a %s pipelinerun of %s/%s", trigger, x->ns, remote);
	if (!ref || !after) {
		fprintf(stderr, "kubectl-slipway: %s: the release has no spec.ref or spec.after\n",
		        what);
		return EXIT_FAIL;
	}
	obj =
	    json_pack("{s:s, s:s, s:{s:s, s:s}, s:{s:s, s:s, s:s, s:s?, s:s, s:s?}}", "apiVersion",
	              "slipway.dev/v1alpha1", "kind", "PipelineRun", "metadata", "generateName",
	              gen, "namespace", x->ns, "spec", "remote", remote, "trigger", trigger, "ref",
	              ref, "before", before, "after", after, "rollbackOf", rollback_of);
	if (!obj)
		return api_fail(err_set("out of memory"), what);
	ret = kube_create(out, x->c, RUNS, x->ns, obj);
	json_decref(obj);
	return ret < 0 ? api_fail(ret, what) : EXIT_OK;
}

static int cmd_rollback(struct ctx *x, int argc, char **argv)
{
	static const struct cli_flag flags[] = {{"wait", false}, {"timeout", true}, {NULL, false}};
	struct cli_iter it = {.argc = argc, .argv = argv};
	const char *remote = NULL, *which = NULL, *timeout = "10m", *v, *name;
	const json_t *target, *current, *tspec, *items;
	json_t *list = NULL, *run = NULL;
	bool is_wait = false;
	char what[64];
	long timeout_ms;
	long long deadline;
	int f, rc;

	while ((f = cli_next(&it, flags, &v)) != CLI_END) {
		if (f == CLI_EUSAGE)
			return usage_error(err_msg(), "rollback ");
		if (f == 0)
			is_wait = true;
		else if (f == 1)
			timeout = v;
		else if (!remote)
			remote = v;
		else if (!which)
			which = v;
		else
			return usage_error("rollback takes REMOTE and at most one release",
			                   "rollback ");
	}
	if (!remote)
		return usage_error("missing REMOTE", "rollback ");
	timeout_ms = duration_parse_ms(timeout);
	if (timeout_ms <= 0)
		return usage_error("invalid --timeout (e.g. 90s, 10m, 1h)", "rollback ");
	deadline = clock_now_ms() + timeout_ms;
	if ((rc = ctx_connect(x)) != EXIT_OK || (rc = list_releases(&list, x, remote)) != EXIT_OK)
		return rc;
	items = json_object_get(list, "items");
	current = release_current(items);
	target = which ? release_find(items, which) : release_previous(items);
	if (!target) {
		fprintf(stderr, "kubectl-slipway: remote %s/%s: %s\n", x->ns, remote, err_msg());
		rc = EXIT_NOTFOUND;
		goto out;
	}
	tspec = json_object_get(target, "spec");
	snprintf(what, sizeof(what), "v%ld", release_number(target));
	rc = create_run(&run, x, remote, "rollback", str_at(tspec, "ref"), str_at(tspec, "after"),
	                current ? str_at(json_object_get(current, "spec"), "after") : NULL, what);
	if (rc != EXIT_OK)
		goto out;
	name = meta_str(run, "name");
	if (x->cli->output != CLI_OUTPUT_TABLE && !is_wait) {
		rc = print_object(x, run);
		goto out;
	}
	if (x->cli->output == CLI_OUTPUT_TABLE) {
		printf("pipelinerun.slipway.dev/%s created: rollback of %s to %s (%.7s)\n", name,
		       remote, what, str_at(tspec, "after"));
		fflush(stdout);
	}
	if (is_wait)
		rc = follow_run(x, name, timeout, deadline);
out:
	json_decref(run);
	json_decref(list);
	return rc;
}

/* --- config ---------------------------------------------------------------- */

/* Whether S is an environment variable name as config keys must be:
 * [A-Za-z_][A-Za-z0-9_]* (POSIX's portable names, which every shell reads). */
static bool is_env_name(const char *s)
{
	if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == '_'))
		return false;
	return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_") ==
	       strlen(s);
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int bad_key(const char *key, const char *help_cmd)
{
	char msg[300];

	snprintf(msg, sizeof(msg),
	         "invalid config key \"%.64s\": keys are environment variable names "
	         "([A-Za-z_][A-Za-z0-9_]*)",
	         key);
	return usage_error(msg, help_cmd);
}

/* Checks that Remote REMOTE exists. Returns the exit code, having printed
 * any error. */
static int remote_exists(struct ctx *x, const char *remote)
{
	char what[600];
	int ret;

	snprintf(what, sizeof(what), "remote %s/%s", x->ns, remote);
	ret = kube_get(NULL, x->c, REMOTES, x->ns, remote);
	return ret < 0 ? api_fail(ret, what) : EXIT_OK;
}

/* Applies CHANGES (key: base64 value, or null to remove) to the Secret
 * SECRET of REMOTE: read, change, replace under the resourceVersion read
 * (again on a Conflict), created when missing. *CHANGED says whether its
 * data changed. Returns the exit code, having printed any error (never a
 * value). */
static int write_config(struct ctx *x, const char *remote, const char *secret,
                        const json_t *changes, bool *changed)
{
	char what[600];
	int ret = KUBE_ERROR;

	*changed = false;
	snprintf(what, sizeof(what), "secret %s/%s", x->ns, secret);
	for (int attempt = 0; attempt < KEY_RETRIES; attempt++) {
		json_t *obj = NULL, *data, *v;
		const char *key;
		bool is_new = false;

		ret = kube_get(&obj, x->c, "v1/secrets", x->ns, secret);
		if (ret == KUBE_ENOTFOUND) {
			is_new = true;
			obj = json_pack("{s:s, s:s, s:{s:s, s:s, s:{s:s}}, s:s, s:{}}",
			                "apiVersion", "v1", "kind", "Secret", "metadata", "name",
			                secret, "namespace", x->ns, "labels", "slipway.dev/remote",
			                remote, "type", "Opaque", "data");
			if (!obj)
				return api_fail(err_set("out of memory"), what);
		} else if (ret < 0) {
			return api_fail(ret, what);
		}
		data = json_object_get(obj, "data");
		if (!json_is_object(data)) {
			data = json_object();
			json_object_set_new(obj, "data", data);
		}
		json_object_foreach((json_t *)changes, key, v)
		{
			json_t *old = json_object_get(data, key);

			if (json_is_null(v) && old) {
				json_object_del(data, key);
				*changed = true;
			} else if (json_is_string(v) && !json_equal(old, v)) {
				json_object_set(data, key, v);
				*changed = true;
			}
		}
		if (!*changed && !is_new) {
			json_decref(obj);
			return EXIT_OK;
		}
		if (is_new)
			ret = kube_create(NULL, x->c, "v1/secrets", x->ns, obj);
		else
			ret = kube_replace(NULL, x->c, "v1/secrets", x->ns, secret, NULL, obj);
		json_decref(obj);
		if (ret == 0)
			return EXIT_OK;
		if (ret != KUBE_ECONFLICT && ret != KUBE_EEXISTS)
			return api_fail(ret, what);
		*changed = false;
	}
	return api_fail(ret, what);
}

/* Starts a release of REMOTE for a config change: a PipelineRun with
 * spec.trigger config at the current release's ref and commit. Returns the
 * exit code. */
static int config_release(struct ctx *x, const char *remote)
{
	const json_t *current, *spec;
	json_t *list = NULL, *run = NULL;
	int rc;

	if ((rc = list_releases(&list, x, remote)) != EXIT_OK)
		return rc;
	current = release_current(json_object_get(list, "items"));
	if (!current) {
		printf("no release of %s yet: the config takes effect with the first deploy\n",
		       remote);
		json_decref(list);
		return EXIT_OK;
	}
	spec = json_object_get(current, "spec");
	rc = create_run(&run, x, remote, "config", str_at(spec, "ref"), str_at(spec, "after"),
	                str_at(spec, "after"), NULL);
	if (rc == EXIT_OK)
		printf("pipelinerun.slipway.dev/%s created: config release of %s\n",
		       meta_str(run, "name"), remote);
	json_decref(run);
	json_decref(list);
	return rc;
}

/* set and unset: KEY=VALUE or KEY arguments after REMOTE. */
static int config_change(struct ctx *x, int argc, char **argv, bool is_set)
{
	static const struct cli_flag flags[] = {{"no-restart", false}, {NULL, false}};
	const char *help_cmd = is_set ? "config set " : "config unset ";
	struct cli_iter it = {.argc = argc, .argv = argv};
	const char *remote = NULL, *v;
	json_t *changes = json_object();
	bool no_restart = false, changed;
	char secret[300];
	int f, rc;

	if (!changes)
		return api_fail(err_set("out of memory"), "config");
	while ((f = cli_next(&it, flags, &v)) != CLI_END) {
		char key[256];
		const char *eq;
		char *b64 = NULL;

		if (f == CLI_EUSAGE) {
			rc = usage_error(err_msg(), help_cmd);
			goto out;
		}
		if (f == 0) {
			no_restart = true;
			continue;
		}
		if (!remote) {
			remote = v;
			continue;
		}
		eq = is_set ? strchr(v, '=') : NULL;
		if (is_set && !eq) {
			rc = usage_error("config set takes KEY=VALUE arguments", help_cmd);
			goto out;
		}
		snprintf(key, sizeof(key), "%.*s", eq ? (int)(eq - v) : (int)strlen(v), v);
		if (!is_env_name(key) || (eq && (size_t)(eq - v) >= sizeof(key))) {
			rc = bad_key(key, help_cmd);
			goto out;
		}
		if (is_set && base64_encode(&b64, eq + 1, strlen(eq + 1)) < 0) {
			rc = api_fail(KUBE_ERROR, "config");
			goto out;
		}
		json_object_set_new(changes, key, b64 ? json_string(b64) : json_null());
		if (b64) {
			explicit_bzero(b64, strlen(b64));
			free(b64);
		}
	}
	if (!remote || !json_object_size(changes)) {
		rc = usage_error(is_set ? "missing REMOTE or KEY=VALUE" : "missing REMOTE or KEY",
		                 help_cmd);
		goto out;
	}
	snprintf(secret, sizeof(secret), "%.200s-config", remote);
	if ((rc = ctx_connect(x)) != EXIT_OK || (rc = remote_exists(x, remote)) != EXIT_OK ||
	    (rc = write_config(x, remote, secret, changes, &changed)) != EXIT_OK)
		goto out;
	if (!changed) {
		printf("config of %s unchanged (secret %s)\n", remote, secret);
		goto out;
	}
	printf("config of %s %s (secret %s)\n", remote, is_set ? "set" : "unset", secret);
	if (no_restart) {
		printf("--no-restart: takes effect with the next deploy\n");
		goto out;
	}
	fflush(stdout);
	rc = config_release(x, remote);
out:
	json_decref(changes);
	return rc;
}

static int cmd_config_set(struct ctx *x, int argc, char **argv)
{
	return config_change(x, argc, argv, true);
}

static int cmd_config_unset(struct ctx *x, int argc, char **argv)
{
	return config_change(x, argc, argv, false);
}

static int cmd_config_get(struct ctx *x, int argc, char **argv)
{
	static const struct cli_flag flags[] = {{"reveal", false}, {NULL, false}};
	struct cli_iter it = {.argc = argc, .argv = argv};
	const char *remote = NULL, *only = NULL, *v, **keys = NULL;
	json_t *obj = NULL, *data;
	bool reveal = false;
	char secret[300], what[600];
	size_t n, i = 0;
	int f, ret, rc;

	while ((f = cli_next(&it, flags, &v)) != CLI_END) {
		if (f == CLI_EUSAGE)
			return usage_error(err_msg(), "config get ");
		if (f == 0)
			reveal = true;
		else if (!remote)
			remote = v;
		else if (!only)
			only = v;
		else
			return usage_error("config get takes REMOTE and at most one KEY",
			                   "config get ");
	}
	if (!remote)
		return usage_error("missing REMOTE", "config get ");
	if (only && !is_env_name(only))
		return bad_key(only, "config get ");
	if ((rc = ctx_connect(x)) != EXIT_OK || (rc = remote_exists(x, remote)) != EXIT_OK)
		return rc;
	snprintf(secret, sizeof(secret), "%.200s-config", remote);
	snprintf(what, sizeof(what), "secret %s/%s", x->ns, secret);
	ret = kube_get(&obj, x->c, "v1/secrets", x->ns, secret);
	if (ret < 0 && ret != KUBE_ENOTFOUND)
		return api_fail(ret, what);
	data = json_object_get(obj, "data");
	n = json_object_size(data);
	keys = calloc(n ? n : 1, sizeof(*keys));
	if (!keys) {
		rc = api_fail(err_set("out of memory"), what);
		goto out;
	}
	{
		const char *key;
		json_t *val;

		json_object_foreach(data, key, val) keys[i++] = key;
	}
	qsort(keys, n, sizeof(*keys), cmp_names);
	if (only && !json_object_get(data, only)) {
		fprintf(stderr, "kubectl-slipway: %s has no key %s\n", what, only);
		rc = EXIT_NOTFOUND;
		goto out;
	}
	for (i = 0; i < n; i++) {
		struct buf b;

		if (only && strcmp(keys[i], only) != 0)
			continue;
		if (!reveal) {
			printf("%s\n", keys[i]);
			continue;
		}
		buf_init(&b, 1u << 20);
		if (base64_decode(&b, json_string_value(json_object_get(data, keys[i])),
		                  (size_t)2 << 20) < 0) {
			fprintf(stderr, "kubectl-slipway: %s: key %s: %s\n", what, keys[i],
			        err_msg());
			rc = EXIT_FAIL;
		} else if (only) {
			printf("%s\n", buf_str(&b));
		} else {
			printf("%s=%s\n", keys[i], buf_str(&b));
		}
		if (b.data)
			explicit_bzero(b.data, b.len);
		buf_release(&b);
	}
out:
	free(keys);
	json_decref(obj);
	return rc;
}

/* --- dashboard ----------------------------------------------------------- */

static int cmd_dashboard(struct ctx *x, int argc, char **argv)
{
	return dashboard_main(x->cli, argc, argv);
}

/* --- webhooks ----------------------------------------------------------- */

static int cmd_webhooks_deliveries(struct ctx *x, int argc, char **argv)
{
	static const char *const headers[] = {"DELIVERY", "EVENT",    "HOST", "STATUS",
	                                      "ATTEMPTS", "DURATION", "AGE",  "ERROR"};
	json_t *r = NULL, *cm = NULL, *list = NULL;
	const json_t *d;
	const char *remote, *text;
	char what[600], name[300];
	struct table t;
	time_t now = time(NULL);
	size_t i;
	int ret, rc;

	rc = one_name(&remote, argc, argv, "REMOTE", "webhooks deliveries ");
	if (rc != EXIT_OK || (rc = ctx_connect(x)) != EXIT_OK)
		return rc;
	snprintf(what, sizeof(what), "remote %s/%s", x->ns, remote);
	ret = kube_get(&r, x->c, REMOTES, x->ns, remote);
	if (ret < 0)
		return api_fail(ret, what);
	json_decref(r);
	snprintf(name, sizeof(name), "%s-webhook-deliveries", remote);
	ret = kube_get(&cm, x->c, "v1/configmaps", x->ns, name);
	if (ret < 0 && ret != KUBE_ENOTFOUND) {
		snprintf(what, sizeof(what), "configmap %s/%s", x->ns, name);
		return api_fail(ret, what);
	}
	text = str_at(json_object_get(cm, "data"), "deliveries.json");
	list = text ? json_loads(text, 0, NULL) : json_array();
	json_decref(cm);
	if (!json_is_array(list)) {
		fprintf(stderr,
		        "kubectl-slipway: configmap %s/%s: deliveries.json is not a JSON "
		        "array\n",
		        x->ns, name);
		json_decref(list);
		return EXIT_FAIL;
	}
	if (x->cli->output != CLI_OUTPUT_TABLE) {
		rc = print_object(x, list);
		json_decref(list);
		return rc;
	}
	table_init(&t, 8, headers);
	json_array_foreach(list, i, d)
	{
		char status[24], attempts[24], duration[32], age[32];
		const char *cells[8];

		snprintf(status, sizeof(status), "%lld",
		         (long long)json_integer_value(json_object_get(d, "statusCode")));
		snprintf(attempts, sizeof(attempts), "%lld",
		         (long long)json_integer_value(json_object_get(d, "attempts")));
		snprintf(duration, sizeof(duration), "%lldms",
		         (long long)json_integer_value(json_object_get(d, "durationMs")));
		table_age(age, sizeof(age), str_at(d, "time"), now);
		cells[0] = str_at(d, "id");
		cells[1] = str_at(d, "event");
		cells[2] = str_at(d, "host");
		cells[3] = status;
		cells[4] = attempts;
		cells[5] = duration;
		cells[6] = age;
		cells[7] = str_at(d, "error");
		if (table_add(&t, cells) < 0) {
			rc = api_fail(-1, what);
			goto out;
		}
	}
	if (!t.nrows)
		fprintf(stderr, "No webhook deliveries for %s.\n", what);
	else
		rc = print_table(&t);
out:
	table_release(&t);
	json_decref(list);
	return rc;
}

/* --- dispatch ------------------------------------------------------------ */

struct command {
	const char *group; /* "remote", "key", "config", or NULL */
	const char *name;
	const char *help;
	int (*run)(struct ctx *x, int argc, char **argv);
};

static const struct command commands[] = {
    {"remote", "create", remote_create_help, cmd_remote_create},
    {"remote", "list", remote_list_help, cmd_remote_list},
    {"remote", "ls", remote_list_help, cmd_remote_list},
    {"remote", "url", remote_url_help, cmd_remote_url},
    {"remote", "delete", remote_delete_help, cmd_remote_delete},
    {"key", "add", key_add_help, cmd_key_add},
    {"key", "list", key_list_help, cmd_key_list},
    {"key", "ls", key_list_help, cmd_key_list},
    {"key", "rm", key_rm_help, cmd_key_rm},
    {NULL, "runs", runs_help, cmd_runs},
    {NULL, "logs", logs_help, cmd_logs},
    {NULL, "wait", wait_help, cmd_wait},
    {NULL, "releases", releases_help, cmd_releases},
    {"config", "set", config_set_help, cmd_config_set},
    {"config", "unset", config_unset_help, cmd_config_unset},
    {"config", "get", config_get_help, cmd_config_get},
    {NULL, "rollback", rollback_help, cmd_rollback},
    {NULL, "dashboard", dashboard_help, cmd_dashboard},
    {"webhooks", "deliveries", webhooks_deliveries_help, cmd_webhooks_deliveries},
};

int main(int argc, char **argv)
{
	struct cli cli;
	struct ctx x = {.cli = &cli};
	const struct command *cmd = NULL;
	const char *group = NULL, *group_help = NULL;
	int ret, rc, word = 0;

	ret = cli_parse(&cli, argc, argv);
	if (ret < 0) {
		rc = ret == CLI_EUSAGE ? usage_error(err_msg(), "") : EXIT_FAIL;
		if (ret != CLI_EUSAGE)
			fprintf(stderr, "kubectl-slipway: %s\n", err_msg());
		goto out;
	}
	if (cli.version) {
		printf("kubectl-slipway %s\n", PLUGIN_VERSION);
		rc = EXIT_OK;
		goto out;
	}
	if (cli.argc && (!strcmp(cli.argv[0], "remote") || !strcmp(cli.argv[0], "key") ||
	                 !strcmp(cli.argv[0], "config") || !strcmp(cli.argv[0], "webhooks"))) {
		group = cli.argv[0];
		group_help = !strcmp(group, "remote")   ? remote_help
		             : !strcmp(group, "key")    ? key_help
		             : !strcmp(group, "config") ? config_help
		                                        : webhooks_help;
		word = 1;
	}
	for (size_t i = 0; cli.argc > word && i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(commands[i].name, cli.argv[word]) &&
		    (group ? commands[i].group && !strcmp(commands[i].group, group)
		           : !commands[i].group))
			cmd = &commands[i];
	if (cli.help) {
		fputs(cmd ? cmd->help : group_help ? group_help : main_help, stdout);
		rc = EXIT_OK;
		goto out;
	}
	if (!cmd) {
		char msg[300];

		if (cli.argc <= word)
			snprintf(msg, sizeof(msg), "missing %s", group ? "subcommand" : "command");
		else
			snprintf(msg, sizeof(msg), "unknown %s \"%s\"",
			         group ? "subcommand" : "command", cli.argv[word]);
		fprintf(stderr, "kubectl-slipway: %s\n", msg);
		fputs(group_help ? group_help : main_help, stderr);
		rc = EXIT_USAGE;
		goto out;
	}
	rc = cmd->run(&x, cli.argc - word - 1, cli.argv + word + 1);
out:
	kube_client_free(x.c);
	cli_release(&cli);
	return rc;
}
