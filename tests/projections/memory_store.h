#pragma once
// An in-memory stand-in for the RocksDB store: applies PendingBatches the way the
// store does (states, due index, counters, alert log, meta), so the projector can be
// tested in milliseconds.

#include <map>
#include <set>
#include <string>

#include "projections/projector.h"
#include "tests/projections/book.h"

namespace lifecycle::testing {

class MemoryStore : public projections::StateReader {
 public:
  absl::StatusOr<std::optional<std::string>> LoadRecord(std::string_view id) override {
    ++loads;
    if (fail_reads || loads == fail_load) return absl::UnavailableError("injected read failure");
    auto it = records.find(std::string(id));
    if (it == records.end()) return std::optional<std::string>();
    return std::optional<std::string>(it->second);  // as the store: what the codec wrote
  }
  absl::StatusOr<std::optional<std::string>> LoadText(uint64_t hash) override {
    if (fail_reads) return absl::UnavailableError("injected read failure");
    auto it = book.texts.find(hash);
    if (it == book.texts.end()) return std::optional<std::string>();
    return std::optional<std::string>(it->second);
  }
  // As the store: derived from the stored records.
  absl::Status LoadDeadlines(int32_t partition,
                             std::vector<std::pair<int64_t, std::string>>* out) override {
    ++deadline_loads;
    if (fail_reads) return absl::UnavailableError("injected read failure");
    for (const auto& [id, bytes] : records) {
      projections::CustomerRecord r;
      if (absl::Status s = projections::DecodeRecord(bytes, &r); !s.ok()) return s;
      CatchUp(&r);
      if (r.partition == partition && projections::DueOf(r) != projections::kNever) {
        out->emplace_back(projections::DueOf(r), id);
      }
    }
    return absl::OkStatus();
  }
  absl::StatusOr<std::map<std::string, v1::AggregateValue>> LoadAggregates(
      int32_t partition) override {
    return aggregates[partition];
  }
  absl::StatusOr<std::vector<projections::AlertRef>> LoadAlertRefs(std::string_view id) override {
    if (fail_reads) return absl::UnavailableError("injected read failure");
    auto it = book.refs.find(std::string(id));
    if (it == book.refs.end()) return std::vector<projections::AlertRef>();
    return it->second;
  }
  absl::StatusOr<Journal> LoadJournal(std::string_view id, int slot, uint32_t first) override {
    ++journal_loads;
    if (fail_reads) return absl::UnavailableError("injected read failure");
    Journal out;
    auto it = journals.find(std::string(id));
    if (it == journals.end()) return out;
    if (slot >= 0 && it->second.snapshots[slot]) out.snapshot = *it->second.snapshots[slot];
    for (auto e = it->second.entries.lower_bound(first); e != it->second.entries.end(); ++e) {
      out.entries.emplace_back(e->first, e->second);
    }
    return out;
  }

  void Commit(const projections::PendingBatch& b) {
    const int32_t p = b.meta.partition();
    book.Add(b);
    for (const auto& c : b.customers) {
      const std::string& id = c.id;
      if (c.write_record) records[id] = c.record;
      ++(c.write_record ? records_written : records_left);
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
    for (const auto& a : b.alerts) alerts[p].push_back(book.Alert(a));
    for (const auto& j : b.journal) {
      StoredJournal& s = journals[j.customer_id];
      const projections::JournalWrite& w = j.entry;
      switch (w.kind) {
        case projections::JournalWrite::kEntry: s.entries[w.n] = w.bytes; break;
        case projections::JournalWrite::kSnapshot: s.snapshots[w.n] = w.bytes; break;
        case projections::JournalWrite::kDrop:
          s.entries.erase(s.entries.lower_bound(w.n), s.entries.lower_bound(w.end));
          break;
        case projections::JournalWrite::kDropSnapshot: s.snapshots[w.n].reset(); break;
      }
    }
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

  // A customer's view, as the store assembles it.
  v1::CustomerView View(const std::string& id) const {
    return book.View(config, id, records.count(id) ? Record(id) : projections::CustomerRecord());
  }
  // The view as GetCustomer serves it: P(alive) as of its partition's stream time.
  v1::CustomerView ServedView(const std::string& id) const {
    v1::CustomerView v = View(id);
    if (auto m = meta.find(v.partition()); m != meta.end() && records.count(id)) {
      projections::PAliveAsOf(config, Record(id), m->second.stream_time().seconds(), &v);
    }
    return v;
  }
  // As the store reads it: caught up to its partition's deadlines_through.
  projections::CustomerRecord Record(const std::string& id) const {
    projections::CustomerRecord r;
    (void)projections::DecodeRecord(records.at(id), &r);  // written by EncodeRecord: decodes
    CatchUp(&r);
    return r;
  }
  void CatchUp(projections::CustomerRecord* r) const {
    if (auto m = meta.find(r->partition); m != meta.end()) {
      projections::CatchUpStored(config, m->second.deadlines_through(), r);
    }
  }

  projections::DomainConfig config;  // what views are assembled with
  std::map<std::string, std::string> records;  // encoded, as the store keeps them
  Book book;
  std::set<std::tuple<int32_t, int64_t, std::string>> due;
  std::map<int32_t, std::map<std::string, v1::AggregateValue>> aggregates;
  std::map<int32_t, std::vector<v1::Alert>> alerts;
  std::map<int32_t, v1::PartitionMeta> meta;
  struct StoredJournal {
    std::optional<std::string> snapshots[2];
    std::map<uint32_t, std::string> entries;
  };
  std::map<std::string, StoredJournal> journals;
  bool fail_reads = false;
  int journal_loads = 0;
  int loads = 0;
  int fail_load = -1;  // the record read (by `loads`) that fails, once
  int deadline_loads = 0;
  // Changed records written, and those only their deadlines changed (not written).
  int records_written = 0;
  int records_left = 0;
};

inline v1::PartitionMeta FreshMeta(int32_t p) {
  v1::PartitionMeta m;
  m.set_partition(p);
  m.set_offset(-1);
  return m;
}

}  // namespace lifecycle::testing
