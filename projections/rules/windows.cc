// Trailing windows: activity days, spend, services, campaigns and referrals leave
// their 12-, 24- and (spend) 36-month windows; each entry leaving a window is a
// deadline.
#include <algorithm>

#include "projections/rules/families.h"

namespace lifecycle::projections::rules {

void RunWindows(Eval& ev) {
  CustomerRecord& r = ev.r;
  const int64_t today = ev.today;
  auto old = [&](int64_t day, int64_t window) { return !InWindow(day, today, window); };
  EraseIf(r.recent_days, [&](int32_t d) { return old(d, 730); });
  EraseIf(r.spend, [&](const SpendDay& s) { return old(s.day, 1095); });
  EraseIf(r.services, [&](const ServiceDay& s) { return old(s.day, 730); });
  EraseIf(r.referrals, [&](const ReferralDay& s) { return old(s.day, 730); });
  EraseIf(r.campaigns, [&](const CampaignDay& s) { return old(s.day, 365); });

  NextDeadline next(ev.now);
  int64_t spend_12m = 0, spend_prev = 0, spend_prev2 = 0;
  for (const auto& s : r.spend) {
    if (InWindow(s.day, today, 365)) {
      spend_12m += s.amount;
      next.Offer(LeavesWindowAt(s.day, 365));
    } else if (InWindow(s.day, today, 730)) {
      spend_prev += s.amount;
    } else {
      spend_prev2 += s.amount;
    }
    next.Offer(LeavesWindowAt(s.day, 730));
    next.Offer(LeavesWindowAt(s.day, 1095));
  }
  int32_t act_12m = 0, act_24m = 0;
  for (int64_t d : r.recent_days) {
    if (InWindow(d, today, 365)) {
      ++act_12m;
      next.Offer(LeavesWindowAt(d, 365));
    }
    ++act_24m;
    next.Offer(LeavesWindowAt(d, 730));
  }
  for (const auto& s : r.services) next.Offer(LeavesWindowAt(s.day, 730));
  for (const auto& c : r.campaigns) next.Offer(LeavesWindowAt(c.day, 365));
  for (const auto& f : r.referrals) next.Offer(LeavesWindowAt(f.day, 730));
  r.spend_12m = spend_12m;
  // The third year back counts once the ring holds all of it (today - 1095 on).
  if (r.spend_complete_from != 0) {
    if (r.spend_complete_from <= today - 1095) {
      r.spend_complete_from = 0;
    } else {
      spend_prev2 = 0;
      next.Offer((static_cast<int64_t>(r.spend_complete_from) + 1095) * kDay);
    }
  }
  r.spend_prev_12m = spend_prev;
  r.spend_prev2_12m = spend_prev2;
  r.activity_days_12m = act_12m;
  r.activity_days_24m = act_24m;
  r.due[kWindowsFamily] = next.get();
}

}  // namespace lifecycle::projections::rules
