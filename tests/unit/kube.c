/* Unit tests of lib/kube's pure parts: the mapping of API responses to
 * status and return codes, and resource paths. The requests themselves are
 * tested against the real API server in tests/t02*.sh. */
#include <string.h>

#include "tap.h"
#include "kube.h"
#include "err.h"

static void test_status(void)
{
	struct kube_status st;
	const char *notfound = "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\","
	                       "\"message\":\"deployments.apps \\\"web\\\" not found\","
	                       "\"reason\":\"NotFound\",\"code\":404}";
	const char *exists = "{\"kind\":\"Status\",\"status\":\"Failure\",\"message\":\"x already "
	                     "exists\",\"reason\":\"AlreadyExists\",\"code\":409}";
	const char *conflict = "{\"kind\":\"Status\",\"status\":\"Failure\",\"message\":\"the "
	                       "object has been modified\",\"reason\":\"Conflict\",\"code\":409}";
	const char *forbidden = "{\"kind\":\"Status\",\"message\":\"deployments.apps \\\"web\\\" "
	                        "is forbidden: User \\\"x\\\" cannot patch\",\"reason\":"
	                        "\"Forbidden\",\"code\":403}";

	is_int(kube_status_from_response(&st, 200, "{}", 2), 0, "2xx maps to 0");
	is_int(kube_status_from_response(&st, 404, notfound, strlen(notfound)), KUBE_ENOTFOUND,
	       "404 NotFound maps to KUBE_ENOTFOUND");
	is_str(st.reason, "NotFound", "reason is taken from the Status");
	is_str(st.message, "deployments.apps \"web\" not found",
	       "message is taken from the Status");
	is_int(st.code, 404, "code is the HTTP code");
	is_int(kube_status_from_response(&st, 409, exists, strlen(exists)), KUBE_EEXISTS,
	       "409 AlreadyExists maps to KUBE_EEXISTS");
	is_int(kube_status_from_response(&st, 409, conflict, strlen(conflict)), KUBE_ECONFLICT,
	       "409 Conflict maps to KUBE_ECONFLICT");
	is_int(kube_status_from_response(&st, 403, forbidden, strlen(forbidden)), KUBE_EFORBIDDEN,
	       "403 maps to KUBE_EFORBIDDEN");
	is_int(kube_status_from_response(&st, 401, "Unauthorized", 12), KUBE_EUNAUTHORIZED,
	       "401 with a plain body maps to KUBE_EUNAUTHORIZED");
	is_str(st.reason, "Unauthorized", "a bare code gets the API's reason for it");
	is_int(
	    kube_status_from_response(&st, 422, "{\"kind\":\"Status\",\"reason\":\"Invalid\"}", 36),
	    KUBE_EINVALID, "422 maps to KUBE_EINVALID");
	is_str(st.message, "Invalid", "a Status without message uses its reason");
	is_int(kube_status_from_response(&st, 400, NULL, 0), KUBE_EINVALID,
	       "400 without a body maps to KUBE_EINVALID");
	is_int(kube_status_from_response(&st, 410,
	                                 "{\"kind\":\"Status\",\"reason\":\"Expired\","
	                                 "\"message\":\"too old resource version\"}",
	                                 72),
	       KUBE_EGONE, "410 maps to KUBE_EGONE");
	is_int(kube_status_from_response(&st, 504, "", 0), KUBE_ETIMEOUT,
	       "504 maps to KUBE_ETIMEOUT");
	is_int(kube_status_from_response(&st, 500, "{\"kind\":\"Sta", 12), KUBE_ERROR,
	       "a truncated body maps to KUBE_ERROR");
	is_str(st.reason, "InternalError", "a truncated 500 gets reason InternalError");
	ok(strstr(st.message, "HTTP 500") != NULL, "a non-Status body is quoted with its code");
	is_int(kube_status_from_response(&st, 503, "<html>\n<b>down</b>\n", 20), KUBE_ERROR,
	       "an HTML error page maps to KUBE_ERROR");
	ok(strchr(st.message, '\n') == NULL, "control characters never reach the message");
	{
		char big[5000];

		memset(big, 'x', sizeof(big));
		kube_status_from_response(&st, 500, big, sizeof(big));
		ok(strlen(st.message) < sizeof(st.message), "a huge body is cut to fit");
	}
	is_int(kube_status_from_response(&st, 409, "[1,2]", 5), KUBE_ECONFLICT,
	       "JSON that is not an object is handled");
}

static void test_paths(void)
{
	char p[256];

	ok(kube_path(p, sizeof(p), "v1/configmaps", "default", "cm", NULL) == 0 &&
	       !strcmp(p, "/api/v1/namespaces/default/configmaps/cm"),
	   "core group object path");
	ok(kube_path(p, sizeof(p), "apps/v1/deployments", "ns1", NULL, NULL) == 0 &&
	       !strcmp(p, "/apis/apps/v1/namespaces/ns1/deployments"),
	   "named group collection path");
	ok(kube_path(p, sizeof(p), "slipway.dev/v1alpha1/pipelineruns", "a", "r1", "status") == 0 &&
	       !strcmp(p, "/apis/slipway.dev/v1alpha1/namespaces/a/pipelineruns/r1/status"),
	   "subresource path");
	ok(kube_path(p, sizeof(p), "v1/namespaces", NULL, "kube-system", NULL) == 0 &&
	       !strcmp(p, "/api/v1/namespaces/kube-system"),
	   "cluster-scoped object path");
	ok(kube_path(p, sizeof(p), "rbac.authorization.k8s.io/v1/clusterroles", "",
	             "system:controller:x", NULL) == 0 &&
	       !strcmp(p, "/apis/rbac.authorization.k8s.io/v1/clusterroles/"
	                  "system%3Acontroller%3Ax"),
	   "names are path-escaped");
	ok(kube_path(p, sizeof(p), "v1/configmaps", "default", "a/../b", NULL) == 0 &&
	       !strstr(p, "/../"),
	   "a slash in a name cannot climb the path");
	ok(kube_path(p, sizeof(p), "v1/configmaps", "default", "..", NULL) < 0,
	   "the name .. is refused");
	ok(kube_path(p, sizeof(p), "deployments", "default", NULL, NULL) < 0,
	   "a resource without version is refused");
	ok(strstr(err_msg(), "deployments") != NULL, "the error names the resource");
	ok(kube_path(p, sizeof(p), "a/b/c/d", NULL, NULL, NULL) < 0, "four segments are refused");
	ok(kube_path(p, sizeof(p), "../v1/pods", NULL, NULL, NULL) < 0,
	   "dot segments in the resource are refused");
	ok(kube_path(p, 10, "apps/v1/deployments", "default", "web", NULL) < 0,
	   "a path that does not fit is an error");
}

int main(void)
{
	test_status();
	test_paths();
	return tap_done();
}
