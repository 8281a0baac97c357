#include "projections/projector.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "projections/names.h"
#include "projections/rules.h"
#include "projections/rules/families.h"
#include "projections/view.h"

namespace lifecycle::projections {
namespace {

namespace v1 = lifecycle::v1;
using v1::PartitionMeta;

bool Later(const google::protobuf::Timestamp& a, const google::protobuf::Timestamp& b) {
  return a.seconds() > b.seconds() || (a.seconds() == b.seconds() && a.nanos() > b.nanos());
}

}  // namespace

const char* IndexKeys::rfm_segment() const {
  return rfm_r == 0 ? nullptr : rules::RfmSegmentName(rfm_r, rfm_f, rfm_m);
}

IndexKeys KeysOf(const CustomerRecord& r) {
  IndexKeys k;
  k.present = r.exists();
  if (!k.present) return k;
  k.stage = r.stage;
  k.grade = r.grade;
  k.tier = r.tier;
  k.region = r.region;
  k.advisor = r.advisor;
  k.rfm_r = r.rfm_r;
  k.rfm_f = r.rfm_f;
  k.rfm_m = r.rfm_m;
  k.partition = r.partition;
  k.churn = rules::ChurnInputsOf(r);
  k.due = DueOf(r);
  return k;
}

Contribution Contribution::Of(const CustomerRecord& r) {
  Contribution c;
  if (!r.exists()) return c;
  c.present = true;
  c.stage = r.stage;
  c.grade = r.grade;
  c.value_class = static_cast<uint8_t>(rules::ClassOf(static_cast<v1::ValueGrade>(r.grade)));
  c.tier = r.tier;
  c.age_band = r.age_band;
  c.warranty_status = r.warranty_status;
  c.activity_bucket = std::min(r.activity_days_12m, 4);
  c.activity_bucket_prev = std::min(r.activity_days_24m - r.activity_days_12m, 4);
  c.rfm_r = r.rfm_r;
  c.rfm_f = r.rfm_f;
  c.rfm_m = r.rfm_m;
  c.region = r.region;
  c.vehicle_model = r.vehicle_model;
  c.industry = r.industry;
  c.revenue = r.spend_12m;
  c.revenue_prev = r.spend_prev_12m;
  c.activities = r.activity_days_12m;
  c.activities_prev = r.activity_days_24m - r.activity_days_12m;
  return c;
}

namespace {
// The values of a customer's counters by RFM scores (0: none).
uint64_t RfmSegmentValue(uint8_t r, uint8_t f, uint8_t m) {
  return r == 0 ? 0u : static_cast<uint64_t>(rules::RfmSegmentIndex(r, f, m)) + 1;
}
uint64_t RfmGridValue(uint8_t r, uint8_t f) { return r == 0 ? 0u : static_cast<uint64_t>(r) * 8 + f; }
}  // namespace

Contribution::CountedList Contribution::Keys() const {
  if (!present) return {};
  using K = CounterKey;
  auto now = [this](K::Dim d, uint64_t v, uint64_t v2 = 0) {
    return Counted{{d, v, v2, 0, 0}, revenue, activities};
  };
  auto prev = [this](K::Dim d, uint64_t v, uint64_t v2 = 0) {
    return Counted{{d, v, v2, 0, 0}, revenue_prev, activities_prev};
  };
  const auto bucket = static_cast<uint64_t>(activity_bucket);
  const auto bucket_prev = static_cast<uint64_t>(activity_bucket_prev);
  CountedList out = {
      now(K::kAll, 0),
      now(K::kStage, stage),
      now(K::kGrade, grade),
      now(K::kValueClass, value_class),
      now(K::kTier, tier),
      now(K::kRfmSegment, RfmSegmentValue(rfm_r, rfm_f, rfm_m)),
      now(K::kRegion, region),
      now(K::kVehicleModel, vehicle_model),
      now(K::kIndustry, industry),
      now(K::kAgeBand, age_band),
      now(K::kWarrantyStatus, warranty_status),
      now(K::kActivityBucket, bucket),
      now(K::kRfmGrid, RfmGridValue(rfm_r, rfm_f)),
      now(K::kModelByActivity, vehicle_model, bucket),
      now(K::kWarrantyByActivity, warranty_status, bucket),
      prev(K::kActivityBucketPrev, bucket_prev),
      prev(K::kModelByActivityPrev, vehicle_model, bucket_prev),
      prev(K::kWarrantyByActivityPrev, warranty_status, bucket_prev),
  };
  return out;
}

std::string PartitionProjector::CounterName(const CounterKey& k) const {
  return CounterKeyName(k, [this](uint64_t h) {
    auto it = names_.find(h);
    // Every name was resolved when its record was loaded or its event folded.
    return it == names_.end() || it->second.empty() ? std::string("unknown") : it->second;
  });
}

std::string CounterKeyName(const CounterKey& k,
                           const std::function<std::string(uint64_t)>& name) {
  if (k.advisor != 0) {
    CounterKey all = k;
    all.advisor = 0;
    return absl::StrCat("@", name(k.advisor), "/", CounterKeyName(all, name));
  }
  const int v = static_cast<int>(k.value);
  auto bucket = [](uint64_t b) { return b >= 4 ? std::string("4+") : std::to_string(b); };
  switch (k.dim) {
    case CounterKey::kAll: return "customers/all";
    case CounterKey::kStage: return absl::StrCat("stage/", StageShort(v));
    case CounterKey::kGrade:
      return absl::StrCat("grade/", v == v1::VALUE_GRADE_UNSPECIFIED ? "NONE" : GradeShort(v));
    case CounterKey::kValueClass: return absl::StrCat("value_class/", ValueClassShort(v));
    case CounterKey::kTier: return absl::StrCat("tier/", TierShort(v));
    case CounterKey::kRfmSegment:
      return absl::StrCat("rfm_segment/", v == 0 ? "none" : rules::RfmSegmentNameAt(v - 1));
    case CounterKey::kRegion: return absl::StrCat("region/", name(k.value));
    case CounterKey::kVehicleModel: return absl::StrCat("vehicle_model/", name(k.value));
    case CounterKey::kIndustry: return absl::StrCat("industry/", name(k.value));
    case CounterKey::kAgeBand: return absl::StrCat("age_band/", AgeBandShort(v));
    case CounterKey::kWarrantyStatus: return absl::StrCat("warranty_status/", WarrantyStatusShort(v));
    case CounterKey::kActivityBucket: return absl::StrCat("activity_bucket/", bucket(k.value));
    case CounterKey::kActivityBucketPrev:
      return absl::StrCat("prev/activity_bucket/", bucket(k.value));
    case CounterKey::kModelByActivity:
      return absl::StrCat("vehicle_model_by_activity/", name(k.value), "|", bucket(k.value2));
    case CounterKey::kModelByActivityPrev:
      return absl::StrCat("prev/vehicle_model_by_activity/", name(k.value), "|", bucket(k.value2));
    case CounterKey::kWarrantyByActivity:
      return absl::StrCat("warranty_by_activity/", WarrantyStatusShort(v), "|", bucket(k.value2));
    case CounterKey::kWarrantyByActivityPrev:
      return absl::StrCat("prev/warranty_by_activity/", WarrantyStatusShort(v), "|",
                          bucket(k.value2));
    case CounterKey::kLostDeals:
      return absl::StrCat("lost_deals/", DealLostReasonShort(v), "|", name(k.value2), "|",
                          k.value3 == 0 ? std::string("none") : name(k.value3));
    case CounterKey::kAlertKind: return absl::StrCat("alert_kind/", AlertKindShort(v));
    case CounterKey::kStageTransition:
      return absl::StrCat("stage_transition/", StageShort(v / 16), "->", StageShort(v % 16));
    case CounterKey::kLostDealReason:
      return absl::StrCat("lost_deal_reason/", DealLostReasonShort(v));
    case CounterKey::kLostProspects:
      return absl::StrCat("lost_prospects/", v == 0 ? "lost" : "recovered");
    case CounterKey::kRfmGrid:
      return v == 0 ? std::string("rfm_grid/none") : absl::StrCat("rfm_grid/R", v / 8, "F", v % 8);
  }
  return "unknown";
}

PartitionProjector::PartitionProjector(const DomainConfig* config, PartitionMeta committed,
                                       StateReader* reader, size_t cache_bytes)
    : config_(config),
      committed_(std::move(committed)),
      meta_(committed_),
      reader_(reader),
      cache_bytes_(cache_bytes) {
  set_recency_steps(true);
}

void PartitionProjector::set_recency_steps(bool on) {
  // One R score per cut, each at its own instant (RunRecencyStep): strictly descending.
  const auto& cuts = config_->rfm_recency_days;
  recency_steps_ = on && !cuts.empty() &&
                   std::adjacent_find(cuts.begin(), cuts.end(), std::less_equal<>()) == cuts.end();
  if (!recency_steps_) {
    slots_.ForEach([](Slot& s) { s.rfm_r = 0; });
  }
}

absl::Status PartitionProjector::EnsureLoaded() {
  if (loaded_) return absl::OkStatus();
  auto loaded = reader_->LoadAggregates(meta_.partition());
  if (!loaded.ok()) return loaded.status();
  std::vector<std::pair<int64_t, std::string>> deadlines;
  if (absl::Status s = reader_->LoadDeadlines(meta_.partition(), &deadlines); !s.ok()) return s;
  aggregates_ = std::move(*loaded);
  for (const auto& [deadline, id] : deadlines) due_.Insert(deadline, SlotOf(id));
  loaded_ = true;
  return absl::OkStatus();
}

absl::StatusOr<const std::string*> PartitionProjector::Name(uint64_t hash) {
  static const std::string kNone;
  if (hash == 0) return &kNone;
  if (auto it = names_.find(hash); it != names_.end()) return &it->second;
  auto loaded = reader_->LoadText(hash);
  if (!loaded.ok()) return loaded.status();
  // A name missing from the dictionary (it should not be) counts as unknown.
  return &(names_[hash] = loaded->value_or(""));
}

uint32_t PartitionProjector::SlotOf(std::string_view customer_id) {
  const uint32_t n = ids_.Intern(customer_id);
  if (n == slots_.size()) slots_.emplace_back();
  return n;
}

absl::StatusOr<PartitionProjector::Cached*> PartitionProjector::StateFor(uint32_t n,
                                                                        bool deadlines) {
  Slot& slot = slots_[n];
  Cached* c = slot.live.get();
  if (!deadlines && c != nullptr) c->write = true;
  if (c != nullptr) {
    if (c->dirty) return c;
    ++cache_hits_;  // in flight
  } else {
    auto fresh = std::make_unique<Cached>();
    // Caught up as far as the deadlines have run; one changed by its deadlines in this
    // batch already (a LightChange) as far as they ran for it, which is further when the
    // RunDue that ran them did not end (a read failed) and deadlines_through stayed.
    const bool step = (slot.light & kStepBit) != 0;
    const int64_t through =
        slot.light == 0 ? meta_.deadlines_through()
                        : std::max(meta_.deadlines_through(),
                                   step ? steps_[(slot.light & ~kStepBit) - 1].through
                                        : light_[slot.light - 1].through);
    const bool from_memory = slot.clean != nullptr;
    std::optional<std::string> loaded;
    auto found = ReadStored(n, &fresh->record, &loaded);
    if (!found.ok()) return found.status();
    ++(from_memory ? cache_hits_ : cache_misses_);
    fresh->slot = n;
    // The bytes are the store's (a record its deadlines alone changed is not encoded
    // again, Pending): caught up as a record read from the store is, as the last event
    // left it — its deadlines since have run, and run again here.
    if (*found) {
      TakeStoredBytes(fresh.get(), loaded);
      CatchUpStored(*config_, through, &fresh->record);
    }
    fresh->write = !deadlines;
    if (step) {
      // Recency cuts lowered its R score in this batch already, and nothing else changed
      // it: the store has what it has now, with the R score before them.
      RecencyStep& st = steps_[(slot.light & ~kStepBit) - 1];
      fresh->before = KeysOf(fresh->record);
      fresh->before.rfm_r = st.r_before;
      fresh->before.due = st.due_before;
      fresh->before_contrib = Contribution::Of(fresh->record);
      fresh->before_contrib.rfm_r = st.r_before;
      st.gone = true;
      slot.light = 0;
    } else if (slot.light != 0) {
      // Its deadlines changed it in this batch already: the store has what was before.
      LightChange& l = light_[slot.light - 1];
      fresh->before = l.before;
      fresh->before_contrib = l.before_contrib;
      l.gone = true;
      slot.light = 0;
    } else {
      fresh->before = KeysOf(fresh->record);
      fresh->before_contrib = Contribution::Of(fresh->record);
    }
    c = Hold(std::move(fresh));
  }
  c->dirty = true;
  dirty_.push_back(c);
  return c;
}

absl::StatusOr<bool> PartitionProjector::ReadStored(uint32_t n, CustomerRecord* r,
                                                    std::optional<std::string>* loaded) {
  const Slot& slot = slots_[n];
  if (slot.clean) {
    if (absl::Status s = DecodeRecord({slot.clean.get(), slot.clean_size}, r); !s.ok()) return s;
    return true;
  }
  auto read = reader_->LoadRecord(ids_.Id(n));
  if (!read.ok()) return read.status();
  if (!read->has_value()) return false;
  *loaded = std::move(**read);
  if (absl::Status s = DecodeRecord(**loaded, r); !s.ok()) {
    return absl::DataLossError(absl::StrCat("customer ", std::string(ids_.Id(n)), ": ", s.message()));
  }
  // The names its counters are keyed by, for when they move.
  for (uint64_t h : {r->region, r->vehicle_model, r->industry, r->advisor, r->interest}) {
    if (auto name = Name(h); !name.ok()) return name.status();
  }
  return true;
}

void PartitionProjector::TakeStoredBytes(Cached* c, const std::optional<std::string>& loaded) {
  if (loaded) {
    c->SetEncoded(*loaded);
  } else {
    c->encoded = TakeClean(c->slot, &c->encoded_size);
  }
}

PartitionProjector::Cached* PartitionProjector::Hold(std::unique_ptr<Cached> fresh) {
  Cached* c = fresh.get();
  slots_[c->slot].live = std::move(fresh);
  ++held_;
  return c;
}

bool PartitionProjector::RunRecencyStep(uint32_t n, int64_t at, int64_t now) {
  Slot& slot = slots_[n];
  if (!recency_steps_ || slot.rfm_r == 0 || slot.light != 0) return false;
  if (OtherDue(slot) <= now) return false;
  uint8_t r = slot.rfm_r;
  int runs = 0;
  while (RecencyCutAt(slot, r) <= now) {
    --r;
    ++runs;  // one evaluation at each cut's instant
  }
  if (runs == 0) return false;  // due for something else (not known here)
  const uint8_t r_before = slot.rfm_r;
  slot.rfm_r = r;
  const int64_t next = NextDue(slot);
  steps_.push_back({n, false, r_before, r, slot.rfm_f, slot.rfm_m, slot.activities, slot.revenue,
                    now, at, next});
  slot.light = kStepBit | static_cast<uint32_t>(steps_.size());
  evaluations_ += runs;
  meta_.set_evaluations(meta_.evaluations() + runs);
  if (next != kNever) due_.Insert(next, n);
  return true;
}

int64_t PartitionProjector::RecencyCutAfter(int64_t last, uint8_t r) const {
  // A score of r is within the r - 1 largest cuts ("at most N days", descending): the
  // smallest of them is passed next.
  if (r < 2) return kNever;
  return last + (config_->rfm_recency_days[r - 2] + 1) * kDay;
}

void PartitionProjector::NoteRecency(uint32_t n, const CustomerRecord& r) {
  Slot& slot = slots_[n];
  const bool was_valid = slot.rfm_r != 0;
  slot.rfm_r = 0;
  if (!recency_steps_ || r.rfm_r == 0 || r.hold_until != 0 || r.erased) return;
  const int64_t last = SecondsOf(r.last_activity_ns);
  int64_t churn_other = r.churn_due_other.at;
  if (!r.churn_due_other.known) {
    // The churn family has not run on this copy since it was decoded (nor on the stored
    // record since its deadlines were last noted here, or its catch-up would have run
    // it): its deadlines are the ones noted, which its due instant confirms.
    if (!was_valid) return;
    churn_other = Unpacked(slot.churn_other);
    if (r.due[kChurnFamily] != std::min(churn_other, RecencyCutAfter(last, r.rfm_r))) return;
  }
  int64_t other = churn_other;
  for (int f = 0; f < kFamilyCount; ++f) {
    if (f != kChurnFamily) other = std::min(other, r.due[f]);
  }
  constexpr int64_t kMax = kNoDue - 1;
  auto fits = [](int64_t t) { return t >= 0 && (t <= kMax || t == kNever); };
  if (last < 0 || last > kMax || !fits(other) || !fits(churn_other) ||
      r.spend_12m < std::numeric_limits<int32_t>::min() ||
      r.spend_12m > std::numeric_limits<int32_t>::max() || r.activity_days_12m < 0 ||
      r.activity_days_12m > std::numeric_limits<uint16_t>::max()) {
    return;  // (times past 2106, spend beyond 2^31 minor units: the record's way)
  }
  slot.rfm_last = static_cast<uint32_t>(last);
  slot.other_due = Packed(other);
  slot.churn_other = Packed(churn_other);
  slot.revenue = static_cast<int32_t>(r.spend_12m);
  slot.activities = static_cast<uint16_t>(r.activity_days_12m);
  slot.rfm_r = r.rfm_r;
  slot.rfm_f = r.rfm_f;
  slot.rfm_m = r.rfm_m;
}

void PartitionProjector::MoveRecencyCounters(const RecencyStep& st,
                                             absl::flat_hash_map<CounterKey, Delta>* deltas) {
  auto move = [&](CounterKey::Dim dim, uint64_t from, uint64_t to) {
    if (from == to) return;
    Delta& out = (*deltas)[CounterKey{dim, from, 0, 0, 0}];
    --out.customers;
    out.revenue -= st.revenue;
    out.activities -= st.activities;
    Delta& in = (*deltas)[CounterKey{dim, to, 0, 0, 0}];
    ++in.customers;
    in.revenue += st.revenue;
    in.activities += st.activities;
  };
  move(CounterKey::kRfmSegment, RfmSegmentValue(st.r_before, st.rfm_f, st.rfm_m),
       RfmSegmentValue(st.r_after, st.rfm_f, st.rfm_m));
  move(CounterKey::kRfmGrid, RfmGridValue(st.r_before, st.rfm_f), RfmGridValue(st.r_after, st.rfm_f));
}

absl::StatusOr<bool> PartitionProjector::RunDeadlinesLight(uint32_t n, int64_t now, int64_t offset,
                                                           Effects& fx) {
  Slot& slot = slots_[n];
  // Changed by its deadlines in this batch already: due again so soon, it is held
  // (StateFor, from what the store has).
  if (slot.light != 0) return false;
  CustomerRecord& r = scratch_;
  std::optional<std::string> loaded;  // read from the store (not kept in memory)
  auto found = ReadStored(n, &r, &loaded);
  if (!found.ok()) return found.status();
  if (!*found) return false;
  CatchUpStored(*config_, meta_.deadlines_through(), &r);
  if (DueOf(r) > now) return false;
  // As StateFor counts it.
  ++(loaded ? cache_misses_ : cache_hits_);
  const IndexKeys before = KeysOf(r);
  const Contribution before_contrib = Contribution::Of(r);
  const int64_t runs = RunDeadlinesThrough(*config_, now, offset, &r, &fx);
  evaluations_ += runs - 1;
  meta_.set_evaluations(meta_.evaluations() + runs - 1);
  Evaluated(n, r, kNever);  // its entry is out of the index already
  if (!fx.alerts.empty()) {
    // An alert: kept live (a re-derivation of a late event reads the batch's alerts from
    // it), as StateFor would have.
    auto fresh = std::make_unique<Cached>();
    fresh->slot = n;
    fresh->record = std::move(r);
    fresh->before = before;
    fresh->before_contrib = before_contrib;
    TakeStoredBytes(fresh.get(), loaded);
    fresh->dirty = true;
    Cached* c = Hold(std::move(fresh));
    dirty_.push_back(c);
    Record(c, fx);
    return true;
  }
  Record(n, &r, nullptr, fx);
  light_.push_back({n, false, now, before, KeysOf(r), before_contrib, Contribution::Of(r)});
  slot.light = static_cast<uint32_t>(light_.size());
  // Its stored bytes stay what memory keeps of it, now the most recently used.
  if (loaded) {
    if (cache_bytes_ > 0) {
      auto bytes = std::make_unique<char[]>(loaded->size());
      std::memcpy(bytes.get(), loaded->data(), loaded->size());
      KeepClean(n, std::move(bytes), static_cast<uint32_t>(loaded->size()));
      Evict();
    }
  } else {
    Stamp(n);
  }
  return true;
}

void PartitionProjector::Cached::SetEncoded(std::string_view bytes) {
  encoded.reset(new char[bytes.size()]);
  std::memcpy(encoded.get(), bytes.data(), bytes.size());
  encoded_size = static_cast<uint32_t>(bytes.size());
}

void PartitionProjector::KeepClean(uint32_t n, std::unique_ptr<char[]> bytes, uint32_t size) {
  Slot& slot = slots_[n];
  slot.clean = std::move(bytes);
  slot.clean_size = size;
  cached_bytes_ += CleanBytes(slot.clean_size);
  ++clean_count_;
  Stamp(n);
}

void PartitionProjector::Stamp(uint32_t n) {
  Slot& slot = slots_[n];
  // Stamps tell a slot's latest entry from the ones its hits left behind. They wrap
  // after 2^32 keeps; entries left behind are dropped long before (below), and 0 is
  // never a stamp.
  if (next_stamp_ == 0) next_stamp_ = 1;
  slot.kept = next_stamp_++;
  kept_.push_back({n, slot.kept});
  // Evict drops the entries left behind as it passes them; a cache that is never full
  // drops them here, once they are two thirds of the queue.
  if (kept_.size() > 3 * clean_count_ + 1024) {
    std::deque<Kept> live;
    for (const Kept& k : kept_) {
      if (slots_[k.slot].kept == k.stamp) live.push_back(k);
    }
    kept_ = std::move(live);
  }
}

std::unique_ptr<char[]> PartitionProjector::TakeClean(uint32_t n, uint32_t* size) {
  Slot& slot = slots_[n];
  cached_bytes_ -= CleanBytes(slot.clean_size);
  --clean_count_;
  *size = std::exchange(slot.clean_size, 0);
  slot.kept = 0;  // its entry in kept_ is left behind
  return std::move(slot.clean);
}

void PartitionProjector::ChangeProfile(Cached* c) {
  if (c->profile) return;
  c->profile = std::make_unique<ProfileUpdate>();
  // A profile is stored only with a record that has applied an event: one under the
  // key of a customer with none is not its (a change begun since builds on the last).
  c->profile->reset = !c->profile_begun && c->record.event_count == 0;
  c->profile_begun = true;
}

void PartitionProjector::Evaluated(uint32_t slot, const CustomerRecord& r,
                                   int64_t previous_deadline) {
  ++evaluations_;
  meta_.set_evaluations(meta_.evaluations() + 1);
  Reindex(slot, r, previous_deadline);
}

void PartitionProjector::Reindex(uint32_t slot, const CustomerRecord& r,
                                 int64_t previous_deadline) {
  NoteRecency(slot, r);
  const int64_t due = DueOf(r);
  if (due == previous_deadline) return;
  if (previous_deadline != kNever) due_.Erase(previous_deadline, slot);
  if (due != kNever) due_.Insert(due, slot);
}

void PartitionProjector::Count(CounterKey key, uint64_t advisor, int64_t n) {
  event_counts_[key].customers += n;
  if (advisor == 0) return;
  key.advisor = advisor;
  event_counts_[key].customers += n;
}

void PartitionProjector::Record(uint32_t slot, CustomerRecord* r,
                                std::vector<AlertRef>* alerts_dirty, Effects& fx) {
  for (auto& [h, s] : fx.names) {
    if (names_.emplace(h, s).second) new_names_.emplace_back(h, std::move(s));
  }
  const std::string_view id = ids_.Id(slot);
  for (auto& t : fx.texts) texts_.push_back({std::string(id), 0, std::move(t)});
  // An alert about something long past when the fold learns of it is late.
  const int64_t horizon = static_cast<int64_t>(config_->alert_horizon_days) * kDay;
  for (auto& a : fx.alerts) {
    if (learned_at_ - a.at > horizon) {
      a.late = true;
      meta_.set_alerts_late(meta_.alerts_late() + 1);
    }
    Count({CounterKey::kAlertKind, a.kind}, r->advisor);
    alerts_dirty->push_back({a.kind, a.offset, a.disc});
    alerts_.push_back({std::string(id), meta_.partition(), meta_.alerts_next_seq(), std::move(a)});
    meta_.set_alerts_next_seq(meta_.alerts_next_seq() + 1);
    ++r->alerts;
  }
  uint32_t seq = r->transitions - static_cast<uint32_t>(fx.transitions.size());
  for (auto& t : fx.transitions) {
    Count({CounterKey::kStageTransition, static_cast<uint64_t>(t.from) * 16 + t.to},
          r->advisor);
    transitions_.push_back({std::string(id), seq++, std::move(t)});
  }
  if (fx.became_lost_prospect) Count({CounterKey::kLostProspects, 0}, r->advisor);
  if (fx.recovered_lost_prospect) Count({CounterKey::kLostProspects, 1}, r->advisor);
  seq = r->lost_deals - static_cast<uint32_t>(fx.lost_deals.size());
  for (auto& l : fx.lost_deals) {
    Count({CounterKey::kLostDealReason, l.reason}, r->advisor);
    // By reason x vehicle model (the lead's interest, else the profile's) x advisor.
    const uint64_t model = r->interest != 0 ? r->interest : r->vehicle_model;
    Count({CounterKey::kLostDeals, l.reason, model, r->advisor}, r->advisor);
    lost_deals_.push_back({std::string(id), seq++, std::move(l)});
  }
  fx = Effects();
}

void PartitionProjector::RunOwnDeadlines(CustomerRecord* r, int64_t before, int64_t offset,
                                         Effects* fx) {
  while (r->next_deadline < before) {
    Evaluate(*config_, r->next_deadline, offset, r, fx, 0);
    ++evaluations_;
    meta_.set_evaluations(meta_.evaluations() + 1);
  }
}

void PartitionProjector::FoldInCustomerTime(Cached* c, int64_t t, int64_t stream_time,
                                            int64_t offset, uint16_t runs, Effects* fx,
                                            int64_t previous_due) {
  CustomerRecord& r = c->record;
  // At the event's time; an event older than what the customer has seen (beyond the
  // journal's reach) is folded at the customer's time.
  Evaluate(*config_, std::max(t, r.evaluated_at), offset, &r, fx, runs);
  SettleOrCatchUp(&r, t, stream_time, offset, fx);
  Evaluated(c, previous_due);
}

void PartitionProjector::SettleOrCatchUp(CustomerRecord* r, int64_t t, int64_t stream_time,
                                         int64_t offset, Effects* fx) {
  const int64_t settle = static_cast<int64_t>(config_->settle_minutes) * 60;
  if (stream_time - t > settle) {
    // Late history: deadlines beyond the customer's own time wait until it has settled.
    r->hold_until = stream_time + settle;
    meta_.set_events_late(meta_.events_late() + 1);
  }
  // Not held: catch up with the stream, each deadline at its own instant.
  if (r->hold_until == 0 || r->hold_until <= stream_time) {
    r->hold_until = 0;
    RunOwnDeadlines(r, stream_time, offset, fx);
  }
  // A hold no deadline waits for is moot (the next late event sets it again).
  if (r->hold_until != 0 && r->next_deadline != kNever && r->next_deadline >= r->hold_until) {
    r->hold_until = 0;
  }
}

void PartitionProjector::Journal(Cached* c, JournalWrite w) {
  journal_.push_back({std::string(IdOf(c)), 0, w});
  c->journal_dirty.push_back(std::move(w));
}

namespace {
// A base's stored bytes: the record without what depends on arrival (its journal, a hold).
void EncodeBase(const CustomerRecord& r, std::string* out) {
  CustomerRecord copy = r;
  copy.journal_older = copy.journal_newer = JournalBase();
  copy.journal_next = 0;
  copy.hold_until = 0;
  EncodeRecord(copy, out);
}
}  // namespace

void PartitionProjector::Snapshot(Cached* c, JournalBase* base, uint8_t kind, int64_t pos_at,
                                  int64_t pos_offset) {
  JournalWrite w{JournalWrite::kSnapshot, static_cast<uint32_t>(kind - JournalBase::kSlot0), 0, {}};
  EncodeBase(c->record, &w.bytes);
  *base = JournalBase{kind, c->record.evaluated_at, pos_at, pos_offset, c->record.journal_next};
  Journal(c, std::move(w));
}

void PartitionProjector::BeforeEntry(Cached* c, int64_t t, int64_t offset) {
  CustomerRecord& r = c->record;
  JournalBase& older = r.journal_older;
  JournalBase& newer = r.journal_newer;
  constexpr int64_t kFirst = std::numeric_limits<int64_t>::min();
  if (older.kind == JournalBase::kNone) {
    // A new customer starts from the empty record; one stored before the journal
    // existed, from itself as it is now.
    if (!r.exists()) {
      older = JournalBase{JournalBase::kBeginning, kFirst, kFirst, 0, r.journal_next};
    } else {
      Snapshot(c, &older, JournalBase::kSlot0, t, offset);
    }
    return;
  }
  const int64_t window = static_cast<int64_t>(config_->late_window_days) * kDay;
  if (newer.kind != JournalBase::kNone) {
    if (newer.pos_at > t - window) return;
    // The newer base is a window behind: it becomes the older one, and the older one
    // and the entries before the newer are no longer needed.
    if (older.first < newer.first) Journal(c, {JournalWrite::kDrop, older.first, newer.first, {}});
    if (older.slot() >= 0) {
      Journal(c, {JournalWrite::kDropSnapshot, static_cast<uint32_t>(older.slot()), 0, {}});
    }
    older = newer;
    newer = JournalBase();
    return;
  }
  // The older base two windows behind: a newer one is taken here (the older one until
  // then covers every event a window older than the customer's latest).
  const int64_t older_at =
      older.kind == JournalBase::kBeginning ? r.first_seen_ns / 1000000000 : older.pos_at;
  if (older_at > t - 2 * window) return;
  Snapshot(c, &newer, older.kind == JournalBase::kSlot0 ? JournalBase::kSlot1 : JournalBase::kSlot0,
           t, offset);
}

void PartitionProjector::AppendEntry(Cached* c, int64_t fold_at, int64_t offset,
                                     bool after_deadlines, std::string_view value) {
  JournalWrite w{JournalWrite::kEntry, c->record.journal_next++, 0, {}};
  EncodeJournalEntry(JournalEntry{fold_at, offset, after_deadlines, std::string(value)}, IdOf(c),
                     &w.bytes);
  Journal(c, std::move(w));
}

void PartitionProjector::EndJournal(Cached* c) {
  CustomerRecord& r = c->record;
  if (r.journal_older.kind != JournalBase::kNone && r.journal_older.first < r.journal_next) {
    Journal(c, {JournalWrite::kDrop, r.journal_older.first, r.journal_next, {}});
  }
  for (const JournalBase* b : {&r.journal_older, &r.journal_newer}) {
    if (b->slot() >= 0) {
      Journal(c, {JournalWrite::kDropSnapshot, static_cast<uint32_t>(b->slot()), 0, {}});
    }
  }
  r.journal_older = r.journal_newer = JournalBase();
}

absl::StatusOr<bool> PartitionProjector::ReadJournal(Cached* c, const JournalBase& base,
                                                     CustomerRecord* start,
                                                     std::vector<LateStep>* steps) {
  auto stored = reader_->LoadJournal(IdOf(c), base.slot(), base.first);
  if (!stored.ok()) return stored.status();
  std::optional<std::string> snapshot = std::move(stored->snapshot);
  std::map<uint32_t, std::string> entries;
  for (auto& [n, bytes] : stored->entries) entries.emplace(n, std::move(bytes));
  // What the store may not have yet.
  for (const auto* writes : {&c->journal_in_flight, &c->journal_dirty}) {
    for (const JournalWrite& w : *writes) {
      switch (w.kind) {
        case JournalWrite::kEntry:
          if (w.n >= base.first) entries[w.n] = w.bytes;
          break;
        case JournalWrite::kSnapshot:
          if (static_cast<int>(w.n) == base.slot()) snapshot = w.bytes;
          break;
        case JournalWrite::kDropSnapshot:
          if (static_cast<int>(w.n) == base.slot()) snapshot.reset();
          break;
        case JournalWrite::kDrop:
          entries.erase(entries.lower_bound(w.n), entries.lower_bound(w.end));
          break;
      }
    }
  }
  if (base.slot() >= 0 && (!snapshot || !DecodeRecord(*snapshot, start).ok())) return false;
  steps->reserve(entries.size() + 1);
  for (const auto& [n, bytes] : entries) {
    JournalEntry entry;
    if (!DecodeJournalEntry(bytes, IdOf(c), &entry).ok()) return false;
    if (entry.fold_at < base.pos_at ||
        (entry.fold_at == base.pos_at && entry.offset < base.pos_offset)) {
      continue;  // before the base (a late entry the older base had taken in)
    }
    Decoded d = DecodeEvent(entry.event);
    if (d.outcome != DecodeOutcome::kOk) continue;
    steps->push_back({entry.fold_at, entry.offset, entry.after_deadlines, std::move(d.event), false});
  }
  return true;
}

PartitionProjector::Refolded PartitionProjector::Refold(const CustomerRecord& start,
                                                        const std::vector<LateStep>& steps,
                                                        bool with_late, const JournalBase* retake,
                                                        int64_t catch_up_before, int64_t offset) {
  Refolded f;
  f.r = start;
  Effects step;
  auto collect = [&f, &step] {
    for (auto& a : step.alerts) f.fx.alerts.push_back(std::move(a));
    for (auto& x : step.transitions) f.fx.transitions.push_back(std::move(x));
    for (auto& l : step.lost_deals) f.fx.lost_deals.push_back(std::move(l));
    for (auto& x : step.texts) f.fx.texts.push_back(std::move(x));
    for (auto& x : step.names) f.fx.names.push_back(std::move(x));
    f.became_lost_prospect += step.became_lost_prospect;
    f.recovered_lost_prospect += step.recovered_lost_prospect;
    step = Effects();
  };
  // The newer base, taken again where it stands (before the entry at its position).
  auto take = [&](int64_t at_offset) {
    RunOwnDeadlines(&f.r, retake->pos_at, at_offset, &step);
    EncodeBase(f.r, &f.newer_snapshot);
    f.newer_at = f.r.evaluated_at;
    retake = nullptr;
  };
  for (const LateStep& s : steps) {
    if (s.late && !with_late) continue;
    if (retake != nullptr && (s.at > retake->pos_at ||
                              (s.at == retake->pos_at && s.offset >= retake->pos_offset))) {
      take(s.offset);
    }
    RunOwnDeadlines(&f.r, s.at + (s.after_deadlines ? 1 : 0), s.offset, &step);
    uint16_t runs = 0;
    if (ApplyEvent(*config_, meta_.partition(), s.offset, s.event, &f.r, &step, &runs) ==
        FoldResult::kDuplicate) {
      if (s.late) {
        f.duplicate = true;
        return f;
      }
      collect();
      continue;
    }
    Evaluate(*config_, s.at, s.offset, &f.r, &step, runs);
    ++evaluations_;
    meta_.set_evaluations(meta_.evaluations() + 1);
    collect();
  }
  if (retake != nullptr) take(offset);
  if (catch_up_before != 0) RunOwnDeadlines(&f.r, catch_up_before, offset, &step);
  collect();
  return f;
}

absl::StatusOr<bool> PartitionProjector::Rederive(Cached* c, const v1::Event& e,
                                                  std::string_view value, int64_t offset,
                                                  int64_t stream_time, int64_t previous_due,
                                                  Effects* out, bool* duplicate) {
  const CustomerRecord& cur = c->record;
  const int64_t t = e.occurred_at().seconds();
  const JournalBase& older = cur.journal_older;
  const JournalBase& newer = cur.journal_newer;
  // The newest base the event comes after (a base holds every entry before its
  // position, so one before it is folded from the base before that, and the newer base
  // taken again with it).
  const bool from_newer = newer.kind != JournalBase::kNone && t >= newer.pos_at;
  if (!from_newer && older.kind != JournalBase::kBeginning &&
      (older.kind == JournalBase::kNone || t < older.pos_at)) {
    return false;
  }
  const JournalBase base = from_newer ? newer : older;
  // Everything read first: a read that fails leaves nothing changed, for the retry.
  CustomerRecord start;
  std::vector<LateStep> steps;
  auto usable = ReadJournal(c, base, &start, &steps);
  if (!usable.ok()) return usable.status();
  if (!*usable) return false;
  auto refs = reader_->LoadAlertRefs(IdOf(c));
  if (!refs.ok()) return refs.status();
  for (const auto* more : {&c->alerts_in_flight, &c->alerts_dirty}) {
    refs->insert(refs->end(), more->begin(), more->end());
  }
  steps.push_back({t, offset, false, e, true});
  std::stable_sort(steps.begin(), steps.end(), [](const LateStep& a, const LateStep& b) {
    return a.at != b.at ? a.at < b.at : a.offset < b.offset;
  });

  // The customer folded from the base with the late event in its place, and without it
  // (what the fold had said: its history and alerts are what this one replaces).
  const bool retake_newer = !from_newer && newer.kind != JournalBase::kNone;
  Refolded now = Refold(start, steps, true, retake_newer ? &newer : nullptr, 0, offset);
  if (now.duplicate) {
    *duplicate = true;
    return true;
  }
  const Refolded was = Refold(start, steps, false, nullptr, cur.evaluated_at + 1, offset);
  CustomerRecord r = std::move(now.r);
  // What the customer had been judged to stands (its alerts were raised): a hold waits
  // only for the deadlines after that.
  RunOwnDeadlines(&r, cur.evaluated_at + 1, offset, &now.fx);
  r.hold_until = cur.hold_until > stream_time ? cur.hold_until : 0;
  SettleOrCatchUp(&r, t, stream_time, offset, &now.fx);
  r.last_offset = std::max(cur.last_offset, offset);
  {
    // The profile is folded in arrival order, not re-derived (last write wins): the
    // facts the record keeps of it, which its counters and indexes are keyed by, follow.
    CustomerRecord seen = cur;
    Effects ignored;
    uint16_t runs = 0;
    ApplyEvent(*config_, meta_.partition(), offset, e, &seen, &ignored, &runs);
    r.region = seen.region;
    r.vehicle_model = seen.vehicle_model;
    r.industry = seen.industry;
    r.age_band = seen.age_band;
    r.currency = seen.currency;
    r.advisor = seen.advisor;
    r.birthday = seen.birthday;
  }
  r.alerts = cur.alerts;  // Record() counts the alerts raised now
  r.journal_older = cur.journal_older;
  r.journal_newer = cur.journal_newer;
  r.journal_next = cur.journal_next;
  if (retake_newer) {
    r.journal_newer.at = now.newer_at;
    Journal(c, {JournalWrite::kSnapshot,
                static_cast<uint32_t>(r.journal_newer.kind - JournalBase::kSlot0), 0,
                std::move(now.newer_snapshot)});
  }
  ReplaceHistory(std::string(IdOf(c)), start, cur, r, now, was);
  // Alerts: those not raised before (an alert is not taken back once raised): not in
  // what the fold had said (the same kind, subject and instant), and not in the
  // customer's alerts (the same kind and subject — a crossing, a task, a complaint —
  // or, for an alert without one, the same id).
  for (auto& a : now.fx.alerts) {
    const bool said = std::any_of(was.fx.alerts.begin(), was.fx.alerts.end(),
                                  [&a](const AlertFact& o) {
                                    return o.kind == a.kind && o.disc == a.disc && o.at == a.at;
                                  });
    const bool raised = std::any_of(refs->begin(), refs->end(), [&a](const AlertRef& o) {
      return o.kind == a.kind && o.disc == a.disc &&
             (a.disc.kind != Discriminator::kNone || o.offset == a.offset);
    });
    if (!said && !raised) out->alerts.push_back(std::move(a));
  }
  for (auto& x : now.fx.texts) out->texts.push_back(std::move(x));
  for (auto& x : now.fx.names) out->names.push_back(std::move(x));

  c->record = std::move(r);
  AppendEntry(c, t, offset, false, value);
  Evaluated(c, previous_due);
  return true;
}

void PartitionProjector::ReplaceHistory(const std::string& id, const CustomerRecord& start,
                                        const CustomerRecord& cur, const CustomerRecord& r,
                                        const Refolded& now, const Refolded& was) {
  // From the first entry that differs each history is written anew, its counters move
  // by the difference, and entries past its new end are cut. The batch's own appends
  // from there on are replaced.
  HistoryCut cut{id};
  auto same = [](const TransitionEntry& a, const TransitionEntry& b) {
    return a.from == b.from && a.to == b.to && a.at == b.at && a.reason == b.reason;
  };
  const auto& nt = now.fx.transitions;
  const auto& ot = was.fx.transitions;
  size_t k = 0;
  while (k < nt.size() && k < ot.size() && same(nt[k], ot[k])) ++k;
  const uint32_t t_from = start.transitions + static_cast<uint32_t>(k);
  std::erase_if(transitions_, [&](const Appended<TransitionEntry>& a) {
    return a.seq >= t_from && a.customer_id == id;
  });
  auto transition = [](const TransitionEntry& x) {
    return CounterKey{CounterKey::kStageTransition, static_cast<uint64_t>(x.from) * 16 + x.to};
  };
  for (size_t i = k; i < ot.size(); ++i) Count(transition(ot[i]), r.advisor, -1);
  for (size_t i = k; i < nt.size(); ++i) {
    Count(transition(nt[i]), r.advisor);
    transitions_.push_back({id, start.transitions + static_cast<uint32_t>(i), nt[i]});
  }
  if (cur.transitions > r.transitions) {
    cut.transitions_from = r.transitions;
    cut.transitions_to = cur.transitions;
  }

  const auto& nl = now.fx.lost_deals;
  const auto& ol = was.fx.lost_deals;
  k = 0;
  while (k < nl.size() && k < ol.size() && nl[k] == ol[k]) ++k;
  const uint32_t l_from = start.lost_deals + static_cast<uint32_t>(k);
  std::erase_if(lost_deals_, [&](const Appended<LostDealEntry>& a) {
    return a.seq >= l_from && a.customer_id == id;
  });
  const uint64_t model = r.interest != 0 ? r.interest : r.vehicle_model;
  auto count = [&](const LostDealEntry& l, int64_t n) {
    Count({CounterKey::kLostDealReason, l.reason}, r.advisor, n);
    Count({CounterKey::kLostDeals, l.reason, model, r.advisor}, r.advisor, n);
  };
  for (size_t i = k; i < ol.size(); ++i) count(ol[i], -1);
  for (size_t i = k; i < nl.size(); ++i) {
    count(nl[i], 1);
    lost_deals_.push_back({id, start.lost_deals + static_cast<uint32_t>(i), nl[i]});
  }
  if (cur.lost_deals > r.lost_deals) {
    cut.lost_deals_from = r.lost_deals;
    cut.lost_deals_to = cur.lost_deals;
  }
  if (cut.transitions_to > cut.transitions_from || cut.lost_deals_to > cut.lost_deals_from) {
    cuts_.push_back(std::move(cut));
  }
  if (int64_t n = now.became_lost_prospect - was.became_lost_prospect; n != 0) {
    Count({CounterKey::kLostProspects, 0}, r.advisor, n);
  }
  if (int64_t n = now.recovered_lost_prospect - was.recovered_lost_prospect; n != 0) {
    Count({CounterKey::kLostProspects, 1}, r.advisor, n);
  }
}

absl::Status PartitionProjector::RunDue(int64_t now, int64_t offset, bool* all_done) {
  // Too many due for one batch: only those due before the instant of the first one past
  // the limit, each through that instant less one; the rest wait for the next call.
  const int64_t through = max_due_ > 0 ? due_.CutFor(now, max_due_) : now;
  *all_done = through == now;
  now = through;
  // Every customer whose deadline has come, in (deadline, customer) order; each one's
  // evaluation sets a deadline after `now`.
  const std::vector<DueIndex::Due> due = due_.TakeThrough(now);
  Effects fx;
  for (size_t i = 0; i < due.size(); ++i) {
    if (slots_[due[i].slot].live == nullptr) {
      if (RunRecencyStep(due[i].slot, due[i].at, now)) continue;
      auto light = RunDeadlinesLight(due[i].slot, now, offset, fx);
      if (!light.ok()) {
        for (size_t j = i; j < due.size(); ++j) due_.Insert(due[j].at, due[j].slot);
        return light.status();
      }
      if (*light) continue;
    }
    auto d = StateFor(due[i].slot, /*deadlines=*/true);
    if (!d.ok()) {
      // Not evaluated: they stay due, for when the record is offered again.
      for (size_t j = i; j < due.size(); ++j) due_.Insert(due[j].at, due[j].slot);
      return d.status();
    }
    CustomerRecord& r = (*d)->record;
    if (DueOf(r) > now) continue;  // (the index holds each one's deadline)
    // Evaluations before the last one (Evaluated counts that).
    const int64_t earlier = RunDeadlinesThrough(*config_, now, offset, &r, &fx) - 1;
    evaluations_ += earlier;
    meta_.set_evaluations(meta_.evaluations() + earlier);
    Evaluated(*d, kNever);  // its entry is out of the index already
    Record(*d, fx);
  }
  // Records read from the store from now on are brought this far (CatchUpStored).
  meta_.set_deadlines_through(std::max(meta_.deadlines_through(), now));
  return absl::OkStatus();
}

absl::StatusOr<RecordOutcome> PartitionProjector::Apply(int64_t offset, std::string_view value) {
  RecordOutcome out;
  if (offset <= meta_.offset()) {
    out.kind = RecordOutcome::kAlreadyApplied;
    return out;
  }
  pending_fresh_ = false;
  if (absl::Status s = EnsureLoaded(); !s.ok()) return s;
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
  google::protobuf::Timestamp stream_time = meta_.stream_time();
  if (!meta_.has_stream_time() || Later(e.occurred_at(), stream_time)) {
    stream_time = e.occurred_at();
    // Deadlines before the event's instant run first; one at its very instant runs
    // after it (an event at a deadline's instant is applied before the deadline: a
    // complaint resolved as its SLA ends is not overdue). A clock tick runs them all.
    const bool tick = e.payload_case() == v1::Event::kClockTick;
    learned_at_ = stream_time.seconds();
    bool all_done = true;
    if (absl::Status s = RunDue(stream_time.seconds() - (tick ? 0 : 1), offset, &all_done);
        !s.ok()) {
      return s;
    }
    if (!all_done) {
      // The record itself waits: its offset and stream time stay where they were.
      out.kind = RecordOutcome::kDeferred;
      return out;
    }
  }
  const int64_t now = stream_time.seconds();
  learned_at_ = now;
  if (e.payload_case() != v1::Event::kClockTick) {
    auto dirty = StateFor(SlotOf(e.customer_id()));
    if (!dirty.ok()) return dirty.status();
    Cached* c = *dirty;
    if (ChangesProfile(e)) ChangeProfile(c);
    Effects fx;
    uint16_t runs = 0;
    const int64_t previous_due = DueOf(c->record);
    const int64_t t = e.occurred_at().seconds();
    const bool in_order = !c->record.exists() || t >= c->record.evaluated_at;
    bool placed = false;
    // An erased customer keeps no journal (its entries held personal data), nor does
    // any customer while there is no window (one that had a journal drops it: turned
    // on again later, it starts afresh rather than from a base that misses events).
    const bool journals = Journaling() && !c->record.erased;
    if (!Journaling() && c->record.journal_older.kind != JournalBase::kNone) EndJournal(c);
    if (!in_order) {
      // Older than what the customer has seen: re-derived with it in its place, when
      // the journal reaches back that far; otherwise folded at the customer's time.
      if (journals) {
        bool duplicate = false;
        auto done = Rederive(c, e, value, offset, now, previous_due, &fx, &duplicate);
        if (!done.ok()) return done.status();  // nothing changed: offered again
        placed = *done;
        if (placed && duplicate) {
          out.kind = RecordOutcome::kDuplicate;
          meta_.set_events_duplicate(meta_.events_duplicate() + 1);
        } else if (placed) {
          if (ChangesProfile(e)) {
            FoldProfile(e, c->record.erased, c->profile.get());
            c->profile_dirty = true;
          }
          if (c->record.erased) EndJournal(c);  // a late erasure
        }
      }
      if (!placed) meta_.set_events_beyond_window(meta_.events_beyond_window() + 1);
      meta_.set_events_out_of_order(meta_.events_out_of_order() + 1);
    }
    if (!placed) {
      const int64_t fold_at = in_order ? t : c->record.evaluated_at;
      // In the customer's own time: its deadlines before the event come first (those of
      // a customer whose late history is settling have waited for it).
      if (in_order && c->record.exists()) RunOwnDeadlines(&c->record, t, offset, &fx);
      // A base is taken before the event is applied — not for a duplicate, which is not
      // applied (a base positioned at it would hide the events that follow).
      const auto& seen = c->record.recent_events;
      const bool duplicate =
          std::find(seen.begin(), seen.end(), TextHash(e.event_id())) != seen.end();
      if (in_order && journals && !duplicate) BeforeEntry(c, t, offset);
      const bool after_deadlines = c->record.exists() && c->record.evaluated_at >= fold_at;
      if (ApplyEvent(*config_, meta_.partition(), offset, e, &c->record, &fx, &runs) ==
          FoldResult::kDuplicate) {
        out.kind = RecordOutcome::kDuplicate;
        meta_.set_events_duplicate(meta_.events_duplicate() + 1);
        Reindex(c, previous_due);  // deadlines before it may have run
      } else {
        if (ChangesProfile(e)) {
          FoldProfile(e, c->record.erased, c->profile.get());
          c->profile_dirty = true;
        }
        FoldInCustomerTime(c, t, now, offset, runs, &fx, previous_due);
        if (c->record.erased) {
          if (journals) EndJournal(c);  // the erasure: its entries held personal data
        } else if (journals && c->record.journal_older.kind != JournalBase::kNone) {
          // (Without a base — a record from before the journal, late — an entry would
          // never be re-read: none is written.)
          AppendEntry(c, fold_at, offset, after_deadlines, value);
        }
      }
    }
    Record(c, fx);
  }
  *meta_.mutable_stream_time() = stream_time;
  if (out.kind == RecordOutcome::kApplied) meta_.set_events_applied(meta_.events_applied() + 1);
  meta_.set_offset(offset);
  return out;
}

void PartitionProjector::MoveCounters(const Contribution& b, const Contribution& a,
                                      absl::flat_hash_map<CounterKey, Delta>* out) {
  if (a == b) return;
  absl::flat_hash_map<CounterKey, Delta>& deltas = *out;
  const Contribution::CountedList bk = b.Keys(), ak = a.Keys();
  // Keys() lists the dimensions in one order: a counter the customer stays in moves
  // only by the change in what it adds (most events change a key or two, not all).
  const size_t same_shape = bk.size() == ak.size() ? bk.size() : 0;
  auto remove = [&deltas](const Contribution::Counted& c) {
    Delta& x = deltas[c.key];
    --x.customers;
    x.revenue -= c.revenue;
    x.activities -= c.activities;
  };
  auto add = [&deltas](const Contribution::Counted& c) {
    Delta& x = deltas[c.key];
    ++x.customers;
    x.revenue += c.revenue;
    x.activities += c.activities;
  };
  for (size_t i = 0; i < same_shape; ++i) {
    if (bk[i].key == ak[i].key) {
      if (ak[i].revenue != bk[i].revenue || ak[i].activities != bk[i].activities) {
        Delta& x = deltas[bk[i].key];
        x.revenue += ak[i].revenue - bk[i].revenue;
        x.activities += ak[i].activities - bk[i].activities;
      }
      continue;
    }
    remove(bk[i]);
    add(ak[i]);
  }
  if (same_shape == 0) {  // appearing, leaving (erased), or an advisor set or removed
    for (const auto& k : bk) remove(k);
    for (const auto& k : ak) add(k);
  }
}

PendingBatch PartitionProjector::Pending() {
  PendingBatch batch;
  batch.meta = meta_;
  batch.meta.set_commits(committed_.commits() + 1);
  batch.customers.reserve(dirty_.size() + light_.size() + steps_.size());
  // Counters: the event counts so far, then each customer's contribution moved from
  // what the store has (before) to what it has now (after).
  absl::flat_hash_map<CounterKey, Delta> deltas = event_counts_;
  std::set<uint64_t> regions;
  // Those held, in the order first touched, then those held as their keys and counters
  // (the store puts a commit's keys in order itself).
  for (Cached* d : dirty_) {
    d->after = KeysOf(d->record);
    d->after_contrib = Contribution::Of(d->record);
    MoveCounters(d->before_contrib, d->after_contrib, &deltas);
    CustomerChange change{std::string(IdOf(d)), {}, std::nullopt, d->before, d->after};
    // Changed by its deadlines alone: the store's copy, caught up to deadlines_through
    // when read (CatchUpStored), is this one; only its index entries and counters move,
    // and the bytes kept for it are the store's, not encoded again.
    if (d->write || !d->encoded) {
      EncodeRecord(d->record, &change.record);
      d->SetEncoded(change.record);
    }
    if (!d->write) {
      change.write_record = false;
      change.record.clear();
    }
    if (d->profile_dirty) change.profile = EncodeProfileUpdate(*d->profile);
    if (d->before.region != d->after.region || d->before.advisor != d->after.advisor) {
      regions.insert({d->before.region, d->after.region, d->before.advisor, d->after.advisor});
    }
    batch.customers.push_back(std::move(change));
  }
  // Those only their deadlines changed, held as their keys and counters: the stored
  // record stays as it is (caught up when read).
  for (size_t i = 0; i < light_.size(); ++i) {
    // (Their ids are spread over the id table: asked for ahead.)
    if (i + 16 < light_.size()) ids_.Prefetch(light_[i + 16].slot, 0);
    if (i + 8 < light_.size()) ids_.Prefetch(light_[i + 8].slot, 1);
    const LightChange& l = light_[i];
    if (l.gone) continue;
    MoveCounters(l.before_contrib, l.after_contrib, &deltas);
    if (l.before.region != l.after.region || l.before.advisor != l.after.advisor) {
      regions.insert({l.before.region, l.after.region, l.before.advisor, l.after.advisor});
    }
    CustomerChange change{std::string(ids_.Id(l.slot)), {}, std::nullopt, l.before, l.after};
    change.write_record = false;
    batch.customers.push_back(std::move(change));
  }
  // Those only recency cuts changed: their R score.
  for (size_t i = 0; i < steps_.size(); ++i) {
    if (i + 16 < steps_.size()) ids_.Prefetch(steps_[i + 16].slot, 0);
    if (i + 8 < steps_.size()) ids_.Prefetch(steps_[i + 8].slot, 1);
    const RecencyStep& st = steps_[i];
    if (st.gone) continue;
    MoveRecencyCounters(st, &deltas);
    CustomerChange change{std::string(ids_.Id(st.slot)), {}, std::nullopt, {}, {}};
    change.write_record = false;
    change.recency_only = true;
    for (IndexKeys* k : {&change.before, &change.after}) {
      k->present = true;
      k->rfm_f = st.rfm_f;
      k->rfm_m = st.rfm_m;
      k->partition = meta_.partition();
    }
    change.before.rfm_r = st.r_before;
    change.after.rfm_r = st.r_after;
    change.before.due = st.due_before;
    change.after.due = st.due_after;
    batch.customers.push_back(std::move(change));
  }
  for (uint64_t h : regions) {
    if (auto it = names_.find(h); h != 0 && it != names_.end()) batch.names.emplace_back(h, it->second);
  }
  pending_aggregates_.clear();
  pending_aggregates_.reserve(deltas.size());
  for (const auto& [k, delta] : deltas) {
    std::string name = CounterName(k);
    v1::AggregateValue v;
    if (auto it = aggregates_.find(name); it != aggregates_.end()) v = it->second;
    v.set_customers(v.customers() + delta.customers);
    v.set_revenue_minor(v.revenue_minor() + delta.revenue);
    v.set_activity_days(v.activity_days() + delta.activities);
    pending_aggregates_.emplace_back(std::move(name), v);
  }
  std::sort(pending_aggregates_.begin(), pending_aggregates_.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  pending_fresh_ = true;
  batch.aggregates = pending_aggregates_;  // (MarkInFlight() keeps them)
  // The rest is handed over, not copied: MarkInFlight() would only clear it.
  batch.alerts = std::exchange(alerts_, {});
  batch.transitions = std::exchange(transitions_, {});
  batch.lost_deals = std::exchange(lost_deals_, {});
  batch.cuts = std::exchange(cuts_, {});
  batch.journal = std::exchange(journal_, {});
  journal_.reserve(batch.journal.size());  // the next batch is likely as large
  batch.texts = std::exchange(texts_, {});
  batch.new_names = std::exchange(new_names_, {});
  return batch;
}

void PartitionProjector::MarkCommitted() {
  MarkInFlight();
  MarkDurable();
}

void PartitionProjector::MarkInFlight() {
  for (auto& [k, v] : pending_aggregates_) {
    if (v.customers() == 0 && v.revenue_minor() == 0 && v.activity_days() == 0) {
      aggregates_.erase(k);
    } else {
      aggregates_[k] = v;
    }
  }
  pending_aggregates_.clear();
  event_counts_.clear();
  alerts_.clear();
  transitions_.clear();
  lost_deals_.clear();
  cuts_.clear();
  journal_.clear();
  texts_.clear();
  new_names_.clear();
  // The dirty records are what the store will have: they stay in memory, pinned
  // until the write lands.
  for (Cached* d : dirty_) {
    if (!pending_fresh_) {
      d->after = KeysOf(d->record);
      d->after_contrib = Contribution::Of(d->record);
      if (d->write || !d->encoded) {
        std::string bytes;
        EncodeRecord(d->record, &bytes);
        d->SetEncoded(bytes);
      }
    }
    d->before = d->after;
    d->before_contrib = d->after_contrib;
    d->dirty = false;
    d->write = false;
    d->profile_dirty = false;
    d->profile.reset();  // handed out: the next change builds on it
    for (auto& w : d->journal_dirty) d->journal_in_flight.push_back(std::move(w));
    d->journal_dirty.clear();
    d->alerts_in_flight.insert(d->alerts_in_flight.end(), d->alerts_dirty.begin(),
                               d->alerts_dirty.end());
    d->alerts_dirty.clear();
    if (!d->in_flight) {
      d->in_flight = true;
      in_flight_.push_back(d);
    }
  }
  dirty_.clear();
  // Handed out: what the store has of them from now on.
  for (const LightChange& l : light_) {
    if (!l.gone) slots_[l.slot].light = 0;
  }
  light_.clear();
  for (const RecencyStep& st : steps_) {
    if (!st.gone) slots_[st.slot].light = 0;
  }
  steps_.clear();
  pending_fresh_ = false;
  committed_ = meta_;
  committed_.set_commits(committed_.commits() + 1);
  meta_ = committed_;
}

void PartitionProjector::MarkDurable() {
  for (Cached* d : in_flight_) {
    d->in_flight = false;
    d->journal_in_flight.clear();
    d->alerts_in_flight.clear();
    if (d->dirty) continue;
    // Kept encoded, as the store has it, most recently used first.
    const uint32_t n = d->slot;
    if (cache_bytes_ > 0) KeepClean(n, std::move(d->encoded), d->encoded_size);
    slots_[n].live.reset();
    --held_;
  }
  in_flight_.clear();
  Evict();
}

void PartitionProjector::Evict() {
  uint32_t size;
  while (cached_bytes_ > cache_bytes_ && !kept_.empty()) {
    const Kept k = kept_.front();
    kept_.pop_front();
    if (slots_[k.slot].kept == k.stamp) TakeClean(k.slot, &size);
  }
}

}  // namespace lifecycle::projections
