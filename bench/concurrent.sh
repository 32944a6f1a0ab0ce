#!/usr/bin/env bash
# bench/concurrent.sh: many pushes at once, gitd against OpenSSH sshd +
# git-receive-pack in one run, both on loopback with the same git and ssh
# client and the same repositories. Each push is a one-commit push of its
# own branch on top of a history the repository has; gitd runs without a
# cluster (--authorized-keys), so a push is stored and nothing deploys.
#
#   single      one push at a time, median of ROUNDS, to each server
#   concurrent  PUSHES pushes started together, spread over REPOS
#               repositories: each push's own time, p50 and p99 (nearest
#               rank), the slowest, the whole burst, failed pushes
#
# and, per server, p99 / single (the slow-down under load), then OpenSSH /
# gitd for each figure (above 1: gitd is faster). It also prints the CPU
# time one push of the burst cost the server (the listener and every
# process it reaped) and the client (git push and ssh): the clients run on
# the same cores, so the burst cannot end sooner than PUSHES x (server +
# client CPU) / cores, whatever the server does.
#
# Both servers get limits that let the burst in: sshd "MaxStartups 200"
# (bench/lib.sh), gitd "--max-connections 200 --max-startups 200
# --per-source-max-startups 0". Their defaults guard against floods of
# unauthenticated connections (sshd 10:30:100, gitd 30:30:100 and 20 per
# source) and refuse part of a burst of 100 from one address, by design.
#
# usage: bench/concurrent.sh [--pushes N] [--repos N] [--rounds N] [--keep]
# env:   SLIPWAY_BUILD (default build/)
# Needs /usr/sbin/sshd (Debian's openssh-server; `make deps` installs it).
# Not a test: nothing here passes or fails on speed. Exit status 1 when a
# push to gitd failed.
set -euo pipefail

gitd_pid=
pushes=100
repos=20
rounds=5
keep=
while [ $# -gt 0 ]; do
	case $1 in
	--pushes) pushes=$2; shift 2 ;;
	--repos) repos=$2; shift 2 ;;
	--rounds) rounds=$2; shift 2 ;;
	--keep) keep=1; shift ;;
	-h | --help) sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "bench/concurrent.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
	esac
done
for v in "$pushes" "$repos" "$rounds"; do
	case $v in '' | *[!0-9]* | 0) echo "bench/concurrent.sh: counts are positive integers" >&2; exit 2 ;; esac
done

root=$(cd "$(dirname "$0")/.." && pwd)
build=${SLIPWAY_BUILD:-$root/build}
[ -x "$build/bin/gitd" ] || { echo "bench/concurrent.sh: build first (make)" >&2; exit 1; }
[ -x /usr/sbin/sshd ] || { echo "bench/concurrent.sh: /usr/sbin/sshd missing (make deps)" >&2; exit 1; }
work=$(mktemp -d /tmp/slipway-bench-concurrent.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	[ -n "$keep" ] && echo "kept $work" || rm -rf "$work"
}
trap cleanup EXIT
cd "$work"
. "$root/bench/lib.sh"

ssh-keygen -q -t ed25519 -N '' -f client
user=$(id -un)
sshd_start "$work" client.pub
pids+=("$sshd_pid")

gitd_port=$(free_port)
{
	printf 'bench/r1'
	for i in $(seq 2 "$repos"); do printf ',bench/r%d' "$i"; done
	printf ' %s\n' "$(cat client.pub)"
} >gitd_keys
"$build/bin/gitd" --listen "127.0.0.1:$gitd_port" --metrics-listen none \
	--data-dir "$work/gitd-repos" --host-key-dir "$work/gitd-hostkeys" \
	--authorized-keys "$work/gitd_keys" \
	--max-connections 200 --max-startups 200 --per-source-max-startups 0 2>gitd.log &
gitd_pid=$!
pids+=($!)
for _ in $(seq 1 100); do
	grep -q '"event":"listening"' gitd.log 2>/dev/null && break
	sleep 0.1
done
grep -q '"event":"listening"' gitd.log || { cat gitd.log >&2; exit 1; }

export GIT_SSH_COMMAND="ssh -i $work/client -o IdentitiesOnly=yes -o IdentityAgent=none \
-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR"
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@example.com \
	GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@example.com

# url SERVER NAME: the push URL of repository NAME on SERVER.
url() {
	if [ "$1" = gitd ]; then
		printf 'ssh://git@127.0.0.1:%s/bench/%s.git' "$gitd_port" "$2"
	else
		printf 'ssh://%s@127.0.0.1:%s%s/openssh/%s.git' "$user" "$sshd_port" "$work" "$2"
	fi
}

# a small history every repository gets first, so that each push below is
# one commit on top of what the server has
git init -q -b main src
for i in 1 2 3; do
	echo "$i" >src/n && git -C src add n && git -C src commit -q -m "$i"
done
mkdir openssh
log "$repos repositories on each server"
for r in $(seq 1 "$repos"); do
	git init -q --bare -b main "openssh/r$r.git"
	for server in openssh gitd; do git -C src push -q "$(url $server "r$r")" main; done
done
for j in $(seq 1 "$pushes"); do
	cp -R src "c$j"
	echo "$j" >"c$j/mine" && git -C "c$j" add mine && git -C "c$j" commit -q -m "c$j"
done

# push_timed DIR URL REF OUT: pushes DIR's main to REF of URL, appends its
# milliseconds to OUT, or "fail" to OUT.fail.
push_timed() {
	local t0=$EPOCHREALTIME t1
	if git -C "$1" push -q "$2" "main:$3" >/dev/null 2>>"$4.err"; then
		t1=$EPOCHREALTIME
		echo $(((${t1/./} - ${t0/./}) / 1000)) >>"$4"
	else
		echo fail >>"$4.fail"
	fi
}

# cpu_ms PID: CPU time of PID and of the children it has reaped, in ms
# (proc(5): utime, stime, cutime, cstime in clock ticks).
ticks=$(getconf CLK_TCK)
cpu_ms() { awk -v t="$ticks" '{print int(($14 + $15 + $16 + $17) * 1000 / t)}' "/proc/$1/stat"; }

# pct P FILE: the P-th percentile (nearest rank) of the numbers in FILE.
pct() { sort -n "$2" | awk -v p="$1" '{a[NR]=$1} END {i=int((p*NR+99)/100); if (i<1) i=1; print a[i]}'; }

declare -A single p50 p99 slowest burst failed scpu ccpu
for server in openssh gitd; do
	log "$server: $rounds single pushes"
	: >"single-$server"
	for k in $(seq 1 "$rounds"); do
		push_timed "c$k" "$(url $server r1)" "single-$k" "single-$server"
	done
	single[$server]=$(median <"single-$server")

	log "$server: $pushes pushes at once to $repos repositories"
	: >"burst-$server"
	if [ "$server" = gitd ]; then spid=$gitd_pid; else spid=$sshd_pid; fi
	s0=$(cpu_ms "$spid") c0=$(cpu_ms $$)
	t0=$EPOCHREALTIME
	bpids=()
	for j in $(seq 1 "$pushes"); do
		push_timed "c$j" "$(url $server "r$(((j - 1) % repos + 1))")" "c$j" "burst-$server" &
		bpids+=($!)
	done
	wait "${bpids[@]}"
	t1=$EPOCHREALTIME
	burst[$server]=$(((${t1/./} - ${t0/./}) / 1000))
	scpu[$server]=$((($(cpu_ms "$spid") - s0) / pushes))
	ccpu[$server]=$((($(cpu_ms $$) - c0) / pushes))
	failed[$server]=$( [ -f "burst-$server.fail" ] && wc -l <"burst-$server.fail" || echo 0)
	p50[$server]=$(pct 50 "burst-$server")
	p99[$server]=$(pct 99 "burst-$server")
	slowest[$server]=$(pct 100 "burst-$server")
	# every pushed branch is on the server
	if [ "$server" = gitd ]; then
		for j in $(seq 1 "$pushes"); do
			[ -f "burst-$server.fail" ] && grep -qx fail "burst-$server.fail" && break
			git ls-remote "$(url gitd "r$(((j - 1) % repos + 1))")" "refs/heads/c$j" | grep -q . ||
				{ echo "bench/concurrent.sh: refs/heads/c$j missing on gitd" >&2; failed[gitd]=$((failed[gitd] + 1)); }
		done
	fi
done

row() { printf '  %-34s %12s %12s %9s\n' "$@"; }
printf '\n%s pushes at once to %s repositories (%s cores), ms\n' "$pushes" "$repos" "$(nproc)"
row "" "OpenSSH+git" "gitd" "ratio"
row "single push (median of $rounds)" "${single[openssh]}" "${single[gitd]}" "$(ratio "${single[openssh]}" "${single[gitd]}")x"
row "concurrent: p50" "${p50[openssh]}" "${p50[gitd]}" "$(ratio "${p50[openssh]}" "${p50[gitd]}")x"
row "concurrent: p99" "${p99[openssh]}" "${p99[gitd]}" "$(ratio "${p99[openssh]}" "${p99[gitd]}")x"
row "concurrent: slowest" "${slowest[openssh]}" "${slowest[gitd]}" "$(ratio "${slowest[openssh]}" "${slowest[gitd]}")x"
row "concurrent: whole burst" "${burst[openssh]}" "${burst[gitd]}" "$(ratio "${burst[openssh]}" "${burst[gitd]}")x"
row "failed pushes" "${failed[openssh]}" "${failed[gitd]}" ""
row "CPU per push: server" "${scpu[openssh]}" "${scpu[gitd]}" "$(ratio "${scpu[openssh]}" "${scpu[gitd]}")x"
row "CPU per push: client" "${ccpu[openssh]}" "${ccpu[gitd]}" ""
row "burst's floor: pushes x CPU / cores" "$((pushes * (scpu[openssh] + ccpu[openssh]) / $(nproc)))" \
	"$((pushes * (scpu[gitd] + ccpu[gitd]) / $(nproc)))" ""
row "p99 / single push" "$(ratio "${p99[openssh]}" "${single[openssh]}")x" "$(ratio "${p99[gitd]}" "${single[gitd]}")x" ""
printf 'ratio = OpenSSH+git / gitd: above 1 means gitd is faster\n'
if [ "${failed[gitd]}" != 0 ]; then
	echo "bench/concurrent.sh: gitd refused or failed pushes; the first errors:" >&2
	head -n 5 burst-gitd.err >&2 || true
	exit 1
fi
