#include "projections/fold.h"

#include <gtest/gtest.h>

#include "tests/projections/test_events.h"

namespace lifecycle::projections {
namespace {

using namespace lifecycle::testing;  // NOLINT
using v1::CustomerState;

class FoldTest : public ::testing::Test {
 protected:
  FoldResult Apply(const v1::Event& e) { return FoldEvent(options_, 3, ++offset_, e, &state_); }
  const v1::CustomerView& view() const { return state_.view(); }

  FoldOptions options_;
  CustomerState state_;
  int64_t offset_ = 0;
};

TEST_F(FoldTest, RegisteredCustomerIsProspectWithProfile) {
  EXPECT_EQ(Apply(Registered("e1", "c1", kT0, "north")), FoldResult::kApplied);
  EXPECT_EQ(view().customer_id(), "c1");
  EXPECT_EQ(view().stage(), v1::STAGE_PROSPECT);
  EXPECT_EQ(view().profile().region(), "north");
  EXPECT_EQ(view().activity().event_count(), 1);
  EXPECT_EQ(view().activity().activity_days(), 0);
  EXPECT_EQ(view().partition(), 3);
  EXPECT_EQ(view().last_offset(), 1);
  ASSERT_EQ(view().transitions_size(), 1);
  EXPECT_EQ(view().transitions(0).from(), v1::STAGE_UNSPECIFIED);
  EXPECT_EQ(view().transitions(0).to(), v1::STAGE_PROSPECT);
}

TEST_F(FoldTest, FirstPurchaseMakesNewThenActiveAfterWindow) {
  Apply(Registered("e1", "c1", kT0));
  Apply(Purchase("e2", "c1", kT0 + 10 * kDay, 250000));
  EXPECT_EQ(view().stage(), v1::STAGE_NEW);
  EXPECT_EQ(view().stage_since().seconds(), kT0 + 10 * kDay);
  Apply(Service("e3", "c1", kT0 + 99 * kDay, 30000));  // 89 days after the first activity
  EXPECT_EQ(view().stage(), v1::STAGE_NEW);
  Apply(Service("e4", "c1", kT0 + 100 * kDay, 20000));  // 90 days: past the window
  EXPECT_EQ(view().stage(), v1::STAGE_ACTIVE);
  ASSERT_EQ(view().transitions_size(), 3);
  EXPECT_EQ(view().transitions(1).from(), v1::STAGE_PROSPECT);
  EXPECT_EQ(view().transitions(1).to(), v1::STAGE_NEW);
  EXPECT_EQ(view().transitions(2).to(), v1::STAGE_ACTIVE);
  EXPECT_EQ(view().transitions(2).at().seconds(), kT0 + 100 * kDay);
  EXPECT_EQ(view().transitions(2).offset(), 4);
  EXPECT_FALSE(view().transitions(2).reason().empty());
}

TEST_F(FoldTest, SpendAndActivityDaysAndFirstLast) {
  Apply(Purchase("e1", "c1", kT0 + 5 * kDay + 100, 1000));
  Apply(Service("e2", "c1", kT0 + 5 * kDay + 5000, 500));  // same day: one activity day
  Apply(Service("e3", "c1", kT0 + 2 * kDay, 700));         // earlier, out of order
  Apply(Refund("e4", "c1", kT0 + 6 * kDay, 300));
  const auto& a = view().activity();
  EXPECT_EQ(a.total_spend_minor(), 1000 + 500 + 700 - 300);
  EXPECT_EQ(a.currency(), "CNY");
  EXPECT_EQ(a.activity_days(), 2);
  EXPECT_EQ(a.first_activity().seconds(), kT0 + 2 * kDay);
  EXPECT_EQ(a.last_activity().seconds(), kT0 + 5 * kDay + 5000);
  EXPECT_EQ(a.purchases(), 1);
  EXPECT_EQ(a.service_visits(), 2);
  EXPECT_EQ(a.event_count(), 4);
  ASSERT_EQ(state_.activity_days_size(), 2);
  EXPECT_LT(state_.activity_days(0), state_.activity_days(1));
}

TEST_F(FoldTest, DuplicateEventIdIsAppliedOnce) {
  Apply(Purchase("e1", "c1", kT0, 1000));
  EXPECT_EQ(Apply(Purchase("e1", "c1", kT0, 1000)), FoldResult::kDuplicate);
  EXPECT_EQ(view().activity().total_spend_minor(), 1000);
  EXPECT_EQ(view().activity().event_count(), 1);
}

TEST_F(FoldTest, DedupWindowIsBounded) {
  options_.dedup_window = 4;
  for (int i = 0; i < 10; ++i) Apply(Purchase("e" + std::to_string(i), "c1", kT0 + i, 1));
  EXPECT_EQ(state_.recent_event_ids_size(), 4);
  EXPECT_EQ(state_.recent_event_ids(3), "e9");
}

TEST_F(FoldTest, ProfileUpdateMergesOnlyPresentFields) {
  Apply(Registered("e1", "c1", kT0, "east"));
  v1::Event up;
  up.set_event_id("e2");
  up.set_customer_id("c1");
  up.mutable_occurred_at()->set_seconds(kT0 + 1);
  up.mutable_profile_updated()->mutable_profile()->set_phone("555");
  Apply(up);
  EXPECT_EQ(view().profile().region(), "east");
  EXPECT_EQ(view().profile().phone(), "555");
}

TEST_F(FoldTest, SameLogGivesByteIdenticalState) {
  CustomerState other;
  const std::vector<v1::Event> log = {Registered("e1", "c1", kT0), Purchase("e2", "c1", kT0 + 1, 5),
                                      Service("e3", "c1", kT0 + 200 * kDay, 7)};
  for (size_t i = 0; i < log.size(); ++i) {
    FoldEvent(options_, 1, i, log[i], &state_);
    FoldEvent(options_, 1, i, log[i], &other);
  }
  EXPECT_EQ(state_.SerializeAsString(), other.SerializeAsString());
}

TEST(EpochDayTest, FloorsNegativeTimes) {
  google::protobuf::Timestamp t;
  t.set_seconds(-1);
  EXPECT_EQ(EpochDay(t), -1);
  t.set_seconds(86399);
  EXPECT_EQ(EpochDay(t), 0);
  t.set_seconds(86400);
  EXPECT_EQ(EpochDay(t), 1);
}

}  // namespace
}  // namespace lifecycle::projections
