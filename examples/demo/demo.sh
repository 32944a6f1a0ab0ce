#!/usr/bin/env bash
# Slipway's push-to-deploy demo, what `make demo` and `make demo-down` run.
# up: installs what is missing, builds, starts the local environment
# (tests/env/env.sh, name "demo"), creates namespace demo with a Deployment and
# a Remote "hello", starts gitd, pushes the sample app (examples/app) with
# the real git client, and prints the page the deployed Pod serves (through
# kubectl port-forward). down: stops gitd and the environment, removes the state.
#
# usage: examples/demo/demo.sh up [--no-build]   (again: reuses what runs, pushes a new commit)
#        examples/demo/demo.sh down
# env:   SLIPWAY_DEMO_DIR       state: keys, gitd data and log, the working copy
#                               (default: .demo at the top of the repository)
#        SLIPWAY_DEMO_ENV_FILE  use the running environment this env file of
#                               tests/env/env.sh describes (e.g. $SLIPWAY_ENV_FILE)
#                               instead of starting env "demo"; down then leaves
#                               it running and deletes only namespace demo
#        SLIPWAY_BUILD          with --no-build: where the programs are (default: build)
# --no-build skips tests/env/deps.sh and `make all`: the programs must exist.
set -Eeuo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
state=${SLIPWAY_DEMO_DIR:-$root/.demo}
build=${SLIPWAY_BUILD:-$root/build}
env_name=demo
env_root=${SLIPWAY_ENV_ROOT:-/tmp/slipway-env}
external_env=${SLIPWAY_DEMO_ENV_FILE:-}
ns=demo
remote=hello
started=$SECONDS

say() { printf 'demo: %s\n' "$*"; }
step() { printf '\n==> [%3ds] %s\n' $((SECONDS - started)) "$*"; }
die() {
	printf 'demo: error: %s\n' "$*" >&2
	exit 1
}
# set -e stops at the first failing command: name it in one line.
trap 'rc=$?; printf "demo: error: line %s failed (exit %s): %s\n" "$LINENO" "$rc" "$BASH_COMMAND" >&2' ERR
usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; }

# Paths end up in GIT_SSH_COMMAND (split by a shell) and in printed commands:
# keep them to characters that need no quoting.
safe_path='^/[A-Za-z0-9._/+-]*$'
case "$state" in /*) ;; *) state=$(pwd)/$state ;; esac
[[ $state =~ $safe_path ]] || die "SLIPWAY_DEMO_DIR '$state' must be an absolute path of A-Z a-z 0-9 . _ / + -"
[[ $build =~ $safe_path ]] || die "SLIPWAY_BUILD '$build' must be an absolute path of A-Z a-z 0-9 . _ / + -"
state=${state%/}
work="$state/$remote"
key="$state/id_ed25519"
pidfile="$state/gitd.pid"
gitd_log="$state/gitd.log"
ssh_cmd="ssh -i $key -o IdentitiesOnly=yes -o IdentityAgent=none -o StrictHostKeyChecking=yes -o UserKnownHostsFile=$state/known_hosts"

# --- gitd ------------------------------------------------------------------

# gitd_pid: print the pid of this state dir's gitd if it runs. The command
# line must name this state dir, so a recycled pid is never signalled.
gitd_pid() {
	local pid cmdline
	[ -f "$pidfile" ] || return 1
	read -r pid <"$pidfile" || return 1
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	cmdline=$({ tr '\0' '\n' <"/proc/$pid/cmdline"; } 2>/dev/null) || return 1
	[[ $cmdline == *"$state/repos"* ]] || return 1
	printf '%s\n' "$pid"
}

gitd_stop() {
	local pid deadline=$((SECONDS + 15))
	if pid=$(gitd_pid); then
		say "stopping gitd (pid $pid)"
		kill -TERM "$pid" 2>/dev/null || true
		while gitd_pid >/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
		if gitd_pid >/dev/null; then
			say "gitd did not stop on TERM within 15s: KILL"
			kill -KILL "$pid" 2>/dev/null || true
			sleep 0.2
		fi
		gitd_pid >/dev/null && die "could not stop gitd (pid $pid)"
	fi
	rm -f "$pidfile"
}

# port_free PORT: nothing listens on 127.0.0.1:PORT.
port_free() {
	python3 -c 'import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))' "$1" 2>/dev/null
}

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# pick_port FILE: the port remembered in FILE if it is still free (so the
# git remote and known_hosts stay valid across runs), else a new one.
pick_port() {
	local p=
	[ -f "$1" ] && read -r p <"$1" || true
	if ! [[ $p =~ ^[0-9]+$ ]] || ! port_free "$p"; then p=$(free_port); fi
	printf '%s\n' "$p" >"$1"
	printf '%s\n' "$p"
}

# gitd_wait SECONDS WHAT CMD...: poll CMD until it succeeds; fail with the
# log's tail if gitd exits or time runs out.
gitd_wait() {
	local deadline=$((SECONDS + $1)) what=$2
	shift 2
	until "$@" >/dev/null 2>&1; do
		if ! gitd_pid >/dev/null || [ $SECONDS -ge "$deadline" ]; then
			tail -n 15 "$gitd_log" | sed 's/^/    /' >&2
			gitd_pid >/dev/null || die "gitd exited while waiting for $what (log: $gitd_log)"
			die "timed out waiting for gitd: $what (log: $gitd_log)"
		fi
		sleep 0.1
	done
}

gitd_start() {
	local port mport
	port=$(pick_port "$state/port")
	mport=$(pick_port "$state/metrics-port")
	[ "$port" != "$mport" ] || mport=$(free_port)
	[ ! -f "$gitd_log" ] || mv -f "$gitd_log" "$gitd_log.1"
	: >"$gitd_log"
	mkdir -p "$state/repos" "$state/hostkeys" "$state/work"
	# Its own session, so it outlives make; its log is its stderr (JSON lines).
	setsid nohup "$build/bin/gitd" --kubeconfig "$KUBECONFIG" --namespace "$ns" \
		--listen "127.0.0.1:$port" --metrics-listen "127.0.0.1:$mport" \
		--data-dir "$state/repos" --host-key-dir "$state/hostkeys" --work-dir "$state/work" \
		--builder-mode local --builder "$build/bin/builder" --shutdown-timeout 10 \
		--external-url "ssh://git@127.0.0.1:$port" </dev/null >>"$gitd_log" 2>&1 &
	printf '%s\n' $! >"$pidfile"
	gitd_wait 30 "the Remotes to load" grep -q '"event":"remotes_loaded".*"synced":true' "$gitd_log"
	gitd_wait 10 "repository $ns/$remote.git" test -d "$state/repos/$ns/$remote.git"
	local k
	for k in ssh_host_ed25519_key ssh_host_rsa_key; do
		printf '[127.0.0.1]:%s %s\n' "$port" "$(ssh-keygen -y -f "$state/hostkeys/$k")"
	done >"$state/known_hosts"
	gitd_port=$port
	say "gitd pid $(cat "$pidfile") on ssh://git@127.0.0.1:$port, metrics http://127.0.0.1:$mport/metrics, log $gitd_log"
}

# --- environment -----------------------------------------------------------

# load_env FILE: KUBECONFIG and REGISTRY from an env file of tests/env/env.sh
# (KEY=VALUE lines, read, never sourced).
load_env() {
	local k v
	KUBECONFIG= REGISTRY=
	while IFS='=' read -r k v; do
		case "$k" in
		KUBECONFIG) KUBECONFIG=$v ;;
		REGISTRY) REGISTRY=$v ;;
		esac
	done <"$1"
	[[ $KUBECONFIG =~ $safe_path ]] && [ -f "$KUBECONFIG" ] || die "$1: KUBECONFIG missing or not a file"
	[[ $REGISTRY =~ ^[A-Za-z0-9.-]+(:[0-9]+)?$ ]] || die "$1: REGISTRY missing or malformed"
	export KUBECONFIG
}

# A cold cache means building the control plane (Go): minutes of silence from
# go build, so print a line every 30 s while env.sh works.
env_up() {
	local env_sh="$root/tests/env/env.sh" cache=${SLIPWAY_CACHE:-$HOME/.cache/slipway}
	. "$root/tests/env/versions.sh"
	if [ -f "$env_root/$env_name/env" ] && "$env_sh" status --name "$env_name" >/dev/null 2>&1; then
		say "env '$env_name' is already up: reusing it"
		return 0
	fi
	if [ -d "$env_root/$env_name" ]; then
		say "env '$env_name' is partly running or stopped: restarting it"
		"$env_sh" down --name "$env_name" || die "tests/env/env.sh down --name $env_name failed"
	fi
	if [ ! -x "$cache/bin/kubernetes-$K8S_VERSION/kube-apiserver" ]; then
		say "first run: building etcd, kube-apiserver, kube-controller-manager, kube-scheduler,"
		say "kubelet and helm from source into $cache: about 12 minutes on 2 cores, once"
	fi
	"$env_sh" up --name "$env_name" >"$state/env-up.out" &
	local pid=$! next=$((SECONDS + 30)) rc=0
	while kill -0 "$pid" 2>/dev/null; do
		if [ $SECONDS -ge $next ]; then
			say "... still starting the environment ($((SECONDS - started))s)"
			next=$((SECONDS + 30))
		fi
		sleep 1
	done
	wait "$pid" || rc=$?
	[ $rc = 0 ] || die "tests/env/env.sh up --name $env_name failed (exit $rc; see the lines above)"
}

# --- up --------------------------------------------------------------------

# The working copy: examples/app plus Debian's static busybox (the image is
# FROM scratch), its own git repository; a new one means a new server repo.
make_work() {
	[ -x /bin/busybox ] || die "/bin/busybox is missing (Debian package busybox-static; make deps installs it)"
	rm -rf "$work" "$state/repos/$ns/$remote.git"
	mkdir -p "$work"
	cp -R "$root/examples/app/." "$work/"
	cp /bin/busybox "$work/busybox"
	git init -q -b main "$work"
	git -C "$work" config user.name "Slipway demo"
	git -C "$work" config user.email "demo@slipway.invalid"
	git -C "$work" add .
	git -C "$work" commit -q -m "hello: the sample app (examples/app)"
}

# stamp: a line in www/index.html with the time, so every run deploys anew.
stamp() {
	local f="$work/www/index.html" now
	now=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
	grep -v 'class="demo-stamp"' "$f" >"$f.tmp" || true
	printf '<p class="demo-stamp">Pushed by make demo at %s.</p>\n' "$now" >>"$f.tmp"
	mv "$f.tmp" "$f"
	git -C "$work" commit -q -am "hello: push at $now"
}

apply_objects() {
	local phase
	phase=$(kubectl get namespace "$ns" -o jsonpath='{.status.phase}' 2>/dev/null) || true
	if [ "$phase" = Terminating ]; then
		say "namespace $ns is being deleted (an earlier down): waiting for it to go"
		kubectl wait --for=delete "namespace/$ns" --timeout=120s >/dev/null ||
			die "namespace $ns is still terminating after 120s"
		phase=
	fi
	[ -n "$phase" ] || kubectl create namespace "$ns" >/dev/null
	# Created once: applying it again would put the placeholder image back.
	# The placeholder names the env's registry, where it does not exist: the
	# first Pod waits in ImagePullBackOff until the first push replaces it.
	if ! kubectl -n "$ns" get deployment "$remote" >/dev/null 2>&1; then
		kubectl -n "$ns" apply -f - >/dev/null <<-EOF
			{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"$remote"},
			 "spec":{"replicas":1,"selector":{"matchLabels":{"app":"$remote"}},
			  "template":{"metadata":{"labels":{"app":"$remote"}},
			   "spec":{"containers":[{"name":"web","image":"$REGISTRY/demo/placeholder:none",
			    "ports":[{"containerPort":8080}],
			    "readinessProbe":{"httpGet":{"path":"/","port":8080},"periodSeconds":1}}]}}}}
		EOF
		say "created deployment $ns/$remote (1 replica, container web, placeholder image, readiness probe GET /)"
	fi
	kubectl -n "$ns" apply -f - >/dev/null <<-EOF
		{"apiVersion":"slipway.dev/v1alpha1","kind":"Remote","metadata":{"name":"$remote"},
		 "spec":{"authorizedKeys":["$(cat "$key.pub")"],
		  "registry":{"url":"$REGISTRY/demo","insecure":true},
		  "deployments":[{"name":"$remote","containers":[{"name":"web","path":"."}]}]}}
	EOF
	say "applied remote $ns/$remote: registry $REGISTRY/demo, deploys $remote/web from ."
}

# show_page: GET / of the deployed Pod through kubectl port-forward (the API
# server, the kubelet, containerd into the Pod's network namespace), printed
# as text. The run fails when the page cannot be had or is not this commit's.
show_page() {
	local port pf page
	port=$(free_port)
	kubectl -n "$ns" port-forward "deployment/$remote" "$port:8080" >"$state/port-forward.log" 2>&1 &
	pf=$!
	local deadline=$((SECONDS + 20))
	until grep -q "Forwarding from" "$state/port-forward.log"; do
		kill -0 "$pf" 2>/dev/null || die "kubectl port-forward failed: $(tail -n 3 "$state/port-forward.log")"
		[ $SECONDS -lt $deadline ] || { kill "$pf"; die "kubectl port-forward did not start in 20s"; }
		sleep 0.1
	done
	page=$(curl -fsS --max-time 10 "http://127.0.0.1:$port/") || {
		kill "$pf"
		die "GET http://127.0.0.1:$port/ through kubectl port-forward failed"
	}
	kill "$pf" 2>/dev/null
	wait "$pf" 2>/dev/null || true
	say "$ curl http://127.0.0.1:$port/    # kubectl -n $ns port-forward deployment/$remote $port:8080"
	# the HTML as text: tags dropped, one line each
	printf '%s\n' "$page" | sed -e 's/<[^>]*>//g' -e '/^[[:space:]]*$/d' -e 's/^/    | /'
	grep -qF "$(sed -n 's/.*class="demo-stamp">\(.*\)<\/p>.*/\1/p' "$work/www/index.html")" <<<"$page" ||
		die "the page served is not the one just pushed"
}

cmd_up() {
	local no_build=$1
	# buildah builds with chroot isolation, which needs root here (as in t7000)
	[ "$(id -u)" = 0 ] || die "run as root: the local builds use buildah with chroot isolation"
	for c in git ssh ssh-keygen python3 setsid; do
		command -v "$c" >/dev/null || die "'$c' is not on PATH (make deps installs it)"
	done
	if [ -d "$state" ] && [ ! -f "$state/.slipway-demo" ] && [ -n "$(ls -A "$state")" ]; then
		die "$state exists and was not made by the demo: not using it"
	fi
	mkdir -p "$state"
	: >"$state/.slipway-demo"

	if [ "$no_build" = 1 ]; then
		step "1/7 programs from $build (--no-build)"
	else
		step "1/7 dependencies (tests/env/deps.sh) and programs (make all)"
		"$root/tests/env/deps.sh" || die "tests/env/deps.sh failed: install the packages it names"
		build=$root/build
		make -C "$root" --no-print-directory -j"$(nproc)" all || die "make all failed"
	fi
	for c in gitd builder; do
		[ -x "$build/bin/$c" ] || die "$build/bin/$c is missing (run make)"
	done
	command -v kubectl >/dev/null || die "'kubectl' is not on PATH"
	command -v buildah >/dev/null || die "'buildah' is not on PATH (make deps installs it)"

	if [ -n "$external_env" ]; then
		step "2/7 environment from $external_env (SLIPWAY_DEMO_ENV_FILE)"
		[ -f "$external_env" ] || die "SLIPWAY_DEMO_ENV_FILE '$external_env' is not a file"
		load_env "$external_env"
	else
		step "2/7 local environment (tests/env/env.sh up --name $env_name)"
		env_up
		load_env "$env_root/$env_name/env"
	fi
	say "KUBECONFIG=$KUBECONFIG REGISTRY=$REGISTRY"

	step "3/7 namespace $ns, deployment $remote, remote $remote"
	if [ ! -f "$key" ]; then
		rm -f "$key.pub"
		ssh-keygen -q -t ed25519 -N '' -C "slipway-demo" -f "$key"
		say "new key $key"
	fi
	apply_objects

	step "4/7 gitd (restarted, so a fresh make is what runs)"
	gitd_stop
	[ -d "$work/.git" ] || make_work
	gitd_start

	step "5/7 git push slipway main (from $work)"
	local url="ssh://git@127.0.0.1:$gitd_port/$ns/$remote.git"
	if git -C "$work" remote get-url slipway >/dev/null 2>&1; then
		git -C "$work" remote set-url slipway "$url"
	else
		git -C "$work" remote add slipway "$url"
	fi
	stamp
	say "$ git push slipway main    # commit $(git -C "$work" rev-parse --short HEAD)"
	GIT_SSH_COMMAND="$ssh_cmd -o BatchMode=yes" git -C "$work" push slipway main ||
		die "git push failed: see the remote: lines above and kubectl -n $ns get pipelineruns"

	step "6/7 what the cluster shows"
	local sha
	sha=$(git -C "$work" rev-parse HEAD)
	kubectl -n "$ns" get pipelinerun,deployment -o wide
	echo
	printf 'ConfigMap %s-pipeline (mirror of the latest run): ' "$remote"
	kubectl -n "$ns" get configmap "$remote-pipeline" \
		-o jsonpath='{.data.pipelineRun} ref={.data.ref} commit={.data.commit} succeeded={.data.succeeded} {.data.reason}{"\n"}'
	local image
	image=$(kubectl -n "$ns" get deployment "$remote" -o jsonpath='{.spec.template.spec.containers[0].image}')
	say "deployment $ns/$remote runs $image"

	step "7/7 the page deployment $ns/$remote serves (kubectl port-forward)"
	show_page


	cat <<-EOF

		Slipway deployed commit ${sha:0:12} in $((SECONDS - started))s. See it in a browser:

		  kubectl -n $ns port-forward deployment/$remote 8080:8080    # then open http://127.0.0.1:8080/

		Push again:

		  export KUBECONFIG=$KUBECONFIG
		  export GIT_SSH_COMMAND='$ssh_cmd'
		  cd ${work#"$root"/}
		  echo '<p>My first change.</p>' >>www/index.html    # or edit it
		  git commit -am 'a change' && git push slipway main

		Watch:

		  kubectl -n $ns get pipelineruns -w
		  kubectl -n $ns wait --for=condition=Succeeded pipelinerun -l slipway.dev/commit=\$(git rev-parse HEAD) --timeout=5m
		  kubectl -n $ns get deployment $remote -o wide
		  tail -f $gitd_log

		Stop everything: make demo-down
	EOF
}

# --- down ------------------------------------------------------------------

cmd_down() {
	gitd_stop
	if [ -n "$external_env" ]; then
		if [ -f "$external_env" ]; then
			load_env "$external_env"
			kubectl delete namespace "$ns" --ignore-not-found --wait=false >/dev/null ||
				die "could not delete namespace $ns"
			say "deleted namespace $ns; left the environment of $external_env running"
		fi
	else
		"$root/tests/env/env.sh" down --name "$env_name" || die "tests/env/env.sh down --name $env_name failed"
	fi
	if [ -d "$state" ]; then
		[ -f "$state/.slipway-demo" ] || die "$state was not made by the demo: not removing it"
		rm -rf "$state"
	fi
	say "stopped; $state removed"
}

cmd=
no_build=0
for a in "$@"; do
	case "$a" in
	-h | --help)
		usage
		exit 0
		;;
	--no-build) no_build=1 ;;
	up | down)
		[ -z "$cmd" ] || die "one subcommand at a time (try --help)"
		cmd=$a
		;;
	*) die "unknown argument '$a' (try --help)" ;;
	esac
done
case "$cmd" in
up) cmd_up "$no_build" ;;
down)
	[ "$no_build" = 0 ] || die "--no-build goes with up"
	cmd_down
	;;
*)
	usage >&2
	exit 2
	;;
esac
