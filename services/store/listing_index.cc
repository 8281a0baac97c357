#include "services/store/listing_index.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <string>

namespace lifecycle::store {
namespace {

constexpr uint32_t kRiskNone = std::numeric_limits<uint32_t>::max();

std::string Join(std::initializer_list<std::string_view> parts) {
  std::string s;
  for (std::string_view p : parts) s.append(p);
  return s;
}

// Compares "<a1>/<a2>" with "<b1>/<b2>" as strings.
int CompareJoined(std::string_view a1, std::string_view a2, std::string_view b1,
                  std::string_view b2) {
  if (a1 == b1) return a2.compare(b2);
  const size_t n = std::min(a1.size(), b1.size());
  if (int c = std::memcmp(a1.data(), b1.data(), n); c != 0) return c;
  // One value is a prefix of the other (a region "Yu" and "Yu ci"): rare.
  return Join({a1, "/", a2}).compare(Join({b1, "/", b2}));
}

}  // namespace

const char* ListingIndex::DimName(Dim d) {
  static constexpr const char* kNames[kDims] = {"grade", "region", "rfm_segment",
                                                "risk",  "stage",  "tier"};
  return kNames[d];
}

ListingIndex::ListingIndex() {
  sets_.reserve(kDims);
  for (int d = 0; d < kDims; ++d) sets_.emplace_back(Less{this, static_cast<Dim>(d)});
}

bool ListingIndex::Less::operator()(const Entry& a, const Entry& b) const {
  if (a.value == b.value) return index->ids_.Less(a.id, b.id);
  if (dim == kRisk) return a.value < b.value;  // 7 digits each, or "none" (last)
  char ba[16], bb[16];
  return CompareJoined(index->ValueText(dim, a.value, ba), index->ids_.Id(a.id),
                       index->ValueText(dim, b.value, bb), index->ids_.Id(b.id)) < 0;
}
bool ListingIndex::Less::operator()(const Entry& a, std::string_view rest) const {
  char buf[16];
  return Join({index->ValueText(dim, a.value, buf), "/", index->ids_.Id(a.id)}) < rest;
}
bool ListingIndex::Less::operator()(std::string_view rest, const Entry& a) const {
  char buf[16];
  return rest < Join({index->ValueText(dim, a.value, buf), "/", index->ids_.Id(a.id)});
}

uint32_t ListingIndex::ValueNumber(Dim d, const std::string& value) {
  if (d == kRisk) {
    // RiskIndexValue: P(alive) in millionths as 7 digits, or "none".
    if (value.size() != 7 || !std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) return kRiskNone;
    return static_cast<uint32_t>(std::stoul(value));
  }
  auto [it, added] = value_numbers_[d].emplace(value, static_cast<uint32_t>(values_[d].size()));
  if (added) values_[d].push_back(value);
  return it->second;
}

std::string_view ListingIndex::ValueText(Dim d, uint32_t value, char (&buf)[16]) const {
  if (d != kRisk) return values_[d][value];
  if (value == kRiskNone) return "none";
  const int n = std::snprintf(buf, sizeof(buf), "%07u", value);
  return std::string_view(buf, static_cast<size_t>(n));
}

void ListingIndex::Move(std::string_view id, const Values& before, const Values& after) {
  if (!before.present && !after.present) return;
  const uint32_t n = ids_.Intern(id);
  for (int i = 0; i < kDims; ++i) {
    const Dim d = static_cast<Dim>(i);
    if (before.present == after.present && before.value[d] == after.value[d]) continue;
    if (before.present) sets_[d].erase(Entry{ValueNumber(d, before.value[d]), n});
    if (after.present) sets_[d].insert(Entry{ValueNumber(d, after.value[d]), n});
  }
}

std::vector<std::string> ListingIndex::Scan(std::string_view prefix, std::string_view start_after,
                                            std::string_view end_before, size_t limit) const {
  std::vector<std::string> out;
  // Keys are >= `from` (> when it is start_after).
  const bool strict = !start_after.empty() && start_after >= prefix;
  const std::string_view from = strict ? start_after : prefix;
  for (int i = 0; i < kDims && out.size() < limit; ++i) {
    const Dim d = static_cast<Dim>(i);
    const std::string dim_prefix = Join({kPrefix, DimName(d), "/"});
    const auto& set = sets_[d];
    auto it = set.begin();
    if (from.substr(0, dim_prefix.size()) == dim_prefix) {
      const std::string_view rest = from.substr(dim_prefix.size());
      it = strict ? set.upper_bound(rest) : set.lower_bound(rest);
    } else if (from > dim_prefix) {
      continue;  // every key of this dimension comes before `from`
    }
    for (; it != set.end() && out.size() < limit; ++it) {
      char buf[16];
      std::string key = Join({dim_prefix, ValueText(d, it->value, buf), "/", ids_.Id(it->id)});
      if (key.compare(0, prefix.size(), prefix) != 0) {
        // Past the prefix (keys start at or after it): nothing further matches.
        if (key > prefix) return out;
        continue;
      }
      if (!end_before.empty() && key >= end_before) return out;
      out.push_back(std::move(key));
    }
  }
  return out;
}

size_t ListingIndex::entries() const {
  size_t n = 0;
  for (const auto& s : sets_) n += s.size();
  return n;
}

}  // namespace lifecycle::store
