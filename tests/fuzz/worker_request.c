/* libFuzzer target: any first line a connection process may send the
 * pipeline worker either parses (pipesrv_request_parse) into a request
 * whose names are valid Kubernetes names, whose repository is the worker's
 * own DATA_DIR/NS/NAME.git, whose quarantine (if any) is one incoming-*
 * component under that repository's objects directory, and whose commands
 * are valid refnames under refs/; or fails with a message and holds nothing.
 * The seeds in tests/fuzz/corpus/worker_request use DATA_DIR "/data". */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <git2.h>

#include "err.h"
#include "pipeline.h"
#include "pipesrv.h"
#include "repo.h"

#define DATA_DIR "/data"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	git_libgit2_init();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pipeline_request r;
	char repo[REPO_PATH_MAX];
	int is_valid = 0;

	err_clear();
	if (pipesrv_request_parse(&r, (const char *)data, size, DATA_DIR) < 0) {
		if (!err_msg()[0] || r.cmds || r.ncmds)
			abort();
		return 0;
	}
	if (!repo_is_valid_name(r.ns) || !repo_is_valid_name(r.name) || !r.ncmds)
		abort();
	snprintf(repo, sizeof(repo), DATA_DIR "/%s/%s.git", r.ns, r.name);
	if (strcmp(repo, r.repo_path) != 0)
		abort();
	if (r.quarantine[0]) {
		size_t n = strlen(repo);
		const char *base = r.quarantine + n + strlen("/objects/");

		if (strncmp(r.quarantine, repo, n) != 0 ||
		    strncmp(r.quarantine + n, "/objects/incoming-", 18) != 0 || strchr(base, '/') ||
		    strstr(base, ".."))
			abort();
	}
	if (strncmp(r.fingerprint, "SHA256:", 7) != 0)
		abort();
	for (size_t i = 0; i < r.ncmds; i++)
		if (strncmp(r.cmds[i].refname, "refs/", 5) != 0 ||
		    git_reference_name_is_valid(&is_valid, r.cmds[i].refname) < 0 || !is_valid)
			abort();
	pipeline_request_release(&r);
	return 0;
}
