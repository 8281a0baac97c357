#!/usr/bin/env bash
# Two builds of bench/fold_bench compared on a noisy machine: each round starts both at
# the same moment (one per core, the same arguments), so that both meet the same state
# of the machine, and prints their fold times and the ratio B/A. Run one after the
# other, the same binary's fold time moved by ±10-15% on this project's 2-core
# machine; run in pairs, its ratio against itself stayed within ±4%
# (docs/benchmarks.md, the third session of 2026-11-29). A pair shares the caches and
# the memory bus, so its times are not single-run figures: use the ratio.
#   usage: bench/fold_ab.sh A_BINARY B_BINARY [fold_bench arguments...]
#   ROUNDS [3]: pairs to run; the order of start alternates.
# Example: build the change in another build directory, then
#   bench/fold_ab.sh build/bench/fold_bench /tmp/b/bench/fold_bench --customers 300000
set -euo pipefail
if [ $# -lt 2 ] || [ "$1" = "-h" ] || [ "$1" = "--help" ]; then
  sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
a=$1 b=$2
shift 2
for bin in "$a" "$b"; do
  [ -x "$bin" ] || { echo "fold_ab: $bin is not an executable" >&2; exit 2; }
done
rounds=${ROUNDS:-3}
work=$(mktemp -d /tmp/lifecycle-fold-ab.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
fold_seconds() {  # the fold time fold_bench printed ("fold: 30.12 s, ...")
  awk '/^fold: / {print $2; found=1} END {if (!found) exit 1}' "$1"
}
echo "fold_ab: A=$a B=$b, $rounds round(s), arguments: $*"
ratios=()
for i in $(seq "$rounds"); do
  # Alternate which starts first (the generation before the fold is single-threaded too).
  if [ $((i % 2)) -eq 1 ]; then first=$a second=$b; else first=$b second=$a; fi
  "$first" "$@" > "$work/first.$i" 2>&1 & pids=($!)
  "$second" "$@" > "$work/second.$i" 2>&1 & pids+=($!)
  status=0
  wait "${pids[0]}" || status=$?
  wait "${pids[1]}" || status=$?
  pids=()
  if [ $((i % 2)) -eq 1 ]; then out_a=$work/first.$i out_b=$work/second.$i
  else out_a=$work/second.$i out_b=$work/first.$i; fi
  if [ "$status" -ne 0 ] || ! ta=$(fold_seconds "$out_a") || ! tb=$(fold_seconds "$out_b"); then
    echo "fold_ab: round $i failed; the output of each:" >&2
    tail -5 "$out_a" "$out_b" >&2
    exit 1
  fi
  r=$(awk -v a="$ta" -v b="$tb" 'BEGIN {printf "%.3f", b / a}')
  ratios+=("$r")
  echo "round $i: A $ta s, B $tb s, B/A $r"
done
printf '%s\n' "${ratios[@]}" | awk '{s += $1; if (NR == 1 || $1 < lo) lo = $1; if (NR == 1 || $1 > hi) hi = $1}
  END {printf "B/A: mean %.3f, range %.3f-%.3f over %d round(s) (below 1: B is faster)\n", s / NR, lo, hi, NR}'
