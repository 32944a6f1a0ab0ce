#!/usr/bin/env bash
test_description='images: slipway/gitd and slipway/builder are built FROM scratch, pushed, and their programs run from the image root filesystem'
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

test_expect_success 'images/build.sh builds both images FROM scratch and pushes them' '
	BUILD=$SLIPWAY_BUILD "$SLIPWAY_ROOT/images/build.sh" "${storage[@]}" --work-dir "$TRASH_DIRECTORY/work" \
		--push "$REGISTRY" --tls-verify=false >pushed 2>err &&
	cat err &&
	test_grep "^images/build: built slipway/gitd:$version in" err &&
	test_grep "^images/build: built slipway/builder:$version in" err &&
	test "$(wc -l <pushed)" = 2 &&
	test_grep "^$REGISTRY/slipway/gitd@sha256:[0-9a-f]{64}$" pushed &&
	test_grep "^$REGISTRY/slipway/builder@sha256:[0-9a-f]{64}$" pushed &&
	bah images >images &&
	cat images &&
	test_grep "^localhost/slipway/gitd +$version " images &&
	test_grep "^localhost/slipway/builder +$version " images
'

test_expect_success 'the registry has both manifests, by the digests the push printed, in one layer of our own (no base image)' '
	for name in gitd builder; do
		d=$(sed -n "s|^$REGISTRY/slipway/$name@||p" pushed) &&
		test -n "$d" &&
		test "$(manifest_digest slipway/$name "$version")" = "$d" &&
		curl -sf -H "$accept" "http://$REGISTRY/v2/slipway/$name/manifests/$version" |
			python3 -c "import json,sys; print(len(json.load(sys.stdin)[\"layers\"]))" >n &&
		test "$(cat n)" = 1 || return 1
	done
'

test_expect_success 'the image configs: entrypoint, user (gitd 65532, builder root), OCI labels' '
	image_config slipway/gitd "$version" >gitd.json &&
	image_config slipway/builder "$version" >builder.json &&
	python3 - "$version" "$revision" <<-EOF_
	import json, sys
	version, revision = sys.argv[1:]
	for name, user, entry in (("gitd", "65532:65532", "/usr/local/bin/gitd"),
	                          ("builder", "0:0", "/usr/local/bin/builder")):
	    c = json.load(open(name + ".json"))
	    assert c["User"] == user, (name, c["User"])
	    assert c["Entrypoint"] == [entry], (name, c["Entrypoint"])
	    assert "PATH=/usr/local/bin:/usr/bin:/bin" in c["Env"], (name, c["Env"])
	    l = c["Labels"]
	    assert l["org.opencontainers.image.version"] == version, (name, l)
	    assert l["org.opencontainers.image.revision"] == revision, (name, l)
	    assert l["org.opencontainers.image.title"] == "slipway-" + name, (name, l)
	EOF_
'

test_expect_success 'gitd'"'"'s image: gitd, deployer and sh run from its root filesystem as user 65532' '
	mount_image slipway/gitd:$version &&
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

# before test_done, which removes the scratch directory with the storage
cleanup
test_done
