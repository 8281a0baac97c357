#!/usr/bin/env bash
# The cluster's figures (issue 11), on a throw-away local broker with lifecycled
# instances in one group on this machine's cores:
#   1. throughput of 1, 2 and 3 instances (replicas 1): a CUSTOMERS-customer history
#      folded from offset 0 — until every owner is at the end of the log, and until
#      every holder (owners and replicas) is;
#   2. failover under RATE events/s (bench/alert_latency's paced stream, subscribed
#      through instance 1): kill -9 of instance 2, then the time until every partition
#      has a live owner, and until each new owner has folded the log up to where it
#      ended at the kill;
#   3. forwarding: GetCustomer through instance 1 for customers of partitions it holds
#      (served there) and of partitions it does not hold (forwarded to a holder).
#   CUSTOMERS [20000]  RATE [10000]  PARTITIONS [8]  SESSION_TIMEOUT_MS [10000, lifecycled's]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
build=${BUILD_DIR:-$repo/build}
CUSTOMERS=${CUSTOMERS:-20000}
RATE=${RATE:-10000}
PARTITIONS=${PARTITIONS:-8}
SESSION_TIMEOUT_MS=${SESSION_TIMEOUT_MS:-10000}
# shellcheck source=deploy/local/test-broker.sh
source "$repo/deploy/local/test-broker.sh"
start_test_broker >/dev/null
work=$(mktemp -d /tmp/lifecycle-cluster-bench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$work"
  stop_test_broker
}
trap cleanup EXIT
topic=bench-cluster-$$
brokers=$LIFECYCLE_TEST_BROKERS
ctl() { "$build/services/lifecyclectl/lifecyclectl" --brokers "$brokers" --topic "$topic" "$@"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }

echo "machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(free -g | awk '/Mem:/ {print $2}') GiB; broker on the same cores"
echo "settings: $CUSTOMERS customers, $PARTITIONS partitions, session.timeout.ms $SESSION_TIMEOUT_MS, replicas 1"
declare -A addr
start_instance() {  # start_instance GROUP N
  local group=$1 n=$2 dir="$work/$1-$2"
  mkdir -p "$dir"
  local port
  port=$(free_port)
  addr[$group-$n]="127.0.0.1:$port"
  "$build/services/lifecycled/lifecycled" --brokers "$brokers" --events-topic "$topic" \
    --alerts-topic "$topic.alerts" --partitions "$PARTITIONS" --group "$group" \
    --instance-id "$group-$n" --replicas 1 --grpc-listen "127.0.0.1:$port" \
    --listen-file "$dir/listen" --metrics-listen "" --http-listen "" --data-dir "$dir/data" \
    --tick-interval-s 0 --log-level warn --cluster-refresh-ms 500 \
    --consumer-config "session.timeout.ms=$SESSION_TIMEOUT_MS" > "$dir/lifecycled.log" 2>&1 &
  pids+=($!)
  echo $! > "$dir/pid"
  disown $!  # killed on purpose: no job-control notices
  while [ ! -s "$dir/listen" ]; do
    kill -0 "$(cat "$dir/pid")" 2>/dev/null || { cat "$dir/lifecycled.log"; exit 1; }
    sleep 0.05
  done
}
# "owners holders": how many records the owners, and the least advanced holders, of
# all partitions have folded (asked of one instance, which asks the others).
folded() {
  ctl --server "$1" status --json 2>/dev/null | python3 -c '
import json, sys
s = json.load(sys.stdin)
owners = holders = 0
for p in s.get("partitions", []):
    hs = p.get("holders", [])
    if not hs:
        print("0 0"); sys.exit()
    offs = [int(h.get("stored_offset", -1)) for h in hs]
    owners += offs[0] + 1
    holders += min(offs) + 1
print(owners, holders)' || echo "0 0"
}

# The history, published before any instance runs (the first starts the topic).
start_instance warm 1
total=$(ctl simulate --customers "$CUSTOMERS" --seed 3 --publish 2>&1 | awk '/events published/ {print $4}')
kill -9 "$(cat "$work/warm-1/pid")"
[ -n "$total" ] || { echo "cluster_bench: the history was not published" >&2; exit 1; }
echo "history: $total events"

echo "== 1. throughput from offset 0"
for k in 1 2 3; do
  group=g$k-$$
  t0=$(now)
  for n in $(seq 1 "$k"); do start_instance "$group" "$n"; done
  owners_done=""
  while :; do
    read -r o h < <(folded "${addr[$group-1]}")
    if [ -z "$owners_done" ] && [ "$o" -ge "$total" ]; then owners_done=$(now); fi
    if [ "$h" -ge "$total" ]; then break; fi
    sleep 0.2
  done
  t1=$(now)
  python3 -c "
t0, to, t1, n, k = $t0, $owners_done, $t1, $total, $k
print(f'{k} instance(s): owners at the end after {to - t0:.1f} s ({n / (to - t0):,.0f} events/s), every holder after {t1 - t0:.1f} s ({n / (t1 - t0):,.0f} events/s of the log; {\"each partition folded twice\" if k > 1 else \"no replica\"})')"
  if [ "$k" -lt 3 ]; then
    for n in $(seq 1 "$k"); do kill -9 "$(cat "$work/$group-$n/pid")"; done
  fi
done

group=g3-$$
a1=${addr[$group-1]}
echo "== 2. failover at $RATE events/s"
"$build/bench/alert_latency" --brokers "$brokers" --topic "$topic" --server "$a1" --rate "$RATE" \
  --seconds 45 > "$work/alert_latency.out" 2>&1 &
load=$!
pids+=($load)
sleep 12
ends=$(for p in $(seq 0 $((PARTITIONS - 1))); do kcat -b "$brokers" -Q -t "$topic:$p:-1" 2>/dev/null | awk '{print $NF}'; done | paste -sd,)
dead=${addr[$group-2]}
t_kill=$(now)
kill -9 "$(cat "$work/$group-2/pid")"
echo "kill -9 of instance 2 ($dead); end offsets at the kill: $ends"
owned_at="" caught_at=""
for _ in $(seq 1 1200); do
  state=$(ctl --server "$a1" status --json 2>/dev/null | python3 -c '
import json, sys
dead, ends = sys.argv[1], [int(x) for x in sys.argv[2].split(",")]
s = json.load(sys.stdin)
owned = caught = True
for p in s.get("partitions", []):
    hs = p.get("holders", [])
    if not hs or hs[0]["address"] == dead:
        owned = caught = False
        continue
    if int(hs[0].get("stored_offset", -1)) + 1 < ends[p.get("partition", 0)]:
        caught = False
print(int(owned), int(caught))' "$dead" "$ends") || state="0 0"
  read -r owned caught <<< "$state"
  [ -z "$owned_at" ] && [ "$owned" = 1 ] && owned_at=$(now)
  [ "$caught" = 1 ] && { caught_at=$(now); break; }
  sleep 0.1
done
python3 -c "
tk, to, tc = $t_kill, ${owned_at:-0}, ${caught_at:-0}
print(f'failover: every partition owned by a live instance {to - tk:.1f} s after the kill; every new owner at the log end of the kill moment {tc - tk:.1f} s after it (session.timeout.ms $SESSION_TIMEOUT_MS)' if tc else 'failover: not complete within 120 s')"
wait "$load" || true
echo "alert latency through instance 1 across the failover: $(grep -E 'p50|p99|alerts' "$work/alert_latency.out" | tr '\n' ' ')"

echo "== 3. forwarding (instance 2 back: three instances, replicas 1)"
start_instance "$group" 2
for _ in $(seq 1 600); do
  read -r o h < <(folded "$a1")
  members=$(ctl --server "$a1" status --json 2>/dev/null | python3 -c 'import json,sys; print(len(json.load(sys.stdin).get("members", [])))' || echo 0)
  [ "$members" = 3 ] && [ "$o" = "$h" ] && [ "$o" -gt 0 ] && break
  sleep 0.5
done
mine=$(ctl --server "$a1" status --json | python3 -c '
import json, sys
s = json.load(sys.stdin)
print(",".join(str(p.get("partition", 0)) for p in s["partitions"] if p.get("assigned") or p.get("replica")))')
others=$(ctl --server "$a1" status --json | python3 -c '
import json, sys
s = json.load(sys.stdin)
print(",".join(str(p.get("partition", 0)) for p in s["partitions"] if not (p.get("assigned") or p.get("replica"))))')
echo "instance 1 holds partitions $mine; not: ${others:-none}"
sleep 10  # the restart's catch-up and compactions settle
# Alternating, so both see the same machine.
for round in 1 2; do
  echo "round $round: GetCustomer through instance 1, customers it holds (served there):"
  "$build/bench/query_bench" --server "$a1" --customers "$CUSTOMERS" --partitions "$PARTITIONS" \
    --only-partitions "$mine" --seconds 10 | grep -i getcustomer
  if [ -n "$others" ]; then
    echo "round $round: GetCustomer through instance 1, customers it does not hold (forwarded):"
    "$build/bench/query_bench" --server "$a1" --customers "$CUSTOMERS" --partitions "$PARTITIONS" \
      --only-partitions "$others" --seconds 10 | grep -i getcustomer
  fi
done
