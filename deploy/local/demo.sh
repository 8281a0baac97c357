#!/usr/bin/env bash
# The main job, end to end on this machine: install dependencies, build, start a fresh
# local Kafka broker and lifecycled, load a history (the shipped example events merged
# with a simulated dealership of CUSTOMERS customers), restart lifecycled with its
# clock ticker, and show what the views say. Broker and daemon keep running
# afterwards; `demo.sh stop` stops both.
#   KAFKA_PORT [9092]  GRPC_PORT [50151]  HTTP_PORT [8151]  EVENTS [examples/demo-events.jsonl]
#   CUSTOMERS [20000]: how many customers lifecyclectl simulate adds
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=deploy/local/proc.sh
source "$here/proc.sh"
export KAFKA_PORT=${KAFKA_PORT:-9092}
GRPC_PORT=${GRPC_PORT:-50151}
HTTP_PORT=${HTTP_PORT:-8151}
EVENTS=${EVENTS:-$repo/examples/demo-events.jsonl}
CUSTOMERS=${CUSTOMERS:-20000}
run_dir="$repo/.run/demo"
pid_file="$run_dir/lifecycled.pid"
log_file="$run_dir/lifecycled.log"
bin="$repo/build/services"
brokers="127.0.0.1:$KAFKA_PORT"
server="127.0.0.1:$GRPC_PORT"

stop_daemon() {
  if [ -f "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null; then
    echo "demo: stopping lifecycled (pid $(cat "$pid_file"))"
    # lifecycled ends itself within its --stop-timeout-s (10 s); SIGKILL after 15.
    stop_pid "$(cat "$pid_file")" lifecycled 15 || exit 1
  fi
  rm -f "$pid_file"
}

if [ "${1:-}" = "stop" ]; then
  stop_daemon
  KAFKA_DATA_DIR="$run_dir/kafka" bash "$here/kafka.sh" stop
  exit 0
fi

echo "== 1/5 dependencies"; bash "$here/install-deps.sh"
echo "== 2/5 build";        bash "$here/build.sh"
# The demo's broker keeps its data in .run/demo/kafka and starts empty on every run:
# the demo's history is loaded in event-time order, before any clock tick.
export KAFKA_DATA_DIR="$run_dir/kafka"
echo "== 3/5 Kafka (fresh)"
stop_daemon  # a previous run's lifecycled goes before its broker does
bash "$here/kafka.sh" stop >/dev/null
remove_dir "$KAFKA_DATA_DIR"
bash "$here/kafka.sh" start

ctl() { "$bin/lifecyclectl/lifecyclectl" --brokers "$brokers" --server "$server" "$@"; }
start_daemon() {  # start_daemon EXTRA_ARGS...
  rm -f "$run_dir/listen-address"
  nohup "$bin/lifecycled/lifecycled" --brokers "$brokers" --grpc-listen "$server" \
    --data-dir "$run_dir/data" --instance-id demo-1 --listen-file "$run_dir/listen-address" \
    --http-listen "127.0.0.1:$HTTP_PORT" \
    --domain-config "$repo/deploy/config/domain.toml" "$@" \
    >> "$log_file" 2>&1 < /dev/null &
  echo $! > "$pid_file"
  for _ in $(seq 1 300); do
    [ -s "$run_dir/listen-address" ] && return 0
    kill -0 "$(cat "$pid_file")" 2>/dev/null || { echo "demo: lifecycled exited; log: $log_file"; tail -20 "$log_file"; exit 1; }
    sleep 0.1
  done
  echo "demo: lifecycled did not start; log: $log_file"; exit 1
}
wait_caught_up() {
  for _ in $(seq 1 2400); do
    lag=$(ctl status | awk '/^total:/ {print $NF}')
    [ "$lag" = "0" ] && return 0
    sleep 0.5
  done
  echo "demo: lifecycled did not catch up; log: $log_file"; exit 1
}

echo "== 4/5 load the history: $(basename "$EVENTS") and $CUSTOMERS simulated customers"
mkdir -p "$run_dir"
stop_daemon
: > "$log_file"
remove_dir "$run_dir/data"  # the views are rebuilt from the log
start_daemon --tick-interval-s 0  # no clock ticks while history is loaded
echo "lifecycled serving on $server (pid $(cat "$pid_file"), log $log_file)"
ctl simulate --customers "$CUSTOMERS" --seed 7 --greetings --end "$(date -u +%F)" --out "$run_dir/simulated.jsonl"
# One stream in event-time order: the shipped example file merged into the simulation.
python3 - "$EVENTS" "$run_dir/simulated.jsonl" > "$run_dir/history.jsonl" <<'PY'
import heapq, json, sys
def lines(path):
    with open(path) as f:
        for line in f:
            if line.strip():
                yield (json.loads(line)["occurredAt"], line)
for _, line in heapq.merge(*(sorted(lines(p)) if i == 0 else lines(p) for i, p in enumerate(sys.argv[1:]))):
    sys.stdout.write(line)
PY
start=$(date +%s)
ctl publish "$run_dir/history.jsonl"
echo "waiting for lifecycled to catch up..."
wait_caught_up
echo "history projected in $(( $(date +%s) - start ))s (publish included)"

echo "== 5/5 restart lifecycled with its clock ticker on, and read the views"
stop_daemon
start_daemon   # resumes from the stored offsets; the first tick brings stream time to now
sleep 2
wait_caught_up
for id in C1001 C1004 C100042; do
  echo "--- lifecyclectl get $id"
  ctl get "$id"
done
echo "--- lifecyclectl list --stage at_risk --page-size 10"
ctl list --stage at_risk --page-size 10
echo "--- lifecyclectl summary --by stage"
ctl summary --by stage
echo "--- lifecyclectl summary --by activity_bucket"
ctl summary --by activity_bucket
echo "--- lifecyclectl status"
ctl status
echo
echo "Dashboard: http://127.0.0.1:$HTTP_PORT/  (JSON API: http://127.0.0.1:$HTTP_PORT/api/v1/summary)"
echo "Broker and lifecycled keep running. Try: $bin/lifecyclectl/lifecyclectl get C100007"
echo "Stop both with: bash deploy/local/demo.sh stop"
