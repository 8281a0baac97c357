#include "services/store/listing_index.h"

#include <algorithm>
#include <cstdio>
#include <cmath>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <string>

namespace lifecycle::store {
namespace {

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
  static constexpr const char* kNames[kDims] = {"advisor", "grade", "region", "rfm_segment",
                                                "stage", "tier"};
  return kNames[d];
}

ListingIndex::ListingIndex() {
  sets_.reserve(kDims);
  for (int d = 0; d < kDims; ++d) sets_.emplace_back(Less{this, static_cast<Dim>(d)});
}

bool ListingIndex::Less::operator()(const Entry& a, const Entry& b) const {
  if (a.value == b.value) return index->ids_.Less(a.id, b.id);
  return CompareJoined(index->ValueText(dim, a.value), index->ids_.Id(a.id),
                       index->ValueText(dim, b.value), index->ids_.Id(b.id)) < 0;
}
bool ListingIndex::Less::operator()(const Entry& a, std::string_view rest) const {
  return Join({index->ValueText(dim, a.value), "/", index->ids_.Id(a.id)}) < rest;
}
bool ListingIndex::Less::operator()(std::string_view rest, const Entry& a) const {
  return rest < Join({index->ValueText(dim, a.value), "/", index->ids_.Id(a.id)});
}

uint32_t ListingIndex::ValueNumber(Dim d, const std::string& value) {
  auto [it, added] = value_numbers_[d].emplace(value, static_cast<uint32_t>(values_[d].size()));
  if (added) values_[d].push_back(value);
  return it->second;
}

void ListingIndex::Move(std::string_view id, const Values& before, const Values& after) {
  if (!before.present && !after.present) return;
  const uint32_t n = ids_.Intern(id);
  if (after.segment_only) {
    const std::string& from = before.value[kRfmSegment];
    const std::string& to = after.value[kRfmSegment];
    if (from != to) {
      sets_[kRfmSegment].erase(Entry{ValueNumber(kRfmSegment, from), n});
      sets_[kRfmSegment].insert(Entry{ValueNumber(kRfmSegment, to), n});
    }
    return;
  }
  for (int i = 0; i < kDims; ++i) {
    const Dim d = static_cast<Dim>(i);
    if (before.present == after.present && before.value[d] == after.value[d]) continue;
    auto listed = [d](const Values& v) { return v.present && (d != kAdvisor || !v.value[d].empty()); };
    if (listed(before)) sets_[d].erase(Entry{ValueNumber(d, before.value[d]), n});
    if (listed(after)) sets_[d].insert(Entry{ValueNumber(d, after.value[d]), n});
  }
  if (n >= rank_.size()) rank_.resize(n + 1);
  RankEntry& e = rank_[n];
  if (e.activity_days > 0) --ranked_count_;
  e = RankEntry{};
  if (after.present && after.churn.activity_days > 0) {
    e.first = after.churn.first;
    e.repeat_spend = after.churn.repeat_spend;
    e.span = static_cast<uint32_t>(std::clamp<int64_t>(after.churn.last - after.churn.first, 0,
                                                       std::numeric_limits<uint32_t>::max()));
    e.activity_days = after.churn.activity_days;
    e.partition = static_cast<uint16_t>(after.partition);
    e.stage = after.stage;
    e.grade = after.grade;
    e.tier = after.tier;
    ++ranked_count_;
  }
}

std::vector<ListingIndex::Ranked> ListingIndex::Rank(const projections::DomainConfig& config,
                                                     const RankQuery& q) const {
  Ranking ranking(config, q);
  while (ranking.Step(*this, std::numeric_limits<size_t>::max())) {
  }
  return ranking.Finish(*this);
}

ListingIndex::Ranking::Ranking(const projections::DomainConfig& config, const RankQuery& q)
    : config_(config), q_(q) {
  heap_.reserve(q.limit + 1);
}

void ListingIndex::Ranking::Consider(const ListingIndex& index, uint32_t n) {
  namespace rules = projections::rules;
  const RankQuery& q = q_;
  const RankEntry& e = index.rank_[n];
  if (e.activity_days <= 0) return;
  if ((q.stage && e.stage != q.stage) || (q.grade && e.grade != q.grade) ||
      (q.tier && e.tier != q.tier)) {
    return;
  }
  const rules::ChurnInputs in{.activity_days = e.activity_days,
                              .first = e.first,
                              .last = e.first + static_cast<int64_t>(e.span),
                              .repeat_spend = e.repeat_spend};
  const int64_t now = q.stream_times && e.partition < q.stream_times->size()
                          ? (*q.stream_times)[e.partition]
                          : 0;
  const double p = rules::PAliveOf(config_, in, now);
  if (q.min_churn_risk > 0 && 1.0 - p < q.min_churn_risk - 1e-9) return;
  const double score =
      q.order == Order::kChurnRisk
          ? p
          : -static_cast<double>(std::llround(rules::ExpectedOf(config_, in, now).value));
  if (!q.after_id.empty()) {
    if (score < q.after_score) return;
    if (score == q.after_score && index.ids_.Id(n) <= q.after_id) return;
  }
  // The heap keeps the `limit` first, its top the last.
  auto before = [&index](const Hit& a, const Hit& b) { return Before(index, a, b); };
  const Hit h{score, n};
  if (heap_.size() == q.limit) {
    if (q.limit == 0 || !before(h, heap_.front())) return;
    std::pop_heap(heap_.begin(), heap_.end(), before);
    heap_.back() = h;
  } else {
    heap_.push_back(h);
  }
  std::push_heap(heap_.begin(), heap_.end(), before);
}

bool ListingIndex::Ranking::Before(const ListingIndex& index, const Hit& a, const Hit& b) {
  if (a.score != b.score) return a.score < b.score;
  return index.ids_.Less(a.id, b.id);
}

bool ListingIndex::Ranking::Step(const ListingIndex& index, size_t n) {
  if (!q_.advisor.empty()) {
    if (next_ > 0) return false;
    next_ = 1;
    if (auto v = index.value_numbers_[kAdvisor].find(q_.advisor);
        v != index.value_numbers_[kAdvisor].end()) {
      const auto& set = index.sets_[kAdvisor];
      for (auto it = set.lower_bound(Join({q_.advisor, "/"}));
           it != set.end() && it->value == v->second; ++it) {
        if (it->id < index.rank_.size()) Consider(index, it->id);
      }
    }
    return false;
  }
  const size_t end = std::min<size_t>(index.rank_.size(), next_ + std::min(n, index.rank_.size()));
  for (; next_ < end; ++next_) Consider(index, next_);
  return next_ < index.rank_.size();
}

std::vector<ListingIndex::Ranked> ListingIndex::Ranking::Finish(const ListingIndex& index) {
  std::sort_heap(heap_.begin(), heap_.end(),
                 [&index](const Hit& a, const Hit& b) { return Before(index, a, b); });
  std::vector<Ranked> out;
  out.reserve(heap_.size());
  for (const Hit& h : heap_) out.push_back({std::string(index.ids_.Id(h.id)), h.score});
  return out;
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
      std::string key = Join({dim_prefix, ValueText(d, it->value), "/", ids_.Id(it->id)});
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
