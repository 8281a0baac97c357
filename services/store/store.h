#pragma once
// ViewStore: the RocksDB view store. Holds each customer's state and each
// partition's meta (last applied offset, stream time, counters). A commit writes the
// pending batches of any number of partitions in ONE WriteBatch, so views and
// offsets are always consistent with each other.
//
// Thread-safety: a ViewStore is safe for concurrent use from multiple threads
// without external synchronization (readers see only committed batches).
//
// Key layout (all in the default column family; P = partition as 5 digits,
// T = seconds as 20 digits, S = sequence as 20 digits):
//   c/<customer_id>                 -> lifecycle.v1.CustomerState
//   m/P                             -> lifecycle.v1.PartitionMeta
//   d/P/T/<customer_id>             -> "" (due index: the customer's next deadline)
//   x/<dimension>/<value>/<customer> -> "" (listing indexes: stage, grade, tier, region,
//                                      rfm_segment, and risk = P(alive) in millionths)
//   o/<name>                        -> integer (positions of side consumers)
//   a/P/<dimension>/<value>         -> lifecycle.v1.AggregateValue (dashboard counters)
//   l/P/S                           -> lifecycle.v1.Alert (the partition's alert log)
//   h/<customer_id>/P/S             -> "" (a customer's alerts, pointing into the log)

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <shared_mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "lifecycle/v1/view.pb.h"
#include "projections/projector.h"

namespace rocksdb {
class DB;
class Env;
struct Options;
}

namespace lifecycle::store {

struct StoreOptions {
  bool create_if_missing = true;
  bool sync_writes = false;  // fsync each commit (a process crash is safe without it)
  size_t block_cache_bytes = 128u << 20;
  size_t write_buffer_bytes = 64u << 20;  // one memtable (at most 3)
  rocksdb::Env* env = nullptr;  // for fault-injection tests; null: the default
};

// A customer's committed state together with its partition's meta, read from one
// consistent snapshot.
struct CustomerRead {
  lifecycle::v1::CustomerState state;
  lifecycle::v1::PartitionMeta meta;
};

class ViewStore {
 public:
  static absl::StatusOr<std::unique_ptr<ViewStore>> Open(const std::string& path,
                                                         const StoreOptions& options = {});
  ~ViewStore();
  ViewStore(const ViewStore&) = delete;
  ViewStore& operator=(const ViewStore&) = delete;

  // Writes the batches atomically. On error nothing was written; after a failed
  // write the next Commit first closes and reopens the database.
  absl::Status Commit(const std::vector<projections::PendingBatch>& batches);

  // The stored meta of `partition`; a partition never committed gets offset -1.
  absl::StatusOr<lifecycle::v1::PartitionMeta> ReadMeta(int32_t partition);
  // Every partition that has committed at least once, by partition number.
  absl::StatusOr<std::vector<lifecycle::v1::PartitionMeta>> ListMeta();

  absl::StatusOr<std::optional<lifecycle::v1::CustomerState>> ReadCustomer(
      std::string_view customer_id);
  absl::StatusOr<std::optional<CustomerRead>> ReadCustomerWithMeta(std::string_view customer_id);

  // Number of customer keys (an estimate from RocksDB's properties).
  uint64_t EstimateCustomers();

  // The committed due-index entries of a partition up to `up_to` (see StateReader).
  absl::Status ScanDue(int32_t partition, const std::pair<int64_t, std::string>& after,
                       int64_t up_to, std::vector<std::pair<int64_t, std::string>>* due,
                       int64_t* next_after);
  // One partition's counters, or (partition < 0) all partitions' summed.
  absl::StatusOr<std::map<std::string, lifecycle::v1::AggregateValue>> ReadAggregates(
      int32_t partition);
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
  // Calls `fn` for every stored customer (a full scan: for tests and rebuild checks).
  absl::Status ForEachCustomer(const std::function<void(const lifecycle::v1::CustomerState&)>& fn);

 private:
  ViewStore(std::unique_ptr<rocksdb::DB> db, StoreOptions options,
            std::unique_ptr<rocksdb::Options> open_options, std::string path);
  absl::Status Reopen();

  // Readers and writers share the handle; Reopen() takes it exclusively.
  mutable std::shared_mutex mu_;
  std::unique_ptr<rocksdb::DB> db_;  // null while a reopen has failed
  StoreOptions options_;
  std::unique_ptr<rocksdb::Options> open_options_;
  std::string path_;
  std::atomic<bool> needs_reopen_{false};
};

// Reads customer states for a PartitionProjector from a ViewStore.
class StoreStateReader : public projections::StateReader {
 public:
  explicit StoreStateReader(ViewStore* store) : store_(store) {}
  absl::StatusOr<std::optional<lifecycle::v1::CustomerState>> LoadCustomer(
      std::string_view customer_id) override {
    return store_->ReadCustomer(customer_id);
  }
  absl::Status ScanDue(int32_t partition, const std::pair<int64_t, std::string>& after,
                       int64_t up_to, std::vector<std::pair<int64_t, std::string>>* due,
                       int64_t* next_after) override {
    return store_->ScanDue(partition, after, up_to, due, next_after);
  }
  absl::StatusOr<std::map<std::string, lifecycle::v1::AggregateValue>> LoadAggregates(
      int32_t partition) override {
    return store_->ReadAggregates(partition);
  }

 private:
  ViewStore* store_;
};

std::string CustomerKey(std::string_view customer_id);
std::string MetaKey(int32_t partition);

// The short name of an index value, as used in keys and summaries ("LOYAL", "A").
std::string IndexValue(const std::string& dimension, const projections::IndexKeys& keys);
// The risk index orders customers by P(alive), lowest (riskiest) first.
std::string RiskIndexValue(int64_t p_alive_micro);

}  // namespace lifecycle::store
