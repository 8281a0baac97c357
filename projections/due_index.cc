#include "projections/due_index.h"

#include <algorithm>

namespace lifecycle::projections {

void DueIndex::Insert(int64_t at, uint32_t slot) {
  Grow(slot);
  if (at_[slot] != kNone) Erase(at_[slot], slot);
  at_[slot] = at;
  ++live_;
  if (BucketOf(at) <= opened_) {
    soon_.insert(InReach(at, slot));
    return;
  }
  Bucket& b = buckets_[BucketOf(at)];
  b.entries.push_back(Waiting{at, slot, gen_[slot]});
  ++b.live;
}

void DueIndex::Erase(int64_t at, uint32_t slot) {
  if (slot >= at_.size() || at_[slot] != at || at == kNone) return;
  at_[slot] = kNone;
  --live_;
  if (BucketOf(at) <= opened_) {
    soon_.erase(InReach(at, slot));
    return;
  }
  ++gen_[slot];  // its entry in the bucket is a tombstone from now on
  auto it = buckets_.find(BucketOf(at));
  Bucket& b = it->second;
  if (--b.live == 0) {
    buckets_.erase(it);
  } else if (b.entries.size() >= 48 && b.live * 3 < b.entries.size() * 2) {
    // A third tombstones: kept out of memory.
    b.entries.erase(std::remove_if(b.entries.begin(), b.entries.end(),
                                   [this](const Waiting& e) { return !Live(e); }),
                    b.entries.end());
  }
}

void DueIndex::Open(int64_t bucket) {
  while (!buckets_.empty() && buckets_.begin()->first <= bucket) {
    const std::vector<Waiting>& entries = buckets_.begin()->second.entries;
    constexpr size_t kAhead = 8;  // (spread over the partition: each entry a miss or two)
    for (size_t i = 0; i < entries.size(); ++i) {
      if (i + kAhead < entries.size()) {
        __builtin_prefetch(&gen_[entries[i + kAhead].slot]);
        ids_->Prefetch(entries[i + kAhead].slot, 0);
      }
      const Waiting& e = entries[i];
      if (Live(e)) soon_.insert(InReach(e.at, e.slot));
    }
    buckets_.erase(buckets_.begin());
  }
  opened_ = std::max(opened_, bucket);
}

int64_t DueIndex::CutFor(int64_t now, size_t limit) {
  if (BucketOf(now) > opened_) Open(BucketOf(now));
  auto it = soon_.begin();
  if (it == soon_.end() || it->at > now) return now;
  const int64_t first = it->at;
  for (size_t n = 0; n < limit; ++n) {
    if (++it == soon_.end() || it->at > now) return now;
  }
  return std::max(first, it->at - 1);
}

std::vector<DueIndex::Due> DueIndex::TakeThrough(int64_t now) {
  if (BucketOf(now) > opened_) Open(BucketOf(now));
  std::vector<Due> due;
  auto end = soon_.begin();
  for (; end != soon_.end() && end->at <= now; ++end) {
    due.push_back(Due{end->at, end->slot});
    at_[end->slot] = kNone;
  }
  soon_.erase(soon_.begin(), end);
  live_ -= due.size();
  return due;
}

}  // namespace lifecycle::projections
