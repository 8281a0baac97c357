#pragma once
// What the fold says besides the record: reasons as codes with their numbers, stage
// transitions, lost deals and alerts. Transitions, lost deals and alerts are history:
// appended under keys of their own, never rewritten. Their words are built when read
// (view.h); the codecs here are their stored bytes (a version byte, then varints).

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"

namespace lifecycle::projections {

// A reason in a view, a transition or an alert: a code and the numbers the words
// are made of. Which fields a code uses is said next to it.
enum class ReasonCode : uint8_t {
  kNone = 0,
  kLostTheDeal = 1,         // a: DealLostReason
  kProspect = 2,            //
  kInactive = 3,            // a: days without purchase or service
  kPAliveBelowChurned = 4,  // p: P(alive), x: threshold
  kPAliveBelowAtRisk = 5,   // p: P(alive), x: threshold, a: days since the last visit
  kComplaintPastSla = 6,    // h: complaint id
  kMaintenanceOverdue = 7,  // a: days overdue
  kCameBack = 8,            // a: days since the win-back
  kLoyalVisits = 9,         // a: activity days in 24 months, b: loyalty score
  kFirstActivity = 10,      // a: days since the first activity
  kLastVisit = 11,          // a: days since the last activity
  kTaskOverdue = 12,        // a: FollowUpKind, b: how many
  kTierDrops = 13,          // a: Tier, b: days to the drop, c: points needed
  // Alert reasons.
  kDealLostOn = 20,         // a: DealLostReason
  kBoughtFrom = 21,         // h: competitor
  kComplaintOpen = 22,      // h: complaint id, h2: category, a: days open, b: SLA days
  kMaintenanceWasDue = 23,  // a: days since due
  kTaskDaysOverdue = 24,    // a: FollowUpKind, b: days overdue
  kPAliveFell = 25,         // p: P(alive), x: threshold
  kLastActivityDays = 26,   // a: days since the last purchase or service
  kTierDropsIn = 27,        // a: Tier, b: days
  kPointsKeepTier = 28,     // a: points
  kServicedElsewhere = 29,  // a: days since the last service visit here (-1: none)
};

struct Reason {
  ReasonCode code = ReasonCode::kNone;
  int64_t a = 0, b = 0, c = 0;
  uint64_t h = 0, h2 = 0;  // TextHash of ids and names
  double p = 0, x = 0;
  bool operator==(const Reason&) const = default;
};

struct TransitionEntry {
  uint8_t from = 0, to = 0;  // lifecycle.v1.Stage
  int64_t at = 0;            // seconds
  int64_t offset = 0;
  Reason reason;  // the first reason of the new stage
  bool operator==(const TransitionEntry&) const = default;
};

struct LostDealEntry {
  std::string lead_id;
  std::string competitor;
  uint8_t reason = 0;  // lifecycle.v1.DealLostReason
  int64_t at_ns = 0;
  bool operator==(const LostDealEntry&) const = default;
};

// What makes an alert's id unique besides customer, kind and offset.
struct Discriminator {
  enum Kind : uint8_t { kNone = 0, kText = 1, kNumber = 2, kTask = 3 } kind = kNone;
  uint64_t text = 0;   // kText, kTask: TextHash of the id (lead, complaint, task origin)
  int64_t number = 0;  // kNumber: maintenance due time or tier; kTask: FollowUpKind
  bool operator==(const Discriminator&) const = default;
};

struct AlertFact {
  uint8_t kind = 0;      // lifecycle.v1.AlertKind
  uint8_t severity = 0;  // lifecycle.v1.Severity
  int64_t at = 0;        // seconds
  int64_t offset = 0;
  double p_alive = 0;
  int32_t loyalty = 0;
  uint64_t region = 0;  // TextHash of the customer's region when raised
  uint64_t advisor = 0;  // TextHash of the customer's advisor when raised (layout 2)
  bool late = false;     // raised long after its condition became true (layout 3)
  Discriminator disc;
  std::vector<Reason> reasons;
  bool operator==(const AlertFact&) const = default;
};

// An alert in a partition's log: the fact and whom it is about.
struct AlertEntry {
  std::string customer_id;
  int32_t partition = 0;
  int64_t sequence = 0;
  AlertFact fact;
};

void EncodeTransition(const TransitionEntry& t, std::string* out);
absl::Status DecodeTransition(std::string_view bytes, TransitionEntry* t);
void EncodeLostDeal(const LostDealEntry& d, std::string* out);
absl::Status DecodeLostDeal(std::string_view bytes, LostDealEntry* d);
// An alert's stored bytes leave out its partition and sequence: the key of the alert
// log holds them. DecodeAlert leaves them as they are in `a` (layouts before 4 held
// them: they are read).
void EncodeAlert(const AlertEntry& a, std::string* out);
absl::Status DecodeAlert(std::string_view bytes, AlertEntry* a);

// A text the store's dictionary must hold: its TextHash and the words.
using Text = std::pair<uint64_t, std::string>;

// What one fold step did besides changing the record.
struct Effects {
  std::vector<AlertFact> alerts;
  std::vector<TransitionEntry> transitions;
  std::vector<LostDealEntry> lost_deals;
  std::vector<Text> texts;  // ids that views and alerts will need in words
  std::vector<Text> names;  // profile names that counters and indexes are keyed by
  // A prospect's deal was lost for the first time / a customer who was ever a lost
  // prospect has a first activity ("recovered", DOMAIN.md): dashboard counts.
  bool became_lost_prospect = false;
  bool recovered_lost_prospect = false;
};

}  // namespace lifecycle::projections
