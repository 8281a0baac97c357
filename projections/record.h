#pragma once
// CustomerRecord: what the store keeps per customer, compact and fixed in shape —
// integers, bounded rings of per-day entries for the trailing windows, 64-bit hashes
// of ids where only equality matters (the texts behind them are kept apart, in the
// store's text dictionary, and looked up when a view is read). No strings, no
// protobuf. Profile, stage history, lost deals and alerts live under keys of their
// own; the record keeps only their counts.
//
// EncodeRecord/DecodeRecord are the explicit codec of the stored bytes: a version
// byte, then varints. DecodeRecord reads every version it knows (today: 1 to 8); the
// next layout adds a version and keeps reading these.

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/container/inlined_vector.h"
#include "absl/status/status.h"
#include "projections/time.h"

namespace lifecycle::projections {

// FNV-1a, 64 bits, of an id or a text; 0 for the empty string (so 0 means "none").
uint64_t TextHash(std::string_view s);

// Per-day entries of the trailing windows (day = days since the epoch). Entries of
// the same day are merged; a ring keeps days in ascending order.
struct SpendDay {
  int32_t day = 0;
  int64_t amount = 0;  // purchases and paid services − refunds, minor units
  bool operator==(const SpendDay&) const = default;
};
struct ServiceDay {
  int32_t day = 0;
  uint16_t visits = 0;
  uint16_t on_schedule = 0;
  bool operator==(const ServiceDay&) const = default;
};
struct CampaignDay {
  int32_t day = 0;
  uint16_t count = 0;
  // TextHash of the campaign id (one entry per day and campaign). 0 in records before
  // layout 4, which counted participations: such an entry counts as one campaign.
  uint64_t campaign = 0;
  bool operator==(const CampaignDay&) const = default;
};
struct ReferralDay {
  int32_t day = 0;
  uint16_t converted = 0;
  uint16_t other = 0;
  bool operator==(const ReferralDay&) const = default;
};
struct QualifyingEntry {
  int32_t day = 0;
  int64_t points = 0;
  uint64_t source = 0;  // TextHash of the order or visit id
  bool operator==(const QualifyingEntry&) const = default;
};
struct PointsLot {
  int64_t earned_at = 0;  // seconds
  int64_t remaining = 0;
  uint64_t source = 0;  // TextHash of the order or visit id
  bool operator==(const PointsLot&) const = default;
};
struct Task {
  uint8_t kind = 0;    // lifecycle.v1.FollowUpKind
  uint8_t status = 0;  // lifecycle.v1.TaskStatus
  int64_t due_at = 0;
  int64_t closed_at = 0;  // 0 while open
  uint64_t origin = 0;    // TextHash of the sale or visit id
  bool operator==(const Task&) const = default;
};
// A greeting done (FollowUpContact of a greeting kind): greetings are not stored as
// tasks; views derive them from the calendar (birthday, configured holidays) and these.
struct GreetingContact {
  int64_t at = 0;    // seconds
  uint8_t kind = 0;  // lifecycle.v1.FollowUpKind: HOLIDAY_GREETING or BIRTHDAY_GREETING
  bool operator==(const GreetingContact&) const = default;
};
// A base the customer's journal re-derives from (see projections/journal.h): the
// customer's record as it was just before the journal entry at (pos_at, pos_offset).
struct JournalBase {
  enum Kind : uint8_t { kNone = 0, kBeginning = 1, kSlot0 = 2, kSlot1 = 3 };
  uint8_t kind = kNone;  // kBeginning: the empty record; kSlot0/1: a stored snapshot
  int64_t at = 0;        // the snapshot's evaluated_at
  // It holds every entry before this position and none after: an event at or after it
  // is folded from it, an earlier one from an earlier base.
  int64_t pos_at = 0, pos_offset = 0;
  uint32_t first = 0;    // the first journal entry (by number) that may follow it
  int slot() const { return kind == kSlot0 ? 0 : kind == kSlot1 ? 1 : -1; }
  bool operator==(const JournalBase&) const = default;
};

struct Complaint {
  uint64_t id = 0;        // TextHash
  uint64_t category = 0;  // TextHash
  uint8_t severity = 0;   // lifecycle.v1.ComplaintSeverity
  bool satisfied = false;
  bool sla_alerted = false;
  int64_t opened_ns = 0;
  int64_t resolved_ns = 0;  // 0 while open
  bool open() const { return resolved_ns == 0; }
  bool operator==(const Complaint&) const = default;
};

// The rule families that have deadlines of their own (see rules/).
enum Family : uint8_t {
  kWindowsFamily,      // trailing windows: activity, spend, services, campaigns, referrals
  kPointsFamily,       // lot expiry, qualifying points, tier, tier warning
  kComplaintsFamily,   // complaint SLA
  kMaintenanceFamily,  // maintenance due + grace
  kTasksFamily,        // follow-up tasks past their grace
  kChurnFamily,        // P(alive) crossings, inactivity, NEW and WON_BACK windows, RFM recency
  kFamilyCount,
};

// Which stage conditions held at the last evaluation (the codes behind the reasons).
enum StageFlag : uint8_t {
  kPAtRisk = 1 << 0,
  kPChurned = 1 << 1,
  kInactive = 1 << 2,
  kMaintenanceOverdue = 1 << 3,
  kTierAtRisk = 1 << 4,
  kWonBackWindow = 1 << 5,
};

// A record's bounded list, its usual length held in the record itself: a record's
// lists are one block of memory with it (no allocation to decode one, no scattered
// reads to encode one); a longer list moves to the heap as a vector would. Each N
// covers a little more than the mean length in a 1,000,000-customer store (the event
// window 9.4 entries, tasks 4.5, spend days 2.7, …; docs/benchmarks.md): the record is
// 1,400 bytes in memory.
template <typename T, size_t N>
using Inline = absl::InlinedVector<T, N>;
// std::erase_if for a record's list.
template <typename T, size_t N, typename Pred>
void EraseIf(Inline<T, N>& list, Pred pred) {
  list.erase(std::remove_if(list.begin(), list.end(), pred), list.end());
}

struct CustomerRecord {
  // Version 2 added first_day_spend, version 3 last_service_here_at (each at the end
  // of the bytes), version 4 each campaign entry's campaign, spend_prev2_12m and
  // ever_lost_prospect (and keeps 36 months of spend days), version 5 advisor,
  // interest, birthday and greetings, version 6 hold_until, version 7 the journal's
  // bases and next entry number. Version 8 has the same fields, smaller: times relative
  // to evaluated_at, ring days as differences, absent profile hashes in one byte
  // (record.cc).
  static constexpr uint8_t kVersion = 8;

  // --- Position and flags.
  int32_t partition = 0;
  int64_t last_offset = 0;  // offset of the last event applied to this customer
  bool erased = false;
  bool has_vehicle = false;
  bool has_survey = false;
  bool churn_risk_raised = false;
  bool churned_raised = false;
  bool tier_warning_raised = false;

  // --- Profile facts the rules and counters need (the profile is its own key).
  uint64_t region = 0;  // TextHash of the profile's region, 0 = unknown
  uint64_t vehicle_model = 0;
  uint64_t industry = 0;
  uint8_t age_band = 0;         // lifecycle.v1.AgeBand
  uint8_t warranty_status = 0;  // lifecycle.v1.WarrantyStatus, of the latest service visit
  uint32_t currency = 0;        // ISO 4217 letters packed, 0 = none
  uint64_t advisor = 0;         // TextHash of the profile's advisor_id, 0 = none
  uint64_t interest = 0;        // TextHash of the latest lead's interest (a vehicle model)
  uint16_t birthday = 0;        // month * 100 + day, 0 = unknown

  // --- Activity.
  int64_t event_count = 0;
  int32_t purchases = 0;
  int32_t service_visits = 0;
  int64_t first_seen_ns = 0;
  int64_t last_event_ns = 0;
  int64_t first_activity_ns = 0;  // meaningful when activity_days > 0
  int64_t last_activity_ns = 0;
  int64_t total_spend = 0;
  // Spend of the first activity day: the Gamma-Gamma spend model leaves it out (the
  // mean spend per repeat activity day is (total_spend − first_day_spend) / x).
  int64_t first_day_spend = 0;
  int32_t activity_days = 0;       // distinct activity days, all time
  Inline<int32_t, 8> recent_days;  // distinct activity days of the trailing 24 months

  // --- Trailing windows.
  Inline<SpendDay, 6> spend;              // 36 months (24 before layout 4)
  Inline<ServiceDay, 4> services;         // 24 months; visits at other garages count, off schedule
  Inline<CampaignDay, 2> campaigns;       // 12 months
  Inline<ReferralDay, 1> referrals;       // 24 months
  Inline<QualifyingEntry, 4> qualifying;  // 12 months

  // --- Points.
  Inline<PointsLot, 4> lots;  // oldest first
  int64_t expired_total = 0;
  int64_t redeemed_total = 0;

  // --- Other facts (seconds; 0 = never).
  int32_t latest_survey = 0;
  int64_t latest_survey_at = 0;
  int64_t last_lead_at = 0;
  int64_t last_deal_lost_at = 0;
  uint8_t last_lost_reason = 0;  // lifecycle.v1.DealLostReason of the latest lost deal
  int64_t won_back_at = 0;
  int64_t last_sale_at = 0;
  int64_t last_service_at = 0;  // including visits at other garages
  int64_t last_service_here_at = 0;
  bool ever_lost_prospect = false;  // was LOST_PROSPECT at some time
  int64_t maintenance_alerted_due = 0;

  // --- Bounded lists.
  Inline<Task, 6> tasks;
  Inline<Complaint, 1> complaints;
  Inline<GreetingContact, 1> greetings;  // the latest greetings done, oldest first
  Inline<uint64_t, 16> recent_events;    // dedup window: TextHash of event ids, oldest first

  // --- History kept under its own keys: how many entries exist.
  uint32_t transitions = 0;
  uint32_t lost_deals = 0;
  uint32_t alerts = 0;

  // --- Derived at the last evaluation (stream time `evaluated_at`).
  int64_t evaluated_at = 0;
  uint8_t stage = 0;  // lifecycle.v1.Stage
  int64_t stage_since = 0;
  uint8_t stage_flags = 0;  // StageFlag bits
  uint8_t satisfaction = 0, regular_maintenance = 0, event_participation = 0, advocacy = 0;
  uint8_t grade = 0;  // lifecycle.v1.ValueGrade
  uint8_t rfm_r = 0, rfm_f = 0, rfm_m = 0;  // 0 without activity
  uint8_t tier = 0;  // lifecycle.v1.Tier
  int64_t balance = 0;
  int64_t qualifying_12m = 0;
  int64_t tier_drop_at = 0;  // 0 unless the tier drops within the warning window
  int64_t points_to_keep_tier = 0;
  int64_t spend_12m = 0;
  int64_t spend_prev_12m = 0;
  int64_t spend_prev2_12m = 0;  // the 12 months before spend_prev_12m's
  // The epoch day from which the spend ring holds every day; 0: all along. Records of
  // layouts before 4 kept 24 months, so their third year back is not known (and grade
  // B not given) until the ring has filled it.
  int32_t spend_complete_from = 0;
  int32_t activity_days_12m = 0;
  int32_t activity_days_24m = 0;
  int32_t open_complaints = 0;
  int64_t due[kFamilyCount] = {kNever, kNever, kNever, kNever, kNever, kNever};
  int64_t next_deadline = kNever;
  // Settling (late history): while the partition's stream time has not reached this,
  // the customer's deadlines beyond its own latest event wait (0: not held).
  int64_t hold_until = 0;
  // Not stored: the churn family's next deadline other than an RFM recency cut, as the
  // family's last run on this copy of the record left it (`known` false on a record
  // decoded since). The projector moves the RFM recency of a customer whose only
  // deadline due is such a cut without taking its record (PartitionProjector).
  struct ChurnDueOther {
    bool known = false;
    int64_t at = kNever;
    bool operator==(const ChurnDueOther&) const { return true; }  // not part of the state
  } churn_due_other;

  // --- The journal (late events are re-derived from it): two bases, the older one
  // at least late.window_days of the customer's own time behind its latest event, and
  // the number the next entry gets. Which bases there are depends on when events
  // arrived, not on what they say: views do not show them.
  JournalBase journal_older, journal_newer;
  uint32_t journal_next = 0;

  bool exists() const { return event_count > 0; }
  bool has_activity() const { return activity_days > 0; }
  int loyalty() const { return satisfaction + regular_maintenance + event_participation + advocacy; }
  bool operator==(const CustomerRecord&) const = default;
};

// When the due index wakes the customer: its next deadline, or once its history has
// settled (hold_until) if that is later — also without a deadline, to end the hold.
inline int64_t DueOf(const CustomerRecord& r) {
  if (r.hold_until == 0) return r.next_deadline;
  return r.next_deadline == kNever || r.next_deadline < r.hold_until ? r.hold_until
                                                                     : r.next_deadline;
}

// The stored bytes of a record (appended to `out`).
void EncodeRecord(const CustomerRecord& record, std::string* out);
// Reads bytes written by EncodeRecord of this or an earlier layout version.
absl::Status DecodeRecord(std::string_view bytes, CustomerRecord* record);

// ISO 4217 letters <-> the packed form.
uint32_t PackCurrency(std::string_view code);
std::string UnpackCurrency(uint32_t packed);

}  // namespace lifecycle::projections
