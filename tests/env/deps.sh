#!/usr/bin/env bash
# Installs the Debian packages that building Slipway and running its tests
# need. Quiet and quick when everything is installed already; otherwise runs
# apt-get update and apt-get install (through sudo when not root).
#
# usage: tests/env/deps.sh [--help]
# Go and kubectl are not Debian packages here (Debian's are too old): they
# must already be on PATH, and this script fails if they are not.
set -euo pipefail

case "${1:-}" in
-h | --help)
	sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'
	exit 0
	;;
"") ;;
*)
	echo "tests/env/deps: unknown argument '$1' (try --help)" >&2
	exit 2
	;;
esac

packages=(
	build-essential pkg-config git openssl curl ca-certificates perl
	libgit2-dev libssh-dev libcurl4-openssl-dev libjansson-dev libyaml-dev libssl-dev zlib1g-dev
	libmicrohttpd-dev docker-registry openssh-client openssh-server clang-format clang-14 libclang-rt-14-dev
	libarchive-dev libseccomp-dev buildah busybox-static jq python3 python3-venv xxd chromium chromium-driver
	lighttpd lighttpd-mod-openssl
	containerd runc containernetworking-plugins iproute2 libc6-dev
)

log() { printf 'tests/env/deps: %s\n' "$*" >&2; }

missing=()
for p in "${packages[@]}"; do
	st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
	[ "$st" = installed ] || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
	log "installing: ${missing[*]}"
	sudo=()
	if [ "$(id -u)" != 0 ]; then
		command -v sudo >/dev/null || { log "not root and no sudo: install ${missing[*]} by hand"; exit 1; }
		sudo=(sudo)
	fi
	export DEBIAN_FRONTEND=noninteractive
	"${sudo[@]}" apt-get update -qq
	"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

rc=0
# PyYAML: t8100 reads kubectl-slipway's -o yaml with a YAML reader that is
# not ours (PyPI; the python3 on PATH may not be Debian's)
python3 -c 'import yaml' 2>/dev/null ||
	python3 -m pip install -q --disable-pip-version-check 'pyyaml==6.0.3' || {
	log "cannot install PyYAML (python3 -m pip install pyyaml)"
	rc=1
}
command -v go >/dev/null || {
	log "'go' is not on PATH: tests/env/build.sh builds the control plane with it (Go >= 1.24)"
	rc=1
}
command -v kubectl >/dev/null || {
	log "'kubectl' is not on PATH: the tests and tests/env/env.sh need it (1.32 to 1.34)"
	rc=1
}
exit $rc
