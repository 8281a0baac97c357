#!/usr/bin/env bash
# The rebuild from offset 0 under several daemon settings, on one published history: the
# history goes into a throw-away local broker once; then, for each variant, lifecycled
# starts on an empty store and runs until every partition's stored offset is at the end
# (exactly-once commits on). Prints, per variant, the rebuild rate, the daemon's peak
# RSS and CPU time (user + system, all its threads: fold, commits, compactions), and the
# store's size right after and once compactions have settled (at most SETTLE_S more).
#   CUSTOMERS [300000]  SETTLE_S [60]  BUILD_DIR [build]
#   QUERY_S [0]: when set, GetCustomer on the settled store too (bench/query_bench,
#   concurrency 32, QUERY_S seconds, twice), before the daemon stops.
#   VARIANTS: one daemon argument list per line, e.g.
#     VARIANTS=$'\n--rocksdb-options=level0_file_num_compaction_trigger=4' bash bench/rebuild_variants.sh
#   (an empty line is lifecycled's defaults; the default VARIANTS is just that line).
#   A line may start with environment assignments for the daemon, e.g.
#     MALLOC_CONF=dirty_decay_ms:1000 --cache-mb 64
#   and LIFECYCLED_BIN=<path> runs another build's daemon (a before/after on one history).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
build=${BUILD_DIR:-$repo/build}
CUSTOMERS=${CUSTOMERS:-300000}
SETTLE_S=${SETTLE_S:-60}
VARIANTS=${VARIANTS:-""}
# shellcheck source=deploy/local/test-broker.sh
source "$repo/deploy/local/test-broker.sh"
start_test_broker >/dev/null
work=$(mktemp -d /tmp/lifecycle-variants.XXXXXX)
trap 'rm -rf "$work"; stop_test_broker' EXIT  # (replaces start_test_broker's trap)
ctl="$build/services/lifecyclectl/lifecyclectl --brokers $LIFECYCLE_TEST_BROKERS"
# shellcheck source=bench/rebuild_lib.sh
source "$here/rebuild_lib.sh"
pid=$(rebuild_daemon); rebuild_wait_listening "$pid"; rebuild_stop "$pid"
$ctl simulate --customers "$CUSTOMERS" --seed 3 --population quiet-spells --publish 2>&1 | tail -1
total=$("$build/bench/raw_consume" --brokers "$LIFECYCLE_TEST_BROKERS" | awk '{print $3}')
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr); broker on the same cores"
tick=$(getconf CLK_TCK)
while IFS= read -r variant; do
  rm -rf "$work/data" "$work/listen"
  # Leading NAME=value words are the daemon's environment (MALLOC_CONF=...), the rest its flags.
  envs=(); args=()
  for w in $variant; do
    if [ ${#args[@]} -eq 0 ] && [[ $w != -* && $w == *=* ]]; then envs+=("$w"); else args+=("$w"); fi
  done
  start=$(date +%s.%N); pid=$( (for e in "${envs[@]}"; do export "${e?}"; done; rebuild_daemon "${args[@]}") )
  rebuild_wait_listening "$pid" || { echo "variant '$variant': not run"; continue; }
  server=$(head -1 "$work/listen")
  rebuild_wait_stored "$server" "$total"
  end=$(date +%s.%N)
  cpu=$(awk -v t="$tick" '{printf "%.1f", ($14 + $15) / t}' "/proc/$pid/stat")
  rss=$(awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$pid/status")
  after=$(du -sb "$work/data" | cut -f1)
  rebuild_settle "$work/data" "$SETTLE_S"
  queries=()
  if [ "${QUERY_S:-0}" != 0 ]; then
    for _ in 1 2; do
      queries+=("$("$build/bench/query_bench" --server "$server" --server-pid "$pid" \
        --customers "$CUSTOMERS" --concurrency 32 --seconds "$QUERY_S" 2>&1 | head -2 |
        paste -sd ';' - | sed 's/;/; /')")
    done
  fi
  rebuild_stop "$pid"
  python3 - "$start" "$end" "$total" "$cpu" "$rss" "$after" "$settled_bytes" "$settled_after" "${variant:-(defaults)}" <<'PY'
import sys
start, end, total, cpu, rss, after, settled, waited, variant = sys.argv[1:]
s = float(end) - float(start)
print(f"{variant}: {int(total)} records in {s:.1f} s: {int(total)/s:,.0f} events/s; "
      f"lifecycled CPU {float(cpu):.1f} s ({1e6*float(cpu)/int(total):.1f} us per record); "
      f"peak RSS {rss} MiB; store {int(after):,} bytes right after, {int(settled):,} "
      f"after {waited} s more")
PY
  for q in "${queries[@]}"; do echo "  settled store, $q"; done
done <<< "$VARIANTS"
