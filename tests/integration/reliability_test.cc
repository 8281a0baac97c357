// Nothing lost, nothing applied twice: poison events, duplicates, a broker outage.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "projections/validate.h"
#include "tests/integration/harness.h"
#include "tests/projections/test_events.h"

namespace lifecycle::testing {
namespace {

using Records = std::vector<std::pair<std::string, std::string>>;

// Valid events of several kinds over `customers` customers.
Records GoodLog(int customers, int n, uint32_t seed, const std::string& prefix = "g") {
  std::mt19937 rng(seed);
  Records out;
  for (int i = 0; i < n; ++i) {
    const std::string c = absl::StrCat("cust-", rng() % customers);
    const std::string id = absl::StrCat(prefix, seed, "-", i);
    const int64_t at = kT0 + static_cast<int64_t>(i) * 3600;
    v1::Event e;
    switch (rng() % 5) {
      case 0: e = Registered(id, c, at, rng() % 2 ? "east" : "west"); break;
      case 1: e = Purchase(id, c, at, 1000 + rng() % 90000); break;
      case 2: e = Service(id, c, at, rng() % 50000, rng() % 3 != 0); break;
      case 3: e = Lost(id, c, at, v1::DEAL_LOST_REASON_PRICE); break;
      default: e = Survey(id, c, at, static_cast<int>(rng() % 11)); break;
    }
    out.emplace_back(c, e.SerializeAsString());
  }
  return out;
}

class ReliabilityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    topic_ = UniqueName("rel-events");
    group_ = UniqueName("rel");
  }
  std::unique_ptr<DaemonProcess> NewDaemon(const std::string& brokers = TestBrokers()) {
    return std::make_unique<DaemonProcess>(dir_.path(),
                                           TestDaemonArgs(dir_.path(), topic_, group_, 3, brokers));
  }
  TempDir dir_;
  std::string topic_, group_;
};

TEST_F(ReliabilityTest, TenThousandPoisonEventsGoToTheDlqAndNeverStopTheDaemon) {
  auto d = NewDaemon();
  ASSERT_TRUE(d->Start().ok()) << d->LogTail();
  std::mt19937 rng(2024);
  Records good = GoodLog(200, 3000, 5);
  Records all;
  int64_t expect_rejected = 0, expect_skipped = 0;
  size_t next_good = 0;
  for (int i = 0; i < 10000; ++i) {
    std::string bytes;
    switch (i % 4) {
      case 0: {  // random bytes
        bytes.resize(1 + rng() % 200);
        for (auto& ch : bytes) ch = static_cast<char>(rng());
        break;
      }
      case 1: {  // decodes, but fails validation
        v1::Event e = Purchase(absl::StrCat("bad-", i), "cust-1", kT0, 500);
        switch (rng() % 5) {
          case 0: e.clear_event_id(); break;
          case 1: e.clear_customer_id(); break;
          case 2: e.mutable_purchase()->mutable_amount()->set_amount_minor(-7); break;
          case 3: e.mutable_occurred_at()->set_seconds(6000000000LL); break;
          default: e.clear_occurred_at(); break;
        }
        bytes = e.SerializeAsString();
        break;
      }
      case 2: {  // a payload from a newer schema (field 90)
        v1::Event e = Registered(absl::StrCat("new-", i), "cust-2", kT0);
        e.clear_customer_registered();
        bytes = e.SerializeAsString() + std::string("\xd2\x05\x02\x08\x01", 5);
        break;
      }
      default: {  // a valid event cut short
        const std::string whole = Purchase(absl::StrCat("cut-", i), "cust-3", kT0, 9).SerializeAsString();
        bytes = whole.substr(0, 1 + rng() % (whole.size() - 1));
        break;
      }
    }
    switch (projections::DecodeEvent(bytes).outcome) {
      case projections::DecodeOutcome::kUndecodable:
      case projections::DecodeOutcome::kInvalid: ++expect_rejected; break;
      case projections::DecodeOutcome::kUnknownPayload: ++expect_skipped; break;
      case projections::DecodeOutcome::kOk: break;  // a cut that still makes an event
    }
    all.emplace_back(absl::StrCat("k", rng() % 300), std::move(bytes));
    if (i % 3 == 0 && next_good < good.size()) all.push_back(good[next_good++]);
  }
  while (next_good < good.size()) all.push_back(good[next_good++]);
  ASSERT_GT(expect_rejected, 5000);
  ASSERT_GT(expect_skipped, 2000);
  ASSERT_TRUE(ProduceAll(topic_, all).ok());
  ASSERT_TRUE(WaitForStoredRecords(d->address(), all.size(), 120).ok()) << d->LogTail();
  EXPECT_TRUE(d->Running()) << "poison never stops the daemon";

  auto st = GetStatus(d->address());
  ASSERT_TRUE(st.ok());
  int64_t rejected = 0, skipped = 0;
  for (const auto& p : st->partitions()) {
    rejected += p.events_rejected();
    skipped += p.events_skipped();
  }
  EXPECT_EQ(rejected, expect_rejected);
  EXPECT_EQ(skipped, expect_skipped);

  // Views are exactly what the good events make.
  auto oracle = RunOracle(topic_, all.size());
  ASSERT_TRUE(oracle.ok()) << oracle.status();
  auto compared = CompareWithOracle(d->address(), *oracle);
  ASSERT_TRUE(compared.ok()) << compared.status();
  EXPECT_GE(*compared, 150u);

  // Every rejected record is in the DLQ with its reason and where it came from.
  auto source = ReadTopic(topic_, all.size());
  ASSERT_TRUE(source.ok());
  std::map<std::pair<int32_t, int64_t>, std::string> by_position;
  for (const auto& r : *source) by_position[{r.partition, r.offset}] = r.value;
  auto dlq = ReadTopic(topic_ + ".dlq", expect_rejected);
  ASSERT_TRUE(dlq.ok()) << dlq.status();
  std::set<std::pair<int32_t, int64_t>> seen;
  for (const auto& r : *dlq) {
    EXPECT_FALSE(r.Header("lifecycle.dlq.reason").empty());
    EXPECT_EQ(r.Header("lifecycle.dlq.source.topic"), topic_);
    const std::pair<int32_t, int64_t> pos = {std::stoi(r.Header("lifecycle.dlq.source.partition")),
                                             std::stoll(r.Header("lifecycle.dlq.source.offset"))};
    EXPECT_TRUE(seen.insert(pos).second);
    EXPECT_EQ(r.value, by_position[pos]) << "the DLQ keeps the original bytes";
  }
  EXPECT_EQ(static_cast<int64_t>(seen.size()), expect_rejected);
  d->Signal(SIGTERM);
  d->Wait();
}

TEST_F(ReliabilityTest, TheSameEventIdTwiceAdjacentOrFarApartIsAppliedOnce) {
  auto d = NewDaemon();
  ASSERT_TRUE(d->Start().ok()) << d->LogTail();
  const v1::Event buy = Purchase("dup-buy", "dup", kT0, 123400);
  const v1::Event reg = Registered("dup-reg", "dup", kT0 - 10, "east");
  Records log = {{"dup", reg.SerializeAsString()}, {"dup", buy.SerializeAsString()},
                 {"dup", buy.SerializeAsString()}};  // adjacent
  for (const auto& r : GoodLog(500, 5000, 9)) log.push_back(r);  // 5,000 other events
  log.emplace_back("dup", buy.SerializeAsString());               // far apart
  log.emplace_back("dup", reg.SerializeAsString());
  ASSERT_TRUE(ProduceAll(topic_, log).ok());
  ASSERT_TRUE(WaitForStoredRecords(d->address(), log.size(), 120).ok()) << d->LogTail();
  auto stub = v1::CustomerService::NewStub(
      grpc::CreateChannel(d->address(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  v1::GetCustomerRequest req;
  req.set_customer_id("dup");
  v1::GetCustomerResponse resp;
  ASSERT_TRUE(stub->GetCustomer(&ctx, req, &resp).ok());
  EXPECT_EQ(resp.customer().activity().total_spend_minor(), 123400);
  EXPECT_EQ(resp.customer().activity().purchases(), 1);
  EXPECT_EQ(resp.customer().activity().event_count(), 2);
  auto st = GetStatus(d->address());
  ASSERT_TRUE(st.ok());
  int64_t duplicates = 0;
  for (const auto& p : st->partitions()) duplicates += p.events_duplicate();
  EXPECT_EQ(duplicates, 3);
  d->Signal(SIGTERM);
  d->Wait();
}

grpc::health::v1::HealthCheckResponse::ServingStatus Health(const std::string& address,
                                                           const std::string& service) {
  auto stub = grpc::health::v1::Health::NewStub(
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
  grpc::health::v1::HealthCheckRequest req;
  req.set_service(service);
  grpc::health::v1::HealthCheckResponse resp;
  if (!stub->Check(&ctx, req, &resp).ok()) return grpc::health::v1::HealthCheckResponse::UNKNOWN;
  return resp.status();
}

TEST_F(ReliabilityTest, ABrokerOutageOfThirtySecondsMidIngestLosesAndDoublesNothing) {
  OwnBroker broker(dir_.path());
  absl::Status started = broker.Start();
  ASSERT_TRUE(started.ok()) << started;
  auto d = NewDaemon(broker.brokers());
  ASSERT_TRUE(d->Start().ok()) << d->LogTail();
  const Records log = GoodLog(300, 6000, 21);
  std::atomic<bool> failed{false};
  std::atomic<size_t> sent{0};
  std::thread producer([&] {  // ingest in chunks; blocks through the outage
    for (size_t i = 0; i < log.size(); i += 150) {
      Records part(log.begin() + i, log.begin() + std::min(log.size(), i + 150));
      if (!ProduceAll(topic_, part, broker.brokers()).ok()) failed = true;
      sent += part.size();
      std::this_thread::sleep_for(std::chrono::milliseconds(40));
    }
  });
  while (sent < 1500) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  // Some views are committed before the outage (so there is something to serve).
  for (int i = 0; i < 600; ++i) {
    auto st = GetStatus(d->address());
    int64_t stored = 0;
    if (st.ok()) {
      for (const auto& p : st->partitions()) stored += p.stored_offset() + 1;
    }
    if (stored >= 1000) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  absl::Status stopped = broker.Stop();
  ASSERT_TRUE(stopped.ok()) << stopped;
  const auto down_at = std::chrono::steady_clock::now();
  bool reported = false;
  int answered = 0;
  while (std::chrono::steady_clock::now() - down_at < std::chrono::seconds(30)) {
    auto st = GetStatus(d->address());
    ASSERT_TRUE(st.ok()) << "status keeps answering during the outage";
    if (!st->broker_connected() &&
        Health(d->address(), "lifecycle.projector") ==
            grpc::health::v1::HealthCheckResponse::NOT_SERVING) {
      reported = true;
    }
    EXPECT_EQ(Health(d->address(), ""), grpc::health::v1::HealthCheckResponse::SERVING);
    auto stub = v1::CustomerService::NewStub(
        grpc::CreateChannel(d->address(), grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
    v1::ListCustomersRequest req;
    req.set_page_size(5);
    v1::ListCustomersResponse resp;
    if (stub->ListCustomers(&ctx, req, &resp).ok() && resp.customers_size() > 0) ++answered;
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  EXPECT_TRUE(reported) << "the outage shows in status and health";
  EXPECT_GE(answered, 30) << "queries are answered throughout the outage";
  started = broker.Start();
  ASSERT_TRUE(started.ok()) << started;
  producer.join();
  ASSERT_FALSE(failed.load());
  ASSERT_TRUE(WaitForStoredRecords(d->address(), log.size(), 180).ok()) << d->LogTail();
  auto st = GetStatus(d->address());
  ASSERT_TRUE(st.ok());
  int64_t applied = 0, duplicates = 0;
  for (const auto& p : st->partitions()) {
    applied += p.events_applied();
    duplicates += p.events_duplicate();
  }
  EXPECT_EQ(applied, static_cast<int64_t>(log.size()));
  EXPECT_EQ(duplicates, 0) << "the idempotent producer wrote nothing twice";
  const auto up_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < up_deadline &&
         Health(d->address(), "lifecycle.projector") != grpc::health::v1::HealthCheckResponse::SERVING) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  EXPECT_EQ(Health(d->address(), "lifecycle.projector"), grpc::health::v1::HealthCheckResponse::SERVING);
  auto oracle = RunOracle(topic_, log.size(), broker.brokers());
  ASSERT_TRUE(oracle.ok()) << oracle.status();
  auto compared = CompareWithOracle(d->address(), *oracle);
  EXPECT_TRUE(compared.ok()) << compared.status();
  d->Signal(SIGTERM);
  d->Wait();
}

}  // namespace
}  // namespace lifecycle::testing
