#!/usr/bin/env bash
test_description='images: slipway/gitd, slipway/builder and slipway/hooks are built FROM scratch, pushed, and their programs run from the image root filesystem; the hooks image runs hooks/examples/ in Pods on the node'
. "$(dirname "$0")/test-lib.sh"
test_require_env
command -v buildah >/dev/null || test_skip_all "no buildah (tests/env/deps.sh installs it)"
[ -x /bin/busybox ] || test_skip_all "no /bin/busybox (Debian busybox-static)"
[ "$(id -u)" = 0 ] || test_skip_all "buildah with chroot isolation, chroot and mount need root here"
command -v unshare >/dev/null || test_skip_all "no unshare (util-linux)"

version=$(cat "$SLIPWAY_ROOT/VERSION")
revision=$(git -C "$SLIPWAY_ROOT" rev-parse HEAD)
accept='Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json'

# buildah's storage is this script's own, removed with the scratch directory.
# overlay where the kernel allows it (vfs copies every layer: slower).
storage=(--root "$TRASH_DIRECTORY/storage" --runroot "$TRASH_DIRECTORY/runroot")
mkdir -p probe/lower probe/upper probe/work probe/merged
if mount -t overlay overlay -o lowerdir=probe/lower,upperdir=probe/upper,workdir=probe/work \
	probe/merged 2>/dev/null; then
	umount probe/merged
	storage+=(--storage-driver overlay)
else
	storage+=(--storage-driver vfs)
fi
rm -rf probe
say "buildah storage driver: ${storage[-1]}"
bah() { buildah "${storage[@]}" "$@"; }

# Whatever this script mounted or created in its storage goes at exit: the
# working containers (their mounts) and the storage's own mounts.
cleanup() {
	bah rm --all >/dev/null 2>&1
	bah rmi --all --force >/dev/null 2>&1
	findmnt -rn -o TARGET | grep "^$TRASH_DIRECTORY/" | sort -r | xargs -r umount -l 2>/dev/null
	trap - EXIT
}
trap cleanup EXIT

# manifest_digest REPO TAG: the registry's Docker-Content-Digest, or nothing.
manifest_digest() {
	curl -s -o /dev/null -D - -H "$accept" "http://$REGISTRY/v2/$1/manifests/$2" |
		tr -d '\r' | awk 'tolower($1) == "docker-content-digest:" { print $2 }'
}

# image_config REPO TAG: the image's config ("config" of the config blob) as
# JSON, from the registry.
image_config() {
	local config
	config=$(curl -sf -H "$accept" "http://$REGISTRY/v2/$1/manifests/$2" |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["config"]["digest"])') &&
		curl -sf "http://$REGISTRY/v2/$1/blobs/$config" |
		python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["config"]))'
}

# mount_image IMAGE: a working container of IMAGE, mounted; sets $mnt.
mount_image() {
	local c
	c=$(bah from --pull-never "$1") &&
		mnt=$(bah mount "$c") &&
		test -d "$mnt"
}

# in-root USER MNT CMD...: CMD chrooted into MNT as USER (uid:gid), in a
# private mount namespace in which MNT is a mount point and has /proc, /sys
# and /dev, as a container runtime gives a container. Nothing mounted there
# outlives CMD (the namespace dies with it). A script, not a function, and
# exec all the way: CMD keeps the pid of "in-root ... &".
cat >in-root <<'EOF_'
#!/bin/sh
user=$1 root=$2
shift 2
exec unshare --mount --propagation private sh -c '
	user=$1 root=$2
	shift 2
	mount --bind "$root" "$root" &&
	mount --rbind /proc "$root/proc" &&
	mount --rbind /sys "$root/sys" &&
	mount --rbind /dev "$root/dev" &&
	exec chroot --userspec="$user" "$root" "$@"' in-root "$user" "$root" "$@"
EOF_
chmod +x in-root
# in_root USER MNT CMD...: in-root with only the environment the image sets
# (no env in the images: env -i runs outside)
in_root() {
	local home=/root
	[ "$1" = 0:0 ] || home=/home/slipway
	env -i PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin HOME=$home LANG=C \
		"$TRASH_DIRECTORY/in-root" "$@"
}

test_expect_success 'VERSION agrees with the programs: gitd --version and its default builder image' '
	test "$(gitd --version)" = "gitd slipway-gitd/$version" &&
	gitd --help >help &&
	test_grep "the builder image \[slipway/builder:$version\]" help
'

test_expect_success 'images/build.sh builds the three images FROM scratch and pushes them' '
	BUILD=$SLIPWAY_BUILD "$SLIPWAY_ROOT/images/build.sh" "${storage[@]}" --work-dir "$TRASH_DIRECTORY/work" \
		--push "$REGISTRY" --tls-verify=false >pushed 2>err &&
	cat err &&
	test_grep "^images/build: built slipway/gitd:$version in" err &&
	test_grep "^images/build: built slipway/builder:$version in" err &&
	test_grep "^images/build: built slipway/hooks:$version in" err &&
	test "$(wc -l <pushed)" = 3 &&
	test_grep "^$REGISTRY/slipway/gitd@sha256:[0-9a-f]{64}$" pushed &&
	test_grep "^$REGISTRY/slipway/builder@sha256:[0-9a-f]{64}$" pushed &&
	test_grep "^$REGISTRY/slipway/hooks@sha256:[0-9a-f]{64}$" pushed &&
	bah images >images &&
	cat images &&
	test_grep "^localhost/slipway/gitd +$version " images &&
	test_grep "^localhost/slipway/builder +$version " images &&
	test_grep "^localhost/slipway/hooks +$version " images
'

test_expect_success 'the registry has the three manifests, by the digests the push printed, in one layer of our own (no base image)' '
	for name in gitd builder hooks; do
		d=$(sed -n "s|^$REGISTRY/slipway/$name@||p" pushed) &&
		test -n "$d" &&
		test "$(manifest_digest slipway/$name "$version")" = "$d" &&
		curl -sf -H "$accept" "http://$REGISTRY/v2/slipway/$name/manifests/$version" |
			python3 -c "import json,sys; print(len(json.load(sys.stdin)[\"layers\"]))" >n &&
		test "$(cat n)" = 1 || return 1
	done
'

test_expect_success 'the image configs: entrypoint, user (gitd and hooks 65532, builder root), OCI labels' '
	image_config slipway/gitd "$version" >gitd.json &&
	image_config slipway/builder "$version" >builder.json &&
	image_config slipway/hooks "$version" >hooks.json &&
	python3 - "$version" "$revision" <<-EOF_
	import json, sys
	version, revision = sys.argv[1:]
	for name, user, entry in (("gitd", "65532:65532", ["/usr/local/bin/gitd"]),
	                          ("builder", "0:0", ["/usr/local/bin/builder"]),
	                          ("hooks", "65532:65532", None)):
	    c = json.load(open(name + ".json"))
	    assert c["User"] == user, (name, c["User"])
	    assert c.get("Entrypoint") == entry, (name, c.get("Entrypoint"))
	    assert "PATH=/usr/local/bin:/usr/bin:/bin" in c["Env"], (name, c["Env"])
	    l = c["Labels"]
	    assert l["org.opencontainers.image.version"] == version, (name, l)
	    assert l["org.opencontainers.image.revision"] == revision, (name, l)
	    assert l["org.opencontainers.image.title"] == "slipway-" + name, (name, l)
	c = json.load(open("hooks.json"))
	assert c["Cmd"] == ["/bin/sh"], c
	assert "HOME=/home/slipway" in c["Env"] and "LANG=C.UTF-8" in c["Env"], c
	EOF_
'

test_expect_success 'gitd'"'"'s image: gitd, deployer, helm, slipway-post-render and sh run from its root filesystem as user 65532' '
	mount_image slipway/gitd:$version &&
	in_root 65532:65532 "$mnt" helm version --short >out &&
	test_grep "^v3\." out &&
	in_root 65532:65532 "$mnt" slipway-post-render --help >out &&
	test_grep "^usage: slipway-post-render" out &&
	in_root 65532:65532 "$mnt" gitd --version >out &&
	test "$(cat out)" = "gitd slipway-gitd/$version" &&
	in_root 65532:65532 "$mnt" gitd --help >out &&
	test_grep "^usage: gitd" out &&
	in_root 65532:65532 "$mnt" deployer --help >out &&
	test_grep "^usage: deployer" out &&
	in_root 65532:65532 "$mnt" /bin/sh -c "busybox id -u; echo \$((6 * 7))" >out &&
	printf "65532\n42\n" >expect &&
	test_cmp expect out &&
	test "$(stat -c %u:%a "$mnt/home/slipway")" = 65532:755 &&
	test "$(stat -c %u:%a "$mnt/tmp")" = 0:1777 &&
	test "$(stat -c %u "$mnt/usr/local/bin/gitd")" = 0 &&
	test_grep "^slipway:x:65532:65532:" "$mnt/etc/passwd" &&
	test -s "$mnt/etc/ssl/certs/ca-certificates.crt" &&
	! test -e "$mnt/usr/bin/buildah"
'

test_expect_success 'gitd from its image serves a git push over SSH as user 65532' '
	make_key() { ssh-keygen -q -t ed25519 -N "" -C "$1@test" -f "$1"; } &&
	make_key pusher &&
	port=$(python3 -c "import socket; s=socket.socket(); s.bind((\"127.0.0.1\",0)); print(s.getsockname()[1])") &&
	mport=$(python3 -c "import socket; s=socket.socket(); s.bind((\"127.0.0.1\",0)); print(s.getsockname()[1])") &&
	echo "default/web $(cat pusher.pub)" >"$mnt/tmp/authorized_keys" &&
	{ env -i PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin HOME=/home/slipway LANG=C \
		./in-root 65532:65532 "$mnt" gitd \
		--listen "127.0.0.1:$port" --metrics-listen "127.0.0.1:$mport" \
		--data-dir /tmp/repos --host-key-dir /tmp/hostkeys \
		--authorized-keys /tmp/authorized_keys 2>gitd.log & pid=$!; } &&
	test_when_finished "kill -TERM $pid; wait $pid" &&
	test_wait_for 30 grep -q "\"event\":\"listening\"" gitd.log &&
	test "$(curl -s -o /dev/null -w "%{http_code}" "http://127.0.0.1:$mport/healthz")" = 200 &&
	git init -q -b main src &&
	echo hello >src/file &&
	git -C src add file &&
	git -C src -c user.name=T -c user.email=t@example.com commit -q -m one &&
	GIT_SSH_COMMAND="ssh -i $TRASH_DIRECTORY/pusher -o IdentitiesOnly=yes -o IdentityAgent=none -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR" \
		git -C src push "ssh://git@127.0.0.1:$port/default/web.git" main &&
	test "$(git -c safe.directory="*" --git-dir="$mnt/tmp/repos/default/web.git" rev-parse main)" = "$(git -C src rev-parse main)" &&
	test "$(stat -c %u "$mnt/tmp/repos/default/web.git")" = 65532
'

test_expect_success 'builder'"'"'s image: builder and buildah run from its root filesystem as root' '
	mount_image slipway/builder:$version &&
	bmnt=$mnt &&
	in_root 0:0 "$bmnt" builder --help >out &&
	test_grep "^usage: builder build" out &&
	in_root 0:0 "$bmnt" buildah --version >out &&
	test_grep "^buildah version " out &&
	test -f "$bmnt/etc/containers/policy.json" &&
	test -f "$bmnt/etc/containers/storage.conf" &&
	! test -e "$bmnt/usr/bin/sh"
'

test_expect_success 'builder from its image builds (with a RUN step) and pushes an image with buildah' '
	mkdir "$bmnt/ctx" &&
	cp /bin/busybox "$bmnt/ctx/busybox" &&
	cat >"$bmnt/ctx/Dockerfile" <<-EOF_ &&
	FROM scratch
	COPY busybox /bin/busybox
	RUN ["/bin/busybox", "sh", "-c", "echo built-in-image-\$((6 * 7)) >/hello"]
	CMD ["/bin/busybox", "cat", "/hello"]
	EOF_
	in_root 0:0 "$bmnt" builder build --context /ctx \
		--image "$REGISTRY/t8200/x:1" --insecure-registry >out 2>err &&
	cat out err &&
	d=$(tail -n 1 out | sed -n "s|^-----> Pushed $REGISTRY/t8200/x:1@\(sha256:[0-9a-f]\{64\}\)$|\1|p") &&
	test -n "$d" &&
	test "$(manifest_digest t8200/x 1)" = "$d" &&
	test -z "$(find "$bmnt/tmp" -mindepth 1 -maxdepth 1 -name "slipway-builder-*")"
'

test_expect_success 'the image the builder pushed holds what its RUN step wrote' '
	bah pull --quiet --tls-verify=false "$REGISTRY/t8200/x:1" >/dev/null &&
	mount_image "$REGISTRY/t8200/x:1" &&
	test "$(cat "$mnt/hello")" = built-in-image-42
'

# What hooks/examples/ run, as each uses it: sh with $(( )) and command -v,
# date and cut (migrate-job.sh), kubectl create --dry-run=client (no API
# server needed; configmap-update.sh), jq on an event (migrate-job.sh), curl
# (webhook-notify.sh); and python3 with the modules a Python hook needs,
# its TLS trust, and the standard library's bytecode (valid: not compiled
# again on every start).
cat >tools.sh <<'EOF_'
set -eu
echo "uid $(id -u) home $HOME"
echo "sh $((6 * 7)) $(command -v kubectl) $(command -v jq) $(command -v curl)"
echo "bash ${BASH_VERSION:-none} $(bash -c 'echo ${BASH_VERSION%%(*}')"
echo "date $(date -u -d @0 +%Y) cut $(printf 0123456789abcdef | cut -c1-12)"
python3 -c 'import json, ssl, sys, urllib.request; print("python3", sys.version.split()[0], ssl.create_default_context().cert_store_stats()["x509_ca"] > 100)'
echo "bytecode $(python3 -v -c 'import json' 2>&1 | grep -c '/json/__pycache__/__init__\.cpython-[0-9]*\.pyc matches ')"
printf '%s' '{"images":[{"deployment":"web","container":"web","image":"r/web@sha256:1"}]}' |
	jq -r --arg d web --arg c web '.images[] | select(.deployment == $d and .container == $c) | .image'
curl --version | head -n 1 | cut -d" " -f1
kubectl version --client | head -n 1
kubectl create configmap c --from-literal=a=b --dry-run=client -o jsonpath='{.data.a}{"\n"}'
echo written >/tmp/w && cat /tmp/w
EOF_

# check_tools FILE: FILE is what tools.sh printed in the hooks image
check_tools() {
	test_grep "^uid 65532 home /home/slipway$" "$1" &&
	test_grep "^sh 42 /usr/bin/kubectl /usr/bin/jq /usr/bin/curl$" "$1" &&
	test_grep "^bash none 5\.[0-9.]+$" "$1" &&
	test_grep "^date 1970 cut 0123456789ab$" "$1" &&
	test_grep "^python3 3\.[0-9.]+ True$" "$1" &&
	test_grep "^bytecode 1$" "$1" &&
	test_grep "^r/web@sha256:1$" "$1" &&
	test_grep "^curl$" "$1" &&
	test_grep "^Client Version: v1\.[0-9]+\.[0-9]+" "$1" &&
	test_grep "^b$" "$1" &&
	test_grep "^written$" "$1"
}

test_expect_success 'hooks'"'"' image: sh (dash), bash, coreutils, python3, jq, curl and kubectl run from its root filesystem as user 65532' '
	mount_image slipway/hooks:$version &&
	hmnt=$mnt &&
	cp tools.sh "$hmnt/tmp/tools.sh" &&
	in_root 65532:65532 "$hmnt" /bin/sh /tmp/tools.sh >out 2>&1 &&
	cat out &&
	check_tools out &&
	test "$(readlink "$hmnt/usr/bin/sh")" = dash &&
	test "$(stat -c %u:%a "$hmnt/home/slipway")" = 65532:755 &&
	test "$(stat -c %u:%a "$hmnt/tmp")" = 0:1777 &&
	test_grep "^slipway:x:65532:65532:" "$hmnt/etc/passwd" &&
	test_grep "^slipway:x:65532:$" "$hmnt/etc/group" &&
	test -s "$hmnt/etc/ssl/certs/ca-certificates.crt" &&
	! test -e "$hmnt/usr/bin/busybox" &&
	! test -e "$hmnt/usr/share/doc" &&
	! test -e "$hmnt/usr/local/bin/gitd"
'

if [ -n "${NODE_NAME:-}" ] && kubectl wait --for=condition=Ready "node/$NODE_NAME" --timeout=30s >/dev/null 2>&1; then
	hns=t8200-hooks
	# pod_finished NS POD: the Pod has ended (Succeeded or Failed)
	pod_finished() {
		kubectl -n "$1" get pod "$2" -o jsonpath={.status.phase} 2>/dev/null | grep -qxE "Succeeded|Failed"
	}
	# hook_pod NAME IMAGE COMMAND_JSON [SERVICE_ACCOUNT]: a Pod as a hook
	# runs, under the restricted Pod Security Standard: non-root, no
	# privilege escalation, no capabilities, read-only root filesystem
	# (emptyDirs for /tmp and HOME), the hook from ConfigMap web-hooks
	# (executable) at /hook, the event from ConfigMap event at /event, the
	# SLIPWAY_* variables; a token only with SERVICE_ACCOUNT.
	hook_pod() {
		local sa=${4:-} token=false
		[ -z "$sa" ] || token=true
		kubectl -n $hns apply -f - <<-EOF_
		{"apiVersion":"v1","kind":"Pod","metadata":{"name":"$1"},
		 "spec":{"restartPolicy":"Never","nodeName":"$NODE_NAME",
		  "serviceAccountName":"${sa:-default}","automountServiceAccountToken":$token,
		  "securityContext":{"runAsNonRoot":true,"seccompProfile":{"type":"RuntimeDefault"}},
		  "containers":[{"name":"hook","image":"$2","command":$3,
		   "env":[{"name":"SLIPWAY_EVENT","value":"post-deploy"},
		          {"name":"SLIPWAY_NAMESPACE","value":"$hns"},{"name":"SLIPWAY_REMOTE","value":"web"},
		          {"name":"SLIPWAY_REF","value":"refs/heads/main"},{"name":"SLIPWAY_BRANCH","value":"main"},
		          {"name":"SLIPWAY_BEFORE","value":"$before"},{"name":"SLIPWAY_AFTER","value":"$after"},
		          {"name":"SLIPWAY_PIPELINERUN","value":"web-t8200"},
		          {"name":"SLIPWAY_PUSHER_FINGERPRINT","value":"SHA256:t8200"}],
		   "securityContext":{"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"]},
		                      "readOnlyRootFilesystem":true},
		   "volumeMounts":[{"name":"hook","mountPath":"/hook","readOnly":true},
		                   {"name":"event","mountPath":"/event","readOnly":true},
		                   {"name":"tmp","mountPath":"/tmp"},{"name":"home","mountPath":"/home/slipway"}]}],
		  "volumes":[{"name":"hook","configMap":{"name":"web-hooks","defaultMode":365}},
		             {"name":"event","configMap":{"name":"event"}},
		             {"name":"tmp","emptyDir":{}},{"name":"home","emptyDir":{}}]}}
		EOF_
	}
	before=$(printf "%040d" 0) after=$(printf "%040d" 1 | tr 0 a)

	test_expect_success 'the hooks image is in the env registry; a namespace under the restricted Pod Security Standard' '
		hooks_image=$(test_slipway_image hooks) &&
		echo "$hooks_image" | grep -qE "^$REGISTRY/slipway/hooks:[0-9a-f]{16}$" &&
		kubectl delete namespace $hns --ignore-not-found --wait --timeout=90s &&
		kubectl create namespace $hns &&
		kubectl label namespace $hns pod-security.kubernetes.io/enforce=restricted &&
		test_wait_for 30 kubectl -n $hns get serviceaccount default -o name &&
		printf "{\"event\":\"post-deploy\",\"remote\":{\"namespace\":\"%s\",\"name\":\"web\"},\"ref\":\"refs/heads/main\",\"branch\":\"main\",\"before\":\"%s\",\"after\":\"%s\",\"pusher\":{\"fingerprint\":\"SHA256:t8200\"},\"pipelineRun\":\"web-t8200\",\"images\":[],\"deployments\":[],\"stages\":[]}\n" \
			$hns "$before" "$after" >event.json &&
		kubectl -n $hns create configmap event --from-file=event.json &&
		kubectl -n $hns create configmap web-hooks --from-file=tools.sh \
			--from-file="$SLIPWAY_ROOT/hooks/examples/configmap-update.sh"
	'

	test_expect_success 'a Pod on the node runs the hooks image as 65532 with every tool hooks/examples/ use' '
		hook_pod tools "$hooks_image" "[\"/bin/sh\",\"/hook/tools.sh\"]" &&
		test_wait_for 120 pod_finished $hns tools &&
		kubectl -n $hns logs tools >tools.out &&
		cat tools.out &&
		test "$(kubectl -n $hns get pod tools -o jsonpath={.status.phase})" = Succeeded &&
		check_tools tools.out &&
		test "$(kubectl -n $hns get pod tools -o jsonpath={.spec.nodeName})" = "$NODE_NAME"
	'

	test_expect_success 'hooks/examples/configmap-update.sh runs unchanged in a Pod, event on stdin, and writes its ConfigMap with a ServiceAccount token' '
		kubectl -n $hns create serviceaccount slipway-hooks &&
		kubectl -n $hns create role slipway-hooks-configmaps --verb=get,create,patch,update --resource=configmaps &&
		kubectl -n $hns create rolebinding slipway-hooks-configmaps --role=slipway-hooks-configmaps \
			--serviceaccount=$hns:slipway-hooks &&
		hook_pod update "$hooks_image" \
			"[\"/bin/sh\",\"-c\",\"exec /hook/configmap-update.sh </event/event.json\"]" slipway-hooks &&
		test_wait_for 120 pod_finished $hns update &&
		kubectl -n $hns logs update >update.out &&
		cat update.out &&
		test "$(kubectl -n $hns get pod update -o jsonpath={.status.phase})" = Succeeded &&
		test_grep "^configmap $hns/web-deployed: commit $after$" update.out &&
		test "$(kubectl -n $hns get configmap web-deployed -o jsonpath={.data.commit})" = "$after" &&
		test "$(kubectl -n $hns get configmap web-deployed -o jsonpath={.data.pipelineRun})" = web-t8200 &&
		test "$(kubectl -n $hns get configmap web-deployed -o jsonpath={.data.pusher})" = SHA256:t8200 &&
		kubectl -n $hns get configmap web-deployed -o jsonpath={.data.event\\.json} >event.got &&
		test_cmp event.json event.got
	'

	test_expect_success 'the same hook in a Pod without a token has no credentials: kubectl falls back to localhost and the Pod fails' '
		hook_pod notoken "$hooks_image" \
			"[\"/bin/sh\",\"-c\",\"exec /hook/configmap-update.sh </event/event.json\"]" &&
		test_wait_for 120 pod_finished $hns notoken &&
		test "$(kubectl -n $hns get pod notoken -o jsonpath={.status.phase})" = Failed &&
		test "$(kubectl -n $hns get pod notoken -o jsonpath={.status.containerStatuses[0].state.terminated.exitCode})" = 1 &&
		kubectl -n $hns logs notoken >notoken.out &&
		cat notoken.out &&
		test_grep "localhost:8080.*connection refused" notoken.out
	'
	kubectl delete namespace $hns --ignore-not-found --wait=false >/dev/null 2>&1
else
	test_skip 'the hooks image runs hooks/examples/ in Pods on the node' "no Ready node (NODE_NAME)"
fi

# before test_done, which removes the scratch directory with the storage
cleanup
test_done
