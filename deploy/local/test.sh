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

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
export KAFKA_PORT=${LIFECYCLE_TEST_KAFKA_PORT:-$(free_port)}
export KAFKA_CONTROLLER_PORT=$(free_port)
export KAFKA_DATA_DIR=$(mktemp -d /tmp/lifecycle-test-kafka.XXXXXX)
cleanup() {
  bash "$here/kafka.sh" stop || true
  rm -rf "$KAFKA_DATA_DIR"
}
trap cleanup EXIT
bash "$here/kafka.sh" start
export LIFECYCLE_TEST_BROKERS=127.0.0.1:$KAFKA_PORT

cd "${BUILD_DIR:-$repo/build}"
# shellcheck disable=SC2086
ctest --output-on-failure -j "$(nproc)" ${CTEST_ARGS:-}
