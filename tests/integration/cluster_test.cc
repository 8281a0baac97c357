// Issue 11: several lifecycled instances in one consumer group on a real broker. Three
// instances (replicas 1) fold a simulated history published in chunks while instances
// are killed with SIGKILL and restarted (static membership, same addresses); then a
// fourth joins and one leaves. Throughout, a client loops GetCustomer over random
// customers through random instances, and a subscriber follows AlertService.Subscribe
// through whichever instance answers, resuming with its cursor. At the end every view
// served through any instance equals a single-instance rebuild of the same log, byte
// for byte; listings and summaries through any instance equal the single instance's;
// and the alerts streamed are exactly the single instance's: none missing, none twice.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "lifecycle/v1/service.grpc.pb.h"
#include "services/lifecyclectl/simulate.h"
#include "tests/integration/harness.h"

namespace lifecycle::testing {
namespace {

using Records = std::vector<std::pair<std::string, std::string>>;
constexpr int kPartitions = 6;

std::shared_ptr<grpc::Channel> Channel(const std::string& address) {
  return grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
}

// One instance of the cluster: its own directory, a fixed address (kept across
// restarts, as a StatefulSet's pod keeps its name) and static membership.
struct Instance {
  std::string id;
  std::string address;
  std::unique_ptr<TempDir> dir;
  std::unique_ptr<DaemonProcess> proc;
  bool up = false;
};

class Cluster {
 public:
  Cluster(std::string topic, std::string group) : topic_(std::move(topic)), group_(std::move(group)) {}

  absl::Status Add() {
    auto in = std::make_unique<Instance>();
    in->id = absl::StrCat(group_, "-", instances_.size());
    in->address = absl::StrCat("127.0.0.1:", FreePort());
    in->dir = std::make_unique<TempDir>();
    std::vector<std::string> args = TestDaemonArgs(in->dir->path(), topic_, group_, kPartitions,
                                                   TestBrokers(), in->address);
    for (const std::string& a :
         {std::string("--instance-id"), in->id, std::string("--replicas"), std::string("1"),
          std::string("--cluster-refresh-ms"), std::string("300"),
          std::string("--consumer-config"), std::string("session.timeout.ms=6000")}) {
      args.push_back(a);
    }
    in->proc = std::make_unique<DaemonProcess>(in->dir->path(), args);
    instances_.push_back(std::move(in));
    return Start(instances_.size() - 1);
  }
  absl::Status Start(size_t i) {
    std::lock_guard<std::mutex> lock(mu_);
    absl::Status s = instances_[i]->proc->Start();
    instances_[i]->up = s.ok();
    return s;
  }
  void Kill(size_t i) {
    std::lock_guard<std::mutex> lock(mu_);
    instances_[i]->proc->Signal(SIGKILL);
    instances_[i]->proc->Wait();
    instances_[i]->up = false;
  }
  void Stop(size_t i) {
    std::lock_guard<std::mutex> lock(mu_);
    instances_[i]->proc->Signal(SIGTERM);
    instances_[i]->proc->Wait();
    instances_[i]->up = false;
  }
  // Every address, up or not (a client does not know which are).
  std::vector<std::string> Addresses() {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::string> out;
    for (const auto& in : instances_) out.push_back(in->address);
    return out;
  }
  std::vector<std::string> UpAddresses() {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::string> out;
    for (const auto& in : instances_) {
      if (in->up) out.push_back(in->address);
    }
    return out;
  }
  size_t size() const { return instances_.size(); }
  std::string LogTails() {
    std::string out;
    for (const auto& in : instances_) absl::StrAppend(&out, "--- ", in->id, ":\n", in->proc->LogTail(2500));
    return out;
  }

 private:
  std::string topic_, group_;
  std::mutex mu_;
  std::vector<std::unique_ptr<Instance>> instances_;
};

// The view of `id` as served through `address`, serialized; "" when not served.
std::string ViewAt(const std::string& address, const std::string& id, grpc::Status* status) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  v1::GetCustomerRequest req;
  req.set_customer_id(id);
  v1::GetCustomerResponse resp;
  *status = v1::CustomerService::NewStub(Channel(address))->GetCustomer(&ctx, req, &resp);
  return status->ok() ? resp.customer().SerializeAsString() : "";
}

// Every instance describes the group on its own (every --cluster-refresh-ms), so one
// instance's plan may lag another's by a refresh, or be mid-rebalance. GetStatus of
// `address`, asked until it names `members` members and at least `holders` holders
// for every partition, or 30 s have passed (then the last answer).
absl::StatusOr<v1::GetStatusResponse> WaitForPlan(const std::string& address, int members,
                                                  int holders) {
  auto planned = [&](const v1::GetStatusResponse& st) {
    if (st.members_size() != members) return false;
    for (const auto& p : st.partitions()) {
      if (p.holders_size() < holders) return false;
    }
    return true;
  };
  auto status = GetStatus(address);
  for (int i = 0; i < 300 && (!status.ok() || !planned(*status)); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    status = GetStatus(address);
  }
  return status;
}

// Every customer id of a listing through `address`, paging `page` at a time.
std::vector<std::string> ListIds(const std::string& address, v1::ListCustomersRequest req, int page) {
  std::vector<std::string> ids;
  req.set_page_size(page);
  auto stub = v1::CustomerService::NewStub(Channel(address));
  for (int pages = 0; pages < 10000; ++pages) {
    grpc::ClientContext ctx;
    v1::ListCustomersResponse resp;
    grpc::Status s = stub->ListCustomers(&ctx, req, &resp);
    EXPECT_TRUE(s.ok()) << address << ": " << s.error_message();
    if (!s.ok()) break;
    for (const auto& v : resp.customers()) ids.push_back(v.customer_id());
    if (resp.next_page_token().empty()) break;
    req.set_page_token(resp.next_page_token());
  }
  return ids;
}

// Every alert id ListAlerts gives through `address`, paging `page` at a time.
std::vector<std::string> ListAlertIds(const std::string& address, int page) {
  std::vector<std::string> ids;
  v1::ListAlertsRequest req;
  req.set_page_size(page);
  auto stub = v1::AlertService::NewStub(Channel(address));
  for (int pages = 0; pages < 100000; ++pages) {
    grpc::ClientContext ctx;
    v1::ListAlertsResponse resp;
    grpc::Status s = stub->ListAlerts(&ctx, req, &resp);
    EXPECT_TRUE(s.ok()) << address << ": " << s.error_message();
    if (!s.ok()) break;
    for (const auto& a : resp.alerts()) ids.push_back(a.alert_id());
    if (resp.next_page_token().empty()) break;
    req.set_page_token(resp.next_page_token());
  }
  return ids;
}

std::string SummaryAt(const std::string& address, const std::string& advisor = "") {
  grpc::ClientContext ctx;
  v1::GetSummaryRequest req;
  req.set_advisor_id(advisor);
  v1::GetSummaryResponse resp;
  grpc::Status s = v1::CustomerService::NewStub(Channel(address))->GetSummary(&ctx, req, &resp);
  EXPECT_TRUE(s.ok()) << address << ": " << s.error_message();
  resp.clear_freshness();  // the same positions, gathered in another order
  return resp.SerializeAsString();
}

// Follows AlertService.Subscribe through whichever instance answers, resuming with the
// last cursor it was sent.
class Follower {
 public:
  explicit Follower(Cluster* cluster) : cluster_(cluster), thread_([this] { Run(); }) {}
  ~Follower() { Stop(); }
  void Stop() {
    stop_ = true;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (ctx_) ctx_->TryCancel();
    }
    if (thread_.joinable()) thread_.join();
  }
  std::vector<std::string> ids() {
    std::lock_guard<std::mutex> lock(mu_);
    return ids_;
  }
  int reconnects() const { return reconnects_; }

 private:
  void Run() {
    std::string cursor;
    size_t next = 0;
    while (!stop_) {
      const std::vector<std::string> all = cluster_->Addresses();
      const std::string at = all[next++ % all.size()];
      auto ctx = std::make_shared<grpc::ClientContext>();
      {
        std::lock_guard<std::mutex> lock(mu_);
        ctx_ = ctx;
      }
      if (stop_) break;
      v1::SubscribeRequest req;
      req.set_include_late(true);
      req.set_cursor(cursor);
      auto reader = v1::AlertService::NewStub(Channel(at))->Subscribe(ctx.get(), req);
      v1::AlertEnvelope env;
      while (reader->Read(&env)) {
        std::lock_guard<std::mutex> lock(mu_);
        ids_.push_back(env.alert().alert_id());
        cursor = env.cursor();
      }
      reader->Finish().IgnoreError();
      ++reconnects_;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }

  Cluster* cluster_;
  std::atomic<bool> stop_{false};
  std::atomic<int> reconnects_{0};
  std::mutex mu_;
  std::shared_ptr<grpc::ClientContext> ctx_;
  std::vector<std::string> ids_;
  std::thread thread_;
};

// Loops GetCustomer over random customers through random instances; an UNAVAILABLE is
// retried on the next instance. Counts what it saw.
class Prober {
 public:
  Prober(Cluster* cluster, std::vector<std::string> ids)
      : cluster_(cluster), ids_(std::move(ids)), thread_([this] { Run(); }) {}
  ~Prober() { Stop(); }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  // What the test is doing: 0 kills and restarts, 1 an instance joins and one leaves.
  std::atomic<int> phase{0};
  int64_t ok = 0, unavailable_retried = 0, unanswered = 0;
  int64_t other_errors[2] = {0, 0};
  std::string first_error;

 private:
  void Run() {
    std::mt19937_64 rng(11);
    while (!stop_) {
      const std::string id = ids_[rng() % ids_.size()];
      const std::vector<std::string> all = cluster_->Addresses();
      size_t at = rng() % all.size();
      bool answered = false;
      for (size_t tries = 0; tries < all.size() && !answered; ++tries, ++at) {
        grpc::Status s;
        ViewAt(all[at % all.size()], id, &s);
        if (s.ok()) {
          ++ok;
          answered = true;
        } else if (s.error_code() == grpc::StatusCode::UNAVAILABLE ||
                   s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
          ++unavailable_retried;
        } else {
          ++other_errors[phase];
          if (other_errors[phase] <= 5) {
            std::fprintf(stderr, "%lld probe error via %s: %s\n",
                         static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch()).count() % 100000),
                         all[at % all.size()].c_str(), s.error_message().c_str());
          }
          if (first_error.empty()) {
            first_error = absl::StrCat(id, " through ", all[at % all.size()], " in phase ",
                                       phase.load(), ": ", s.error_message());
          }
          answered = true;
        }
      }
      if (!answered) ++unanswered;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }

  Cluster* cluster_;
  std::vector<std::string> ids_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// Waits until every customer's view through `through` equals the reference's; the
// number that still differ at the deadline (0: all equal).
size_t WaitForEqualViews(const std::string& reference, const std::vector<std::string>& through,
                         const std::vector<std::string>& ids, int timeout_s, std::string* example) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  size_t differ = 0;
  for (;;) {
    differ = 0;
    for (size_t i = 0; i < ids.size(); ++i) {
      grpc::Status s1, s2;
      const std::string want = ViewAt(reference, ids[i], &s1);
      const std::string got = ViewAt(through[i % through.size()], ids[i], &s2);
      if (want != got || !s1.ok() || !s2.ok()) {
        if (++differ == 1 && example) {
          *example = absl::StrCat(ids[i], " through ", through[i % through.size()], ": ",
                                  s2.ok() ? "differs" : s2.error_message());
        }
      }
    }
    if (differ == 0 || std::chrono::steady_clock::now() > deadline) return differ;
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
}

TEST(ClusterTest, ThreeInstancesThroughKillsRestartsAndMembershipChangesServeTheSingleInstanceViews) {
  sim::SimOptions o;
  o.customers = 1200;
  o.population = sim::SimOptions::Population::kDropout;
  Records log;
  std::set<std::string> customer_set;
  sim::SimulateInTimeOrder(
      o,
      [&](const sim::SerializedEvent& e) {
        log.emplace_back(std::string(e.customer_id), std::string(e.bytes));
        customer_set.insert(std::string(e.customer_id));
      },
      {});
  const std::vector<std::string> customers(customer_set.begin(), customer_set.end());
  const std::string topic = UniqueName("cluster-events");
  const std::string group = UniqueName("cluster");

  Cluster cluster(topic, group);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(cluster.Add().ok()) << cluster.LogTails();

  // The log in eight chunks; something happens to the cluster between them.
  const size_t chunk = log.size() / 8 + 1;
  auto publish = [&](size_t k) {
    Records part(log.begin() + static_cast<std::ptrdiff_t>(std::min(log.size(), k * chunk)),
                 log.begin() + static_cast<std::ptrdiff_t>(std::min(log.size(), (k + 1) * chunk)));
    if (!part.empty()) {
      ASSERT_TRUE(ProduceAll(topic, part).ok());
    }
  };
  publish(0);
  // The first chunk's customers are known everywhere before the prober starts.
  std::set<std::string> first_ids;
  for (size_t i = 0; i < std::min(log.size(), chunk); ++i) first_ids.insert(log[i].first);
  Follower follower(&cluster);
  // Waits (up to 60 s) until, as `address` sees it, every partition is held by its owner
  // and one replica and both have stored chunks 0..k; the records so stored.
  auto wait_whole = [&](const std::string& address, size_t k) {
    const auto want = static_cast<int64_t>(std::min(log.size(), (k + 1) * chunk));
    int64_t stored = 0;
    for (int i = 0; i < 600 && stored < want; ++i) {
      auto st = GetStatus(address);
      stored = 0;
      if (st.ok()) {
        for (const auto& p : st->partitions()) {
          int64_t least = p.holders_size() >= 2 ? INT64_MAX : -1;
          for (const auto& h : p.holders()) least = std::min(least, h.stored_offset());
          stored += least + 1;
        }
      }
      if (stored < want) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return stored;
  };
  // Every partition owned, and its owner and replica caught up with the first chunk.
  ASSERT_GE(wait_whole(cluster.Addresses()[0], 0), static_cast<int64_t>(std::min(log.size(), chunk)))
      << cluster.LogTails();
  auto status = WaitForPlan(cluster.Addresses()[1], 3, 2);
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(status->members_size(), 3);
  auto owners_of = [](const v1::GetStatusResponse& st) {
    std::map<int32_t, std::string> out;
    for (const auto& p : st.partitions()) out[p.partition()] = p.owner();
    return out;
  };
  const std::map<int32_t, std::string> owners_before = owners_of(*status);
  for (const auto& p : status->partitions()) {
    EXPECT_EQ(p.holders_size(), 2) << "partition " << p.partition() << ": owner and one replica";
  }
  Prober prober(&cluster, std::vector<std::string>(first_ids.begin(), first_ids.end()));

  // Kills at random moments of the publishing, each instance restarted after a while
  // (before and after the session timeout: the group keeps a static member's partitions
  // for that long).
  std::mt19937_64 rng(5);
  const int waits_ms[] = {1500, 9000, 3000};
  for (size_t k = 1; k <= 3; ++k) {
    publish(k);
    const size_t victim = rng() % 3;
    std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 700));
    cluster.Kill(victim);
    std::printf("kill -9 of instance %zu after chunk %zu at %lld\n", victim, k,
                static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::system_clock::now().time_since_epoch()).count() % 100000));
    std::this_thread::sleep_for(std::chrono::milliseconds(waits_ms[k - 1]));
    ASSERT_TRUE(cluster.Start(victim).ok()) << cluster.LogTails();
    // One fault at a time: the next kill waits until the instance restarted holds its
    // partitions again and has caught up. (With one replica, a customer whose two holders
    // are one restarting and one killed has no one to answer; that is not what the
    // prober measures.)
    EXPECT_GE(wait_whole(cluster.Addresses()[victim], k),
              static_cast<int64_t>(std::min(log.size(), (k + 1) * chunk)))
        << "instance " << victim << " back with every partition held twice\n"
        << cluster.LogTails();
  }
  // Static membership: with every instance back, each owns what it owned before.
  std::map<int32_t, std::string> owners_after;
  for (int i = 0; i < 150 && owners_after != owners_before; ++i) {
    if (auto st = GetStatus(cluster.Addresses()[0]); st.ok()) owners_after = owners_of(*st);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  EXPECT_EQ(owners_after, owners_before) << "the assignment comes back after the restarts";
  publish(4);
  publish(5);
  // A fourth instance joins; then the first leaves for good.
  prober.phase = 1;
  ASSERT_TRUE(cluster.Add().ok()) << cluster.LogTails();
  publish(6);
  std::this_thread::sleep_for(std::chrono::seconds(3));
  cluster.Stop(0);
  publish(7);
  publish(8);
  ASSERT_TRUE(ProduceAll(topic, {{"", TickBytes(o.end_seconds + 86400)}}).ok());
  const int64_t total = static_cast<int64_t>(log.size()) + 1;

  // The single-instance rebuild of the same log.
  TempDir ref_dir;
  DaemonProcess reference(ref_dir.path(),
                          [&] {
                            auto a = TestDaemonArgs(ref_dir.path(), topic, group + "-reference",
                                                    kPartitions);
                            a.push_back("--replicas");
                            a.push_back("0");
                            return a;
                          }());
  ASSERT_TRUE(reference.Start().ok()) << reference.LogTail();
  ASSERT_TRUE(WaitForStoredRecords(reference.address(), total, 300).ok()) << reference.LogTail();

  const std::vector<std::string> up = cluster.UpAddresses();
  ASSERT_EQ(up.size(), 3u);
  std::string example;
  const size_t differ = WaitForEqualViews(reference.address(), up, customers, 120, &example);
  EXPECT_EQ(differ, 0u) << example << "\n" << cluster.LogTails();
  prober.Stop();
  // The membership change settled in every instance's plan before the listings.
  for (const std::string& at : up) {
    auto st = WaitForPlan(at, static_cast<int>(up.size()), 1);
    ASSERT_TRUE(st.ok()) << at << ": " << st.status();
  }
  // A listing reads each partition from one of its holders, and a replica answers while
  // it is up to kReplicaCaughtUpRecords behind (an owner too, while it catches up after
  // the change): the listings are compared exactly once every holder of every
  // partition, as each instance sees them, has applied the whole log.
  auto ref_status = GetStatus(reference.address());
  ASSERT_TRUE(ref_status.ok()) << ref_status.status();
  std::map<int32_t, int64_t> end_offset;
  for (const auto& p : ref_status->partitions()) end_offset[p.partition()] = p.stored_offset();
  auto holders_at_end = [&](const v1::GetStatusResponse& st) {
    for (const auto& p : st.partitions()) {
      for (const auto& h : p.holders()) {
        if (h.stored_offset() < end_offset[p.partition()]) return false;
      }
    }
    return true;
  };
  for (const std::string& at : up) {
    auto st = GetStatus(at);
    for (int i = 0; i < 300 && (!st.ok() || !holders_at_end(*st)); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      st = GetStatus(at);
    }
    ASSERT_TRUE(st.ok()) << at << ": " << st.status();
    EXPECT_TRUE(holders_at_end(*st)) << at << ": " << st->ShortDebugString();
  }

  // Listings and summaries through every instance: the single instance's.
  v1::ListCustomersRequest by_id, by_risk, loyal;
  by_risk.set_order_by(v1::CUSTOMER_ORDER_CHURN_RISK);
  loyal.set_stage(v1::STAGE_ACTIVE);
  const auto want_ids = ListIds(reference.address(), by_id, 500);
  const auto want_risk = ListIds(reference.address(), by_risk, 500);
  const auto want_active = ListIds(reference.address(), loyal, 500);
  const auto want_listed_alerts = ListAlertIds(reference.address(), 1000);
  EXPECT_EQ(want_ids.size(), customers.size());
  for (const std::string& at : up) {
    EXPECT_EQ(ListIds(at, by_id, 97), want_ids) << at;
    EXPECT_EQ(ListIds(at, by_risk, 61), want_risk) << at;
    EXPECT_EQ(ListIds(at, loyal, 53), want_active) << at;
    EXPECT_EQ(ListAlertIds(at, 333), want_listed_alerts) << at;
    EXPECT_EQ(SummaryAt(at), SummaryAt(reference.address())) << at;
    EXPECT_EQ(SummaryAt(at, "adv-03"), SummaryAt(reference.address(), "adv-03")) << at;
  }

  // The alerts: a subscriber of the single instance from the start, and the follower.
  std::vector<std::string> want_alerts;
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    v1::SubscribeRequest req;
    req.set_include_late(true);
    auto reader = v1::AlertService::NewStub(Channel(reference.address()))->Subscribe(&ctx, req);
    v1::AlertEnvelope env;
    while (reader->Read(&env)) want_alerts.push_back(env.alert().alert_id());
    reader->Finish().IgnoreError();
  }
  for (int i = 0; i < 300 && follower.ids().size() < want_alerts.size(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // nothing more may come
  follower.Stop();
  const std::vector<std::string> got = follower.ids();
  const std::set<std::string> want_set(want_alerts.begin(), want_alerts.end()),
      got_set(got.begin(), got.end());
  size_t missing = 0, extra = 0;
  for (const auto& id : want_set) missing += !got_set.count(id);
  for (const auto& id : got_set) extra += !want_set.count(id);
  std::printf(
      "cluster: %zu customers, %lld records; views compared %zu, differing %zu; GetCustomer "
      "probes ok %lld, UNAVAILABLE retried on another instance %lld, unanswered %lld, other "
      "errors %lld during kills and restarts, %lld while an instance joined and one left; alerts: single instance %zu, streamed through the cluster %zu (%d "
      "reconnects), missing %zu, extra %zu, duplicates %zu\n",
      customers.size(), static_cast<long long>(total), customers.size(), differ,
      static_cast<long long>(prober.ok), static_cast<long long>(prober.unavailable_retried),
      static_cast<long long>(prober.unanswered), static_cast<long long>(prober.other_errors[0]),
      static_cast<long long>(prober.other_errors[1]),
      want_alerts.size(), got.size(), follower.reconnects(), missing, extra,
      got.size() - got_set.size());
  EXPECT_EQ(prober.other_errors[0], 0) << prober.first_error;
  EXPECT_EQ(prober.other_errors[1], 0) << prober.first_error;
  EXPECT_EQ(prober.unanswered, 0);
  EXPECT_GT(prober.ok, 0);
  EXPECT_GT(want_alerts.size(), 0u);
  EXPECT_EQ(missing, 0u);
  EXPECT_EQ(extra, 0u);
  EXPECT_EQ(got.size(), got_set.size()) << "no alert streamed twice";
}

}  // namespace
}  // namespace lifecycle::testing
