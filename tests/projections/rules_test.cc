#include "projections/rules.h"

#include <gtest/gtest.h>

#include <cmath>

namespace lifecycle::projections::rules {
namespace {

namespace v1 = lifecycle::v1;

TEST(PAliveTest, MatchesTheMbgNbdFormula) {
  DomainConfig c;
  c.r = 0.6, c.alpha = 45, c.a = 0.4, c.b = 2.5;
  // x = 3, t_x = 300, T = 500: 1 / (1 + 0.4/5.5 * (545/345)^3.6)
  const double expected = 1.0 / (1.0 + (0.4 / 5.5) * std::pow(545.0 / 345.0, 3.6));
  EXPECT_NEAR(PAlive(c, 3, 300, 500), expected, 1e-12);
  // Right after the last activity it is at its highest and decays with time.
  EXPECT_GT(PAlive(c, 3, 300, 300), PAlive(c, 3, 300, 400));
  EXPECT_GT(PAlive(c, 3, 300, 400), PAlive(c, 3, 300, 800));
  // One-time buyers decay too (the "modified" part).
  EXPECT_GT(PAlive(c, 0, 0, 0), PAlive(c, 0, 0, 1000));
}

TEST(PAliveTest, CrossingTimeIsWherePAliveEqualsTheta) {
  DomainConfig c;
  for (int64_t x : {0, 1, 4, 12}) {
    for (double theta : {0.5, 0.15}) {
      const double t_x = 30.0 * x;
      const double T = CrossingDays(c, x, t_x, theta);
      EXPECT_NEAR(PAlive(c, x, t_x, T), theta, 1e-9) << "x=" << x << " theta=" << theta;
      EXPECT_GT(PAlive(c, x, t_x, T - 0.01), theta);
      EXPECT_LT(PAlive(c, x, t_x, T + 0.01), theta);
    }
  }
}

TEST(LoyaltyTest, FourPartsWithCapsAndComplaintPenalty) {
  DomainConfig c;
  LoyaltyInputs in;
  in.has_survey = true;
  in.latest_survey = 9;
  in.services_24m = 10;
  in.on_schedule_24m = 9;
  in.campaigns_12m = 5;
  in.referrals_converted_24m = 1;
  in.referrals_other_24m = 3;
  v1::LoyaltyScore s = Loyalty(c, in);
  EXPECT_EQ(s.satisfaction(), 2);
  EXPECT_EQ(s.regular_maintenance(), 3);
  EXPECT_EQ(s.event_participation(), 2);  // capped
  EXPECT_EQ(s.advocacy(), 3);             // 2 + 3 capped at 3
  EXPECT_EQ(s.total(), 10);

  in.latest_survey = 7;
  in.unresolved_complaints = 1;
  in.on_schedule_24m = 6;  // 0.6
  in.campaigns_12m = 1;
  in.referrals_converted_24m = 0;
  in.referrals_other_24m = 1;
  s = Loyalty(c, in);
  EXPECT_EQ(s.satisfaction(), 0);  // 1 − 1
  EXPECT_EQ(s.regular_maintenance(), 2);
  EXPECT_EQ(s.event_participation(), 1);
  EXPECT_EQ(s.advocacy(), 1);
  EXPECT_EQ(s.total(), 4);

  in = LoyaltyInputs();
  in.services_24m = 4;
  in.on_schedule_24m = 1;
  EXPECT_EQ(Loyalty(c, in).regular_maintenance(), 1);
  in.on_schedule_24m = 0;
  EXPECT_EQ(Loyalty(c, in).regular_maintenance(), 0);
  EXPECT_EQ(Loyalty(c, LoyaltyInputs()).total(), 0);
}

TEST(GradeTest, ABCAndClasses) {
  DomainConfig c;
  c.grade_a_spend_minor = 1000;
  EXPECT_EQ(Grade(c, false, 0, 0, 0, 10), v1::VALUE_GRADE_UNSPECIFIED);
  EXPECT_EQ(Grade(c, true, 1000, 0, 0, 0), v1::VALUE_GRADE_A);
  // B: two years of >= 10% growth from a year with spend (DOMAIN.md, seed 003).
  EXPECT_EQ(Grade(c, true, 605, 550, 500, 6), v1::VALUE_GRADE_B);  // +10%, +10%, loyalty 6
  EXPECT_EQ(Grade(c, true, 604, 550, 500, 6), v1::VALUE_GRADE_C);  // this year +9.8%
  EXPECT_EQ(Grade(c, true, 700, 549, 500, 6), v1::VALUE_GRADE_C);  // last year +9.8%
  EXPECT_EQ(Grade(c, true, 605, 550, 500, 5), v1::VALUE_GRADE_C);  // loyalty too low
  EXPECT_EQ(Grade(c, true, 605, 550, 0, 7), v1::VALUE_GRADE_C);    // from nothing: not growth
  EXPECT_EQ(Grade(c, true, 300, 0, 0, 7), v1::VALUE_GRADE_C);
  EXPECT_EQ(Grade(c, true, 0, 0, 0, 7), v1::VALUE_GRADE_C);
  EXPECT_EQ(ClassOf(v1::VALUE_GRADE_A), v1::VALUE_CLASS_VIP);
  EXPECT_EQ(ClassOf(v1::VALUE_GRADE_B), v1::VALUE_CLASS_REGULAR);
  EXPECT_EQ(ClassOf(v1::VALUE_GRADE_C), v1::VALUE_CLASS_REGULAR);
  EXPECT_EQ(ClassOf(v1::VALUE_GRADE_UNSPECIFIED), v1::VALUE_CLASS_POTENTIAL);
}

TEST(RfmTest, ScoresFromCutsAndSegments) {
  DomainConfig c;  // R cuts 365/180/90/30 days, F 2/3/4/6, M 1k/5k/20k/100k
  v1::Rfm r = RfmOf(c, 10, 6, 20000000);
  EXPECT_EQ(r.score(), "555");
  EXPECT_EQ(r.segment(), "Champions");
  EXPECT_EQ(RfmOf(c, 30, 1, 0).recency(), 5);
  EXPECT_EQ(RfmOf(c, 31, 1, 0).recency(), 4);
  EXPECT_EQ(RfmOf(c, 366, 1, 0).recency(), 1);
  EXPECT_EQ(RfmOf(c, 10, 1, 50000).segment(), "New");
  EXPECT_EQ(RfmOf(c, 60, 1, 50000).segment(), "Promising");
  EXPECT_EQ(RfmOf(c, 60, 3, 50000).segment(), "Potential Loyalist");
  EXPECT_EQ(RfmOf(c, 120, 4, 50000).segment(), "Loyal");
  EXPECT_EQ(RfmOf(c, 120, 3, 50000).segment(), "Need Attention");
  EXPECT_EQ(RfmOf(c, 120, 1, 50000).segment(), "About to Sleep");
  EXPECT_EQ(RfmOf(c, 300, 6, 20000000).segment(), "Can't Lose");
  EXPECT_EQ(RfmOf(c, 300, 3, 50000).segment(), "At Risk");
  EXPECT_EQ(RfmOf(c, 300, 1, 50000).segment(), "Hibernating");
  EXPECT_EQ(RfmOf(c, 400, 1, 50000).segment(), "Lost");
}

// DOMAIN.md's RFM grid, cell by cell (rows R 5..1, columns F 1..5); M plays no part.
TEST(RfmTest, SegmentsFollowTheGridOfDomainMd) {
  const char* grid[5][5] = {
      {"New", "Potential Loyalist", "Potential Loyalist", "Champions", "Champions"},
      {"Promising", "Potential Loyalist", "Potential Loyalist", "Loyal", "Loyal"},
      {"About to Sleep", "About to Sleep", "Need Attention", "Loyal", "Loyal"},
      {"Hibernating", "Hibernating", "At Risk", "At Risk", "Can't Lose"},
      {"Lost", "Hibernating", "At Risk", "At Risk", "Can't Lose"},
  };
  for (int row = 0; row < 5; ++row) {
    for (int f = 1; f <= 5; ++f) {
      for (int m = 1; m <= 5; ++m) {
        EXPECT_STREQ(RfmSegmentName(5 - row, f, m), grid[row][f - 1])
            << "R" << 5 - row << " F" << f << " M" << m;
      }
    }
  }
}

TEST(TierTest, ThresholdsAndPoints) {
  DomainConfig c;
  EXPECT_EQ(TierOf(c, 0), v1::TIER_BRONZE);
  EXPECT_EQ(TierOf(c, 1000), v1::TIER_SILVER);
  EXPECT_EQ(TierOf(c, 5000), v1::TIER_GOLD);
  EXPECT_EQ(TierOf(c, 20000), v1::TIER_PLATINUM);
  EXPECT_EQ(TierThreshold(c, v1::TIER_GOLD), 5000);
  EXPECT_EQ(PointsFor(c, 12345), 123);  // whole currency units
  EXPECT_EQ(PointsFor(c, -5), 0);
}

}  // namespace
}  // namespace lifecycle::projections::rules
