#include "services/store/store.h"

#include <algorithm>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "rocksdb/db.h"
#include "rocksdb/options.h"
#include "rocksdb/table.h"
#include "rocksdb/cache.h"
#include "rocksdb/filter_policy.h"
#include "rocksdb/slice_transform.h"
#include "rocksdb/write_batch.h"

namespace lifecycle::store {
namespace {

using lifecycle::v1::CustomerState;
using lifecycle::v1::PartitionMeta;

constexpr absl::string_view kCustomerPrefix = "c/";
constexpr absl::string_view kMetaPrefix = "m/";
constexpr int64_t kNever = projections::kNever;

std::string Num(int64_t v, int width) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%0*lld", width, static_cast<long long>(v));
  return buf;
}
std::string P(int32_t partition) { return Num(partition, 5); }
std::string DuePrefix(int32_t partition) { return absl::StrCat("d/", P(partition), "/"); }
std::string DueKey(int32_t partition, int64_t t, const std::string& id) {
  return absl::StrCat(DuePrefix(partition), Num(t, 20), "/", id);
}
std::string AggPrefix(int32_t partition) { return absl::StrCat("a/", P(partition), "/"); }
std::string AlertKey(int32_t partition, int64_t seq) {
  return absl::StrCat("l/", P(partition), "/", Num(seq, 20));
}
constexpr const char* kIndexDimensions[] = {"stage", "grade", "tier", "region", "rfm_segment",
                                            "risk"};
std::string IndexKey(const std::string& dim, const std::string& value, const std::string& id) {
  return absl::StrCat("x/", dim, "/", value, "/", id);
}

template <typename Fn>
absl::Status ScanPrefix(rocksdb::DB* db, const std::string& prefix, Fn fn) {
  rocksdb::ReadOptions ro;
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(ro));
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
      path_(std::move(path)) {}

ViewStore::~ViewStore() {
  std::unique_lock<std::shared_mutex> lock(mu_);
  if (db_) {
    rocksdb::Status s = db_->Close();
    (void)s;  // deliberately ignored: nothing useful to do at destruction
  }
}

absl::StatusOr<std::unique_ptr<ViewStore>> ViewStore::Open(const std::string& path,
                                                           const StoreOptions& options) {
  rocksdb::Options o;
  o.create_if_missing = options.create_if_missing;
  o.IncreaseParallelism(2);
  o.OptimizeLevelStyleCompaction();
  // Memtables: OptimizeLevelStyleCompaction allows 6 of 128 MiB, most of the daemon's
  // resident memory; 3 of 64 MiB write as fast here (docs/benchmarks.md).
  o.write_buffer_size = options.write_buffer_bytes;
  o.max_write_buffer_number = 3;
  o.min_write_buffer_number_to_merge = 1;
  // Commits write their keys in ascending order (ViewStore::Commit); a hint per key
  // family ("c", "d", "x", …) lets each insert start where the previous one ended.
  // Hints are used by single-threaded memtable writes only.
  o.memtable_insert_with_hint_prefix_extractor.reset(rocksdb::NewFixedPrefixTransform(1));
  o.allow_concurrent_memtable_write = false;
  rocksdb::BlockBasedTableOptions t;
  t.block_cache = rocksdb::NewLRUCache(options.block_cache_bytes);
  t.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  // XXH3 block checksums: this RocksDB build computes CRC32C without the CPU
  // instruction, which showed in profiles of reads and compactions.
  t.checksum = rocksdb::kXXH3;
  o.table_factory.reset(rocksdb::NewBlockBasedTableFactory(t));
  if (options.env) o.env = options.env;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(o, path, &raw);
  if (!s.ok()) return ToAbsl(s, absl::StrCat("opening the view store at ", path));
  return std::unique_ptr<ViewStore>(new ViewStore(std::unique_ptr<rocksdb::DB>(raw), options,
                                                  std::make_unique<rocksdb::Options>(o), path));
}

std::string RiskIndexValue(int64_t p_alive_micro) {
  return p_alive_micro < 0 ? std::string("none") : Num(p_alive_micro, 7);
}

std::string IndexValue(const std::string& dim, const projections::IndexKeys& k) {
  auto shortname = [](const std::string& name, absl::string_view prefix) {
    return name.rfind(std::string(prefix), 0) == 0 ? name.substr(prefix.size()) : name;
  };
  if (dim == "stage") return shortname(lifecycle::v1::Stage_Name(k.stage), "STAGE_");
  if (dim == "grade") {
    return k.grade == lifecycle::v1::VALUE_GRADE_UNSPECIFIED
               ? std::string("NONE")
               : shortname(lifecycle::v1::ValueGrade_Name(k.grade), "VALUE_GRADE_");
  }
  if (dim == "tier") return shortname(lifecycle::v1::Tier_Name(k.tier), "TIER_");
  if (dim == "rfm_segment") return k.rfm_segment.empty() ? std::string("none") : k.rfm_segment;
  if (dim == "risk") return RiskIndexValue(k.p_alive_micro);
  return k.region.empty() ? std::string("unknown") : k.region;
}

namespace {
// True when `dim`'s field is the same in both (then so is its index value).
bool SameIndexField(std::string_view dim, const projections::IndexKeys& a,
                    const projections::IndexKeys& b) {
  if (dim == "stage") return a.stage == b.stage;
  if (dim == "grade") return a.grade == b.grade;
  if (dim == "tier") return a.tier == b.tier;
  if (dim == "rfm_segment") return a.rfm_segment == b.rfm_segment;
  if (dim == "risk") return a.p_alive_micro == b.p_alive_micro;
  return a.region == b.region;
}
}  // namespace

absl::Status ViewStore::Reopen() {
  // RocksDB cannot always leave the error state of a failed WAL write (Resume()
  // succeeds but later writes still fail), so the store is closed and opened again:
  // what was written before the failure is recovered from the WAL.
  std::unique_lock<std::shared_mutex> lock(mu_);
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
  return absl::OkStatus();
}

absl::Status ViewStore::Commit(const std::vector<projections::PendingBatch>& batches) {
  if (needs_reopen_.load()) {
    if (absl::Status s = Reopen(); !s.ok()) return s;
  }
  std::shared_lock<std::shared_mutex> lock(mu_);
  if (!db_) return Closed();
  // Every key of a commit is distinct, so the operations can go into the batch in key
  // order: the memtable then inserts each one next to the last (insert hints, see
  // Open), which costs much less than a search from the top of the skip list.
  struct Op {
    std::string key;
    std::string value;
    bool put;
  };
  std::vector<Op> ops;
  auto put = [&ops](std::string key, std::string value) {
    ops.push_back({std::move(key), std::move(value), true});
  };
  auto del = [&ops](std::string key) { ops.push_back({std::move(key), std::string(), false}); };
  for (const auto& batch : batches) {
    const int32_t partition = batch.meta.partition();
    for (const auto& change : batch.customers) {
      const std::string& id = change.state->view().customer_id();
      std::string buf;
      change.state->SerializeToString(&buf);
      put(CustomerKey(id), std::move(buf));
      // Listing indexes: move the entries whose value changed.
      for (const char* dim : kIndexDimensions) {
        if (change.before.present == change.after.present &&
            SameIndexField(dim, change.before, change.after)) {
          continue;
        }
        const std::string before = change.before.present ? IndexValue(dim, change.before) : "";
        const std::string after = change.after.present ? IndexValue(dim, change.after) : "";
        if (before == after) continue;
        if (change.before.present) del(IndexKey(dim, before, id));
        if (change.after.present) put(IndexKey(dim, after, id), "");
      }
      if (change.before.due != change.after.due) {
        if (change.before.due != kNever) del(DueKey(partition, change.before.due, id));
        if (change.after.due != kNever) put(DueKey(partition, change.after.due, id), "");
      }
    }
    for (const auto& [key, value] : batch.aggregates) {
      if (value.customers() == 0 && value.revenue_minor() == 0) {
        del(absl::StrCat(AggPrefix(partition), key));  // back at zero: no entry
        continue;
      }
      put(absl::StrCat(AggPrefix(partition), key), value.SerializeAsString());
    }
    for (const auto& alert : batch.alerts) {
      put(AlertKey(partition, alert.sequence()), alert.SerializeAsString());
      put(absl::StrCat("h/", alert.customer_id(), "/", P(partition), "/", Num(alert.sequence(), 20)),
          "");
    }
    put(MetaKey(batch.meta.partition()), batch.meta.SerializeAsString());
  }
  std::stable_sort(ops.begin(), ops.end(), [](const Op& a, const Op& b) { return a.key < b.key; });
  rocksdb::WriteBatch wb;
  for (const Op& op : ops) {
    rocksdb::Status s = op.put ? wb.Put(op.key, op.value) : wb.Delete(op.key);
    if (!s.ok()) return ToAbsl(s, "building the commit batch");
  }
  rocksdb::WriteOptions wo;
  wo.sync = options_.sync_writes;
  rocksdb::Status w = db_->Write(wo, &wb);
  if (!w.ok()) needs_reopen_.store(true);
  return ToAbsl(w, "committing to the view store");
}

absl::StatusOr<PartitionMeta> ViewStore::ReadMeta(int32_t partition) {
  std::shared_lock<std::shared_mutex> lock(mu_);
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
  std::shared_lock<std::shared_mutex> lock(mu_);
  if (!db_) return Closed();
  std::vector<PartitionMeta> out;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
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

absl::StatusOr<std::optional<CustomerState>> ViewStore::ReadCustomer(std::string_view customer_id) {
  std::shared_lock<std::shared_mutex> lock(mu_);
  if (!db_) return Closed();
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), CustomerKey(customer_id), &value);
  if (s.IsNotFound()) return std::optional<CustomerState>();
  if (!s.ok()) return ToAbsl(s, "reading a customer");
  CustomerState state;
  if (!state.ParseFromString(value)) {
    return absl::DataLossError(absl::StrCat("customer ", std::string(customer_id), " does not parse"));
  }
  return std::optional<CustomerState>(std::move(state));
}

absl::StatusOr<std::optional<CustomerRead>> ViewStore::ReadCustomerWithMeta(
    std::string_view customer_id) {
  std::shared_lock<std::shared_mutex> lock(mu_);
  if (!db_) return Closed();
  const rocksdb::Snapshot* snap = db_->GetSnapshot();
  rocksdb::ReadOptions ro;
  ro.snapshot = snap;
  std::string value;
  absl::StatusOr<std::optional<CustomerRead>> result;
  rocksdb::Status s = db_->Get(ro, CustomerKey(customer_id), &value);
  if (s.IsNotFound()) {
    result = std::optional<CustomerRead>();
  } else if (!s.ok()) {
    result = ToAbsl(s, "reading a customer");
  } else {
    CustomerRead read;
    if (!read.state.ParseFromString(value)) {
      result = absl::DataLossError(absl::StrCat("customer ", std::string(customer_id), " does not parse"));
    } else {
      const int32_t partition = read.state.view().partition();
      std::string meta;
      rocksdb::Status ms = db_->Get(ro, MetaKey(partition), &meta);
      if (ms.IsNotFound()) {
        read.meta = EmptyMeta(partition);
        result = std::optional<CustomerRead>(std::move(read));
      } else if (!ms.ok()) {
        result = ToAbsl(ms, "reading partition meta");
      } else if (!read.meta.ParseFromString(meta)) {
        result = absl::DataLossError("partition meta does not parse");
      } else {
        result = std::optional<CustomerRead>(std::move(read));
      }
    }
  }
  db_->ReleaseSnapshot(snap);
  return result;
}

absl::Status ViewStore::ScanDue(int32_t partition, const std::pair<int64_t, std::string>& after,
                                int64_t up_to, std::vector<std::pair<int64_t, std::string>>* due,
                                int64_t* next_after) {
  std::shared_lock<std::shared_mutex> lock(mu_);
  if (!db_) return Closed();
  *next_after = kNever;
  const std::string prefix = DuePrefix(partition);
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  if (after.first == INT64_MIN) {
    it->Seek(prefix);
  } else {
    const std::string start = DueKey(partition, after.first, after.second);
    it->Seek(start);
    if (it->Valid() && it->key() == rocksdb::Slice(start)) it->Next();
  }
  for (; it->Valid() && it->key().starts_with(prefix); it->Next()) {
    const std::string rest = it->key().ToString().substr(prefix.size());  // T/<customer>
    const int64_t t = std::stoll(rest.substr(0, 20));
    if (t > up_to) {
      *next_after = t;
      break;
    }
    due->emplace_back(t, rest.substr(21));
  }
  return ToAbsl(it->status(), "scanning the due index");
}

absl::StatusOr<std::map<std::string, lifecycle::v1::AggregateValue>> ViewStore::ReadAggregates(
    int32_t partition) {
  std::shared_lock<std::shared_mutex> lock(mu_);
  if (!db_) return Closed();
  std::map<std::string, lifecycle::v1::AggregateValue> out;
  const std::string prefix = partition < 0 ? std::string("a/") : AggPrefix(partition);
  absl::Status bad;
  absl::Status s = ScanPrefix(db_.get(), prefix, [&](const rocksdb::Slice& k,
                                                     const rocksdb::Slice& v) {
    lifecycle::v1::AggregateValue value;
    if (!value.ParseFromArray(v.data(), static_cast<int>(v.size()))) {
      bad = absl::DataLossError(absl::StrCat("aggregate ", k.ToString(), " does not parse"));
      return false;
    }
    // Keys are a/P/<dimension>/<value>: strip "a/P/".
    const std::string key = k.ToString().substr(8);
    auto& sum = out[key];
    sum.set_customers(sum.customers() + value.customers());
    sum.set_revenue_minor(sum.revenue_minor() + value.revenue_minor());
    return true;
  });
  if (!s.ok()) return s;
  if (!bad.ok()) return bad;
  return out;
}

absl::StatusOr<std::vector<lifecycle::v1::Alert>> ViewStore::ReadAlerts(int32_t partition,
                                                                      int64_t from_seq,
                                                                      size_t limit) {
  std::shared_lock<std::shared_mutex> lock(mu_);
  if (!db_) return Closed();
  std::vector<lifecycle::v1::Alert> out;
  const std::string prefix = absl::StrCat("l/", P(partition), "/");
  rocksdb::ReadOptions ro;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro));
  for (it->Seek(AlertKey(partition, from_seq)); it->Valid() && it->key().starts_with(prefix) &&
                                                out.size() < limit;
       it->Next()) {
    lifecycle::v1::Alert a;
    if (!a.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
      return absl::DataLossError(absl::StrCat("alert ", it->key().ToString(), " does not parse"));
    }
    out.push_back(std::move(a));
  }
  if (absl::Status s = ToAbsl(it->status(), "reading alerts"); !s.ok()) return s;
  return out;
}

absl::StatusOr<std::vector<lifecycle::v1::Alert>> ViewStore::ReadCustomerAlerts(
    const std::string& customer_id) {
  std::shared_lock<std::shared_mutex> lock(mu_);
  if (!db_) return Closed();
  const std::string prefix = absl::StrCat("h/", customer_id, "/");
  std::vector<std::string> keys;
  absl::Status s = ScanPrefix(db_.get(), prefix, [&](const rocksdb::Slice& k, const rocksdb::Slice&) {
    const std::string rest = k.ToString().substr(prefix.size());  // P/S
    if (rest.size() == 26) keys.push_back(absl::StrCat("l/", rest));
    return true;
  });
  if (!s.ok()) return s;
  std::vector<lifecycle::v1::Alert> out;
  for (const auto& key : keys) {
    std::string value;
    rocksdb::Status g = db_->Get(rocksdb::ReadOptions(), key, &value);
    if (!g.ok()) return ToAbsl(g, "reading an alert");
    lifecycle::v1::Alert a;
    if (!a.ParseFromString(value)) return absl::DataLossError(absl::StrCat(key, " does not parse"));
    out.push_back(std::move(a));
  }
  return out;  // in (partition, sequence) order: the order they were raised
}

absl::StatusOr<std::vector<std::string>> ViewStore::ReadIndex(const std::string& dimension,
                                                              const std::string& value,
                                                              size_t limit) {
  std::shared_lock<std::shared_mutex> lock(mu_);
  if (!db_) return Closed();
  std::vector<std::string> out;
  const std::string prefix = absl::StrCat("x/", dimension, "/", value, "/");
  absl::Status s = ScanPrefix(db_.get(), prefix, [&](const rocksdb::Slice& k, const rocksdb::Slice&) {
    out.push_back(k.ToString().substr(prefix.size()));
    return out.size() < limit;
  });
  if (!s.ok()) return s;
  return out;
}

absl::Status ViewStore::ForEachCustomer(
    const std::function<void(const lifecycle::v1::CustomerState&)>& fn) {
  std::shared_lock<std::shared_mutex> lock(mu_);
  if (!db_) return Closed();
  absl::Status bad;
  absl::Status s = ScanPrefix(db_.get(), std::string(kCustomerPrefix),
                              [&](const rocksdb::Slice& k, const rocksdb::Slice& v) {
                                lifecycle::v1::CustomerState st;
                                if (!st.ParseFromArray(v.data(), static_cast<int>(v.size()))) {
                                  bad = absl::DataLossError(
                                      absl::StrCat("customer ", k.ToString(), " does not parse"));
                                  return false;
                                }
                                fn(st);
                                return true;
                              });
  return s.ok() ? bad : s;
}

absl::StatusOr<std::vector<std::string>> ViewStore::ScanKeys(const std::string& prefix,
                                                             const std::string& start_after,
                                                             const std::string& end_before,
                                                             size_t limit) {
  std::shared_lock<std::shared_mutex> lock(mu_);
  if (!db_) return Closed();
  std::vector<std::string> out;
  rocksdb::ReadOptions ro;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro));
  if (start_after.empty()) {
    it->Seek(prefix);
  } else {
    it->Seek(start_after);
    if (it->Valid() && it->key() == rocksdb::Slice(start_after)) it->Next();
  }
  for (; it->Valid() && it->key().starts_with(prefix) && out.size() < limit; it->Next()) {
    if (!end_before.empty() && it->key().compare(rocksdb::Slice(end_before)) >= 0) break;
    out.push_back(it->key().ToString());
  }
  if (absl::Status st = ToAbsl(it->status(), "scanning keys"); !st.ok()) return st;
  return out;
}

absl::StatusOr<int64_t> ViewStore::ReadPosition(const std::string& name) {
  std::shared_lock<std::shared_mutex> lock(mu_);
  if (!db_) return Closed();
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), absl::StrCat("o/", name), &value);
  if (s.IsNotFound()) return int64_t{0};
  if (!s.ok()) return ToAbsl(s, "reading a position");
  return std::stoll(value);
}

absl::Status ViewStore::WritePositions(const std::map<std::string, int64_t>& positions) {
  std::shared_lock<std::shared_mutex> lock(mu_);
  if (!db_) return Closed();
  rocksdb::WriteBatch wb;
  for (const auto& [name, v] : positions) wb.Put(absl::StrCat("o/", name), std::to_string(v));
  rocksdb::WriteOptions wo;
  wo.sync = options_.sync_writes;
  return ToAbsl(db_->Write(wo, &wb), "writing positions");
}

uint64_t ViewStore::EstimateCustomers() {
  std::shared_lock<std::shared_mutex> lock(mu_);
  if (!db_) return 0;
  uint64_t n = 0;
  db_->GetIntProperty("rocksdb.estimate-num-keys", &n);
  return n;
}

}  // namespace lifecycle::store
