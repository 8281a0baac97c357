#pragma once
// The scoring rules of DOMAIN.md as small pure functions, each tested on its own.

#include <cstdint>
#include <string>

#include "lifecycle/v1/view.pb.h"
#include "projections/config.h"
#include "projections/time.h"

namespace lifecycle::projections::rules {

using projections::kDay;

// MBG/NBD P(alive) with x repeat activity days, t_x = last − first and T = now − first
// (days).
double PAlive(const DomainConfig& c, int64_t x, double t_x_days, double T_days);

// T*(θ): days after the first activity at which P(alive) falls to θ, in closed form.
// A value ≤ t_x means it was already below θ at the last activity.
double CrossingDays(const DomainConfig& c, int64_t x, double t_x_days, double theta);

// What a customer's P(alive) and expected value depend on. The listings keep these
// per customer, so they filter and rank on values as of now with the view's arithmetic.
struct ChurnInputs {
  int32_t activity_days = 0;    // 0: no activity, so no P(alive) and no expected value
  int64_t first = 0, last = 0;  // first and last activity (seconds)
  int64_t repeat_spend = 0;     // spend of every activity day but the first (minor units)
  bool operator==(const ChurnInputs&) const = default;
};
// P(alive) at `now` (0 without activity).
double PAliveOf(const DomainConfig& c, const ChurnInputs& in, int64_t now);

// The next 12 months as of `now` (DOMAIN.md, "expected value"): MBG/NBD expected
// activity days, the Gamma-Gamma expected spend per activity day (repeat days' mean,
// the population's for a customer with one activity day) and their product.
inline constexpr int kExpectedHorizonDays = 365;
struct Expected {
  double activities = 0;
  double spend_per_activity = 0;  // minor units
  double value = 0;               // minor units
};
Expected ExpectedOf(const DomainConfig& c, const ChurnInputs& in, int64_t now);

struct LoyaltyInputs {
  bool has_survey = false;
  int latest_survey = 0;
  int unresolved_complaints = 0;
  int services_24m = 0;
  int on_schedule_24m = 0;
  int campaigns_12m = 0;
  int referrals_converted_24m = 0;
  int referrals_other_24m = 0;
};
struct LoyaltyParts {
  int satisfaction = 0, regular_maintenance = 0, event_participation = 0, advocacy = 0;
};
LoyaltyParts LoyaltyPartsOf(const DomainConfig& c, const LoyaltyInputs& in);
lifecycle::v1::LoyaltyScore Loyalty(const DomainConfig& c, const LoyaltyInputs& in);

lifecycle::v1::ValueGrade Grade(const DomainConfig& c, bool has_activity, int64_t spend_12m,
                                int64_t spend_prev_12m, int64_t spend_prev2_12m,
                                int loyalty_total);
lifecycle::v1::ValueClass ClassOf(lifecycle::v1::ValueGrade grade);

// R from days since the last activity, F from activity days in 12 months, M from
// spend in 12 months; with the score string and the segment name.
struct RfmScores {
  int r = 1, f = 1, m = 1;
};
RfmScores RfmScoresOf(const DomainConfig& c, int64_t recency_days, int64_t frequency,
                      int64_t monetary_minor);
// The segment of R and F (and M), e.g. "Champions"; a static string.
const char* RfmSegmentName(int r, int f, int m);
// The same as an index 0..10 into the segments (RfmSegmentNameAt gives the name).
int RfmSegmentIndex(int r, int f, int m);
const char* RfmSegmentNameAt(int index);
lifecycle::v1::Rfm RfmOf(const DomainConfig& c, int64_t recency_days, int64_t frequency,
                         int64_t monetary_minor);
std::string RfmSegment(int r, int f, int m);

lifecycle::v1::Tier TierOf(const DomainConfig& c, int64_t qualifying_points);
int64_t TierThreshold(const DomainConfig& c, lifecycle::v1::Tier tier);

// Points earned for an amount in minor units (floor of whole currency units × rate).
int64_t PointsFor(const DomainConfig& c, int64_t amount_minor);

}  // namespace lifecycle::projections::rules
