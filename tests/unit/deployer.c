/* Unit tests of the deployer's pure parts: rollout judgement by kubectl's
 * rules and Pods the kubelet cannot run. */
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

/* Judges the Pod in JSON; REASON and MSG get what deployer_pod_failure wrote. */
static int pod_fails(const char *json, char *reason, size_t rsize, char *msg, size_t msize)
{
	json_t *pod = json_loads(json, 0, NULL);
	int failed;

	if (!ok(pod != NULL, "pod fixture parses"))
		return -1;
	failed = deployer_pod_failure(pod, reason, rsize, msg, msize);
	json_decref(pod);
	return failed;
}

#define POD(init, containers)                                                                      \
	"{\"metadata\":{\"name\":\"web-7d4b9c-x2x7k\"},\"status\":{\"phase\":\"Pending\","         \
	"\"initContainerStatuses\":[" init "],\"containerStatuses\":[" containers "]}}"
#define WAITING(name, reason, message)                                                             \
	"{\"name\":\"" name "\",\"ready\":false,\"restartCount\":0,"                               \
	"\"state\":{\"waiting\":{\"reason\":\"" reason "\",\"message\":\"" message "\"}}}"
#define RUNNING_READY(name)                                                                        \
	"{\"name\":\"" name "\",\"ready\":true,\"restartCount\":0,\"started\":true,"               \
	"\"state\":{\"running\":{\"startedAt\":\"2024-05-01T10:00:00Z\"}}}"

static void test_pod_failure(void)
{
	char reason[64], msg[768], small[80];

	is_int(pod_fails(POD("", "{\"name\":\"web\",\"ready\":false,\"restartCount\":1,"
	                         "\"state\":{\"waiting\":{\"reason\":\"CrashLoopBackOff\","
	                         "\"message\":\"back-off 10s restarting failed container=web "
	                         "pod=web-7d4b9c-x2x7k_default(0f1c)\"}},"
	                         "\"lastState\":{\"terminated\":{\"exitCode\":1,"
	                         "\"reason\":\"Error\",\"startedAt\":\"2024-05-01T10:00:00Z\"}}}"),
	                 reason, sizeof(reason), msg, sizeof(msg)),
	       1, "a container in CrashLoopBackOff is a failure");
	is_str(reason, "CrashLoopBackOff", "with the kubelet's reason");
	is_str(msg,
	       "pod web-7d4b9c-x2x7k container web is in CrashLoopBackOff (exit code 1, last "
	       "state Error, restarts 1)",
	       "and the exit code, last state and restarts of the container");

	is_int(pod_fails(POD("", "{\"name\":\"web\",\"restartCount\":4,"
	                         "\"state\":{\"waiting\":{\"reason\":\"CrashLoopBackOff\"}},"
	                         "\"lastState\":{\"terminated\":{\"exitCode\":137,"
	                         "\"reason\":\"OOMKilled\",\"message\":\"  out of\\nmemory\\t\\t"
	                         "at startup \\n\"}}}"),
	                 reason, sizeof(reason), msg, sizeof(msg)),
	       1, "an OOMKilled container in CrashLoopBackOff is a failure");
	is_str(msg,
	       "pod web-7d4b9c-x2x7k container web is in CrashLoopBackOff (exit code 137, last "
	       "state OOMKilled, restarts 4): out of memory at startup",
	       "and its termination message follows, made one line");

	is_int(pod_fails(POD("", "{\"name\":\"web\",\"restartCount\":3,"
	                         "\"state\":{\"waiting\":{\"reason\":\"CrashLoopBackOff\"}}}"),
	                 reason, sizeof(reason), msg, sizeof(msg)),
	       1, "CrashLoopBackOff without a last state is a failure");
	is_str(msg, "pod web-7d4b9c-x2x7k container web is in CrashLoopBackOff (restarts 3)",
	       "and says only the restarts");

	is_int(pod_fails(POD("", WAITING("web", "ErrImagePull",
	                                 "rpc error: code = NotFound desc = failed to pull and "
	                                 "unpack image \\\"registry.invalid/web:1\\\": not found")),
	                 reason, sizeof(reason), msg, sizeof(msg)),
	       1, "ErrImagePull is a failure");
	is_str(reason, "ErrImagePull", "with reason ErrImagePull");
	is_str(msg,
	       "pod web-7d4b9c-x2x7k container web cannot start: ErrImagePull: rpc error: code = "
	       "NotFound desc = failed to pull and unpack image \"registry.invalid/web:1\": not "
	       "found",
	       "and the kubelet's message");

	is_int(pod_fails(POD("", RUNNING_READY("sidecar") "," WAITING(
	                             "web", "ImagePullBackOff",
	                             "Back-off pulling image \\\"registry.invalid/web:1\\\"")),
	                 reason, sizeof(reason), msg, sizeof(msg)),
	       1, "ImagePullBackOff of the second container is a failure");
	is_str(reason, "ImagePullBackOff", "with reason ImagePullBackOff");
	is_str(msg,
	       "pod web-7d4b9c-x2x7k container web cannot start: ImagePullBackOff: Back-off "
	       "pulling image \"registry.invalid/web:1\"",
	       "naming the container that cannot start");

	is_int(pod_fails(POD("", WAITING("web", "CreateContainerConfigError",
	                                 "secret \\\"db\\\" not found")),
	                 reason, sizeof(reason), msg, sizeof(msg)),
	       1, "CreateContainerConfigError is a failure");
	is_str(msg,
	       "pod web-7d4b9c-x2x7k container web cannot start: CreateContainerConfigError: "
	       "secret \"db\" not found",
	       "with the missing Secret in the message");
	is_int(pod_fails(POD("", WAITING("web", "CreateContainerConfigError",
	                                 "failed to sync secret cache: timed out waiting for the "
	                                 "condition")),
	                 reason, sizeof(reason), msg, sizeof(msg)),
	       0, "a kubelet Secret cache not synced yet is no failure: the kubelet retries");
	is_int(pod_fails(POD("", WAITING("web", "InvalidImageName", "")), reason, sizeof(reason),
	                 msg, sizeof(msg)),
	       1, "InvalidImageName is a failure");
	is_str(msg, "pod web-7d4b9c-x2x7k container web cannot start: InvalidImageName",
	       "an empty kubelet message is left out");
	ok(pod_fails(POD("", WAITING("web", "CreateContainerError", "x")), reason, sizeof(reason),
	             msg, sizeof(msg)) == 1 &&
	       pod_fails(POD("", WAITING("web", "RunContainerError", "x")), reason, sizeof(reason),
	                 msg, sizeof(msg)) == 1,
	   "CreateContainerError and RunContainerError are failures");

	is_int(pod_fails("{\"metadata\":{\"name\":\"web-7d4b9c-x2x7k\"},\"status\":{\"phase\":"
	                 "\"Running\",\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\"}],"
	                 "\"containerStatuses\":[" RUNNING_READY("web") "]}}",
	                 reason, sizeof(reason), msg, sizeof(msg)),
	       0, "a running, ready Pod is not a failure");
	is_str(reason, "", "and leaves the reason empty");
	is_str(msg, "", "and the message empty");
	is_int(pod_fails(POD("", WAITING("web", "ContainerCreating", "")), reason, sizeof(reason),
	                 msg, sizeof(msg)),
	       0, "a container waiting in ContainerCreating is not a failure");
	is_int(pod_fails(POD("", "{\"name\":\"web\",\"restartCount\":0,\"state\":{\"terminated\":"
	                         "{\"exitCode\":0,\"reason\":\"Completed\"}}}"),
	                 reason, sizeof(reason), msg, sizeof(msg)),
	       0, "a terminated container (not waiting) is not a failure");
	is_int(pod_fails("{\"metadata\":{\"name\":\"web-7d4b9c-x2x7k\"},\"status\":{\"phase\":"
	                 "\"Pending\",\"conditions\":[{\"type\":\"PodScheduled\","
	                 "\"status\":\"False\",\"reason\":\"Unschedulable\"}]}}",
	                 reason, sizeof(reason), msg, sizeof(msg)),
	       0, "a Pod without container statuses (unscheduled) is not a failure");

	is_int(
	    pod_fails(POD("{\"name\":\"migrate\",\"restartCount\":2,"
	                  "\"state\":{\"waiting\":{\"reason\":\"CrashLoopBackOff\"}},"
	                  "\"lastState\":{\"terminated\":{\"exitCode\":2,\"reason\":\"Error\"}}}",
	                  WAITING("web", "PodInitializing", "")),
	              reason, sizeof(reason), msg, sizeof(msg)),
	    1, "an init container in CrashLoopBackOff is a failure");
	is_str(msg,
	       "pod web-7d4b9c-x2x7k init container migrate is in CrashLoopBackOff (exit code 2, "
	       "last state Error, restarts 2)",
	       "and is called an init container");
	is_int(pod_fails(POD(WAITING("migrate", "ErrImagePull", "pull access denied"),
	                     WAITING("web", "ImagePullBackOff", "Back-off pulling image")),
	                 reason, sizeof(reason), msg, sizeof(msg)),
	       1, "init containers are judged before containers");
	is_str(reason, "ErrImagePull", "so the init container's reason is given");
	is_str(msg,
	       "pod web-7d4b9c-x2x7k init container migrate cannot start: ErrImagePull: pull "
	       "access denied",
	       "with its message");
	is_int(pod_fails(POD(WAITING("migrate", "PodInitializing", ""),
	                     WAITING("web", "PodInitializing", "")),
	                 reason, sizeof(reason), msg, sizeof(msg)),
	       0, "init containers still initializing are not a failure");
	is_int(pod_fails(POD("{\"name\":\"migrate\",\"state\":{\"terminated\":{\"exitCode\":0,"
	                     "\"reason\":\"Completed\"}}}",
	                     RUNNING_READY("web")),
	                 reason, sizeof(reason), msg, sizeof(msg)),
	       0, "an init container that completed is not a failure");

	{
		char long_msg[1200], json[1600];
		size_t n;

		memset(long_msg, 'x', sizeof(long_msg) - 1);
		long_msg[sizeof(long_msg) - 1] = '\0';
		snprintf(json, sizeof(json), POD("", WAITING("web", "ErrImagePull", "%s")),
		         long_msg);
		is_int(pod_fails(json, reason, sizeof(reason), msg, sizeof(msg)), 1,
		       "ErrImagePull with a long message is a failure");
		n = strlen(msg);
		ok(n > 3 && !strcmp(msg + n - 3, "..."), "a long kubelet message is cut with ...");
		is_int(n,
		       strlen("pod web-7d4b9c-x2x7k container web cannot start: ErrImagePull: ") +
		           400,
		       "to 400 bytes");
	}
	{
		char json[2400], term[1300] = "";
		json_t *js;
		size_t n;

		for (int i = 0; i < 200; i++)
			memcpy(term + 6 * i, "\\u00e9", 7);
		snprintf(json, sizeof(json),
		         POD("", "{\"name\":\"web\",\"restartCount\":1,\"state\":{\"waiting\":"
		                 "{\"reason\":\"CrashLoopBackOff\"}},\"lastState\":{\"terminated\":"
		                 "{\"exitCode\":1,\"reason\":\"Error\",\"message\":\"%s\"}}}"),
		         term);
		is_int(pod_fails(json, reason, sizeof(reason), msg, sizeof(msg)), 1,
		       "CrashLoopBackOff with a long termination message is a failure");
		n = strlen(msg);
		ok(n > 3 && !strcmp(msg + n - 3, "..."),
		   "a long termination message is cut with ...");
		ok(n <= strlen(
		            "pod web-7d4b9c-x2x7k container web is in CrashLoopBackOff (exit code "
		            "1, last state Error, restarts 1): ") +
		            200,
		   "to at most 200 bytes");
		js = json_string(msg);
		ok(js != NULL, "at a UTF-8 character boundary");
		json_decref(js);
	}
	/* "é" is two bytes: a cut must not split it */
	is_int(pod_fails(POD("", WAITING("web", "ErrImagePull", "\\u00e9\\u00e9\\u00e9\\u00e9")),
	                 reason, sizeof(reason), small, 45),
	       1, "a failure still fits a small buffer");
	is_str(small, "pod web-7d4b9c-x2x7k container web cannot st",
	       "cut to the buffer, NUL-terminated");
	is_int(pod_fails(POD("", WAITING("w", "ErrImagePull",
	                                 "\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9")),
	                 reason, sizeof(reason), small, 73),
	       1, "a failure with a non-ASCII message");
	is_str(small,
	       "pod web-7d4b9c-x2x7k container w cannot start: ErrImagePull: "
	       "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9",
	       "cut at a character boundary");
	ok(!deployer_pod_failure(NULL, reason, sizeof(reason), msg, sizeof(msg)) && !*msg,
	   "a NULL Pod is not a failure");
	is_int(pod_fails("{}", reason, sizeof(reason), msg, sizeof(msg)), 0,
	       "an empty object is not a failure");
	is_int(pod_fails(POD("", "{\"name\":\"web\",\"state\":{\"waiting\":{\"reason\":7}}}"),
	                 reason, sizeof(reason), msg, sizeof(msg)),
	       0, "a reason that is not a string is not a failure");
}

static enum deployer_rollout judge_kind(const char *kind, const char *json, char *reason, char *msg)
{
	json_t *o = json_loads(json, 0, NULL);
	enum deployer_rollout r;

	if (!o) {
		ok(0, "fixture parses");
		return DEPLOYER_ROLLOUT_PROGRESSING;
	}
	r = deployer_workload_state(kind, o, reason, 64, msg, 256);
	json_decref(o);
	return r;
}

static void test_workloads(void)
{
	char reason[64], msg[256];

	ok(deployer_is_workload("apps/v1", "StatefulSet") &&
	       deployer_is_workload("batch/v1", "Job") &&
	       deployer_is_workload("apps/v1", "Deployment") &&
	       deployer_is_workload("apps/v1", "DaemonSet"),
	   "the four workloads are followed");
	ok(!deployer_is_workload("apps/v1", "Job") &&
	       !deployer_is_workload("batch/v1", "CronJob") &&
	       !deployer_is_workload("v1", "Service") && !deployer_is_workload(NULL, "Job"),
	   "others are not");
	is_int(judge_kind("StatefulSet",
	                  "{\"metadata\":{\"generation\":2},\"spec\":{\"replicas\":2},"
	                  "\"status\":{\"observedGeneration\":2,\"readyReplicas\":1}}",
	                  reason, msg),
	       DEPLOYER_ROLLOUT_PROGRESSING, "a statefulset with a Pod not ready is progressing");
	is_str(msg, "Waiting for 1 pods to be ready...", "  in kubectl's words");
	is_int(
	    judge_kind("StatefulSet",
	               "{\"metadata\":{\"generation\":2},\"spec\":{\"replicas\":2},"
	               "\"status\":{\"observedGeneration\":2,\"readyReplicas\":2,"
	               "\"currentRevision\":\"a\",\"updateRevision\":\"b\",\"updatedReplicas\":1}}",
	               reason, msg),
	    DEPLOYER_ROLLOUT_PROGRESSING, "a statefulset between revisions is progressing");
	is_int(
	    judge_kind("StatefulSet",
	               "{\"metadata\":{\"generation\":2},\"spec\":{\"replicas\":2},"
	               "\"status\":{\"observedGeneration\":2,\"readyReplicas\":2,"
	               "\"currentRevision\":\"b\",\"updateRevision\":\"b\",\"currentReplicas\":2}}",
	               reason, msg),
	    DEPLOYER_ROLLOUT_COMPLETE, "a statefulset at one revision, all ready, is complete");
	is_int(judge_kind("StatefulSet",
	                  "{\"metadata\":{\"generation\":3},\"spec\":{},"
	                  "\"status\":{\"observedGeneration\":2,\"readyReplicas\":1}}",
	                  reason, msg),
	       DEPLOYER_ROLLOUT_PROGRESSING, "an unobserved statefulset generation is progressing");
	is_int(judge_kind("DaemonSet",
	                  "{\"metadata\":{\"generation\":1},\"status\":{\"observedGeneration\":1,"
	                  "\"desiredNumberScheduled\":3,\"updatedNumberScheduled\":3,"
	                  "\"numberAvailable\":2}}",
	                  reason, msg),
	       DEPLOYER_ROLLOUT_PROGRESSING, "a daemonset with a Pod unavailable is progressing");
	is_str(msg,
	       "Waiting for daemon set rollout to finish: 2 of 3 updated pods are available...",
	       "  in kubectl's words");
	is_int(judge_kind("DaemonSet",
	                  "{\"metadata\":{\"generation\":1},\"status\":{\"observedGeneration\":1,"
	                  "\"desiredNumberScheduled\":3,\"updatedNumberScheduled\":3,"
	                  "\"numberAvailable\":3}}",
	                  reason, msg),
	       DEPLOYER_ROLLOUT_COMPLETE, "a daemonset with every Pod updated and available");
	is_int(judge_kind("Job", "{\"status\":{\"active\":1}}", reason, msg),
	       DEPLOYER_ROLLOUT_PROGRESSING, "a running job is progressing");
	is_int(judge_kind("Job",
	                  "{\"status\":{\"succeeded\":1,\"conditions\":[{\"type\":\"Complete\","
	                  "\"status\":\"True\"}]}}",
	                  reason, msg),
	       DEPLOYER_ROLLOUT_COMPLETE, "a job with Complete True is complete");
	is_int(judge_kind("Job",
	                  "{\"status\":{\"failed\":2,\"conditions\":[{\"type\":\"Failed\","
	                  "\"status\":\"True\",\"reason\":\"BackoffLimitExceeded\","
	                  "\"message\":\"Job has reached the specified backoff limit\"}]}}",
	                  reason, msg),
	       DEPLOYER_ROLLOUT_FAILED, "a job with Failed True has failed");
	is_str(reason, "BackoffLimitExceeded", "  with the condition's reason");
	is_str(msg, "Job has reached the specified backoff limit", "  and its message");
}

int main(void)
{
	test_rollout();
	test_workloads();
	test_pod_failure();
	return tap_done();
}
