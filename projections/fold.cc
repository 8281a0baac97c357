#include "projections/fold.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "projections/rules.h"

namespace lifecycle::projections {
namespace {

namespace v1 = lifecycle::v1;
using google::protobuf::Timestamp;
using rules::kDay;
using v1::CustomerState;
using v1::CustomerView;
using v1::Event;

Timestamp Ts(int64_t seconds) {
  Timestamp t;
  t.set_seconds(seconds);
  return t;
}

bool Before(const Timestamp& a, const Timestamp& b) {
  return a.seconds() < b.seconds() || (a.seconds() == b.seconds() && a.nanos() < b.nanos());
}
void KeepMin(const Timestamp& t, Timestamp* slot, bool has) {
  if (!has || Before(t, *slot)) *slot = t;
}
void KeepMax(const Timestamp& t, Timestamp* slot, bool has) {
  if (!has || Before(*slot, t)) *slot = t;
}

// Drops the oldest elements of a repeated field beyond `cap`.
template <typename R>
void CapFront(R* field, int cap) {
  if (field->size() > cap) field->erase(field->begin(), field->begin() + (field->size() - cap));
}

// Remembers `event_id`; returns false if it was already remembered.
bool Remember(const std::string& event_id, int window, CustomerState* state) {
  auto* ids = state->mutable_recent_event_ids();
  if (std::find(ids->begin(), ids->end(), event_id) != ids->end()) return false;
  if (window <= 0) return true;
  state->add_recent_event_ids(event_id);
  CapFront(ids, window);
  return true;
}

void MergeProfile(const v1::Profile& update, CustomerView* view) {
  // proto3 optional fields: MergeFrom copies exactly the fields that are present.
  view->mutable_profile()->MergeFrom(update);
  if (view->erased()) {  // once erased, personal fields are never stored again
    auto* p = view->mutable_profile();
    p->clear_name();
    p->clear_phone();
    p->clear_email();
    p->clear_birthday();
    p->clear_vin();
  }
}

// Inserts `day` into the sorted list of distinct activity days.
void AddActivityDay(int64_t day, CustomerState* state) {
  auto* days = state->mutable_activity_days();
  auto it = std::lower_bound(days->begin(), days->end(), day);
  if (it != days->end() && *it == day) return;
  const auto pos = it - days->begin();  // Add() may reallocate: keep an index
  days->Add(day);
  std::rotate(days->begin() + pos, days->end() - 1, days->end());
}

void RecordActivity(const Event& e, CustomerState* state) {
  auto* act = state->mutable_view()->mutable_activity();
  const bool had = state->activity_days_size() > 0;
  KeepMin(e.occurred_at(), act->mutable_first_activity(), had);
  KeepMax(e.occurred_at(), act->mutable_last_activity(), had);
  AddActivityDay(EpochDay(e.occurred_at()), state);
  act->set_activity_days(state->activity_days_size());
  if (state->view().stage() == v1::STAGE_CHURNED) state->set_won_back_at(e.occurred_at().seconds());
}

void AddSpend(int64_t day, int64_t amount, const std::string& currency, CustomerState* state) {
  auto* act = state->mutable_view()->mutable_activity();
  act->set_total_spend_minor(act->total_spend_minor() + amount);
  if (act->currency().empty() && !currency.empty()) act->set_currency(currency);
  if (amount == 0) return;
  auto* s = state->add_spend();
  s->set_day(day);
  s->set_amount_minor(amount);
}

void EarnPoints(const DomainConfig& c, int64_t at, int64_t amount, const std::string& source,
                CustomerState* state) {
  const int64_t pts = rules::PointsFor(c, amount);
  if (pts <= 0) return;
  auto* lots = state->mutable_view()->mutable_points()->mutable_lots();
  // Keep lots ordered by time earned (oldest first), so spending takes the oldest.
  int pos = lots->size();
  while (pos > 0 && lots->Get(pos - 1).earned_at().seconds() > at) --pos;
  v1::PointsLot lot;
  *lot.mutable_earned_at() = Ts(at);
  lot.set_remaining(pts);
  lot.set_source_id(source);
  lots->Add(std::move(lot));
  std::rotate(lots->begin() + pos, lots->end() - 1, lots->end());
  auto* q = state->add_qualifying();
  q->set_day(EpochDay(at));
  q->set_points(pts);
  q->set_source_id(source);
}

// Takes up to `pts` points from the lots, preferring those of `source` when given,
// then the oldest. Returns how many were taken.
int64_t TakePoints(int64_t pts, const std::string& source, CustomerState* state) {
  auto* lots = state->mutable_view()->mutable_points()->mutable_lots();
  int64_t taken = 0;
  auto take_from = [&](v1::PointsLot* lot) {
    const int64_t t = std::min(lot->remaining(), pts - taken);
    lot->set_remaining(lot->remaining() - t);
    taken += t;
  };
  if (!source.empty()) {
    for (auto& lot : *lots) {
      if (taken < pts && lot.source_id() == source) take_from(&lot);
    }
  }
  for (auto& lot : *lots) {
    if (taken < pts) take_from(&lot);
  }
  lots->erase(std::remove_if(lots->begin(), lots->end(),
                             [](const v1::PointsLot& l) { return l.remaining() <= 0; }),
              lots->end());
  return taken;
}

void AddTask(const DomainConfig& c, v1::FollowUpKind kind, int64_t due, const std::string& origin,
             CustomerView* view) {
  for (const auto& t : view->follow_ups()) {
    if (t.kind() == kind && t.origin_id() == origin) return;  // already planned
  }
  auto* t = view->add_follow_ups();
  t->set_kind(kind);
  *t->mutable_due_at() = Ts(due);
  t->set_status(v1::TASK_STATUS_OPEN);
  t->set_origin_id(origin);
  auto* tasks = view->mutable_follow_ups();
  while (tasks->size() > c.max_tasks) {
    // Drop the oldest closed task; if none is closed, the oldest task.
    auto it = std::find_if(tasks->begin(), tasks->end(), [](const v1::FollowUpTask& x) {
      return x.status() == v1::TASK_STATUS_DONE;
    });
    tasks->erase(it == tasks->end() ? tasks->begin() : it);
  }
}

bool Matches(v1::FollowUpKind contact, v1::FollowUpKind task) {
  if (contact == task) return true;
  return contact == v1::FOLLOW_UP_KIND_MAINTENANCE_REMINDER &&
         task == v1::FOLLOW_UP_KIND_FIRST_MAINTENANCE_REMINDER;
}

// Closes the open task of a matching kind that is due nearest to the contact (the
// earlier one on a tie): a callback on day 1002 answers the visit of day 1000, not a
// callback missed a year before.
void CloseTask(v1::FollowUpKind kind, int64_t at, CustomerView* view) {
  v1::FollowUpTask* best = nullptr;
  auto distance = [at](const v1::FollowUpTask& t) {
    const int64_t d = t.due_at().seconds() - at;
    return d < 0 ? -d : d;
  };
  for (auto& t : *view->mutable_follow_ups()) {
    if (t.status() == v1::TASK_STATUS_DONE || !Matches(kind, t.kind())) continue;
    if (!best || distance(t) < distance(*best) ||
        (distance(t) == distance(*best) && Before(t.due_at(), best->due_at()))) {
      best = &t;
    }
  }
  if (best) {
    best->set_status(v1::TASK_STATUS_DONE);
    *best->mutable_closed_at() = Ts(at);
  }
}

const char* KindName(v1::AlertKind k) {
  switch (k) {
    case v1::ALERT_KIND_CHURN_RISK: return "CHURN_RISK";
    case v1::ALERT_KIND_CHURNED: return "CHURNED";
    case v1::ALERT_KIND_COMPLAINT_UNRESOLVED: return "COMPLAINT_UNRESOLVED";
    case v1::ALERT_KIND_MAINTENANCE_OVERDUE: return "MAINTENANCE_OVERDUE";
    case v1::ALERT_KIND_FOLLOWUP_OVERDUE: return "FOLLOWUP_OVERDUE";
    case v1::ALERT_KIND_DEAL_LOST: return "DEAL_LOST";
    case v1::ALERT_KIND_TIER_DOWNGRADE_RISK: return "TIER_DOWNGRADE_RISK";
    default: return "UNSPECIFIED";
  }
}

const char* TaskWords(v1::FollowUpKind k) {
  switch (k) {
    case v1::FOLLOW_UP_KIND_CALLBACK_3_DAY: return "3-day callback after the sale";
    case v1::FOLLOW_UP_KIND_CALLBACK_7_DAY: return "7-day callback after the sale";
    case v1::FOLLOW_UP_KIND_MAINTENANCE_REMINDER: return "maintenance reminder";
    case v1::FOLLOW_UP_KIND_FIRST_MAINTENANCE_REMINDER: return "first-maintenance reminder";
    case v1::FOLLOW_UP_KIND_SURVEY_CALLBACK: return "satisfaction callback after the visit";
    case v1::FOLLOW_UP_KIND_HOLIDAY_GREETING: return "holiday greeting";
    default: return "follow-up";
  }
}

const char* ReasonWords(v1::DealLostReason r) {
  switch (r) {
    case v1::DEAL_LOST_REASON_PRICE: return "price";
    case v1::DEAL_LOST_REASON_COMPETITOR: return "a competitor's offer";
    case v1::DEAL_LOST_REASON_FINANCING: return "financing";
    case v1::DEAL_LOST_REASON_PRODUCT: return "the product";
    case v1::DEAL_LOST_REASON_SERVICE: return "our service";
    case v1::DEAL_LOST_REASON_OTHER: return "another reason";
    default: return "an unstated reason";
  }
}

struct AlertSpec {
  v1::AlertKind kind;
  v1::Severity severity;
  std::string disc;
  std::vector<std::string> reasons;
  std::string action;
};

void Raise(CustomerState* state_ptr, int64_t now, int64_t offset, AlertSpec spec,
           Effects* effects) {
  const CustomerState& state = *state_ptr;
  const v1::AlertKind kind = spec.kind;
  const v1::Severity severity = spec.severity;
  const std::string& disc = spec.disc;
  auto& reasons = spec.reasons;
  auto& action = spec.action;
  v1::Alert a;
  a.set_alert_id(AlertId(state.view().customer_id(), kind, offset, disc));
  a.set_customer_id(state.view().customer_id());
  a.set_kind(kind);
  a.set_severity(severity);
  *a.mutable_at() = Ts(now);
  a.set_p_alive(state.view().p_alive());
  a.set_loyalty(state.view().loyalty().total());
  for (auto& r : reasons) a.add_reasons(std::move(r));
  a.set_suggested_action(std::move(action));
  a.set_partition(state.view().partition());
  a.set_offset(offset);
  a.set_region(state.view().profile().region());
  auto* ids = state_ptr->mutable_view()->mutable_recent_alert_ids();
  *ids->Add() = a.alert_id();
  CapFront(ids, 20);
  effects->alerts.push_back(std::move(a));
}

std::string TierWords(v1::Tier t) {
  const std::string n = v1::Tier_Name(t);
  return n.rfind("TIER_", 0) == 0 ? n.substr(5) : n;
}

std::string Fmt2(double v) { return absl::StrFormat("%.2f", v); }

// Seconds at which `days` (a possibly fractional number of days after `origin`) is
// reached, rounded up so that "at or after" holds exactly; kNever if absurd.
int64_t DeadlineAfter(int64_t origin, double days) {
  if (!std::isfinite(days) || days > 1e6) return kNever;
  return origin + static_cast<int64_t>(std::ceil(days * static_cast<double>(kDay)));
}

}  // namespace

int64_t EpochDay(int64_t s) { return s >= 0 ? s / kDay : -((-s + kDay - 1) / kDay); }
int64_t EpochDay(const Timestamp& t) { return EpochDay(t.seconds()); }

std::string AlertId(const std::string& customer_id, v1::AlertKind kind, int64_t offset,
                    const std::string& discriminator) {
  uint64_t h = 1469598103934665603ull;
  auto mix = [&h](std::string_view s) {
    for (unsigned char ch : s) {
      h ^= ch;
      h *= 1099511628211ull;
    }
    h ^= 0xff;  // separator
    h *= 1099511628211ull;
  };
  mix(customer_id);
  mix(KindName(kind));
  mix(std::to_string(offset));
  mix(discriminator);
  char buf[24];
  std::snprintf(buf, sizeof(buf), "al-%016llx", static_cast<unsigned long long>(h));
  return buf;
}

FoldResult ApplyEvent(const DomainConfig& c, int32_t partition, int64_t offset, const Event& e,
                      CustomerState* state, Effects* effects) {
  if (!Remember(e.event_id(), c.dedup_window, state)) return FoldResult::kDuplicate;

  CustomerView* view = state->mutable_view();
  auto* act = view->mutable_activity();
  const bool first_event = act->event_count() == 0;
  const int64_t at = e.occurred_at().seconds();
  const int64_t day = EpochDay(at);
  view->set_customer_id(e.customer_id());
  view->set_partition(partition);
  view->set_last_offset(offset);
  KeepMin(e.occurred_at(), act->mutable_first_seen(), !first_event);
  KeepMax(e.occurred_at(), act->mutable_last_event(), !first_event);
  act->set_event_count(act->event_count() + 1);

  switch (e.payload_case()) {
    case Event::kCustomerRegistered:
      MergeProfile(e.customer_registered().profile(), view);
      break;
    case Event::kProfileUpdated:
      MergeProfile(e.profile_updated().profile(), view);
      break;
    case Event::kLeadCaptured:
      state->set_last_lead_at(std::max(state->last_lead_at(), at));
      break;
    case Event::kDealLost: {
      const auto& d = e.deal_lost();
      state->set_last_deal_lost_at(std::max(state->last_deal_lost_at(), at));
      auto* lost = view->add_lost_deals();
      lost->set_lead_id(d.lead_id());
      lost->set_reason(d.reason());
      lost->set_competitor(d.competitor());
      *lost->mutable_at() = e.occurred_at();
      CapFront(view->mutable_lost_deals(), c.max_lost_deals);
      effects->lost_deals.push_back(d.reason());
      std::vector<std::string> reasons = {absl::StrCat("deal lost on ", ReasonWords(d.reason()))};
      if (!d.competitor().empty()) reasons.push_back(absl::StrCat("bought from ", d.competitor()));
      Raise(state, at, offset,
            {v1::ALERT_KIND_DEAL_LOST, v1::SEVERITY_WARNING, d.lead_id(), std::move(reasons),
             absl::StrCat("re-contact in 3 months with an offer that answers ",
                          ReasonWords(d.reason()))},
            effects);
      break;
    }
    case Event::kPurchase: {
      const auto& p = e.purchase();
      act->set_purchases(act->purchases() + 1);
      RecordActivity(e, state);
      AddSpend(day, p.amount().amount_minor(), p.amount().currency(), state);
      EarnPoints(c, at, p.amount().amount_minor(), p.order_id(), state);
      if (p.kind() == v1::PURCHASE_KIND_VEHICLE) {
        state->set_has_vehicle(true);
        state->set_last_sale_at(std::max(state->last_sale_at(), at));
        if (!p.vehicle_model().empty()) view->mutable_profile()->set_vehicle_model(p.vehicle_model());
        const std::string origin = p.order_id().empty() ? e.event_id() : p.order_id();
        AddTask(c, v1::FOLLOW_UP_KIND_CALLBACK_3_DAY, at + c.callback_1_days * kDay, origin, view);
        AddTask(c, v1::FOLLOW_UP_KIND_CALLBACK_7_DAY, at + c.callback_2_days * kDay, origin, view);
        AddTask(c, v1::FOLLOW_UP_KIND_FIRST_MAINTENANCE_REMINDER,
                at + c.first_maintenance_days * kDay, origin, view);
      }
      break;
    }
    case Event::kRefund: {
      const auto& r = e.refund();
      AddSpend(day, -r.amount().amount_minor(), r.amount().currency(), state);
      const int64_t pts = rules::PointsFor(c, r.amount().amount_minor());
      TakePoints(pts, r.order_id(), state);
      // Qualifying points of that order go too (never below zero).
      int64_t left = pts;
      for (auto& q : *state->mutable_qualifying()) {
        if (left > 0 && q.source_id() == r.order_id()) {
          const int64_t t = std::min(q.points(), left);
          q.set_points(q.points() - t);
          left -= t;
        }
      }
      break;
    }
    case Event::kServiceVisit: {
      const auto& s = e.service_visit();
      state->set_has_vehicle(true);
      state->set_last_service_at(std::max(state->last_service_at(), at));
      if (s.warranty_status() != v1::WARRANTY_STATUS_UNSPECIFIED) {
        view->set_warranty_status(s.warranty_status());
      }
      if (s.other_garage()) break;  // the car was maintained, but not with us
      act->set_service_visits(act->service_visits() + 1);
      RecordActivity(e, state);
      AddSpend(day, s.amount().amount_minor(), s.amount().currency(), state);
      EarnPoints(c, at, s.amount().amount_minor(), s.visit_id(), state);
      auto* sv = state->add_services();
      sv->set_day(day);
      sv->set_on_schedule(s.on_schedule());
      CloseTask(v1::FOLLOW_UP_KIND_MAINTENANCE_REMINDER, at, view);
      AddTask(c, v1::FOLLOW_UP_KIND_SURVEY_CALLBACK, at + c.survey_callback_days * kDay,
              s.visit_id().empty() ? e.event_id() : s.visit_id(), view);
      break;
    }
    case Event::kComplaint: {
      const auto& k = e.complaint();
      bool known = false;
      for (const auto& r : view->complaints()) known = known || r.complaint_id() == k.complaint_id();
      if (!known) {
        auto* r = view->add_complaints();
        r->set_complaint_id(k.complaint_id());
        r->set_category(k.category());
        r->set_severity(k.severity());
        *r->mutable_opened_at() = e.occurred_at();
      }
      break;
    }
    case Event::kComplaintResolved: {
      const auto& k = e.complaint_resolved();
      v1::ComplaintRecord* rec = nullptr;
      for (auto& r : *view->mutable_complaints()) {
        if (r.complaint_id() == k.complaint_id()) rec = &r;
      }
      if (!rec) {  // resolved before we heard of it: record it as opened and resolved
        rec = view->add_complaints();
        rec->set_complaint_id(k.complaint_id());
        *rec->mutable_opened_at() = e.occurred_at();
      }
      *rec->mutable_resolved_at() = e.occurred_at();
      rec->set_satisfied(k.satisfied());
      break;
    }
    case Event::kSatisfactionSurvey:
      if (!state->has_survey() || at >= state->latest_survey_at()) {
        state->set_has_survey(true);
        state->set_latest_survey(e.satisfaction_survey().score());
        state->set_latest_survey_at(at);
      }
      break;
    case Event::kCampaignParticipation:
      if (e.campaign_participation().attended() || e.campaign_participation().brought_prospect()) {
        state->add_campaign_days(day);
      }
      break;
    case Event::kReferral: {
      auto* r = state->add_referrals();
      r->set_day(day);
      r->set_converted(e.referral().converted());
      break;
    }
    case Event::kFollowUpContact:
      CloseTask(e.follow_up_contact().kind(), at, view);
      break;
    case Event::kPointsRedeemed: {
      const int64_t taken = TakePoints(e.points_redeemed().points(), "", state);
      auto* pts = view->mutable_points();
      pts->set_redeemed_total(pts->redeemed_total() + taken);
      break;
    }
    case Event::kCustomerErased:
      view->set_erased(true);
      MergeProfile(v1::Profile(), view);
      break;
    default:
      break;
  }
  return FoldResult::kApplied;
}

void Evaluate(const DomainConfig& c, int64_t now, int64_t offset, CustomerState* state,
              Effects* effects) {
  CustomerView* view = state->mutable_view();
  const int64_t today = EpochDay(now);
  int64_t next = kNever;
  // Alerts are raised at the end, so they carry this evaluation's P(alive) and loyalty.
  std::vector<AlertSpec> raise;
  auto candidate = [&next, now](int64_t t) {
    if (t > now && t < next) next = t;
  };

  // --- Trailing windows: drop what fell out; each entry leaving a window is a deadline.
  auto prune = [today](auto* field, int64_t window_days) {
    field->erase(std::remove_if(field->begin(), field->end(),
                                [&](const auto& e) { return e.day() <= today - window_days; }),
                 field->end());
  };
  prune(state->mutable_spend(), 730);
  prune(state->mutable_services(), 730);
  prune(state->mutable_referrals(), 730);
  prune(state->mutable_qualifying(), 365);
  {
    auto* cd = state->mutable_campaign_days();
    cd->erase(std::remove_if(cd->begin(), cd->end(), [&](int64_t d) { return d <= today - 365; }),
              cd->end());
  }
  int64_t spend_12m = 0, spend_prev = 0;
  for (const auto& s : state->spend()) {
    if (s.day() > today - 365) {
      spend_12m += s.amount_minor();
      candidate((s.day() + 365) * kDay);
    } else {
      spend_prev += s.amount_minor();
    }
    candidate((s.day() + 730) * kDay);
  }
  int act_12m = 0, act_24m = 0;
  for (int64_t d : state->activity_days()) {
    if (d > today - 365) {
      ++act_12m;
      candidate((d + 365) * kDay);
    }
    if (d > today - 730) {
      ++act_24m;
      candidate((d + 730) * kDay);
    }
  }
  rules::LoyaltyInputs li;
  li.has_survey = state->has_survey();
  li.latest_survey = state->latest_survey();
  for (const auto& s : state->services()) {
    ++li.services_24m;
    if (s.on_schedule()) ++li.on_schedule_24m;
    candidate((s.day() + 730) * kDay);
  }
  for (int64_t d : state->campaign_days()) {
    ++li.campaigns_12m;
    candidate((d + 365) * kDay);
  }
  for (const auto& r : state->referrals()) {
    (r.converted() ? li.referrals_converted_24m : li.referrals_other_24m)++;
    candidate((r.day() + 730) * kDay);
  }

  // --- Points: expiry of lots, qualifying points and the tier.
  auto* pts = view->mutable_points();
  {
    auto* lots = pts->mutable_lots();
    int64_t expired = 0;
    for (const auto& l : *lots) {
      if (l.earned_at().seconds() + c.points_ttl_days * kDay <= now) expired += l.remaining();
    }
    lots->erase(std::remove_if(lots->begin(), lots->end(),
                               [&](const v1::PointsLot& l) {
                                 return l.earned_at().seconds() + c.points_ttl_days * kDay <= now;
                               }),
                lots->end());
    pts->set_expired_total(pts->expired_total() + expired);
    int64_t balance = 0;
    for (const auto& l : *lots) {
      balance += l.remaining();
      candidate(l.earned_at().seconds() + c.points_ttl_days * kDay);
    }
    pts->set_balance(balance);
  }
  int64_t qualifying = 0;
  std::vector<std::pair<int64_t, int64_t>> q_by_day;  // (day, points)
  for (const auto& q : state->qualifying()) {
    qualifying += q.points();
    q_by_day.emplace_back(q.day(), q.points());
    candidate((q.day() + 365) * kDay);
  }
  std::sort(q_by_day.begin(), q_by_day.end());
  const bool has_activity = state->activity_days_size() > 0;
  const v1::Tier tier = (has_activity || qualifying > 0) ? rules::TierOf(c, qualifying)
                                                         : v1::TIER_UNSPECIFIED;
  pts->set_qualifying_12m(qualifying);
  pts->set_tier(tier);
  pts->clear_tier_drop_at();
  pts->set_points_to_keep_tier(0);
  bool tier_at_risk = false;
  if (tier > v1::TIER_BRONZE) {
    // Without new points, the tier drops when enough entries leave the window.
    const int64_t threshold = rules::TierThreshold(c, tier);
    int64_t left = qualifying;
    for (const auto& [d, p] : q_by_day) {
      left -= p;
      if (left < threshold) {
        const int64_t drop_at = (d + 365) * kDay;
        const int64_t warn_at = drop_at - c.tier_warning_days * kDay;
        if (now >= warn_at) {
          tier_at_risk = true;
          *pts->mutable_tier_drop_at() = Ts(drop_at);
          pts->set_points_to_keep_tier(threshold - left);
        } else {
          candidate(warn_at);
        }
        break;
      }
    }
  }

  // --- Complaints, maintenance, follow-up tasks.
  int open_complaints = 0;
  std::vector<std::string> overdue_complaints;
  for (auto& r : *view->mutable_complaints()) {
    if (r.has_resolved_at()) continue;
    ++open_complaints;
    const int64_t due = r.opened_at().seconds() + c.complaint_sla_days * kDay;
    if (now >= due) {
      overdue_complaints.push_back(r.complaint_id());
      if (!r.sla_alerted()) {
        r.set_sla_alerted(true);
        const int64_t days_open = (now - r.opened_at().seconds()) / kDay;
        raise.push_back(
            {v1::ALERT_KIND_COMPLAINT_UNRESOLVED, v1::SEVERITY_CRITICAL, r.complaint_id(),
              {absl::StrCat("complaint ", r.complaint_id(),
                            r.category().empty() ? "" : absl::StrCat(" (", r.category(), ")"),
                            " open for ", days_open, " days, past the ", c.complaint_sla_days,
                            "-day promise")},
              "escalate the complaint to the service manager and call the customer today"});
      }
    } else {
      candidate(due);
    }
  }
  {  // keep the newest complaints; open ones are never dropped
    auto* cs = view->mutable_complaints();
    while (cs->size() > c.max_complaints) {
      auto it = std::find_if(cs->begin(), cs->end(),
                             [](const v1::ComplaintRecord& r) { return r.has_resolved_at(); });
      if (it == cs->end()) break;
      cs->erase(it);
    }
  }
  li.unresolved_complaints = open_complaints;

  bool maintenance_overdue = false;
  int64_t maintenance_due = 0;
  if (state->has_vehicle()) {
    maintenance_due =
        std::max(state->last_service_at(), state->last_sale_at()) + c.maintenance_interval_days * kDay;
    *view->mutable_maintenance_due() = Ts(maintenance_due);
    const int64_t overdue_at = maintenance_due + c.maintenance_grace_days * kDay;
    if (now >= overdue_at) {
      maintenance_overdue = true;
      if (state->maintenance_alerted_due() != maintenance_due) {
        state->set_maintenance_alerted_due(maintenance_due);
        raise.push_back({v1::ALERT_KIND_MAINTENANCE_OVERDUE, v1::SEVERITY_WARNING,
                         std::to_string(maintenance_due),
                         {absl::StrCat("maintenance was due ", (now - maintenance_due) / kDay,
                                       " days ago and the car has not been in")},
                         "service callback: book the maintenance visit"});
      }
    } else {
      candidate(overdue_at);
    }
  }

  std::vector<std::string> overdue_tasks;
  for (auto& t : *view->mutable_follow_ups()) {
    if (t.status() == v1::TASK_STATUS_DONE) continue;
    const int64_t overdue_at = t.due_at().seconds() + c.followup_grace_days * kDay;
    if (now >= overdue_at) {
      overdue_tasks.push_back(TaskWords(t.kind()));
      if (t.status() != v1::TASK_STATUS_OVERDUE) {
        t.set_status(v1::TASK_STATUS_OVERDUE);
        raise.push_back({v1::ALERT_KIND_FOLLOWUP_OVERDUE, v1::SEVERITY_INFO,
                         absl::StrCat(t.kind(), "/", t.origin_id()),
                         {absl::StrCat(TaskWords(t.kind()), " is ",
                                       (now - t.due_at().seconds()) / kDay, " days overdue")},
                         absl::StrCat("do the ", TaskWords(t.kind()), " now")});
      }
    } else {
      candidate(overdue_at);
    }
  }

  // --- P(alive), loyalty, grade, RFM.
  const int64_t first = view->activity().first_activity().seconds();
  const int64_t last = view->activity().last_activity().seconds();
  bool p_at_risk = false, p_churned = false, inactive_churned = false;
  view->clear_churn_risk_at();
  if (has_activity) {
    const int64_t x = state->activity_days_size() - 1;
    const double t_x = static_cast<double>(last - first) / kDay;
    const double T = static_cast<double>(std::max(now, last) - first) / kDay;
    view->set_p_alive(rules::PAlive(c, x, t_x, T));
    const int64_t risk_at = DeadlineAfter(first, rules::CrossingDays(c, x, t_x, c.at_risk_p));
    const int64_t churn_at = DeadlineAfter(first, rules::CrossingDays(c, x, t_x, c.churned_p));
    if (risk_at != kNever) *view->mutable_churn_risk_at() = Ts(risk_at);
    p_at_risk = now >= risk_at;
    p_churned = now >= churn_at;
    candidate(risk_at);
    candidate(churn_at);
    const int64_t inactive_at = last + c.churn_days * kDay;
    inactive_churned = now >= inactive_at;
    candidate(inactive_at);
    candidate(first + c.new_days * kDay);
    for (int64_t cut : c.rfm_recency_days) candidate(last + (cut + 1) * kDay);
  } else {
    view->set_p_alive(0);
  }
  *view->mutable_loyalty() = rules::Loyalty(c, li);
  const int loyalty = view->loyalty().total();
  view->set_grade(rules::Grade(c, has_activity, spend_12m, spend_prev, loyalty));
  view->set_value_class(rules::ClassOf(view->grade()));
  if (has_activity) {
    *view->mutable_rfm() = rules::RfmOf(c, (now - last) / kDay, act_12m, spend_12m);
  } else {
    view->clear_rfm();
  }
  view->set_spend_12m_minor(spend_12m);
  view->set_spend_prev_12m_minor(spend_prev);
  view->set_activity_days_12m(act_12m);
  view->set_activity_days_24m(act_24m);
  view->set_open_complaints(open_complaints);

  // --- Stage: the first of CHURNED, AT_RISK, WON_BACK, LOYAL, NEW, ACTIVE that holds.
  std::vector<std::string> reasons;
  std::string action;
  v1::Stage stage;
  const bool won_back_window = state->won_back_at() > 0 &&
                               now < state->won_back_at() + c.winback_days * kDay;
  if (state->won_back_at() > 0) candidate(state->won_back_at() + c.winback_days * kDay);
  if (!has_activity) {
    if (state->last_deal_lost_at() > 0 && state->last_deal_lost_at() >= state->last_lead_at()) {
      stage = v1::STAGE_LOST_PROSPECT;
      const auto& ld = view->lost_deals();
      reasons.push_back(absl::StrCat(
          "lost the deal on ",
          ld.empty() ? "an unstated reason" : ReasonWords(ld.rbegin()->reason())));
      action = "re-contact in 3 months with a new offer";
    } else {
      stage = v1::STAGE_PROSPECT;
      reasons.push_back("known, no purchase or service visit yet");
      action = "follow up the lead: invite to a test drive";
    }
  } else if (p_churned || inactive_churned) {
    stage = v1::STAGE_CHURNED;
    if (inactive_churned) {
      reasons.push_back(absl::StrCat("no purchase or service for ", (now - last) / kDay, " days"));
    }
    if (p_churned) {
      reasons.push_back(absl::StrCat("P(alive) ", Fmt2(view->p_alive()), " is below ",
                                     Fmt2(c.churned_p)));
    }
    action = "win-back offer: personal call with a service voucher";
  } else if (p_at_risk || !overdue_complaints.empty() || maintenance_overdue) {
    stage = v1::STAGE_AT_RISK;
    if (p_at_risk) {
      reasons.push_back(absl::StrCat("P(alive) ", Fmt2(view->p_alive()), " is below ",
                                     Fmt2(c.at_risk_p), "; last visit ", (now - last) / kDay,
                                     " days ago"));
    }
    for (const auto& id : overdue_complaints) {
      reasons.push_back(absl::StrCat("complaint ", id, " unresolved past the SLA"));
    }
    if (maintenance_overdue) {
      reasons.push_back(absl::StrCat("maintenance overdue by ", (now - maintenance_due) / kDay,
                                     " days"));
    }
    action = !overdue_complaints.empty() ? "escalate the open complaint"
             : maintenance_overdue       ? "service callback: book the maintenance"
                                         : "personal call from the salesperson; offer a check-up";
  } else if (won_back_window) {
    stage = v1::STAGE_WON_BACK;
    reasons.push_back(absl::StrCat("came back ", (now - state->won_back_at()) / kDay,
                                   " days ago after churning"));
    action = "keep in touch: satisfaction callback and maintenance plan";
  } else if (act_24m >= c.loyal_visits && loyalty >= c.loyal_min_score && open_complaints == 0) {
    stage = v1::STAGE_LOYAL;
    reasons.push_back(absl::StrCat(act_24m, " visits in 24 months, loyalty ", loyalty, "/10"));
    action = "invite to the referral programme and member events";
  } else if (now < first + c.new_days * kDay) {
    stage = v1::STAGE_NEW;
    reasons.push_back(absl::StrCat("first purchase or service ", (now - first) / kDay, " days ago"));
    action = "complete the 3- and 7-day callbacks; book the first maintenance";
  } else {
    stage = v1::STAGE_ACTIVE;
    reasons.push_back(absl::StrCat("last visit ", (now - last) / kDay, " days ago"));
    action = "routine care: maintenance reminders";
  }
  {  // one line per kind of overdue task: "satisfaction callback after the visit overdue (2)"
    std::map<std::string, int> by_kind;
    std::vector<std::string> order;
    for (const auto& t : overdue_tasks) {
      if (by_kind[t]++ == 0) order.push_back(t);
    }
    for (const auto& t : order) {
      reasons.push_back(by_kind[t] > 1 ? absl::StrCat(t, " overdue (", by_kind[t], ")")
                                       : absl::StrCat(t, " overdue"));
    }
  }
  if (tier_at_risk) {
    reasons.push_back(absl::StrCat(TierWords(tier), " tier drops in ",
                                   EpochDay(pts->tier_drop_at()) - today, " days unless ",
                                   pts->points_to_keep_tier(), " more points are earned"));
  }

  if (stage != view->stage()) {
    v1::StageTransition tr;
    tr.set_from(view->stage());
    tr.set_to(stage);
    *tr.mutable_at() = Ts(now);
    tr.set_reason(reasons.empty() ? "" : reasons.front());
    tr.set_offset(offset);
    effects->transitions.push_back(tr);
    *view->add_transitions() = std::move(tr);
    CapFront(view->mutable_transitions(), c.max_transitions);
    view->set_stage(stage);
    *view->mutable_stage_since() = Ts(now);
  }
  view->clear_reasons();
  for (auto& r : reasons) view->add_reasons(std::move(r));
  view->set_suggested_action(action);

  // --- Alerts raised once per crossing.
  if (p_at_risk) {
    if (!state->churn_risk_raised()) {
      state->set_churn_risk_raised(true);
      raise.push_back(
          {v1::ALERT_KIND_CHURN_RISK, v1::SEVERITY_WARNING, "",
           {absl::StrCat("P(alive) fell to ", Fmt2(view->p_alive()), ", below ", Fmt2(c.at_risk_p)),
            absl::StrCat("last purchase or service ", (now - last) / kDay, " days ago")},
           "personal call from the salesperson; offer a check-up"});
    }
  } else {
    state->set_churn_risk_raised(false);
  }
  if (stage == v1::STAGE_CHURNED) {
    if (!state->churned_raised()) {
      state->set_churned_raised(true);
      raise.push_back({v1::ALERT_KIND_CHURNED, v1::SEVERITY_CRITICAL, "",
                       std::vector<std::string>(view->reasons().begin(), view->reasons().end()),
                       "win-back offer: personal call with a service voucher"});
    }
  } else {
    state->set_churned_raised(false);
  }
  if (tier_at_risk) {
    if (!state->tier_warning_raised()) {
      state->set_tier_warning_raised(true);
      raise.push_back({v1::ALERT_KIND_TIER_DOWNGRADE_RISK, v1::SEVERITY_INFO,
                       std::to_string(tier),
                       {absl::StrCat(TierWords(tier), " drops in ",
                                     EpochDay(pts->tier_drop_at()) - today, " days"),
                        absl::StrCat(pts->points_to_keep_tier(), " more points keep it")},
                       "remind the customer of member benefits and invite them in"});
    }
  } else {
    state->set_tier_warning_raised(false);
  }
  for (auto& spec : raise) Raise(state, now, offset, std::move(spec), effects);

  view->set_config_version(c.version);
  *view->mutable_evaluated_at() = Ts(now);
  state->set_next_deadline(next);
  if (next != kNever) {
    *view->mutable_next_deadline() = Ts(next);
  } else {
    view->clear_next_deadline();
  }
}

}  // namespace lifecycle::projections
