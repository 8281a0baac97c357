#include "services/store/store.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <limits>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "projections/fold.h"
#include "projections/names.h"
#include "projections/rules/families.h"
#include "rocksdb/convenience.h"
#include "rocksdb/compaction_filter.h"
#include "rocksdb/db.h"
#include "rocksdb/options.h"
#include "rocksdb/table.h"
#include "rocksdb/cache.h"
#include "rocksdb/filter_policy.h"
#include "rocksdb/flush_block_policy.h"
#include "rocksdb/merge_operator.h"
#include "rocksdb/slice_transform.h"
#include "rocksdb/write_batch.h"

namespace lifecycle::store {
namespace {

using lifecycle::v1::PartitionMeta;
using projections::CustomerRecord;

constexpr absl::string_view kCustomerPrefix = "c/";
constexpr absl::string_view kJournalPrefix = "j/";
constexpr absl::string_view kMetaPrefix = "m/";
constexpr int64_t kNever = projections::kNever;

std::string Num(int64_t v, int width) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%0*lld", width, static_cast<long long>(v));
  return buf;
}
std::string P(int32_t partition) { return Num(partition, 5); }
// The due index's keys of earlier stores (d/P/T/<customer_id>): deleted at open, the
// range [d/, d0) ('0' follows '/').
constexpr absl::string_view kOldDuePrefix = "d/";
constexpr absl::string_view kOldDueEnd = "d0";
// Likewise the listing indexes' keys, [x/, x0).
constexpr absl::string_view kOldIndexPrefix = "x/";
constexpr absl::string_view kOldIndexEnd = "x0";
// Bytes [at, at + 8) of `key` as a big-endian number, zeros past its end: two keys whose
// heads differ order as their heads do.
uint64_t KeyHead(std::string_view key, size_t at) {
  uint64_t v = 0;
  for (size_t i = at; i < at + 8; ++i) {
    v = (v << 8) | (i < key.size() ? static_cast<uint8_t>(key[i]) : 0);
  }
  return v;
}
// A WriteBatch's fixed header: its sequence number and count.
constexpr size_t kWriteBatchHeader = 12;
std::string AggPrefix(int32_t partition) { return absl::StrCat("a/", P(partition), "/"); }
std::string AlertKey(int32_t partition, int64_t seq) {
  return absl::StrCat("l/", P(partition), "/", Num(seq, 20));
}
// A customer's other keys follow its record: c/<id> NUL <family> ..., so one
// iterator pass reads the record's profile and history (ids hold no control bytes).
std::string CustomerPrefix(std::string_view id) {
  std::string k = CustomerKey(id);
  k.push_back('\0');
  return k;
}
std::string CustomerSubKey(char family, std::string_view id) {
  std::string k = CustomerPrefix(id);
  k.push_back(family);
  return k;
}
std::string HistoryPrefix(char family, std::string_view id) { return CustomerSubKey(family, id); }
// The numbers in a customer's keys are big-endian bytes (they sort as the numbers do):
// layout 2 of the store; layout 1 wrote them as decimal or hex digits.
void PutBigEndian(uint64_t v, int width, std::string* out) {
  for (int i = width - 1; i >= 0; --i) out->push_back(static_cast<char>(v >> (8 * i)));
}
uint64_t BigEndian(std::string_view bytes) {
  uint64_t v = 0;
  for (char c : bytes) v = (v << 8) | static_cast<uint8_t>(c);
  return v;
}
constexpr size_t kSeqBytes = 4;   // N: a customer's history or journal entry number
constexpr size_t kHashBytes = 8;  // H: a TextHash
constexpr size_t kPartitionBytes = 4, kAlertSeqBytes = 8;  // P/S of an alert reference
std::string HistoryKey(char family, std::string_view id, uint32_t seq) {
  std::string k = HistoryPrefix(family, id);
  PutBigEndian(seq, kSeqBytes, &k);
  return k;
}
// A customer's journal (projections/journal.h), apart from the keys a view reads:
// j/<id> NUL e N (an entry).
std::string JournalPrefix(std::string_view id) {
  std::string k(kJournalPrefix);
  k.append(id);
  k.push_back('\0');
  return k;
}
std::string JournalEntryKey(std::string_view id, uint32_t n) {
  std::string k = JournalPrefix(id);
  k.push_back('e');
  PutBigEndian(n, kSeqBytes, &k);
  return k;
}
// A journal base sits right after the customer's record (c/<id> NUL b <slot>): a base
// is an earlier state of the record, and compressed in one block with it, it costs a
// third less. Stores of layout 1 kept bases as j/<id> NUL b <slot>.
std::string JournalSnapshotKey(std::string_view id, uint32_t slot) {
  return absl::StrCat(CustomerSubKey('b', id), slot);
}
std::string TextKey(uint64_t hash) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "s/%016llx", static_cast<unsigned long long>(hash));
  return buf;
}
// The words of an id a customer's view or alerts show: c/<id> NUL s H.
std::string CustomerTextKey(std::string_view id, uint64_t hash) {
  std::string k = CustomerSubKey('s', id);
  PutBigEndian(hash, kHashBytes, &k);
  return k;
}
std::string CustomerAlertKey(std::string_view id, int32_t partition, int64_t seq) {
  std::string k = HistoryPrefix('h', id);
  PutBigEndian(static_cast<uint32_t>(partition), kPartitionBytes, &k);
  PutBigEndian(static_cast<uint64_t>(seq), kAlertSeqBytes, &k);
  return k;
}
// The store's key layout (v/layout): 2 since the numbers in customers' keys are bytes
// and journal bases sit next to the records; 3 since profiles are written as merged
// changes (ProfileMerge), which a build before it cannot read. A store without it that
// holds customers is of layout 1, and one of layout 2 holds whole profiles, which
// layout 3 reads as they are: Open upgrades both.
constexpr std::string_view kLayoutKey = "v/layout";
constexpr std::string_view kLayout = "3";
constexpr std::string_view kLayoutWholeProfiles = "2";
const projections::DomainConfig& DefaultConfig() {
  static const projections::DomainConfig config;
  return config;
}

// Iterators that read in key order across customers ask for total order; the prefix
// filters (CustomerFilterPrefix) serve point reads and one customer's reads
// (CustomerIterOptions).
rocksdb::ReadOptions IterOptions() {
  rocksdb::ReadOptions ro;
  ro.total_order_seek = true;
  return ro;
}

// A read of one customer's keys (and its partition's meta, which is not in the filters'
// domain: a seek to it is not filtered): the iterator seeks with the customer's prefix,
// so the memtables' and the files' filters skip those without the customer — most of
// them, in a store still taking commits.
rocksdb::ReadOptions CustomerIterOptions() {
  rocksdb::ReadOptions ro;
  ro.prefix_same_as_start = true;
  return ro;
}

// The Bloom filters hold one entry per customer, not per key: the part of a customer's
// key up to its NUL (c/<id>), so a point read of any of its keys (record, profile, a
// journal base) skips files without the customer. Other keys are not in the filters
// (their point reads are few and mostly hit). Named once: a store's files record it.
class CustomerFilterPrefix : public rocksdb::SliceTransform {
 public:
  const char* Name() const override { return "lifecycle.CustomerFilterPrefix.1"; }
  rocksdb::Slice Transform(const rocksdb::Slice& key) const override {
    const void* nul = std::memchr(key.data(), '\0', key.size());
    return nul == nullptr ? key
                          : rocksdb::Slice(key.data(), static_cast<const char*>(nul) - key.data());
  }
  bool InDomain(const rocksdb::Slice& key) const override {
    return key.starts_with(rocksdb::Slice(kCustomerPrefix.data(), kCustomerPrefix.size()));
  }
};

// Data blocks end between customers: a customer's keys (c/<id>, c/<id> NUL ...; its
// journal, j/<id> NUL ...) go into one block unless they alone outgrow four blocks. A
// read of a customer (GetCustomer) then decompresses one block, not the next one as
// well when its keys cross a block's end; and the index entry of a block that ends
// with a customer sorts at or past the bound of that customer's reads, so they do not
// open the next block to find that the customer has ended. Other keys are cut by size
// alone. The sizes are estimated from the entries handed in (internal keys, values).
class CustomerBlocks : public rocksdb::FlushBlockPolicyFactory {
 public:
  const char* Name() const override { return "lifecycle.CustomerBlocks"; }
  rocksdb::FlushBlockPolicy* NewFlushBlockPolicy(const rocksdb::BlockBasedTableOptions& t,
                                                 const rocksdb::BlockBuilder&) const override {
    return new Policy(t.block_size);
  }

 private:
  class Policy : public rocksdb::FlushBlockPolicy {
   public:
    explicit Policy(uint64_t block_size) : block_size_(block_size) {}
    bool Update(const rocksdb::Slice& key, const rocksdb::Slice& value) override {
      // (an internal key: the user's key, then 8 bytes of sequence number and type)
      const std::string_view user(key.data(), key.size() >= 8 ? key.size() - 8 : key.size());
      std::string_view group;
      if (user.starts_with(std::string_view(kCustomerPrefix.data(), kCustomerPrefix.size())) ||
          user.starts_with(std::string_view(kJournalPrefix.data(), kJournalPrefix.size()))) {
        group = user.substr(0, std::min(user.find('\0'), user.size()));
      }
      const uint64_t entry = key.size() + value.size() + 8;  // with lengths and restarts
      const bool same = !group.empty() && group == group_;
      const bool flush =
          size_ > 0 && size_ + entry > (same ? 4 * block_size_ : block_size_);
      size_ = (flush ? 0 : size_) + entry;
      if (!same) group_.assign(group);
      return flush;
    }

   private:
    const uint64_t block_size_;
    uint64_t size_ = 0;   // of the block being built
    std::string group_;   // the customer whose keys the block ends with ("" if none)
  };
};

// Brings the records a manual compaction — the whole-store compaction after a catch-up
// — rewrites up to their partition's deadlines_through (projections::CatchUpStored), so
// the reads of a settled store have few deadlines to run again. Other compactions
// leave values as they are (decoding every record there would cost the catch-up).
// The partitions' deadlines_through are those of the commits that have landed: a
// record caught up to them reads the same as before.
class CatchUpFilter : public rocksdb::CompactionFilter {
 public:
  CatchUpFilter(const projections::DomainConfig* config, ViewStore::Through through)
      : config_(config), through_(std::move(through)) {}
  const char* Name() const override { return "lifecycle.CatchUpFilter"; }
  bool Filter(int /*level*/, const rocksdb::Slice& key, const rocksdb::Slice& value,
              std::string* new_value, bool* value_changed) const override {
    const rocksdb::Slice prefix(kCustomerPrefix.data(), kCustomerPrefix.size());
    if (!key.starts_with(prefix) || std::memchr(key.data(), '\0', key.size()) != nullptr) {
      return false;  // not a record
    }
    CustomerRecord r;
    if (!projections::DecodeRecord(value.ToStringView(), &r).ok()) return false;  // a read says so
    auto t = through_.find(r.partition);
    if (t == through_.end() || projections::DueOf(r) > t->second) return false;
    projections::CatchUpStored(*config_, t->second, &r);
    new_value->clear();
    projections::EncodeRecord(r, new_value);
    *value_changed = true;
    return false;
  }

 private:
  const projections::DomainConfig* config_;
  const ViewStore::Through through_;
};

class CatchUpFilterFactory : public rocksdb::CompactionFilterFactory {
 public:
  CatchUpFilterFactory(const projections::DomainConfig* config,
                       std::shared_ptr<ViewStore::CommittedThrough> through)
      : config_(config), through_(std::move(through)) {}
  const char* Name() const override { return "lifecycle.CatchUpFilterFactory"; }
  std::unique_ptr<rocksdb::CompactionFilter> CreateCompactionFilter(
      const rocksdb::CompactionFilter::Context& context) override {
    if (!context.is_manual_compaction) return nullptr;
    std::lock_guard<std::mutex> lock(through_->mu);
    return std::make_unique<CatchUpFilter>(config_, through_->by_partition);
  }

 private:
  const projections::DomainConfig* config_;
  std::shared_ptr<ViewStore::CommittedThrough> through_;
};

template <typename Fn>
absl::Status ScanPrefix(rocksdb::DB* db, const std::string& prefix, Fn fn) {
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(IterOptions()));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    if (!fn(it->key(), it->value())) break;
  }
  if (!it->status().ok()) return absl::UnavailableError(it->status().ToString());
  return absl::OkStatus();
}

absl::Status ToAbsl(const rocksdb::Status& s, absl::string_view what) {
  if (s.ok()) return absl::OkStatus();
  const std::string msg = absl::StrCat(what, ": ", s.ToString());
  if (s.IsNotFound()) return absl::NotFoundError(msg);
  if (s.IsInvalidArgument()) return absl::InvalidArgumentError(msg);
  if (s.IsBusy() || s.IsTimedOut() || s.IsTryAgain()) return absl::UnavailableError(msg);
  if (s.IsIOError() || s.IsNoSpace()) return absl::UnavailableError(msg);
  if (s.IsCorruption()) return absl::DataLossError(msg);
  return absl::InternalError(msg);
}

// A layout-1 key of a customer (c/<id> NUL ... or j/<id> NUL ...) in layout 2; empty if
// it is the same in both (the record, its profile) or already of layout 2.
std::string UpgradedKey(std::string_view key) {
  const size_t nul = key.find('\0');
  if (nul == std::string_view::npos || nul + 1 >= key.size()) return {};
  const char family = key[nul + 1];
  const std::string_view rest = key.substr(nul + 2);
  std::string out(key.substr(0, nul + 2));
  const absl::string_view digits(rest.data(), rest.size());  // layout 1's numbers
  uint64_t a = 0, b = 0;
  if (key[0] == 'j' && family == 'b') {  // a base, next to its record now
    out[0] = kCustomerPrefix[0];
    out.append(rest);
  } else if ((family == 't' || family == 'g' || family == 'e') && rest.size() == 10 &&
             absl::SimpleAtoi(digits, &a)) {
    PutBigEndian(a, kSeqBytes, &out);
  } else if (key[0] == 'c' && family == 's' && rest.size() == 16 &&
             absl::SimpleHexAtoi(digits, &a)) {
    PutBigEndian(a, kHashBytes, &out);
  } else if (key[0] == 'c' && family == 'h' && rest.size() == 26 && rest[5] == '/' &&
             absl::SimpleAtoi(digits.substr(0, 5), &a) && absl::SimpleAtoi(digits.substr(6), &b)) {
    PutBigEndian(a, kPartitionBytes, &out);
    PutBigEndian(b, kAlertSeqBytes, &out);
  } else {
    return {};
  }
  return out;
}

// Brings a store of layout 1 to layout 3: every customer key whose numbers were digits
// rewritten (UpgradedKey), then the layout recorded (one of layout 2 needs no rewrite).
// Batches of whole keys (the new key and the old one's deletion together), read from
// one iterator that does not see them: an interrupted upgrade goes on at the next open.
// `told` hears its progress.
absl::Status UpgradeLayout(rocksdb::DB* db, const std::function<void(const std::string&)>& told) {
  std::string layout;
  rocksdb::Status g = db->Get(rocksdb::ReadOptions(), kLayoutKey, &layout);
  if (!g.ok() && !g.IsNotFound()) return ToAbsl(g, "reading the store's layout");
  if (g.ok()) {
    if (layout == kLayout) return absl::OkStatus();
    if (layout == kLayoutWholeProfiles) {
      return ToAbsl(db->Put(rocksdb::WriteOptions(), kLayoutKey, kLayout),
                    "recording the store's layout");
    }
    return absl::FailedPreconditionError(
        absl::StrCat("the view store has layout ", layout, ", which this build does not read"));
  }
  constexpr size_t kBatch = 4096;
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(IterOptions()));
  uint64_t seen = 0, changed = 0;
  rocksdb::WriteBatch wb;
  auto write = [&]() -> absl::Status {
    if (wb.Count() == 0) return absl::OkStatus();
    rocksdb::Status s = db->Write(rocksdb::WriteOptions(), &wb);
    wb.Clear();
    return ToAbsl(s, "upgrading the store's key layout");
  };
  for (const absl::string_view prefix : {kCustomerPrefix, kJournalPrefix}) {
    const rocksdb::Slice from(prefix.data(), prefix.size());
    for (it->Seek(from); it->Valid() && it->key().starts_with(from); it->Next()) {
      ++seen;
      const std::string upgraded = UpgradedKey(it->key().ToStringView());
      if (upgraded.empty()) continue;
      if (changed == 0 && told) told("upgrading the view store's keys to layout 3 (once)");
      wb.Put(upgraded, it->value());
      wb.Delete(it->key());
      if (++changed % kBatch == 0) {
        if (absl::Status s = write(); !s.ok()) return s;
        if (changed % (kBatch * 256) == 0 && told) {
          told(absl::StrCat("upgrading the view store's keys: ", changed, " rewritten of ",
                            seen, " read"));
        }
      }
    }
    if (absl::Status s = ToAbsl(it->status(), "reading the store to upgrade it"); !s.ok()) {
      return s;
    }
  }
  if (absl::Status s = write(); !s.ok()) return s;
  if (changed > 0 && told) {
    told(absl::StrCat("upgraded the view store's keys: ", changed, " rewritten of ", seen));
  }
  return ToAbsl(db->Put(rocksdb::WriteOptions(), kLayoutKey, kLayout),
                "recording the store's layout");
}

absl::Status Closed() {
  return absl::UnavailableError("the view store is closed after a failed write; reopening");
}

PartitionMeta EmptyMeta(int32_t partition) {
  PartitionMeta m;
  m.set_partition(partition);
  m.set_offset(-1);
  return m;
}

}  // namespace

std::string CustomerKey(std::string_view customer_id) {
  return absl::StrCat(kCustomerPrefix, absl::string_view(customer_id.data(), customer_id.size()));
}

std::string MetaKey(int32_t partition) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%05d", partition);
  return absl::StrCat(kMetaPrefix, buf);
}

ViewStore::ViewStore(std::unique_ptr<rocksdb::DB> db, StoreOptions options,
                     std::unique_ptr<rocksdb::Options> open_options, std::string path)
    : db_(std::move(db)),
      options_(options),
      open_options_(std::move(open_options)),
      path_(std::move(path)),
      config_(options.config ? options.config : &DefaultConfig()) {
  l0_compaction_trigger_ = open_options_->level0_file_num_compaction_trigger;
  zstd_level_ = open_options_->bottommost_compression_opts.level;
  dict_bytes_ = open_options_->bottommost_compression_opts.max_dict_bytes;
  std::vector<std::string> per_level;
  for (rocksdb::CompressionType c : open_options_->compression_per_level) {
    std::string name;
    if (rocksdb::GetStringFromCompressionType(&name, c).ok()) per_level.push_back(name);
  }
  if (per_level.size() == open_options_->compression_per_level.size()) {
    compression_per_level_ = absl::StrJoin(per_level, ":");
  }
  if (!rocksdb::GetStringFromCompressionType(&bottommost_compression_,
                                             open_options_->bottommost_compression)
           .ok()) {
    bottommost_compression_.clear();
  }
  if (const auto* t = open_options_->table_factory->GetOptions<rocksdb::BlockBasedTableOptions>()) {
    block_bytes_ = t->block_size;
  }
}

ViewStore::~ViewStore() {
  absl::Status s = Close();
  (void)s;  // deliberately ignored: nothing useful to do at destruction
}

absl::Status ViewStore::Close() {
  closed_.store(true);
  {
    std::lock_guard<std::mutex> trigger(trigger_mu_);
    StopFullCompaction();
    StopListingBuild();
  }
  std::unique_lock<HandleLock> lock(mu_);
  if (!db_) return absl::OkStatus();
  rocksdb::Status s = db_->Close();
  db_.reset();
  if (!s.ok()) return absl::UnavailableError(absl::StrCat("closing the view store: ", s.ToString()));
  return absl::OkStatus();
}

namespace {

// A customer's profile (CustomerSubKey('p', id)) is written as the changes of each commit
// (projections::ProfileUpdate), merged into the stored profile when read or
// compacted: the fold does not read a profile to change it.
class ProfileMerge final : public rocksdb::MergeOperator {
 public:
  const char* Name() const override { return "lifecycle.ProfileMerge"; }
  // Never fails: a failed merge fails the compaction that ran it, and RocksDB then
  // takes no more writes (the whole store stops for one customer's bytes). A stored
  // profile or a change that does not parse gives a damaged profile instead, which
  // holds nothing and does not parse (that customer's reads report it, as they did a
  // damaged profile before profiles were merged); a change that drops the stored
  // profile (`reset`) makes it whole again.
  bool FullMergeV2(const MergeOperationInput& in, MergeOperationOutput* out) const override {
    lifecycle::v1::Profile profile;
    bool damaged = in.existing_value != nullptr &&
                   !profile.ParseFromArray(in.existing_value->data(),
                                           static_cast<int>(in.existing_value->size()));
    for (const rocksdb::Slice& update : in.operand_list) {
      // (a reset clears what a damaged profile left: ApplyProfileUpdate)
      if (damaged && !projections::ProfileUpdateResets(update.ToStringView())) continue;
      damaged = !projections::ApplyProfileUpdate(update.ToStringView(), &profile);
    }
    if (damaged) {
      out->new_value.assign(kDamagedProfile);
      return true;
    }
    return profile.SerializeToString(&out->new_value);
  }
};

}  // namespace

std::shared_ptr<rocksdb::FlushBlockPolicyFactory> CustomerBlockPolicy() {
  return std::make_shared<CustomerBlocks>();
}

std::shared_ptr<rocksdb::MergeOperator> ProfileMergeOperator() {
  return std::make_shared<ProfileMerge>();
}

absl::StatusOr<std::unique_ptr<ViewStore>> ViewStore::Open(const std::string& path,
                                                           const StoreOptions& options) {
  rocksdb::Options o;
  o.create_if_missing = options.create_if_missing;
  o.IncreaseParallelism(2);
  if (options.low_priority_compactions) {
    // Nice 19 for the compaction threads (RocksDB's low-priority pool; flushes keep
    // theirs). Best effort: a platform without it compacts at the usual priority.
    o.env->LowerThreadPoolCPUPriority(rocksdb::Env::Priority::LOW, rocksdb::CpuPriority::kLow)
        .PermitUncheckedError();
  }
  o.OptimizeLevelStyleCompaction();
  // Memtables: OptimizeLevelStyleCompaction allows 6 of 128 MiB, most of the daemon's
  // resident memory; 3 of 64 MiB write as fast here (docs/benchmarks.md).
  o.write_buffer_size = options.write_buffer_bytes;
  o.max_write_buffer_number = 3;
  o.min_write_buffer_number_to_merge = 1;
  // Commits write their keys in ascending order (ViewStore::Commit); a hint per key
  // family ("c", "l", "a", …) lets each insert start where the previous one ended.
  // Hints are used by single-threaded memtable writes only.
  o.memtable_insert_with_hint_prefix_extractor.reset(rocksdb::NewFixedPrefixTransform(1));
  o.allow_concurrent_memtable_write = false;
  // A Bloom filter per memtable: the fold reads records and profiles the memtables
  // mostly do not hold (a customer not seen since the last flush), and each such read
  // searched three skip lists.
  o.memtable_prefix_bloom_size_ratio = 0.02;
  o.memtable_whole_key_filtering = true;
  // Compression: none in L0 (flushes stay cheap), LZ4 in L1 (the frequent L0 -> L1
  // compactions stay cheap), ZSTD below and in whichever level is the last. Records and
  // history are varints and 64-bit hashes, which LZ4 alone shrinks little.
  o.compression_per_level.assign(o.num_levels, rocksdb::kZSTD);
  o.compression_per_level[0] = rocksdb::kNoCompression;
  o.compression_per_level[1] = rocksdb::kLZ4Compression;
  o.bottommost_compression = rocksdb::kZSTD;
  o.compression_opts.level = 1;  // the fastest; level 3 took more of the fold's cores
  // The last level holds most of the store and is rewritten least often: level 6
  // there (StoreOptions::catchup_zstd_level while catching up).
  o.bottommost_compression_opts.enabled = true;
  o.bottommost_compression_opts.level = 6;
  // A dictionary of 64 KiB sampled from a file's first 4 MiB of blocks (raw samples:
  // this RocksDB build decompresses with a trained one undigested, slower) lets 4 KiB
  // blocks compress as well as 16 KiB ones without: a customer's read decompresses
  // 4 KiB instead of 16 (docs/benchmarks.md). Not while catching up (ApplyCatchUpOptions).
  o.bottommost_compression_opts.max_dict_bytes = 64 << 10;
  o.bottommost_compression_opts.zstd_max_train_bytes = 0;
  o.bottommost_compression_opts.max_dict_buffer_bytes = 4 << 20;
  rocksdb::BlockBasedTableOptions t;
  t.block_cache = rocksdb::NewLRUCache(options.block_cache_bytes);
  // 4 KiB blocks, with the last level's dictionary; 16 KiB while catching up
  // (StoreOptions::catchup_block_bytes): the index has a quarter of the entries, and
  // with `lz4` or `zstd` there the compression finds more to share in a block (with
  // nothing compressed, the default, 4 KiB measured no faster: docs/benchmarks.md).
  t.block_size = 4 * 1024;
  t.flush_block_policy_factory = CustomerBlockPolicy();
  t.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  // One filter entry per customer (CustomerFilterPrefix), not one per key: a
  // customer's history, alert references and journal are read by iterators, which a
  // filter does not serve, and their entries were most of the filters' bytes.
  o.prefix_extractor = std::make_shared<CustomerFilterPrefix>();
  t.whole_key_filtering = false;
  // Two customers' keys share little beyond "c/": a restart point every 32 keys
  // instead of 16 stores fewer whole keys.
  t.block_restart_interval = 32;
  // XXH3 block checksums: this RocksDB build computes CRC32C without the CPU
  // instruction, which showed in profiles of reads and compactions.
  t.checksum = rocksdb::kXXH3;
  o.table_factory.reset(rocksdb::NewBlockBasedTableFactory(t));
  // The whole-store compaction after a catch-up writes records caught up (CatchUpFilter).
  const projections::DomainConfig* config = options.config ? options.config : &DefaultConfig();
  auto through = std::make_shared<CommittedThrough>();
  o.compaction_filter_factory = std::make_shared<CatchUpFilterFactory>(config, through);
  o.merge_operator = ProfileMergeOperator();
  if (!options.rocksdb_overrides.empty()) {
    rocksdb::ConfigOptions co;
    co.ignore_unknown_options = false;
    rocksdb::Options tuned;
    rocksdb::Status t_s = rocksdb::GetOptionsFromString(co, o, options.rocksdb_overrides, &tuned);
    if (!t_s.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("RocksDB options \"", options.rocksdb_overrides, "\": ", t_s.ToString()));
    }
    o = tuned;
  }
  if (options.env) o.env = options.env;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(o, path, &raw);
  if (!s.ok()) return ToAbsl(s, absl::StrCat("opening the view store at ", path));
  std::unique_ptr<rocksdb::DB> db(raw);
  // A store written before the due index and the listing indexes moved into memory:
  // their stored entries go.
  for (auto [prefix, end] : {std::pair{kOldDuePrefix, kOldDueEnd},
                             std::pair{kOldIndexPrefix, kOldIndexEnd}}) {
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(IterOptions()));
    const rocksdb::Slice from(prefix.data(), prefix.size());
    it->Seek(from);
    if (it->Valid() && it->key().starts_with(from)) {
      it.reset();
      s = db->DeleteRange(rocksdb::WriteOptions(), db->DefaultColumnFamily(), from,
                          rocksdb::Slice(end.data(), end.size()));
      if (!s.ok()) return ToAbsl(s, "deleting the stored indexes of an earlier layout");
    }
  }
  if (absl::Status u = UpgradeLayout(db.get(), options.on_upgrade); !u.ok()) return u;
  raw = db.release();
  std::unique_ptr<ViewStore> store(new ViewStore(std::unique_ptr<rocksdb::DB>(raw), options,
                                                 std::make_unique<rocksdb::Options>(o), path));
  store->committed_through_ = std::move(through);
  {
    std::unique_ptr<rocksdb::Iterator> it(store->db_->NewIterator(IterOptions()));
    auto stored = ThroughAt(it.get());
    if (!stored.ok()) return stored.status();
    std::lock_guard<std::mutex> lock(store->committed_through_->mu);
    store->committed_through_->by_partition = std::move(*stored);
  }
  if (absl::Status b = store->BuildIndex(); !b.ok()) return b;
  if (absl::Status m = store->LoadMetas(); !m.ok()) return m;
  return store;
}

std::string IndexValue(const std::string& dim, const projections::IndexKeys& k,
                       const std::string& region, const std::string& advisor) {
  if (dim == "stage") return projections::StageShort(k.stage);
  if (dim == "grade") {
    return k.grade == lifecycle::v1::VALUE_GRADE_UNSPECIFIED ? std::string("NONE")
                                                             : projections::GradeShort(k.grade);
  }
  if (dim == "tier") return projections::TierShort(k.tier);
  if (dim == "rfm_segment") return k.rfm_segment() ? k.rfm_segment() : std::string("none");
  if (dim == "advisor") return advisor;  // empty: none (no entry)
  return region.empty() ? std::string("unknown") : region;
}

ViewStore::Listing ViewStore::ListingFor(lifecycle::v1::Stage stage,
                                        lifecycle::v1::ValueGrade grade, lifecycle::v1::Tier tier,
                                        const std::string& region, const std::string& rfm_segment,
                                        const std::string& advisor) {
  Listing l;
  projections::IndexKeys k;
  k.stage = static_cast<uint8_t>(stage);
  k.grade = static_cast<uint8_t>(grade);
  k.tier = static_cast<uint8_t>(tier);
  if (!advisor.empty()) {  // an advisor's customers: the fewest, usually
    l.prefix = absl::StrCat("x/advisor/", advisor, "/");
  } else if (stage != lifecycle::v1::STAGE_UNSPECIFIED) {
    l.prefix = absl::StrCat("x/stage/", IndexValue("stage", k), "/");
  } else if (grade != lifecycle::v1::VALUE_GRADE_UNSPECIFIED) {
    l.prefix = absl::StrCat("x/grade/", IndexValue("grade", k), "/");
  } else if (tier != lifecycle::v1::TIER_UNSPECIFIED) {
    l.prefix = absl::StrCat("x/tier/", IndexValue("tier", k), "/");
  } else if (!region.empty()) {
    l.prefix = absl::StrCat("x/region/", region, "/");
  } else if (!rfm_segment.empty()) {
    l.prefix = absl::StrCat("x/rfm_segment/", rfm_segment, "/");
  } else {
    l.prefix = std::string(kCustomerPrefix);
  }
  return l;
}

namespace {
// True when no listing index tells the two apart.
bool SameListing(const projections::IndexKeys& a, const projections::IndexKeys& b) {
  return a.present == b.present && a.stage == b.stage && a.grade == b.grade && a.tier == b.tier &&
         a.rfm_r == b.rfm_r && a.rfm_f == b.rfm_f && a.rfm_m == b.rfm_m &&
         a.partition == b.partition && a.churn == b.churn && a.region == b.region &&
         a.advisor == b.advisor;
}
// A customer's listing values; `region` and `advisor` are the words of keys.region and
// keys.advisor.
ListingIndex::Values ListingValues(const projections::IndexKeys& keys, const std::string& region,
                                   const std::string& advisor) {
  ListingIndex::Values v;
  v.present = keys.present;
  if (!v.present) return v;
  for (int d = 0; d < ListingIndex::kDims; ++d) {
    v.value[d] = IndexValue(ListingIndex::DimName(static_cast<ListingIndex::Dim>(d)), keys, region,
                            advisor);
  }
  v.partition = keys.partition;
  v.stage = keys.stage;
  v.grade = keys.grade;
  v.tier = keys.tier;
  v.churn = keys.churn;
  return v;
}
}  // namespace

absl::Status ViewStore::ScanRecords(
    const std::function<absl::Status(std::string_view, const CustomerRecord&)>& fn,
    const rocksdb::Snapshot* snap) {
  const std::string prefix(kCustomerPrefix);
  rocksdb::ReadOptions ro = IterOptions();
  ro.snapshot = snap;
  ro.fill_cache = false;  // one pass over every record: not worth caching
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro));
  auto through = ThroughAt(it.get());  // from the same state of the store as the records
  if (!through.ok()) return through.status();
  CustomerRecord r;
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix);) {
    const std::string_view key = it->key().ToStringView();
    if (key.find('\0') != std::string_view::npos) {  // a profile or history entry
      it->Next();
      continue;
    }
    if (absl::Status s = projections::DecodeRecord(it->value().ToStringView(), &r); !s.ok()) {
      return absl::DataLossError(
          absl::StrCat("record ", absl::string_view(key.data(), key.size()), ": ", s.message()));
    }
    if (auto t = through->find(r.partition); t != through->end()) {
      projections::CatchUpStored(*config_, t->second, &r);
    }
    if (absl::Status s = fn(key.substr(prefix.size()), r); !s.ok()) return s;
    // Past the customer's profile and history (c/<id> NUL ...).
    std::string next(key);
    next.push_back('\1');
    it->Seek(next);
  }
  return ToAbsl(it->status(), "reading the records");
}

absl::Status ViewStore::BuildIndex() {
  std::shared_lock<HandleLock> lock(mu_);
  if (!db_) return Closed();
  auto built = BuildListing(nullptr, nullptr);
  if (!built.ok()) return built.status();
  std::unique_lock<WriterFirstLock> index_lock(index_mu_);
  ReplaceIndex(std::move(*built));
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<ListingIndex>> ViewStore::BuildListing(
    const rocksdb::Snapshot* snap, const std::atomic<bool>* stop) {
  rocksdb::ReadOptions ro;
  ro.snapshot = snap;
  // The words of regions and advisors, by hash (few).
  absl::flat_hash_map<uint64_t, std::string> names;
  absl::Status bad;
  auto name = [&](uint64_t h) -> const std::string& {
    auto it = names.find(h);
    if (it == names.end()) {
      std::string words;
      if (h != 0) {
        rocksdb::Status g = db_->Get(ro, TextKey(h), &words);
        if (!g.ok() && !g.IsNotFound()) bad = ToAbsl(g, "reading the text dictionary");
      }
      it = names.emplace(h, std::move(words)).first;
    }
    return it->second;
  };
  const ListingIndex::Values none;
  auto index = std::make_unique<ListingIndex>();
  size_t n = 0;
  absl::Status s = ScanRecords(
      [&](std::string_view id, const CustomerRecord& r) -> absl::Status {
        if (stop && (++n & 1023) == 0 && stop->load()) {
          return absl::CancelledError("building the listing indexes: stopped");
        }
        index->Move(id, none,
                    ListingValues(projections::KeysOf(r), name(r.region), name(r.advisor)));
        return bad;
      },
      snap);
  if (!s.ok()) return s;
  return index;
}

absl::Status ViewStore::Reopen() {
  // RocksDB cannot always leave the error state of a failed WAL write (Resume()
  // succeeds but later writes still fail), so the store is closed and opened again:
  // what was written before the failure is recovered from the WAL.
  {
    std::lock_guard<std::mutex> trigger(trigger_mu_);
    StopFullCompaction();  // it holds the handle; the next catch-up's end starts it again
    StopListingBuild();    // likewise (or the first listing read builds them)
  }
  std::unique_lock<HandleLock> lock(mu_);
  if (db_) {
    db_->Close().PermitUncheckedError();  // deliberately ignored: it is reopened next
    db_.reset();
  }
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(*open_options_, path_, &raw);
  if (!s.ok()) {
    // Still cannot write: serve reads from a read-only handle meanwhile.
    rocksdb::DB* ro = nullptr;
    if (rocksdb::DB::OpenForReadOnly(*open_options_, path_, &ro).ok()) db_.reset(ro);
    return ToAbsl(s, "reopening the view store after a failed write");
  }
  db_.reset(raw);
  needs_reopen_.store(false);
  // Without them (a meta that does not parse) reads seek their meta, and report it.
  LoadMetas().IgnoreError();
  lock.unlock();
  std::lock_guard<std::mutex> trigger(trigger_mu_);
  if (catching_up_) {
    return ApplyCatchUpOptions();  // the reopened handle has the usual ones
  }
  return absl::OkStatus();
}

absl::Status ViewStore::SetCatchingUp(bool catching_up) {
  std::lock_guard<std::mutex> trigger(trigger_mu_);
  if (catching_up_ == catching_up) return absl::OkStatus();
  const bool was = catching_up_;
  catching_up_ = catching_up;
  if (absl::Status s = ApplyCatchUpOptions(); !s.ok()) {
    catching_up_ = was;  // what RocksDB still has
    return s;
  }
  if (catching_up) {
    StopFullCompaction();  // the catch-up rewrites what it would compact
    catchup_written_.store(owed_.exchange(0));
    counting_.store(true);
    std::unique_lock<WriterFirstLock> lock(index_mu_);
    listing_defer_ok_ = true;
    listing_read_.store(false);
  } else {
    counting_.store(false);
    if (options_.compact_after_catchup_bytes > 0 &&
        catchup_written_.load() >= options_.compact_after_catchup_bytes) {
      StartFullCompaction();
    }
    StartListingBuild();
  }
  return absl::OkStatus();
}

void ViewStore::StartFullCompaction() {
  if (compacting_.load() || closed_.load()) return;
  if (needs_reopen_.load()) {  // a failed write's reopen would wait for it: the next one
    owed_.fetch_add(catchup_written_.exchange(0));
    return;
  }
  if (compactor_.joinable()) compactor_.join();  // the last one, ended
  stop_compaction_.store(false);
  compacting_.store(true);
  const uint64_t written = catchup_written_.exchange(0);
  compactor_ = std::thread([this, written] {
    StoreOptions::FullCompaction fc;
    fc.catchup_bytes = written;
    auto sst_bytes = [this] {
      uint64_t v = 0;
      db_->GetIntProperty("rocksdb.total-sst-files-size", &v);
      return v;
    };
    const auto t0 = std::chrono::steady_clock::now();
    {
      std::shared_lock<HandleLock> lock(mu_);
      if (!db_) {
        fc.status = Closed();
      } else {
        // What the memtables hold is flushed first (CompactRange would): before and
        // after then count the same data.
        rocksdb::Status f = db_->Flush(rocksdb::FlushOptions());
        (void)f;  // a failed flush shows in the compaction's status below
        fc.sst_bytes_before = sst_bytes();
        if (options_.on_full_compaction) options_.on_full_compaction(fc);
        rocksdb::CompactRangeOptions c;
        c.exclusive_manual_compaction = false;  // commits' flushes and L0 go on meanwhile
        c.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForceOptimized;
        c.canceled = &stop_compaction_;
        rocksdb::Status s = db_->CompactRange(c, nullptr, nullptr);
        if (stop_compaction_.load() && !s.ok()) {
          fc.status = absl::CancelledError("stopped before it ended");
        } else {
          fc.status = ToAbsl(s, "compacting the store after a catch-up");
        }
        fc.sst_bytes_after = sst_bytes();
      }
    }
    fc.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    fc.done = true;
    if (!fc.status.ok()) owed_.fetch_add(written);
    full_compactions_.fetch_add(1);
    compacting_.store(false);
    if (options_.on_full_compaction) options_.on_full_compaction(fc);
  });
}

void ViewStore::StopFullCompaction() {
  if (!compactor_.joinable()) return;
  stop_compaction_.store(true);
  compactor_.join();
}

absl::Status ViewStore::ApplyCatchUpOptions() {
  std::unordered_map<std::string, std::string> set;
  if (options_.catchup_l0_compaction_trigger > 0) {
    const int trigger = catching_up_ ? std::max(l0_compaction_trigger_,
                                                options_.catchup_l0_compaction_trigger)
                                     : l0_compaction_trigger_;
    set.emplace("level0_file_num_compaction_trigger", std::to_string(trigger));
  }
  // LZ4 below L0, or none, while catching up (StoreOptions::catchup_compression), the
  // usual after.
  using Compress = StoreOptions::CatchUpCompression;
  if (options_.catchup_compression != Compress::kStoreOwn && !compression_per_level_.empty() &&
      !bottommost_compression_.empty()) {
    if (catching_up_) {
      const char* kind = options_.catchup_compression == Compress::kNone ? "kNoCompression"
                                                                         : "kLZ4Compression";
      std::vector<std::string> levels(open_options_->compression_per_level.size(), kind);
      levels[0] = "kNoCompression";
      set.emplace("compression_per_level", absl::StrJoin(levels, ":"));
      set.emplace("bottommost_compression", kind);
    } else {
      set.emplace("compression_per_level", compression_per_level_);
      set.emplace("bottommost_compression", bottommost_compression_);
    }
  }
  std::vector<std::string> bottommost;
  if (options_.catchup_zstd_level > 0) {
    const int level = catching_up_ ? options_.catchup_zstd_level : zstd_level_;
    bottommost.push_back(absl::StrCat("level=", level));
  }
  if (options_.catchup_block_bytes > 0 && block_bytes_ > 0) {
    const size_t block = catching_up_ ? options_.catchup_block_bytes : block_bytes_;
    set.emplace("block_based_table_factory", absl::StrCat("{block_size=", block, "}"));
    bottommost.push_back(absl::StrCat("max_dict_bytes=", catching_up_ ? 0 : dict_bytes_));
  }
  if (!bottommost.empty()) {
    set.emplace("bottommost_compression_opts",
                absl::StrCat("{", absl::StrJoin(bottommost, ";"), ";enabled=true}"));
  }
  if (set.empty()) return absl::OkStatus();
  std::shared_lock<HandleLock> lock(mu_);
  if (!db_) return Closed();
  return ToAbsl(db_->SetOptions(set), "setting the catch-up options");
}

absl::Status ViewStore::Commit(const std::vector<projections::PendingBatch>& batches) {
  if (closed_.load()) return absl::FailedPreconditionError("the view store is closed");
  if (needs_reopen_.load()) {
    if (absl::Status s = Reopen(); !s.ok()) return s;
  }
  std::shared_lock<HandleLock> lock(mu_);
  if (!db_) return Closed();
  // Every key of a commit is distinct, so the operations can go into the batch in key
  // order: the memtable then inserts each one next to the last (insert hints, see
  // Open), which costs much less than a search from the top of the skip list.
  // Values the batches own (records, profiles, texts) are not copied: an operation
  // points at them; values encoded here live in `owned` until the write.
  // Keys go into one buffer; the sort compares their first 16 bytes as two numbers and
  // looks at the bytes only on a tie, then keeps the order of equal keys.
  struct Op {
    uint64_t head[2];
    uint32_t key_at, key_size;
    std::string_view value;
    enum Kind : uint8_t { kPut, kDelete, kMerge } kind;
  };
  std::vector<Op> ops;
  std::string keys;
  std::deque<std::string> owned;
  size_t value_bytes = 0;
  auto add = [&](const std::string& key, std::string_view value, Op::Kind kind) {
    Op op{{KeyHead(key, 0), KeyHead(key, 8)}, static_cast<uint32_t>(keys.size()),
          static_cast<uint32_t>(key.size()), value, kind};
    keys.append(key);
    value_bytes += value.size();
    ops.push_back(op);
  };
  auto put_view = [&add](const std::string& key, std::string_view value) {
    add(key, value, Op::kPut);
  };
  auto put = [&add, &owned](const std::string& key, std::string value) {
    owned.push_back(std::move(value));
    add(key, owned.back(), Op::kPut);
  };
  auto del = [&add](const std::string& key) { add(key, {}, Op::kDelete); };
  for (const auto& batch : batches) {
    const int32_t partition = batch.meta.partition();
    for (const auto& change : batch.customers) {
      const std::string& id = change.id;
      if (change.write_record) put_view(CustomerKey(id), change.record);
      // A change of the profile, merged into the stored one (ProfileMerge).
      if (change.profile) add(CustomerSubKey('p', id), *change.profile, Op::kMerge);
    }
    for (const auto& [key, value] : batch.aggregates) {
      if (value.customers() == 0 && value.revenue_minor() == 0 && value.activity_days() == 0) {
        del(absl::StrCat(AggPrefix(partition), key));  // back at zero: no entry
        continue;
      }
      put(absl::StrCat(AggPrefix(partition), key), value.SerializeAsString());
    }
    for (const auto& alert : batch.alerts) {
      std::string entry, ref;
      projections::EncodeAlert(alert, &entry);
      put(AlertKey(partition, alert.sequence), std::move(entry));
      projections::EncodeAlertRef({alert.fact.kind, alert.fact.offset, alert.fact.disc}, &ref);
      put(CustomerAlertKey(alert.customer_id, partition, alert.sequence), std::move(ref));
    }
    // Cuts first: the appends below may number entries anew (and the sort below keeps
    // equal keys in this order).
    for (const auto& cut : batch.cuts) {
      for (uint32_t n = cut.transitions_from; n < cut.transitions_to; ++n) {
        del(HistoryKey('t', cut.customer_id, n));
      }
      for (uint32_t n = cut.lost_deals_from; n < cut.lost_deals_to; ++n) {
        del(HistoryKey('g', cut.customer_id, n));
      }
    }
    for (const auto& j : batch.journal) {
      const projections::JournalWrite& w = j.entry;
      switch (w.kind) {
        case projections::JournalWrite::kEntry:
          put_view(JournalEntryKey(j.customer_id, w.n), w.bytes);
          break;
        case projections::JournalWrite::kSnapshot:
          put_view(JournalSnapshotKey(j.customer_id, w.n), w.bytes);
          break;
        case projections::JournalWrite::kDrop:
          for (uint32_t n = w.n; n < w.end; ++n) del(JournalEntryKey(j.customer_id, n));
          break;
        case projections::JournalWrite::kDropSnapshot:
          del(JournalSnapshotKey(j.customer_id, w.n));
          break;
      }
    }
    for (const auto& t : batch.transitions) {
      std::string v;
      projections::EncodeTransition(t.entry, &v);
      put(HistoryKey('t', t.customer_id, t.seq), std::move(v));
    }
    for (const auto& d : batch.lost_deals) {
      std::string v;
      projections::EncodeLostDeal(d.entry, &v);
      put(HistoryKey('g', d.customer_id, d.seq), std::move(v));
    }
    for (const auto& t : batch.texts) {
      put_view(CustomerTextKey(t.customer_id, t.entry.first), t.entry.second);
    }
    for (const auto& [hash, text] : batch.new_names) put_view(TextKey(hash), text);
    put(MetaKey(batch.meta.partition()), batch.meta.SerializeAsString());
  }
  // Equal keys (a dictionary text two partitions introduced) carry equal values.
  auto key_of = [&keys](const Op& op) {
    return rocksdb::Slice(keys.data() + op.key_at, op.key_size);
  };
  std::stable_sort(ops.begin(), ops.end(), [&key_of](const Op& a, const Op& b) {
    if (a.head[0] != b.head[0]) return a.head[0] < b.head[0];
    if (a.head[1] != b.head[1]) return a.head[1] < b.head[1];
    return key_of(a).compare(key_of(b)) < 0;
  });
  // Sized up front (each operation's tag and two lengths take at most 11 bytes), so the
  // batch is not copied as it grows.
  rocksdb::WriteBatch wb(kWriteBatchHeader + keys.size() + value_bytes + 11 * ops.size());
  for (const Op& op : ops) {
    const rocksdb::Slice key = key_of(op);
    const rocksdb::Slice value(op.value.data(), op.value.size());
    rocksdb::Status s = op.kind == Op::kPut      ? wb.Put(key, value)
                        : op.kind == Op::kMerge ? wb.Merge(key, value)
                                                : wb.Delete(key);
    if (!s.ok()) return ToAbsl(s, "building the commit batch");
  }
  rocksdb::WriteOptions wo;
  wo.sync = options_.sync_writes;
  wo.disableWAL = options_.disable_wal;
  // Commits write one at a time, so the metas in memory follow the order RocksDB
  // applied them in (the daemon has one writer: this costs it nothing).
  std::lock_guard<std::mutex> writing(write_mu_);
  commits_started_.fetch_add(1);
  rocksdb::Status w = db_->Write(wo, &wb);
  // The next metas are built outside metas_mu_ (only a commit, holding write_mu_, sets
  // them; reads meanwhile see a commit running and do not use them).
  std::shared_ptr<Metas> next;
  if (w.ok() && metas_) {  // (after a failed write: none until the reopen reads them)
    next = std::make_shared<Metas>(*metas_);
    for (const auto& batch : batches) next->by_partition[batch.meta.partition()] = batch.meta;
    next->commits = commits_done_.load() + 1;
  }
  {
    std::lock_guard<std::mutex> metas(metas_mu_);
    metas_ = std::move(next);
    commits_done_.fetch_add(1);
  }
  if (!w.ok()) {
    needs_reopen_.store(true);
    return ToAbsl(w, "committing to the view store");
  }
  if (counting_.load()) catchup_written_.fetch_add(wb.GetDataSize());
  {
    std::lock_guard<std::mutex> through(committed_through_->mu);
    for (const auto& batch : batches) {
      committed_through_->by_partition[batch.meta.partition()] = batch.meta.deadlines_through();
    }
  }
  ListingAfterCommit(batches);
  return absl::OkStatus();
}

// A customer's listing entries to move: from a commit's batch (`id` in it), or kept for
// a build under way (owned).
struct ViewStore::Listed {
  std::string_view id;
  ListingIndex::Values before, after;
};
struct ViewStore::Relisted {
  std::string id;
  ListingIndex::Values before, after;
};

void ViewStore::ListingAfterCommit(const std::vector<projections::PendingBatch>& batches) {
  // Built before the lock when they will be moved (readers wait less), else under it if
  // a reader made the indexes current meanwhile.
  std::vector<Listed> listed;
  const bool moves = listing_moves_.load();
  if (moves) listed = ListedOf(batches);
  std::unique_lock<WriterFirstLock> lock(index_mu_);
  if (listing_ == ListingState::kMaintained && listing_defer_ok_ && !listing_read_.load() &&
      options_.defer_listing_after_bytes > 0 &&
      catchup_written_.load() >= options_.defer_listing_after_bytes) {
    listing_ = ListingState::kDeferred;
    listing_moves_.store(false);
    listing_deferred_commits_ = 0;
    ReplaceIndex(std::make_unique<ListingIndex>());  // out of date from here: its memory goes
  }
  if (listing_ == ListingState::kDeferred) {
    ++listing_deferred_commits_;
    return;
  }
  if (!moves) listed = ListedOf(batches);
  if (listing_ == ListingState::kBuilding) {
    for (Listed& l : listed) {
      listing_backlog_.push_back({std::string(l.id), std::move(l.before), std::move(l.after)});
    }
    return;
  }
  for (const Listed& l : listed) index_->Move(l.id, l.before, l.after);
}

// The listing entries a commit moves.
std::vector<ViewStore::Listed> ViewStore::ListedOf(
    const std::vector<projections::PendingBatch>& batches) {
  std::vector<Listed> listed;
  for (const auto& batch : batches) {
    auto name_of = [&batch](uint64_t h) -> std::string {
      for (const auto& [k, v] : batch.names) {
        if (k == h) return v;
      }
      return "";
    };
    for (const auto& change : batch.customers) {
      if (SameListing(change.before, change.after)) continue;
      if (change.recency_only) {  // its RFM segment alone
        ListingIndex::Values before, after;
        before.present = after.present = true;
        before.segment_only = after.segment_only = true;
        before.value[ListingIndex::kRfmSegment] = IndexValue("rfm_segment", change.before);
        after.value[ListingIndex::kRfmSegment] = IndexValue("rfm_segment", change.after);
        listed.push_back({change.id, std::move(before), std::move(after)});
        continue;
      }
      listed.push_back({change.id,
                        ListingValues(change.before, name_of(change.before.region),
                                      name_of(change.before.advisor)),
                        ListingValues(change.after, name_of(change.after.region),
                                      name_of(change.after.advisor))});
    }
  }
  return listed;
}

template <typename F>
auto ViewStore::WithListing(F&& f)
    -> absl::StatusOr<decltype(f(std::declval<const ListingIndex&>()))> {
  listing_read_.store(true);  // no deferring in this catch-up from here
  for (;;) {
    {
      std::shared_lock<WriterFirstLock> lock(index_mu_);
      if (listing_ == ListingState::kMaintained) return f(*index_);
    }
    if (absl::Status s = MakeListingCurrent(); !s.ok()) return s;
  }
}

absl::Status ViewStore::MakeListingCurrent() {
  std::shared_lock<HandleLock> db_lock(mu_);  // (mu_ before index_mu_, as commits)
  std::unique_lock<WriterFirstLock> lock(index_mu_);
  listing_cv_.wait(lock, [this] { return listing_ != ListingState::kBuilding; });
  if (listing_ != ListingState::kDeferred) return absl::OkStatus();
  if (!db_ || closed_.load()) return Closed();
  // Commits wait for the lock meanwhile; those whose write lands after the state read
  // here move their entries once it is released (moving to where an entry is already
  // changes nothing). Close stops it (a reopen waits for it: it holds mu_).
  auto built = BuildListing(nullptr, &closed_);
  if (!built.ok()) return built.status();
  ReplaceIndex(std::move(*built));
  listing_ = ListingState::kMaintained;
  listing_moves_.store(true);
  return absl::OkStatus();
}

void ViewStore::StartListingBuild() {
  if (closed_.load()) return;
  {
    std::unique_lock<WriterFirstLock> lock(index_mu_);
    listing_defer_ok_ = false;
    // One started and not yet under way will build them: not joined here (that would
    // wait for its whole build).
    if (listing_ != ListingState::kDeferred || listing_build_pending_) return;
    listing_build_pending_ = true;
  }
  if (listing_builder_.joinable()) listing_builder_.join();  // the last one, ended
  stop_listing_build_.store(false);
  listing_builder_ = std::thread([this] { BuildListingInBackground(); });
}

void ViewStore::StopListingBuild() {
  stop_listing_build_.store(true);
  if (listing_builder_.joinable()) listing_builder_.join();
}

void ViewStore::BuildListingInBackground() {
  StoreOptions::ListingBuild report;
  const auto t0 = std::chrono::steady_clock::now();
  std::shared_lock<HandleLock> db_lock(mu_);
  const rocksdb::Snapshot* snap = nullptr;
  {
    // The state built from is taken with the indexes locked: a commit moves its entries
    // after this (into the backlog) unless its write is in that state.
    std::unique_lock<WriterFirstLock> lock(index_mu_);
    listing_build_pending_ = false;
    // No store (a reader builds them once there is one again), or a reader built them.
    if (!db_ || listing_ != ListingState::kDeferred) return;
    listing_ = ListingState::kBuilding;
    listing_moves_.store(true);
    listing_backlog_.clear();
    report.deferred_commits = listing_deferred_commits_;
    snap = db_->GetSnapshot();
  }
  if (options_.listing_build_hook) options_.listing_build_hook();
  auto built = BuildListing(snap, &stop_listing_build_);
  db_->ReleaseSnapshot(snap);
  {
    std::unique_lock<WriterFirstLock> lock(index_mu_);
    if (built.ok()) {
      report.customers = (*built)->customers();
      for (const Relisted& r : listing_backlog_) (*built)->Move(r.id, r.before, r.after);
      report.replayed = listing_backlog_.size();
      ReplaceIndex(std::move(*built));
      listing_ = ListingState::kMaintained;
    } else {
      report.status = built.status();
      listing_ = ListingState::kDeferred;  // the next listing read builds them
      listing_moves_.store(false);
    }
    std::vector<Relisted>().swap(listing_backlog_);
  }
  listing_cv_.notify_all();
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (options_.on_listing_build) options_.on_listing_build(report);
}

absl::StatusOr<PartitionMeta> ViewStore::ReadMeta(int32_t partition) {
  std::shared_lock<HandleLock> lock(mu_);
  if (!db_) return Closed();
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), MetaKey(partition), &value);
  if (s.IsNotFound()) return EmptyMeta(partition);
  if (!s.ok()) return ToAbsl(s, "reading partition meta");
  PartitionMeta m;
  if (!m.ParseFromString(value)) {
    return absl::DataLossError(absl::StrCat("partition ", partition, " meta does not parse"));
  }
  return m;
}

absl::StatusOr<std::vector<PartitionMeta>> ViewStore::ListMeta() {
  std::shared_lock<HandleLock> lock(mu_);
  if (!db_) return Closed();
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(IterOptions()));
  return MetasAt(it.get());
}

absl::StatusOr<std::vector<PartitionMeta>> ViewStore::MetasAt(rocksdb::Iterator* it) {
  std::vector<PartitionMeta> out;
  for (it->Seek(rocksdb::Slice(kMetaPrefix.data(), kMetaPrefix.size()));
       it->Valid() && it->key().starts_with(rocksdb::Slice(kMetaPrefix.data(), kMetaPrefix.size()));
       it->Next()) {
    PartitionMeta m;
    if (!m.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
      return absl::DataLossError(absl::StrCat("meta ", it->key().ToString(), " does not parse"));
    }
    out.push_back(std::move(m));
  }
  if (absl::Status s = ToAbsl(it->status(), "listing partition meta"); !s.ok()) return s;
  return out;
}

absl::Status ViewStore::LoadMetas() {
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(IterOptions()));
  auto metas = MetasAt(it.get());
  if (!metas.ok()) return metas.status();
  auto loaded = std::make_shared<Metas>();
  for (PartitionMeta& m : *metas) loaded->by_partition[m.partition()] = std::move(m);
  std::lock_guard<std::mutex> lock(metas_mu_);
  loaded->commits = commits_done_.load();
  metas_ = std::move(loaded);
  return absl::OkStatus();
}

namespace {
// A reading thread's copy of one store's metas pointer (ViewStore::MetasOf).
struct ThreadMetas {
  uint64_t store = 0;  // the store's instance_ (0: none)
  std::shared_ptr<const void> metas;
  uint64_t commits = 0;
};
thread_local ThreadMetas thread_metas;
}  // namespace

std::shared_ptr<const ViewStore::Metas> ViewStore::MetasOf(uint64_t done) {
  ThreadMetas& mine = thread_metas;
  if (mine.store == instance_ && mine.metas && mine.commits == done) {
    return std::static_pointer_cast<const Metas>(mine.metas);
  }
  std::shared_ptr<const Metas> metas;
  {
    std::lock_guard<std::mutex> lock(metas_mu_);
    metas = metas_;
  }
  if (metas) {
    mine.store = instance_;
    mine.metas = metas;
    mine.commits = metas->commits;
  }
  return metas;
}

void ViewStore::NewCustomerIterator(std::string_view customer_id, CustomerIter* out) {
  // A commit that began after commits_done_ was read shows in commits_started_; one that
  // began before the iterator was made, in the second look at it. Neither: the iterator
  // reads the state the first `done` commits left, which metas of `done` commits are of.
  const uint64_t done = commits_done_.load();
  if (commits_started_.load() == done) {
    std::shared_ptr<const Metas> metas = MetasOf(done);
    if (metas && metas->commits == done) {
      // The customer's keys are c/<id> and c/<id> NUL ...: all below c/<id> \x01.
      out->bound = CustomerKey(customer_id);
      out->bound.push_back('\x01');
      out->bound_slice = std::make_unique<rocksdb::Slice>(out->bound);
      rocksdb::ReadOptions ro = CustomerIterOptions();
      ro.iterate_upper_bound = out->bound_slice.get();
      out->it.reset(db_->NewIterator(ro));
      if (commits_started_.load() == done) {
        out->metas = std::move(metas);
        return;
      }
    }
  }
  out->it.reset(db_->NewIterator(CustomerIterOptions()));
}

absl::StatusOr<PartitionMeta> ViewStore::MetaOf(rocksdb::Iterator* it, int32_t partition,
                                                const Metas* metas) {
  if (metas != nullptr) {
    auto m = metas->by_partition.find(partition);
    return m == metas->by_partition.end() ? EmptyMeta(partition) : m->second;
  }
  return MetaAt(it, partition);
}

absl::StatusOr<PartitionMeta> ViewStore::MetaAt(rocksdb::Iterator* it, int32_t partition) {
  const std::string key = MetaKey(partition);
  it->Seek(key);
  if (!it->Valid() || it->key() != rocksdb::Slice(key)) {
    if (absl::Status s = ToAbsl(it->status(), "reading partition meta"); !s.ok()) return s;
    return EmptyMeta(partition);
  }
  PartitionMeta m;
  if (!m.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
    return absl::DataLossError("partition meta does not parse");
  }
  return m;
}

absl::StatusOr<ViewStore::Through> ViewStore::ThroughAt(rocksdb::Iterator* it) {
  auto metas = MetasAt(it);
  if (!metas.ok()) return metas.status();
  Through out;
  for (const PartitionMeta& m : *metas) out[m.partition()] = m.deadlines_through();
  return out;
}

// Reads of one view or page, all from one snapshot of the store.
class ViewStore::Snapshot {
 public:
  explicit Snapshot(rocksdb::DB* db) : db_(db), snap_(db->GetSnapshot()) {
    ro_.snapshot = snap_;
    iter_ro_ = IterOptions();
    iter_ro_.snapshot = snap_;
  }
  ~Snapshot() { db_->ReleaseSnapshot(snap_); }
  Snapshot(const Snapshot&) = delete;
  Snapshot& operator=(const Snapshot&) = delete;

  // NotFound is an empty optional, not an error.
  absl::StatusOr<std::optional<std::string>> Get(const std::string& key) const {
    std::string value;
    rocksdb::Status s = db_->Get(ro_, key, &value);
    if (s.IsNotFound()) return std::optional<std::string>();
    if (!s.ok()) return ToAbsl(s, absl::StrCat("reading ", key));
    return std::optional<std::string>(std::move(value));
  }
  std::vector<rocksdb::Status> MultiGet(const std::vector<std::string>& keys,
                                        std::vector<std::string>* values) const {
    std::vector<rocksdb::Slice> slices(keys.begin(), keys.end());
    return db_->MultiGet(ro_, slices, values);
  }
  rocksdb::Iterator* NewIterator() const { return db_->NewIterator(iter_ro_); }

 private:
  rocksdb::DB* db_;
  const rocksdb::Snapshot* snap_;
  rocksdb::ReadOptions ro_;       // point reads: the prefix filter
  rocksdb::ReadOptions iter_ro_;  // iterators: total order
};

absl::Status ViewStore::LookupTexts(const Snapshot& snap, const std::vector<uint64_t>& hashes,
                                    projections::Texts* texts) {
  std::vector<uint64_t> missing;
  {
    std::lock_guard<std::mutex> lock(texts_mu_);
    for (uint64_t h : hashes) {
      if (h == 0 || texts->count(h)) continue;
      if (auto it = text_cache_.find(h); it != text_cache_.end()) {
        texts->emplace(h, it->second);
      } else {
        missing.push_back(h);
      }
    }
  }
  if (missing.empty()) return absl::OkStatus();
  std::sort(missing.begin(), missing.end());
  missing.erase(std::unique(missing.begin(), missing.end()), missing.end());
  std::vector<std::string> keys;
  keys.reserve(missing.size());
  for (uint64_t h : missing) keys.push_back(TextKey(h));
  std::vector<std::string> values;
  std::vector<rocksdb::Status> st = snap.MultiGet(keys, &values);
  std::lock_guard<std::mutex> lock(texts_mu_);
  if (text_cache_.size() > 200000) text_cache_.clear();  // a bound, not an LRU: texts are cheap
  for (size_t i = 0; i < missing.size(); ++i) {
    if (st[i].IsNotFound()) continue;
    if (!st[i].ok()) return ToAbsl(st[i], "reading the text dictionary");
    text_cache_.emplace(missing[i], values[i]);
    texts->emplace(missing[i], std::move(values[i]));
  }
  return absl::OkStatus();
}

absl::Status ViewStore::AssembleView(rocksdb::Iterator* it, std::string_view id,
                                     const ThroughOf& through, lifecycle::v1::CustomerView* out,
                                     CustomerRecord* record_out) {
  CustomerRecord local;
  CustomerRecord& record = record_out ? *record_out : local;
  if (absl::Status s = projections::DecodeRecord(it->value().ToStringView(), &record); !s.ok()) {
    return absl::DataLossError(absl::StrCat("customer ", std::string(id), ": ", s.message()));
  }
  projections::CustomerParts parts;
  const std::string customer(id);
  parts.id = &customer;
  parts.record = &record;
  // Profile, history and texts: the keys right after the record, in one pass.
  lifecycle::v1::Profile profile;
  projections::Texts texts;
  const std::string prefix = CustomerPrefix(id);
  for (it->Next(); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    const std::string_view value = it->value().ToStringView();
    const char family = it->key().size() > prefix.size() ? it->key()[prefix.size()] : 0;
    absl::Status s;
    switch (family) {
      case 'p':
        if (!profile.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
          s = absl::DataLossError("profile does not parse");
        }
        parts.profile = &profile;
        break;
      case 't':
        s = projections::DecodeTransition(value, &parts.transitions.emplace_back());
        break;
      case 'g':
        s = projections::DecodeLostDeal(value, &parts.lost_deals.emplace_back());
        break;
      case 'h':
        if (!projections::DecodeAlertRef(value, &parts.alerts.emplace_back())) {
          s = absl::DataLossError("an alert reference does not parse");
        }
        break;
      case 's':
        texts.emplace(BigEndian(it->key().ToStringView().substr(prefix.size() + 1)), value);
        break;
      default:
        break;
    }
    if (!s.ok()) return absl::DataLossError(absl::StrCat("customer ", customer, ": ", s.message()));
  }
  if (absl::Status s = ToAbsl(it->status(), "reading a customer's history"); !s.ok()) return s;
  // A view shows the newest entries of each history.
  auto newest = [](auto& v, int n) {
    if (static_cast<int>(v.size()) > n) v.erase(v.begin(), v.end() - n);
  };
  newest(parts.transitions, config_->max_transitions);
  newest(parts.lost_deals, config_->max_lost_deals);
  newest(parts.alerts, projections::kViewAlerts);
  // Stored as its last event left it: its deadlines since, run again.
  auto deadlines_through = through(record.partition);
  if (!deadlines_through.ok()) return deadlines_through.status();
  projections::CatchUpStored(*config_, *deadlines_through, &record);
  projections::BuildView(*config_, parts, texts, out);
  return absl::OkStatus();
}

absl::StatusOr<bool> ViewStore::ViewAt(rocksdb::Iterator* it, std::string_view customer_id,
                                       lifecycle::v1::CustomerView* out, CustomerRecord* record,
                                       PartitionMeta* meta, const Metas* metas) {
  const std::string key = CustomerKey(customer_id);
  it->Seek(key);
  if (!it->Valid() || it->key() != rocksdb::Slice(key)) {
    if (absl::Status s = ToAbsl(it->status(), "reading a customer"); !s.ok()) return s;
    return false;
  }
  // The partition's meta in the same state, once the customer's keys are read.
  auto through = [it, meta, metas](int32_t partition) -> absl::StatusOr<int64_t> {
    auto m = MetaOf(it, partition, metas);
    if (!m.ok()) return m.status();
    const int64_t t = m->deadlines_through();
    if (meta != nullptr) *meta = std::move(*m);
    return t;
  };
  if (absl::Status s = AssembleView(it, customer_id, through, out, record); !s.ok()) return s;
  return true;
}

absl::StatusOr<std::optional<lifecycle::v1::CustomerView>> ViewStore::ReadCustomer(
    std::string_view customer_id, const std::map<int32_t, int64_t>* stream_times) {
  std::shared_lock<HandleLock> lock(mu_);
  if (!db_) return Closed();
  // One iterator reads the record and the keys after it, from the one consistent
  // state it was created on (no snapshot to take and release).
  CustomerIter ci;
  NewCustomerIterator(customer_id, &ci);
  CustomerRecord record;
  std::optional<lifecycle::v1::CustomerView> view(std::in_place);
  auto found = ViewAt(ci.it.get(), customer_id, &*view, &record, nullptr, ci.metas.get());
  if (!found.ok()) return found.status();
  if (!*found) return std::optional<lifecycle::v1::CustomerView>();
  if (stream_times != nullptr) {
    if (auto t = stream_times->find(record.partition); t != stream_times->end()) {
      projections::PAliveAsOf(*config_, record, t->second, &*view);
    }
  }
  return view;
}

absl::StatusOr<std::optional<CustomerRead>> ViewStore::ReadCustomerWithMeta(
    std::string_view customer_id, bool with_p_alive_series, lifecycle::v1::CustomerView* into) {
  std::shared_lock<HandleLock> lock(mu_);
  if (!db_) return Closed();
  // The view and its partition's meta in the same state of the store.
  CustomerIter ci;
  NewCustomerIterator(customer_id, &ci);
  CustomerRecord record;
  CustomerRead read;
  lifecycle::v1::CustomerView* view = into != nullptr ? into : &read.view;
  auto found = ViewAt(ci.it.get(), customer_id, view, &record, &read.meta, ci.metas.get());
  if (!found.ok()) return found.status();
  if (!*found) return std::optional<CustomerRead>();
  const int64_t now = std::max(read.meta.stream_time().seconds(), record.evaluated_at);
  projections::PAliveAsOf(*config_, record, now, view);
  if (with_p_alive_series) {
    read.p_alive_series = projections::rules::PAliveSeries(*config_, record, now);
    read.activity_days.assign(record.recent_days.begin(), record.recent_days.end());
    if (record.has_activity()) {
      const auto first = static_cast<int32_t>(projections::EpochDay(projections::SecondsOf(record.first_activity_ns)));
      if (read.activity_days.empty() || read.activity_days.front() > first) {
        read.activity_days.insert(read.activity_days.begin(), first);
      }
    }
  }
  return std::optional<CustomerRead>(std::move(read));
}

absl::StatusOr<std::optional<std::string>> ViewStore::ReadRecordBytes(
    std::string_view customer_id) {
  std::shared_lock<HandleLock> lock(mu_);
  if (!db_) return Closed();
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), CustomerKey(customer_id), &value);
  if (s.IsNotFound()) return std::optional<std::string>();
  if (!s.ok()) return ToAbsl(s, "reading a customer");
  return std::optional<std::string>(std::move(value));
}

absl::StatusOr<std::optional<CustomerRecord>> ViewStore::ReadRecord(std::string_view customer_id) {
  auto bytes = ReadRecordBytes(customer_id);
  if (!bytes.ok()) return bytes.status();
  if (!bytes->has_value()) return std::optional<CustomerRecord>();
  std::optional<CustomerRecord> record(std::in_place);
  if (absl::Status d = projections::DecodeRecord(**bytes, &*record); !d.ok()) {
    return absl::DataLossError(absl::StrCat("customer ", std::string(customer_id), ": ", d.message()));
  }
  return record;
}

absl::StatusOr<projections::StateReader::Journal> ViewStore::ReadJournal(
    std::string_view customer_id, int slot, uint32_t first) {
  std::shared_lock<HandleLock> lock(mu_);
  if (!db_) return Closed();
  projections::StateReader::Journal out;
  if (slot >= 0) {
    std::string value;
    rocksdb::Status s = db_->Get(rocksdb::ReadOptions(),
                                 JournalSnapshotKey(customer_id, static_cast<uint32_t>(slot)), &value);
    if (s.ok()) {
      out.snapshot = std::move(value);
    } else if (!s.IsNotFound()) {
      return ToAbsl(s, "reading a journal snapshot");
    }
  }
  const std::string prefix = JournalPrefix(customer_id) + "e";
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(IterOptions()));
  for (it->Seek(JournalEntryKey(customer_id, first)); it->Valid() && it->key().starts_with(prefix);
       it->Next()) {
    out.entries.emplace_back(
        static_cast<uint32_t>(BigEndian(it->key().ToStringView().substr(prefix.size()))),
        it->value().ToString());
  }
  if (absl::Status s = ToAbsl(it->status(), "reading a journal"); !s.ok()) return s;
  return out;
}

absl::StatusOr<std::vector<projections::AlertRef>> ViewStore::ReadAlertRefs(
    std::string_view customer_id) {
  std::shared_lock<HandleLock> lock(mu_);
  if (!db_) return Closed();
  std::vector<projections::AlertRef> out;
  const std::string prefix = HistoryPrefix('h', customer_id);
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(IterOptions()));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    if (!projections::DecodeAlertRef(it->value().ToStringView(), &out.emplace_back())) {
      return absl::DataLossError(absl::StrCat("customer ", std::string(customer_id),
                                              ": an alert reference does not parse"));
    }
  }
  if (absl::Status s = ToAbsl(it->status(), "reading a customer's alerts"); !s.ok()) return s;
  return out;
}

absl::StatusOr<std::optional<lifecycle::v1::Profile>> ViewStore::ReadProfile(
    std::string_view customer_id) {
  std::shared_lock<HandleLock> lock(mu_);
  if (!db_) return Closed();
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), CustomerSubKey('p', customer_id), &value);
  if (s.IsNotFound()) return std::optional<lifecycle::v1::Profile>();
  if (!s.ok()) return ToAbsl(s, "reading a profile");
  std::optional<lifecycle::v1::Profile> p(std::in_place);
  if (!p->ParseFromString(value)) return absl::DataLossError("profile does not parse");
  return p;
}

absl::StatusOr<std::optional<std::string>> ViewStore::ReadText(uint64_t hash) {
  std::shared_lock<HandleLock> lock(mu_);
  if (!db_) return Closed();
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), TextKey(hash), &value);
  if (s.IsNotFound()) return std::optional<std::string>();
  if (!s.ok()) return ToAbsl(s, "reading the text dictionary");
  return std::optional<std::string>(std::move(value));
}

absl::StatusOr<std::map<int32_t, ViewStore::Deadlines>> ViewStore::ReadDeadlines(
    const std::vector<int32_t>& partitions) {
  std::shared_lock<HandleLock> lock(mu_);
  if (!db_) return Closed();
  std::map<int32_t, Deadlines> out;
  for (int32_t p : partitions) out[p];
  absl::Status s = ScanRecords([&out](std::string_view id, const CustomerRecord& r) {
    if (projections::DueOf(r) != kNever) {
      if (auto d = out.find(r.partition); d != out.end()) {
        d->second.emplace_back(projections::DueOf(r), std::string(id));
      }
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<std::map<std::string, lifecycle::v1::AggregateValue>> ViewStore::ReadAggregates(
    int32_t partition, std::optional<std::string> scope) {
  std::shared_lock<HandleLock> lock(mu_);
  if (!db_) return Closed();
  std::map<std::string, lifecycle::v1::AggregateValue> out;
  const std::string prefix = partition < 0 ? std::string("a/") : AggPrefix(partition);
  absl::Status bad;
  absl::Status s = ScanPrefix(db_.get(), prefix, [&](const rocksdb::Slice& k,
                                                     const rocksdb::Slice& v) {
    // Keys are a/P/<dimension>/<value>: strip "a/P/".
    const std::string_view key(k.data() + 8, k.size() - 8);
    if (scope && (scope->empty() ? key.starts_with('@') : !key.starts_with(*scope))) return true;
    lifecycle::v1::AggregateValue value;
    if (!value.ParseFromArray(v.data(), static_cast<int>(v.size()))) {
      bad = absl::DataLossError(absl::StrCat("aggregate ", k.ToString(), " does not parse"));
      return false;
    }
    auto& sum = out[std::string(key)];
    sum.set_customers(sum.customers() + value.customers());
    sum.set_revenue_minor(sum.revenue_minor() + value.revenue_minor());
    sum.set_activity_days(sum.activity_days() + value.activity_days());
    return true;
  });
  if (!s.ok()) return s;
  if (!bad.ok()) return bad;
  return out;
}

absl::StatusOr<std::map<std::string, lifecycle::v1::AggregateValue>>
ViewStore::ReadAggregatesOf(const std::set<int32_t>& partitions, std::optional<std::string> scope) {
  std::map<std::string, lifecycle::v1::AggregateValue> out;
  for (int32_t p : partitions) {
    auto one = ReadAggregates(p, scope);
    if (!one.ok()) return one.status();
    for (const auto& [key, value] : *one) {
      auto& sum = out[key];
      sum.set_customers(sum.customers() + value.customers());
      sum.set_revenue_minor(sum.revenue_minor() + value.revenue_minor());
      sum.set_activity_days(sum.activity_days() + value.activity_days());
    }
  }
  return out;
}

absl::StatusOr<std::map<std::string, lifecycle::v1::AggregateValue>>
ViewStore::ReadAdvisorAggregates(const std::string& advisor, const std::set<int32_t>* partitions,
                                 const std::function<int32_t(std::string_view)>& partition_of) {
  const std::string scope = absl::StrCat("@", advisor, "/");
  auto events = partitions ? ReadAggregatesOf(*partitions, scope) : ReadAggregates(-1, scope);
  if (!events.ok()) return events.status();
  std::map<std::string, lifecycle::v1::AggregateValue> out = std::move(*events);
  auto scanned = WithListing([&advisor](const ListingIndex& index) {
    return index.Scan(std::string(ListingIndex::kPrefix) + "advisor/" + advisor + "/", "", "",
                      std::numeric_limits<size_t>::max());
  });
  if (!scanned.ok()) return scanned.status();
  std::vector<std::string> keys = std::move(*scanned);
  const size_t id_from = ListingIndex::kPrefix.size() + std::string_view("advisor/").size() +
                         advisor.size() + 1;
  absl::flat_hash_map<uint64_t, std::string> names;
  Through through;  // the partitions' deadlines_through, as of the last commit that landed
  {
    std::lock_guard<std::mutex> lock(committed_through_->mu);
    through = committed_through_->by_partition;
  }
  absl::Status bad;
  auto name = [&](uint64_t h) -> std::string {
    auto it = names.find(h);
    if (it == names.end()) {
      std::string words;
      if (h != 0) {
        auto text = ReadText(h);
        if (!text.ok()) bad = text.status();
        if (text.ok() && text->has_value()) words = **text;
      }
      it = names.emplace(h, std::move(words)).first;
    }
    return it->second.empty() ? std::string("unknown") : it->second;
  };
  for (const auto& key : keys) {
    if (partitions && partition_of &&
        !partitions->count(partition_of(std::string_view(key).substr(id_from)))) {
      continue;
    }
    auto record = ReadRecord(std::string_view(key).substr(id_from));
    if (!record.ok()) return record.status();
    if (!record->has_value()) continue;  // erased since the index was read
    if (auto t = through.find((*record)->partition); t != through.end()) {
      projections::CatchUpStored(*config_, t->second, &**record);
    }
    const projections::Contribution c = projections::Contribution::Of(**record);
    for (const auto& counted : c.Keys()) {
      auto& v = out[absl::StrCat(scope, projections::CounterKeyName(counted.key, name))];
      v.set_customers(v.customers() + 1);
      v.set_revenue_minor(v.revenue_minor() + counted.revenue);
      v.set_activity_days(v.activity_days() + counted.activities);
    }
    if (!bad.ok()) return bad;
  }
  return out;
}

absl::StatusOr<lifecycle::v1::Alert> ViewStore::AlertAt(const Snapshot& snap,
                                                       std::string_view key,
                                                       std::string_view bytes) {
  projections::AlertEntry entry;
  // The log's key names the alert's partition and sequence (l/P/S).
  const absl::string_view k(key.data(), key.size());
  if (k.size() != 2 + 5 + 1 + 20 || !absl::SimpleAtoi(k.substr(2, 5), &entry.partition) ||
      !absl::SimpleAtoi(k.substr(8), &entry.sequence)) {
    return absl::DataLossError(absl::StrCat("an alert's key is not l/P/S: ", k));
  }
  if (absl::Status s = projections::DecodeAlert(bytes, &entry); !s.ok()) return s;
  projections::Texts texts;
  // Region and advisor from the shared dictionary; ids from the customer's texts.
  if (auto s = LookupTexts(snap, {entry.fact.region, entry.fact.advisor}, &texts); !s.ok()) {
    return s;
  }
  std::vector<uint64_t> ids = projections::TextsOf(entry);
  std::erase(ids, entry.fact.region);
  std::erase(ids, entry.fact.advisor);
  if (!ids.empty()) {
    std::vector<std::string> keys, values;
    for (uint64_t h : ids) keys.push_back(CustomerTextKey(entry.customer_id, h));
    std::vector<rocksdb::Status> st = snap.MultiGet(keys, &values);
    for (size_t i = 0; i < ids.size(); ++i) {
      if (st[i].ok()) {
        texts.emplace(ids[i], std::move(values[i]));
      } else if (!st[i].IsNotFound()) {
        return ToAbsl(st[i], "reading an alert's texts");
      }
    }
  }
  return projections::BuildAlert(entry, texts);
}

absl::StatusOr<std::vector<lifecycle::v1::Alert>> ViewStore::ReadAlerts(int32_t partition,
                                                                      int64_t from_seq,
                                                                      size_t limit) {
  std::shared_lock<HandleLock> lock(mu_);
  if (!db_) return Closed();
  Snapshot snap(db_.get());
  std::vector<lifecycle::v1::Alert> out;
  const std::string prefix = absl::StrCat("l/", P(partition), "/");
  std::unique_ptr<rocksdb::Iterator> it(snap.NewIterator());
  for (it->Seek(AlertKey(partition, from_seq)); it->Valid() && it->key().starts_with(prefix) &&
                                                out.size() < limit;
       it->Next()) {
    auto a = AlertAt(snap, it->key().ToStringView(), it->value().ToStringView());
    if (!a.ok()) return a.status();
    out.push_back(std::move(*a));
  }
  if (absl::Status s = ToAbsl(it->status(), "reading alerts"); !s.ok()) return s;
  return out;
}

absl::StatusOr<std::vector<lifecycle::v1::Alert>> ViewStore::ReadCustomerAlerts(
    const std::string& customer_id) {
  std::shared_lock<HandleLock> lock(mu_);
  if (!db_) return Closed();
  Snapshot snap(db_.get());
  const std::string prefix = HistoryPrefix('h', customer_id);
  std::vector<std::string> keys;
  std::unique_ptr<rocksdb::Iterator> it(snap.NewIterator());
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    const std::string_view rest = it->key().ToStringView().substr(prefix.size());  // P S
    if (rest.size() != kPartitionBytes + kAlertSeqBytes) continue;
    keys.push_back(AlertKey(static_cast<int32_t>(BigEndian(rest.substr(0, kPartitionBytes))),
                            static_cast<int64_t>(BigEndian(rest.substr(kPartitionBytes)))));
  }
  if (absl::Status s = ToAbsl(it->status(), "reading a customer's alerts"); !s.ok()) return s;
  std::vector<lifecycle::v1::Alert> out;
  for (const auto& key : keys) {
    auto value = snap.Get(key);
    if (!value.ok()) return value.status();
    if (!value->has_value()) return absl::DataLossError(absl::StrCat(key, " is missing"));
    auto a = AlertAt(snap, key, **value);
    if (!a.ok()) return a.status();
    out.push_back(std::move(*a));
  }
  return out;  // in (partition, sequence) order: the order they were raised
}

absl::StatusOr<std::vector<std::string>> ViewStore::ReadIndex(const std::string& dimension,
                                                              const std::string& value,
                                                              size_t limit) {
  const std::string prefix = absl::StrCat("x/", dimension, "/", value, "/");
  auto out = WithListing([&](const ListingIndex& index) { return index.Scan(prefix, "", "", limit); });
  if (!out.ok()) return out.status();
  for (auto& key : *out) key.erase(0, prefix.size());
  return out;
}

absl::Status ViewStore::ForEachCustomer(
    const std::function<void(const lifecycle::v1::CustomerView&)>& fn) {
  std::shared_lock<HandleLock> lock(mu_);
  if (!db_) return Closed();
  const std::string prefix(kCustomerPrefix);
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(IterOptions()));
  auto through = ThroughAt(it.get());
  if (!through.ok()) return through.status();
  auto through_of = [&through](int32_t partition) -> absl::StatusOr<int64_t> {
    auto t = through->find(partition);
    return t == through->end() ? 0 : t->second;
  };
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix);) {
    const std::string id = it->key().ToString().substr(prefix.size());
    if (id.find('\0') != std::string::npos) {  // (not reached: views read their keys)
      it->Next();
      continue;
    }
    lifecycle::v1::CustomerView view;
    // Moves past the customer's keys.
    if (absl::Status s = AssembleView(it.get(), id, through_of, &view); !s.ok()) return s;
    fn(view);
  }
  return ToAbsl(it->status(), "scanning customers");
}

absl::Status ViewStore::ForEachKey(
    const std::function<void(std::string_view, std::string_view)>& fn) {
  std::shared_lock<HandleLock> lock(mu_);
  if (!db_) return Closed();
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(IterOptions()));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    fn(it->key().ToStringView(), it->value().ToStringView());
  }
  return ToAbsl(it->status(), "scanning the store");
}

void ViewStore::ReplaceIndex(std::unique_ptr<ListingIndex> index) {
  index_ = std::move(index);
  ++index_generation_;
}

absl::StatusOr<std::vector<ListingIndex::Ranked>> ViewStore::Rank(
    const ListingIndex::RankQuery& query) {
  // A slice of customers at a time, the indexes' lock let go between slices: a commit
  // moving entries waits for one slice, not a whole pass (and, the lock being
  // writer-first, readers ranking back to back cannot keep it out).
  const size_t slice = std::max<size_t>(1, options_.rank_slice);
  enum class Step { kMore, kReplaced, kDone };
  std::vector<ListingIndex::Ranked> out;
  for (;;) {  // again from the start when the indexes are replaced meanwhile (a build)
    ListingIndex::Ranking ranking(*config_, query);
    std::optional<uint64_t> generation;
    for (Step step = Step::kMore; step != Step::kReplaced;) {
      auto stepped = WithListing([&](const ListingIndex& index) {
        if (generation.has_value() && *generation != index_generation_) return Step::kReplaced;
        generation = index_generation_;
        if (ranking.Step(index, slice)) return Step::kMore;
        out = ranking.Finish(index);
        return Step::kDone;
      });
      if (!stepped.ok()) return stepped.status();
      step = *stepped;
      if (step == Step::kDone) return out;
      if (step == Step::kMore && options_.between_rank_slices) options_.between_rank_slices();
    }
  }
}

absl::StatusOr<std::vector<std::string>> ViewStore::ScanKeys(const std::string& prefix,
                                                             const std::string& start_after,
                                                             const std::string& end_before,
                                                             size_t limit) {
  if (std::string_view(prefix).starts_with(ListingIndex::kPrefix)) {  // the listing indexes, in memory
    return WithListing([&](const ListingIndex& index) {
      return index.Scan(prefix, start_after, end_before, limit);
    });
  }
  std::shared_lock<HandleLock> lock(mu_);
  if (!db_) return Closed();
  std::vector<std::string> out;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(IterOptions()));
  if (start_after.empty()) {
    it->Seek(prefix);
  } else {
    it->Seek(start_after);
    if (it->Valid() && it->key() == rocksdb::Slice(start_after)) it->Next();
  }
  for (; it->Valid() && it->key().starts_with(prefix) && out.size() < limit; it->Next()) {
    if (!end_before.empty() && it->key().compare(rocksdb::Slice(end_before)) >= 0) break;
    if (it->key().ToStringView().find('\0') != std::string_view::npos) continue;  // not a record
    out.push_back(it->key().ToString());
  }
  if (absl::Status st = ToAbsl(it->status(), "scanning keys"); !st.ok()) return st;
  return out;
}

absl::StatusOr<int64_t> ViewStore::ReadPosition(const std::string& name) {
  std::shared_lock<HandleLock> lock(mu_);
  if (!db_) return Closed();
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), absl::StrCat("o/", name), &value);
  if (s.IsNotFound()) return int64_t{0};
  if (!s.ok()) return ToAbsl(s, "reading a position");
  return std::stoll(value);
}

absl::Status ViewStore::WritePositions(const std::map<std::string, int64_t>& positions) {
  std::shared_lock<HandleLock> lock(mu_);
  if (!db_) return Closed();
  rocksdb::WriteBatch wb;
  for (const auto& [name, v] : positions) wb.Put(absl::StrCat("o/", name), std::to_string(v));
  rocksdb::WriteOptions wo;
  wo.sync = options_.sync_writes;
  return ToAbsl(db_->Write(wo, &wb), "writing positions");
}

uint64_t ViewStore::EstimateCustomers() {
  std::shared_lock<HandleLock> lock(mu_);
  if (!db_) return 0;
  uint64_t n = 0;
  db_->GetIntProperty("rocksdb.estimate-num-keys", &n);
  return n;
}

absl::StatusOr<StoreStats> ViewStore::Stats() {
  std::shared_lock<HandleLock> lock(mu_);
  if (!db_) return Closed();
  StoreStats st;
  uint64_t v = 0;
  if (db_->GetIntProperty("rocksdb.estimate-live-data-size", &v)) st.live_data_bytes = v;
  if (db_->GetIntProperty("rocksdb.total-sst-files-size", &v)) st.sst_bytes = v;
  if (db_->GetIntProperty("rocksdb.estimate-pending-compaction-bytes", &v)) {
    st.pending_compaction_bytes = v;
  }
  if (db_->GetIntProperty("rocksdb.is-write-stopped", &v)) st.write_stopped = v != 0;
  for (int level = 0; level < db_->NumberLevels(); ++level) {
    std::string files;
    if (!db_->GetProperty(absl::StrCat("rocksdb.num-files-at-level", level), &files)) continue;
    const uint64_t n = std::strtoull(files.c_str(), nullptr, 10);
    if (level == 0) st.l0_files = n;
    if (n > 0) ++st.levels_with_files;
  }
  st.compacting = compacting_.load();
  st.full_compactions = full_compactions_.load();
  // The column family's stall counters since open ("io_stalls.total_stop", ...).
  std::map<std::string, std::string> cf;
  if (db_->GetMapProperty("rocksdb.cfstats", &cf)) {
    auto read = [&](const char* key) -> uint64_t {
      auto it = cf.find(key);
      return it == cf.end() ? 0 : std::strtoull(it->second.c_str(), nullptr, 10);
    };
    st.stalls_stop = read("io_stalls.total_stop");
    st.stalls_slowdown = read("io_stalls.total_slowdown");
  }
  return st;
}

}  // namespace lifecycle::store
