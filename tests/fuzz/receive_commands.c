/* libFuzzer target: the update request of a push (pkt-lines: shallow lines,
 * commands with capabilities, push options) read by receive_request_read
 * from a memory stream parses, is refused by a limit, or fails cleanly; what
 * parses keeps the limits, has printable, non-empty refnames and survives
 * receive_request_check. The first byte picks the options and how many
 * bytes each read returns. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <git2.h>

#include "mem_stream.h"
#include "pktline.h"
#include "receive_pack.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int mem_write(void *arg, const void *buf, size_t len)
{
	return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	git_libgit2_init(); /* refname validation uses libgit2's error state */
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct pkt_io io; /* 128 KiB of buffers: not on the stack */
	struct receive_opts opts = {0};
	struct receive_request req;
	struct mem m;
	int rc;

	if (size < 1)
		return 0;
	opts.deny_deletes = data[0] & 1;
	opts.max_ref_updates = (data[0] >> 1) & 7;
	m.data = data + 1;
	m.len = size - 1;
	m.pos = 0;
	m.step = data[0] >> 4;
	pkt_io_init(&io, mem_read, mem_write, &m);
	rc = receive_request_read(&req, &io, &opts);
	if (rc == RECEIVE_EREFUSED) {
		/* refused by a limit: nothing kept, every command counted */
		if (req.cmds || req.ncmds || req.push_options || !req.nrefused)
			abort();
		receive_request_release(&req);
		return 0;
	}
	if (rc < 0) {
		if (req.cmds || req.ncmds || req.push_options || req.npush_options)
			abort(); /* a failed read leaves the request released */
		return 0;
	}
	if (opts.max_ref_updates && req.ncmds > opts.max_ref_updates)
		abort();
	receive_request_check(&req, &opts);
	for (size_t i = 0; i < req.ncmds; i++) {
		const struct receive_command *cmd = &req.cmds[i];

		if (!cmd->refname[0] || strlen(cmd->refname) > RECEIVE_REFNAME_MAX)
			abort();
		for (const char *p = cmd->refname; *p; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				abort();
		if (cmd->error && !cmd->error[0])
			abort();
		if (!cmd->error && strncmp(cmd->refname, "refs/", 5))
			abort();
	}
	if (req.npush_options > RECEIVE_PUSH_OPTIONS_MAX || req.ncmds > RECEIVE_COMMANDS_MAX)
		abort();
	receive_request_release(&req);
	return 0;
}
