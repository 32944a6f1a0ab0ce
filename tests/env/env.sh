#!/usr/bin/env bash
# Starts and stops Slipway's test environment on this machine: etcd,
# kube-apiserver, kube-controller-manager, kube-scheduler, distribution's
# docker-registry, and a real node: a private containerd (Debian's, with
# runc) and a kubelet built from the same Kubernetes module as the API server.
# Pods really run; their network is a bridge of the env's own with addresses
# in 198.18.0.0/24 (RFC 2544's benchmarking range), nothing else.
#
# Addresses: the env takes a slot (two can run at once) and with it
# 198.18.0.0/25 or 198.18.0.128/25. The first address of the slot (HOST_IP,
# 198.18.0.1 or .129) sits on the env's bridge: the API server listens there
# on 443, the registry and the kubelet on free ports. Pods get addresses from
# the slot's upper part and reach only the bridge's subnet; the first 32
# addresses are the Service range, so the "kubernetes" Service's ClusterIP is
# HOST_IP:443 itself and in-cluster clients reach the API server without a
# kube-proxy. Nothing listens on another interface, nothing is routed out.
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
#        SLIPWAY_ENV_TEST_FAIL_AFTER=node  (tests of env.sh) up fails once the
#                          node is Ready, to show that a failed up cleans up
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
. "$here/versions.sh"
cache=${SLIPWAY_CACHE:-$HOME/.cache/slipway}
etcd_bin="$cache/bin/etcd-$ETCD_VERSION/etcd"
kube_dir="$cache/bin/kubernetes-$K8S_VERSION"
root=${SLIPWAY_ENV_ROOT:-/tmp/slipway-env}
repo=$(cd "$here/../.." && pwd)

# Start order; down stops them in reverse.
components=(etcd registry kube-apiserver kube-controller-manager kube-scheduler containerd kubelet)
# Allocated on loopback (etcd, controller-manager, scheduler, kubelet
# healthz) or on HOST_IP (registry, kubelet); the API server has HOST_IP:443.
port_names=(etcd etcd-peer registry kube-controller-manager kube-scheduler kubelet kubelet-healthz)
slots=2 # /25s of 198.18.0.0/24

started_at=$SECONDS
log() { printf 'tests/env/env: %s\n' "$*" >&2; }
progress() { printf 'tests/env/env: [%3ds] %s\n' $((SECONDS - started_at)) "$*" >&2; }
die() {
	log "$*"
	exit 1
}
usage() { sed -n '2,34p' "$0" | sed 's/^# \{0,1\}//'; }

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

# stop_all: the node first (kubelet, then every container, then
# containerd and what it left), clients of the API next, etcd last.
stop_all() {
	[ -d "$dir/pids" ] || return 0
	stop kubelet
	sysctls_restore
	node_remove_containers
	stop containerd
	node_cleanup
	stop kube-scheduler kube-controller-manager registry
	stop kube-apiserver
	stop etcd
	net_down
}

# --- ports -----------------------------------------------------------------

# Free loopback ports, asked of the kernel by binding port 0 (all held open
# together so they differ), recorded in DIR/ports. Under a lock, ports that
# another env recorded are skipped: two envs starting at once cannot pick the
# same port between this check and their components binding it. The slot
# (DIR/slot) is chosen under the same lock: one whose bridge does not exist,
# or exists without an env that claims it (left by a crash: removed).
allocate_ports() {
	mkdir -p "$root"
	(
		flock -w 30 9 || die "could not lock $root/.ports.lock"
		local n owner free=
		for ((n = 0; n < slots; n++)); do
			owner=$(grep -lx "$n" "$root"/*/slot 2>/dev/null | head -n 1 || true)
			if [ -e "/sys/class/net/slipway$n" ]; then
				[ -z "$owner" ] || continue
				log "removing bridge slipway$n: no env claims it"
				ip link del "slipway$n" || continue
			elif [ -n "$owner" ]; then
				log "slot $n: ${owner%/slot} claims it but its bridge is gone: taking it"
				rm -f "$owner"
			fi
			free=$n
			break
		done
		[ -n "$free" ] || die "no free slot: $slots envs with a node are running ($(ls "$root"/*/slot | xargs -n1 dirname | xargs -n1 basename | tr '\n' ' '))"
		echo "$free" >"$dir/slot"
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
	local slot
	read -r slot <"$dir/slot" 2>/dev/null || die "env '$name' has no slot ($dir/slot missing)"
	[[ $slot =~ ^[0-9]$ ]] || die "bad slot '$slot' in $dir/slot"
	bridge=slipway$slot
	net_base=$((slot * 128))
	host_ip=198.18.0.$((net_base + 1))
	pod_cidr=198.18.0.$net_base/25
	service_cidr=198.18.0.$net_base/27
	port[kube-apiserver]=443
	api_server="https://$host_ip:443"
	registry="$host_ip:${port[registry]}"
	node_name=node-$name
	cgroup_root=/slipway-$name
	ctr_sock="$dir/containerd/containerd.sock"
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
		"IP:$host_ip,IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
	issue admin "/O=system:masters/CN=admin" clientAuth
	issue controller-manager /CN=system:kube-controller-manager clientAuth
	issue scheduler /CN=system:kube-scheduler clientAuth
	issue front-proxy-client /CN=front-proxy-client clientAuth
	# the node: its client certificate (Node authorizer, group system:nodes),
	# its serving certificate (logs, exec, port-forward), and the API
	# server's client certificate towards it (bound to system:kubelet-api-admin)
	issue kubelet-client "/O=system:nodes/CN=system:node:$node_name" clientAuth
	issue kubelet-serving "/O=system:nodes/CN=system:node:$node_name" serverAuth \
		"IP:$host_ip,DNS:$node_name"
	issue apiserver-kubelet-client /CN=kube-apiserver-kubelet-client clientAuth
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
# controller-manager and scheduler log errors every second). It listens on
# HOST_IP:443, which is also the ClusterIP of the "kubernetes" Service (the
# first address of --service-cluster-ip-range), so Pods reach it there. It
# reaches the kubelet at the node's InternalIP with a client certificate.
# On TERM the server would otherwise hold open watches for its 60 s request
# timeout before it exits; --shutdown-send-retry-after closes them (GOAWAY)
# after 2 s.
argv_kube_apiserver() {
	argv=("$kube_dir/kube-apiserver"
		--etcd-servers="http://127.0.0.1:${port[etcd]}"
		--bind-address="$host_ip" --advertise-address="$host_ip"
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
		--kubelet-client-certificate="$pki/apiserver-kubelet-client.crt"
		--kubelet-client-key="$pki/apiserver-kubelet-client.key"
		--kubelet-certificate-authority="$pki/ca.crt"
		--kubelet-preferred-address-types=InternalIP
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

# containerd: a private instance (config in write_node_config), its root,
# state and socket under DIR/containerd.
argv_containerd() {
	argv=(containerd --config "$dir/containerd/config.toml")
}

# kubelet: its settings in DIR/kubelet/config.yaml (write_node_config), its
# state under DIR/kubelet, the node's own client certificate.
argv_kubelet() {
	argv=("$kube_dir/kubelet" --config="$dir/kubelet/config.yaml"
		--kubeconfig="$dir/kubelet.kubeconfig" --root-dir="$dir/kubelet/root"
		--cert-dir="$dir/kubelet/pki" --hostname-override="$node_name" --node-ip="$host_ip"
		--node-labels=slipway.dev/test-node=true)
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

# --- the node --------------------------------------------------------------

# The kernel settings a kubelet sets when it starts (with
# protectKernelDefaults off; on, it refuses to start unless they are set
# already): machine-wide, so they are saved before the first env's kubelet
# starts and put back when the last one has stopped.
kubelet_sysctls=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
	kernel.keys.root_maxkeys kernel.keys.root_maxbytes)
sysctls_saved="$root/.sysctls-before-kubelet"

# other_kubelet: the kubelet of another env is running.
other_kubelet() {
	local f pid
	for f in "$root"/*/pids/kubelet.pid; do
		[ -f "$f" ] && [ "$f" != "$dir/pids/kubelet.pid" ] || continue
		read -r pid <"$f" || continue
		[[ $pid =~ ^[0-9]+$ ]] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "/kubelet " &&
			return 0
	done
	return 1
}

sysctls_save() {
	local k
	[ ! -f "$sysctls_saved" ] || return 0
	for k in "${kubelet_sysctls[@]}"; do
		printf '%s=%s\n' "$k" "$(sysctl -n "$k")" || return 1
	done >"$sysctls_saved.tmp" && mv "$sysctls_saved.tmp" "$sysctls_saved"
}

sysctls_restore() {
	local k v
	[ -f "$sysctls_saved" ] && ! other_kubelet || return 0
	while IFS='=' read -r k v; do
		sysctl -qw "$k=$v" 2>/dev/null || log "cannot set $k back to $v"
	done <"$sysctls_saved"
	rm -f "$sysctls_saved"
}

# net_up: the env's bridge with HOST_IP. Pods are attached to it by the CNI
# bridge plugin; the host's side is this one address, so no forwarding and
# no masquerading are needed (or set up).
net_up() {
	ip link add "$bridge" type bridge 2>"$dir/logs/net.log" ||
		fail net "cannot create bridge $bridge"
	ip addr add "$host_ip/25" dev "$bridge" >>"$dir/logs/net.log" 2>&1 &&
		ip link set "$bridge" up >>"$dir/logs/net.log" 2>&1 ||
		fail net "cannot give bridge $bridge the address $host_ip/25"
}

net_down() {
	[ -n "${bridge:-}" ] || return 0
	[ ! -e "/sys/class/net/$bridge" ] || ip link del "$bridge" 2>/dev/null || true
}

# cgroup_mounts: the mount points of the cgroup hierarchies. In
# /proc/self/mountinfo the file system type follows the "-" that ends the
# optional fields, whose number varies (proc(5)).
cgroup_mounts() {
	awk '{ for (i = 7; i < NF && $i != "-"; i++) ; t = $(i + 1) }
	     t == "cgroup" || t == "cgroup2" { print $5 }' /proc/self/mountinfo
}

# cgroup_dirs: the env's cgroup (kubelet's cgroupRoot) in every mounted
# hierarchy, deepest last.
cgroup_dirs() {
	local mnt
	while read -r mnt; do
		if [ -d "$mnt$cgroup_root" ]; then find "$mnt$cgroup_root" -depth -type d; fi
	done < <(cgroup_mounts)
}

# cgroups_up: kubelet refuses a cgroupRoot that does not exist; cpuset
# children start empty and take no tasks until given cpus and mems.
cgroups_up() {
	local mnt
	while read -r mnt; do
		mkdir -p "$mnt$cgroup_root" || fail setup "cannot create cgroup $mnt$cgroup_root"
		if [ -f "$mnt/cpuset.cpus" ]; then
			cat "$mnt/cpuset.cpus" >"$mnt$cgroup_root/cpuset.cpus"
			cat "$mnt/cpuset.mems" >"$mnt$cgroup_root/cpuset.mems"
		fi
	done < <(cgroup_mounts)
}

# The pause image: tests/env/pause.c, static, FROM scratch, built once per
# version of its source into buildah storage in the cache and pushed to the
# env's registry. CRI's sandbox_image names it there, so nothing is pulled
# from outside.
pause_image() {
	local key store img out
	key=$(sha256sum "$here/pause.c" | cut -c1-12)
	store=(--root "$cache/buildah/storage" --runroot "$cache/buildah/run" --storage-driver vfs)
	img=localhost/slipway-test/pause:$key
	if ! buildah "${store[@]}" inspect --type image "$img" >/dev/null 2>&1; then
		out="$cache/pause-$key"
		mkdir -p "$out"
		cc -static -Os -s -o "$out/pause" "$here/pause.c" 2>"$dir/logs/pause.log" ||
			fail pause "cannot build tests/env/pause.c (static: needs libc6-dev)"
		local c
		c=$(buildah "${store[@]}" from scratch 2>>"$dir/logs/pause.log") &&
			buildah "${store[@]}" copy --chmod 0755 "$c" "$out/pause" /pause >>"$dir/logs/pause.log" 2>&1 &&
			buildah "${store[@]}" config --entrypoint '["/pause"]' --user 65535:65535 "$c" >>"$dir/logs/pause.log" 2>&1 &&
			buildah "${store[@]}" commit --quiet "$c" "$img" >>"$dir/logs/pause.log" 2>&1 &&
			buildah "${store[@]}" rm "$c" >>"$dir/logs/pause.log" 2>&1 ||
			fail pause "cannot build the pause image"
	fi
	buildah "${store[@]}" push --quiet --tls-verify=false "$img" \
		"docker://$registry/slipway-test/pause:$key" >>"$dir/logs/pause.log" 2>&1 ||
		fail pause "cannot push the pause image to $registry"
	sandbox_image=$registry/slipway-test/pause:$key
}

# write_node_config: containerd's config, the CNI network, the registry's
# hosts.toml, the kubelet's config and kubeconfig (its node certificate).
write_node_config() {
	local c="$dir/containerd"
	mkdir -p "$c"/{root,state,runc,opt} "$c/certs.d/$registry" "$dir/cni/net.d" \
		"$dir/cni/ipam" "$dir/kubelet"/{root,pki,pod-logs}
	# restrict_oom_score_adj: root here lacks CAP_SYS_RESOURCE, so runc
	# cannot set the -998 that CRI asks for sandboxes (every sandbox would
	# fail with "can't get final child's PID from pipe: EOF").
	# netns_mounts_under_state_dir: Pod network namespaces stay in DIR.
	cat >"$c/config.toml" <<-EOF
		version = 2
		root = "$c/root"
		state = "$c/state"
		disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
		[grpc]
		  address = "$ctr_sock"
		[ttrpc]
		  address = "$c/containerd.sock.ttrpc"
		[metrics]
		  address = ""
		[plugins."io.containerd.internal.v1.opt"]
		  path = "$c/opt"
		[plugins."io.containerd.grpc.v1.cri"]
		  sandbox_image = "$sandbox_image"
		  restrict_oom_score_adj = true
		  netns_mounts_under_state_dir = true
		  stream_server_address = "127.0.0.1"
		  stream_server_port = "0"
		  enable_selinux = false
		  [plugins."io.containerd.grpc.v1.cri".containerd]
		    snapshotter = "overlayfs"
		    default_runtime_name = "runc"
		    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
		      runtime_type = "io.containerd.runc.v2"
		      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
		        Root = "$c/runc"
		        SystemdCgroup = false
		  [plugins."io.containerd.grpc.v1.cri".cni]
		    bin_dir = "/usr/lib/cni"
		    conf_dir = "$dir/cni/net.d"
		    max_conf_num = 1
		  [plugins."io.containerd.grpc.v1.cri".registry]
		    config_path = "$c/certs.d"
	EOF
	# the env's registry over plain HTTP (containerd reads this on each pull)
	cat >"$c/certs.d/$registry/hosts.toml" <<-EOF
		server = "http://$registry"
		[host."http://$registry"]
		  capabilities = ["pull", "resolve"]
	EOF
	# Pods on the env's bridge, addresses from the slot's upper 96; no
	# gateway, no routes, no masquerading: only the bridge's subnet is
	# reachable from a Pod (HOST_IP, other Pods).
	cat >"$dir/cni/net.d/10-slipway.conflist" <<-EOF
		{
		  "cniVersion": "0.4.0",
		  "name": "slipway-$name",
		  "plugins": [{
		    "type": "bridge",
		    "bridge": "$bridge",
		    "isGateway": false,
		    "ipMasq": false,
		    "hairpinMode": true,
		    "ipam": {
		      "type": "host-local",
		      "dataDir": "$dir/cni/ipam",
		      "ranges": [[{"subnet": "$pod_cidr", "rangeStart": "198.18.0.$((net_base + 32))", "rangeEnd": "198.18.0.$((net_base + 126))"}]]
		    }
		  }]
		}
	EOF
	# oomScoreAdj 0: see restrict_oom_score_adj. Image garbage collection
	# and disk eviction are off: this machine's disk is not the node's to
	# manage, and a test must not lose its images to a full disk elsewhere.
	# makeIPTablesUtilChains off: the kubelet would otherwise add chains and
	# an INPUT rule to the machine's own iptables (KUBE-FIREWALL,
	# KUBE-IPTABLES-HINT, KUBE-KUBELET-CANARY) that outlive it; nothing
	# here uses them (no kube-proxy, no NodePorts).
	cat >"$dir/kubelet/config.yaml" <<-EOF
		apiVersion: kubelet.config.k8s.io/v1beta1
		kind: KubeletConfiguration
		address: $host_ip
		port: ${port[kubelet]}
		readOnlyPort: 0
		healthzBindAddress: 127.0.0.1
		healthzPort: ${port[kubelet-healthz]}
		containerRuntimeEndpoint: unix://$ctr_sock
		cgroupDriver: cgroupfs
		cgroupRoot: $cgroup_root
		failCgroupV1: false
		failSwapOn: false
		oomScoreAdj: 0
		podLogsDir: $dir/kubelet/pod-logs
		tlsCertFile: $pki/kubelet-serving.crt
		tlsPrivateKeyFile: $pki/kubelet-serving.key
		authentication:
		  anonymous: {enabled: false}
		  webhook: {enabled: true}
		  x509: {clientCAFile: $pki/ca.crt}
		authorization:
		  mode: Webhook
		makeIPTablesUtilChains: false
		serializeImagePulls: false
		imageGCHighThresholdPercent: 100
		imageGCLowThresholdPercent: 99
		evictionHard: {memory.available: "0%", nodefs.available: "0%", imagefs.available: "0%"}
		maxPods: 90
		nodeStatusReportFrequency: 10s
		resolvConf: /etc/resolv.conf
	EOF
	write_kubeconfig "$dir/kubelet.kubeconfig" "system:node:$node_name" kubelet-client
}

# node_remove_containers: every container and sandbox of the env's
# containerd killed and deleted, so their shims exit and clean up after
# themselves. Then whatever process is left in the env's cgroups is killed.
node_remove_containers() {
	local ids id i pids
	if [ -S "$ctr_sock" ] && pid_of containerd >/dev/null; then
		ids=$(ctr --address "$ctr_sock" -n k8s.io tasks ls -q 2>/dev/null || true)
		for id in $ids; do
			ctr --address "$ctr_sock" -n k8s.io tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true
		done
		for id in $ids; do
			for i in 1 2 3 4 5 6 7 8 9 10; do
				ctr --address "$ctr_sock" -n k8s.io tasks delete "$id" >/dev/null 2>&1 && break
				ctr --address "$ctr_sock" -n k8s.io tasks ls -q 2>/dev/null | grep -qx "$id" || break
				sleep 0.2
			done
		done
	fi
	for i in 1 2 3 4 5 6 7 8 9 10; do
		pids=$(cgroup_dirs | while read -r d; do cat "$d/cgroup.procs" 2>/dev/null || true; done | sort -u)
		[ -n "$pids" ] || break
		kill -KILL $pids 2>/dev/null || true
		sleep 0.2
	done
}

# node_cleanup: what the node made outside its processes. Shims of the env
# (their command line names DIR), mounts under DIR (volumes, snapshots, Pod
# network namespaces), the env's cgroups, kubelet's links in
# /var/log/containers, CNI's cached results.
node_cleanup() {
	local pid m mnt i
	for pid in $(pgrep -f "containerd-shim-runc-v2 .*-address $ctr_sock" || true); do
		is_ours "$pid" && kill -KILL "$pid" 2>/dev/null
	done
	for i in 1 2 3; do
		m=$(awk -v d="$dir/" 'substr($5, 1, length(d)) == d { print $5 }' /proc/self/mountinfo | sort -r)
		[ -n "$m" ] || break
		while read -r mnt; do umount -l "$mnt" 2>/dev/null || true; done <<<"$m"
	done
	for i in 1 2 3 4 5 6 7 8 9 10; do
		cgroup_dirs | while read -r d; do rmdir "$d" 2>/dev/null || true; done
		[ -z "$(cgroup_dirs)" ] && break
		sleep 0.2
	done
	[ -z "$(cgroup_dirs)" ] || log "cgroups left: $(cgroup_dirs | tr '\n' ' ')"
	find /var/log/containers -maxdepth 1 -lname "$dir/*" -delete 2>/dev/null || true
	rm -f /var/lib/cni/results/"slipway-$name"-* 2>/dev/null || true
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
	for c in python3 openssl curl kubectl docker-registry setsid containerd ctr runc buildah cc ip; do
		command -v "$c" >/dev/null || die "'$c' is not on PATH (tests/env/deps.sh installs the Debian ones)"
	done
	[ "$(id -u)" = 0 ] || die "the node needs root (containerd, kubelet, a bridge, cgroups)"
	[ -x /usr/lib/cni/bridge ] && [ -x /usr/lib/cni/host-local ] ||
		die "no CNI plugins in /usr/lib/cni (Debian containernetworking-plugins)"
	if [ -d "$dir" ]; then
		any_running && die "env '$name' is already running in $dir (tests/env/env.sh down --name $name)"
		log "removing the stopped env left in $dir"
		[ ! -f "$dir/slot" ] || (load_ports && stop_all) || true
		remove_dir
	fi

	"$here/build.sh" >&2 || die "tests/env/build.sh failed"
	for c in "$etcd_bin" "$kube_dir"/kube-{apiserver,controller-manager,scheduler} "$kube_dir/kubelet"; do
		[ -x "$c" ] || die "missing $c after tests/env/build.sh"
	done

	mkdir -p "$dir"/{logs,pids,etcd,registry,controller-manager,scheduler}
	: >"$dir/.slipway-env"
	# A signal can land while stderr is redirected (wait_until): report on fd 3.
	exec 3>&2
	trap 'rc=$?; if [ $rc != 0 ]; then { log "stopping env '\''$name'\''; logs kept in $dir/logs"; stop_all; } 2>&3; fi' EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	trap 'exit 129' HUP

	allocate_ports
	load_ports
	progress "env '$name' in $dir: apiserver $api_server, registry $registry, node $node_name, pods $pod_cidr on $bridge"
	net_up
	generate_pki
	write_kubeconfig "$dir/admin.kubeconfig" admin admin
	write_kubeconfig "$dir/controller-manager.kubeconfig" system:kube-controller-manager controller-manager
	write_kubeconfig "$dir/scheduler.kubeconfig" system:kube-scheduler scheduler
	write_registry_config

	progress "starting etcd $ETCD_VERSION and docker-registry"
	start etcd
	start registry
	wait_until etcd 30 "etcd /health" etcd_healthy

	progress "starting kube-apiserver $K8S_VERSION"
	start kube-apiserver
	wait_until kube-apiserver 90 "kube-apiserver /readyz" apiserver_ready

	progress "starting kube-controller-manager, kube-scheduler"
	start kube-controller-manager
	start kube-scheduler
	# the API server's client certificate may use the kubelet's API (logs,
	# exec, port-forward), as kubeadm grants it
	kc create clusterrolebinding slipway-apiserver-kubelet-api-admin \
		--clusterrole=system:kubelet-api-admin --user=kube-apiserver-kubelet-client \
		>"$dir/logs/setup.log" 2>&1 || fail setup "cannot bind the API server's kubelet client"

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
	progress "the pause image (tests/env/pause.c) into the registry"
	pause_image
	progress "starting containerd $(containerd --version | awk '{print $3}') and kubelet $K8S_VERSION (node $node_name)"
	write_node_config
	cgroups_up
	start containerd
	wait_until containerd 30 "containerd's socket" ctr --address "$ctr_sock" version
	sysctls_save || fail "" "cannot save the kernel settings the kubelet changes"
	start kubelet
	wait_until kube-controller-manager 60 "ServiceAccount default/default" \
		kc get serviceaccount default -n default
	wait_until kubelet 60 "node $node_name Ready" \
		kc wait --for=condition=Ready node "$node_name" --timeout=5s
	[ "${SLIPWAY_ENV_TEST_FAIL_AFTER:-}" != node ] ||
		fail "" "failing on purpose once the node is Ready (SLIPWAY_ENV_TEST_FAIL_AFTER=node)"
	# kube-scheduler binds pods once its informers have synced.
	wait_until kube-scheduler 30 "kube-scheduler /readyz" \
		curl -fsSk --max-time 2 "https://127.0.0.1:${port[kube-scheduler]}/readyz"

	{
		printf 'SLIPWAY_ENV_NAME=%s\n' "$name"
		printf 'SLIPWAY_ENV_DIR=%s\n' "$dir"
		printf 'KUBECONFIG=%s\n' "$dir/admin.kubeconfig"
		printf 'REGISTRY=%s\n' "$registry"
		printf 'API_SERVER=%s\n' "$api_server"
		printf 'HOST_IP=%s\n' "$host_ip"
		printf 'NODE_NAME=%s\n' "$node_name"
		printf 'POD_CIDR=%s\n' "$pod_cidr"
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
	if [ -f "$dir/slot" ] && [ -f "$dir/ports" ]; then
		load_ports
		stop_all
	else
		stop etcd registry kube-apiserver kube-controller-manager kube-scheduler # before the slot was taken
	fi
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
			printf '  %-24s running  pid %-8s port %s\n' "$c" "$pid" "${port[$c]:-$ctr_sock}"
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
	echo "  pods: $pod_cidr on bridge $bridge, HOST_IP $host_ip"
	if kc get node "$node_name" -o wide 2>/dev/null | sed 's/^/  /'; then
		kc get node "$node_name" -o jsonpath='{range .status.conditions[?(@.type=="Ready")]}  Ready={.status} ({.reason}) since {.lastTransitionTime}{"\n"}{end}' 2>/dev/null || true
		kc get pods -A --field-selector "spec.nodeName=$node_name" --no-headers 2>/dev/null |
			awk '{ n++; s[$4]++ } END { printf "  pods on the node: %d", n; for (k in s) printf ", %s %d", k, s[k]; print "" }'
	else
		echo "  node $node_name: not registered"
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
