#!/usr/bin/env bash
# bench/push.sh: gitd against OpenSSH sshd + git-receive-pack/git-upload-pack
# on this machine, in one run: both on loopback, the same git and ssh client,
# the same repositories. Prints each time and the ratio OpenSSH/gitd (above
# 1 means gitd is faster), and gitd's peak RSS.
#
#   (a) connect plus a one-commit push, repeated ROUNDS times (median)
#   (b) push of a generated history of OBJECTS objects into an empty repository
#   (c) clone of that history
#   (d) 50 concurrent pushes (own branches) to 10 repositories: time, failures
#
# usage: bench/push.sh [--objects N] [--rounds N] [--keep]
# env:   SLIPWAY_BUILD (default build/)
# Needs /usr/sbin/sshd (Debian's openssh-server; `make deps` installs it).
# Not a test: nothing here passes or fails on speed. Exit status 1 only when
# a step fails outright (e.g. a push is refused).
set -euo pipefail

objects=100000
rounds=15
keep=
while [ $# -gt 0 ]; do
	case $1 in
	--objects) objects=$2; shift 2 ;;
	--rounds) rounds=$2; shift 2 ;;
	--keep) keep=1; shift ;;
	-h | --help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "bench/push.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
	esac
done

root=$(cd "$(dirname "$0")/.." && pwd)
build=${SLIPWAY_BUILD:-$root/build}
[ -x "$build/bin/gitd" ] || { echo "bench/push.sh: build first (make)" >&2; exit 1; }
[ -x /usr/sbin/sshd ] || { echo "bench/push.sh: /usr/sbin/sshd missing (make deps)" >&2; exit 1; }
work=$(mktemp -d /tmp/slipway-bench.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	[ -n "$keep" ] && echo "kept $work" || rm -rf "$work"
}
trap cleanup EXIT
cd "$work"

. "$root/bench/lib.sh"

# --- the two servers --------------------------------------------------------

ssh-keygen -q -t ed25519 -N '' -f client
user=$(id -un)
sshd_start "$work" client.pub
pids+=("$sshd_pid")

# gitd: the same key, every bench repository. Run under a wait4() wrapper that
# reports the peak RSS of gitd and any connection process it reaped.
gitd_port=$(free_port)
{
	printf 'bench/base'
	for i in $(seq 1 10); do printf ',bench/r%d' "$i"; done
	printf ',bench/big %s\n' "$(cat client.pub)"
} >gitd_keys
python3 - "$build/bin/gitd" --listen "127.0.0.1:$gitd_port" --metrics-listen none \
	--data-dir "$work/gitd-repos" --host-key-dir "$work/gitd-hostkeys" \
	--authorized-keys "$work/gitd_keys" >gitd.rss 2>gitd.log <<'EOF' &
import os, signal, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
signal.signal(signal.SIGTERM, lambda s, f: os.kill(pid, signal.SIGTERM))
while True:
    try:
        _, status, ru = os.wait4(pid, 0)
        break
    except InterruptedError:
        continue
print(ru.ru_maxrss)  # KiB, the largest of gitd and its reaped children
EOF
pids+=($!)

for _ in $(seq 1 100); do
	grep -q '"event":"listening"' gitd.log 2>/dev/null && [ -f sshd.pid ] && break
	sleep 0.1
done
grep -q '"event":"listening"' gitd.log || { cat gitd.log >&2; exit 1; }
[ -f sshd.pid ] || { cat sshd.log >&2; exit 1; }

export GIT_SSH_COMMAND="ssh -i $work/client -o IdentitiesOnly=yes -o IdentityAgent=none \
-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR"
git config --global --get user.name >/dev/null 2>&1 || export GIT_AUTHOR_NAME=bench \
	GIT_AUTHOR_EMAIL=bench@example.com GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@example.com

mkdir -p openssh
# url SERVER NAME: the push URL of repository NAME on SERVER.
url() {
	if [ "$1" = gitd ]; then
		printf 'ssh://git@127.0.0.1:%s/bench/%s.git' "$gitd_port" "$2"
	else
		[ -d "openssh/$2.git" ] || git init -q --bare -b main "openssh/$2.git"
		printf 'ssh://%s@127.0.0.1:%s%s/openssh/%s.git' "$user" "$sshd_port" "$work" "$2"
	fi
}

# --- (a) connect plus a one-commit push -----------------------------------

git init -q -b main src
echo 0 >src/n && git -C src add n && git -C src commit -q -m 0
for server in openssh gitd; do
	git -C src push -q "$(url $server base)" main # warm-up and first push
done
declare -A a_ms
for server in openssh gitd; do
	: >"a_$server"
done
log "(a) $rounds rounds of connect + one-commit push, alternating servers"
for i in $(seq 1 "$rounds"); do
	echo "$i" >src/n && git -C src commit -q -am "$i"
	for server in openssh gitd; do
		t0=$(now_ms)
		git -C src push -q "$(url $server base)" main
		echo $(($(now_ms) - t0)) >>"a_$server"
	done
done
for server in openssh gitd; do a_ms[$server]=$(median <"a_$server"); done

# --- (b) push of a large history -------------------------------------------

log "(b) generating a history of about $objects objects"
git init -q -b main big
# each commit changes one file two directories deep: 1 commit, 1 blob and 3
# trees, so OBJECTS/5 commits give about OBJECTS objects
commits=$((objects / 5 + 1))
python3 - "$commits" <<'EOF' | git -C big fast-import --quiet
import sys
n = int(sys.argv[1])
out = sys.stdout
for i in range(1, n + 1):
    data = "line %d\n" % i * 3
    msg = "commit %d\n" % i
    out.write("commit refs/heads/main\n")
    out.write("committer Bench <bench@example.com> %d +0000\n" % (1700000000 + i))
    out.write("data %d\n%s" % (len(msg), msg))
    out.write("M 100644 inline d%02d/e%02d/f%03d\n" % (i % 37, i % 23, i % 101))
    out.write("data %d\n%s\n" % (len(data), data))
EOF
count=$(git -C big count-objects -v | awk '/^count:|^in-pack:/ {n += $2} END {print n}')
log "(b) $count objects in $commits commits; pushing to each server"
declare -A b_ms c_ms
for server in openssh gitd; do
	t0=$(now_ms)
	git -C big push -q "$(url $server big)" main
	b_ms[$server]=$(($(now_ms) - t0))
done

# --- (c) clone of it --------------------------------------------------------

log "(c) cloning it from each server"
for server in openssh gitd; do
	rm -rf "clone-$server"
	t0=$(now_ms)
	git clone -q --bare "$(url $server big)" "clone-$server"
	c_ms[$server]=$(($(now_ms) - t0))
	test "$(git -C "clone-$server" rev-parse main)" = "$(git -C big rev-parse main)"
done

# --- (d) 50 concurrent pushes to 10 repositories ----------------------------

log "(d) 50 concurrent pushes (5 branches in each of 10 repositories)"
for j in $(seq 1 50); do
	git clone -q --no-local src "d$j" 2>/dev/null || cp -r src "d$j"
	echo "$j" >"d$j/mine" && git -C "d$j" add mine && git -C "d$j" commit -q -m "d$j"
done
declare -A d_ms d_fail
for server in openssh gitd; do
	for r in $(seq 1 10); do url "$server" "r$r" >/dev/null; done
	t0=$(now_ms)
	dpids=()
	for j in $(seq 1 50); do
		r=$(((j - 1) % 10 + 1))
		{ git -C "d$j" push -q "$(url $server "r$r")" "main:b$j" >/dev/null 2>&1 || echo "$j" >>"d_fail_$server"; } &
		dpids+=($!)
	done
	wait "${dpids[@]}"
	d_ms[$server]=$(($(now_ms) - t0))
	d_fail[$server]=$( [ -f "d_fail_$server" ] && wc -l <"d_fail_$server" || echo 0)
done

# --- report -----------------------------------------------------------------

kill -TERM "${pids[1]}" && wait "${pids[1]}" 2>/dev/null || true
rss_kib=$(cat gitd.rss 2>/dev/null || echo 0)
printf '\n%-44s %12s %12s %10s\n' "bench/push.sh ($(nproc) cores)" "OpenSSH+git" "gitd" "ratio"
printf '%-44s %10s ms %10s ms %9sx\n' "(a) connect + one-commit push (median of $rounds)" \
	"${a_ms[openssh]}" "${a_ms[gitd]}" "$(ratio "${a_ms[openssh]}" "${a_ms[gitd]}")"
printf '%-44s %10s ms %10s ms %9sx\n' "(b) push of $count objects" \
	"${b_ms[openssh]}" "${b_ms[gitd]}" "$(ratio "${b_ms[openssh]}" "${b_ms[gitd]}")"
printf '%-44s %10s ms %10s ms %9sx\n' "(c) clone of $count objects" \
	"${c_ms[openssh]}" "${c_ms[gitd]}" "$(ratio "${c_ms[openssh]}" "${c_ms[gitd]}")"
printf '%-44s %10s ms %10s ms %9sx\n' "(d) 50 concurrent pushes, 10 repositories" \
	"${d_ms[openssh]}" "${d_ms[gitd]}" "$(ratio "${d_ms[openssh]}" "${d_ms[gitd]}")"
printf '%-44s %13s %13s\n' "(d) failed pushes" "${d_fail[openssh]}" "${d_fail[gitd]}"
printf '%-44s %26s\n' "gitd peak RSS (any process)" "$((rss_kib / 1024)) MiB"
printf 'ratio = OpenSSH+git time / gitd time: above 1 means gitd is faster\n'
[ "${d_fail[gitd]}" = 0 ] || exit 1
