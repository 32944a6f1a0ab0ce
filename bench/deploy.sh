#!/usr/bin/env bash
# bench/deploy.sh: the time from `git push` to a Succeeded PipelineRun, broken
# down, with OpenSSH + git in the same run as the baseline for the receive
# part. Each round commits a change to the sample app (examples/app plus
# Debian's /bin/busybox) and pushes it
#   (1) to OpenSSH sshd + git-receive-pack (a bare repository): receive only;
#   (2) to gitd in cluster mode with a local builder: the whole pipeline,
#       the rollout being a real one: a new Pod on the env's node, pulled
#       from the registry, Ready by its readiness probe (GET :8080/).
# From (2) it reports, as medians over the rounds:
#   total      git push start to exit (the run is Succeeded by then)
#   receive    total minus the pipeline: ssh, pack, quarantine, report-status
#   build      buildah bud (the builder's Timing line)
#   image push buildah push to the registry (the builder's Timing line)
#   rollout    the deployer's patch and rollout wait ("Deployed ... in N ms"):
#              image pull, container start, the probe, the old Pod's end
#   overhead   the pipeline minus build, image push and rollout: Slipway's own
#              work (PipelineRun writes, archive, builder start, source fetch,
#              log and result reports)
# and receive(OpenSSH) / receive(gitd) as a ratio (above 1: gitd is faster),
# then the overhead step by step, from gitd's debug events "pipeline_step"
# and "pipeline_timing" (docs/gitd.md) and the builder's Timing line:
#   setup          the worker's API clients (a spare worker has them), the
#                  Remote read, the repository and build endpoint (before
#                  the run; part of receive)
#   create         the PipelineRun's creation (the object; its status,
#                  mirror and Event are queued to the run's writer thread)
#   finish         waiting for the final status (and whatever the writer
#                  had queued before it) and the history prune; the mirror,
#                  Event and the Remote's lastRun follow on the writer
#   run writes     every PipelineRun write of the run and their time, on
#                  the writer thread: only create and finish wait for them
#   archive        waiting for the source archive of the pushed tree (written
#                  on a thread from the run's start): the builder's source
#                  request waiting for it, when the builder was started
#                  while it was written
#   builder start  from the runner's start to the builder's source request
#   source fetch   the builder's download and unpacking of the source (its
#                  wait for the archive counted in archive, not here)
#   reports        the builder's time outside source, build and push: log
#                  and result reports, its exit
#   deploy patch   the deployer's read and patch of the Deployment (counted
#                  in rollout, not in overhead)
#   other          overhead minus create, finish, archive, builder start,
#                  source fetch and reports: queue, hooks lookup, work
#                  directory, the Deployment's read for rolling back,
#                  messages to the pusher
#
# usage: bench/deploy.sh [--rounds N] [--builder-mode local|pod] [--keep]
#   --builder-mode pod  build in builder Pods on the env's node (the
#                       slipway/builder image of tests/env/image.sh) instead
#                       of local builder processes
# env:   SLIPWAY_ENV_FILE  a running tests/env (else env "bench" is started
#                          and stopped); needs root and buildah, like t7000.
# Not a test: nothing here passes or fails on speed.
set -euo pipefail

rounds=5
keep=
mode=local
while [ $# -gt 0 ]; do
	case $1 in
	--rounds) rounds=$2; shift 2 ;;
	--keep) keep=1; shift ;;
	--builder-mode)
		mode=${2:-}
		[ "$mode" = local ] || [ "$mode" = pod ] || { echo "bench/deploy.sh: --builder-mode is local or pod" >&2; exit 2; }
		shift 2
		;;
	-h | --help) sed -n '2,55p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "bench/deploy.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
	esac
done

root=$(cd "$(dirname "$0")/.." && pwd)
build=${SLIPWAY_BUILD:-$root/build}
[ -x "$build/bin/gitd" ] || { echo "bench/deploy.sh: build first (make)" >&2; exit 1; }
[ -x /usr/sbin/sshd ] || { echo "bench/deploy.sh: /usr/sbin/sshd missing (make deps)" >&2; exit 1; }
[ -x /bin/busybox ] || { echo "bench/deploy.sh: /bin/busybox missing (make deps)" >&2; exit 1; }
work=$(mktemp -d /tmp/slipway-bench-deploy.XXXXXX)
pids=()
own_env=
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	[ -z "$own_env" ] || "$root/tests/env/env.sh" down --name bench >/dev/null 2>&1 || true
	[ -n "$keep" ] && echo "kept $work" || rm -rf "$work"
}
trap cleanup EXIT
cd "$work"
. "$root/bench/lib.sh"

if [ -z "${SLIPWAY_ENV_FILE:-}" ]; then
	log "starting env bench"
	own_env=1
	"$root/tests/env/env.sh" up --name bench >env.log 2>&1 || { cat env.log >&2; exit 1; }
	SLIPWAY_ENV_FILE=/tmp/slipway-env/bench/env
fi
set -a
. "$SLIPWAY_ENV_FILE"
set +a
ns=bench-deploy

ssh-keygen -q -t ed25519 -N '' -C bench -f client
user=$(id -un)
sshd_start "$work" client.pub
pids+=("$sshd_pid")
git init -q --bare -b main openssh.git

kubectl delete namespace $ns --ignore-not-found --wait --timeout=90s >/dev/null
kubectl create namespace $ns >/dev/null
kubectl -n $ns apply -f - >/dev/null <<EOF
{"apiVersion":"slipway.dev/v1alpha1","kind":"Remote","metadata":{"name":"app"},
 "spec":{"authorizedKeys":["$(cat client.pub)"],
  "registry":{"url":"$REGISTRY/bench","insecure":true},
  "deployments":[{"name":"app","containers":[{"name":"web","path":"."}]}]}}
EOF
kubectl -n $ns apply -f - >/dev/null <<EOF
{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"app"},
 "spec":{"replicas":1,"selector":{"matchLabels":{"app":"app"}},
  "template":{"metadata":{"labels":{"app":"app"}},
   "spec":{"terminationGracePeriodSeconds":2,
    "containers":[{"name":"web","image":"$REGISTRY/placeholder/app:0",
     "readinessProbe":{"httpGet":{"path":"/","port":8080},"periodSeconds":1}}]}}}}
EOF

builder_flags=(--builder-mode local --builder "$build/bin/builder")
if [ "$mode" = pod ]; then
	log "the builder image (tests/env/image.sh)"
	builder_flags=(--builder-mode pod --builder-image "$("$root/tests/env/image.sh" builder "$REGISTRY")"
		--internal-listen "$HOST_IP")
fi
gitd_port=$(free_port)
"$build/bin/gitd" --listen "127.0.0.1:$gitd_port" --metrics-listen none \
	--kubeconfig "$KUBECONFIG" --namespace $ns --data-dir "$work/repos" \
	--host-key-dir "$work/hostkeys" "${builder_flags[@]}" \
	--work-dir "$work" --log-level debug 2>gitd.log &
pids+=($!)
for _ in $(seq 1 150); do
	grep -q '"event":"remotes_loaded".*"synced":true' gitd.log 2>/dev/null &&
		[ -d "repos/$ns/app.git" ] && break
	sleep 0.1
done
[ -d "repos/$ns/app.git" ] || { cat gitd.log >&2; exit 1; }

export GIT_SSH_COMMAND="ssh -i $work/client -o IdentitiesOnly=yes -o IdentityAgent=none \
-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR"
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@example.com \
	GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@example.com
git init -q -b main app
cp -R "$root/examples/app/." app/ && cp /bin/busybox app/
git -C app add . && git -C app commit -q -m "sample app"

# push URL OUT: git push of main to URL; OUT gets the output, each line
# prefixed with the milliseconds since the push began; prints the total.
push() {
	python3 - "$1" "$2" <<-'EOF_'
	import subprocess, sys, time
	t0 = time.monotonic()
	p = subprocess.Popen(["git", "-C", "app", "push", "--progress", sys.argv[1], "main"],
	                     stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
	with open(sys.argv[2], "w") as out:
	    for line in p.stderr:
	        out.write("%d %s" % ((time.monotonic() - t0) * 1000, line.decode(errors="replace")))
	if p.wait() != 0:
	    sys.exit("push to %s failed: see %s" % (sys.argv[1], sys.argv[2]))
	print(int((time.monotonic() - t0) * 1000))
	EOF_
}

# field OUT REGEX: the first number captured by REGEX (sed -E, one group).
field() { sed -nE "s/.*$2.*/\1/p" "$1" | head -n 1; }

# steps FROM: the steps of the one run logged in gitd.log after line FROM,
# in ms: setup create run_writes writes_count finish archive builder
# builder_start (the builder's duration and start; -1 when absent)
# deploy_patch streamed (the part of archive a builder's source request
# waited, within its source time).
steps() {
	tail -n +"$(($1 + 1))" gitd.log | python3 -c '
import json, sys
got = {"setup": -1, "create": -1, "finish": -1, "archive": 0, "builder": -1,
       "builder_start": -1, "api_ms": -1, "api_writes": -1, "deploy_patch": -1,
       "streamed": 0}
for line in sys.stdin:
    try:
        e = json.loads(line)
    except ValueError:
        continue
    if e.get("event") == "pipeline_step":
        step = e.get("step")
        if step == "builder":
            got["builder_start"] = e.get("start_ms", -1)
        if step == "archive" and e.get("is_streamed"):
            got["streamed"] += e.get("duration_ms", 0)
        got[step] = got.get(step, 0) + e.get("duration_ms", 0) if step == "archive" else e.get("duration_ms", -1)
    elif e.get("event") == "pipeline_timing":
        got["api_ms"], got["api_writes"] = e.get("api_ms", -1), e.get("api_writes", -1)
print(*(got[k] for k in ("setup", "create", "api_ms", "api_writes", "finish", "archive",
                          "builder", "builder_start", "deploy_patch", "streamed")))
'
}

log "$rounds rounds: a one-file change of the sample app, pushed to OpenSSH and to gitd ($mode builds)"
: >rows
: >steprows
for i in $(seq 1 "$rounds"); do
	logpos=$(wc -l <gitd.log)
	date +%s%N >app/www/stamp.txt
	git -C app add www/stamp.txt && git -C app commit -q -m "round $i"
	ossh=$(push "ssh://$user@127.0.0.1:$sshd_port$work/openssh.git" ossh-$i.out)
	total=$(push "ssh://git@127.0.0.1:$gitd_port/$ns/app.git" gitd-$i.out)
	pipeline=$(field gitd-$i.out 'Pipeline .* succeeded in ([0-9]+) ms')
	build=$(field gitd-$i.out 'Timing: source [0-9]+ ms, build ([0-9]+) ms')
	ipush=$(field gitd-$i.out 'Timing: .*, push ([0-9]+) ms')
	rollout=$(field gitd-$i.out 'Deployed .* in ([0-9]+) ms')
	[ -n "$pipeline" ] && [ -n "$build" ] && [ -n "$rollout" ] ||
		{ cat gitd-$i.out >&2; echo "bench/deploy.sh: round $i did not deploy" >&2; exit 1; }
	echo "$ossh $total $((total - pipeline)) $build $ipush $rollout $((pipeline - build - ipush - rollout))" >>rows
	source=$(field gitd-$i.out 'Timing: source ([0-9]+) ms')
	# the pipeline_timing line follows the pusher's last line: wait for it
	for _ in $(seq 1 50); do
		tail -n +"$((logpos + 1))" gitd.log | grep -q '"event":"pipeline_timing"' && break
		sleep 0.1
	done
	read -r setup create apims apiw finish archive builder bstart patch streamed <<<"$(steps "$logpos")"
	reports=$((builder - bstart - source - build - ipush))
	# the builder's source time includes its wait for a streamed archive
	source=$((source - streamed))
	overhead=$((pipeline - build - ipush - rollout))
	echo "$setup $create $apims $apiw $finish $archive $bstart $source $reports $patch" \
		"$((overhead - create - finish - archive - bstart - source - reports))" >>steprows
	log "round $i: total $total ms (OpenSSH receive $ossh ms)"
done

col() { awk -v c="$1" '{print $c}' rows | median; }
ossh=$(col 1) total=$(col 2) receive=$(col 3) build=$(col 4) ipush=$(col 5) rollout=$(col 6) overhead=$(col 7)
printf '\ngit push to Succeeded, %s builds, median of %s rounds (ms)\n' "$mode" "$rounds"
printf '  %-12s %6s\n' total "$total" receive "$receive" build "$build" "image push" "$ipush" \
	rollout "$rollout" overhead "$overhead"
printf '  receive: OpenSSH + git %s ms, gitd %s ms, ratio %s\n' "$ossh" "$receive" "$(ratio "$ossh" "$receive")"
scol() { awk -v c="$1" '{print $c}' steprows | median; }
printf '\noverhead by step, median of %s rounds (ms)\n' "$rounds"
printf '  %-14s %6s\n' "setup" "$(scol 1)" "create" "$(scol 2)" "finish" "$(scol 5)" \
	"archive" "$(scol 6)" "builder start" "$(scol 7)" "source fetch" "$(scol 8)" \
	"reports" "$(scol 9)" "other" "$(scol 11)" "deploy patch" "$(scol 10)"
printf '  (setup is part of receive, deploy patch of rollout)\n'
printf '  run writes: %s requests, %s ms on the writer thread\n' "$(scol 4)" "$(scol 3)"
printf '\na transcript (round 1, ms since the push began):\n'
sed 's/^/  /' gitd-1.out
