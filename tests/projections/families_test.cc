// Each rule family on its own: a hand-built record, one family run, what it set.
#include "projections/rules/families.h"

#include <gtest/gtest.h>

#include "projections/fold.h"
#include "projections/rules.h"
#include "tests/projections/test_events.h"

namespace lifecycle::projections::rules {
namespace {

namespace v1 = lifecycle::v1;
using lifecycle::testing::kT0;
constexpr int64_t D = kDay;
const int32_t kDay0 = static_cast<int32_t>(EpochDay(kT0));

// Runs one family at `now` and keeps what it raised.
struct Run1 {
  DomainConfig c;
  CustomerRecord r;
  Effects fx;
  std::vector<AlertFact> raised;
  template <typename Fn>
  void At(int64_t now, Fn family) {
    Eval ev{c, now, EpochDay(now), 1, r, fx, {}};
    family(ev);
    raised = std::move(ev.raise);
  }
};

CustomerRecord Active(int64_t first, int64_t last, int32_t days) {
  CustomerRecord r;
  r.event_count = days;
  r.activity_days = days;
  r.first_activity_ns = ToNanos(first, 0);
  r.last_activity_ns = ToNanos(last, 0);
  r.recent_days = {static_cast<int32_t>(EpochDay(last))};
  return r;
}

TEST(WindowsFamilyTest, SpendMovesFromThisYearToLastAndLeaves) {
  Run1 t;
  t.r.spend = {{kDay0, 1000}, {kDay0 + 100, 500}};
  t.r.recent_days = {kDay0, kDay0 + 100};
  t.At(kT0 + 200 * D, RunWindows);
  EXPECT_EQ(t.r.spend_12m, 1500);
  EXPECT_EQ(t.r.activity_days_12m, 2);
  EXPECT_EQ(t.r.due[kWindowsFamily], (kDay0 + 366) * D) << "the next edge";
  // "Older than" is strict: on day kDay0 + 365 an event of day kDay0 may be less than
  // 365 days old, so the day is still in the 12 months; it leaves at 00:00 the day after.
  t.At(kT0 + 366 * D - 1, RunWindows);
  EXPECT_EQ(t.r.spend_12m, 1500);
  EXPECT_EQ(t.r.activity_days_12m, 2);
  t.At(kT0 + 366 * D, RunWindows);
  EXPECT_EQ(t.r.spend_12m, 500);
  EXPECT_EQ(t.r.spend_prev_12m, 1000);
  EXPECT_EQ(t.r.activity_days_12m, 1);
  EXPECT_EQ(t.r.activity_days_24m, 2);
  t.At(kT0 + 731 * D, RunWindows);
  EXPECT_EQ(t.r.spend_12m, 0);
  EXPECT_EQ(t.r.spend_prev_12m, 500);
  EXPECT_EQ(t.r.spend_prev2_12m, 1000) << "the third year back, for grade B";
  EXPECT_EQ(t.r.recent_days.size(), 1u) << "activity days: dropped after 24 months";
  t.At(kT0 + 1096 * D, RunWindows);
  EXPECT_EQ(t.r.spend.size(), 1u) << "spend days: dropped after 36 months";
  EXPECT_EQ(t.r.spend_prev2_12m, 500);

  // A record of an older layout: its ring was complete only from 729 days before its
  // last evaluation, so the third year back counts once the ring has filled it.
  Run1 u;
  u.r.spend = {{kDay0, 1000}, {kDay0 + 400, 500}};
  u.r.spend_complete_from = kDay0 - 100;
  u.At(kT0 + 800 * D, RunWindows);  // the third year back starts at day kDay0 - 295
  EXPECT_EQ(u.r.spend_prev2_12m, 0) << "not all known yet";
  EXPECT_EQ(u.r.due[kWindowsFamily], (kDay0 - 100 + 1095) * D);
  u.At((kDay0 - 100 + 1095) * D, RunWindows);
  EXPECT_EQ(u.r.spend_complete_from, 0);
  EXPECT_EQ(u.r.spend_prev2_12m, 1000);
}

TEST(PointsFamilyTest, LotsExpireTierFollowsQualifyingPointsAndWarnsBeforeTheDrop) {
  Run1 t;
  t.r = Active(kT0, kT0, 1);
  t.r.lots = {{kT0, 1200, 1}};
  t.r.qualifying = {{kDay0, 1200, 1}};
  t.At(kT0 + D, RunPoints);
  EXPECT_EQ(t.r.balance, 1200);
  EXPECT_EQ(t.r.tier, v1::TIER_SILVER);
  EXPECT_FALSE(t.r.stage_flags & kTierAtRisk);
  EXPECT_EQ(t.r.due[kPointsFamily], (kDay0 + 366 - t.c.tier_warning_days) * D) << "the warning";
  t.At(t.r.due[kPointsFamily], RunPoints);
  EXPECT_TRUE(t.r.stage_flags & kTierAtRisk);
  EXPECT_EQ(t.r.points_to_keep_tier, 1000);
  EXPECT_EQ(t.r.tier_drop_at, (kDay0 + 366) * D) << "once the day is older than 365 days";
  t.At(kT0 + t.c.points_ttl_days * D, RunPoints);
  EXPECT_FALSE(t.r.lots.empty()) << "strict: the lot expires once past its ttl";
  EXPECT_EQ(t.r.due[kPointsFamily], kT0 + t.c.points_ttl_days * D + 1);
  t.At(kT0 + t.c.points_ttl_days * D + 1, RunPoints);
  EXPECT_TRUE(t.r.lots.empty());
  EXPECT_EQ(t.r.expired_total, 1200);
  EXPECT_EQ(t.r.tier, v1::TIER_BRONZE);
}

TEST(ComplaintsFamilyTest, PastTheSlaAlertsOnceAndOpenOnesAreNeverDropped) {
  Run1 t;
  t.c.max_complaints = 1;
  t.r.complaints = {{.id = 7, .opened_ns = ToNanos(kT0, 0)},
                    {.id = 8, .opened_ns = ToNanos(kT0, 0), .resolved_ns = ToNanos(kT0 + D, 0)}};
  t.At(kT0 + D, RunComplaints);
  EXPECT_TRUE(t.raised.empty());
  EXPECT_EQ(t.r.open_complaints, 1);
  EXPECT_EQ(t.r.due[kComplaintsFamily], kT0 + t.c.complaint_sla_days * D + 1) << "strict";
  ASSERT_EQ(t.r.complaints.size(), 1u) << "the resolved one made room";
  EXPECT_EQ(t.r.complaints[0].id, 7u);
  t.At(kT0 + t.c.complaint_sla_days * D, RunComplaints);
  EXPECT_TRUE(t.raised.empty()) << "exactly 7 days old is not older than 7 days";
  t.At(kT0 + t.c.complaint_sla_days * D + 1, RunComplaints);
  ASSERT_EQ(t.raised.size(), 1u);
  EXPECT_EQ(t.raised[0].kind, v1::ALERT_KIND_COMPLAINT_UNRESOLVED);
  EXPECT_EQ(t.raised[0].disc.text, 7u);
  t.At(kT0 + 20 * D, RunComplaints);
  EXPECT_TRUE(t.raised.empty()) << "once";
}

TEST(TasksFamilyTest, MaintenanceAndFollowUpsGoOverdueOnceAfterTheirGrace) {
  Run1 t;
  t.r.has_vehicle = true;
  t.r.last_sale_at = kT0;
  const int64_t due = kT0 + t.c.maintenance_interval_days * D;
  t.At(kT0 + D, RunMaintenance);
  EXPECT_EQ(t.r.due[kMaintenanceFamily], due + t.c.maintenance_grace_days * D + 1);
  t.At(due + t.c.maintenance_grace_days * D, RunMaintenance);
  EXPECT_FALSE(t.r.stage_flags & kMaintenanceOverdue) << "overdue by more than the grace";
  t.At(due + t.c.maintenance_grace_days * D + 1, RunMaintenance);
  EXPECT_TRUE(t.r.stage_flags & kMaintenanceOverdue);
  ASSERT_EQ(t.raised.size(), 1u);
  EXPECT_EQ(t.raised[0].disc.number, due);
  t.At(due + 60 * D, RunMaintenance);
  EXPECT_TRUE(t.raised.empty()) << "once per due date";

  t.r.tasks = {{.kind = v1::FOLLOW_UP_KIND_CALLBACK_3_DAY,
                .status = v1::TASK_STATUS_OPEN,
                .due_at = kT0 + 3 * D,
                .origin = 5}};
  t.At(kT0 + 4 * D, RunTasks);
  EXPECT_EQ(t.r.due[kTasksFamily], kT0 + (3 + t.c.followup_grace_days) * D + 1);
  t.At(kT0 + (3 + t.c.followup_grace_days) * D, RunTasks);
  EXPECT_EQ(t.r.tasks[0].status, v1::TASK_STATUS_OPEN);
  t.At(kT0 + (3 + t.c.followup_grace_days) * D + 1, RunTasks);
  EXPECT_EQ(t.r.tasks[0].status, v1::TASK_STATUS_OVERDUE);
  ASSERT_EQ(t.raised.size(), 1u);
  EXPECT_EQ(t.raised[0].kind, v1::ALERT_KIND_FOLLOWUP_OVERDUE);
  t.At(kT0 + 30 * D, RunTasks);
  EXPECT_TRUE(t.raised.empty());
}

TEST(ChurnFamilyTest, FlagsAtTheClosedFormCrossingAndInactivity) {
  Run1 t;
  t.r = Active(kT0, kT0 + 100 * D, 3);
  const int64_t risk_at = CrossingAt(t.c, t.r, t.c.at_risk_p);
  ASSERT_GT(risk_at, kT0 + 100 * D);
  t.At(kT0 + 101 * D, RunChurn);
  EXPECT_FALSE(t.r.stage_flags & kPAtRisk);
  EXPECT_LE(t.r.due[kChurnFamily], risk_at);
  t.At(risk_at - 1, RunChurn);
  EXPECT_FALSE(t.r.stage_flags & kPAtRisk);
  t.At(risk_at, RunChurn);
  EXPECT_TRUE(t.r.stage_flags & kPAtRisk);
  EXPECT_LT(PAliveAt(t.c, t.r, risk_at), t.c.at_risk_p + 1e-9);
  t.At(kT0 + (100 + t.c.churn_days) * D, RunChurn);
  EXPECT_FALSE(t.r.stage_flags & kInactive) << "silence of exactly churn_days is not longer";
  t.At(kT0 + (100 + t.c.churn_days) * D + 1, RunChurn);
  EXPECT_TRUE(t.r.stage_flags & kInactive);
}

TEST(ChurnFamilyTest, PAliveSeriesFollowsTheActivityDaysAndEndsAtTheViewsValue) {
  // Three activity days: the first, day 40 and day 100; a year later.
  CustomerRecord r = Active(kT0, kT0 + 100 * D, 3);
  r.recent_days = {kDay0, kDay0 + 40, kDay0 + 100};
  DomainConfig c;
  const int64_t now = kT0 + 400 * D;
  const auto series = PAliveSeries(c, r, now);
  ASSERT_GT(series.size(), 50u);  // weekly over 400 days, and the activity days
  EXPECT_EQ(series.front().first, kT0);
  EXPECT_EQ(series.back().first, now);
  EXPECT_DOUBLE_EQ(series.back().second, PAliveAt(c, r, now));
  for (size_t i = 1; i < series.size(); ++i) {
    EXPECT_LT(series[i - 1].first, series[i].first);
    EXPECT_GE(series[i].second, 0.0);
    EXPECT_LE(series[i].second, 1.0);
  }
  // After the last activity, with nothing new, it only falls; at day 100 (an activity
  // day) it is as a record holding only those days would say.
  double before = 2;
  for (const auto& [t, p] : series) {
    if (t < kT0 + 100 * D) continue;
    if (t == kT0 + 100 * D) {
      EXPECT_DOUBLE_EQ(p, PAliveAt(c, r, t));
    }
    EXPECT_LE(p, before + 1e-12);
    before = p;
  }
  // Between day 40 and day 100 it is as of two activity days (x = 1, t_x = 40 days).
  for (const auto& [t, p] : series) {
    if (t > kT0 + 40 * D && t < kT0 + 100 * D) {
      EXPECT_DOUBLE_EQ(p, PAlive(c, 1, 40.0, static_cast<double>(t - kT0) / D));
    }
  }
  EXPECT_TRUE(PAliveSeries(c, CustomerRecord(), now).empty());
}

TEST(LoyaltyAndValueFamiliesTest, PartsFromTheWindowsAndGradeFromSpend) {
  Run1 t;
  t.r = Active(kT0, kT0 + 10 * D, 2);
  t.r.has_survey = true;
  t.r.latest_survey = 9;
  t.r.services = {{kDay0, 2, 2}};
  // Two campaigns (one of them attended twice): distinct campaigns count.
  t.r.campaigns = {{kDay0, 2, TextHash("spring")}, {kDay0 + 1, 1, TextHash("autumn")}};
  t.r.referrals = {{kDay0, 1, 1}};
  t.At(kT0 + 20 * D, RunLoyalty);
  EXPECT_EQ(t.r.satisfaction, 2);
  EXPECT_EQ(t.r.regular_maintenance, 3);
  EXPECT_EQ(t.r.event_participation, 2);
  EXPECT_EQ(t.r.advocacy, 3);
  EXPECT_EQ(t.r.loyalty(), 10);
  t.r.spend_12m = t.c.grade_a_spend_minor;
  t.r.activity_days_12m = 2;
  t.At(kT0 + 20 * D, RunValue);
  EXPECT_EQ(t.r.grade, v1::VALUE_GRADE_A);
  EXPECT_EQ(t.r.rfm_r, 5);
  EXPECT_EQ(t.r.rfm_f, 2);
  EXPECT_EQ(t.r.rfm_m, 5);
}

TEST(StageFamilyTest, FirstRuleThatHoldsAndATransitionWithItsFirstReason) {
  Run1 t;
  t.r = Active(kT0, kT0, 1);
  t.At(kT0 + D, RunStage);
  EXPECT_EQ(t.r.stage, v1::STAGE_NEW);
  ASSERT_EQ(t.fx.transitions.size(), 1u);
  EXPECT_EQ(t.fx.transitions[0].reason.code, ReasonCode::kFirstActivity);
  EXPECT_EQ(t.r.transitions, 1u);
  t.r.stage_flags = kInactive | kMaintenanceOverdue;
  t.At(kT0 + 400 * D, RunStage);
  EXPECT_EQ(t.r.stage, v1::STAGE_CHURNED) << "CHURNED before AT_RISK";
  EXPECT_EQ(t.fx.transitions.back().reason.code, ReasonCode::kInactive);
  EXPECT_EQ(t.fx.transitions.back().reason.a, 400);
  t.At(kT0 + 401 * D, RunStage);
  EXPECT_EQ(t.fx.transitions.size(), 2u) << "no transition without a change";
  EXPECT_EQ(StageAction(t.c, t.r, kT0 + 401 * D), Action::kWinBack);
}

TEST(AlertsFamilyTest, OncePerCrossing) {
  Run1 t;
  t.r = Active(kT0, kT0, 1);
  t.r.stage_flags = kPAtRisk;
  t.At(kT0 + 200 * D, RunAlerts);
  ASSERT_EQ(t.raised.size(), 1u);
  EXPECT_EQ(t.raised[0].kind, v1::ALERT_KIND_CHURN_RISK);
  t.At(kT0 + 201 * D, RunAlerts);
  EXPECT_TRUE(t.raised.empty());
  t.r.stage_flags = 0;
  t.At(kT0 + 202 * D, RunAlerts);
  t.r.stage_flags = kPAtRisk;
  t.At(kT0 + 203 * D, RunAlerts);
  EXPECT_EQ(t.raised.size(), 1u) << "a new crossing";
}

// An event runs only the families it can change (and those depending on them).
TEST(FamilyRunsTest, EventsSayWhichFamiliesRun) {
  DomainConfig c;
  CustomerRecord r;
  Effects fx;
  uint16_t runs = 0;
  ASSERT_EQ(ApplyEvent(c, 0, 1, lifecycle::testing::Purchase("e1", "c", kT0, 100), &r, &fx, &runs),
            FoldResult::kApplied);
  EXPECT_EQ(runs, kRunAll) << "a new customer: everything";
  ApplyEvent(c, 0, 2,
             lifecycle::testing::Contact("e2", "c", kT0 + D, v1::FOLLOW_UP_KIND_CALLBACK_3_DAY),
             &r, &fx, &runs);
  EXPECT_EQ(runs, kRunTasks);
  EXPECT_EQ(WithDependents(runs), kRunTasks) << "nothing depends on tasks";
  ApplyEvent(c, 0, 3, lifecycle::testing::Survey("e3", "c", kT0 + D, 9), &r, &fx, &runs);
  EXPECT_EQ(runs, kRunLoyalty);
  EXPECT_EQ(WithDependents(runs), kRunLoyalty | kRunValue | kRunStage | kRunAlerts);
  ApplyEvent(c, 0, 4, lifecycle::testing::Registered("e4", "c", kT0 + D), &r, &fx, &runs);
  EXPECT_EQ(runs, 0);

  // With nothing to run and no deadline due, an evaluation changes only its time.
  CustomerRecord before = r;
  Evaluate(c, kT0 + D, 5, &r, &fx, 0);
  before.evaluated_at = kT0 + D;
  before.next_deadline = r.next_deadline;
  EXPECT_EQ(r, before);
}

}  // namespace
}  // namespace lifecycle::projections::rules
