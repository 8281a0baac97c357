#pragma once
// Metrics: counters, gauges and histograms an operator graphs, rendered in the
// Prometheus text format (served by lifecycled's HTTP side, services/web).
// Thread-safe.

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"

namespace lifecycle::api {

class Metrics {
 public:
  Metrics();
  // `labels` is the Prometheus label set without braces, e.g. `partition="3"`.
  void Add(const std::string& name, const std::string& labels, double delta);
  void Set(const std::string& name, const std::string& labels, double value);
  void Observe(const std::string& name, const std::string& labels, double value);
  // Drops every labelled value of a gauge family (a collector then sets the live ones).
  void Reset(const std::string& name);
  // Runs every collector, then renders every family in the Prometheus text format.
  std::string Render();

  // A collector sets values read at scrape time (process, RocksDB, lag in seconds).
  using Collector = std::function<void(Metrics*)>;
  void AddCollector(Collector c);

 private:
  struct Family {
    std::string type;  // counter, gauge, histogram
    std::string help;
    std::vector<double> bounds;  // histograms
    std::map<std::string, double> values;
    struct Hist {
      std::vector<uint64_t> buckets;
      double sum = 0;
      uint64_t count = 0;
    };
    std::map<std::string, Hist> hists;
  };
  Family* Find(const std::string& name);

  mutable std::mutex mu_;
  std::map<std::string, Family> families_;
  std::mutex collectors_mu_;  // held while collectors run: one scrape at a time
  std::vector<Collector> collectors_;
};

// The fields of /proc/<pid>/stat after the command's closing parenthesis (`pid`
// "self": this process): element N - 3 is field N of proc(5) — state is field 3, utime
// and stime 14 and 15 (clock ticks). Empty when the file cannot be read.
std::vector<std::string> ProcStatFields(const std::string& pid = "self");

// The standard process_* metrics every Prometheus client exports (CPU seconds,
// resident and virtual memory, open and maximum file descriptors, start time), read
// from /proc/self. A Metrics::Collector.
void CollectProcessMetrics(Metrics* m);

// A listening IPv4 TCP socket on `listen` (host:port, port 0: any free), or why not
// (the error starts with the address). No SO_REUSEPORT: one process per address.
absl::StatusOr<int> ListenTcp(const std::string& listen);

}  // namespace lifecycle::api
