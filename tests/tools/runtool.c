/* runtool: drives gitd's pipelinerun module from a script, so the
 * end-to-end tests can check what it writes (PipelineRun status, mirror
 * ConfigMap, Events, Remote lastRun) with kubectl on the real API server.
 * Not installed; not a user program. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "kube.h"
#include "pipelinerun.h"
#include "banned.h"

static const char usage[] =
    "usage: runtool run NS REMOTE REMOTE_GVR REF BEFORE AFTER < SCRIPT\n"
    "       runtool sweep [NS...]\n"
    "\n"
    "run creates a PipelineRun (reason Queued), prints 'name NAME', then runs\n"
    "SCRIPT's lines, one call each:\n"
    "  progress REASON MESSAGE...\n"
    "  stage NAME PHASE [MESSAGE...]\n"
    "  image DEPLOYMENT CONTAINER IMAGE\n"
    "  log TEXT...\n"
    "  logs N PREFIX                 N lines 'PREFIX I' (I from 1)\n"
    "  finish true|false REASON MESSAGE...\n"
    "  status                        print the status as last set (JSON)\n"
    "sweep runs pipelinerun_sweep_interrupted and prints 'marked N'.\n"
    "The cluster is $KUBECONFIG's. Exit status: 0 ok, 1 failure, 2 usage.\n";

/* Splits off the next space-separated word of *S (NULL when none). */
static char *word(char **s)
{
	char *w = *s, *end;

	while (*w == ' ')
		w++;
	if (!*w)
		return NULL;
	end = strchr(w, ' ');
	if (end) {
		*end = '\0';
		*s = end + 1;
	} else {
		*s = w + strlen(w);
	}
	return w;
}

static int run_script(struct pipelinerun *r)
{
	char line[65536];
	int ret = 0;

	while (fgets(line, sizeof(line), stdin)) {
		char *rest = line, *cmd;

		line[strcspn(line, "\n")] = '\0';
		cmd = word(&rest);
		if (!cmd || cmd[0] == '#')
			continue;
		if (!strcmp(cmd, "progress")) {
			char *reason = word(&rest);

			pipelinerun_progress(r, reason ? reason : "", rest);
		} else if (!strcmp(cmd, "stage")) {
			char *name = word(&rest), *phase = word(&rest);

			if (!name || !phase)
				goto bad;
			pipelinerun_stage(r, name, phase, *rest ? rest : NULL);
		} else if (!strcmp(cmd, "image")) {
			char *d = word(&rest), *c = word(&rest), *img = word(&rest);

			if (!d || !c || !img)
				goto bad;
			pipelinerun_image(r, d, c, img);
		} else if (!strcmp(cmd, "log")) {
			pipelinerun_log(r, rest);
		} else if (!strcmp(cmd, "logs")) {
			char *n = word(&rest), buf[1024];

			if (!n)
				goto bad;
			for (long i = 1; i <= atol(n); i++) {
				snprintf(buf, sizeof(buf), "%s %ld", rest, i);
				pipelinerun_log(r, buf);
			}
		} else if (!strcmp(cmd, "finish")) {
			char *ok = word(&rest), *reason = word(&rest);

			if (!ok)
				goto bad;
			if (pipelinerun_finish(r, !strcmp(ok, "true"), reason, rest) < 0) {
				fprintf(stderr, "runtool: finish: %s\n", err_msg());
				ret = 1;
			}
		} else if (!strcmp(cmd, "status")) {
			json_dumpf(pipelinerun_status(r), stdout, JSON_COMPACT | JSON_SORT_KEYS);
			printf("\n");
		} else {
			goto bad;
		}
		fflush(stdout);
		continue;
	bad:
		fprintf(stderr, "runtool: bad script line: %s\n", line);
		return 2;
	}
	return ret;
}

int main(int argc, char **argv)
{
	struct kube_client *c = NULL;
	struct pipelinerun *r = NULL;
	int ret = 2;

	if (argc < 2 || (!strcmp(argv[1], "run") && argc != 8) ||
	    (strcmp(argv[1], "run") && strcmp(argv[1], "sweep"))) {
		fputs(usage, stderr);
		return 2;
	}
	if (kube_client_new_default(&c, NULL, NULL) < 0) {
		fprintf(stderr, "runtool: %s\n", err_msg());
		return 1;
	}
	if (!strcmp(argv[1], "sweep")) {
		int n = pipelinerun_sweep_interrupted(c, argc > 2 ? (const char *const *)argv + 2
		                                                  : NULL);

		if (n < 0) {
			fprintf(stderr, "runtool: sweep: %s\n", err_msg());
			ret = 1;
		} else {
			printf("marked %d\n", n);
			ret = 0;
		}
		goto out;
	} else {
		const struct pipelinerun_spec spec = {
		    .ns = argv[2],
		    .remote = argv[3],
		    .remote_gvr = argv[4],
		    .ref = argv[5],
		    .before = argv[6],
		    .after = argv[7],
		    .fingerprint = "SHA256:runtool",
		    .comment = "runtool@test",
		};

		if (pipelinerun_create(&r, c, &spec, "Queued", "waiting for the pipeline") < 0) {
			fprintf(stderr, "runtool: create: %s\n", err_msg());
			ret = 1;
			goto out;
		}
		printf("name %s\n", pipelinerun_name(r));
		fflush(stdout);
		ret = run_script(r);
	}
out:
	pipelinerun_free(r);
	kube_client_free(c);
	return ret;
}
