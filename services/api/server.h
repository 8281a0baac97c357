#pragma once
// ApiServer: the gRPC front of Lifecycle.
//   CustomerService  views, listings (from the indexes), summaries, history
//   AlertService     resumable alert stream and paged alert listing
//   IngestService    validated publishing for systems that cannot speak Kafka
//   AdminService     per-partition status
// plus the standard health service and server reflection (both open). Every
// request is authenticated (bearer tokens with roles, when configured) and
// validated; bad requests get INVALID_ARGUMENT with a message naming the field.
//
// Threads: gRPC's own. Handlers read the store and the StatusSource (both safe for
// concurrent use) and never block the projector.

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "services/api/auth.h"
#include "services/api/metrics.h"
#include "services/store/store.h"

namespace spdlog {
class logger;
}
namespace lifecycle::stream {
class Producer;
}

namespace grpc {
class Channel;
}

namespace lifecycle::api {

// What only the running daemon knows. Implementations must be thread-safe.
class StatusSource {
 public:
  struct Live {
    std::set<int32_t> assigned;                 // partitions owned by this instance now
    std::set<int32_t> replicated;               // held here as a standby replica
    std::map<int32_t, int64_t> high_watermarks;  // per assigned partition, -1 unknown
    bool broker_up = true;
    double last_commit_ms = 0;
    std::string store_error;  // why the last commit failed; empty when commits succeed
  };
  virtual ~StatusSource() = default;
  virtual Live Snapshot() = 0;
};

// Where partitions live when several instances share the group (null: one instance,
// everything served here). Implementations must be thread-safe.
class Router {
 public:
  virtual ~Router() = default;
  // The partition a customer's events go to (-1: not known).
  virtual int32_t PartitionOf(std::string_view customer_id) = 0;
  // The addresses of the partition's holders, the owner first; empty when not known.
  virtual std::vector<std::string> Holders(int32_t partition) = 0;
  // Instances that held the partition before the group last changed and hold it no
  // more: asked last, when no holder knows a customer (a new holder catching up).
  virtual std::vector<std::string> FormerHolders(int32_t partition) = 0;
  // False until this instance has learned who holds what (it may be in a group of
  // several and its store may hold none of a customer's partition).
  virtual bool Ready() = 0;
  // Every member's address (this one's included), in the group's order.
  virtual std::vector<std::string> Members() = 0;
  // This instance's advertised address.
  virtual std::string Self() = 0;
  virtual int replicas() = 0;
  // Partitions of the events topic.
  virtual int partitions() = 0;
};

struct ApiOptions {
  std::string listen = "127.0.0.1:50151";  // host:port; port 0 picks a free one
  std::string events_topic;
  std::string group_id;
  std::string config_version;
  std::string version;
  std::string git_commit;
  std::vector<TokenSpec> tokens;  // empty: no authentication
  std::string tls_cert_file;      // PEM; with tls_key_file, serve TLS only
  std::string tls_key_file;
  int max_page_size = 1000;
  int default_page_size = 50;
  int max_publish_batch = 1000;
};

struct ApiDeps {
  store::ViewStore* store = nullptr;
  StatusSource* status = nullptr;
  stream::Producer* producer = nullptr;  // for IngestService; null: UNAVAILABLE
  Metrics* metrics = nullptr;            // may be null
  Router* router = nullptr;              // null: no forwarding
  std::shared_ptr<spdlog::logger> log;
};

class ApiServer {
 public:
  // Starts serving; fails if the address cannot be bound or TLS files do not load.
  static absl::StatusOr<std::unique_ptr<ApiServer>> Start(const ApiOptions& options,
                                                          const ApiDeps& deps);
  virtual ~ApiServer() = default;
  // The bound port (useful with port 0).
  virtual int port() const = 0;
  // New batches were committed: wakes alert subscribers.
  virtual void NotifyCommitted() = 0;
  // Sets the health status of a named service ("" is the server as a whole).
  virtual void SetServing(const std::string& service, bool serving) = 0;
  // Stops accepting calls, ends streams and waits for running calls (briefly).
  virtual void Shutdown() = 0;
  // A channel to this server within the process (the HTTP side calls the API on it).
  virtual std::shared_ptr<grpc::Channel> InProcessChannel() = 0;
};

// Opaque tokens and cursors (web-safe base64 of a small text form), exposed for tests.
std::string EncodeAlertCursor(const std::map<int32_t, int64_t>& next_seq);
absl::StatusOr<std::map<int32_t, int64_t>> DecodeAlertCursor(const std::string& cursor);

}  // namespace lifecycle::api
