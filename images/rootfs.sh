#!/usr/bin/env bash
# images/rootfs.sh: assembles a minimal root filesystem for a Slipway image
# from this Debian host: the given programs (into /usr/local/bin), every
# shared library they load (ldd: the dynamic loader's own search), the loader,
# CA certificates, /etc/passwd and /etc/group with root and the non-root user
# slipway (65532), /etc/nsswitch.conf and /tmp. No package manager, no base
# image: images/README.md says why.
#
# usage: images/rootfs.sh --out DIR [--shell] [--buildah] [--kubectl]
#                         [--package PKG]... [PROGRAM]...
#   --out DIR   where the root filesystem goes (must not exist, or be empty)
#   --shell     add Debian's static busybox as /bin/sh and /bin/busybox
#               (gitd runs hook scripts, which are "#!/bin/sh" programs)
#   --buildah   add /usr/bin/buildah, its libraries and /etc/containers
#               (the builder runs buildah bud --isolation chroot and push)
#   --kubectl   add the kubectl on PATH (a static Go binary) as /usr/bin/kubectl
#   --package PKG  add the files of the installed Debian package PKG as
#               dpkg lists them (no docs, man pages, translations), the
#               libraries of each ELF file in it, and the host's compiled
#               Python bytecode of its .py files
#   PROGRAM     an executable (e.g. build/bin/gitd), installed by its name
set -euo pipefail

die() {
	printf 'images/rootfs: %s\n' "$*" >&2
	exit 1
}

out= shell= buildah= kubectl=
programs=() packages=()
while [ $# -gt 0 ]; do
	case "$1" in
	--out) [ $# -ge 2 ] || die "--out needs a directory"; out=$2; shift ;;
	--shell) shell=1 ;;
	--buildah) buildah=1 ;;
	--kubectl) kubectl=1 ;;
	--package) [ $# -ge 2 ] || die "--package needs a package name"; packages+=("$2"); shift ;;
	-h | --help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	-*) die "unknown option '$1' (try --help)" ;;
	*) programs+=("$1") ;;
	esac
	shift
done
[ -n "$out" ] || die "--out DIR is required (try --help)"
[ $((${#programs[@]} + ${#packages[@]})) -gt 0 ] || die "no PROGRAM or --package given (try --help)"
if [ -e "$out" ] && [ -n "$(ls -A "$out")" ]; then
	die "$out exists and is not empty"
fi
command -v ldd >/dev/null || die "ldd not found (Debian package libc-bin)"

mkdir -p "$out"
out=$(cd "$out" && pwd)

# Debian bookworm's merged /usr: /bin, /sbin, /lib and /lib64 are links into
# /usr, as on the host, so every path ldd prints is valid in the image too.
mkdir -p "$out"/usr/{bin,sbin,lib,lib64,local/bin} "$out"/etc "$out"/root "$out"/home \
	"$out"/var/tmp "$out"/run "$out"/proc "$out"/sys "$out"/dev
for d in bin sbin lib lib64; do
	ln -s "usr/$d" "$out/$d"
done
install -d -m 1777 "$out"/tmp
chmod 1777 "$out"/var/tmp
chmod 0700 "$out"/root

# copy_file SRC [DEST]: SRC's content (links followed) at DEST (default: the
# same path) in the root filesystem, its directory canonical on the host so
# that /lib/x/libfoo.so.1 lands in /usr/lib/x/ like the host's.
copy_file() {
	local src=$1 dest=${2:-}
	if [ -z "$dest" ]; then
		dest="$(cd "$(dirname "$src")" && pwd -P)/$(basename "$src")"
	fi
	[ -e "$out$dest" ] && return 0
	mkdir -p "$(dirname "$out$dest")"
	cp -L --preserve=mode,timestamps "$src" "$out$dest"
}

# copy_libs FILE: every shared library FILE needs, and the loader, as the
# loader finds them on this host (ldd runs the loader in trace mode).
copy_libs() {
	local line lib
	ldd "$1" >/dev/null 2>&1 || return 0 # static: nothing to copy
	while read -r line; do
		case "$line" in
		*"not found"*) die "$1 needs a library this host does not have: $line" ;;
		*" => /"*) lib=${line#* => }; lib=${lib%% (*} ;;
		/*) lib=${line%% (*} ;; # the loader
		*) continue ;;         # linux-vdso.so.1: in the kernel
		esac
		copy_file "$lib"
	done < <(ldd "$1")
}

# copy_package PKG: the files of the installed Debian package PKG, as
# dpkg-query -L lists them (directories, regular files, symbolic links as
# they are), without documentation, man pages and translations. Each
# program or shared object in it brings its libraries. A .py file brings
# the bytecode the host compiled for it at install time (py3compile), so
# Python need not compile the standard library on every start in a
# read-only image. Lines that are not paths ("diverted by ...") are skipped.
copy_package() {
	local pkg=$1 path base pyc
	[ "$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null)" = installed ] ||
		die "--package $pkg: not installed on this host (apt-get install $pkg)"
	while read -r path; do
		case "$path" in
		/ | /. | /usr/share/doc | /usr/share/doc/* | /usr/share/man | /usr/share/man/* | \
			/usr/share/info | /usr/share/info/* | /usr/share/locale | /usr/share/locale/* | \
			/usr/share/lintian | /usr/share/lintian/* | /usr/share/bug | /usr/share/bug/* | \
			/usr/share/menu | /usr/share/menu/*) continue ;;
		/*) ;;
		*) continue ;;
		esac
		if [ -L "$path" ]; then
			[ -e "$out$path" ] || [ -L "$out$path" ] && continue
			mkdir -p "$(dirname "$out$path")"
			ln -s "$(readlink "$path")" "$out$path"
		elif [ -d "$path" ]; then
			mkdir -p "$out$path"
		elif [ -f "$path" ]; then
			copy_file "$path"
			case "$path" in
			*/bin/* | */sbin/* | *.so | *.so.*) copy_libs "$path" ;;
			*.py)
				base=$(basename "$path" .py)
				for pyc in "$(dirname "$path")/__pycache__/$base".cpython-*.pyc; do
					case "$pyc" in *"*"* | *.opt-*) continue ;; esac
					copy_file "$pyc"
				done
				;;
			esac
		fi
	done < <(dpkg-query -L "$pkg")
}

for p in "${packages[@]}"; do
	copy_package "$p"
done

if [ -n "$kubectl" ]; then
	k=$(command -v kubectl) || die "--kubectl needs kubectl on PATH"
	# Google Cloud SDK's "kubectl" package links /usr/bin/kubectl into its
	# own tree; the file itself is one static binary
	copy_file "$(readlink -f "$k")" /usr/bin/kubectl
	copy_libs "$(readlink -f "$k")"
fi

for p in "${programs[@]}"; do
	[ -f "$p" ] && [ -x "$p" ] || die "$p is not an executable file (run make first?)"
	copy_file "$p" "/usr/local/bin/$(basename "$p")"
	copy_libs "$p"
done

if [ -n "$shell" ]; then
	[ -x /bin/busybox ] || die "--shell needs /bin/busybox (Debian busybox-static)"
	ldd /bin/busybox >/dev/null 2>&1 && die "/bin/busybox is not static (install busybox-static)"
	copy_file /bin/busybox /usr/bin/busybox
	ln -s busybox "$out/usr/bin/sh"
fi

if [ -n "$buildah" ]; then
	command -v buildah >/dev/null || die "--buildah needs buildah (Debian package buildah)"
	copy_file "$(command -v buildah)" /usr/bin/buildah
	copy_libs /usr/bin/buildah
	# The rest of what buildah reads at run time, as Debian's packages install
	# it (golang-github-containers-common and -image): signature policy,
	# registries, short-name aliases, and the default seccomp profile and
	# containers.conf. storage.conf is not shipped by Debian: ours below.
	for f in /etc/containers/policy.json /etc/containers/registries.conf.d/shortnames.conf \
		/usr/share/containers/containers.conf /usr/share/containers/seccomp.json; do
		[ -f "$f" ] || die "$f is missing (Debian package golang-github-containers-common)"
		copy_file "$f" "$f"
	done
	cat >"$out/etc/containers/registries.conf" <<-'EOF'
	# Slipway builder: images named without a registry ("FROM debian") are
	# looked up in the short-name aliases (registries.conf.d), then Docker Hub.
	unqualified-search-registries = ["docker.io"]
	short-name-mode = "permissive"
	EOF
	cat >"$out/etc/containers/storage.conf" <<-'EOF'
	# Slipway builder: the builder passes --root, --runroot and --storage-driver
	# itself; these are the defaults for buildah run by hand in the image.
	# vfs works on every kernel and inside any container (overlay on overlay
	# does not).
	[storage]
	driver = "vfs"
	runroot = "/run/containers/storage"
	graphroot = "/var/lib/containers/storage"
	EOF
	mkdir -p "$out/var/lib/containers/storage" "$out/run/containers/storage"
fi

mkdir -p "$out/etc/ssl/certs"
copy_file /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
# OpenSSL's own defaults (OPENSSLDIR /usr/lib/ssl: cert.pem and certs/),
# which Python's ssl module uses, lead to the same bundle, as Debian's
# openssl package links them
mkdir -p "$out/usr/lib/ssl"
ln -s /etc/ssl/certs/ca-certificates.crt "$out/usr/lib/ssl/cert.pem"
ln -s /etc/ssl/certs "$out/usr/lib/ssl/certs"

cat >"$out/etc/passwd" <<-'EOF'
root:x:0:0:root:/root:/usr/sbin/nologin
slipway:x:65532:65532:slipway:/home/slipway:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
EOF
cat >"$out/etc/group" <<-'EOF'
root:x:0:
slipway:x:65532:
nogroup:x:65534:
EOF
# glibc's files and dns backends are inside libc.so.6 since 2.34: no
# libnss_*.so to copy. Kubernetes provides /etc/hosts and /etc/resolv.conf.
cat >"$out/etc/nsswitch.conf" <<-'EOF'
passwd: files
group: files
hosts: files dns
EOF
