#pragma once
// Fault injection for the crash harness (tests/reliability), built into the test
// binary lifecycled_faults only, never into lifecycled: with
// LIFECYCLE_FAULT_KILL_IN_COMMIT_PERMILLE=N set, each commit kills the process with
// probability N/1000, half the time just before the RocksDB write and half the time
// just after it (before the Kafka group offsets are committed).

#include <functional>

namespace lifecycle::daemon {

// The DaemonConfig::commit_hook that does it; null when the variable is not set.
std::function<void(bool after_write)> KillInCommitHookFromEnv();

}  // namespace lifecycle::daemon
