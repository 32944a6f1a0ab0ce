#!/usr/bin/env bash
# Starts and stops Slipway's test environment on loopback: etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, kwok with two fake Nodes (so
# Deployments roll out to Ready pods), distribution's docker-registry, and
# tests/env/standin-kubelet.py, a FAKE kubelet with a tainted Node of its own
# that runs Pods of schedulerName slipway-standin as local processes (the
# builder Pods of gitd's pod runner; nothing here can run containers).
#
# usage: tests/env/env.sh up [--name NAME]      start env NAME (default "default"),
#                                               print its settings (also in DIR/env)
#        tests/env/env.sh down [--name NAME]    stop its processes, remove DIR
#        tests/env/env.sh status [--name NAME]  show its processes and ports
#        tests/env/env.sh restart-apiserver [--name NAME]
#                                               stop kube-apiserver, start it again
#                                               with the same flags, wait for /readyz
#        tests/env/env.sh kubeconfig-for-sa NAMESPACE SA [--name NAME]
#                                               print a kubeconfig with a 1h token of
#                                               ServiceAccount NAMESPACE/SA
# env:   SLIPWAY_ENV_ROOT  parent of the env directories (default /tmp/slipway-env);
#                          env NAME lives in DIR=$SLIPWAY_ENV_ROOT/NAME
#        SLIPWAY_CACHE     where tests/env/build.sh keeps binaries (~/.cache/slipway)
#        SLIPWAY_BUILDER   the program the stand-in kubelet runs for a container
#                          command "builder" (default: REPO/build/bin/builder)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
. "$here/versions.sh"
cache=${SLIPWAY_CACHE:-$HOME/.cache/slipway}
etcd_bin="$cache/bin/etcd-$ETCD_VERSION/etcd"
kube_dir="$cache/bin/kubernetes-$K8S_VERSION"
kwok_bin="$cache/bin/kwok-$KWOK_VERSION/kwok"
root=${SLIPWAY_ENV_ROOT:-/tmp/slipway-env}
repo=$(cd "$here/../.." && pwd)
builder_bin=${SLIPWAY_BUILDER:-$repo/build/bin/builder}

# Start order; down stops them in reverse.
components=(etcd registry kube-apiserver kube-controller-manager kube-scheduler kwok standin-kubelet)
port_names=(etcd etcd-peer registry kube-apiserver kube-controller-manager kube-scheduler kwok)
service_cidr=10.96.0.0/16 # kwok gives pods addresses from --cidr, 10.244.0.0/16
nodes=(kwok-node-0 kwok-node-1)
standin_node=slipway-standin # registered by standin-kubelet.py itself

started_at=$SECONDS
log() { printf 'tests/env/env: %s\n' "$*" >&2; }
progress() { printf 'tests/env/env: [%3ds] %s\n' $((SECONDS - started_at)) "$*" >&2; }
die() {
	log "$*"
	exit 1
}
usage() { sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; }

# --- arguments -------------------------------------------------------------

name=default
args=()
while [ $# -gt 0 ]; do
	case "$1" in
	-h | --help)
		usage
		exit 0
		;;
	--name)
		[ $# -ge 2 ] || die "--name needs a value"
		name=$2
		shift 2
		;;
	--name=*)
		name=${1#--name=}
		shift
		;;
	-*) die "unknown option '$1' (try --help)" ;;
	*)
		args+=("$1")
		shift
		;;
	esac
done
[ ${#args[@]} -gt 0 ] || {
	usage >&2
	exit 2
}
cmd=${args[0]}
args=("${args[@]:1}")

# Names and paths end up in YAML, kubeconfigs and command lines: keep them to
# characters that need no quoting anywhere.
[[ $name =~ ^[a-z0-9][a-z0-9._-]{0,39}$ ]] ||
	die "env name '$name' must be 1-40 of a-z 0-9 . _ - and start with a letter or digit"
[[ $root =~ ^/[A-Za-z0-9._/+-]*$ ]] ||
	die "SLIPWAY_ENV_ROOT '$root' must be an absolute path of A-Z a-z 0-9 . _ / + -"
root=${root%/}
dir="$root/$name"
pki="$dir/pki"

# --- processes -------------------------------------------------------------

# is_ours PID: PID is alive and its command line names this env's directory,
# so a recycled pid or another env's process is never signalled.
is_ours() {
	local pid=$1 cmdline
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	cmdline=$({ tr '\0' '\n' <"/proc/$pid/cmdline"; } 2>/dev/null) || return 1
	[[ $cmdline == *"$dir/"* ]]
}

# pid_of COMPONENT: print its pid if it is running.
pid_of() {
	local f="$dir/pids/$1.pid" pid
	[ -f "$f" ] || return 1
	read -r pid <"$f" || return 1
	is_ours "$pid" || return 1
	printf '%s\n' "$pid"
}

# spawn COMPONENT ARGV...: start ARGV in its own session, detached from this
# shell, logging to DIR/logs/COMPONENT.log. setsid does not fork here (a
# background child of a script is no process-group leader), so $! is the pid.
# fd 3 (up's copy of stderr) is closed in it: a component that keeps
# inherited descriptors (python3) would hold up's caller's pipe open.
spawn() {
	local c=$1
	shift
	setsid nohup "$@" </dev/null >>"$dir/logs/$c.log" 2>&1 3>&- &
	printf '%s\n' $! >"$dir/pids/$c.pid"
}

# stop COMPONENT...: TERM, wait up to 15 s, then KILL.
stop() {
	local c pid pids=() deadline=$((SECONDS + 15))
	for c in "$@"; do
		pid=$(pid_of "$c") || continue
		kill -TERM "$pid" 2>/dev/null || true
		pids+=("$pid")
	done
	for pid in "${pids[@]}"; do
		while is_ours "$pid" && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
		if is_ours "$pid"; then
			log "pid $pid did not stop on TERM within 15s: KILL"
			kill -KILL "$pid" 2>/dev/null || true
		fi
	done
	for c in "$@"; do rm -f "$dir/pids/$c.pid"; done
}

# stop_all: clients of the API first, etcd last.
stop_all() {
	[ -d "$dir/pids" ] || return 0
	stop standin-kubelet kwok kube-scheduler kube-controller-manager registry
	stop kube-apiserver
	stop etcd
}

# --- ports -----------------------------------------------------------------

# Free loopback ports, asked of the kernel by binding port 0 (all held open
# together so they differ), recorded in DIR/ports. Under a lock, ports that
# another env recorded are skipped: two envs starting at once cannot pick the
# same port between this check and their components binding it.
allocate_ports() {
	mkdir -p "$root"
	(
		flock -w 30 9 || die "could not lock $root/.ports.lock"
		python3 - "${#port_names[@]}" "$root" <<-'EOF' >"$dir/ports.tmp"
			import glob, os, socket, sys
			taken = set()
			for f in glob.glob(os.path.join(sys.argv[2], "*", "ports")):
			    with open(f) as fh:
			        taken.update(l.split("=", 1)[1].strip() for l in fh if "=" in l)
			socks, ports = [], []
			while len(ports) < int(sys.argv[1]):
			    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
			    s.bind(("127.0.0.1", 0))
			    socks.append(s)
			    p = str(s.getsockname()[1])
			    if p not in taken:
			        ports.append(p)
			print("\n".join(ports))
		EOF
		local i=0 p
		while read -r p; do
			printf '%s=%s\n' "${port_names[$i]}" "$p"
			i=$((i + 1))
		done <"$dir/ports.tmp" >"$dir/ports"
		rm -f "$dir/ports.tmp"
		[ $i = ${#port_names[@]} ] || die "could not allocate ${#port_names[@]} free ports"
	) 9>"$root/.ports.lock"
}

# load_ports: set port[COMPONENT] from DIR/ports.
declare -A port
load_ports() {
	local k v
	[ -f "$dir/ports" ] || die "env '$name' is not set up ($dir/ports missing)"
	while IFS='=' read -r k v; do
		[[ $v =~ ^[0-9]+$ ]] || die "bad line in $dir/ports: $k=$v"
		port[$k]=$v
	done <"$dir/ports"
	api_server="https://127.0.0.1:${port[kube-apiserver]}"
	registry="127.0.0.1:${port[registry]}"
}

# --- certificates and kubeconfigs ------------------------------------------

ec_key=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)

# issue BASE SUBJECT EXTENDED_KEY_USAGE [SUBJECT_ALT_NAMES]: BASE.crt/.key signed by the CA.
issue() {
	local ext=(-addext basicConstraints=critical,CA:FALSE -addext keyUsage=critical,digitalSignature
		-addext "extendedKeyUsage=$3")
	[ -z "${4:-}" ] || ext+=(-addext "subjectAltName=$4")
	openssl req -x509 -CA "$pki/ca.crt" -CAkey "$pki/ca.key" "${ec_key[@]}" -days 3650 \
		-keyout "$pki/$1.key" -out "$pki/$1.crt" -subj "$2" "${ext[@]}" 2>"$pki/openssl.err" ||
		die "openssl failed to issue $1: $(cat "$pki/openssl.err")"
}

generate_pki() {
	mkdir -p "$pki"
	openssl req -x509 "${ec_key[@]}" -days 3650 -keyout "$pki/ca.key" -out "$pki/ca.crt" \
		-subj "/CN=slipway-test-ca-$name" -addext basicConstraints=critical,CA:TRUE \
		-addext keyUsage=critical,keyCertSign,cRLSign,digitalSignature 2>"$pki/openssl.err" ||
		die "openssl failed to create the CA: $(cat "$pki/openssl.err")"
	issue apiserver /CN=kube-apiserver serverAuth \
		"IP:127.0.0.1,DNS:localhost,IP:10.96.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
	issue admin "/O=system:masters/CN=admin" clientAuth
	issue controller-manager /CN=system:kube-controller-manager clientAuth
	issue scheduler /CN=system:kube-scheduler clientAuth
	issue front-proxy-client /CN=front-proxy-client clientAuth
	openssl genpkey -algorithm ec -pkeyopt ec_paramgen_curve:prime256v1 -out "$pki/sa.key" 2>"$pki/openssl.err" &&
		openssl pkey -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>"$pki/openssl.err" ||
		die "openssl failed to create the service-account key: $(cat "$pki/openssl.err")"
	rm -f "$pki/openssl.err"
	chmod 600 "$pki"/*.key
}

# write_kubeconfig FILE USER CERT_BASE
write_kubeconfig() {
	cat >"$1" <<-EOF
		apiVersion: v1
		kind: Config
		clusters:
		- name: slipway-$name
		  cluster:
		    server: $api_server
		    certificate-authority: $pki/ca.crt
		users:
		- name: $2
		  user:
		    client-certificate: $pki/$3.crt
		    client-key: $pki/$3.key
		contexts:
		- name: slipway-$name
		  context:
		    cluster: slipway-$name
		    user: $2
		current-context: slipway-$name
	EOF
	chmod 600 "$1"
}

# --- component command lines -----------------------------------------------

# Each sets argv=(...). Every command line names $dir/, which is_ours relies on.

argv_etcd() {
	argv=("$etcd_bin" --name="slipway-$name" --data-dir="$dir/etcd"
		--listen-client-urls="http://127.0.0.1:${port[etcd]}"
		--advertise-client-urls="http://127.0.0.1:${port[etcd]}"
		--listen-peer-urls="http://127.0.0.1:${port[etcd-peer]}"
		--initial-advertise-peer-urls="http://127.0.0.1:${port[etcd-peer]}"
		--initial-cluster="slipway-$name=http://127.0.0.1:${port[etcd-peer]}"
		--unsafe-no-fsync=true)
}

argv_registry() {
	argv=(docker-registry serve "$dir/registry.yml")
}

# Flags after controller-runtime's envtest, plus a service-account issuer and
# key pair so ServiceAccount tokens work, RBAC so they can be refused, and a
# front proxy so the aggregation layer's CA bundle is complete (without it the
# controller-manager and scheduler log errors every second). The endpoint
# reconciler is off: Endpoints refuse a loopback address, and nothing here
# runs inside the cluster to use the kubernetes Service. On TERM the server
# would otherwise hold open watches for its 60 s request timeout before it
# exits; --shutdown-send-retry-after closes them (GOAWAY) after 2 s.
argv_kube_apiserver() {
	argv=("$kube_dir/kube-apiserver"
		--etcd-servers="http://127.0.0.1:${port[etcd]}"
		--bind-address=127.0.0.1 --advertise-address=127.0.0.1
		--secure-port="${port[kube-apiserver]}" --cert-dir="$pki"
		--tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key"
		--client-ca-file="$pki/ca.crt"
		--authorization-mode=Node,RBAC
		--service-cluster-ip-range="$service_cidr"
		--service-account-issuer=https://kubernetes.default.svc.cluster.local
		--service-account-key-file="$pki/sa.pub"
		--service-account-signing-key-file="$pki/sa.key"
		--allow-privileged=true
		--requestheader-client-ca-file="$pki/ca.crt"
		--requestheader-allowed-names=front-proxy-client
		--requestheader-username-headers=X-Remote-User
		--requestheader-group-headers=X-Remote-Group
		--requestheader-extra-headers-prefix=X-Remote-Extra-
		--proxy-client-cert-file="$pki/front-proxy-client.crt"
		--proxy-client-key-file="$pki/front-proxy-client.key"
		--endpoint-reconciler-type=none
		--shutdown-send-retry-after=true
		--profiling=false)
}

argv_kube_controller_manager() {
	local kc="$dir/controller-manager.kubeconfig"
	argv=("$kube_dir/kube-controller-manager"
		--kubeconfig="$kc" --authentication-kubeconfig="$kc" --authorization-kubeconfig="$kc"
		--bind-address=127.0.0.1 --secure-port="${port[kube-controller-manager]}"
		--cert-dir="$dir/controller-manager"
		--leader-elect=false
		--cluster-name="slipway-$name"
		--root-ca-file="$pki/ca.crt"
		--service-account-private-key-file="$pki/sa.key"
		--use-service-account-credentials=true
		--cluster-signing-cert-file="$pki/ca.crt" --cluster-signing-key-file="$pki/ca.key"
		--profiling=false)
}

argv_kube_scheduler() {
	local kc="$dir/scheduler.kubeconfig"
	argv=("$kube_dir/kube-scheduler"
		--kubeconfig="$kc" --authentication-kubeconfig="$kc" --authorization-kubeconfig="$kc"
		--bind-address=127.0.0.1 --secure-port="${port[kube-scheduler]}"
		--cert-dir="$dir/scheduler"
		--leader-elect=false
		--profiling=false)
}

# Without --node-lease-duration-seconds kwok renews no Lease and the node
# lifecycle controller marks the nodes NotReady after the grace period.
argv_kwok() {
	argv=("$kwok_bin" --kubeconfig="$dir/admin.kubeconfig"
		--config="$dir/kwok-stages.yaml"
		--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake
		--node-lease-duration-seconds=40
		--cidr=10.244.0.1/16
		--server-address="127.0.0.1:${port[kwok]}")
}

# The FAKE kubelet (tests only): it runs the Pods of scheduler slipway-standin
# on this machine, "builder" being $builder_bin (read when a Pod starts, so
# `make` after `up` is fine). KWOK leaves its node alone: kwok manages only
# the nodes annotated kwok.x-k8s.io/node=fake.
argv_standin_kubelet() {
	argv=(python3 "$here/standin-kubelet.py" --server="$api_server"
		--ca="$pki/ca.crt" --cert="$pki/admin.crt" --key="$pki/admin.key"
		--builder="$builder_bin" --work="$dir/standin" --node="$standin_node")
}

start() {
	local argv
	"argv_${1//-/_}"
	spawn "$1" "${argv[@]}"
}

# --- waiting ---------------------------------------------------------------

# fail COMPONENT MESSAGE: report, show the component's log tail, stop the env.
fail() {
	log "$2"
	if [ -n "$1" ] && [ -s "$dir/logs/$1.log" ]; then
		log "last lines of $dir/logs/$1.log:"
		tail -n 25 "$dir/logs/$1.log" | sed 's/^/    /' >&2
	fi
	exit 1 # the EXIT trap of up stops what was started
}

# wait_until COMPONENT SECONDS WHAT CMD...: poll CMD every 0.1 s until it
# succeeds; fail if COMPONENT exits or the deadline passes.
wait_until() {
	local c=$1 deadline=$((SECONDS + $2)) what=$3
	shift 3
	until "$@" >/dev/null 2>&1; do
		pid_of "$c" >/dev/null || fail "$c" "$c exited while waiting for $what"
		[ $SECONDS -lt $deadline ] || fail "$c" "timed out after $2s waiting for $what"
		sleep 0.1
	done
}

admin_curl() {
	curl -fsS --max-time 5 --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" "$@"
}
apiserver_ready() { [ "$(admin_curl "$api_server/readyz")" = ok ]; }
etcd_healthy() { curl -fsS --max-time 2 "http://127.0.0.1:${port[etcd]}/health" | grep -q '"health":"true"'; }
registry_ready() { curl -fsS --max-time 2 "http://$registry/v2/"; }
kc() { kubectl --kubeconfig="$dir/admin.kubeconfig" "$@"; }

# --- subcommands -----------------------------------------------------------

write_registry_config() {
	cat >"$dir/registry.yml" <<-EOF
		version: 0.1
		log:
		  level: info
		storage:
		  filesystem:
		    rootdirectory: $dir/registry
		  delete:
		    enabled: true
		http:
		  addr: $registry
	EOF
}

# Fake nodes kwok manages: no taints, room for many pods.
node_manifests() {
	local n
	for n in "${nodes[@]}"; do
		cat <<-EOF
			---
			apiVersion: v1
			kind: Node
			metadata:
			  name: $n
			  annotations:
			    kwok.x-k8s.io/node: fake
			    node.alpha.kubernetes.io/ttl: "0"
			  labels:
			    type: kwok
			    kubernetes.io/hostname: $n
			    kubernetes.io/os: linux
			    kubernetes.io/arch: amd64
			    node-role.kubernetes.io/agent: ""
			status:
			  allocatable: {cpu: "32", memory: 256Gi, pods: "110"}
			  capacity: {cpu: "32", memory: 256Gi, pods: "110"}
		EOF
	done
}

any_running() {
	local c
	for c in "${components[@]}"; do pid_of "$c" >/dev/null && return 0; done
	return 1
}

# Remove DIR only if env.sh made it (marker file), whatever SLIPWAY_ENV_ROOT is.
remove_dir() {
	[ -d "$dir" ] || return 0
	[ -f "$dir/.slipway-env" ] || die "$dir exists but was not made by env.sh: not removing it"
	rm -rf "$dir"
}

cmd_up() {
	[ ${#args[@]} = 0 ] || die "up takes no arguments besides --name"
	local c
	for c in python3 openssl curl kubectl docker-registry setsid; do
		command -v "$c" >/dev/null || die "'$c' is not on PATH (tests/env/deps.sh installs the Debian ones)"
	done
	if [ -d "$dir" ]; then
		any_running && die "env '$name' is already running in $dir (tests/env/env.sh down --name $name)"
		log "removing the stopped env left in $dir"
		remove_dir
	fi

	"$here/build.sh" >&2 || die "tests/env/build.sh failed"
	for c in "$etcd_bin" "$kube_dir"/kube-{apiserver,controller-manager,scheduler} "$kwok_bin"; do
		[ -x "$c" ] || die "missing $c after tests/env/build.sh"
	done

	mkdir -p "$dir"/{logs,pids,etcd,registry,controller-manager,scheduler,standin}
	: >"$dir/.slipway-env"
	# A signal can land while stderr is redirected (wait_until): report on fd 3.
	exec 3>&2
	trap 'rc=$?; if [ $rc != 0 ]; then { log "stopping env '\''$name'\''; logs kept in $dir/logs"; stop_all; } 2>&3; fi' EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	trap 'exit 129' HUP

	allocate_ports
	load_ports
	progress "env '$name' in $dir: apiserver $api_server, registry $registry"
	generate_pki
	write_kubeconfig "$dir/admin.kubeconfig" admin admin
	write_kubeconfig "$dir/controller-manager.kubeconfig" system:kube-controller-manager controller-manager
	write_kubeconfig "$dir/scheduler.kubeconfig" system:kube-scheduler scheduler
	write_registry_config
	cp "$here/kwok/stages.yaml" "$dir/kwok-stages.yaml"

	progress "starting etcd $ETCD_VERSION and docker-registry"
	start etcd
	start registry
	wait_until etcd 30 "etcd /health" etcd_healthy

	progress "starting kube-apiserver $K8S_VERSION"
	start kube-apiserver
	wait_until kube-apiserver 90 "kube-apiserver /readyz" apiserver_ready

	progress "starting kube-controller-manager, kube-scheduler, kwok $KWOK_VERSION, the FAKE stand-in kubelet"
	start kube-controller-manager
	start kube-scheduler
	start kwok
	start standin-kubelet
	node_manifests >"$dir/nodes.yaml"
	kc apply -f "$dir/nodes.yaml" >"$dir/logs/setup.log" 2>&1 ||
		fail setup "could not create the kwok nodes"

	local crds=("$here"/../../manifests/crds/*.yaml)
	if [ -e "${crds[0]}" ]; then
		progress "installing ${#crds[@]} CRD file(s) from manifests/crds"
		local f
		for f in "${crds[@]}"; do
			kc apply -f "$f" >>"$dir/logs/setup.log" 2>&1 || fail setup "kubectl apply -f $f failed"
		done
		kc wait --for=condition=Established crd --all --timeout=30s >>"$dir/logs/setup.log" 2>&1 ||
			fail setup "CRDs did not become Established"
	fi

	wait_until registry 30 "docker-registry /v2/" registry_ready
	progress "waiting for the default ServiceAccount and Ready nodes"
	wait_until kube-controller-manager 60 "ServiceAccount default/default" \
		kc get serviceaccount default -n default
	wait_until kwok 60 "nodes ${nodes[*]} Ready" \
		kc wait --for=condition=Ready node -l type=kwok --timeout=5s
	wait_until standin-kubelet 60 "node $standin_node Ready" \
		kc wait --for=condition=Ready node "$standin_node" --timeout=5s
	# kube-scheduler binds pods once its informers have synced.
	wait_until kube-scheduler 30 "kube-scheduler /readyz" \
		curl -fsSk --max-time 2 "https://127.0.0.1:${port[kube-scheduler]}/readyz"

	{
		printf 'SLIPWAY_ENV_NAME=%s\n' "$name"
		printf 'SLIPWAY_ENV_DIR=%s\n' "$dir"
		printf 'KUBECONFIG=%s\n' "$dir/admin.kubeconfig"
		printf 'REGISTRY=%s\n' "$registry"
		printf 'API_SERVER=%s\n' "$api_server"
	} >"$dir/env"
	trap - EXIT INT TERM HUP
	cat "$dir/env"
	progress "env '$name' is up. Use it: set -a; . $dir/env; set +a" \
		"(tests: SLIPWAY_ENV_FILE=$dir/env prove tests/t*.sh); stop it: tests/env/env.sh down --name $name"
}

cmd_down() {
	[ ${#args[@]} = 0 ] || die "down takes no arguments besides --name"
	if [ ! -d "$dir" ]; then
		log "env '$name' is not running (no $dir)"
		return 0
	fi
	[ -f "$dir/.slipway-env" ] || die "$dir was not made by env.sh: not touching it"
	stop_all
	remove_dir
	log "env '$name' stopped and $dir removed"
}

cmd_status() {
	[ ${#args[@]} = 0 ] || die "status takes no arguments besides --name"
	[ -f "$dir/ports" ] || {
		echo "env '$name': not running (no $dir)"
		return 1
	}
	load_ports
	local c pid down=0
	echo "env '$name' in $dir"
	for c in "${components[@]}"; do
		if pid=$(pid_of "$c"); then
			printf '  %-24s running  pid %-8s port %s\n' "$c" "$pid" "${port[$c]:--}"
		else
			printf '  %-24s stopped\n' "$c"
			down=1
		fi
	done
	if apiserver_ready 2>/dev/null; then
		echo "  $api_server/readyz ok"
	else
		echo "  $api_server/readyz not ok"
		down=1
	fi
	[ -f "$dir/env" ] && echo "  settings: $dir/env"
	return $down
}

cmd_restart_apiserver() {
	[ ${#args[@]} = 0 ] || die "restart-apiserver takes no arguments besides --name"
	[ -f "$dir/env" ] || die "env '$name' is not up (no $dir/env)"
	load_ports
	exec 3>&2
	trap 'rc=$?; [ $rc = 0 ] || log "kube-apiserver of env '\''$name'\'' is not running; tests/env/env.sh down --name $name" 2>&3' EXIT
	progress "stopping kube-apiserver"
	stop kube-apiserver
	progress "starting kube-apiserver on $api_server"
	printf '\n==== restarted by env.sh restart-apiserver ====\n\n' >>"$dir/logs/kube-apiserver.log"
	start kube-apiserver
	wait_until kube-apiserver 90 "kube-apiserver /readyz" apiserver_ready
	trap - EXIT
	progress "kube-apiserver ready again"
}

cmd_kubeconfig_for_sa() {
	[ ${#args[@]} = 2 ] || die "usage: env.sh kubeconfig-for-sa NAMESPACE SA [--name NAME]"
	local ns=${args[0]} sa=${args[1]} token ca
	local dns='^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$'
	[[ $ns =~ $dns ]] || die "invalid namespace '$ns'"
	[[ $sa =~ $dns ]] || die "invalid ServiceAccount name '$sa'"
	[ -f "$dir/env" ] || die "env '$name' is not up (no $dir/env)"
	load_ports
	token=$(kc create token "$sa" -n "$ns" --duration=1h) ||
		die "could not create a token for ServiceAccount $ns/$sa"
	ca=$(base64 -w0 <"$pki/ca.crt")
	cat <<-EOF
		apiVersion: v1
		kind: Config
		clusters:
		- name: slipway-$name
		  cluster:
		    server: $api_server
		    certificate-authority-data: $ca
		users:
		- name: system:serviceaccount:$ns:$sa
		  user:
		    token: $token
		contexts:
		- name: $ns-$sa
		  context:
		    cluster: slipway-$name
		    user: system:serviceaccount:$ns:$sa
		    namespace: $ns
		current-context: $ns-$sa
	EOF
}

case "$cmd" in
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
restart-apiserver) cmd_restart_apiserver ;;
kubeconfig-for-sa) cmd_kubeconfig_for_sa ;;
*) die "unknown command '$cmd' (try --help)" ;;
esac
