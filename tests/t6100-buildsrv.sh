#!/usr/bin/env bash
test_description='buildsrv: the real builder fetches an archived commit from gitd'"'"'s endpoint, builds it with real buildah into the real registry and reports back'
. "$(dirname "$0")/test-lib.sh"
test_require_env
command -v buildah >/dev/null || test_skip_all "no buildah (tests/env/deps.sh installs it)"
[ -x /bin/busybox ] || test_skip_all "no /bin/busybox (Debian busybox-static)"
[ "$(id -u)" = 0 ] || test_skip_all "buildah with chroot isolation needs root here"

run=$(date +%s)-$$
accept='Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json'

# manifest_digest REPO TAG: the registry's Docker-Content-Digest, or nothing.
manifest_digest() {
	curl -s -o /dev/null -D - -H "$accept" "http://$REGISTRY/v2/$1/manifests/$2" |
		tr -d '\r' | awk 'tolower($1) == "docker-content-digest:" { print $2 }'
}

# pushed_digest FILE: the digest in builder's final "-----> Pushed" line.
pushed_digest() {
	tail -n 1 "$1" | sed -n 's/^-----> Pushed .*@\(sha256:[0-9a-f]\{64\}\)$/\1/p'
}

# serve_start NAME OPTION...: buildsrv-serve for one build in NAME/; sets
# $src and $rep. serve_wait NAME: it ended; NAME/log and NAME/result filled.
serve_start() {
	local name=$1
	shift
	mkdir -p "$name" &&
	{ buildsrv-serve --timeout 120 "$@" "$name" >"$name/out" 2>"$name/err" & echo $! >"$name/pid"; } &&
	test_wait_for 20 grep -q -e "^ready$" -e "^fetches " "$name/out" &&
	src=$(sed -n "s/^source-url //p" "$name/out") &&
	rep=$(sed -n "s/^report-url //p" "$name/out") &&
	test -n "$src"
}

serve_wait() {
	test_wait_for 60 grep -q "^fetches " "$1/out" &&
	sed -n "s/^log //p" "$1/out" >"$1/log" &&
	sed -n "s/^result //p" "$1/out" >"$1/result"
}

export TMPDIR="$TRASH_DIRECTORY/tmp"
mkdir -p "$TMPDIR"

test_expect_success 'set up a git repository with a Dockerfile, an executable and a symbolic link' '
	git init -q -b main repo &&
	cp /bin/busybox repo/ &&
	mkdir -p repo/app/deep &&
	printf "#!/bin/busybox sh\necho run-sh-says-hi\n" >repo/app/run.sh &&
	chmod 755 repo/app/run.sh &&
	ln -s run.sh repo/app/link &&
	echo nested >repo/app/deep/file.txt &&
	cat >repo/Dockerfile <<-EOF_ &&
	FROM scratch
	COPY busybox /bin/busybox
	COPY app /app
	RUN ["/bin/busybox", "sh", "-c", "/app/run.sh && echo link-to-\$(/bin/busybox readlink /app/link) && /bin/busybox cat /app/deep/file.txt"]
	EOF_
	git -C repo add . &&
	GIT_COMMITTER_DATE="1700000000 +0000" GIT_AUTHOR_DATE="1700000000 +0000" \
		git -C repo -c user.name=T -c user.email=t@example.com commit -q -m app &&
	commit=$(git -C repo rev-parse HEAD) &&
	echo "$commit" >commit
'

test_expect_success 'the archive of the commit has git'"'"'s modes and link, the commit time and owner root' '
	commit=$(cat commit) &&
	serve_start a1 --archive repo "$commit" &&
	kill "$(cat a1/pid)" &&
	tar --numeric-owner --full-time -tvzf a1/source.tar.gz >listing &&
	test_grep "^-rwxr-xr-x 0/0 +[0-9]+ 2023-11-14 22:13:20 app/run.sh$" listing &&
	test_grep "^lrwxrwxrwx 0/0 +0 2023-11-14 22:13:20 app/link -> run.sh$" listing &&
	test_grep "^-rw-r--r-- 0/0 +7 2023-11-14 22:13:20 app/deep/file.txt$" listing &&
	test_grep "^drwxr-xr-x 0/0 +0 2023-11-14 22:13:20 app/deep/$" listing &&
	test "$(wc -l <listing)" = 7 &&
	test "$(stat -c %a a1/source.tar.gz)" = 600
'

test_expect_success 'two archives of one commit are byte-identical' '
	sleep 1 &&
	serve_start a2 --archive repo "$(cat commit)" &&
	kill "$(cat a2/pid)" &&
	cmp a1/source.tar.gz a2/source.tar.gz
'

test_expect_success 'a missing commit is not archived, with a message naming it' '
	mkdir -p a3 &&
	test_expect_code 1 buildsrv-serve --archive repo deadbeefdeadbeefdeadbeefdeadbeefdeadbeef a3 >out 2>err &&
	test_grep "^buildsrv-serve: archive of commit deadbeefdeadbeefdeadbeefdeadbeefdeadbeef: " err &&
	test ! -e a3/source.tar.gz
'

test_expect_success 'builder fetches the archive from the endpoint, builds, pushes and reports back' '
	commit=$(cat commit) &&
	serve_start b1 --archive repo "$commit" --linger 30 &&
	builder build --image "$REGISTRY/t6100/app:$commit" --source-url "$src" \
		--source-token-file b1/token --report-url "$rep" --report-token-file b1/token \
		--insecure-registry >out 2>err &&
	test_grep "^-----> Fetching $src$" out &&
	test_grep "^run-sh-says-hi$" out &&
	test_grep "^link-to-run.sh$" out &&
	test_grep "^nested$" out &&
	d=$(pushed_digest out) &&
	test -n "$d" &&
	test "$(manifest_digest t6100/app "$commit")" = "$d" &&
	test_wait_for 20 grep -q "^result " b1/out &&
	sed -n "s/^log //p" b1/out >b1-log &&
	test_cmp out b1-log &&
	python3 - "$REGISTRY/t6100/app:$commit" "$d" b1/out <<-EOF_ &&
	import json, sys
	line = [l for l in open(sys.argv[3]) if l.startswith("result ")][0]
	r = json.loads(line[len("result "):])
	assert r == {"image": sys.argv[1], "digest": sys.argv[2], "succeeded": True,
	             "reason": "Pushed", "message": "", "exitCode": 0}, r
	EOF_
	! grep -q -f b1/token out err b1/out b1/err
'

test_expect_success 'after the result the token is dead: the source is 410 Gone' '
	test_expect_code 3 builder build --image "$REGISTRY/t6100/app:again-$run" --source-url "$src" \
		--source-token-file b1/token --insecure-registry >out 2>err &&
	test "$(cat err)" = "builder: source URL $src: HTTP status 410" &&
	test_grep "\"status\":410,\"reason\":\"the result was already received\"" b1/err &&
	kill "$(cat b1/pid)" &&
	serve_wait b1 &&
	test_grep "^fetches 1$" b1/out
'

test_expect_success 'a failed build'"'"'s log and reason reach the endpoint' '
	git -C repo rm -q --cached busybox &&
	rm repo/busybox &&
	GIT_COMMITTER_DATE="1700000100 +0000" \
		git -C repo -c user.name=T -c user.email=t@example.com commit -q -m "no busybox" &&
	commit=$(git -C repo rev-parse HEAD) &&
	serve_start b2 --archive repo "$commit" &&
	test_expect_code 4 builder build --image "$REGISTRY/t6100/app:$commit" --source-url "$src" \
		--source-token-file b2/token --report-url "$rep" --report-token-file b2/token \
		--insecure-registry >out 2>err &&
	serve_wait b2 &&
	test_grep "^builder: build of $REGISTRY/t6100/app:$commit failed" b2/log &&
	python3 - b2/result <<-EOF_
	import json, sys
	r = json.load(open(sys.argv[1]))
	assert r["succeeded"] is False and r["digest"] is None, r
	assert r["reason"] == "BuildFailed" and r["exitCode"] == 4, r
	assert "busybox" in r["message"], r
	EOF_
'

test_done
