#!/usr/bin/env bash
# A real single-node Apache Kafka 4.x broker (KRaft, combined broker+controller) on
# 127.0.0.1, run from the broker's jars, which Maven fetches into a cache.
#
#   deploy/local/kafka.sh fetch    fetch the jars (once; cached)
#   deploy/local/kafka.sh start    fetch if needed, format storage if new, start, wait
#                                  until the broker answers metadata requests
#   deploy/local/kafka.sh stop     stop it (harmless if it is not running)
#   deploy/local/kafka.sh status   say whether it runs and answers
#
# Environment (defaults in brackets):
#   KAFKA_PORT [9092]              client listener port on 127.0.0.1
#   KAFKA_CONTROLLER_PORT [PORT+1] controller listener port
#   KAFKA_DATA_DIR [<repo>/.run/kafka-<PORT>]  storage, config, logs, pid file
#   LIFECYCLE_CACHE [~/.cache/lifecycle]       where the jars are cached
#   KAFKA_HEAP [512m]              JVM heap
#   KAFKA_START_TIMEOUT [90]       seconds to wait for the broker to answer
#   KAFKA_STOP_TIMEOUT [30]        seconds after SIGTERM before SIGKILL
#   KAFKA_EXTRA_JVM_ARGS []        more JVM flags, split at spaces (e.g. GC logging:
#                                  -Xlog:gc*:file=/tmp/kafka-gc.log:time,uptime)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=deploy/local/proc.sh
source "$here/proc.sh"

KAFKA_VERSION=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/pom.xml")
KAFKA_PORT=${KAFKA_PORT:-9092}
KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + 1))}
KAFKA_DATA_DIR=${KAFKA_DATA_DIR:-$repo/.run/kafka-$KAFKA_PORT}
LIFECYCLE_CACHE=${LIFECYCLE_CACHE:-$HOME/.cache/lifecycle}
KAFKA_HEAP=${KAFKA_HEAP:-512m}
KAFKA_START_TIMEOUT=${KAFKA_START_TIMEOUT:-90}

libs="$LIFECYCLE_CACHE/kafka-$KAFKA_VERSION/libs"
pid_file="$KAFKA_DATA_DIR/kafka.pid"
log_file="$KAFKA_DATA_DIR/server.log"
out_file="$KAFKA_DATA_DIR/stdout.log"
props="$KAFKA_DATA_DIR/server.properties"
bootstrap="127.0.0.1:$KAFKA_PORT"

say() { echo "kafka.sh: $*"; }

fetch() {
  if [ -f "$libs/.complete" ]; then return 0; fi
  command -v mvn >/dev/null || { say "mvn not found; run deploy/local/install-deps.sh"; exit 1; }
  say "fetching Apache Kafka $KAFKA_VERSION jars into $libs"
  rm -rf "$libs"; mkdir -p "$libs"
  mvn -q -B -f "$here/pom.xml" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$libs"
  touch "$libs/.complete"
}

running_pid() {
  [ -f "$pid_file" ] || return 1
  local pid; pid=$(cat "$pid_file")
  kill -0 "$pid" 2>/dev/null || return 1
  echo "$pid"
}

answers() { kcat -b "$bootstrap" -L -m 2 >/dev/null 2>&1; }

write_config() {
  mkdir -p "$KAFKA_DATA_DIR/logs"
  cat > "$props" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$KAFKA_DATA_DIR/logs
num.partitions=8
auto.create.topics.enable=false
# The log is the source of truth: keep it.
log.retention.ms=-1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
PROPS
}

# The GC settings Kafka's own start scripts use: short G1 pauses (a 200 ms default pause
# shows up as latency for every client).
JAVA_ARGS=("-Xmx$KAFKA_HEAP" "-Xms$KAFKA_HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20
           -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent
           "-Dlog4j2.configurationFile=$here/log4j2.properties"
           "-Dkafka.logs.file=$log_file")
read -r -a extra_jvm_args <<< "${KAFKA_EXTRA_JVM_ARGS:-}"
JAVA_ARGS+=("${extra_jvm_args[@]}" -cp "$libs/*")

start() {
  fetch
  if pid=$(running_pid) && answers; then
    say "already running (pid $pid) on $bootstrap"; return 0
  fi
  if pid=$(running_pid); then
    say "pid $pid exists but does not answer; stopping it first"; stop
  fi
  write_config
  if [ ! -f "$KAFKA_DATA_DIR/logs/meta.properties" ]; then
    local cluster_id
    # A random 16-byte id, base64url as Kafka writes them; not starting with "-", which
    # the storage tool would take for an option.
    cluster_id=$(python3 -c 'import base64,os
while True:
    i = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
    if i[0] != "-":
        print(i)
        break')
    java "${JAVA_ARGS[@]}" kafka.tools.StorageTool format --standalone -t "$cluster_id" -c "$props" \
      > "$KAFKA_DATA_DIR/format.log" 2>&1 || {
        say "formatting storage failed; see $KAFKA_DATA_DIR/format.log"; cat "$KAFKA_DATA_DIR/format.log"; exit 1; }
  fi
  say "starting Kafka $KAFKA_VERSION on $bootstrap (data $KAFKA_DATA_DIR)"
  nohup setsid java "${JAVA_ARGS[@]}" kafka.Kafka "$props" > "$out_file" 2>&1 < /dev/null &
  echo $! > "$pid_file"
  local waited=0
  until answers; do
    if ! running_pid >/dev/null; then
      say "broker exited during start-up; log: $log_file (stdout: $out_file)"
      tail -n 30 "$out_file" "$log_file" 2>/dev/null || true
      exit 1
    fi
    if [ "$waited" -ge "$KAFKA_START_TIMEOUT" ]; then
      say "broker did not answer within ${KAFKA_START_TIMEOUT}s; log: $log_file"
      tail -n 30 "$log_file" 2>/dev/null || true
      stop; exit 1
    fi
    sleep 1; waited=$((waited + 1))
  done
  say "ready after ${waited}s (pid $(cat "$pid_file")); log: $log_file"
}

stop() {
  local pid
  if ! pid=$(running_pid); then
    rm -f "$pid_file"; say "not running on $bootstrap"; return 0
  fi
  say "stopping pid $pid"
  # A broker shuts down in seconds; 30 s covers a slow controlled shutdown.
  if ! stop_pid "$pid" "kafka" "${KAFKA_STOP_TIMEOUT:-30}"; then
    say "pid $pid would not die; its data dir $KAFKA_DATA_DIR is still in use"
    exit 1
  fi
  rm -f "$pid_file"
  say "stopped"
}

status() {
  if pid=$(running_pid); then
    if answers; then say "running (pid $pid), answering on $bootstrap"; return 0; fi
    say "running (pid $pid) but not answering on $bootstrap; log: $log_file"; return 1
  fi
  say "not running on $bootstrap"; return 3
}

case "${1:-}" in
  fetch) fetch ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 fetch|start|stop|status   (see the comment at the top for settings)" >&2; exit 2 ;;
esac
