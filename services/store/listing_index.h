#pragma once
// ListingIndex: the view store's listing indexes, held in memory. They are derived
// from the customer records (ViewStore builds them at open with one scan of the
// records, and moves a customer's entries after each commit that changed them; a long
// catch-up leaves them alone and they are built again when it ends), so a commit
// writes no index keys. They are read as if they were stored under
// x/<dimension>/<value>/<customer>, in the same key order, so listings, their page
// tokens and dumps do not depend on where the entries live.
//
// Churn risk and expected value change with time alone, so no key can order them:
// the index keeps, per customer, what they are computed from (rules::ChurnInputs, with
// the customer's partition, stage, grade and tier) and Rank() computes them as of each
// partition's stream time, with the view's arithmetic, on every call (one pass).
//
// Memory: a customer id once (projections/id_table.h), an 8-byte entry per customer
// and dimension in a B-tree (about 14 bytes with the trees' slack), and 32 bytes of
// ranking inputs per customer.
//
// Thread-safety: not synchronized; ViewStore guards it.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/btree_set.h"
#include "absl/container/flat_hash_map.h"
#include "projections/config.h"
#include "projections/id_table.h"
#include "projections/rules.h"

namespace lifecycle::store {

class ListingIndex {
 public:
  // The dimensions, in the order of their keys.
  // A customer without an advisor has no advisor entry (most stores have none).
  enum Dim : uint8_t { kAdvisor, kGrade, kRegion, kRfmSegment, kStage, kTier, kDims };
  static const char* DimName(Dim d);
  static constexpr std::string_view kPrefix = "x/";

  // One customer's value in each dimension, as written in its keys ("LOYAL", "0412345");
  // nothing when the customer is not listed; an empty advisor: none.
  struct Values {
    bool present = false;
    std::string value[kDims];
    // What Rank() reads.
    int32_t partition = 0;
    uint8_t stage = 0, grade = 0, tier = 0;  // lifecycle.v1 enum values
    projections::rules::ChurnInputs churn;
    // Only value[kRfmSegment] is filled in, in both of a Move's values: the RFM segment
    // moves, and nothing else of the customer changed.
    bool segment_only = false;
  };

  // Rank(): customers with activity, ordered by a figure computed as of their
  // partition's stream time — churn risk (P(alive) ascending) or expected 12-month
  // value (descending) — then by id; filtered by P(alive) and, when set, advisor (which
  // ranks only that advisor's customers), stage, grade and tier; the first `limit`
  // after a position.
  enum class Order : uint8_t { kChurnRisk, kExpectedValue };
  struct RankQuery {
    Order order = Order::kChurnRisk;
    double min_churn_risk = 0;  // 1 − P(alive) at least this (−1e-9), as views are checked
    uint8_t stage = 0, grade = 0, tier = 0;  // 0: any
    std::string advisor;                     // empty: any (else only that advisor's)
    // Stream time by partition (seconds); a partition missing ranks as of 0 (its
    // customers' last activity).
    const std::vector<int64_t>* stream_times = nullptr;
    // Only customers after (score, id) in the order, when `after_id` is not empty.
    double after_score = 0;
    std::string after_id;
    size_t limit = 50;
  };
  struct Ranked {
    std::string id;
    // What the order sorts on, ascending: P(alive), or minus the expected value in
    // minor units.
    double score = 0;
  };
  std::vector<Ranked> Rank(const projections::DomainConfig& config, const RankQuery& q) const;

  // Rank() a slice of customers at a time, so that whoever guards the index can let
  // its writers in between slices (a pass over 1,000,000 customers takes 10-25 ms
  // here). Each customer is ranked as it stood when its slice was read; customers are
  // looked at once each, in the order of their numbers (a customer's number never
  // changes in an index, new ones come last). Every step and Finish must be given the
  // same index. An advisor's customers are ranked in one step (they are few).
  class Ranking {
   public:
    Ranking(const projections::DomainConfig& config, const RankQuery& q);
    // Ranks up to `n` more customers; false once every customer has been looked at.
    bool Step(const ListingIndex& index, size_t n);
    // The ranked, in order.
    std::vector<Ranked> Finish(const ListingIndex& index);

   private:
    struct Hit {
      double score;
      uint32_t id;
    };
    void Consider(const ListingIndex& index, uint32_t n);
    // Whether hit a orders before b: by score, then by id.
    static bool Before(const ListingIndex& index, const Hit& a, const Hit& b);

    const projections::DomainConfig& config_;
    const RankQuery& q_;
    std::vector<Hit> heap_;  // the `limit` first so far; its top the last of them
    uint32_t next_ = 0;      // the next customer number to look at
  };

  ListingIndex();
  ListingIndex(const ListingIndex&) = delete;
  ListingIndex& operator=(const ListingIndex&) = delete;

  // Moves `id`'s entries from `before` to `after` (only the dimensions that differ).
  void Move(std::string_view id, const Values& before, const Values& after);

  // Keys starting with `prefix`, in key order, after `start_after` (if not empty) and
  // before `end_before` (if not empty), at most `limit`.
  std::vector<std::string> Scan(std::string_view prefix, std::string_view start_after,
                                std::string_view end_before, size_t limit) const;

  size_t customers() const { return ids_.size(); }
  // Customers Rank() looks at (those with activity).
  size_t ranked() const { return ranked_count_; }
  size_t entries() const;

 private:
  // An entry: a value of its dimension and a customer, by number.
  struct Entry {
    uint32_t value;
    uint32_t id;
    bool operator==(const Entry&) const = default;
  };
  // Orders entries, and entries against the rest of a key after x/<dimension>/, as
  // their keys order: "<value>/<id>".
  struct Less {
    using is_transparent = void;
    const ListingIndex* index;
    Dim dim;
    bool operator()(const Entry& a, const Entry& b) const;
    bool operator()(const Entry& a, std::string_view rest) const;
    bool operator()(std::string_view rest, const Entry& a) const;
  };
  // A value's number in its dimension.
  uint32_t ValueNumber(Dim d, const std::string& value);
  // The value as written in keys.
  std::string_view ValueText(Dim d, uint32_t value) const { return values_[d][value]; }

  // One customer's ranking inputs, by customer number (32 bytes).
  struct RankEntry {
    int64_t first = 0;         // first activity, seconds
    int64_t repeat_spend = 0;  // minor units
    uint32_t span = 0;         // last − first activity, seconds
    int32_t activity_days = 0; // 0: not ranked
    uint16_t partition = 0;
    uint8_t stage = 0, grade = 0, tier = 0;
  };

  projections::IdTable ids_;
  // The words of each dimension's values by number (not for risk): few.
  std::vector<std::string> values_[kDims];
  absl::flat_hash_map<std::string, uint32_t> value_numbers_[kDims];
  std::vector<absl::btree_set<Entry, Less>> sets_;
  std::vector<RankEntry> rank_;
  size_t ranked_count_ = 0;
};

}  // namespace lifecycle::store
