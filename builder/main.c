/* builder: the command-line program. Builds an image from a source tree and
 * a Dockerfile with buildah, pushes it, prints the log for `kubectl logs`
 * and, when asked, reports log and result to gitd's internal endpoint. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "builder.h"
#include "err.h"
#include "imageref.h"
#include "report.h"
#include "banned.h"

/* Exit codes, documented in --help and docs/builder.md. */
enum {
	EXIT_PUSHED = 0,
	EXIT_ERROR = 1,      /* internal: memory, temp directory, buildah not startable */
	EXIT_USAGE = 2,      /* bad command line or input file */
	EXIT_SOURCE = 3,     /* source missing or unsafe, Dockerfile missing or outside */
	EXIT_BUILD = 4,      /* buildah bud failed; nothing pushed */
	EXIT_PUSH = 5,       /* buildah push failed */
	EXIT_TIMEOUT = 6,    /* --timeout passed; buildah killed */
	EXIT_REPORT = 7,     /* pushed, but the result did not reach --report-url */
	EXIT_PRIVILEGES = 8, /* buildah cannot run here: not root, or capabilities
	                        or seccomp forbid its user namespace */
	EXIT_SIGNAL = 128,   /* + the signal that interrupted us */
};

static const char usage_text[] =
    "usage: builder build --image REF (--context DIR | --source-tar FILE |\n"
    "                     --source-url URL [--source-token-file FILE]) [options]\n"
    "       builder image-name --registry URL --namespace NS --remote NAME\n"
    "                     --deployment NAME --container NAME --commit SHA\n"
    "\n"
    "Builds an image from a source tree and a Dockerfile with buildah (chroot\n"
    "isolation) and pushes it to a registry; prints the log on stdout.\n"
    "\n"
    "build: the source, exactly one of\n"
    "  --context DIR              a directory, used in place\n"
    "  --source-tar FILE          a tar file (plain or gzip), unpacked safely\n"
    "                             into a private directory\n"
    "  --source-url URL           an http(s) URL of such a tar file\n"
    "  --source-token-file FILE   bearer token for --source-url\n"
    "build options:\n"
    "  --image REF                REGISTRY/NAME:TAG to build and push (required)\n"
    "  --path DIR                 subdirectory of the source that is the build\n"
    "                             context (default: the whole source)\n"
    "  --dockerfile PATH          relative to the build context, and inside it\n"
    "                             (default: Dockerfile)\n"
    "  --build-arg NAME=VALUE     a build argument; repeatable; not secret (it\n"
    "                             stays in the image history)\n"
    "  --registry-auth FILE       docker config.json with registry credentials\n"
    "                             (a kubernetes.io/dockerconfigjson Secret); never\n"
    "                             printed\n"
    "  --insecure-registry        allow plain-HTTP or unverified-TLS registries\n"
    "  --storage-driver DRIVER    vfs (default) or overlay\n"
    "  --storage-root DIR         keep buildah's storage and layer cache here\n"
    "                             (default: a private directory, removed after)\n"
    "  --buildah PROGRAM          the buildah to run (default: buildah in PATH\n"
    "                             /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin)\n"
    "  --digest-file FILE         write the pushed digest (sha256:...) here\n"
    "  --report-url URL           also POST the log to URL/log and the result to\n"
    "                             URL/result (see docs/builder.md)\n"
    "  --report-token-file FILE   bearer token for --report-url (required with it)\n"
    "  --timeout SECS             give up after SECS seconds, killing buildah\n"
    "image-name: print gitkube's image reference\n"
    "  REGISTRY/NAMESPACE-REMOTE-DEPLOYMENT-CONTAINER:COMMIT\n"
    "  -h, --help                 this text\n"
    "\n"
    "exit status:\n"
    "  0  pushed; the last stdout line is \"-----> Pushed IMAGE@sha256:...\"\n"
    "  1  internal error (memory, temp directory, buildah could not be started)\n"
    "  2  usage error: option, image reference, build argument, token or registry\n"
    "     auth file\n"
    "  3  source problem: source missing or unsafe (e.g. a tar entry with \"..\"),\n"
    "     Dockerfile missing or outside the build context\n"
    "  4  the build failed; nothing was pushed\n"
    "  5  the push failed\n"
    "  6  --timeout passed; buildah's process group was killed\n"
    "  7  pushed, but the result could not be reported to --report-url\n"
    "  8  buildah cannot run here: not root, or the container lacks CAP_SETUID,\n"
    "     CAP_SETGID or CAP_SETFCAP, or may not unshare(CLONE_NEWUSER) (seccomp);\n"
    "     checked before the source is fetched (docs/builder.md \"Privileges\")\n"
    "  128+N  stopped by signal N (SIGINT, SIGTERM); buildah's group was killed\n";

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
	stop_signal = sig;
}

static int usage_error(const char *fmt, const char *arg)
{
	fprintf(stderr, "builder: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\nTry 'builder --help'.\n");
	return EXIT_USAGE;
}

static int exit_code(int ret)
{
	switch (ret) {
	case 0:
		return EXIT_PUSHED;
	case BUILDER_EINVALID:
		return EXIT_USAGE;
	case BUILDER_ESOURCE:
	case BUILDER_ENOTFOUND:
	case BUILDER_EOUTSIDE:
		return EXIT_SOURCE;
	case BUILDER_EBUILD:
		return EXIT_BUILD;
	case BUILDER_EPUSH:
		return EXIT_PUSH;
	case BUILDER_ETIMEOUT:
		return EXIT_TIMEOUT;
	case BUILDER_EPRIVILEGES:
		return EXIT_PRIVILEGES;
	case BUILDER_ECANCELLED:
		return EXIT_SIGNAL + (stop_signal ? stop_signal : SIGTERM);
	default:
		return EXIT_ERROR;
	}
}

/* Each log line: to stdout at once, and queued for the report. */
static void on_log(void *arg, const char *line)
{
	struct report *r = arg;

	printf("%s\n", line);
	fflush(stdout);
	report_line(r, line);
}

static void on_tick(void *arg)
{
	report_flush(arg, false);
}

static int cmd_image_name(const char *const *v)
{
	char *ref = NULL;

	for (int i = 0; i < 6; i++)
		if (!v[i])
			return usage_error("image-name needs --registry, --namespace, --remote, "
			                   "--deployment, --container and --commit%s",
			                   "");
	if (imageref_name(&ref, v[0], v[1], v[2], v[3], v[4], v[5]) < 0) {
		fprintf(stderr, "builder: %s\n", err_msg());
		return EXIT_USAGE;
	}
	printf("%s\n", ref);
	free(ref);
	return EXIT_PUSHED;
}

struct cli {
	struct builder_opts o;
	const char *source_token_file, *report_url, *report_token_file, *digest_file;
	const char *name_parts[6]; /* image-name: registry ... commit */
};

static int cmd_build(struct cli *c)
{
	struct builder_result res;
	struct report *rep = NULL;
	char *source_token = NULL, *report_token = NULL;
	struct sigaction sa;
	int digest_fd = -1, ret, code;

	if (!c->o.image)
		return usage_error("build needs --image REF%s", "");
	if (!c->report_url != !c->report_token_file)
		return usage_error("%s", "--report-url and --report-token-file go together");
	if (c->source_token_file && !c->o.source_url)
		return usage_error("%s", "--source-token-file is only for --source-url");
	if (c->source_token_file && builder_token_read(&source_token, c->source_token_file) < 0) {
		fprintf(stderr, "builder: %s\n", err_msg());
		code = EXIT_USAGE;
		goto out;
	}
	if (c->report_url && (builder_token_read(&report_token, c->report_token_file) < 0 ||
	                      report_new(&rep, c->report_url, report_token) < 0)) {
		fprintf(stderr, "builder: %s\n", err_msg());
		code = EXIT_USAGE;
		goto out;
	}
	builder_token_free(report_token);
	report_token = NULL;
	/* opened now, so a bad path fails before the build rather than after */
	if (c->digest_file &&
	    (digest_fd = open(c->digest_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) <
	        0) {
		fprintf(stderr, "builder: cannot write digest file %s: %s\n", c->digest_file,
		        strerror(errno));
		code = EXIT_USAGE;
		goto out;
	}

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal; /* no SA_RESTART: waits wake up at once */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);

	c->o.source_token = source_token;
	c->o.log = on_log;
	c->o.tick = on_tick;
	c->o.log_arg = rep;
	c->o.cancel = &stop_signal;
	ret = builder_run(&res, &c->o);
	builder_token_free(source_token);
	source_token = NULL;
	code = exit_code(ret);
	if (ret < 0) {
		fprintf(stderr, "builder: %s\n", res.message);
		if (rep) {
			char line[ERR_MAX + 16];

			snprintf(line, sizeof(line), "builder: %s", res.message);
			report_line(rep, line);
		}
	} else if (digest_fd >= 0) {
		char line[80];
		int len = snprintf(line, sizeof(line), "%s\n", res.digest);

		if (write(digest_fd, line, (size_t)len) != len) {
			fprintf(stderr, "builder: cannot write digest file %s: %s\n",
			        c->digest_file, strerror(errno));
			code = EXIT_ERROR;
		}
	}
	if (rep && report_result(rep, c->o.image, ret == 0 ? res.digest : NULL, ret == 0,
	                         res.reason, ret == 0 ? "" : res.message, code) < 0) {
		fprintf(stderr, "builder: %s\n", err_msg());
		if (code == EXIT_PUSHED)
			code = EXIT_REPORT;
	}
out:
	if (digest_fd >= 0)
		close(digest_fd);
	builder_token_free(source_token);
	builder_token_free(report_token);
	report_free(rep);
	return code;
}

int main(int argc, char **argv)
{
	enum {
		OPT_IMAGE = 256,
		OPT_CONTEXT,
		OPT_TAR,
		OPT_URL,
		OPT_URL_TOKEN,
		OPT_PATH,
		OPT_DOCKERFILE,
		OPT_BUILD_ARG,
		OPT_AUTH,
		OPT_INSECURE,
		OPT_DRIVER,
		OPT_ROOT,
		OPT_BUILDAH,
		OPT_DIGEST,
		OPT_REPORT,
		OPT_REPORT_TOKEN,
		OPT_TIMEOUT,
		OPT_REGISTRY, /* image-name parts, in the order of name_parts */
		OPT_NAMESPACE,
		OPT_REMOTE,
		OPT_DEPLOYMENT,
		OPT_CONTAINER,
		OPT_COMMIT,
	};
	static const struct option longopts[] = {
	    {"image", required_argument, NULL, OPT_IMAGE},
	    {"context", required_argument, NULL, OPT_CONTEXT},
	    {"source-tar", required_argument, NULL, OPT_TAR},
	    {"source-url", required_argument, NULL, OPT_URL},
	    {"source-token-file", required_argument, NULL, OPT_URL_TOKEN},
	    {"path", required_argument, NULL, OPT_PATH},
	    {"dockerfile", required_argument, NULL, OPT_DOCKERFILE},
	    {"build-arg", required_argument, NULL, OPT_BUILD_ARG},
	    {"registry-auth", required_argument, NULL, OPT_AUTH},
	    {"insecure-registry", no_argument, NULL, OPT_INSECURE},
	    {"storage-driver", required_argument, NULL, OPT_DRIVER},
	    {"storage-root", required_argument, NULL, OPT_ROOT},
	    {"buildah", required_argument, NULL, OPT_BUILDAH},
	    {"digest-file", required_argument, NULL, OPT_DIGEST},
	    {"report-url", required_argument, NULL, OPT_REPORT},
	    {"report-token-file", required_argument, NULL, OPT_REPORT_TOKEN},
	    {"timeout", required_argument, NULL, OPT_TIMEOUT},
	    {"registry", required_argument, NULL, OPT_REGISTRY},
	    {"namespace", required_argument, NULL, OPT_NAMESPACE},
	    {"remote", required_argument, NULL, OPT_REMOTE},
	    {"deployment", required_argument, NULL, OPT_DEPLOYMENT},
	    {"container", required_argument, NULL, OPT_CONTAINER},
	    {"commit", required_argument, NULL, OPT_COMMIT},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	static const char *build_args[BUILDER_BUILD_ARGS_MAX];
	struct cli c = {.o = {.build_args = build_args}};
	const char *cmd;
	char *end;
	long secs;
	int opt;

	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case OPT_IMAGE:
			c.o.image = optarg;
			break;
		case OPT_CONTEXT:
			c.o.context_dir = optarg;
			break;
		case OPT_TAR:
			c.o.source_tar = optarg;
			break;
		case OPT_URL:
			c.o.source_url = optarg;
			break;
		case OPT_URL_TOKEN:
			c.source_token_file = optarg;
			break;
		case OPT_PATH:
			c.o.path = optarg;
			break;
		case OPT_DOCKERFILE:
			c.o.dockerfile = optarg;
			break;
		case OPT_BUILD_ARG:
			if (c.o.n_build_args == BUILDER_BUILD_ARGS_MAX)
				return usage_error("more than %s --build-arg options", "256");
			if (builder_build_arg_check(optarg) < 0)
				return usage_error("%s", err_msg());
			build_args[c.o.n_build_args++] = optarg;
			break;
		case OPT_AUTH:
			c.o.registry_auth_file = optarg;
			break;
		case OPT_INSECURE:
			c.o.insecure_registry = true;
			break;
		case OPT_DRIVER:
			if (strcmp(optarg, "vfs") && strcmp(optarg, "overlay"))
				return usage_error("--storage-driver is vfs or overlay, not \"%s\"",
				                   optarg);
			c.o.storage_driver = optarg;
			break;
		case OPT_ROOT:
			c.o.storage_root = optarg;
			break;
		case OPT_BUILDAH:
			c.o.buildah = optarg;
			break;
		case OPT_DIGEST:
			c.digest_file = optarg;
			break;
		case OPT_REPORT:
			c.report_url = optarg;
			break;
		case OPT_REPORT_TOKEN:
			c.report_token_file = optarg;
			break;
		case OPT_TIMEOUT:
			errno = 0;
			secs = strtol(optarg, &end, 10);
			if (errno || end == optarg || *end || secs < 1 || secs > 7L * 24 * 3600)
				return usage_error(
				    "--timeout takes whole seconds (1 to 604800), not "
				    "\"%s\"",
				    optarg);
			c.o.timeout_ms = secs * 1000;
			break;
		case OPT_REGISTRY:
		case OPT_NAMESPACE:
		case OPT_REMOTE:
		case OPT_DEPLOYMENT:
		case OPT_CONTAINER:
		case OPT_COMMIT:
			c.name_parts[opt - OPT_REGISTRY] = optarg;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return EXIT_PUSHED;
		default:
			fprintf(stderr, "Try 'builder --help'.\n");
			return EXIT_USAGE;
		}
	}
	if (optind >= argc)
		return usage_error("%s", "missing command (build or image-name)");
	cmd = argv[optind];
	if (argc - optind > 1)
		return usage_error("unexpected argument \"%s\"", argv[optind + 1]);
	if (!strcmp(cmd, "image-name"))
		return cmd_image_name(c.name_parts);
	if (strcmp(cmd, "build"))
		return usage_error("unknown command \"%s\"", cmd);
	return cmd_build(&c);
}
