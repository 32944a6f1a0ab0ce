/* kubetool: a command-line face of lib/kube for the end-to-end tests, so
 * shell tests can drive every client operation against the real API server
 * and check the outcome with kubectl. Not installed; not a user program. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "kube.h"
#include "banned.h"

static const char usage[] =
    "usage: kubetool [--kubeconfig F] [--context C] COMMAND ARGS\n"
    "\n"
    "  get GVR NS NAME                    print the object as JSON\n"
    "  list GVR NS [-l SEL] [--field-selector SEL] [--limit N] [--page [--continue T]]\n"
    "                                     print the list (all pages unless --page)\n"
    "  create GVR NS FILE                 FILE holds JSON ('-' for stdin)\n"
    "  replace GVR NS NAME FILE\n"
    "  update-status GVR NS NAME FILE\n"
    "  delete GVR NS NAME [--propagation P]\n"
    "  patch GVR NS NAME TYPE FILE [--field-manager M] [--force] [--subresource S]\n"
    "                                     TYPE: strategic, merge, json, apply\n"
    "  watch GVR NS [-l SEL] [--resource-version RV] [--max-events N]\n"
    "                                     print 'EVENT NAME RESOURCEVERSION' lines\n"
    "\n"
    "GVR is GROUP/VERSION/RESOURCE or VERSION/RESOURCE; NS '-' means none.\n"
    "Exit status: 0 ok, 2 usage, else minus the kube.h code (3 not found,\n"
    "4 exists, 5 conflict, 6 forbidden, 7 unauthorized, 8 invalid, 9 gone,\n"
    "10 timeout, 1 other). Failures print 'status: CODE REASON: MESSAGE'.\n";

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	stop = 1;
}

static int fail(struct kube_client *c, int ret)
{
	const struct kube_status *st = kube_client_status(c);

	fprintf(stderr, "error: %s\n", err_msg());
	fprintf(stderr, "status: %ld %s: %s\n", st->code, st->reason, st->message);
	return ret < 0 && ret >= -10 ? -ret : 1;
}

static int print_json(json_t *j)
{
	if (j)
		json_dumpf(j, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
	printf("\n");
	json_decref(j);
	return 0;
}

static json_t *load_json(const char *file)
{
	json_error_t e;
	json_t *j = strcmp(file, "-") ? json_load_file(file, 0, &e) : json_loadf(stdin, 0, &e);

	if (!j)
		fprintf(stderr, "kubetool: %s: %s (line %d)\n", file, e.text, e.line);
	return j;
}

struct watch_print {
	long max_events, seen;
};

static int print_event(void *arg, enum kube_event ev, json_t *obj)
{
	struct watch_print *wp = arg;
	json_t *md = json_object_get(obj, "metadata");
	const char *name = json_string_value(json_object_get(md, "name"));
	const char *rv = json_string_value(json_object_get(md, "resourceVersion"));

	printf("%s %s %s\n", kube_event_name(ev), name ? name : "-", rv ? rv : "-");
	fflush(stdout);
	if (ev != KUBE_EVENT_BOOKMARK && ev != KUBE_EVENT_SYNCED && wp->max_events &&
	    ++wp->seen >= wp->max_events)
		return 1;
	return 0;
}

int main(int argc, char **argv)
{
	enum {
		O_KC = 256,
		O_CTX,
		O_FS,
		O_LIMIT,
		O_PAGE,
		O_CONT,
		O_PROP,
		O_FM,
		O_FORCE,
		O_SUB,
		O_RV,
		O_MAX
	};
	static const struct option longopts[] = {
	    {"kubeconfig", required_argument, NULL, O_KC},
	    {"context", required_argument, NULL, O_CTX},
	    {"selector", required_argument, NULL, 'l'},
	    {"field-selector", required_argument, NULL, O_FS},
	    {"limit", required_argument, NULL, O_LIMIT},
	    {"page", no_argument, NULL, O_PAGE},
	    {"continue", required_argument, NULL, O_CONT},
	    {"propagation", required_argument, NULL, O_PROP},
	    {"field-manager", required_argument, NULL, O_FM},
	    {"force", no_argument, NULL, O_FORCE},
	    {"subresource", required_argument, NULL, O_SUB},
	    {"resource-version", required_argument, NULL, O_RV},
	    {"max-events", required_argument, NULL, O_MAX},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *kubeconfig = NULL, *context = NULL, *prop = NULL;
	struct kube_list_opts lo = {0};
	struct kube_patch_opts po = {0};
	struct kube_watch_opts wo = {0};
	struct watch_print wp = {0};
	struct kube_client *c = NULL;
	int opt, page = 0, ret;
	const char *cmd, *gvr, *ns;
	json_t *out = NULL, *in = NULL;

	while ((opt = getopt_long(argc, argv, "+hl:", longopts, NULL)) != -1) {
		switch (opt) {
		case O_KC:
			kubeconfig = optarg;
			break;
		case O_CTX:
			context = optarg;
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			fputs(usage, stderr);
			return 2;
		}
	}
	if (argc - optind < 3) {
		fputs(usage, stderr);
		return 2;
	}
	cmd = argv[optind];
	gvr = argv[optind + 1];
	ns = strcmp(argv[optind + 2], "-") ? argv[optind + 2] : NULL;
	optind += 3;
	/* options may follow the positional arguments */
	{
		int pos = 0;
		char *args[16];

		while (optind < argc) {
			opt = getopt_long(argc, argv, "+l:", longopts, NULL);
			if (opt == -1) {
				if (pos == 16)
					return 2;
				args[pos++] = argv[optind++];
				continue;
			}
			switch (opt) {
			case 'l':
				lo.label_selector = wo.label_selector = optarg;
				break;
			case O_FS:
				lo.field_selector = wo.field_selector = optarg;
				break;
			case O_LIMIT:
				lo.limit = atol(optarg);
				break;
			case O_PAGE:
				page = 1;
				break;
			case O_CONT:
				lo.continue_token = optarg;
				break;
			case O_PROP:
				prop = optarg;
				break;
			case O_FM:
				po.field_manager = optarg;
				break;
			case O_FORCE:
				po.force = true;
				break;
			case O_SUB:
				po.subresource = optarg;
				break;
			case O_RV:
				wo.resource_version = optarg;
				break;
			case O_MAX:
				wp.max_events = atol(optarg);
				break;
			default:
				fputs(usage, stderr);
				return 2;
			}
		}
		for (int i = 0; i < pos; i++)
			argv[i] = args[i];
		argc = pos;
	}
	if (kube_client_new_default(&c, kubeconfig, context) < 0) {
		fprintf(stderr, "error: %s\n", err_msg());
		return 1;
	}
#define NEED(n)                                                                                    \
	do {                                                                                       \
		if (argc != (n)) {                                                                 \
			fputs(usage, stderr);                                                      \
			ret = 2;                                                                   \
			goto out;                                                                  \
		}                                                                                  \
	} while (0)
	if (!strcmp(cmd, "get")) {
		NEED(1);
		ret = kube_get(&out, c, gvr, ns, argv[0]);
	} else if (!strcmp(cmd, "get-each-line")) {
		char line[64];

		/* one client, one GET per line of stdin: shows credentials
		 * being re-read between requests */
		NEED(1);
		while (fgets(line, sizeof(line), stdin)) {
			const struct kube_status *st;

			ret = kube_get(&out, c, gvr, ns, argv[0]);
			st = kube_client_status(c);
			printf(ret == 0 ? "ok\n" : "error %ld %s\n", st->code, st->reason);
			fflush(stdout);
			json_decref(out);
			out = NULL;
		}
		ret = 0;
		goto out;
	} else if (!strcmp(cmd, "list")) {
		NEED(0);
		ret =
		    page ? kube_list_page(&out, c, gvr, ns, &lo) : kube_list(&out, c, gvr, ns, &lo);
	} else if (!strcmp(cmd, "create")) {
		NEED(1);
		ret = (in = load_json(argv[0])) ? kube_create(&out, c, gvr, ns, in) : 2;
	} else if (!strcmp(cmd, "replace")) {
		NEED(2);
		ret = (in = load_json(argv[1])) ? kube_replace(&out, c, gvr, ns, argv[0], NULL, in)
		                                : 2;
	} else if (!strcmp(cmd, "update-status")) {
		NEED(2);
		ret = (in = load_json(argv[1])) ? kube_update_status(&out, c, gvr, ns, argv[0], in)
		                                : 2;
	} else if (!strcmp(cmd, "delete")) {
		NEED(1);
		ret = kube_delete(&out, c, gvr, ns, argv[0], prop);
	} else if (!strcmp(cmd, "patch")) {
		static const char *const types[] = {"strategic", "merge", "json", "apply"};
		int t;

		NEED(3);
		for (t = 0; t < 4 && strcmp(types[t], argv[1]); t++)
			;
		if (t == 4) {
			fputs(usage, stderr);
			ret = 2;
			goto out;
		}
		ret = (in = load_json(argv[2]))
		          ? kube_patch(&out, c, gvr, ns, argv[0], (enum kube_patch_type)t, in, &po)
		          : 2;
	} else if (!strcmp(cmd, "watch")) {
		struct sigaction sa = {0};

		NEED(0);
		sa.sa_handler = on_signal;
		sigaction(SIGTERM, &sa, NULL);
		sigaction(SIGINT, &sa, NULL);
		wo.stop = &stop;
		ret = kube_watch(c, gvr, ns, &wo, print_event, &wp);
		if (ret > 0)
			ret = 0;
	} else {
		fputs(usage, stderr);
		ret = 2;
		goto out;
	}
	if (ret < 0) {
		ret = fail(c, ret);
		goto out;
	}
	if (ret == 0 && strcmp(cmd, "watch"))
		print_json(out);
	out = NULL;
out:
	json_decref(out);
	json_decref(in);
	kube_client_free(c);
	return ret;
}
