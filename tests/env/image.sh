#!/usr/bin/env bash
# tests/env/image.sh: makes sure Slipway's image NAME (gitd, builder or
# hooks), as images/build.sh builds it from the programs in
# $SLIPWAY_BUILD/bin and this host's packages, is in REGISTRY, and prints its
# reference, REGISTRY/slipway/NAME:KEY. KEY hashes the image's inputs (the
# programs, helm for gitd, buildah for the builder, kubectl and the Debian packages' versions
# for the hooks image, images/ and VERSION): the image is built again only
# when one of them changed (buildah storage in the cache, shared by every
# run), and pushed once per registry.
#
# usage: tests/env/image.sh NAME REGISTRY      (REGISTRY plain HTTP: HOST:PORT)
# env:   SLIPWAY_BUILD  the programs' build directory (default: REPO/build)
#        SLIPWAY_CACHE  the cache (default: $HOME/.cache/slipway)
# Needs root and buildah, as images/build.sh does.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
die() {
	printf 'tests/env/image: %s\n' "$*" >&2
	exit 1
}
case "${1:-}" in -h | --help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
[ $# = 2 ] || die "usage: tests/env/image.sh NAME REGISTRY (try --help)"
name=$1 registry=$2
build=${SLIPWAY_BUILD:-$top/build}
cache=${SLIPWAY_CACHE:-$HOME/.cache/slipway}
versions=
case "$name" in
gitd)
	. "$here/versions.sh"
	helm=${HELM:-$cache/bin/helm-$HELM_VERSION/helm}
	[ -x "$helm" ] || "$here/build.sh" </dev/null >&2 || die "cannot build helm (tests/env/build.sh)"
	inputs=("$build/bin/gitd" "$build/bin/deployer" "$build/bin/slipway-post-render" "$helm")
	;;
builder) inputs=("$build/bin/builder" "$(command -v buildah)") ;;
hooks)
	kubectl=$(command -v kubectl) || die "no kubectl on PATH (the hooks image takes it)"
	mapfile -t pkgs < <(grep -v -e '^#' -e '^$' "$top/images/hooks.packages")
	inputs=("$(readlink -f "$kubectl")" "$top/images/hooks.packages")
	versions=$(dpkg-query -W -f='${Package} ${Version}\n' "${pkgs[@]}") ||
		die "a package of images/hooks.packages is not installed"
	;;
*) die "no image '$name' (gitd, builder or hooks)" ;;
esac
[[ $registry =~ ^[A-Za-z0-9.-]+(:[0-9]+)?$ ]] || die "registry '$registry' is not HOST[:PORT]"
store=(--root "$cache/buildah/storage" --runroot "$cache/buildah/run" --storage-driver vfs)
mkdir -p "$cache/images"
key=$({ cat "${inputs[@]}" "$top/images/rootfs.sh" "$top/images/$name.Containerfile" \
	"$top/VERSION" && printf '%s' "$versions"; } | sha256sum | cut -c1-16)
version=$(cat "$top/VERSION")
exec 9>"$cache/images/.lock"
flock -w 300 9 || die "cannot lock $cache/images/.lock"
if [ "$(cat "$cache/images/$name.key" 2>/dev/null)" != "$key" ]; then
	rm -f "$cache/images/$name.key"
	BUILD="$build" "$top/images/build.sh" "${store[@]}" --work-dir "$cache/images/work" "$name" >&2 ||
		die "images/build.sh $name failed"
	echo "$key" >"$cache/images/$name.key"
fi
accept='application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json'
if ! curl -fsS -o /dev/null -I -H "Accept: $accept" \
	"http://$registry/v2/slipway/$name/manifests/$key" 2>/dev/null; then
	buildah "${store[@]}" push --quiet --tls-verify=false "slipway/$name:$version" \
		"docker://$registry/slipway/$name:$key" >&2 || die "cannot push slipway/$name to $registry"
fi
printf '%s/slipway/%s:%s\n' "$registry" "$name" "$key"
