#include "services/store/store.h"

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "rocksdb/db.h"
#include "rocksdb/options.h"
#include "rocksdb/table.h"
#include "rocksdb/cache.h"
#include "rocksdb/filter_policy.h"
#include "rocksdb/write_batch.h"

namespace lifecycle::store {
namespace {

using lifecycle::v1::CustomerState;
using lifecycle::v1::PartitionMeta;

constexpr absl::string_view kCustomerPrefix = "c/";
constexpr absl::string_view kMetaPrefix = "m/";

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

ViewStore::ViewStore(std::unique_ptr<rocksdb::DB> db, StoreOptions options)
    : db_(std::move(db)), options_(options) {}

ViewStore::~ViewStore() {
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
  rocksdb::BlockBasedTableOptions t;
  t.block_cache = rocksdb::NewLRUCache(options.block_cache_bytes);
  t.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  o.table_factory.reset(rocksdb::NewBlockBasedTableFactory(t));
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(o, path, &raw);
  if (!s.ok()) return ToAbsl(s, absl::StrCat("opening the view store at ", path));
  return std::unique_ptr<ViewStore>(new ViewStore(std::unique_ptr<rocksdb::DB>(raw), options));
}

absl::Status ViewStore::Commit(const std::vector<projections::PendingBatch>& batches) {
  rocksdb::WriteBatch wb;
  std::string buf;
  for (const auto& batch : batches) {
    for (const CustomerState* state : batch.states) {
      buf.clear();
      state->SerializeToString(&buf);
      rocksdb::Status s = wb.Put(CustomerKey(state->view().customer_id()), buf);
      if (!s.ok()) return ToAbsl(s, "building the commit batch");
    }
    buf.clear();
    batch.meta.SerializeToString(&buf);
    rocksdb::Status s = wb.Put(MetaKey(batch.meta.partition()), buf);
    if (!s.ok()) return ToAbsl(s, "building the commit batch");
  }
  rocksdb::WriteOptions wo;
  wo.sync = options_.sync_writes;
  return ToAbsl(db_->Write(wo, &wb), "committing to the view store");
}

absl::StatusOr<PartitionMeta> ViewStore::ReadMeta(int32_t partition) {
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

uint64_t ViewStore::EstimateCustomers() {
  uint64_t n = 0;
  db_->GetIntProperty("rocksdb.estimate-num-keys", &n);
  return n;
}

}  // namespace lifecycle::store
