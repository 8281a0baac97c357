#include "projections/fold.h"

#include <cmath>
#include <limits>

#include <algorithm>

#include "projections/greetings.h"
#include "projections/rules.h"

namespace lifecycle::projections {
namespace {

namespace v1 = lifecycle::v1;
using v1::Event;
using namespace rules;  // NOLINT: the family names

int64_t Nanos(const google::protobuf::Timestamp& t) { return ToNanos(t.seconds(), t.nanos()); }

// Remembers the event id; false if it was already remembered.
bool Remember(uint64_t id, int window, CustomerRecord* r) {
  auto& ids = r->recent_events;
  if (std::find(ids.begin(), ids.end(), id) != ids.end()) return false;
  if (window <= 0) return true;
  ids.push_back(id);
  if (static_cast<int>(ids.size()) > window) ids.erase(ids.begin(), ids.end() - window);
  return true;
}

// A text views or alerts will show: its hash, with the words for the dictionary.
uint64_t Keep(const std::string& s, Effects* fx) {
  const uint64_t h = TextHash(s);
  if (h != 0) fx->texts.emplace_back(h, s);
  return h;
}

// A name counters and listing indexes are keyed by (region, vehicle model, industry).
uint64_t KeepName(const std::string& s, Effects* fx) {
  const uint64_t h = TextHash(s);
  if (h != 0) fx->names.emplace_back(h, s);
  return h;
}

void MergeProfile(const v1::Profile& p, CustomerRecord* r, Effects* fx) {
  if (p.has_region()) r->region = KeepName(p.region(), fx);
  if (p.has_industry()) r->industry = KeepName(p.industry(), fx);
  if (p.has_vehicle_model()) r->vehicle_model = KeepName(p.vehicle_model(), fx);
  if (p.has_age_band()) r->age_band = static_cast<uint8_t>(p.age_band());
  if (p.has_advisor_id()) r->advisor = KeepName(p.advisor_id(), fx);
  if (p.has_birthday()) r->birthday = BirthdayOf(p.birthday());
}

// An alert an event raises by itself. Its P(alive) and loyalty are those after the
// event: Evaluate, which runs next, fills them in (NaN until then).
AlertFact EventAlert(uint8_t kind, uint8_t severity, int64_t at, int64_t offset,
                     const CustomerRecord& r, Discriminator disc, std::vector<Reason> reasons) {
  AlertFact a;
  a.kind = kind;
  a.severity = severity;
  a.at = at;
  a.offset = offset;
  a.p_alive = std::numeric_limits<double>::quiet_NaN();
  a.region = r.region;
  a.advisor = r.advisor;
  a.disc = disc;
  a.reasons = std::move(reasons);
  return a;
}

void AddActivityDay(int32_t day, CustomerRecord* r) {
  auto& days = r->recent_days;
  auto it = std::lower_bound(days.begin(), days.end(), day);
  if (it != days.end() && *it == day) return;
  // A day older than the ring (a late event beyond 24 months) cannot be checked
  // against it; the first activity day is the one such day that is known.
  if (r->activity_days > 0 && day == EpochDay(SecondsOf(r->first_activity_ns))) return;
  days.insert(it, day);
  ++r->activity_days;
}

void RecordActivity(int64_t at_ns, CustomerRecord* r) {
  const bool had = r->activity_days > 0;
  if (r->stage == v1::STAGE_CHURNED) r->won_back_at = SecondsOf(at_ns);
  const int32_t day = static_cast<int32_t>(EpochDay(SecondsOf(at_ns)));
  // A new first activity day: the old one's spend becomes a repeat day's.
  if (!had || day < EpochDay(SecondsOf(r->first_activity_ns))) r->first_day_spend = 0;
  AddActivityDay(day, r);
  if (!had || at_ns < r->first_activity_ns) r->first_activity_ns = at_ns;
  if (!had || at_ns > r->last_activity_ns) r->last_activity_ns = at_ns;
}

// Per-day entries of a ring kept in day order; returns the entry of `day`.
template <typename Ring, typename T = typename Ring::value_type>
T& DayEntry(Ring& ring, int32_t day) {
  auto it = std::lower_bound(ring.begin(), ring.end(), day,
                             [](const T& e, int32_t d) { return e.day < d; });
  if (it != ring.end() && it->day == day) return *it;
  return *ring.insert(it, T{.day = day});
}

void AddSpend(int32_t day, int64_t amount, const std::string& currency, CustomerRecord* r) {
  r->total_spend += amount;
  if (r->activity_days > 0 && day == EpochDay(SecondsOf(r->first_activity_ns))) {
    r->first_day_spend += amount;
  }
  if (r->currency == 0 && !currency.empty()) r->currency = PackCurrency(currency);
  if (amount == 0) return;
  DayEntry(r->spend, day).amount += amount;
}

void EarnPoints(const DomainConfig& c, int64_t at, int64_t amount, uint64_t source,
                CustomerRecord* r) {
  const int64_t pts = PointsFor(c, amount);
  if (pts <= 0) return;
  // Lots stay ordered by time earned (oldest first), so spending takes the oldest.
  auto it = std::upper_bound(r->lots.begin(), r->lots.end(), at,
                             [](int64_t t, const PointsLot& l) { return t < l.earned_at; });
  r->lots.insert(it, PointsLot{.earned_at = at, .remaining = pts, .source = source});
  r->qualifying.push_back(
      {.day = static_cast<int32_t>(EpochDay(at)), .points = pts, .source = source});
}

// Takes up to `pts` points, from the lots of `source` first (when given), then the
// oldest. Returns how many were taken.
int64_t TakePoints(int64_t pts, uint64_t source, CustomerRecord* r) {
  int64_t taken = 0;
  auto take_from = [&](PointsLot& lot) {
    const int64_t t = std::min(lot.remaining, pts - taken);
    lot.remaining -= t;
    taken += t;
  };
  if (source != 0) {
    for (auto& lot : r->lots) {
      if (taken < pts && lot.source == source) take_from(lot);
    }
  }
  for (auto& lot : r->lots) {
    if (taken < pts) take_from(lot);
  }
  EraseIf(r->lots, [](const PointsLot& l) { return l.remaining <= 0; });
  return taken;
}

void AddTask(const DomainConfig& c, v1::FollowUpKind kind, int64_t due, uint64_t origin,
             CustomerRecord* r) {
  for (const auto& t : r->tasks) {
    if (t.kind == kind && t.origin == origin) return;  // already planned
  }
  r->tasks.push_back({.kind = static_cast<uint8_t>(kind),
                      .status = static_cast<uint8_t>(v1::TASK_STATUS_OPEN),
                      .due_at = due,
                      .origin = origin});
  while (static_cast<int>(r->tasks.size()) > c.max_tasks) {
    // Drop the oldest closed task; open ones are never dropped (the cap may be
    // exceeded while they are open).
    auto it = std::find_if(r->tasks.begin(), r->tasks.end(),
                           [](const Task& t) { return t.status == v1::TASK_STATUS_DONE; });
    if (it == r->tasks.end()) break;
    r->tasks.erase(it);
  }
}

bool Matches(uint8_t contact, uint8_t task) {
  if (contact == task) return true;
  return contact == v1::FOLLOW_UP_KIND_MAINTENANCE_REMINDER &&
         task == v1::FOLLOW_UP_KIND_FIRST_MAINTENANCE_REMINDER;
}

// DOMAIN.md: a contact closes the open task of its kind for the origin it names (the
// sale, visit or lead); without an origin, the oldest open task of its kind (the
// earliest due). Returns whether one was closed.
bool CloseTask(uint8_t kind, uint64_t origin, int64_t at, CustomerRecord* r) {
  Task* best = nullptr;
  for (auto& t : r->tasks) {
    if (t.status == v1::TASK_STATUS_DONE || !Matches(kind, t.kind)) continue;
    if (origin != 0 && t.origin != origin) continue;
    if (!best || t.due_at < best->due_at) best = &t;
  }
  if (!best) return false;
  best->status = v1::TASK_STATUS_DONE;
  best->closed_at = at;
  return true;
}

uint16_t ApplyPayload(const DomainConfig& c, int64_t offset, const Event& e, CustomerRecord* r,
                      Effects* fx) {
  const int64_t at = e.occurred_at().seconds();
  const int64_t at_ns = Nanos(e.occurred_at());
  const int32_t day = static_cast<int32_t>(EpochDay(at));
  switch (e.payload_case()) {
    case Event::kCustomerRegistered:
      MergeProfile(e.customer_registered().profile(), r, fx);
      return 0;
    case Event::kProfileUpdated:
      MergeProfile(e.profile_updated().profile(), r, fx);
      return 0;
    case Event::kLeadCaptured:
      if (at >= r->last_lead_at && !e.lead_captured().interest().empty()) {
        r->interest = KeepName(e.lead_captured().interest(), fx);
      }
      r->last_lead_at = std::max(r->last_lead_at, at);
      return kRunStage;
    case Event::kDealLost: {
      const auto& d = e.deal_lost();
      r->last_deal_lost_at = std::max(r->last_deal_lost_at, at);
      r->last_lost_reason = static_cast<uint8_t>(d.reason());
      ++r->lost_deals;
      fx->lost_deals.push_back({.lead_id = d.lead_id(),
                                .competitor = d.competitor(),
                                .reason = static_cast<uint8_t>(d.reason()),
                                .at_ns = at_ns});
      AlertFact a = EventAlert(v1::ALERT_KIND_DEAL_LOST, v1::SEVERITY_WARNING, at, offset, *r,
                               {.kind = Discriminator::kText, .text = Keep(d.lead_id(), fx)},
                               {{.code = ReasonCode::kDealLostOn, .a = d.reason()}});
      if (!d.competitor().empty()) {
        a.reasons.push_back({.code = ReasonCode::kBoughtFrom, .h = Keep(d.competitor(), fx)});
      }
      fx->alerts.push_back(std::move(a));
      // Lost prospects are worked systematically: re-contact tasks for this lead.
      const uint64_t lead = Keep(d.lead_id().empty() ? e.event_id() : d.lead_id(), fx);
      AddTask(c, v1::FOLLOW_UP_KIND_LOST_DEAL_RECONTACT_1, at + c.lost_deal_recontact_1_days * kDay,
              lead, r);
      AddTask(c, v1::FOLLOW_UP_KIND_LOST_DEAL_RECONTACT_2, at + c.lost_deal_recontact_2_days * kDay,
              lead, r);
      return kRunStage | kRunTasks;
    }
    case Event::kPurchase: {
      const auto& p = e.purchase();
      ++r->purchases;
      // The prospect bought: no re-contact is left to do.
      while (CloseTask(v1::FOLLOW_UP_KIND_LOST_DEAL_RECONTACT_1, 0, at, r)) {
      }
      while (CloseTask(v1::FOLLOW_UP_KIND_LOST_DEAL_RECONTACT_2, 0, at, r)) {
      }
      RecordActivity(at_ns, r);
      AddSpend(day, p.amount().amount_minor(), p.amount().currency(), r);
      const uint64_t order = Keep(p.order_id(), fx);
      EarnPoints(c, at, p.amount().amount_minor(), order, r);
      uint16_t runs = kRunWindows | kRunPoints | kRunChurn | kRunTasks;
      if (p.kind() == v1::PURCHASE_KIND_VEHICLE) {
        r->has_vehicle = true;
        r->last_sale_at = std::max(r->last_sale_at, at);
        if (!p.vehicle_model().empty()) r->vehicle_model = KeepName(p.vehicle_model(), fx);
        const uint64_t origin = p.order_id().empty() ? Keep(e.event_id(), fx) : order;
        AddTask(c, v1::FOLLOW_UP_KIND_CALLBACK_3_DAY, at + c.callback_1_days * kDay, origin, r);
        AddTask(c, v1::FOLLOW_UP_KIND_CALLBACK_7_DAY, at + c.callback_2_days * kDay, origin, r);
        AddTask(c, v1::FOLLOW_UP_KIND_FIRST_MAINTENANCE_REMINDER,
                at + c.first_maintenance_days * kDay, origin, r);
        runs |= kRunTasks | kRunMaintenance;
      }
      return runs;
    }
    case Event::kRefund: {
      const auto& f = e.refund();
      const uint64_t order = TextHash(f.order_id());
      // A refund of a first-day order, on a later day, takes from the first day's spend
      // (the spend model's repeat days keep what they were). The order's day is known
      // from its points (lots keep 24 months, qualifying entries 12).
      if (r->activity_days > 0 && order != 0) {
        const int64_t first_day = EpochDay(SecondsOf(r->first_activity_ns));
        bool first_day_order = false;
        for (const auto& l : r->lots) first_day_order |= l.source == order && EpochDay(l.earned_at) == first_day;
        for (const auto& q : r->qualifying) first_day_order |= q.source == order && q.day == first_day;
        if (first_day_order && day != first_day) r->first_day_spend -= f.amount().amount_minor();
      }
      AddSpend(day, -f.amount().amount_minor(), f.amount().currency(), r);
      const int64_t pts = PointsFor(c, f.amount().amount_minor());
      TakePoints(pts, order, r);
      // Qualifying points of that order go too (never below zero).
      int64_t left = pts;
      for (auto& q : r->qualifying) {
        if (left > 0 && q.source == order) {
          const int64_t t = std::min(q.points, left);
          q.points -= t;
          left -= t;
        }
      }
      return kRunWindows | kRunPoints;
    }
    case Event::kServiceVisit: {
      const auto& s = e.service_visit();
      r->has_vehicle = true;
      r->last_service_at = std::max(r->last_service_at, at);
      if (s.warranty_status() != v1::WARRANTY_STATUS_UNSPECIFIED) {
        r->warranty_status = static_cast<uint8_t>(s.warranty_status());
      }
      if (s.other_garage()) {
        // Leakage: maintained, but not with us. Not activity, spend or points; an
        // off-schedule visit in the maintenance share; maintenance due starts again
        // (last_service_at, above); SERVICE_LEAKAGE.
        ++DayEntry(r->services, day).visits;
        fx->alerts.push_back(EventAlert(v1::ALERT_KIND_SERVICE_LEAKAGE, v1::SEVERITY_WARNING, at,
                                        offset, *r,
                                        {.kind = Discriminator::kText,
                                         .text = Keep(s.visit_id().empty() ? e.event_id() : s.visit_id(), fx)},
                                        {{.code = ReasonCode::kServicedElsewhere,
                                          .a = r->last_service_here_at == 0
                                                   ? -1
                                                   : (at - r->last_service_here_at) / kDay}}));
        return kRunMaintenance | kRunWindows;
      }
      r->last_service_here_at = std::max(r->last_service_here_at, at);
      ++r->service_visits;
      RecordActivity(at_ns, r);
      AddSpend(day, s.amount().amount_minor(), s.amount().currency(), r);
      const uint64_t visit = Keep(s.visit_id(), fx);
      EarnPoints(c, at, s.amount().amount_minor(), visit, r);
      ServiceDay& sd = DayEntry(r->services, day);
      ++sd.visits;
      if (s.on_schedule()) ++sd.on_schedule;
      // A visit here does the first maintenance the sale's reminder asks for.
      CloseTask(v1::FOLLOW_UP_KIND_FIRST_MAINTENANCE_REMINDER, 0, at, r);
      AddTask(c, v1::FOLLOW_UP_KIND_SURVEY_CALLBACK, at + c.survey_callback_days * kDay,
              s.visit_id().empty() ? Keep(e.event_id(), fx) : visit, r);
      return kRunWindows | kRunPoints | kRunChurn | kRunTasks | kRunMaintenance;
    }
    case Event::kComplaint: {
      const auto& k = e.complaint();
      const uint64_t id = TextHash(k.complaint_id());
      for (const auto& x : r->complaints) {
        if (x.id == id) return kRunComplaints;
      }
      r->complaints.push_back({.id = Keep(k.complaint_id(), fx),
                               .category = Keep(k.category(), fx),
                               .severity = static_cast<uint8_t>(k.severity()),
                               .opened_ns = at_ns});
      return kRunComplaints;
    }
    case Event::kComplaintResolved: {
      const auto& k = e.complaint_resolved();
      const uint64_t id = Keep(k.complaint_id(), fx);
      Complaint* rec = nullptr;
      for (auto& x : r->complaints) {
        if (x.id == id) rec = &x;
      }
      if (!rec) {  // resolved before we heard of it: record it as opened and resolved
        r->complaints.push_back({.id = id, .opened_ns = at_ns});
        rec = &r->complaints.back();
      }
      rec->resolved_ns = at_ns;
      rec->satisfied = k.satisfied();
      return kRunComplaints;
    }
    case Event::kSatisfactionSurvey:
      if (!r->has_survey || at >= r->latest_survey_at) {
        r->has_survey = true;
        r->latest_survey = e.satisfaction_survey().score();
        r->latest_survey_at = at;
      }
      return kRunLoyalty;
    case Event::kCampaignParticipation:
      if (e.campaign_participation().attended() || e.campaign_participation().brought_prospect()) {
        // One entry per day and campaign; the loyalty score counts distinct campaigns.
        const uint64_t campaign = TextHash(e.campaign_participation().campaign_id().empty()
                                               ? e.event_id()
                                               : e.campaign_participation().campaign_id());
        auto it = std::lower_bound(r->campaigns.begin(), r->campaigns.end(), day,
                                   [](const CampaignDay& x, int32_t d) { return x.day < d; });
        while (it != r->campaigns.end() && it->day == day && it->campaign != campaign) ++it;
        if (it == r->campaigns.end() || it->day != day) {
          it = r->campaigns.insert(it, CampaignDay{.day = day, .count = 0, .campaign = campaign});
        }
        ++it->count;
      }
      return kRunWindows;
    case Event::kReferral: {
      ReferralDay& f = DayEntry(r->referrals, day);
      ++(e.referral().converted() ? f.converted : f.other);
      return kRunWindows;
    }
    case Event::kFollowUpContact:
      if (IsGreeting(e.follow_up_contact().kind())) {
        RecordGreeting(c, static_cast<uint8_t>(e.follow_up_contact().kind()), at, r);
        return 0;
      }
      CloseTask(static_cast<uint8_t>(e.follow_up_contact().kind()),
                TextHash(e.follow_up_contact().origin_id()), at, r);
      return kRunTasks;
    case Event::kPointsRedeemed:
      r->redeemed_total += TakePoints(e.points_redeemed().points(), 0, r);
      return kRunPoints;
    case Event::kCustomerErased:
      r->erased = true;
      return 0;
    default:
      return 0;
  }
}

constexpr char kProfileReset = 1, kProfileErase = 2;

void ClearPersonal(v1::Profile* p) {
  p->clear_name();
  p->clear_phone();
  p->clear_email();
  p->clear_birthday();
  p->clear_vin();
}
}  // namespace

bool ChangesProfile(const Event& e) {
  switch (e.payload_case()) {
    case Event::kCustomerRegistered:
    case Event::kProfileUpdated:
    case Event::kCustomerErased:
      return true;
    case Event::kPurchase:
      return e.purchase().kind() == v1::PURCHASE_KIND_VEHICLE && !e.purchase().vehicle_model().empty();
    default:
      return false;
  }
}

void FoldProfile(const Event& e, bool erased, v1::Profile* p) {
  // proto3 optional fields: MergeFrom copies exactly the fields that are present.
  if (e.has_customer_registered()) p->MergeFrom(e.customer_registered().profile());
  if (e.has_profile_updated()) p->MergeFrom(e.profile_updated().profile());
  if (e.has_purchase()) p->set_vehicle_model(e.purchase().vehicle_model());
  if (erased || e.has_customer_erased()) ClearPersonal(p);  // once erased, never kept
}

void FoldProfile(const Event& e, bool erased, ProfileUpdate* u) {
  // The stored profile loses its personal fields too (again, once erased: harmless).
  if (erased || e.has_customer_erased()) u->erase = true;
  FoldProfile(e, erased, &u->fields);
}

std::string EncodeProfileUpdate(const ProfileUpdate& u) {
  std::string out(1, static_cast<char>((u.reset ? kProfileReset : 0) | (u.erase ? kProfileErase : 0)));
  u.fields.AppendToString(&out);
  return out;
}

bool ApplyProfileUpdate(std::string_view update, v1::Profile* p) {
  if (update.empty() || (update[0] & ~(kProfileReset | kProfileErase)) != 0) return false;
  v1::Profile fields;
  if (!fields.ParseFromArray(update.data() + 1, static_cast<int>(update.size() - 1))) return false;
  if (update[0] & kProfileReset) p->Clear();
  if (update[0] & kProfileErase) ClearPersonal(p);
  p->MergeFrom(fields);
  return true;
}

bool ProfileUpdateResets(std::string_view update) {
  return !update.empty() && (update[0] & kProfileReset) != 0;
}

FoldResult ApplyEvent(const DomainConfig& c, int32_t partition, int64_t offset, const Event& e,
                      CustomerRecord* r, Effects* fx, uint16_t* runs) {
  if (!Remember(TextHash(e.event_id()), c.dedup_window, r)) return FoldResult::kDuplicate;
  const bool first_event = r->event_count == 0;
  const int64_t at_ns = Nanos(e.occurred_at());
  r->partition = partition;
  r->last_offset = offset;
  if (first_event || at_ns < r->first_seen_ns) r->first_seen_ns = at_ns;
  if (first_event || at_ns > r->last_event_ns) r->last_event_ns = at_ns;
  ++r->event_count;
  const uint16_t changed = ApplyPayload(c, offset, e, r, fx);
  *runs = first_event ? static_cast<uint16_t>(kRunAll) : changed;
  return FoldResult::kApplied;
}

void Evaluate(const DomainConfig& c, int64_t now, int64_t offset, CustomerRecord* r,
              Effects* fx, uint16_t runs) {
  static constexpr uint16_t kDeadlineRuns[kFamilyCount] = {
      kRunWindows, kRunPoints, kRunComplaints, kRunMaintenance, kRunTasks, kRunChurn};
  for (int f = 0; f < kFamilyCount; ++f) {
    if (r->due[f] <= now) runs |= kDeadlineRuns[f];
  }
  runs = WithDependents(runs);
  Eval ev{c, now, EpochDay(now), offset, *r, *fx, {}};
  if (runs & kRunWindows) RunWindows(ev);
  if (runs & kRunPoints) RunPoints(ev);
  if (runs & kRunComplaints) RunComplaints(ev);
  if (runs & kRunMaintenance) RunMaintenance(ev);
  if (runs & kRunTasks) RunTasks(ev);
  if (runs & kRunChurn) RunChurn(ev);
  if (runs & kRunLoyalty) RunLoyalty(ev);
  if (runs & kRunValue) RunValue(ev);
  if (runs & kRunStage) RunStage(ev);
  if (runs & kRunAlerts) RunAlerts(ev);
  // The event's own alerts (DEAL_LOST, SERVICE_LEAKAGE) carry the values after it, as do
  // those raised here. P(alive) is computed only for them (most evaluations raise none).
  const bool unset = std::any_of(fx->alerts.begin(), fx->alerts.end(),
                                 [](const AlertFact& a) { return std::isnan(a.p_alive); });
  if (unset || !ev.raise.empty()) {
    const double p = PAliveAt(c, *r, now);
    for (auto& a : fx->alerts) {
      if (std::isnan(a.p_alive)) {
        a.p_alive = p;
        a.loyalty = r->loyalty();
      }
    }
    for (auto& a : ev.raise) {
      a.p_alive = p;
      a.loyalty = r->loyalty();
      fx->alerts.push_back(std::move(a));
    }
  }
  r->evaluated_at = now;
  r->next_deadline = *std::min_element(std::begin(r->due), std::end(r->due));
}

int RunDeadlinesThrough(const DomainConfig& c, int64_t now, int64_t offset, CustomerRecord* r,
                        Effects* fx) {
  if (DueOf(*r) > now) return 0;
  if (r->hold_until != 0 && r->hold_until <= now) r->hold_until = 0;  // settled
  // At each deadline's own instant, in turn: a transition or an alert a deadline
  // causes carries the time its condition became true, not the time the stream
  // moved past it, and a stage a deadline ends lasts until that deadline.
  int evaluations = 0;
  while (r->next_deadline <= now) {
    Evaluate(c, r->next_deadline, offset, r, fx, 0);
    ++evaluations;
  }
  return evaluations;
}

void CatchUpStored(const DomainConfig& c, int64_t deadlines_through, CustomerRecord* r) {
  if (DueOf(*r) > deadlines_through) return;  // (most records: nothing to run)
  Effects fx;
  RunDeadlinesThrough(c, deadlines_through, 0, r, &fx);
  r->alerts += static_cast<uint32_t>(fx.alerts.size());  // as PartitionProjector::Record
}

}  // namespace lifecycle::projections
