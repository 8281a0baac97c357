#include "projections/rules.h"

#include <algorithm>
#include <cmath>

namespace lifecycle::projections::rules {

namespace v1 = lifecycle::v1;

double PAlive(const DomainConfig& c, int64_t x, double t_x, double T) {
  const double ratio = (c.alpha + T) / (c.alpha + t_x);
  const double term = (c.a / (c.b + static_cast<double>(x))) * std::pow(ratio, c.r + x);
  return 1.0 / (1.0 + term);
}

double CrossingDays(const DomainConfig& c, int64_t x, double t_x, double theta) {
  const double base = ((1.0 - theta) / theta) * (c.b + static_cast<double>(x)) / c.a;
  return (c.alpha + t_x) * std::pow(base, 1.0 / (c.r + static_cast<double>(x))) - c.alpha;
}

LoyaltyParts LoyaltyPartsOf(const DomainConfig& c, const LoyaltyInputs& in) {
  LoyaltyParts p;
  int sat = 0;
  if (in.has_survey) {
    if (in.latest_survey >= c.survey_high) {
      sat = 2;
    } else if (in.latest_survey >= c.survey_mid) {
      sat = 1;
    }
  }
  p.satisfaction = std::max(0, sat - in.unresolved_complaints);
  if (in.services_24m > 0) {
    const double share = static_cast<double>(in.on_schedule_24m) / in.services_24m;
    if (share >= c.maintenance_share_3) {
      p.regular_maintenance = 3;
    } else if (share >= c.maintenance_share_2) {
      p.regular_maintenance = 2;
    } else if (share > 0) {
      p.regular_maintenance = 1;
    }
  }
  p.event_participation = std::min(in.campaigns_12m, c.campaign_cap);
  p.advocacy = std::min(2 * in.referrals_converted_24m + in.referrals_other_24m, c.advocacy_cap);
  return p;
}

v1::LoyaltyScore Loyalty(const DomainConfig& c, const LoyaltyInputs& in) {
  const LoyaltyParts p = LoyaltyPartsOf(c, in);
  v1::LoyaltyScore s;
  s.set_satisfaction(p.satisfaction);
  s.set_regular_maintenance(p.regular_maintenance);
  s.set_event_participation(p.event_participation);
  s.set_advocacy(p.advocacy);
  s.set_total(p.satisfaction + p.regular_maintenance + p.event_participation + p.advocacy);
  return s;
}

v1::ValueGrade Grade(const DomainConfig& c, bool has_activity, int64_t spend_12m,
                     int64_t spend_prev_12m, int64_t spend_prev2_12m, int loyalty_total) {
  if (!has_activity) return v1::VALUE_GRADE_UNSPECIFIED;
  if (spend_12m >= c.grade_a_spend_minor) return v1::VALUE_GRADE_A;
  // Two years of growth of at least b_growth: the trailing 12 months over the 12
  // before, and those over the 12 before them, which had spend (seed 003).
  const double g = 1.0 + c.grade_b_growth;
  const bool grew = spend_prev2_12m > 0 &&
                    static_cast<double>(spend_prev_12m) >= g * static_cast<double>(spend_prev2_12m) &&
                    static_cast<double>(spend_12m) >= g * static_cast<double>(spend_prev_12m);
  if (grew && loyalty_total >= c.grade_b_min_loyalty) return v1::VALUE_GRADE_B;
  return v1::VALUE_GRADE_C;
}

v1::ValueClass ClassOf(v1::ValueGrade grade) {
  switch (grade) {
    case v1::VALUE_GRADE_A: return v1::VALUE_CLASS_VIP;
    case v1::VALUE_GRADE_B:
    case v1::VALUE_GRADE_C: return v1::VALUE_CLASS_REGULAR;
    default: return v1::VALUE_CLASS_POTENTIAL;
  }
}

namespace {
constexpr const char* kSegments[] = {
    "Champions",      "Loyal",      "Potential Loyalist", "New",         "Promising",
    "Need Attention", "About to Sleep", "Can't Lose",     "At Risk",     "Hibernating",
    "Lost"};
}  // namespace

// DOMAIN.md's grid: the segment from R (rows, 1..5) and F (columns, 1..5); M does
// not take part. Entries index kSegments.
int RfmSegmentIndex(int r, int f, int /*m*/) {
  static constexpr int kGrid[5][5] = {
      // F:  1   2   3   4   5
      {10, 9, 8, 8, 7},  // R 1: Lost, Hibernating, At Risk, At Risk, Can't Lose
      {9, 9, 8, 8, 7},   // R 2: Hibernating, Hibernating, At Risk, At Risk, Can't Lose
      {6, 6, 5, 1, 1},   // R 3: About to Sleep, About to Sleep, Need Attention, Loyal, Loyal
      {4, 2, 2, 1, 1},   // R 4: Promising, Potential Loyalist x2, Loyal, Loyal
      {3, 2, 2, 0, 0},   // R 5: New, Potential Loyalist x2, Champions, Champions
  };
  return kGrid[std::clamp(r, 1, 5) - 1][std::clamp(f, 1, 5) - 1];
}

const char* RfmSegmentName(int r, int f, int m) { return kSegments[RfmSegmentIndex(r, f, m)]; }
const char* RfmSegmentNameAt(int index) { return kSegments[index]; }

std::string RfmSegment(int r, int f, int m) { return RfmSegmentName(r, f, m); }

RfmScores RfmScoresOf(const DomainConfig& c, int64_t recency_days, int64_t frequency,
                      int64_t monetary_minor) {
  RfmScores s;  // recency cuts are descending "at most N days"
  for (int64_t cut : c.rfm_recency_days) {
    if (recency_days <= cut) ++s.r;
  }
  for (int64_t cut : c.rfm_frequency) {
    if (frequency >= cut) ++s.f;
  }
  for (int64_t cut : c.rfm_monetary_minor) {
    if (monetary_minor >= cut) ++s.m;
  }
  return s;
}

v1::Rfm RfmOf(const DomainConfig& c, int64_t recency_days, int64_t frequency,
              int64_t monetary_minor) {
  const RfmScores s = RfmScoresOf(c, recency_days, frequency, monetary_minor);
  v1::Rfm out;
  out.set_recency(s.r);
  out.set_frequency(s.f);
  out.set_monetary(s.m);
  out.set_score(std::to_string(s.r) + std::to_string(s.f) + std::to_string(s.m));
  out.set_segment(RfmSegmentName(s.r, s.f, s.m));
  return out;
}

v1::Tier TierOf(const DomainConfig& c, int64_t q) {
  if (q >= c.tier_platinum) return v1::TIER_PLATINUM;
  if (q >= c.tier_gold) return v1::TIER_GOLD;
  if (q >= c.tier_silver) return v1::TIER_SILVER;
  return v1::TIER_BRONZE;
}

int64_t TierThreshold(const DomainConfig& c, v1::Tier tier) {
  switch (tier) {
    case v1::TIER_PLATINUM: return c.tier_platinum;
    case v1::TIER_GOLD: return c.tier_gold;
    case v1::TIER_SILVER: return c.tier_silver;
    default: return 0;
  }
}

int64_t PointsFor(const DomainConfig& c, int64_t amount_minor) {
  if (amount_minor <= 0) return 0;
  return (amount_minor / 100) * c.points_per_unit;
}

}  // namespace lifecycle::projections::rules
