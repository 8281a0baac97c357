# Sourced by the scripts that start and stop processes (kafka.sh, demo.sh,
# test-broker.sh, test.sh): stopping with escalation, refusing to delete a directory a
# live process still holds, and finding what a test run left behind.

# stop_pid PID NAME GRACE_S: SIGTERM, up to GRACE_S seconds, then SIGKILL and up to 10 s
# more. Returns 0 once PID is gone, 1 if it still lives.
stop_pid() {
  local pid=$1 name=$2 grace=$3 waited=0
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null && [ "$waited" -lt $((grace * 10)) ]; do
    sleep 0.1; waited=$((waited + 1))
  done
  kill -0 "$pid" 2>/dev/null || return 0
  echo "$name (pid $pid) did not stop in ${grace}s; sending SIGKILL" >&2
  kill -KILL "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  echo "$name (pid $pid) is still alive after SIGKILL" >&2
  return 1
}

# dir_users DIR: "PID COMMAND" of each live process whose working directory or an open
# file is inside DIR.
dir_users() {
  local dir p pid t f
  dir=$(realpath -m "$1")
  for p in /proc/[0-9]*; do
    pid=${p#/proc/}
    for f in "$p"/cwd "$p"/fd/*; do
      t=$(readlink "$f" 2>/dev/null) || continue
      case "$t" in
        "$dir" | "$dir"/*)
          echo "$pid $(tr '\0' ' ' < "$p/cmdline" 2>/dev/null | cut -c1-100)"
          break ;;
      esac
    done
  done
}

# remove_dir DIR: deletes DIR unless a live process still holds it (then says which,
# and returns 1).
remove_dir() {
  local users
  [ -e "$1" ] || return 0
  users=$(dir_users "$1")
  if [ -n "$users" ]; then
    echo "not deleting $1: still in use by" >&2
    echo "$users" | sed 's/^/  /' >&2
    return 1
  fi
  rm -rf "$1"
}

# marked_processes MARKER: "PID COMMAND" of each live lifecycled, lifecyclectl or Java
# (broker) process started with LIFECYCLE_TEST_RUN=MARKER in its environment.
marked_processes() {
  local p comm
  for p in /proc/[0-9]*; do
    comm=$(cat "$p/comm" 2>/dev/null) || continue
    case "$comm" in
      lifecycled* | lifecyclectl | java) ;;
      *) continue ;;
    esac
    if tr '\0' '\n' < "$p/environ" 2>/dev/null | grep -qx "LIFECYCLE_TEST_RUN=$1"; then
      echo "${p#/proc/} $(tr '\0' ' ' < "$p/cmdline" 2>/dev/null | cut -c1-120)"
    fi
  done
}
