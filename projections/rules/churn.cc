// Churn: MBG/NBD P(alive) with its closed-form threshold crossings, inactivity past
// churn_days, and the time edges of the stages (NEW window, WON_BACK window, RFM
// recency cuts).
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
    const int64_t inactive_at = last + c.churn_days * kDay;
    if (ev.now >= inactive_at) r.stage_flags |= kInactive;
    next.Offer(inactive_at);
    next.Offer(first + c.new_days * kDay);
    for (int64_t cut : c.rfm_recency_days) next.Offer(last + (cut + 1) * kDay);
  }
  if (r.won_back_at > 0) next.Offer(r.won_back_at + c.winback_days * kDay);
  r.due[kChurnFamily] = next.get();
}

}  // namespace lifecycle::projections::rules
