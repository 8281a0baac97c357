#include "projections/fold.h"

#include <gtest/gtest.h>

#include "absl/strings/str_format.h"

#include "projections/greetings.h"
#include "projections/rules.h"
#include "projections/view.h"
#include "tests/projections/book.h"
#include "tests/projections/test_events.h"

namespace lifecycle::projections {
namespace {

using namespace lifecycle::testing;  // NOLINT
namespace v1 = lifecycle::v1;

// One customer driven through events and clock ticks, as the projector would; the
// view is assembled from the record and what the fold appended, as the store does.
class Customer {
 public:
  explicit Customer(DomainConfig c = {}) : c_(std::move(c)) {}

  FoldResult Do(const v1::Event& e) {
    now_ = std::max(now_, e.occurred_at().seconds());
    uint16_t runs = 0;
    FoldResult r = ApplyEvent(c_, 0, ++offset_, e, &r_, &fx_, &runs);
    if (r == FoldResult::kApplied) {
      if (ChangesProfile(e)) {
        FoldProfile(e, r_.erased, &book_.profiles[id_]);
      }
      Evaluate(c_, now_, offset_, &r_, &fx_, runs);
    }
    Record();
    return r;
  }
  void At(int64_t t) {
    now_ = std::max(now_, t);
    Evaluate(c_, now_, ++offset_, &r_, &fx_, 0);
    Record();
  }
  v1::CustomerView v() const { return book_.View(c_, id_, r_); }
  const CustomerRecord& record() const { return r_; }
  // Alerts raised since the last call.
  std::vector<v1::Alert> Alerts() { return std::exchange(alerts_, {}); }
  int Raised(v1::AlertKind kind) {
    int n = 0;
    for (const auto& a : Alerts()) n += a.kind() == kind;
    return n;
  }
  DomainConfig& config() { return c_; }

 private:
  void Record() {
    book_.AddTexts(fx_.texts);
    book_.AddTexts(fx_.names);
    for (auto& t : fx_.transitions) book_.transitions[id_].push_back(t);
    for (auto& d : fx_.lost_deals) book_.lost[id_].push_back(d);
    for (auto& f : fx_.alerts) {
      AlertEntry a{id_, 0, seq_++, std::move(f)};
      book_.AddAlert(a);
      alerts_.push_back(book_.Alert(a));
    }
    fx_ = Effects();
  }

  DomainConfig c_;
  const std::string id_ = "c";
  CustomerRecord r_;
  Effects fx_;
  Book book_;
  std::vector<v1::Alert> alerts_;
  int64_t now_ = 0;
  int64_t offset_ = 0;
  int64_t seq_ = 0;
};

const int64_t D = kDay;

// The churn model these tests' stories were written for (before the shipped defaults
// became the fit on the demo population): P(alive) falls within months of silence.
DomainConfig QuickChurnModel() {
  DomainConfig c;
  c.r = 0.6, c.alpha = 45, c.a = 0.4, c.b = 2.5;
  c.at_risk_p = 0.5;
  return c;
}

TEST(StageTest, ProspectLostProspectAndBack) {
  Customer c;
  c.Do(Registered("e1", "c", kT0));
  EXPECT_EQ(c.v().stage(), v1::STAGE_PROSPECT);
  EXPECT_EQ(c.v().grade(), v1::VALUE_GRADE_UNSPECIFIED);
  EXPECT_EQ(c.v().value_class(), v1::VALUE_CLASS_POTENTIAL);
  c.Do(Lead("e2", "c", kT0 + D));
  c.Do(Lost("e3", "c", kT0 + 5 * D, v1::DEAL_LOST_REASON_PRICE, "Other Motors"));
  EXPECT_EQ(c.v().stage(), v1::STAGE_LOST_PROSPECT);
  ASSERT_EQ(c.v().lost_deals_size(), 1);
  EXPECT_EQ(c.v().lost_deals(0).reason(), v1::DEAL_LOST_REASON_PRICE);
  auto alerts = c.Alerts();
  ASSERT_EQ(alerts.size(), 1u);
  EXPECT_EQ(alerts[0].kind(), v1::ALERT_KIND_DEAL_LOST);
  EXPECT_EQ(alerts[0].reasons(0), "deal lost on price");
  EXPECT_EQ(alerts[0].reasons(1), "bought from Other Motors");
  EXPECT_FALSE(alerts[0].suggested_action().empty());
  c.Do(Lead("e4", "c", kT0 + 100 * D));
  EXPECT_EQ(c.v().stage(), v1::STAGE_PROSPECT);
  ASSERT_GE(c.v().transitions_size(), 3);
  EXPECT_EQ(c.v().transitions(1).from(), v1::STAGE_PROSPECT);
  EXPECT_EQ(c.v().transitions(1).to(), v1::STAGE_LOST_PROSPECT);
  EXPECT_EQ(c.v().transitions(1).reason(), "lost the deal on price");
}

TEST(StageTest, NewForNewDaysThenActive) {
  Customer c;
  c.Do(Registered("e1", "c", kT0));
  c.Do(Purchase("e2", "c", kT0 + 10 * D, 250000));
  EXPECT_EQ(c.v().stage(), v1::STAGE_NEW);
  EXPECT_EQ(c.v().stage_since().seconds(), kT0 + 10 * D);
  c.At(kT0 + 100 * D);
  EXPECT_EQ(c.v().stage(), v1::STAGE_NEW) << "90 days after the first activity: still within";
  c.At(kT0 + 100 * D + 1);
  EXPECT_EQ(c.v().stage(), v1::STAGE_ACTIVE);
  const v1::StageTransition tr = c.v().transitions(c.v().transitions_size() - 1);
  EXPECT_EQ(tr.from(), v1::STAGE_NEW);
  EXPECT_EQ(tr.to(), v1::STAGE_ACTIVE);
  EXPECT_EQ(tr.at().seconds(), kT0 + 100 * D + 1);
  EXPECT_FALSE(tr.reason().empty());
}

TEST(StageTest, SpendActivityDaysAndOutOfOrderEvents) {
  Customer c;
  c.Do(Purchase("e1", "c", kT0 + 5 * D + 100, 1000));
  c.Do(Service("e2", "c", kT0 + 5 * D + 5000, 500));  // same day: one activity day
  EXPECT_EQ(c.record().first_day_spend, 1500);
  c.Do(Service("e3", "c", kT0 + 2 * D, 700));         // earlier, out of order
  EXPECT_EQ(c.record().first_day_spend, 700) << "a new first day: the old one is a repeat day";
  c.Do(Refund("e4", "c", kT0 + 6 * D, 300));
  EXPECT_EQ(c.record().first_day_spend, 700);
  // A later refund of an order of the first day comes off the first day's spend.
  Customer d;
  d.Do(Purchase("o1", "d", kT0, 300000));
  d.Do(Service("v1", "d", kT0 + 30 * D, 50000));
  v1::Event refund = Refund("r1", "d", kT0 + 3 * D, 100000);
  refund.mutable_refund()->set_order_id("o-o1");  // the first day's purchase
  d.Do(refund);
  EXPECT_EQ(d.record().first_day_spend, 200000);
  EXPECT_EQ(d.record().total_spend - d.record().first_day_spend, 50000) << "the repeat day";
  const v1::ActivityStats a = c.v().activity();
  EXPECT_EQ(a.total_spend_minor(), 1900);
  EXPECT_EQ(c.v().spend_12m_minor(), 1900);
  EXPECT_EQ(a.activity_days(), 2);
  EXPECT_EQ(a.first_activity().seconds(), kT0 + 2 * D);
  EXPECT_EQ(a.last_activity().seconds(), kT0 + 5 * D + 5000);
  EXPECT_EQ(a.purchases(), 1);
  EXPECT_EQ(a.service_visits(), 2);
  EXPECT_EQ(a.event_count(), 4);
}

// DOMAIN.md "expected value": MBG/NBD expected activity days in the next 12 months
// times the Gamma-Gamma spend per activity day, which leaves the first day out.
TEST(ExpectedValueTest, RepeatDaysSpendTimesExpectedActivityDays) {
  DomainConfig config;
  config.spend_p = 6, config.spend_q = 4, config.spend_v = 75'000;
  Customer c(config);
  c.Do(Purchase("e1", "c", kT0, 1'000'000));  // the first day: a vehicle, left out
  c.Do(Service("e2", "c", kT0 + 30 * D, 10'000));
  c.Do(Service("e3", "c", kT0 + 60 * D, 10'000));
  const v1::CustomerView v = c.v();
  // x = 2, mean 10,000: 6 * (75,000 + 2 * 10,000) / (6 * 2 + 4 - 1) = 38,000.
  EXPECT_EQ(v.expected_spend_per_activity_minor(), 38'000);
  EXPECT_GT(v.expected_activities_12m(), 0.5);
  EXPECT_NEAR(v.expected_value_12m_minor(), v.expected_activities_12m() * 38'000, 1);
  // Silence lowers both P(alive) and the expectation; a view read later says so.
  c.At(kT0 + 400 * D);
  EXPECT_LT(c.v().expected_activities_12m(), v.expected_activities_12m());
  EXPECT_LT(c.v().p_alive(), v.p_alive());
  // One activity day: the population's mean spend, p * v / (q - 1) = 150,000.
  Customer once(config);
  once.Do(Purchase("e1", "c", kT0, 5'000));
  EXPECT_EQ(once.v().expected_spend_per_activity_minor(), 150'000);
  Customer prospect;
  prospect.Do(Lead("e1", "c", kT0));
  EXPECT_EQ(prospect.v().expected_value_12m_minor(), 0);
  EXPECT_EQ(prospect.v().expected_activities_12m(), 0);
}

TEST(StageTest, ChurnedAfterChurnDaysThenWonBackThenActive) {
  Customer c;
  c.Do(Purchase("e1", "c", kT0, 5000));
  c.Alerts();
  c.At(kT0 + 365 * D);
  EXPECT_NE(c.v().stage(), v1::STAGE_CHURNED) << "365 days of silence is not more than 365";
  c.At(kT0 + 365 * D + 1);
  EXPECT_EQ(c.v().stage(), v1::STAGE_CHURNED);
  EXPECT_EQ(c.v().reasons(0), "no purchase or service for 365 days");
  EXPECT_EQ(c.Raised(v1::ALERT_KIND_CHURNED), 1);
  c.At(kT0 + 400 * D);
  EXPECT_EQ(c.Raised(v1::ALERT_KIND_CHURNED), 0) << "once per crossing";
  c.Do(Purchase("e2", "c", kT0 + 410 * D, 5000));
  EXPECT_EQ(c.v().stage(), v1::STAGE_WON_BACK);
  c.At(kT0 + 500 * D);
  EXPECT_EQ(c.v().stage(), v1::STAGE_WON_BACK);
  c.At(kT0 + 500 * D + 1);
  EXPECT_EQ(c.v().stage(), v1::STAGE_ACTIVE);
}

TEST(ChurnRiskTest, AlertAtTheClosedFormCrossingAndOncePerCrossing) {
  Customer c;
  // Inactivity must not come first: the crossing after the fifth purchase is 552 days
  // after it (see the next test for what happens by default).
  c.config().churn_days = 3650;
  // Parts purchases (no vehicle, so no maintenance rule) every 90 days.
  for (int i = 0; i < 4; ++i) c.Do(Purchase("p" + std::to_string(i), "c", kT0 + i * 90 * D, 100));
  c.Alerts();
  const DomainConfig& cfg = c.config();
  const double t_star = rules::CrossingDays(cfg, 3, 270, cfg.at_risk_p);
  const int64_t deadline = kT0 + static_cast<int64_t>(std::ceil(t_star * D));
  EXPECT_EQ(c.v().churn_risk_at().seconds(), deadline);
  c.At(deadline - 1);
  EXPECT_EQ(c.Raised(v1::ALERT_KIND_CHURN_RISK), 0);
  EXPECT_NE(c.v().stage(), v1::STAGE_AT_RISK);
  EXPECT_GT(c.v().p_alive(), cfg.at_risk_p);
  c.At(deadline);
  auto alerts = c.Alerts();
  ASSERT_EQ(alerts.size(), 1u);
  EXPECT_EQ(alerts[0].kind(), v1::ALERT_KIND_CHURN_RISK);
  EXPECT_NEAR(alerts[0].p_alive(), cfg.at_risk_p, 1e-6);
  EXPECT_EQ(c.v().stage(), v1::STAGE_AT_RISK);
  const std::string below = absl::StrFormat("P(alive) %.2f is below %.2f", cfg.at_risk_p, cfg.at_risk_p);
  EXPECT_NE(c.v().reasons(0).find(below), std::string::npos) << c.v().reasons(0);
  c.At(deadline + 10 * D);
  EXPECT_EQ(c.Raised(v1::ALERT_KIND_CHURN_RISK), 0);
  // A new purchase lifts P(alive); the next crossing alerts again.
  c.Do(Purchase("p4", "c", deadline + 11 * D, 100));
  EXPECT_GT(c.v().p_alive(), 0.9);
  c.At(c.v().churn_risk_at().seconds());
  EXPECT_EQ(c.Raised(v1::ALERT_KIND_CHURN_RISK), 1);
}

TEST(ChurnRiskTest, NoChurnRiskForACustomerAlreadyChurned) {
  Customer c(QuickChurnModel());  // silence can make the customer CHURNED first
  for (int i = 0; i < 4; ++i) c.Do(Purchase("p" + std::to_string(i), "c", kT0 + i * 90 * D, 100));
  c.At(c.v().churn_risk_at().seconds());
  EXPECT_EQ(c.Raised(v1::ALERT_KIND_CHURN_RISK), 1);
  const int64_t back = c.v().churn_risk_at().seconds() + 11 * D;
  c.Do(Purchase("p4", "c", back, 100));
  const int64_t crossing = c.v().churn_risk_at().seconds();
  const int64_t quiet = back + c.config().churn_days * D + 1;  // more than 365 days after
  ASSERT_LT(quiet, crossing);
  c.At(quiet);
  EXPECT_EQ(c.v().stage(), v1::STAGE_CHURNED);
  EXPECT_EQ(c.Raised(v1::ALERT_KIND_CHURNED), 1);
  c.At(crossing + D);  // P(alive) falls below at_risk_p while CHURNED
  EXPECT_LT(c.v().p_alive(), c.config().at_risk_p);
  EXPECT_EQ(c.Raised(v1::ALERT_KIND_CHURN_RISK), 0);
  EXPECT_EQ(c.v().stage(), v1::STAGE_CHURNED);
}

// CHURNED after max(churn_days, churn_cadence x the customer's own mean gap) of silence:
// a customer who comes once every 300 days is not churned after 366 days.
TEST(ChurnRiskTest, ChurnedAfterTwiceTheCustomersOwnCadenceWhenThatIsLonger) {
  Customer c;
  c.config().churned_p = 0.0001;  // the inactivity rule alone
  c.config().at_risk_p = 0.0002;
  for (int i = 0; i < 3; ++i) c.Do(Purchase("p" + std::to_string(i), "c", kT0 + i * 300 * D, 100));
  const int64_t last = kT0 + 600 * D;
  c.At(last + 366 * D);
  EXPECT_NE(c.v().stage(), v1::STAGE_CHURNED);
  c.At(last + 600 * D);
  EXPECT_NE(c.v().stage(), v1::STAGE_CHURNED);
  c.At(last + 600 * D + 1);
  EXPECT_EQ(c.v().stage(), v1::STAGE_CHURNED);
  EXPECT_NE(c.v().reasons(0).find("no purchase or service for 600 days"), std::string::npos)
      << c.v().reasons(0);

  Customer often;  // every 30 days: churn_days decides
  often.config().churned_p = 0.0001;
  often.config().at_risk_p = 0.0002;
  for (int i = 0; i < 3; ++i) often.Do(Purchase("p" + std::to_string(i), "c", kT0 + i * 30 * D, 100));
  often.At(kT0 + 60 * D + 365 * D);
  EXPECT_NE(often.v().stage(), v1::STAGE_CHURNED);
  often.At(kT0 + 60 * D + 365 * D + 1);
  EXPECT_EQ(often.v().stage(), v1::STAGE_CHURNED);
}

TEST(LoyaltyTest, LoyalNeedsVisitsScoreAndNoOpenComplaint) {
  Customer c;
  for (int i = 0; i < 4; ++i) {
    c.Do(Service("s" + std::to_string(i), "c", kT0 + i * 100 * D, 50000, /*on_schedule=*/true));
  }
  c.Do(Survey("q", "c", kT0 + 301 * D, 9));
  c.Do(Campaign("m", "c", kT0 + 302 * D, /*brought_prospect=*/true));
  c.Do(Referred("r", "c", kT0 + 303 * D, /*converted=*/true));
  EXPECT_EQ(c.v().loyalty().satisfaction(), 2);
  EXPECT_EQ(c.v().loyalty().regular_maintenance(), 3);
  EXPECT_EQ(c.v().loyalty().event_participation(), 1);
  EXPECT_EQ(c.v().loyalty().advocacy(), 2);
  EXPECT_EQ(c.v().loyalty().total(), 8);
  EXPECT_EQ(c.v().stage(), v1::STAGE_LOYAL);
  c.Do(ComplaintOpened("k", "c", kT0 + 304 * D, "K1"));
  EXPECT_EQ(c.v().loyalty().satisfaction(), 1);
  EXPECT_EQ(c.v().open_complaints(), 1);
  EXPECT_EQ(c.v().stage(), v1::STAGE_ACTIVE);
  c.Do(ComplaintClosed("k2", "c", kT0 + 305 * D, "K1"));
  EXPECT_EQ(c.v().stage(), v1::STAGE_LOYAL);
}

TEST(ComplaintTest, SlaBreachMakesAtRiskAndAlertsOnce) {
  Customer c;
  c.Do(Purchase("p", "c", kT0, 1000));
  c.Do(ComplaintOpened("k", "c", kT0 + D, "K9"));
  c.Alerts();
  c.At(kT0 + 8 * D);
  EXPECT_EQ(c.Raised(v1::ALERT_KIND_COMPLAINT_UNRESOLVED), 0) << "open exactly 7 days";
  c.At(kT0 + 8 * D + 1);
  auto alerts = c.Alerts();
  ASSERT_EQ(alerts.size(), 1u);
  EXPECT_EQ(alerts[0].kind(), v1::ALERT_KIND_COMPLAINT_UNRESOLVED);
  EXPECT_EQ(alerts[0].severity(), v1::SEVERITY_CRITICAL);
  EXPECT_NE(alerts[0].reasons(0).find("K9"), std::string::npos);
  EXPECT_EQ(c.v().stage(), v1::STAGE_AT_RISK);
  c.At(kT0 + 9 * D);
  EXPECT_EQ(c.Raised(v1::ALERT_KIND_COMPLAINT_UNRESOLVED), 0);
  c.Do(ComplaintClosed("k2", "c", kT0 + 10 * D, "K9"));
  EXPECT_EQ(c.v().stage(), v1::STAGE_NEW);
  EXPECT_EQ(c.v().open_complaints(), 0);
}

TEST(MaintenanceTest, OverduePastGraceAlertsAndAVisitClearsIt) {
  Customer c;
  c.Do(VehicleSale("s", "c", kT0, 20000000, "O1"));
  EXPECT_EQ(c.v().maintenance_due().seconds(), kT0 + 180 * D);
  c.Alerts();
  c.At(kT0 + 210 * D);
  EXPECT_EQ(c.Raised(v1::ALERT_KIND_MAINTENANCE_OVERDUE), 0) << "overdue by exactly the grace";
  c.At(kT0 + 210 * D + 1);
  EXPECT_EQ(c.Raised(v1::ALERT_KIND_MAINTENANCE_OVERDUE), 1);
  EXPECT_EQ(c.v().stage(), v1::STAGE_AT_RISK);
  c.At(kT0 + 220 * D);
  EXPECT_EQ(c.Raised(v1::ALERT_KIND_MAINTENANCE_OVERDUE), 0);
  c.Do(Service("v", "c", kT0 + 221 * D, 30000, /*on_schedule=*/false));
  EXPECT_NE(c.v().stage(), v1::STAGE_AT_RISK);
  EXPECT_EQ(c.v().maintenance_due().seconds(), kT0 + 401 * D);
}

// DOMAIN.md: a service visit at another garage is leakage — not activity, spend or
// points; an off-schedule visit in the maintenance share; maintenance due starts again;
// SERVICE_LEAKAGE, whose P(alive) and loyalty are those after the visit.
TEST(LeakageTest, AVisitAtAnotherGarageIsNotActivityButCountsOffScheduleAndAlerts) {
  Customer c;
  c.Do(VehicleSale("s", "c", kT0, 20000000, "O1"));
  c.Do(Service("v1", "c", kT0 + 150 * D, 30000));
  const v1::CustomerView before = c.v();
  EXPECT_EQ(before.loyalty().regular_maintenance(), 3);  // 1 of 1 on schedule
  c.Alerts();
  v1::Event elsewhere = Service("v2", "c", kT0 + 330 * D, 45000);
  elsewhere.mutable_service_visit()->set_other_garage(true);
  c.Do(elsewhere);
  const v1::CustomerView after = c.v();
  EXPECT_EQ(after.activity().activity_days(), before.activity().activity_days());
  EXPECT_EQ(after.activity().total_spend_minor(), before.activity().total_spend_minor());
  EXPECT_EQ(after.activity().last_activity().seconds(), kT0 + 150 * D);
  EXPECT_EQ(after.points().balance(), before.points().balance());
  EXPECT_EQ(after.loyalty().regular_maintenance(), 1) << "1 of 2 visits on schedule: share 0.5";
  EXPECT_EQ(after.maintenance_due().seconds(), kT0 + 330 * D + 180 * D);
  std::vector<v1::Alert> alerts;  // the deadlines passed on the way raise their own
  for (auto& a : c.Alerts()) {
    if (a.kind() == v1::ALERT_KIND_SERVICE_LEAKAGE) alerts.push_back(a);
  }
  ASSERT_EQ(alerts.size(), 1u);
  EXPECT_EQ(alerts[0].at().seconds(), kT0 + 330 * D);
  EXPECT_EQ(alerts[0].reasons(0), "serviced at another garage; last service here 180 days ago");
  EXPECT_FALSE(alerts[0].suggested_action().empty());
  EXPECT_EQ(alerts[0].loyalty(), after.loyalty().total()) << "the loyalty after the visit";
  EXPECT_EQ(alerts[0].loyalty(), before.loyalty().total() - 2);
  EXPECT_DOUBLE_EQ(alerts[0].p_alive(), after.p_alive());
  // No task is closed and no satisfaction callback is added by a visit elsewhere (the
  // greetings that fell due on the way aside).
  auto tasks = [](const v1::CustomerView& v) {
    int n = 0;
    for (const auto& t : v.follow_ups()) n += !IsGreeting(t.kind());
    return n;
  };
  EXPECT_EQ(tasks(after), tasks(before));
}

// DOMAIN.md: an alert carries P(alive) and loyalty after the event that raised it.
TEST(AlertValuesTest, ADealLostAlertCarriesTheValuesAfterTheEvent) {
  Customer c;
  c.Do(Purchase("p1", "c", kT0, 5000));
  c.Do(Survey("q1", "c", kT0 + D, 10));
  c.Alerts();
  c.Do(Lost("l1", "c", kT0 + 400 * D, v1::DEAL_LOST_REASON_PRICE));  // 400 days later
  auto alerts = c.Alerts();
  const v1::Alert* lost = nullptr;
  for (const auto& a : alerts) {
    if (a.kind() == v1::ALERT_KIND_DEAL_LOST) lost = &a;
  }
  ASSERT_NE(lost, nullptr);
  EXPECT_DOUBLE_EQ(lost->p_alive(), c.v().p_alive()) << "as of the deal lost, not the survey";
  EXPECT_LT(lost->p_alive(), 0.9);
  EXPECT_EQ(lost->loyalty(), c.v().loyalty().total());
}

// DOMAIN.md: event participation counts distinct campaigns in the trailing 12 months
// (bringing a prospect counts as attending), capped at 2.
TEST(LoyaltyTest, EventParticipationCountsDistinctCampaigns) {
  Customer c;
  c.Do(Purchase("p1", "c", kT0, 5000));
  auto attend = [&](const std::string& id, int64_t at, const std::string& campaign) {
    v1::Event e = Campaign(id, "c", at);
    e.mutable_campaign_participation()->set_campaign_id(campaign);
    c.Do(e);
  };
  attend("a1", kT0 + D, "spring-show");
  attend("a2", kT0 + 2 * D, "spring-show");  // the same campaign, another day
  attend("a3", kT0 + 2 * D + 60, "spring-show");  // and again the same day
  EXPECT_EQ(c.v().loyalty().event_participation(), 1);
  attend("a4", kT0 + 40 * D, "autumn-drive");
  EXPECT_EQ(c.v().loyalty().event_participation(), 2);
  c.At(kT0 + 368 * D);  // spring-show (last on day 2) is past 12 months, autumn-drive is not
  EXPECT_EQ(c.v().loyalty().event_participation(), 1);
}

TEST(FollowUpTest, SaleCallbacksVisitCallbackClosingAndOverdue) {
  Customer c;
  c.Do(VehicleSale("s", "c", kT0, 20000000, "O1"));
  ASSERT_EQ(c.v().follow_ups_size(), 3);
  EXPECT_EQ(c.v().follow_ups(0).kind(), v1::FOLLOW_UP_KIND_CALLBACK_3_DAY);
  EXPECT_EQ(c.v().follow_ups(0).due_at().seconds(), kT0 + 3 * D);
  EXPECT_EQ(c.v().follow_ups(1).due_at().seconds(), kT0 + 7 * D);
  EXPECT_EQ(c.v().follow_ups(2).kind(), v1::FOLLOW_UP_KIND_FIRST_MAINTENANCE_REMINDER);
  EXPECT_EQ(c.v().follow_ups(2).due_at().seconds(), kT0 + 90 * D);
  c.Do(Contact("f", "c", kT0 + 3 * D, v1::FOLLOW_UP_KIND_CALLBACK_3_DAY));
  EXPECT_EQ(c.v().follow_ups(0).status(), v1::TASK_STATUS_DONE);
  c.Alerts();
  c.At(kT0 + 9 * D);
  EXPECT_EQ(c.Raised(v1::ALERT_KIND_FOLLOWUP_OVERDUE), 0) << "exactly the grace past due";
  c.At(kT0 + 9 * D + 1);  // the 7-day callback, more than 2 days past due
  auto alerts = c.Alerts();
  ASSERT_EQ(alerts.size(), 1u);
  EXPECT_EQ(alerts[0].reasons(0), "7-day callback after the sale is 2 days overdue");
  EXPECT_EQ(c.v().follow_ups(1).status(), v1::TASK_STATUS_OVERDUE);
  c.At(kT0 + 10 * D);
  EXPECT_EQ(c.Raised(v1::ALERT_KIND_FOLLOWUP_OVERDUE), 0);
  c.Do(Service("v", "c", kT0 + 80 * D, 30000));
  EXPECT_EQ(c.v().follow_ups(2).status(), v1::TASK_STATUS_DONE) << "first maintenance done";
  ASSERT_EQ(c.v().follow_ups_size(), 4);
  EXPECT_EQ(c.v().follow_ups(3).kind(), v1::FOLLOW_UP_KIND_SURVEY_CALLBACK);
  EXPECT_EQ(c.v().follow_ups(3).due_at().seconds(), kT0 + 82 * D);
}

// DOMAIN.md: a contact closes the task of its kind for the origin it names; without
// one, the oldest open task of its kind.
TEST(FollowUpTest, AContactClosesTheTaskOfItsOriginElseTheOldestOfItsKind) {
  Customer c;
  c.Do(Service("v1", "c", kT0, 30000));
  c.Do(Service("v2", "c", kT0 + 10 * D, 30000));
  c.Do(Service("v3", "c", kT0 + 20 * D, 30000));
  ASSERT_EQ(c.v().follow_ups_size(), 3);  // a satisfaction callback per visit
  v1::Event named = Contact("f1", "c", kT0 + 22 * D, v1::FOLLOW_UP_KIND_SURVEY_CALLBACK);
  named.mutable_follow_up_contact()->set_origin_id("v-v3");
  c.Do(named);
  EXPECT_EQ(c.v().follow_ups(2).status(), v1::TASK_STATUS_DONE) << "v3's callback";
  EXPECT_NE(c.v().follow_ups(0).status(), v1::TASK_STATUS_DONE);
  c.Do(Contact("f2", "c", kT0 + 23 * D, v1::FOLLOW_UP_KIND_SURVEY_CALLBACK));
  EXPECT_EQ(c.v().follow_ups(0).status(), v1::TASK_STATUS_DONE) << "the oldest open one: v1's";
  EXPECT_NE(c.v().follow_ups(1).status(), v1::TASK_STATUS_DONE);
  v1::Event unknown = Contact("f3", "c", kT0 + 24 * D, v1::FOLLOW_UP_KIND_SURVEY_CALLBACK);
  unknown.mutable_follow_up_contact()->set_origin_id("v-none");
  c.Do(unknown);
  EXPECT_NE(c.v().follow_ups(1).status(), v1::TASK_STATUS_DONE) << "no task of that origin";
}

// DOMAIN.md: history caps drop only closed tasks, never open ones.
TEST(FollowUpTest, TheTaskCapNeverDropsAnOpenTask) {
  DomainConfig config;
  config.max_tasks = 2;
  Customer c(config);
  for (int i = 0; i < 3; ++i) c.Do(Service("v" + std::to_string(i), "c", kT0 + i * D, 30000));
  EXPECT_EQ(c.v().follow_ups_size(), 3) << "three open callbacks, over the cap of 2";
  c.Do(Contact("f", "c", kT0 + 3 * D, v1::FOLLOW_UP_KIND_SURVEY_CALLBACK));
  c.Do(Service("v3", "c", kT0 + 4 * D, 30000));
  ASSERT_EQ(c.v().follow_ups_size(), 3) << "the closed one made room";
  const v1::CustomerView v = c.v();
  for (const auto& t : v.follow_ups()) EXPECT_NE(t.status(), v1::TASK_STATUS_DONE);
}

// DOMAIN.md: a lost deal gets re-contact tasks at +30 and +90 days (they go overdue
// like any task); a later purchase closes what is left of them.
TEST(FollowUpTest, ALostDealIsReContactedAt30And90DaysUntilThePurchase) {
  Customer c;
  c.Do(Lead("l", "c", kT0));
  v1::Event lost = Lost("x", "c", kT0 + 5 * D, v1::DEAL_LOST_REASON_PRICE);
  lost.mutable_deal_lost()->set_lead_id("L-1");
  c.Do(lost);
  ASSERT_EQ(c.v().follow_ups_size(), 2);
  EXPECT_EQ(c.v().follow_ups(0).kind(), v1::FOLLOW_UP_KIND_LOST_DEAL_RECONTACT_1);
  EXPECT_EQ(c.v().follow_ups(0).due_at().seconds(), kT0 + 35 * D);
  EXPECT_EQ(c.v().follow_ups(0).origin_id(), "L-1");
  EXPECT_EQ(c.v().follow_ups(1).kind(), v1::FOLLOW_UP_KIND_LOST_DEAL_RECONTACT_2);
  EXPECT_EQ(c.v().follow_ups(1).due_at().seconds(), kT0 + 95 * D);
  c.Alerts();
  c.At(kT0 + 37 * D + 1);
  EXPECT_EQ(c.Raised(v1::ALERT_KIND_FOLLOWUP_OVERDUE), 1) << "the first re-contact, missed";
  c.Do(Purchase("p", "c", kT0 + 60 * D, 5000));
  const v1::CustomerView bought = c.v();
  for (const auto& t : bought.follow_ups()) {
    EXPECT_EQ(t.status(), v1::TASK_STATUS_DONE) << "bought: nothing left to re-contact";
  }
  c.At(kT0 + 200 * D);
  EXPECT_EQ(c.Raised(v1::ALERT_KIND_FOLLOWUP_OVERDUE), 0);
}

// DOMAIN.md: a recovered lost prospect was LOST_PROSPECT at some time and later has a
// first activity, whatever inquiries came in between.
TEST(LostProspectTest, ALostProspectWhoBuysAfterANewInquiryIsRecovered) {
  Customer c;
  c.Do(Lead("l1", "c", kT0));
  EXPECT_FALSE(c.record().ever_lost_prospect);
  c.Do(Lost("x1", "c", kT0 + D, v1::DEAL_LOST_REASON_PRICE));
  EXPECT_EQ(c.v().stage(), v1::STAGE_LOST_PROSPECT);
  EXPECT_TRUE(c.record().ever_lost_prospect);
  c.Do(Lead("l2", "c", kT0 + 50 * D));
  EXPECT_EQ(c.v().stage(), v1::STAGE_PROSPECT);
  EXPECT_TRUE(c.record().ever_lost_prospect) << "a new inquiry does not undo it";
  c.Do(Purchase("p", "c", kT0 + 60 * D, 5000));
  EXPECT_EQ(c.v().stage(), v1::STAGE_NEW);
}

// DOMAIN.md: greetings are due 00:00 UTC on the day; 29 February falls on 28 February
// in other years.
TEST(GreetingTest, CalendarDaysAndBirthdaysFromTheProfile) {
  EXPECT_EQ(DayOfDate(1970, 1, 1), 0);
  EXPECT_EQ(DayOfDate(2024, 1, 1) * kDay, kT0);
  EXPECT_EQ(DayOfDate(2024, 3, 1) - DayOfDate(2024, 2, 28), 2) << "2024 is a leap year";
  EXPECT_EQ(DayOfDate(2025, 2, 29), DayOfDate(2025, 2, 28));
  EXPECT_EQ(DayOfDate(2000, 3, 1) - DayOfDate(2000, 2, 28), 2) << "2000 is a leap year";
  EXPECT_EQ(DayOfDate(2100, 3, 1) - DayOfDate(2100, 2, 28), 1) << "2100 is not";
  EXPECT_EQ(DayOfDate(1969, 12, 31), -1);
  EXPECT_EQ(YearOfDay(DayOfDate(2024, 12, 31)), 2024);
  EXPECT_EQ(YearOfDay(DayOfDate(2025, 1, 1)), 2025);
  EXPECT_EQ(BirthdayOf("1985-02-29"), 229);
  EXPECT_EQ(BirthdayOf("12-05"), 1205);
  EXPECT_EQ(BirthdayOf("13-01"), 0);
  EXPECT_EQ(BirthdayOf("02-30"), 0);
  EXPECT_EQ(BirthdayOf("5 May"), 0);
}

// DOMAIN.md: a greeting not done within greeting_expiry_days closes as MISSED and
// raises no FOLLOWUP_OVERDUE; a greeting contact closes the greeting of its kind.
TEST(GreetingTest, ABirthdayGreetingDoneAndAHolidayGreetingMissedWithoutAnAlert) {
  DomainConfig config;
  config.greeting_holidays = {501, 20241001};
  Customer c(config);
  v1::Event reg = Registered("r", "c", kT0);
  reg.mutable_customer_registered()->mutable_profile()->set_birthday("1990-03-15");
  c.Do(reg);
  c.Do(Purchase("p", "c", kT0 + 10 * D, 5000));
  auto greetings = [&c] {
    std::vector<v1::FollowUpTask> out;
    const v1::CustomerView v = c.v();
    for (const auto& t : v.follow_ups()) {
      if (IsGreeting(t.kind())) out.push_back(t);
    }
    return out;
  };
  EXPECT_TRUE(greetings().empty()) << "none due yet";
  const int64_t birthday = DayOfDate(2024, 3, 15) * kDay;
  c.At(birthday);
  EXPECT_TRUE(greetings().empty()) << "strict: due once stream time is past 00:00";
  c.At(birthday + 1);
  ASSERT_EQ(greetings().size(), 1u);
  EXPECT_EQ(greetings()[0].kind(), v1::FOLLOW_UP_KIND_BIRTHDAY_GREETING);
  EXPECT_EQ(greetings()[0].status(), v1::TASK_STATUS_OPEN);
  EXPECT_EQ(greetings()[0].due_at().seconds(), birthday);
  c.Do(Contact("g1", "c", birthday + 3 * D, v1::FOLLOW_UP_KIND_BIRTHDAY_GREETING));
  ASSERT_EQ(greetings().size(), 1u);
  EXPECT_EQ(greetings()[0].status(), v1::TASK_STATUS_DONE);
  EXPECT_EQ(greetings()[0].closed_at().seconds(), birthday + 3 * D);

  const int64_t labour_day = DayOfDate(2024, 5, 1) * kDay;
  c.At(labour_day + 7 * D);
  ASSERT_EQ(greetings().size(), 2u);
  EXPECT_EQ(greetings()[1].kind(), v1::FOLLOW_UP_KIND_HOLIDAY_GREETING);
  EXPECT_EQ(greetings()[1].status(), v1::TASK_STATUS_OPEN) << "7 days: not yet missed";
  c.At(labour_day + 7 * D + 1);
  EXPECT_EQ(greetings()[1].status(), v1::TASK_STATUS_MISSED);
  EXPECT_EQ(greetings()[1].closed_at().seconds(), labour_day + 7 * D);
  c.Alerts();
  // A contact too late closes nothing; the one-year holiday is greeted on time.
  c.Do(Contact("g2", "c", labour_day + 9 * D, v1::FOLLOW_UP_KIND_HOLIDAY_GREETING));
  EXPECT_EQ(greetings()[1].status(), v1::TASK_STATUS_MISSED);
  const int64_t national_day = DayOfDate(2024, 10, 1) * kDay;
  c.Do(Contact("g3", "c", national_day + 3600, v1::FOLLOW_UP_KIND_HOLIDAY_GREETING));
  c.At(national_day + 30 * D);
  ASSERT_EQ(greetings().size(), 3u);
  EXPECT_EQ(greetings()[2].status(), v1::TASK_STATUS_DONE);
  EXPECT_EQ(c.Raised(v1::ALERT_KIND_FOLLOWUP_OVERDUE), 0) << "greetings raise no alert";
  // A year on, the greetings older than 365 days leave the view; 20241001 is not again.
  c.At(DayOfDate(2025, 5, 2) * kDay);
  std::vector<int> kinds;
  for (const auto& g : greetings()) kinds.push_back(g.kind());
  EXPECT_EQ(kinds, (std::vector<int>{v1::FOLLOW_UP_KIND_HOLIDAY_GREETING,
                                     v1::FOLLOW_UP_KIND_BIRTHDAY_GREETING,
                                     v1::FOLLOW_UP_KIND_HOLIDAY_GREETING}));
}

TEST(GreetingTest, NoGreetingsBeforeTheFirstActivity) {
  DomainConfig config;
  config.greeting_holidays = {101, 201};
  Customer c(config);
  c.Do(Lead("l", "c", kT0 - 30 * D));
  c.At(kT0 + 40 * D);
  const v1::CustomerView prospect = c.v();
  for (const auto& t : prospect.follow_ups()) EXPECT_FALSE(IsGreeting(t.kind())) << "a prospect";
  c.Do(Purchase("p", "c", kT0 + 40 * D, 5000));
  c.At(kT0 + 60 * D);
  int n = 0;
  const v1::CustomerView buyer = c.v();
  for (const auto& t : buyer.follow_ups()) n += IsGreeting(t.kind());
  EXPECT_EQ(n, 0) << "01-01 and 02-01 came before the first activity";
}

// DOMAIN.md: alerts carry the customer's advisor (销售顾问), so each salesperson can
// subscribe to their own customers' alerts.
TEST(AdvisorTest, AlertsCarryTheCustomersAdvisorWhenRaised) {
  Customer c;
  v1::Event reg = Registered("r", "c", kT0);
  reg.mutable_customer_registered()->mutable_profile()->set_advisor_id("adv-07");
  c.Do(reg);
  c.Do(Lead("l", "c", kT0 + D));
  c.Do(Lost("x", "c", kT0 + 2 * D, v1::DEAL_LOST_REASON_PRICE));
  auto alerts = c.Alerts();
  ASSERT_EQ(alerts.size(), 1u);
  EXPECT_EQ(alerts[0].advisor_id(), "adv-07");
  EXPECT_EQ(c.v().profile().advisor_id(), "adv-07");
  v1::Event moved = Registered("r2", "c", kT0 + 3 * D);
  moved.set_allocated_customer_registered(nullptr);
  moved.mutable_profile_updated()->mutable_profile()->set_advisor_id("adv-02");
  c.Do(moved);
  c.Do(Lost("x2", "c", kT0 + 4 * D, v1::DEAL_LOST_REASON_COMPETITOR));
  alerts = c.Alerts();
  ASSERT_EQ(alerts.size(), 1u);
  EXPECT_EQ(alerts[0].advisor_id(), "adv-02") << "the advisor when raised";
}

TEST(PointsTest, EarnRedeemOldestFirstRefundAndExpiry) {
  Customer c;
  c.Do(Purchase("p1", "c", kT0, 100000));  // 1000.00 -> 1000 points
  c.Do(Purchase("p2", "c", kT0 + D, 50000));
  EXPECT_EQ(c.v().points().balance(), 1500);
  EXPECT_EQ(c.v().points().qualifying_12m(), 1500);
  c.Do(Redeem("r1", "c", kT0 + 2 * D, 1200));
  ASSERT_EQ(c.v().points().lots_size(), 1);
  EXPECT_EQ(c.v().points().lots(0).remaining(), 300);  // the oldest lot went first
  EXPECT_EQ(c.v().points().balance(), 300);
  EXPECT_EQ(c.v().points().qualifying_12m(), 1500) << "spending never reduces qualifying";
  EXPECT_EQ(c.v().points().tier(), v1::TIER_SILVER);
  c.Do(Refund("f1", "c", kT0 + 3 * D, 20000));  // refund of order o-1 (p1's order is o-p1)
  EXPECT_EQ(c.v().points().balance(), 100);
  c.Do(Redeem("r2", "c", kT0 + 4 * D, 5000));  // more than the balance
  EXPECT_EQ(c.v().points().balance(), 0);
  EXPECT_EQ(c.v().points().redeemed_total(), 1300);
  c.Do(Purchase("p3", "c", kT0 + 10 * D, 10000));
  c.At(kT0 + 740 * D);
  EXPECT_EQ(c.v().points().balance(), 100) << "730 days old: expires once older than that";
  c.At(kT0 + 740 * D + 1);
  EXPECT_EQ(c.v().points().balance(), 0);
  EXPECT_EQ(c.v().points().expired_total(), 100);
}

TEST(PointsTest, TierDowngradeRiskWarnsOnceBeforeTheDrop) {
  Customer c;
  c.Do(Purchase("p1", "c", kT0, 500000));  // 5000 points: GOLD
  EXPECT_EQ(c.v().points().tier(), v1::TIER_GOLD);
  c.Alerts();
  const int64_t drop = (EpochDay(kT0) + 366) * D;  // the day is older than 365 days
  c.At(drop - 30 * D - 1);
  EXPECT_EQ(c.Raised(v1::ALERT_KIND_TIER_DOWNGRADE_RISK), 0);
  c.At(drop - 30 * D);
  auto alerts = c.Alerts();
  int tier_alerts = 0;
  for (const auto& a : alerts) {
    if (a.kind() != v1::ALERT_KIND_TIER_DOWNGRADE_RISK) continue;
    ++tier_alerts;
    EXPECT_EQ(a.reasons(1), "5000 more points keep it");
  }
  EXPECT_EQ(tier_alerts, 1);
  EXPECT_EQ(c.v().points().points_to_keep_tier(), 5000);
  EXPECT_EQ(c.v().points().tier_drop_at().seconds(), drop);
  c.At(drop - 10 * D);
  EXPECT_EQ(c.Raised(v1::ALERT_KIND_TIER_DOWNGRADE_RISK), 0);
  c.At(drop);
  EXPECT_EQ(c.v().points().tier(), v1::TIER_BRONZE);
  EXPECT_EQ(c.v().points().qualifying_12m(), 0);
}

TEST(GradeRfmTest, ViewCarriesGradeClassAndRfm) {
  Customer c;
  c.Do(VehicleSale("s", "c", kT0, 25000000, "O1"));
  EXPECT_EQ(c.v().grade(), v1::VALUE_GRADE_A);
  EXPECT_EQ(c.v().value_class(), v1::VALUE_CLASS_VIP);
  EXPECT_EQ(c.v().rfm().score(), "515");
  EXPECT_EQ(c.v().rfm().segment(), "New");
  c.At(kT0 + 366 * D);  // the sale left the 12-month window
  EXPECT_EQ(c.v().grade(), v1::VALUE_GRADE_C);
  EXPECT_EQ(c.v().spend_12m_minor(), 0);
  EXPECT_EQ(c.v().spend_prev_12m_minor(), 25000000);
  EXPECT_EQ(c.v().rfm().recency(), 1);
}

TEST(ErasureTest, PersonalFieldsAreRemovedAndStayRemoved) {
  Customer c;
  v1::Event reg = Registered("e1", "c", kT0, "east");
  reg.mutable_customer_registered()->mutable_profile()->set_phone("13800000000");
  reg.mutable_customer_registered()->mutable_profile()->set_email("a@b.c");
  c.Do(reg);
  c.Do(Erase("e2", "c", kT0 + D));
  EXPECT_TRUE(c.v().erased());
  EXPECT_FALSE(c.v().profile().has_name());
  EXPECT_FALSE(c.v().profile().has_phone());
  EXPECT_FALSE(c.v().profile().has_email());
  EXPECT_EQ(c.v().profile().region(), "east") << "non-personal fields stay for the aggregates";
  v1::Event up = Registered("e3", "c", kT0 + 2 * D);
  c.Do(up);
  EXPECT_FALSE(c.v().profile().has_name());
}

TEST(FoldTest, DuplicateEventIdIsAppliedOnceAndWindowIsBounded) {
  Customer c;
  c.Do(Purchase("e1", "c", kT0, 1000));
  EXPECT_EQ(c.Do(Purchase("e1", "c", kT0, 1000)), FoldResult::kDuplicate);
  EXPECT_EQ(c.v().activity().total_spend_minor(), 1000);
  c.config().dedup_window = 4;
  for (int i = 0; i < 10; ++i) c.Do(Purchase("x" + std::to_string(i), "c", kT0 + i, 1));
  EXPECT_EQ(c.record().recent_events.size(), 4u);
}

TEST(FoldTest, ViewRecordsConfigVersionEvaluationTimeAndNextDeadline) {
  DomainConfig cfg;
  cfg.version = "test-7";
  Customer c(cfg);
  c.Do(Purchase("e1", "c", kT0, 1000));
  EXPECT_EQ(c.v().config_version(), "test-7");
  EXPECT_EQ(c.v().evaluated_at().seconds(), kT0);
  EXPECT_GT(c.v().next_deadline().seconds(), kT0);
  EXPECT_EQ(c.record().next_deadline, c.v().next_deadline().seconds());
}

TEST(AlertIdTest, DeterministicAndDistinct) {
  const std::string a = AlertId("c1", v1::ALERT_KIND_CHURNED, 42, "");
  EXPECT_EQ(a, AlertId("c1", v1::ALERT_KIND_CHURNED, 42, ""));
  EXPECT_NE(a, AlertId("c1", v1::ALERT_KIND_CHURNED, 43, ""));
  EXPECT_NE(a, AlertId("c2", v1::ALERT_KIND_CHURNED, 42, ""));
  EXPECT_NE(a, AlertId("c1", v1::ALERT_KIND_CHURN_RISK, 42, ""));
  EXPECT_EQ(a.size(), 19u);
  // The ids stored alerts and clients know: FNV-1a over id, kind, offset, discriminator.
  EXPECT_EQ(a, "al-2926ecf03eb57878");
  EXPECT_EQ(AlertId("c1", v1::ALERT_KIND_CHURNED, -7, "x"), "al-758ed82c392c0128");
}

TEST(EpochDayTest, FloorsNegativeTimes) {
  EXPECT_EQ(EpochDay(int64_t{-1}), -1);
  EXPECT_EQ(EpochDay(int64_t{86399}), 0);
  EXPECT_EQ(EpochDay(int64_t{86400}), 1);
}

}  // namespace
}  // namespace lifecycle::projections
