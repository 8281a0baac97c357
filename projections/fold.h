#pragma once
// The fold: how one event changes one customer's state. Pure and deterministic:
// the result depends only on the state, the event and its position in the log.
// No I/O, no clocks, no threads.

#include <cstdint>
#include <string>

#include "lifecycle/v1/events.pb.h"
#include "lifecycle/v1/view.pb.h"

namespace lifecycle::projections {

struct FoldOptions {
  int new_days = 90;            // a customer is NEW for this many days after the first activity
  int dedup_window = 32;        // event ids remembered per customer for duplicate detection
  std::string config_version = "builtin-1";
};

enum class FoldResult {
  kApplied,
  kDuplicate,  // the event id was seen recently for this customer: not applied again
};

// Days since the Unix epoch (UTC) of a timestamp.
int64_t EpochDay(const google::protobuf::Timestamp& t);

// Applies `event` (already validated, not a ClockTick) at `offset` of `partition`
// to `state`. A fresh customer starts from an empty CustomerState.
FoldResult FoldEvent(const FoldOptions& options, int32_t partition, int64_t offset,
                     const lifecycle::v1::Event& event, lifecycle::v1::CustomerState* state);

}  // namespace lifecycle::projections
