#!/usr/bin/env bash
# bench/push.sh: gitd against OpenSSH sshd + git-receive-pack/git-upload-pack
# on this machine, in one run: both on loopback, the same git and ssh client,
# the same repositories. Prints each time and the ratio OpenSSH/gitd (above
# 1 means gitd is faster), and gitd's memory.
#
#   (a) connect plus a one-commit push, repeated ROUNDS times (median)
#   (b) push of a generated history of OBJECTS objects into an empty repository
#   (c) clone of that history
#   (d) 50 concurrent pushes (own branches) to 10 repositories: time, failures
#   on a real history (REAL, a bare clone; see bench/README.md), if present:
#   (e) push of its tags and master~300 into an empty repository
#   (f) clone of that
#   (f2) clone of it again (gitd serves both by pack reuse: receive-pack
#       recorded that the pushed pack is the closure of the refs)
#   (g) push of its branches on top (master's last 300 commits and the rest)
#   (h) incremental fetch of (g) into the clone of (f)
#   (i) one-commit push on top of it, ROUNDS times (median)
#   (j) ls-remote of it, ROUNDS times (median)
#   and the client's floor under (i) and (j): an SSH login that runs nothing
#   and ls-remote of an empty repository, ROUNDS times (median)
#   --small-only runs (i) and (j) alone, on repositories seeded from REAL by a
#   local copy (hard links) instead of pushes (e)-(h), so the small cases can
#   be repeated without minutes of big pushes
#   memory: private RSS of an idle authenticated gitd connection, and the
#   peak RSS of gitd's connection process in each of (b), (c), (e), (f), (f2)
#
# usage: bench/push.sh [--objects N] [--rounds N] [--real REAL] [--real-only] [--small-only] [--keep]
# env:   SLIPWAY_BUILD (default build/); SLIPWAY_BENCH_REAL_REPO (REAL, default
#        $SLIPWAY_CACHE/bench/git.git, SLIPWAY_CACHE defaulting to ~/.cache/slipway)
# Needs /usr/sbin/sshd (Debian's openssh-server; `make deps` installs it).
# Not a test: nothing here passes or fails on speed. Exit status 1 only when
# a step fails outright (e.g. a push is refused).
set -euo pipefail

objects=100000
rounds=15
keep=
real=${SLIPWAY_BENCH_REAL_REPO:-${SLIPWAY_CACHE:-$HOME/.cache/slipway}/bench/git.git}
real_only=
small_only=
while [ $# -gt 0 ]; do
	case $1 in
	--objects) objects=$2; shift 2 ;;
	--rounds) rounds=$2; shift 2 ;;
	--real) real=$2; shift 2 ;;
	--real-only) real_only=1; shift ;;
	--small-only) real_only=1; small_only=1; shift ;;
	--keep) keep=1; shift ;;
	-h | --help) sed -n '2,33p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
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
	printf ',bench/big,bench/real,bench/empty %s\n' "$(cat client.pub)"
} >gitd_keys
python3 - "$build/bin/gitd" --listen "127.0.0.1:$gitd_port" --metrics-listen none \
	--data-dir "$work/gitd-repos" --host-key-dir "$work/gitd-hostkeys" \
	--authorized-keys "$work/gitd_keys" --max-ref-updates 100000 --log-level debug \
	>gitd.rss 2>gitd.log <<'EOF' &
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
wrapper_pid=$!

for _ in $(seq 1 100); do
	grep -q '"event":"listening"' gitd.log 2>/dev/null && [ -f sshd.pid ] && break
	sleep 0.1
done
grep -q '"event":"listening"' gitd.log || { cat gitd.log >&2; exit 1; }
[ -f sshd.pid ] || { cat sshd.log >&2; exit 1; }

ssh_opts=(-i "$work/client" -o IdentitiesOnly=yes -o IdentityAgent=none
	-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR)
export GIT_SSH_COMMAND="ssh ${ssh_opts[*]}"
git config --global --get user.name >/dev/null 2>&1 || export GIT_AUTHOR_NAME=bench \
	GIT_AUTHOR_EMAIL=bench@example.com GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@example.com


# conn_peak FROM: the largest peak RSS (KiB) of the gitd connection processes
# reaped after line FROM of gitd.log (its debug event connection_exited),
# waiting up to 5 s for gitd to reap one.
conn_peak() {
	local v
	for _ in $(seq 1 50); do
		v=$(tail -n +"$(($1 + 1))" gitd.log | jq -r 'select(.event == "connection_exited") | .max_rss_kib' 2>/dev/null | sort -n | tail -1)
		[ -n "$v" ] && { echo "$v"; return; }
		sleep 0.1
	done
	echo 0
}

# private_kib PID...: "DIRTY CLEAN", the private memory (KiB) of the
# processes PID and their descendants from /proc/PID/smaps_rollup:
# Private_Dirty (+ Private_Hugetlb), the memory the connection costs, and
# Private_Clean, file pages only it maps (e.g. a pack index), which the
# kernel can drop.
private_kib() {
	local dirty=0 clean=0 p kids d c
	for p in "$@"; do
		read -r d c < <(awk '/^Private_(Dirty|Hugetlb):/ {d += $2} /^Private_Clean:/ {c += $2}
			END {print d + 0, c + 0}' "/proc/$p/smaps_rollup")
		dirty=$((dirty + d)) && clean=$((clean + c))
		kids=$(pgrep -P "$p" || true)
		if [ -n "$kids" ]; then
			read -r d c < <(private_kib $kids)
			dirty=$((dirty + d)) && clean=$((clean + c))
		fi
	done
	echo "$dirty $clean"
}

# idle_conn_kib WHAT: opens one authenticated gitd connection and leaves it
# idle: WHAT "none" authenticates and sends no request (ssh -N), anything
# else runs git-upload-pack of bench/WHAT and waits after its ref
# advertisement. Prints private_kib of that connection's processes.
idle_conn_kib() {
	local gitd_pid before after new kib ssh_pid n0
	gitd_pid=$(pgrep -P "$wrapper_pid")
	before=$(pgrep -P "$gitd_pid" | sort)
	n0=$(grep -c '"event":"auth"' gitd.log || true)
	rm -f idle.in idle.out && mkfifo idle.in
	sleep 3600 >idle.in &
	local holder=$!
	if [ "$1" = none ]; then
		ssh "${ssh_opts[@]}" -p "$gitd_port" -N git@127.0.0.1 <idle.in >idle.out 2>&1 &
		ssh_pid=$!
		for _ in $(seq 1 100); do
			[ "$(grep -c '"event":"auth"' gitd.log || true)" -gt "$n0" ] && break
			sleep 0.1
		done
	else
		ssh "${ssh_opts[@]}" -p "$gitd_port" git@127.0.0.1 "git-upload-pack 'bench/$1.git'" \
			<idle.in >idle.out 2>&1 &
		ssh_pid=$!
		for _ in $(seq 1 100); do
			[ "$(tail -c 4 idle.out 2>/dev/null)" = 0000 ] && break
			sleep 0.1
		done
	fi
	after=$(pgrep -P "$gitd_pid" | sort)
	new=$(comm -13 <(echo "$before") <(echo "$after"))
	kib=$( [ -n "$new" ] && private_kib $new || echo 0 0)
	kill "$ssh_pid" "$holder" 2>/dev/null || true
	wait "$ssh_pid" "$holder" 2>/dev/null || true
	rm -f idle.in idle.out
	echo "$kib"
}

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

if [ -z "$real_only" ]; then
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
		from=$(wc -l <gitd.log)
		t0=$(now_ms)
		git -C big push -q "$(url $server big)" main
		b_ms[$server]=$(($(now_ms) - t0))
	done
	b_rss=$(conn_peak "$from")

	# --- (c) clone of it --------------------------------------------------------

	log "(c) cloning it from each server"
	for server in openssh gitd; do
		rm -rf "clone-$server"
		from=$(wc -l <gitd.log)
		t0=$(now_ms)
		git clone -q --bare "$(url $server big)" "clone-$server"
		c_ms[$server]=$(($(now_ms) - t0))
		test "$(git -C "clone-$server" rev-parse main)" = "$(git -C big rev-parse main)"
	done
	c_rss=$(conn_peak "$from")

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
fi

# --- (e)-(j) a real history ------------------------------------------------

declare -A e_ms f_ms f2_ms g_ms h_ms i_ms j_ms k_ms l_ms
if [ -d "$real/objects" ]; then
	real=$(cd "$real" && pwd)
	real_objects=$(git -C "$real" count-objects -v | awk '/^count:|^in-pack:/ {n += $2} END {print n}')
	real_mib=$(git -C "$real" count-objects -v | awk '/^size-pack:/ {printf "%d", $2 / 1024}')
	real_refs=$(git -C "$real" for-each-ref | wc -l)
	largest_kib=$(git -C "$real" cat-file --batch-all-objects --batch-check='%(objectsize)' |
		sort -n | tail -1 | awk '{printf "%d", $1 / 1024}')
	# (e) holds the tags and master~300; (g) brings the branches on top
	base=$(git -C "$real" rev-parse master~300)
fi
if [ -d "$real/objects" ] && [ -n "$small_only" ]; then
	log "(i)-(j) seeding both servers' repositories from $real ($real_objects objects, $real_refs refs)"
	# seed_repo DIR: REAL's packs (hard links, else copies) and refs, as
	# loose refs like a push leaves them (gitd packs them on the next push)
	seed_repo() {
		local p
		for p in "$real"/objects/pack/pack-*.pack "$real"/objects/pack/pack-*.idx; do
			ln "$p" "$1/objects/pack/" 2>/dev/null || cp "$p" "$1/objects/pack/"
		done
		git -C "$real" for-each-ref --format='create %(refname) %(objectname)' |
			git -C "$1" update-ref --stdin
		git -C "$1" symbolic-ref HEAD refs/heads/master
	}
	git ls-remote "$(url gitd real)" >/dev/null # gitd creates its repository
	seed_repo "$work/gitd-repos/bench/real.git"
	url openssh real >/dev/null
	seed_repo "$work/openssh/real.git"
	git clone -q --bare --shared "$real" real-openssh
elif [ -d "$real/objects" ]; then
	log "(e) $real: $real_objects objects, $real_mib MiB packed, $real_refs refs; pushing its tags and master~300"
	for server in openssh gitd; do
		from=$(wc -l <gitd.log)
		t0=$(now_ms)
		git -C "$real" push -q "$(url $server real)" "$base:refs/heads/master" 'refs/tags/*:refs/tags/*'
		e_ms[$server]=$(($(now_ms) - t0))
	done
	e_rss=$(conn_peak "$from")
	e_objects=$(git -C "$real" rev-list --objects --count "$base" --tags)

	log "(f) cloning it from each server"
	for server in openssh gitd; do
		rm -rf "real-$server"
		from=$(wc -l <gitd.log)
		t0=$(now_ms)
		git clone -q --bare "$(url $server real)" "real-$server"
		f_ms[$server]=$(($(now_ms) - t0))
		test "$(git -C "real-$server" rev-parse master)" = "$base"
	done
	f_rss=$(conn_peak "$from")

	log "(f2) cloning it again from each server"
	for server in openssh gitd; do
		rm -rf "real2-$server"
		from=$(wc -l <gitd.log)
		t0=$(now_ms)
		git clone -q --bare "$(url $server real)" "real2-$server"
		f2_ms[$server]=$(($(now_ms) - t0))
		test "$(git -C "real2-$server" rev-parse master)" = "$base"
		rm -rf "real2-$server"
	done
	f2_rss=$(conn_peak "$from")

	g_objects=$(git -C "$real" rev-list --objects --count --branches --not "$base" --tags)
	log "(g) pushing its $(git -C "$real" for-each-ref refs/heads | wc -l) branches on top ($g_objects objects)"
	for server in openssh gitd; do
		t0=$(now_ms)
		git -C "$real" push -q -f "$(url $server real)" 'refs/heads/*:refs/heads/*'
		g_ms[$server]=$(($(now_ms) - t0))
	done

	log "(h) fetching them into the clones of (f)"
	for server in openssh gitd; do
		t0=$(now_ms)
		git -C "real-$server" fetch -q --update-head-ok "$(url $server real)" '+refs/heads/*:refs/heads/*'
		h_ms[$server]=$(($(now_ms) - t0))
		test "$(git -C "real-$server" rev-parse master)" = "$(git -C "$real" rev-parse master)"
	done
fi
if [ -d "$real/objects" ]; then

	log "(i) $rounds rounds of one-commit push on top of it, alternating servers"
	client=real-openssh
	prev=$(git -C "$client" rev-parse master)
	: >i_openssh && : >i_gitd
	for i in $(seq 0 "$rounds"); do
		blob=$(echo "$i" | git -C "$client" hash-object -w --stdin)
		tree=$({ git -C "$client" ls-tree "$prev^{tree}" | grep -v '	bench-small$' || true
			printf '100644 blob %s\tbench-small\n' "$blob"; } | git -C "$client" mktree)
		prev=$(git -C "$client" commit-tree -p "$prev" -m "small $i" "$tree")
		for server in openssh gitd; do
			t0=$(now_ms)
			git -C "$client" push -q "$(url $server real)" "$prev:refs/heads/small"
			# round 0 creates the branch: a warm-up, not counted
			[ "$i" = 0 ] || echo $(($(now_ms) - t0)) >>"i_$server"
		done
	done
	for server in openssh gitd; do i_ms[$server]=$(median <"i_$server"); done

	log "(j) $rounds rounds of ls-remote, alternating servers"
	: >j_openssh && : >j_gitd
	for i in $(seq 1 "$rounds"); do
		for server in openssh gitd; do
			t0=$(now_ms)
			git ls-remote "$(url $server real)" >/dev/null
			echo $(($(now_ms) - t0)) >>"j_$server"
		done
	done
	for server in openssh gitd; do j_ms[$server]=$(median <"j_$server"); done

	# the floor under (i) and (j) that the client sets whatever the server
	# does: an SSH login that runs nothing (gitd refuses the command, sshd
	# runs true), and ls-remote of an empty repository
	log "(i)-(j) floor: $rounds rounds of an SSH login and of ls-remote of an empty repository"
	: >k_openssh && : >k_gitd && : >l_openssh && : >l_gitd
	for i in $(seq 1 "$rounds"); do
		for server in openssh gitd; do
			if [ "$server" = gitd ]; then login=(-p "$gitd_port" git@127.0.0.1); else
				login=(-p "$sshd_port" "$user@127.0.0.1"); fi
			t0=$(now_ms)
			ssh "${ssh_opts[@]}" "${login[@]}" true >/dev/null 2>&1 || true
			echo $(($(now_ms) - t0)) >>"k_$server"
			t0=$(now_ms)
			git ls-remote "$(url $server empty)" >/dev/null
			echo $(($(now_ms) - t0)) >>"l_$server"
		done
	done
	for server in openssh gitd; do
		k_ms[$server]=$(median <"k_$server") && l_ms[$server]=$(median <"l_$server")
	done
	idle_real_kib=$(idle_conn_kib real)
else
	real_skipped="real history: skipped, no bare repository at $real (get it once: see bench/README.md, or set SLIPWAY_BENCH_REAL_REPO / --real)"
	log "$real_skipped"
fi
idle_kib=$(idle_conn_kib none)

# --- report -----------------------------------------------------------------

kill -TERM "$wrapper_pid" && wait "$wrapper_pid" 2>/dev/null || true
rss_kib=$(cat gitd.rss 2>/dev/null || echo 0)
# row LABEL OPENSSH_MS GITD_MS: one line of the table
row() { printf '%-52s %10s ms %10s ms %9sx\n' "$1" "$2" "$3" "$(ratio "$2" "$3")"; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }
printf '\n%-52s %12s %12s %10s\n' "bench/push.sh ($(nproc) cores)" "OpenSSH+git" "gitd" "ratio"
if [ -z "$real_only" ]; then
	row "(a) connect + one-commit push (median of $rounds)" "${a_ms[openssh]}" "${a_ms[gitd]}"
	row "(b) push of $count objects" "${b_ms[openssh]}" "${b_ms[gitd]}"
	row "(c) clone of $count objects" "${c_ms[openssh]}" "${c_ms[gitd]}"
	row "(d) 50 concurrent pushes, 10 repositories" "${d_ms[openssh]}" "${d_ms[gitd]}"
	printf '%-52s %13s %13s\n' "(d) failed pushes" "${d_fail[openssh]}" "${d_fail[gitd]}"
fi
if [ -n "${i_ms[gitd]:-}" ]; then
	printf 'real history %s: %s objects, %s MiB packed, %s refs\n' "$(basename "$real")" \
		"$real_objects" "$real_mib" "$real_refs"
fi
if [ -n "${e_ms[gitd]:-}" ]; then
	row "(e) push of tags + master~300 ($e_objects objects)" "${e_ms[openssh]}" "${e_ms[gitd]}"
	row "(f) clone of that" "${f_ms[openssh]}" "${f_ms[gitd]}"
	row "(f2) clone of it again (gitd: pack reuse)" "${f2_ms[openssh]}" "${f2_ms[gitd]}"
	row "(g) push of the branches on top ($g_objects objects)" "${g_ms[openssh]}" "${g_ms[gitd]}"
	row "(h) incremental fetch of (g)" "${h_ms[openssh]}" "${h_ms[gitd]}"
fi
if [ -n "${i_ms[gitd]:-}" ]; then
	row "(i) one-commit push on top (median of $rounds)" "${i_ms[openssh]}" "${i_ms[gitd]}"
	row "(j) ls-remote, $real_refs refs (median of $rounds)" "${j_ms[openssh]}" "${j_ms[gitd]}"
	row "    floor: SSH login running nothing" "${k_ms[openssh]}" "${k_ms[gitd]}"
	row "    floor: ls-remote of an empty repository" "${l_ms[openssh]}" "${l_ms[gitd]}"
else
	printf '%s\n' "$real_skipped"
fi
printf 'gitd memory\n'
# private LABEL "DIRTY CLEAN": one line of private memory
private() {
	printf '  %-50s %s dirty, %s clean (file pages)\n' "$1" "$(mib "${2% *}")" "$(mib "${2#* }")"
}
private "idle authenticated connection, private" "$idle_kib"
[ -n "${idle_real_kib:-}" ] && private "idle after advertising the real history, private" "$idle_real_kib"
[ -z "$real_only" ] && printf '  %-50s %s\n' "peak RSS of the connection in (b) push" "$(mib "$b_rss")" &&
	printf '  %-50s %s\n' "peak RSS of the connection in (c) clone" "$(mib "$c_rss")"
if [ -n "${e_ms[gitd]:-}" ]; then
	printf '  %-50s %s\n' "peak RSS of the connection in (e) push" "$(mib "$e_rss")"
	printf '  %-50s %s\n' "peak RSS of the connection in (f) clone" "$(mib "$f_rss")"
	printf '  %-50s %s\n' "peak RSS of the connection in (f2) clone again" "$(mib "$f2_rss")"
	printf '  %-50s %s\n' "largest object of the real history" "$(mib "$largest_kib")"
fi
printf '  %-50s %s\n' "peak RSS, any gitd process (wait4)" "$(mib "$rss_kib")"
printf 'ratio = OpenSSH+git time / gitd time: above 1 means gitd is faster\n'
[ -n "$real_only" ] || [ "${d_fail[gitd]}" = 0 ] || exit 1
