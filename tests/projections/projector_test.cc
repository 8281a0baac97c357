#include "projections/projector.h"

#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <set>

#include <random>

#include "projections/names.h"
#include "projections/rules.h"
#include "tests/projections/memory_store.h"
#include "tests/projections/test_events.h"

namespace lifecycle::projections {
namespace {

using namespace lifecycle::testing;  // NOLINT
namespace v1 = lifecycle::v1;
const int64_t D = kDay;

// Drives one partition's projector over a log, committing to a MemoryStore every
// `commit_every` records (and at the end).
struct Driver {
  explicit Driver(MemoryStore* store, int commit_every = 1, int32_t partition = 0,
                  size_t cache = PartitionProjector::kDefaultCacheBytes)
      : store(store), every(commit_every) {
    proj = std::make_unique<PartitionProjector>(&config, FreshMeta(partition), store, cache);
  }
  RecordOutcome Feed(const v1::Event& e) {
    auto out = proj->Apply(++offset, e.SerializeAsString());
    EXPECT_TRUE(out.ok()) << out.status();
    if (++since_commit >= every) Commit();
    return out.ok() ? *out : RecordOutcome{};
  }
  void Commit() {
    if (proj->HasPending()) {
      store->Commit(proj->Pending());
      proj->MarkCommitted();
    }
    since_commit = 0;
  }
  DomainConfig config;
  MemoryStore* store;
  int every;
  int since_commit = 0;
  int64_t offset = -1;
  std::unique_ptr<PartitionProjector> proj;
};

TEST(ProjectorTest, BatchCarriesStatesIndexKeysCountersAndMeta) {
  MemoryStore store;
  DomainConfig config;
  PartitionProjector proj(&config, FreshMeta(2), &store);
  EXPECT_FALSE(proj.HasPending());
  ASSERT_TRUE(proj.Apply(0, Bytes(Purchase("e1", "a", kT0, 100))).ok());
  ASSERT_TRUE(proj.Apply(1, Bytes(Registered("e2", "b", kT0 + 5, "north"))).ok());
  ASSERT_TRUE(proj.Apply(2, Bytes(Purchase("e3", "a", kT0 + 9, 300))).ok());
  PendingBatch b = proj.Pending();
  EXPECT_EQ(b.meta.offset(), 2);
  EXPECT_EQ(b.meta.partition(), 2);
  EXPECT_EQ(b.meta.events_applied(), 3);
  EXPECT_EQ(b.meta.stream_time().seconds(), kT0 + 9);
  ASSERT_EQ(b.customers.size(), 2u);
  EXPECT_EQ(b.customers[0].id, "a");  // first touched first
  EXPECT_FALSE(b.customers[0].before.present);
  EXPECT_TRUE(b.customers[0].after.present);
  EXPECT_EQ(b.customers[0].after.stage, v1::STAGE_NEW);
  EXPECT_EQ(b.customers[1].after.region, TextHash("north"));
  EXPECT_NE(b.customers[0].after.due, kNever);
  std::map<std::string, int64_t> counts;
  for (const auto& [k, v] : b.aggregates) counts[k] = v.customers();
  EXPECT_EQ(counts["customers/all"], 2);
  EXPECT_EQ(counts["stage/NEW"], 1);
  EXPECT_EQ(counts["stage/PROSPECT"], 1);
  EXPECT_EQ(counts["region/north"], 1);
  EXPECT_EQ(counts["stage_transition/UNSPECIFIED->NEW"], 1);
  store.Commit(b);
  proj.MarkCommitted();
  EXPECT_FALSE(proj.HasPending());
  EXPECT_EQ(proj.committed_meta().commits(), 1);
  EXPECT_EQ(store.due.size(), 1u) << "the prospect has no deadline; the buyer has";
}

// DOMAIN.md "Base-customer analysis": an advisor's own counters, the seed 002
// cross-tabs with revenue and activity days, the year before, and lost deals by reason
// x vehicle model x advisor.
TEST(AggregatesTest, AdvisorCountersCrossTabsTheYearBeforeAndLostDealsByModelAndAdvisor) {
  MemoryStore store;
  Driver d(&store);
  auto registered = [](const std::string& id, const std::string& advisor, const std::string& model) {
    v1::Event e = Registered("r-" + id, id, kT0);
    auto* p = e.mutable_customer_registered()->mutable_profile();
    if (!advisor.empty()) p->set_advisor_id(advisor);
    p->set_vehicle_model(model);
    return e;
  };
  d.Feed(registered("a", "adv-1", "Sail"));
  d.Feed(registered("b", "adv-1", "Aveo"));
  d.Feed(registered("c", "", "Sail"));
  // a: two activity days in the year before and one in the last 12 months; b: one in
  // the last 12 months; c: a lost deal on a lead for another model.
  d.Feed(Purchase("a1", "a", kT0 + 10 * D, 100000));
  d.Feed(Service("a2", "a", kT0 + 50 * D, 20000));
  d.Feed(Service("a3", "a", kT0 + 400 * D, 30000));
  d.Feed(Purchase("b1", "b", kT0 + 420 * D, 50000));
  v1::Event lead = Lead("c1", "c", kT0 + 430 * D);
  lead.mutable_lead_captured()->set_interest("Malibu");
  d.Feed(lead);
  d.Feed(Lost("c2", "c", kT0 + 431 * D, v1::DEAL_LOST_REASON_PRICE));
  d.Feed(Tick("t", kT0 + 440 * D));
  d.Commit();
  auto get = [&store](const std::string& k) {
    v1::AggregateValue sum;
    for (const auto& [p, m] : store.aggregates) {
      if (auto it = m.find(k); it != m.end()) {
        sum.set_customers(sum.customers() + it->second.customers());
        sum.set_revenue_minor(sum.revenue_minor() + it->second.revenue_minor());
        sum.set_activity_days(sum.activity_days() + it->second.activity_days());
      }
    }
    return sum;
  };
  EXPECT_EQ(get("customers/all").customers(), 3);
  // Per advisor the projector keeps event counters only (the store sums an advisor's
  // customer counters from their records when asked).
  EXPECT_EQ(get("@adv-1/customers/all").customers(), 0);
  EXPECT_EQ(get("@adv-1/stage_transition/UNSPECIFIED->PROSPECT").customers(), 2);
  EXPECT_EQ(get("stage_transition/UNSPECIFIED->PROSPECT").customers(), 3);
  EXPECT_EQ(get("stage/LOST_PROSPECT").customers(), 1);
  // Trailing 12 months (from kT0 + 75 days): a's visit at +400, b's purchase.
  EXPECT_EQ(get("vehicle_model_by_activity/Sail|1").customers(), 1);
  EXPECT_EQ(get("vehicle_model_by_activity/Sail|1").revenue_minor(), 30000);
  EXPECT_EQ(get("vehicle_model_by_activity/Sail|0").customers(), 1) << "c";
  EXPECT_EQ(get("vehicle_model_by_activity/Aveo|1").revenue_minor(), 50000);
  EXPECT_EQ(get("activity_bucket/1").customers(), 2);
  EXPECT_EQ(get("activity_bucket/1").activity_days(), 2);
  EXPECT_EQ(get("activity_bucket/1").revenue_minor(), 80000);
  EXPECT_EQ(get("warranty_by_activity/UNSPECIFIED|1").customers(), 2);
  // The year before: a's two days (120,000), b and c none.
  EXPECT_EQ(get("prev/activity_bucket/2").customers(), 1);
  EXPECT_EQ(get("prev/activity_bucket/2").revenue_minor(), 120000);
  EXPECT_EQ(get("prev/activity_bucket/2").activity_days(), 2);
  EXPECT_EQ(get("prev/activity_bucket/0").customers(), 2);
  EXPECT_EQ(get("prev/vehicle_model_by_activity/Sail|2").customers(), 1);
  // The lost deal: the lead's interest, not the profile's model; no advisor.
  EXPECT_EQ(get("lost_deals/PRICE|Malibu|none").customers(), 1);
  EXPECT_EQ(get("lost_deal_reason/PRICE").customers(), 1);

  // An event of a customer moved to another advisor counts for the new one.
  v1::Event moved = Registered("m", "b", kT0 + 441 * D);
  moved.set_allocated_customer_registered(nullptr);
  moved.mutable_profile_updated()->mutable_profile()->set_advisor_id("adv-2");
  d.Feed(moved);
  d.Feed(Lost("b2", "b", kT0 + 442 * D, v1::DEAL_LOST_REASON_SERVICE));
  d.Commit();
  EXPECT_EQ(get("@adv-2/lost_deal_reason/SERVICE").customers(), 1);
  EXPECT_EQ(get("@adv-1/lost_deal_reason/SERVICE").customers(), 0);
  EXPECT_EQ(get("lost_deals/SERVICE|Aveo|adv-2").customers(), 1) << "no lead: the profile's model";
}

// ARCHITECTURE.md "Time": an alert about something long past when the fold learns of
// it (a late event, a deadline noticed long after) is recorded as late and counted.
TEST(ProjectorTest, AnAlertLearnedOfMoreThanTheHorizonAfterItsConditionIsLate) {
  MemoryStore store;
  Driver d(&store);
  d.config.alert_horizon_days = 7;
  d.Feed(Lead("l1", "a", kT0));
  d.Feed(Lost("x1", "a", kT0 + D, v1::DEAL_LOST_REASON_PRICE));  // on time
  d.Feed(Tick("t1", kT0 + 100 * D));
  // An event 99 days late, and one exactly 7 days late (not more: on time).
  d.Feed(Lead("l2", "b", kT0));
  d.Feed(Lost("x2", "b", kT0 + D, v1::DEAL_LOST_REASON_PRICE));
  d.Feed(Lead("l3", "c", kT0 + 90 * D));
  d.Feed(Lost("x3", "c", kT0 + 93 * D, v1::DEAL_LOST_REASON_PRICE));
  d.Commit();
  std::map<std::string, bool> late;
  for (const auto& a : store.alerts[0]) {
    if (a.kind() == v1::ALERT_KIND_DEAL_LOST) late[a.customer_id()] = a.late();
  }
  EXPECT_EQ(late, (std::map<std::string, bool>{{"a", false}, {"b", true}, {"c", false}}));
  int64_t flagged = 0;
  for (const auto& a : store.alerts[0]) flagged += a.late();
  EXPECT_EQ(d.proj->committed_meta().alerts_late(), flagged);
  // Deadlines noticed long after: a's re-contact tasks go overdue on day 33 (due day 31,
  // 2 days' grace) and on day 93; the tick on day 100 notices both, 67 days and a little
  // less than 7 days on.
  std::map<int64_t, bool> overdue;
  for (const auto& a : store.alerts[0]) {
    if (a.kind() == v1::ALERT_KIND_FOLLOWUP_OVERDUE && a.customer_id() == "a") {
      overdue[(a.at().seconds() - kT0) / D] = a.late();
    }
  }
  EXPECT_EQ(overdue, (std::map<int64_t, bool>{{33, true}, {93, false}}));
}

TEST(ProjectorTest, RejectedAndSkippedRecordsAdvanceOffsetWithoutChangingViews) {
  MemoryStore store;
  DomainConfig config;
  PartitionProjector proj(&config, FreshMeta(0), &store);
  auto out = proj.Apply(0, "garbage\xff\xff");
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->kind, RecordOutcome::kRejected);
  out = proj.Apply(1, Bytes(Purchase("e1", "a", kT0, -1)));
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->kind, RecordOutcome::kRejected);
  EXPECT_NE(out->reason.find("amount_minor"), std::string::npos);
  PendingBatch b = proj.Pending();
  EXPECT_EQ(b.meta.offset(), 1);
  EXPECT_EQ(b.meta.events_rejected(), 2);
  EXPECT_EQ(b.meta.events_applied(), 0);
  EXPECT_TRUE(b.customers.empty());
}

TEST(ProjectorTest, RecordsAtOrBelowTheAppliedOffsetAreIgnored) {
  MemoryStore store;
  DomainConfig config;
  v1::PartitionMeta m = FreshMeta(0);
  m.set_offset(10);
  PartitionProjector proj(&config, m, &store);
  auto out = proj.Apply(10, Bytes(Purchase("e1", "a", kT0, 5)));
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->kind, RecordOutcome::kAlreadyApplied);
  EXPECT_FALSE(proj.HasPending());
}

TEST(ProjectorTest, ReadFailureAppliesNothingAndCanBeRetried) {
  MemoryStore store;
  DomainConfig config;
  PartitionProjector proj(&config, FreshMeta(0), &store);
  store.fail_reads = true;
  EXPECT_FALSE(proj.Apply(0, Bytes(Purchase("e1", "a", kT0, 5))).ok());
  EXPECT_FALSE(proj.HasPending());
  store.fail_reads = false;
  ASSERT_TRUE(proj.Apply(0, Bytes(Purchase("e1", "a", kT0, 5))).ok());
  {
    CustomerRecord r;
    ASSERT_TRUE(DecodeRecord(proj.Pending().customers[0].record, &r).ok());
    EXPECT_EQ(r.total_spend, 5);
  }
}

TEST(ProjectorTest, CommittedStateIsReloadedAndDuplicatesAcrossCommitsAreCaught) {
  MemoryStore store;
  Driver run(&store);
  run.Feed(Purchase("e1", "a", kT0, 5));
  PartitionProjector again(&run.config, store.meta[0], &store);
  ASSERT_TRUE(again.Apply(1, Bytes(Purchase("e2", "a", kT0 + 1, 7))).ok());
  auto out = again.Apply(2, Bytes(Purchase("e1", "a", kT0, 5)));
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->kind, RecordOutcome::kDuplicate);
  {
    CustomerRecord r;
    ASSERT_TRUE(DecodeRecord(again.Pending().customers[0].record, &r).ok());
    EXPECT_EQ(r.total_spend, 12);
  }
  EXPECT_EQ(again.meta().events_duplicate(), 1);
}

// The time rule: a customer's CHURN_RISK alert fires at the first tick at or after
// the closed-form crossing time T*, not before; and a tick evaluates only the
// customers whose deadline has come (from the due index), never all of them.
TEST(ProjectorTest, ChurnRiskFiresAtFirstTickAtOrAfterTStarFromTheDueIndex) {
  MemoryStore store;
  Driver run(&store, /*commit_every=*/7);
  // 300 customers with one parts purchase on day 0..299; "target" buys every 90 days.
  for (int i = 0; i < 300; ++i) {
    run.Feed(Purchase("p" + std::to_string(i), "c" + std::to_string(i), kT0 + i * D, 100));
  }
  for (int i = 0; i < 4; ++i) {
    run.Feed(Purchase("t" + std::to_string(i), "target", kT0 + 300 * D + i * 90 * D, 100));
  }
  run.Commit();
  const double t_star = rules::CrossingDays(run.config, 3, 270, run.config.at_risk_p);
  const int64_t crossing = kT0 + 300 * D + static_cast<int64_t>(std::ceil(t_star * D));
  ASSERT_EQ(store.View("target").churn_risk_at().seconds(), crossing);

  auto churn_risk_alerts = [&] {
    int n = 0;
    for (const auto& a : store.alerts[0]) {
      n += a.kind() == v1::ALERT_KIND_CHURN_RISK && a.customer_id() == "target";
    }
    return n;
  };
  // Walk the clock up to one second before T*, in ticks; then tick at T*.
  int ticks = 0;
  for (int64_t t = kT0 + 600 * D; t < crossing; t += 5 * D) {
    run.Feed(Tick("tick" + std::to_string(ticks++), std::min(t, crossing - 1)));
  }
  run.Feed(Tick("tick-before", crossing - 1));
  run.Commit();
  EXPECT_EQ(churn_risk_alerts(), 0) << "not before T*";
  EXPECT_NE(store.View("target").stage(), v1::STAGE_AT_RISK);

  const int64_t evals_before = run.proj->evaluations();
  const int64_t reads_before = store.loads + run.proj->cache_hits();
  // Customers due at T*: those whose stored deadline is <= T* (the due index).
  int due_now = 0;
  for (const auto& [p, t, id] : store.due) due_now += t <= crossing;
  run.Feed(Tick("tick-at", crossing));
  run.Commit();
  EXPECT_EQ(churn_risk_alerts(), 1) << "at the first tick at or after T*";
  EXPECT_EQ(store.View("target").stage(), v1::STAGE_AT_RISK);
  EXPECT_EQ(run.proj->evaluations() - evals_before, due_now);
  // Each due customer is read once: from the store, or from the projector's cache.
  EXPECT_EQ(store.loads + run.proj->cache_hits() - reads_before, due_now);
  EXPECT_LT(due_now, 10) << "a tick touches only the due customers, not all 301";

  run.Feed(Tick("tick-after", crossing + 3 * D));
  run.Commit();
  EXPECT_EQ(churn_risk_alerts(), 1) << "once per crossing";
}

// A transition or an alert a deadline causes carries the deadline's instant, however
// late the stream moves past it; deadlines passed together run in their order.
TEST(ProjectorTest, WhatADeadlineCausesIsStampedWithTheDeadlinesInstant) {
  MemoryStore store;
  Driver run(&store);
  for (int i = 0; i < 4; ++i) {
    run.Feed(Purchase("t" + std::to_string(i), "target", kT0 + i * 90 * D, 100));
  }
  const int64_t risk_at = store.View("target").churn_risk_at().seconds();
  // Strict: silence longer than churn_days, from one second past it.
  const int64_t quiet_at = kT0 + 270 * D + run.config.churn_days * D + 1;
  ASSERT_LT(risk_at, quiet_at);
  // One tick long after both: AT_RISK at the crossing, CHURNED 365 days after the last
  // purchase, each stamped with its own instant.
  run.Feed(Tick("late", quiet_at + 40 * D));
  run.Commit();
  const v1::CustomerView v = store.View("target");
  ASSERT_GE(v.transitions_size(), 2);
  const auto& to_risk = v.transitions(v.transitions_size() - 2);
  const auto& to_churned = v.transitions(v.transitions_size() - 1);
  EXPECT_EQ(to_risk.to(), v1::STAGE_AT_RISK);
  EXPECT_EQ(to_risk.at().seconds(), risk_at);
  EXPECT_EQ(to_churned.to(), v1::STAGE_CHURNED);
  EXPECT_EQ(to_churned.at().seconds(), quiet_at);
  EXPECT_EQ(v.stage_since().seconds(), quiet_at);
  std::map<v1::AlertKind, int64_t> at;
  for (const auto& a : store.alerts[0]) at[a.kind()] = a.at().seconds();
  EXPECT_EQ(at[v1::ALERT_KIND_CHURN_RISK], risk_at);
  EXPECT_EQ(at[v1::ALERT_KIND_CHURNED], quiet_at);
}

// Strict boundaries, and an event at a deadline's very instant applied before the
// deadline: a complaint is overdue once it is older than the SLA — from one second
// past the SLA's end, the deadline's instant. Resolved at the SLA's end, or at that
// instant (the event first), it was never overdue (no AT_RISK for no time at all);
// resolved a second later, it was.
TEST(ProjectorTest, AnEventAtADeadlinesInstantIsAppliedBeforeIt) {
  for (const int64_t late : {0, 1, 2}) {
    MemoryStore store;
    Driver run(&store);
    run.Feed(Purchase("p", "c", kT0, 100));
    run.Feed(ComplaintOpened("k", "c", kT0 + D, "k1"));
    const int64_t sla_end = kT0 + D + run.config.complaint_sla_days * D;
    run.Feed(Purchase("other", "someone-else", sla_end + late, 100));  // the stream moves on
    run.Feed(ComplaintClosed("r", "c", sla_end + late, "k1"));
    run.Commit();
    int unresolved = 0;
    for (const auto& a : store.alerts[0]) unresolved += a.kind() == v1::ALERT_KIND_COMPLAINT_UNRESOLVED;
    bool at_risk = false;
    const v1::CustomerView view = store.View("c");
    for (const auto& t : view.transitions()) at_risk |= t.to() == v1::STAGE_AT_RISK;
    EXPECT_EQ(unresolved, late == 2 ? 1 : 0) << "resolved " << late << " s after the SLA";
    EXPECT_EQ(at_risk, late == 2) << "resolved " << late << " s after the SLA";
  }
}

TEST(ProjectorTest, AlertsGetPartitionSequencesAndAreCounted) {
  MemoryStore store;
  Driver run(&store, 1, /*partition=*/3);
  run.Feed(Lost("e1", "a", kT0, v1::DEAL_LOST_REASON_PRICE));
  run.Feed(Lost("e2", "b", kT0 + 1, v1::DEAL_LOST_REASON_FINANCING));
  ASSERT_EQ(store.alerts[3].size(), 2u);
  EXPECT_EQ(store.alerts[3][0].sequence(), 0);
  EXPECT_EQ(store.alerts[3][1].sequence(), 1);
  EXPECT_EQ(store.alerts[3][1].partition(), 3);
  EXPECT_EQ(store.meta[3].alerts_next_seq(), 2);
  EXPECT_EQ(store.Counter("alert_kind/DEAL_LOST"), 2);
  EXPECT_EQ(store.Counter("lost_deal_reason/PRICE"), 1);
  EXPECT_EQ(store.Counter("lost_deal_reason/FINANCING"), 1);
  EXPECT_EQ(store.Counter("stage/LOST_PROSPECT"), 2);
}

void ExpectInvariants(const MemoryStore& store) {
  int64_t customers = 0;
  std::map<std::string, int64_t> stages;
  for (const auto& [id, bytes] : store.records) {
    const v1::CustomerView v = store.View(id);
    ++customers;
    ++stages["stage/" + StageShort(v.stage())];
    EXPECT_GE(v.loyalty().total(), 0);
    EXPECT_LE(v.loyalty().total(), 10);
    EXPECT_EQ(v.loyalty().total(), v.loyalty().satisfaction() + v.loyalty().regular_maintenance() +
                                       v.loyalty().event_participation() + v.loyalty().advocacy());
    EXPECT_LE(v.loyalty().satisfaction(), 2);
    EXPECT_LE(v.loyalty().regular_maintenance(), 3);
    EXPECT_LE(v.loyalty().event_participation(), 2);
    EXPECT_LE(v.loyalty().advocacy(), 3);
    EXPECT_GE(v.points().balance(), 0);
    for (const auto& lot : v.points().lots()) EXPECT_GT(lot.remaining(), 0);
    EXPECT_GE(v.p_alive(), 0.0);
    EXPECT_LE(v.p_alive(), 1.0);
    EXPECT_NE(v.stage(), v1::STAGE_UNSPECIFIED);
    if (v.rfm().recency() != 0) {
      EXPECT_GE(v.rfm().recency(), 1);
      EXPECT_LE(v.rfm().recency(), 5);
    }
  }
  // Stage counters sum to the number of customers and equal a full recount.
  EXPECT_EQ(store.Counter("customers/all"), customers);
  int64_t stage_sum = 0;
  for (const auto& [p, m] : store.aggregates) {
    for (const auto& [k, v] : m) {
      if (k.rfind("stage/", 0) == 0) stage_sum += v.customers();
    }
  }
  EXPECT_EQ(stage_sum, customers);
  for (const auto& [k, n] : stages) EXPECT_EQ(store.Counter(k), n) << k;
  // Every customer dimension sums to the customer count too.
  for (const char* dim : {"grade/", "tier/", "rfm_segment/", "region/", "activity_bucket/",
                          "vehicle_model_by_activity/", "warranty_by_activity/",
                          "prev/activity_bucket/", "prev/warranty_by_activity/"}) {
    int64_t sum = 0;
    for (const auto& [p, m] : store.aggregates) {
      for (const auto& [k, v] : m) {
        if (k.rfind(dim, 0) == 0) sum += v.customers();
      }
    }
    EXPECT_EQ(sum, customers) << dim;
  }
  // The due index holds exactly each customer's next deadline.
  size_t with_deadline = 0;
  for (const auto& [id, bytes] : store.records) {
    const CustomerRecord r = store.Record(id);
    if (DueOf(r) != kNever) {
      ++with_deadline;
      EXPECT_TRUE(store.due.count({r.partition, DueOf(r), id})) << id;
    }
  }
  EXPECT_EQ(store.due.size(), with_deadline);
}

TEST(ProjectorTest, RandomizedLogsKeepEveryInvariantWhateverTheCommitPoints) {
  for (uint32_t seed = 1; seed <= 40; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    MemoryStore store;
    Driver run(&store, 1 + static_cast<int>(seed % 13));
    int64_t offset = -1;
    for (const auto& rec : MessyLog(seed, 400, 25)) {
      auto out = run.proj->Apply(++offset, rec);
      ASSERT_TRUE(out.ok()) << out.status();
      if (++run.since_commit >= run.every) run.Commit();
    }
    run.Commit();
    ExpectInvariants(store);
  }
}

// Replays `log` into a fresh store, committing every `commit_every` records, with a
// record cache of `cache` bytes.
std::unique_ptr<MemoryStore> Replay(const std::vector<std::string>& log, int commit_every,
                                    size_t cache, int64_t* cache_hits = nullptr,
                                    bool recency_steps = true, int64_t* evaluations = nullptr) {
  auto store = std::make_unique<MemoryStore>();
  Driver run(store.get(), commit_every, 0, cache);
  run.proj->set_recency_steps(recency_steps);
  int64_t offset = -1;
  for (const auto& rec : log) {
    EXPECT_TRUE(run.proj->Apply(++offset, rec).ok());
    if (++run.since_commit >= run.every) run.Commit();
  }
  run.Commit();
  if (cache_hits) *cache_hits = run.proj->cache_hits();
  if (evaluations) *evaluations = run.proj->evaluations();
  return store;
}

// Same records (as read: caught up to the partition's deadlines_through — what is
// stored of a record only its deadlines changed since depends on the commit points),
// views, alerts and counters, byte for byte.
void ExpectSameStores(MemoryStore& a, MemoryStore& b) {
  ASSERT_EQ(a.records.size(), b.records.size());
  for (const auto& [id, bytes] : a.records) {
    ASSERT_TRUE(b.records.count(id)) << id;
    std::string read_a, read_b;
    EncodeRecord(a.Record(id), &read_a);
    EncodeRecord(b.Record(id), &read_b);
    EXPECT_EQ(read_a, read_b) << id;
    EXPECT_EQ(a.View(id).SerializeAsString(), b.View(id).SerializeAsString()) << id;
  }
  ASSERT_EQ(a.alerts[0].size(), b.alerts[0].size());
  for (size_t i = 0; i < a.alerts[0].size(); ++i) {
    EXPECT_EQ(a.alerts[0][i].SerializeAsString(), b.alerts[0][i].SerializeAsString());
  }
  ASSERT_EQ(a.aggregates[0].size(), b.aggregates[0].size());
  for (const auto& [k, v] : a.aggregates[0]) {
    EXPECT_EQ(v.SerializeAsString(), b.aggregates[0][k].SerializeAsString()) << k;
  }
  EXPECT_EQ(a.due, b.due);
}

TEST(ProjectorTest, ReplayIntoAFreshStoreIsByteIdenticalWithTheSameAlertIds) {
  const auto log = MessyLog(99, 1500, 40);
  auto a = Replay(log, 1, PartitionProjector::kDefaultCacheBytes);
  auto b = Replay(log, 97, PartitionProjector::kDefaultCacheBytes);  // other commit points
  ASSERT_GT(a->alerts[0].size(), 10u);
  ExpectSameStores(*a, *b);
}

// States kept in memory across commits (and evicted when the cache is full) give
// exactly what reading every state back from the store gives.
TEST(ProjectorTest, TheStateCacheChangesNothingButTheReads) {
  const auto log = MessyLog(7, 3000, 60);
  int64_t hits_none = -1, hits_small = -1, hits_all = -1;
  auto none = Replay(log, 13, 0, &hits_none);
  auto small = Replay(log, 13, 8 * 1024, &hits_small);  // evicts at almost every commit
  auto all = Replay(log, 13, 256u << 20, &hits_all);
  EXPECT_EQ(hits_none, 0);
  EXPECT_GT(hits_small, 0);
  EXPECT_GT(hits_all, hits_small);
  EXPECT_LT(all->loads, none->loads);
  ExpectSameStores(*none, *small);
  ExpectSameStores(*none, *all);
  ExpectInvariants(*all);
}

// The records kept after commits stay within the budget, and the ones dropped are
// the least recently used.
TEST(ProjectorTest, TheStateCacheKeepsTheMostRecentlyUsedWithinItsBudget) {
  MemoryStore store;
  const size_t budget = 4 * 1024;
  Driver run(&store, 1, 0, budget);
  for (int i = 0; i < 100; ++i) {  // 100 customers, one commit each
    run.Feed(Purchase("e" + std::to_string(i), "c" + std::to_string(i), kT0 + i, 100));
    ASSERT_LE(run.proj->cached_bytes(), budget) << "after customer " << i;
  }
  EXPECT_GT(run.proj->cached(), 2u);
  EXPECT_LT(run.proj->cached(), 100u);
  EXPECT_EQ(run.proj->known(), 100u);
  // The newest are still in memory (even after one is used again); the oldest is read
  // back from the store.
  const int64_t hits = run.proj->cache_hits(), misses = run.proj->cache_misses();
  run.Feed(Purchase("f98", "c98", kT0 + 200, 100));
  run.Feed(Purchase("f99", "c99", kT0 + 201, 100));
  EXPECT_EQ(run.proj->cache_hits(), hits + 2);
  run.Feed(Purchase("f0", "c0", kT0 + 202, 100));
  EXPECT_EQ(run.proj->cache_misses(), misses + 1);
  EXPECT_LE(run.proj->cached_bytes(), budget);
}

// A record only its deadlines changed is not written: the store keeps it as its last
// event left it, with the partition's deadlines_through, and whoever reads it — a view,
// the projector after a restart — runs those deadlines again without their effects.
TEST(ProjectorTest, ARecordOnlyItsDeadlinesChangedIsLeftAsStoredAndCaughtUpWhenRead) {
  std::vector<v1::Event> log = {Purchase("q1", "quiet", kT0, 100)};
  // Another customer moves the clock on, well past quiet's deadlines (at-risk, churned).
  for (int i = 1; i <= 40; ++i) {
    log.push_back(Purchase("o" + std::to_string(i), "other", kT0 + i * 30 * D, 100));
  }
  log.push_back(Purchase("q2", "quiet", kT0 + 41 * 30 * D, 100));  // quiet comes back
  MemoryStore store;
  Driver run(&store, /*commit_every=*/1, 0, /*cache=*/0);
  run.Feed(log[0]);
  const std::string stored = store.records.at("quiet");
  for (size_t i = 1; i + 1 < log.size(); ++i) {
    run.Feed(log[i]);
    // Started again after every commit, as after a restart or a rebalance.
    run.proj = std::make_unique<PartitionProjector>(&run.config, store.meta[0], &store, 0);
  }
  EXPECT_EQ(store.records.at("quiet"), stored) << "its deadlines alone did not write it";
  EXPECT_GT(store.records_left, 0);
  EXPECT_GE(store.meta[0].deadlines_through(), kT0 + 40 * 30 * D - 1);
  CustomerRecord as_stored;
  ASSERT_TRUE(DecodeRecord(stored, &as_stored).ok());
  const CustomerRecord read = store.Record("quiet");
  EXPECT_NE(read.stage, as_stored.stage);
  EXPECT_EQ(read.stage, v1::STAGE_CHURNED);
  EXPECT_GT(read.alerts, as_stored.alerts) << "it counts the alerts its deadlines raised";
  EXPECT_EQ(store.View("quiet").stage(), v1::STAGE_CHURNED);
  run.Feed(log.back());  // read from the store (no cache), caught up, then its event
  ASSERT_NE(store.records.at("quiet"), stored);

  // The same, one commit at the end and a cache holding everything: the same records
  // as read, views, alerts (none raised twice) and counters.
  MemoryStore once;
  Driver whole(&once, /*commit_every=*/1000);
  for (const auto& e : log) whole.Feed(e);
  whole.Commit();
  EXPECT_EQ(once.records_left, 0);
  ExpectSameStores(store, once);
}

// Customers only their deadlines changed (most of a batch, once the stream has moved
// well past their last events) are not held decoded until the commit: the batch has
// their index keys and counters, the store keeps their records as they were. A change
// of one in the same batch after that — an event, a deadline again — starts from what
// the store has, and the result is what committing after every record gives.
TEST(ProjectorTest, CustomersOnlyTheirDeadlinesChangedAreNotHeldUntilTheCommit) {
  std::vector<v1::Event> log;
  for (int i = 0; i < 60; ++i) {
    log.push_back(Purchase("p" + std::to_string(i), "c" + std::to_string(i), kT0 + i * 60, 1000));
  }
  // The clock moves on, a month a batch: at-risk, churned, RFM's recency cuts.
  for (int m = 1; m <= 14; ++m) log.push_back(Tick("t" + std::to_string(m), kT0 + m * 30 * D));
  // The last batch: their deadlines again (due twice in it), then some come back.
  log.push_back(Tick("t15", kT0 + 15 * 30 * D));
  log.push_back(Tick("t16", kT0 + 16 * 30 * D));
  for (int i = 0; i < 60; i += 7) {
    log.push_back(Purchase("b" + std::to_string(i), "c" + std::to_string(i), kT0 + 16 * 30 * D, 50));
  }

  MemoryStore store;
  Driver run(&store, /*commit_every=*/1000);
  for (int i = 0; i < 60; ++i) run.Feed(log[i]);
  run.Commit();
  size_t not_written = 0, quiet_batches = 0;
  auto commit = [&] {
    PendingBatch b = run.proj->Pending();
    for (const auto& c : b.customers) not_written += c.write_record ? 0 : 1;
    store.Commit(b);
    run.proj->MarkCommitted();
    EXPECT_EQ(run.proj->held(), 0u);
    return b;
  };
  for (size_t i = 60; i < 74; ++i) {
    run.Feed(log[i]);
    const size_t held = run.proj->held();
    const PendingBatch b = commit();
    // Held: only those a deadline raised an alert about (a re-derivation reads a
    // batch's alerts from the customers it holds).
    std::set<std::string> alerted;
    for (const auto& a : b.alerts) alerted.insert(a.customer_id);
    EXPECT_EQ(held, alerted.size()) << "batch " << i;
    if (b.customers.size() >= 50 && held == 0) ++quiet_batches;
  }
  EXPECT_GE(not_written, 60u * 4) << "at-risk, churned and recency cuts, at least";
  EXPECT_GE(quiet_batches, 2u) << "batches of deadlines without an alert hold nobody";
  for (size_t i = 74; i < log.size(); ++i) run.Feed(log[i]);
  EXPECT_GT(run.proj->held(), 8u) << "those due twice, and those that came back";
  commit();

  MemoryStore each;
  Driver one(&each, /*commit_every=*/1);
  for (const auto& e : log) one.Feed(e);
  ExpectSameStores(store, each);
  ExpectInvariants(store);
}

// A customer only RFM recency cuts came due for is not read: its R score, its RFM
// counters and its due deadline move as evaluating its record at each cut moves them.
TEST(ProjectorTest, RecencyCutsMoveTheRScoreWithoutReadingTheRecord) {
  MemoryStore store;
  Driver run(&store, /*commit_every=*/1000, 0, /*cache=*/0);  // every read from the store
  run.Feed(Purchase("p1", "c1", kT0, 1000));
  run.Feed(Purchase("p2", "c1", kT0 + 1 * D, 1000));  // two activity days: F 2
  run.Feed(Tick("t1", kT0 + 5 * D));
  run.Commit();
  const auto segment = [&] { return store.View("c1").rfm().segment(); };
  const std::string first = segment();
  ASSERT_EQ(store.View("c1").rfm().recency(), 5);
  ASSERT_EQ(store.Counter("rfm_grid/R5F2"), 1);
  // A survey: read back from the store, evaluated without the churn family (whose
  // deadlines the projector then has from what it noted before).
  run.Feed(Survey("s1", "c1", kT0 + 6 * D, 9));
  run.Commit();
  // Past the 30-day cut (31 days after the last activity, day 1): R 5 -> 4.
  const int loads = store.loads;
  const int64_t evals = run.proj->evaluations();
  run.Feed(Tick("t2", kT0 + 33 * D));
  run.Commit();
  EXPECT_EQ(store.loads, loads) << "the record is not read";
  EXPECT_EQ(run.proj->evaluations(), evals + 1) << "counted as the evaluation at the cut";
  EXPECT_EQ(store.View("c1").rfm().recency(), 4);
  EXPECT_EQ(store.Counter("rfm_grid/R5F2"), 0);
  EXPECT_EQ(store.Counter("rfm_grid/R4F2"), 1);
  EXPECT_EQ(store.Counter("rfm_segment/" + segment()), 1);
  EXPECT_EQ(store.Counter("rfm_segment/" + first), segment() == first ? 1 : 0);
  ExpectInvariants(store);
  // The same history evaluated on the record at every deadline: the same store.
  MemoryStore each;
  Driver one(&each, 1, 0, 0);
  one.proj->set_recency_steps(false);
  for (const auto& e : {Purchase("p1", "c1", kT0, 1000), Purchase("p2", "c1", kT0 + 1 * D, 1000),
                        Tick("t1", kT0 + 5 * D), Survey("s1", "c1", kT0 + 6 * D, 9),
                        Tick("t2", kT0 + 33 * D)}) {
    one.Feed(e);
  }
  one.Commit();
  EXPECT_EQ(one.proj->evaluations(), run.proj->evaluations());
  ExpectSameStores(store, each);
}

// Messy histories (late and duplicate events, erasures, ticks) give the same stores,
// and the same count of evaluations, with and without recency steps — at other commit
// points, with and without a record cache — and the steps read fewer records.
TEST(ProjectorTest, RecencyStepsGiveWhatEvaluatingTheRecordGives) {
  for (uint32_t seed = 1; seed <= 6; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    const auto log = MessyLog(seed, 1500, 60);
    int64_t evals_off = 0, evals_on = 0;
    auto off = Replay(log, 1, 0, nullptr, /*recency_steps=*/false, &evals_off);
    for (auto [every, cache] : {std::pair<int, size_t>{1, 0}, {13, 0},
                                {97, PartitionProjector::kDefaultCacheBytes}}) {
      auto on = Replay(log, every, cache, nullptr, /*recency_steps=*/true, &evals_on);
      EXPECT_EQ(evals_on, evals_off) << "commit every " << every;
      ExpectSameStores(*off, *on);
      if (every == 13) {
        EXPECT_LT(on->loads, off->loads);
      }
    }
    ExpectInvariants(*off);
  }
}

// Commits that overlap the fold of the next records (as the daemon's: Pending,
// MarkInFlight, more records applied, then the write lands and MarkDurable) give what
// committing after every record gives — with a record cache and without one, so that
// the customers of the batch in flight are read back from memory or from a store that
// does not have the batch yet.
TEST(ProjectorTest, OverlappedCommitsGiveWhatCommittingAfterEveryRecordGives) {
  for (uint32_t seed = 1; seed <= 6; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    const auto log = MessyLog(seed, 1500, 60);
    auto each = Replay(log, 1, PartitionProjector::kDefaultCacheBytes);
    for (size_t cache : {size_t{0}, PartitionProjector::kDefaultCacheBytes}) {
      MemoryStore store;
      Driver run(&store, 0, 0, cache);
      std::optional<PendingBatch> in_flight;
      const size_t every = 17 + seed * 5, overlap = 3 + seed;
      for (size_t i = 0; i < log.size(); ++i) {
        ASSERT_TRUE(run.proj->Apply(static_cast<int64_t>(i), log[i]).ok());
        if (in_flight && i % every == overlap) {
          store.Commit(*in_flight);
          run.proj->MarkDurable();
          in_flight.reset();
        }
        if (!in_flight && i % every == 0 && run.proj->HasPending()) {
          in_flight = run.proj->Pending();
          run.proj->MarkInFlight();
        }
      }
      if (in_flight) {
        store.Commit(*in_flight);
        run.proj->MarkDurable();
      }
      run.Commit();
      ExpectSameStores(*each, store);
      ExpectInvariants(store);
    }
  }
}

// A projector started again after a commit (as after a restart or a rebalance) reads
// its due index back from the stored records: the same deadlines come due, and the
// result is what one projector running through gives, byte for byte.
TEST(ProjectorTest, AProjectorStartedAfterEachCommitReadsItsDeadlinesFromTheRecords) {
  const auto log = MessyLog(11, 3000, 400);
  auto through = Replay(log, 23, PartitionProjector::kDefaultCacheBytes);
  MemoryStore restarted;
  Driver run(&restarted, 23);
  int64_t offset = -1;
  int starts = 0;
  for (const auto& rec : log) {
    ASSERT_TRUE(run.proj->Apply(++offset, rec).ok());
    if (++run.since_commit >= run.every) {
      run.Commit();
      run.proj = std::make_unique<PartitionProjector>(&run.config, restarted.meta[0], &restarted);
      ++starts;
    }
  }
  run.Commit();
  EXPECT_GT(starts, 50);
  EXPECT_GT(restarted.deadline_loads, 50);
  EXPECT_GT(restarted.records_left, 10);  // left as stored, and read back caught up
  ExpectSameStores(*through, restarted);
  ExpectInvariants(restarted);
}

// A jump of the stream far ahead (live events after a replayed history, a restart
// after downtime) makes most customers due at once. With a limit the projector runs
// their deadlines in steps, earliest first: each step answers kDeferred, is committed,
// and the record is offered again. A batch then holds about the limit, not every
// customer. The records, views, counters and deadlines are those of one step; the
// alerts are the same ones, the partition's log holding them in time order across
// customers. A replay started again after any of those commits cuts the same steps, so
// it gives the same store byte for byte, alert order included.
struct JumpRun {
  MemoryStore store;
  int steps = 0;
  size_t largest = 0;  // customers in the largest batch
};
// Commits after every record; `restart`: a projector made anew from the store after
// each step's commit.
std::unique_ptr<JumpRun> RunThroughAJump(const std::vector<std::string>& log, size_t limit,
                                         bool restart) {
  auto run = std::make_unique<JumpRun>();
  Driver d(&run->store, 1);
  d.proj->set_max_deadlines_per_batch(limit);
  for (const auto& rec : log) {
    ++d.offset;
    for (;;) {
      auto out = d.proj->Apply(d.offset, rec);
      EXPECT_TRUE(out.ok()) << out.status();
      if (!out.ok()) return run;
      PendingBatch b = d.proj->Pending();
      run->largest = std::max(run->largest, b.customers.size());
      run->store.Commit(b);
      d.proj->MarkCommitted();
      if (out->kind != RecordOutcome::kDeferred) break;
      EXPECT_GT(limit, 0u);
      ++run->steps;
      EXPECT_EQ(run->store.meta[0].offset(), d.offset - 1) << "the record itself waits";
      if (restart) {
        d.proj = std::make_unique<PartitionProjector>(&d.config, run->store.meta[0], &run->store);
        d.proj->set_max_deadlines_per_batch(limit);
      }
    }
  }
  return run;
}

void ExpectAJumpRunInSteps(std::vector<std::string> log, size_t limit, size_t largest_step) {
  int64_t last = 0;
  for (const auto& rec : log) {
    v1::Event e;
    if (e.ParseFromString(rec)) last = std::max<int64_t>(last, e.occurred_at().seconds());
  }
  log.push_back(Bytes(Purchase("jump", "newcomer", last + 400 * D, 100)));
  log.push_back(Bytes(Purchase("after", "c1", last + 400 * D + 60, 100)));

  auto whole = RunThroughAJump(log, 0, false);  // no limit: one step
  auto a = RunThroughAJump(log, limit, false);
  auto b = RunThroughAJump(log, limit, true);
  EXPECT_GT(whole->largest, 150u);
  EXPECT_GT(a->steps, 5);
  EXPECT_LE(a->largest, largest_step);
  EXPECT_EQ(a->steps, b->steps);
  ExpectSameStores(a->store, b->store);
  ExpectInvariants(a->store);

  // Against one step: all but the alert log's order.
  ASSERT_EQ(whole->store.records.size(), a->store.records.size());
  for (const auto& [id, bytes] : whole->store.records) {
    std::string read_whole, read_stepped;
    EncodeRecord(whole->store.Record(id), &read_whole);
    EncodeRecord(a->store.Record(id), &read_stepped);
    EXPECT_EQ(read_whole, read_stepped) << id;
    EXPECT_EQ(whole->store.View(id).SerializeAsString(), a->store.View(id).SerializeAsString())
        << id;
  }
  EXPECT_EQ(whole->store.aggregates[0].size(), a->store.aggregates[0].size());
  for (const auto& [k, v] : whole->store.aggregates[0]) {
    EXPECT_EQ(v.SerializeAsString(), a->store.aggregates[0][k].SerializeAsString()) << k;
  }
  EXPECT_EQ(whole->store.due, a->store.due);
  auto by_id = [](std::vector<v1::Alert> alerts) {
    std::map<std::string, std::string> out;
    for (auto& x : alerts) {
      x.set_sequence(0);
      out[x.alert_id()] = x.SerializeAsString();
    }
    return out;
  };
  EXPECT_GT(whole->store.alerts[0].size(), 50u);
  EXPECT_EQ(whole->store.alerts[0].size(), a->store.alerts[0].size());
  EXPECT_EQ(by_id(whole->store.alerts[0]), by_id(a->store.alerts[0]));
}

// A record read failing in the middle of a jump's deadlines (some customers evaluated,
// the rest not) leaves the projector able to take the same record again: the steps it
// then cuts may differ, the result does not (on a messy log, several limits and points
// of failure).
TEST(ProjectorTest, AReadFailingInAJumpsDeadlinesChangesNothingWhenTheRecordIsTakenAgain) {
  auto log = MessyLog(5, 1500, 300);
  int64_t last = 0;
  for (const auto& rec : log) {
    v1::Event e;
    if (e.ParseFromString(rec)) last = std::max<int64_t>(last, e.occurred_at().seconds());
  }
  log.push_back(Bytes(Purchase("jump", "newcomer", last + 400 * D, 100)));
  auto whole = RunThroughAJump(log, 0, false);
  int failures = 0, runs = 0;
  for (size_t limit : {3, 5, 8, 13}) for (int nth = 2; nth <= 14; nth += 3) {
    SCOPED_TRACE("limit " + std::to_string(limit) + ", failing read " + std::to_string(nth));
    ++runs;
    MemoryStore store;
    Driver d(&store, 1, 0, /*cache=*/0);  // every customer taken is read from the store
    d.proj->set_max_deadlines_per_batch(limit);
    for (size_t i = 0; i < log.size(); ++i) {
      if (i + 1 == log.size()) store.fail_load = store.loads + nth;
      ++d.offset;
      for (int tries = 0; tries < 1000; ++tries) {
        auto out = d.proj->Apply(d.offset, log[i]);
        if (!out.ok()) {
          ++failures;
          continue;  // offered again, the batch so far kept
        }
        d.Commit();
        if (out->kind != RecordOutcome::kDeferred) break;
      }
    }
    ASSERT_EQ(store.meta[0].offset(), d.offset);
    for (const auto& [id, bytes] : whole->store.records) {
      std::string a, b;
      EncodeRecord(whole->store.Record(id), &a);
      EncodeRecord(store.Record(id), &b);
      EXPECT_EQ(a, b) << id;
    }
    for (const auto& [k, v] : whole->store.aggregates[0]) {
      EXPECT_EQ(v.SerializeAsString(), store.aggregates[0][k].SerializeAsString()) << k;
    }
    EXPECT_EQ(whole->store.due, store.due);
    EXPECT_EQ(whole->store.alerts[0].size(), store.alerts[0].size());
    EXPECT_EQ(whole->store.meta[0].evaluations(), store.meta[0].evaluations());
    ExpectInvariants(store);
  }
  EXPECT_EQ(failures, runs);
}

// The same, made to happen: four customers a minute apart, whose deadlines come in
// turn, and a jump with a limit of 3. The first step takes a, b and c; the read of c
// fails after a and b ran their first deadlines. Taken again, the step is c, d and a's
// second deadline: a is caught up through its first one (where it ran), not run
// through it twice.
TEST(ProjectorTest, ACustomerRunLightBeforeAFailedReadIsCaughtUpAsFarAsItRan) {
  std::vector<std::string> log;
  for (int i = 0; i < 4; ++i) {
    log.push_back(Bytes(Purchase("p" + std::to_string(i), std::string(1, static_cast<char>('a' + i)),
                                 kT0 + i * 60, 1000)));
  }
  log.push_back(Bytes(Purchase("jump", "newcomer", kT0 + 800 * D, 100)));
  auto run = [&log](int fail_at) {
    auto store = std::make_unique<MemoryStore>();
    Driver d(store.get(), 1, 0, /*cache=*/0);
    d.proj->set_max_deadlines_per_batch(3);
    for (const auto& rec : log) {
      if (&rec == &log.back() && fail_at > 0) store->fail_load = store->loads + fail_at;
      ++d.offset;
      for (int tries = 0; tries < 1000; ++tries) {
        auto out = d.proj->Apply(d.offset, rec);
        if (!out.ok()) continue;  // offered again
        d.Commit();
        if (out->kind != RecordOutcome::kDeferred) break;
      }
    }
    return store;
  };
  auto clean = run(0);
  auto failed = run(3);
  EXPECT_EQ(failed->meta[0].offset(), 4);
  // Each deadline evaluated once, whatever the steps.
  EXPECT_EQ(clean->meta[0].evaluations(), failed->meta[0].evaluations());
  for (const auto& [k, v] : clean->aggregates[0]) {
    EXPECT_EQ(v.SerializeAsString(), failed->aggregates[0][k].SerializeAsString()) << k;
  }
  for (const auto& [id, bytes] : clean->records) {
    EXPECT_EQ(clean->View(id).SerializeAsString(), failed->View(id).SerializeAsString()) << id;
  }
  EXPECT_EQ(clean->alerts[0].size(), failed->alerts[0].size());
  EXPECT_EQ(clean->due, failed->due);
}

TEST(ProjectorTest, AJumpAheadRunsItsDeadlinesInStepsOfTheLimit) {
  // 300 customers' purchases, visits, leads, surveys and complaints over two years, at
  // instants spread to the second: the customers' deadlines seldom share an instant, so
  // a step holds the limit at most (and the record's own customer once it is applied).
  std::mt19937 rng(3);
  std::vector<std::string> log;
  int64_t t = kT0;
  for (int i = 0; i < 2000; ++i) {
    t += 1 + rng() % 40000;
    const std::string id = "s" + std::to_string(i), c = "c" + std::to_string(rng() % 300);
    switch (rng() % 5) {
      case 0: log.push_back(Bytes(Purchase(id, c, t, 1000 + rng() % 90000))); break;
      case 1: log.push_back(Bytes(Service(id, c, t, rng() % 50000, rng() % 2 == 0))); break;
      case 2: log.push_back(Bytes(Lead(id, c, t))); break;
      case 3: log.push_back(Bytes(Survey(id, c, t, static_cast<int>(rng() % 11)))); break;
      default: log.push_back(Bytes(ComplaintOpened(id, c, t, "K" + std::to_string(i)))); break;
    }
  }
  ExpectAJumpRunInSteps(log, 20, 21);
}

// The same on a messy log (late, duplicate, invalid records, ticks): there the
// customers' deadlines share instants (an instant is never split, so a step may hold
// more than the limit), and the result is still the same.
TEST(ProjectorTest, AJumpAheadInStepsGivesTheSameResultOnAMessyLog) {
  ExpectAJumpRunInSteps(MessyLog(5, 1500, 300), 20, 300);
}

}  // namespace
}  // namespace lifecycle::projections

namespace lifecycle::projections {
namespace {

using namespace lifecycle::testing;  // NOLINT
const int64_t kD = kDay;

// A customer's record with what depends on arrival (not on the events) left out.
CustomerRecord Comparable(CustomerRecord r) {
  r.last_offset = 0;
  r.journal_older = r.journal_newer = JournalBase();
  r.journal_next = 0;
  r.alerts = 0;
  return r;
}

// The journal (journal.h): a late event within late.window_days is re-derived in its
// place — also while the batch holding the journal's newest entries is still being
// written — one beyond it is approximated and counted, the journal stays bounded, an
// erasure empties it, and window_days 0 keeps none.
TEST(JournalTest, ALateEventIsFoldedInItsPlaceWithinTheWindowAndApproximatedBeyondIt) {
  std::vector<v1::Event> history;
  for (int m = 0; m < 14; ++m) {
    history.push_back(Purchase("p" + std::to_string(m), "a", kT0 + m * 30 * kD, 10000 + m));
  }
  const v1::Event late_one = Service("late", "a", kT0 + 13 * 30 * kD - 20 * kD, 5000);
  const v1::Event too_late = Service("too-late", "a", kT0 + 13 * 30 * kD - 300 * kD, 7000);

  // In order, for reference.
  MemoryStore want_store;
  {
    Driver d(&want_store, 3);
    std::vector<v1::Event> all = history;
    all.push_back(late_one);
    std::stable_sort(all.begin(), all.end(), [](const v1::Event& a, const v1::Event& b) {
      return a.occurred_at().seconds() < b.occurred_at().seconds();
    });
    for (const auto& e : all) d.Feed(e);
    d.Feed(Tick("t", kT0 + 13 * 30 * kD + kD));
    d.Commit();
  }

  MemoryStore store;
  DomainConfig config;
  PartitionProjector proj(&config, FreshMeta(0), &store);
  int64_t offset = -1;
  for (const auto& e : history) ASSERT_TRUE(proj.Apply(++offset, Bytes(e)).ok());
  // The journal's writes are in flight, not in the store, when the late event comes.
  PendingBatch in_flight = proj.Pending();
  proj.MarkInFlight();
  EXPECT_FALSE(in_flight.journal.empty());
  // A journal that cannot be read leaves everything as it was, for the retry.
  store.fail_reads = true;
  EXPECT_FALSE(proj.Apply(offset + 1, Bytes(late_one)).ok());
  store.fail_reads = false;
  ASSERT_TRUE(proj.Apply(++offset, Bytes(late_one)).ok());
  store.Commit(in_flight);
  proj.MarkDurable();
  ASSERT_TRUE(proj.Apply(++offset, Bytes(Tick("t", kT0 + 13 * 30 * kD + kD))).ok());
  store.Commit(proj.Pending());
  proj.MarkCommitted();
  EXPECT_EQ(proj.committed_meta().events_out_of_order(), 1);
  EXPECT_EQ(proj.committed_meta().events_beyond_window(), 0);
  EXPECT_EQ(Comparable(store.Record("a")), Comparable(want_store.Record("a")));
  EXPECT_EQ(store.Record("a").service_visits, 1);
  EXPECT_EQ(store.book.transitions["a"].size(), want_store.book.transitions["a"].size());

  // Bounded: the older base stays at least a window (90 days) behind the latest event
  // and at most three, the entries before it and the base before it are dropped.
  const CustomerRecord r = store.Record("a");
  EXPECT_NE(r.journal_older.slot(), -1) << "a snapshot, not the beginning, after 390 days";
  EXPECT_LE(r.journal_older.pos_at, kT0 + 13 * 30 * kD - 90 * kD);
  EXPECT_GE(r.journal_older.pos_at, kT0 + 13 * 30 * kD - 3 * 90 * kD);
  EXPECT_LE(store.journals["a"].entries.size(), 10u);
  EXPECT_GE(store.journals["a"].entries.begin()->first, r.journal_older.first);
  int snapshots = 0;
  for (const auto& slot : store.journals["a"].snapshots) snapshots += slot.has_value();
  EXPECT_EQ(snapshots, r.journal_newer.kind == JournalBase::kNone ? 1 : 2);

  // 300 days late: beyond the journal's reach (three windows at most), folded at the
  // customer's time and counted.
  ASSERT_TRUE(proj.Apply(++offset, Bytes(too_late)).ok());
  store.Commit(proj.Pending());
  proj.MarkCommitted();
  EXPECT_EQ(proj.committed_meta().events_out_of_order(), 2);
  EXPECT_EQ(proj.committed_meta().events_beyond_window(), 1);
  EXPECT_EQ(store.Record("a").service_visits, 2);

  // An erasure ends the customer's journal (its entries held personal data): an event
  // from before it, or any late one after, is folded at the customer's time.
  ASSERT_TRUE(proj.Apply(++offset, Bytes(Erase("x", "a", kT0 + 13 * 30 * kD + 2 * kD))).ok());
  ASSERT_TRUE(proj.Apply(++offset, Bytes(Service("before-x", "a", kT0 + 13 * 30 * kD, 100))).ok());
  ASSERT_TRUE(proj.Apply(++offset, Bytes(Service("after-x", "a", kT0 + 13 * 30 * kD + 3 * kD, 100))).ok());
  store.Commit(proj.Pending());
  proj.MarkCommitted();
  EXPECT_EQ(proj.committed_meta().events_beyond_window(), 2);
  EXPECT_EQ(store.journals["a"].entries.size(), 0u);
  EXPECT_FALSE(store.journals["a"].snapshots[0] || store.journals["a"].snapshots[1]);
  EXPECT_EQ(store.Record("a").journal_older.kind, JournalBase::kNone);

  // A late erasure is placed in its time, and drops the entries too.
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(proj.Apply(++offset, Bytes(Purchase("b" + std::to_string(i), "b",
                                                    kT0 + 13 * 30 * kD + 3 * kD + i * 10 * kD, 100)))
                    .ok());
  }
  ASSERT_TRUE(proj.Apply(++offset, Bytes(Erase("bx", "b", kT0 + 13 * 30 * kD + 18 * kD))).ok());
  store.Commit(proj.Pending());
  proj.MarkCommitted();
  EXPECT_TRUE(store.Record("b").erased);
  EXPECT_EQ(store.Record("b").purchases, 3);
  EXPECT_EQ(store.journals["b"].entries.size(), 0u);
  EXPECT_FALSE(store.journals["b"].snapshots[0] || store.journals["b"].snapshots[1]);
  EXPECT_EQ(proj.committed_meta().events_beyond_window(), 2) << "the erasure was placed";

  // window_days 0: no journal at all.
  DomainConfig none;
  none.late_window_days = 0;
  MemoryStore bare;
  PartitionProjector plain(&none, FreshMeta(0), &bare);
  offset = -1;
  for (const auto& e : history) ASSERT_TRUE(plain.Apply(++offset, Bytes(e)).ok());
  ASSERT_TRUE(plain.Apply(++offset, Bytes(late_one)).ok());
  EXPECT_TRUE(plain.Pending().journal.empty());
  EXPECT_EQ(plain.meta().events_beyond_window(), 1);
  // Turned off for a customer that had a journal: it is dropped (turned on again, it
  // starts afresh, not from a base that misses what came between).
  ASSERT_TRUE(proj.Apply(offset + 100, Bytes(Purchase("c1", "c", kT0, 100))).ok());
  store.Commit(proj.Pending());
  proj.MarkCommitted();
  ASSERT_FALSE(store.journals["c"].entries.empty());
  PartitionProjector off2(&none, proj.committed_meta(), &store);
  ASSERT_TRUE(off2.Apply(offset + 101, Bytes(Purchase("c2", "c", kT0 + kD, 100))).ok());
  store.Commit(off2.Pending());
  EXPECT_TRUE(store.journals["c"].entries.empty());
  EXPECT_EQ(store.Record("c").journal_older.kind, JournalBase::kNone);
}

}  // namespace
}  // namespace lifecycle::projections

namespace lifecycle::projections {
namespace {
// A messy log (out of order, absurd times, duplicates) makes customers re-derived again
// and again, their alerts coming and going as their history fills in: an alert once
// raised is not raised again, under another id or the same.
TEST(JournalTest, ReDerivationsNeverRaiseAnAlertTwice) {
  using namespace lifecycle::testing;  // NOLINT
  const auto log = MessyLog(11, 20000, 1500);
  MemoryStore store;
  DomainConfig config;
  PartitionProjector proj(&config, FreshMeta(0), &store);
  int64_t offset = -1;
  for (const auto& b : log) {
    ASSERT_TRUE(proj.Apply(++offset, b).ok());
    if (offset % 700 == 0) {
      store.Commit(proj.Pending());
      proj.MarkCommitted();
    }
  }
  store.Commit(proj.Pending());
  proj.MarkCommitted();
  std::set<std::string> ids;
  std::set<std::tuple<std::string, int, int64_t>> crossings;
  for (const auto& a : store.alerts[0]) {
    EXPECT_TRUE(ids.insert(a.alert_id()).second) << a.ShortDebugString();
    crossings.emplace(a.customer_id(), a.kind(), a.at().seconds());
  }
  EXPECT_GT(proj.committed_meta().events_out_of_order() - proj.committed_meta().events_beyond_window(), 1000);
  std::printf("%zu alerts (%zu distinct customer, kind and instant: several tasks fall due at one "
              "instant); %lld events out of order, %lld beyond the window\n",
              store.alerts[0].size(), crossings.size(),
              static_cast<long long>(proj.committed_meta().events_out_of_order()),
              static_cast<long long>(proj.committed_meta().events_beyond_window()));
}
}  // namespace
}  // namespace lifecycle::projections
