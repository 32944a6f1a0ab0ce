/* Unit tests for gitd's exec-request parser (command.h), repository names
 * (repo.h) and the key table (authz.h): what a client may ask for and which
 * Remote it reaches. */
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <git2.h>

#include "authz.h"
#include "command.h"
#include "err.h"
#include "fs.h"
#include "repo.h"
#include "tap.h"

static void parses(const char *line, enum command_service svc, const char *ns, const char *remote,
                   const char *joined)
{
	struct command c;
	int ok_ = command_parse(&c, line) == 0;

	ok(ok_ && c.service == svc && !strcmp(c.ns, ns) && !strcmp(c.remote, remote) &&
	       !strcmp(c.joined, joined),
	   "parses: %s", line);
}

static void refuses(const char *line, const char *msg)
{
	struct command c;

	err_clear();
	ok(command_parse(&c, line) < 0 && !strcmp(err_msg(), msg), "refuses (%s): %s", msg, line);
}

static void test_command(void)
{
	parses("git-receive-pack '/default/web.git'", COMMAND_RECEIVE_PACK, "default", "web", "");
	parses("git-upload-pack 'default/web'", COMMAND_UPLOAD_PACK, "default", "web", "");
	parses("git-upload-pack '/team-a/my.app.git'", COMMAND_UPLOAD_PACK, "team-a", "my.app", "");
	parses("git upload-pack 'default/web.git'", COMMAND_UPLOAD_PACK, "default", "web", "");
	parses("git-receive-pack '~/git/default-web'", COMMAND_RECEIVE_PACK, "", "", "default-web");
	parses("git-receive-pack '/~/git/default-web.git'", COMMAND_RECEIVE_PACK, "", "",
	       "default-web");
	parses("git-upload-pack default/web.git", COMMAND_UPLOAD_PACK, "default", "web", "");
	refuses("ls -la", "command not allowed");
	refuses("git-upload-archive 'default/web.git'", "command not allowed");
	refuses("sh -c 'git-upload-pack default/web'", "command not allowed");
	refuses("git-upload-pack '../etc/passwd'", "invalid repository path");
	refuses("git-upload-pack 'default/../web.git'", "invalid repository path");
	refuses("git-upload-pack '/default/web/extra.git'", "invalid repository path");
	refuses("git-upload-pack '--help'", "invalid repository path");
	refuses("git-upload-pack --upload-pack=evil", "invalid repository path");
	refuses("git-upload-pack 'Default/Web'", "invalid repository path");
	refuses("git-upload-pack 'default/web", "invalid repository path");
	refuses("git-upload-pack 'a'\\''b/web'", "invalid repository path");
	refuses("git-upload-pack '~/git/nodash'", "invalid repository path");
	refuses("git-upload-pack ''", "invalid repository path");
	refuses("git-upload-pack 'default/web' 'second'", "invalid repository path");
}

static void test_names(void)
{
	char path[64];

	ok(repo_is_valid_name("web") && repo_is_valid_name("a.b-c1"), "DNS-1123 names are valid");
	ok(!repo_is_valid_name("-web") && !repo_is_valid_name("web-") &&
	       !repo_is_valid_name("a..b") && !repo_is_valid_name("..") &&
	       !repo_is_valid_name("A") && !repo_is_valid_name(""),
	   "others are not");
	ok(repo_path(path, sizeof(path), "/data", "ns", "web") == 0 &&
	       !strcmp(path, "/data/ns/web.git"),
	   "repo_path builds DATA/NS/REMOTE.git");
	ok(repo_path(path, 10, "/data", "ns", "web") < 0, "repo_path refuses a short buffer");
}

static const char alice[] = "ssh-ed25519 "
                            "AAAAC3NzaC1lZDI1NTE5AAAAIJ9y6xmv0x2mXcN9zQ0l2JY3a5yB0n0Q7b7Xq2E8a5sQ";

static void test_authz(void)
{
	struct authz a;
	const struct authz_key *k;
	struct command c;
	struct remote r;
	json_t *remote;
	size_t bad = 0;
	ssh_key key = NULL;

	authz_init(&a);
	remote =
	    json_pack("{s:{s:s, s:s}, s:{s:[s, s, s], s:b}}", "metadata", "namespace", "team",
	              "name", "web", "spec", "authorizedKeys", alice, "ssh-ed25519 AAAAnotakey x",
	              "ssh-rsa AAAAB3NzaC1yc2EAAAADAQAB y", "denyNonFastForwards", 1);
	ok(remote_parse(&r, remote, false) == 0 && authz_add_remote(&a, &r, &bad) == 0,
	   "a Remote object loads");
	remote_release(&r);
	is_int(bad, 2, "two malformed key lines are skipped and counted");
	is_int(a.nkeys, 1, "one key in the table");
	ok(a.remotes[0].deny_non_fast_forwards, "denyNonFastForwards is read");
	ok(!a.remotes[0].allow_delete_current_branch, "allowDeleteCurrentBranch absent is false");
	json_decref(remote);
	remote =
	    json_pack("{s:{s:s, s:s}, s:{s:[s], s:b}}", "metadata", "namespace", "team", "name",
	              "api", "spec", "authorizedKeys", alice, "allowDeleteCurrentBranch", 1);
	if (remote_parse(&r, remote, true) == 0)
		authz_add_remote(&a, &r, NULL);
	remote_release(&r);
	json_decref(remote);
	ok(a.nremotes == 2 && a.remotes[1].allow_delete_current_branch,
	   "allowDeleteCurrentBranch is read");
	is_int(a.nkeys, 1, "the same key in a second Remote stays one entry");
	ssh_pki_import_pubkey_base64(alice + 12, SSH_KEYTYPE_ED25519, &key);
	k = authz_find_key(&a, key);
	ok(k && k->nremotes == 2, "the key lists both Remotes");
	ok(k && !strncmp(k->fingerprint, "SHA256:", 7), "fingerprint in ssh-keygen's form: %s",
	   k ? k->fingerprint : "");
	command_parse(&c, "git-upload-pack 'team/web.git'");
	ok(authz_resolve(&a, k, "git", &c) == &a.remotes[0], "user git reaches team/web");
	command_parse(&c, "git-upload-pack '~/git/team-api'");
	ok(authz_resolve(&a, k, "team-api", &c) == &a.remotes[1],
	   "gitkube user and path reach team/api");
	err_clear();
	ok(!authz_resolve(&a, k, "team-web", &c) &&
	       !strcmp(err_msg(), "repository not found or access denied"),
	   "a gitkube user must match the path");
	command_parse(&c, "git-upload-pack 'team/other.git'");
	ok(!authz_resolve(&a, k, "git", &c), "an unlisted Remote is denied");
	ok(!authz_resolve(&a, NULL, "git", &c), "no key, no access");
	ssh_key_free(key);
	authz_release(&a);
	is_int(a.nkeys + a.nremotes, 0, "release empties the table");
}

static void test_keyfile(void)
{
	struct authz a;
	char path[] = "/tmp/slipway-unit-keys-XXXXXX";
	int fd = mkstemp(path);
	FILE *f = fdopen(fd, "w");

	fprintf(f, "# comment\n\nteam/web,team/api %s alice@laptop\n", alice);
	fclose(f);
	authz_init(&a);
	ok(authz_load_file(&a, path) == 0 && a.nkeys == 1 && a.nremotes == 2 &&
	       !strcmp(a.keys[0].comment, "alice@laptop"),
	   "an authorized-keys file loads with its comment");
	authz_release(&a);
	f = fopen(path, "w");
	fprintf(f, "team/web %s\nteam/../x %s\n", alice, alice);
	fclose(f);
	err_clear();
	ok(authz_load_file(&a, path) < 0 && strstr(err_msg(), ":2: ") &&
	       strstr(err_msg(), "not a valid NAMESPACE/REMOTE"),
	   "a bad line fails the load with its line number: %s", err_msg());
	remove(path);
}

/* Eight processes open (and so create) the same new repository at once:
 * each gets a complete repository, and no half-made copy is left. */
static void test_create_race(void)
{
	char data[] = "/tmp/unit-gitd-XXXXXX", path[REPO_PATH_MAX], dir[REPO_PATH_MAX];
	pid_t pids[8];
	int failed = 0, status, n = 0;
	DIR *d;
	struct dirent *e;
	git_repository *repo = NULL;
	git_reference *head = NULL;

	if (!mkdtemp(data)) {
		ok(0, "mkdtemp");
		return;
	}
	for (int i = 0; i < 8; i++) {
		pids[i] = fork();
		if (pids[i] == 0) {
			git_repository *r = NULL;
			int rc;

			git_libgit2_init();
			rc = repo_open(&r, data, "ns", "web");
			git_repository_free(r);
			_exit(rc == 0 ? 0 : 1);
		}
	}
	for (int i = 0; i < 8; i++)
		if (pids[i] < 0 || waitpid(pids[i], &status, 0) < 0 || !WIFEXITED(status) ||
		    WEXITSTATUS(status) != 0)
			failed++;
	is_int(failed, 0, "eight concurrent first opens of a repository all succeed");
	repo_path(path, sizeof(path), data, "ns", "web");
	ok(git_repository_open_bare(&repo, path) == 0 && git_repository_is_bare(repo) &&
	       git_reference_lookup(&head, repo, "HEAD") == 0 &&
	       !strcmp(git_reference_symbolic_target(head), "refs/heads/main"),
	   "  and it is one bare repository with HEAD on main");
	snprintf(dir, sizeof(dir), "%s/ns", data);
	d = opendir(dir);
	while (d && (e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	if (d)
		closedir(d);
	is_int(n, 1, "  and nothing but web.git is left in the namespace folder");
	git_reference_free(head);
	git_repository_free(repo);
	fs_remove_tree(data);
}

/* fs_write_all: a pipe's buffer (64 KiB) is smaller than what is written, so
 * the write comes back short while a reader drains it. */
static void test_write_all(void)
{
	size_t n = 1u << 20, got = 0;
	unsigned char *data = malloc(n), buf[4096];
	int fds[2], status = 0;
	bool is_same = true;
	pid_t pid;

	if (!ok(data && pipe(fds) == 0, "fs_write_all: a pipe"))
		return;
	for (size_t i = 0; i < n; i++)
		data[i] = (unsigned char)(i * 7 + i / 251);
	pid = fork();
	if (pid == 0) {
		close(fds[0]);
		_exit(fs_write_all(fds[1], data, n) < 0 ? 1 : 0);
	}
	close(fds[1]);
	for (ssize_t r; (r = read(fds[0], buf, sizeof(buf))) > 0; got += (size_t)r)
		is_same = is_same && got + (size_t)r <= n && !memcmp(buf, data + got, (size_t)r);
	close(fds[0]);
	waitpid(pid, &status, 0);
	ok(WIFEXITED(status) && WEXITSTATUS(status) == 0 && got == n && is_same,
	   "fs_write_all writes 1 MiB through a pipe whole and in order");
	ok(fs_write_all(-1, data, 1) < 0 && errno == EBADF,
	   "fs_write_all on a bad descriptor returns -1 with errno");
	free(data);
}

int main(void)
{
	git_libgit2_init();
	test_write_all();
	test_command();
	test_names();
	test_authz();
	test_keyfile();
	test_create_race();
	return tap_done();
}
