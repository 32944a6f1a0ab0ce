/* Unit tests of the deployer's pure parts: rollout judgement by kubectl's
 * rules, and image reference validation. */
#include <string.h>

#include "tap.h"
#include "deployer.h"

static enum deployer_rollout judge(const char *json, char *msg, size_t size)
{
	json_t *d = json_loads(json, 0, NULL);
	enum deployer_rollout r;

	if (!d) {
		ok(0, "fixture parses");
		return DEPLOYER_ROLLOUT_PROGRESSING;
	}
	r = deployer_rollout_state(d, msg, size);
	json_decref(d);
	return r;
}

static void test_rollout(void)
{
	char msg[256];

	is_int(judge("{\"metadata\":{\"generation\":3},\"spec\":{\"replicas\":3},"
	             "\"status\":{\"observedGeneration\":2,\"replicas\":3,\"updatedReplicas\":3,"
	             "\"readyReplicas\":3,\"availableReplicas\":3}}",
	             msg, sizeof(msg)),
	       DEPLOYER_ROLLOUT_PROGRESSING, "an unobserved generation is still progressing");
	is_str(msg, "Waiting for deployment spec update to be observed...",
	       "and says it waits for the spec update");
	is_int(judge("{\"metadata\":{\"generation\":3},\"spec\":{\"replicas\":3},"
	             "\"status\":{\"observedGeneration\":3,\"replicas\":4,\"updatedReplicas\":1,"
	             "\"readyReplicas\":3,\"availableReplicas\":3}}",
	             msg, sizeof(msg)),
	       DEPLOYER_ROLLOUT_PROGRESSING, "too few updated replicas is progressing");
	is_str(msg, "Waiting for rollout to finish: 1 out of 3 new replicas have been updated...",
	       "and counts the updated replicas");
	is_int(judge("{\"metadata\":{\"generation\":3},\"spec\":{\"replicas\":3},"
	             "\"status\":{\"observedGeneration\":3,\"replicas\":4,\"updatedReplicas\":3,"
	             "\"readyReplicas\":3,\"availableReplicas\":3}}",
	             msg, sizeof(msg)),
	       DEPLOYER_ROLLOUT_PROGRESSING, "old replicas still running is progressing");
	is_str(msg, "Waiting for rollout to finish: 1 old replicas are pending termination...",
	       "and counts the old replicas");
	is_int(judge("{\"metadata\":{\"generation\":3},\"spec\":{\"replicas\":3},"
	             "\"status\":{\"observedGeneration\":3,\"replicas\":3,\"updatedReplicas\":3,"
	             "\"readyReplicas\":1,\"availableReplicas\":1}}",
	             msg, sizeof(msg)),
	       DEPLOYER_ROLLOUT_PROGRESSING, "unavailable replicas is progressing");
	is_str(msg, "Waiting for rollout to finish: 1 of 3 updated replicas are available...",
	       "and prints kubectl's availability line");
	is_int(judge("{\"metadata\":{\"generation\":3},\"spec\":{\"replicas\":3},"
	             "\"status\":{\"observedGeneration\":3,\"replicas\":3,\"updatedReplicas\":3,"
	             "\"readyReplicas\":2,\"availableReplicas\":3}}",
	             msg, sizeof(msg)),
	       DEPLOYER_ROLLOUT_PROGRESSING, "a replica not ready is progressing");
	is_int(judge("{\"metadata\":{\"generation\":3},\"spec\":{\"replicas\":3},"
	             "\"status\":{\"observedGeneration\":3,\"replicas\":3,\"updatedReplicas\":3,"
	             "\"readyReplicas\":3,\"availableReplicas\":3}}",
	             msg, sizeof(msg)),
	       DEPLOYER_ROLLOUT_COMPLETE, "all replicas updated, ready and available is complete");
	is_int(judge("{\"metadata\":{\"generation\":5},\"spec\":{},"
	             "\"status\":{\"observedGeneration\":5,\"replicas\":1,\"updatedReplicas\":1,"
	             "\"readyReplicas\":1,\"availableReplicas\":1}}",
	             msg, sizeof(msg)),
	       DEPLOYER_ROLLOUT_COMPLETE, "spec.replicas defaults to 1");
	is_int(judge("{\"metadata\":{\"generation\":2},\"spec\":{\"replicas\":0},"
	             "\"status\":{\"observedGeneration\":2}}",
	             msg, sizeof(msg)),
	       DEPLOYER_ROLLOUT_COMPLETE, "a Deployment scaled to zero is complete");
	is_int(judge("{\"metadata\":{\"generation\":4},\"spec\":{\"replicas\":2},"
	             "\"status\":{\"observedGeneration\":4,\"replicas\":3,\"updatedReplicas\":1,"
	             "\"conditions\":[{\"type\":\"Available\",\"status\":\"True\"},"
	             "{\"type\":\"Progressing\",\"status\":\"False\","
	             "\"reason\":\"ProgressDeadlineExceeded\"}]}}",
	             msg, sizeof(msg)),
	       DEPLOYER_ROLLOUT_FAILED, "ProgressDeadlineExceeded is a failure");
	is_int(judge("{}", msg, sizeof(msg)), DEPLOYER_ROLLOUT_PROGRESSING,
	       "an empty object does not crash and is not complete");
}

static void test_image_refs(void)
{
	static const char *const good[] = {
	    "busybox",
	    "library/busybox:1.36",
	    "127.0.0.1:5000/default-web-web-app:0123abc",
	    "localhost:5000/a/b/c",
	    "registry.example.com/team/app@sha256:"
	    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
	    "reg.example.com:443/app:v1@sha256:"
	    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
	    "a__b/c-d.e_f:Tag_1.0-rc",
	    "[::1]:5000/app:1",
	};
	static const char *const bad[] = {
	    "",
	    "Upper",
	    "reg.example.com/UPPER/case",
	    "app:",
	    "app:-tag",
	    "app@sha256:abc",
	    "app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde",
	    "-app",
	    "app name",
	    "app:tag;rm -rf /",
	    "reg.example.com//app",
	    "app/",
	    "$(touch x)",
	};
	char longname[300];

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		ok(deployer_image_ref_is_valid(good[i]), "valid image reference '%s'", good[i]);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ok(!deployer_image_ref_is_valid(bad[i]), "invalid image reference '%s'", bad[i]);
	ok(!deployer_image_ref_is_valid(NULL), "NULL is not a reference");
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	ok(!deployer_image_ref_is_valid(longname), "a name over 255 characters is refused");
}

int main(void)
{
	test_rollout();
	test_image_refs();
	return tap_done();
}
