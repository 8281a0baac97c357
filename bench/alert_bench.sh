#!/usr/bin/env bash
# Alert latency: a throw-away local broker and a lifecycled with its default commit
# settings (every 5,000 events or 100 ms); bench/alert_latency produces RATE events/s
# for DURATION seconds and measures, for the alert-raising ones, the time from the produce call
# to a gRPC subscriber receiving the alert.
#   RATE [10000]  DURATION [20 s]  ALERT_EVERY [100]  DAEMON_ARGS [extra lifecycled flags]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
build=${BUILD_DIR:-$repo/build}
# shellcheck source=deploy/local/test-broker.sh
source "$repo/deploy/local/test-broker.sh"
start_test_broker >/dev/null
work=$(mktemp -d /tmp/lifecycle-alert-bench.XXXXXX)
"$build/services/lifecycled/lifecycled" --brokers "$LIFECYCLE_TEST_BROKERS" --grpc-listen 127.0.0.1:0 \
  --listen-file "$work/listen" --metrics-listen "" --data-dir "$work/data" --tick-interval-s 0 \
  --log-level warn ${DAEMON_ARGS:-} > "$work/lifecycled.log" 2>&1 &
pid=$!
while [ ! -s "$work/listen" ]; do
  kill -0 "$pid" 2>/dev/null || { cat "$work/lifecycled.log"; exit 1; }
  sleep 0.1
done
sleep 2  # the group assignment
echo "lifecycled: default commit settings ${DAEMON_ARGS:-}"
status=0
"$build/bench/alert_latency" --brokers "$LIFECYCLE_TEST_BROKERS" --server "$(head -1 "$work/listen")" \
  --rate "${RATE:-10000}" --seconds "${DURATION:-20}" --alert-every "${ALERT_EVERY:-100}" || status=$?
kill -TERM "$pid"; wait "$pid" || true
rm -rf "$work"
exit "$status"
