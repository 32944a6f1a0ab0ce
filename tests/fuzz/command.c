/* libFuzzer target: any SSH exec request either parses into a service and a
 * Remote path whose names are valid DNS-1123 names (so no "..", "/" or
 * leading "-" reaches the filesystem), or fails with a message. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "command.h"
#include "err.h"
#include "repo.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char line[COMMAND_MAX + 64];
	struct command cmd;

	if (size >= sizeof(line))
		return 0;
	memcpy(line, data, size);
	line[size] = '\0';
	if (command_parse(&cmd, line) < 0) {
		if (!err_msg()[0])
			abort();
		return 0;
	}
	if (cmd.service != COMMAND_RECEIVE_PACK && cmd.service != COMMAND_UPLOAD_PACK)
		abort();
	if (cmd.joined[0]) {
		if (cmd.ns[0] || cmd.remote[0] || !repo_is_valid_name(cmd.joined))
			abort();
	} else if (!repo_is_valid_name(cmd.ns) || !repo_is_valid_name(cmd.remote)) {
		abort();
	}
	return 0;
}
