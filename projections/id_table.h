#pragma once
// IdTable: customer ids by number. Each id is kept once, in one buffer, and numbered
// from 0 in the order it was first seen; structures that hold many customers (the due
// index, the listing indexes) hold these 4-byte numbers instead of strings.
//
// Memory: the id's bytes, 4 bytes of position, 8 bytes of its head (to compare ids
// fast), and about 5 bytes of hash table per id.
//
// Not thread-safe. Not copyable or movable (its hash table refers to it).

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_set.h"

namespace lifecycle::projections {

class IdTable {
 public:
  IdTable();
  IdTable(const IdTable&) = delete;
  IdTable& operator=(const IdTable&) = delete;

  // The id's number, numbering it if it is new.
  uint32_t Intern(std::string_view id);
  std::optional<uint32_t> Find(std::string_view id) const;
  std::string_view Id(uint32_t n) const {
    return std::string_view(chars_.data() + starts_[n], starts_[n + 1] - starts_[n]);
  }
  // The id's first 8 bytes as a big-endian number, zero-padded: heads order as the
  // ids do, except that equal heads say nothing.
  uint64_t Head(uint32_t n) const { return heads_[n]; }
  // Whether id a orders before id b as strings (by their first 8 bytes, then the rest).
  bool Less(uint32_t a, uint32_t b) const {
    if (heads_[a] != heads_[b]) return heads_[a] < heads_[b];
    return a != b && Id(a) < Id(b);
  }
  size_t size() const { return heads_.size(); }
  // Asks memory for what Id(n) and Head(n) read, ahead of them: `step` 0 where the id
  // starts and its head, 1 its bytes (once step 0 has had time to land).
  void Prefetch(uint32_t n, int step) const {
    if (step == 0) {
      __builtin_prefetch(&starts_[n]);
      __builtin_prefetch(&heads_[n]);
    } else {
      __builtin_prefetch(chars_.data() + starts_[n]);
    }
  }

 private:
  struct Hash {
    using is_transparent = void;
    const IdTable* table;
    size_t operator()(uint32_t n) const;
    size_t operator()(std::string_view id) const;
  };
  struct Eq {
    using is_transparent = void;
    const IdTable* table;
    bool operator()(uint32_t a, uint32_t b) const { return a == b; }
    bool operator()(uint32_t a, std::string_view b) const { return table->Id(a) == b; }
    bool operator()(std::string_view a, uint32_t b) const { return a == table->Id(b); }
  };

  std::vector<char> chars_;
  std::vector<uint32_t> starts_;  // id n is chars_[starts_[n], starts_[n + 1])
  std::vector<uint64_t> heads_;   // each id's first 8 bytes, big-endian, zero-padded
  absl::flat_hash_set<uint32_t, Hash, Eq> numbers_;
};

}  // namespace lifecycle::projections
