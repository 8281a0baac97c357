// Complaints: one open past complaint_sla_days raises COMPLAINT_UNRESOLVED once; the
// newest complaints are kept, open ones never dropped.
#include <algorithm>

#include "projections/rules/families.h"

namespace lifecycle::projections::rules {

namespace v1 = lifecycle::v1;

void RunComplaints(Eval& ev) {
  CustomerRecord& r = ev.r;
  const DomainConfig& c = ev.c;
  NextDeadline next(ev.now);
  int32_t open = 0;
  for (auto& k : r.complaints) {
    if (!k.open()) continue;
    ++open;
    const int64_t opened = SecondsOf(k.opened_ns);
    const int64_t due = opened + c.complaint_sla_days * kDay;
    if (!IsPast(ev.now, due)) {
      next.Offer(FirstInstantPast(due));
      continue;
    }
    if (k.sla_alerted) continue;
    k.sla_alerted = true;
    Reason why{.code = ReasonCode::kComplaintOpen,
               .a = (ev.now - opened) / kDay,
               .b = c.complaint_sla_days,
               .h = k.id,
               .h2 = k.category};
    ev.raise.push_back(NewAlert(ev, v1::ALERT_KIND_COMPLAINT_UNRESOLVED, v1::SEVERITY_CRITICAL,
                                {.kind = Discriminator::kText, .text = k.id}, {why}));
  }
  while (static_cast<int>(r.complaints.size()) > c.max_complaints) {
    auto it = std::find_if(r.complaints.begin(), r.complaints.end(),
                           [](const Complaint& k) { return !k.open(); });
    if (it == r.complaints.end()) break;
    r.complaints.erase(it);
  }
  r.open_complaints = open;
  r.due[kComplaintsFamily] = next.get();
}

}  // namespace lifecycle::projections::rules
