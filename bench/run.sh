#!/usr/bin/env bash
# Runs every benchmark and prints the results with the machine and settings:
#   1. the pure fold, in-process, one thread (bench/fold_bench);
#   2. end to end at 50,000 customers, then at full size: lifecycled from an empty store to caught up on a history already in a
#      local broker (this is also the rebuild from offset 0), the raw consume ceiling of
#      the same topic (bench/raw_consume), lifecycled's peak resident memory, then
#      GetCustomer / ListCustomers / GetSummary against it (bench/e2e_bench.sh);
#   3. alert latency at 10,000 events/s (bench/alert_bench.sh);
#   and the machine's own speed, at the start and at the end (bench/machine_probe).
#   FOLD_CUSTOMERS [1000000]  E2E_CUSTOMERS [1000000]  ALERT_RATE [10000]  ALERT_SECONDS [20]
#   RESULTS [docs/benchmarks-latest.txt]: where the printed results and the table
#   (bench/summarize.py) are also written
# At the defaults it takes about 25 minutes on 2 cores and needs ~8 GB of memory.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
bash "$repo/deploy/local/install-deps.sh" >/dev/null
bash "$repo/deploy/local/build.sh" >/dev/null
build=${BUILD_DIR:-$repo/build}
results=${RESULTS:-$repo/docs/benchmarks-latest.txt}
run_all() {
echo "# Lifecycle benchmarks — $(date -u +%FT%TZ)"
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $(uname -sr)"
echo "commit: $(git -C "$repo" rev-parse --short HEAD)"
# The machine's own speed now (its drift between hours moves every figure below).
"$build/bench/machine_probe"
echo
echo "## pure fold (one thread)"
echo "command: bench/fold_bench --customers ${FOLD_CUSTOMERS:-1000000}"
"$build/bench/fold_bench" --customers "${FOLD_CUSTOMERS:-1000000}" 2>/dev/null
echo
echo "## end to end, small (the rate the large run is compared with)"
echo "command: CUSTOMERS=50000 bench/e2e_bench.sh"
CUSTOMERS=50000 bash "$here/e2e_bench.sh" 2>&1 | grep -v '^kafka.sh'
echo
echo "## end to end (local broker, exactly-once commits on), raw consume ceiling, memory, queries"
echo "command: CUSTOMERS=${E2E_CUSTOMERS:-1000000} bench/e2e_bench.sh"
CUSTOMERS=${E2E_CUSTOMERS:-1000000} bash "$here/e2e_bench.sh" 2>&1 | grep -v '^kafka.sh'
echo
echo "## alert latency"
echo "command: RATE=${ALERT_RATE:-10000} DURATION=${ALERT_SECONDS:-20} WARMUP=${ALERT_WARMUP:-20} bench/alert_bench.sh"
RATE=${ALERT_RATE:-10000} DURATION=${ALERT_SECONDS:-20} WARMUP=${ALERT_WARMUP:-20} bash "$here/alert_bench.sh" 2>&1 | grep -v '^kafka.sh'
echo
echo "at the end: $("$build/bench/machine_probe")"
}
run_all 2>&1 | tee "$results"
{
  echo
  echo "## results table"
  python3 "$here/summarize.py" "$results"
} | tee -a "$results"
