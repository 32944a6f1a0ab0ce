/* deployer-race: runs deployer_set_image while a second API client changes
 * the Deployment between the deployer's read and its patch, so the tests can
 * show how 409 Conflicts are handled on the real API server.
 *
 * usage: deployer-race NAMESPACE NAME CONTAINER=IMAGE TIMES
 * The second client adds annotation race.slipway.dev/N on each of the first
 * TIMES patches. Prints "conflicts: N" and exits as the deployer CLI would
 * (0 ok, 6 conflict after retries, 1 other). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "deployer.h"
#include "err.h"
#include "kube.h"
#include "banned.h"

struct race {
	struct kube_client *other;
	const char *ns, *name;
	int times, done;
};

static int interfere(void *arg, const json_t *deployment)
{
	struct race *r = arg;
	char key[64], value[64];
	json_t *patch;
	int ret;

	if (r->done >= r->times)
		return 0;
	r->done++;
	snprintf(key, sizeof(key), "race.slipway.dev/%d", r->done);
	/* a value unique to this run, so the patch always changes the object */
	snprintf(value, sizeof(value), "changed-by-%ld", (long)getpid());
	patch = json_pack("{s:{s:{s:s}}}", "metadata", "annotations", key, value);
	ret = kube_patch(NULL, r->other, "apps/v1/deployments", r->ns, r->name, KUBE_PATCH_MERGE,
	                 patch, NULL);
	json_decref(patch);
	if (ret < 0)
		fprintf(stderr, "deployer-race: interfering patch failed: %s\n", err_msg());
	return 0;
}

int main(int argc, char **argv)
{
	struct race r = {0};
	struct deployer_opts o = {0};
	struct deployer_result res;
	struct deployer_image img;
	struct kube_client *c = NULL;
	char *eq;
	int ret;

	if (argc != 5 || !(eq = strchr(argv[3], '='))) {
		fprintf(stderr, "usage: deployer-race NAMESPACE NAME CONTAINER=IMAGE TIMES\n");
		return 2;
	}
	*eq = '\0';
	img.container = argv[3];
	img.image = eq + 1;
	r.ns = argv[1];
	r.name = argv[2];
	r.times = atoi(argv[4]);
	if (kube_client_new_default(&c, NULL, NULL) < 0 ||
	    kube_client_new_default(&r.other, NULL, NULL) < 0) {
		fprintf(stderr, "deployer-race: %s\n", err_msg());
		return 1;
	}
	o.before_patch = interfere;
	o.before_patch_arg = &r;
	ret = deployer_set_image(&res, c, r.ns, r.name, &img, 1, &o);
	printf("conflicts: %d\n", res.conflicts);
	if (ret < 0)
		fprintf(stderr, "deployer-race: %s\n", res.message);
	kube_client_free(r.other);
	kube_client_free(c);
	return ret == 0 ? 0 : ret == KUBE_ECONFLICT ? 6 : 1;
}
