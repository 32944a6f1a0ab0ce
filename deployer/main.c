/* deployer: the command-line program. Sets container images on a Deployment
 * and follows its rollout, or reports a rollout's status; for operators,
 * hook scripts and CI. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deployer.h"
#include "duration.h"
#include "err.h"
#include "kube.h"
#include "banned.h"

/* Exit codes, documented in --help and docs/deployer.md. */
enum {
	EXIT_OK = 0,
	EXIT_ROLLOUT = 1,  /* rollout failed or timed out (rolled back if asked) */
	EXIT_USAGE = 2,    /* bad command line */
	EXIT_NOTFOUND = 3, /* Deployment or container not found */
	EXIT_DENIED = 4,   /* forbidden by RBAC, or not authenticated */
	EXIT_INVALID = 5,  /* bad image reference, or the API refused the change */
	EXIT_CONFLICT = 6, /* the Deployment kept changing under us */
	EXIT_API = 7,      /* configuration or API server unreachable/failing */
	EXIT_PENDING = 9,  /* status: the rollout has not finished yet */
};

static const char usage_text[] =
    "usage: deployer [--kubeconfig FILE] [--context NAME] [-n NAMESPACE] COMMAND ...\n"
    "\n"
    "Sets container images on a Kubernetes Deployment and follows the rollout.\n"
    "\n"
    "commands:\n"
    "  set-image deployment/NAME CONTAINER=IMAGE... [options]\n"
    "      patch the images (strategic merge), annotate the pod template with\n"
    "      kubernetes.io/change-cause (and slipway.dev/commit with --commit)\n"
    "      --wait                    follow the rollout until it completes or fails\n"
    "      --timeout DURATION        longest wait, e.g. 90s, 5m, 1h (default 5m)\n"
    "      --rollback-on-failure     put the previous images back if the rollout\n"
    "                                fails or times out (implies --wait)\n"
    "      --commit SHA              value of the slipway.dev/commit annotation\n"
    "      --change-cause TEXT       value of kubernetes.io/change-cause\n"
    "      -q, --quiet               no progress lines\n"
    "  status deployment/NAME [--wait] [--timeout DURATION]\n"
    "      print the rollout state, images and commit of the Deployment\n"
    "\n"
    "options:\n"
    "  -n, --namespace NS    namespace (default: the kubeconfig context's)\n"
    "  --kubeconfig FILE     kubeconfig (default: $KUBECONFIG, ~/.kube/config,\n"
    "                        then the in-cluster ServiceAccount)\n"
    "  --context NAME        kubeconfig context (default: current-context)\n"
    "  -h, --help            this text\n"
    "\n"
    "exit status:\n"
    "  0  done: images set (and rolled out, with --wait); status: rolled out\n"
    "  1  the rollout failed (ProgressDeadlineExceeded, or a new Pod cannot run:\n"
    "     CrashLoopBackOff, ImagePullBackOff, ...) or timed out\n"
    "  2  usage error\n"
    "  3  the Deployment or a container does not exist (nothing changed)\n"
    "  4  forbidden by RBAC or not authenticated (nothing changed)\n"
    "  5  invalid image reference or change refused by the API (nothing changed)\n"
    "  6  the Deployment kept changing (409 Conflict after retries)\n"
    "  7  no usable kubeconfig, or the API server cannot be reached\n"
    "  9  status: the rollout is still in progress\n";

static int usage_error(const char *fmt, const char *arg)
{
	fprintf(stderr, "deployer: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\nTry 'deployer --help'.\n");
	return EXIT_USAGE;
}

static int exit_code(int ret)
{
	switch (ret) {
	case 0:
		return EXIT_OK;
	case DEPLOYER_EROLLOUT:
	case DEPLOYER_ETIMEOUT:
		return EXIT_ROLLOUT;
	case KUBE_ENOTFOUND:
	case DEPLOYER_ENOCONTAINER:
		return EXIT_NOTFOUND;
	case KUBE_EFORBIDDEN:
	case KUBE_EUNAUTHORIZED:
		return EXIT_DENIED;
	case KUBE_EINVALID:
	case DEPLOYER_EBADIMAGE:
		return EXIT_INVALID;
	case KUBE_ECONFLICT:
		return EXIT_CONFLICT;
	default:
		return EXIT_API;
	}
}

/* Strips "deployment/", "deployments/" or "deploy/" from ARG. */
static const char *deployment_name(const char *arg)
{
	static const char *const prefixes[] = {"deployment/", "deployments/", "deploy/",
	                                       "deployment.apps/", "deployments.apps/"};

	for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
		if (!strncmp(arg, prefixes[i], strlen(prefixes[i])))
			return arg + strlen(prefixes[i]);
	return NULL;
}

static void print_progress(void *arg, const char *line)
{
	printf("%s\n", line);
	fflush(stdout);
}

static int cmd_set_image(struct kube_client *c, const char *ns, const char *name, int argc,
                         char **argv, struct deployer_opts *o)
{
	struct deployer_image imgs[64];
	struct deployer_result r;
	size_t n = 0;
	int ret;

	for (int i = 0; i < argc; i++) {
		char *eq = strchr(argv[i], '=');

		if (!eq || eq == argv[i])
			return usage_error("expected CONTAINER=IMAGE, got \"%s\"", argv[i]);
		if (n == 64)
			return usage_error("too many images%s", "");
		*eq = '\0';
		imgs[n].container = argv[i];
		imgs[n].image = eq + 1;
		n++;
	}
	if (!n)
		return usage_error("set-image needs at least one CONTAINER=IMAGE%s", "");
	ret = deployer_set_image(&r, c, ns, name, imgs, n, o);
	if (ret < 0) {
		fprintf(stderr, "deployer: %s\n", r.message);
		return exit_code(ret);
	}
	if (o->wait)
		printf("deployment \"%s\" successfully rolled out\n", name);
	return EXIT_OK;
}

static int cmd_status(struct kube_client *c, const char *ns, const char *name, bool wait,
                      long timeout_ms, bool quiet)
{
	json_t *d = NULL, *ctr, *ann;
	const json_t *st, *tmpl;
	enum deployer_rollout state;
	char msg[256];
	size_t i;
	int ret, wait_ret = 0;

	if (wait) {
		struct deployer_result r;

		wait_ret =
		    deployer_wait(&r, c, ns, name, timeout_ms, quiet ? NULL : print_progress, NULL);
		if (wait_ret < 0) {
			/* the one line that says why: a Pod that cannot run leaves no
			 * trace in the Deployment's status printed below */
			fprintf(stderr, "deployer: %s\n", r.message);
			if (wait_ret != DEPLOYER_EROLLOUT && wait_ret != DEPLOYER_ETIMEOUT)
				return exit_code(wait_ret);
		}
	}
	ret = kube_get(&d, c, "apps/v1/deployments", ns, name);
	if (ret < 0) {
		if (ret == KUBE_ENOTFOUND)
			fprintf(stderr, "deployer: deployment %s/%s not found\n", ns, name);
		else
			fprintf(stderr, "deployer: get deployment %s/%s: %s\n", ns, name,
			        kube_client_status(c)->message);
		return exit_code(ret);
	}
	state = deployer_rollout_state(d, msg, sizeof(msg));
	st = json_object_get(d, "status");
	tmpl = json_object_get(json_object_get(d, "spec"), "template");
	printf("deployment %s/%s: %s\n", ns, name, msg);
	printf("generation: %lld (observed %lld)\n",
	       json_integer_value(json_object_get(json_object_get(d, "metadata"), "generation")),
	       json_integer_value(json_object_get(st, "observedGeneration")));
	printf("replicas: %lld desired, %lld updated, %lld ready, %lld available\n",
	       json_object_get(json_object_get(d, "spec"), "replicas")
	           ? json_integer_value(json_object_get(json_object_get(d, "spec"), "replicas"))
	           : 1,
	       json_integer_value(json_object_get(st, "updatedReplicas")),
	       json_integer_value(json_object_get(st, "readyReplicas")),
	       json_integer_value(json_object_get(st, "availableReplicas")));
	json_array_foreach(json_object_get(json_object_get(tmpl, "spec"), "containers"), i, ctr)
	    printf("container %s: %s\n", json_string_value(json_object_get(ctr, "name")),
	           json_string_value(json_object_get(ctr, "image")));
	ann = json_object_get(json_object_get(tmpl, "metadata"), "annotations");
	if (json_object_get(ann, DEPLOYER_COMMIT_ANNOTATION))
		printf("commit: %s\n",
		       json_string_value(json_object_get(ann, DEPLOYER_COMMIT_ANNOTATION)));
	if (json_object_get(ann, DEPLOYER_CAUSE_ANNOTATION))
		printf("change-cause: %s\n",
		       json_string_value(json_object_get(ann, DEPLOYER_CAUSE_ANNOTATION)));
	json_decref(d);
	if (wait_ret < 0)
		return EXIT_ROLLOUT;
	switch (state) {
	case DEPLOYER_ROLLOUT_COMPLETE:
		return EXIT_OK;
	case DEPLOYER_ROLLOUT_FAILED:
		return EXIT_ROLLOUT;
	default:
		return wait ? EXIT_ROLLOUT : EXIT_PENDING;
	}
}

int main(int argc, char **argv)
{
	enum { O_KC = 256, O_CTX, O_WAIT, O_TIMEOUT, O_RB, O_COMMIT, O_CAUSE };
	static const struct option longopts[] = {
	    {"kubeconfig", required_argument, NULL, O_KC},
	    {"context", required_argument, NULL, O_CTX},
	    {"namespace", required_argument, NULL, 'n'},
	    {"wait", no_argument, NULL, O_WAIT},
	    {"timeout", required_argument, NULL, O_TIMEOUT},
	    {"rollback-on-failure", no_argument, NULL, O_RB},
	    {"commit", required_argument, NULL, O_COMMIT},
	    {"change-cause", required_argument, NULL, O_CAUSE},
	    {"quiet", no_argument, NULL, 'q'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *kubeconfig = NULL, *context = NULL, *ns = NULL, *cmd, *name;
	struct deployer_opts o = {.progress = print_progress};
	struct kube_client *c = NULL;
	bool quiet = false;
	int opt, ret;

	/* GNU getopt permutes, so options may come before or after arguments */
	while ((opt = getopt_long(argc, argv, "n:qh", longopts, NULL)) != -1) {
		switch (opt) {
		case O_KC:
			kubeconfig = optarg;
			break;
		case O_CTX:
			context = optarg;
			break;
		case 'n':
			ns = optarg;
			break;
		case O_WAIT:
			o.wait = true;
			break;
		case O_TIMEOUT:
			o.timeout_ms = duration_parse_ms(optarg);
			if (o.timeout_ms <= 0)
				return usage_error("invalid --timeout \"%s\" (e.g. 90s, 5m, 1h)",
				                   optarg);
			break;
		case O_RB:
			o.rollback_on_failure = true;
			o.wait = true;
			break;
		case O_COMMIT:
			o.commit = optarg;
			break;
		case O_CAUSE:
			o.change_cause = optarg;
			break;
		case 'q':
			quiet = true;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return EXIT_OK;
		default:
			fprintf(stderr, "Try 'deployer --help'.\n");
			return EXIT_USAGE;
		}
	}
	if (quiet)
		o.progress = NULL;
	if (argc - optind < 2)
		return usage_error("%s", argc - optind < 1 ? "missing command"
		                                           : "missing deployment/NAME");
	cmd = argv[optind];
	name = deployment_name(argv[optind + 1]);
	if (!name || !*name)
		return usage_error("expected deployment/NAME, got \"%s\"", argv[optind + 1]);
	if (strcmp(cmd, "set-image") && strcmp(cmd, "status"))
		return usage_error("unknown command \"%s\"", cmd);
	if (!strcmp(cmd, "status") && argc - optind > 2)
		return usage_error("status takes one deployment, got \"%s\"", argv[optind + 2]);
	if (kube_client_new_default(&c, kubeconfig, context) < 0) {
		fprintf(stderr, "deployer: %s\n", err_msg());
		return EXIT_API;
	}
	if (!ns)
		ns = kube_client_namespace(c);
	if (!strcmp(cmd, "set-image"))
		ret = cmd_set_image(c, ns, name, argc - optind - 2, argv + optind + 2, &o);
	else
		ret = cmd_status(c, ns, name, o.wait, o.timeout_ms, quiet);
	kube_client_free(c);
	return ret;
}
