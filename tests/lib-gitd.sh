# lib-gitd.sh: start gitd for an end-to-end test and talk to it with the real
# OpenSSH client. Source after test-lib.sh.
#
#   gitd_start [GITD OPTIONS...]   starts gitd on a free loopback port with
#                                  host keys in ./hostkeys, repositories in
#                                  ./repos, keys from ./authorized_keys; sets
#                                  GITD_PORT and GITD_URL (ssh://git@127.0.0.1:PORT)
#                                  and GITD_METRICS (http://127.0.0.1:PORT);
#                                  GITD_NEXT_PORT and GITD_NEXT_METRICS_PORT,
#                                  when set, choose the ports instead
#   gitd_start_cluster [OPTIONS]   the same, serving the test cluster's Remotes
#   make_key NAME                  an ed25519 key pair ./NAME and ./NAME.pub
#   use_key NAME                   git and ssh_git use key NAME from now on
#   ssh_git ARGS...                the ssh client as git runs it, with that key
#   new_app DIR                    a working copy of the sample app in DIR/app
#                                  (examples/app plus Debian's busybox), committed
#   remote_with_keys NAME KEYFILE... applies a remotes.slipway.dev NAME in $ns
#                                  whose spec.authorizedKeys are the key files'
#                                  lines (no deployments: main runs hooks only)
# gitd is stopped (SIGTERM) when the script exits.

gitd_pid=
gitd_stop() {
	[ -n "$gitd_pid" ] || return 0
	kill -TERM "$gitd_pid" 2>/dev/null
	wait "$gitd_pid" 2>/dev/null
	gitd_pid=
}
trap gitd_stop EXIT

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

make_key() {
	rm -f "$1" "$1.pub" &&
		ssh-keygen -q -t ed25519 -N '' -C "$1@test" -f "$1"
}

# The client side: known_hosts holds gitd's own host keys, so a changed host
# key fails the test (StrictHostKeyChecking=yes).
use_key() {
	GIT_SSH_COMMAND="ssh -i $TRASH_DIRECTORY/$1 -o IdentitiesOnly=yes -o IdentityAgent=none \
-o StrictHostKeyChecking=yes -o UserKnownHostsFile=$TRASH_DIRECTORY/known_hosts \
-o BatchMode=yes -o LogLevel=ERROR"
	export GIT_SSH_COMMAND
}

ssh_git() {
	$GIT_SSH_COMMAND -p "$GITD_PORT" "$@"
}

gitd_start() {
	touch authorized_keys
	gitd_launch --authorized-keys "$TRASH_DIRECTORY/authorized_keys" "$@"
}

# gitd_start_cluster [GITD OPTIONS...]: gitd serving the Remotes of the test
# cluster ($KUBECONFIG), ready once the watcher has listed them.
gitd_start_cluster() {
	gitd_launch --kubeconfig "$KUBECONFIG" "$@" &&
		test_wait_for 30 grep -q '"event":"remotes_loaded".*"synced":true' gitd.log
}

gitd_launch() {
	# each gitd gets a fresh gitd.log, so waits see its own lines only
	[ ! -f gitd.log ] || cat gitd.log >>gitd.log.old
	: >gitd.log
	GITD_PORT=${GITD_NEXT_PORT:-$(free_port)}
	GITD_URL="ssh://git@127.0.0.1:$GITD_PORT"
	local mport
	mport=${GITD_NEXT_METRICS_PORT:-$(free_port)}
	GITD_METRICS="http://127.0.0.1:$mport"
	gitd --listen "127.0.0.1:$GITD_PORT" --metrics-listen "127.0.0.1:$mport" \
		--data-dir "$TRASH_DIRECTORY/repos" \
		--host-key-dir "$TRASH_DIRECTORY/hostkeys" "$@" 2>>gitd.log &
	gitd_pid=$!
	test_wait_for 30 grep -q '"event":"listening"' gitd.log || return 1
	{
		for k in hostkeys/ssh_host_ed25519_key hostkeys/ssh_host_rsa_key; do
			printf '[127.0.0.1]:%s %s\n' "$GITD_PORT" "$(ssh-keygen -y -f "$k")"
		done
	} >known_hosts
	export GITD_PORT GITD_URL GITD_METRICS
}

# git with a fixed identity, so commits are reproducible enough for tests.
test_commit() {
	local dir=$1 file=$2 content=${3:-$2}
	printf '%s\n' "$content" >"$dir/$file" &&
		git -C "$dir" add "$file" &&
		git -C "$dir" -c user.name=Tester -c user.email=tester@example.com \
			commit -q -m "$file: $content"
}

# new_app DIR: a new git working copy DIR holding the sample app in app/
# (examples/app plus Debian's static busybox, which its image runs), one commit.
new_app() {
	rm -rf "$1" && git init -q -b main "$1" && mkdir "$1/app" &&
		cp -R "$SLIPWAY_ROOT/examples/app/." "$1/app/" && cp /bin/busybox "$1/app/" &&
		git -C "$1" add . &&
		git -C "$1" -c user.name=Tester -c user.email=tester@example.com commit -q -m "sample app"
}

# remote_with_keys NAME KEYFILE...: applies a remotes.slipway.dev object NAME in $ns
# listing the keys.
remote_with_keys() {
	local name=$1 keys="" k
	shift
	for k in "$@"; do keys="$keys\"$(cat "$k")\","; done
	kubectl -n "$ns" apply -f - <<-EOF_
	{"apiVersion":"slipway.dev/v1alpha1","kind":"Remote","metadata":{"name":"$name"},
	 "spec":{"authorizedKeys":[${keys%,}]}}
	EOF_
}
