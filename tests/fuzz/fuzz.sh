#!/usr/bin/env bash
# Coverage-guided fuzzing with libFuzzer (clang-14): builds the fuzz targets with
# ASan and UBSan into build-fuzz/, then runs each for FUZZ_SECONDS (default 600)
# from a copy of the committed seed corpus. Findings (crash-*) land in build-fuzz/.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
FUZZ_SECONDS=${FUZZ_SECONDS:-600}
bash "$repo/deploy/local/install-deps.sh"
command -v clang++-14 >/dev/null || { echo "fuzz.sh: clang++-14 missing (install-deps.sh installs it)"; exit 1; }
out="$repo/build-fuzz"
if [ ! -f "$out/build.ninja" ]; then
  CC=clang-14 CXX=clang++-14 cmake -S "$repo" -B "$out" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DLIFECYCLE_FUZZ=ON
fi
cmake --build "$out" --target fuzz_fold fuzz_requests fuzz_record -j "$(nproc)"
for target in fold requests record; do
  work="$out/corpus-$target"
  mkdir -p "$work"
  cp -n "$here/corpus/$target/"* "$work/" 2>/dev/null || true
  echo "== fuzz_$target for ${FUZZ_SECONDS}s (corpus $(ls "$work" | wc -l) files)"
  (cd "$out" && "./tests/fuzz_$target" -max_total_time="$FUZZ_SECONDS" -print_final_stats=1 \
      -timeout=10 "$work" 2>&1 | grep -E "^#[0-9]+ +DONE|stat::|ERROR|SUMMARY|Done [0-9]+ runs" )
done
