/* buildsrv-serve: gitd's builder endpoint (buildsrv.h) for one build, so the
 * real builder can be driven against it from a shell test. A test driver,
 * not shipped: the same code gitd runs, minus the pipeline around it.
 *
 * It serves SOURCE (a file), or with --archive the tree of a commit made by
 * gitd's archive_commit, writes the token to DIR/token (0600) and prints
 *
 *   source-url URL
 *   report-url URL
 *   token-file DIR/token
 *   ready
 *
 * then, as they arrive, "log LINE" for each log line, and at the end
 * "result JSON" (the result as received) and "fetches N". It exits 0 once
 * the result is in (after --linger SECS more of serving, when the token is
 * dead: 410), 1 on --timeout (default 300 s) or an error; SIGTERM ends it
 * with the "fetches" line and status 0. --dead removes the build at once, so
 * every request is 410 (a report endpoint that refuses everything). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <git2.h>
#include <jansson.h>

#include "archive.h"
#include "buildsrv.h"
#include "clock.h"
#include "err.h"
#include "repo.h"
#include "banned.h"

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
	stop = 1;
}

static void on_line(void *arg, const char *line)
{
	printf("log %s\n", line);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: buildsrv-serve [--archive REPO COMMIT] [--dead] [--linger SECS]\n"
	           "                      [--timeout SECS] DIR [SOURCE]\n"
	           "Serves one build on 127.0.0.1 with gitd's builder endpoint (a test driver).\n");
}

/* The SOURCE path for --archive: the commit's tree archived to DIR/source.tar.gz. */
static int make_archive(char *out, size_t size, const char *dir, const char *repo_path,
                        const char *commit)
{
	git_repository *repo = NULL;
	git_oid oid;
	int ret = -1;

	snprintf(out, size, "%s/source.tar.gz", dir);
	if (git_repository_open(&repo, repo_path) < 0) {
		err_set("cannot open %s: %s", repo_path, repo_git_error());
		goto out;
	}
	if (git_oid_fromstr(&oid, commit) < 0) {
		err_set("bad commit id \"%s\"", commit);
		goto out;
	}
	ret = archive_commit(repo, &oid, out, NULL);
out:
	git_repository_free(repo);
	return ret;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"archive", required_argument, NULL, 'a'}, {"dead", no_argument, NULL, 'd'},
	    {"linger", required_argument, NULL, 'l'},  {"timeout", required_argument, NULL, 't'},
	    {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0}};
	struct buildsrv *s = NULL;
	struct buildsrv_build *b = NULL;
	struct buildsrv_result res;
	struct sigaction sa = {0};
	char token_path[4096], archived[4096];
	const char *repo_path = NULL, *commit = NULL, *dir, *source;
	long linger_s = 0, timeout_s = 300, deadline;
	bool is_dead = false, has_result = false;
	json_t *j = NULL;
	char *text = NULL;
	FILE *f;
	int c, fd, ret = 1;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'a':
			repo_path = optarg;
			if (optind >= argc) {
				usage(stderr);
				return 2;
			}
			commit = argv[optind++];
			break;
		case 'd':
			is_dead = true;
			break;
		case 'l':
			linger_s = atol(optarg);
			break;
		case 't':
			timeout_s = atol(optarg);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (argc - optind != (repo_path ? 1 : 2)) {
		usage(stderr);
		return 2;
	}
	dir = argv[optind];
	source = repo_path ? archived : argv[optind + 1];
	setvbuf(stdout, NULL, _IOLBF, 0);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	git_libgit2_init();

	if (repo_path && make_archive(archived, sizeof(archived), dir, repo_path, commit) < 0)
		goto out;
	if (buildsrv_start(&s, "127.0.0.1", NULL) < 0 || buildsrv_add(&b, s, source) < 0)
		goto out;
	snprintf(token_path, sizeof(token_path), "%s/token", dir);
	fd = open(token_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || !(f = fdopen(fd, "w"))) {
		err_set("cannot write %s: %s", token_path, strerror(errno));
		goto out;
	}
	fprintf(f, "%s\n", buildsrv_token(b));
	fclose(f);
	printf("source-url %s\nreport-url %s\ntoken-file %s\n", buildsrv_source_url(b),
	       buildsrv_report_url(b), token_path);
	if (is_dead) {
		buildsrv_remove(s, b);
		b = NULL;
	}
	printf("ready\n");

	deadline = clock_now_ms() + timeout_s * 1000;
	while (!stop && clock_now_ms() < deadline) {
		if (b)
			buildsrv_drain(b, on_line, NULL);
		if (b && !has_result && buildsrv_result(&res, b)) {
			buildsrv_drain(b, on_line, NULL);
			has_result = true;
			j = json_pack("{s:s, s:s?, s:b, s:s, s:s, s:i}", "image", res.image,
			              "digest", *res.digest ? res.digest : NULL, "succeeded",
			              res.succeeded, "reason", res.reason, "message", res.message,
			              "exitCode", res.exit_code);
			text = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
			printf("result %s\n", text ? text : "?");
			deadline = clock_now_ms() + linger_s * 1000;
		}
		usleep(50 * 1000);
	}
	if (!has_result && !stop && !is_dead) {
		err_set("no result within %ld s", timeout_s);
		goto out;
	}
	ret = 0;
out:
	/* the last line, always: a removed (--dead) build served nothing */
	printf("fetches %u\n", b ? buildsrv_source_fetches(b) : 0);
	if (ret)
		fprintf(stderr, "buildsrv-serve: %s\n", err_msg());
	buildsrv_remove(s, b);
	buildsrv_free(s);
	free(text);
	json_decref(j);
	git_libgit2_shutdown();
	return ret;
}
