#include "projections/config.h"

#include "absl/strings/str_cat.h"

namespace lifecycle::projections {
namespace {

using Value = std::variant<int64_t, double, std::string, std::vector<int64_t>>;
using T = ConfigParam::Type;

ConfigParam Int(std::string key, int DomainConfig::*field, double lo, double hi, std::string help) {
  return {std::move(key), T::kInt, lo, hi,
          [field](DomainConfig& c, const Value& v) { c.*field = static_cast<int>(std::get<int64_t>(v)); },
          std::move(help)};
}
ConfigParam Int64(std::string key, int64_t DomainConfig::*field, double lo, double hi,
                  std::string help) {
  return {std::move(key), T::kInt, lo, hi,
          [field](DomainConfig& c, const Value& v) { c.*field = std::get<int64_t>(v); },
          std::move(help)};
}
ConfigParam Double(std::string key, double DomainConfig::*field, double lo, double hi,
                   std::string help) {
  return {std::move(key), T::kDouble, lo, hi,
          [field](DomainConfig& c, const Value& v) { c.*field = std::get<double>(v); },
          std::move(help)};
}
ConfigParam List(std::string key, std::vector<int64_t> DomainConfig::*field, double lo, double hi,
                 std::string help) {
  return {std::move(key), T::kIntList, lo, hi,
          [field](DomainConfig& c, const Value& v) { c.*field = std::get<std::vector<int64_t>>(v); },
          std::move(help)};
}

}  // namespace

const std::vector<ConfigParam>& ConfigParams() {
  static const auto* params = new std::vector<ConfigParam>{
      {"version", T::kString, 1, 64,
       [](DomainConfig& c, const Value& v) { c.version = std::get<std::string>(v); },
       "version of this file, recorded in every view"},
      Int("stages.new_days", &DomainConfig::new_days, 1, 3650, "days NEW lasts after the first activity"),
      Int("stages.loyal_visits", &DomainConfig::loyal_visits, 1, 1000, "activity days in 24 months for LOYAL"),
      Int("stages.loyal_min_score", &DomainConfig::loyal_min_score, 0, 10, "loyalty score for LOYAL"),
      Double("stages.at_risk_p", &DomainConfig::at_risk_p, 0.0001, 0.9999, "P(alive) below this: AT_RISK"),
      Double("stages.churned_p", &DomainConfig::churned_p, 0.0001, 0.9999, "P(alive) below this: CHURNED"),
      Int("stages.churn_days", &DomainConfig::churn_days, 1, 3650, "days without activity: CHURNED"),
      Double("stages.churn_cadence", &DomainConfig::churn_cadence, 1, 100, "mean gaps without activity: CHURNED"),
      Int("stages.winback_days", &DomainConfig::winback_days, 1, 3650, "days WON_BACK lasts"),
      Int("stages.complaint_sla_days", &DomainConfig::complaint_sla_days, 0, 365, "days a complaint may stay open"),
      Int("stages.maintenance_grace_days", &DomainConfig::maintenance_grace_days, 0, 365, "days maintenance may be overdue"),
      Double("churn_model.r", &DomainConfig::r, 0.001, 100, "MBG/NBD r"),
      Double("churn_model.alpha", &DomainConfig::alpha, 0.001, 100000, "MBG/NBD alpha (days)"),
      Double("churn_model.a", &DomainConfig::a, 0.001, 100, "MBG/NBD a"),
      Double("churn_model.b", &DomainConfig::b, 0.001, 1000, "MBG/NBD b"),
      Double("spend_model.p", &DomainConfig::spend_p, 0.001, 1000, "Gamma-Gamma p"),
      Double("spend_model.q", &DomainConfig::spend_q, 1.001, 1000, "Gamma-Gamma q (above 1, or the mean spend is infinite)"),
      Double("spend_model.v", &DomainConfig::spend_v, 0.001, 1e15, "Gamma-Gamma v (minor units)"),
      Int("loyalty.survey_high", &DomainConfig::survey_high, 0, 10, "latest survey for 2 points"),
      Int("loyalty.survey_mid", &DomainConfig::survey_mid, 0, 10, "latest survey for 1 point"),
      Double("loyalty.maintenance_share_3", &DomainConfig::maintenance_share_3, 0, 1, "on-schedule share for 3 points"),
      Double("loyalty.maintenance_share_2", &DomainConfig::maintenance_share_2, 0, 1, "on-schedule share for 2 points"),
      Int("loyalty.campaign_cap", &DomainConfig::campaign_cap, 0, 2, "cap of event participation points"),
      Int("loyalty.advocacy_cap", &DomainConfig::advocacy_cap, 0, 3, "cap of advocacy points"),
      Int64("grade.a_spend_minor", &DomainConfig::grade_a_spend_minor, 0, 1e15, "12-month spend for grade A"),
      Double("grade.b_growth", &DomainConfig::grade_b_growth, 0, 100, "spend growth for grade B"),
      Int("grade.b_min_loyalty", &DomainConfig::grade_b_min_loyalty, 0, 10, "loyalty score for grade B"),
      List("rfm.recency_days", &DomainConfig::rfm_recency_days, 0, 36500, "R cuts, 4 values, descending"),
      List("rfm.frequency", &DomainConfig::rfm_frequency, 0, 100000, "F cuts, 4 values, ascending"),
      List("rfm.monetary_minor", &DomainConfig::rfm_monetary_minor, 0, 1e15, "M cuts, 4 values, ascending"),
      Int64("points.per_unit", &DomainConfig::points_per_unit, 0, 1000, "points per currency unit"),
      Int("points.ttl_days", &DomainConfig::points_ttl_days, 1, 36500, "days before points expire"),
      Int64("points.tier_silver", &DomainConfig::tier_silver, 0, 1e12, "qualifying points for SILVER"),
      Int64("points.tier_gold", &DomainConfig::tier_gold, 0, 1e12, "qualifying points for GOLD"),
      Int64("points.tier_platinum", &DomainConfig::tier_platinum, 0, 1e12, "qualifying points for PLATINUM"),
      Int("points.tier_warning_days", &DomainConfig::tier_warning_days, 1, 365, "warn of a tier drop this early"),
      Int("follow_ups.callback_1_days", &DomainConfig::callback_1_days, 0, 365, "first callback after a sale"),
      Int("follow_ups.callback_2_days", &DomainConfig::callback_2_days, 0, 365, "second callback after a sale"),
      Int("follow_ups.first_maintenance_days", &DomainConfig::first_maintenance_days, 0, 3650, "first-maintenance reminder after a sale"),
      Int("follow_ups.survey_callback_days", &DomainConfig::survey_callback_days, 0, 365, "satisfaction callback after a visit"),
      Int("follow_ups.maintenance_interval_days", &DomainConfig::maintenance_interval_days, 1, 3650, "maintenance due after the last visit"),
      Int("follow_ups.grace_days", &DomainConfig::followup_grace_days, 0, 365, "days a task may be overdue"),
      Int("follow_ups.lost_deal_recontact_1_days", &DomainConfig::lost_deal_recontact_1_days, 0, 3650, "first re-contact after a lost deal"),
      Int("follow_ups.lost_deal_recontact_2_days", &DomainConfig::lost_deal_recontact_2_days, 0, 3650, "second re-contact after a lost deal"),
      List("follow_ups.greeting_holidays", &DomainConfig::greeting_holidays, 101, 21001231, "holiday greetings: MMDD every year, YYYYMMDD one year"),
      Int("follow_ups.greeting_expiry_days", &DomainConfig::greeting_expiry_days, 0, 365, "a greeting not done this long after its day is missed"),
      Int("alerts.horizon_days", &DomainConfig::alert_horizon_days, 0, 36500, "an alert about something older than this when learned of is late: not streamed"),
      Int("late.window_days", &DomainConfig::late_window_days, 0, 3650, "an event older than its customer's time by at most this many days is re-derived in its place; older ones are approximated (0: never re-derive)"),
      Int("late.settle_minutes", &DomainConfig::settle_minutes, 0, 10080, "deadlines of a customer with late history wait this long (stream time) after its last late event"),
      Int("history.max_greetings", &DomainConfig::max_greetings, 1, 1000, "greetings done remembered per customer"),
      Int("history.dedup_window", &DomainConfig::dedup_window, 0, 10000, "event ids remembered per customer"),
      Int("history.max_transitions", &DomainConfig::max_transitions, 1, 10000, "stage transitions kept per view"),
      Int("history.max_tasks", &DomainConfig::max_tasks, 1, 10000, "follow-up tasks kept per view"),
      Int("history.max_complaints", &DomainConfig::max_complaints, 1, 10000, "complaints kept per view"),
      Int("history.max_lost_deals", &DomainConfig::max_lost_deals, 1, 10000, "lost deals kept per view"),
  };
  return *params;
}

absl::Status ValidateConfig(const DomainConfig& c) {
  if (c.version.empty()) return absl::InvalidArgumentError("version: must not be empty");
  if (!(c.churned_p < c.at_risk_p)) {
    return absl::InvalidArgumentError(
        absl::StrCat("stages.churned_p (", c.churned_p, ") must be below stages.at_risk_p (",
                     c.at_risk_p, ")"));
  }
  if (!(c.tier_silver < c.tier_gold && c.tier_gold < c.tier_platinum)) {
    return absl::InvalidArgumentError(
        "points.tier_silver < points.tier_gold < points.tier_platinum must hold");
  }
  if (c.survey_mid > c.survey_high) {
    return absl::InvalidArgumentError("loyalty.survey_mid must not exceed loyalty.survey_high");
  }
  if (c.maintenance_share_2 > c.maintenance_share_3) {
    return absl::InvalidArgumentError(
        "loyalty.maintenance_share_2 must not exceed loyalty.maintenance_share_3");
  }
  auto check_list = [](const std::vector<int64_t>& v, const char* key, bool descending) {
    if (v.size() != 4) return absl::InvalidArgumentError(absl::StrCat(key, ": needs 4 values"));
    for (size_t i = 1; i < v.size(); ++i) {
      if (descending ? v[i] >= v[i - 1] : v[i] <= v[i - 1]) {
        return absl::InvalidArgumentError(
            absl::StrCat(key, ": values must be strictly ", descending ? "descending" : "ascending"));
      }
    }
    return absl::OkStatus();
  };
  if (auto s = check_list(c.rfm_recency_days, "rfm.recency_days", true); !s.ok()) return s;
  if (auto s = check_list(c.rfm_frequency, "rfm.frequency", false); !s.ok()) return s;
  if (auto s = check_list(c.rfm_monetary_minor, "rfm.monetary_minor", false); !s.ok()) return s;
  for (int64_t h : c.greeting_holidays) {
    const int64_t md = h % 10000, year = h / 10000;
    const int64_t month = md / 100, day = md % 100;
    static constexpr int kDays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if ((year != 0 && (year < 2000 || year > 2100)) || month < 1 || month > 12 || day < 1 ||
        day > kDays[month - 1]) {
      return absl::InvalidArgumentError(absl::StrCat(
          "follow_ups.greeting_holidays: ", h, " is not a date (MMDD or YYYYMMDD)"));
    }
  }
  return absl::OkStatus();
}

}  // namespace lifecycle::projections
