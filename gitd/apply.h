/* apply: the Kubernetes side of the pipeline's apply stage (docs/manifests.md):
 * objects of a Remote's spec.manifests sent with server-side apply (field
 * manager "slipway", forced; a dry run first), as the client given, which
 * acts as the Remote's apply ServiceAccount; and the inventory of what a
 * Remote applied, from which objects no longer in the tree are pruned.
 *
 * Every object applied carries the annotation APPLY_OWNER_ANNOTATION whose
 * value names the Remote ("remotes.slipway.dev/NAME" or
 * "remotes.gitkube.sh/NAME"). The inventory is the ConfigMap
 * "REMOTE-applied" in the Remote's namespace (APPLY_INVENTORY_KEY: a JSON
 * array of {apiVersion, kind, name}); an object is pruned only when it is in
 * the inventory and still carries the Remote's annotation, so Slipway never
 * deletes an object it did not apply. */
#ifndef SLIP_GITD_APPLY_H
#define SLIP_GITD_APPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

#include "kube.h"

#define APPLY_FIELD_MANAGER "slipway"
#define APPLY_OWNER_ANNOTATION "slipway.dev/applied-by"
#define APPLY_INVENTORY_SUFFIX "-applied" /* the ConfigMap REMOTE-applied */
#define APPLY_INVENTORY_KEY "objects"
#define APPLY_INVENTORY_MAX (1024 * 1024) /* bytes of the inventory's JSON */

/* Longest "group/version/resource" apply_resolve writes, with its NUL. */
#define APPLY_GVR_MAX 384

struct apply {
	struct kube_client *c; /* the ServiceAccount's client (borrowed) */
	const char *ns;        /* the Remote's namespace (borrowed) */
	char owner[320];       /* the owner annotation's value */
	json_t *discovery;     /* apiVersion -> APIResourceList, as read (owned) */
};

/* Sets up A in place for namespace NS (borrowed) with client C (borrowed),
 * for the Remote REMOTE_GVR ("slipway.dev/v1alpha1/remotes" or gitkube's)
 * named REMOTE. Returns 0, or -1 with err_msg() when out of memory. */
int apply_init(struct apply *a, struct kube_client *c, const char *ns, const char *remote_gvr,
               const char *remote);

/* Frees what A holds. */
void apply_release(struct apply *a);

/* Finds the resource of API_VERSION ("apps/v1", "v1") KIND through the API
 * server's discovery (GET /api/v1 or /apis/GROUP/VERSION, once per
 * apiVersion) and writes "API_VERSION/RESOURCE" into GVR
 * (APPLY_GVR_MAX bytes), the form kube.h takes, and whether the kind is
 * namespaced into *IS_NAMESPACED. Returns 0; KUBE_ENOTFOUND with err_msg()
 * "the API server does not serve API_VERSION KIND" when the version or the
 * kind is unknown; or another kube.h code with the API's message. */
int apply_resolve(struct apply *a, char gvr[static APPLY_GVR_MAX], bool *is_namespaced,
                  const char *api_version, const char *kind);

/* Sets the owner annotation on OBJ (a manifest object, metadata present).
 * Returns 0, or -1 with err_msg() when out of memory. */
int apply_annotate(const struct apply *a, json_t *obj);

/* Sends OBJ (borrowed; apiVersion, kind, metadata.name and .namespace set)
 * to GVR in A's namespace with server-side apply, force=true, field manager
 * APPLY_FIELD_MANAGER; with DRY_RUN as dryRun=All, which persists nothing.
 * Without DRY_RUN, *ACTION (may be NULL) is set to a static string:
 * "created" when the object did not exist, "unchanged" when its
 * resourceVersion stayed the same, else "configured". Returns 0 or a kube.h
 * code, with err_msg() the API server's message alone when it sent one
 * (kube_client_status()->message, e.g. 'Service "x" is invalid: ...'), else
 * the transport error. */
int apply_object(struct apply *a, const char **action, const char *gvr, const json_t *obj,
                 bool dry_run);

/* Writes kubectl's name of an object, "KIND.GROUP/NAME" with KIND in lower
 * case and ".GROUP" only outside the core group ("deployment.apps/www",
 * "service/www"), into OUT of SIZE bytes (cut to fit). Returns OUT. */
char *apply_display(char *out, size_t size, const char *api_version, const char *kind,
                    const char *name);

/* Reads the inventory of Remote REMOTE in NS with client C (gitd's own) into
 * *OUT: a JSON array of {apiVersion, kind, name} (caller frees), empty when
 * there is no inventory yet or it is not this Remote's (its owner
 * annotation differs) or unreadable as JSON (logged by the caller through
 * the return value 1). Returns 0, 1 when the ConfigMap held something else,
 * or a kube.h code with err_msg(). */
int apply_inventory_read(json_t **out, struct kube_client *c, const struct apply *a,
                         const char *remote);

/* Writes ENTRIES (borrowed; as apply_inventory_read returns them) as the
 * inventory of REMOTE with client C (create, or replace what is there).
 * Returns 0 or a kube.h code with err_msg(). */
int apply_inventory_write(struct kube_client *c, const struct apply *a, const char *remote,
                          const json_t *entries);

/* Deletes API_VERSION KIND NAME in A's namespace (propagation Background)
 * when it exists and carries A's owner annotation. Returns 0 when it was
 * deleted, 1 when it is gone already, 2 when it is not this Remote's (left
 * alone), or a kube.h code with err_msg(). */
int apply_prune(struct apply *a, const char *api_version, const char *kind, const char *name);

#endif
