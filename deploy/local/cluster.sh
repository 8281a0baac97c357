#!/usr/bin/env bash
# Three lifecycled instances in one consumer group on loopback, against a local broker of
# their own, so a user can try the cluster (ARCHITECTURE.md, "Scale beyond one
# machine"): each partition has an owner and a standby replica; any instance answers
# any query; kill one and its partitions move to the instances that already hold them.
#
#   deploy/local/cluster.sh start      build if needed, start the broker (fresh) and three
#                                      instances, load CUSTOMERS simulated customers, and
#                                      show who holds what
#   deploy/local/cluster.sh status     lifecyclectl status through instance 1 (owners,
#                                      replicas and their offsets)
#   deploy/local/cluster.sh kill N     kill -9 instance N (1-3)
#   deploy/local/cluster.sh restart N  start instance N again (same address, same member id)
#   deploy/local/cluster.sh stop       stop the instances and the broker
#
# Environment: KAFKA_PORT [9192]; GRPC_BASE [50160]: instance N serves gRPC on
# 127.0.0.1:GRPC_BASE+N, its dashboard on 127.0.0.1:HTTP_BASE+N [8160] and metrics on
# 127.0.0.1:METRICS_BASE+N [9470]; CUSTOMERS [5000]; REPLICAS [1]; TICK_INTERVAL_S [0: no
# clock ticks, stream time follows the events loaded].
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=deploy/local/proc.sh
source "$here/proc.sh"
export KAFKA_PORT=${KAFKA_PORT:-9192}
GRPC_BASE=${GRPC_BASE:-50160}
HTTP_BASE=${HTTP_BASE:-8160}
METRICS_BASE=${METRICS_BASE:-9470}
CUSTOMERS=${CUSTOMERS:-5000}
REPLICAS=${REPLICAS:-1}
run_dir="$repo/.run/cluster"
export KAFKA_DATA_DIR="$run_dir/kafka"
bin="$repo/build/services"
brokers="127.0.0.1:$KAFKA_PORT"
topic=lifecycle.cluster-events

ctl() { "$bin/lifecyclectl/lifecyclectl" --brokers "$brokers" --topic "$topic" "$@"; }
address() { echo "127.0.0.1:$((GRPC_BASE + $1))"; }

start_instance() {  # start_instance N
  local n=$1 dir="$run_dir/i$1"
  mkdir -p "$dir"
  rm -f "$dir/listen-address"
  # Static membership and a fixed address: a restart keeps the instance's partitions
  # (within the session timeout) and the others keep reaching it where it was.
  nohup "$bin/lifecycled/lifecycled" --brokers "$brokers" --events-topic "$topic" \
    --alerts-topic lifecycle.cluster-alerts --group lifecycled-cluster \
    --instance-id "cluster-$n" --replicas "$REPLICAS" \
    --grpc-listen "$(address "$n")" --http-listen "127.0.0.1:$((HTTP_BASE + n))" \
    --metrics-listen "127.0.0.1:$((METRICS_BASE + n))" --data-dir "$dir/data" \
    --listen-file "$dir/listen-address" --domain-config "$repo/deploy/config/domain.toml" \
    --consumer-config session.timeout.ms=10000 --tick-interval-s "${TICK_INTERVAL_S:-0}" \
    >> "$dir/lifecycled.log" 2>&1 < /dev/null &
  echo $! > "$dir/pid"
  for _ in $(seq 1 300); do
    [ -s "$dir/listen-address" ] && { echo "cluster: instance $n serving on $(address "$n") (pid $(cat "$dir/pid"), log $dir/lifecycled.log)"; return 0; }
    kill -0 "$(cat "$dir/pid")" 2>/dev/null || { echo "cluster: instance $n exited; log: $dir/lifecycled.log"; tail -20 "$dir/lifecycled.log"; exit 1; }
    sleep 0.1
  done
  echo "cluster: instance $n did not start; log: $dir/lifecycled.log"; exit 1
}

stop_instance() {  # stop_instance N
  local pid_file="$run_dir/i$1/pid"
  if [ -f "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null; then
    echo "cluster: stopping instance $1 (pid $(cat "$pid_file"))"
    stop_pid "$(cat "$pid_file")" lifecycled 15 || exit 1
  fi
  rm -f "$pid_file"
}

check_n() {
  case "${1:-}" in 1|2|3) ;; *) echo "usage: cluster.sh $2 1|2|3" >&2; exit 1 ;; esac
}

case "${1:-}" in
  start)
    [ -x "$bin/lifecycled/lifecycled" ] || bash "$here/build.sh"
    for n in 1 2 3; do stop_instance "$n"; done
    bash "$here/kafka.sh" stop >/dev/null
    remove_dir "$run_dir"
    mkdir -p "$run_dir"
    bash "$here/kafka.sh" start
    for n in 1 2 3; do start_instance "$n"; done
    ctl simulate --customers "$CUSTOMERS" --seed 7 --end "$(date -u +%F)" --publish
    echo "cluster: waiting for every holder to catch up..."
    last=""
    for _ in $(seq 1 600); do
      # Every holder of every partition at the same offset, twice in a row.
      now=$(ctl --server "$(address 1)" status --json 2>/dev/null | python3 -c '
import json, sys
s = json.load(sys.stdin)
out = []
for p in s.get("partitions", []):
    hs = p.get("holders", [])
    offs = {str(h.get("stored_offset", h.get("storedOffset", -1))) for h in hs}
    out.append(offs.pop() if len(offs) == 1 and hs else "?")
print(",".join(out))') || now="?"
      if [ -n "$now" ] && [ "$now" = "$last" ] && [[ "$now" != *"?"* ]]; then break; fi
      last=$now
      sleep 1
    done
    ctl --server "$(address 1)" status
    echo
    echo "Any instance answers any query, e.g.:"
    echo "  $bin/lifecyclectl/lifecyclectl --server $(address 2) get C100007"
    echo "  $bin/lifecyclectl/lifecyclectl --server $(address 3) summary --by stage"
    echo "  $bin/lifecyclectl/lifecyclectl --server $(address 1) alerts --follow"
    echo "Try a failover: bash deploy/local/cluster.sh kill 2; sleep 12; bash deploy/local/cluster.sh status"
    echo "Stop everything: bash deploy/local/cluster.sh stop"
    ;;
  status)
    for n in 1 2 3; do
      if [ -s "$run_dir/i$n/pid" ] && kill -0 "$(cat "$run_dir/i$n/pid")" 2>/dev/null; then
        ctl --server "$(address "$n")" status
        exit 0
      fi
    done
    echo "cluster: no instance is running" >&2; exit 2
    ;;
  kill)
    check_n "${2:-}" kill
    pid_file="$run_dir/i$2/pid"
    [ -s "$pid_file" ] && kill -9 "$(cat "$pid_file")" 2>/dev/null && echo "cluster: killed instance $2 (kill -9)"
    rm -f "$pid_file"
    ;;
  restart)
    check_n "${2:-}" restart
    stop_instance "$2"
    start_instance "$2"
    ;;
  stop)
    for n in 1 2 3; do stop_instance "$n"; done
    bash "$here/kafka.sh" stop
    ;;
  *)
    sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'
    exit 1
    ;;
esac
