#pragma once
// The journal: what lets a late event be folded in its place (ARCHITECTURE.md "Time").
//
// A customer's record is the fold of its events in its own time. An event older than
// what the customer has seen cannot be folded into the record after the fact; the
// customer is re-derived instead: from a base (its record as it was before some
// event) through the events that followed, the late one among them in its place. The
// journal keeps, per customer, under keys of its own (the store's j/ family):
//   - entries: each applied event's bytes, numbered in the order applied, with the
//     instant it was folded at (its event time; for an event folded at its customer's
//     time, that time) and its offset — their position;
//   - up to two bases, stored records ("snapshots") in slots 0 and 1, or the empty
//     record of the customer's beginning, each the record as it was just before the
//     entry at its position.
// The older base stays at least late.window_days (of the customer's own time) behind
// its latest event, so any event that much late can be placed after it. When it is two
// windows behind, a newer base is taken at the next event; when that one is a window
// behind, it becomes the older one and the older base and the entries before it are
// dropped (most of the time a customer has one base). Writes are blind (no read on the
// fold's path); only a late event reads the journal back. An erasure ends the
// customer's journal (the entries hold personal data): its late events are approximated.

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace lifecycle::projections {

struct JournalEntry {
  int64_t fold_at = 0;  // seconds
  int64_t offset = 0;
  // The customer's deadlines at fold_at itself had run before the event was folded
  // (its time had reached fold_at: a clock tick, an earlier event or a deadline at
  // that instant), so a re-derivation runs them first too.
  bool after_deadlines = false;
  std::string event;  // the record's value, as read from the log
};

// The stored bytes of an entry (a version byte, then varints and the event's bytes):
// `customer_id` is the journal's customer, which the key names; the event's bytes are
// stored without it and get it back when read (journal.cc).
void EncodeJournalEntry(const JournalEntry& e, std::string_view customer_id, std::string* out);
absl::Status DecodeJournalEntry(std::string_view bytes, std::string_view customer_id,
                                JournalEntry* e);

// One write to a customer's journal.
struct JournalWrite {
  enum Kind : uint8_t {
    kEntry,     // entry number `n`: bytes from EncodeJournalEntry
    kSnapshot,  // slot `n`: bytes from EncodeRecord
    kDrop,      // entries numbered [n, end) are no longer needed
    kDropSnapshot,  // the snapshot in slot `n` is no longer needed
  } kind = kEntry;
  uint32_t n = 0;
  uint32_t end = 0;
  std::string bytes;
};

}  // namespace lifecycle::projections
