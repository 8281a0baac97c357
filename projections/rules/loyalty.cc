// The 10-point loyalty score from its four parts (satisfaction, regular maintenance,
// event participation, advocacy) over the trailing windows.
#include <algorithm>
#include <vector>

#include "projections/rules.h"
#include "projections/rules/families.h"

namespace lifecycle::projections::rules {

void RunLoyalty(Eval& ev) {
  CustomerRecord& r = ev.r;
  LoyaltyInputs in;
  in.has_survey = r.has_survey;
  in.latest_survey = r.latest_survey;
  in.unresolved_complaints = r.open_complaints;
  for (const auto& s : r.services) {
    in.services_24m += s.visits;
    in.on_schedule_24m += s.on_schedule;
  }
  // Distinct campaigns (an entry of an older layout, without its campaign, counts as one).
  std::vector<uint64_t> seen;
  for (const auto& c : r.campaigns) {
    if (c.campaign == 0) {
      ++in.campaigns_12m;
    } else if (std::find(seen.begin(), seen.end(), c.campaign) == seen.end()) {
      seen.push_back(c.campaign);
      ++in.campaigns_12m;
    }
  }
  for (const auto& f : r.referrals) {
    in.referrals_converted_24m += f.converted;
    in.referrals_other_24m += f.other;
  }
  const LoyaltyParts p = LoyaltyPartsOf(ev.c, in);
  r.satisfaction = static_cast<uint8_t>(p.satisfaction);
  r.regular_maintenance = static_cast<uint8_t>(p.regular_maintenance);
  r.event_participation = static_cast<uint8_t>(p.event_participation);
  r.advocacy = static_cast<uint8_t>(p.advocacy);
}

}  // namespace lifecycle::projections::rules
