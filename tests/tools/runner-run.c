/* runner-run: one build through gitd's runner (runner.h), for shell tests:
 * the same code the pipeline runs, with buildsrv on 127.0.0.1 (or the
 * --internal-listen address builder Pods can reach), minus the pipeline
 * around it. Not shipped.
 *
 * Prints one JSON object per line: {"log": LINE} for each log line as the
 * runner delivers it, then {"result": {...}} with every field of struct
 * runner_result and "ret" (runner_build's return value). Exits 0 when the
 * runner returned 0 (whatever the outcome), 1 when it returned -1, 2 on a
 * usage error. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "buildsrv.h"
#include "err.h"
#include "kube.h"
#include "runner.h"
#include "banned.h"

#define ARGS_MAX 64

static const char usage_text[] =
    "usage: runner-run [--mode local|pod] [--builder PROGRAM] [--builder-image REF]\n"
    "                  [--scheduler NAME] [--node-selector KEY=VALUE]...\n"
    "                  [--builder-security-context JSON] [--internal-listen ADDR]\n"
    "                  [--namespace NS] [--remote NAME] [--pipelinerun NAME]\n"
    "                  [--path DIR] [--dockerfile PATH] [--build-arg NAME=VALUE]...\n"
    "                  [--insecure-registry] [--registry-secret NAME]\n"
    "                  [--registry-auth FILE] [--storage-driver D]\n"
    "                  [--timeout SECS] [--spec-builder JSON] [--cancel-after SECS]\n"
    "                  IMAGE SOURCE_TAR_GZ\n"
    "Builds SOURCE_TAR_GZ into IMAGE with gitd's runner; prints JSON lines.\n";

static volatile sig_atomic_t cancel;

static void on_alarm(int sig)
{
	cancel = 1;
}

static void on_term(int sig)
{
	cancel = 1;
}

static void print_line(void *arg, const char *line)
{
	json_t *j = json_pack("{s:s}", "log", line);

	/* a line that is not UTF-8 is shown by its length only */
	if (!j)
		j = json_pack("{s:s, s:i}", "log", "", "bytes", (int)strlen(line));
	json_dumpf(j, stdout, JSON_COMPACT | JSON_ENSURE_ASCII);
	printf("\n");
	fflush(stdout);
	json_decref(j);
}

int main(int argc, char **argv)
{
	enum {
		OPT_MODE = 256,
		OPT_BUILDER,
		OPT_BUILDER_IMAGE,
		OPT_SCHEDULER,
		OPT_NODE_SELECTOR,
		OPT_SECURITY_CONTEXT,
		OPT_NAMESPACE,
		OPT_REMOTE,
		OPT_PIPELINERUN,
		OPT_PATH,
		OPT_DOCKERFILE,
		OPT_BUILD_ARG,
		OPT_INSECURE,
		OPT_REGISTRY_SECRET,
		OPT_REGISTRY_AUTH,
		OPT_DRIVER,
		OPT_TIMEOUT,
		OPT_SPEC,
		OPT_CANCEL,
		OPT_INTERNAL_LISTEN,
	};
	static const struct option longopts[] = {
	    {"mode", required_argument, NULL, OPT_MODE},
	    {"builder", required_argument, NULL, OPT_BUILDER},
	    {"builder-image", required_argument, NULL, OPT_BUILDER_IMAGE},
	    {"scheduler", required_argument, NULL, OPT_SCHEDULER},
	    {"node-selector", required_argument, NULL, OPT_NODE_SELECTOR},
	    {"builder-security-context", required_argument, NULL, OPT_SECURITY_CONTEXT},
	    {"namespace", required_argument, NULL, OPT_NAMESPACE},
	    {"remote", required_argument, NULL, OPT_REMOTE},
	    {"pipelinerun", required_argument, NULL, OPT_PIPELINERUN},
	    {"path", required_argument, NULL, OPT_PATH},
	    {"dockerfile", required_argument, NULL, OPT_DOCKERFILE},
	    {"build-arg", required_argument, NULL, OPT_BUILD_ARG},
	    {"insecure-registry", no_argument, NULL, OPT_INSECURE},
	    {"registry-secret", required_argument, NULL, OPT_REGISTRY_SECRET},
	    {"registry-auth", required_argument, NULL, OPT_REGISTRY_AUTH},
	    {"storage-driver", required_argument, NULL, OPT_DRIVER},
	    {"timeout", required_argument, NULL, OPT_TIMEOUT},
	    {"spec-builder", required_argument, NULL, OPT_SPEC},
	    {"cancel-after", required_argument, NULL, OPT_CANCEL},
	    {"internal-listen", required_argument, NULL, OPT_INTERNAL_LISTEN},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	static const char *build_args[ARGS_MAX + 1], *selectors[ARGS_MAX + 1];
	size_t n_args = 0, n_sel = 0;
	struct runner_config cfg = {.default_mode = RUNNER_LOCAL, .program = "builder"};
	struct runner_build b = {.ns = "default",
	                         .remote = "app",
	                         .deployment = "web",
	                         .container = "main",
	                         .build_args = build_args};
	struct runner_result res;
	struct buildsrv *srv = NULL;
	struct kube_client *c = NULL;
	json_t *spec = NULL, *security_context = NULL, *out = NULL;
	json_error_t jerr;
	struct sigaction sa;
	unsigned cancel_after = 0;
	const char *internal_listen = "127.0.0.1";
	int opt, ret, code = 1;

	cfg.node_selector = selectors;
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case OPT_MODE:
			if (runner_mode_parse(&cfg.default_mode, optarg) < 0) {
				fprintf(stderr, "runner-run: %s\n", err_msg());
				return 2;
			}
			break;
		case OPT_BUILDER:
			cfg.program = optarg;
			break;
		case OPT_INTERNAL_LISTEN:
			internal_listen = optarg;
			break;
		case OPT_BUILDER_IMAGE:
			cfg.image = optarg;
			break;
		case OPT_SCHEDULER:
			cfg.scheduler_name = optarg;
			break;
		case OPT_NODE_SELECTOR:
			if (n_sel == ARGS_MAX)
				return 2;
			selectors[n_sel++] = optarg;
			break;
		case OPT_SECURITY_CONTEXT:
			/* checked as gitd checks its --builder-security-context */
			json_decref(security_context);
			if (runner_security_context_parse(&security_context, optarg) < 0) {
				fprintf(stderr, "runner-run: --builder-security-context: %s\n",
				        err_msg());
				json_decref(spec);
				return 2;
			}
			cfg.security_context = security_context;
			break;
		case OPT_NAMESPACE:
			b.ns = optarg;
			break;
		case OPT_REMOTE:
			b.remote = optarg;
			break;
		case OPT_PIPELINERUN:
			b.pipelinerun = optarg;
			break;
		case OPT_PATH:
			b.path = optarg;
			break;
		case OPT_DOCKERFILE:
			b.dockerfile = optarg;
			break;
		case OPT_BUILD_ARG:
			if (n_args == ARGS_MAX)
				return 2;
			build_args[n_args++] = optarg;
			break;
		case OPT_INSECURE:
			b.insecure_registry = true;
			break;
		case OPT_REGISTRY_SECRET:
			b.registry_secret = optarg;
			break;
		case OPT_REGISTRY_AUTH:
			b.registry_auth_file = optarg;
			break;
		case OPT_DRIVER:
			cfg.storage_driver = optarg;
			break;
		case OPT_TIMEOUT:
			cfg.default_timeout_ms = atol(optarg) * 1000;
			break;
		case OPT_SPEC:
			json_decref(spec);
			if (!(spec = json_loads(optarg, 0, &jerr))) {
				fprintf(stderr, "runner-run: --spec-builder: %s\n", jerr.text);
				return 2;
			}
			break;
		case OPT_CANCEL:
			cancel_after = (unsigned)atoi(optarg);
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		default:
			fputs(usage_text, stderr);
			return 2;
		}
	}
	if (argc - optind != 2) {
		fputs(usage_text, stderr);
		json_decref(spec);
		json_decref(security_context);
		return 2;
	}
	b.image = argv[optind];
	b.source_path = argv[optind + 1];
	b.spec_builder = spec;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = on_alarm;
	sigaction(SIGALRM, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);

	if (buildsrv_start(&srv, internal_listen, NULL) < 0) {
		fprintf(stderr, "runner-run: %s\n", err_msg());
		goto out;
	}
	b.srv = srv;
	/* pod mode may come from --mode or from --spec-builder */
	if (getenv("KUBECONFIG") && kube_client_new_default(&c, NULL, NULL) < 0) {
		fprintf(stderr, "runner-run: %s\n", err_msg());
		goto out;
	}
	if (cancel_after)
		alarm(cancel_after);
	ret = runner_build(&res, &cfg, c, &b, print_line, NULL, &cancel);
	out = json_pack("{s:{s:i, s:b, s:s, s:s, s:s, s:s, s:f, s:s}}", "result", "ret", ret,
	                "succeeded", res.succeeded, "image", res.image, "digest", res.digest,
	                "reason", res.reason, "message", res.message, "seconds", res.seconds, "pod",
	                res.pod);
	if (!out) {
		fprintf(stderr, "runner-run: cannot print the result\n");
		goto out;
	}
	json_dumpf(out, stdout, JSON_COMPACT | JSON_ENSURE_ASCII);
	printf("\n");
	if (ret < 0)
		fprintf(stderr, "runner-run: %s\n", err_msg());
	code = ret < 0 ? 1 : 0;
out:
	json_decref(out);
	json_decref(spec);
	json_decref(security_context);
	kube_client_free(c);
	buildsrv_free(srv);
	return code;
}
