#include "services/api/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <chrono>

#include "absl/strings/str_cat.h"
#include "lifecycle/v1/service.grpc.pb.h"
#include "projections/validate.h"
#include "spdlog/spdlog.h"

namespace lifecycle::api {
namespace {

namespace v1 = lifecycle::v1;

grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  grpc::StatusCode code = grpc::StatusCode::INTERNAL;
  switch (s.code()) {
    case absl::StatusCode::kInvalidArgument: code = grpc::StatusCode::INVALID_ARGUMENT; break;
    case absl::StatusCode::kNotFound: code = grpc::StatusCode::NOT_FOUND; break;
    case absl::StatusCode::kUnavailable: code = grpc::StatusCode::UNAVAILABLE; break;
    case absl::StatusCode::kDeadlineExceeded: code = grpc::StatusCode::DEADLINE_EXCEEDED; break;
    case absl::StatusCode::kDataLoss: code = grpc::StatusCode::DATA_LOSS; break;
    default: break;
  }
  return grpc::Status(code, std::string(s.message()));
}

void AddPosition(const v1::PartitionMeta& m, v1::Freshness* f) {
  auto* p = f->add_partitions();
  p->set_partition(m.partition());
  p->set_offset(m.offset());
  if (m.has_stream_time()) *p->mutable_stream_time() = m.stream_time();
}

class CustomerServiceImpl final : public v1::CustomerService::Service {
 public:
  explicit CustomerServiceImpl(store::ViewStore* store) : store_(store) {}

  grpc::Status GetHistory(grpc::ServerContext*, const v1::GetHistoryRequest* req,
                          v1::GetHistoryResponse* resp) override {
    if (absl::Status s = projections::ValidateCustomerId(req->customer_id()); !s.ok()) {
      return ToGrpc(s);
    }
    auto read = store_->ReadCustomerWithMeta(req->customer_id());
    if (!read.ok()) return ToGrpc(read.status());
    if (!read->has_value()) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND,
                          absl::StrCat("customer \"", req->customer_id(), "\" is not known"));
    }
    auto alerts = store_->ReadCustomerAlerts(req->customer_id());
    if (!alerts.ok()) return ToGrpc(alerts.status());
    for (auto& t : *(*read)->state.mutable_view()->mutable_transitions()) {
      *resp->add_transitions() = std::move(t);
    }
    for (auto& a : *alerts) *resp->add_alerts() = std::move(a);
    AddPosition((*read)->meta, resp->mutable_freshness());
    return grpc::Status::OK;
  }

  grpc::Status GetCustomer(grpc::ServerContext*, const v1::GetCustomerRequest* req,
                           v1::GetCustomerResponse* resp) override {
    if (absl::Status s = projections::ValidateCustomerId(req->customer_id()); !s.ok()) {
      return ToGrpc(s);
    }
    absl::StatusOr<std::optional<store::CustomerRead>> read =
        store_->ReadCustomerWithMeta(req->customer_id());
    if (!read.ok()) return ToGrpc(read.status());
    if (!read->has_value()) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND,
                          absl::StrCat("customer \"", req->customer_id(), "\" is not known"));
    }
    *resp->mutable_customer() = std::move(*(*read)->state.mutable_view());
    AddPosition((*read)->meta, resp->mutable_freshness());
    return grpc::Status::OK;
  }

 private:
  store::ViewStore* store_;
};

class AdminServiceImpl final : public v1::AdminService::Service {
 public:
  AdminServiceImpl(const ApiOptions& options, store::ViewStore* store, StatusSource* status)
      : options_(options), store_(store), status_(status),
        started_(std::chrono::steady_clock::now()) {}

  grpc::Status GetStatus(grpc::ServerContext*, const v1::GetStatusRequest*,
                         v1::GetStatusResponse* resp) override {
    absl::StatusOr<std::vector<v1::PartitionMeta>> metas = store_->ListMeta();
    if (!metas.ok()) return ToGrpc(metas.status());
    StatusSource::Live live = status_->Snapshot();
    std::map<int32_t, v1::PartitionMeta> by_partition;
    for (auto& m : *metas) by_partition[m.partition()] = std::move(m);
    for (int32_t p : live.assigned) {
      if (!by_partition.count(p)) {
        by_partition[p].set_partition(p);
        by_partition[p].set_offset(-1);
      }
    }
    for (const auto& [p, m] : by_partition) {
      auto* ps = resp->add_partitions();
      ps->set_partition(p);
      ps->set_stored_offset(m.offset());
      ps->set_assigned(live.assigned.count(p) > 0);
      auto hw = live.high_watermarks.find(p);
      const int64_t high = hw == live.high_watermarks.end() ? -1 : hw->second;
      ps->set_high_watermark(high);
      ps->set_lag(high < 0 ? -1 : std::max<int64_t>(0, high - (m.offset() + 1)));
      if (m.has_stream_time()) *ps->mutable_stream_time() = m.stream_time();
      ps->set_events_applied(m.events_applied());
      ps->set_events_rejected(m.events_rejected());
      ps->set_events_skipped(m.events_skipped());
      ps->set_events_duplicate(m.events_duplicate());
    }
    resp->set_events_topic(options_.events_topic);
    resp->set_group_id(options_.group_id);
    resp->set_config_version(options_.config_version);
    resp->set_version(options_.version);
    resp->set_broker_connected(live.broker_up);
    resp->set_commit_latency_ms_last(live.last_commit_ms);
    resp->set_uptime_seconds(std::chrono::duration_cast<std::chrono::seconds>(
                                 std::chrono::steady_clock::now() - started_)
                                 .count());
    return grpc::Status::OK;
  }

 private:
  ApiOptions options_;
  store::ViewStore* store_;
  StatusSource* status_;
  std::chrono::steady_clock::time_point started_;
};

class ApiServerImpl final : public ApiServer {
 public:
  ApiServerImpl(const ApiOptions& options, store::ViewStore* store, StatusSource* status)
      : customers_(store), admin_(options, store, status) {}

  absl::Status Start(const std::string& listen, std::shared_ptr<spdlog::logger> log) {
    grpc::EnableDefaultHealthCheckService(true);
    grpc::reflection::InitProtoReflectionServerBuilderPlugin();
    grpc::ServerBuilder builder;
    builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&customers_);
    builder.RegisterService(&admin_);
    server_ = builder.BuildAndStart();
    if (!server_ || port_ == 0) {
      return absl::UnavailableError(absl::StrCat("cannot listen on ", listen,
                                                 " (address in use or not local?)"));
    }
    log->info("gRPC listening on {} (port {})", listen, port_);
    return absl::OkStatus();
  }

  int port() const override { return port_; }

  void Shutdown() override {
    if (server_ && !shut_down_) {
      shut_down_ = true;
      server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
    }
  }

  ~ApiServerImpl() override { Shutdown(); }

 private:
  CustomerServiceImpl customers_;
  AdminServiceImpl admin_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  bool shut_down_ = false;
};

}  // namespace

absl::StatusOr<std::unique_ptr<ApiServer>> ApiServer::Start(const ApiOptions& options,
                                                            store::ViewStore* store,
                                                            StatusSource* status,
                                                            std::shared_ptr<spdlog::logger> log) {
  if (!log) log = spdlog::default_logger();
  auto server = std::make_unique<ApiServerImpl>(options, store, status);
  if (absl::Status s = server->Start(options.listen, log); !s.ok()) return s;
  return std::unique_ptr<ApiServer>(std::move(server));
}

}  // namespace lifecycle::api
