# Sourced by the test scripts (test.sh, sanitize.sh, tests/reliability/crash_harness.sh):
# `start_test_broker` starts a throw-away Kafka broker on free loopback ports, stops it
# and removes its data when the calling script exits, and exports
# LIFECYCLE_TEST_BROKERS for the tests.
_test_broker_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=deploy/local/proc.sh
source "$_test_broker_dir/proc.sh"

_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Stops the broker (SIGKILL after its grace period) and deletes its data, unless a live
# process still holds it. Safe to call twice.
stop_test_broker() {
  [ -n "${KAFKA_DATA_DIR:-}" ] || return 0
  bash "$_test_broker_dir/kafka.sh" stop || true
  remove_dir "$KAFKA_DATA_DIR" || true
}

start_test_broker() {
  export KAFKA_PORT=${LIFECYCLE_TEST_KAFKA_PORT:-$(_free_port)}
  export KAFKA_CONTROLLER_PORT=$(_free_port)
  export KAFKA_DATA_DIR=$(mktemp -d /tmp/lifecycle-test-kafka.XXXXXX)
  trap stop_test_broker EXIT
  bash "$_test_broker_dir/kafka.sh" start
  export LIFECYCLE_TEST_BROKERS=127.0.0.1:$KAFKA_PORT
}
