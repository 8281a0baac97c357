// Churn: MBG/NBD P(alive) with its closed-form threshold crossings, inactivity past
// churn_days, and the time edges of the stages (NEW window, WON_BACK window, RFM
// recency cuts).
#include <algorithm>
#include <cmath>

#include "projections/churn_model.h"
#include "projections/rules.h"
#include "projections/rules/families.h"

namespace lifecycle::projections::rules {

namespace {
int64_t First(const CustomerRecord& r) { return SecondsOf(r.first_activity_ns); }
int64_t Last(const CustomerRecord& r) { return SecondsOf(r.last_activity_ns); }
}  // namespace

ChurnInputs ChurnInputsOf(const CustomerRecord& r) {
  if (!r.has_activity()) return {};
  return {.activity_days = r.activity_days,
          .first = First(r),
          .last = Last(r),
          .repeat_spend = r.total_spend - r.first_day_spend};
}

double PAliveOf(const DomainConfig& c, const ChurnInputs& in, int64_t now) {
  if (in.activity_days <= 0) return 0;
  const double t_x = static_cast<double>(in.last - in.first) / kDay;
  const double T = static_cast<double>(std::max(now, in.last) - in.first) / kDay;
  return PAlive(c, in.activity_days - 1, t_x, T);
}

Expected ExpectedOf(const DomainConfig& c, const ChurnInputs& in, int64_t now) {
  Expected e;
  if (in.activity_days <= 0) return e;
  const double x = in.activity_days - 1;
  const double t_x = static_cast<double>(in.last - in.first) / kDay;
  const double T = static_cast<double>(std::max(now, in.last) - in.first) / kDay;
  model::MbgNbdParams m{.r = c.r, .alpha = c.alpha, .a = c.a, .b = c.b};
  // The expectation divides by a − 1: a = 1 exactly is its removable singularity.
  if (std::abs(m.a - 1) < 1e-9) m.a = 1 + 1e-9;
  e.activities = std::max(0.0, model::MbgNbdExpectedActivities(m, {.x = x, .t_x = t_x, .T = T},
                                                                kExpectedHorizonDays));
  const double mean = x > 0 ? std::max<double>(0, static_cast<double>(in.repeat_spend)) / x : 0;
  e.spend_per_activity = model::GammaGammaExpectedSpend(
      {.p = c.spend_p, .q = c.spend_q, .v = c.spend_v}, {.x = x, .m = mean});
  e.value = e.activities * e.spend_per_activity;
  return e;
}

double PAliveAt(const DomainConfig& c, const CustomerRecord& r, int64_t now) {
  return PAliveOf(c, ChurnInputsOf(r), now);
}

std::vector<std::pair<int64_t, double>> PAliveSeries(const DomainConfig& c, const CustomerRecord& r,
                                                     int64_t now) {
  std::vector<std::pair<int64_t, double>> out;
  if (!r.has_activity()) return out;
  const int64_t first = First(r);
  const int64_t from = std::max(first, now - 730 * kDay);
  const auto& days = r.recent_days;  // ascending epoch days
  const int64_t older = r.activity_days - static_cast<int64_t>(days.size());
  std::vector<int64_t> times;
  for (int64_t t = from; t < now; t += 7 * kDay) times.push_back(t);
  for (const int32_t d : days) {
    if (d * kDay >= from && d * kDay < now) times.push_back(d * kDay);
  }
  std::sort(times.begin(), times.end());
  times.erase(std::unique(times.begin(), times.end()), times.end());
  for (const int64_t t : times) {
    const auto seen = std::upper_bound(days.begin(), days.end(), static_cast<int32_t>(EpochDay(t)));
    const int64_t k = seen - days.begin();
    int64_t last;
    if (k > 0) {
      last = std::max(first, static_cast<int64_t>(*(seen - 1)) * kDay);
    } else if (older == 1 && t >= first) {
      last = first;  // the first activity, aged out of the ring
    } else {
      continue;  // before any activity, or the last one is not known
    }
    const double t_x = static_cast<double>(last - first) / kDay;
    const double T = static_cast<double>(std::max(t, last) - first) / kDay;
    out.emplace_back(t, PAlive(c, older + k - 1, t_x, T));
  }
  out.emplace_back(now, PAliveAt(c, r, now));
  return out;
}

int64_t CrossingAt(const DomainConfig& c, const CustomerRecord& r, double theta) {
  if (!r.has_activity()) return kNever;
  const int64_t first = First(r), last = Last(r);
  const double t_x = static_cast<double>(last - first) / kDay;
  return DeadlineAfter(first, CrossingDays(c, r.activity_days - 1, t_x, theta));
}

void RunChurn(Eval& ev) {
  CustomerRecord& r = ev.r;
  const DomainConfig& c = ev.c;
  NextDeadline next(ev.now), recency(ev.now);  // RFM recency cuts apart (record.h)
  r.stage_flags &= ~(kPAtRisk | kPChurned | kInactive);
  if (r.has_activity()) {
    const int64_t first = First(r), last = Last(r);
    const int64_t risk_at = CrossingAt(c, r, c.at_risk_p);
    const int64_t churn_at = CrossingAt(c, r, c.churned_p);
    if (ev.now >= risk_at) r.stage_flags |= kPAtRisk;
    if (ev.now >= churn_at) r.stage_flags |= kPChurned;
    next.Offer(risk_at);
    next.Offer(churn_at);
    // Silence longer than churn_days, or than churn_cadence times the customer's own
    // mean gap between activity days when that is longer (a customer who services once
    // a year is not churned after 366 days of silence).
    int64_t quiet = c.churn_days * kDay;
    if (r.activity_days > 1) {
      quiet = std::max(quiet, static_cast<int64_t>(std::llround(
                                  c.churn_cadence * static_cast<double>(last - first) /
                                  static_cast<double>(r.activity_days - 1))));
    }
    const int64_t inactive_after = last + quiet;
    if (IsPast(ev.now, inactive_after)) r.stage_flags |= kInactive;
    next.Offer(FirstInstantPast(inactive_after));
    next.Offer(FirstInstantPast(first + c.new_days * kDay));
    for (int64_t cut : c.rfm_recency_days) recency.Offer(last + (cut + 1) * kDay);
  }
  if (r.won_back_at > 0) next.Offer(FirstInstantPast(r.won_back_at + c.winback_days * kDay));
  r.churn_due_other = {true, next.get()};
  r.due[kChurnFamily] = std::min(next.get(), recency.get());
}

}  // namespace lifecycle::projections::rules
