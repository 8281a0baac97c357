// Lifecycle stage: the first of CHURNED, AT_RISK, WON_BACK, LOYAL, NEW, ACTIVE that
// holds (PROSPECT and LOST_PROSPECT without activity); every change is a transition
// with the first reason of the new stage. Also the reasons and the action a view
// shows, as codes with their numbers.
#include <algorithm>

#include "projections/rules/families.h"

namespace lifecycle::projections::rules {

namespace v1 = lifecycle::v1;

namespace {

bool ComplaintOverdue(const DomainConfig& c, const Complaint& k, int64_t now) {
  return k.open() && IsPast(now, SecondsOf(k.opened_ns) + c.complaint_sla_days * kDay);
}

bool AnyComplaintOverdue(const DomainConfig& c, const CustomerRecord& r, int64_t now) {
  return std::any_of(r.complaints.begin(), r.complaints.end(),
                     [&](const Complaint& k) { return ComplaintOverdue(c, k, now); });
}

bool InWonBackWindow(const DomainConfig& c, const CustomerRecord& r, int64_t now) {
  return r.won_back_at > 0 && !IsPast(now, r.won_back_at + c.winback_days * kDay);
}

v1::Stage StageOf(const DomainConfig& c, const CustomerRecord& r, int64_t now) {
  if (!r.has_activity()) {
    return r.last_deal_lost_at > 0 && r.last_deal_lost_at >= r.last_lead_at
               ? v1::STAGE_LOST_PROSPECT
               : v1::STAGE_PROSPECT;
  }
  const uint8_t f = r.stage_flags;
  if (f & (kPChurned | kInactive)) return v1::STAGE_CHURNED;
  if ((f & (kPAtRisk | kMaintenanceOverdue)) || AnyComplaintOverdue(c, r, now)) {
    return v1::STAGE_AT_RISK;
  }
  if (InWonBackWindow(c, r, now)) return v1::STAGE_WON_BACK;
  if (r.activity_days_24m >= c.loyal_visits && r.loyalty() >= c.loyal_min_score &&
      r.open_complaints == 0) {
    return v1::STAGE_LOYAL;
  }
  if (!IsPast(now, SecondsOf(r.first_activity_ns) + c.new_days * kDay)) return v1::STAGE_NEW;
  return v1::STAGE_ACTIVE;
}

}  // namespace

void RunStage(Eval& ev) {
  CustomerRecord& r = ev.r;
  const v1::Stage stage = StageOf(ev.c, r, ev.now);
  if (stage == r.stage) return;
  if (stage == v1::STAGE_LOST_PROSPECT && !r.ever_lost_prospect) {
    r.ever_lost_prospect = true;
    ev.fx.became_lost_prospect = true;
  }
  // The first activity of a customer who was ever a lost prospect (new inquiries in
  // between do not matter): recovered.
  const bool before_activity = r.stage == v1::STAGE_PROSPECT || r.stage == v1::STAGE_LOST_PROSPECT;
  if (before_activity && r.has_activity() && r.ever_lost_prospect) {
    ev.fx.recovered_lost_prospect = true;
  }
  TransitionEntry t;
  t.from = r.stage;
  t.to = static_cast<uint8_t>(stage);
  t.at = ev.now;
  t.offset = ev.offset;
  r.stage = static_cast<uint8_t>(stage);
  r.stage_since = ev.now;
  t.reason = StageReasons(ev.c, r, ev.now, /*first_only=*/true).front();
  ++r.transitions;
  ev.fx.transitions.push_back(t);
}

std::vector<Reason> StageReasons(const DomainConfig& c, const CustomerRecord& r, int64_t now,
                                 bool first_only) {
  std::vector<Reason> out;
  const int64_t last = SecondsOf(r.last_activity_ns);
  const uint8_t f = r.stage_flags;
  switch (r.stage) {
    case v1::STAGE_LOST_PROSPECT:
      out.push_back({.code = ReasonCode::kLostTheDeal, .a = r.last_lost_reason});
      break;
    case v1::STAGE_PROSPECT:
      out.push_back({.code = ReasonCode::kProspect});
      break;
    case v1::STAGE_CHURNED:
      if (f & kInactive) out.push_back({.code = ReasonCode::kInactive, .a = (now - last) / kDay});
      if (f & kPChurned) {
        out.push_back(
            {.code = ReasonCode::kPAliveBelowChurned, .p = PAliveAt(c, r, now), .x = c.churned_p});
      }
      break;
    case v1::STAGE_AT_RISK:
      if (f & kPAtRisk) {
        out.push_back({.code = ReasonCode::kPAliveBelowAtRisk,
                       .a = (now - last) / kDay,
                       .p = PAliveAt(c, r, now),
                       .x = c.at_risk_p});
      }
      for (const auto& k : r.complaints) {
        if (ComplaintOverdue(c, k, now)) out.push_back({.code = ReasonCode::kComplaintPastSla, .h = k.id});
      }
      if (f & kMaintenanceOverdue) {
        out.push_back({.code = ReasonCode::kMaintenanceOverdue,
                       .a = (now - MaintenanceDue(c, r)) / kDay});
      }
      break;
    case v1::STAGE_WON_BACK:
      out.push_back({.code = ReasonCode::kCameBack, .a = (now - r.won_back_at) / kDay});
      break;
    case v1::STAGE_LOYAL:
      out.push_back({.code = ReasonCode::kLoyalVisits, .a = r.activity_days_24m, .b = r.loyalty()});
      break;
    case v1::STAGE_NEW:
      out.push_back(
          {.code = ReasonCode::kFirstActivity, .a = (now - SecondsOf(r.first_activity_ns)) / kDay});
      break;
    case v1::STAGE_ACTIVE:
      out.push_back({.code = ReasonCode::kLastVisit, .a = (now - last) / kDay});
      break;
    default:
      break;
  }
  if (first_only && !out.empty()) return out;
  // One line per kind of overdue task, in the order the kinds first appear.
  const size_t tasks_from = out.size();
  for (const auto& t : r.tasks) {
    if (t.status == v1::TASK_STATUS_DONE || !IsPast(now, t.due_at + c.followup_grace_days * kDay)) {
      continue;
    }
    auto it = std::find_if(out.begin() + tasks_from, out.end(),
                           [&](const Reason& x) { return x.a == t.kind; });
    if (it == out.end()) {
      out.push_back({.code = ReasonCode::kTaskOverdue, .a = t.kind, .b = 1});
    } else {
      ++it->b;
    }
  }
  if (f & kTierAtRisk) {
    out.push_back({.code = ReasonCode::kTierDrops,
                   .a = r.tier,
                   .b = EpochDay(r.tier_drop_at) - EpochDay(now),
                   .c = r.points_to_keep_tier});
  }
  return out;
}

Action StageAction(const DomainConfig& c, const CustomerRecord& r, int64_t now) {
  switch (r.stage) {
    case v1::STAGE_LOST_PROSPECT: return Action::kReContactNewOffer;
    case v1::STAGE_PROSPECT: return Action::kFollowUpLead;
    case v1::STAGE_CHURNED: return Action::kWinBack;
    case v1::STAGE_AT_RISK:
      if (AnyComplaintOverdue(c, r, now)) return Action::kEscalateComplaint;
      if (r.stage_flags & kMaintenanceOverdue) return Action::kBookMaintenance;
      return Action::kPersonalCall;
    case v1::STAGE_WON_BACK: return Action::kKeepInTouch;
    case v1::STAGE_LOYAL: return Action::kReferralProgramme;
    case v1::STAGE_NEW: return Action::kCompleteCallbacks;
    case v1::STAGE_ACTIVE: return Action::kRoutineCare;
    default: return Action::kNone;
  }
}

}  // namespace lifecycle::projections::rules
