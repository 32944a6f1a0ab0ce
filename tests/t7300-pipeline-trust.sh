#!/usr/bin/env bash
test_description='the pipeline worker takes nothing on the connection process'"'"'s word:
a key removed from the Remote after it authenticated is refused at the
pre-receive point, and requests forged on the pipeline socket (another
Remote'"'"'s repository, a quarantine outside the repository, a key the Remote
does not list) are refused with nothing run'
. "$(dirname "$0")/test-lib.sh"
test_require_env
. "$SLIPWAY_ROOT/tests/lib-gitd.sh"

ns=trust-e2e
zero=0000000000000000000000000000000000000000

# fpr KEYFILE: its SHA256 fingerprint, as gitd writes it.
fpr() {
	ssh-keygen -l -E sha256 -f "$1" | cut -d" " -f2
}

# auths KEYFILE: how many times gitd logged that key authenticated.
auths() {
	grep -F "\"event\":\"auth\"" gitd.log | grep -cF "$(fpr "$1")" || :
}

# authed_since KEYFILE N: gitd logged that key authenticated more than N times.
authed_since() {
	test "$(auths "$1")" -gt "$2"
}

# slow_push ARGS...: git push ARGS from src in the background, through an ssh
# that authenticates at once but passes nothing of the push on until the
# file go exists (60 s at most, so that it never outlives the test);
# push.out gets the output, push.rc the exit status.
slow_push() {
	printf "#!/bin/sh\n(i=0; while [ ! -e \"%s/go\" ] && [ \$i -lt 600 ]; do sleep 0.1; i=\$((i+1)); done; exec cat) | exec %s \"\$@\"\n" \
		"$TRASH_DIRECTORY" "$GIT_SSH_COMMAND" >slow-ssh && chmod +x slow-ssh &&
	rm -f push.rc &&
	{ GIT_SSH_VARIANT=ssh GIT_SSH_COMMAND="$TRASH_DIRECTORY/slow-ssh" git -C src push "$@" >push.out 2>&1; echo $? >push.rc; } &
}

# runs REMOTE: how many PipelineRuns REMOTE has.
runs() {
	kubectl -n $ns get pipelineruns -l slipway.dev/remote=$1 -o name | wc -l
}

# forge REQUEST-JSON: sends one line to the pipeline socket as a connection
# process would, answers an "updated" list of nothing after a verdict, and
# prints what the worker sent back, one JSON line each, until it hangs up.
forge() {
	python3 - "$data/.pipeline.sock" "$1" <<-\EOF_
	import json, socket, sys
	s = socket.socket(socket.AF_UNIX)
	s.settimeout(60)
	s.connect(sys.argv[1])
	s.sendall(sys.argv[2].encode() + b"\n")
	buf = b""
	while True:
	    try:
	        data = s.recv(65536)
	    except ConnectionResetError:
	        data = b""  # it hung up on the "updated" line of a refused push
	    if not data:
	        break
	    buf += data
	    while b"\n" in buf:
	        line, buf = buf.split(b"\n", 1)
	        print(line.decode())
	        if "verdict" in json.loads(line):
	            try:
	                s.sendall(b'{"updated":[]}\n')
	            except BrokenPipeError:
	                pass  # a refused push: the worker has hung up
	EOF_
}

# request NAME REPO QUARANTINE FINGERPRINT REF AFTER: the first line of the
# protocol (gitd/pipesrv.h); QUARANTINE "null" or a quoted path.
request() {
	printf '{"remote":{"namespace":"%s","name":"%s","gitkube":false},"repo":"%s","quarantine":%s,"pusher":{"fingerprint":"%s","comment":"forged"},"options":[],"commands":[{"ref":"%s","before":"%s","after":"%s"}]}' \
		$ns "$1" "$2" "$3" "$4" "$5" $zero "$6"
}

test_expect_success 'set up a namespace, keys, Remotes web (alice) and db (bob), a pre-receive hook that leaves a mark' '
	kubectl delete namespace $ns --ignore-not-found --wait --timeout=90s &&
	kubectl create namespace $ns &&
	make_key alice && make_key bob &&
	remote_with_keys web alice.pub && remote_with_keys db bob.pub &&
	mkdir -p hooks/pre-receive &&
	printf "#!/bin/sh\necho ran >>\"%s/hook-ran\"\n" "$TRASH_DIRECTORY" >hooks/pre-receive/10-mark &&
	chmod +x hooks/pre-receive/10-mark &&
	gitd_start_cluster --hooks-dir "$TRASH_DIRECTORY/hooks" &&
	test_wait_for 10 test -d repos/$ns/web.git &&
	test_wait_for 10 test -d repos/$ns/db.git &&
	data=$(cd repos && pwd -P) &&
	use_key alice &&
	git init -q -b main src && test_commit src a.txt &&
	git -C src push -q "$GITD_URL/$ns/web.git" HEAD:refs/heads/feature &&
	sha=$(git -C src rev-parse HEAD) &&
	test "$(git -C repos/$ns/web.git rev-parse feature)" = "$sha"
'

test_expect_success 'a request as the connection sends it gets a verdict (the harness can be accepted)' '
	sha=$(git -C src rev-parse HEAD) &&
	forge "$(request web "$data/$ns/web.git" null "$(fpr alice.pub)" refs/heads/other $sha)" >out &&
	test_grep "^\{\"verdict\":\[\{\"ref\":\"refs/heads/other\",\"error\":null\}\]\}$" out &&
	test_grep "\"done\":true" out
'

test_expect_success 'a key removed from the Remote between authentication and the pipeline is refused by the worker' '
	test_when_finished "remote_with_keys web alice.pub; touch go" &&
	rm -f go hook-ran &&
	test_commit src b.txt && sha=$(git -C src rev-parse HEAD) &&
	before=$(git -C repos/$ns/web.git rev-parse --verify -q main || echo none) &&
	naut=$(auths alice.pub) &&
	slow_push "$GITD_URL/$ns/web.git" main &&
	test_wait_for 30 authed_since alice.pub "$naut" &&
	remote_with_keys web bob.pub &&
	touch go &&
	test_wait_for 60 test -s push.rc &&
	test "$(cat push.rc)" != 0 &&
	grep -F "[remote rejected] main -> main (slipway: key $(fpr alice.pub) is not authorized for Remote $ns/web)" push.out &&
	test "$(git -C repos/$ns/web.git rev-parse --verify -q main || echo none)" = "$before" &&
	test "$(runs web)" = 0 &&
	test ! -e hook-ran &&
	test_grep "\"event\":\"push_refused\".*not authorized" gitd.log
'

test_expect_success 'the same push goes through once the key is listed again' '
	rm -f hook-ran &&
	use_key alice &&
	test_wait_for 10 git ls-remote "$GITD_URL/$ns/web.git" >/dev/null 2>&1 &&
	git -C src push "$GITD_URL/$ns/web.git" main >push.out 2>&1 &&
	test "$(git -C repos/$ns/web.git rev-parse main)" = "$(git -C src rev-parse HEAD)" &&
	test "$(runs web)" = 1 &&
	test -e hook-ran
'

test_expect_success 'a forged request with a key the Remote does not list is refused, nothing run' '
	rm -f hook-ran &&
	sha=$(git -C src rev-parse HEAD) &&
	forge "$(request db "$data/$ns/db.git" null "$(fpr alice.pub)" refs/heads/main $sha)" >out &&
	grep -F "\"error\":\"slipway: key $(fpr alice.pub) is not authorized for Remote $ns/db\"" out &&
	forge "$(request db "$data/$ns/db.git" null SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA refs/heads/main $sha)" >out &&
	test_grep "\"error\":\"slipway: key SHA256:A+ is not authorized for Remote $ns/db\"" out &&
	test "$(runs db)" = 0 &&
	test ! -e hook-ran
'

test_expect_success 'a forged request naming another Remote'"'"'s repository is refused without a verdict, nothing run' '
	rm -f hook-ran &&
	sha=$(git -C src rev-parse HEAD) &&
	forge "$(request db "$data/$ns/web.git" null "$(fpr bob.pub)" refs/heads/main $sha)" >out &&
	test_must_fail grep -q verdict out &&
	test_grep "\"event\":\"pipeline_request_refused\".*repos/$ns/web.git.*is not the one of $ns/db" gitd.log &&
	test "$(runs db)" = 0 &&
	test ! -e hook-ran
'

test_expect_success 'a forged quarantine outside the repository, or linked out of it, is refused, nothing run' '
	rm -f hook-ran && mkdir -p elsewhere &&
	sha=$(git -C src rev-parse HEAD) &&
	forge "$(request db "$data/$ns/db.git" "\"$TRASH_DIRECTORY/elsewhere\"" "$(fpr bob.pub)" refs/heads/main $sha)" >out &&
	test_must_fail grep -q verdict out &&
	test_grep "\"event\":\"pipeline_request_refused\".*elsewhere.*is not in the repository of $ns/db" gitd.log &&
	ln -s "$data/$ns/web.git/objects" repos/$ns/db.git/objects/incoming-Link01 &&
	test_when_finished "rm -f repos/$ns/db.git/objects/incoming-Link01" &&
	forge "$(request db "$data/$ns/db.git" "\"$data/$ns/db.git/objects/incoming-Link01\"" "$(fpr bob.pub)" refs/heads/main $sha)" >out &&
	test_grep "\"error\":\"slipway: quarantine of $ns/db is not in its repository\"" out &&
	test "$(runs db)" = 0 &&
	test ! -e hook-ran
'

test_done
