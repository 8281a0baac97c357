#pragma once
// PartitionProjector: the pure core of the exactly-once loop for one Kafka partition.
//
// For each record it decodes and validates the event, advances the partition's
// stream time, evaluates every customer whose deadline has come (from the due
// index — never by scanning all customers), folds the event into the customer's
// record and evaluates the rule families the event can change. Changed records and
// profiles, index keys, aggregate counters, appended history (stage transitions,
// lost deals, alerts), new dictionary texts and the partition's meta (offset, stream
// time, counters) are handed out together as one PendingBatch, which the caller
// writes atomically before calling MarkCommitted(). If the write fails nothing is
// lost: the batch stays pending. A PendingBatch owns its bytes, so it can be written
// while the projector goes on folding.
//
// Committed state is read through StateReader, so tests run it against memory.
// Not thread-safe: one projector is driven by one thread.

#include <algorithm>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <queue>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/status/statusor.h"
#include "lifecycle/v1/view.pb.h"
#include "projections/chunked_vector.h"
#include "projections/config.h"
#include "projections/due_index.h"
#include "projections/fold.h"
#include "projections/history.h"
#include "projections/id_table.h"
#include "projections/journal.h"
#include "projections/record.h"
#include "projections/rules.h"
#include "projections/validate.h"
#include "projections/view.h"

namespace lifecycle::projections {

// Reads committed state. Implementations: the RocksDB store, and memory in tests.
class StateReader {
 public:
  virtual ~StateReader() = default;
  // The customer's record as stored (EncodeRecord's bytes; nullopt for an unknown
  // customer). The projector decodes it, and keeps the bytes while the record is only
  // caught up with its deadlines (they are what the store still has).
  virtual absl::StatusOr<std::optional<std::string>> LoadRecord(std::string_view customer_id) = 0;
  // The words of a dictionary text (nullopt if the dictionary has none).
  virtual absl::StatusOr<std::optional<std::string>> LoadText(uint64_t hash) = 0;
  // Every committed customer of `partition` that has a deadline: (deadline, customer).
  // Read once, when the projector starts; the projector keeps the due index in memory
  // from then on (it is derived from the records, not stored apart).
  virtual absl::Status LoadDeadlines(int32_t partition,
                                     std::vector<std::pair<int64_t, std::string>>* out) = 0;
  // The partition's committed aggregate counters by key ("dimension/value").
  virtual absl::StatusOr<std::map<std::string, lifecycle::v1::AggregateValue>> LoadAggregates(
      int32_t partition) = 0;
  // A customer's journal (journal.h): the snapshot in `slot` (-1: none asked for) and
  // the entries numbered `first` or more, by number. Without one (the default), a late
  // event is folded at its customer's time.
  struct Journal {
    std::optional<std::string> snapshot;
    std::vector<std::pair<uint32_t, std::string>> entries;
  };
  virtual absl::StatusOr<Journal> LoadJournal(std::string_view /*customer_id*/, int /*slot*/,
                                              uint32_t /*first*/) {
    return Journal{};
  }
  // The alerts a customer has had (kind, the record that raised it, what it is about).
  virtual absl::StatusOr<std::vector<AlertRef>> LoadAlertRefs(std::string_view /*customer_id*/) {
    return std::vector<AlertRef>();
  }
};

// The index entries a customer has: listing indexes, and its deadline (the due index,
// which the projector keeps in memory).
struct IndexKeys {
  bool present = false;
  uint8_t stage = 0;  // lifecycle.v1.Stage
  uint8_t grade = 0;
  uint8_t tier = 0;
  uint64_t region = 0;   // TextHash; 0 = unknown
  uint64_t advisor = 0;  // TextHash; 0 = none
  uint8_t rfm_r = 0, rfm_f = 0, rfm_m = 0;  // 0: no segment
  int32_t partition = 0;
  rules::ChurnInputs churn;  // what P(alive) and the expected value are computed from
  int64_t due = kNever;
  const char* rfm_segment() const;  // nullptr without a segment
  bool operator==(const IndexKeys&) const = default;
};
IndexKeys KeysOf(const CustomerRecord& record);

// A dashboard counter as the projector keeps it between commits: a dimension and its
// values (an enum value, a name's TextHash, a transition's from*16+to; cross-tabs have
// two or three), and for event counters the advisor whose customers' events it counts
// (0: every customer). Its key in the store ("stage/NEW", "region/Yuci",
// "@adv-07/alert_kind/CHURNED") is built once per commit, not per event.
struct CounterKey {
  enum Dim : uint8_t {
    kAll,
    kStage,
    kGrade,
    kValueClass,
    kTier,
    kRfmSegment,  // value: segment index + 1, 0 = none
    kRegion,
    kVehicleModel,
    kIndustry,
    kAgeBand,
    kWarrantyStatus,
    kActivityBucket,
    kAlertKind,
    kStageTransition,
    kLostDealReason,
    kRfmGrid,  // value: recency * 8 + frequency (1..5 each), 0 = none
    kLostProspects,  // value: 0 lost (the first time), 1 recovered
    kModelByActivity,     // value: vehicle model, value2: activity bucket
    kWarrantyByActivity,  // value: warranty status, value2: activity bucket
    kLostDeals,           // value: reason, value2: vehicle model, value3: advisor
    // The year before the trailing 12 months ("prev/..."): value(s) as above.
    kActivityBucketPrev,
    kModelByActivityPrev,
    kWarrantyByActivityPrev,
  };
  Dim dim = kAll;
  uint64_t value = 0;
  uint64_t value2 = 0;
  uint64_t value3 = 0;
  uint64_t advisor = 0;  // 0: every customer
  bool operator==(const CounterKey&) const = default;
  template <typename H>
  friend H AbslHashValue(H h, const CounterKey& k) {
    return H::combine(std::move(h), k.dim, k.value, k.value2, k.value3, k.advisor);
  }
};

// What one customer contributes to the dashboard counters ("dimension/value" -> 1
// customer, their spend and activity days of the counter's period), as the values the
// counter keys are made of. Comparing two of these is how a commit finds the
// customers whose counters move, without building keys.
struct Contribution {
  bool present = false;
  uint8_t stage = 0, grade = 0, value_class = 0, tier = 0, age_band = 0, warranty_status = 0;
  int activity_bucket = 0;       // activity days in 12 months, 4 for 4 or more
  int activity_bucket_prev = 0;  // ... in the 12 months before
  uint8_t rfm_r = 0, rfm_f = 0, rfm_m = 0;
  uint64_t region = 0, vehicle_model = 0, industry = 0;  // TextHash
  int64_t revenue = 0;       // trailing-12-month spend
  int64_t revenue_prev = 0;  // spend of the 12 months before
  int32_t activities = 0, activities_prev = 0;  // activity days of the same periods

  static Contribution Of(const CustomerRecord& record);
  // A counter and what the customer adds to it.
  struct Counted {
    CounterKey key;
    int64_t revenue = 0;
    int64_t activities = 0;
  };
  // The counters it is part of, in one order (none when not present). An advisor's
  // customer counters are not kept (the store sums them from the advisor's customers
  // when asked: ViewStore::ReadAdvisorAggregates); their event counters are.
  using CountedList = absl::InlinedVector<Counted, 20>;
  CountedList Keys() const;
  bool operator==(const Contribution&) const = default;
};

// The store's key of a counter ("stage/NEW", "@adv-07/alert_kind/CHURNED"), with the
// words of the names it is keyed by.
std::string CounterKeyName(const CounterKey& k, const std::function<std::string(uint64_t)>& name);

// One customer's writes in a batch.
struct CustomerChange {
  std::string id;
  std::string record;                  // EncodeRecord bytes (empty when not written)
  std::optional<std::string> profile;  // EncodeProfileUpdate bytes, when it changed
  IndexKeys before;                    // what the store has now
  IndexKeys after;                     // what it must have
  // False when only the customer's deadlines changed it since the last commit: the
  // stored record is then left as it is, and is caught up when read (CatchUpStored).
  bool write_record = true;
  // Only RFM recency cuts changed it: of `before` and `after`, only present, the RFM
  // scores, partition and due are filled in, and only the RFM segment moves.
  bool recency_only = false;
};

// An entry appended to a customer's history (transitions, lost deals) at `seq`.
template <typename T>
struct Appended {
  std::string customer_id;
  uint32_t seq = 0;
  T entry;
};

// History entries a re-derivation no longer has: a customer's transitions numbered
// [transitions_from, transitions_to) and lost deals [lost_deals_from, lost_deals_to)
// are deleted — before the batch's appends, which may number entries anew.
struct HistoryCut {
  std::string customer_id;
  uint32_t transitions_from = 0, transitions_to = 0;
  uint32_t lost_deals_from = 0, lost_deals_to = 0;
};

// What changed in one partition since its last commit. Owns its bytes.
struct PendingBatch {
  lifecycle::v1::PartitionMeta meta;
  std::vector<CustomerChange> customers;  // in the order first touched
  std::vector<std::pair<std::string, lifecycle::v1::AggregateValue>> aggregates;  // new values
  std::vector<AlertEntry> alerts;  // with partition and sequence numbers
  std::vector<Appended<TransitionEntry>> transitions;
  std::vector<Appended<LostDealEntry>> lost_deals;
  std::vector<HistoryCut> cuts;
  std::vector<Appended<JournalWrite>> journal;  // in the order written
  // Ids a customer's views and alerts show in words (orders, visits, complaints, …),
  // kept with the customer, and names (regions, models, industries) new to the
  // shared dictionary.
  std::vector<Appended<Text>> texts;
  std::vector<Text> new_names;
  std::vector<Text> names;  // the words of every region and advisor the index keys above name
};

// What became of one record.
struct RecordOutcome {
  // kDeferred: not applied yet. The stream moved so far ahead that more customers came
  // due than set_max_deadlines_per_batch() allows in one batch: the earliest of them
  // were evaluated (each through one instant, deadlines_through), and the rest wait.
  // Commit what is pending, then offer the same record again.
  enum Kind { kApplied, kDuplicate, kRejected, kSkipped, kAlreadyApplied, kDeferred } kind = kApplied;
  std::string reason;  // for kRejected / kSkipped
};

class PartitionProjector {
 public:
  // `committed` is the partition's stored meta (offset -1 if nothing was applied).
  // `config` must outlive the projector. After a commit, the most recently used
  // customers' records stay in memory, encoded as the store holds them, within
  // `cache_bytes`, so a customer seen again soon — the next event of a sale, a
  // deadline days later — is not read from the store again; 0 keeps none.
  PartitionProjector(const DomainConfig* config, lifecycle::v1::PartitionMeta committed,
                     StateReader* reader, size_t cache_bytes = kDefaultCacheBytes);
  static constexpr size_t kDefaultCacheBytes = 64u << 20;

  // Applies the record at `offset`. Records at or below the applied offset are
  // ignored (kAlreadyApplied). An error means committed state could not be read:
  // the record was not applied and must be offered again.
  absl::StatusOr<RecordOutcome> Apply(int64_t offset, std::string_view value);

  bool HasPending() const {
    return meta_.offset() != committed_.offset() ||
           meta_.deadlines_through() != committed_.deadlines_through();
  }
  // At most about `n` customers evaluated for their deadlines in one batch when the
  // stream jumps ahead (a history followed by live events, a restart after downtime):
  // beyond that, Apply() runs the deadlines up to an earlier instant and answers
  // kDeferred. The cut depends only on which customers are due, not on what the batch
  // already holds, so a replay from any commit cuts where the first run did. 0 (the
  // default): no limit.
  void set_max_deadlines_per_batch(size_t n) { max_due_ = n; }
  // Whether a customer only RFM recency cuts came due for is moved without its record
  // (the default when the cuts are strictly descending). Off: every due customer is
  // evaluated on its record — the same answers, for tests and comparisons.
  void set_recency_steps(bool on);
  // Alerts raised since the last commit.
  size_t PendingAlerts() const { return alerts_.size(); }

  // Everything since the last commit, as bytes the batch owns. Its alerts, history,
  // journal writes and texts are handed over: once per commit, then MarkInFlight() or
  // MarkCommitted().
  PendingBatch Pending();
  // The batch last returned by Pending() is durable: forget it. The same as
  // MarkInFlight() then MarkDurable().
  void MarkCommitted();
  // For a commit that overlaps the fold of the next batch: the batch last returned by
  // Pending() is being written (and will be retried until it is); Apply() may go on.
  // Its customers stay in memory, so reads of them are served from memory, not from a
  // store that may not have them yet. MarkDurable() says the write has landed.
  void MarkInFlight();
  void MarkDurable();
  // The batch in flight will never be written (its commit was given up). What this
  // projector holds is then ahead of the store, and a later batch would record an offset
  // past events the store never got: it must not commit again. Its owner drops it, and a
  // projector made anew from the store replays those events.
  void MarkLost() { lost_ = true; }
  bool lost() const { return lost_; }

  const lifecycle::v1::PartitionMeta& meta() const { return meta_; }
  const lifecycle::v1::PartitionMeta& committed_meta() const { return committed_; }
  // Customer evaluations since construction (events and deadlines).
  int64_t evaluations() const { return evaluations_; }
  // Customer records found in memory / read from the store, since construction.
  int64_t cache_hits() const { return cache_hits_; }
  int64_t cache_misses() const { return cache_misses_; }
  // Clean records kept in memory and their estimated bytes.
  size_t cached() const { return clean_count_; }
  size_t cached_bytes() const { return cached_bytes_; }
  // Customers held decoded: changed since the last commit (but those only their
  // deadlines changed, without an alert, which are held as their keys and counters) or
  // in the batch being written.
  size_t held() const { return held_; }
  // Customers the projector has a slot for (every one with a deadline, and every one
  // read or changed since it started).
  size_t known() const { return slots_.size(); }

 private:
  static constexpr uint32_t kNoSlot = ~uint32_t{0};
  // A customer being changed: dirty (changed since the last commit) or in flight (in
  // the batch being written), decoded.
  struct Cached {
    uint32_t slot = kNoSlot;
    CustomerRecord record;
    // The batch's change of its profile, from the first event that changes it until the
    // batch is handed out: the store applies it to the profile it has (ProfileUpdate),
    // so none is read. `profile_begun`: a change began while it was live (whether the
    // stored profile is dropped, `reset`, is decided by the first).
    std::unique_ptr<ProfileUpdate> profile;
    bool profile_begun = false;
    bool dirty = false;
    // Dirty by more than its deadlines (an event, a re-derivation): the record is
    // written. One its deadlines alone changed is not (CustomerChange::write_record).
    bool write = false;
    bool in_flight = false;  // in the batch being written: not to be evicted or read back
    bool profile_dirty = false;
    // The record's bytes as the store has them once the batches handed out land: the
    // clean copy it becomes then (KeepClean takes it over, no copy). Those it was read
    // from, until an event changes it: one its deadlines alone changed is not encoded
    // again (the store's copy is caught up when read, and so is this one).
    std::unique_ptr<char[]> encoded;
    uint32_t encoded_size = 0;
    void SetEncoded(std::string_view bytes);
    IndexKeys before;             // what the store has now
    Contribution before_contrib;  // what its counters in the store hold of it
    IndexKeys after;              // as handed out by Pending()
    Contribution after_contrib;
    // Its journal writes not known to be in the store: those of the batch being
    // written, and those since (a late event reads the journal through them).
    std::vector<JournalWrite> journal_in_flight, journal_dirty;
    // Likewise its alerts (a re-derivation does not raise one twice).
    std::vector<AlertRef> alerts_in_flight, alerts_dirty;
  };
  // One customer the projector knows, by its number in ids_ (which stays its own
  // while the projector lives): the due index and the keep queue hold these numbers,
  // not ids. A customer is decoded (`live`, while dirty or in flight), kept encoded as
  // the store has it (`clean`, queued in kept_), or only known.
  struct Slot {
    std::unique_ptr<Cached> live;
    std::unique_ptr<char[]> clean;  // the stored bytes, while kept clean
    uint32_t clean_size = 0;
    uint32_t kept = 0;  // the stamp of its entry in kept_ while kept clean (0: none)
    // While it has a change of this batch held as keys and counters (0: none): 1 + its
    // entry in light_, or kStepBit | (1 + its entry in steps_).
    uint32_t light = 0;
    // What an RFM recency cut moves, as the customer's last evaluation left it
    // (NoteRecency); valid while rfm_r is not 0.
    uint32_t rfm_last = 0;   // its last activity (seconds)
    uint32_t other_due = 0;  // its next deadline that is not a recency cut (kNoDue: none)
    uint32_t churn_other = 0;  // the churn family's part of it (kNoDue: none)
    int32_t revenue = 0;     // its trailing-12-month spend and activity days (counters)
    uint16_t activities = 0;
    uint8_t rfm_r = 0, rfm_f = 0, rfm_m = 0;
  };
  static constexpr uint32_t kStepBit = 1u << 31;
  static constexpr uint32_t kNoDue = ~uint32_t{0};
  // A customer whose only deadlines that came were RFM recency cuts, and which is
  // neither held nor in flight: the cuts lower its R score and nothing else (its
  // stage, its other scores, its alerts stay), so its record is not taken at all — the
  // store's copy runs the same cuts when read. Its index entry for the RFM segment and
  // its counters by RFM move (CustomerChange::recency_only).
  struct RecencyStep {
    uint32_t slot;
    bool gone = false;  // taken over by a live one
    uint8_t r_before, r_after;
    uint8_t rfm_f, rfm_m;  // what it moves, as the step found them
    uint16_t activities;
    int32_t revenue;
    int64_t through;     // its deadlines have run through this instant
    int64_t due_before;  // its due index entry, taken
    int64_t due_after;   // and the one it has now
  };
  // A customer only its deadlines changed since the last commit, without an alert: the
  // store keeps its record as it is (CustomerChange::write_record is false) and whoever
  // reads it runs those deadlines again, so nothing of it is held in memory but what its
  // index entries and counters were and are (a few hundred bytes, not a decoded record).
  // A later change of it in the same batch (an event, a deadline) takes it as a live
  // one (StateFor), from what the store has.
  struct LightChange {
    uint32_t slot;
    bool gone = false;  // taken over by a live one
    int64_t through;    // its deadlines have run through this instant
    IndexKeys before, after;
    Contribution before_contrib, after_contrib;
  };
  // A record kept clean, in the order kept: a hit takes the record out of memory and a
  // commit keeps it again, newest last, so this order is least recently used first.
  // A hit leaves the entry behind (nothing but the slot is touched); an entry whose
  // stamp is not its slot's any more is skipped, and dropped.
  struct Kept {
    uint32_t slot;
    uint32_t stamp;
  };

  struct Delta {
    int64_t customers = 0;
    int64_t revenue = 0;
    int64_t activities = 0;
  };
  // The store's key of a counter ("stage/NEW").
  std::string CounterName(const CounterKey& k) const;

  uint32_t SlotOf(std::string_view customer_id);
  std::string_view IdOf(const Cached* c) const { return ids_.Id(c->slot); }
  // The customer's record, marked dirty: read from the store (and caught up to the
  // deadlines run so far) unless in memory. `deadlines`: for its deadlines alone.
  absl::StatusOr<Cached*> StateFor(uint32_t slot, bool deadlines = false);
  // Decodes the customer's record, not caught up, from the bytes memory keeps of it or
  // else from the store (then `*loaded` holds the bytes read). False: the store has
  // none.
  absl::StatusOr<bool> ReadStored(uint32_t slot, CustomerRecord* r,
                                  std::optional<std::string>* loaded);
  // The bytes ReadStored read the customer's record from become `c`'s (Cached::encoded).
  void TakeStoredBytes(Cached* c, const std::optional<std::string>& loaded);
  // The customer is held decoded as `fresh`.
  Cached* Hold(std::unique_ptr<Cached> fresh);
  // Runs the deadlines through `now` of a customer neither dirty nor in flight, on a
  // decoded copy of its stored record, and notes the change as a LightChange. False
  // (nothing done) when it needs StateFor's way: it has a LightChange already, its
  // record is not in the store, or nothing is due after all. One that raised an alert
  // becomes a live one.
  absl::StatusOr<bool> RunDeadlinesLight(uint32_t slot, int64_t now, int64_t offset, Effects& fx);
  // Lowers the customer's R score by the recency cuts through `now` (a RecencyStep),
  // when those are all its deadlines due through `now` and it has no change in this
  // batch yet. False (nothing done) otherwise. `at` is its due index entry, taken.
  bool RunRecencyStep(uint32_t slot, int64_t at, int64_t now);
  // Notes in the slot what a recency cut of the customer would move (or that it is not
  // known: a customer without activity, or whose deadlines wait for late history).
  void NoteRecency(uint32_t slot, const CustomerRecord& r);
  // When a recency cut next lowers an R score of `r` after the last activity at `last`
  // (kNever: none left); the same for the slot.
  int64_t RecencyCutAfter(int64_t last, uint8_t r) const;
  int64_t RecencyCutAt(const Slot& s, uint8_t r) const { return RecencyCutAfter(s.rfm_last, r); }
  // Deadlines as slots hold them (seconds in 32 bits; kNoDue: kNever).
  static int64_t Unpacked(uint32_t t) { return t == kNoDue ? kNever : t; }
  static uint32_t Packed(int64_t t) { return t == kNever ? kNoDue : static_cast<uint32_t>(t); }
  static int64_t OtherDue(const Slot& s) { return Unpacked(s.other_due); }
  // The slot's next deadline, as its record would have it (valid rfm_r).
  int64_t NextDue(const Slot& s) const { return std::min(OtherDue(s), RecencyCutAt(s, s.rfm_r)); }
  // Moves the counters a customer is in by its RFM scores (segment and grid) from R
  // score r_before to r_after.
  static void MoveRecencyCounters(const RecencyStep& st,
                                  absl::flat_hash_map<CounterKey, Delta>* deltas);
  void ChangeProfile(Cached* c);
  absl::StatusOr<const std::string*> Name(uint64_t hash);
  absl::Status EnsureLoaded();  // the aggregates and the due index
  // Evaluates the customers due through `now`; with more than max_due_ of them, only
  // those due through an earlier instant, and *all_done is false.
  absl::Status RunDue(int64_t now, int64_t offset, bool* all_done);
  void Evaluated(uint32_t slot, const CustomerRecord& r, int64_t previous_deadline);
  void Evaluated(Cached* d, int64_t previous_deadline) {
    Evaluated(d->slot, d->record, previous_deadline);
  }
  // Moves the customer's due index entry from `previous_deadline` to DueOf(record).
  void Reindex(uint32_t slot, const CustomerRecord& r, int64_t previous_deadline);
  void Reindex(Cached* d, int64_t previous_deadline) {
    Reindex(d->slot, d->record, previous_deadline);
  }
  // Evaluates one customer at each of its deadlines before `before`, in turn, each at
  // its own instant.
  void RunOwnDeadlines(CustomerRecord* r, int64_t before, int64_t offset, Effects* fx);
  // Evaluates a customer after its event at `t` in its own time (see "Time" in
  // ARCHITECTURE.md): at t, or at its own time for an event older than that which the
  // journal cannot place; holds its deadlines when the event is late history; otherwise
  // catches up with `stream_time`.
  void FoldInCustomerTime(Cached* c, int64_t t, int64_t stream_time, int64_t offset,
                          uint16_t runs, Effects* fx, int64_t previous_due);
  // The effects of a customer's evaluation, into the batch. `alerts_dirty` may be null
  // when there are no alerts.
  void Record(Cached* d, Effects& effects) {
    Record(d->slot, &d->record, &d->alerts_dirty, effects);
  }
  void Record(uint32_t slot, CustomerRecord* r, std::vector<AlertRef>* alerts_dirty,
              Effects& effects);
  // Moves the counters from what a customer contributed (before) to what it does (after).
  static void MoveCounters(const Contribution& before, const Contribution& after,
                           absl::flat_hash_map<CounterKey, Delta>* deltas);
  // The journal (journal.h): a write, the bases before an in-order entry, an entry,
  // and its end (an erasure; no window).
  bool Journaling() const { return config_->late_window_days > 0; }
  void Journal(Cached* c, JournalWrite w);
  void Snapshot(Cached* c, JournalBase* base, uint8_t kind, int64_t pos_at, int64_t pos_offset);
  void BeforeEntry(Cached* c, int64_t t, int64_t offset);
  void AppendEntry(Cached* c, int64_t fold_at, int64_t offset, bool after_deadlines,
                   std::string_view value);
  void EndJournal(Cached* c);
  // A journal entry to fold again (or the late event itself).
  struct LateStep {
    int64_t at, offset;
    bool after_deadlines;
    lifecycle::v1::Event event;
    bool late;
  };
  // What folding a customer again from a base gave.
  struct Refolded {
    CustomerRecord r;
    Effects fx;
    int became_lost_prospect = 0, recovered_lost_prospect = 0;
    std::string newer_snapshot;  // the newer base taken again (when asked for)
    int64_t newer_at = 0;
    bool duplicate = false;  // the late event was applied before
  };
  // The base's record and the entries that follow it, as stored and as being written;
  // false when they cannot be had (then the event is approximated).
  absl::StatusOr<bool> ReadJournal(Cached* c, const JournalBase& base, CustomerRecord* start,
                                   std::vector<LateStep>* steps);
  // Folds `steps` (without the late one unless `with_late`) from `start`, each at its
  // instant; takes the newer base again at `retake`'s position if given; then runs the
  // deadlines before `catch_up_before` (0: none).
  Refolded Refold(const CustomerRecord& start, const std::vector<LateStep>& steps,
                  bool with_late, const JournalBase* retake, int64_t catch_up_before,
                  int64_t offset);
  // The stage history and lost deals of a re-derivation: rewritten from the first entry
  // that differs from what the fold had said, counters moved, the rest cut.
  void ReplaceHistory(const std::string& id, const CustomerRecord& start,
                      const CustomerRecord& cur, const CustomerRecord& r, const Refolded& now,
                      const Refolded& was);
  // Re-derives the customer with the late event `e` (at `offset`, bytes `value`) in
  // its place. False when no base lies before it (then it is approximated); *duplicate
  // when the event was applied before.
  absl::StatusOr<bool> Rederive(Cached* c, const lifecycle::v1::Event& e, std::string_view value,
                                int64_t offset, int64_t stream_time, int64_t previous_due,
                                Effects* fx, bool* duplicate);
  // After a customer's event at `t`: settles late history or catches up with the stream.
  void SettleOrCatchUp(CustomerRecord* r, int64_t t, int64_t stream_time, int64_t offset,
                       Effects* fx);
  // The stream time at which the record being applied is folded (alerts further behind
  // it than the horizon are late).
  int64_t learned_at_ = 0;
  // Counts one event in `key`, and in the advisor's copy of it when there is one.
  void Count(CounterKey key, uint64_t advisor, int64_t n = 1);
  void KeepClean(uint32_t slot, std::unique_ptr<char[]> bytes, uint32_t size);
  // Puts the slot's kept record last in the keep queue (the most recently used).
  void Stamp(uint32_t slot);
  // Takes the slot's clean bytes out of memory (to decode them, or to drop them).
  std::unique_ptr<char[]> TakeClean(uint32_t slot, uint32_t* size);
  // Drops the least recently kept records until the cache is within its budget.
  void Evict();
  static size_t CleanBytes(size_t size) { return size + 16; }  // with the allocator's rounding

  const DomainConfig* config_;
  lifecycle::v1::PartitionMeta committed_;
  lifecycle::v1::PartitionMeta meta_;
  StateReader* reader_;
  size_t cache_bytes_;
  size_t max_due_ = 0;  // set_max_deadlines_per_batch
  size_t cached_bytes_ = 0;
  size_t clean_count_ = 0;
  size_t held_ = 0;  // slots with a live record
  IdTable ids_;              // every customer the projector knows, numbered
  ChunkedVector<Slot> slots_;  // by number; never shrinks (a slot's address is stable)
  std::deque<Kept> kept_;  // clean records, least recently kept first (with stale entries)
  uint32_t next_stamp_ = 1;
  std::vector<Cached*> dirty_;  // the dirty ones, in first-touch order
  std::vector<Cached*> in_flight_;  // those of the batch being written
  std::vector<LightChange> light_;  // since the last commit, in first-touch order
  std::vector<RecencyStep> steps_;  // likewise
  bool recency_steps_ = false;      // the config's recency cuts allow them (descending)
  CustomerRecord scratch_;          // RunDeadlinesLight's record (one, not one per customer)
  bool pending_fresh_ = false;  // Pending() was called after the last Apply()
  bool lost_ = false;           // MarkLost()
  // The due index: every customer of the partition with a deadline, committed and
  // dirty alike; loaded once from the committed records.
  DueIndex due_{&ids_};
  bool loaded_ = false;
  std::map<std::string, lifecycle::v1::AggregateValue> aggregates_;  // committed
  absl::flat_hash_map<CounterKey, Delta> event_counts_;  // events since the commit
  std::vector<std::pair<std::string, lifecycle::v1::AggregateValue>> pending_aggregates_;
  std::vector<AlertEntry> alerts_;
  std::vector<Appended<TransitionEntry>> transitions_;
  std::vector<Appended<LostDealEntry>> lost_deals_;
  std::vector<HistoryCut> cuts_;
  std::vector<Appended<JournalWrite>> journal_;
  std::vector<Appended<Text>> texts_;  // since the last commit
  std::vector<Text> new_names_;        // since the last commit
  absl::flat_hash_map<uint64_t, std::string> names_;  // every name seen (few)
  int64_t evaluations_ = 0;
  int64_t cache_hits_ = 0;
  int64_t cache_misses_ = 0;
};

}  // namespace lifecycle::projections
