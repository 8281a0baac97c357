#pragma once
// Decoding and validation of events: the gate every record passes before the fold.
// Pure: no I/O, no clocks. Thread-compatible (no shared state).

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "lifecycle/v1/events.pb.h"

namespace lifecycle::projections {

// Limits on identifiers; longer ones are rejected.
inline constexpr size_t kMaxCustomerIdBytes = 256;
inline constexpr size_t kMaxEventIdBytes = 128;
// Event times outside [2000-01-01, 2100-01-01) are absurd and rejected.
inline constexpr int64_t kMinEventSeconds = 946684800;
inline constexpr int64_t kMaxEventSeconds = 4102444800;

// Returns OK when `event` may be applied, or INVALID_ARGUMENT with a message that
// names the offending field. ClockTick events carry no customer.
absl::Status ValidateEvent(const lifecycle::v1::Event& event);

// Returns OK when `id` is a usable customer id (non-empty, at most
// kMaxCustomerIdBytes), or INVALID_ARGUMENT naming `field`.
absl::Status ValidateCustomerId(absl::string_view id, absl::string_view field = "customer_id");

// What became of a record's bytes.
enum class DecodeOutcome {
  kOk,              // decoded and valid: apply it
  kUndecodable,     // not a protobuf Event
  kInvalid,         // decoded but failed validation
  kUnknownPayload,  // a payload this build does not know (newer producer): skip
};

struct Decoded {
  DecodeOutcome outcome = DecodeOutcome::kOk;
  lifecycle::v1::Event event;
  std::string reason;  // set unless outcome == kOk
};

// Decodes `bytes` as an Event and validates it.
Decoded DecodeEvent(std::string_view bytes);

}  // namespace lifecycle::projections
