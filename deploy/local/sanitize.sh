#!/usr/bin/env bash
# The unit and integration tests under AddressSanitizer and UndefinedBehaviorSanitizer:
# builds everything with -DLIFECYCLE_SANITIZE=ON into build-asan/ and runs the test
# command's ctest there (the daemons the tests start are the sanitized builds).
#   CTEST_ARGS  extra ctest arguments
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
export BUILD_DIR="$repo/build-asan"
bash "$here/install-deps.sh"
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  cmake -S "$repo" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLIFECYCLE_SANITIZE=ON
fi
cmake --build "$BUILD_DIR" -j "$(nproc)"
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$repo/deploy/local/lsan.supp}
# shellcheck source=deploy/local/test-broker.sh
source "$here/test-broker.sh"
start_test_broker
cd "$BUILD_DIR"
# shellcheck disable=SC2086
ctest --output-on-failure -j "$(nproc)" ${CTEST_ARGS:-}
