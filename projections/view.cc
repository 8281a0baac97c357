#include "projections/view.h"

#include <cmath>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "projections/codec.h"
#include "projections/greetings.h"
#include "projections/names.h"
#include "projections/rules.h"
#include "projections/rules/families.h"

namespace lifecycle::projections {
namespace {

namespace v1 = lifecycle::v1;
using google::protobuf::Timestamp;

// Set in place: a view may be on an arena, where assigning a temporary copies it.
void SetTs(Timestamp* t, int64_t seconds) { t->set_seconds(seconds); }

void SetTsNanos(Timestamp* t, int64_t ns) {
  t->set_seconds(SecondsOf(ns));
  t->set_nanos(NanosOf(ns));
}

std::string Fmt2(double v) { return absl::StrFormat("%.2f", v); }

const std::string& TextOf(const Texts& texts, uint64_t h) {
  static const std::string kEmpty;
  auto it = texts.find(h);
  return it == texts.end() ? kEmpty : it->second;
}

const char* ActionWords(rules::Action a) {
  using rules::Action;
  switch (a) {
    case Action::kReContactNewOffer: return "re-contact in 3 months with a new offer";
    case Action::kFollowUpLead: return "follow up the lead: invite to a test drive";
    case Action::kWinBack: return "win-back offer: personal call with a service voucher";
    case Action::kEscalateComplaint: return "escalate the open complaint";
    case Action::kBookMaintenance: return "service callback: book the maintenance";
    case Action::kPersonalCall: return "personal call from the salesperson; offer a check-up";
    case Action::kKeepInTouch: return "keep in touch: satisfaction callback and maintenance plan";
    case Action::kReferralProgramme: return "invite to the referral programme and member events";
    case Action::kCompleteCallbacks:
      return "complete the 3- and 7-day callbacks; book the first maintenance";
    case Action::kRoutineCare: return "routine care: maintenance reminders";
    default: return "";
  }
}

std::string AlertAction(const AlertEntry& a) {
  const AlertFact& f = a.fact;
  switch (f.kind) {
    case v1::ALERT_KIND_DEAL_LOST:
      return absl::StrCat("re-contact in 3 months with an offer that answers ",
                          DealLostReasonWords(f.reasons.empty() ? 0 : f.reasons[0].a));
    case v1::ALERT_KIND_COMPLAINT_UNRESOLVED:
      return "escalate the complaint to the service manager and call the customer today";
    case v1::ALERT_KIND_MAINTENANCE_OVERDUE: return "service callback: book the maintenance visit";
    case v1::ALERT_KIND_FOLLOWUP_OVERDUE:
      return absl::StrCat("do the ", TaskWords(static_cast<int>(f.disc.number)), " now");
    case v1::ALERT_KIND_CHURN_RISK: return "personal call from the salesperson; offer a check-up";
    case v1::ALERT_KIND_CHURNED: return "win-back offer: personal call with a service voucher";
    case v1::ALERT_KIND_TIER_DOWNGRADE_RISK:
      return "remind the customer of member benefits and invite them in";
    case v1::ALERT_KIND_SERVICE_LEAKAGE:
      return "advisor call: ask why they serviced elsewhere and offer a maintenance package";
    default: return "";
  }
}

std::string DiscText(const Discriminator& d, const Texts& texts) {
  switch (d.kind) {
    case Discriminator::kText: return TextOf(texts, d.text);
    case Discriminator::kNumber: return std::to_string(d.number);
    case Discriminator::kTask: return absl::StrCat(d.number, "/", TextOf(texts, d.text));
    default: return "";
  }
}

void AddReasonTexts(const Reason& r, std::vector<uint64_t>* out) {
  if (r.h) out->push_back(r.h);
  if (r.h2) out->push_back(r.h2);
}

void AddDiscText(const Discriminator& d, std::vector<uint64_t>* out) {
  if ((d.kind == Discriminator::kText || d.kind == Discriminator::kTask) && d.text) {
    out->push_back(d.text);
  }
}

}  // namespace

const char* TaskWords(int k) {
  switch (k) {
    case v1::FOLLOW_UP_KIND_CALLBACK_3_DAY: return "3-day callback after the sale";
    case v1::FOLLOW_UP_KIND_CALLBACK_7_DAY: return "7-day callback after the sale";
    case v1::FOLLOW_UP_KIND_MAINTENANCE_REMINDER: return "maintenance reminder";
    case v1::FOLLOW_UP_KIND_FIRST_MAINTENANCE_REMINDER: return "first-maintenance reminder";
    case v1::FOLLOW_UP_KIND_SURVEY_CALLBACK: return "satisfaction callback after the visit";
    case v1::FOLLOW_UP_KIND_HOLIDAY_GREETING: return "holiday greeting";
    case v1::FOLLOW_UP_KIND_BIRTHDAY_GREETING: return "birthday greeting";
    case v1::FOLLOW_UP_KIND_LOST_DEAL_RECONTACT_1: return "first re-contact after the lost deal";
    case v1::FOLLOW_UP_KIND_LOST_DEAL_RECONTACT_2: return "second re-contact after the lost deal";
    default: return "follow-up";
  }
}

const char* DealLostReasonWords(int r) {
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

std::string ReasonText(const Reason& r, const Texts& texts) {
  switch (r.code) {
    case ReasonCode::kLostTheDeal: return absl::StrCat("lost the deal on ", DealLostReasonWords(r.a));
    case ReasonCode::kProspect: return "known, no purchase or service visit yet";
    case ReasonCode::kInactive: return absl::StrCat("no purchase or service for ", r.a, " days");
    case ReasonCode::kPAliveBelowChurned:
      return absl::StrCat("P(alive) ", Fmt2(r.p), " is below ", Fmt2(r.x));
    case ReasonCode::kPAliveBelowAtRisk:
      return absl::StrCat("P(alive) ", Fmt2(r.p), " is below ", Fmt2(r.x), "; last visit ", r.a,
                          " days ago");
    case ReasonCode::kComplaintPastSla:
      return absl::StrCat("complaint ", TextOf(texts, r.h), " unresolved past the SLA");
    case ReasonCode::kMaintenanceOverdue:
      return absl::StrCat("maintenance overdue by ", r.a, " days");
    case ReasonCode::kCameBack: return absl::StrCat("came back ", r.a, " days ago after churning");
    case ReasonCode::kLoyalVisits:
      return absl::StrCat(r.a, " visits in 24 months, loyalty ", r.b, "/10");
    case ReasonCode::kFirstActivity:
      return absl::StrCat("first purchase or service ", r.a, " days ago");
    case ReasonCode::kLastVisit: return absl::StrCat("last visit ", r.a, " days ago");
    case ReasonCode::kTaskOverdue:
      return r.b > 1 ? absl::StrCat(TaskWords(static_cast<int>(r.a)), " overdue (", r.b, ")")
                     : absl::StrCat(TaskWords(static_cast<int>(r.a)), " overdue");
    case ReasonCode::kTierDrops:
      return absl::StrCat(TierShort(static_cast<int>(r.a)), " tier drops in ", r.b,
                          " days unless ", r.c, " more points are earned");
    case ReasonCode::kDealLostOn: return absl::StrCat("deal lost on ", DealLostReasonWords(r.a));
    case ReasonCode::kBoughtFrom: return absl::StrCat("bought from ", TextOf(texts, r.h));
    case ReasonCode::kComplaintOpen: {
      const std::string& category = TextOf(texts, r.h2);
      return absl::StrCat("complaint ", TextOf(texts, r.h),
                          category.empty() ? "" : absl::StrCat(" (", category, ")"), " open for ",
                          r.a, " days, past the ", r.b, "-day promise");
    }
    case ReasonCode::kMaintenanceWasDue:
      return absl::StrCat("maintenance was due ", r.a, " days ago and the car has not been in");
    case ReasonCode::kTaskDaysOverdue:
      return absl::StrCat(TaskWords(static_cast<int>(r.a)), " is ", r.b, " days overdue");
    case ReasonCode::kPAliveFell:
      return absl::StrCat("P(alive) fell to ", Fmt2(r.p), ", below ", Fmt2(r.x));
    case ReasonCode::kLastActivityDays:
      return absl::StrCat("last purchase or service ", r.a, " days ago");
    case ReasonCode::kServicedElsewhere:
      return r.a < 0 ? std::string("serviced at another garage, never here")
                     : absl::StrCat("serviced at another garage; last service here ", r.a,
                                    " days ago");
    case ReasonCode::kTierDropsIn:
      return absl::StrCat(TierShort(static_cast<int>(r.a)), " drops in ", r.b, " days");
    case ReasonCode::kPointsKeepTier: return absl::StrCat(r.a, " more points keep it");
    default: return "";
  }
}

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
  mix(kind == v1::ALERT_KIND_UNSPECIFIED ? "UNSPECIFIED" : AlertKindShort(kind));
  const absl::AlphaNum number(offset);
  mix(std::string_view(number.data(), number.size()));
  mix(discriminator);
  return absl::StrCat("al-", absl::Hex(h, absl::kZeroPad16));
}

void EncodeAlertRef(const AlertRef& a, std::string* out) {
  codec::PutVarint(a.kind, out);
  codec::PutSigned(a.offset, out);
  codec::PutVarint(a.disc.kind, out);
  codec::PutFixed64(a.disc.text, out);
  codec::PutSigned(a.disc.number, out);
}

bool DecodeAlertRef(std::string_view bytes, AlertRef* a) {
  codec::Reader in(bytes);
  a->kind = static_cast<uint8_t>(in.Varint());
  a->offset = in.Signed();
  a->disc.kind = static_cast<Discriminator::Kind>(in.Varint());
  a->disc.text = in.Fixed64();
  a->disc.number = in.Signed();
  return in.ok() && in.done();
}

std::vector<uint64_t> TextsOf(const CustomerParts& parts) {
  std::vector<uint64_t> out;
  const CustomerRecord& r = *parts.record;
  for (const auto& k : r.complaints) {
    out.push_back(k.id);
    out.push_back(k.category);
  }
  for (const auto& t : r.tasks) out.push_back(t.origin);
  for (const auto& l : r.lots) out.push_back(l.source);
  for (const auto& t : parts.transitions) AddReasonTexts(t.reason, &out);
  for (const auto& a : parts.alerts) AddDiscText(a.disc, &out);
  std::erase(out, 0);
  return out;
}

namespace {
void SetChurnFigures(const DomainConfig& c, const CustomerRecord& r, int64_t now,
                     v1::CustomerView* v) {
  const rules::ChurnInputs in = rules::ChurnInputsOf(r);
  v->set_p_alive(rules::PAliveOf(c, in, now));
  const rules::Expected e = rules::ExpectedOf(c, in, now);
  v->set_expected_activities_12m(e.activities);
  v->set_expected_spend_per_activity_minor(std::llround(e.spend_per_activity));
  v->set_expected_value_12m_minor(std::llround(e.value));
}
// The greetings as of `now` after the stored tasks (replacing those a view had).
void AddGreetings(const DomainConfig& c, const CustomerRecord& r, int64_t now,
                  v1::CustomerView* v) {
  auto* tasks = v->mutable_follow_ups();
  for (int i = tasks->size() - 1; i >= 0; --i) {
    if (IsGreeting(tasks->Get(i).kind())) tasks->DeleteSubrange(i, 1);
  }
  for (const Greeting& g : GreetingsOf(c, r, now)) {
    auto* f = tasks->Add();
    f->set_kind(static_cast<v1::FollowUpKind>(g.kind));
    SetTs(f->mutable_due_at(), g.due);
    f->set_status(static_cast<v1::TaskStatus>(g.status));
    if (g.closed_at != 0) SetTs(f->mutable_closed_at(), g.closed_at);
  }
}
}  // namespace

void PAliveAsOf(const DomainConfig& c, const CustomerRecord& r, int64_t stream_time,
                v1::CustomerView* view) {
  if (!r.has_activity() || stream_time <= r.evaluated_at) return;
  SetChurnFigures(c, r, stream_time, view);
  AddGreetings(c, r, stream_time, view);
  view->mutable_p_alive_at()->set_seconds(stream_time);
}

void BuildView(const DomainConfig& c, const CustomerParts& parts, const Texts& texts,
               v1::CustomerView* out) {
  const CustomerRecord& r = *parts.record;
  const int64_t now = r.evaluated_at;
  v1::CustomerView& v = *out;
  v.set_customer_id(*parts.id);
  if (parts.profile) *v.mutable_profile() = *parts.profile;
  v.set_erased(r.erased);

  v.set_stage(static_cast<v1::Stage>(r.stage));
  SetTs(v.mutable_stage_since(), r.stage_since);
  for (const auto& t : parts.transitions) BuildTransition(t, texts, v.add_transitions());

  auto* act = v.mutable_activity();
  act->set_total_spend_minor(r.total_spend);
  act->set_first_day_spend_minor(r.first_day_spend);
  act->set_currency(UnpackCurrency(r.currency));
  act->set_activity_days(r.activity_days);
  if (r.has_activity()) {
    SetTsNanos(act->mutable_first_activity(), r.first_activity_ns);
    SetTsNanos(act->mutable_last_activity(), r.last_activity_ns);
  }
  act->set_event_count(r.event_count);
  act->set_purchases(r.purchases);
  act->set_service_visits(r.service_visits);
  SetTsNanos(act->mutable_first_seen(), r.first_seen_ns);
  SetTsNanos(act->mutable_last_event(), r.last_event_ns);

  SetChurnFigures(c, r, now, &v);
  if (const int64_t risk_at = rules::CrossingAt(c, r, c.at_risk_p); risk_at != kNever) {
    SetTs(v.mutable_churn_risk_at(), risk_at);
  }
  auto* loyalty = v.mutable_loyalty();
  loyalty->set_satisfaction(r.satisfaction);
  loyalty->set_regular_maintenance(r.regular_maintenance);
  loyalty->set_event_participation(r.event_participation);
  loyalty->set_advocacy(r.advocacy);
  loyalty->set_total(r.loyalty());
  v.set_grade(static_cast<v1::ValueGrade>(r.grade));
  v.set_value_class(rules::ClassOf(v.grade()));
  if (r.rfm_r != 0) {
    auto* rfm = v.mutable_rfm();
    rfm->set_recency(r.rfm_r);
    rfm->set_frequency(r.rfm_f);
    rfm->set_monetary(r.rfm_m);
    rfm->set_score(absl::StrCat(r.rfm_r, r.rfm_f, r.rfm_m));
    rfm->set_segment(rules::RfmSegmentName(r.rfm_r, r.rfm_f, r.rfm_m));
  }

  auto* pts = v.mutable_points();
  pts->set_balance(r.balance);
  pts->set_qualifying_12m(r.qualifying_12m);
  pts->set_tier(static_cast<v1::Tier>(r.tier));
  for (const auto& l : r.lots) {
    auto* lot = pts->add_lots();
    SetTs(lot->mutable_earned_at(), l.earned_at);
    lot->set_remaining(l.remaining);
    lot->set_source_id(TextOf(texts, l.source));
  }
  pts->set_points_to_keep_tier(r.points_to_keep_tier);
  if (r.tier_drop_at != 0) SetTs(pts->mutable_tier_drop_at(), r.tier_drop_at);
  pts->set_expired_total(r.expired_total);
  pts->set_redeemed_total(r.redeemed_total);

  for (const auto& t : r.tasks) {
    auto* f = v.add_follow_ups();
    f->set_kind(static_cast<v1::FollowUpKind>(t.kind));
    SetTs(f->mutable_due_at(), t.due_at);
    f->set_status(static_cast<v1::TaskStatus>(t.status));
    f->set_origin_id(TextOf(texts, t.origin));
    if (t.closed_at != 0) SetTs(f->mutable_closed_at(), t.closed_at);
  }
  AddGreetings(c, r, now, &v);
  for (const auto& k : r.complaints) {
    auto* x = v.add_complaints();
    x->set_complaint_id(TextOf(texts, k.id));
    x->set_category(TextOf(texts, k.category));
    x->set_severity(static_cast<v1::ComplaintSeverity>(k.severity));
    SetTsNanos(x->mutable_opened_at(), k.opened_ns);
    if (!k.open()) SetTsNanos(x->mutable_resolved_at(), k.resolved_ns);
    x->set_satisfied(k.satisfied);
    x->set_sla_alerted(k.sla_alerted);
  }
  for (const auto& d : parts.lost_deals) {
    auto* x = v.add_lost_deals();
    x->set_lead_id(d.lead_id);
    x->set_reason(static_cast<v1::DealLostReason>(d.reason));
    x->set_competitor(d.competitor);
    SetTsNanos(x->mutable_at(), d.at_ns);
  }

  for (const auto& reason : rules::StageReasons(c, r, now)) v.add_reasons(ReasonText(reason, texts));
  v.set_suggested_action(ActionWords(rules::StageAction(c, r, now)));
  if (r.has_vehicle) SetTs(v.mutable_maintenance_due(), rules::MaintenanceDue(c, r));
  v.set_warranty_status(static_cast<v1::WarrantyStatus>(r.warranty_status));
  v.set_spend_12m_minor(r.spend_12m);
  v.set_spend_prev_12m_minor(r.spend_prev_12m);
  v.set_spend_prev2_12m_minor(r.spend_prev2_12m);
  v.set_activity_days_12m(r.activity_days_12m);
  v.set_activity_days_24m(r.activity_days_24m);
  v.set_open_complaints(r.open_complaints);

  v.set_config_version(c.version);
  v.set_partition(r.partition);
  v.set_last_offset(r.last_offset);
  SetTs(v.mutable_evaluated_at(), now);
  if (r.next_deadline != kNever) SetTs(v.mutable_next_deadline(), r.next_deadline);
  for (const auto& a : parts.alerts) {
    v.add_recent_alert_ids(
        AlertId(*parts.id, static_cast<v1::AlertKind>(a.kind), a.offset, DiscText(a.disc, texts)));
  }
}

std::vector<uint64_t> TextsOf(const AlertEntry& a) {
  std::vector<uint64_t> out;
  if (a.fact.region) out.push_back(a.fact.region);
  if (a.fact.advisor) out.push_back(a.fact.advisor);
  AddDiscText(a.fact.disc, &out);
  for (const auto& r : a.fact.reasons) AddReasonTexts(r, &out);
  return out;
}

v1::Alert BuildAlert(const AlertEntry& a, const Texts& texts) {
  const AlertFact& f = a.fact;
  v1::Alert out;
  const auto kind = static_cast<v1::AlertKind>(f.kind);
  out.set_alert_id(AlertId(a.customer_id, kind, f.offset, DiscText(f.disc, texts)));
  out.set_customer_id(a.customer_id);
  out.set_kind(kind);
  out.set_severity(static_cast<v1::Severity>(f.severity));
  SetTs(out.mutable_at(), f.at);
  out.set_p_alive(f.p_alive);
  out.set_loyalty(f.loyalty);
  for (const auto& r : f.reasons) out.add_reasons(ReasonText(r, texts));
  out.set_suggested_action(AlertAction(a));
  out.set_partition(a.partition);
  out.set_offset(f.offset);
  out.set_sequence(a.sequence);
  out.set_region(TextOf(texts, f.region));
  out.set_advisor_id(TextOf(texts, f.advisor));
  out.set_late(f.late);
  return out;
}

void BuildTransition(const TransitionEntry& t, const Texts& texts, v1::StageTransition* out) {
  out->set_from(static_cast<v1::Stage>(t.from));
  out->set_to(static_cast<v1::Stage>(t.to));
  SetTs(out->mutable_at(), t.at);
  out->set_reason(ReasonText(t.reason, texts));
  out->set_offset(t.offset);
}

}  // namespace lifecycle::projections
