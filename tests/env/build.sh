#!/usr/bin/env bash
# Builds the pinned test control plane (etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler), the node's kubelet and helm
# from the Go module proxy into the cache directory. Binaries already built
# for a version are reused.
#
# usage: tests/env/build.sh [--help]
# env:   SLIPWAY_CACHE  cache directory (default: $HOME/.cache/slipway)
set -euo pipefail

case "${1:-}" in
-h | --help)
	sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'
	exit 0
	;;
esac

here=$(cd "$(dirname "$0")" && pwd)
. "$here/versions.sh"
cache=${SLIPWAY_CACHE:-$HOME/.cache/slipway}
export GOCACHE="$cache/go-build" GOMODCACHE="$cache/go-mod"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-buildvcs=false
bindir="$cache/bin"
mkdir -p "$bindir" "$cache/src"

log() { printf 'tests/env/build: %s\n' "$*" >&2; }

# k8s.io/kubernetes replaces its ~30 staging modules with ./staging paths and
# requires them at v0.0.0; a wrapper module replaces each with the published
# v0.MINOR.PATCH instead. The list is read from the tag's own go.mod.
build_kubernetes() {
	local ver=$K8S_VERSION out="$bindir/kubernetes-$K8S_VERSION"
	local bins=(kube-apiserver kube-controller-manager kube-scheduler kubelet)
	local missing=0 b
	for b in "${bins[@]}"; do [ -x "$out/$b" ] || missing=1; done
	[ "$missing" = 1 ] || return 0
	log "building kubernetes $ver (first run only: about 10 minutes on 2 cores)"
	local src="$cache/src/kubernetes-$ver" staging_ver="v0.${ver#v1.}"
	rm -rf "$src" && mkdir -p "$src" "$out"
	(
		cd "$src"
		go mod init slipway.dev/testenv/kubernetes >/dev/null 2>&1
		local gomod
		gomod=$(go list -m -json "k8s.io/kubernetes@$ver" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')
		[ -f "$gomod" ] || { log "cannot find go.mod of k8s.io/kubernetes@$ver"; exit 1; }
		go mod edit -require="k8s.io/kubernetes@$ver"
		grep -E '^[[:space:]]*k8s\.io/[^ ]+ => \./staging/' "$gomod" | awk '{print $1}' |
			while read -r m; do go mod edit -replace="$m=$m@$staging_ver"; done
		local pkgs=() b
		for b in "${bins[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
		# Keep the requirement in go.mod through tidy: a tools file names the packages.
		{ echo '//go:build tools'; echo; echo 'package tools'; echo; echo 'import ('
		  for p in "${pkgs[@]}"; do echo "	_ \"$p\""; done; echo ')'; } > tools.go
		go mod tidy >/dev/null
		local minor=${ver#v1.}; minor=${minor%%.*}
		local ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$ver -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
		for b in "${bins[@]}"; do
			log "go build $b"
			go build -tags selinux,notest,grpcnotrace -ldflags "$ldflags" -o "$out/$b.tmp" "k8s.io/kubernetes/cmd/$b"
			mv "$out/$b.tmp" "$out/$b"
		done
	)
}

build_etcd() {
	local out="$bindir/etcd-$ETCD_VERSION"
	[ -x "$out/etcd" ] && return 0
	log "building etcd $ETCD_VERSION"
	local src="$cache/src/etcd-$ETCD_VERSION"
	rm -rf "$src" && mkdir -p "$src" "$out"
	(
		cd "$src"
		go mod init slipway.dev/testenv/etcd >/dev/null 2>&1
		printf '//go:build tools\n\npackage tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n' > tools.go
		go mod edit -require="go.etcd.io/etcd/server/v3@$ETCD_VERSION"
		go mod tidy >/dev/null
		go build -ldflags "-s -w" -o "$out/etcd.tmp" go.etcd.io/etcd/server/v3
		mv "$out/etcd.tmp" "$out/etcd"
	)
}

# helm.sh/helm/v3 installs directly (no replaces). The ldflags are its
# Makefile's: without them `helm version` says v3.22 and helm lint and
# template assume the Kubernetes version of the client-go it was built with
# only through these -X settings (major = client-go's 0 + 1).
build_helm() {
	local out="$bindir/helm-$HELM_VERSION"
	[ -x "$out/helm" ] && return 0
	log "building helm $HELM_VERSION"
	mkdir -p "$out"
	local gomod client_go minor
	gomod=$(go list -m -json "helm.sh/helm/v3@$HELM_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')
	[ -f "$gomod" ] || { log "cannot find go.mod of helm.sh/helm/v3@$HELM_VERSION"; exit 1; }
	client_go=$(awk '$1 == "k8s.io/client-go" { print $2 }' "$gomod")
	minor=${client_go#v0.}; minor=${minor%%.*}
	[[ $minor =~ ^[0-9]+$ ]] || { log "cannot read k8s.io/client-go's version from $gomod"; exit 1; }
	local v=helm.sh/helm/v3/internal/version
	local ldflags="-s -w -X $v.version=$HELM_VERSION -X $v.gitTreeState=clean"
	local p
	for p in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
		ldflags+=" -X $p.k8sVersionMajor=1 -X $p.k8sVersionMinor=$minor"
	done
	GOBIN="$out" go install -trimpath -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
}

build_etcd
build_helm
build_kubernetes
log "binaries ready in $bindir"
