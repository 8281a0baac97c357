// Alerts raised once per crossing: CHURN_RISK when P(alive) falls below at_risk_p
// (not for a customer already CHURNED),
// CHURNED on entering the stage, TIER_DOWNGRADE_RISK within the warning window.
// (COMPLAINT_UNRESOLVED, MAINTENANCE_OVERDUE and FOLLOWUP_OVERDUE are raised by their
// families, DEAL_LOST by the event.)
#include "projections/rules/families.h"

namespace lifecycle::projections::rules {

namespace v1 = lifecycle::v1;

AlertFact NewAlert(const Eval& ev, uint8_t kind, uint8_t severity, Discriminator disc,
                   std::vector<Reason> reasons) {
  AlertFact a;
  a.kind = kind;
  a.severity = severity;
  a.at = ev.now;
  a.offset = ev.offset;
  a.region = ev.r.region;
  a.advisor = ev.r.advisor;
  a.disc = disc;
  a.reasons = std::move(reasons);
  return a;
}

// What tells two crossings of one customer apart when one step of the fold sees both
// (a settling history's deadlines run at one record's offset): the crossing's instant.
static Discriminator Crossing(const Eval& ev) { return {.kind = Discriminator::kNumber, .number = ev.now}; }

void RunAlerts(Eval& ev) {
  CustomerRecord& r = ev.r;
  if (r.stage_flags & kPAtRisk) {
    // Not for a customer already CHURNED: the crossing counts as seen, so the next
    // alert comes at the next crossing after a win-back.
    if (r.stage == v1::STAGE_CHURNED) {
      r.churn_risk_raised = true;
    } else if (!r.churn_risk_raised) {
      r.churn_risk_raised = true;
      ev.raise.push_back(NewAlert(
          ev, v1::ALERT_KIND_CHURN_RISK, v1::SEVERITY_WARNING, Crossing(ev),
          {{.code = ReasonCode::kPAliveFell, .p = PAliveAt(ev.c, r, ev.now), .x = ev.c.at_risk_p},
           {.code = ReasonCode::kLastActivityDays,
            .a = (ev.now - SecondsOf(r.last_activity_ns)) / kDay}}));
    }
  } else {
    r.churn_risk_raised = false;
  }
  if (r.stage == v1::STAGE_CHURNED) {
    if (!r.churned_raised) {
      r.churned_raised = true;
      ev.raise.push_back(NewAlert(ev, v1::ALERT_KIND_CHURNED, v1::SEVERITY_CRITICAL, Crossing(ev),
                                  StageReasons(ev.c, r, ev.now)));
    }
  } else {
    r.churned_raised = false;
  }
  if (r.stage_flags & kTierAtRisk) {
    if (!r.tier_warning_raised) {
      r.tier_warning_raised = true;
      ev.raise.push_back(NewAlert(
          ev, v1::ALERT_KIND_TIER_DOWNGRADE_RISK, v1::SEVERITY_INFO,
          {.kind = Discriminator::kNumber, .number = r.tier_drop_at},
          {{.code = ReasonCode::kTierDropsIn, .a = r.tier, .b = EpochDay(r.tier_drop_at) - ev.today},
           {.code = ReasonCode::kPointsKeepTier, .a = r.points_to_keep_tier}}));
    }
  } else {
    r.tier_warning_raised = false;
  }
}

uint16_t WithDependents(uint16_t m) {
  if (m & (kRunWindows | kRunComplaints)) m |= kRunLoyalty;
  if (m & (kRunWindows | kRunChurn | kRunLoyalty)) m |= kRunValue;
  if (m & (kRunWindows | kRunComplaints | kRunMaintenance | kRunChurn | kRunLoyalty)) m |= kRunStage;
  if (m & (kRunPoints | kRunChurn | kRunStage)) m |= kRunAlerts;
  return m;
}

}  // namespace lifecycle::projections::rules
