/* Unit tests of the pipeline worker's distrust of the connection process:
 * pipesrv_request_parse (names, the repository and quarantine paths, the
 * key fingerprint, commands) and the checks pipeline_serve makes before it
 * reads the Remote (the repository and quarantine on disk, symbolic links
 * included). The key check against spec.authorizedKeys needs an API server:
 * tests/t7300-pipeline-trust.sh. */
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tap.h"
#include "err.h"
#include "fs.h"
#include "pipeline.h"
#include "pipesrv.h"
#include "repo.h"
#include "banned.h"

#define FPR "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s"
#define OID_A "0123456789abcdef0123456789abcdef01234567"
#define OID_Z "0000000000000000000000000000000000000000"

static char data_dir[PATH_MAX];

/* A request as the connection side sends it (pipesrv_pre_receive), with
 * REPO and QUARANTINE as given (NULL: left out / null) and COMMANDS a JSON
 * array. Caller frees. */
static char *request(const char *ns, const char *name, const char *repo, const char *quarantine,
                     const char *fpr, const char *commands, const char *options)
{
	json_error_t je;
	json_t *req = json_pack("{s:{s:s, s:s, s:b}, s:s?, s:s?, s:{s:s, s:s}, s:o, s:o}", "remote",
	                        "namespace", ns, "name", name, "gitkube", 0, "repo", repo,
	                        "quarantine", quarantine, "pusher", "fingerprint", fpr, "comment",
	                        "forged comment", "options", json_loads(options, 0, &je),
	                        "commands", json_loads(commands, 0, &je));
	char *s = req ? json_dumps(req, JSON_COMPACT) : NULL;

	json_decref(req);
	return s;
}

#define ONE_CMD "[{\"ref\":\"refs/heads/main\",\"before\":\"" OID_Z "\",\"after\":\"" OID_A "\"}]"

/* Parses S (freed) against data_dir; returns what pipesrv_request_parse did. */
static int parse(struct pipeline_request *out, char *s)
{
	int rc = s ? pipesrv_request_parse(out, s, strlen(s), data_dir) : -2;

	free(s);
	return rc;
}

static void refused(char *s, const char *want, const char *what)
{
	struct pipeline_request r;

	err_clear();
	ok(parse(&r, s) == -1 && strstr(err_msg(), want) && r.ncmds == 0 && !r.cmds,
	   "refused: %s (%s)", what, err_msg());
}

static void test_parse(void)
{
	char repo[PATH_MAX + 32], q[PATH_MAX + 128], other[PATH_MAX + 32];
	struct pipeline_request r;

	snprintf(repo, sizeof(repo), "%s/default/web.git", data_dir);
	snprintf(other, sizeof(other), "%s/default/db.git", data_dir);
	snprintf(q, sizeof(q), "%s/objects/incoming-Ab12Cd", repo);

	ok(parse(&r, request("default", "web", repo, q, FPR, ONE_CMD, "[]")) == 0,
	   "a request as the connection sends it parses");
	is_str(r.ns, "default", "its namespace");
	is_str(r.name, "web", "its name");
	is_str(r.repo_path, repo, "the repository is DATA_DIR/NS/NAME.git");
	is_str(r.quarantine, q, "the quarantine is kept");
	is_str(r.fingerprint, FPR, "the fingerprint is kept");
	ok(r.is_wait && !r.is_gitkube, "the push waits; not gitkube");
	ok(r.ncmds == 1 && !strcmp(r.cmds[0].refname, "refs/heads/main") &&
	       git_oid_is_zero(&r.cmds[0].before) && !git_oid_is_zero(&r.cmds[0].after),
	   "one command: refs/heads/main, a new ref");
	pipeline_request_release(&r);
	ok(r.ncmds == 0 && !r.cmds, "release leaves it empty");

	ok(parse(&r, request("default", "web", NULL, NULL, FPR, ONE_CMD,
	                     "[\"x=1\",\"slipway.wait=false\"]")) == 0 &&
	       !r.is_wait && !r.quarantine[0] && !strcmp(r.repo_path, repo),
	   "without repo and quarantine the worker's own path is used; slipway.wait=false");
	pipeline_request_release(&r);

	refused(request("default", "web", other, NULL, FPR, ONE_CMD, "[]"), "is not the one of",
	        "another Remote's repository");
	refused(request("default", "web", "/etc", NULL, FPR, ONE_CMD, "[]"), "is not the one of",
	        "a repository outside the data directory");
	refused(request("..", "web", NULL, NULL, FPR, ONE_CMD, "[]"), "invalid namespace",
	        "namespace ..");
	refused(request("default", "../../etc/x", NULL, NULL, FPR, ONE_CMD, "[]"),
	        "invalid remote name", "a name with slashes");
	refused(request("Default", "web", NULL, NULL, FPR, ONE_CMD, "[]"), "invalid namespace",
	        "an upper-case namespace");
	refused(request("default", "-web", NULL, NULL, FPR, ONE_CMD, "[]"), "invalid remote name",
	        "a name starting with '-'");

	refused(request("default", "web", repo, "/tmp/incoming-abc", FPR, ONE_CMD, "[]"),
	        "is not in the repository", "a quarantine outside the repository");
	snprintf(q, sizeof(q), "%s/objects/incoming-abc", other);
	refused(request("default", "web", repo, q, FPR, ONE_CMD, "[]"), "is not in the repository",
	        "another Remote's quarantine");
	snprintf(q, sizeof(q), "%s/objects/incoming-abc/../../../db.git/objects/incoming-x", repo);
	refused(request("default", "web", repo, q, FPR, ONE_CMD, "[]"), "is not in the repository",
	        "a quarantine with ..");
	snprintf(q, sizeof(q), "%s/objects/incoming-..", repo);
	refused(request("default", "web", repo, q, FPR, ONE_CMD, "[]"), "is not in the repository",
	        "incoming-..");
	snprintf(q, sizeof(q), "%s/objects/pack", repo);
	refused(request("default", "web", repo, q, FPR, ONE_CMD, "[]"), "is not in the repository",
	        "objects/pack as the quarantine");
	snprintf(q, sizeof(q), "%s/objects/incoming-", repo);
	refused(request("default", "web", repo, q, FPR, ONE_CMD, "[]"), "is not in the repository",
	        "incoming- without a name");

	refused(request("default", "web", NULL, NULL, "MD5:aa:bb", ONE_CMD, "[]"),
	        "malformed key fingerprint", "an MD5 fingerprint");
	refused(request("default", "web", NULL, NULL, "SHA256:a b", ONE_CMD, "[]"),
	        "malformed key fingerprint", "a fingerprint with a space");
	refused(request("default", "web", NULL, NULL, FPR, "[]", "[]"), "are required",
	        "no commands");
	refused(request("default", "web", NULL, NULL, FPR,
	                "[{\"ref\":\"refs/heads/a..b\",\"before\":\"" OID_Z "\",\"after\":\"" OID_A
	                "\"}]",
	                "[]"),
	        "invalid refname", "a refname with ..");
	refused(request("default", "web", NULL, NULL, FPR,
	                "[{\"ref\":\"HEAD\",\"before\":\"" OID_Z "\",\"after\":\"" OID_A "\"}]",
	                "[]"),
	        "invalid refname", "a ref outside refs/");
	refused(request("default", "web", NULL, NULL, FPR,
	                "[{\"ref\":\"refs/heads/main\",\"before\":\"00\",\"after\":\"" OID_A "\"}]",
	                "[]"),
	        "hex digits", "a short object id");
	refused(request("default", "web", NULL, NULL, FPR,
	                "[{\"ref\":\"refs/heads/main\",\"before\":\"" OID_Z "\",\"after\":\"" OID_A
	                "\"},{\"ref\":\"refs/heads/main\",\"before\":\"" OID_A
	                "\",\"after\":\"" OID_Z "\"}]",
	                "[]"),
	        "given twice", "one ref twice");

	{
		char *s = strdup("{\"remote\":{\"namespace\":\"default\",\"name\":\"web\","
		                 "\"name\":\"db\"},\"pusher\":{\"fingerprint\":\"" FPR "\"},"
		                 "\"commands\":" ONE_CMD "}");

		refused(s, "malformed request", "duplicate keys");
	}
	refused(strdup("[1,2]"), "not an object", "an array");
	refused(strdup("{\"remote\":"), "malformed request", "a cut line");
}

/* ---- pipeline_serve: the checks before the Remote is read ------------ */

struct seen {
	int nverdicts, nhangups;
	char error[512]; /* the first command's */
};

static void on_say(void *arg, const char *line)
{
}

static int on_verdict(void *arg, const struct pipeline_request *req, char *const *errors)
{
	struct seen *s = arg;

	s->nverdicts++;
	snprintf(s->error, sizeof(s->error), "%s", errors[0] ? errors[0] : "");
	return 0;
}

static int on_updated(void *arg, const struct pipeline_request *req, bool *is_updated)
{
	return -1;
}

static void on_hang_up(void *arg, bool is_done)
{
	struct seen *s = arg;

	s->nhangups++;
}

/* Serves the push R with a kubeconfig that does not exist, so that a push
 * passing the local checks fails at reading the Remote. */
static void serve(struct seen *s, const struct pipeline_request *r)
{
	static const volatile sig_atomic_t cancel;
	struct pipeline_config cfg = {0};
	struct pipeline_worker w = {&cfg, "/nonexistent/kubeconfig", NULL, NULL, NULL, NULL, NULL,
	                            NULL};
	struct pipeline_conn c = {on_say, on_verdict, on_updated, on_hang_up, s, &cancel};

	memset(s, 0, sizeof(*s));
	ok(pipeline_serve(r, &w, &c) == -1 && s->nverdicts == 1 && s->nhangups == 1,
	   "one verdict, then the worker hangs up");
}

static void test_serve(void)
{
	char repo[PATH_MAX + 32], q[PATH_MAX + 128], outside[PATH_MAX + 16], link[PATH_MAX + 32];
	git_repository *gr = NULL;
	struct pipeline_request r;
	struct seen s;

	ok(repo_open(&gr, data_dir, "default", "web") == 0, "a repository for default/web");
	git_repository_free(gr);
	ok(repo_open(&gr, data_dir, "default", "db") == 0, "a repository for default/db");
	git_repository_free(gr);
	snprintf(repo, sizeof(repo), "%s/default/web.git", data_dir);
	snprintf(outside, sizeof(outside), "%s/outside", data_dir);
	mkdir(outside, 0700);

	/* a quarantine that is a link to a directory elsewhere */
	snprintf(q, sizeof(q), "%s/objects/incoming-link", repo);
	ok(symlink(outside, q) == 0, "objects/incoming-link points outside the repository");
	ok(parse(&r, request("default", "web", repo, q, FPR, ONE_CMD, "[]")) == 0,
	   "the request itself is well-formed");
	serve(&s, &r);
	ok(strstr(s.error, "quarantine of default/web is not in its repository") != NULL,
	   "a linked quarantine is refused: %s", s.error);
	pipeline_request_release(&r);

	/* a quarantine that does not exist */
	snprintf(q, sizeof(q), "%s/objects/incoming-gone", repo);
	ok(parse(&r, request("default", "web", repo, q, FPR, ONE_CMD, "[]")) == 0,
	   "a request naming a missing quarantine parses");
	serve(&s, &r);
	ok(strstr(s.error, "quarantine of default/web not found") != NULL,
	   "a missing quarantine is refused: %s", s.error);
	pipeline_request_release(&r);

	/* a repository that is a link to another Remote's */
	snprintf(link, sizeof(link), "%s/default/api.git", data_dir);
	ok(symlink("db.git", link) == 0, "default/api.git links to default/db.git");
	ok(parse(&r, request("default", "api", NULL, NULL, FPR, ONE_CMD, "[]")) == 0,
	   "a request for default/api parses");
	serve(&s, &r);
	ok(strstr(s.error, "repository default/api is not in the data directory") != NULL,
	   "a linked repository is refused: %s", s.error);
	pipeline_request_release(&r);

	/* a real quarantine passes, and the Remote is read next */
	snprintf(q, sizeof(q), "%s/objects/incoming-Real01", repo);
	ok(mkdir(q, 0700) == 0, "objects/incoming-Real01 exists");
	ok(parse(&r, request("default", "web", repo, q, FPR, ONE_CMD, "[]")) == 0,
	   "a request with it parses");
	serve(&s, &r);
	ok(!strstr(s.error, "quarantine") && !strstr(s.error, "data directory") &&
	       !strncmp(s.error, "slipway: ", 9),
	   "the quarantine passes; the push fails later, at the Remote: %s", s.error);
	pipeline_request_release(&r);
}

int main(void)
{
	char tmpl[] = "/tmp/slipway-unit-pipesrv-XXXXXX";

	if (!mkdtemp(tmpl) || !realpath(tmpl, data_dir)) {
		printf("Bail out! cannot create a scratch directory\n");
		return 1;
	}
	git_libgit2_init();
	test_parse();
	test_serve();
	fs_remove_tree(data_dir);
	git_libgit2_shutdown();
	return tap_done();
}
