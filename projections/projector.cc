#include "projections/projector.h"

#include <algorithm>

namespace lifecycle::projections {

using lifecycle::v1::CustomerState;
using lifecycle::v1::PartitionMeta;

PartitionProjector::PartitionProjector(FoldOptions options, PartitionMeta committed,
                                       StateReader* reader)
    : options_(std::move(options)),
      committed_(std::move(committed)),
      meta_(committed_),
      reader_(reader) {}

absl::StatusOr<CustomerState*> PartitionProjector::StateFor(const std::string& customer_id) {
  auto it = dirty_.find(customer_id);
  if (it != dirty_.end()) return &it->second;
  absl::StatusOr<std::optional<CustomerState>> loaded = reader_->LoadCustomer(customer_id);
  if (!loaded.ok()) return loaded.status();
  CustomerState& slot = dirty_[customer_id];
  if (loaded->has_value()) slot = std::move(**loaded);
  return &slot;
}

absl::StatusOr<RecordOutcome> PartitionProjector::Apply(int64_t offset, std::string_view value) {
  RecordOutcome out;
  if (offset <= meta_.offset()) {
    out.kind = RecordOutcome::kAlreadyApplied;
    return out;
  }
  Decoded d = DecodeEvent(value);
  switch (d.outcome) {
    case DecodeOutcome::kUndecodable:
    case DecodeOutcome::kInvalid:
      out.kind = RecordOutcome::kRejected;
      out.reason = std::move(d.reason);
      meta_.set_events_rejected(meta_.events_rejected() + 1);
      meta_.set_offset(offset);
      return out;
    case DecodeOutcome::kUnknownPayload:
      out.kind = RecordOutcome::kSkipped;
      out.reason = std::move(d.reason);
      meta_.set_events_skipped(meta_.events_skipped() + 1);
      meta_.set_offset(offset);
      return out;
    case DecodeOutcome::kOk:
      break;
  }
  const auto& e = d.event;
  if (!meta_.has_stream_time() || meta_.stream_time().seconds() < e.occurred_at().seconds() ||
      (meta_.stream_time().seconds() == e.occurred_at().seconds() &&
       meta_.stream_time().nanos() < e.occurred_at().nanos())) {
    *meta_.mutable_stream_time() = e.occurred_at();
  }
  if (e.payload_case() != lifecycle::v1::Event::kClockTick) {
    absl::StatusOr<CustomerState*> state = StateFor(e.customer_id());
    if (!state.ok()) return state.status();  // nothing changed: offer the record again
    if (FoldEvent(options_, meta_.partition(), offset, e, *state) == FoldResult::kDuplicate) {
      out.kind = RecordOutcome::kDuplicate;
      meta_.set_events_duplicate(meta_.events_duplicate() + 1);
      meta_.set_offset(offset);
      return out;
    }
  }
  meta_.set_events_applied(meta_.events_applied() + 1);
  meta_.set_offset(offset);
  return out;
}

PendingBatch PartitionProjector::Pending() const {
  PendingBatch batch;
  batch.meta = meta_;
  batch.meta.set_commits(committed_.commits() + 1);
  batch.states.reserve(dirty_.size());
  for (const auto& [id, state] : dirty_) batch.states.push_back(&state);
  // A stable order makes the batch, and so the store's write, deterministic.
  std::sort(batch.states.begin(), batch.states.end(),
            [](const CustomerState* a, const CustomerState* b) {
              return a->view().customer_id() < b->view().customer_id();
            });
  return batch;
}

void PartitionProjector::MarkCommitted() {
  committed_ = meta_;
  committed_.set_commits(committed_.commits() + 1);
  meta_ = committed_;
  dirty_.clear();
}

}  // namespace lifecycle::projections
