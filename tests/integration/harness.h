#pragma once
// Helpers for integration tests against the real broker and the real daemon:
// unique topic names, temp dirs, lifecycled as a child process, gRPC calls, and an
// oracle that folds a topic in-process with the pure projector.

#include <sys/types.h>

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "lifecycle/v1/service.grpc.pb.h"

namespace lifecycle::testing {

// The broker under test: $LIFECYCLE_TEST_BROKERS, or 127.0.0.1:9092.
std::string TestBrokers();

// A name no other test (or test run) uses: prefix-<pid>-<counter>-<random>.
std::string UniqueName(const std::string& prefix);

// lifecycled's flags for a one-partition daemon of its own: `topic` (and topic.alerts),
// consumer group `group`, data under `dir`, gRPC on a free loopback port, no clock
// ticks of its own, the shipped domain config.
std::vector<std::string> OnePartitionDaemonArgs(const std::string& dir, const std::string& topic,
                                                const std::string& group);

class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// lifecycled as a child process, its output appended to <dir>/lifecycled-<n>.log (n: its
// start by this object; a later object in the same dir appends to the same files). It runs in
// its own process group, killed as a group when the object goes.
class DaemonProcess {
 public:
  // `env` entries ("NAME=value") are added to this process's environment for the child.
  DaemonProcess(std::string dir, std::vector<std::string> args, std::vector<std::string> env = {});
  ~DaemonProcess();  // kills a daemon still running

  // Starts it and waits until it serves gRPC (its listen file appears).
  absl::Status Start(int timeout_s = 60);
  // Starts it without waiting for anything.
  absl::Status Spawn();
  pid_t pid() const { return pid_; }
  void Signal(int sig);
  // Waits for the process to exit; returns its wait status (see WIFEXITED).
  int Wait();
  bool Running() const { return pid_ > 0; }
  // True once the process has exited (reaps it); `status` gets its wait status.
  bool Exited(int* status);
  const std::string& address() const { return address_; }
  // host:port of the Prometheus endpoint, or "off".
  const std::string& metrics_address() const { return metrics_address_; }
  // host:port of the HTTP side (dashboard, JSON API), or "off".
  const std::string& http_address() const { return http_address_; }
  // The tail of the latest log, for failure messages.
  std::string LogTail(size_t bytes = 4000) const;

 private:
  std::string dir_;
  std::vector<std::string> args_;
  std::vector<std::string> env_;
  pid_t pid_ = -1;
  int starts_ = 0;
  std::string address_;
  std::string metrics_address_;
  std::string http_address_;
  std::string log_path_;
};

// The arguments of a test's lifecycled: its own topic (alerts: <topic>.alerts), group
// with a static member id, data under `dir`, gRPC on `listen`, 20 ms commits, no
// clock ticker (tests publish their own ticks).
std::vector<std::string> TestDaemonArgs(const std::string& dir, const std::string& topic,
                                        const std::string& group, int partitions,
                                        const std::string& brokers = TestBrokers(),
                                        const std::string& listen = "127.0.0.1:0");

absl::StatusOr<v1::GetStatusResponse> GetStatus(const std::string& address);

// A shell command run in the background in its own process group (so whatever it
// starts goes with it): Stop() sends SIGTERM to the group, then SIGKILL after
// `grace_ms`, and reaps it; the destructor stops it.
class BackgroundCommand {
 public:
  explicit BackgroundCommand(const std::string& command);
  ~BackgroundCommand();
  BackgroundCommand(const BackgroundCommand&) = delete;
  BackgroundCommand& operator=(const BackgroundCommand&) = delete;
  void Stop(int grace_ms = 5000);

 private:
  pid_t pid_ = -1;
};

// SIGTERM to the process group `pgid`, SIGKILL after `grace_ms`; reaps `pid` (our
// child, the group's leader).
void StopProcessGroup(pid_t pid, int grace_ms);

// A free TCP port on 127.0.0.1 (bound and released).
int FreePort();

// Runs a shell command; its stderr goes through a file in `dir`.
struct CommandResult {
  int exit_code = -1;
  std::string out, err;
};
CommandResult RunCommand(const std::string& cmd, const std::string& dir);

// Waits until the daemon's stored offsets cover `records` records in total
// (sum over partitions of stored_offset + 1).
absl::Status WaitForStoredRecords(const std::string& address, int64_t records, int timeout_s);

// The offset group `group` has committed in Kafka for the partition (-1001 if none).
int64_t GroupCommitted(const std::string& group, const std::string& topic, int32_t partition);

// Produces (key, value) records to `topic` (partition chosen by key; an empty key
// with partition >= 0 goes to that partition) and waits for every ack.
absl::Status ProduceAll(const std::string& topic,
                        const std::vector<std::pair<std::string, std::string>>& records,
                        const std::string& brokers = TestBrokers());

// A record read back from a topic.
struct TopicRecord {
  int32_t partition = -1;
  int64_t offset = -1;
  std::string key, value;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string Header(const std::string& name) const {
    for (const auto& [k, v] : headers) {
      if (k == name) return v;
    }
    return "";
  }
};

// Reads `topic` from the beginning of every partition until `records` records were
// read (or `timeout_s` passed: an error).
absl::StatusOr<std::vector<TopicRecord>> ReadTopic(const std::string& topic, int64_t records,
                                                   int timeout_s = 120,
                                                   const std::string& brokers = TestBrokers());

// What the pure projector computes from a topic: every customer's view by id, and
// every alert id it raised.
struct Oracle {
  std::map<std::string, v1::CustomerView> views;
  std::vector<std::string> alert_ids;
};
absl::StatusOr<Oracle> RunOracle(const std::string& topic, int64_t records,
                                 const std::string& brokers = TestBrokers());

// Every customer the oracle knows is served by the daemon at `address` with a
// byte-identical view; returns the number of customers compared.
absl::StatusOr<size_t> CompareWithOracle(const std::string& address, const Oracle& oracle);

// A serialized ClockTick to `at` (seconds), event id "tick-<at>".
std::string TickBytes(int64_t at);

// A throw-away broker of a test's own (for outage tests), on free loopback ports.
class OwnBroker {
 public:
  explicit OwnBroker(const std::string& dir);
  ~OwnBroker();  // stops it
  absl::Status Start();
  absl::Status Stop();
  const std::string& brokers() const { return brokers_; }
  // Deletes its data (stop it first): the next Start is a new, empty cluster.
  void Wipe();
  // SIGSTOP / SIGCONT: connections stay open and nothing answers.
  void Freeze();
  void Thaw();

 private:
  void PickPorts();
  std::string env_;
  std::string dir_;
  std::string brokers_;
  bool started_ = false;
};

// Just the views of RunOracle.
absl::StatusOr<std::map<std::string, v1::CustomerView>> OracleViews(const std::string& topic,
                                                                    int64_t records);

}  // namespace lifecycle::testing
