# Sourced by the test scripts (test.sh, sanitize.sh, tests/reliability/crash_harness.sh):
# `start_test_broker` starts a throw-away Kafka broker on free loopback ports, stops it
# and removes its data when the calling script exits, and exports
# LIFECYCLE_TEST_BROKERS for the tests.
_test_broker_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

start_test_broker() {
  export KAFKA_PORT=${LIFECYCLE_TEST_KAFKA_PORT:-$(_free_port)}
  export KAFKA_CONTROLLER_PORT=$(_free_port)
  export KAFKA_DATA_DIR=$(mktemp -d /tmp/lifecycle-test-kafka.XXXXXX)
  trap 'bash "$_test_broker_dir/kafka.sh" stop || true; rm -rf "$KAFKA_DATA_DIR"' EXIT
  bash "$_test_broker_dir/kafka.sh" start
  export LIFECYCLE_TEST_BROKERS=127.0.0.1:$KAFKA_PORT
}
