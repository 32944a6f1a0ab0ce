/* Unit tests of gitd's runner (runner.h) in local mode, with a real buildsrv
 * and FAKE builders: small shell scripts written here that exit as the real
 * builder would and record their argv and environment, so the outcome
 * mapping is checked without buildah (t6200 runs the real builder). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "tap.h"
#include "buildsrv.h"
#include "err.h"
#include "runner.h"

static char scratch[] = "/tmp/slipway-unit-runner-XXXXXX";
static char source[128], program[128];
static char lines[4096]; /* log lines delivered, "\n"-separated */

static void on_line(void *arg, const char *line)
{
	size_t len = strlen(lines);

	snprintf(lines + len, sizeof(lines) - len, "%s\n", line);
}

/* Writes the FAKE builder: BODY runs after it saved argv, env and the token
 * file's mode into the scratch directory. */
static int write_builder(const char *body)
{
	FILE *f = fopen(program, "w");

	if (!f)
		return -1;
	fprintf(f,
	        "#!/bin/sh\n"
	        "d=%s\n"
	        "printf '%%s\\n' \"$@\" >$d/argv\n"
	        "env >$d/env\n"
	        "while [ $# -gt 0 ]; do\n"
	        "  case $1 in\n"
	        "  --digest-file) digest=$2; shift ;;\n"
	        "  --report-token-file) stat -c %%a \"$2\" >$d/token-mode; token=$2; shift ;;\n"
	        "  esac\n"
	        "  shift\n"
	        "done\n"
	        "%s\n",
	        scratch, body);
	fclose(f);
	return chmod(program, 0755);
}

/* Whether FILE in the scratch directory has a line equal to LINE. */
static bool has_line(const char *file, const char *line)
{
	char path[256], buf[4096];
	bool found = false;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", scratch, file);
	if (!(f = fopen(path, "r")))
		return false;
	while (!found && fgets(buf, sizeof(buf), f)) {
		buf[strcspn(buf, "\n")] = '\0';
		found = !strcmp(buf, line);
	}
	fclose(f);
	return found;
}

static int build(struct runner_result *out, struct buildsrv *srv, const json_t *spec,
                 const volatile sig_atomic_t *cancel)
{
	static const char *const args[] = {"A=1", "B=two words", NULL};
	struct runner_config cfg = {.default_mode = RUNNER_LOCAL, .program = program};
	struct runner_build b = {
	    .ns = "default",
	    .remote = "app",
	    .deployment = "web",
	    .container = "main",
	    .image = "registry.example:5000/team/default-app-web-main:0123abcd",
	    .path = "sub",
	    .build_args = args,
	    .spec_builder = spec,
	    .srv = srv,
	    .source_path = source,
	};

	lines[0] = '\0';
	return runner_build(out, &cfg, NULL, &b, on_line, NULL, cancel);
}

static void test_runner(struct buildsrv *srv)
{
	static const char digest[] =
	    "sha256:2e23683e2327e45422373f1c5832b0df5cc97095c1967e21e3bc44570f5b3ce2";
	struct runner_result res;
	enum runner_mode mode;
	char body[512];
	json_t *spec;
	volatile sig_atomic_t cancel = 1;

	ok(runner_mode_parse(&mode, "local") == 0 && mode == RUNNER_LOCAL, "mode local parses");
	ok(runner_mode_parse(&mode, "pod") == 0 && mode == RUNNER_POD, "mode pod parses");
	ok(runner_mode_parse(&mode, "Pod") < 0 && strstr(err_msg(), "\"Pod\""),
	   "mode Pod is refused, named");

	/* exit 4 without a report: the builder's last error line is the message,
	 * and its stdout is the log */
	write_builder("echo 'STEP 1/1: FROBNICATE'\necho 'builder: boom at step 1'\nexit 4");
	is_int(build(&res, srv, NULL, NULL), 0, "a failed build runs to an outcome");
	ok(!res.succeeded, "exit 4 is a failure");
	is_str(res.reason, "BuildFailed", "exit 4 is BuildFailed");
	is_str(res.message, "builder exit status 4 (build failed): boom at step 1",
	       "the message is the exit and the builder's error line");
	is_str(lines, "STEP 1/1: FROBNICATE\nbuilder: boom at step 1\n",
	       "with no report, the builder's stdout is the log");
	ok(has_line("argv", "build") && has_line("argv", "--report-token-file") &&
	       has_line("argv", "--path") && has_line("argv", "sub") &&
	       has_line("argv", "B=two words") && has_line("argv", "--timeout") &&
	       has_line("argv", "1800"),
	   "argv carries the build's options, one word each, and the 30 min default");
	ok(has_line("token-mode", "600"), "the token file is 0600");
	ok(has_line("env", "LANG=C") && !has_line("env", "SLIPWAY_UNIT_SECRET=1"),
	   "the environment is clean");

	/* exit 0 without a report: the digest file is the second witness */
	snprintf(body, sizeof(body), "echo %s >\"$digest\"\nexit 0", digest);
	write_builder(body);
	build(&res, srv, NULL, NULL);
	ok(res.succeeded, "exit 0 with a digest file is a success");
	is_str(res.digest, digest, "the digest is the file's");
	is_str(res.image,
	       "registry.example:5000/team/default-app-web-main@sha256:"
	       "2e23683e2327e45422373f1c5832b0df5cc97095c1967e21e3bc44570f5b3ce2",
	       "the image is pinned by digest, without its tag");

	write_builder("exit 0");
	build(&res, srv, NULL, NULL);
	is_str(res.reason, "RunnerFailed", "exit 0 without result or digest is RunnerFailed");

	write_builder("exit 3");
	build(&res, srv, NULL, NULL);
	is_str(res.reason, "SourceFailed", "exit 3 is SourceFailed");

	write_builder("echo 'builder: buildah cannot run here: the container lacks CAP_SETFCAP'\n"
	              "exit 8");
	build(&res, srv, NULL, NULL);
	is_str(res.reason, "RunnerFailed", "exit 8 (buildah cannot run here) is RunnerFailed");
	is_str(res.message,
	       "builder exit status 8 (missing privileges): buildah cannot run here: the "
	       "container lacks CAP_SETFCAP",
	       "the message names the missing privilege");

	write_builder("kill -KILL $$");
	build(&res, srv, NULL, NULL);
	is_str(res.reason, "RunnerFailed", "a builder killed from outside is RunnerFailed");
	ok(strstr(res.message, "signal 9") != NULL, "and the message names the signal");

	/* spec.builder.timeoutSeconds reaches --timeout */
	write_builder("exit 4");
	spec = json_pack("{s:s, s:i}", "mode", "local", "timeoutSeconds", 42);
	build(&res, srv, spec, NULL);
	ok(has_line("argv", "42"), "spec.builder.timeoutSeconds is the builder's --timeout");
	json_decref(spec);

	write_builder("sleep 30");
	build(&res, srv, NULL, &cancel);
	is_str(res.reason, "Cancelled", "a cancelled build is Cancelled");
	ok(res.seconds < 10, "and stops at once (%.1f s)", res.seconds);

	spec = json_pack("{s:s}", "mode", "cloud");
	is_int(build(&res, srv, spec, NULL), -1, "an unknown spec.builder.mode is an error");
	is_str(res.reason, "RunnerFailed", "reported as RunnerFailed");
	ok(strstr(res.message, "spec.builder.mode") != NULL, "naming the field");
	json_decref(spec);

	spec = json_pack("{s:s, s:s}", "mode", "pod", "image", "builder:1");
	is_int(build(&res, srv, spec, NULL), -1, "pod mode without a client is an error");
	json_decref(spec);

	snprintf(program, sizeof(program), "%s/missing", scratch);
	is_int(build(&res, srv, NULL, NULL), -1, "a missing builder program is an error");
	ok(strstr(res.message, "missing") != NULL, "naming it: %s", res.message);
}

/* The builder container's securityContext: the default, and gitd's
 * --builder-security-context as runner_security_context_parse takes it. */
static void test_security_context(void)
{
	json_t *j = runner_security_context_default();
	char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;

	/* manifests/base/statefulset.yaml and the chart's values.yaml carry this */
	is_str(
	    text,
	    "{\"allowPrivilegeEscalation\":false,\"appArmorProfile\":{\"type\":\"Unconfined\"},"
	    "\"capabilities\":{\"add\":[\"SETUID\",\"SETGID\",\"SETFCAP\"],\"drop\":[\"ALL\"]},"
	    "\"runAsNonRoot\":false,\"runAsUser\":0,\"seccompProfile\":{\"type\":\"Unconfined\"}}",
	    "the default securityContext is root, SETUID/SETGID/SETFCAP only, seccomp and "
	    "AppArmor Unconfined, keys sorted");
	free(text);
	json_decref(j);

	ok(runner_security_context_parse(&j, "{\"privileged\": true}") == 0 && json_is_object(j) &&
	       json_is_true(json_object_get(j, "privileged")),
	   "a JSON object is taken as it is");
	json_decref(j);
	ok(runner_security_context_parse(&j, "{}") == 0 && json_object_size(j) == 0,
	   "an empty object is an object");
	json_decref(j);
	ok(runner_security_context_parse(&j, "[{}]") < 0 && !j && strstr(err_msg(), "array"),
	   "an array is refused: %s", err_msg());
	ok(runner_security_context_parse(&j, "runAsUser: 0") < 0 && !j &&
	       strstr(err_msg(), "not a JSON object"),
	   "YAML is refused: %s", err_msg());
	ok(runner_security_context_parse(&j, "{\"runAsUser\": 0, \"runAsUser\": 1}") < 0 && !j &&
	       strstr(err_msg(), "duplicate"),
	   "a duplicate key is refused: %s", err_msg());
	ok(runner_security_context_parse(&j, "{} {}") < 0 && !j, "trailing text is refused");
	ok(runner_security_context_parse(&j, "") < 0 && !j, "an empty value is refused");
}

int main(void)
{
	struct buildsrv *srv = NULL;
	char path[256];
	FILE *f;

	if (!mkdtemp(scratch)) {
		printf("Bail out! cannot create %s\n", scratch);
		return 1;
	}
	setenv("SLIPWAY_UNIT_SECRET", "1", 1);
	snprintf(source, sizeof(source), "%s/source.tar.gz", scratch);
	snprintf(program, sizeof(program), "%s/builder", scratch);
	if (!(f = fopen(source, "w")) || fclose(f) != 0 ||
	    buildsrv_start(&srv, "127.0.0.1", NULL) < 0) {
		printf("Bail out! %s\n", err_msg());
		return 1;
	}
	test_runner(srv);
	test_security_context();
	buildsrv_free(srv);
	for (const char *const *n = (const char *const[]){"argv", "env", "token-mode", "builder",
	                                                  "source.tar.gz", NULL};
	     *n; n++) {
		snprintf(path, sizeof(path), "%s/%s", scratch, *n);
		unlink(path);
	}
	rmdir(scratch);
	return tap_done();
}
