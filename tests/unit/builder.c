/* Unit tests of the builder's pure parts and checks: build arguments, path
 * containment (with real symbolic links in a scratch directory), token
 * files. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tap.h"
#include "builder.h"
#include "err.h"

static void test_build_args(void)
{
	char big[BUILDER_BUILD_ARG_LEN_MAX + 8];

	is_int(builder_build_arg_check("VERSION=1.2.3"), 0, "NAME=VALUE is accepted");
	is_int(builder_build_arg_check("_x1=a=b c;$(rm -rf /)"), 0,
	       "any value, '=' and shell characters included (no shell is involved)");
	is_int(builder_build_arg_check("EMPTY="), 0, "an empty value is accepted");
	is_int(builder_build_arg_check("VERSION"), BUILDER_EINVALID,
	       "a bare NAME is refused (the environment is clean)");
	ok(strstr(err_msg(), "not NAME=VALUE"), "with a message: %s", err_msg());
	is_int(builder_build_arg_check("=x"), BUILDER_EINVALID, "an empty name is refused");
	is_int(builder_build_arg_check("1ABC=x"), BUILDER_EINVALID,
	       "a name starting with a digit is refused");
	is_int(builder_build_arg_check("A-B=x"), BUILDER_EINVALID, "a '-' in the name is refused");
	is_int(builder_build_arg_check("--rm=x"), BUILDER_EINVALID,
	       "an option-like name is refused");
	memset(big, 'a', sizeof(big) - 1);
	big[0] = 'A';
	big[1] = '=';
	big[sizeof(big) - 1] = '\0';
	is_int(builder_build_arg_check(big), BUILDER_EINVALID, "an oversized argument is refused");
	is_int(builder_build_arg_check(NULL), BUILDER_EINVALID, "NULL is refused");
}

static char scratch[64];

static void put(const char *rel, const char *data)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", scratch, rel);
	f = fopen(path, "w");
	if (f) {
		fputs(data, f);
		fclose(f);
	}
}

static void link_at(const char *target, const char *rel)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/%s", scratch, rel);
	ok(symlink(target, path) == 0, "fixture: link %s -> %s", rel, target);
}

static void resolves(const char *rel, int want, const char *want_rel, const char *what)
{
	char root[256], want_path[256], *real_scratch, *got = NULL;
	int ret;

	snprintf(root, sizeof(root), "%s/ctx", scratch);
	ret = builder_path_resolve(&got, root, rel);
	is_int(ret, want, what);
	if (ret != want)
		printf("#   message: %s\n", err_msg());
	if (want == 0 && want_rel) {
		real_scratch = realpath(scratch, NULL);
		snprintf(want_path, sizeof(want_path), "%s/%s", real_scratch ? real_scratch : "?",
		         want_rel);
		is_str(got, want_path, "  and gives the real path");
		free(real_scratch);
	} else {
		ok(got == NULL, "  and gives nothing");
	}
	free(got);
}

static void test_path_resolve(void)
{
	char cmd[128], root[256], *got = NULL;

	snprintf(scratch, sizeof(scratch), "/tmp/unit-builder-XXXXXX");
	if (!ok(mkdtemp(scratch) != NULL, "fixture: scratch directory"))
		return;
	snprintf(root, sizeof(root), "%s/ctx", scratch);
	mkdir(root, 0755);
	snprintf(root, sizeof(root), "%s/ctx/sub", scratch);
	mkdir(root, 0755);
	put("ctx/Dockerfile", "FROM scratch\n");
	put("ctx/sub/Dockerfile", "FROM scratch\n");
	put("secret", "outside\n");
	link_at("../secret", "ctx/up-link");
	link_at("/etc/passwd", "ctx/abs-link");
	link_at("sub/Dockerfile", "ctx/in-link");
	link_at("sub", "ctx/dir-link");
	link_at("..", "ctx/parent-link");

	resolves("Dockerfile", 0, "ctx/Dockerfile", "a file in the root resolves");
	resolves("sub/Dockerfile", 0, "ctx/sub/Dockerfile", "a file in a subdirectory resolves");
	resolves("./sub//Dockerfile", 0, "ctx/sub/Dockerfile", "\".\" and doubled '/' are fine");
	resolves("sub/../Dockerfile", 0, "ctx/Dockerfile", "\"..\" that stays inside is fine");
	resolves(".", 0, "ctx", "\".\" is the root itself");
	resolves("in-link", 0, "ctx/sub/Dockerfile", "a link that stays inside resolves");
	resolves("dir-link/Dockerfile", 0, "ctx/sub/Dockerfile",
	         "a path through a directory link that stays inside resolves");
	resolves("../secret", BUILDER_EOUTSIDE, NULL, "\"../secret\" is outside");
	resolves("sub/../../secret", BUILDER_EOUTSIDE, NULL, "\"sub/../../secret\" is outside");
	resolves("../nonexistent", BUILDER_EOUTSIDE, NULL,
	         "\"..\" is refused even when the target does not exist");
	resolves("/etc/passwd", BUILDER_EOUTSIDE, NULL, "an absolute path is outside");
	resolves("up-link", BUILDER_EOUTSIDE, NULL, "a relative link leading out is outside");
	resolves("abs-link", BUILDER_EOUTSIDE, NULL, "an absolute link leading out is outside");
	resolves("parent-link/secret", BUILDER_EOUTSIDE, NULL,
	         "a directory link leading out is outside");
	resolves("missing", BUILDER_ENOTFOUND, NULL, "a missing file is not found");
	resolves("Dockerfile/x", BUILDER_ENOTFOUND, NULL, "a path through a file is not found");
	resolves("", BUILDER_ENOTFOUND, NULL, "an empty path is not found");
	is_int(builder_path_resolve(&got, "/nonexistent-root-dir", "Dockerfile"), BUILDER_ENOTFOUND,
	       "a missing root is not found");
	is_int(builder_path_resolve(&got, "/", "etc"), 0, "the root \"/\" contains everything");
	is_str(got, "/etc", "  and gives the real path");
	free(got);

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", scratch);
	(void)!system(cmd);
}

static void test_token(void)
{
	char path[64], *tok = NULL;
	FILE *f;

	snprintf(path, sizeof(path), "/tmp/unit-builder-token-%d", (int)getpid());
	f = fopen(path, "w");
	fputs("s3cr3t-token.value\n\n", f);
	fclose(f);
	is_int(builder_token_read(&tok, path), 0, "a token file is read");
	is_str(tok, "s3cr3t-token.value", "without its trailing newlines");
	builder_token_free(tok);
	tok = NULL;

	f = fopen(path, "w");
	fputs("two words\n", f);
	fclose(f);
	is_int(builder_token_read(&tok, path), BUILDER_EINVALID,
	       "a token with a space inside is refused");
	ok(!strstr(err_msg(), "two") && !strstr(err_msg(), "words"),
	   "and the message does not show it: %s", err_msg());

	f = fopen(path, "w");
	fputs("abc\r\nX-Injected: 1\n", f);
	fclose(f);
	is_int(builder_token_read(&tok, path), BUILDER_EINVALID,
	       "a token with a line break inside (a header injection) is refused");

	f = fopen(path, "w");
	fputs("\n", f);
	fclose(f);
	is_int(builder_token_read(&tok, path), BUILDER_EINVALID, "an empty token is refused");
	unlink(path);
	is_int(builder_token_read(&tok, path), BUILDER_EINVALID, "a missing file is refused");
	ok(tok == NULL, "and nothing is returned");
}

static void test_reasons(void)
{
	is_str(builder_reason(0), "Pushed", "reason of success");
	is_str(builder_reason(BUILDER_EBUILD), "BuildFailed", "reason of a failed build");
	is_str(builder_reason(BUILDER_EOUTSIDE), "SourceFailed",
	       "a path outside is a source failure");
	is_str(builder_reason(-1), "Error", "anything else is an error");
}

int main(void)
{
	test_build_args();
	test_path_resolve();
	test_token();
	test_reasons();
	return tap_done();
}
