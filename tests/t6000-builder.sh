#!/usr/bin/env bash
test_description='builder: real buildah builds busybox images and pushes them to the real registry'
. "$(dirname "$0")/test-lib.sh"
test_require_env
command -v buildah >/dev/null || test_skip_all "no buildah (tests/env/deps.sh installs it)"
[ -x /bin/busybox ] || test_skip_all "no /bin/busybox (Debian busybox-static)"
[ "$(id -u)" = 0 ] || test_skip_all "buildah with chroot isolation needs root here"

# Every image of this run gets its own tag, so "nothing was pushed" is about
# this run even when the registry lives on.
run=$(date +%s)-$$
repo=t6000/busybox
accept='Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json'

# manifest_digest REPO TAG: the registry's Docker-Content-Digest, or nothing.
manifest_digest() {
	curl -s -o /dev/null -D - -H "$accept" "http://$REGISTRY/v2/$1/manifests/$2" |
		tr -d '\r' | awk 'tolower($1) == "docker-content-digest:" { print $2 }'
}

# has_manifest REPO TAG: the registry has that tag.
has_manifest() {
	test "$(curl -s -o /dev/null -w '%{http_code}' -H "$accept" "http://$REGISTRY/v2/$1/manifests/$2")" = 200
}

# image_label REPO TAG LABEL: a label from the image config blob in the registry.
image_label() {
	local config
	config=$(curl -sf -H "$accept" "http://$REGISTRY/v2/$1/manifests/$2" |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["config"]["digest"])') &&
		curl -sf "http://$REGISTRY/v2/$1/blobs/$config" |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["config"]["Labels"][sys.argv[1]])' "$3"
}

# pushed_digest FILE: the digest in builder's final "-----> Pushed" line.
pushed_digest() {
	tail -n 1 "$1" | sed -n 's/^-----> Pushed .*@\(sha256:[0-9a-f]\{64\}\)$/\1/p'
}

# no_work_dirs: every builder work directory in $TMPDIR was removed.
no_work_dirs() {
	test -z "$(find "$TMPDIR" -maxdepth 1 -name 'slipway-builder-*')"
}

# make_tar NAME ENTRY...: a tar file with hostile entries, made with Python's
# tarfile, which writes what it is told. ENTRY is file:NAME, link:NAME:TARGET
# or dev:NAME.
make_tar() {
	python3 - "$@" <<-'EOF_'
	import io, sys, tarfile
	with tarfile.open(sys.argv[1], "w") as t:
	    t.addfile(tarfile.TarInfo("Dockerfile"), io.BytesIO(b""))
	    for spec in sys.argv[2:]:
	        kind, name, *rest = spec.split(":")
	        ti = tarfile.TarInfo(name)
	        if kind == "link":
	            ti.type, ti.linkname = tarfile.SYMTYPE, rest[0]
	        elif kind == "dev":
	            ti.type = tarfile.CHRTYPE
	        data = b"pwned\n" if kind == "file" else b""
	        ti.size = len(data)
	        t.addfile(ti, io.BytesIO(data))
	EOF_
}

# gitd's builder endpoint, the real one (gitd/buildsrv.c), one build per
# start through tests/tools/buildsrv-serve; see also t6100.
# serve_start NAME [OPTION...]: serves source.tar.gz for one build in NAME/
# and sets $src (source URL) and $rep (report URL); the token is NAME/token.
serve_start() {
	local name=$1
	shift
	mkdir -p "$name" &&
	{ buildsrv-serve --timeout 120 "$@" "$name" source.tar.gz >"$name/out" 2>"$name/err" & echo $! >"$name/pid"; } &&
	test_wait_for 10 grep -q "^ready$" "$name/out" &&
	src=$(sed -n "s/^source-url //p" "$name/out") &&
	rep=$(sed -n "s/^report-url //p" "$name/out")
}

# serve_wait NAME: the endpoint got the result and ended; NAME/log holds the
# log lines it received, NAME/result the result as JSON.
serve_wait() {
	test_wait_for 60 grep -q "^fetches " "$1/out" &&
	sed -n "s/^log //p" "$1/out" >"$1/log" &&
	sed -n "s/^result //p" "$1/out" >"$1/result" &&
	test -s "$1/result"
}

# serve_stop NAME: ends an endpoint that will get no result.
serve_stop() {
	kill "$(cat "$1/pid")" 2>/dev/null
	test_wait_for 10 grep -q "^fetches " "$1/out"
}

export TMPDIR="$TRASH_DIRECTORY/tmp"
mkdir -p "$TMPDIR"

test_expect_success 'builder --help documents the commands and exit codes' '
	builder --help >out &&
	test_grep "^usage: builder build --image REF" out &&
	test_grep "^       builder image-name" out &&
	test_grep "^  4  the build failed; nothing was pushed$" out &&
	test_grep "^  6  --timeout passed" out
'

test_expect_success 'builder without a command, or build without --image, is a usage error (exit 2)' '
	test_expect_code 2 builder 2>err &&
	test_grep "Try .builder --help." err &&
	test_expect_code 2 builder build --context . 2>err &&
	test_grep "build needs --image" err &&
	test_expect_code 2 builder build --image "$REGISTRY/x:1" --context . --build-arg NOEQUALS 2>err &&
	test_grep "not NAME=VALUE" err
'

test_expect_success 'image-name prints gitkube'"'"'s REGISTRY/NAMESPACE-REMOTE-DEPLOYMENT-CONTAINER:COMMIT' '
	builder image-name --registry "$REGISTRY/team/" --namespace default --remote app \
		--deployment web --container nginx --commit 0123456789abcdef0123456789abcdef01234567 >out &&
	echo "$REGISTRY/team/default-app-web-nginx:0123456789abcdef0123456789abcdef01234567" >expect &&
	test_cmp expect out &&
	test_expect_code 2 builder image-name --registry "$REGISTRY" --namespace Default --remote app \
		--deployment web --container nginx --commit 0123456789abcdef0123456789abcdef01234567 2>err &&
	test_grep "invalid namespace name \"Default\"" err
'

test_expect_success 'set up a busybox build context' '
	mkdir -p ctx &&
	cp /bin/busybox ctx/ &&
	cat >ctx/Dockerfile <<-EOF_
	FROM scratch
	COPY busybox /bin/busybox
	ARG VERSION
	LABEL version=\$VERSION
	CMD ["/bin/busybox","httpd","-f"]
	EOF_
'

test_expect_success 'a build from a directory is pushed, and the digest printed is the registry'"'"'s' '
	start=$(date +%s%N) &&
	builder build --image "$REGISTRY/$repo:dir-$run" --context ctx --build-arg VERSION=1.2.3 \
		--insecure-registry --digest-file digest >out 2>err &&
	say "build and push of the busybox image took $((($(date +%s%N) - start) / 1000000)) ms" &&
	test_grep "^-----> Building $REGISTRY/$repo:dir-$run$" out &&
	test_grep "^STEP 2/5: COPY busybox /bin/busybox$" out &&
	test_grep "^-----> Pushing $REGISTRY/$repo:dir-$run$" out &&
	d=$(pushed_digest out) &&
	test -n "$d" &&
	test "$(manifest_digest $repo dir-$run)" = "$d" &&
	echo "$d" >expect &&
	test_cmp expect digest &&
	test ! -s err &&
	no_work_dirs
'

test_expect_success 'a build argument arrives in the image config in the registry' '
	test "$(image_label $repo dir-$run version)" = 1.2.3
'

test_expect_success 'a gzip tarball source is unpacked and built the same way' '
	tar -C ctx -czf source.tar.gz Dockerfile busybox &&
	builder build --image "$REGISTRY/$repo:tar-$run" --source-tar source.tar.gz \
		--build-arg VERSION=tar --insecure-registry >out &&
	test_grep "^-----> Unpacking source.tar.gz$" out &&
	test "$(manifest_digest $repo tar-$run)" = "$(pushed_digest out)" &&
	test "$(image_label $repo tar-$run version)" = tar &&
	no_work_dirs
'

test_expect_success 'a Dockerfile error fails the build (exit 4) and nothing is pushed' '
	mkdir -p bad &&
	printf "FROM scratch\nFROBNICATE now\n" >bad/Dockerfile &&
	test_expect_code 4 builder build --image "$REGISTRY/$repo:bad-$run" --context bad \
		--insecure-registry --digest-file digest >out 2>err &&
	test_grep "^builder: build of $REGISTRY/$repo:bad-$run failed \(buildah exit status [0-9]+\): Error: .*FROBNICATE" err &&
	test "$(wc -l <err)" = 1 &&
	! grep -q "^-----> Pushing" out &&
	! has_manifest $repo bad-$run &&
	test ! -s digest &&
	no_work_dirs
'

test_expect_success 'a tarball with a "../" entry is refused (exit 3) and writes nothing outside' '
	mkdir -p escape &&
	make_tar dotdot.tar "file:../../../escape/pwned" &&
	test_expect_code 3 builder build --image "$REGISTRY/$repo:dotdot-$run" --source-tar dotdot.tar \
		--insecure-registry >out 2>err &&
	test_grep "^builder: source archive dotdot.tar: entry \"../../../escape/pwned\" leads outside the archive" err &&
	test -z "$(ls -A escape)" &&
	! grep -q "^-----> Building" out &&
	! has_manifest $repo dotdot-$run &&
	no_work_dirs
'

test_expect_success 'a tarball with an absolute entry is refused (exit 3) and writes nothing there' '
	make_tar abs.tar "file:$TRASH_DIRECTORY/abs-pwned" &&
	test_expect_code 3 builder build --image "$REGISTRY/$repo:abs-$run" --source-tar abs.tar \
		--insecure-registry 2>err &&
	test_grep "has an absolute name: refused" err &&
	test ! -e "$TRASH_DIRECTORY/abs-pwned"
'

test_expect_success 'a tarball that writes through a symbolic link is refused (exit 3)' '
	mkdir -p outside &&
	make_tar symlink.tar "link:escape:$TRASH_DIRECTORY/outside" "file:escape/pwned" &&
	test_expect_code 3 builder build --image "$REGISTRY/$repo:link-$run" --source-tar symlink.tar \
		--insecure-registry 2>err &&
	test_grep "entry \"escape/pwned\": .*symlink" err &&
	test -z "$(ls outside)"
'

test_expect_success 'a tarball with a device node is refused (exit 3)' '
	make_tar dev.tar "dev:null" &&
	test_expect_code 3 builder build --image "$REGISTRY/$repo:dev-$run" --source-tar dev.tar \
		--insecure-registry 2>err &&
	test_grep "entry \"null\" is not a file, directory or link: refused" err
'

test_expect_success 'a Dockerfile path outside the context is refused (exit 3), through ".." or a link' '
	mkdir -p outer/ctx &&
	cp ctx/Dockerfile outer/Dockerfile &&
	test_expect_code 3 builder build --image "$REGISTRY/$repo:out-$run" --context outer/ctx \
		--dockerfile ../Dockerfile --insecure-registry 2>err &&
	test_grep "^builder: dockerfile \"../Dockerfile\" is outside the build context: refused$" err &&
	ln -s ../Dockerfile outer/ctx/Dockerfile &&
	test_expect_code 3 builder build --image "$REGISTRY/$repo:out-$run" --context outer/ctx \
		--insecure-registry 2>err &&
	test_grep "^builder: dockerfile \"Dockerfile\" is outside the build context: refused$" err &&
	test_expect_code 3 builder build --image "$REGISTRY/$repo:out-$run" --context ctx \
		--dockerfile nope/Dockerfile --insecure-registry 2>err &&
	test_grep "^builder: Dockerfile not found at \"nope/Dockerfile\" in the build context$" err &&
	! has_manifest $repo out-$run
'

test_expect_success 'the registry auth file is used, kept out of the context and never printed' '
	secret="slipway-t6000-$run:Sup3rS3cret" &&
	b64=$(printf %s "$secret" | base64 -w0) &&
	printf "{\"auths\":{\"%s\":{\"auth\":\"%s\"}}}\n" "$REGISTRY" "$b64" >auth.json &&
	chmod 600 auth.json &&
	builder build --image "$REGISTRY/$repo:auth-$run" --context ctx --registry-auth auth.json \
		--insecure-registry >out 2>err &&
	test "$(manifest_digest $repo auth-$run)" = "$(pushed_digest out)" &&
	! grep -q -e Sup3rS3cret -e "$b64" out err &&
	cp auth.json ctx/auth.json &&
	test_when_finished "rm -f ctx/auth.json" &&
	test_expect_code 2 builder build --image "$REGISTRY/$repo:auth2-$run" --context ctx \
		--registry-auth ctx/auth.json --insecure-registry 2>err &&
	test_grep "is inside the build context .*refused" err &&
	echo "{\"auths\": Sup3rS3cret" >broken.json &&
	test_expect_code 2 builder build --image "$REGISTRY/$repo:auth2-$run" --context ctx \
		--registry-auth broken.json --insecure-registry 2>err &&
	test_grep "is not valid JSON \(line 1\)$" err &&
	! grep -q Sup3rS3cret err &&
	no_work_dirs
'

test_expect_success 'without --insecure-registry a plain-HTTP registry is refused (exit 5)' '
	test_expect_code 5 builder build --image "$REGISTRY/$repo:tls-$run" --context ctx >out 2>err &&
	test_grep "^builder: push of $REGISTRY/$repo:tls-$run failed \(buildah exit status [0-9]+\): Error: .*HTTPS" err &&
	! has_manifest $repo tls-$run
'

test_expect_success 'a source URL of gitd'"'"'s endpoint is fetched with its bearer token, never printed' '
	serve_start s1 &&
	builder build --image "$REGISTRY/$repo:url-$run" --source-url "$src" \
		--source-token-file s1/token --report-url "$rep" --report-token-file s1/token \
		--insecure-registry >out 2>err &&
	test_grep "^-----> Fetching http://127.0.0.1:[0-9]+/builds/[0-9a-f]{16}/source.tar.gz$" out &&
	test "$(manifest_digest $repo url-$run)" = "$(pushed_digest out)" &&
	serve_wait s1 &&
	test_grep "^fetches 1$" s1/out &&
	! grep -q -f s1/token out err s1/err
'

test_expect_success 'a wrong source token is refused by the endpoint (401): exit 3' '
	serve_start s2 &&
	echo wrong >wrong-token &&
	test_expect_code 3 builder build --image "$REGISTRY/$repo:url2-$run" --source-url "$src" \
		--source-token-file wrong-token --insecure-registry >out 2>err &&
	test "$(cat err)" = "builder: source URL $src: HTTP status 401" &&
	serve_stop s2 &&
	test_grep "^fetches 0$" s2/out &&
	test_grep "\"event\":\"buildsrv_refused\".*\"status\":401,\"reason\":\"wrong token\"" s2/err &&
	! grep -q wrong s2/out &&
	no_work_dirs
'

test_expect_success '--report-url posts the log and the result with the bearer token' '
	serve_start s3 &&
	builder build --image "$REGISTRY/$repo:report-$run" --context ctx --insecure-registry \
		--report-url "$rep/" --report-token-file s3/token >out 2>err &&
	d=$(pushed_digest out) &&
	serve_wait s3 &&
	test_cmp out s3/log &&
	python3 - "$REGISTRY/$repo:report-$run" "$d" s3/result <<-EOF_ &&
	import json, sys
	r = json.load(open(sys.argv[3]))
	assert r == {"image": sys.argv[1], "digest": sys.argv[2], "succeeded": True,
	             "reason": "Pushed", "message": "", "exitCode": 0}, r
	EOF_
	! grep -q buildsrv_refused s3/err &&
	! grep -q -f s3/token out err s3/err
'

test_expect_success '--report-url gets a failed build'"'"'s reason and message' '
	serve_start s4 &&
	test_expect_code 4 builder build --image "$REGISTRY/$repo:rbad-$run" --context bad --insecure-registry \
		--report-url "$rep" --report-token-file s4/token >out 2>err &&
	serve_wait s4 &&
	test_grep "^builder: build of .* failed" s4/log &&
	python3 - s4/result <<-EOF_
	import json, sys
	r = json.load(open(sys.argv[1]))
	assert r["succeeded"] is False and r["digest"] is None, r
	assert r["reason"] == "BuildFailed" and r["exitCode"] == 4, r
	assert r["message"].startswith("build of ") and "FROBNICATE" in r["message"], r
	EOF_
'

test_expect_success 'a report endpoint that refuses (dead token, 410) does not stop the build, but a lost result is exit 7' '
	serve_start s5 --dead &&
	test_expect_code 7 builder build --image "$REGISTRY/$repo:rfail-$run" --context ctx --insecure-registry \
		--report-url "$rep" --report-token-file s5/token >out 2>err &&
	test "$(manifest_digest $repo rfail-$run)" = "$(pushed_digest out)" &&
	test "$(grep -c "/log: HTTP status 410; the log is no longer reported" err)" = 1 &&
	test_grep "/result: HTTP status 410 \(try 3 of 3\)" err &&
	test_grep "^builder: report to .*/result: HTTP status 410$" err &&
	serve_stop s5 &&
	test "$(grep -c "\"status\":410,\"reason\":\"the build was removed\"" s5/err)" = 4
'

test_expect_success 'a RUN step runs under chroot isolation' '
	cat >ctx/Dockerfile.run <<-EOF_ &&
	FROM scratch
	COPY busybox /bin/busybox
	RUN ["/bin/busybox", "sh", "-c", "echo run-step-output-\$((6 * 7))"]
	EOF_
	builder build --image "$REGISTRY/$repo:run-$run" --context ctx --dockerfile Dockerfile.run \
		--insecure-registry >out &&
	test_grep "^run-step-output-42$" out &&
	test "$(manifest_digest $repo run-$run)" = "$(pushed_digest out)"
'

test_expect_success '--timeout kills a long build and everything it started (exit 6)' '
	cat >ctx/Dockerfile.sleep <<-EOF_ &&
	FROM scratch
	COPY busybox /bin/busybox
	RUN ["/bin/busybox", "sleep", "317"]
	EOF_
	start=$SECONDS &&
	test_expect_code 6 builder build --image "$REGISTRY/$repo:slow-$run" --context ctx \
		--dockerfile Dockerfile.sleep --timeout 3 --insecure-registry >out 2>err &&
	say "timed out build returned after $((SECONDS - start)) s" &&
	test $((SECONDS - start)) -lt 15 &&
	test_grep "^builder: timed out after 3 s during build of .*; buildah was killed$" err &&
	! pgrep -f "busybox sleep 317" &&
	! has_manifest $repo slow-$run &&
	no_work_dirs
'

test_expect_success 'SIGTERM stops a build, kills buildah'"'"'s group and cleans up (exit 143)' '
	sed "s/317/318/" ctx/Dockerfile.sleep >ctx/Dockerfile.sleep2 &&
	{ builder build --image "$REGISTRY/$repo:term-$run" --context ctx --dockerfile Dockerfile.sleep2 \
		--insecure-registry >out 2>err & pid=$!; } &&
	test_wait_for 30 pgrep -f "busybox sleep 318";
	kill -TERM $pid;
	wait $pid;
	test $? = 143 &&
	test_grep "^builder: cancelled during build of .*; buildah was killed$" err &&
	! pgrep -f "busybox sleep 318" &&
	no_work_dirs
'

test_expect_success 'an unreachable registry fails the push (exit 5) with buildah'"'"'s reason' '
	test_expect_code 5 builder build --image "127.0.0.1:1/$repo:down-$run" --context ctx \
		--insecure-registry >out 2>err &&
	test_grep "^builder: push of 127.0.0.1:1/$repo:down-$run failed .*connection refused" err
'

test_done
