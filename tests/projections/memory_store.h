#pragma once
// An in-memory stand-in for the RocksDB store: applies PendingBatches the way the
// store does (states, due index, counters, alert log, meta), so the projector can be
// tested in milliseconds.

#include <map>
#include <set>
#include <string>

#include "projections/projector.h"

namespace lifecycle::testing {

class MemoryStore : public projections::StateReader {
 public:
  absl::StatusOr<std::optional<v1::CustomerState>> LoadCustomer(std::string_view id) override {
    ++loads;
    if (fail_reads) return absl::UnavailableError("injected read failure");
    auto it = states.find(std::string(id));
    if (it == states.end()) return std::optional<v1::CustomerState>();
    return std::optional<v1::CustomerState>(it->second);
  }
  absl::Status ScanDue(int32_t partition, const std::pair<int64_t, std::string>& after,
                       int64_t up_to, std::vector<std::pair<int64_t, std::string>>* out,
                       int64_t* next_after) override {
    ++due_scans;
    if (fail_reads) return absl::UnavailableError("injected read failure");
    *next_after = projections::kNever;
    for (const auto& [p, t, id] : due) {
      if (p != partition) continue;
      if (after.first != INT64_MIN && std::make_pair(t, id) <= after) continue;
      if (t > up_to) {
        *next_after = t;
        break;
      }
      out->emplace_back(t, id);
    }
    return absl::OkStatus();
  }
  absl::StatusOr<std::map<std::string, v1::AggregateValue>> LoadAggregates(
      int32_t partition) override {
    return aggregates[partition];
  }

  void Commit(const projections::PendingBatch& b) {
    const int32_t p = b.meta.partition();
    for (const auto& c : b.customers) {
      const std::string& id = c.state->view().customer_id();
      states[id] = *c.state;
      if (c.before.due != projections::kNever) due.erase({p, c.before.due, id});
      if (c.after.due != projections::kNever) due.insert({p, c.after.due, id});
    }
    for (const auto& [k, v] : b.aggregates) {
      if (v.customers() == 0 && v.revenue_minor() == 0) {
        aggregates[p].erase(k);  // as the store: a counter back at zero is deleted
      } else {
        aggregates[p][k] = v;
      }
    }
    for (const auto& a : b.alerts) alerts[p].push_back(a);
    meta[p] = b.meta;
  }

  // Sum of one counter over partitions.
  int64_t Counter(const std::string& key) const {
    int64_t n = 0;
    for (const auto& [p, m] : aggregates) {
      auto it = m.find(key);
      if (it != m.end()) n += it->second.customers();
    }
    return n;
  }

  std::map<std::string, v1::CustomerState> states;
  std::set<std::tuple<int32_t, int64_t, std::string>> due;
  std::map<int32_t, std::map<std::string, v1::AggregateValue>> aggregates;
  std::map<int32_t, std::vector<v1::Alert>> alerts;
  std::map<int32_t, v1::PartitionMeta> meta;
  bool fail_reads = false;
  int loads = 0;
  int due_scans = 0;
};

inline v1::PartitionMeta FreshMeta(int32_t p) {
  v1::PartitionMeta m;
  m.set_partition(p);
  m.set_offset(-1);
  return m;
}

}  // namespace lifecycle::testing
