#pragma once
// PartitionProjector: the pure core of the exactly-once loop for one Kafka partition.
//
// For each record it decodes and validates the event, advances the partition's
// stream time, evaluates every customer whose deadline has come (from the due
// index — never by scanning all customers), folds the event into the customer's
// state and evaluates that customer. Changed states, index keys, aggregate counters,
// new alerts and the partition's meta (offset, stream time, counters) are handed out
// together as one PendingBatch, which the caller writes atomically before calling
// MarkCommitted(). If the write fails nothing is lost: the batch stays pending.
//
// Committed state is read through StateReader, so tests run it against memory.
// Not thread-safe: one projector is driven by one thread.

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "lifecycle/v1/view.pb.h"
#include "projections/config.h"
#include "projections/fold.h"
#include "projections/validate.h"

namespace lifecycle::projections {

// Reads committed state. Implementations: the RocksDB store, and memory in tests.
class StateReader {
 public:
  virtual ~StateReader() = default;
  // nullopt for an unknown customer.
  virtual absl::StatusOr<std::optional<lifecycle::v1::CustomerState>> LoadCustomer(
      std::string_view customer_id) = 0;
  // Committed due-index entries of `partition` after `after` (exclusive) with time
  // <= up_to, ascending by (time, customer); sets *next_after to the first time
  // > up_to (kNever if none).
  virtual absl::Status ScanDue(int32_t partition, const std::pair<int64_t, std::string>& after,
                               int64_t up_to, std::vector<std::pair<int64_t, std::string>>* due,
                               int64_t* next_after) = 0;
  // The partition's committed aggregate counters by key ("dimension/value").
  virtual absl::StatusOr<std::map<std::string, lifecycle::v1::AggregateValue>> LoadAggregates(
      int32_t partition) = 0;
};

// The index entries a customer has: listing indexes and the due index.
struct IndexKeys {
  bool present = false;
  lifecycle::v1::Stage stage = lifecycle::v1::STAGE_UNSPECIFIED;
  lifecycle::v1::ValueGrade grade = lifecycle::v1::VALUE_GRADE_UNSPECIFIED;
  lifecycle::v1::Tier tier = lifecycle::v1::TIER_UNSPECIFIED;
  std::string region;
  std::string rfm_segment;
  int64_t p_alive_micro = -1;  // P(alive) in millionths; -1 without activity (not indexed)
  int64_t due = kNever;
  bool operator==(const IndexKeys&) const = default;
};
IndexKeys KeysOf(const lifecycle::v1::CustomerState& state);

// What one customer contributes to the dashboard counters ("dimension/value" -> 1
// customer and their trailing-12-month spend).
std::vector<std::string> ContributionKeys(const lifecycle::v1::CustomerView& view);

// The same, compact: the values the counter keys are made of. Comparing two of these
// is how a commit finds the customers whose counters move, without building keys.
struct Contribution {
  bool present = false;
  lifecycle::v1::Stage stage = lifecycle::v1::STAGE_UNSPECIFIED;
  lifecycle::v1::ValueGrade grade = lifecycle::v1::VALUE_GRADE_UNSPECIFIED;
  lifecycle::v1::ValueClass value_class = lifecycle::v1::VALUE_CLASS_UNSPECIFIED;
  lifecycle::v1::Tier tier = lifecycle::v1::TIER_UNSPECIFIED;
  lifecycle::v1::AgeBand age_band = lifecycle::v1::AGE_BAND_UNSPECIFIED;
  lifecycle::v1::WarrantyStatus warranty_status = lifecycle::v1::WARRANTY_STATUS_UNSPECIFIED;
  int activity_bucket = 0;  // activity days in 12 months, 4 for 4 or more
  std::string rfm_segment, region, vehicle_model, industry;
  int64_t revenue = 0;  // trailing-12-month spend

  static Contribution Of(const lifecycle::v1::CustomerView& view);
  std::vector<std::string> Keys() const;  // as ContributionKeys
  bool operator==(const Contribution&) const = default;
};

struct CustomerChange {
  const lifecycle::v1::CustomerState* state;  // owned by the projector
  IndexKeys before;                           // what the store has now
  IndexKeys after;                            // what it must have
};

// What changed in one partition since its last commit.
struct PendingBatch {
  lifecycle::v1::PartitionMeta meta;
  std::vector<CustomerChange> customers;  // sorted by customer id
  std::vector<std::pair<std::string, lifecycle::v1::AggregateValue>> aggregates;  // new values
  std::vector<lifecycle::v1::Alert> alerts;  // with partition and sequence numbers
};

// What became of one record.
struct RecordOutcome {
  enum Kind { kApplied, kDuplicate, kRejected, kSkipped, kAlreadyApplied } kind = kApplied;
  std::string reason;  // for kRejected / kSkipped
};

class PartitionProjector {
 public:
  // `committed` is the partition's stored meta (offset -1 if nothing was applied).
  // `config` must outlive the projector. After a commit, up to `cache_capacity`
  // customers' states stay in memory (the store holds the same), so a customer seen
  // again soon — the next event of a sale, a deadline days later — is not read and
  // parsed again; 0 keeps none.
  PartitionProjector(const DomainConfig* config, lifecycle::v1::PartitionMeta committed,
                     StateReader* reader, size_t cache_capacity = kDefaultCacheCapacity);
  static constexpr size_t kDefaultCacheCapacity = 10000;

  // Applies the record at `offset`. Records at or below the applied offset are
  // ignored (kAlreadyApplied). An error means committed state could not be read:
  // the record was not applied and must be offered again.
  absl::StatusOr<RecordOutcome> Apply(int64_t offset, std::string_view value);

  bool HasPending() const { return meta_.offset() != committed_.offset(); }
  // Alerts raised since the last commit.
  size_t PendingAlerts() const { return alerts_.size(); }

  // Everything since the last MarkCommitted(). Pointers stay valid until the next
  // Apply() or MarkCommitted().
  PendingBatch Pending();
  // The batch last returned by Pending() is durable: forget it.
  void MarkCommitted();

  const lifecycle::v1::PartitionMeta& meta() const { return meta_; }
  const lifecycle::v1::PartitionMeta& committed_meta() const { return committed_; }
  // Customer evaluations since construction (events and deadlines).
  int64_t evaluations() const { return evaluations_; }
  // Customer states found in memory / read from the store, since construction.
  int64_t cache_hits() const { return cache_hits_; }
  int64_t cache_misses() const { return cache_misses_; }

 private:
  // A customer's state in memory: dirty (changed since the last commit) or clean (the
  // store holds the same bytes).
  struct Cached {
    lifecycle::v1::CustomerState state;
    bool dirty = false;
    IndexKeys before;             // what the store has now
    Contribution before_contrib;  // what its counters in the store hold of it
    IndexKeys after;              // as handed out by Pending()
    Contribution after_contrib;
  };

  absl::StatusOr<Cached*> StateFor(const std::string& customer_id);
  bool IsDirty(const std::string& customer_id) const;
  absl::Status EnsureAggregates();
  absl::Status RunDue(int64_t now, int64_t offset, Effects* effects);
  void Evaluated(Cached* d, int64_t previous_deadline);
  void Record(Effects& effects);
  void Count(const std::string& key, int64_t n);

  const DomainConfig* config_;
  lifecycle::v1::PartitionMeta committed_;
  lifecycle::v1::PartitionMeta meta_;
  StateReader* reader_;
  size_t cache_capacity_;
  std::unordered_map<std::string, Cached> cache_;  // dirty and clean customers
  std::vector<Cached*> dirty_;                     // the dirty ones, in first-touch order
  bool pending_fresh_ = false;  // Pending() was called after the last Apply()
  std::set<std::pair<int64_t, std::string>> dirty_due_;  // deadlines of dirty customers
  int64_t committed_due_hint_ = INT64_MIN;  // no committed entry is due before this
  // The committed due index was read up to here. Entries at or before it are done
  // (evaluated, or stale entries of dirty customers); every deadline set later is
  // after the stream time of its evaluation, so after it too.
  std::pair<int64_t, std::string> due_cursor_{INT64_MIN, ""};
  bool aggregates_loaded_ = false;
  std::map<std::string, lifecycle::v1::AggregateValue> aggregates_;  // committed + event counts
  std::set<std::string> touched_;  // aggregate keys changed by events since the commit
  std::map<std::string, lifecycle::v1::AggregateValue> pending_aggregates_;
  std::vector<lifecycle::v1::Alert> alerts_;
  int64_t evaluations_ = 0;
  int64_t cache_hits_ = 0;
  int64_t cache_misses_ = 0;
};

}  // namespace lifecycle::projections
