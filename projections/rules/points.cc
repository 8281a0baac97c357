// Points and tiers: lots expire after points_ttl_days; qualifying points of the
// trailing 12 months decide the tier; a tier about to drop raises a warning.
#include <algorithm>
#include <utility>
#include <vector>

#include "projections/rules.h"
#include "projections/rules/families.h"

namespace lifecycle::projections::rules {

namespace v1 = lifecycle::v1;

void RunPoints(Eval& ev) {
  CustomerRecord& r = ev.r;
  const DomainConfig& c = ev.c;
  const int64_t now = ev.now;
  const int64_t ttl = c.points_ttl_days * kDay;
  NextDeadline next(now);

  int64_t expired = 0;
  for (const auto& l : r.lots) {
    if (IsPast(now, l.earned_at + ttl)) expired += l.remaining;
  }
  EraseIf(r.lots, [&](const PointsLot& l) { return IsPast(now, l.earned_at + ttl); });
  r.expired_total += expired;
  int64_t balance = 0;
  for (const auto& l : r.lots) {
    balance += l.remaining;
    next.Offer(FirstInstantPast(l.earned_at + ttl));
  }
  r.balance = balance;

  EraseIf(r.qualifying,
                [&](const QualifyingEntry& q) { return !InWindow(q.day, ev.today, 365); });
  int64_t qualifying = 0;
  std::vector<std::pair<int64_t, int64_t>> by_day;  // (day, points)
  by_day.reserve(r.qualifying.size());
  for (const auto& q : r.qualifying) {
    qualifying += q.points;
    by_day.emplace_back(q.day, q.points);
    next.Offer(LeavesWindowAt(q.day, 365));
  }
  const v1::Tier tier =
      (r.has_activity() || qualifying > 0) ? TierOf(c, qualifying) : v1::TIER_UNSPECIFIED;
  r.qualifying_12m = qualifying;
  r.tier = static_cast<uint8_t>(tier);
  r.tier_drop_at = 0;
  r.points_to_keep_tier = 0;
  r.stage_flags &= ~kTierAtRisk;
  if (tier > v1::TIER_BRONZE) {
    // Without new points, the tier drops when enough entries leave the window.
    std::sort(by_day.begin(), by_day.end());
    const int64_t threshold = TierThreshold(c, tier);
    int64_t left = qualifying;
    for (const auto& [d, p] : by_day) {
      left -= p;
      if (left < threshold) {
        const int64_t drop_at = LeavesWindowAt(d, 365);
        const int64_t warn_at = drop_at - c.tier_warning_days * kDay;
        if (now >= warn_at) {
          r.stage_flags |= kTierAtRisk;
          r.tier_drop_at = drop_at;
          r.points_to_keep_tier = threshold - left;
        } else {
          next.Offer(warn_at);
        }
        break;
      }
    }
  }
  r.due[kPointsFamily] = next.get();
}

}  // namespace lifecycle::projections::rules
