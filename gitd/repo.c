/* repo: the on-disk layout of gitd's bare repositories (see repo.h). */
#include <errno.h>
#include <glob.h>
#include <unistd.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "err.h"
#include "fs.h"
#include "repo.h"
#include "banned.h"

const char *repo_git_error(void)
{
	const git_error *e = git_error_last();

	return e && e->message ? e->message : "unknown error";
}

int repo_is_valid_name(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > 253)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		int alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');

		if (!alnum && c != '-' && c != '.')
			return 0;
		if (!alnum && (i == 0 || i == n - 1))
			return 0;
		if (c == '.' && name[i - 1] == '.')
			return 0;
	}
	return 1;
}

int repo_path(char *buf, size_t size, const char *data_dir, const char *ns, const char *remote)
{
	int n;

	if (!repo_is_valid_name(ns))
		return err_set("invalid namespace name '%.64s'", ns);
	if (!repo_is_valid_name(remote))
		return err_set("invalid remote name '%.64s'", remote);
	n = snprintf(buf, size, "%s/%s/%s.git", data_dir, ns, remote);
	if (n < 0 || (size_t)n >= size)
		return err_set("repository path for %s/%s is too long", ns, remote);
	return 0;
}

int repo_limit_pack_mappings(void)
{
	if (git_libgit2_opts(GIT_OPT_SET_MWINDOW_SIZE, (size_t)REPO_PACK_WINDOW) < 0 ||
	    git_libgit2_opts(GIT_OPT_SET_MWINDOW_MAPPED_LIMIT, (size_t)REPO_PACK_MAPPED) < 0)
		return err_set("cannot limit pack mappings: %s", repo_git_error());
	return 0;
}

int repo_open(git_repository **out, const char *data_dir, const char *ns, const char *remote)
{
	char path[REPO_PATH_MAX], dir[REPO_PATH_MAX], tmp[REPO_PATH_MAX + 32];
	git_repository_init_options init;
	git_repository *repo = NULL;
	int n;

	*out = NULL;
	if (repo_path(path, sizeof(path), data_dir, ns, remote) < 0)
		return -1;
	if (git_repository_open_bare(&repo, path) == 0) {
		*out = repo;
		return 0;
	}
	n = snprintf(dir, sizeof(dir), "%s/%s", data_dir, ns);
	if (n < 0 || (size_t)n >= sizeof(dir))
		return err_set("repository path for %s/%s is too long", ns, remote);
	if (mkdir(dir, 0750) < 0 && errno != EEXIST)
		return err_set("cannot create %s: %s", dir, strerror(errno));
	/* created whole under a name of its own, then renamed into place: a
	 * concurrent creator either wins the rename (this one's copy is
	 * dropped) or finds the repository complete; never a half-made one */
	n = snprintf(tmp, sizeof(tmp), "%s.new-%ld", path, (long)getpid());
	if (n < 0 || (size_t)n >= sizeof(tmp))
		return err_set("repository path for %s/%s is too long", ns, remote);
	if (fs_remove_tree(tmp) < 0)
		return -1;
	git_repository_init_options_init(&init, GIT_REPOSITORY_INIT_OPTIONS_VERSION);
	init.flags =
	    GIT_REPOSITORY_INIT_BARE | GIT_REPOSITORY_INIT_MKPATH | GIT_REPOSITORY_INIT_NO_REINIT;
	init.initial_head = "main";
	if (git_repository_init_ext(&repo, tmp, &init) < 0) {
		err_set("cannot create repository %s/%s: %s", ns, remote, repo_git_error());
		fs_remove_tree(tmp);
		return -1;
	}
	git_repository_free(repo);
	repo = NULL;
	if (rename(tmp, path) < 0) {
		int e = errno;

		fs_remove_tree(tmp);
		if (e != EEXIST && e != ENOTEMPTY)
			return err_set("cannot create repository %s/%s: rename: %s", ns, remote,
			               strerror(e));
	}
	if (git_repository_open_bare(&repo, path) < 0)
		return err_set("cannot open repository %s/%s: %s", ns, remote, repo_git_error());
	*out = repo;
	return 0;
}

int repo_sweep_quarantines(const char *data_dir, unsigned *removed)
{
	char pattern[REPO_PATH_MAX];
	glob_t g;
	int ret = 0, n;

	*removed = 0;
	n = snprintf(pattern, sizeof(pattern), "%s/*/*.git/objects/incoming-*", data_dir);
	if (n < 0 || (size_t)n >= sizeof(pattern))
		return err_set("data directory path too long");
	if (glob(pattern, GLOB_NOSORT, NULL, &g) != 0)
		return 0; /* none */
	for (size_t i = 0; i < g.gl_pathc; i++) {
		if (fs_remove_tree(g.gl_pathv[i]) < 0)
			ret = -1;
		else
			(*removed)++;
	}
	globfree(&g);
	return ret;
}
