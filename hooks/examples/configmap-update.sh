#!/bin/sh
# configmap-update.sh: a post-deploy hook that records what was just deployed
# in a ConfigMap (REMOTE-deployed, in the Remote's namespace): the commit, the
# ref, the PipelineRun, the pusher's key and the whole event JSON. Readers that
# want "which commit runs here" then need nothing but a ConfigMap.
#
# Install, for a Remote web in namespace NS (hooks run as the ServiceAccount
# slipway-hooks of NS, which must be allowed to write the ConfigMap):
#
#   kubectl -n NS create serviceaccount slipway-hooks
#   kubectl -n NS create role slipway-hooks-configmaps \
#       --verb=get,create,patch,update --resource=configmaps
#   kubectl -n NS create rolebinding slipway-hooks-configmaps \
#       --role=slipway-hooks-configmaps --serviceaccount=NS:slipway-hooks
#   kubectl -n NS create configmap web-hooks --from-file=configmap-update.sh
#
# and in the Remote:
#
#   spec:
#     hooks:
#     - event: post-deploy
#       image: slipway/hooks            # a Pod; leave out for a process of gitd
#       serviceAccountName: slipway-hooks
#       configMapRef: {name: web-hooks, key: configmap-update.sh}
#       timeoutSeconds: 30
set -eu

# The ConfigMap written; edit to taste.
CONFIGMAP="$SLIPWAY_REMOTE-deployed"

# The event JSON arrives on stdin (a file), stored as the key event.json.
manifest=$(kubectl create configmap "$CONFIGMAP" \
	--namespace "$SLIPWAY_NAMESPACE" \
	--from-literal=commit="$SLIPWAY_AFTER" \
	--from-literal=ref="$SLIPWAY_REF" \
	--from-literal=pipelineRun="${SLIPWAY_PIPELINERUN:-}" \
	--from-literal=pusher="${SLIPWAY_PUSHER_FINGERPRINT:-}" \
	--from-file=event.json=/dev/stdin \
	--dry-run=client -o yaml)
printf '%s\n' "$manifest" | kubectl apply --namespace "$SLIPWAY_NAMESPACE" -f -
echo "configmap $SLIPWAY_NAMESPACE/$CONFIGMAP: commit $SLIPWAY_AFTER"
