#pragma once
// The read side of the store, in memory: keeps what a customer's fold appended
// (transitions, lost deals, alert references), its profile and the dictionary
// texts, and assembles views and alerts from them with projections/view.h — so unit
// tests can assert on the views a user gets.

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "projections/fold.h"
#include "projections/projector.h"
#include "projections/view.h"

namespace lifecycle::testing {

namespace v1 = lifecycle::v1;

class Book {
 public:
  void AddTexts(const std::vector<projections::Text>& t) {
    for (const auto& [h, s] : t) texts.emplace(h, s);
  }
  void AddAlert(const projections::AlertEntry& a) {
    refs[a.customer_id].push_back({a.fact.kind, a.fact.offset, a.fact.disc});
  }
  // What a PendingBatch appends.
  void Add(const projections::PendingBatch& b) {
    for (const auto& t : b.texts) texts.emplace(t.entry.first, t.entry.second);
    AddTexts(b.new_names);
    for (const auto& c : b.customers) {
      // As the store's merge (ProfileMerge); a change that does not apply is lost, which
      // the comparisons of the profiles then show.
      if (c.profile) projections::ApplyProfileUpdate(*c.profile, &profiles[c.id]);
    }
    // As the store: cuts first, then entries by their numbers.
    for (const auto& cut : b.cuts) {
      Cut(transitions[cut.customer_id], cut.transitions_from, cut.transitions_to);
      Cut(lost[cut.customer_id], cut.lost_deals_from, cut.lost_deals_to);
    }
    for (const auto& t : b.transitions) Put(transitions[t.customer_id], t.seq, t.entry);
    for (const auto& d : b.lost_deals) Put(lost[d.customer_id], d.seq, d.entry);
    for (const auto& a : b.alerts) AddAlert(a);
  }

  template <typename T>
  static void Put(std::vector<T>& v, uint32_t seq, const T& entry) {
    if (v.size() <= seq) v.resize(seq + 1);
    v[seq] = entry;
  }
  template <typename T>
  static void Cut(std::vector<T>& v, uint32_t from, uint32_t to) {
    if (to > from && v.size() > from && v.size() <= to) v.resize(from);
  }

  v1::CustomerView View(const projections::DomainConfig& c, const std::string& id,
                        const projections::CustomerRecord& record) const {
    projections::CustomerParts parts;
    parts.id = &id;
    parts.record = &record;
    if (auto it = profiles.find(id); it != profiles.end()) parts.profile = &it->second;
    parts.transitions = Last(transitions, id, c.max_transitions);
    parts.lost_deals = Last(lost, id, c.max_lost_deals);
    parts.alerts = Last(refs, id, projections::kViewAlerts);
    return projections::BuildView(c, parts, texts);
  }
  v1::Alert Alert(const projections::AlertEntry& a) const { return projections::BuildAlert(a, texts); }

  projections::Texts texts;
  std::map<std::string, v1::Profile> profiles;
  std::map<std::string, std::vector<projections::TransitionEntry>> transitions;
  std::map<std::string, std::vector<projections::LostDealEntry>> lost;
  std::map<std::string, std::vector<projections::AlertRef>> refs;

 private:
  template <typename T>
  static std::vector<T> Last(const std::map<std::string, std::vector<T>>& m, const std::string& id,
                             int n) {
    auto it = m.find(id);
    if (it == m.end()) return {};
    const auto& v = it->second;
    return std::vector<T>(v.end() - std::min<ptrdiff_t>(n, static_cast<ptrdiff_t>(v.size())),
                          v.end());
  }
};

}  // namespace lifecycle::testing
