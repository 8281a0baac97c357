#include "projections/due_index.h"

#include <algorithm>

namespace lifecycle::projections {

void DueIndex::Insert(int64_t at, uint32_t slot) {
  SlotState& s = StateOf(slot);
  if (s.at != kNone) Erase(s.at, slot);
  s.at = at;
  ++live_;
  const Entry e{at, ids_->Head(slot), slot, s.gen};
  if (BucketOf(at) <= opened_) {
    soon_.insert(e);
    return;
  }
  Bucket& b = buckets_[BucketOf(at)];
  b.entries.push_back(e);
  ++b.live;
}

void DueIndex::Erase(int64_t at, uint32_t slot) {
  if (slot >= slots_.size() || slots_[slot].at != at || at == kNone) return;
  SlotState& s = slots_[slot];
  s.at = kNone;
  --live_;
  if (BucketOf(at) <= opened_) {
    soon_.erase(Entry{at, ids_->Head(slot), slot, s.gen});
    return;
  }
  ++s.gen;  // its entry in the bucket is a tombstone from now on
  auto it = buckets_.find(BucketOf(at));
  Bucket& b = it->second;
  if (--b.live == 0) {
    buckets_.erase(it);
  } else if (b.entries.size() >= 64 && b.live * 2 < b.entries.size()) {
    b.entries.erase(std::remove_if(b.entries.begin(), b.entries.end(),
                                   [this](const Entry& e) { return !Live(e); }),
                    b.entries.end());
  }
}

void DueIndex::Open(int64_t bucket) {
  while (!buckets_.empty() && buckets_.begin()->first <= bucket) {
    for (const Entry& e : buckets_.begin()->second.entries) {
      if (Live(e)) soon_.insert(e);
    }
    buckets_.erase(buckets_.begin());
  }
  opened_ = std::max(opened_, bucket);
}

std::vector<DueIndex::Due> DueIndex::TakeThrough(int64_t now) {
  if (BucketOf(now) > opened_) Open(BucketOf(now));
  std::vector<Due> due;
  auto end = soon_.begin();
  for (; end != soon_.end() && end->at <= now; ++end) {
    due.push_back(Due{end->at, end->slot});
    slots_[end->slot].at = kNone;
  }
  soon_.erase(soon_.begin(), end);
  live_ -= due.size();
  return due;
}

}  // namespace lifecycle::projections
