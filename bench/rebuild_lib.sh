# Sourced by bench/e2e_bench.sh and bench/rebuild_variants.sh: a lifecycled on a
# throw-away store against the test broker (start_test_broker), waiting for it to reach
# the log's end, and the store's size once compactions settle. Expects $build, $work
# and LIFECYCLE_TEST_BROKERS.

# Starts lifecycled (extra flags as arguments) with its store in $work/data; prints its pid.
# LIFECYCLED_BIN, if set, is the daemon to run (another build's, for a before/after).
rebuild_daemon() {
  "${LIFECYCLED_BIN:-$build/services/lifecycled/lifecycled}" --brokers "$LIFECYCLE_TEST_BROKERS" --grpc-listen 127.0.0.1:0 \
    --listen-file "$work/listen" --metrics-listen "" --http-listen "" --data-dir "$work/data" --tick-interval-s 0 \
    --no-alert-publisher --log-level warn "$@" > "$work/lifecycled.log" 2>&1 &
  echo $!
}

# Waits until the daemon PID listens (its --listen-file is written); returns 1, with the
# end of its log, if it stopped first (a port in use, a bad flag).
rebuild_wait_listening() {
  while [ ! -s "$work/listen" ]; do
    kill -0 "$1" 2>/dev/null || { echo "lifecycled stopped:" >&2; tail -3 "$work/lifecycled.log" >&2; return 1; }
    sleep 0.05
  done
}

# Stops it and waits until it has exited.
rebuild_stop() { kill -TERM "$1"; while kill -0 "$1" 2>/dev/null; do sleep 0.1; done; }

# Waits until every partition's stored offset is at the end: TOTAL records in all.
rebuild_wait_stored() {
  local server=$1 total=$2 stored
  while :; do
    stored=$("$build/services/lifecyclectl/lifecyclectl" --server "$server" status --json 2>/dev/null |
      python3 -c 'import json,sys; d=json.load(sys.stdin); print(sum(int(p.get("stored_offset",-1))+1 for p in d["partitions"]))' 2>/dev/null || echo 0)
    [ "$stored" = "$total" ] && return 0
    sleep 0.2
  done
}

# The store's size once it has not changed for 6 s and no file of it but RocksDB's LOG
# was written in the last 4 s (RocksDB preallocates a compaction's output files, so
# their size on disk can stand still while one is written); at most MAX seconds more.
# Sets settled_bytes and settled_after.
rebuild_settle() {
  local dir=$1 max=$2 same=0 now busy
  settled_bytes=$(du -sb "$dir" | cut -f1); settled_after=0
  while [ "$same" -lt 3 ] && [ "$settled_after" -lt "$max" ]; do
    sleep 2; settled_after=$((settled_after + 2))
    now=$(du -sb "$dir" | cut -f1)
    busy=$(find "$dir" -type f ! -name 'LOG*' -newermt '-4 seconds' | head -1)
    if [ "$now" = "$settled_bytes" ] && [ -z "$busy" ]; then same=$((same + 1)); else same=0; settled_bytes=$now; fi
  done
}
