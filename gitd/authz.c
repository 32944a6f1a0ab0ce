/* authz: the key -> Remotes table and its sources (see authz.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authz.h"
#include "err.h"
#include "repo.h"
#include "banned.h"

/* Longest key line read (an RSA 16384-bit key is about 2.8 KB of base64). */
#define AUTHZ_LINE_MAX 16384

void authz_init(struct authz *a)
{
	memset(a, 0, sizeof(*a));
}

void authz_release(struct authz *a)
{
	for (size_t i = 0; i < a->nkeys; i++) {
		ssh_key_free(a->keys[i].key);
		free(a->keys[i].remotes);
	}
	free(a->keys);
	free(a->remotes);
	authz_init(a);
}

int authz_fingerprint(char *buf, size_t size, const ssh_key key)
{
	unsigned char *hash = NULL;
	size_t hlen = 0;
	char *fp;
	int ret = -1;

	if (ssh_get_publickey_hash(key, SSH_PUBLICKEY_HASH_SHA256, &hash, &hlen) < 0)
		return err_set("cannot hash public key");
	fp = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash, hlen);
	if (!fp) {
		err_set("cannot format key fingerprint");
		goto out;
	}
	if ((size_t)snprintf(buf, size, "%s", fp) >= size)
		err_set("key fingerprint too long");
	else
		ret = 0;
	ssh_string_free_char(fp);
out:
	ssh_clean_pubkey_hash(&hash);
	return ret;
}

/* Returns the index of NS/NAME in A, adding it when missing; -1 on OOM. */
static long remote_index(struct authz *a, const char *ns, const char *name, bool is_gitkube)
{
	struct authz_remote *r;

	for (size_t i = 0; i < a->nremotes; i++)
		if (!strcmp(a->remotes[i].ns, ns) && !strcmp(a->remotes[i].name, name) &&
		    a->remotes[i].is_gitkube == is_gitkube)
			return (long)i;
	r = realloc(a->remotes, (a->nremotes + 1) * sizeof(*r));
	if (!r)
		return err_set("out of memory");
	a->remotes = r;
	r = &a->remotes[a->nremotes];
	memset(r, 0, sizeof(*r));
	snprintf(r->ns, sizeof(r->ns), "%s", ns);
	snprintf(r->name, sizeof(r->name), "%s", name);
	r->is_gitkube = is_gitkube;
	return (long)a->nremotes++;
}

/* Parses "KEYTYPE BASE64 [COMMENT]" from LINE (modified in place) into a new
 * public key. Returns 0 or -1 with err_msg(). */
static int parse_key(ssh_key *out, char *comment, size_t comment_size, char *line)
{
	char *type, *b64, *rest, *save = NULL;
	enum ssh_keytypes_e kt;

	type = strtok_r(line, " \t\r\n", &save);
	b64 = type ? strtok_r(NULL, " \t\r\n", &save) : NULL;
	rest = b64 ? strtok_r(NULL, "\r\n", &save) : NULL;
	if (!type || !b64)
		return err_set("expected 'KEYTYPE BASE64 [COMMENT]'");
	kt = ssh_key_type_from_name(type);
	if (kt == SSH_KEYTYPE_UNKNOWN)
		return err_set("unknown key type '%.32s'", type);
	if (ssh_pki_import_pubkey_base64(b64, kt, out) != SSH_OK)
		return err_set("bad %s public key", type);
	while (rest && (*rest == ' ' || *rest == '\t'))
		rest++;
	snprintf(comment, comment_size, "%s", rest ? rest : "");
	return 0;
}

/* Grants key K (ownership moves in; freed on failure) access to REMOTE. An
 * equal key already present gets the Remote added instead. */
static int grant(struct authz *a, ssh_key k, const char *comment, size_t remote)
{
	struct authz_key *e = NULL;
	size_t *rs;

	for (size_t i = 0; i < a->nkeys; i++)
		if (ssh_key_cmp(a->keys[i].key, k, SSH_KEY_CMP_PUBLIC) == 0) {
			e = &a->keys[i];
			ssh_key_free(k);
			k = NULL;
			break;
		}
	if (!e) {
		struct authz_key *ks = realloc(a->keys, (a->nkeys + 1) * sizeof(*ks));

		if (!ks) {
			ssh_key_free(k);
			return err_set("out of memory");
		}
		a->keys = ks;
		e = &a->keys[a->nkeys];
		memset(e, 0, sizeof(*e));
		if (authz_fingerprint(e->fingerprint, sizeof(e->fingerprint), k) < 0) {
			ssh_key_free(k);
			return -1;
		}
		e->key = k;
		snprintf(e->comment, sizeof(e->comment), "%s", comment);
		a->nkeys++;
	}
	for (size_t i = 0; i < e->nremotes; i++)
		if (e->remotes[i] == remote)
			return 0;
	rs = realloc(e->remotes, (e->nremotes + 1) * sizeof(*rs));
	if (!rs)
		return err_set("out of memory");
	e->remotes = rs;
	e->remotes[e->nremotes++] = remote;
	return 0;
}

/* Parses one line of the authorized-keys file. */
static int load_line(struct authz *a, char *line)
{
	char *remotes, *key_part, *save = NULL, *r;
	size_t idx[64], nidx = 0;
	char comment[128];

	remotes = line;
	key_part = strpbrk(line, " \t");
	if (!key_part)
		return err_set("expected 'NAMESPACE/REMOTE[,...] KEYTYPE BASE64 [COMMENT]'");
	*key_part++ = '\0';
	for (r = strtok_r(remotes, ",", &save); r; r = strtok_r(NULL, ",", &save)) {
		char *slash = strchr(r, '/');
		long i;

		if (!slash)
			return err_set("'%.64s' is not NAMESPACE/REMOTE", r);
		*slash = '\0';
		if (!repo_is_valid_name(r) || !repo_is_valid_name(slash + 1))
			return err_set("'%.64s/%.64s' is not a valid NAMESPACE/REMOTE", r,
			               slash + 1);
		if (nidx == sizeof(idx) / sizeof(idx[0]))
			return err_set("more than 64 remotes on one line");
		i = remote_index(a, r, slash + 1, false);
		if (i < 0)
			return -1;
		idx[nidx++] = (size_t)i;
	}
	while (*key_part == ' ' || *key_part == '\t')
		key_part++;
	/* each Remote gets its own parsed copy: grant() takes ownership */
	for (size_t i = 0; i < nidx; i++) {
		char copy[AUTHZ_LINE_MAX];
		ssh_key k = NULL;

		snprintf(copy, sizeof(copy), "%s", key_part);
		if (parse_key(&k, comment, sizeof(comment), copy) < 0 ||
		    grant(a, k, comment, idx[i]) < 0)
			return -1;
	}
	return 0;
}

int authz_load_file(struct authz *out, const char *path)
{
	char line[AUTHZ_LINE_MAX];
	unsigned lineno = 0;
	FILE *f;
	int ret = -1;

	f = fopen(path, "re");
	if (!f)
		return err_set("cannot read %s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		char *p = line;
		size_t n = strlen(line);

		lineno++;
		if (n == sizeof(line) - 1 && line[n - 1] != '\n') {
			err_set("%s:%u: line too long", path, lineno);
			goto out;
		}
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '#' || *p == '\n' || *p == '\r' || *p == '\0')
			continue;
		if (load_line(out, p) < 0) {
			err_set("%s:%u: %s", path, lineno, err_msg());
			goto out;
		}
	}
	if (ferror(f)) {
		err_set("cannot read %s: %s", path, strerror(errno));
		goto out;
	}
	ret = 0;
out:
	fclose(f);
	if (ret < 0)
		authz_release(out);
	return ret;
}

int authz_add_remote(struct authz *a, const struct remote *r, size_t *bad_keys)
{
	long idx;

	if (!repo_is_valid_name(r->ns) || !repo_is_valid_name(r->name))
		return err_set("remote without a valid metadata.namespace and metadata.name");
	idx = remote_index(a, r->ns, r->name, r->is_gitkube);
	if (idx < 0)
		return -1;
	a->remotes[idx].deny_non_fast_forwards = r->deny_non_fast_forwards;
	a->remotes[idx].allow_delete_current_branch = r->allow_delete_current_branch;
	for (size_t i = 0; i < r->nauthorized_keys; i++) {
		const char *s = r->authorized_keys[i];
		char line[AUTHZ_LINE_MAX], comment[128];
		ssh_key k = NULL;

		if (strlen(s) >= sizeof(line)) {
			if (bad_keys)
				(*bad_keys)++;
			continue;
		}
		snprintf(line, sizeof(line), "%s", s);
		if (parse_key(&k, comment, sizeof(comment), line) < 0) {
			if (bad_keys)
				(*bad_keys)++;
			continue;
		}
		if (grant(a, k, comment, (size_t)idx) < 0)
			return -1;
	}
	return 0;
}

const struct authz_key *authz_find_key(const struct authz *a, const ssh_key key)
{
	for (size_t i = 0; i < a->nkeys; i++)
		if (ssh_key_cmp(a->keys[i].key, key, SSH_KEY_CMP_PUBLIC) == 0)
			return &a->keys[i];
	return NULL;
}

/* Returns 1 when "NS-NAME" equals JOINED. */
static int joined_is(const char *joined, const struct authz_remote *r)
{
	size_t n = strlen(r->ns);

	return !strncmp(joined, r->ns, n) && joined[n] == '-' && !strcmp(joined + n + 1, r->name);
}

const struct authz_remote *authz_resolve(const struct authz *a, const struct authz_key *k,
                                         const char *user, const struct command *cmd)
{
	const struct authz_remote *found = NULL;
	bool user_is_git = !strcmp(user, "git");

	for (size_t i = 0; k && i < k->nremotes && !found; i++) {
		const struct authz_remote *r = &a->remotes[k->remotes[i]];

		if (cmd->joined[0] ? !joined_is(cmd->joined, r)
		                   : strcmp(cmd->ns, r->ns) || strcmp(cmd->remote, r->name))
			continue;
		if (!user_is_git && !joined_is(user, r))
			continue;
		found = r;
	}
	if (!found)
		err_set("repository not found or access denied");
	return found;
}
