#include "services/lifecyclectl/simulate.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "projections/churn_model.h"
#include "projections/projector.h"
#include "tests/projections/memory_store.h"

namespace lifecycle::sim {
namespace {

std::vector<std::string> CustomerOrder(const SimOptions& o) {
  std::vector<std::string> out;
  Simulate(o, [&](const v1::Event& e) { out.push_back(e.SerializeAsString()); });
  return out;
}

TEST(SimulateTest, TheSameSeedGivesTheSameHistoryAnotherSeedAnother) {
  SimOptions o;
  o.customers = 300;
  const auto a = CustomerOrder(o);
  EXPECT_EQ(a, CustomerOrder(o));
  o.seed = 2;
  EXPECT_NE(a, CustomerOrder(o));
}

// The time-ordered stream holds exactly the events of the customer-by-customer one,
// in non-decreasing event time, ties in customer order, with the customer id as key.
TEST(SimulateTest, TimeOrderIsTheSameEventsSortedStablyByTime) {
  SimOptions o;
  o.customers = 500;
  std::vector<v1::Event> by_customer;
  Simulate(o, [&](const v1::Event& e) { by_customer.push_back(e); });
  std::stable_sort(by_customer.begin(), by_customer.end(), [](const auto& x, const auto& y) {
    return x.occurred_at().seconds() < y.occurred_at().seconds();
  });
  std::vector<std::string> expected;
  for (const auto& e : by_customer) expected.push_back(e.SerializeAsString());

  std::vector<std::string> got;
  int64_t last = INT64_MIN;
  int64_t progress_calls = 0;
  const int64_t n = SimulateInTimeOrder(
      o,
      [&](const SerializedEvent& s) {
        v1::Event e;
        ASSERT_TRUE(e.ParseFromArray(s.bytes.data(), static_cast<int>(s.bytes.size())));
        EXPECT_EQ(s.customer_id, e.customer_id());
        EXPECT_EQ(s.at, e.occurred_at().seconds());
        EXPECT_GE(s.at, last);
        last = s.at;
        got.emplace_back(s.bytes);
      },
      [&](int64_t) { ++progress_calls; });
  EXPECT_EQ(n, static_cast<int64_t>(expected.size()));
  EXPECT_EQ(got, expected);
  EXPECT_EQ(progress_calls, n / 100000);
}

// Age bands as in the seed's base-customer table: before the 70s 6%, 70s 21%, 80s 44%,
// 90s 29% (generated as 55+, 45-54, 35-44, 25-34).
TEST(SimulateTest, AgeBandsFollowTheSeedTable) {
  SimOptions o;
  o.customers = 5000;
  std::map<v1::AgeBand, int> bands;
  int registered = 0;
  Simulate(o, [&](const v1::Event& e) {
    if (!e.has_customer_registered()) return;
    ++registered;
    ++bands[e.customer_registered().profile().age_band()];
  });
  ASSERT_EQ(registered, 5000);
  auto share = [&](v1::AgeBand b) { return 100.0 * bands[b] / registered; };
  EXPECT_NEAR(share(v1::AGE_BAND_55_PLUS), 6, 2);
  EXPECT_NEAR(share(v1::AGE_BAND_45_54), 21, 2);
  EXPECT_NEAR(share(v1::AGE_BAND_35_44), 44, 2);
  EXPECT_NEAR(share(v1::AGE_BAND_25_34), 29, 2);
}

// Home regions and vehicle models as in the seed's tables (Yuci 3,033 of 15,414
// customers; Sail 953, Cruze 543, Aveo 239, Lova 123, Epica 95, Captiva 34 of 1,987).
TEST(SimulateTest, RegionsAndModelsFollowTheSeedTables) {
  SimOptions o;
  o.customers = 5000;
  std::map<std::string, int> regions, models;
  Simulate(o, [&](const v1::Event& e) {
    if (!e.has_customer_registered()) return;
    ++regions[e.customer_registered().profile().region()];
    ++models[e.customer_registered().profile().vehicle_model()];
  });
  auto share = [&](std::map<std::string, int>& m, const char* k) { return 100.0 * m[k] / 5000; };
  EXPECT_NEAR(share(regions, "yuci"), 100.0 * 3033 / 15414, 2);
  EXPECT_NEAR(share(regions, "non-local"), 100.0 * 12381 / 15414, 2);
  EXPECT_EQ(regions.size(), 2u);
  const std::pair<const char*, int> by_model[] = {{"Sail", 953}, {"Cruze", 543}, {"Aveo", 239},
                                                  {"Lova", 123}, {"Epica", 95},  {"Captiva", 34}};
  for (const auto& [model, n] : by_model) {
    EXPECT_NEAR(share(models, model), 100.0 * n / 1987, 2) << model;
  }
  EXPECT_EQ(models.size(), 6u);
}

// Each customer's (x, t_x, T) in days from their purchases and service visits, as
// lifecycled counts activity days, at the history's end.
std::vector<projections::model::Rfm> Summaries(const SimOptions& o) {
  std::map<std::string, std::set<int64_t>> days;
  Simulate(o, [&](const v1::Event& e) {
    if (e.has_purchase() || e.has_service_visit()) {
      days[e.customer_id()].insert(e.occurred_at().seconds() / 86400);
    }
  });
  std::vector<projections::model::Rfm> out;
  for (const auto& [id, d] : days) {
    out.push_back({static_cast<double>(d.size() - 1), static_cast<double>(*d.rbegin() - *d.begin()),
                   static_cast<double>(o.end_seconds / 86400 - *d.begin())});
  }
  return out;
}

// The dropout population leaves for real: the churn model fitted on it finds a
// probability of leaving after an activity well above zero (5.2% for this seed; the
// drawn mean is 17%, but the model assumes Poisson visits, not a service cadence, and
// an accessories purchase soon after the sale counts as an activity); on the
// quiet-spells population it finds next to none.
TEST(SimulateTest, TheDropoutPopulationLeavesAndTheChurnModelFindsIt) {
  SimOptions o;
  o.customers = 20000;
  o.population = SimOptions::Population::kDropout;
  const auto dropout = projections::model::FitMbgNbd(Summaries(o));
  ASSERT_TRUE(dropout.converged);
  const auto& p = dropout.params;
  std::printf("dropout population: r %.3f alpha %.1f a %.3f b %.3f, leaving %.3f\n", p.r,
              p.alpha, p.a, p.b, p.a / (p.a + p.b));
  EXPECT_GT(p.a / (p.a + p.b), 0.03);
  EXPECT_LT(p.a / (p.a + p.b), 0.3);
  o.population = SimOptions::Population::kQuietSpells;
  const auto quiet = projections::model::FitMbgNbd(Summaries(o));
  const auto& q = quiet.params;
  std::printf("quiet-spells population: r %.3f alpha %.1f a %.3g b %.3g, leaving %.3g\n", q.r,
              q.alpha, q.a, q.b, q.a / (q.a + q.b));
  EXPECT_LT(q.a / (q.a + q.b), 0.01);
}

}  // namespace
}  // namespace lifecycle::sim

namespace lifecycle::sim {
namespace {

// Issue 14 (ARCHITECTURE.md "Time"): one simulated history folded four ways — in time
// order from an empty partition, the same after the partition's clock had already
// reached the end of the history (onboarding into a running service), customer by
// customer, and in time order with 10% of the events delayed — gives every customer the
// same record and stage history once the history has settled.
TEST(LateHistoryTest, TheSameHistoryGivesTheSameRecordsInTimeOrderAfterTheClockOrByCustomer) {
  SimOptions o;
  o.customers = 1000;
  o.population = SimOptions::Population::kDropout;
  std::vector<std::string> by_time, by_customer;
  SimulateInTimeOrder(o, [&](const SerializedEvent& e) { by_time.emplace_back(e.bytes); }, {});
  Simulate(o, [&](const v1::Event& e) { by_customer.push_back(e.SerializeAsString()); });
  auto tick = [](int64_t at) {
    v1::Event e;
    e.set_event_id("tick-" + std::to_string(at));
    e.mutable_occurred_at()->set_seconds(at);
    e.mutable_clock_tick()->mutable_now()->set_seconds(at);
    return e.SerializeAsString();
  };
  const int64_t end = o.end_seconds + 86400;
  projections::DomainConfig config;
  auto fold = [&](const std::vector<std::string>& before, const std::vector<std::string>& log,
                  testing::MemoryStore* store) {
    v1::PartitionMeta m;
    m.set_partition(0);
    m.set_offset(-1);
    projections::PartitionProjector p(&config, m, store);
    int64_t offset = -1;
    auto apply = [&](const std::string& bytes) {
      ASSERT_TRUE(p.Apply(++offset, bytes).ok());
      if (offset % 500 == 0) {
        store->Commit(p.Pending());
        p.MarkCommitted();
      }
    };
    for (const auto& b : before) apply(b);
    for (const auto& b : log) apply(b);
    apply(tick(end));
    store->Commit(p.Pending());
    p.MarkCommitted();
    return p.committed_meta();
  };
  // What depends on when events arrived, not on what they say: the offset of the last
  // one applied, and where the journal keeps its bases.
  // Events of one customer at the same second are folded in the order they arrive: the
  // dedup ring of event ids may hold them in either order.
  // How many alerts a customer has had is history, not state (see the delayed load).
  bool count_alerts = true;
  auto comparable = [&count_alerts](projections::CustomerRecord r) {
    r.last_offset = 0;
    r.journal_older = r.journal_newer = projections::JournalBase();
    r.journal_next = 0;
    std::sort(r.recent_events.begin(), r.recent_events.end());
    if (!count_alerts) r.alerts = 0;
    return r;
  };
  // Stage history as a view shows it (the offsets that caused each entry aside).
  auto history = [](const testing::MemoryStore& m, const std::string& id) {
    std::vector<std::tuple<int, int, int64_t, int>> out;
    auto it = m.book.transitions.find(id);
    if (it == m.book.transitions.end()) return out;
    for (const auto& t : it->second) out.emplace_back(t.from, t.to, t.at, int(t.reason.code));
    return out;
  };
  // How many customers differ from the in-order load; the first few are described.
  auto differences = [&](const testing::MemoryStore& want_store, const testing::MemoryStore& got_store,
                         const char* what) {
    int differ = 0;
    for (const auto& [id, bytes] : want_store.records) {
      const projections::CustomerRecord want = comparable(want_store.Record(id));
      const projections::CustomerRecord got = comparable(got_store.Record(id));
      if (got == want && history(got_store, id) == history(want_store, id)) continue;
      if (++differ <= 3) {
        ADD_FAILURE() << id << " " << what << ": stage " << int(got.stage) << " vs "
                      << int(want.stage) << ", evaluated_at " << got.evaluated_at << " vs "
                      << want.evaluated_at << ", transitions " << got.transitions << " vs "
                      << want.transitions << ", alerts " << got.alerts << " vs " << want.alerts
                      << ", hold " << got.hold_until << ", history equal "
                      << (history(got_store, id) == history(want_store, id));
      }
    }
    return differ;
  };
  testing::MemoryStore in_time, onboarded, customers;
  fold({}, by_time, &in_time);
  const auto meta_onboarded = fold({tick(end - 3600)}, by_time, &onboarded);
  const auto meta_customers = fold({}, by_customer, &customers);
  EXPECT_GT(meta_onboarded.events_late(), 0);
  EXPECT_GT(meta_customers.events_late(), 0);
  EXPECT_EQ(meta_onboarded.events_out_of_order(), 0) << "each customer's events in its order";
  ASSERT_EQ(in_time.records.size(), onboarded.records.size());
  ASSERT_EQ(in_time.records.size(), customers.records.size());
  EXPECT_EQ(differences(in_time, onboarded, "onboarded"), 0);
  EXPECT_EQ(differences(in_time, customers, "by customer"), 0);

  // 10% of the events delayed by up to 7 days (an offline terminal, a weekly upload),
  // then up to 60 (still within late.window_days) arrive after later events of their
  // customer: each such customer is re-derived with the event in its place.
  for (const int64_t max_days : {7, 60}) {
    std::vector<std::pair<int64_t, std::string>> delayed;
    uint64_t h = 7;
    for (const auto& b : by_time) {
      v1::Event e;
      ASSERT_TRUE(e.ParseFromString(b));
      h = h * 6364136223846793005ull + 1442695040888963407ull;
      const int64_t delay = (h >> 33) % 10 == 0 ? static_cast<int64_t>((h >> 40) % (max_days * 86400)) : 0;
      delayed.emplace_back(e.occurred_at().seconds() + delay, b);
    }
    std::stable_sort(delayed.begin(), delayed.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    std::vector<std::string> log;
    for (auto& [at, b] : delayed) log.push_back(std::move(b));
    testing::MemoryStore late;
    const auto meta_late = fold({}, log, &late);
    // Alerts are raised on what the fold knows when it learns it: a callback whose
    // contact arrives days late was overdue until then, and its alert stays (an alert is
    // not taken back). Every alert of the in-order load is raised, at the same instant;
    // the customers with more are counted.
    count_alerts = false;
    const int differ_late = differences(in_time, late, "delayed");
    std::set<std::tuple<std::string, int, int64_t>> want_alerts, got_alerts;
    for (const auto& a : in_time.alerts[0]) want_alerts.emplace(a.customer_id(), a.kind(), a.at().seconds());
    for (const auto& a : late.alerts[0]) got_alerts.emplace(a.customer_id(), a.kind(), a.at().seconds());
    std::map<std::string, int> more_by_kind;
    std::set<std::string> with_more;
    for (const auto& a : got_alerts) {
      if (want_alerts.count(a)) continue;
      with_more.insert(std::get<0>(a));
      ++more_by_kind[v1::AlertKind_Name(std::get<1>(a))];
    }
    int missing = 0;
    for (const auto& a : want_alerts) missing += !got_alerts.count(a);
    std::printf("delayed up to %lld days: %zu alerts in time order, %zu delayed; %d missing; %zu customers have more:",
                static_cast<long long>(max_days), want_alerts.size(), got_alerts.size(), missing,
                with_more.size());
    for (const auto& [kind, n] : more_by_kind) std::printf(" %s %d", kind.c_str(), n);
    std::printf("\n");
    EXPECT_EQ(missing, 0);
    // (Two alerts of one kind at one instant are two tasks or two complaints.)
    EXPECT_EQ(late.alerts[0].size() - got_alerts.size(), in_time.alerts[0].size() - want_alerts.size())
        << "no alert twice";

    std::printf("delayed up to %lld days: %lld events out of order (%lld beyond the window), %d of %zu customers "
                "differ, %d journal reads\n",
                static_cast<long long>(max_days), static_cast<long long>(meta_late.events_out_of_order()),
                static_cast<long long>(meta_late.events_beyond_window()), differ_late,
                in_time.records.size(), late.journal_loads);
    EXPECT_GT(meta_late.events_out_of_order(), 0);
    EXPECT_EQ(meta_late.events_beyond_window(), 0);
    EXPECT_EQ(differ_late, 0);
    // The dashboard's stage transition counters follow the re-derived history.
    for (const auto& [key, v] : in_time.aggregates[0]) {
      if (key.rfind("stage_transition/", 0) != 0) continue;
      EXPECT_EQ(late.Counter(key), v.customers()) << key;
    }
  }
}

}  // namespace
}  // namespace lifecycle::sim
