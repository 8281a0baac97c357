#pragma once
// ViewStore: the RocksDB view store. Holds each customer's state and each
// partition's meta (last applied offset, stream time, counters). A commit writes the
// pending batches of any number of partitions in ONE WriteBatch, so views and
// offsets are always consistent with each other.
//
// Thread-safety: a ViewStore is safe for concurrent use from multiple threads
// without external synchronization (readers see only committed batches).
//
// Key layout (all in the default column family):
//   c/<customer_id>        -> lifecycle.v1.CustomerState
//   m/<partition, 5 digits> -> lifecycle.v1.PartitionMeta

#include <memory>
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
}

namespace lifecycle::store {

struct StoreOptions {
  bool create_if_missing = true;
  bool sync_writes = false;  // fsync each commit (a process crash is safe without it)
  size_t block_cache_bytes = 256u << 20;
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

  // Writes the batches atomically. On error nothing was written.
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

 private:
  explicit ViewStore(std::unique_ptr<rocksdb::DB> db, StoreOptions options);
  std::unique_ptr<rocksdb::DB> db_;
  StoreOptions options_;
};

// Reads customer states for a PartitionProjector from a ViewStore.
class StoreStateReader : public projections::StateReader {
 public:
  explicit StoreStateReader(ViewStore* store) : store_(store) {}
  absl::StatusOr<std::optional<lifecycle::v1::CustomerState>> LoadCustomer(
      std::string_view customer_id) override {
    return store_->ReadCustomer(customer_id);
  }

 private:
  ViewStore* store_;
};

std::string CustomerKey(std::string_view customer_id);
std::string MetaKey(int32_t partition);

}  // namespace lifecycle::store
