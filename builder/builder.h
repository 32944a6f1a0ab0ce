/* builder: turns a source tree plus a Dockerfile into an image in a
 * registry with buildah (DESIGN.md "Builder contract"). Used by the
 * `builder` program and, later, by gitd's pipeline for local builds.
 *
 * One build is: a private work directory; the source (a directory, a tar
 * file, or a tarball fetched over HTTP(S)) unpacked safely into it; the
 * Dockerfile found inside the build context; `buildah bud` with chroot
 * isolation; `buildah push`, which gives the manifest digest. buildah runs
 * from an argv array with a clean environment, never through a shell.
 * Registry credentials are a docker config.json, copied 0600 into the work
 * directory for buildah and never printed.
 *
 * The report protocol towards gitd (POST URL/log and URL/result with a
 * bearer token) is in report.h and docs/builder.md. */
#ifndef SLIP_BUILDER_H
#define SLIP_BUILDER_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* Return codes besides -1 (out of memory, no temp directory, buildah could
 * not be started). */
enum {
	BUILDER_EINVALID = -30,    /* an input is malformed: image reference
	                              (imageref_check_push), build
	                              argument, option, registry auth file */
	BUILDER_ESOURCE = -31,     /* the source cannot be had or is unsafe, or the
	                              Dockerfile is missing or outside the context */
	BUILDER_EBUILD = -32,      /* buildah bud failed: nothing was pushed */
	BUILDER_EPUSH = -33,       /* buildah push failed or gave no digest */
	BUILDER_ETIMEOUT = -34,    /* timeout_ms passed; buildah's group was killed */
	BUILDER_ECANCELLED = -35,  /* *cancel became non-zero; the group was killed */
	BUILDER_ENOTFOUND = -36,   /* builder_path_resolve: no such file */
	BUILDER_EOUTSIDE = -37,    /* builder_path_resolve: the path leaves its root */
	BUILDER_EPRIVILEGES = -38, /* buildah cannot run here: not root, or the
	                              container lacks what its user namespace
	                              needs (privileges.h) */
};

#define BUILDER_SOURCE_MAX_BYTES (4ULL << 30) /* default limit of a source */
#define BUILDER_SOURCE_MAX_ENTRIES 1000000    /* entries in a source archive */
#define BUILDER_BUILD_ARGS_MAX 256            /* --build-arg options */
#define BUILDER_BUILD_ARG_LEN_MAX 32768       /* bytes of one NAME=VALUE */
#define BUILDER_TOKEN_MAX 4096                /* bytes of a token file */
#define BUILDER_AUTH_FILE_MAX (1 << 20)       /* bytes of a registry auth file */
#define BUILDER_MARKER "-----> "              /* starts each step line */

struct builder_opts {
	const char *image; /* REGISTRY/NAME:TAG to build and push */
	/* the source: exactly one of */
	const char *context_dir;       /* a directory, used in place */
	const char *source_tar;        /* a tar file (plain or gzip), unpacked */
	const char *source_url;        /* an http(s) URL of such a tar file */
	const char *source_token;      /* bearer token for source_url; NULL: none */
	const char *path;              /* subdirectory of the source that is the build
	                                  context; NULL: the whole source */
	const char *dockerfile;        /* relative to the context; NULL: "Dockerfile" */
	const char *const *build_args; /* "NAME=VALUE" each */
	size_t n_build_args;
	const char *registry_auth_file; /* docker config.json; NULL: anonymous */
	bool insecure_registry;         /* plain HTTP or unverified TLS to registries */
	const char *storage_driver;     /* "vfs" or "overlay"; NULL: "vfs" */
	const char *storage_root;       /* buildah's storage (kept: a layer cache);
	                                   NULL: inside the work directory, removed */
	const char *buildah;            /* the program; NULL: "buildah" in PATH */
	const char *tmp_dir;            /* parent of the work directory; NULL: $TMPDIR
	                                   or /tmp */
	long timeout_ms;                /* the whole build; 0: no limit */
	uint64_t source_max_bytes;      /* 0: BUILDER_SOURCE_MAX_BYTES */
	/* Each log line (step markers and buildah's output), without its
	 * newline; may be NULL. */
	void (*log)(void *arg, const char *line);
	/* Called about four times a second while buildah runs; may be NULL. */
	void (*tick)(void *arg);
	void *log_arg;                       /* passed to log and tick */
	const volatile sig_atomic_t *cancel; /* non-zero: stop; may be NULL */
};

struct builder_result {
	char digest[72];       /* "sha256:<64 hex>" of the pushed manifest, or "" */
	const char *reason;    /* "Pushed" or builder_reason() of the failure */
	char message[ERR_MAX]; /* on failure: one line for the user, no secrets */
	long source_ms;        /* time spent getting the source */
	long build_ms;         /* time spent in buildah bud */
	long push_ms;          /* time spent in buildah push */
};

/* Builds O->image from the source with buildah bud and pushes it, logging
 * "-----> Building IMAGE", "-----> Pushing IMAGE", buildah's output, and at
 * the end "-----> Pushed IMAGE@sha256:..." through O->log. Every input is
 * checked before buildah starts, then whether buildah can run here
 * (privileges_check(), BUILDER_EPRIVILEGES), before the source is fetched.
 * The work directory (and the storage in it) is removed before returning,
 * whatever happened; a timeout or cancel kills buildah's whole process
 * group. OUT is always filled.
 * Returns 0, or BUILDER_E* / -1 with err_msg() and out->message set to the
 * same line. */
int builder_run(struct builder_result *out, const struct builder_opts *o);

/* The PipelineRun-style reason of return code CODE of builder_run: "Pushed",
 * "InvalidInput", "SourceFailed", "BuildFailed", "PushFailed", "Timeout",
 * "Cancelled", "Unprivileged" or "Error". Static string. */
const char *builder_reason(int code);

/* Checks a build argument "NAME=VALUE": NAME is [A-Za-z_][A-Za-z0-9_]* (at
 * most 128 characters), the whole at most BUILDER_BUILD_ARG_LEN_MAX bytes;
 * VALUE is any text, possibly empty. Returns 0, or BUILDER_EINVALID with
 * err_msg(). Pure. */
int builder_build_arg_check(const char *arg);

/* Resolves REL, a relative path, inside directory ROOT, following symbolic
 * links as the kernel would, and checks the result stays inside ROOT: REL
 * is refused when it is absolute, when its ".." components climb above ROOT,
 * or when a link leads out. *OUT gets the real absolute path and belongs to
 * the caller (free()). Returns 0, BUILDER_EOUTSIDE, BUILDER_ENOTFOUND (REL
 * or ROOT does not exist), or -1, each with err_msg(). */
int builder_path_resolve(char **out, const char *root, const char *rel);

/* Reads a secret token from file PATH (at most BUILDER_TOKEN_MAX bytes;
 * trailing whitespace dropped; it must be non-empty and hold no spaces or
 * control characters, so it is safe in an HTTP header). The token never
 * appears in a message. *OUT belongs to the caller: release it with
 * builder_token_free(). Returns 0 or BUILDER_EINVALID with err_msg(). */
int builder_token_read(char **out, const char *path);

/* Wipes and frees TOKEN (NULL is fine). */
void builder_token_free(char *token);

#endif
