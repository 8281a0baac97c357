#include "projections/id_table.h"

#include "absl/hash/hash.h"

namespace lifecycle::projections {

IdTable::IdTable() : starts_{0}, numbers_(0, Hash{this}, Eq{this}) {}

size_t IdTable::Hash::operator()(uint32_t n) const {
  return absl::Hash<std::string_view>()(table->Id(n));
}
size_t IdTable::Hash::operator()(std::string_view id) const {
  return absl::Hash<std::string_view>()(id);
}

std::optional<uint32_t> IdTable::Find(std::string_view id) const {
  if (auto it = numbers_.find(id); it != numbers_.end()) return *it;
  return std::nullopt;
}

uint32_t IdTable::Intern(std::string_view id) {
  if (auto it = numbers_.find(id); it != numbers_.end()) return *it;
  const auto n = static_cast<uint32_t>(heads_.size());
  chars_.insert(chars_.end(), id.begin(), id.end());
  starts_.push_back(static_cast<uint32_t>(chars_.size()));
  // Zero padding keeps the order of strings: a head decides unless two are equal.
  uint64_t head = 0;
  for (size_t i = 0; i < 8; ++i) {
    head = (head << 8) | (i < id.size() ? static_cast<uint8_t>(id[i]) : 0);
  }
  heads_.push_back(head);
  numbers_.insert(n);
  return n;
}

}  // namespace lifecycle::projections
