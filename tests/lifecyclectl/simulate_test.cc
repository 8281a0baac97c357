#include "services/lifecyclectl/simulate.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

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

}  // namespace
}  // namespace lifecycle::sim
