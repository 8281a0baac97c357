#include "services/api/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <google/protobuf/arena.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <fstream>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "grpc/health/v1/health.pb.h"
#include "lifecycle/v1/service.grpc.pb.h"
#include "projections/validate.h"
#include "services/api/metrics.h"
#include "services/api/validation.h"
#include "services/stream/kafka.h"
#include "spdlog/spdlog.h"

namespace lifecycle::api {
namespace {

namespace v1 = lifecycle::v1;
using grpc::ServerContext;
using grpc::Status;
using grpc::StatusCode;

Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return Status::OK;
  StatusCode code = StatusCode::INTERNAL;
  switch (s.code()) {
    case absl::StatusCode::kInvalidArgument: code = StatusCode::INVALID_ARGUMENT; break;
    case absl::StatusCode::kNotFound: code = StatusCode::NOT_FOUND; break;
    case absl::StatusCode::kUnavailable: code = StatusCode::UNAVAILABLE; break;
    case absl::StatusCode::kDeadlineExceeded: code = StatusCode::DEADLINE_EXCEEDED; break;
    case absl::StatusCode::kDataLoss: code = StatusCode::DATA_LOSS; break;
    case absl::StatusCode::kUnauthenticated: code = StatusCode::UNAUTHENTICATED; break;
    case absl::StatusCode::kPermissionDenied: code = StatusCode::PERMISSION_DENIED; break;
    default: break;
  }
  return Status(code, std::string(s.message()));
}

const char* DimensionKey(v1::Dimension d) {
  switch (d) {
    case v1::DIMENSION_STAGE: return "stage";
    case v1::DIMENSION_GRADE: return "grade";
    case v1::DIMENSION_TIER: return "tier";
    case v1::DIMENSION_RFM_SEGMENT: return "rfm_segment";
    case v1::DIMENSION_REGION: return "region";
    case v1::DIMENSION_VEHICLE_MODEL: return "vehicle_model";
    case v1::DIMENSION_INDUSTRY: return "industry";
    case v1::DIMENSION_AGE_BAND: return "age_band";
    case v1::DIMENSION_WARRANTY_STATUS: return "warranty_status";
    case v1::DIMENSION_ACTIVITY_BUCKET: return "activity_bucket";
    case v1::DIMENSION_LOST_DEAL_REASON: return "lost_deal_reason";
    case v1::DIMENSION_ALERT_KIND: return "alert_kind";
    case v1::DIMENSION_STAGE_TRANSITION: return "stage_transition";
    case v1::DIMENSION_RFM_GRID: return "rfm_grid";
    case v1::DIMENSION_LOST_PROSPECTS: return "lost_prospects";
    case v1::DIMENSION_VEHICLE_MODEL_BY_ACTIVITY: return "vehicle_model_by_activity";
    case v1::DIMENSION_WARRANTY_BY_ACTIVITY: return "warranty_by_activity";
    case v1::DIMENSION_LOST_DEALS: return "lost_deals";
    default: return nullptr;
  }
}

// The dimensions kept for the year before the trailing 12 months too.
bool HasYearEarlier(v1::Dimension d) {
  return d == v1::DIMENSION_ACTIVITY_BUCKET || d == v1::DIMENSION_VEHICLE_MODEL_BY_ACTIVITY ||
         d == v1::DIMENSION_WARRANTY_BY_ACTIVITY;
}

// The state shared by the services: store, status, producer, auth, metrics.
class Core {
 public:
  Core(const ApiOptions& o, const ApiDeps& d) : options(o), deps(d), auth(o.tokens) {}

  // Authenticates, runs `body`, and counts the request by method and code.
  template <typename Body>
  Status Serve(grpc::ServerContextBase* ctx, const char* method, Role role, Body body) {
    Status s = ToGrpc(auth.Check(ctx, role));
    if (s.ok()) s = body();
    Count(method, s);
    return s;
  }
  void Count(const char* method, const Status& s) {
    if (!deps.metrics) return;
    deps.metrics->Add("lifecycle_grpc_requests_total",
                      absl::StrCat("method=\"", method, "\",code=\"", CodeName(s.error_code()), "\""),
                      1);
  }

  Status Freshness(v1::Freshness* f) {
    auto metas = deps.store->ListMeta();
    if (!metas.ok()) return ToGrpc(metas.status());
    const std::optional<std::set<int32_t>> held = HeldPartitions();
    for (const auto& m : *metas) {
      if (!held || held->count(m.partition())) AddPosition(m, f);
    }
    return Status::OK;
  }

  // In a cluster (the router knows the group's plan): the partitions this instance
  // holds now, owned or replicated; its store may keep others it no longer follows.
  // Without one: nullopt (every stored partition is this instance's).
  // A replica counts once it is caught up: at most this many records behind its
  // partition's end (one catching up from far behind would answer with old views and
  // hold alerts back; a holder that is caught up answers instead).
  static constexpr int64_t kReplicaCaughtUpRecords = 5000;
  std::optional<std::set<int32_t>> HeldPartitions() {
    if (!InCluster()) return std::nullopt;
    StatusSource::Live live = deps.status->Snapshot();
    std::set<int32_t> held = std::move(live.assigned);
    if (!live.replicated.empty()) {
      auto metas = deps.store->ListMeta();
      std::map<int32_t, int64_t> next;
      if (metas.ok()) {
        for (const auto& m : *metas) next[m.partition()] = m.offset() + 1;
      }
      for (int32_t p : live.replicated) {
        auto hw = live.high_watermarks.find(p);
        if (hw != live.high_watermarks.end() && hw->second >= 0 &&
            hw->second - next[p] <= kReplicaCaughtUpRecords) {
          held.insert(p);
        }
      }
    }
    return held;
  }
  bool InCluster() { return deps.router && deps.status && !deps.router->Holders(0).empty(); }

  // Partitions of a cluster grouped by the instance to ask for them: this one ("") for
  // those it holds, otherwise the first holder (owner first) not in `avoid`. A
  // partition nobody reachable holds is under `unheld`.
  // `prefer`: partition -> the holder already serving it (kept while it holds it).
  std::map<std::string, std::vector<int32_t>> PartitionsByHolder(
      const std::set<std::string>& avoid, std::vector<int32_t>* unheld,
      const std::map<int32_t, std::string>& prefer = {}) {
    std::map<std::string, std::vector<int32_t>> out;
    const std::set<int32_t> held = HeldPartitions().value_or(std::set<int32_t>());
    const std::string self = deps.router->Self();
    for (int32_t p = 0; p < deps.router->partitions(); ++p) {
      const std::vector<std::string> holders = deps.router->Holders(p);
      if (held.count(p)) {
        out[""].push_back(p);  // owned here, or replicated and caught up
        continue;
      }
      std::string to;
      if (auto it = prefer.find(p); it != prefer.end() && !avoid.count(it->second) &&
                                    std::find(holders.begin(), holders.end(), it->second) !=
                                        holders.end()) {
        to = it->second;
      }
      for (const std::string& h : holders) {
        if (!to.empty()) break;
        if (!h.empty() && h != self && !avoid.count(h)) to = h;
      }
      if (to.empty() && std::find(holders.begin(), holders.end(), self) != holders.end()) {
        out[""].push_back(p);  // no other holder answers: this one, behind as it may be
      } else if (to.empty()) {
        if (unheld) unheld->push_back(p);
      } else {
        out[to].push_back(p);
      }
    }
    return out;
  }

  static void AddPosition(const v1::PartitionMeta& m, v1::Freshness* f) {
    auto* p = f->add_partitions();
    p->set_partition(m.partition());
    p->set_offset(m.offset());
    if (m.has_stream_time()) *p->mutable_stream_time() = m.stream_time();
  }

  static const char* CodeName(StatusCode c) {
    switch (c) {
      case StatusCode::OK: return "OK";
      case StatusCode::CANCELLED: return "CANCELLED";
      case StatusCode::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
      case StatusCode::DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
      case StatusCode::NOT_FOUND: return "NOT_FOUND";
      case StatusCode::PERMISSION_DENIED: return "PERMISSION_DENIED";
      case StatusCode::UNAUTHENTICATED: return "UNAUTHENTICATED";
      case StatusCode::UNAVAILABLE: return "UNAVAILABLE";
      case StatusCode::DATA_LOSS: return "DATA_LOSS";
      case StatusCode::UNIMPLEMENTED: return "UNIMPLEMENTED";
      default: return "INTERNAL";
    }
  }

  // Commit notifications for alert subscribers.
  void Notify() {
    {
      std::lock_guard<std::mutex> lock(mu);
      ++generation;
    }
    cv.notify_all();
  }
  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mu);
      stopping = true;
    }
    cv.notify_all();
  }
  // Waits until a commit after `*seen` (or up to `ms`); false when stopping.
  bool WaitForCommit(uint64_t* seen, int ms) {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait_for(lock, std::chrono::milliseconds(ms),
                [&] { return stopping || generation != *seen; });
    *seen = generation;
    return !stopping;
  }

  // The instances to ask for a customer's views instead of this one: the holders of
  // its partition, owner first, when this instance is not one of them. Empty (serve
  // here) without a router, for a call another instance forwarded (no second hop), for
  // an id that is not valid, or when nobody is known to hold the partition.
  std::vector<std::string> ForwardTargets(grpc::ServerContextBase* ctx, const std::string& id) {
    if (!deps.router || id.empty() || !projections::ValidateCustomerId(id).ok()) return {};
    if (ctx->client_metadata().count(kForwardedHeader)) return {};
    const int32_t p = deps.router->PartitionOf(id);
    if (p < 0) return {};
    std::vector<std::string> holders = deps.router->Holders(p);
    const std::string self = deps.router->Self();
    if (std::find(holders.begin(), holders.end(), self) != holders.end()) return {};
    for (const std::string& h : deps.router->FormerHolders(p)) holders.push_back(h);
    std::erase(holders, std::string());
    std::erase(holders, self);
    return holders;
  }

  // A cluster-wide read: `local(partitions, part)` for the partitions held here,
  // `remote(holder, partitions, part)` for each other group of partitions; a group
  // whose holder is unavailable is asked of the next holder (three more tries). The
  // parts come back in `parts`, one per group.
  template <typename Resp, typename Local, typename Remote>
  Status FanOut(std::vector<Resp>* parts, Local local, Remote remote) {
    std::set<std::string> avoid;
    for (int attempt = 0;; ++attempt) {
      std::vector<int32_t> unheld;
      const auto groups = PartitionsByHolder(avoid, &unheld);
      if (!unheld.empty()) {
        return Status(StatusCode::UNAVAILABLE,
                      absl::StrCat("no instance that answers holds partition(s) ",
                                   absl::StrJoin(unheld, ",")));
      }
      parts->assign(groups.size(), Resp());
      Status failed;
      std::string failed_at;
      size_t i = 0;
      for (const auto& [holder, partitions] : groups) {
        Resp* part = &(*parts)[i++];
        if (holder.empty()) {
          if (Status s = local(std::set<int32_t>(partitions.begin(), partitions.end()), part);
              !s.ok()) {
            return s;
          }
        } else if (Status s = remote(holder, partitions, part); !s.ok()) {
          failed = s;
          failed_at = holder;
          break;
        }
      }
      if (failed.ok()) return Status::OK;
      if (attempt >= 3 || (failed.error_code() != StatusCode::UNAVAILABLE &&
                           failed.error_code() != StatusCode::DEADLINE_EXCEEDED)) {
        return failed;
      }
      avoid.insert(failed_at);
    }
  }

  // A channel to another instance, kept for later calls.
  std::shared_ptr<grpc::Channel> ChannelTo(const std::string& address) {
    std::lock_guard<std::mutex> lock(channels_mu);
    auto& ch = channels[address];
    if (!ch) {
      std::shared_ptr<grpc::ChannelCredentials> creds = grpc::InsecureChannelCredentials();
      if (!options.tls_cert_file.empty()) {
        // Instances of one deployment share a certificate: it is the root to trust.
        grpc::SslCredentialsOptions ssl;
        ssl.pem_root_certs = ReadPem(options.tls_cert_file);
        creds = grpc::SslCredentials(ssl);
      }
      ch = grpc::CreateChannel(address, creds);
    }
    return ch;
  }

  // What a call passes on to the instance it is forwarded to: the caller's token, the
  // mark that it was forwarded, and a deadline no later than its own.
  void PrepareForward(grpc::ServerContextBase* from, grpc::ClientContext* to) {
    const auto& md = from->client_metadata();
    if (auto it = md.find("authorization"); it != md.end()) {
      to->AddMetadata("authorization", std::string(it->second.data(), it->second.size()));
    }
    to->AddMetadata(kForwardedHeader, "1");
    auto deadline = std::chrono::system_clock::now() + std::chrono::seconds(5);
    to->set_deadline(std::min(deadline, from->deadline()));
  }

  static constexpr const char* kForwardedHeader = "lifecycle-forwarded";
  static constexpr const char* kServedByHeader = "lifecycle-served-by";

  static std::string ReadPem(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  ApiOptions options;
  ApiDeps deps;
  Authenticator auth;
  std::mutex channels_mu;
  std::map<std::string, std::shared_ptr<grpc::Channel>> channels;
  std::mutex mu;
  std::condition_variable cv;
  uint64_t generation = 0;
  bool stopping = false;
};

bool AlertMatches(const v1::Alert& a, const google::protobuf::RepeatedField<int>& kinds,
                  v1::Severity min_severity, const std::string& region,
                  const std::string& advisor) {
  if (!kinds.empty() && std::find(kinds.begin(), kinds.end(), a.kind()) == kinds.end()) return false;
  if (a.severity() < min_severity) return false;
  if (!region.empty() && a.region() != region) return false;
  if (!advisor.empty() && a.advisor_id() != advisor) return false;
  return true;
}

// The reads run on gRPC's callback API: answered on the thread that received them,
// with no hand-off to a worker pool. `body` fills the response and gives the status.
template <typename Body>
grpc::ServerUnaryReactor* Answer(grpc::CallbackServerContext* ctx, Body body) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(body());
  return reactor;
}

// A unary call answered by another instance: tries `targets` in order while they are
// unavailable, and answers with what the first that answers says (its freshness, and
// its address in the "lifecycle-served-by" header). Deletes itself when done.
template <typename Req, typename Resp>
class Forwarding {
 public:
  // Starts the call on a channel: stub->async()->Method(client, req, resp, done).
  using Start = std::function<void(const std::shared_ptr<grpc::Channel>&, grpc::ClientContext*,
                                   const Req*, Resp*, std::function<void(Status)>)>;

  // `missing_here`: this instance's own answer, NOT_FOUND (it may be a holder catching
  // up). NOT_FOUND is the answer only when another holder answered and does not know the
  // customer either; when none of them answers (one just killed, say), the customer may
  // well exist: UNAVAILABLE, so the client asks again.
  static grpc::ServerUnaryReactor* Run(Core* core, grpc::CallbackServerContext* ctx,
                                       const char* method, std::vector<std::string> targets,
                                       const Req* req, Resp* resp, Start start,
                                       Status missing_here = Status::OK) {
    auto* f = new Forwarding(core, ctx, method, std::move(targets), req, resp, std::move(start));
    f->missing_here_ = !missing_here.ok();
    grpc::ServerUnaryReactor* reactor = f->reactor_;
    f->Next();
    return reactor;
  }

 private:
  Forwarding(Core* core, grpc::CallbackServerContext* ctx, const char* method,
             std::vector<std::string> targets, const Req* req, Resp* resp, Start start)
      : core_(core), ctx_(ctx), reactor_(ctx->DefaultReactor()), method_(method),
        targets_(std::move(targets)), req_(req), resp_(resp), start_(std::move(start)) {}

  void Next() {
    if (next_ >= targets_.size()) {
      if (!not_found_.ok()) {
        Finish(not_found_);  // every holder that answered does not know the customer
        return;
      }
      Finish(Status(StatusCode::UNAVAILABLE,
                    absl::StrCat(missing_here_ ? "this instance does not know the customer yet "
                                                 "and no other instance holding its partition "
                                                 "answers"
                                               : "no instance holding this customer's partition "
                                                 "answers",
                                 last_.ok() ? "" : absl::StrCat(" (", last_.error_message(), ")"))));
      return;
    }
    client_ = std::make_unique<grpc::ClientContext>();
    core_->PrepareForward(ctx_, client_.get());
    const std::string& target = targets_[next_];
    start_(core_->ChannelTo(target), client_.get(), req_, resp_, [this](Status s) { Done(s); });
  }

  void Done(Status s) {
    // A holder that does not know the customer may be catching up: the next may know it.
    const bool try_next = (s.error_code() == StatusCode::UNAVAILABLE ||
                           s.error_code() == StatusCode::DEADLINE_EXCEEDED ||
                           s.error_code() == StatusCode::NOT_FOUND) &&
                          std::chrono::system_clock::now() < ctx_->deadline();
    if (try_next) {
      if (s.error_code() == StatusCode::NOT_FOUND) {
        not_found_ = s;
      } else {
        last_ = s;
      }
      ++next_;
      resp_->Clear();
      Next();
      return;
    }
    if (s.ok()) ctx_->AddInitialMetadata(Core::kServedByHeader, targets_[next_]);
    Finish(s);
  }

  void Finish(Status s) {
    core_->Count(method_, s);
    if (core_->deps.metrics) {
      core_->deps.metrics->Add("lifecycle_grpc_forwarded_total",
                               absl::StrCat("method=\"", method_, "\",code=\"",
                                            Core::CodeName(s.error_code()), "\""),
                               1);
    }
    reactor_->Finish(s);
    delete this;
  }

  Core* core_;
  grpc::CallbackServerContext* ctx_;
  grpc::ServerUnaryReactor* reactor_;
  const char* method_;
  std::vector<std::string> targets_;
  size_t next_ = 0;
  Status last_;
  Status not_found_;  // the last other holder's NOT_FOUND
  bool missing_here_ = false;
  const Req* req_;
  Resp* resp_;
  Start start_;
  std::unique_ptr<grpc::ClientContext> client_;
};

// Forwards `method` when the customer lives on other instances (after checking the
// caller here); null when it is served here.
template <typename Req, typename Resp, typename Start>
grpc::ServerUnaryReactor* MaybeForward(Core* core, grpc::CallbackServerContext* ctx,
                                       const char* method, const std::string& customer_id,
                                       const Req* req, Resp* resp, Start start) {
  std::vector<std::string> targets = core->ForwardTargets(ctx, customer_id);
  if (targets.empty()) return nullptr;
  if (Status s = ToGrpc(core->auth.Check(ctx, Role::kRead)); !s.ok()) {
    core->Count(method, s);
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    reactor->Finish(s);
    return reactor;
  }
  return Forwarding<Req, Resp>::Run(core, ctx, method, std::move(targets), req, resp,
                                    std::move(start));
}

// Serves a customer's read here, or, when this instance does not know the customer but
// other instances hold its partition (this one may be a replica catching up), asks
// them before answering NOT_FOUND.
template <typename Req, typename Resp, typename Start, typename Local>
grpc::ServerUnaryReactor* HereOrHolders(Core* core, grpc::CallbackServerContext* ctx,
                                        const char* method, const std::string& customer_id,
                                        const Req* req, Resp* resp, Start start, Local local) {
  Status s = core->Serve(ctx, method, Role::kRead, local);
  const bool forwarded = ctx->client_metadata().count(Core::kForwardedHeader) > 0;
  Router* router = core->deps.router;
  if (s.error_code() == StatusCode::NOT_FOUND && forwarded && core->InCluster() &&
      !core->deps.status->Snapshot().assigned.count(router->PartitionOf(customer_id))) {
    // A standby follows its owner: that it does not know the customer yet says nothing
    // (the owner's NOT_FOUND does). The instance that asked goes on to the next holder.
    s = Status(StatusCode::UNAVAILABLE,
               "this instance holds the customer's partition as a standby and does not know "
               "the customer yet");
  }
  if (s.error_code() == StatusCode::NOT_FOUND && router && !forwarded && !router->Ready()) {
    // Started a moment ago: this store may hold none of the customer's partition.
    s = Status(StatusCode::UNAVAILABLE,
               "this instance is still learning which instances hold what; retry, or ask another");
  }
  if (s.error_code() == StatusCode::NOT_FOUND && core->InCluster() && !forwarded) {
    const int32_t p = router->PartitionOf(customer_id);
    std::vector<std::string> others;
    for (const auto& list : {router->Holders(p), router->FormerHolders(p)}) {
      for (const std::string& h : list) {
        if (!h.empty() && h != router->Self() &&
            std::find(others.begin(), others.end(), h) == others.end()) {
          others.push_back(h);
        }
      }
    }
    if (!others.empty()) {
      resp->Clear();
      return Forwarding<Req, Resp>::Run(core, ctx, method, std::move(others), req, resp,
                                        std::move(start), s);
    }
  }
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(s);
  return reactor;
}

using CustomerCallbackService = v1::CustomerService::WithCallbackMethod_GetCustomer<
    v1::CustomerService::WithCallbackMethod_GetHistory<
        v1::CustomerService::WithCallbackMethod_ListCustomers<
            v1::CustomerService::WithCallbackMethod_GetSummary<v1::CustomerService::Service>>>>;

// A unary method's request and answer on one arena per call, whose first block is part
// of the holder: GetCustomer's view is built in place and freed at once, not message by
// message.
template <typename Req, typename Resp>
class ArenaMessages final : public grpc::MessageHolder<Req, Resp> {
 public:
  ArenaMessages() : arena_(FirstBlock(block_, sizeof(block_))) {
    this->set_request(google::protobuf::Arena::CreateMessage<Req>(&arena_));
    this->set_response(google::protobuf::Arena::CreateMessage<Resp>(&arena_));
  }
  void Release() override { delete this; }

  class Allocator final : public grpc::MessageAllocator<Req, Resp> {
   public:
    grpc::MessageHolder<Req, Resp>* AllocateMessages() override { return new ArenaMessages; }
  };

 private:
  static google::protobuf::ArenaOptions FirstBlock(char* block, size_t size) {
    google::protobuf::ArenaOptions o;
    o.initial_block = block;
    o.initial_block_size = size;
    return o;
  }
  alignas(16) char block_[8 << 10];  // a typical view fits (larger ones take more blocks)
  google::protobuf::Arena arena_;
};

class CustomerServiceImpl final : public CustomerCallbackService {
 public:
  explicit CustomerServiceImpl(Core* core) : core_(core) {
    SetMessageAllocatorFor_GetCustomer(&get_customer_messages_);
  }

  grpc::ServerUnaryReactor* GetCustomer(grpc::CallbackServerContext* ctx,
                                        const v1::GetCustomerRequest* req,
                                        v1::GetCustomerResponse* resp) override {
    auto start = [](const auto& ch, auto* c, auto* q, auto* a, auto done) {
      v1::CustomerService::NewStub(ch)->async()->GetCustomer(c, q, a, done);
    };
    if (auto* r = MaybeForward(core_, ctx, "GetCustomer", req->customer_id(), req, resp, start)) {
      return r;
    }
    return HereOrHolders(core_, ctx, "GetCustomer", req->customer_id(), req, resp, start, [&] {
      store::CustomerRead read;
      if (Status s = ReadKnown(req->customer_id(), &read, false, resp->mutable_customer()); !s.ok()) {
        return s;
      }
      Core::AddPosition(read.meta, resp->mutable_freshness());
      return Status::OK;
    });
  }

  grpc::ServerUnaryReactor* GetHistory(grpc::CallbackServerContext* ctx,
                                       const v1::GetHistoryRequest* req,
                                       v1::GetHistoryResponse* resp) override {
    auto start = [](const auto& ch, auto* c, auto* q, auto* a, auto done) {
      v1::CustomerService::NewStub(ch)->async()->GetHistory(c, q, a, done);
    };
    if (auto* r = MaybeForward(core_, ctx, "GetHistory", req->customer_id(), req, resp, start)) {
      return r;
    }
    return HereOrHolders(core_, ctx, "GetHistory", req->customer_id(), req, resp, start,
                         [&] { return History(*req, resp); });
  }

  grpc::ServerUnaryReactor* ListCustomers(grpc::CallbackServerContext* ctx,
                                          const v1::ListCustomersRequest* req,
                                          v1::ListCustomersResponse* resp) override {
    return Answer(ctx, [&] {
      return core_->Serve(ctx, "ListCustomers", Role::kRead,
                          [&] { return ListAcross(ctx, *req, resp); });
    });
  }

  grpc::ServerUnaryReactor* GetSummary(grpc::CallbackServerContext* ctx,
                                       const v1::GetSummaryRequest* req,
                                       v1::GetSummaryResponse* resp) override {
    return Answer(ctx, [&] { return Summary(ctx, *req, resp); });
  }

 private:
  Status History(const v1::GetHistoryRequest& request, v1::GetHistoryResponse* resp) {
    const v1::GetHistoryRequest* req = &request;
    return [&] {
      store::CustomerRead read;
      if (Status s = ReadKnown(req->customer_id(), &read, /*with_p_alive_series=*/true); !s.ok()) {
        return s;
      }
      auto alerts = core_->deps.store->ReadCustomerAlerts(req->customer_id());
      if (!alerts.ok()) return ToGrpc(alerts.status());
      for (auto& t : *read.view.mutable_transitions()) {
        *resp->add_transitions() = std::move(t);
      }
      for (auto& a : *alerts) *resp->add_alerts() = std::move(a);
      for (const auto& [at, p] : read.p_alive_series) {
        v1::PAlivePoint* pt = resp->add_p_alive();
        pt->mutable_at()->set_seconds(at);
        pt->set_p_alive(p);
      }
      resp->mutable_activity_days()->Add(read.activity_days.begin(), read.activity_days.end());
      Core::AddPosition(read.meta, resp->mutable_freshness());
      return Status::OK;
    }();
  }

  Status Summary(grpc::CallbackServerContext* ctx, const v1::GetSummaryRequest& request,
                 v1::GetSummaryResponse* resp) {
    const v1::GetSummaryRequest* req = &request;
    return core_->Serve(ctx, "GetSummary", Role::kRead, [&] {
      if (!v1::Dimension_IsValid(req->group_by())) {
        return Invalid("group_by", absl::StrCat("unknown dimension ", req->group_by()));
      }
      if (Status s = CheckFilter("advisor_id", req->advisor_id()); !s.ok()) return s;
      const std::optional<std::set<int32_t>> held = core_->HeldPartitions();
      if (!req->partitions().empty()) {
        // Another instance asks for the partitions it does not hold.
        if (!ctx->client_metadata().count(Core::kForwardedHeader)) {
          return Invalid("partitions", "is for instances of a cluster asking each other");
        }
        std::set<int32_t> asked(req->partitions().begin(), req->partitions().end());
        for (int32_t p : asked) {
          if (held && !held->count(p)) {
            return Status(StatusCode::UNAVAILABLE,
                          absl::StrCat("partition ", p, " is not held here; ask a holder"));
          }
        }
        return LocalSummary(*req, &asked, resp);
      }
      if (!held || static_cast<int>(held->size()) >= core_->deps.router->partitions()) {
        return LocalSummary(*req, nullptr, resp);  // every partition here (one instance)
      }
      // A cluster: the partitions held here from this store, each other group from a
      // holder of it (owner first, the next holder when one does not answer), merged.
      std::vector<v1::GetSummaryResponse> parts;
      Status s = core_->FanOut(
          &parts,
          [&](const std::set<int32_t>& mine, v1::GetSummaryResponse* part) {
            return LocalSummary(*req, &mine, part);
          },
          [&](const std::string& holder, const std::vector<int32_t>& partitions,
              v1::GetSummaryResponse* part) {
            v1::GetSummaryRequest q = *req;
            for (int32_t p : partitions) q.add_partitions(p);
            grpc::ClientContext c;
            core_->PrepareForward(ctx, &c);
            return v1::CustomerService::NewStub(core_->ChannelTo(holder))->GetSummary(&c, q, part);
          });
      if (!s.ok()) return s;
      for (const auto& part : parts) MergeSummary(part, resp);
      return Status::OK;
    });
  }

  // Adds one group of partitions' summary to `into` (counts summed by key, averages
  // recomputed, freshness joined).
  static void MergeSummary(const v1::GetSummaryResponse& part, v1::GetSummaryResponse* into) {
    into->set_customers(into->customers() + part.customers());
    for (const auto& p : part.freshness().partitions()) *into->mutable_freshness()->add_partitions() = p;
    for (const auto& dc : part.dimensions()) {
      v1::DimensionCounts* target = nullptr;
      for (auto& d : *into->mutable_dimensions()) {
        if (d.dimension() == dc.dimension()) target = &d;
      }
      if (!target) {
        target = into->add_dimensions();
        target->set_dimension(dc.dimension());
      }
      std::map<std::string, v1::Count> by_key;
      for (auto& c : *target->mutable_counts()) by_key[c.key()] = std::move(c);
      for (const auto& c : dc.counts()) {
        v1::Count& sum = by_key[c.key()];
        sum.set_key(c.key());
        sum.set_customers(sum.customers() + c.customers());
        sum.set_revenue_minor(sum.revenue_minor() + c.revenue_minor());
        sum.set_activity_days(sum.activity_days() + c.activity_days());
        sum.set_average_ticket_minor(sum.activity_days() > 0
                                         ? sum.revenue_minor() / sum.activity_days()
                                         : 0);
      }
      target->clear_counts();
      for (auto& [key, c] : by_key) {
        // As a single store sums them: a key whose sum is nothing is left out.
        if (c.customers() == 0 && c.revenue_minor() == 0) continue;
        *target->add_counts() = std::move(c);
      }
    }
  }

  // The summary of this store: of `partitions` when given, else of every partition.
  Status LocalSummary(const v1::GetSummaryRequest& request, const std::set<int32_t>* partitions,
                      v1::GetSummaryResponse* resp) {
    const v1::GetSummaryRequest* req = &request;
    {
      v1::Freshness all;
      if (Status s = core_->Freshness(&all); !s.ok()) return s;
      for (const auto& p : all.partitions()) {
        if (!partitions || partitions->count(p.partition())) {
          *resp->mutable_freshness()->add_partitions() = p;
        }
      }
    }
    Router* router = core_->deps.router;
    auto partition_of = [router](std::string_view id) { return router->PartitionOf(id); };
    auto counters =
        req->advisor_id().empty()
            ? (partitions ? core_->deps.store->ReadAggregatesOf(*partitions, std::string())
                          : core_->deps.store->ReadAggregates(-1, std::string()))
            : core_->deps.store->ReadAdvisorAggregates(
                  req->advisor_id(), partitions && router ? partitions : nullptr,
                  router ? std::function<int32_t(std::string_view)>(partition_of) : nullptr);
    if (!counters.ok()) return ToGrpc(counters.status());
    {
      // An advisor's counters are under "@<advisor>/"; the year before the trailing 12
      // months under "prev/".
      const std::string scope =
          req->advisor_id().empty() ? std::string() : absl::StrCat("@", req->advisor_id(), "/");
      resp->set_customers((*counters)[absl::StrCat(scope, "customers/all")].customers());
      for (int d = v1::DIMENSION_STAGE; d <= v1::DIMENSION_LOST_DEALS; ++d) {
        if (req->group_by() != v1::DIMENSION_UNSPECIFIED && req->group_by() != d) continue;
        const auto dim = static_cast<v1::Dimension>(d);
        auto* dc = resp->add_dimensions();
        dc->set_dimension(dim);
        if (req->year_earlier() && !HasYearEarlier(dim)) continue;
        const std::string prefix =
            absl::StrCat(scope, req->year_earlier() ? "prev/" : "", DimensionKey(dim), "/");
        for (auto it = counters->lower_bound(prefix);
             it != counters->end() && it->first.rfind(prefix, 0) == 0; ++it) {
          const v1::AggregateValue& v = it->second;
          if (v.customers() == 0 && v.revenue_minor() == 0) continue;
          auto* c = dc->add_counts();
          c->set_key(it->first.substr(prefix.size()));
          c->set_customers(v.customers());
          c->set_revenue_minor(v.revenue_minor());
          c->set_activity_days(v.activity_days());
          if (v.activity_days() > 0) {
            c->set_average_ticket_minor(v.revenue_minor() / v.activity_days());
          }
        }
      }
      return Status::OK;
    }
  }

  // A valid id of a customer the store knows, with the meta of its partition; the view
  // in `into` when given (ViewStore::ReadCustomerWithMeta).
  Status ReadKnown(const std::string& id, store::CustomerRead* out,
                   bool with_p_alive_series = false, v1::CustomerView* into = nullptr) {
    if (auto s = projections::ValidateCustomerId(id); !s.ok()) return ToGrpc(s);
    auto read = core_->deps.store->ReadCustomerWithMeta(id, with_p_alive_series, into);
    if (!read.ok()) return ToGrpc(read.status());
    if (!read->has_value()) {
      return Status(StatusCode::NOT_FOUND, absl::StrCat("customer \"", id, "\" is not known"));
    }
    *out = std::move(**read);
    return Status::OK;
  }

  // Serves a page from one listing index (the first filter that has one), checking
  // the other filters on the views it reads. A request reads at most 20 pages' worth
  // of index entries; a page can then come back short, with a token to go on.
  // A page of customers: in a cluster, this instance's partitions from its store and
  // each other group of partitions from a holder of it, merged in the listing's order
  // (stable paging: a page token is a position in that order, which every instance
  // resumes from).
  Status ListAcross(grpc::CallbackServerContext* ctx, const v1::ListCustomersRequest& req,
                    v1::ListCustomersResponse* resp) {
    ListPlan plan;
    if (Status s = PlanListCustomers(req, core_->options, &plan); !s.ok()) return s;
    const std::optional<std::set<int32_t>> held = core_->HeldPartitions();
    if (!req.partitions().empty()) {
      if (!ctx->client_metadata().count(Core::kForwardedHeader)) {
        return Invalid("partitions", "is for instances of a cluster asking each other");
      }
      std::set<int32_t> asked(req.partitions().begin(), req.partitions().end());
      for (int32_t p : asked) {
        if (held && !held->count(p)) {
          return Status(StatusCode::UNAVAILABLE,
                        absl::StrCat("partition ", p, " is not held here; ask a holder"));
        }
      }
      return List(ctx, req, &asked, resp);
    }
    // Every partition here (one instance): this store, unfiltered.
    if (!held || static_cast<int>(held->size()) >= core_->deps.router->partitions()) {
      return List(ctx, req, nullptr, resp);
    }
    std::vector<v1::ListCustomersResponse> parts;
    Status s = core_->FanOut(
        &parts,
        [&](const std::set<int32_t>& mine, v1::ListCustomersResponse* part) {
          v1::ListCustomersRequest q = req;
          for (int32_t p : mine) q.add_partitions(p);
          return List(ctx, q, &mine, part);
        },
        [&](const std::string& holder, const std::vector<int32_t>& partitions,
            v1::ListCustomersResponse* part) {
          v1::ListCustomersRequest q = req;
          for (int32_t p : partitions) q.add_partitions(p);
          grpc::ClientContext c;
          core_->PrepareForward(ctx, &c);
          return v1::CustomerService::NewStub(core_->ChannelTo(holder))->ListCustomers(&c, q, part);
        });
    if (!s.ok()) return s;
    return MergePages(req, plan, std::move(parts), resp);
  }

  // A position in a listing's order, from a page token.
  struct Position {
    std::string key;   // index key (ordered by id)
    double score = 0;  // ranked: (score, id)
    std::string id;
  };
  Status PositionOf(const v1::ListCustomersRequest& req, const std::string& token, Position* out) {
    v1::ListCustomersRequest q = req;
    q.clear_partitions();
    q.set_page_token(token);
    ListPlan plan;
    if (Status s = PlanListCustomers(q, core_->options, &plan); !s.ok()) {
      return Status(StatusCode::INTERNAL, absl::StrCat("a holder's position: ", s.error_message()));
    }
    out->key = plan.after;
    out->score = plan.rank.after_score;
    out->id = plan.rank.after_id;
    return Status::OK;
  }
  static bool Before(bool ranked, const Position& a, const Position& b) {
    return ranked ? std::tie(a.score, a.id) < std::tie(b.score, b.id) : a.key < b.key;
  }

  // Merges the groups' pages: their customers in the order, up to the page size and
  // no further than the nearest position a group with more stopped at.
  Status MergePages(const v1::ListCustomersRequest& req, const ListPlan& plan,
                    std::vector<v1::ListCustomersResponse> parts, v1::ListCustomersResponse* resp) {
    struct Item {
      Position at;
      std::string token;
      v1::CustomerView* view;
    };
    std::vector<Item> items;
    std::optional<Position> frontier;
    std::string frontier_token;
    for (auto& part : parts) {
      for (const auto& p : part.freshness().partitions()) *resp->mutable_freshness()->add_partitions() = p;
      if (part.positions_size() != part.customers_size()) {
        return Status(StatusCode::INTERNAL, "a holder's page came without positions");
      }
      for (int i = 0; i < part.customers_size(); ++i) {
        Item it;
        if (Status s = PositionOf(req, part.positions(i), &it.at); !s.ok()) return s;
        it.token = part.positions(i);
        it.view = part.mutable_customers(i);
        items.push_back(std::move(it));
      }
      if (!part.next_page_token().empty()) {
        Position f;
        if (Status s = PositionOf(req, part.next_page_token(), &f); !s.ok()) return s;
        if (!frontier || Before(plan.ranked, f, *frontier)) {
          frontier = f;
          frontier_token = part.next_page_token();
        }
      }
    }
    std::sort(items.begin(), items.end(),
              [&](const Item& a, const Item& b) { return Before(plan.ranked, a.at, b.at); });
    size_t taken = 0;
    for (; taken < items.size() && static_cast<int>(taken) < plan.page_size; ++taken) {
      if (frontier && Before(plan.ranked, *frontier, items[taken].at)) break;
      *resp->add_customers() = std::move(*items[taken].view);
    }
    if (static_cast<int>(taken) == plan.page_size && (taken < items.size() || frontier)) {
      resp->set_next_page_token(items[taken - 1].token);
    } else if (frontier) {
      resp->set_next_page_token(frontier_token);
    }
    return Status::OK;
  }

  // One page from this store; with `only`, of those partitions' customers only, each
  // with its position (for the instance merging pages).
  Status List(grpc::CallbackServerContext* ctx, const v1::ListCustomersRequest& req,
              const std::set<int32_t>* only, v1::ListCustomersResponse* resp) {
    ListPlan plan;
    if (Status s = PlanListCustomers(req, core_->options, &plan); !s.ok()) return s;
    if (plan.ranked) return ListRanked(ctx, req, &plan, only, resp);
    Router* router = core_->deps.router;
    auto outside = [&](const std::string& id) {
      return only && router && !only->count(router->PartitionOf(id));
    };
    const int page_size = plan.page_size;
    const std::string& prefix = plan.listing.prefix;
    const std::string& end_before = plan.listing.end_before;
    std::string after = plan.after;
    if (Status s = core_->Freshness(resp->mutable_freshness()); !s.ok()) return s;
    // P(alive) in each view as of its partition's stream time.
    std::map<int32_t, int64_t> stream_times;
    for (const auto& p : resp->freshness().partitions()) {
      stream_times[p.partition()] = p.stream_time().seconds();
    }
    const size_t budget = static_cast<size_t>(page_size) * 20;
    size_t scanned = 0;
    bool exhausted = false;
    std::string last;
    while (resp->customers_size() < page_size && scanned < budget) {
      if (ctx->IsCancelled()) return Status(StatusCode::CANCELLED, "cancelled");
      auto keys = core_->deps.store->ScanKeys(prefix, after, end_before,
                                              static_cast<size_t>(page_size) * 2);
      if (!keys.ok()) return ToGrpc(keys.status());
      if (keys->empty()) {
        exhausted = true;
        break;
      }
      for (const auto& key : *keys) {
        ++scanned;
        last = key;
        const std::string id = plan.listing.CustomerOf(key);
        if (outside(id)) {
          if (scanned >= budget) break;
          continue;
        }
        auto st = core_->deps.store->ReadCustomer(id, &stream_times);
        if (!st.ok()) return ToGrpc(st.status());
        if (!st->has_value()) continue;  // raced with a commit that moved it
        if (Matches(req, **st)) {
          *resp->add_customers() = std::move(**st);
          if (only) resp->add_positions(EncodeToken({prefix, key}));
        }
        if (resp->customers_size() >= page_size || scanned >= budget) break;
      }
      after = last;
      if (keys->size() < static_cast<size_t>(page_size) * 2 &&
          resp->customers_size() < page_size && scanned < budget) {
        exhausted = true;
        break;
      }
    }
    if (!exhausted && !last.empty()) resp->set_next_page_token(EncodeToken({prefix, last}));
    return Status::OK;
  }

  // Serves a page ranked by churn risk or expected value as of each partition's stream
  // time (ViewStore::Rank computes them when asked). Stage, grade, tier and the churn
  // risk floor are applied by the ranking; region and RFM segment on the views read,
  // so with those a request ranks up to 20 pages' worth and a page can come back short.
  Status ListRanked(grpc::CallbackServerContext* ctx, const v1::ListCustomersRequest& req,
                    ListPlan* plan, const std::set<int32_t>* only,
                    v1::ListCustomersResponse* resp) {
    Router* router = core_->deps.router;
    const bool filtering = only && router && router->partitions() > 0;
    if (Status s = core_->Freshness(resp->mutable_freshness()); !s.ok()) return s;
    std::map<int32_t, int64_t> stream_times;
    std::vector<int64_t> by_partition;
    for (const auto& p : resp->freshness().partitions()) {
      stream_times[p.partition()] = p.stream_time().seconds();
      if (p.partition() >= static_cast<int32_t>(by_partition.size())) {
        by_partition.resize(static_cast<size_t>(p.partition()) + 1, 0);
      }
      by_partition[static_cast<size_t>(p.partition())] = p.stream_time().seconds();
    }
    const size_t page_size = static_cast<size_t>(plan->page_size);
    const bool more_filters = !req.region().empty() || !req.rfm_segment().empty();  // (advisor: ranked)
    plan->rank.stream_times = &by_partition;
    // Some partitions only: rank as many more as the others' customers take up.
    const size_t share =
        filtering ? (static_cast<size_t>(router->partitions()) + only->size() - 1) / only->size() + 1
                  : 1;
    plan->rank.limit = page_size * (more_filters ? 20 : 1) * share + 1;
    const auto ranked = core_->deps.store->Rank(plan->rank);
    if (!ranked.ok()) return ToGrpc(ranked.status());
    size_t used = 0;
    for (const auto& r : *ranked) {
      if (resp->customers_size() >= plan->page_size) break;
      if (ctx->IsCancelled()) return Status(StatusCode::CANCELLED, "cancelled");
      ++used;
      if (filtering && !only->count(router->PartitionOf(r.id))) continue;
      auto st = core_->deps.store->ReadCustomer(r.id, &stream_times);
      if (!st.ok()) return ToGrpc(st.status());
      if (!st->has_value()) continue;  // erased since it was ranked
      if (Matches(req, **st)) {
        *resp->add_customers() = std::move(**st);
        if (only) resp->add_positions(RankToken(plan->rank.order, r));
      }
    }
    // More may follow when the ranking was cut at its limit or not all of it was used.
    if (used > 0 && (used < ranked->size() || ranked->size() == plan->rank.limit)) {
      resp->set_next_page_token(RankToken(plan->rank.order, (*ranked)[used - 1]));
    }
    return Status::OK;
  }

  static bool Matches(const v1::ListCustomersRequest& r, const v1::CustomerView& v) {
    if (r.stage() != v1::STAGE_UNSPECIFIED && v.stage() != r.stage()) return false;
    if (r.grade() != v1::VALUE_GRADE_UNSPECIFIED && v.grade() != r.grade()) return false;
    if (r.tier() != v1::TIER_UNSPECIFIED && v.points().tier() != r.tier()) return false;
    if (!r.region().empty() && v.profile().region() != r.region()) return false;
    if (!r.rfm_segment().empty() && v.rfm().segment() != r.rfm_segment()) return false;
    if (!r.advisor_id().empty() && v.profile().advisor_id() != r.advisor_id()) return false;
    if (r.min_churn_risk() > 0) {
      if (v.activity().activity_days() == 0) return false;  // prospects have no churn risk
      if (1.0 - v.p_alive() < r.min_churn_risk() - 1e-9) return false;
    }
    return true;
  }

  Core* core_;
  ArenaMessages<v1::GetCustomerRequest, v1::GetCustomerResponse>::Allocator get_customer_messages_;
};

// One alert stream (AlertService.Subscribe) on the callback API: it writes what the
// feed hands it, one message at a time, and ends once (cancelled, failed, or the server
// stopping). It is kept alive by the feed's reference after gRPC is done with it.
class RemoteAlerts;

class Subscription final : public grpc::ServerWriteReactor<v1::AlertEnvelope> {
 public:
  Subscription(Core* core, v1::SubscribeRequest req, std::map<int32_t, int64_t> cursor)
      : core_(core), req_(std::move(req)), cursor_(std::move(cursor)),
        only_(req_.partitions().begin(), req_.partitions().end()) {}
  ~Subscription() override;

  // The feed's thread: reads the alerts of `partitions` (those this instance holds;
  // of a stream another instance asked for, those it asked for) after the cursor (up
  // to `limit` a partition) and starts writing the ones that match. Nothing is read
  // while earlier ones are queued. Returns false once the stream has ended (the feed
  // drops it).
  bool Fill(const std::vector<int32_t>& partitions, size_t limit) {
    std::map<int32_t, int64_t> from;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (ended_) return false;
      if (writing_ || !queue_.empty()) return true;
      from = cursor_;
    }
    std::vector<int32_t> reading;
    for (int32_t p : partitions) {
      if (only_.empty() || only_.count(p)) reading.push_back(p);
    }
    if (!only_.empty() && reading.size() < only_.size()) {
      End(Status(StatusCode::UNAVAILABLE,
                 "this instance no longer holds every partition asked for; ask a holder"));
      return false;
    }
    std::vector<v1::Alert> read;
    bool full = false;
    for (int32_t p : reading) {
      auto alerts = core_->deps.store->ReadAlerts(p, from[p], limit);
      if (!alerts.ok()) {
        End(ToGrpc(alerts.status()));
        return false;
      }
      full = full || alerts->size() >= limit;
      for (auto& a : *alerts) read.push_back(std::move(a));
    }
    bool none = true;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (auto& a : read) none = !Take(std::move(a)) && none;
    }
    if (full && none) core_->Notify();  // a full read, all filtered out: read on at once
    WriteNext();
    return true;
  }

  // An alert another instance streamed (it applied the filters): queued unless the
  // cursor is past it already. False once the stream has ended. Waits while much is
  // queued (the subscriber is slow).
  bool Deliver(v1::Alert a) {
    for (;;) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (ended_ || finishing_) return false;
        if (queue_.size() < 1024) {
          Take(std::move(a));
          break;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    WriteNext();
    return true;
  }

  // The cursor now (what a stream from another instance resumes from).
  std::map<int32_t, int64_t> Cursor() {
    std::lock_guard<std::mutex> lock(mu_);
    return cursor_;
  }
  const v1::SubscribeRequest& request() const { return req_; }
  // The subscriber's credentials, passed on to the instances it is streamed from.
  const std::string& token() const { return token_; }
  void set_token(std::string token) { token_ = std::move(token); }
  bool ended() {
    std::lock_guard<std::mutex> lock(mu_);
    return ended_ || finishing_;
  }
  void SetRemote(std::unique_ptr<RemoteAlerts> remote);
  // Stops the streams from other instances (the feed's thread, once the stream ended).
  void StopRemote();

  // Ends the stream with `s` (now, or when the write in flight is done).
  void End(const Status& s) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (ended_ || finishing_) return;
      finishing_ = true;
      final_ = s;
      if (writing_) return;  // OnWriteDone finishes
      ended_ = true;
    }
    core_->Count("Subscribe", s);
    Finish(s);
  }

  void OnWriteDone(bool ok) override {
    bool drained = false, finish = false;
    Status final_status;
    {
      std::lock_guard<std::mutex> lock(mu_);
      writing_ = false;
      if (!ok && !finishing_) {
        finishing_ = true;
        final_ = Status(StatusCode::CANCELLED, "subscriber went away");
      }
      if (finishing_) {
        ended_ = true;
        finish = true;
        final_status = final_;
      }
      drained = queue_.empty();
    }
    if (finish) {
      core_->Count("Subscribe", final_status);
      Finish(final_status);
      return;
    }
    // All written: the feed reads again now (alerts committed while these were being
    // written, or more than one read held), not at the next commit.
    if (drained) core_->Notify();
    WriteNext();
  }
  void OnCancel() override { End(Status(StatusCode::CANCELLED, "subscriber went away")); }
  // gRPC's last call: the reference the stream held on itself goes (the feed may hold
  // one a little longer).
  void OnDone() override { auto last = std::move(self_); }
  void Hold(std::shared_ptr<Subscription> self) { self_ = std::move(self); }

 private:
  // Under mu_: moves the cursor past `a` and queues it when it matches; false when
  // the cursor was past it already or it does not match. Every instance holding a
  // partition has the same alerts under the same sequences, so local reads and
  // streams from other instances merge by the cursor: none twice, none skipped.
  bool Take(v1::Alert a) {
    int64_t& next = cursor_[a.partition()];
    if (a.sequence() < next) return false;
    next = a.sequence() + 1;
    if (!AlertMatches(a, req_.kinds(), req_.min_severity(), req_.region(), req_.advisor_id())) {
      return false;
    }
    if (a.late() && !req_.include_late()) return false;  // news only, unless asked
    v1::AlertEnvelope env;
    *env.mutable_alert() = std::move(a);
    env.set_cursor(EncodeAlertCursor(cursor_));
    queue_.push_back(std::move(env));
    return true;
  }

  void WriteNext() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (writing_ || finishing_ || ended_ || queue_.empty()) return;
      current_ = std::move(queue_.front());
      queue_.pop_front();
      writing_ = true;
    }
    StartWrite(&current_);
  }

  Core* core_;
  const v1::SubscribeRequest req_;
  std::mutex mu_;
  std::map<int32_t, int64_t> cursor_;  // mu_
  const std::set<int32_t> only_;       // a stream another instance asked for: its partitions
  std::deque<v1::AlertEnvelope> queue_;
  v1::AlertEnvelope current_;  // the message being written
  bool writing_ = false;
  bool finishing_ = false;  // End() was asked for
  bool ended_ = false;      // Finish() was called (or is about to be)
  Status final_;
  std::shared_ptr<Subscription> self_;  // until OnDone
  std::unique_ptr<RemoteAlerts> remote_;  // set once, before the feed has the stream
  std::string token_;
};

// The alerts of the partitions other instances hold, for one Subscribe stream: one
// stream from a holder of each group of them (owner first), regrouped as the cluster
// changes and opened again elsewhere when one ends; what arrives is merged into the
// subscriber's stream by its cursor (Subscription::Deliver).
class RemoteAlerts {
 public:
  RemoteAlerts(Core* core, Subscription* sub) : core_(core), sub_(sub) {
    supervisor_ = std::thread([this] { Supervise(); });
  }
  ~RemoteAlerts() { Stop(); }

  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopped_) return;
      stopped_ = true;
      for (auto& [holder, stream] : streams_) stream->ctx.TryCancel();
    }
    cv_.notify_all();
    if (supervisor_.joinable()) supervisor_.join();
  }

 private:
  struct Stream {
    std::vector<int32_t> partitions;
    grpc::ClientContext ctx;
    std::thread thread;
    std::atomic<bool> done{false};
    bool failed = false;     // set by its thread before done
    bool delivered = false;  // it streamed something: its holder answers again
  };

  void Supervise() {
    // A holder whose stream failed is avoided for a while: 1 s, doubling while it keeps
    // failing, up to 30 s (a dead instance is not asked again every round).
    struct Failed {
      std::chrono::steady_clock::time_point until;
      std::chrono::milliseconds backoff{500};
    };
    std::map<std::string, Failed> failed;
    std::unique_lock<std::mutex> lock(mu_);
    while (!stopped_ && !sub_->ended()) {
      lock.unlock();
      const auto now = std::chrono::steady_clock::now();
      std::set<std::string> avoid;
      for (const auto& [h, f] : failed) {
        if (now < f.until) avoid.insert(h);
      }
      // A partition streaming well from a holder stays with it while it holds it (no
      // moving back to the owner the moment it is not avoided any more).
      std::map<int32_t, std::string> serving;
      {
        std::lock_guard<std::mutex> l(mu_);
        for (const auto& [holder, st] : streams_) {
          if (st->done) continue;
          for (int32_t p : st->partitions) serving[p] = holder;
        }
      }
      std::map<std::string, std::vector<int32_t>> wanted =
          core_->InCluster() ? core_->PartitionsByHolder(avoid, nullptr, serving)
                             : std::map<std::string, std::vector<int32_t>>();
      wanted.erase("");  // read here by the feed
      lock.lock();
      // Streams that ended or no longer fit the plan go; missing ones start.
      for (auto it = streams_.begin(); it != streams_.end();) {
        Stream& st = *it->second;
        auto w = wanted.find(it->first);
        if (!st.done && (w == wanted.end() || w->second != st.partitions)) st.ctx.TryCancel();
        if (st.done || w == wanted.end() || w->second != st.partitions) {
          lock.unlock();
          st.ctx.TryCancel();
          st.thread.join();
          lock.lock();
          if (st.failed) {
            Failed& f = failed[it->first];
            f.backoff = std::min<std::chrono::milliseconds>(f.backoff * 2, std::chrono::seconds(30));
            f.until = std::chrono::steady_clock::now() + f.backoff;
          } else if (st.delivered) {
            failed.erase(it->first);
          }
          it = streams_.erase(it);
        } else {
          ++it;
        }
      }
      for (auto& [holder, partitions] : wanted) {
        if (streams_.count(holder)) continue;
        auto st = std::make_unique<Stream>();
        st->partitions = partitions;
        Stream* raw = st.get();
        const std::string to = holder;
        st->thread = std::thread([this, raw, to] { Pull(raw, to); });
        streams_[holder] = std::move(st);
      }
      cv_.wait_for(lock, std::chrono::milliseconds(500), [this] { return stopped_; });
    }
    // The end: every stream is cancelled and joined.
    for (auto& [holder, st] : streams_) st->ctx.TryCancel();
    for (auto& [holder, st] : streams_) {
      lock.unlock();
      st->thread.join();
      lock.lock();
    }
    streams_.clear();
  }

  void Pull(Stream* st, const std::string& holder) {
    v1::SubscribeRequest req = sub_->request();
    req.clear_partitions();
    for (int32_t p : st->partitions) req.add_partitions(p);
    const std::map<int32_t, int64_t> cursor = sub_->Cursor();
    std::map<int32_t, int64_t> theirs;
    for (int32_t p : st->partitions) {
      if (auto it = cursor.find(p); it != cursor.end()) theirs[p] = it->second;
    }
    // Without a position for them yet: as the subscriber asked (from the start, or
    // the most recent few).
    req.clear_cursor();
    if (!theirs.empty()) {
      req.set_cursor(EncodeAlertCursor(theirs));
      req.set_recent(0);
    }
    auto stub = v1::AlertService::NewStub(core_->ChannelTo(holder));
    if (core_->deps.log) {
      core_->deps.log->debug("alert stream from {} (partitions {}) from {}", holder,
                             absl::StrJoin(st->partitions, ","),
                             theirs.empty() ? "the start" : EncodeAlertCursor(theirs));
    }
    st->ctx.AddMetadata(Core::kForwardedHeader, "1");
    if (!sub_->token().empty()) st->ctx.AddMetadata("authorization", sub_->token());
    std::unique_ptr<grpc::ClientReader<v1::AlertEnvelope>> reader = stub->Subscribe(&st->ctx, req);
    v1::AlertEnvelope env;
    int64_t received = 0;
    while (reader->Read(&env)) {
      ++received;
      st->delivered = true;
      if (!sub_->Deliver(std::move(*env.mutable_alert()))) {
        st->ctx.TryCancel();
        break;
      }
    }
    const Status s = reader->Finish();
    if (core_->deps.log) {
      core_->deps.log->debug("alert stream from {} (partitions {}) done after {} alert(s): {}",
                             holder, absl::StrJoin(st->partitions, ","), received,
                             s.error_message());
    }
    st->failed = !s.ok() && s.error_code() != StatusCode::CANCELLED;
    if (st->failed && core_->deps.log) {
      core_->deps.log->info("alert stream from {} (partitions {}) ended: {}; asking another holder",
                            holder, absl::StrJoin(st->partitions, ","), s.error_message());
    }
    st->done = true;
    cv_.notify_all();
  }

  Core* core_;
  Subscription* sub_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopped_ = false;
  std::map<std::string, std::unique_ptr<Stream>> streams_;  // by holder
  std::thread supervisor_;
};

Subscription::~Subscription() { StopRemote(); }
void Subscription::SetRemote(std::unique_ptr<RemoteAlerts> remote) { remote_ = std::move(remote); }
void Subscription::StopRemote() {
  if (remote_) remote_->Stop();
}

// Feeds every Subscribe stream from one thread: after each commit (and every 250 ms) it
// reads the new alerts of the streams that have written all they were given. A
// subscriber costs a cursor and a queue, not a thread.
class AlertFeed {
 public:
  explicit AlertFeed(Core* core) : core_(core), thread_([this] { Run(); }) {}
  ~AlertFeed() {
    core_->Stop();
    thread_.join();
  }
  void Add(std::shared_ptr<Subscription> s) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      subs_.push_back(s);
    }
    core_->Notify();
  }

 private:
  static constexpr size_t kReadLimit = 256;
  void Run() {
    uint64_t seen = 0;
    while (core_->WaitForCommit(&seen, 250)) {
      std::vector<std::shared_ptr<Subscription>> subs;
      {
        std::lock_guard<std::mutex> lock(mu_);
        subs = subs_;
      }
      if (subs.empty()) continue;
      // The partitions are read once a round, for every stream: in a cluster those
      // held here (the others come from their holders), else every stored one.
      std::vector<int32_t> partitions;
      auto metas = core_->deps.store->ListMeta();
      const std::optional<std::set<int32_t>> held = core_->HeldPartitions();
      if (held) {
        // Committed yet or not; and a partition this instance is the only holder of,
        // caught up or not (a single instance mid-rebalance).
        std::set<int32_t> read = *held;
        Router* router = core_->deps.router;
        for (int32_t p = 0; p < router->partitions(); ++p) {
          const std::vector<std::string> hs = router->Holders(p);
          if (hs.size() == 1 && hs.front() == router->Self()) read.insert(p);
        }
        partitions.assign(read.begin(), read.end());
      } else if (metas.ok()) {
        for (const auto& m : *metas) partitions.push_back(m.partition());
      }
      std::vector<Subscription*> ended;
      for (const auto& s : subs) {
        if (!metas.ok()) {
          s->End(ToGrpc(metas.status()));
          ended.push_back(s.get());
        } else if (!s->Fill(partitions, kReadLimit)) {
          ended.push_back(s.get());
        }
      }
      for (Subscription* s : ended) s->StopRemote();
      if (!ended.empty()) {
        std::lock_guard<std::mutex> lock(mu_);
        std::erase_if(subs_, [&](const auto& s) {
          return std::find(ended.begin(), ended.end(), s.get()) != ended.end();
        });
      }
    }
    // Stopping: every stream ends; a subscriber resumes elsewhere with its cursor.
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& s : subs_) {
      s->End(Status(StatusCode::UNAVAILABLE, "the server is shutting down; resume later"));
      s->StopRemote();
    }
  }

  Core* core_;
  std::mutex mu_;
  std::vector<std::shared_ptr<Subscription>> subs_;
  std::thread thread_;
};

// The reads and Subscribe on gRPC's callback API.
class AlertServiceImpl final
    : public v1::AlertService::WithCallbackMethod_ListAlerts<
          v1::AlertService::WithCallbackMethod_Subscribe<v1::AlertService::Service>> {
 public:
  explicit AlertServiceImpl(Core* core) : core_(core), feed_(core) {}

  grpc::ServerWriteReactor<v1::AlertEnvelope>* Subscribe(
      grpc::CallbackServerContext* ctx, const v1::SubscribeRequest* req) override {
    std::map<int32_t, int64_t> cursor;
    Status s = ToGrpc(core_->auth.Check(ctx, Role::kRead));
    if (s.ok()) s = StartingCursor(*req, &cursor);
    const bool forwarded = ctx->client_metadata().count(Core::kForwardedHeader) > 0;
    if (s.ok() && !req->partitions().empty() && !forwarded) {
      s = Invalid("partitions", "is for instances of a cluster asking each other");
    }
    auto sub = std::make_shared<Subscription>(core_, *req, std::move(cursor));
    sub->Hold(sub);
    if (s.ok()) {
      if (!forwarded && core_->InCluster()) {
        // The partitions other instances hold stream from them.
        if (auto it = ctx->client_metadata().find("authorization");
            it != ctx->client_metadata().end()) {
          sub->set_token(std::string(it->second.data(), it->second.size()));
        }
        sub->SetRemote(std::make_unique<RemoteAlerts>(core_, sub.get()));
      }
      feed_.Add(sub);
    } else {
      sub->End(s);
    }
    return sub.get();
  }

  grpc::ServerUnaryReactor* ListAlerts(grpc::CallbackServerContext* ctx,
                                       const v1::ListAlertsRequest* req,
                                       v1::ListAlertsResponse* resp) override {
    if (auto* r = MaybeForward(core_, ctx, "ListAlerts", req->customer_id(), req, resp,
                               [](const auto& ch, auto* c, auto* q, auto* a, auto done) {
                                 v1::AlertService::NewStub(ch)->async()->ListAlerts(c, q, a, done);
                               })) {
      return r;
    }
    return Answer(ctx, [&] { return ListAlertsPage(ctx, *req, resp); });
  }

 private:
  // Checks a Subscribe request's filters and gives the cursor it starts from.
  Status StartingCursor(const v1::SubscribeRequest& req, std::map<int32_t, int64_t>* cursor) {
    if (Status s = CheckAlertFilters(req.kinds(), req.min_severity()); !s.ok()) return s;
    if (Status s = CheckFilter("region", req.region()); !s.ok()) return s;
    if (Status s = CheckFilter("advisor_id", req.advisor_id()); !s.ok()) return s;
    if (!req.cursor().empty()) {
      auto decoded = DecodeAlertCursor(req.cursor());
      if (!decoded.ok()) return Invalid("cursor", std::string(decoded.status().message()));
      *cursor = *decoded;
    }
    if (req.recent() < 0) return Invalid("recent", "must be 0 or more");
    if (req.cursor().empty() && req.recent() > 0) {
      auto metas = core_->deps.store->ListMeta();
      if (!metas.ok()) return ToGrpc(metas.status());
      const std::optional<std::set<int32_t>> held = core_->HeldPartitions();
      for (const auto& m : *metas) {
        if (held && !held->count(m.partition())) continue;  // its holder knows
        (*cursor)[m.partition()] = std::max<int64_t>(0, m.alerts_next_seq() - req.recent());
      }
    }
    return Status::OK;
  }

  Status ListAlertsPage(grpc::CallbackServerContext* ctx, const v1::ListAlertsRequest& request,
                        v1::ListAlertsResponse* resp) {
    const v1::ListAlertsRequest* req = &request;
    return core_->Serve(ctx, "ListAlerts", Role::kRead, [&]() -> Status {
      if (Status s = CheckAlertFilters(req->kinds(), req->min_severity()); !s.ok()) return s;
      if (Status s = CheckFilter("advisor_id", req->advisor_id()); !s.ok()) return s;
      int page_size = 0;
      if (Status s = CheckPageSize(req->page_size(), core_->options, &page_size); !s.ok()) return s;
      if (!req->customer_id().empty()) {
        if (auto s = projections::ValidateCustomerId(req->customer_id()); !s.ok()) return ToGrpc(s);
      }
      std::map<int32_t, int64_t> cursor;
      if (!req->page_token().empty()) {
        auto decoded = DecodeAlertCursor(req->page_token());
        if (!decoded.ok()) return Invalid("page_token", std::string(decoded.status().message()));
        cursor = *decoded;
      }
      if (Status s = core_->Freshness(resp->mutable_freshness()); !s.ok()) return s;
      const google::protobuf::RepeatedField<int> kinds = req->kinds();
      bool more = false;
      if (!req->customer_id().empty()) {
        auto alerts = core_->deps.store->ReadCustomerAlerts(req->customer_id());
        if (!alerts.ok()) return ToGrpc(alerts.status());
        for (const auto& a : *alerts) {
          if (a.sequence() < cursor[a.partition()]) continue;
          if (resp->alerts_size() >= page_size) {
            more = true;
            break;
          }
          cursor[a.partition()] = a.sequence() + 1;
          if (AlertMatches(a, kinds, req->min_severity(), "", req->advisor_id())) *resp->add_alerts() = a;
        }
      } else {
        // Every partition's alerts, partition by partition. In a cluster those held
        // elsewhere are read from a holder (one call per partition reached).
        const bool forwarded = ctx->client_metadata().count(Core::kForwardedHeader) > 0;
        if (!req->partitions().empty() && !forwarded) {
          return Invalid("partitions", "is for instances of a cluster asking each other");
        }
        const std::optional<std::set<int32_t>> held = core_->HeldPartitions();
        std::vector<int32_t> order;
        std::map<int32_t, std::string> remote;  // partition -> the holder to ask
        if (!req->partitions().empty()) {
          for (int32_t p : req->partitions()) {
            if (held && !held->count(p)) {
              return Status(StatusCode::UNAVAILABLE,
                            absl::StrCat("partition ", p, " is not held here; ask a holder"));
            }
            order.push_back(p);
          }
        } else if (held) {
          std::vector<int32_t> unheld;
          for (const auto& [holder, ps] : core_->PartitionsByHolder({}, &unheld)) {
            for (int32_t p : ps) {
              order.push_back(p);
              if (!holder.empty()) remote[p] = holder;
            }
          }
          if (!unheld.empty()) {
            return Status(StatusCode::UNAVAILABLE,
                          absl::StrCat("no instance that answers holds partition(s) ",
                                       absl::StrJoin(unheld, ",")));
          }
        } else {
          auto metas = core_->deps.store->ListMeta();
          if (!metas.ok()) return ToGrpc(metas.status());
          for (const auto& m : *metas) order.push_back(m.partition());
        }
        std::sort(order.begin(), order.end());
        resp->clear_freshness();
        for (size_t i = 0; i < order.size(); ++i) {
          const int32_t p = order[i];
          if (remote.count(p)) {
            v1::ListAlertsRequest q = *req;
            q.add_partitions(p);
            q.set_page_size(page_size - resp->alerts_size());
            q.set_page_token(EncodeAlertCursor({{p, cursor[p]}}));
            v1::ListAlertsResponse part;
            // The holders in turn (owner first) until one answers.
            Status s(StatusCode::UNAVAILABLE, absl::StrCat("no holder of partition ", p, " answers"));
            for (const std::string& h : core_->deps.router->Holders(p)) {
              if (h.empty() || h == core_->deps.router->Self()) continue;
              grpc::ClientContext c;
              core_->PrepareForward(ctx, &c);
              part.Clear();
              s = v1::AlertService::NewStub(core_->ChannelTo(h))->ListAlerts(&c, q, &part);
              if (s.error_code() != StatusCode::UNAVAILABLE &&
                  s.error_code() != StatusCode::DEADLINE_EXCEEDED) {
                break;
              }
            }
            if (!s.ok()) return s;
            for (auto& a : *part.mutable_alerts()) *resp->add_alerts() = std::move(a);
            for (const auto& f : part.freshness().partitions()) *resp->mutable_freshness()->add_partitions() = f;
            if (auto theirs = DecodeAlertCursor(part.next_page_token()); theirs.ok() && theirs->count(p)) {
              cursor[p] = theirs->at(p);
            }
            if (resp->alerts_size() >= page_size) {
              more = true;  // perhaps: a page that ends with the log says so with an empty next
              break;
            }
            continue;
          }
          if (auto m = core_->deps.store->ReadMeta(p); m.ok()) Core::AddPosition(*m, resp->mutable_freshness());
          while (resp->alerts_size() < page_size) {
            auto alerts = core_->deps.store->ReadAlerts(p, cursor[p], 256);
            if (!alerts.ok()) return ToGrpc(alerts.status());
            for (const auto& a : *alerts) {
              if (resp->alerts_size() >= page_size) break;
              cursor[p] = a.sequence() + 1;
              if (AlertMatches(a, kinds, req->min_severity(), "", req->advisor_id())) *resp->add_alerts() = a;
            }
            if (alerts->size() < 256) break;
          }
          if (resp->alerts_size() >= page_size) {
            auto rest = core_->deps.store->ReadAlerts(p, cursor[p], 1);
            more = !rest.ok() || !rest->empty() || i + 1 < order.size();
            break;
          }
        }
        // Between instances the asker needs the cursor whether or not more follow.
        if (!req->partitions().empty()) more = true;
      }
      if (more) resp->set_next_page_token(EncodeAlertCursor(cursor));
      return Status::OK;
    });
  }

  Core* core_;
  AlertFeed feed_;  // after core_: it is built from it
};

class IngestServiceImpl final : public v1::IngestService::Service {
 public:
  explicit IngestServiceImpl(Core* core) : core_(core) {}

  Status PublishEvents(ServerContext* ctx, const v1::PublishEventsRequest* req,
                       v1::PublishEventsResponse* resp) override {
    return core_->Serve(ctx, "PublishEvents", Role::kPublish, [&]() -> Status {
      const int n = req->events_size();
      if (n == 0) return Invalid("events", "is empty");
      if (n > core_->options.max_publish_batch) {
        return Invalid("events", absl::StrCat(n, " events; at most ", core_->options.max_publish_batch,
                                              " per call"));
      }
      stream::Producer* producer = core_->deps.producer;
      if (!producer) return Status(StatusCode::UNAVAILABLE, "publishing is not enabled here");
      struct Shared {
        std::mutex mu;
        std::condition_variable cv;
        int pending = 0;
      };
      auto shared = std::make_shared<Shared>();
      std::vector<std::shared_ptr<v1::EventResult>> results;  // filled by delivery reports
      std::vector<int> index;                                 // request index of each
      auto collect = [&] {
        for (size_t j = 0; j < index.size(); ++j) {
          auto* r = resp->mutable_results(index[j]);
          r->set_accepted(results[j]->accepted());
          r->set_reason(results[j]->reason());
          r->set_partition(results[j]->partition());
          r->set_offset(results[j]->offset());
        }
      };
      for (int i = 0; i < n; ++i) {
        auto* r = resp->add_results();
        r->set_index(i);
        r->set_partition(-1);
        r->set_offset(-1);
      }
      std::string bytes;
      for (int i = 0; i < n; ++i) {
        const v1::Event& e = req->events(i);
        auto* r = resp->mutable_results(i);
        absl::Status valid = projections::ValidateEvent(e);
        if (valid.ok() && e.has_clock_tick()) {
          valid = absl::InvalidArgumentError("clock ticks are published by lifecycled itself");
        }
        if (!valid.ok()) {
          r->set_reason(absl::StrCat("events[", i, "].", valid.message()));
          continue;
        }
        e.SerializeToString(&bytes);
        {
          std::lock_guard<std::mutex> lock(shared->mu);
          ++shared->pending;
        }
        // The callback may outlive this call (deadline): it only touches `shared`
        // and its own copy of the result.
        auto result = std::make_shared<v1::EventResult>();
        results.push_back(result);
        absl::Status s = producer->ProduceWithCallback(
            core_->options.events_topic, -1, e.customer_id(), bytes, {},
            [shared, result](const stream::Delivery& d) {
              std::lock_guard<std::mutex> lock(shared->mu);
              result->set_accepted(d.ok);
              if (d.ok) {
                result->set_partition(d.partition);
                result->set_offset(d.offset);
              } else {
                result->set_reason(absl::StrCat("not delivered: ", d.error));
              }
              --shared->pending;
              shared->cv.notify_all();
            });
        if (!s.ok()) {
          std::lock_guard<std::mutex> lock(shared->mu);
          --shared->pending;
          result->set_reason(std::string(s.message()));
        }
        index.push_back(i);
      }
      // Wait for every acknowledgement (serving delivery reports meanwhile).
      const auto deadline = std::min(ctx->deadline(), std::chrono::system_clock::now() +
                                                          std::chrono::seconds(60));
      for (;;) {
        {
          std::unique_lock<std::mutex> lock(shared->mu);
          if (shared->pending == 0) break;
        }
        if (std::chrono::system_clock::now() >= deadline || ctx->IsCancelled()) {
          std::lock_guard<std::mutex> lock(shared->mu);
          collect();
          return Status(StatusCode::DEADLINE_EXCEEDED,
                        absl::StrCat(shared->pending, " event(s) not yet acknowledged by the broker"));
        }
        producer->Poll(50);
      }
      std::lock_guard<std::mutex> lock(shared->mu);
      collect();
      int accepted = 0;
      for (const auto& r : resp->results()) accepted += r.accepted();
      resp->set_accepted(accepted);
      resp->set_rejected(n - accepted);
      return Status::OK;
    });
  }

 private:
  Core* core_;
};

class AdminServiceImpl final : public v1::AdminService::Service {
 public:
  explicit AdminServiceImpl(Core* core) : core_(core), started_(std::chrono::steady_clock::now()) {}

  Status GetStatus(ServerContext* ctx, const v1::GetStatusRequest* req,
                   v1::GetStatusResponse* resp) override {
    return core_->Serve(ctx, "GetStatus", Role::kAdmin, [&] {
      auto metas = core_->deps.store->ListMeta();
      if (!metas.ok()) return ToGrpc(metas.status());
      StatusSource::Live live = core_->deps.status->Snapshot();
      Router* router = core_->deps.router;
      std::map<int32_t, v1::PartitionMeta> by_partition;
      for (auto& m : *metas) by_partition[m.partition()] = std::move(m);
      std::set<int32_t> listed(live.assigned);
      listed.insert(live.replicated.begin(), live.replicated.end());
      std::map<int32_t, std::vector<std::string>> holders;
      if (router && !req->local_only()) {
        for (int32_t p = 0; p < router->partitions(); ++p) {
          std::vector<std::string> hs = router->Holders(p);
          listed.insert(p);
          if (!hs.empty()) holders[p] = std::move(hs);
        }
      }
      for (int32_t p : listed) {
        if (!by_partition.count(p)) {
          by_partition[p].set_partition(p);
          by_partition[p].set_offset(-1);
        }
      }
      // The other holders' offsets, asked of each member (its own partitions only).
      std::map<std::string, std::map<int32_t, int64_t>> offsets_at;
      std::map<std::string, std::string> errors_at;
      if (router && !req->local_only()) {
        resp->set_address(router->Self());
        resp->set_replicas(router->replicas());
        for (const std::string& member : router->Members()) {
          resp->add_members(member);
          if (member == router->Self() || member.empty()) continue;
          grpc::ClientContext c;
          core_->PrepareForward(ctx, &c);
          c.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
          v1::GetStatusRequest q;
          q.set_local_only(true);
          v1::GetStatusResponse a;
          Status s = v1::AdminService::NewStub(core_->ChannelTo(member))->GetStatus(&c, q, &a);
          if (!s.ok()) {
            errors_at[member] = absl::StrCat(Core::CodeName(s.error_code()), ": ", s.error_message());
            continue;
          }
          for (const auto& ps : a.partitions()) {
            if (ps.assigned() || ps.replica()) offsets_at[member][ps.partition()] = ps.stored_offset();
          }
        }
      }
      for (const auto& [p, m] : by_partition) {
        auto* ps = resp->add_partitions();
        ps->set_partition(p);
        ps->set_stored_offset(m.offset());
        ps->set_assigned(live.assigned.count(p) > 0);
        ps->set_replica(live.replicated.count(p) > 0);
        if (auto h = holders.find(p); h != holders.end()) {
          ps->set_owner(h->second.front());
          for (size_t i = 0; i < h->second.size(); ++i) {
            const std::string& at = h->second[i];
            auto* hp = ps->add_holders();
            hp->set_address(at);
            hp->set_owner(i == 0);
            hp->set_stored_offset(-1);
            if (at == router->Self()) {
              hp->set_stored_offset(m.offset());
            } else if (auto e = errors_at.find(at); e != errors_at.end()) {
              hp->set_error(e->second);
            } else if (auto o = offsets_at[at].find(p); o != offsets_at[at].end()) {
              hp->set_stored_offset(o->second);
            } else {
              hp->set_error("not holding it yet");
            }
          }
        }
        auto hw = live.high_watermarks.find(p);
        const int64_t high = hw == live.high_watermarks.end() ? -1 : hw->second;
        ps->set_high_watermark(high);
        ps->set_lag(high < 0 ? -1 : std::max<int64_t>(0, high - (m.offset() + 1)));
        if (m.has_stream_time()) *ps->mutable_stream_time() = m.stream_time();
        ps->set_events_applied(m.events_applied());
        ps->set_events_rejected(m.events_rejected());
        ps->set_alerts_late(m.alerts_late());
        ps->set_events_late(m.events_late());
        ps->set_events_out_of_order(m.events_out_of_order());
        ps->set_events_beyond_window(m.events_beyond_window());
        ps->set_events_skipped(m.events_skipped());
        ps->set_events_duplicate(m.events_duplicate());
      }
      const ApiOptions& o = core_->options;
      resp->set_events_topic(o.events_topic);
      resp->set_group_id(o.group_id);
      resp->set_config_version(o.config_version);
      resp->set_version(o.version);
      resp->set_git_commit(o.git_commit);
      resp->set_broker_connected(live.broker_up);
      resp->set_commit_latency_ms_last(live.last_commit_ms);
      resp->set_store_error(live.store_error);
      resp->set_uptime_seconds(std::chrono::duration_cast<std::chrono::seconds>(
                                   std::chrono::steady_clock::now() - started_)
                                   .count());
      return Status::OK;
    });
  }

 private:
  Core* core_;
  std::chrono::steady_clock::time_point started_;
};

// Why gRPC could not listen on `listen`: a plain bind of the same address says (in
// use, not local); when that works, the TLS files are the likely cause.
std::string WhyCannotListen(const std::string& listen) {
  absl::StatusOr<int> fd = ListenTcp(listen);
  if (!fd.ok()) {
    const absl::string_view m = fd.status().message();
    return std::string(m.substr(std::min(m.size(), listen.size() + 2)));
  }
  ::close(*fd);
  return "gRPC refused the address or the TLS files";
}

std::string ReadFile(const std::string& path, absl::Status* status) {
  std::ifstream in(path);
  if (!in) {
    *status = absl::NotFoundError(absl::StrCat("cannot read ", path));
    return "";
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class ApiServerImpl final : public ApiServer {
 public:
  ApiServerImpl(const ApiOptions& options, const ApiDeps& deps)
      : core_(options, deps), customers_(&core_), alerts_(&core_), ingest_(&core_),
        admin_(&core_) {}

  absl::Status Start() {
    const ApiOptions& o = core_.options;
    std::shared_ptr<grpc::ServerCredentials> creds = grpc::InsecureServerCredentials();
    if (!o.tls_cert_file.empty() || !o.tls_key_file.empty()) {
      if (o.tls_cert_file.empty() || o.tls_key_file.empty()) {
        return absl::InvalidArgumentError("TLS needs both a certificate and a key file");
      }
      absl::Status s;
      grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
      pair.cert_chain = ReadFile(o.tls_cert_file, &s);
      pair.private_key = ReadFile(o.tls_key_file, &s);
      if (!s.ok()) return s;
      grpc::SslServerCredentialsOptions ssl;
      ssl.pem_key_cert_pairs.push_back(pair);
      creds = grpc::SslServerCredentials(ssl);
    }
    // The health protocol's descriptors must be in the generated pool for reflection
    // to describe grpc.health.v1.Health (the default service does not put them there).
    (void)grpc::health::v1::HealthCheckRequest::descriptor();
    grpc::EnableDefaultHealthCheckService(true);
    grpc::reflection::InitProtoReflectionServerBuilderPlugin();
    grpc::ServerBuilder builder;
    // One process per address: gRPC's default SO_REUSEPORT would let a second daemon
    // bind the same port and the kernel would spread clients over two stores.
    builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
    builder.AddListeningPort(o.listen, creds, &port_);
    builder.RegisterService(&customers_);
    builder.RegisterService(&alerts_);
    builder.RegisterService(&ingest_);
    builder.RegisterService(&admin_);
    server_ = builder.BuildAndStart();
    if (!server_ || port_ == 0) {
      return absl::UnavailableError(absl::StrCat("cannot listen for gRPC on ", o.listen, ": ",
                                                 WhyCannotListen(o.listen)));
    }
    auto log = core_.deps.log ? core_.deps.log : spdlog::default_logger();
    log->info("gRPC listening on {} (port {}){}{}", o.listen, port_,
              o.tls_cert_file.empty() ? "" : " with TLS",
              o.tokens.empty() ? "; authentication OFF (no tokens configured)"
                               : absl::StrCat("; ", o.tokens.size(), " bearer token(s)"));
    return absl::OkStatus();
  }

  int port() const override { return port_; }
  std::shared_ptr<grpc::Channel> InProcessChannel() override {
    return server_->InProcessChannel(grpc::ChannelArguments());
  }
  void NotifyCommitted() override { core_.Notify(); }
  void SetServing(const std::string& service, bool serving) override {
    if (server_ && server_->GetHealthCheckService()) {
      server_->GetHealthCheckService()->SetServingStatus(service, serving);
    }
  }

  void Shutdown() override {
    if (server_ && !shut_down_) {
      shut_down_ = true;
      core_.Stop();
      server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
    }
  }

  ~ApiServerImpl() override { Shutdown(); }

 private:
  Core core_;
  CustomerServiceImpl customers_;
  AlertServiceImpl alerts_;
  IngestServiceImpl ingest_;
  AdminServiceImpl admin_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  bool shut_down_ = false;
};

}  // namespace

absl::StatusOr<std::unique_ptr<ApiServer>> ApiServer::Start(const ApiOptions& options,
                                                            const ApiDeps& deps) {
  auto server = std::make_unique<ApiServerImpl>(options, deps);
  if (absl::Status s = server->Start(); !s.ok()) return s;
  return std::unique_ptr<ApiServer>(std::move(server));
}

}  // namespace lifecycle::api
