#pragma once
// The fold: how one event changes one customer's record (ApplyEvent), and what the
// record means at a moment of stream time (Evaluate): the rule families of
// rules/families.h, run only where an event or a deadline can change them.
//
// Pure and deterministic: results depend only on the config, the record, the event
// and its position in the log. No I/O, no clocks, no threads.

#include <cstdint>
#include <string>
#include <string_view>

#include "lifecycle/v1/events.pb.h"
#include "lifecycle/v1/view.pb.h"
#include "projections/config.h"
#include "projections/history.h"
#include "projections/record.h"
#include "projections/rules/families.h"
#include "projections/time.h"

namespace lifecycle::projections {

enum class FoldResult {
  kApplied,
  kDuplicate,  // the event id was seen recently for this customer: not applied again
};

// Applies `event` (validated, not a ClockTick) at `offset` of `partition` to
// `record`, and says in *runs which rule families it can change. Call Evaluate with
// them afterwards to bring the derived fields up to date.
FoldResult ApplyEvent(const DomainConfig& config, int32_t partition, int64_t offset,
                      const lifecycle::v1::Event& event, CustomerRecord* record, Effects* effects,
                      uint16_t* runs);

// Whether `event` changes the customer's profile (kept under its own key), and the
// change: registration and profile updates merge their fields, a vehicle sale sets
// the model, erasure removes the personal fields (and `erased` keeps them out).
bool ChangesProfile(const lifecycle::v1::Event& event);
void FoldProfile(const lifecycle::v1::Event& event, bool erased, lifecycle::v1::Profile* profile);

// A batch's change of one customer's profile, as the store applies it to the profile it
// holds (ApplyProfileUpdate; a RocksDB merge): the fold never reads a profile. Applied
// in this order: `reset` drops the stored profile (the customer had applied no event
// when the change began: a profile under its key is not its), `erase` clears its
// personal fields (an erasure), then `fields` are merged in (those the batch's events
// set; proto3 optional fields, so merging copies exactly those present). Applying one
// twice gives what applying it once gives (Profile has no repeated field).
struct ProfileUpdate {
  bool reset = false;
  bool erase = false;
  lifecycle::v1::Profile fields;
};
void FoldProfile(const lifecycle::v1::Event& event, bool erased, ProfileUpdate* update);
// One flag byte (1: reset, 2: erase) and the serialized fields.
std::string EncodeProfileUpdate(const ProfileUpdate& update);
// False when `update` is not EncodeProfileUpdate's bytes (nothing is applied then).
bool ApplyProfileUpdate(std::string_view update, lifecycle::v1::Profile* profile);
// Whether `update` drops the stored profile before its fields apply (its flag byte).
bool ProfileUpdateResets(std::string_view update);

// Brings the derived fields up to date at stream time `now` (seconds): runs the
// families in `runs`, those whose deadline has come, and those depending on them.
// Alerts are raised once per crossing; `offset` is the record that caused the
// evaluation. Sets record->next_deadline (kNever if nothing is pending).
void Evaluate(const DomainConfig& config, int64_t now, int64_t offset, CustomerRecord* record,
              Effects* effects, uint16_t runs = rules::kRunAll);

// Runs a customer's deadlines up to and including `now`, each at its own instant, as
// the fold does when the stream passes them: nothing while the customer's due instant
// (DueOf: its next deadline or its hold) is after `now`; a hold that has ended is
// lifted. Returns the evaluations made.
int RunDeadlinesThrough(const DomainConfig& config, int64_t now, int64_t offset,
                        CustomerRecord* record, Effects* effects);

// Brings a stored record up to its partition's `deadlines_through`
// (lifecycle.v1.PartitionMeta): the store keeps a record as the last event left it
// (PartitionProjector::Pending), so the deadlines since are run again, without their
// effects, which are stored already; the record counts their alerts as it did then.
void CatchUpStored(const DomainConfig& config, int64_t deadlines_through, CustomerRecord* record);

}  // namespace lifecycle::projections
