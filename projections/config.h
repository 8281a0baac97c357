#pragma once
// DomainConfig: every threshold and model parameter of the domain rules
// (shared DOMAIN.md), with the defaults the rules name. Loaded from a versioned
// TOML file by the daemon (services/lifecycled/domain_config.h); every view records
// the `version` it was computed with.
//
// ConfigParams() describes each parameter once — its key in the file, type and
// allowed range — so the loader can refuse an unknown key, a wrong type or an
// out-of-range value with a message that names the key.

#include <cstdint>
#include <functional>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/status.h"

namespace lifecycle::projections {

struct DomainConfig {
  std::string version = "builtin-1";

  // [stages]
  int new_days = 90;
  int loyal_visits = 4;            // activity days in trailing 24 months
  int loyal_min_score = 7;
  double at_risk_p = 0.85;
  double churned_p = 0.15;
  int churn_days = 365;
  double churn_cadence = 2.0;      // ... or this many of the customer's own mean gaps, if longer
  int winback_days = 90;
  int complaint_sla_days = 7;
  int maintenance_grace_days = 30;

  // [churn_model] MBG/NBD population parameters (time unit: days). The shipped values
  // (here and in deploy/config/domain.toml) are the fit on the demo population.
  double r = 2.64162;
  double alpha = 599.458;
  double a = 1.99397;
  double b = 32.8271;

  // [spend_model] Gamma-Gamma parameters of spend per repeat activity day (v in minor
  // units), for the expected value; fitted with the churn model by `lifecyclectl fit`.
  double spend_p = 2.6093;
  double spend_q = 12.4145;
  double spend_v = 835648.0;

  // [loyalty]
  int survey_high = 9;             // latest survey >= this: 2 points
  int survey_mid = 7;              // >= this: 1 point
  double maintenance_share_3 = 0.9;
  double maintenance_share_2 = 0.6;
  int campaign_cap = 2;
  int advocacy_cap = 3;

  // [grade]
  int64_t grade_a_spend_minor = 20000000;  // trailing-12-month spend for A (200,000.00)
  double grade_b_growth = 0.10;
  int grade_b_min_loyalty = 6;

  // [rfm] score k+2 when value reaches cuts[k]; recency cuts are "at most N days"
  std::vector<int64_t> rfm_recency_days = {365, 180, 90, 30};    // R: >365 → 1 … ≤30 → 5
  std::vector<int64_t> rfm_frequency = {2, 3, 4, 6};             // F: activity days in 12 months
  std::vector<int64_t> rfm_monetary_minor = {100000, 500000, 2000000, 10000000};

  // [points]
  int64_t points_per_unit = 1;     // points per currency unit (100 minor units)
  int points_ttl_days = 730;
  int64_t tier_silver = 1000;      // qualifying points (trailing 12 months)
  int64_t tier_gold = 5000;
  int64_t tier_platinum = 20000;
  int tier_warning_days = 30;

  // [follow_ups]
  int callback_1_days = 3;
  int callback_2_days = 7;
  int first_maintenance_days = 90;
  int survey_callback_days = 2;
  int maintenance_interval_days = 180;
  int followup_grace_days = 2;
  int lost_deal_recontact_1_days = 30;  // re-contact tasks after a lost deal
  int lost_deal_recontact_2_days = 90;
  // Greetings (节日关怀), due 00:00 UTC on the day, for customers with activity: the
  // birthday on the profile, and these holidays, MMDD every year or YYYYMMDD in that
  // year only (lunar holidays: list each year's date). 29 February falls on 28 February
  // in other years. A greeting not done within greeting_expiry_days is MISSED.
  std::vector<int64_t> greeting_holidays = {101, 501, 1001};
  int greeting_expiry_days = 7;
  int max_greetings = 12;  // greetings done remembered per customer

  // [alerts] An alert whose condition became true more than this many days before the
  // stream time at which the fold learned of it is late: recorded, counted, not streamed.
  int alert_horizon_days = 7;

  // [late] An event more than settle_minutes behind its partition's stream time is late
  // history: the customer is folded in its own event time, and its deadlines beyond its
  // latest event wait until the stream time has moved on by settle_minutes since its
  // last late event (a history that arrives in pieces is judged once it has settled).
  int settle_minutes = 15;
  // An event older than what its customer has seen (its own time) is re-derived in its
  // place when it is at most window_days older than the customer's latest event (the
  // journal keeps what that takes, projections/journal.h); an older one is folded at
  // the customer's time and counted as beyond the window. 0: no journal, every such
  // event folded at the customer's time.
  int late_window_days = 90;

  // [history] bounds on what one view keeps
  int dedup_window = 32;           // recent event ids remembered per customer
  int max_transitions = 50;
  int max_tasks = 30;
  int max_complaints = 30;
  int max_lost_deals = 20;
};

// One parameter of the file.
struct ConfigParam {
  enum class Type { kInt, kDouble, kString, kIntList };
  std::string key;  // "section.name"
  Type type;
  double min = 0, max = 0;  // inclusive range (each element of a list)
  std::function<void(DomainConfig&, const std::variant<int64_t, double, std::string,
                                                       std::vector<int64_t>>&)> set;
  std::string help;
};

const std::vector<ConfigParam>& ConfigParams();

// Checks relations between parameters (ranges are checked by the loader):
// churned_p < at_risk_p, tiers ascending, RFM cuts ordered. The message names the keys.
absl::Status ValidateConfig(const DomainConfig& config);

}  // namespace lifecycle::projections
