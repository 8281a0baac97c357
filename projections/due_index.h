#pragma once
// DueIndex: the projector's deadlines, one per customer, taken in (deadline, customer
// id) order once they have come.
//
// Most deadlines lie weeks or months ahead and move with each event of their
// customer, so the index is a calendar: deadlines far enough ahead wait unsorted in
// buckets of kBucketSeconds of time, where a move costs an append and a tombstone (an
// entry whose customer has moved on since is skipped; a bucket whose entries are
// mostly tombstones is compacted). A bucket is sorted into the ordered set of
// deadlines soon due only once the stream reaches it; that set stays small (one
// bucket's worth), and deadlines that land in it are inserted in order. One B-tree of
// every customer's deadline, ordered, cost a search of a large tree (cache misses at
// each level) for every move: 7–10% of the fold at 1,000,000 customers.
//
// Memory: 16 bytes per waiting entry — about 1.5 times the customers with a deadline,
// counting tombstones (a bucket of fewer than 48 entries is not compacted, and a
// bucket's vector keeps its largest capacity) —, 12 per customer known; 24 per entry of
// the bucket in reach.
//
// Not thread-safe.

#include <cstdint>
#include <limits>
#include <vector>

#include "absl/container/btree_map.h"
#include "absl/container/btree_set.h"
#include "projections/id_table.h"

namespace lifecycle::projections {

class DueIndex {
 public:
  // A deadline: when (seconds) and whose (the customer's number in the IdTable).
  struct Due {
    int64_t at;
    uint32_t slot;
  };
  static constexpr int kBucketShift = 14;  // buckets of 16,384 s (about 4.5 hours)

  explicit DueIndex(const IdTable* ids) : ids_(ids), soon_(Order{ids}) {}
  DueIndex(const DueIndex&) = delete;
  DueIndex& operator=(const DueIndex&) = delete;

  // The customer's deadline is `at`, replacing the one it had (one per customer). `at`
  // is not the smallest int64 (which stands for "none"; deadlines are far from it).
  void Insert(int64_t at, uint32_t slot);
  // The customer's deadline `at` is gone; nothing if it is not the one indexed.
  void Erase(int64_t at, uint32_t slot);
  // Removes and returns every deadline at or before `now`, in (deadline, customer id)
  // order.
  std::vector<Due> TakeThrough(int64_t now);
  // The instant to take through so that about `limit` deadlines come (limit > 0): `now`
  // when at most `limit` are due by then; otherwise the instant before that of the
  // first deadline past the limit, or the earliest deadline's own instant when that
  // many share it (an instant is never split).
  int64_t CutFor(int64_t now, size_t limit);
  // Customers with a deadline.
  size_t size() const { return live_; }

 private:
  static constexpr int64_t kNone = std::numeric_limits<int64_t>::min();
  // A deadline waiting in a bucket; `gen` tells a tombstone.
  struct Waiting {
    int64_t at;
    uint32_t slot;
    uint32_t gen;
  };
  // One in reach, ordered: the id's head is kept with it (deadlines tie often, and most
  // ties end there without a look into the id table).
  struct Entry {
    int64_t at;
    uint64_t head;
    uint32_t slot;
  };
  struct Order {
    const IdTable* ids;
    bool operator()(const Entry& a, const Entry& b) const {
      if (a.at != b.at) return a.at < b.at;
      if (a.head != b.head) return a.head < b.head;
      return ids->Less(a.slot, b.slot);
    }
  };
  struct Bucket {
    std::vector<Waiting> entries;  // live ones and tombstones, unordered
    size_t live = 0;
  };
  static int64_t BucketOf(int64_t at) { return at >> kBucketShift; }
  void Grow(uint32_t slot) {
    if (slot >= at_.size()) at_.resize(slot + 1, kNone), gen_.resize(slot + 1, 0);
  }
  bool Live(const Waiting& e) const { return gen_[e.slot] == e.gen; }
  Entry InReach(int64_t at, uint32_t slot) const { return Entry{at, ids_->Head(slot), slot}; }
  // Moves the buckets up to `bucket` into soon_.
  void Open(int64_t bucket);

  const IdTable* ids_;
  // By customer: its indexed deadline (kNone: none), and a number bumped when its
  // entry in a bucket becomes a tombstone.
  std::vector<int64_t> at_;
  std::vector<uint32_t> gen_;
  absl::btree_map<int64_t, Bucket> buckets_;  // by BucketOf(at), all after opened_
  int64_t opened_ = kNone;  // buckets up to this one are in soon_
  absl::btree_set<Entry, Order> soon_;
  size_t live_ = 0;
};

}  // namespace lifecycle::projections
