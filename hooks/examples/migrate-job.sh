#!/bin/sh
# migrate-job.sh: a pre-deploy hook that runs the database migrations as a
# Job, from the image just built, before the Deployment is patched. It waits
# for the Job, prints its logs, and exits non-zero when the Job failed or did
# not finish in time: the pipeline then fails with HookFailed and the new
# version never runs against an old schema.
#
# Edit the settings below, then install it for a Remote web in namespace NS
# (hooks run as the ServiceAccount slipway-hooks of NS):
#
#   kubectl -n NS create serviceaccount slipway-hooks
#   kubectl -n NS create role slipway-hooks-migrate \
#       --verb=get,list,watch,create,delete --resource=jobs,pods,pods/log
#   kubectl -n NS create rolebinding slipway-hooks-migrate \
#       --role=slipway-hooks-migrate --serviceaccount=NS:slipway-hooks
#   kubectl -n NS create configmap web-hooks --from-file=migrate-job.sh
#
# and in the Remote (timeoutSeconds above WAIT_SECONDS):
#
#   spec:
#     hooks:
#     - event: pre-deploy
#       image: slipway/hooks            # a Pod; leave out for a process of gitd
#       serviceAccountName: slipway-hooks
#       configMapRef: {name: web-hooks, key: migrate-job.sh}
#       timeoutSeconds: 900
#
# Needs kubectl, and jq in IMAGE mode (to find the new image in the event).
set -eu

# Either a CronJob whose jobTemplate is the migration (kept suspended; the
# Job is created from it with `kubectl create job --from=cronjob/NAME`)...
CRONJOB=""
# ...or the new image of DEPLOYMENT/CONTAINER, run with MIGRATE_COMMAND.
IMAGE_OF="web/web"
MIGRATE_COMMAND="./manage.py migrate --noinput"
WAIT_SECONDS=600

ns="$SLIPWAY_NAMESPACE"
job="$SLIPWAY_REMOTE-migrate-$(printf '%s' "$SLIPWAY_AFTER" | cut -c1-12)"

# A retried push of the same commit runs the migration again.
kubectl -n "$ns" delete job "$job" --ignore-not-found --wait=true >/dev/null

if [ -n "$CRONJOB" ]; then
	kubectl -n "$ns" create job "$job" --from="cronjob/$CRONJOB"
else
	command -v jq >/dev/null || { echo "migrate-job: jq is needed to read the event" >&2; exit 1; }
	deployment=${IMAGE_OF%%/*}
	container=${IMAGE_OF#*/}
	image=$(jq -r --arg d "$deployment" --arg c "$container" \
		'.images[] | select(.deployment == $d and .container == $c) | .image')
	if [ -z "$image" ]; then
		echo "migrate-job: the event has no new image for $IMAGE_OF" >&2
		exit 1
	fi
	kubectl -n "$ns" create job "$job" --image="$image" -- sh -c "$MIGRATE_COMMAND"
fi

# kubectl wait alone would sit out the whole timeout on a failed Job: wait
# for Complete in slices and look for Failed in between.
deadline=$(( $(date +%s) + WAIT_SECONDS ))
status=1
while :; do
	if kubectl -n "$ns" wait --for=condition=complete --timeout=10s "job/$job" >/dev/null 2>&1; then
		status=0
		break
	fi
	failed=$(kubectl -n "$ns" get job "$job" \
		-o jsonpath='{.status.conditions[?(@.type=="Failed")].status}')
	if [ "$failed" = True ]; then
		echo "migrate-job: job $job failed" >&2
		break
	fi
	if [ "$(date +%s)" -ge "$deadline" ]; then
		echo "migrate-job: job $job did not complete within ${WAIT_SECONDS}s" >&2
		break
	fi
done

kubectl -n "$ns" logs "job/$job" --all-containers --tail=200 || true
if [ "$status" = 0 ]; then
	echo "migrate-job: job $job completed"
	kubectl -n "$ns" delete job "$job" --wait=false >/dev/null || true
fi
exit "$status"
