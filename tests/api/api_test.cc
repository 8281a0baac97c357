// The gRPC API in-process: a real RocksDB store in a temp dir filled by the
// projector, a fake status source and a fake producer, gRPC on a loopback port.
#include <unistd.h>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <fstream>
#include <random>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "lifecycle/v1/service.grpc.pb.h"
#include "services/api/server.h"
#include "services/web/http_server.h"
#include "google/protobuf/util/json_util.h"
#include "services/stream/kafka.h"
#include "tests/projections/test_events.h"

namespace lifecycle::api {
namespace {

using namespace lifecycle::testing;  // NOLINT
namespace v1 = lifecycle::v1;

const char* kReader = "reader-token-0123456789";
const char* kPublisher = "publisher-token-0123456789";
const char* kAdmin = "admin-token-0123456789";

class FakeStatus : public StatusSource {
 public:
  Live Snapshot() override {
    Live l;
    l.assigned = {0, 1, 2};
    return l;
  }
};

// Acknowledges every record on the next Poll, numbering offsets per call order.
class FakeProducer : public stream::Producer {
 public:
  absl::Status Produce(const std::string&, int32_t, std::string_view, std::string_view,
                       uint64_t) override {
    return absl::OkStatus();
  }
  absl::Status ProduceWithCallback(const std::string& topic, int32_t, std::string_view key,
                                   std::string_view value,
                                   const std::vector<std::pair<std::string, std::string>>&,
                                   std::function<void(const stream::Delivery&)> done) override {
    std::lock_guard<std::mutex> lock(mu);
    topics.push_back(topic);
    keys.emplace_back(key);
    values.emplace_back(value);
    waiting.push_back(std::move(done));
    return absl::OkStatus();
  }
  void Poll(int) override {
    std::vector<std::function<void(const stream::Delivery&)>> now;
    {
      std::lock_guard<std::mutex> lock(mu);
      now.swap(waiting);
    }
    for (auto& cb : now) {
      stream::Delivery d;
      d.ok = true;
      d.partition = 1;
      d.offset = next_offset++;
      cb(d);
    }
  }
  absl::Status Flush(int) override {
    Poll(0);
    return absl::OkStatus();
  }
  std::vector<stream::Delivery> TakeDeliveries() override { return {}; }
  absl::Status Ping(int) override { return absl::OkStatus(); }

  std::mutex mu;
  std::vector<std::string> topics, keys, values;
  std::vector<std::function<void(const stream::Delivery&)>> waiting;
  int64_t next_offset = 100;
};

class ApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           absl::StrCat("lifecycle-api-test-", ::getpid(), "-",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    // A churn model under which P(alive) falls within months of silence, so a listing's
    // churn risk as of now differs from the one at the last evaluation.
    config_.r = 0.6, config_.alpha = 45, config_.a = 0.4, config_.b = 2.5;
    config_.at_risk_p = 0.5;
    store::StoreOptions so;
    so.config = &config_;
    auto store = store::ViewStore::Open(dir_.string(), so);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    reader_ = std::make_unique<store::StoreStateReader>(store_.get());
    // Three partitions of messy history.
    for (int32_t p = 0; p < 3; ++p) {
      v1::PartitionMeta m;
      m.set_partition(p);
      m.set_offset(-1);
      projectors_.push_back(std::make_unique<projections::PartitionProjector>(&config_, m, reader_.get()));
      int64_t offset = -1;
      for (const auto& rec : MessyLog(100 + p, 700, 40)) {
        // Customer ids must not collide across partitions: prefix them per partition.
        v1::Event e;
        if (e.ParseFromString(rec) && !e.customer_id().empty()) {
          e.set_customer_id(absl::StrCat("p", p, "-", e.customer_id()));
          ASSERT_TRUE(projectors_[p]->Apply(++offset, e.SerializeAsString()).ok());
        } else {
          ASSERT_TRUE(projectors_[p]->Apply(++offset, rec).ok());
        }
      }
      Commit(p);
    }
    StartServer({});
  }

  void Commit(int32_t p) {
    ASSERT_TRUE(store_->Commit({projectors_[p]->Pending()}).ok());
    projectors_[p]->MarkCommitted();
    if (server_) server_->NotifyCommitted();
  }

  void StartServer(ApiOptions o) {
    server_.reset();
    o.listen = "127.0.0.1:0";
    o.events_topic = "events";
    if (o.tokens.empty()) {
      o.tokens = {{"reader", kReader, {Role::kRead}},
                  {"publisher", kPublisher, {Role::kPublish}},
                  {"admin", kAdmin, {Role::kRead, Role::kPublish, Role::kAdmin}}};
    }
    ApiDeps d;
    d.store = store_.get();
    d.status = &status_;
    d.producer = &producer_;
    d.metrics = &metrics_;
    auto s = ApiServer::Start(o, d);
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = std::move(*s);
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                   grpc::InsecureChannelCredentials());
  }

  void TearDown() override {
    server_.reset();
    projectors_.clear();
    reader_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  static void Auth(grpc::ClientContext* ctx, const char* token) {
    if (token) ctx->AddMetadata("authorization", absl::StrCat("Bearer ", token));
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  }

  std::vector<v1::CustomerView> AllCustomers() {
    std::vector<v1::CustomerView> out;
    EXPECT_TRUE(store_->ForEachCustomer([&](const v1::CustomerView& v) { out.push_back(v); }).ok());
    return out;
  }

  // Pages through ListCustomers; returns the ids in order.
  std::vector<std::string> ListAll(v1::ListCustomersRequest req, int* pages = nullptr) {
    auto stub = v1::CustomerService::NewStub(channel_);
    std::vector<std::string> ids;
    int n = 0;
    for (;;) {
      grpc::ClientContext ctx;
      Auth(&ctx, kReader);
      v1::ListCustomersResponse resp;
      grpc::Status s = stub->ListCustomers(&ctx, req, &resp);
      EXPECT_TRUE(s.ok()) << s.error_message();
      if (!s.ok()) break;
      ++n;
      for (const auto& c : resp.customers()) ids.push_back(c.customer_id());
      EXPECT_EQ(resp.freshness().partitions_size(), 3);
      if (resp.next_page_token().empty()) break;
      req.set_page_token(resp.next_page_token());
      if (n > 10000) break;
    }
    if (pages) *pages = n;
    return ids;
  }

  std::filesystem::path dir_;
  projections::DomainConfig config_;
  std::unique_ptr<store::ViewStore> store_;
  std::unique_ptr<store::StoreStateReader> reader_;
  std::vector<std::unique_ptr<projections::PartitionProjector>> projectors_;
  FakeStatus status_;
  FakeProducer producer_;
  Metrics metrics_;
  std::unique_ptr<ApiServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
};

// Calls one RPC with a token and returns the status code.
using Call = std::function<grpc::StatusCode(std::shared_ptr<grpc::Channel>, const char*)>;

std::map<std::string, std::pair<Call, Role>> EveryRpc() {
  std::map<std::string, std::pair<Call, Role>> calls;
  auto unary = [](auto method) {
    return [method](std::shared_ptr<grpc::Channel> ch, const char* token) {
      grpc::ClientContext ctx;
      if (token) ctx.AddMetadata("authorization", absl::StrCat("Bearer ", token));
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
      return method(ch, &ctx).error_code();
    };
  };
  calls["GetCustomer"] = {unary([](auto ch, grpc::ClientContext* ctx) {
                            v1::GetCustomerRequest r;
                            r.set_customer_id("p0-c1");
                            v1::GetCustomerResponse resp;
                            return v1::CustomerService::NewStub(ch)->GetCustomer(ctx, r, &resp);
                          }),
                          Role::kRead};
  calls["ListCustomers"] = {unary([](auto ch, grpc::ClientContext* ctx) {
                              v1::ListCustomersResponse resp;
                              return v1::CustomerService::NewStub(ch)->ListCustomers(
                                  ctx, v1::ListCustomersRequest(), &resp);
                            }),
                            Role::kRead};
  calls["GetSummary"] = {unary([](auto ch, grpc::ClientContext* ctx) {
                           v1::GetSummaryResponse resp;
                           return v1::CustomerService::NewStub(ch)->GetSummary(
                               ctx, v1::GetSummaryRequest(), &resp);
                         }),
                         Role::kRead};
  calls["GetHistory"] = {unary([](auto ch, grpc::ClientContext* ctx) {
                           v1::GetHistoryRequest r;
                           r.set_customer_id("p0-c1");
                           v1::GetHistoryResponse resp;
                           return v1::CustomerService::NewStub(ch)->GetHistory(ctx, r, &resp);
                         }),
                         Role::kRead};
  calls["ListAlerts"] = {unary([](auto ch, grpc::ClientContext* ctx) {
                           v1::ListAlertsResponse resp;
                           return v1::AlertService::NewStub(ch)->ListAlerts(
                               ctx, v1::ListAlertsRequest(), &resp);
                         }),
                         Role::kRead};
  calls["Subscribe"] = {unary([](auto ch, grpc::ClientContext* ctx) {
                          ctx->set_deadline(std::chrono::system_clock::now() +
                                            std::chrono::milliseconds(300));
                          auto reader = v1::AlertService::NewStub(ch)->Subscribe(
                              ctx, v1::SubscribeRequest());
                          v1::AlertEnvelope env;
                          while (reader->Read(&env)) {
                          }
                          return reader->Finish();
                        }),
                        Role::kRead};
  calls["PublishEvents"] = {unary([](auto ch, grpc::ClientContext* ctx) {
                              v1::PublishEventsRequest r;
                              *r.add_events() = Purchase("pub-1", "x", kT0, 5);
                              v1::PublishEventsResponse resp;
                              return v1::IngestService::NewStub(ch)->PublishEvents(ctx, r, &resp);
                            }),
                            Role::kPublish};
  calls["GetStatus"] = {unary([](auto ch, grpc::ClientContext* ctx) {
                          v1::GetStatusResponse resp;
                          return v1::AdminService::NewStub(ch)->GetStatus(
                              ctx, v1::GetStatusRequest(), &resp);
                        }),
                        Role::kAdmin};
  return calls;
}

TEST_F(ApiTest, EveryRpcNeedsAValidTokenWithItsRole) {
  for (const auto& [name, call_role] : EveryRpc()) {
    SCOPED_TRACE(name);
    const auto& [call, role] = call_role;
    EXPECT_EQ(call(channel_, nullptr), grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_EQ(call(channel_, "not-a-token-at-all-xx"), grpc::StatusCode::UNAUTHENTICATED);
    const char* wrong = role == Role::kRead ? kPublisher : kReader;
    EXPECT_EQ(call(channel_, wrong), grpc::StatusCode::PERMISSION_DENIED);
    const char* right = role == Role::kRead ? kReader : role == Role::kPublish ? kPublisher : kAdmin;
    const grpc::StatusCode ok = call(channel_, right);
    EXPECT_NE(ok, grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_NE(ok, grpc::StatusCode::PERMISSION_DENIED);
    EXPECT_NE(call(channel_, kAdmin), grpc::StatusCode::PERMISSION_DENIED) << "admin has all roles";
  }
  // Health stays open.
  grpc::ClientContext ctx;
  grpc::health::v1::HealthCheckResponse resp;
  EXPECT_TRUE(grpc::health::v1::Health::NewStub(channel_)
                  ->Check(&ctx, grpc::health::v1::HealthCheckRequest(), &resp)
                  .ok());
  // Requests are counted by method and code.
  const std::string text = metrics_.Render();
  EXPECT_NE(text.find("lifecycle_grpc_requests_total{method=\"GetStatus\",code=\"PERMISSION_DENIED\"}"),
            std::string::npos)
      << text;
}

TEST_F(ApiTest, InvalidRequestsNameTheField) {
  auto customers = v1::CustomerService::NewStub(channel_);
  auto alerts = v1::AlertService::NewStub(channel_);
  auto ingest = v1::IngestService::NewStub(channel_);
  auto expect = [](const grpc::Status& s, const std::string& field) {
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << field << ": " << s.error_message();
    EXPECT_EQ(s.error_message().rfind(field + ":", 0), 0u) << s.error_message();
  };
  auto get = [&](const std::string& id) {
    grpc::ClientContext ctx;
    Auth(&ctx, kReader);
    v1::GetCustomerRequest r;
    r.set_customer_id(id);
    v1::GetCustomerResponse resp;
    return customers->GetCustomer(&ctx, r, &resp);
  };
  expect(get(""), "customer_id");
  expect(get(std::string(257, 'x')), "customer_id");
  {
    grpc::ClientContext ctx;
    Auth(&ctx, kReader);
    v1::GetHistoryResponse resp;
    expect(customers->GetHistory(&ctx, v1::GetHistoryRequest(), &resp), "customer_id");
  }
  auto list = [&](std::function<void(v1::ListCustomersRequest*)> f) {
    grpc::ClientContext ctx;
    Auth(&ctx, kReader);
    v1::ListCustomersRequest r;
    f(&r);
    v1::ListCustomersResponse resp;
    return customers->ListCustomers(&ctx, r, &resp);
  };
  expect(list([](auto* r) { r->set_page_size(-1); }), "page_size");
  expect(list([](auto* r) { r->set_stage(static_cast<v1::Stage>(99)); }), "stage");
  expect(list([](auto* r) { r->set_grade(static_cast<v1::ValueGrade>(99)); }), "grade");
  expect(list([](auto* r) { r->set_tier(static_cast<v1::Tier>(99)); }), "tier");
  expect(list([](auto* r) { r->set_region("a/b"); }), "region");
  expect(list([](auto* r) { r->set_region(std::string(200, 'r')); }), "region");
  expect(list([](auto* r) { r->set_rfm_segment("x/y"); }), "rfm_segment");
  expect(list([](auto* r) { r->set_min_churn_risk(1.5); }), "min_churn_risk");
  expect(list([](auto* r) { r->set_min_churn_risk(-0.1); }), "min_churn_risk");
  expect(list([](auto* r) { r->set_page_token("%%%"); }), "page_token");
  {  // a token of one listing does not serve another
    grpc::ClientContext ctx;
    Auth(&ctx, kReader);
    v1::ListCustomersRequest r;
    r.set_page_size(1);
    r.set_stage(v1::STAGE_ACTIVE);
    v1::ListCustomersResponse resp;
    ASSERT_TRUE(customers->ListCustomers(&ctx, r, &resp).ok());
    ASSERT_FALSE(resp.next_page_token().empty());
    const std::string token = resp.next_page_token();
    expect(list([&](auto* r2) {
             r2->set_stage(v1::STAGE_CHURNED);
             r2->set_page_token(token);
           }),
           "page_token");
  }
  {
    grpc::ClientContext ctx;
    Auth(&ctx, kReader);
    v1::GetSummaryRequest r;
    r.set_group_by(static_cast<v1::Dimension>(99));
    v1::GetSummaryResponse resp;
    expect(customers->GetSummary(&ctx, r, &resp), "group_by");
  }
  auto subscribe = [&](std::function<void(v1::SubscribeRequest*)> f) {
    grpc::ClientContext ctx;
    Auth(&ctx, kReader);
    v1::SubscribeRequest r;
    f(&r);
    auto reader = alerts->Subscribe(&ctx, r);
    v1::AlertEnvelope env;
    while (reader->Read(&env)) {
    }
    return reader->Finish();
  };
  expect(subscribe([](auto* r) { r->add_kinds(static_cast<v1::AlertKind>(99)); }), "kinds[0]");
  expect(subscribe([](auto* r) { r->set_min_severity(static_cast<v1::Severity>(9)); }),
         "min_severity");
  expect(subscribe([](auto* r) { r->set_region("a/b"); }), "region");
  expect(subscribe([](auto* r) { r->set_cursor("bm90IGEgY3Vyc29y"); }), "cursor");
  auto list_alerts = [&](std::function<void(v1::ListAlertsRequest*)> f) {
    grpc::ClientContext ctx;
    Auth(&ctx, kReader);
    v1::ListAlertsRequest r;
    f(&r);
    v1::ListAlertsResponse resp;
    return alerts->ListAlerts(&ctx, r, &resp);
  };
  expect(list_alerts([](auto* r) { r->add_kinds(v1::ALERT_KIND_UNSPECIFIED); }), "kinds[0]");
  expect(list_alerts([](auto* r) { r->set_min_severity(static_cast<v1::Severity>(7)); }),
         "min_severity");
  expect(list_alerts([](auto* r) { r->set_page_size(-5); }), "page_size");
  expect(list_alerts([](auto* r) { r->set_customer_id(std::string(300, 'c')); }), "customer_id");
  expect(list_alerts([](auto* r) { r->set_page_token("!!"); }), "page_token");
  auto publish = [&](int n) {
    grpc::ClientContext ctx;
    Auth(&ctx, kPublisher);
    v1::PublishEventsRequest r;
    for (int i = 0; i < n; ++i) *r.add_events() = Purchase(absl::StrCat("e", i), "c", kT0, 1);
    v1::PublishEventsResponse resp;
    return ingest->PublishEvents(&ctx, r, &resp);
  };
  expect(publish(0), "events");
  expect(publish(1001), "events");
}

TEST_F(ApiTest, ListCustomersPagesThroughIndexesInAStableOrder) {
  const auto all = AllCustomers();
  ASSERT_GT(all.size(), 100u);
  // No filter: every customer exactly once, in id order, across pages of 7.
  v1::ListCustomersRequest req;
  req.set_page_size(7);
  int pages = 0;
  auto ids = ListAll(req, &pages);
  std::vector<std::string> expected;
  for (const auto& v : all) expected.push_back(v.customer_id());
  EXPECT_EQ(ids, expected);
  EXPECT_GE(pages, static_cast<int>(all.size() / 7));
  // Each filter, and combinations, equal a brute-force filter of all views.
  auto brute = [&](std::function<bool(const v1::CustomerView&)> keep) {
    std::vector<std::string> out;
    for (const auto& v : all) {
      if (keep(v)) out.push_back(v.customer_id());
    }
    return out;
  };
  for (v1::Stage stage : {v1::STAGE_ACTIVE, v1::STAGE_CHURNED, v1::STAGE_PROSPECT, v1::STAGE_LOYAL}) {
    v1::ListCustomersRequest r;
    r.set_stage(stage);
    r.set_page_size(5);
    EXPECT_EQ(ListAll(r), brute([&](const auto& v) { return v.stage() == stage; })) << stage;
  }
  {
    v1::ListCustomersRequest r;
    r.set_region("east");
    r.set_grade(v1::VALUE_GRADE_C);
    r.set_page_size(4);
    EXPECT_EQ(ListAll(r), brute([](const auto& v) {
                return v.profile().region() == "east" && v.grade() == v1::VALUE_GRADE_C;
              }));
  }
  {
    v1::ListCustomersRequest r;
    r.set_tier(v1::TIER_BRONZE);
    r.set_rfm_segment("Lost");
    EXPECT_EQ(ListAll(r), brute([](const auto& v) {
                return v.points().tier() == v1::TIER_BRONZE && v.rfm().segment() == "Lost";
              }));
  }
  {
    // Churn risk and expected value as of now: the views as GetCustomer serves them
    // (P(alive) at the partition's stream time), not as last evaluated. A lead 200 days
    // after the log's end moves each partition's stream time past the evaluations.
    for (int32_t p = 0; p < 3; ++p) {
      ASSERT_TRUE(projectors_[p]
                      ->Apply(100000, Lead(absl::StrCat("late-lead-", p), absl::StrCat("p", p, "-late"),
                                           4'000'000'000 + 200 * 86400)
                                          .SerializeAsString())
                      .ok());
      Commit(p);
    }
    auto stub = v1::CustomerService::NewStub(channel_);
    std::vector<v1::CustomerView> served;
    int stale = 0, crossed = 0;
    for (const auto& v : AllCustomers()) {
      grpc::ClientContext ctx;
      Auth(&ctx, kReader);
      v1::GetCustomerRequest g;
      g.set_customer_id(v.customer_id());
      v1::GetCustomerResponse got;
      ASSERT_TRUE(stub->GetCustomer(&ctx, g, &got).ok());
      stale += got.customer().p_alive() < v.p_alive() - 1e-9;
      // Under the 0.3 floor as last evaluated, over it now: a listing on stored
      // P(alive) would miss them.
      crossed += 1 - v.p_alive() < 0.3 && 1 - got.customer().p_alive() >= 0.3;
      served.push_back(got.customer());
    }
    EXPECT_GT(stale, 10) << "customers whose P(alive) fell since their last evaluation";
    EXPECT_GT(crossed, 0);
    auto ranked = [&](std::function<bool(const v1::CustomerView&)> keep, bool by_value) {
      std::vector<const v1::CustomerView*> hits;
      for (const auto& v : served) {
        if (v.activity().activity_days() > 0 && keep(v)) hits.push_back(&v);
      }
      std::sort(hits.begin(), hits.end(), [&](auto* a, auto* b) {
        const double sa = by_value ? -double(a->expected_value_12m_minor()) : a->p_alive();
        const double sb = by_value ? -double(b->expected_value_12m_minor()) : b->p_alive();
        return sa != sb ? sa < sb : a->customer_id() < b->customer_id();
      });
      std::vector<std::string> out;
      for (auto* v : hits) out.push_back(v->customer_id());
      return out;
    };
    for (double floor : {0.3, 0.6}) {  // riskiest first: exactly those at or above the floor
      v1::ListCustomersRequest r;
      r.set_min_churn_risk(floor);
      r.set_page_size(3);
      const auto want = ranked([&](const auto& v) { return 1.0 - v.p_alive() >= floor - 1e-9; }, false);
      EXPECT_GT(want.size(), 5u) << floor;
      EXPECT_EQ(ListAll(r), want) << floor;
    }
    {  // the most valuable customers at risk
      v1::ListCustomersRequest r;
      r.set_min_churn_risk(0.3);
      r.set_order_by(v1::CUSTOMER_ORDER_EXPECTED_VALUE);
      r.set_page_size(4);
      EXPECT_EQ(ListAll(r),
                ranked([](const auto& v) { return 1.0 - v.p_alive() >= 0.3 - 1e-9; }, true));
    }
    {  // by value within a stage and a region (the region checked on the views read)
      v1::ListCustomersRequest r;
      r.set_order_by(v1::CUSTOMER_ORDER_EXPECTED_VALUE);
      r.set_region("east");
      r.set_page_size(2);
      const auto want = ranked([](const auto& v) { return v.profile().region() == "east"; }, true);
      EXPECT_GT(want.size(), 5u);
      EXPECT_EQ(ListAll(r), want);
      r.clear_region();
      r.set_stage(v1::STAGE_ACTIVE);
      r.set_order_by(v1::CUSTOMER_ORDER_CHURN_RISK);
      EXPECT_EQ(ListAll(r),
                ranked([](const auto& v) { return v.stage() == v1::STAGE_ACTIVE; }, false));
    }
    {  // a token of one order is refused by another
      grpc::ClientContext ctx;
      Auth(&ctx, kReader);
      v1::ListCustomersRequest r;
      r.set_order_by(v1::CUSTOMER_ORDER_EXPECTED_VALUE);
      r.set_page_size(2);
      v1::ListCustomersResponse resp;
      ASSERT_TRUE(stub->ListCustomers(&ctx, r, &resp).ok());
      ASSERT_FALSE(resp.next_page_token().empty());
      grpc::ClientContext ctx2;
      Auth(&ctx2, kReader);
      r.set_order_by(v1::CUSTOMER_ORDER_CHURN_RISK);
      r.set_page_token(resp.next_page_token());
      EXPECT_EQ(stub->ListCustomers(&ctx2, r, &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    }
  }
  {  // page size is capped
    grpc::ClientContext ctx;
    Auth(&ctx, kReader);
    v1::ListCustomersRequest r;
    r.set_page_size(100000);
    v1::ListCustomersResponse resp;
    ASSERT_TRUE(v1::CustomerService::NewStub(channel_)->ListCustomers(&ctx, r, &resp).ok());
    EXPECT_LE(resp.customers_size(), 1000);
  }
}

TEST_F(ApiTest, SummaryAgreesWithTheViews) {
  const auto all = AllCustomers();
  grpc::ClientContext ctx;
  Auth(&ctx, kReader);
  v1::GetSummaryRequest r;
  r.set_group_by(v1::DIMENSION_STAGE);
  v1::GetSummaryResponse resp;
  ASSERT_TRUE(v1::CustomerService::NewStub(channel_)->GetSummary(&ctx, r, &resp).ok());
  EXPECT_EQ(resp.customers(), static_cast<int64_t>(all.size()));
  ASSERT_EQ(resp.dimensions_size(), 1);
  std::map<std::string, int64_t> by_stage;
  for (const auto& v : all) ++by_stage[v1::Stage_Name(v.stage()).substr(6)];
  int64_t sum = 0;
  for (const auto& c : resp.dimensions(0).counts()) {
    EXPECT_EQ(c.customers(), by_stage[c.key()]) << c.key();
    sum += c.customers();
  }
  EXPECT_EQ(sum, resp.customers());
  EXPECT_EQ(resp.freshness().partitions_size(), 3);

  grpc::ClientContext ctx2;
  Auth(&ctx2, kReader);
  v1::GetSummaryResponse every;
  ASSERT_TRUE(
      v1::CustomerService::NewStub(channel_)->GetSummary(&ctx2, v1::GetSummaryRequest(), &every).ok());
  EXPECT_EQ(every.dimensions_size(), 18);
  // Average ticket = revenue / activity days, on every counter that has activity days.
  for (const auto& d : every.dimensions()) {
    for (const auto& c : d.counts()) {
      if (c.activity_days() > 0) {
        EXPECT_EQ(c.average_ticket_minor(), c.revenue_minor() / c.activity_days()) << c.key();
      }
    }
  }

  // The year before: the activity bucket and the two cross-tabs, each summing to every
  // customer; the other dimensions have no such period.
  grpc::ClientContext ctx3;
  Auth(&ctx3, kReader);
  v1::GetSummaryRequest earlier_req;
  earlier_req.set_year_earlier(true);
  v1::GetSummaryResponse earlier;
  ASSERT_TRUE(
      v1::CustomerService::NewStub(channel_)->GetSummary(&ctx3, earlier_req, &earlier).ok());
  int with_counts = 0;
  for (const auto& d : earlier.dimensions()) {
    if (d.counts().empty()) continue;
    ++with_counts;
    int64_t customers = 0;
    for (const auto& c : d.counts()) customers += c.customers();
    EXPECT_EQ(customers, earlier.customers()) << v1::Dimension_Name(d.dimension());
  }
  EXPECT_EQ(with_counts, 3);

  grpc::ClientContext ctx4;
  Auth(&ctx4, kReader);
  v1::GetSummaryRequest bad;
  bad.set_advisor_id("a/b");
  v1::GetSummaryResponse ignored;
  EXPECT_EQ(v1::CustomerService::NewStub(channel_)->GetSummary(&ctx4, bad, &ignored).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

std::vector<v1::Alert> StoredAlerts(store::ViewStore* store) {
  std::vector<v1::Alert> out;
  for (int32_t p = 0; p < 3; ++p) {
    auto a = store->ReadAlerts(p, 0, 1000000);
    EXPECT_TRUE(a.ok());
    if (a.ok()) out.insert(out.end(), a->begin(), a->end());
  }
  return out;
}

TEST_F(ApiTest, ListAlertsPagesThroughEveryAlertOnce) {
  const auto stored = StoredAlerts(store_.get());
  ASSERT_GT(stored.size(), 50u);
  auto stub = v1::AlertService::NewStub(channel_);
  auto page_all = [&](v1::ListAlertsRequest req) {
    std::vector<std::string> ids;
    for (int guard = 0; guard < 10000; ++guard) {
      grpc::ClientContext ctx;
      Auth(&ctx, kReader);
      v1::ListAlertsResponse resp;
      EXPECT_TRUE(stub->ListAlerts(&ctx, req, &resp).ok());
      for (const auto& a : resp.alerts()) ids.push_back(a.alert_id());
      if (resp.next_page_token().empty()) break;
      req.set_page_token(resp.next_page_token());
    }
    return ids;
  };
  v1::ListAlertsRequest req;
  req.set_page_size(9);
  auto ids = page_all(req);
  std::vector<std::string> expected;
  for (const auto& a : stored) expected.push_back(a.alert_id());
  EXPECT_EQ(ids, expected);
  req.add_kinds(v1::ALERT_KIND_DEAL_LOST);
  ids = page_all(req);
  expected.clear();
  for (const auto& a : stored) {
    if (a.kind() == v1::ALERT_KIND_DEAL_LOST) expected.push_back(a.alert_id());
  }
  EXPECT_EQ(ids, expected);
  ASSERT_FALSE(expected.empty());
  // By customer.
  const std::string who = stored[0].customer_id();
  v1::ListAlertsRequest by;
  by.set_customer_id(who);
  by.set_page_size(2);
  ids = page_all(by);
  expected.clear();
  auto mine = store_->ReadCustomerAlerts(who);
  ASSERT_TRUE(mine.ok());
  for (const auto& a : *mine) expected.push_back(a.alert_id());
  EXPECT_EQ(ids, expected);
}

// Issue 14: a live feed gets news. Alerts the fold raised long after their condition
// became true (the messy logs' out-of-order history) are late: ListAlerts shows them,
// flagged; Subscribe leaves them out unless asked for them.
TEST_F(ApiTest, SubscribeLeavesOutLateAlertsUnlessAskedFor) {
  const auto stored = StoredAlerts(store_.get());
  std::set<std::string> on_time, late;
  for (const auto& a : stored) (a.late() ? late : on_time).insert(a.alert_id());
  ASSERT_GT(late.size(), 0u) << "the messy logs hold late history";
  ASSERT_GT(on_time.size(), 0u);
  auto stub = v1::AlertService::NewStub(channel_);
  grpc::ClientContext ctx;
  Auth(&ctx, kReader);
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
  auto reader = stub->Subscribe(&ctx, v1::SubscribeRequest());
  std::set<std::string> got;
  v1::AlertEnvelope env;
  while (reader->Read(&env)) {
    EXPECT_FALSE(env.alert().late());
    got.insert(env.alert().alert_id());
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_EQ(got, on_time) << "every alert on time, and nothing else";
  // The partitions' status counts them.
  grpc::ClientContext sctx;
  Auth(&sctx, kAdmin);
  v1::GetStatusResponse status;
  ASSERT_TRUE(v1::AdminService::NewStub(channel_)->GetStatus(&sctx, v1::GetStatusRequest(), &status).ok());
  int64_t counted = 0;
  for (const auto& p : status.partitions()) counted += p.alerts_late();
  EXPECT_EQ(counted, static_cast<int64_t>(late.size()));
}

TEST_F(ApiTest, SubscribeSendsTheBacklogThenLiveAlertsAndResumesFromACursor) {
  const auto stored = StoredAlerts(store_.get());
  auto stub = v1::AlertService::NewStub(channel_);
  grpc::ClientContext ctx;
  Auth(&ctx, kReader);
  v1::SubscribeRequest everything;
  everything.set_include_late(true);  // the messy logs' late history too
  auto reader = stub->Subscribe(&ctx, everything);
  std::vector<v1::AlertEnvelope> got;
  v1::AlertEnvelope env;
  while (got.size() < stored.size() && reader->Read(&env)) got.push_back(env);
  ASSERT_EQ(got.size(), stored.size());
  // Live: a new alert committed after subscribing arrives on the same stream.
  ASSERT_TRUE(projectors_[1]->Apply(100000, Bytes(Lost("live-1", "p1-live", kT0 + 4000 * kDay,
                                                      v1::DEAL_LOST_REASON_PRICE)))
                  .ok());
  Commit(1);
  ASSERT_TRUE(reader->Read(&env));
  EXPECT_EQ(env.alert().customer_id(), "p1-live");
  EXPECT_EQ(env.alert().kind(), v1::ALERT_KIND_DEAL_LOST);
  const std::string live_id = env.alert().alert_id();
  ctx.TryCancel();
  reader->Finish().IgnoreError();

  // Resume from the cursor of the 10th alert: exactly the rest, in order per partition.
  grpc::ClientContext ctx2;
  Auth(&ctx2, kReader);
  v1::SubscribeRequest resume;
  resume.set_include_late(true);
  resume.set_cursor(got[9].cursor());
  auto reader2 = stub->Subscribe(&ctx2, resume);
  // The rest: every stored alert but the first 10 read — the live one and whatever
  // else its commit raised (a lost deal far behind the stream's time also has re-contact
  // tasks already overdue).
  std::set<std::string> first10;
  for (size_t i = 0; i < 10; ++i) first10.insert(got[i].alert().alert_id());
  std::vector<std::string> expected;
  for (const auto& a : StoredAlerts(store_.get())) {
    if (!first10.count(a.alert_id())) expected.push_back(a.alert_id());
  }
  EXPECT_NE(std::find(expected.begin(), expected.end(), live_id), expected.end());
  std::vector<std::string> rest;
  while (rest.size() < expected.size() && reader2->Read(&env)) {
    rest.push_back(env.alert().alert_id());
  }
  EXPECT_EQ(rest.size(), expected.size());
  EXPECT_EQ(std::set<std::string>(rest.begin(), rest.end()),
            std::set<std::string>(expected.begin(), expected.end()));
  ctx2.TryCancel();
  reader2->Finish().IgnoreError();
}

// Subscribers are fed by one thread, not a thread each; when the server stops, every
// stream ends with UNAVAILABLE (resume elsewhere with the cursor) and the stop does
// not wait for the subscribers to leave.
TEST_F(ApiTest, ManySubscribersAreFedAndAStopEndsTheirStreams) {
  size_t stored = 0;  // a live feed's: the alerts on time
  for (const auto& a : StoredAlerts(store_.get())) stored += !a.late();
  auto stub = v1::AlertService::NewStub(channel_);
  constexpr int kSubscribers = 40;
  std::vector<std::unique_ptr<grpc::ClientContext>> ctxs;
  std::vector<std::unique_ptr<grpc::ClientReader<v1::AlertEnvelope>>> readers;
  v1::AlertEnvelope env;
  for (int i = 0; i < kSubscribers; ++i) {
    ctxs.push_back(std::make_unique<grpc::ClientContext>());
    Auth(ctxs.back().get(), kReader);
    readers.push_back(stub->Subscribe(ctxs.back().get(), v1::SubscribeRequest()));
  }
  for (auto& r : readers) {
    size_t n = 0;
    while (n < stored && r->Read(&env)) ++n;
    EXPECT_EQ(n, stored);
  }
  const auto t0 = std::chrono::steady_clock::now();
  server_->Shutdown();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
  for (auto& r : readers) {
    EXPECT_FALSE(r->Read(&env));
    const grpc::Status s = r->Finish();
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
  }
}

TEST_F(ApiTest, SubscribeFiltersAndHonoursDeadlines) {
  auto stub = v1::AlertService::NewStub(channel_);
  grpc::ClientContext ctx;
  Auth(&ctx, kReader);
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(700));
  v1::SubscribeRequest req;
  req.add_kinds(v1::ALERT_KIND_CHURNED);
  req.set_min_severity(v1::SEVERITY_CRITICAL);
  req.set_region("east");
  req.set_include_late(true);  // the messy logs' history is mostly late
  const auto t0 = std::chrono::steady_clock::now();
  auto reader = stub->Subscribe(&ctx, req);
  v1::AlertEnvelope env;
  int n = 0;
  while (reader->Read(&env)) {
    ++n;
    EXPECT_EQ(env.alert().kind(), v1::ALERT_KIND_CHURNED);
    EXPECT_EQ(env.alert().region(), "east");
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  const auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_LT(took, std::chrono::seconds(3)) << "the stream ends at the deadline";
  int expected = 0;
  for (const auto& a : StoredAlerts(store_.get())) {
    expected += a.kind() == v1::ALERT_KIND_CHURNED && a.region() == "east";
  }
  EXPECT_EQ(n, expected);
  EXPECT_GT(expected, 0);
}

TEST_F(ApiTest, PublishEventsAnswersPerEventAfterTheBrokerAcknowledged) {
  auto stub = v1::IngestService::NewStub(channel_);
  grpc::ClientContext ctx;
  Auth(&ctx, kPublisher);
  v1::PublishEventsRequest req;
  *req.add_events() = Purchase("ok-1", "cust-a", kT0, 100);
  *req.add_events() = Purchase("bad-1", "", kT0, 100);
  *req.add_events() = Purchase("bad-2", "cust-b", kT0, -100);
  *req.add_events() = Tick("tick-1", kT0);
  *req.add_events() = Registered("ok-2", "cust-c", kT0);
  v1::PublishEventsResponse resp;
  ASSERT_TRUE(stub->PublishEvents(&ctx, req, &resp).ok());
  ASSERT_EQ(resp.results_size(), 5);
  EXPECT_EQ(resp.accepted(), 2);
  EXPECT_EQ(resp.rejected(), 3);
  EXPECT_TRUE(resp.results(0).accepted());
  EXPECT_EQ(resp.results(0).partition(), 1);
  EXPECT_GE(resp.results(0).offset(), 100);
  EXPECT_EQ(resp.results(1).reason(), "events[1].customer_id: is empty");
  EXPECT_EQ(resp.results(2).reason(), "events[2].purchase.amount.amount_minor: must not be negative (got -100)");
  EXPECT_NE(resp.results(3).reason().find("clock ticks"), std::string::npos);
  EXPECT_TRUE(resp.results(4).accepted());
  ASSERT_EQ(producer_.keys.size(), 2u);
  EXPECT_EQ(producer_.keys[0], "cust-a");
  EXPECT_EQ(producer_.topics[0], "events");
  v1::Event sent;
  ASSERT_TRUE(sent.ParseFromString(producer_.values[1]));
  EXPECT_EQ(sent.event_id(), "ok-2");
}

TEST_F(ApiTest, TlsWithASelfSignedCertificate) {
  const std::string cert = (dir_ / "cert.pem").string(), key = (dir_ / "key.pem").string();
  const std::string cmd = absl::StrCat(
      "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost "
      "-addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout ",
      key, " -out ", cert, " 2>/dev/null");
  ASSERT_EQ(std::system(cmd.c_str()), 0) << "openssl must be installed";
  ApiOptions o;
  o.tls_cert_file = cert;
  o.tls_key_file = key;
  StartServer(o);
  std::ifstream in(cert);
  std::stringstream pem;
  pem << in.rdbuf();
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = pem.str();
  auto secure = grpc::CreateChannel(absl::StrCat("localhost:", server_->port()),
                                    grpc::SslCredentials(ssl));
  grpc::ClientContext ctx;
  Auth(&ctx, kAdmin);
  v1::GetStatusResponse resp;
  grpc::Status s = v1::AdminService::NewStub(secure)->GetStatus(&ctx, v1::GetStatusRequest(), &resp);
  EXPECT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(resp.partitions_size(), 3);
  // A plaintext client cannot talk to it.
  grpc::ClientContext ctx2;
  Auth(&ctx2, kAdmin);
  ctx2.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
  auto plain = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                   grpc::InsecureChannelCredentials());
  EXPECT_FALSE(v1::AdminService::NewStub(plain)->GetStatus(&ctx2, v1::GetStatusRequest(), &resp).ok());
}

// Runs a shell command and returns its stdout.
std::string Shell(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  ::pclose(p);
  return out;
}

TEST_F(ApiTest, TheMetricsEndpointServesPrometheusText) {
  web::HttpOptions o;
  o.listen = "127.0.0.1:0";
  o.metrics_only = true;
  auto server = web::HttpServer::Start(o, nullptr, &metrics_, nullptr);
  ASSERT_TRUE(server.ok()) << server.status();
  metrics_.Add("lifecycle_events_applied_total", "partition=\"2\"", 41);
  metrics_.Observe("lifecycle_commit_latency_seconds", "", 0.003);
  const std::string text = Shell(absl::StrCat("curl -s http://127.0.0.1:", (*server)->port(), "/metrics"));
  EXPECT_NE(text.find("lifecycle_events_applied_total{partition=\"2\"} 41"), std::string::npos) << text;
  EXPECT_NE(text.find("lifecycle_commit_latency_seconds_bucket{le=\"0.005\"} 1"), std::string::npos);
  EXPECT_NE(text.find("# TYPE lifecycle_consumer_lag gauge"), std::string::npos);
  EXPECT_EQ(Shell(absl::StrCat("curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:",
                               (*server)->port(), "/api/v1/summary")),
            "404")
      << "the metrics port serves /metrics only";
}

TEST(ProcStatTest, AProcessFieldsAfterItsCommand) {
  const std::vector<std::string> self = ProcStatFields();
  ASSERT_GT(self.size(), 21u);
  EXPECT_EQ(self[0], "R");                          // field 3, state: running (reading it)
  EXPECT_EQ(self[1], std::to_string(::getppid()));  // field 4, the parent's pid
  EXPECT_EQ(ProcStatFields(std::to_string(::getpid()))[1], self[1]);
  EXPECT_TRUE(ProcStatFields("no-such-process").empty());
}

TEST_F(ApiTest, TheJsonApiMirrorsTheGrpcReadApiWithTheSameTokensAndRoles) {
  web::HttpOptions o;
  o.listen = "127.0.0.1:0";
  auto http = web::HttpServer::Start(o, server_->InProcessChannel(), &metrics_, nullptr);
  ASSERT_TRUE(http.ok()) << http.status();
  const std::string base = absl::StrCat("http://127.0.0.1:", (*http)->port(), "/api/v1/");
  auto get = [&](const std::string& path, const std::string& token, std::string* body = nullptr) {
    const std::string out = Shell(absl::StrCat(
        "curl -s -w '\\n%{http_code}' ", token.empty() ? "" : "-H 'Authorization: Bearer " + token + "' ",
        "'", base, path, "'"));
    const size_t nl = out.rfind('\n');
    if (body) *body = out.substr(0, nl);
    return out.substr(nl + 1);
  };
  std::string body;
  // Tokens and roles are the gRPC API's.
  EXPECT_EQ(get("summary", "", &body), "401");
  EXPECT_NE(body.find("\"code\":\"UNAUTHENTICATED\""), std::string::npos) << body;
  EXPECT_EQ(get("status", kReader), "403");
  EXPECT_EQ(get("status", kAdmin), "200");
  // The same message as gRPC, in the protobuf JSON mapping.
  ASSERT_EQ(get("customers/p0-c1", kReader, &body), "200") << body;
  v1::GetCustomerResponse from_http;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(body, &from_http).ok()) << body;
  {
    grpc::ClientContext ctx;
    Auth(&ctx, kReader);
    v1::GetCustomerRequest r;
    r.set_customer_id("p0-c1");
    v1::GetCustomerResponse from_grpc;
    ASSERT_TRUE(v1::CustomerService::NewStub(channel_)->GetCustomer(&ctx, r, &from_grpc).ok());
    EXPECT_EQ(from_http.customer().SerializeAsString(), from_grpc.customer().SerializeAsString());
  }
  EXPECT_EQ(get("customers/nobody", kReader), "404");
  // GetHistory's P(alive) series ends at the view's P(alive).
  ASSERT_EQ(get("customers/p0-c1/history", kReader, &body), "200") << body;
  v1::GetHistoryResponse history;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(body, &history).ok()) << body;
  if (from_http.customer().activity().activity_days() > 0) {
    ASSERT_GT(history.p_alive_size(), 0);
    EXPECT_DOUBLE_EQ(history.p_alive(history.p_alive_size() - 1).p_alive(), from_http.customer().p_alive());
    EXPECT_EQ(history.p_alive(history.p_alive_size() - 1).at().seconds(),
              from_http.customer().evaluated_at().seconds());
  }
  // Query parameters are request fields; a wrong one is INVALID_ARGUMENT.
  EXPECT_EQ(get("customers?stage=STAGE_ACTIVE&pageSize=5", kReader, &body), "200") << body;
  EXPECT_EQ(get("customers?stage=NOT_A_STAGE", kReader), "400");
  EXPECT_EQ(get("customers?colour=red", kReader, &body), "400");
  EXPECT_NE(body.find("unknown parameter colour"), std::string::npos) << body;
  EXPECT_EQ(get("summary?groupBy=DIMENSION_STAGE", kReader, &body), "200");
  EXPECT_EQ(get("alerts?pageSize=3", kReader, &body), "200");

  // Server-Sent Events: the event id is Subscribe's cursor; Last-Event-ID resumes after it.
  // (The messy log's clock jumps decades ahead: most of its alerts are late ones.)
  const std::string stream = absl::StrCat(
      "timeout 3 curl -sN -H 'Authorization: Bearer ", kReader, "' ", base,
      "alerts/stream?includeLate=true");
  const std::string first = Shell(stream);
  std::vector<std::string> ids;
  for (size_t at = first.find("\nid: "); at != std::string::npos; at = first.find("\nid: ", at + 1)) {
    ids.push_back(first.substr(at + 5, first.find('\n', at + 1) - at - 5));
  }
  ASSERT_GE(ids.size(), 3u) << first.substr(0, 2000);
  const std::string resumed = Shell(absl::StrCat(
      "timeout 3 curl -sN -H 'Authorization: Bearer ", kReader, "' -H 'Last-Event-ID: ", ids[1], "' ",
      base, "alerts/stream?includeLate=true"));
  EXPECT_EQ(resumed.find("id: " + ids[0] + "\n"), std::string::npos);
  EXPECT_EQ(resumed.find("id: " + ids[1] + "\n"), std::string::npos);
  EXPECT_NE(resumed.find("id: " + ids[2] + "\n"), std::string::npos) << resumed.substr(0, 2000);
  // recent=N: each partition's newest N first, not the whole log.
  const std::string recent = Shell(absl::StrCat(
      "timeout 2 curl -sN -H 'Authorization: Bearer ", kReader, "' '", base, "alerts/stream?recent=1&includeLate=true'"));
  size_t events = 0;
  for (size_t at = recent.find("\nid: "); at != std::string::npos; at = recent.find("\nid: ", at + 1)) ++events;
  EXPECT_GE(events, 1u);
  EXPECT_LE(events, 3u) << "one per partition at most";
  EXPECT_LT(events, ids.size());
  EXPECT_EQ(Shell(absl::StrCat("timeout 3 curl -sN -o /dev/null -w '%{http_code}' ", base, "alerts/stream")), "401")
      << "a stream without a token is refused before it opens";
  EXPECT_EQ(Shell(absl::StrCat("timeout 3 curl -sN -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer ",
                               kReader, "' '", base, "alerts/stream?minSeverity=NOPE'")),
            "400");
  (*http)->Stop();
}

}  // namespace
}  // namespace lifecycle::api
