#!/usr/bin/env bash
# images/build.sh: builds Slipway's container images with buildah, from root
# filesystems that images/rootfs.sh assembles out of this Debian host (no
# base image is pulled; images/README.md says why):
#
#   slipway/gitd:VERSION      gitd, deployer, slipway-post-render, helm,
#                             /bin/sh (busybox); user 65532
#   slipway/builder:VERSION   builder, buildah; user root
#   slipway/hooks:VERSION     sh (dash), bash, coreutils, grep, sed, curl, jq,
#                             python3, kubectl; user 65532 (hooks run as Pods)
#
# VERSION is the repository's VERSION file. The programs come from
# $BUILD/bin (default build/bin): run make first (make images does both).
# helm is $HELM, or the pinned one tests/env/build.sh builds from the Go
# module proxy into $SLIPWAY_CACHE (default ~/.cache/slipway), built there
# first when it is missing.
# Needs root (buildah bud --isolation chroot), Debian's buildah and
# busybox-static, and for the hooks image the Debian packages listed in
# images/hooks.packages and kubectl on PATH.
#
# usage: images/build.sh [--push REGISTRY] [--tls-verify=false]
#                        [--root DIR] [--runroot DIR] [--storage-driver DRIVER]
#                        [--work-dir DIR] [gitd|builder|hooks]...
#   --push REGISTRY        also push to REGISTRY/slipway/NAME:VERSION and print
#                          the pushed image by digest
#   --tls-verify=false     the registry is plain HTTP (a test registry)
#   --root DIR, --runroot DIR  buildah's storage (default: buildah's own)
#   --storage-driver D     buildah's storage driver (default: buildah's own)
#   --work-dir DIR         where the build contexts go [$BUILD/images]
set -euo pipefail

die() {
	printf 'images/build: %s\n' "$*" >&2
	exit 1
}
say() { printf 'images/build: %s\n' "$*" >&2; }

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
build=${BUILD:-$top/build}
case "$build" in /*) ;; *) build=$top/$build ;; esac

registry= tls=() storage=() names=() work=
while [ $# -gt 0 ]; do
	case "$1" in
	--push) [ $# -ge 2 ] || die "--push needs a registry"; registry=${2%/}; shift ;;
	--tls-verify=false) tls=(--tls-verify=false) ;;
	--root | --runroot | --storage-driver)
		[ $# -ge 2 ] || die "$1 needs a value"
		storage+=("$1" "$2")
		shift
		;;
	--work-dir) [ $# -ge 2 ] || die "--work-dir needs a directory"; work=$2; shift ;;
	gitd | builder | hooks) names+=("$1") ;;
	-h | --help) sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown argument '$1' (try --help)" ;;
	esac
	shift
done
[ ${#names[@]} -gt 0 ] || names=(gitd builder hooks)
work=${work:-$build/images}

[ "$(id -u)" = 0 ] || die "run as root: buildah builds with chroot isolation here"
command -v buildah >/dev/null || die "buildah not found (make deps installs it)"
version=$(cat "$top/VERSION" 2>/dev/null) || die "no VERSION file in $top"
[[ "$version" =~ ^[0-9A-Za-z_][0-9A-Za-z_.-]{0,127}$ ]] || die "VERSION '$version' is not a valid image tag"
revision=$(git -C "$top" rev-parse HEAD 2>/dev/null || echo unknown)

# hooks_args: rootfs.sh's options for the hooks image, the Debian packages
# from images/hooks.packages and kubectl
hooks_args() {
	local p
	printf '%s\n' --kubectl
	while read -r p; do
		case "$p" in '' | '#'*) continue ;; esac
		printf '%s\n' --package "$p"
	done <"$here/hooks.packages"
}

# helm_path: the helm the gitd image carries (a static Go binary), built
# as tests/env does when it is missing
helm_path() {
	local h
	. "$top/tests/env/versions.sh"
	h=${HELM:-${SLIPWAY_CACHE:-$HOME/.cache/slipway}/bin/helm-$HELM_VERSION/helm}
	if [ ! -x "$h" ] && [ -z "${HELM:-}" ]; then
		say "building helm $HELM_VERSION with tests/env/build.sh"
		"$top/tests/env/build.sh" </dev/null >&2 || die "tests/env/build.sh failed"
	fi
	[ -x "$h" ] || die "no helm at $h"
	printf '%s\n' "$h"
}

# build_one NAME ROOTFS-OPTION... : assemble the context, bud, maybe push
build_one() {
	local name=$1 ctx image started=$SECONDS
	shift
	ctx=$work/$name
	image=slipway/$name:$version
	rm -rf "$ctx"
	mkdir -p "$ctx/empty"
	"$here/rootfs.sh" --out "$ctx/rootfs" "$@"
	cp "$here/$name.Containerfile" "$ctx/Containerfile"
	buildah "${storage[@]}" bud --isolation chroot --quiet \
		--build-arg VERSION="$version" --build-arg REVISION="$revision" \
		-f "$ctx/Containerfile" -t "$image" "$ctx" >/dev/null
	say "built $image in $((SECONDS - started)) s ($(du -sh "$ctx/rootfs" | cut -f1) of files)"
	if [ -n "$registry" ]; then
		buildah "${storage[@]}" push --quiet "${tls[@]}" --digestfile "$ctx/digest" \
			"$image" "docker://$registry/$image"
		echo "$registry/slipway/$name@$(cat "$ctx/digest")"
	fi
}

for name in "${names[@]}"; do
	case "$name" in
	gitd)
		helm=$(helm_path)
		build_one gitd --shell "$build/bin/gitd" "$build/bin/deployer" \
			"$build/bin/slipway-post-render" "$helm"
		;;
	builder) build_one builder --buildah "$build/bin/builder" ;;
	hooks)
		mapfile -t args < <(hooks_args)
		build_one hooks "${args[@]}"
		;;
	esac
done
