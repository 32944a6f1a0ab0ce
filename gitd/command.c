/* command: parse and check the SSH exec request (see command.h). */
#include <string.h>

#include "command.h"
#include "err.h"
#include "repo.h"
#include "banned.h"

const char *command_service_name(enum command_service service)
{
	return service == COMMAND_RECEIVE_PACK ? "git-receive-pack" : "git-upload-pack";
}

/* Dequotes ARG as git's sq_dequote does: 'a'\''b' -> a'b; an unquoted
 * argument is taken as is when it holds no quote, space or backslash.
 * Writes into OUT of SIZE bytes. Returns 0 or -1. */
static int sq_dequote(char *out, size_t size, const char *arg)
{
	size_t n = 0;
	const char *p = arg;

	if (*p != '\'') {
		if (strpbrk(p, "'\\ \t\n") || strlen(p) >= size)
			return -1;
		memcpy(out, p, strlen(p) + 1);
		return 0;
	}
	for (;;) {
		if (*p != '\'')
			return -1;
		p++;
		while (*p && *p != '\'') {
			if (n + 1 >= size)
				return -1;
			out[n++] = *p++;
		}
		if (*p != '\'')
			return -1;
		p++;
		if (!*p)
			break;
		/* only an escaped quote or ! may sit between quoted parts */
		if (p[0] != '\\' || (p[1] != '\'' && p[1] != '!') || p[2] != '\'')
			return -1;
		if (n + 1 >= size)
			return -1;
		out[n++] = p[1];
		p += 2;
	}
	out[n] = '\0';
	return 0;
}

static int copy_name(char *dst, size_t size, const char *src, size_t len)
{
	if (len == 0 || len >= size)
		return -1;
	memcpy(dst, src, len);
	dst[len] = '\0';
	return repo_is_valid_name(dst) ? 0 : -1;
}

static int parse_path(struct command *out, const char *path)
{
	const char *p = path, *slash;
	size_t len;

	if (!strncmp(p, "/~/git/", 7))
		p += 7;
	else if (!strncmp(p, "~/git/", 6))
		p += 6;
	else {
		if (*p == '/')
			p++;
		slash = strchr(p, '/');
		if (!slash || copy_name(out->ns, sizeof(out->ns), p, (size_t)(slash - p)) < 0)
			return -1;
		p = slash + 1;
		len = strlen(p);
		if (len > 4 && !strcmp(p + len - 4, ".git"))
			len -= 4;
		return copy_name(out->remote, sizeof(out->remote), p, len);
	}
	len = strlen(p);
	if (len > 4 && !strcmp(p + len - 4, ".git"))
		len -= 4;
	/* NAMESPACE-REMOTE: both halves are names, so the whole is one too */
	if (copy_name(out->joined, sizeof(out->joined), p, len) < 0 || !strchr(out->joined, '-'))
		return -1;
	return 0;
}

int command_parse(struct command *out, const char *line)
{
	char arg[COMMAND_MAX];
	const char *p;
	size_t n;

	memset(out, 0, sizeof(*out));
	if (strlen(line) >= COMMAND_MAX)
		return err_set("command not allowed");
	if (!strncmp(line, "git-receive-pack ", 17)) {
		out->service = COMMAND_RECEIVE_PACK;
		p = line + 17;
	} else if (!strncmp(line, "git-upload-pack ", 16)) {
		out->service = COMMAND_UPLOAD_PACK;
		p = line + 16;
	} else if (!strncmp(line, "git receive-pack ", 17)) {
		out->service = COMMAND_RECEIVE_PACK;
		p = line + 17;
	} else if (!strncmp(line, "git upload-pack ", 16)) {
		out->service = COMMAND_UPLOAD_PACK;
		p = line + 16;
	} else {
		return err_set("command not allowed");
	}
	while (*p == ' ')
		p++;
	n = strlen(p);
	while (n && (p[n - 1] == ' ' || p[n - 1] == '\n'))
		n--;
	if (n == 0 || n >= sizeof(arg))
		return err_set("invalid repository path");
	memcpy(arg, p, n);
	arg[n] = '\0';
	{
		char path[COMMAND_MAX];

		if (sq_dequote(path, sizeof(path), arg) < 0 || path[0] == '-' ||
		    parse_path(out, path) < 0)
			return err_set("invalid repository path");
	}
	return 0;
}
