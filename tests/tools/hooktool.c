/* hooktool: a command-line face of gitd/hook for the end-to-end tests, so
 * shell tests can run an event's hooks for a real Remote against the real
 * API server, and write a hooks kubeconfig. Not installed; not a user
 * program. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "hook.h"
#include "kube.h"
#include "banned.h"

static const char usage[] =
    "usage: hooktool run NS REMOTE EVENT EVENT_JSON_FILE --work-dir D [--admin-dir D]\n"
    "                    [--cwd D] [--hooks-kubeconfig F] [--timeout-ms N]\n"
    "       hooktool kubeconfig PATH NS SERVICEACCOUNT [TTL_SECONDS]\n"
    "\n"
    "The API server is KUBECONFIG's. run prints 'start: HOOK' before each hook,\n"
    "'| LINE' for each output line, then 'result: RET', 'nrun: N', 'hook: H'\n"
    "and 'message: M'; it exits 0 when every hook exited 0, 1 when one failed,\n"
    "3 on an internal error. kubeconfig exits 0, or minus the kube.h code\n"
    "(3 not found, 6 forbidden, ...; 1 other) with 'error: MESSAGE'.\n";

static void on_line(void *arg, const char *line)
{
	printf("| %s\n", line);
	fflush(stdout);
}

static void on_start(void *arg, const char *hook)
{
	printf("start: %s\n", hook);
	fflush(stdout);
}

static char *slurp(const char *file)
{
	FILE *f = fopen(file, "r");
	char *data = NULL;
	size_t len = 0;
	ssize_t n;

	if (!f)
		return NULL;
	n = getdelim(&data, &len, '\0', f);
	fclose(f);
	if (n < 0) {
		free(data);
		return NULL;
	}
	return data;
}

static int cmd_run(struct kube_client *c, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"work-dir", required_argument, NULL, 'w'},
	    {"admin-dir", required_argument, NULL, 'a'},
	    {"cwd", required_argument, NULL, 'c'},
	    {"hooks-kubeconfig", required_argument, NULL, 'k'},
	    {"timeout-ms", required_argument, NULL, 't'},
	    {NULL, 0, NULL, 0},
	};
	struct hook_opts o = {.on_line = on_line, .on_start = on_start};
	struct hook_result r;
	json_t *remote = NULL;
	struct remote rm;
	char *event_json = NULL;
	int opt, ret;

	while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		if (opt == 'w')
			o.work_dir = optarg;
		else if (opt == 'a')
			o.admin_dir = optarg;
		else if (opt == 'c')
			o.cwd = optarg;
		else if (opt == 'k')
			o.kubeconfig = optarg;
		else if (opt == 't')
			o.default_timeout_ms = atol(optarg);
		else
			return fprintf(stderr, "%s", usage), 2;
	}
	if (argc - optind != 4 || !o.work_dir)
		return fprintf(stderr, "%s", usage), 2;
	o.event = argv[optind + 2];
	if (!(event_json = slurp(argv[optind + 3]))) {
		fprintf(stderr, "hooktool: cannot read %s\n", argv[optind + 3]);
		return 2;
	}
	o.event_json = event_json;
	ret = kube_get(&remote, c, "slipway.dev/v1alpha1/remotes", argv[optind], argv[optind + 1]);
	if (ret < 0) {
		fprintf(stderr, "error: %s\n", err_msg());
		free(event_json);
		return 3;
	}
	ret = remote_parse(&rm, remote, false);
	if (ret < 0) {
		fprintf(stderr, "error: remote %s/%s: %s\n", argv[optind], argv[optind + 1],
		        err_msg());
		json_decref(remote);
		free(event_json);
		return 3;
	}
	ret = hook_run_event(&r, c, &rm, &o);
	printf("result: %d\nnrun: %u\nhook: %s\nmessage: %s\n", ret, r.nrun, r.hook, r.message);
	if (ret < 0)
		fprintf(stderr, "error: %s\n", err_msg());
	remote_release(&rm);
	json_decref(remote);
	free(event_json);
	return ret < 0 ? 3 : ret;
}

static int cmd_kubeconfig(struct kube_client *c, int argc, char **argv)
{
	long ttl = argc > 5 ? atol(argv[5]) : 3600;
	int ret;

	if (argc < 5)
		return fprintf(stderr, "%s", usage), 2;
	ret = hook_kubeconfig_write(argv[2], c, argv[3], argv[4], ttl);
	if (ret == 0)
		return 0;
	fprintf(stderr, "error: %s\n", err_msg());
	return ret < 0 && ret >= -10 ? -ret : 1;
}

int main(int argc, char **argv)
{
	struct kube_client *c = NULL;
	int ret;

	if (argc < 2)
		return fprintf(stderr, "%s", usage), 2;
	if (kube_client_new_default(&c, NULL, NULL) < 0) {
		fprintf(stderr, "error: %s\n", err_msg());
		return 3;
	}
	if (!strcmp(argv[1], "run"))
		ret = cmd_run(c, argc - 1, argv + 1);
	else if (!strcmp(argv[1], "kubeconfig"))
		ret = cmd_kubeconfig(c, argc, argv);
	else
		ret = (fprintf(stderr, "%s", usage), 2);
	kube_client_free(c);
	return ret;
}
