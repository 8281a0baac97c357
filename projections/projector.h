#pragma once
// PartitionProjector: the pure core of the exactly-once loop for one Kafka partition.
//
// It decodes each record, folds it into a write-behind cache of customer states, and
// hands out everything that changed since the last commit as one PendingBatch (the
// dirty states and the partition's new meta: offset, stream time, counters). The
// caller writes a batch atomically and only then calls MarkCommitted(); if the write
// fails, nothing is lost: the batch stays pending and can be taken again.
//
// States are read through StateReader, so tests run it against an in-memory map.
// Not thread-safe: one projector is driven by one thread.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"
#include "lifecycle/v1/view.pb.h"
#include "projections/fold.h"
#include "projections/validate.h"

namespace lifecycle::projections {

// Reads committed customer states. Returns nullopt for an unknown customer.
class StateReader {
 public:
  virtual ~StateReader() = default;
  virtual absl::StatusOr<std::optional<lifecycle::v1::CustomerState>> LoadCustomer(
      std::string_view customer_id) = 0;
};

// What changed in one partition since its last commit.
struct PendingBatch {
  lifecycle::v1::PartitionMeta meta;  // the meta to store (offset = last applied)
  std::vector<const lifecycle::v1::CustomerState*> states;  // owned by the projector
};

// What became of one record.
struct RecordOutcome {
  enum Kind { kApplied, kDuplicate, kRejected, kSkipped, kAlreadyApplied } kind = kApplied;
  std::string reason;  // for kRejected / kSkipped
};

class PartitionProjector {
 public:
  // `committed` is the partition's stored meta (offset -1 if nothing was applied).
  PartitionProjector(FoldOptions options, lifecycle::v1::PartitionMeta committed,
                     StateReader* reader);

  // Applies the record at `offset`. Records at or below the applied offset are
  // ignored (kAlreadyApplied). An error means the state could not be read: the
  // record was not applied and must be offered again.
  absl::StatusOr<RecordOutcome> Apply(int64_t offset, std::string_view value);

  bool HasPending() const { return meta_.offset() != committed_.offset(); }
  int64_t pending_events() const { return meta_.offset() - committed_.offset(); }

  // Everything since the last MarkCommitted(). Pointers stay valid until the next
  // Apply() or MarkCommitted().
  PendingBatch Pending() const;
  // The batch returned by Pending() is durable: forget it.
  void MarkCommitted();

  const lifecycle::v1::PartitionMeta& meta() const { return meta_; }
  const lifecycle::v1::PartitionMeta& committed_meta() const { return committed_; }

 private:
  absl::StatusOr<lifecycle::v1::CustomerState*> StateFor(const std::string& customer_id);

  FoldOptions options_;
  lifecycle::v1::PartitionMeta committed_;
  lifecycle::v1::PartitionMeta meta_;
  StateReader* reader_;
  std::unordered_map<std::string, lifecycle::v1::CustomerState> dirty_;
};

}  // namespace lifecycle::projections
