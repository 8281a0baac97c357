#pragma once
// ListingIndex: the view store's listing indexes, held in memory. They are derived
// from the customer records (ViewStore builds them at open with one scan of the
// records, and moves a customer's entries after each commit that changed them), so
// a commit writes no index keys. They are read as if they were stored under
// x/<dimension>/<value>/<customer>, in the same key order, so listings, their page
// tokens and dumps do not depend on where the entries live.
//
// Memory: a customer id once (projections/id_table.h), and an 8-byte entry per
// customer and dimension in a B-tree (about 14 bytes with the trees' slack): 112 MB
// for 1,000,000 customers, measured.
//
// Thread-safety: not synchronized; ViewStore guards it.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/btree_set.h"
#include "absl/container/flat_hash_map.h"
#include "projections/id_table.h"

namespace lifecycle::store {

class ListingIndex {
 public:
  // The dimensions, in the order of their keys.
  enum Dim : uint8_t { kGrade, kRegion, kRfmSegment, kRisk, kStage, kTier, kDims };
  static const char* DimName(Dim d);
  static constexpr std::string_view kPrefix = "x/";

  // One customer's value in each dimension, as written in its keys ("LOYAL", "0412345");
  // nothing when the customer is not listed.
  struct Values {
    bool present = false;
    std::string value[kDims];
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
  // A value's number in its dimension (risk values are their number of millionths).
  uint32_t ValueNumber(Dim d, const std::string& value);
  // The value as written in keys (into `buf` for risk values).
  std::string_view ValueText(Dim d, uint32_t value, char (&buf)[16]) const;

  projections::IdTable ids_;
  // The words of each dimension's values by number (not for risk): few.
  std::vector<std::string> values_[kDims];
  absl::flat_hash_map<std::string, uint32_t> value_numbers_[kDims];
  std::vector<absl::btree_set<Entry, Less>> sets_;
};

}  // namespace lifecycle::store
