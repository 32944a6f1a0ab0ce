/* apply: server-side apply of a Remote's manifests as its ServiceAccount,
 * the API's discovery of each kind's resource, and the inventory of what a
 * Remote applied, which pruning reads (see apply.h). */
#include "apply.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "banned.h"

int apply_init(struct apply *a, struct kube_client *c, const char *ns, const char *remote_gvr,
               const char *remote)
{
	const char *slash = strchr(remote_gvr, '/'), *last = strrchr(remote_gvr, '/');

	memset(a, 0, sizeof(*a));
	a->c = c;
	a->ns = ns;
	/* "slipway.dev/v1alpha1/remotes" -> "remotes.slipway.dev/NAME" */
	if (!slash || !last || slash == last)
		return err_set("apply: malformed Remote resource %s", remote_gvr);
	snprintf(a->owner, sizeof(a->owner), "%s.%.*s/%s", last + 1, (int)(slash - remote_gvr),
	         remote_gvr, remote);
	a->discovery = json_object();
	if (!a->discovery)
		return err_set("out of memory");
	return 0;
}

void apply_release(struct apply *a)
{
	json_decref(a->discovery);
	memset(a, 0, sizeof(*a));
}

/* The APIResourceList of API_VERSION, read once (borrowed from the cache). */
static int discover(const json_t **out, struct apply *a, const char *api_version)
{
	json_t *list = json_object_get(a->discovery, api_version);
	char path[512];
	int rc;

	*out = list;
	if (list)
		return 0;
	if (!strchr(api_version, '/'))
		snprintf(path, sizeof(path), "/api/%.400s", api_version);
	else
		snprintf(path, sizeof(path), "/apis/%.400s", api_version);
	rc = kube_request(&list, a->c, "GET", path, NULL, NULL);
	if (rc < 0)
		return rc;
	if (json_object_set_new(a->discovery, api_version, list) < 0)
		return err_set("out of memory");
	*out = list;
	return 0;
}

int apply_resolve(struct apply *a, char gvr[static APPLY_GVR_MAX], bool *is_namespaced,
                  const char *api_version, const char *kind)
{
	const json_t *list, *r;
	size_t i;
	int rc;

	gvr[0] = '\0';
	*is_namespaced = true;
	/* a path segment of the discovery URL: nothing that changes the path */
	for (const char *s = api_version; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("./-", *s))
			return err_set("malformed apiVersion '%.100s'", api_version);
	rc = discover(&list, a, api_version);
	if (rc == KUBE_ENOTFOUND) {
		err_set("the API server does not serve %.100s", api_version);
		return KUBE_ENOTFOUND;
	}
	if (rc < 0)
		return rc;
	json_array_foreach(json_object_get(list, "resources"), i, r)
	{
		const char *name = json_string_value(json_object_get(r, "name"));
		const char *k = json_string_value(json_object_get(r, "kind"));

		/* subresources ("deployments/scale") name other kinds */
		if (!name || !k || strchr(name, '/') || strcmp(k, kind))
			continue;
		if ((size_t)snprintf(gvr, APPLY_GVR_MAX, "%s/%s", api_version, name) >=
		    APPLY_GVR_MAX)
			return err_set("resource name too long");
		*is_namespaced = json_is_true(json_object_get(r, "namespaced"));
		return 0;
	}
	err_set("the API server does not serve %.100s %.100s", api_version, kind);
	return KUBE_ENOTFOUND;
}

int apply_annotate(const struct apply *a, json_t *obj)
{
	json_t *md = json_object_get(obj, "metadata"), *ann;

	if (!json_is_object(md))
		return err_set("object without metadata");
	ann = json_object_get(md, "annotations");
	if (!json_is_object(ann)) {
		ann = json_object();
		if (!ann || json_object_set_new(md, "annotations", ann) < 0)
			return err_set("out of memory");
	}
	if (json_object_set_new(ann, APPLY_OWNER_ANNOTATION, json_string(a->owner)) < 0)
		return err_set("out of memory");
	return 0;
}

static const char *meta_string(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(json_object_get(obj, "metadata"), key));
}

int apply_object(struct apply *a, const char **action, const char *gvr, const json_t *obj,
                 bool dry_run)
{
	struct kube_patch_opts o = {.field_manager = APPLY_FIELD_MANAGER, .force = true};
	const char *name = meta_string(obj, "name");
	const char *rv_before = NULL, *rv_after;
	json_t *before = NULL, *after = NULL;
	int rc;

	if (action)
		*action = "configured";
	o.dry_run = dry_run;
	if (!dry_run) {
		rc = kube_get(&before, a->c, gvr, a->ns, name);
		if (rc == KUBE_ENOTFOUND && action)
			*action = "created";
		else if (rc == 0)
			rv_before = meta_string(before, "resourceVersion");
		/* another failure (no get right): the apply decides */
	}
	rc = kube_patch(&after, a->c, gvr, a->ns, name, KUBE_PATCH_APPLY, obj, &o);
	/* the API server's own words, without the request line: the caller
	 * names the object */
	if (rc < 0 && kube_client_status(a->c)->code && kube_client_status(a->c)->message[0])
		err_set("%s", kube_client_status(a->c)->message);
	if (rc == 0 && !dry_run && rv_before) {
		rv_after = meta_string(after, "resourceVersion");
		if (action && rv_after && !strcmp(rv_after, rv_before))
			*action = "unchanged";
	}
	json_decref(after);
	json_decref(before);
	return rc;
}

char *apply_display(char *out, size_t size, const char *api_version, const char *kind,
                    const char *name)
{
	const char *slash = strchr(api_version, '/');
	char lower[64];
	size_t i;

	for (i = 0; kind[i] && i < sizeof(lower) - 1; i++)
		lower[i] = (char)tolower((unsigned char)kind[i]);
	lower[i] = '\0';
	if (slash)
		snprintf(out, size, "%s.%.*s/%s", lower, (int)(slash - api_version), api_version,
		         name);
	else
		snprintf(out, size, "%s/%s", lower, name);
	return out;
}

/* "REMOTE-applied" into OUT. */
static int inventory_name(char *out, size_t size, const char *remote)
{
	if ((size_t)snprintf(out, size, "%s%s", remote, APPLY_INVENTORY_SUFFIX) >= size)
		return err_set("Remote name too long for its inventory");
	return 0;
}

/* Whether E is an inventory entry: three non-empty strings. */
static bool is_entry(const json_t *e)
{
	static const char *const keys[] = {"apiVersion", "kind", "name"};

	for (size_t i = 0; i < 3; i++) {
		const json_t *v = json_object_get(e, keys[i]);

		if (!json_is_string(v) || !json_string_length(v))
			return false;
	}
	return true;
}

int apply_inventory_read(json_t **out, struct kube_client *c, const struct apply *a,
                         const char *remote)
{
	char name[300];
	json_t *cm = NULL, *list = NULL, *e;
	const char *text, *owner;
	size_t i;
	int rc;

	*out = NULL;
	if (inventory_name(name, sizeof(name), remote) < 0)
		return -1;
	rc = kube_get(&cm, c, "v1/configmaps", a->ns, name);
	if (rc == KUBE_ENOTFOUND) {
		*out = json_array();
		return *out ? 0 : err_set("out of memory");
	}
	if (rc < 0)
		return rc;
	owner = json_string_value(
	    json_object_get(json_object_get(json_object_get(cm, "metadata"), "annotations"),
	                    APPLY_OWNER_ANNOTATION));
	text = json_string_value(json_object_get(json_object_get(cm, "data"), APPLY_INVENTORY_KEY));
	rc = 1;
	if (owner && !strcmp(owner, a->owner) && text)
		list = json_loads(text, 0, NULL);
	*out = json_array();
	if (!*out) {
		rc = err_set("out of memory");
		goto out;
	}
	if (json_is_array(list)) {
		rc = 0;
		json_array_foreach(list, i, e)
		{
			if (is_entry(e))
				json_array_append(*out, e);
			else
				rc = 1;
		}
	}
out:
	json_decref(list);
	json_decref(cm);
	return rc;
}

int apply_inventory_write(struct kube_client *c, const struct apply *a, const char *remote,
                          const json_t *entries)
{
	char name[300], *text = NULL;
	json_t *cm = NULL, *cur = NULL;
	int rc;

	if (inventory_name(name, sizeof(name), remote) < 0)
		return -1;
	text = json_dumps(entries, JSON_COMPACT);
	if (!text)
		return err_set("out of memory");
	if (strlen(text) > APPLY_INVENTORY_MAX) {
		rc = err_set("inventory of %s/%s: more than %d bytes", a->ns, remote,
		             APPLY_INVENTORY_MAX);
		goto out;
	}
	cm = json_pack("{s:s, s:s, s:{s:s, s:s, s:{s:s}}, s:{s:s}}", "apiVersion", "v1", "kind",
	               "ConfigMap", "metadata", "name", name, "namespace", a->ns, "annotations",
	               APPLY_OWNER_ANNOTATION, a->owner, "data", APPLY_INVENTORY_KEY, text);
	if (!cm) {
		rc = err_set("out of memory");
		goto out;
	}
	rc = kube_get(&cur, c, "v1/configmaps", a->ns, name);
	if (rc == KUBE_ENOTFOUND) {
		rc = kube_create(NULL, c, "v1/configmaps", a->ns, cm);
	} else if (rc == 0) {
		json_object_set(
		    json_object_get(cm, "metadata"), "resourceVersion",
		    json_object_get(json_object_get(cur, "metadata"), "resourceVersion"));
		rc = kube_replace(NULL, c, "v1/configmaps", a->ns, name, NULL, cm);
	}
out:
	json_decref(cur);
	json_decref(cm);
	free(text);
	return rc;
}

int apply_prune(struct apply *a, const char *api_version, const char *kind, const char *name)
{
	char gvr[APPLY_GVR_MAX];
	json_t *obj = NULL;
	const char *owner;
	bool is_namespaced;
	int rc;

	rc = apply_resolve(a, gvr, &is_namespaced, api_version, kind);
	if (rc == KUBE_ENOTFOUND)
		return 1; /* the kind is gone, and its objects with it */
	if (rc < 0)
		return rc;
	if (!is_namespaced)
		return 2;
	rc = kube_get(&obj, a->c, gvr, a->ns, name);
	if (rc == KUBE_ENOTFOUND)
		return 1;
	if (rc < 0)
		return rc;
	owner = json_string_value(
	    json_object_get(json_object_get(json_object_get(obj, "metadata"), "annotations"),
	                    APPLY_OWNER_ANNOTATION));
	if (!owner || strcmp(owner, a->owner)) {
		json_decref(obj);
		return 2;
	}
	json_decref(obj);
	rc = kube_delete(NULL, a->c, gvr, a->ns, name, "Background");
	if (rc == KUBE_ENOTFOUND)
		return 1;
	return rc;
}
