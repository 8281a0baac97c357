#pragma once
// ViewStore: the RocksDB view store. Holds each customer's state and each
// partition's meta (last applied offset, stream time, counters). A commit writes the
// pending batches of any number of partitions in ONE WriteBatch, so views and
// offsets are always consistent with each other.
//
// Thread-safety: a ViewStore is safe for concurrent use from multiple threads
// without external synchronization (readers see only committed batches).
//
// Key layout 2 (all in the default column family; P = partition as 5 digits, S =
// sequence as 20 digits; in a customer's keys, N = a history or journal entry number
// as 4 big-endian bytes, H = a TextHash as 8, P' and S' = partition and sequence as 4
// and 8). The store owns it: other components ask the store, they do not build keys.
// Open upgrades a store of layout 1 (digits where layout 2 has bytes; journal bases
// under j/) once, and refuses one of a later layout.
//   c/<customer_id>                 -> CustomerRecord (projections/record.h codec)
//   c/<customer_id> NUL b <slot>    -> a journal base: a CustomerRecord (slot 0 or 1), next
//                                      to the record it is an earlier state of
//   c/<customer_id> NUL p           -> lifecycle.v1.Profile
//   c/<customer_id> NUL t N         -> TransitionEntry (appended, never rewritten)
//   c/<customer_id> NUL g N         -> LostDealEntry (appended)
//   c/<customer_id> NUL h P' S'     -> AlertRef (a customer's alerts, pointing into the log)
//   c/<customer_id> NUL s H         -> the words of an id its views and alerts show
//   j/<customer_id> NUL e N         -> JournalEntry (projections/journal.h: an applied event)
//   (a customer's keys are adjacent: one iterator pass reads a view's parts)
//   s/<TextHash as 16 hex digits>   -> a name of the shared dictionary (region, model, industry)
//   m/P                             -> lifecycle.v1.PartitionMeta
//   x/<dimension>/<value>/<customer>   (listing indexes: stage, grade, tier, region,
//                                      rfm_segment; held in memory, see below)
//   o/<name>                        -> integer (positions of side consumers)
//   a/P/<dimension>/<value>         -> lifecycle.v1.AggregateValue (dashboard counters)
//   l/P/S                           -> AlertEntry (the partition's alert log)
//   v/layout                        -> the key layout ("2")
//
// The due index (each customer's next deadline) is not stored: it is derived from the
// records when a partition is assigned (ReadDeadlines) and kept in memory by the
// projector. Stores written before that have d/P/T/<customer_id> keys; Open deletes them.
// Nor are the listing indexes: Open derives them from the records in one scan and each
// commit moves the entries it changed, in memory (listing_index.h); they are read as
// keys x/... like the stored ones of earlier stores, which Open deletes.
//
// Views and alerts are assembled when read (projections/view.h) from the record, the
// profile, the history and the dictionary, all read from one snapshot.

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <set>
#include <memory>
#include <mutex>
#include <shared_mutex>  // std::shared_lock
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "lifecycle/v1/view.pb.h"
#include "projections/projector.h"
#include "projections/view.h"
#include "services/store/handle_lock.h"
#include "services/store/listing_index.h"
#include "services/store/writer_first_lock.h"

namespace rocksdb {
class DB;
class MergeOperator;
class Snapshot;
class Iterator;
class Slice;
class Env;
class FlushBlockPolicyFactory;
struct Options;
}

namespace lifecycle::store {

// The merge operator of a store's profiles (their changes are merged into the stored
// profile). A program opening the store's RocksDB itself must set it: without it, the
// write-ahead log's replay stops at the first merge and what follows is not recovered.
std::shared_ptr<rocksdb::MergeOperator> ProfileMergeOperator();
// How the store cuts its tables into data blocks: between customers, so a customer's
// keys are read from one block (store.cc).
std::shared_ptr<rocksdb::FlushBlockPolicyFactory> CustomerBlockPolicy();
// What the merge makes of a profile whose stored bytes or a change of which do not
// parse: bytes that hold nothing and do not parse as a profile either.
inline constexpr std::string_view kDamagedProfile = "\xff";

struct StoreOptions {
  bool create_if_missing = true;
  bool sync_writes = false;  // fsync each commit (a process crash is safe without it)
  // Commits skip RocksDB's write-ahead log: a crash then loses the commits since the
  // last memtable flush, and the projector replays them from the stored offset (one
  // column family, so a flush never splits a commit). A failing disk shows only when a
  // flush fails.
  bool disable_wal = false;
  size_t block_cache_bytes = 128u << 20;
  size_t write_buffer_bytes = 64u << 20;  // one memtable (at most 3)
  // RocksDB options over the store's own, in RocksDB's option-string syntax
  // ("level0_file_num_compaction_trigger=4;max_bytes_for_level_base=268435456"); empty:
  // none. An option RocksDB does not know, or a value it cannot parse, fails Open.
  std::string rocksdb_overrides;
  // While the daemon catches up (a rebuild, a restart after downtime), L0 is compacted
  // into L1 when it holds this many files instead of the usual number (RocksDB's
  // level0_file_num_compaction_trigger): each L0 -> L1 compaction rewrites the part of
  // L1 the files overlap — nearly all of it, since a catch-up updates customers all
  // over the key space — so fewer, larger ones write much less. Back to the usual
  // number once caught up, so L0 shrinks again for reads. 0: no switch.
  int catchup_l0_compaction_trigger = 8;
  // The ZSTD level of the last level (most of the store) while catching up; once caught
  // up it is the store's own (6, or what rocksdb_overrides set). A catch-up's
  // compactions run beside the fold on a core it needs: level 1, as in the levels above,
  // compresses several times faster than 6 (a 1,000,000-customer rebuild spent 7% less
  // CPU than with level 3, docs/benchmarks.md); the compaction after a catch-up, and
  // the store from then on, get the smaller size. 0: no switch.
  int catchup_zstd_level = 1;
  // While catching up, no compression in any level (kNone), instead of the store's own
  // (LZ4 in L1, ZSTD below): a catch-up rewrites the lower levels several times, and
  // the compaction after it writes the whole store in its own compression again, so the
  // settled store is the same size. In a 1,000,000-customer rebuild kNone spent 3-9%
  // less CPU than kLz4 in each of five alternating pairs, and the store took up to 1.5
  // times the disk until that compaction (docs/benchmarks.md). kLz4: LZ4 in every level
  // but L0 (the last level too; 7% faster than the store's own compression).
  // catchup_zstd_level matters only with kStoreOwn.
  enum class CatchUpCompression : uint8_t { kLz4, kNone, kStoreOwn };
  CatchUpCompression catchup_compression = CatchUpCompression::kNone;
  // Compactions run at the lowest CPU priority (nice 19; flushes keep theirs): on two
  // cores a catch-up's compactions took turns with the fold's thread, which is what
  // bounds a rebuild; at the lowest priority they take the time the fold leaves (a
  // 1,000,000-customer rebuild 3-4% faster, docs/benchmarks.md). It lowers the
  // process's default RocksDB environment, every store opened in it: once lowered it
  // stays so for the process (false opens without lowering it).
  bool low_priority_compactions = true;
  // The data blocks' size while catching up, and no ZSTD dictionary then. The store's
  // own blocks are 4 KiB with a 64 KiB dictionary of sampled blocks in the last level: a
  // customer's read decompresses a quarter of the bytes of a 16 KiB block (the largest
  // part of a GetCustomer call) and the dictionary wins back what smaller blocks lose
  // (docs/benchmarks.md). A catch-up's compactions keep the 16 KiB blocks they were
  // tuned with (4 KiB measured no faster with nothing compressed); the compaction after
  // a catch-up writes the store in its own. 0: no switch.
  size_t catchup_block_bytes = 16u << 10;
  // When a catch-up has written at least this many bytes, the whole store is compacted
  // once it ends, in the background (RocksDB's CompactRange, not exclusive: commits and
  // the usual compactions go on). A catch-up overwrites most records and drops journal
  // entries all over the key space, and leveled compaction reclaims the old versions in
  // the lower levels only as later writes reach them: one pass writes the store as it
  // is, in one level (docs/benchmarks.md). A new catch-up stops a running one; 0: never.
  uint64_t compact_after_catchup_bytes = 256u << 20;
  // When a catch-up has written at least this many bytes and no listing has been read
  // during it, commits stop moving the listing indexes' entries (listing_index.h); the
  // indexes are built again from the records, in the background, when the catch-up
  // ends (commits landing meanwhile are moved into the new ones), or at once by the
  // first listing read before that (it waits, seconds at 1,000,000 customers; the rest
  // of that catch-up keeps them). A rebuild moved each customer's entries about 16
  // times, a sixth of the daemon's CPU (docs/benchmarks.md). 0: always kept.
  uint64_t defer_listing_after_bytes = 256u << 20;
  // Told when the listing indexes were built again after a catch-up (for the log;
  // called on the building thread, which must not be asked to stop from it: no
  // Close, Reopen or SetCatchingUp).
  struct ListingBuild {
    size_t customers = 0;        // listed in the new indexes
    uint64_t deferred_commits = 0;  // commits that did not move entries
    size_t replayed = 0;         // customers moved after the build, by commits meanwhile
    double seconds = 0;
    absl::Status status;  // CANCELLED when a reopen or Close stopped it
  };
  std::function<void(const ListingBuild&)> on_listing_build;
  // Tests: called on the building thread once it has taken the state it builds from,
  // before it reads (commits then land while it builds).
  std::function<void()> listing_build_hook;
  // Customers a ranking (Rank) looks at per hold of the listing indexes' lock.
  size_t rank_slice = 16384;
  // Tests: called by Rank between two of its slices, the lock let go.
  std::function<void()> between_rank_slices;
  // Told when such a compaction starts (`done` false) and when it ends (for the log;
  // called on the compacting thread).
  struct FullCompaction {
    bool done = false;
    uint64_t catchup_bytes = 0;     // what the catch-up wrote
    uint64_t sst_bytes_before = 0;  // the store's tables when it started
    uint64_t sst_bytes_after = 0;   // ... and when it ended
    double seconds = 0;
    absl::Status status;  // CANCELLED when a catch-up, a reopen or Close stopped it
  };
  std::function<void(const FullCompaction&)> on_full_compaction;
  // Told, during Open, of the one-time upgrade of a store written by an earlier build to
  // this key layout (what it does and its progress), for the log.
  std::function<void(const std::string&)> on_upgrade;
  rocksdb::Env* env = nullptr;  // for fault-injection tests; null: the default
  // The rules views are assembled with (thresholds in reasons, the config version);
  // null: the built-in defaults. Must outlive the store.
  const projections::DomainConfig* config = nullptr;
};

// A customer's committed view together with its partition's meta, read from one
// consistent snapshot.
struct CustomerRead {
  lifecycle::v1::CustomerView view;
  lifecycle::v1::PartitionMeta meta;
  // P(alive) over the trailing 24 months up to the view's evaluation time (seconds,
  // P(alive)); filled only when asked for (GetHistory).
  std::vector<std::pair<int64_t, double>> p_alive_series;
  // With the series: the activity days the record holds (the first and the trailing
  // 24 months', ascending epoch days).
  std::vector<int32_t> activity_days;
};

// RocksDB's figures an operator watches (see lifecycled's /metrics).
struct StoreStats {
  uint64_t live_data_bytes = 0;
  uint64_t sst_bytes = 0;
  uint64_t pending_compaction_bytes = 0;
  uint64_t stalls_stop = 0;       // writes stopped since open
  uint64_t stalls_slowdown = 0;   // writes slowed down since open
  bool write_stopped = false;
  uint64_t l0_files = 0;
  int levels_with_files = 0;  // L0 counted like any other level
  // The whole-store compactions after a catch-up (compact_after_catchup_bytes): one
  // running, and those that ended since open (a stopped one included).
  bool compacting = false;
  uint64_t full_compactions = 0;
};

class ViewStore {
 public:
  // Partitions' deadlines_through (lifecycle.v1.PartitionMeta), which stored records
  // are caught up to when read (projections::CatchUpStored); those of the commits that
  // have landed are shared with the store's compaction filter.
  using Through = absl::flat_hash_map<int32_t, int64_t>;
  struct CommittedThrough {
    std::mutex mu;
    Through by_partition;
  };
  static absl::StatusOr<std::unique_ptr<ViewStore>> Open(const std::string& path,
                                                         const StoreOptions& options = {});
  ~ViewStore();
  ViewStore(const ViewStore&) = delete;
  ViewStore& operator=(const ViewStore&) = delete;

  // Closes the database (flushing what the WAL does not cover, with --no-wal); later
  // calls fail with FAILED_PRECONDITION. Waits for reads and writes in flight.
  absl::Status Close();

  // Writes the batches atomically. On error nothing was written; after a failed
  // write the next Commit first closes and reopens the database.
  absl::Status Commit(const std::vector<projections::PendingBatch>& batches);
  // Says whether the writer is catching up (see StoreOptions::catchup_l0_compaction_trigger
  // and compact_after_catchup_bytes).
  absl::Status SetCatchingUp(bool catching_up);

  // The stored meta of `partition`; a partition never committed gets offset -1.
  absl::StatusOr<lifecycle::v1::PartitionMeta> ReadMeta(int32_t partition);
  // Every partition that has committed at least once, by partition number.
  absl::StatusOr<std::vector<lifecycle::v1::PartitionMeta>> ListMeta();

  // A customer's view, assembled from its record, profile and history. With
  // `stream_times` (partition -> its stream time, seconds), P(alive) is as of its
  // partition's stream time rather than the customer's last evaluation.
  absl::StatusOr<std::optional<lifecycle::v1::CustomerView>> ReadCustomer(
      std::string_view customer_id, const std::map<int32_t, int64_t>* stream_times = nullptr);
  // Also P(alive) as of the partition's stream time. With `into` (an empty view, which
  // may be on an arena: GetCustomer's answer is), the view is built there, not in the
  // result's `view`.
  absl::StatusOr<std::optional<CustomerRead>> ReadCustomerWithMeta(
      std::string_view customer_id, bool with_p_alive_series = false,
      lifecycle::v1::CustomerView* into = nullptr);
  // The stored parts, for the projector. The record as stored: as its last event left
  // it (the projector catches it up: projections::CatchUpStored).
  absl::StatusOr<std::optional<projections::CustomerRecord>> ReadRecord(
      std::string_view customer_id);
  // Its bytes (projections::EncodeRecord's), undecoded.
  absl::StatusOr<std::optional<std::string>> ReadRecordBytes(std::string_view customer_id);
  absl::StatusOr<std::optional<lifecycle::v1::Profile>> ReadProfile(std::string_view customer_id);
  // A customer's journal: the snapshot in `slot` (-1: none) and the entries from `first`.
  absl::StatusOr<projections::StateReader::Journal> ReadJournal(std::string_view customer_id,
                                                                int slot, uint32_t first);
  // The alerts a customer has had, as its history keeps them.
  absl::StatusOr<std::vector<projections::AlertRef>> ReadAlertRefs(std::string_view customer_id);
  absl::StatusOr<std::optional<std::string>> ReadText(uint64_t hash);

  // Number of customer keys (an estimate from RocksDB's properties).
  uint64_t EstimateCustomers();
  absl::StatusOr<StoreStats> Stats();

  // (deadline, customer) of every stored customer of `partitions` that has a deadline,
  // by partition: one scan of the records for all of them.
  using Deadlines = std::vector<std::pair<int64_t, std::string>>;
  absl::StatusOr<std::map<int32_t, Deadlines>> ReadDeadlines(const std::vector<int32_t>& partitions);
  // One partition's counters, or (partition < 0) all partitions' summed. With a
  // `scope`: "" leaves out the advisors' counters ("@<advisor>/…"), "@<advisor>/" reads
  // only that advisor's.
  absl::StatusOr<std::map<std::string, lifecycle::v1::AggregateValue>> ReadAggregates(
      int32_t partition, std::optional<std::string> scope = std::nullopt);
  // One advisor's counters, all partitions summed, keyed as "@<advisor>/<dimension>/<value>":
  // the event counters (alerts, stage transitions, lost deals, lost prospects) kept per
  // advisor, and the customer counters summed here from the records of the advisor's
  // customers (the advisor listing index), with the same arithmetic as the projector's.
  // Costs a record read per customer of the advisor.
  // With `partitions`: only those partitions' counters and customers (`partition_of`
  // gives a customer's partition).
  absl::StatusOr<std::map<std::string, lifecycle::v1::AggregateValue>> ReadAdvisorAggregates(
      const std::string& advisor, const std::set<int32_t>* partitions = nullptr,
      const std::function<int32_t(std::string_view)>& partition_of = nullptr);
  // The counters of `partitions` summed (ReadAggregates of each).
  absl::StatusOr<std::map<std::string, lifecycle::v1::AggregateValue>> ReadAggregatesOf(
      const std::set<int32_t>& partitions, std::optional<std::string> scope = std::nullopt);
  // Alerts of `partition` with sequence >= from_seq, at most `limit`.
  absl::StatusOr<std::vector<lifecycle::v1::Alert>> ReadAlerts(int32_t partition, int64_t from_seq,
                                                               size_t limit);
  // A customer's alerts in the order they were raised (by sequence).
  absl::StatusOr<std::vector<lifecycle::v1::Alert>> ReadCustomerAlerts(
      const std::string& customer_id);
  // Customer ids in the listing index `dimension`/`value` (e.g. "stage", "LOYAL").
  absl::StatusOr<std::vector<std::string>> ReadIndex(const std::string& dimension,
                                                     const std::string& value, size_t limit);
  // Keys with `prefix`, in order, after `start_after` (if not empty) and before
  // `end_before` (if not empty), at most `limit`.
  absl::StatusOr<std::vector<std::string>> ScanKeys(const std::string& prefix,
                                                    const std::string& start_after,
                                                    const std::string& end_before, size_t limit);
  // Named positions of side consumers of the store (e.g. the alert publisher):
  // o/<name> -> integer. A position never written reads as 0.
  absl::StatusOr<int64_t> ReadPosition(const std::string& name);
  absl::Status WritePositions(const std::map<std::string, int64_t>& positions);
  // Calls `fn` with every stored customer's view, in customer id order (a full scan:
  // for tests, dumps and rebuild checks).
  absl::Status ForEachCustomer(const std::function<void(const lifecycle::v1::CustomerView&)>& fn);

  // Calls `fn` with every key and value of the store (a full scan: for dumps and
  // size reports).
  absl::Status ForEachKey(const std::function<void(std::string_view, std::string_view)>& fn);

  // Which keys list the customers that pass a listing's filters: the first filter
  // that has an index (stage, grade, tier, region, RFM segment), or every
  // customer. Keys from ScanKeys(prefix, …, end_before, …); the customer id of a key
  // is CustomerOf(key).
  struct Listing {
    std::string prefix;
    std::string end_before;  // empty: to the end of the prefix
    size_t id_offset = 0;    // where the customer id starts after the prefix
    std::string CustomerOf(const std::string& key) const {
      return key.substr(std::min(key.size(), prefix.size() + id_offset));
    }
  };
  static Listing ListingFor(lifecycle::v1::Stage stage, lifecycle::v1::ValueGrade grade,
                            lifecycle::v1::Tier tier, const std::string& region,
                            const std::string& rfm_segment, const std::string& advisor = "");
  // Customers ranked by churn risk or expected 12-month value as of their partitions'
  // stream times, computed when asked (ListingIndex::Ranking), a slice of customers at a
  // time: commits landing meanwhile may move customers not yet looked at.
  absl::StatusOr<std::vector<ListingIndex::Ranked>> Rank(const ListingIndex::RankQuery& query);

 private:
  ViewStore(std::unique_ptr<rocksdb::DB> db, StoreOptions options,
            std::unique_ptr<rocksdb::Options> open_options, std::string path);
  absl::Status Reopen();
  // Sets RocksDB's L0 compaction trigger, block size and last level's ZSTD level and
  // dictionary for catching_up_ (trigger_mu_ held).
  absl::Status ApplyCatchUpOptions();
  // The whole-store compaction after a catch-up: started on compactor_, stopped (and
  // waited for) by the next catch-up, a reopen and Close (trigger_mu_ held by both).
  void StartFullCompaction();
  void StopFullCompaction();
  // Calls `fn` with every stored customer's id and record, in id order, as of `snap`
  // (null: now; the caller holds mu_).
  absl::Status ScanRecords(
      const std::function<absl::Status(std::string_view, const projections::CustomerRecord&)>& fn,
      const rocksdb::Snapshot* snap = nullptr);
  // Builds the listing indexes from the stored records (at open).
  absl::Status BuildIndex();
  // New listing indexes from the records of `snap` (null: the current state); stops
  // early (CANCELLED) when `stop` is set. The caller holds mu_.
  absl::StatusOr<std::unique_ptr<ListingIndex>> BuildListing(const rocksdb::Snapshot* snap,
                                                             const std::atomic<bool>* stop);
  // After a commit's write landed: moves its customers' listing entries, or defers them
  // (StoreOptions::defer_listing_after_bytes), or keeps them for a build under way.
  struct Listed;
  static std::vector<Listed> ListedOf(const std::vector<projections::PendingBatch>& batches);
  void ListingAfterCommit(const std::vector<projections::PendingBatch>& batches);
  // Reads `f(index)` from current listing indexes, building them first when a catch-up
  // deferred them (or waiting for the build under way).
  template <typename F>
  auto WithListing(F&& f) -> absl::StatusOr<decltype(f(std::declval<const ListingIndex&>()))>;
  absl::Status MakeListingCurrent();
  // index_ = index, under index_mu_ held exclusively.
  void ReplaceIndex(std::unique_ptr<ListingIndex> index);
  // The build after a catch-up that deferred the indexes: started by SetCatchingUp,
  // stopped (and waited for) by a reopen and Close (trigger_mu_ held by all).
  void StartListingBuild();
  void StopListingBuild();
  void BuildListingInBackground();
  class Snapshot;
  struct Metas;
  // The view of `customer_id` through `it` (seeking its record), built into `out` (empty);
  // false when the store does not know the customer. `record`, when given, gets the
  // decoded record the view was built from; `meta`, its partition's meta in the same
  // state (from `metas` when NewCustomerIterator gave them for `it`, else through `it`:
  // MetaOf).
  absl::StatusOr<bool> ViewAt(rocksdb::Iterator* it, std::string_view customer_id,
                              lifecycle::v1::CustomerView* out,
                              projections::CustomerRecord* record = nullptr,
                              lifecycle::v1::PartitionMeta* meta = nullptr,
                              const Metas* metas = nullptr);
  // A partition's deadlines_through (lifecycle.v1.PartitionMeta), which a stored
  // record is caught up to (projections::CatchUpStored).
  using ThroughOf = std::function<absl::StatusOr<int64_t>(int32_t partition)>;
  // Every partition's meta / one partition's meta (EmptyMeta without one) / every
  // partition's deadlines_through, through `it` (moving it).
  static absl::StatusOr<std::vector<lifecycle::v1::PartitionMeta>> MetasAt(rocksdb::Iterator* it);
  static absl::StatusOr<lifecycle::v1::PartitionMeta> MetaAt(rocksdb::Iterator* it,
                                                             int32_t partition);
  static absl::StatusOr<Through> ThroughAt(rocksdb::Iterator* it);
  // The partitions' deadlines_through as of the last commit that landed, shared with
  // the compaction filter that catches records up in the whole-store compaction.
  std::shared_ptr<CommittedThrough> committed_through_;
  // The partitions' metas as the commits that landed left them, so that a customer's
  // read need not seek its partition's meta. Copied on write: a read keeps the ones of
  // the state its iterator reads, taken while no commit ran (commits_started_ and
  // commits_done_ equal before and after the iterator was made, and `commits` theirs).
  struct Metas {
    uint64_t commits = 0;  // commits_done_ they are of
    absl::flat_hash_map<int32_t, lifecycle::v1::PartitionMeta> by_partition;
  };
  std::mutex metas_mu_;
  std::mutex write_mu_;  // a commit's write and its metas' update (taken before metas_mu_)
  std::shared_ptr<const Metas> metas_;  // null after a failed write, until a reopen reads them
  std::atomic<uint64_t> commits_started_{0};
  std::atomic<uint64_t> commits_done_{0};
  // The metas a read uses: the reading thread's own copy of the pointer while no commit
  // has landed since it took it (so reads between commits take no lock), else metas_
  // under metas_mu_ (a copy the thread keeps for its next reads). This holds while
  // metas_ is only ever replaced by a commit (which moves commits_done_ on) or set
  // where it was null (LoadMetas at open and after a failed write): a copy of a given
  // count is then the only metas of that count.
  std::shared_ptr<const Metas> MetasOf(uint64_t done);
  static inline std::atomic<uint64_t> instances_{0};
  const uint64_t instance_ = ++instances_;  // tells this store's copies from another's
  // Reads every partition's meta into metas_ (mu_ held; no commit running).
  absl::Status LoadMetas();
  // One customer's read: its iterator and, when they are of the state it reads, the
  // metas. With them the iterator ends at the customer's last key (iterate_upper_bound:
  // no block past it is read); without, it reads the partition's meta too.
  struct CustomerIter {
    std::string bound;
    std::unique_ptr<rocksdb::Slice> bound_slice;
    std::shared_ptr<const Metas> metas;
    std::unique_ptr<rocksdb::Iterator> it;  // (last: it goes before the bound it reads)
  };
  void NewCustomerIterator(std::string_view customer_id, CustomerIter* out);  // (mu_ held)
  // `partition`'s meta in the state `it` reads: from `metas` when given, else through
  // `it` (moving it).
  static absl::StatusOr<lifecycle::v1::PartitionMeta> MetaOf(rocksdb::Iterator* it,
                                                             int32_t partition,
                                                             const Metas* metas);
  // The view of the customer whose record `it` is on, from the keys that follow it,
  // its record caught up to `through` of its partition (asked once the keys are read),
  // built into `out` (empty); leaves `it` past them unless `through` moves it.
  absl::Status AssembleView(rocksdb::Iterator* it, std::string_view customer_id,
                            const ThroughOf& through, lifecycle::v1::CustomerView* out,
                            projections::CustomerRecord* record = nullptr);
  // Fills `texts` with the dictionary's words for `hashes` (those not there yet).
  absl::Status LookupTexts(const Snapshot& snap, const std::vector<uint64_t>& hashes,
                           projections::Texts* texts);
  // An alert from the log: its key (l/P/S) and stored bytes.
  absl::StatusOr<lifecycle::v1::Alert> AlertAt(const Snapshot& snap, std::string_view key,
                                               std::string_view bytes);

  // Readers and writers share the handle (no lock word in common: handle_lock.h);
  // Reopen() and Close() take it exclusively.
  mutable HandleLock mu_;
  std::unique_ptr<rocksdb::DB> db_;  // null while a reopen has failed, and after Close
  std::atomic<bool> closed_{false};
  StoreOptions options_;
  int l0_compaction_trigger_ = 0;  // the usual one (after the overrides)
  int zstd_level_ = 0;             // the last level's usual one (after the overrides)
  // The usual compression per level and in the last level, as option strings.
  std::string compression_per_level_, bottommost_compression_;
  size_t block_bytes_ = 0;         // the usual block size (after the overrides)
  uint32_t dict_bytes_ = 0;        // the last level's usual dictionary size (likewise)
  // Whether the catch-up trigger is on; SetCatchingUp and a reopen apply it under
  // trigger_mu_ (taken before mu_).
  std::mutex trigger_mu_;
  bool catching_up_ = false;
  // Bytes committed while catching up (counted while counting_), and those of a catch-up
  // whose compaction was stopped before it ended (owed to the next one).
  std::atomic<bool> counting_{false};
  std::atomic<uint64_t> catchup_written_{0};
  std::atomic<uint64_t> owed_{0};
  std::thread compactor_;
  std::atomic<bool> stop_compaction_{false};
  std::atomic<bool> compacting_{false};
  std::atomic<uint64_t> full_compactions_{0};
  std::unique_ptr<rocksdb::Options> open_options_;
  std::string path_;
  std::atomic<bool> needs_reopen_{false};
  const projections::DomainConfig* config_;
  // The listing indexes, as of the last commit that landed, unless deferred.
  mutable WriterFirstLock index_mu_;
  std::unique_ptr<ListingIndex> index_ = std::make_unique<ListingIndex>();
  // Counts the times index_ was replaced (a ranking in slices starts again then).
  uint64_t index_generation_ = 0;
  // kMaintained: index_ is current. kDeferred: commits do not move entries (index_ is
  // empty). kBuilding: new indexes are being built; commits keep what they move in
  // listing_backlog_. Under index_mu_; listing_moves_ mirrors "not kDeferred" for the
  // commits' first look, and listing_read_ says a listing was read in this catch-up.
  enum class ListingState : uint8_t { kMaintained, kDeferred, kBuilding };
  ListingState listing_ = ListingState::kMaintained;
  bool listing_defer_ok_ = false;  // catching up: may defer (under index_mu_)
  uint64_t listing_deferred_commits_ = 0;
  std::atomic<bool> listing_moves_{true};
  std::atomic<bool> listing_read_{false};
  struct Relisted;
  std::vector<Relisted> listing_backlog_;
  std::condition_variable_any listing_cv_;  // listing_ left kBuilding
  std::thread listing_builder_;
  bool listing_build_pending_ = false;  // started, not yet under way (under index_mu_)
  std::atomic<bool> stop_listing_build_{false};
  // Dictionary texts never change once written: recently read ones are kept.
  std::mutex texts_mu_;
  projections::Texts text_cache_;
};

// Reads customer records, names and history for a PartitionProjector from a ViewStore.
class StoreStateReader : public projections::StateReader {
 public:
  explicit StoreStateReader(ViewStore* store) : store_(store) {}
  absl::StatusOr<std::optional<std::string>> LoadRecord(std::string_view customer_id) override {
    return store_->ReadRecordBytes(customer_id);
  }
  absl::StatusOr<std::optional<std::string>> LoadText(uint64_t hash) override {
    return store_->ReadText(hash);
  }
  absl::StatusOr<Journal> LoadJournal(std::string_view customer_id, int slot,
                                      uint32_t first) override {
    return store_->ReadJournal(customer_id, slot, first);
  }
  absl::StatusOr<std::vector<projections::AlertRef>> LoadAlertRefs(
      std::string_view customer_id) override {
    return store_->ReadAlertRefs(customer_id);
  }
  // Reads the deadlines of `partitions` in one scan, for the LoadDeadlines calls of
  // their projectors (replacing what an earlier call read and was not asked for).
  absl::Status PrimeDeadlines(const std::vector<int32_t>& partitions) {
    auto read = store_->ReadDeadlines(partitions);
    if (!read.ok()) return read.status();
    std::lock_guard<std::mutex> lock(mu_);
    primed_ = std::move(*read);
    return absl::OkStatus();
  }
  absl::Status LoadDeadlines(int32_t partition,
                             std::vector<std::pair<int64_t, std::string>>* out) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (auto it = primed_.find(partition); it != primed_.end()) {
        *out = std::move(it->second);
        primed_.erase(it);
        return absl::OkStatus();
      }
    }
    auto read = store_->ReadDeadlines({partition});
    if (!read.ok()) return read.status();
    *out = std::move((*read)[partition]);
    return absl::OkStatus();
  }
  absl::StatusOr<std::map<std::string, lifecycle::v1::AggregateValue>> LoadAggregates(
      int32_t partition) override {
    return store_->ReadAggregates(partition);
  }

 private:
  ViewStore* store_;
  std::mutex mu_;
  std::map<int32_t, ViewStore::Deadlines> primed_;
};

std::string CustomerKey(std::string_view customer_id);
std::string MetaKey(int32_t partition);

// The short name of an index value, as used in keys and summaries ("LOYAL", "A");
// `region` and `advisor` are the words of keys.region and keys.advisor.
std::string IndexValue(const std::string& dimension, const projections::IndexKeys& keys,
                       const std::string& region = "", const std::string& advisor = "");

}  // namespace lifecycle::store
