// The API and the CLI against the real daemon and broker: alert streams that
// survive restarts, the alerts topic, publishing through gRPC, listings, metrics.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "services/stream/kafka.h"
#include "tests/integration/harness.h"
#include "tests/integration/reflection_client.h"
#include "tests/projections/test_events.h"

namespace lifecycle::testing {
namespace {

class ApiE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    topic_ = UniqueName("api-events");
    group_ = UniqueName("api");
  }
  std::unique_ptr<DaemonProcess> NewDaemon(const std::string& listen = "127.0.0.1:0") {
    return std::make_unique<DaemonProcess>(
        dir_.path(), TestDaemonArgs(dir_.path(), topic_, group_, 3, TestBrokers(), listen));
  }
  // `n` lost deals, one alert each, for customers first..first+n-1.
  void LoseDeals(int first, int n) {
    std::vector<std::pair<std::string, std::string>> recs;
    for (int i = first; i < first + n; ++i) {
      const std::string c = absl::StrCat("cust-", i);
      recs.emplace_back(c, Lost(absl::StrCat("lost-", i), c, kT0 + i * 60,
                                v1::DEAL_LOST_REASON_PRICE)
                               .SerializeAsString());
    }
    ASSERT_TRUE(ProduceAll(topic_, recs).ok());
  }
  TempDir dir_;
  std::string topic_, group_;
};

TEST_F(ApiE2eTest, AlertStreamResumesAcrossARestartWithEveryAlertExactlyOnce) {
  auto d = NewDaemon();
  ASSERT_TRUE(d->Start().ok()) << d->LogTail();
  LoseDeals(0, 30);
  ASSERT_TRUE(WaitForStoredRecords(d->address(), 30, 60).ok()) << d->LogTail();

  std::vector<v1::Alert> got;
  std::string cursor;
  {
    auto stub = v1::AlertService::NewStub(grpc::CreateChannel(d->address(), grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    auto reader = stub->Subscribe(&ctx, v1::SubscribeRequest());
    v1::AlertEnvelope env;
    while (got.size() < 12 && reader->Read(&env)) {
      got.push_back(env.alert());
      cursor = env.cursor();
    }
    ctx.TryCancel();
    reader->Finish().IgnoreError();
  }
  ASSERT_EQ(got.size(), 12u);
  d->Signal(SIGTERM);
  d->Wait();
  LoseDeals(30, 20);  // while the daemon is down
  ASSERT_TRUE(d->Start().ok()) << d->LogTail();
  ASSERT_TRUE(WaitForStoredRecords(d->address(), 50, 60).ok()) << d->LogTail();
  {
    auto stub = v1::AlertService::NewStub(grpc::CreateChannel(d->address(), grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    v1::SubscribeRequest req;
    req.set_cursor(cursor);
    auto reader = stub->Subscribe(&ctx, req);
    v1::AlertEnvelope env;
    while (got.size() < 50 && reader->Read(&env)) got.push_back(env.alert());
    ctx.TryCancel();
    reader->Finish().IgnoreError();
  }
  ASSERT_EQ(got.size(), 50u);
  std::set<std::string> ids, customers;
  std::map<int32_t, int64_t> last_seq;
  for (const auto& a : got) {
    EXPECT_TRUE(ids.insert(a.alert_id()).second) << "duplicate " << a.alert_id();
    customers.insert(a.customer_id());
    auto it = last_seq.find(a.partition());
    if (it != last_seq.end()) {
      EXPECT_GT(a.sequence(), it->second) << "in order per partition";
    }
    last_seq[a.partition()] = a.sequence();
  }
  EXPECT_EQ(customers.size(), 50u) << "every alert, none missed";

  // The alert publisher copied every alert to the alerts topic, id in a header.
  auto records = ReadTopic(topic_ + ".alerts", static_cast<int64_t>(ids.size()), 30);
  ASSERT_TRUE(records.ok()) << records.status();
  std::set<std::string> published;
  for (const auto& rec : *records) {
    v1::Alert a;
    ASSERT_TRUE(a.ParseFromString(rec.value));
    EXPECT_EQ(rec.key, a.customer_id());
    EXPECT_EQ(rec.Header("alert_id"), a.alert_id());
    published.insert(rec.Header("alert_id"));
  }
  EXPECT_EQ(published, ids);
  d->Signal(SIGTERM);
  d->Wait();
}

TEST_F(ApiE2eTest, WithTokensTheApiIsClosedButHealthAndReflectionStayOpen) {
  const std::string tokens = dir_.path() + "/tokens.toml";
  {
    std::ofstream out(tokens);
    out << "[[tokens]]\nname = \"ops\"\ntoken = \"ops-token-0123456789\"\nroles = [\"admin\"]\n";
  }
  DaemonProcess d(dir_.path(), {"--brokers", TestBrokers(), "--events-topic", topic_,
                                "--alerts-topic", topic_ + ".alerts", "--group", group_,
                                "--data-dir", dir_.path() + "/data", "--grpc-listen",
                                "127.0.0.1:0", "--partitions", "1", "--tick-interval-s", "0",
                                "--tokens-file", tokens});
  ASSERT_TRUE(d.Start().ok()) << d.LogTail();
  auto channel = grpc::CreateChannel(d.address(), grpc::InsecureChannelCredentials());
  {
    grpc::ClientContext ctx;
    v1::GetStatusResponse resp;
    EXPECT_EQ(v1::AdminService::NewStub(channel)->GetStatus(&ctx, v1::GetStatusRequest(), &resp)
                  .error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
  }
  {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer ops-token-0123456789");
    v1::GetStatusResponse resp;
    EXPECT_TRUE(
        v1::AdminService::NewStub(channel)->GetStatus(&ctx, v1::GetStatusRequest(), &resp).ok());
  }
  {
    grpc::ClientContext ctx;
    grpc::health::v1::HealthCheckResponse resp;
    EXPECT_TRUE(grpc::health::v1::Health::NewStub(channel)
                    ->Check(&ctx, grpc::health::v1::HealthCheckRequest(), &resp)
                    .ok());
  }
  {
    auto names = ReflectedServices(d.address());
    ASSERT_TRUE(names.ok()) << names.status();
    EXPECT_GE(names->size(), 4u);
  }
  // The CLI passes the token from the environment.
  CommandResult r = RunCommand(absl::StrCat("LIFECYCLE_TOKEN=ops-token-0123456789 ", LIFECYCLECTL_BIN,
                                            " --server ", d.address(), " status"),
                               dir_.path());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = RunCommand(absl::StrCat(LIFECYCLECTL_BIN, " --server ", d.address(), " status"), dir_.path());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("pass --token or set LIFECYCLE_TOKEN"), std::string::npos) << r.err;
  d.Signal(SIGTERM);
  d.Wait();
}

TEST_F(ApiE2eTest, TheCliPublishesThroughGrpcListsSummarizesAndFollowsAlerts) {
  auto d = NewDaemon();
  ASSERT_TRUE(d->Start().ok()) << d->LogTail();
  const std::string ctl = absl::StrCat(LIFECYCLECTL_BIN, " --server ", d->address(), " ");
  // Follow alerts in the background, across a restart.
  const std::string follow_out = dir_.path() + "/follow.jsonl";
  const std::string follow_cmd =
      absl::StrCat(ctl, "alerts --follow --json --kind deal_lost > ", follow_out, " 2>",
                   dir_.path(), "/follow.err");
  BackgroundCommand follower(follow_cmd);  // in its own process group: stopped with the CLI
  // publish --via-grpc: one bad line, three good ones (two lost deals).
  const std::string file = dir_.path() + "/in.jsonl";
  {
    std::ofstream out(file);
    out << R"({"eventId":"g1","customerId":"ann","occurredAt":"2024-05-01T10:00:00Z","customerRegistered":{"profile":{"region":"east"}}})" << "\n"
        << R"({"eventId":"g2","customerId":"ann","occurredAt":"2024-05-02T10:00:00Z","dealLost":{"leadId":"L1","reason":"DEAL_LOST_REASON_PRICE"}})" << "\n"
        << R"({"eventId":"g3","customerId":"","occurredAt":"2024-05-02T10:00:00Z","dealLost":{}})" << "\n"
        << R"({"eventId":"g4","customerId":"bob","occurredAt":"2024-05-03T10:00:00Z","dealLost":{"leadId":"L2","reason":"DEAL_LOST_REASON_FINANCING"}})" << "\n";
  }
  CommandResult r = RunCommand(ctl + "publish --via-grpc " + file, dir_.path());
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_NE(r.out.find("published 3 event(s)"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("line 3: invalid event: customer_id: is empty"), std::string::npos) << r.err;
  ASSERT_TRUE(WaitForStoredRecords(d->address(), 3, 60).ok()) << d->LogTail();

  r = RunCommand(ctl + "list --stage lost_prospect", dir_.path());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("CUSTOMER"), std::string::npos);
  EXPECT_NE(r.out.find("ann"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("bob"), std::string::npos) << r.out;
  r = RunCommand(ctl + "summary --by lost_deal_reason", dir_.path());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("PRICE"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("FINANCING"), std::string::npos) << r.out;
  r = RunCommand(ctl + "list --stage nonsense", dir_.path());
  EXPECT_EQ(r.exit_code, 1);
  r = RunCommand(absl::StrCat(LIFECYCLECTL_BIN, " --server 127.0.0.1:1 --timeout 1 status"), dir_.path());
  EXPECT_EQ(r.exit_code, 2) << r.err;

  // Restart the daemon (on the same address); the follower resumes and sees later
  // alerts too, once each.
  const std::string address = d->address();
  d->Signal(SIGTERM);
  d->Wait();
  d = NewDaemon(address);
  ASSERT_TRUE(d->Start().ok()) << d->LogTail();
  LoseDeals(0, 3);
  ASSERT_TRUE(WaitForStoredRecords(d->address(), 6, 60).ok()) << d->LogTail();
  std::vector<std::string> lines;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    std::ifstream in(follow_out);
    lines.clear();
    std::string line;
    while (std::getline(in, line)) lines.push_back(line);
    if (lines.size() >= 5) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  follower.Stop();
  EXPECT_EQ(lines.size(), 5u) << "2 lost deals before the restart, 3 after";
  std::set<std::string> unique(lines.begin(), lines.end());
  EXPECT_EQ(unique.size(), lines.size()) << "no alert twice";

  // Metrics over HTTP.
  r = RunCommand(absl::StrCat("curl -s http://", d->metrics_address(), "/metrics"), dir_.path());
  EXPECT_NE(r.out.find("lifecycle_events_applied_total{partition="), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("lifecycle_alerts_raised_total{kind=\"DEAL_LOST\"} 3"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("lifecycle_commit_latency_seconds_count"), std::string::npos);
  d->Signal(SIGTERM);
  d->Wait();
}

}  // namespace
}  // namespace lifecycle::testing
