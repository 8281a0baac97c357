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

# shellcheck source=deploy/local/test-broker.sh
source "$here/test-broker.sh"
start_test_broker

cd "${BUILD_DIR:-$repo/build}"
# shellcheck disable=SC2086
ctest --output-on-failure -j "$(nproc)" ${CTEST_ARGS:-}
