/* imageref: container image references, [DOMAIN/]PATH[:TAG][@DIGEST]: the
 * check, the split into parts, and the references Slipway makes (gitkube's
 * image names, a name pinned by digest).
 *
 * The grammar is distribution's reference package, the one docker and the
 * registries use: the regular expressions documented at the top of
 * github.com/distribution/reference reference.go (also regexp.go):
 *   reference        := name [ ":" tag ] [ "@" digest ]
 *   name             := [domain '/'] remote-name
 *   domain           := host [':' port-number]
 *   host             := domain-name | IPv4address | \[ IPv6address \]
 *   domain-name      := domain-component ['.' domain-component]*
 *   domain-component := /([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])/
 *   port-number      := /[0-9]+/
 *   path-component   := alpha-numeric [separator alpha-numeric]*
 *   remote-name      := path-component ['/' path-component]*
 *   alpha-numeric    := /[a-z0-9]+/
 *   separator        := /[_.]|__|[-]+/
 *   tag              := /[\w][\w.-]{0,127}/
 *   digest           := digest-algorithm ":" digest-hex
 *   digest-algorithm := component [ /[+.-_]/ component ]*
 *   component        := a letter, then letters and digits
 *   digest-hex       := /[0-9a-fA-F]{32,}/
 * with a name of at most 255 characters (NameTotalLengthMax) and a sha256
 * digest of exactly 64 hex digits (opencontainers/go-digest). */
#ifndef SLIP_IMAGEREF_H
#define SLIP_IMAGEREF_H

#include <stdbool.h>
#include <stddef.h>

#define IMAGEREF_NAME_MAX 255 /* characters of [DOMAIN/]PATH */
#define IMAGEREF_TAG_MAX 128  /* characters of a tag */
#define IMAGEREF_REF_MAX 4096 /* longest reference looked at */

/* The parts of a reference, as offsets into the string parsed. Every part
 * but the path may be absent (length 0). */
struct imageref {
	size_t domain_len; /* DOMAIN at offset 0, by distribution's normalize.go
	                      rule: the first of two or more components when it
	                      holds a '.' or a ':' or is "localhost"; 0 otherwise
	                      (docker reads such a name as docker.io's) */
	size_t name_len;   /* [DOMAIN/]PATH at offset 0 */
	size_t tag_off;    /* TAG after the ':' */
	size_t tag_len;
	size_t digest_off; /* DIGEST (ALGORITHM:HEX) after the '@' */
	size_t digest_len;
};

/* Splits REF (a NUL-terminated string) into *OUT by the grammar above.
 * Returns 0, or -1 with err_msg() when REF is NULL or empty ("no image
 * reference given") or is no reference: "invalid image reference \"REF\":
 * it ..." saying which rule it breaks (grammar, a name over 255 characters,
 * a sha256 digest without 64 hex digits, over IMAGEREF_REF_MAX bytes); *OUT
 * is then zeroed. Pure. */
int imageref_parse(struct imageref *out, const char *ref);

/* Returns true when REF is a valid reference (imageref_parse succeeds).
 * Leaves err_msg() alone. Pure. */
bool imageref_is_valid(const char *ref);

/* Returns true when S is "sha256:" and 64 lowercase hex digits, the digest
 * a registry gives for a pushed manifest. Pure. */
bool imageref_is_sha256(const char *s);

/* Checks that REF is what the builder pushes: a valid reference with a
 * domain (an explicit registry), a tag and no digest. Returns 0, or -1 with
 * err_msg() saying what is wrong ("image reference \"x\" has no tag", ...).
 * Pure. */
int imageref_check_push(const char *ref);

/* Makes gitkube's image reference from its parts:
 * REGISTRY/NAMESPACE-REMOTE-DEPLOYMENT-CONTAINER:COMMIT. REGISTRY is a
 * registry host with an optional path prefix (spec.registry.url, e.g.
 * "registry.example.com/team"; trailing '/'s are dropped); the four names
 * are lowercase Kubernetes names ([a-z0-9], '-' and '.' inside, no ".."),
 * COMMIT a full object id (40 or 64 lowercase hex digits). The result passes
 * imageref_check_push. *OUT belongs to the caller (free()), NULL on error.
 * Returns 0, or -1 with err_msg() naming the bad part (or out of memory). */
int imageref_name(char **out, const char *registry, const char *ns, const char *remote,
                  const char *deployment, const char *container, const char *commit);

/* Writes IMAGE's name without its tag or digest, then "@" and DIGEST, into
 * OUT of SIZE bytes: "reg.io/app:v1" and "sha256:ab..." give
 * "reg.io/app@sha256:ab...". IMAGE must be a valid reference and DIGEST
 * imageref_is_sha256. Returns 0, or -1 with err_msg() (OUT then "") when
 * either is not, or the result does not fit. */
int imageref_pin(char *out, size_t size, const char *image, const char *digest);

#endif
