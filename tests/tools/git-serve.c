/* git-serve: runs gitd's receive-pack or upload-pack on stdin/stdout for one
 * repository, so the protocol code can be driven by the real git client
 * without SSH: `git clone -u 'git-serve upload-pack' file://REPO` or
 * `git push --receive-pack='git-serve receive-pack' file://REPO`. A test
 * driver, not shipped. GIT_PROTOCOL (set by git) selects the protocol
 * version; GIT_SERVE_DENY_NON_FF=1, GIT_SERVE_ALLOW_DELETE_CURRENT=1,
 * GIT_SERVE_MAX_PACK=BYTES, GIT_SERVE_MAX_REFS=N and GIT_SERVE_REJECT=MESSAGE
 * (a pre-receive point that rejects every push) set receive-pack's options;
 * GIT_SERVE_MAX_OBJECT=BYTES sets both services' object size limit (none by
 * default). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "pktline.h"
#include "receive_pack.h"
#include "repo.h"
#include "upload_pack.h"
#include "banned.h"

static int reject_all(void *arg, const struct receive_check *check, char *message,
                      size_t message_size)
{
	pkt_progressf(check->io, "pre-receive: rejecting %zu command(s)\n", check->ncmds);
	snprintf(message, message_size, "%s", (const char *)arg);
	return 1;
}

int main(int argc, char **argv)
{
	static struct pkt_io io;
	struct pkt_fds fds = {0, 1};
	git_repository *repo = NULL;
	const char *path;
	int ret = 1;

	if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		printf("usage: git-serve receive-pack|upload-pack REPO\n"
		       "Serves one push or fetch of the bare repository REPO on stdin/stdout\n"
		       "with gitd's protocol code (a test driver).\n");
		return 0;
	}
	if (argc != 3) {
		fprintf(stderr, "usage: git-serve receive-pack|upload-pack REPO\n");
		return 2;
	}
	path = argv[2];
	git_libgit2_init();
	if (repo_limit_pack_mappings() < 0) {
		fprintf(stderr, "git-serve: %s\n", err_msg());
		return 1;
	}
	if (git_repository_open_bare(&repo, path) < 0) {
		fprintf(stderr, "git-serve: cannot open %s: %s\n", path,
		        git_error_last() ? git_error_last()->message : "?");
		goto out;
	}
	pkt_io_init_fds(&io, &fds);
	if (!strcmp(argv[1], "receive-pack") || !strcmp(argv[1], "git-receive-pack")) {
		struct receive_opts o = {0};
		struct receive_stats st = {0};
		const char *v;

		o.agent = "slipway-git-serve";
		o.reflog_name = "git-serve";
		o.reflog_email = "git-serve@localhost";
		o.deny_non_fast_forwards = getenv("GIT_SERVE_DENY_NON_FF") != NULL;
		o.allow_delete_current_branch = getenv("GIT_SERVE_ALLOW_DELETE_CURRENT") != NULL;
		if ((v = getenv("GIT_SERVE_MAX_PACK")))
			o.max_pack_bytes = strtoull(v, NULL, 10);
		if ((v = getenv("GIT_SERVE_MAX_OBJECT")))
			o.max_object_bytes = strtoull(v, NULL, 10);
		if ((v = getenv("GIT_SERVE_MAX_REFS")))
			o.max_ref_updates = strtoul(v, NULL, 10);
		if ((v = getenv("GIT_SERVE_REJECT"))) {
			o.pre_receive = reject_all;
			o.pre_receive_arg = (void *)v;
		}
		ret = receive_pack_serve(&io, repo, &o, &st) < 0;
		fprintf(stderr,
		        "git-serve: receive-pack: %zu commands, %zu updated, %zu rejected, %llu "
		        "pack bytes, %zu objects\n",
		        st.ncommands, st.nupdated, st.nrejected, st.pack_bytes, st.pack_objects);
	} else if (!strcmp(argv[1], "upload-pack") || !strcmp(argv[1], "git-upload-pack")) {
		struct upload_opts o = {"slipway-git-serve", 0};
		struct upload_stats st = {0};
		const char *v = getenv("GIT_SERVE_MAX_OBJECT");

		if (v)
			o.max_object_bytes = strtoull(v, NULL, 10);

		ret = upload_pack_serve(&io, repo,
		                        upload_pack_protocol_version(getenv("GIT_PROTOCOL")), &o,
		                        &st) < 0;
		fprintf(stderr,
		        "git-serve: upload-pack: %zu wants, %zu objects, %llu pack bytes, %zu "
		        "pack-reused, %zu closures recorded\n",
		        st.nwants, st.pack_objects, st.pack_bytes, st.pack_reused,
		        st.closures_recorded);
	} else {
		fprintf(stderr, "git-serve: unknown service '%s'\n", argv[1]);
		ret = 2;
	}
	if (ret == 1)
		fprintf(stderr, "git-serve: %s\n", err_msg());
out:
	git_repository_free(repo);
	git_libgit2_shutdown();
	return ret;
}
