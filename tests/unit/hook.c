/* Unit tests of gitd/hook: admin-directory hooks run for real in a scratch
 * directory (order, stdin, environment, working directory, failures,
 * timeouts), and hook_has_event. ConfigMap hooks and the hooks' kubeconfig
 * need an API server: tests/t7100-hooks.sh. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tap.h"
#include "clock.h"
#include "err.h"
#include "hook.h"
#include "banned.h"

#define EVENT_JSON                                                                                 \
	"{\"event\":\"pre-build\",\"remote\":{\"namespace\":\"default\",\"name\":\"web\"},"        \
	"\"ref\":\"refs/heads/main\",\"branch\":\"main\","                                         \
	"\"before\":\"0000000000000000000000000000000000000000\","                                 \
	"\"after\":\"0123456789abcdef0123456789abcdef01234567\","                                  \
	"\"pusher\":{\"fingerprint\":\"SHA256:abc\",\"comment\":\"alice\\nforged=1\"},"            \
	"\"pipelineRun\":\"web-abcde\",\"images\":[],\"deployments\":[],\"stages\":[]}"

static char root[64];

/* What the callbacks saw. */
struct seen {
	char lines[64][1024];
	size_t nlines;
	char started[8][300];
	size_t nstarted;
};

static void on_line(void *arg, const char *line)
{
	struct seen *s = arg;

	if (s->nlines < 64)
		snprintf(s->lines[s->nlines++], sizeof(s->lines[0]), "%s", line);
}

static void on_start(void *arg, const char *hook)
{
	struct seen *s = arg;

	if (s->nstarted < 8)
		snprintf(s->started[s->nstarted++], sizeof(s->started[0]), "%s", hook);
}

static bool saw(const struct seen *s, const char *line)
{
	for (size_t i = 0; i < s->nlines; i++)
		if (!strcmp(s->lines[i], line))
			return true;
	return false;
}

static bool saw_prefix(const struct seen *s, const char *prefix)
{
	for (size_t i = 0; i < s->nlines; i++)
		if (!strncmp(s->lines[i], prefix, strlen(prefix)))
			return true;
	return false;
}

/* Writes ROOT/REL with TEXT and MODE. */
static void put(const char *rel, const char *text, mode_t mode)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	f = fopen(path, "w");
	if (!f) {
		perror(path);
		exit(2);
	}
	fputs(text, f);
	fclose(f);
	chmod(path, mode);
}

static void dir(const char *rel)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	if (mkdir(path, 0700) < 0 && errno != EEXIST) {
		perror(path);
		exit(2);
	}
}

static void opts_init(struct hook_opts *o, struct seen *s, const char *event, char *admin,
                      char *work)
{
	snprintf(admin, 512, "%s/admin", root);
	snprintf(work, 512, "%s/work", root);
	memset(s, 0, sizeof(*s));
	*o = (struct hook_opts){
	    .admin_dir = admin,
	    .event = event,
	    .event_json = EVENT_JSON,
	    .work_dir = work,
	    .default_timeout_ms = 10000,
	    .on_line = on_line,
	    .on_start = on_start,
	    .arg = s,
	};
}

static void test_order_stdin_env(void)
{
	struct hook_result r;
	struct hook_opts o;
	struct seen s;
	char admin[512], work[512], want[600];

	opts_init(&o, &s, "pre-build", admin, work);
	dir("admin/pre-build");
	put("admin/pre-build/20-env", "#!/bin/sh\nenv | sort\npwd\n", 0755);
	put("admin/pre-build/10-stdin", "#!/bin/sh\nprintf 'first: %s\\n' \"$(cat)\"\n", 0755);
	put("admin/pre-build/15-not-executable", "#!/bin/sh\necho ran\n", 0644);
	put("admin/pre-build/.hidden", "#!/bin/sh\necho hidden\n", 0755);
	dir("admin/pre-build/17-a-directory");
	put("admin/pre-build/30-stdin-again", "#!/bin/sh\nhead -c 9; echo\n", 0755);
	setenv("SLIPWAY_TEST_LEAK", "from-the-test", 1);

	is_int(hook_run_event(&r, NULL, NULL, &o), 0, "pre-build admin hooks all exit 0");
	ok(!r.failed && !r.hook[0] && !r.message[0], "and nothing is reported failed");
	is_int(r.nrun, 3, "the three executable files ran");
	is_int(s.nstarted, 3, "on_start was called for each");
	snprintf(want, sizeof(want), "%s/pre-build/10-stdin", admin);
	is_str(s.started[0], want, "first 10-stdin, named DIR/EVENT/NAME");
	snprintf(want, sizeof(want), "%s/pre-build/20-env", admin);
	is_str(s.started[1], want, "then 20-env");
	snprintf(want, sizeof(want), "%s/pre-build/30-stdin-again", admin);
	is_str(s.started[2], want, "then 30-stdin-again, in name order");
	ok(saw(&s, "first: " EVENT_JSON), "the event JSON arrives on stdin");
	ok(saw(&s, "{\"event\":"), "and the next hook reads it from the start again");
	ok(!saw(&s, "ran") && !saw(&s, "hidden"), "non-executable and hidden files were skipped");

	ok(saw(&s, "SLIPWAY_EVENT=pre-build"), "SLIPWAY_EVENT is set");
	ok(saw(&s, "SLIPWAY_NAMESPACE=default"), "SLIPWAY_NAMESPACE is set");
	ok(saw(&s, "SLIPWAY_REMOTE=web"), "SLIPWAY_REMOTE is set");
	ok(saw(&s, "SLIPWAY_REF=refs/heads/main"), "SLIPWAY_REF is set");
	ok(saw(&s, "SLIPWAY_BRANCH=main"), "SLIPWAY_BRANCH is set");
	ok(saw(&s, "SLIPWAY_BEFORE=0000000000000000000000000000000000000000"),
	   "SLIPWAY_BEFORE is set");
	ok(saw(&s, "SLIPWAY_AFTER=0123456789abcdef0123456789abcdef01234567"),
	   "SLIPWAY_AFTER is set");
	ok(saw(&s, "SLIPWAY_PIPELINERUN=web-abcde"), "SLIPWAY_PIPELINERUN is set");
	ok(saw(&s, "SLIPWAY_PUSHER_FINGERPRINT=SHA256:abc"), "SLIPWAY_PUSHER_FINGERPRINT is set");
	ok(!saw_prefix(&s, "SLIPWAY_PUSHER_COMMENT=") && !saw(&s, "forged=1"),
	   "a comment with a newline is dropped, not split into a second variable");
	ok(saw(&s, "PATH=/usr/local/bin:/usr/bin:/bin"), "PATH is the fixed one");
	snprintf(want, sizeof(want), "HOME=%s", work);
	ok(saw(&s, want), "HOME is the work directory");
	ok(saw(&s, "LANG=C.UTF-8"), "LANG is C.UTF-8");
	ok(!saw_prefix(&s, "KUBECONFIG="), "no KUBECONFIG when none is given");
	ok(!saw_prefix(&s, "SLIPWAY_TEST_LEAK="), "a variable of gitd's environment does not leak");
	ok(saw(&s, work), "the working directory is WORK_DIR when cwd is NULL");
	{
		/* env | sort prints the whole environment: exactly the 13 expected
		 * (PWD, SHLVL and _ are the shell's own) */
		size_t nenv = 0;

		for (size_t i = 0; i < s.nlines; i++)
			if (strchr(s.lines[i], '=') && strncmp(s.lines[i], "first:", 6) &&
			    strncmp(s.lines[i], "PWD=", 4) && strncmp(s.lines[i], "SHLVL=", 6) &&
			    strncmp(s.lines[i], "_=", 2) && ++nenv > 12)
				printf("# unexpected: %s\n", s.lines[i]);
		is_int(nenv, 12, "the environment holds exactly PATH, HOME, LANG and 9 SLIPWAY_*");
	}
	unsetenv("SLIPWAY_TEST_LEAK");
}

static void test_cwd_and_kubeconfig(void)
{
	struct hook_result r;
	struct hook_opts o;
	struct seen s;
	char admin[512], work[512], tree[512];

	opts_init(&o, &s, "post-build", admin, work);
	dir("tree");
	snprintf(tree, sizeof(tree), "%s/tree", root);
	o.cwd = tree;
	o.kubeconfig = "/nonexistent/hooks.kubeconfig";
	o.event_json = "{\"event\":\"post-build\",\"pipelineRun\":null}";
	dir("admin/post-build");
	put("admin/post-build/50-where",
	    "#!/bin/sh\npwd\necho \"KUBECONFIG=$KUBECONFIG\"\n"
	    "echo \"run=${SLIPWAY_PIPELINERUN-unset}\"\n",
	    0755);
	is_int(hook_run_event(&r, NULL, NULL, &o), 0, "a post-build hook runs");
	ok(saw(&s, tree), "in the given cwd (the pushed tree)");
	ok(saw(&s, "KUBECONFIG=/nonexistent/hooks.kubeconfig"), "with KUBECONFIG when given");
	ok(saw(&s, "run=unset"), "a null pipelineRun leaves SLIPWAY_PIPELINERUN unset");
}

static void test_failure(void)
{
	struct hook_result r;
	struct hook_opts o;
	struct seen s;
	char admin[512], work[512], want[800];

	opts_init(&o, &s, "pre-deploy", admin, work);
	o.event_json = "{\"event\":\"pre-deploy\"}";
	dir("admin/pre-deploy");
	put("admin/pre-deploy/10-ok", "#!/bin/sh\necho fine\n", 0755);
	put("admin/pre-deploy/20-fail", "#!/bin/sh\necho 'migration failed' >&2\nexit 3\n", 0755);
	put("admin/pre-deploy/30-never", "#!/bin/sh\necho never\n", 0755);
	is_int(hook_run_event(&r, NULL, NULL, &o), 1, "a hook exiting 3 fails the event");
	ok(r.failed, "the result says failed");
	is_int(r.nrun, 2, "the hooks after the failing one do not run");
	ok(!saw(&s, "never"), "30-never printed nothing");
	ok(saw(&s, "migration failed"), "the failing hook's stderr is delivered");
	snprintf(want, sizeof(want), "%s/pre-deploy/20-fail", admin);
	is_str(r.hook, want, "the failing hook is named");
	snprintf(want, sizeof(want), "hook %s/pre-deploy/20-fail exited with status 3", admin);
	is_str(r.message, want, "the message names the hook and its status");
}

static void test_timeout(void)
{
	struct hook_result r;
	struct hook_opts o;
	struct seen s;
	char admin[512], work[512], pidfile[600], stat[64];
	long start, took;
	FILE *f;
	int pid = 0;

	opts_init(&o, &s, "post-deploy", admin, work);
	o.event_json = "{\"event\":\"post-deploy\"}";
	o.default_timeout_ms = 300;
	dir("admin/post-deploy");
	put("admin/post-deploy/10-hang",
	    "#!/bin/sh\nsleep 30 &\necho $! >\"$HOME/sleep.pid\"\n"
	    "echo started\nwait\n",
	    0755);
	start = clock_now_ms();
	is_int(hook_run_event(&r, NULL, NULL, &o), 1, "a hook past its timeout fails the event");
	took = clock_now_ms() - start;
	ok(strstr(r.message, "10-hang timed out after 0.3s"), "the message says it timed out: %s",
	   r.message);
	ok(took < 5000, "it was stopped at the timeout, not after its 30 s sleep (%ld ms)", took);
	ok(saw(&s, "started"), "its output up to then was delivered");
	snprintf(pidfile, sizeof(pidfile), "%s/sleep.pid", work);
	f = fopen(pidfile, "r");
	ok(f && fscanf(f, "%d", &pid) == 1 && pid > 0, "the hook's background child was recorded");
	if (f)
		fclose(f);
	{
		/* killed with its group: gone, or a zombie until init reaps it */
		bool dead = false;
		long until = clock_now_ms() + 2000;

		snprintf(stat, sizeof(stat), "/proc/%d/stat", pid);
		while (!dead && clock_now_ms() < until) {
			char buf[512] = "";
			FILE *sf = fopen(stat, "r");

			dead = !sf || !fgets(buf, sizeof(buf), sf) || strstr(buf, ") Z ");
			if (sf)
				fclose(sf);
			if (!dead) {
				struct timespec ts = {0, 20 * 1000 * 1000};

				nanosleep(&ts, NULL);
			}
		}
		ok(pid > 0 && dead, "and the process group went with it (pid %d)", pid);
	}
}

static void test_cannot_run(void)
{
	struct hook_result r;
	struct hook_opts o;
	struct seen s;
	char admin[512], work[512];

	opts_init(&o, &s, "post-receive", admin, work);
	o.event_json = "{\"event\":\"post-receive\"}";
	dir("admin/post-receive");
	put("admin/post-receive/10-bad-interpreter", "#!/nonexistent/interpreter\n", 0755);
	is_int(hook_run_event(&r, NULL, NULL, &o), 1, "a hook whose interpreter is missing fails");
	ok(strstr(r.message, "10-bad-interpreter could not run: cannot execute"),
	   "and says it could not run: %s", r.message);

	put("admin/post-receive/10-bad-interpreter", "echo no shebang\n", 0755);
	is_int(hook_run_event(&r, NULL, NULL, &o), 1, "a script without a #! line fails");
	ok(strstr(r.message, "without a \"#!\" line"), "and the message says why: %s", r.message);
}

/* The "# slipway-pod:" header of an admin hook: checked before any Pod,
 * and a Pod hook needs a Remote, a client and gitd's pod settings (the Pod
 * itself: tests/t7400-hook-pods.sh). */
static void test_admin_pod_header(void)
{
	static const char *const bad[][2] = {
	    {"#!/bin/sh\n# slipway-pod: not json\necho ran\n",
	     "bad slipway-pod header: not a JSON"},
	    {"#!/bin/sh\n# slipway-pod: []\necho ran\n",
	     "bad slipway-pod header: not a JSON object"},
	    {"#!/bin/sh\n# slipway-pod: {}\necho ran\n", "bad slipway-pod header: no image"},
	    {"#!/bin/sh\n# slipway-pod: {\"image\": \"x\", \"runAsUser\": 0}\necho ran\n",
	     "bad slipway-pod header: \"runAsUser\": not image"},
	    {"#!/bin/sh\n# slipway-pod: {\"image\": \"x\", \"timeoutSeconds\": 0}\necho ran\n",
	     "bad slipway-pod header: \"timeoutSeconds\": not image"},
	};
	struct hook_result r;
	struct hook_opts o;
	struct seen s;
	char admin[512], work[512];

	dir("admin/pipeline-failed");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		opts_init(&o, &s, "pipeline-failed", admin, work);
		o.event_json = "{\"event\":\"pipeline-failed\"}";
		put("admin/pipeline-failed/10-pod", bad[i][0], 0755);
		ok(hook_run_event(&r, NULL, NULL, &o) == 1, "malformed header %zu fails the hook",
		   i);
		ok(strstr(r.message, bad[i][1]) && !saw(&s, "ran"), "  without running it: %s",
		   r.message);
	}
	opts_init(&o, &s, "pipeline-failed", admin, work);
	o.event_json = "{\"event\":\"pipeline-failed\"}";
	put("admin/pipeline-failed/10-pod",
	    "#!/bin/sh\n# an admin hook\n# slipway-pod: {\"image\": \"slipway/hooks\"}\necho ran\n",
	    0755);
	is_int(hook_run_event(&r, NULL, NULL, &o), 1, "a Pod hook without a Remote fails");
	ok(strstr(r.message, "runs as a Pod, which needs a Remote") && !saw(&s, "ran"),
	   "  and is not run as a process: %s", r.message);
	put("admin/pipeline-failed/10-pod",
	    "#!/bin/sh\n\n\n\n\n# slipway-pod: {\"image\": \"slipway/hooks\"}\necho ran\n", 0755);
	is_int(hook_run_event(&r, NULL, NULL, &o), 0,
	       "a header past the first five lines is a comment: a process hook");
	ok(saw(&s, "ran"), "  that ran");
	{
		char path[512];

		snprintf(path, sizeof(path), "%s/admin/pipeline-failed/10-pod", root);
		unlink(path);
	}
}

static void test_none_and_errors(void)
{
	struct hook_result r;
	struct hook_opts o;
	struct seen s;
	char admin[512], work[512];
	struct remote rm;
	json_t *remote;

	opts_init(&o, &s, "pipeline-failed", admin, work);
	o.event_json = "{\"event\":\"pipeline-failed\"}";
	is_int(hook_run_event(&r, NULL, NULL, &o), 0, "an event without a hooks directory is fine");
	is_int(r.nrun, 0, "and runs nothing");
	o.admin_dir = NULL;
	is_int(hook_run_event(&r, NULL, NULL, &o), 0, "so is no admin dir at all");

	o.event = "pre-push";
	is_int(hook_run_event(&r, NULL, NULL, &o), -1, "an unknown event is an internal error");
	o.event = "pipeline-failed";
	o.event_json = "{\"event\":";
	is_int(hook_run_event(&r, NULL, NULL, &o), -1, "so is malformed event JSON");
	o.event_json = "{\"event\":\"pre-build\"}";
	is_int(hook_run_event(&r, NULL, NULL, &o), -1, "so is the JSON of another event");
	ok(strstr(err_msg(), "not \"pipeline-failed\""), "named: %s", err_msg());

	o.event_json = "{\"event\":\"pipeline-failed\"}";
	remote = json_pack("{s:{s:s,s:s},s:{s:[{s:s,s:{s:s,s:s}}]}}", "metadata", "namespace",
	                   "default", "name", "web", "spec", "hooks", "event", "pipeline-failed",
	                   "configMapRef", "name", "hooks", "key", "notify");
	ok(remote_parse(&rm, remote, false) == 0, "a Remote with a ConfigMap hook parses");
	is_int(hook_run_event(&r, NULL, &rm, &o), -1,
	       "a Remote with ConfigMap hooks but no API client is an internal error");
	remote_release(&rm);
	json_decref(remote);
}

static void test_has_event(void)
{
	char admin[512];
	json_t *remote = json_pack("{s:{s:s,s:s},s:{s:[{s:s,s:{s:s,s:s}}]}}", "metadata",
	                           "namespace", "default", "name", "web", "spec", "hooks", "event",
	                           "post-deploy", "configMapRef", "name", "h", "key", "k");
	struct remote rm;

	snprintf(admin, sizeof(admin), "%s/admin", root);
	dir("admin/pipeline-succeeded");
	put("admin/pipeline-succeeded/README", "not a hook\n", 0644);
	ok(hook_has_event(NULL, admin, "pre-build"), "admin dir with a pre-build hook: true");
	ok(!hook_has_event(NULL, admin, "pipeline-succeeded"),
	   "a directory with only non-executable files: false");
	ok(!hook_has_event(NULL, admin, "pipeline-failed"), "no directory for the event: false");
	ok(remote_parse(&rm, remote, false) == 0, "a Remote with a post-deploy hook parses");
	ok(hook_has_event(&rm, NULL, "post-deploy"), "a Remote hook for the event: true");
	ok(!hook_has_event(&rm, NULL, "pre-deploy"), "a Remote hook for another event: false");
	ok(!hook_has_event(NULL, "/nonexistent", "pre-build"), "an unreadable admin dir: false");
	remote_release(&rm);
	json_decref(remote);
}

static void cleanup(void)
{
	const char *argv_rm[] = {"rm", "-rf", root, NULL};
	pid_t pid = fork();

	if (pid == 0) {
		execv("/bin/rm", (char *const *)argv_rm);
		_exit(127);
	}
	if (pid > 0)
		waitpid(pid, NULL, 0);
}

int main(void)
{
	snprintf(root, sizeof(root), "/tmp/slipway-unit-hook-XXXXXX");
	if (!mkdtemp(root)) {
		perror("mkdtemp");
		return 2;
	}
	dir("admin");
	dir("work");
	test_order_stdin_env();
	test_cwd_and_kubeconfig();
	test_failure();
	test_timeout();
	test_cannot_run();
	test_admin_pod_header();
	test_none_and_errors();
	test_has_event();
	cleanup();
	return tap_done();
}
