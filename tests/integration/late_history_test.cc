// Issue 14: one simulated history loaded into a real lifecycled on a real broker three
// ways — in time order before any clock tick; in time order after the clock has passed
// it (onboarding into a running service); customer by customer — gives every customer
// the same view, and the live alert stream of the onboarding holds no alert about
// something older than the alert horizon.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "lifecycle/v1/service.grpc.pb.h"
#include "services/lifecyclectl/simulate.h"
#include "tests/integration/harness.h"

namespace lifecycle::testing {
namespace {

using Records = std::vector<std::pair<std::string, std::string>>;

struct Loaded {
  std::map<std::string, std::string> views;  // id -> view without what depends on offsets
  std::vector<v1::Alert> streamed;           // what a live subscriber got
  int64_t alerts_late = 0;
  int64_t events_out_of_order = 0;
  int64_t events_beyond_window = 0;
};

Loaded Load(const Records& records) {
  Loaded out;
  TempDir dir;
  const std::string topic = UniqueName("late-events");
  DaemonProcess d(dir.path(), OnePartitionDaemonArgs(dir.path(), topic, UniqueName("late")));
  EXPECT_TRUE(d.Start().ok()) << d.LogTail();
  EXPECT_TRUE(ProduceAll(topic, records).ok());
  EXPECT_TRUE(WaitForStoredRecords(d.address(), static_cast<int64_t>(records.size()), 180).ok())
      << d.LogTail();
  auto channel = grpc::CreateChannel(d.address(), grpc::InsecureChannelCredentials());
  auto customers = v1::CustomerService::NewStub(channel);
  v1::ListCustomersRequest req;
  req.set_page_size(500);
  for (;;) {
    grpc::ClientContext ctx;
    v1::ListCustomersResponse resp;
    EXPECT_TRUE(customers->ListCustomers(&ctx, req, &resp).ok());
    for (auto v : resp.customers()) {
      v.clear_last_offset();
      v.clear_recent_alert_ids();  // alert ids hash the offset that raised them
      for (auto& t : *v.mutable_transitions()) t.clear_offset();
      out.views[v.customer_id()] = v.SerializeAsString();
    }
    if (resp.next_page_token().empty()) break;
    req.set_page_token(resp.next_page_token());
  }
  // A live subscriber from the start of the log: what it is sent.
  auto alerts = v1::AlertService::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(3));
  auto reader = alerts->Subscribe(&ctx, v1::SubscribeRequest());
  v1::AlertEnvelope env;
  while (reader->Read(&env)) out.streamed.push_back(env.alert());
  reader->Finish().IgnoreError();
  grpc::ClientContext sctx;
  v1::GetStatusResponse status;
  EXPECT_TRUE(v1::AdminService::NewStub(channel)->GetStatus(&sctx, v1::GetStatusRequest(), &status).ok());
  for (const auto& p : status.partitions()) {
    out.alerts_late += p.alerts_late();
    out.events_out_of_order += p.events_out_of_order();
    out.events_beyond_window += p.events_beyond_window();
  }
  d.Signal(SIGTERM);
  d.Wait();
  return out;
}

TEST(LateHistoryE2eTest, OnboardingAndCustomerOrderGiveTheViewsOfAnInOrderLoadWithoutAnAlertStorm) {
  sim::SimOptions o;
  o.customers = 300;
  o.population = sim::SimOptions::Population::kDropout;
  Records by_time, by_customer;
  sim::SimulateInTimeOrder(
      o,
      [&](const sim::SerializedEvent& e) {
        by_time.emplace_back(std::string(e.customer_id), std::string(e.bytes));
      },
      {});
  sim::Simulate(o, [&](const v1::Event& e) {
    by_customer.emplace_back(e.customer_id(), e.SerializeAsString());
  });
  const int64_t end = o.end_seconds + 86400;
  const int64_t clock = end - 3600;  // the running service's clock when the import starts
  auto with = [&](std::vector<int64_t> ticks_before, const Records& log) {
    Records r;
    for (int64_t t : ticks_before) r.emplace_back("", TickBytes(t));
    r.insert(r.end(), log.begin(), log.end());
    r.emplace_back("", TickBytes(end));  // past every settle time
    return r;
  };
  const Loaded in_order = Load(with({}, by_time));
  const Loaded onboarded = Load(with({clock}, by_time));
  const Loaded customers = Load(with({}, by_customer));

  ASSERT_EQ(in_order.views.size(), static_cast<size_t>(o.customers));
  for (const auto* other : {&onboarded, &customers}) {
    ASSERT_EQ(other->views.size(), in_order.views.size());
    int differ = 0;
    for (const auto& [id, view] : in_order.views) {
      auto it = other->views.find(id);
      ASSERT_NE(it, other->views.end()) << id;
      if (it->second != view && ++differ <= 3) {
        v1::CustomerView a, b;
        a.ParseFromString(view);
        b.ParseFromString(it->second);
        ADD_FAILURE() << id << (other == &onboarded ? " onboarded" : " by customer") << "\n"
                      << b.ShortDebugString() << "\nin order:\n" << a.ShortDebugString();
      }
    }
    EXPECT_EQ(differ, 0) << (other == &onboarded ? "onboarded" : "by customer");
  }
  // The onboarding's live stream: every alert streamed is about something at most
  // alerts.horizon_days (7) older than the clock the service had when it learned of it,
  // which was at least `clock`; the rest are in the history, late.
  EXPECT_GT(onboarded.alerts_late, 0);
  for (const auto& a : onboarded.streamed) {
    EXPECT_FALSE(a.late());
    EXPECT_GE(a.at().seconds(), clock - 7 * 86400) << a.ShortDebugString();
  }
  EXPECT_LT(onboarded.streamed.size(), in_order.streamed.size())
      << "the in-order load streams its alerts as they happen";

  // The fourth way: 10% of the events delayed by up to 7 days. An event that arrives
  // after a later event of its customer is re-derived in its place (the journal, within
  // late.window_days): every view equals the in-order load's. Its alerts are raised on
  // what the service knew when it learned it (a callback whose contact arrives days late
  // was overdue until then): every alert the in-order load streamed is streamed, none
  // twice; the extra ones are counted.
  std::vector<std::pair<int64_t, std::pair<std::string, std::string>>> delayed;
  uint64_t h = 7;
  for (const auto& [key, bytes] : by_time) {
    v1::Event e;
    ASSERT_TRUE(e.ParseFromString(bytes));
    h = h * 6364136223846793005ull + 1442695040888963407ull;
    const int64_t delay = (h >> 33) % 10 == 0 ? static_cast<int64_t>((h >> 40) % (7 * 86400)) : 0;
    delayed.push_back({e.occurred_at().seconds() + delay, {key, bytes}});
  }
  std::stable_sort(delayed.begin(), delayed.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  Records late_log;
  for (auto& [at, kv] : delayed) late_log.push_back(std::move(kv));
  const Loaded late = Load(with({}, late_log));
  int differ = 0;
  for (const auto& [id, view] : in_order.views) {
    if (late.views.at(id) == view || ++differ > 3) continue;
    v1::CustomerView a, b;
    a.ParseFromString(view);
    b.ParseFromString(late.views.at(id));
    ADD_FAILURE() << id << " delayed\n" << b.ShortDebugString() << "\nin order:\n"
                  << a.ShortDebugString();
  }
  auto keys = [](const std::vector<v1::Alert>& alerts) {
    std::set<std::tuple<std::string, int, int64_t>> out;
    for (const auto& a : alerts) out.emplace(a.customer_id(), a.kind(), a.at().seconds());
    return out;
  };
  const auto want = keys(in_order.streamed), got = keys(late.streamed);
  size_t missing = 0;
  for (const auto& k : want) missing += !got.count(k);
  std::set<std::string> ids;
  for (const auto& a : late.streamed) ids.insert(a.alert_id());
  std::printf("10%% of events delayed up to 7 days: %lld events out of order (%lld beyond the "
              "window), %d of %zu views differ from the in-order load; alerts streamed %zu "
              "(in order %zu), %zu of those missing, %zu more\n",
              static_cast<long long>(late.events_out_of_order),
              static_cast<long long>(late.events_beyond_window), differ, in_order.views.size(),
              late.streamed.size(), in_order.streamed.size(), missing, got.size() - (want.size() - missing));
  EXPECT_GT(late.events_out_of_order, 0);
  EXPECT_EQ(late.events_beyond_window, 0);
  EXPECT_EQ(differ, 0);
  EXPECT_EQ(missing, 0u);
  EXPECT_EQ(ids.size(), late.streamed.size()) << "no alert streamed twice";
}

}  // namespace
}  // namespace lifecycle::testing
