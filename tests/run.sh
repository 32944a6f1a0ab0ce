#!/usr/bin/env bash
# tests/run.sh: what `make test` runs. Builds everything, checks formatting,
# runs the unit tests, starts a private test environment (tests/env/env.sh),
# runs the end-to-end tests against it with prove, and tears the environment
# down even on failure. Exits non-zero when anything failed.
#
# env: SLIPWAY_TEST_SAN   sanitizers of the second unit-test build
#                          (default address,undefined)
#      FUZZ_SECONDS        length of each fuzz run (default 10)
#      TEST_VERBOSE=1      show each test's output
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
root=$(pwd)
failed=()
started=$SECONDS

step() { printf '\n=== %s\n' "$*"; }

step "build"
make -s -j2 all || { echo "build failed"; exit 1; }
step "format (clang-format --dry-run)"
make -s check-format || failed+=(format)

step "unit tests"
prove --exec '' build/tests/unit-* || failed+=(unit)
san=${SLIPWAY_TEST_SAN:-address,undefined}
step "unit tests built with -fsanitize=$san"
make -s -j2 SAN="$san" all &&
	prove --exec '' "build/san-${san//,/-}"/tests/unit-* || failed+=(unit-san)

step "fuzz targets, ${FUZZ_SECONDS:-10}s each"
make -s fuzz FUZZ_SECONDS="${FUZZ_SECONDS:-10}" || failed+=(fuzz)

step "test environment"
name="test-$$"
cleanup() {
	tests/env/env.sh down --name "$name" >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM
env_started=$SECONDS
if ! tests/env/env.sh up --name "$name" >"/tmp/slipway-envup-$$.out"; then
	echo "the test environment did not start"
	exit 1
fi
cat "/tmp/slipway-envup-$$.out"
rm -f "/tmp/slipway-envup-$$.out"
echo "environment up in $((SECONDS - env_started))s"
SLIPWAY_ENV_FILE="${SLIPWAY_ENV_ROOT:-/tmp/slipway-env}/$name/env"
export SLIPWAY_ENV_FILE SLIPWAY_BUILD="$root/build"

step "end-to-end tests"
prove --timer tests/t[0-9]*.sh || failed+=(e2e)

step "done in $((SECONDS - started))s"
if [ ${#failed[@]} -gt 0 ]; then
	echo "FAILED: ${failed[*]}"
	exit 1
fi
echo "all tests passed"
