#pragma once
// Metrics: counters, gauges and histograms an operator graphs, rendered in the
// Prometheus text format, and a small HTTP server that serves them at /metrics.
// Thread-safe.

#include <atomic>
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
  std::string Render() const;

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
};

// A listening IPv4 TCP socket on `listen` (host:port, port 0: any free), or why not
// (the error starts with the address). No SO_REUSEPORT: one process per address.
absl::StatusOr<int> ListenTcp(const std::string& listen);

// Serves GET /metrics over HTTP/1.0 on its own thread.
class MetricsServer {
 public:
  // `listen` is host:port; port 0 picks a free one.
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(const std::string& listen,
                                                              const Metrics* metrics);
  ~MetricsServer();
  int port() const { return port_; }
  void Stop();

 private:
  MetricsServer(int fd, int port, const Metrics* metrics);
  void Loop();
  int fd_;
  int port_;
  const Metrics* metrics_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace lifecycle::api
