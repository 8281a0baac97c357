#pragma once
// The fold: how one event changes one customer's state (ApplyEvent), and what the
// state means at a moment of stream time (Evaluate): stage, P(alive), loyalty,
// grade, RFM, points and tier, follow-ups, alerts, and the next deadline at which
// any of it changes without new events.
//
// Pure and deterministic: results depend only on the config, the state, the event
// and its position in the log. No I/O, no clocks, no threads.

#include <cstdint>
#include <string>
#include <vector>

#include "lifecycle/v1/events.pb.h"
#include "lifecycle/v1/view.pb.h"
#include "projections/config.h"

namespace lifecycle::projections {

// What a fold step did besides changing the state; the projector turns these into
// the alert log and the event counters.
struct Effects {
  std::vector<lifecycle::v1::Alert> alerts;  // id, kind, severity, reasons set; no sequence
  std::vector<lifecycle::v1::StageTransition> transitions;
  std::vector<lifecycle::v1::DealLostReason> lost_deals;
};

enum class FoldResult {
  kApplied,
  kDuplicate,  // the event id was seen recently for this customer: not applied again
};

// No deadline.
inline constexpr int64_t kNever = INT64_MAX;

// Days since the Unix epoch (UTC) of a time in seconds, or of a timestamp.
int64_t EpochDay(int64_t seconds);
int64_t EpochDay(const google::protobuf::Timestamp& t);

// Applies `event` (validated, not a ClockTick) at `offset` of `partition` to `state`.
// Call Evaluate afterwards to bring the derived fields up to date.
FoldResult ApplyEvent(const DomainConfig& config, int32_t partition, int64_t offset,
                      const lifecycle::v1::Event& event, lifecycle::v1::CustomerState* state,
                      Effects* effects);

// Recomputes every derived field at stream time `now` (seconds). Alerts are raised
// once per crossing; `offset` is the record that caused the evaluation (part of each
// alert id). Sets state->next_deadline (kNever if nothing is pending).
void Evaluate(const DomainConfig& config, int64_t now, int64_t offset,
              lifecycle::v1::CustomerState* state, Effects* effects);

// A deterministic alert id from its parts (hex of a 64-bit FNV-1a hash).
std::string AlertId(const std::string& customer_id, lifecycle::v1::AlertKind kind, int64_t offset,
                    const std::string& discriminator);

}  // namespace lifecycle::projections
