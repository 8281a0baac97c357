// A dealership customer's three years, from the seeds' base-customer practice:
// a prospect who first buys elsewhere on price, comes back and buys, gets the 3- and
// 7-day callbacks (one missed), services on time then late, leaves a complaint open,
// answers a survey, refers a friend, has the car serviced at another garage, goes
// silent, and is won back; greeted on the holidays and the birthday (two greetings
// done, two missed). Beside Wang, an annual-service customer of another advisor, who
// is not churned by a gap of a little more than a year. Published to the real broker
// with clock ticks, projected by lifecycled, read back over gRPC — also as Wang's
// advisor sees it.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <google/protobuf/util/time_util.h>

#include <algorithm>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "tests/integration/harness.h"
#include "tests/projections/test_events.h"

namespace lifecycle::testing {
namespace {

constexpr int64_t kD0 = 1677664800;  // 2023-03-01T10:00:00Z
int64_t Day(int d) { return kD0 + d * kDay; }
int DayOf(const google::protobuf::Timestamp& t) { return static_cast<int>((t.seconds() - kD0) / kDay); }

const char* kWang = "WANG-001";
const char* kLi = "LI-002";

v1::Event Visit(const std::string& id, int day, v1::ServiceKind kind, int64_t amount,
                bool on_schedule, v1::WarrantyStatus warranty) {
  v1::Event e = Service(id, kWang, Day(day), amount, on_schedule);
  e.mutable_service_visit()->set_kind(kind);
  e.mutable_service_visit()->set_warranty_status(warranty);
  return e;
}

std::vector<v1::Event> ThreeYears() {
  std::vector<v1::Event> log;
  v1::Event reg = Registered("s01", kWang, Day(0), "east");
  auto* p = reg.mutable_customer_registered()->mutable_profile();
  p->set_name("Wang Wei");
  p->set_industry("logistics");
  p->set_age_band(v1::AGE_BAND_35_44);
  p->set_advisor_id("adv-07");
  p->set_birthday("1985-11-20");
  log.push_back(reg);
  log.push_back(Lead("s02", kWang, Day(2)));
  log.push_back(Lost("s03", kWang, Day(10), v1::DEAL_LOST_REASON_PRICE, "Other Motors"));
  // The lost prospect is re-contacted on the tasks the lost deal made (+30, +90 days):
  // the second call brings a new inquiry, and the car is bought (recovered).
  log.push_back(Contact("s03a", kWang, Day(40), v1::FOLLOW_UP_KIND_LOST_DEAL_RECONTACT_1));
  log.push_back(Contact("s03b", kWang, Day(100) - 3600, v1::FOLLOW_UP_KIND_LOST_DEAL_RECONTACT_2));
  log.push_back(Lead("s04", kWang, Day(100)));
  log.push_back(VehicleSale("s05", kWang, Day(110), 18000000, "O-1"));  // 180,000.00
  log.push_back(Contact("s06", kWang, Day(113), v1::FOLLOW_UP_KIND_CALLBACK_3_DAY));
  log.push_back(Tick("t119", Day(119)));  // the 7-day callback was missed
  log.push_back(Survey("s07", kWang, Day(120), 9));
  log.push_back(Visit("s08", 190, v1::SERVICE_KIND_FIRST_MAINTENANCE, 80000, true,
                      v1::WARRANTY_STATUS_FIRST_SERVICE));
  log.push_back(Contact("s09", kWang, Day(192), v1::FOLLOW_UP_KIND_SURVEY_CALLBACK));
  log.push_back(Tick("t200", Day(200)));
  log.push_back(Visit("s10", 370, v1::SERVICE_KIND_MAINTENANCE, 120000, true,
                      v1::WARRANTY_STATUS_IN_WARRANTY));
  log.push_back(Contact("s11", kWang, Day(372), v1::FOLLOW_UP_KIND_SURVEY_CALLBACK));
  log.push_back(Referred("s12", kWang, Day(400), true));
  log.push_back(Tick("t445", Day(445)));
  log.push_back(Tick("t475", Day(475)));
  log.push_back(Tick("t580", Day(580)));
  log.push_back(Visit("s13", 600, v1::SERVICE_KIND_MAINTENANCE, 150000, false,
                      v1::WARRANTY_STATUS_OUT_OF_WARRANTY));
  v1::Event complaint = ComplaintOpened("s14", kWang, Day(601), "K-1");
  complaint.mutable_complaint()->set_severity(v1::COMPLAINT_SEVERITY_HIGH);
  log.push_back(complaint);
  log.push_back(Tick("t610", Day(610)));
  // Serviced at another garage (定点维修 lost): not activity, but maintenance is done.
  v1::Event elsewhere = Visit("s14a", 700, v1::SERVICE_KIND_MAINTENANCE, 70000, true,
                              v1::WARRANTY_STATUS_OUT_OF_WARRANTY);
  elsewhere.mutable_service_visit()->set_other_garage(true);
  log.push_back(elsewhere);
  log.push_back(Tick("t810", Day(810)));
  log.push_back(Tick("t935", Day(935)));
  log.push_back(Tick("t965", Day(965)));
  log.push_back(ComplaintClosed("s15", kWang, Day(990), "K-1", /*satisfied=*/false));
  // Greetings (deploy/config/domain.toml: 01-01, 05-01, 10-01 and the birthday): the
  // birthday (2025-11-20, day 995) and New Year 2026 (day 1037) are done; 2025-05-01
  // and 2025-10-01 are missed.
  log.push_back(Contact("s15a", kWang, Day(995), v1::FOLLOW_UP_KIND_BIRTHDAY_GREETING));
  log.push_back(Visit("s16", 1000, v1::SERVICE_KIND_MAINTENANCE, 90000, false,
                      v1::WARRANTY_STATUS_OUT_OF_WARRANTY));
  v1::Event callback = Contact("s17", kWang, Day(1002), v1::FOLLOW_UP_KIND_SURVEY_CALLBACK);
  callback.mutable_follow_up_contact()->set_origin_id("v-s16");  // this visit's, not day 602's
  log.push_back(callback);
  log.push_back(Campaign("s18", kWang, Day(1010)));
  log.push_back(Contact("s18a", kWang, Day(1037), v1::FOLLOW_UP_KIND_HOLIDAY_GREETING));
  log.push_back(Tick("t1091", Day(1091)));  // past the 90 days of WON_BACK (strict)

  // Li services once a year: 350 days, then 370 (more than churn_days' 365, but less
  // than twice the cadence he has shown).
  v1::Event li = Registered("l01", kLi, Day(30), "west");
  li.mutable_customer_registered()->mutable_profile()->set_advisor_id("adv-03");
  log.push_back(li);
  log.push_back(VehicleSale("l02", kLi, Day(50), 15000000, "O-LI"));
  log.push_back(Service("l03", kLi, Day(400), 60000));
  log.push_back(Service("l04", kLi, Day(770), 65000));
  std::stable_sort(log.begin(), log.end(), [](const v1::Event& a, const v1::Event& b) {
    return a.occurred_at().seconds() < b.occurred_at().seconds();
  });
  return log;
}

TEST(ScenarioTest, ADealershipCustomersThreeYears) {
  TempDir dir;
  const std::string topic = UniqueName("scenario-events");
  DaemonProcess d(dir.path(), OnePartitionDaemonArgs(dir.path(), topic, UniqueName("scenario")));
  ASSERT_TRUE(d.Start().ok()) << d.LogTail();
  std::vector<std::pair<std::string, std::string>> records;
  for (const auto& e : ThreeYears()) records.emplace_back(e.customer_id(), e.SerializeAsString());
  ASSERT_TRUE(ProduceAll(topic, records).ok());
  ASSERT_TRUE(WaitForStoredRecords(d.address(), records.size(), 60).ok()) << d.LogTail();

  auto stub = v1::CustomerService::NewStub(
      grpc::CreateChannel(d.address(), grpc::InsecureChannelCredentials()));
  v1::GetHistoryResponse history;
  v1::GetCustomerResponse customer;
  {
    grpc::ClientContext ctx;
    v1::GetHistoryRequest req;
    req.set_customer_id(kWang);
    ASSERT_TRUE(stub->GetHistory(&ctx, req, &history).ok());
  }
  {
    grpc::ClientContext ctx;
    v1::GetCustomerRequest req;
    req.set_customer_id(kWang);
    ASSERT_TRUE(stub->GetCustomer(&ctx, req, &customer).ok());
  }

  // The stage timeline: (day, from, to).
  struct Step {
    int day;
    v1::Stage from, to;
  };
  const std::vector<Step> expected_stages = {
      {0, v1::STAGE_UNSPECIFIED, v1::STAGE_PROSPECT},
      {10, v1::STAGE_PROSPECT, v1::STAGE_LOST_PROSPECT},   // lost on price
      {100, v1::STAGE_LOST_PROSPECT, v1::STAGE_PROSPECT},  // a new lead
      {110, v1::STAGE_PROSPECT, v1::STAGE_NEW},            // buys the car
      {200, v1::STAGE_NEW, v1::STAGE_ACTIVE},              // 90 days on
      {580, v1::STAGE_ACTIVE, v1::STAGE_AT_RISK},          // maintenance 30 days overdue
      {600, v1::STAGE_AT_RISK, v1::STAGE_ACTIVE},          // comes in, late
      {608, v1::STAGE_ACTIVE, v1::STAGE_AT_RISK},          // complaint open past 7 days
      {965, v1::STAGE_AT_RISK, v1::STAGE_CHURNED},         // 365 days without a visit
      {1000, v1::STAGE_CHURNED, v1::STAGE_WON_BACK},       // back for a service
      {1090, v1::STAGE_WON_BACK, v1::STAGE_ACTIVE},        // 90 days after the win-back
  };
  ASSERT_EQ(history.transitions_size(), static_cast<int>(expected_stages.size()))
      << history.DebugString();
  for (size_t i = 0; i < expected_stages.size(); ++i) {
    const auto& t = history.transitions(i);
    EXPECT_EQ(DayOf(t.at()), expected_stages[i].day) << "transition " << i;
    EXPECT_EQ(t.from(), expected_stages[i].from) << "transition " << i;
    EXPECT_EQ(t.to(), expected_stages[i].to) << "transition " << i;
    EXPECT_FALSE(t.reason().empty());
  }
  EXPECT_EQ(history.transitions(5).reason(), "maintenance overdue by 30 days");
  EXPECT_EQ(history.transitions(7).reason(), "complaint K-1 unresolved past the SLA");
  EXPECT_EQ(history.transitions(8).reason(), "no purchase or service for 365 days");

  // The alerts: (day, kind), in order. A deadline's alert carries the deadline's
  // instant, whichever later event or tick made the fold notice it.
  const std::vector<std::pair<int, v1::AlertKind>> expected_alerts = {
      {10, v1::ALERT_KIND_DEAL_LOST},
      {119, v1::ALERT_KIND_FOLLOWUP_OVERDUE},      // the missed 7-day callback
      {445, v1::ALERT_KIND_TIER_DOWNGRADE_RISK},   // PLATINUM from the sale leaves the 12
                                                   // months once its day is older than 365
                                                   // days (day 475.58, 00:00 UTC): 30 days
                                                   // before (day 445.58)
      {580, v1::ALERT_KIND_MAINTENANCE_OVERDUE},   // due day 550, 30 days' grace
      {604, v1::ALERT_KIND_FOLLOWUP_OVERDUE},      // satisfaction callback due day 602, 2 days' grace
      {608, v1::ALERT_KIND_COMPLAINT_UNRESOLVED},  // K-1, opened day 601, 7 days' SLA
      {700, v1::ALERT_KIND_SERVICE_LEAKAGE},       // serviced at another garage
      {847, v1::ALERT_KIND_CHURN_RISK},            // P(alive) below at_risk_p 0.85: the
                                                   // warning, 118 days before CHURNED
      {910, v1::ALERT_KIND_MAINTENANCE_OVERDUE},   // due day 880: 180 days after the visit
                                                   // elsewhere (day 780 without it)
      {935, v1::ALERT_KIND_TIER_DOWNGRADE_RISK},   // SILVER leaves on day 965.58 (935.58)
      {965, v1::ALERT_KIND_CHURNED},
  };
  ASSERT_EQ(history.alerts_size(), static_cast<int>(expected_alerts.size())) << history.DebugString();
  std::set<std::string> ids;
  for (size_t i = 0; i < expected_alerts.size(); ++i) {
    const auto& a = history.alerts(i);
    EXPECT_EQ(DayOf(a.at()), expected_alerts[i].first) << "alert " << i;
    EXPECT_EQ(a.kind(), expected_alerts[i].second) << "alert " << i;
    EXPECT_FALSE(a.reasons().empty());
    EXPECT_FALSE(a.suggested_action().empty());
    ids.insert(a.alert_id());
  }
  EXPECT_EQ(ids.size(), expected_alerts.size()) << "alert ids are distinct";
  EXPECT_EQ(history.alerts(0).reasons(0), "deal lost on price");
  EXPECT_EQ(history.alerts(1).reasons(0), "7-day callback after the sale is 2 days overdue");
  // PLATINUM needs 20,000; once the sale's 180,000 expire, 800 + 1,200 remain.
  EXPECT_EQ(history.alerts(2).reasons(0), "PLATINUM drops in 30 days");
  EXPECT_EQ(history.alerts(2).reasons(1), "18000 more points keep it");
  EXPECT_EQ(history.alerts(10).severity(), v1::SEVERITY_CRITICAL);
  EXPECT_EQ(history.alerts(6).reasons(0),
            "serviced at another garage; last service here 100 days ago");
  // After the visit elsewhere: satisfaction 1 (K-1 open), maintenance 1 (2 of 4 visits
  // on schedule), advocacy 2.
  EXPECT_EQ(history.alerts(6).loyalty(), 4) << "loyalty after the visit elsewhere";
  for (const auto& a : history.alerts()) EXPECT_EQ(a.advisor_id(), "adv-07");
  EXPECT_NEAR(history.alerts(7).p_alive(), 0.85, 1e-6) << "raised at the crossing";
  EXPECT_EQ(history.alerts(5).kind(), v1::ALERT_KIND_COMPLAINT_UNRESOLVED);
  EXPECT_EQ(history.alerts(5).loyalty(), 5) << "loyalty at the moment of the complaint alert";

  // Where Wang stands at the end (day 1091).
  const v1::CustomerView& v = customer.customer();
  EXPECT_EQ(v.stage(), v1::STAGE_ACTIVE);
  EXPECT_EQ(v.config_version(), "2026-11-26.5");
  EXPECT_EQ(v.loyalty().satisfaction(), 2);          // latest survey 9, no open complaint
  EXPECT_EQ(v.loyalty().regular_maintenance(), 1);   // 1 of 3 visits on time in 24 months
  EXPECT_EQ(v.loyalty().event_participation(), 1);   // one campaign
  EXPECT_EQ(v.loyalty().advocacy(), 2);              // one converted referral
  EXPECT_EQ(v.loyalty().total(), 6);
  EXPECT_EQ(v.activity().activity_days(), 5);
  EXPECT_EQ(v.activity().total_spend_minor(), 18000000 + 80000 + 120000 + 150000 + 90000);
  // Grade C: 900.00 in the last 12 months against 2,700.00 in the 12 before (no growth).
  EXPECT_EQ(v.grade(), v1::VALUE_GRADE_C);
  EXPECT_EQ(v.spend_12m_minor(), 90000);
  EXPECT_EQ(v.spend_prev_12m_minor(), 270000);
  EXPECT_EQ(v.spend_prev2_12m_minor(), 18000000 + 80000) << "the sale and the first service";
  EXPECT_EQ(v.points().tier(), v1::TIER_BRONZE);
  EXPECT_EQ(v.lost_deals_size(), 1);
  int recontacts_done = 0;
  for (const auto& t : v.follow_ups()) {
    if (t.kind() == v1::FOLLOW_UP_KIND_LOST_DEAL_RECONTACT_1 ||
        t.kind() == v1::FOLLOW_UP_KIND_LOST_DEAL_RECONTACT_2) {
      recontacts_done += t.status() == v1::TASK_STATUS_DONE;
    }
  }
  EXPECT_EQ(recontacts_done, 2) << "the lost prospect was re-contacted twice";
  // The greetings of the last 365 days, as of day 1091.
  std::vector<std::tuple<std::string, v1::FollowUpKind, v1::TaskStatus>> greetings;
  for (const auto& t : v.follow_ups()) {
    if (t.kind() != v1::FOLLOW_UP_KIND_BIRTHDAY_GREETING &&
        t.kind() != v1::FOLLOW_UP_KIND_HOLIDAY_GREETING) {
      continue;
    }
    greetings.emplace_back(google::protobuf::util::TimeUtil::ToString(t.due_at()), t.kind(),
                           t.status());
  }
  const std::vector<std::tuple<std::string, v1::FollowUpKind, v1::TaskStatus>> want_greetings = {
      {"2025-05-01T00:00:00Z", v1::FOLLOW_UP_KIND_HOLIDAY_GREETING, v1::TASK_STATUS_MISSED},
      {"2025-10-01T00:00:00Z", v1::FOLLOW_UP_KIND_HOLIDAY_GREETING, v1::TASK_STATUS_MISSED},
      {"2025-11-20T00:00:00Z", v1::FOLLOW_UP_KIND_BIRTHDAY_GREETING, v1::TASK_STATUS_DONE},
      {"2026-01-01T00:00:00Z", v1::FOLLOW_UP_KIND_HOLIDAY_GREETING, v1::TASK_STATUS_DONE},
  };
  EXPECT_EQ(greetings, want_greetings);
  EXPECT_EQ(v.complaints_size(), 1);
  EXPECT_TRUE(v.complaints(0).has_resolved_at());
  EXPECT_EQ(v.profile().name(), "Wang Wei");
  EXPECT_EQ(DayOf(customer.freshness().partitions(0).stream_time()), 1091);

  // The lost prospect who bought after all: counted lost once, and recovered.
  {
    grpc::ClientContext ctx;
    v1::GetSummaryRequest req;
    req.set_group_by(v1::DIMENSION_LOST_PROSPECTS);
    v1::GetSummaryResponse summary;
    ASSERT_TRUE(stub->GetSummary(&ctx, req, &summary).ok());
    ASSERT_EQ(summary.dimensions_size(), 1);
    std::map<std::string, int64_t> by;
    for (const auto& c : summary.dimensions(0).counts()) by[c.key()] = c.customers();
    EXPECT_EQ(by["lost"], 1);
    EXPECT_EQ(by["recovered"], 1);
  }

  // Li, the annual-service customer: never CHURNED.
  {
    grpc::ClientContext ctx;
    v1::GetHistoryRequest req;
    req.set_customer_id(kLi);
    v1::GetHistoryResponse li;
    ASSERT_TRUE(stub->GetHistory(&ctx, req, &li).ok());
    ASSERT_FALSE(li.transitions().empty());
    for (const auto& t : li.transitions()) {
      EXPECT_NE(t.to(), v1::STAGE_CHURNED) << "day " << DayOf(t.at());
    }
    for (const auto& a : li.alerts()) {
      EXPECT_NE(a.kind(), v1::ALERT_KIND_CHURNED);
      EXPECT_EQ(a.advisor_id(), "adv-03");
    }
  }

  // As Wang's advisor sees it: their customers, summary and alerts only.
  {
    grpc::ClientContext ctx;
    v1::ListCustomersRequest req;
    req.set_advisor_id("adv-07");
    v1::ListCustomersResponse list;
    ASSERT_TRUE(stub->ListCustomers(&ctx, req, &list).ok());
    ASSERT_EQ(list.customers_size(), 1);
    EXPECT_EQ(list.customers(0).customer_id(), kWang);
  }
  {
    grpc::ClientContext ctx;
    v1::ListCustomersRequest req;
    req.set_advisor_id("adv-07");
    req.set_order_by(v1::CUSTOMER_ORDER_EXPECTED_VALUE);
    v1::ListCustomersResponse list;
    ASSERT_TRUE(stub->ListCustomers(&ctx, req, &list).ok());
    ASSERT_EQ(list.customers_size(), 1) << "ranked, the advisor's only";
  }
  {
    grpc::ClientContext ctx;
    v1::GetSummaryRequest req;
    req.set_advisor_id("adv-07");
    req.set_group_by(v1::DIMENSION_ALERT_KIND);
    v1::GetSummaryResponse summary;
    ASSERT_TRUE(stub->GetSummary(&ctx, req, &summary).ok());
    EXPECT_EQ(summary.customers(), 1);
    int64_t alerts = 0;
    for (const auto& c : summary.dimensions(0).counts()) alerts += c.customers();
    EXPECT_EQ(alerts, static_cast<int64_t>(expected_alerts.size()));
    grpc::ClientContext all_ctx;
    req.clear_advisor_id();
    ASSERT_TRUE(stub->GetSummary(&all_ctx, req, &summary).ok());
    EXPECT_EQ(summary.customers(), 2);
  }
  {
    auto alerts = v1::AlertService::NewStub(
        grpc::CreateChannel(d.address(), grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    v1::ListAlertsRequest req;
    req.set_advisor_id("adv-07");
    req.set_page_size(100);
    v1::ListAlertsResponse page;
    ASSERT_TRUE(alerts->ListAlerts(&ctx, req, &page).ok());
    EXPECT_EQ(page.alerts_size(), static_cast<int>(expected_alerts.size()));
    for (const auto& a : page.alerts()) EXPECT_EQ(a.customer_id(), kWang);
  }

  d.Signal(SIGTERM);
  d.Wait();
}

}  // namespace
}  // namespace lifecycle::testing
