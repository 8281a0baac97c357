#!/usr/bin/env bash
# The main job, end to end on this machine: install dependencies, build, start the
# local Kafka broker and lifecycled, publish the example events, and show what the
# views say. Broker and daemon keep running afterwards; `demo.sh stop` stops both.
#   KAFKA_PORT [9092]  GRPC_PORT [50151]  EVENTS [examples/demo-events.jsonl]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
export KAFKA_PORT=${KAFKA_PORT:-9092}
GRPC_PORT=${GRPC_PORT:-50151}
EVENTS=${EVENTS:-$repo/examples/demo-events.jsonl}
run_dir="$repo/.run/demo"
pid_file="$run_dir/lifecycled.pid"
log_file="$run_dir/lifecycled.log"
bin="$repo/build/services"
brokers="127.0.0.1:$KAFKA_PORT"
server="127.0.0.1:$GRPC_PORT"

stop_daemon() {
  if [ -f "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null; then
    echo "demo: stopping lifecycled (pid $(cat "$pid_file"))"
    kill -TERM "$(cat "$pid_file")"
    for _ in $(seq 1 50); do kill -0 "$(cat "$pid_file")" 2>/dev/null || break; sleep 0.2; done
  fi
  rm -f "$pid_file"
}

if [ "${1:-}" = "stop" ]; then
  stop_daemon
  bash "$here/kafka.sh" stop
  exit 0
fi

echo "== 1/5 dependencies"; bash "$here/install-deps.sh"
echo "== 2/5 build";        bash "$here/build.sh"
echo "== 3/5 Kafka";        bash "$here/kafka.sh" start

echo "== 4/5 lifecycled"
mkdir -p "$run_dir"
stop_daemon
rm -f "$run_dir/listen-address"
# Kafka holds the log; the views are rebuilt from it on every demo run, so they always
# reflect the current rules and config.
rm -rf "$run_dir/data"
nohup "$bin/lifecycled/lifecycled" --brokers "$brokers" --grpc-listen "$server" \
  --data-dir "$run_dir/data" --instance-id demo-1 --listen-file "$run_dir/listen-address" \
  --domain-config "$repo/deploy/config/domain.toml" \
  > "$log_file" 2>&1 < /dev/null &
echo $! > "$pid_file"
for _ in $(seq 1 300); do
  [ -s "$run_dir/listen-address" ] && break
  kill -0 "$(cat "$pid_file")" 2>/dev/null || { echo "demo: lifecycled exited; log: $log_file"; tail -20 "$log_file"; exit 1; }
  sleep 0.1
done
[ -s "$run_dir/listen-address" ] || { echo "demo: lifecycled did not start; log: $log_file"; exit 1; }
echo "lifecycled serving on $server (pid $(cat "$pid_file"), log $log_file)"

echo "== 5/5 publish $(basename "$EVENTS") and read the views"
ctl() { "$bin/lifecyclectl/lifecyclectl" --brokers "$brokers" --server "$server" "$@"; }
ctl publish "$EVENTS"
# Wait until every partition has applied what the broker holds.
for _ in $(seq 1 100); do
  lag=$(ctl status | awk '/^total:/ {print $NF}')
  [ "$lag" = "0" ] && break
  sleep 0.2
done
for id in C1001 C1004; do
  echo "--- lifecyclectl get $id"
  ctl get "$id"
done
echo "--- lifecyclectl status"
ctl status
echo
echo "Broker and lifecycled keep running. Try: $bin/lifecyclectl/lifecyclectl get C1002"
echo "Stop both with: bash deploy/local/demo.sh stop"
