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
