#!/usr/bin/env bash
# The test command (README, and what .ci/run calls): installs the dependencies,
# builds, starts a throw-away Kafka broker on free loopback ports, runs every test
# with ctest (unit and integration), stops the broker, and exits with ctest's status.
#   CTEST_ARGS  extra ctest arguments, e.g. "-L unit" or "-R E2e"
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)

bash "$here/install-deps.sh"
bash "$here/build.sh"

# Every process the tests start carries this mark in its environment, so what is left
# alive at the end can be found (and the run failed for it).
LIFECYCLE_TEST_RUN=$(date +%s)-$$-$RANDOM
export LIFECYCLE_TEST_RUN

# shellcheck source=deploy/local/test-broker.sh
source "$here/test-broker.sh"
start_test_broker

cd "${BUILD_DIR:-$repo/build}"
status=0
# shellcheck disable=SC2086
ctest --output-on-failure -j "$(nproc)" ${CTEST_ARGS:-} || status=$?
stop_test_broker

left=$(marked_processes "$LIFECYCLE_TEST_RUN")
if [ -n "$left" ]; then
  echo "test.sh: FAILED: the tests left these processes running (now killed):"
  echo "$left" | sed 's/^/  /'
  echo "$left" | while read -r pid _; do kill -KILL "$pid" 2>/dev/null || true; done
  status=1
else
  echo "test.sh: no lifecycled, lifecyclectl or broker process left behind"
fi
exit "$status"
