#pragma once
// ApiServer: the gRPC front of Lifecycle. Serves committed state from the ViewStore
// (CustomerService), the daemon's status (AdminService), the standard health
// service and server reflection.
//
// Threads: gRPC's own; handlers only read the store and the StatusSource, both of
// which are safe for concurrent use.

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "services/store/store.h"

namespace spdlog {
class logger;
}

namespace lifecycle::api {

// What only the running daemon knows. Implementations must be thread-safe.
class StatusSource {
 public:
  struct Live {
    std::set<int32_t> assigned;                 // partitions owned by this instance now
    std::map<int32_t, int64_t> high_watermarks;  // per assigned partition, -1 unknown
    bool broker_up = true;
    double last_commit_ms = 0;
  };
  virtual ~StatusSource() = default;
  virtual Live Snapshot() = 0;
};

struct ApiOptions {
  std::string listen = "127.0.0.1:50151";  // host:port; port 0 picks a free one
  std::string events_topic;
  std::string group_id;
  std::string config_version;
  std::string version;
};

class ApiServer {
 public:
  // Starts serving; fails if the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<ApiServer>> Start(const ApiOptions& options,
                                                          store::ViewStore* store,
                                                          StatusSource* status,
                                                          std::shared_ptr<spdlog::logger> log);
  virtual ~ApiServer() = default;
  // The bound port (useful with port 0).
  virtual int port() const = 0;
  // Stops accepting calls and waits for running ones (up to a short deadline).
  virtual void Shutdown() = 0;
};

}  // namespace lifecycle::api
