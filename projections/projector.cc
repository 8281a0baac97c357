#include "projections/projector.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace lifecycle::projections {
namespace {

namespace v1 = lifecycle::v1;
using v1::CustomerState;
using v1::PartitionMeta;

// "STAGE_NEW" -> "NEW": enum names without their common prefix.
std::string Short(const std::string& name, std::string_view prefix) {
  if (name.rfind(prefix, 0) == 0) return name.substr(prefix.size());
  return name;
}

std::string OrUnknown(const std::string& s) { return s.empty() ? "unknown" : s; }

bool Later(const google::protobuf::Timestamp& a, const google::protobuf::Timestamp& b) {
  return a.seconds() > b.seconds() || (a.seconds() == b.seconds() && a.nanos() > b.nanos());
}

}  // namespace

IndexKeys KeysOf(const CustomerState& s) {
  IndexKeys k;
  k.present = !s.view().customer_id().empty();
  if (!k.present) return k;
  k.stage = s.view().stage();
  k.grade = s.view().grade();
  k.tier = s.view().points().tier();
  k.region = s.view().profile().region();
  k.rfm_segment = s.view().rfm().segment();
  if (s.view().activity().activity_days() > 0) {
    k.p_alive_micro = static_cast<int64_t>(s.view().p_alive() * 1e6 + 0.5);
  }
  k.due = s.next_deadline() == 0 ? kNever : s.next_deadline();
  return k;
}

Contribution Contribution::Of(const v1::CustomerView& v) {
  Contribution c;
  if (v.customer_id().empty()) return c;
  c.present = true;
  c.stage = v.stage();
  c.grade = v.grade();
  c.value_class = v.value_class();
  c.tier = v.points().tier();
  c.age_band = v.profile().age_band();
  c.warranty_status = v.warranty_status();
  c.activity_bucket = std::min(v.activity_days_12m(), 4);
  c.rfm_segment = v.rfm().segment();
  c.region = v.profile().region();
  c.vehicle_model = v.profile().vehicle_model();
  c.industry = v.profile().industry();
  c.revenue = v.spend_12m_minor();
  return c;
}

std::vector<std::string> Contribution::Keys() const {
  if (!present) return {};
  return {
      "customers/all",
      absl::StrCat("stage/", Short(v1::Stage_Name(stage), "STAGE_")),
      absl::StrCat("grade/", grade == v1::VALUE_GRADE_UNSPECIFIED
                                 ? std::string("NONE")
                                 : Short(v1::ValueGrade_Name(grade), "VALUE_GRADE_")),
      absl::StrCat("value_class/", Short(v1::ValueClass_Name(value_class), "VALUE_CLASS_")),
      absl::StrCat("tier/", Short(v1::Tier_Name(tier), "TIER_")),
      absl::StrCat("rfm_segment/", rfm_segment.empty() ? "none" : rfm_segment),
      absl::StrCat("region/", OrUnknown(region)),
      absl::StrCat("vehicle_model/", OrUnknown(vehicle_model)),
      absl::StrCat("industry/", OrUnknown(industry)),
      absl::StrCat("age_band/", Short(v1::AgeBand_Name(age_band), "AGE_BAND_")),
      absl::StrCat("warranty_status/",
                   Short(v1::WarrantyStatus_Name(warranty_status), "WARRANTY_STATUS_")),
      absl::StrCat("activity_bucket/",
                   activity_bucket >= 4 ? std::string("4+") : std::to_string(activity_bucket)),
  };
}

std::vector<std::string> ContributionKeys(const v1::CustomerView& v) {
  return Contribution::Of(v).Keys();
}

PartitionProjector::PartitionProjector(const DomainConfig* config, PartitionMeta committed,
                                       StateReader* reader, size_t cache_capacity)
    : config_(config),
      committed_(std::move(committed)),
      meta_(committed_),
      reader_(reader),
      cache_capacity_(cache_capacity) {}

absl::Status PartitionProjector::EnsureAggregates() {
  if (aggregates_loaded_) return absl::OkStatus();
  auto loaded = reader_->LoadAggregates(meta_.partition());
  if (!loaded.ok()) return loaded.status();
  aggregates_ = std::move(*loaded);
  aggregates_loaded_ = true;
  return absl::OkStatus();
}

absl::StatusOr<PartitionProjector::Cached*> PartitionProjector::StateFor(
    const std::string& customer_id) {
  Cached* c;
  if (auto it = cache_.find(customer_id); it != cache_.end()) {
    c = &it->second;
    if (c->dirty) return c;
    ++cache_hits_;
  } else {
    auto loaded = reader_->LoadCustomer(customer_id);
    if (!loaded.ok()) return loaded.status();
    ++cache_misses_;
    c = &cache_[customer_id];
    if (loaded->has_value()) c->state = std::move(**loaded);
    c->before = KeysOf(c->state);
    c->before_contrib = Contribution::Of(c->state.view());
  }
  c->dirty = true;
  dirty_.push_back(c);
  // Its committed due entry is replaced by the deadline tracked in memory.
  if (c->before.due != kNever) dirty_due_.emplace(c->before.due, customer_id);
  return c;
}

bool PartitionProjector::IsDirty(const std::string& customer_id) const {
  auto it = cache_.find(customer_id);
  return it != cache_.end() && it->second.dirty;
}

void PartitionProjector::Evaluated(Cached* d, int64_t previous_deadline) {
  ++evaluations_;
  meta_.set_evaluations(meta_.evaluations() + 1);
  const std::string& id = d->state.view().customer_id();
  if (previous_deadline != 0 && previous_deadline != kNever) {
    dirty_due_.erase({previous_deadline, id});
  }
  if (d->state.next_deadline() != kNever) dirty_due_.emplace(d->state.next_deadline(), id);
}

void PartitionProjector::Count(const std::string& key, int64_t n) {
  aggregates_[key].set_customers(aggregates_[key].customers() + n);
  touched_.insert(key);
}

void PartitionProjector::Record(Effects& effects) {
  for (auto& a : effects.alerts) {
    a.set_partition(meta_.partition());
    a.set_sequence(meta_.alerts_next_seq());
    meta_.set_alerts_next_seq(meta_.alerts_next_seq() + 1);
    Count(absl::StrCat("alert_kind/", Short(v1::AlertKind_Name(a.kind()), "ALERT_KIND_")), 1);
    alerts_.push_back(std::move(a));
  }
  for (const auto& t : effects.transitions) {
    Count(absl::StrCat("stage_transition/", Short(v1::Stage_Name(t.from()), "STAGE_"), "->",
                       Short(v1::Stage_Name(t.to()), "STAGE_")),
          1);
  }
  for (auto r : effects.lost_deals) {
    Count(absl::StrCat("lost_deal_reason/", Short(v1::DealLostReason_Name(r), "DEAL_LOST_REASON_")),
          1);
  }
  effects = Effects();
}

absl::Status PartitionProjector::RunDue(int64_t now, int64_t offset, Effects* effects) {
  std::vector<std::pair<int64_t, std::string>> due;
  if (now >= committed_due_hint_) {
    std::vector<std::pair<int64_t, std::string>> committed;
    int64_t next_after = kNever;
    if (absl::Status s =
            reader_->ScanDue(meta_.partition(), due_cursor_, now, &committed, &next_after);
        !s.ok()) {
      return s;
    }
    committed_due_hint_ = next_after;
    if (!committed.empty()) due_cursor_ = committed.back();
    for (auto& e : committed) {
      // A dirty customer's deadline in memory replaces its committed entry.
      if (!IsDirty(e.second)) due.push_back(std::move(e));
    }
  }
  for (auto it = dirty_due_.begin(); it != dirty_due_.end() && it->first <= now; ++it) {
    due.push_back(*it);
  }
  std::sort(due.begin(), due.end());
  for (const auto& [when, id] : due) {
    auto d = StateFor(id);
    if (!d.ok()) return d.status();
    const int64_t previous = (*d)->state.next_deadline();
    if (previous == 0 || previous > now) continue;  // already evaluated at this time
    Evaluate(*config_, now, offset, &(*d)->state, effects);
    Evaluated(*d, previous);
  }
  return absl::OkStatus();
}

absl::StatusOr<RecordOutcome> PartitionProjector::Apply(int64_t offset, std::string_view value) {
  RecordOutcome out;
  if (offset <= meta_.offset()) {
    out.kind = RecordOutcome::kAlreadyApplied;
    return out;
  }
  pending_fresh_ = false;
  if (absl::Status s = EnsureAggregates(); !s.ok()) return s;
  Decoded d = DecodeEvent(value);
  switch (d.outcome) {
    case DecodeOutcome::kUndecodable:
    case DecodeOutcome::kInvalid:
      out.kind = RecordOutcome::kRejected;
      out.reason = std::move(d.reason);
      meta_.set_events_rejected(meta_.events_rejected() + 1);
      meta_.set_offset(offset);
      return out;
    case DecodeOutcome::kUnknownPayload:
      out.kind = RecordOutcome::kSkipped;
      out.reason = std::move(d.reason);
      meta_.set_events_skipped(meta_.events_skipped() + 1);
      meta_.set_offset(offset);
      return out;
    case DecodeOutcome::kOk:
      break;
  }
  const v1::Event& e = d.event;
  Effects effects;
  google::protobuf::Timestamp stream_time = meta_.stream_time();
  if (!meta_.has_stream_time() || Later(e.occurred_at(), stream_time)) {
    stream_time = e.occurred_at();
    if (absl::Status s = RunDue(stream_time.seconds(), offset, &effects); !s.ok()) return s;
  }
  const int64_t now = stream_time.seconds();
  if (e.payload_case() != v1::Event::kClockTick) {
    auto dirty = StateFor(e.customer_id());
    if (!dirty.ok()) return dirty.status();
    CustomerState* state = &(*dirty)->state;
    if (ApplyEvent(*config_, meta_.partition(), offset, e, state, &effects) ==
        FoldResult::kDuplicate) {
      out.kind = RecordOutcome::kDuplicate;
      meta_.set_events_duplicate(meta_.events_duplicate() + 1);
    } else {
      const int64_t previous = state->next_deadline();
      Evaluate(*config_, now, offset, state, &effects);
      Evaluated(*dirty, previous);
    }
  }
  Record(effects);
  *meta_.mutable_stream_time() = stream_time;
  if (out.kind == RecordOutcome::kApplied) meta_.set_events_applied(meta_.events_applied() + 1);
  meta_.set_offset(offset);
  return out;
}

PendingBatch PartitionProjector::Pending() {
  PendingBatch batch;
  batch.meta = meta_;
  batch.meta.set_commits(committed_.commits() + 1);
  batch.customers.reserve(dirty_.size());
  // Counters: the event counts so far, then each customer's contribution moved from
  // what the store has (before) to what it has now (after).
  pending_aggregates_.clear();
  for (const auto& key : touched_) pending_aggregates_[key] = aggregates_[key];
  auto value = [&](const std::string& key) -> v1::AggregateValue& {
    auto it = pending_aggregates_.find(key);
    if (it != pending_aggregates_.end()) return it->second;
    auto base = aggregates_.find(key);
    return pending_aggregates_[key] = base == aggregates_.end() ? v1::AggregateValue() : base->second;
  };
  for (Cached* d : dirty_) {
    d->after = KeysOf(d->state);
    d->after_contrib = Contribution::Of(d->state.view());
    if (d->after_contrib != d->before_contrib) {
      const Contribution& b = d->before_contrib;
      const Contribution& a = d->after_contrib;
      for (const auto& k : b.Keys()) {
        auto& v = value(k);
        v.set_customers(v.customers() - 1);
        v.set_revenue_minor(v.revenue_minor() - b.revenue);
      }
      for (const auto& k : a.Keys()) {
        auto& v = value(k);
        v.set_customers(v.customers() + 1);
        v.set_revenue_minor(v.revenue_minor() + a.revenue);
      }
    }
    batch.customers.push_back({&d->state, d->before, d->after});
  }
  pending_fresh_ = true;
  // A stable order makes the batch, and so the store's write, deterministic.
  std::sort(batch.customers.begin(), batch.customers.end(),
            [](const CustomerChange& a, const CustomerChange& b) {
              return a.state->view().customer_id() < b.state->view().customer_id();
            });
  batch.aggregates.assign(pending_aggregates_.begin(), pending_aggregates_.end());
  batch.alerts = alerts_;
  return batch;
}

void PartitionProjector::MarkCommitted() {
  for (auto& [k, v] : pending_aggregates_) {
    if (v.customers() == 0 && v.revenue_minor() == 0) {
      aggregates_.erase(k);
    } else {
      aggregates_[k] = v;
    }
  }
  pending_aggregates_.clear();
  touched_.clear();
  alerts_.clear();
  if (!dirty_due_.empty()) {
    committed_due_hint_ = std::min(committed_due_hint_, dirty_due_.begin()->first);
  }
  dirty_due_.clear();
  // The dirty states are what the store has now: they stay in memory, clean.
  for (Cached* d : dirty_) {
    if (!pending_fresh_) {
      d->after = KeysOf(d->state);
      d->after_contrib = Contribution::Of(d->state.view());
    }
    d->before = std::move(d->after);
    d->before_contrib = std::move(d->after_contrib);
    d->dirty = false;
  }
  dirty_.clear();
  pending_fresh_ = false;
  if (cache_.size() > cache_capacity_) {
    // Over capacity: drop clean states (all are clean now) down to 3/4 of it.
    const size_t keep = cache_capacity_ - cache_capacity_ / 4;
    for (auto it = cache_.begin(); it != cache_.end() && cache_.size() > keep;) {
      it = cache_.erase(it);
    }
  }
  committed_ = meta_;
  committed_.set_commits(committed_.commits() + 1);
  meta_ = committed_;
}

}  // namespace lifecycle::projections
