// Churn: MBG/NBD P(alive) with its closed-form threshold crossings, inactivity past
// churn_days, and the time edges of the stages (NEW window, WON_BACK window, RFM
// recency cuts).
#include <algorithm>
#include <cmath>

#include "projections/rules.h"
#include "projections/rules/families.h"

namespace lifecycle::projections::rules {

namespace {
int64_t First(const CustomerRecord& r) { return SecondsOf(r.first_activity_ns); }
int64_t Last(const CustomerRecord& r) { return SecondsOf(r.last_activity_ns); }
}  // namespace

double PAliveAt(const DomainConfig& c, const CustomerRecord& r, int64_t now) {
  if (!r.has_activity()) return 0;
  const int64_t first = First(r), last = Last(r);
  const double t_x = static_cast<double>(last - first) / kDay;
  const double T = static_cast<double>(std::max(now, last) - first) / kDay;
  return PAlive(c, r.activity_days - 1, t_x, T);
}

std::vector<std::pair<int64_t, double>> PAliveSeries(const DomainConfig& c, const CustomerRecord& r,
                                                     int64_t now) {
  std::vector<std::pair<int64_t, double>> out;
  if (!r.has_activity()) return out;
  const int64_t first = First(r);
  const int64_t from = std::max(first, now - 730 * kDay);
  const std::vector<int32_t>& days = r.recent_days;  // ascending epoch days
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
  NextDeadline next(ev.now);
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
    const int64_t inactive_at = last + quiet;
    if (ev.now >= inactive_at) r.stage_flags |= kInactive;
    next.Offer(inactive_at);
    next.Offer(first + c.new_days * kDay);
    for (int64_t cut : c.rfm_recency_days) next.Offer(last + (cut + 1) * kDay);
  }
  if (r.won_back_at > 0) next.Offer(r.won_back_at + c.winback_days * kDay);
  r.due[kChurnFamily] = next.get();
}

}  // namespace lifecycle::projections::rules
