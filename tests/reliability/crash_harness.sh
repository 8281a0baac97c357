#!/usr/bin/env bash
# The full crash-consistency run: builds, starts a throw-away broker, runs the crash
# harness at full size (200,000 events, 5,000 customers, 12 kills) and prints its
# figures. Settings: EVENTS, CUSTOMERS, KILLS, SEED, PARTITIONS, and DAEMON_ARGS (more
# lifecycled arguments, e.g. DAEMON_ARGS="--compact-after-catchup-mb=1").
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
bash "$repo/deploy/local/install-deps.sh"
bash "$repo/deploy/local/build.sh"
# shellcheck source=deploy/local/test-broker.sh
source "$repo/deploy/local/test-broker.sh"
start_test_broker
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; $(uname -sr)"
extra=()
for a in ${DAEMON_ARGS:-}; do extra+=("--daemon-arg=$a"); done
"${BUILD_DIR:-$repo/build}/tests/crash_harness" \
  --events "${EVENTS:-200000}" --customers "${CUSTOMERS:-5000}" --kills "${KILLS:-12}" \
  --seed "${SEED:-1}" --partitions "${PARTITIONS:-4}" \
  "${extra[@]}" 2>&1 | grep -v '^\[' | grep -v '^%'
