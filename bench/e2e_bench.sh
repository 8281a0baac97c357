#!/usr/bin/env bash
# End-to-end projection: a simulated history already in a throw-away local broker;
# the time from lifecycled's start (empty store: this is also the rebuild rate) to
# fully caught up, with exactly-once commits on; the raw consume ceiling of the same
# topic; the daemon's peak resident memory; then query latency against that daemon
# (bench/query_bench).
#   CUSTOMERS [50000]  ORDER [time|customer]  DAEMON_ARGS [extra lifecycled flags]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
build=${BUILD_DIR:-$repo/build}
CUSTOMERS=${CUSTOMERS:-50000}
ORDER=${ORDER:-time}
# shellcheck source=deploy/local/test-broker.sh
source "$repo/deploy/local/test-broker.sh"
start_test_broker >/dev/null
work=$(mktemp -d /tmp/lifecycle-bench.XXXXXX)
ctl="$build/services/lifecyclectl/lifecyclectl --brokers $LIFECYCLE_TEST_BROKERS"
# shellcheck source=bench/rebuild_lib.sh
source "$here/rebuild_lib.sh"
# Topics come from lifecycled; then the history goes in before the measured start.
pid=$(rebuild_daemon); rebuild_wait_listening "$pid"; rebuild_stop "$pid"
rm -rf "$work/data" "$work/listen"
$ctl simulate --customers "$CUSTOMERS" --order "$ORDER" --seed 3 --population quiet-spells --publish 2>&1 | tail -1
raw=$("$build/bench/raw_consume" --brokers "$LIFECYCLE_TEST_BROKERS")
echo "$raw"
total=$(echo "$raw" | awk '{print $3}')
ceiling=$(echo "$raw" | awk '{print $(NF-1)}')
start=$(date +%s.%N)
# shellcheck disable=SC2086
pid=$(rebuild_daemon ${DAEMON_ARGS:-})
rebuild_wait_listening "$pid"
server=$(head -1 "$work/listen")
rebuild_wait_stored "$server" "$total"
end=$(date +%s.%N)
rss=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
echo "view store on disk after catching up: $(du -sh "$work/data" | cut -f1)"
"$build/bench/query_bench" --server "$server" --server-pid "$pid" --customers "$CUSTOMERS" --concurrency 32 --seconds 10
# The store a user's disk holds once RocksDB has merged what the catch-up left in its
# first levels: the size once it has not changed for 6 s (at most 3 minutes).
rebuild_settle "$work/data" 180
echo "view store on disk once compactions settle: $(du -sh "$work/data" | cut -f1) ($settled_bytes bytes, after $settled_after s more)"
echo "queries again, on the settled store:"
"$build/bench/query_bench" --server "$server" --server-pid "$pid" --customers "$CUSTOMERS" --concurrency 32 --seconds 10
# The peak over the whole run: what the daemon does once caught up (the listing indexes
# built again, the compaction after the catch-up, the queries) counts too.
rss_all=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
rebuild_stop "$pid"
python3 - "$start" "$end" "$total" "$rss_all" "$CUSTOMERS" "$ceiling" "$rss" <<'PY'
import sys
start, end, total, rss, customers = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
ceiling = float(sys.argv[6])
rss_caught_up = int(sys.argv[7])
s = end - start
print(f"end-to-end projection (also the rebuild from offset 0): {total} records in {s:.1f} s: {total/s:.0f} events/s")
print(f"end-to-end / raw consume ceiling: {total/s:.0f} / {ceiling:.0f} = {100*total/s/ceiling:.2f}%")
print(f"peak resident memory of lifecycled: {rss/1024:.0f} MiB for {customers} customers "
      f"({rss/1024/customers*1e6/1024:.2f} GiB per 1,000,000 customers; RocksDB's block cache "
      "(--block-cache-mb), memtables (up to 3 x 64 MiB) and the record cache (--cache-mb) are part of it); "
      f"{rss_caught_up/1024:.0f} MiB when it had caught up")
PY
rm -rf "$work"
