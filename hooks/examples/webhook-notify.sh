#!/bin/sh
# webhook-notify.sh: POSTs the event JSON to a webhook (a chat bridge, CI, an
# audit log) when a pipeline ends. The request body is exactly what the hook
# got on stdin (hooks/event.schema.json); a non-2xx answer fails the hook,
# which for pipeline-succeeded and pipeline-failed is only reported.
#
# Hooks run with a clean environment, so the URL is set below: edit
# WEBHOOK_URL, then install it for a Remote web in namespace NS:
#
#   kubectl -n NS create configmap notify-hooks --from-file=webhook-notify.sh
#
# and in the Remote:
#
#   spec:
#     hooks:
#     - event: pipeline-succeeded
#       image: slipway/hooks            # a Pod; leave out for a process of gitd
#       configMapRef: {name: notify-hooks, key: webhook-notify.sh}
#       timeoutSeconds: 30
#     - event: pipeline-failed
#       image: slipway/hooks
#       configMapRef: {name: notify-hooks, key: webhook-notify.sh}
#       timeoutSeconds: 30
#
# Whoever can read ConfigMaps in NS can read the URL: if the URL is itself a
# secret (a Slack-style incoming webhook), install the hook as an admin hook
# in gitd's --hooks-dir instead (DIR/pipeline-succeeded/50-notify).
set -eu

WEBHOOK_URL="https://hooks.example.com/slipway"

exec curl --fail --silent --show-error --max-time 20 \
	-H 'Content-Type: application/json' \
	--data-binary @- \
	"$WEBHOOK_URL"
