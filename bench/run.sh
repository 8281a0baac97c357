#!/usr/bin/env bash
# Runs the benchmarks that exist so far and prints a results table with the machine
# and settings. (Issue 6 lists the full suite; the alert-latency benchmark is not
# written yet.)
#   FOLD_CUSTOMERS [50000]  E2E_CUSTOMERS [50000]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
bash "$repo/deploy/local/install-deps.sh" >/dev/null
bash "$repo/deploy/local/build.sh" >/dev/null
build=${BUILD_DIR:-$repo/build}
echo "# Lifecycle benchmarks — $(date -u +%FT%TZ)"
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $(uname -sr)"
echo "commit: $(git -C "$repo" rev-parse --short HEAD)"
echo
echo "## pure fold (one thread)"
echo "command: bench/fold_bench --customers ${FOLD_CUSTOMERS:-50000}"
"$build/bench/fold_bench" --customers "${FOLD_CUSTOMERS:-50000}"
echo
echo "## end to end (local broker, exactly-once commits on), raw consume ceiling, memory, queries"
echo "command: CUSTOMERS=${E2E_CUSTOMERS:-50000} bench/e2e_bench.sh"
CUSTOMERS=${E2E_CUSTOMERS:-50000} bash "$here/e2e_bench.sh" 2>&1 | grep -v '^kafka.sh'
