#include "projections/fold.h"

#include <algorithm>


namespace lifecycle::projections {
namespace {

using google::protobuf::Timestamp;
using lifecycle::v1::CustomerState;
using lifecycle::v1::CustomerView;
using lifecycle::v1::Event;
using lifecycle::v1::Stage;

constexpr int64_t kSecondsPerDay = 86400;

bool Before(const Timestamp& a, const Timestamp& b) {
  return a.seconds() < b.seconds() || (a.seconds() == b.seconds() && a.nanos() < b.nanos());
}

// Keeps the earliest / latest of `t` in `slot`.
void KeepMin(const Timestamp& t, Timestamp* slot, bool has) {
  if (!has || Before(t, *slot)) *slot = t;
}
void KeepMax(const Timestamp& t, Timestamp* slot, bool has) {
  if (!has || Before(*slot, t)) *slot = t;
}

// Remembers `event_id`; returns false if it was already remembered.
bool Remember(const std::string& event_id, int window, CustomerState* state) {
  auto* ids = state->mutable_recent_event_ids();
  if (std::find(ids->begin(), ids->end(), event_id) != ids->end()) return false;
  if (window <= 0) return true;
  if (ids->size() >= window) ids->erase(ids->begin(), ids->begin() + (ids->size() - window + 1));
  state->add_recent_event_ids(event_id);
  return true;
}

void MergeProfile(const lifecycle::v1::Profile& update, CustomerView* view) {
  // proto3 optional fields: MergeFrom copies exactly the fields that are present.
  view->mutable_profile()->MergeFrom(update);
}

void RecordActivity(const Event& e, int64_t amount_minor, const std::string& currency,
                    CustomerState* state) {
  CustomerView* view = state->mutable_view();
  auto* act = view->mutable_activity();
  const bool had_activity = act->activity_days() > 0;
  KeepMin(e.occurred_at(), act->mutable_first_activity(), had_activity);
  KeepMax(e.occurred_at(), act->mutable_last_activity(), had_activity);
  act->set_total_spend_minor(act->total_spend_minor() + amount_minor);
  if (act->currency().empty()) act->set_currency(currency);

  const int64_t day = EpochDay(e.occurred_at());
  auto* days = state->mutable_activity_days();
  auto it = std::lower_bound(days->begin(), days->end(), day);
  if (it == days->end() || *it != day) {
    const auto pos = it - days->begin();  // Add() may reallocate: keep an index
    days->Add(day);  // append, then rotate into place to keep the list sorted
    std::rotate(days->begin() + pos, days->end() - 1, days->end());
    act->set_activity_days(days->size());
  }
}

// The stage the minimal rules give: PROSPECT without activity; NEW within new_days
// of the first activity (measured at the customer's latest event); ACTIVE after.
Stage StageOf(const FoldOptions& options, const CustomerView& view) {
  const auto& act = view.activity();
  if (act.activity_days() == 0) return lifecycle::v1::STAGE_PROSPECT;
  const int64_t age_days =
      (act.last_event().seconds() - act.first_activity().seconds()) / kSecondsPerDay;
  return age_days < options.new_days ? lifecycle::v1::STAGE_NEW : lifecycle::v1::STAGE_ACTIVE;
}

const char* ReasonFor(Stage to) {
  switch (to) {
    case lifecycle::v1::STAGE_PROSPECT: return "known customer without a purchase or service visit";
    case lifecycle::v1::STAGE_NEW: return "first purchase or service visit";
    case lifecycle::v1::STAGE_ACTIVE: return "past the new-customer window with activity";
    default: return "";
  }
}

}  // namespace

int64_t EpochDay(const Timestamp& t) {
  // Floor division, so times before 1970 land on the right day.
  const int64_t s = t.seconds();
  return s >= 0 ? s / kSecondsPerDay : -((-s + kSecondsPerDay - 1) / kSecondsPerDay);
}

FoldResult FoldEvent(const FoldOptions& options, int32_t partition, int64_t offset,
                     const Event& e, CustomerState* state) {
  if (!Remember(e.event_id(), options.dedup_window, state)) return FoldResult::kDuplicate;

  CustomerView* view = state->mutable_view();
  auto* act = view->mutable_activity();
  const bool first_event = act->event_count() == 0;
  view->set_customer_id(e.customer_id());
  view->set_partition(partition);
  view->set_last_offset(offset);
  view->set_config_version(options.config_version);
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
    case Event::kPurchase:
      act->set_purchases(act->purchases() + 1);
      RecordActivity(e, e.purchase().amount().amount_minor(), e.purchase().amount().currency(),
                     state);
      break;
    case Event::kServiceVisit:
      act->set_service_visits(act->service_visits() + 1);
      RecordActivity(e, e.service_visit().amount().amount_minor(),
                     e.service_visit().amount().currency(), state);
      break;
    case Event::kRefund:
      act->set_total_spend_minor(act->total_spend_minor() - e.refund().amount().amount_minor());
      break;
    default:
      break;  // the full domain rules come with the domain issue
  }

  const Stage next = StageOf(options, *view);
  if (next != view->stage()) {
    auto* tr = view->add_transitions();
    tr->set_from(view->stage());
    tr->set_to(next);
    *tr->mutable_at() = e.occurred_at();
    tr->set_reason(ReasonFor(next));
    tr->set_offset(offset);
    view->set_stage(next);
    *view->mutable_stage_since() = e.occurred_at();
  }
  return FoldResult::kApplied;
}

}  // namespace lifecycle::projections
