#pragma once
// The HTTP side of lifecycled: the dashboard's static files, a JSON API that mirrors
// the gRPC read API (the protobuf JSON mapping of the same messages, through the same
// bearer tokens and roles: each request is a call to the gRPC services over an
// in-process channel), live alerts as Server-Sent Events resumable with
// AlertService.Subscribe's cursor, and the Prometheus metrics.
//
//   GET /api/v1/customers/{id}          CustomerService.GetCustomer
//   GET /api/v1/customers/{id}/history  CustomerService.GetHistory
//   GET /api/v1/customers?stage=...     CustomerService.ListCustomers (query = request fields)
//   GET /api/v1/summary?groupBy=...     CustomerService.GetSummary
//   GET /api/v1/alerts?kinds=...        AlertService.ListAlerts
//   GET /api/v1/alerts/stream?...       AlertService.Subscribe as text/event-stream; the
//                                       event id is the cursor (Last-Event-ID resumes)
//   GET /api/v1/status                  AdminService.GetStatus
//   GET /metrics                        Prometheus text
//   GET /...                            static files (--web-root), /vendor/... (--web-vendor)
// Tokens: `Authorization: Bearer T`, or `?access_token=T` (EventSource cannot set headers).

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace grpc {
class Channel;
}
namespace spdlog {
class logger;
}

namespace lifecycle::api {
class Metrics;
}

namespace lifecycle::web {

struct HttpOptions {
  std::string listen;      // host:port; port 0 picks a free one
  std::string web_root;    // the dashboard's files; empty: API only
  std::string vendor_dir;  // third-party browser libraries served at /vendor/
  bool metrics_only = false;  // serve GET /metrics and nothing else (--metrics-listen)
};

class HttpServer {
 public:
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(const HttpOptions& options,
                                                           std::shared_ptr<grpc::Channel> api,
                                                           api::Metrics* metrics,
                                                           std::shared_ptr<spdlog::logger> log);
  virtual ~HttpServer() = default;
  virtual int port() const = 0;
  // Ends event streams, stops accepting, joins. Idempotent.
  virtual void Stop() = 0;
};

}  // namespace lifecycle::web
