// Value grade A/B/C from trailing spend, its growth and loyalty; RFM scores from
// recency, frequency and spend.
#include "projections/rules.h"
#include "projections/rules/families.h"

namespace lifecycle::projections::rules {

void RunValue(Eval& ev) {
  CustomerRecord& r = ev.r;
  r.grade = static_cast<uint8_t>(
      Grade(ev.c, r.has_activity(), r.spend_12m, r.spend_prev_12m, r.spend_prev2_12m, r.loyalty()));
  if (!r.has_activity()) {
    r.rfm_r = r.rfm_f = r.rfm_m = 0;
    return;
  }
  const RfmScores s = RfmScoresOf(ev.c, (ev.now - SecondsOf(r.last_activity_ns)) / kDay,
                                  r.activity_days_12m, r.spend_12m);
  r.rfm_r = static_cast<uint8_t>(s.r);
  r.rfm_f = static_cast<uint8_t>(s.f);
  r.rfm_m = static_cast<uint8_t>(s.m);
}

}  // namespace lifecycle::projections::rules
