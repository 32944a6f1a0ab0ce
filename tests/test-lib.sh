# test-lib.sh: a small TAP library for Slipway's end-to-end tests, after
# git's t/test-lib.sh. A test script sets test_description, sources this file,
# calls test_expect_success for each behaviour and ends with test_done.
#
#   test_expect_success 'what a user would see, as a sentence' '
#       cmd1 &&
#       cmd2        # the status of the chain decides
#   '
#
# Each script runs in its own scratch directory (tests/trash-NAME), removed
# when all its tests pass. test_when_finished CMD runs CMD after the current
# test, pass or fail. Cluster tests call test_require_env, which loads the
# environment started by tests/env/env.sh (SLIPWAY_ENV_FILE) or skips.

SLIPWAY_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SLIPWAY_BUILD=${SLIPWAY_BUILD:-$SLIPWAY_ROOT/build}
PATH="$SLIPWAY_BUILD/bin:$SLIPWAY_BUILD/tests:$PATH"
export SLIPWAY_ROOT SLIPWAY_BUILD PATH

test_name=$(basename "$0" .sh)
TRASH_DIRECTORY="$SLIPWAY_ROOT/tests/trash-$test_name"
rm -rf "$TRASH_DIRECTORY"
mkdir -p "$TRASH_DIRECTORY"
cd "$TRASH_DIRECTORY" || exit 1

test_count=0
test_failed=0
test_cleanup=:
test_verbose=${TEST_VERBOSE:-}

say() { printf '# %s\n' "$*"; }

# test_when_finished CMD: run CMD (eval'd) when the current test ends.
test_when_finished() {
	test_cleanup="{ $*
	} && (exit \"\$eval_ret\"); eval_ret=\$?; $test_cleanup"
}

test_run_() {
	test_cleanup=:
	local out="$TRASH_DIRECTORY/.test-output"
	# As in git: the body runs in this shell (so test_when_finished works) and
	# chains its commands with &&; its last status decides.
	eval "$1" >"$out" 2>&1
	eval_ret=$?
	cd "$TRASH_DIRECTORY" || exit 1
	eval "$test_cleanup" >>"$out" 2>&1
	return $eval_ret
}

# test_expect_success DESCRIPTION BODY
test_expect_success() {
	test_count=$((test_count + 1))
	if test_run_ "$2"; then
		printf 'ok %d - %s\n' "$test_count" "$1"
		[ -z "$test_verbose" ] || sed 's/^/#   /' "$TRASH_DIRECTORY/.test-output"
	else
		test_failed=$((test_failed + 1))
		printf 'not ok %d - %s\n' "$test_count" "$1"
		printf '%s\n' "$2" | sed 's/^/#   /'
		printf '#   --- output ---\n'
		tail -n 60 "$TRASH_DIRECTORY/.test-output" | sed 's/^/#   /'
	fi
}

# test_skip DESCRIPTION REASON: a test that cannot run here, reported as
# skipped (TAP "# skip").
test_skip() {
	test_count=$((test_count + 1))
	printf 'ok %d - %s # skip %s\n' "$test_count" "$1" "$2"
}

# test_skip_all REASON: no test of this script can run here.
test_skip_all() {
	printf '1..0 # SKIP %s\n' "$*"
	exit 0
}

test_done() {
	printf '1..%d\n' "$test_count"
	if [ "$test_failed" = 0 ]; then
		cd "$SLIPWAY_ROOT" && rm -rf "$TRASH_DIRECTORY"
		exit 0
	fi
	say "failed $test_failed of $test_count; scratch kept in $TRASH_DIRECTORY"
	exit 1
}

# test_require_env: load the running test environment or skip the script.
test_require_env() {
	[ -n "${SLIPWAY_ENV_FILE:-}" ] && [ -f "$SLIPWAY_ENV_FILE" ] ||
		test_skip_all "no test environment (start one with tests/env/env.sh up)"
	# shellcheck disable=SC1090
	. "$SLIPWAY_ENV_FILE"
	export KUBECONFIG REGISTRY SLIPWAY_ENV_DIR SLIPWAY_ENV_NAME
}

# test_require_node: the environment's real node (containerd and kubelet,
# tests/env/env.sh) is there and Ready, or skip the script.
test_require_node() {
	[ -n "${NODE_NAME:-}" ] || test_skip_all "this environment has no node (NODE_NAME unset)"
	kubectl wait --for=condition=Ready "node/$NODE_NAME" --timeout=30s >/dev/null 2>&1 ||
		test_skip_all "node $NODE_NAME is not Ready"
	export NODE_NAME HOST_IP
}

# Images the tests make live in buildah storage in the cache, shared by
# every run; pushing them to the env's registry is what each run does.
test_buildah_() {
	local cache=${SLIPWAY_CACHE:-$HOME/.cache/slipway}
	mkdir -p "$cache/buildah"
	buildah --root "$cache/buildah/storage" --runroot "$cache/buildah/run" --storage-driver vfs "$@"
}

# test_app_image REPO:TAG [ENTRYPOINT_JSON [FILE_CONTENT]]: push to
# $REGISTRY/REPO:TAG an image FROM scratch holding Debian's static busybox
# and /www/index.html (FILE_CONTENT, default "REPO:TAG"), whose entrypoint is
# ENTRYPOINT_JSON (default: busybox httpd in the foreground on 8080, serving
# /www). Different contents give different digests. Prints the reference.
test_app_image() {
	local ref=$1 ep=${2:-'["/bin/busybox","httpd","-f","-p","8080","-h","/www"]'}
	local content=${3:-$1} ctx c
	ctx=$(mktemp -d) || return 1
	mkdir -p "$ctx/www" && cp /bin/busybox "$ctx/busybox" &&
		printf '%s\n' "$content" >"$ctx/www/index.html" &&
		c=$(test_buildah_ from scratch) &&
		test_buildah_ copy --quiet "$c" "$ctx/busybox" /bin/busybox >/dev/null &&
		test_buildah_ copy --quiet "$c" "$ctx/www" /www >/dev/null &&
		test_buildah_ config --entrypoint "$ep" --port 8080 "$c" &&
		test_buildah_ commit --quiet --rm "$c" "localhost/slipway-test/app:latest" >/dev/null &&
		test_buildah_ push --quiet --tls-verify=false localhost/slipway-test/app:latest \
			"docker://$REGISTRY/$ref" >&2 || {
		rm -rf "$ctx"
		echo "test_app_image: cannot make $REGISTRY/$ref" >&2
		return 1
	}
	rm -rf "$ctx"
	printf '%s/%s\n' "$REGISTRY" "$ref"
}

# test_registry_tag REPO SRC_TAG DEST_TAG...: tag the manifest REPO:SRC_TAG
# of the env's registry as each DEST_TAG too (the same image under another
# name, as a new release of the same content would be).
test_registry_tag() {
	local repo=$1 src=$2 t ct
	shift 2
	curl -fsS -D "$TRASH_DIRECTORY/.manifest.hdr" -o "$TRASH_DIRECTORY/.manifest" \
		-H "Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json" \
		"http://$REGISTRY/v2/$repo/manifests/$src" || return 1
	ct=$(tr -d '\r' <"$TRASH_DIRECTORY/.manifest.hdr" | awk 'tolower($1) == "content-type:" { print $2 }')
	for t in "$@"; do
		curl -fsS -X PUT -H "Content-Type: $ct" --data-binary "@$TRASH_DIRECTORY/.manifest" \
			"http://$REGISTRY/v2/$repo/manifests/$t" || return 1
	done
}

# test_slipway_image NAME: Slipway's image NAME (gitd, builder), built by
# images/build.sh from $SLIPWAY_BUILD/bin when its inputs changed, pushed to
# the env's registry; prints its reference (tests/env/image.sh).
test_slipway_image() {
	"$SLIPWAY_ROOT/tests/env/image.sh" "$1" "$REGISTRY"
}

# test_require_helm: set HELM to the pinned helm that tests/env/build.sh
# keeps in the cache (SLIPWAY_CACHE, default ~/.cache/slipway), building it
# if it is missing (about 2 minutes cold), and point helm's own cache and
# config into the scratch directory. Bails out if helm cannot be had.
test_require_helm() {
	# shellcheck disable=SC1091
	. "$SLIPWAY_ROOT/tests/env/versions.sh"
	HELM=${HELM:-${SLIPWAY_CACHE:-$HOME/.cache/slipway}/bin/helm-$HELM_VERSION/helm}
	if [ ! -x "$HELM" ]; then
		say "building helm $HELM_VERSION with tests/env/build.sh"
		"$SLIPWAY_ROOT/tests/env/build.sh" </dev/null >&2 || true
	fi
	if [ ! -x "$HELM" ]; then
		printf 'Bail out! no helm at %s (tests/env/build.sh failed)\n' "$HELM"
		exit 1
	fi
	HELM_CACHE_HOME="$TRASH_DIRECTORY/.helm/cache"
	HELM_CONFIG_HOME="$TRASH_DIRECTORY/.helm/config"
	HELM_DATA_HOME="$TRASH_DIRECTORY/.helm/data"
	export HELM HELM_CACHE_HOME HELM_CONFIG_HOME HELM_DATA_HOME
}

# test_must_fail CMD...: CMD exits non-zero but was not killed by a signal.
test_must_fail() {
	"$@"
	local rc=$?
	if [ $rc = 0 ]; then
		echo "test_must_fail: command succeeded: $*" >&2
		return 1
	elif [ $rc -gt 128 ] && [ $rc -le 192 ]; then
		echo "test_must_fail: killed by a signal ($rc): $*" >&2
		return 1
	fi
	return 0
}

# test_expect_code N CMD...: CMD exits with status N.
test_expect_code() {
	local want=$1 rc
	shift
	"$@"
	rc=$?
	[ "$rc" = "$want" ] && return 0
	echo "test_expect_code: want exit $want, got $rc: $*" >&2
	return 1
}

# test_cmp EXPECTED ACTUAL: files are equal, else show the diff.
test_cmp() {
	diff -u "$1" "$2"
}

# test_grep PATTERN FILE: FILE has a line matching PATTERN, else show FILE.
test_grep() {
	grep -E -e "$1" "$2" && return 0
	echo "test_grep: no line matches '$1' in $2:" >&2
	sed 's/^/| /' "$2" >&2
	return 1
}

# test_wait_for SECONDS CMD...: poll CMD every 0.2 s until it succeeds or the
# deadline passes (a wait for a condition, not a sleep).
test_wait_for() {
	local deadline=$((SECONDS + $1))
	shift
	while ! "$@"; do
		if [ $SECONDS -ge $deadline ]; then
			echo "test_wait_for: timed out: $*" >&2
			return 1
		fi
		sleep 0.2
	done
}

# unique_name PREFIX: a DNS-1123 name unique to this script and test.
unique_name() {
	printf '%s-%s-%d' "$1" "$(printf %s "$test_name" | tr -cd 'a-z0-9' | tail -c 12)" "$test_count"
}
