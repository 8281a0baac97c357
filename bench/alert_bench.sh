#!/usr/bin/env bash
# Alert latency: a throw-away local broker and a lifecycled with its default commit
# settings (every 5,000 events or 100 ms); bench/alert_latency produces RATE events/s
# for DURATION seconds and measures, for the alert-raising ones, the time from the produce call
# to a gRPC subscriber receiving the alert.
#   RATE [10000]  DURATION [20 s]  ALERT_EVERY [100]  WARMUP [20 s]
#   DAEMON_ARGS [extra lifecycled flags]
# WARMUP: the same stream is produced this long first, unmeasured. The broker is started
# by this script, and a freshly started JVM compiles its hot paths for its first ten to
# fifteen seconds: the broker then took 120-140% of the 2 cores at 10,000 events/s, where
# it takes 75-80% afterwards, and a 3-second warm-up measured that (docs/benchmarks.md).
# The CPU each process used from the first produced event to the last alert is printed
# after the latencies.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
build=${BUILD_DIR:-$repo/build}
# shellcheck source=deploy/local/test-broker.sh
source "$repo/deploy/local/test-broker.sh"
start_test_broker >/dev/null
work=$(mktemp -d /tmp/lifecycle-alert-bench.XXXXXX)
"$build/services/lifecycled/lifecycled" --brokers "$LIFECYCLE_TEST_BROKERS" --grpc-listen 127.0.0.1:0 \
  --listen-file "$work/listen" --metrics-listen "" --http-listen "" --data-dir "$work/data" --tick-interval-s 0 \
  --log-level warn ${DAEMON_ARGS:-} > "$work/lifecycled.log" 2>&1 &
pid=$!
while [ ! -s "$work/listen" ]; do
  kill -0 "$pid" 2>/dev/null || { cat "$work/lifecycled.log"; exit 1; }
  sleep 0.1
done
sleep 2  # the group assignment
echo "lifecycled: default commit settings ${DAEMON_ARGS:-}"
broker_pid=$(cat "$KAFKA_DATA_DIR/kafka.pid" 2>/dev/null || echo "")
cpu_ticks() {  # utime + stime of a process, in clock ticks
  [ -n "$1" ] && [ -r "/proc/$1/stat" ] || { echo 0; return; }
  sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'
}
broker0=$(cpu_ticks "$broker_pid"); daemon0=$(cpu_ticks "$pid"); t0=$(date +%s.%N)
status=0
"$build/bench/alert_latency" --brokers "$LIFECYCLE_TEST_BROKERS" --server "$(head -1 "$work/listen")" \
  --rate "${RATE:-10000}" --seconds "${DURATION:-20}" --alert-every "${ALERT_EVERY:-100}" \
  --warmup "${WARMUP:-20}" || status=$?
t1=$(date +%s.%N)
awk -v b="$(( $(cpu_ticks "$broker_pid") - broker0 ))" -v d="$(( $(cpu_ticks "$pid") - daemon0 ))" \
    -v hz="$(getconf CLK_TCK)" -v t0="$t0" -v t1="$t1" \
    'BEGIN { s = t1 - t0; printf "CPU over the %.1f s of warm-up and run: broker %.0f%%, lifecycled %.0f%% (of one core)\n", s, 100 * b / hz / s, 100 * d / hz / s }'
kill -TERM "$pid"; wait "$pid" || true
rm -rf "$work"
exit "$status"
