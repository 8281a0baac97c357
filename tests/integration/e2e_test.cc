// End to end on real parts: the local Kafka broker, lifecycled as a process, RocksDB
// in a temp dir, gRPC over loopback.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "tests/integration/harness.h"
#include "tests/integration/reflection_client.h"
#include "tests/projections/test_events.h"

namespace lifecycle::testing {
namespace {

using Records = std::vector<std::pair<std::string, std::string>>;

// A deterministic log: each customer registers, then buys, services and refunds.
Records MakeLog(int customers, int events, uint32_t seed, int first_event = 0) {
  std::mt19937 rng(seed);
  Records out;
  out.reserve(events);
  for (int i = first_event; i < first_event + events; ++i) {
    const std::string c = absl::StrCat("cust-", rng() % customers);
    const std::string id = absl::StrCat("ev-", seed, "-", i);
    const int64_t at = kT0 + static_cast<int64_t>(rng() % (400 * kDay));
    v1::Event e;
    switch (rng() % 6) {
      case 0: e = Registered(id, c, at, (rng() % 2) ? "east" : "west"); break;
      case 1:
      case 2: e = Purchase(id, c, at, 1000 + rng() % 500000); break;
      case 3:
      case 4: e = Service(id, c, at, rng() % 80000, rng() % 4 != 0); break;
      default: e = Refund(id, c, at, rng() % 1000); break;
    }
    out.emplace_back(c, e.SerializeAsString());
  }
  return out;
}

class E2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    topic_ = UniqueName("lifecycle-events");
    group_ = UniqueName("lifecycled");
  }

  std::unique_ptr<DaemonProcess> NewDaemon(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = TestDaemonArgs(dir_.path(), topic_, group_, 4);
    args.insert(args.end(), extra.begin(), extra.end());
    return std::make_unique<DaemonProcess>(dir_.path(), args);
  }

  // Every customer the oracle knows is served with a byte-identical view.
  void ExpectViewsMatchOracle(const std::string& address, int64_t records) {
    auto oracle = RunOracle(topic_, records);
    ASSERT_TRUE(oracle.ok()) << oracle.status();
    ASSERT_FALSE(oracle->views.empty());
    auto compared = CompareWithOracle(address, *oracle);
    EXPECT_TRUE(compared.ok()) << compared.status();
  }

  TempDir dir_;
  std::string topic_;
  std::string group_;
};

TEST_F(E2eTest, PublishedEventsGiveExactViewsOverGrpc) {
  auto d = NewDaemon();
  ASSERT_TRUE(d->Start().ok()) << d->LogTail();
  const Records log = MakeLog(200, 3000, 7);
  ASSERT_TRUE(ProduceAll(topic_, log).ok());
  ASSERT_TRUE(WaitForStoredRecords(d->address(), log.size(), 60).ok()) << d->LogTail();
  ExpectViewsMatchOracle(d->address(), log.size());

  // Status: every partition caught up, all applied, nothing rejected.
  auto st = GetStatus(d->address());
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->partitions_size(), 4);
  int64_t applied = 0;
  for (const auto& p : st->partitions()) {
    EXPECT_TRUE(p.assigned());
    EXPECT_EQ(p.high_watermark(), p.stored_offset() + 1) << "partition " << p.partition();
    EXPECT_EQ(p.lag(), 0);
    EXPECT_EQ(p.events_rejected(), 0);
    applied += p.events_applied();
  }
  EXPECT_EQ(applied, static_cast<int64_t>(log.size()));
  EXPECT_EQ(st->events_topic(), topic_);

  // GetCustomer says what it reflects, and refuses bad ids with a message.
  auto stub = v1::CustomerService::NewStub(
      grpc::CreateChannel(d->address(), grpc::InsecureChannelCredentials()));
  {
    grpc::ClientContext ctx;
    v1::GetCustomerRequest req;
    req.set_customer_id("cust-1");
    v1::GetCustomerResponse resp;
    ASSERT_TRUE(stub->GetCustomer(&ctx, req, &resp).ok());
    ASSERT_EQ(resp.freshness().partitions_size(), 1);
    const auto& pos = resp.freshness().partitions(0);
    EXPECT_EQ(pos.partition(), resp.customer().partition());
    EXPECT_GE(pos.offset(), resp.customer().last_offset());
    EXPECT_TRUE(pos.has_stream_time());
  }
  {
    grpc::ClientContext ctx;
    v1::GetCustomerRequest req;
    req.set_customer_id("nobody-at-all");
    v1::GetCustomerResponse resp;
    grpc::Status s = stub->GetCustomer(&ctx, req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
    EXPECT_NE(s.error_message().find("nobody-at-all"), std::string::npos);
  }
  for (const std::string& bad : {std::string(), std::string(300, 'x')}) {
    grpc::ClientContext ctx;
    v1::GetCustomerRequest req;
    req.set_customer_id(bad);
    v1::GetCustomerResponse resp;
    grpc::Status s = stub->GetCustomer(&ctx, req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(s.error_message().find("customer_id"), std::string::npos) << s.error_message();
  }

  // Health and reflection are on.
  auto channel = grpc::CreateChannel(d->address(), grpc::InsecureChannelCredentials());
  {
    auto health = grpc::health::v1::Health::NewStub(channel);
    grpc::ClientContext ctx;
    grpc::health::v1::HealthCheckResponse resp;
    ASSERT_TRUE(health->Check(&ctx, grpc::health::v1::HealthCheckRequest(), &resp).ok());
    EXPECT_EQ(resp.status(), grpc::health::v1::HealthCheckResponse::SERVING);
  }
  {
    auto names = ReflectedServices(d->address());
    ASSERT_TRUE(names.ok()) << names.status();
    EXPECT_TRUE(names->count("lifecycle.v1.CustomerService"));
    EXPECT_TRUE(names->count("lifecycle.v1.AdminService"));
  }

  d->Signal(SIGTERM);
  const int ws = d->Wait();
  EXPECT_TRUE(WIFEXITED(ws) && WEXITSTATUS(ws) == 0) << ws;
}

// Publishes `log` in chunks from another thread while the daemon is stopped with
// `sig` and restarted `stops` times; then every view must equal the oracle's.
void StopMidStreamAndCheck(int sig, int stops,
                           const std::function<std::unique_ptr<DaemonProcess>()>& make,
                           const std::string& topic, std::function<void(const std::string&, int64_t)> check) {
  const Records log = MakeLog(500, 24000, 11);
  auto d = make();
  ASSERT_TRUE(d->Start().ok()) << d->LogTail();
  std::atomic<bool> produce_failed{false};
  std::thread producer([&] {
    const size_t chunk = 1000;
    for (size_t i = 0; i < log.size(); i += chunk) {
      Records part(log.begin() + i, log.begin() + std::min(log.size(), i + chunk));
      if (!ProduceAll(topic, part).ok()) produce_failed = true;
      std::this_thread::sleep_for(std::chrono::milliseconds(60));
    }
  });
  std::mt19937 rng(sig * 1000 + stops);
  int mid_stream = 0;
  for (int i = 0; i < stops; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(150 + rng() % 400));
    auto st = GetStatus(d->address());
    int64_t stored = 0;
    if (st.ok()) {
      for (const auto& p : st->partitions()) stored += p.stored_offset() + 1;
    }
    if (stored < static_cast<int64_t>(log.size())) ++mid_stream;
    d->Signal(sig);
    const int ws = d->Wait();
    if (sig == SIGTERM) {
      EXPECT_TRUE(WIFEXITED(ws) && WEXITSTATUS(ws) == 0)
          << "lifecycled did not exit cleanly on SIGTERM:\n" << d->LogTail();
      EXPECT_NE(d->LogTail().find("consumer closed"), std::string::npos) << d->LogTail();
    } else {
      EXPECT_TRUE(WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL) << ws;
    }
    ASSERT_TRUE(d->Start().ok()) << d->LogTail();
  }
  producer.join();
  ASSERT_FALSE(produce_failed.load());
  EXPECT_GE(mid_stream, stops / 2) << "too few stops came before the log was fully stored";
  ASSERT_TRUE(WaitForStoredRecords(d->address(), log.size(), 120).ok()) << d->LogTail();
  auto st = GetStatus(d->address());
  ASSERT_TRUE(st.ok());
  int64_t applied = 0, duplicate = 0;
  for (const auto& p : st->partitions()) {
    applied += p.events_applied();
    duplicate += p.events_duplicate();
  }
  EXPECT_EQ(applied, static_cast<int64_t>(log.size())) << "each record applied exactly once";
  EXPECT_EQ(duplicate, 0);
  check(d->address(), log.size());
  d->Signal(SIGTERM);
  d->Wait();
}

TEST_F(E2eTest, SigtermMidStreamThenRestartIsExact) {
  StopMidStreamAndCheck(
      SIGTERM, 3, [this] { return NewDaemon(); }, topic_,
      [this](const std::string& a, int64_t n) { ExpectViewsMatchOracle(a, n); });
}

TEST_F(E2eTest, KillNineMidStreamSeveralTimesIsExact) {
  StopMidStreamAndCheck(
      SIGKILL, 5, [this] { return NewDaemon(); }, topic_,
      [this](const std::string& a, int64_t n) { ExpectViewsMatchOracle(a, n); });
}

TEST_F(E2eTest, TheDaemonTicksEveryPartitionSoStreamTimeFollowsTheClock) {
  auto d = NewDaemon({"--tick-interval-s", "1"});  // the later flag wins over the default 0
  ASSERT_TRUE(d->Start().ok()) << d->LogTail();
  const int64_t started = std::chrono::duration_cast<std::chrono::seconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count();
  // No customer events at all: only ticks can move the four partitions' stream time.
  absl::Status waited = absl::DeadlineExceededError("no status yet");
  for (int i = 0; i < 200; ++i) {
    auto st = GetStatus(d->address());
    if (st.ok() && st->partitions_size() == 4) {
      int ticked = 0;
      for (const auto& p : st->partitions()) {
        ticked += p.stream_time().seconds() >= started - 1 && p.stored_offset() >= 1;
      }
      if (ticked == 4) {
        waited = absl::OkStatus();
        break;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(waited.ok()) << "every partition saw at least two ticks at wall-clock time\n"
                           << d->LogTail();
  EXPECT_NE(d->LogTail().find("clock ticker: a tick to every partition every 1s"),
            std::string::npos);
  d->Signal(SIGTERM);
  const int ws = d->Wait();
  EXPECT_TRUE(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
}

TEST_F(E2eTest, BadLinesAndInvalidEventsAreReportedNotAppliedAndDoNotStopTheDaemon) {
  auto d = NewDaemon();
  ASSERT_TRUE(d->Start().ok()) << d->LogTail();

  // lifecyclectl publish reports each bad line with its number and why.
  const std::string file = dir_.path() + "/events.jsonl";
  {
    std::ofstream out(file);
    out << R"({"eventId":"j1","customerId":"bad-1","occurredAt":"2024-03-01T10:00:00Z","customerRegistered":{"profile":{"name":"Li","region":"east"}}})"
        << "\n"
        << R"({"eventId":"j2","customerId": this is not json)" << "\n"
        << R"({"eventId":"j3","customerId":"bad-1","occurredAt":"2024-03-02T10:00:00Z","purchase":{"orderId":"o1","amount":{"amountMinor":"-500","currency":"CNY"}}})"
        << "\n"
        << R"({"eventId":"j4","customerId":"bad-1","occurredAt":"2024-03-03T10:00:00Z","purchase":{"orderId":"o2","amount":{"amountMinor":"12000","currency":"CNY"}}})"
        << "\n";
  }
  CommandResult r = RunCommand(absl::StrCat(LIFECYCLECTL_BIN, " --brokers ", TestBrokers(),
                                            " --topic ", topic_, " publish ", file),
                               dir_.path());
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;  // rejected input lines
  EXPECT_NE(r.out.find("published 2 event(s)"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("line 2: invalid JSON"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("line 3: invalid event: purchase.amount.amount_minor"), std::string::npos)
      << r.err;

  // Bytes that are no event, and an event without a customer, straight to Kafka.
  v1::Event no_customer = Purchase("raw-2", "", kT0, 100);
  ASSERT_TRUE(ProduceAll(topic_, {{"bad-1", std::string("\x0a\xff\xff\xff garbage", 13)},
                                  {"bad-1", no_customer.SerializeAsString()},
                                  {"bad-1", Purchase("raw-3", "bad-1", kT0 + 5 * kDay, 800)
                                                .SerializeAsString()}})
                  .ok());
  ASSERT_TRUE(WaitForStoredRecords(d->address(), 5, 60).ok()) << d->LogTail();
  auto st = GetStatus(d->address());
  ASSERT_TRUE(st.ok()) << "the daemon must keep serving";
  int64_t rejected = 0, applied = 0;
  for (const auto& p : st->partitions()) {
    rejected += p.events_rejected();
    applied += p.events_applied();
  }
  EXPECT_EQ(rejected, 2);
  EXPECT_EQ(applied, 3);
  EXPECT_NE(d->LogTail().find("rejected to the DLQ: undecodable"), std::string::npos) << d->LogTail();
  EXPECT_NE(d->LogTail().find("rejected to the DLQ: customer_id: is empty"), std::string::npos);

  r = RunCommand(absl::StrCat(LIFECYCLECTL_BIN, " --server ", d->address(), " get --json bad-1"),
                 dir_.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("\"total_spend_minor\": \"12800\""), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"event_count\": \"3\""), std::string::npos) << r.out;
  EXPECT_TRUE(d->Running());
}

}  // namespace
}  // namespace lifecycle::testing
