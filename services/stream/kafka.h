#pragma once
// The Kafka adapters: a producer (idempotent), a group consumer that hands
// assignment and revocation to a listener, and topic creation. librdkafka types do
// not leak out of this header.
//
// Threads: librdkafka runs its own background threads. A Consumer is driven by one
// thread (Poll, Commit, Close); rebalance callbacks run inside Poll on that thread.
// A Producer may be used from several threads.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace spdlog {
class logger;
}

namespace lifecycle::stream {

// librdkafka properties on top of the adapters' defaults ("key" -> "value").
using KafkaConfig = std::map<std::string, std::string>;

struct TopicSpec {
  std::string name;
  int partitions = 8;
  int replication_factor = 1;
};

// Creates each topic that does not exist yet; existing ones are left alone.
absl::Status EnsureTopics(const std::string& brokers, const std::vector<TopicSpec>& topics,
                          int timeout_ms = 30000);

// Number of partitions of `topic`, from the broker's metadata.
absl::StatusOr<int> PartitionCount(const std::string& brokers, const std::string& topic,
                                   int timeout_ms = 10000);

// Delivery report for one produced record.
struct Delivery {
  uint64_t tag = 0;  // the caller's tag from Produce()
  bool ok = false;
  std::string error;
  int32_t partition = -1;
  int64_t offset = -1;
};

class Producer {
 public:
  // An idempotent producer (acks=all, no duplicates or reordering on retry).
  static absl::StatusOr<std::unique_ptr<Producer>> Create(const std::string& brokers,
                                                          const KafkaConfig& extra = {});
  virtual ~Producer() = default;

  // Queues one record. `partition` < 0 lets the key choose (murmur2, as Java clients
  // do). Blocks while the local queue is full. The outcome arrives as a Delivery.
  virtual absl::Status Produce(const std::string& topic, int32_t partition, std::string_view key,
                               std::string_view value, uint64_t tag = 0) = 0;
  // Queues one record with headers; `done` runs once with its delivery report, on
  // whichever thread calls Poll() or Flush().
  virtual absl::Status ProduceWithCallback(
      const std::string& topic, int32_t partition, std::string_view key, std::string_view value,
      const std::vector<std::pair<std::string, std::string>>& headers,
      std::function<void(const Delivery&)> done) = 0;
  // Serves delivery reports for up to `timeout_ms`.
  virtual void Poll(int timeout_ms) = 0;
  // OK when a broker answers a metadata request within `timeout_ms`.
  virtual absl::Status Ping(int timeout_ms) = 0;
  // Waits until every queued record is delivered or failed, or the timeout passes.
  virtual absl::Status Flush(int timeout_ms) = 0;
  // Delivery reports gathered since the last call.
  virtual std::vector<Delivery> TakeDeliveries() = 0;
};

// A record handed out by Consumer::Poll; valid until the next Poll.
struct Record {
  int32_t partition = -1;
  int64_t offset = -1;
  std::string_view key;
  std::string_view value;
};

// Told about assignment and revocation, on the polling thread.
class RebalanceListener {
 public:
  virtual ~RebalanceListener() = default;
  // Returns, for each assigned partition, the next offset to read (the stored
  // offset + 1, or 0 for a partition never applied). An error fails the assignment.
  virtual absl::StatusOr<std::map<int32_t, int64_t>> OnAssigned(
      const std::vector<int32_t>& partitions) = 0;
  // Called before the partitions are released: commit what is pending now.
  virtual void OnRevoked(const std::vector<int32_t>& partitions) = 0;
};

struct ConsumerOptions {
  std::string brokers;
  std::string group_id;
  std::string topic;
  std::string client_id = "lifecycled";
  KafkaConfig extra;
  // A tail: no group subscription; it reads what Assign gives it (a replica's copy of
  // partitions another member owns). It never joins the group or commits to it.
  bool tail = false;
};

class Consumer {
 public:
  static absl::StatusOr<std::unique_ptr<Consumer>> Create(const ConsumerOptions& options,
                                                          RebalanceListener* listener,
                                                          std::shared_ptr<spdlog::logger> log);
  virtual ~Consumer() = default;

  // Waits up to `timeout_ms` for the next record. Returns false on timeout (or a
  // transient condition, which is logged). Rebalances are handled inside.
  virtual absl::StatusOr<bool> Poll(int timeout_ms, Record* out) = 0;
  // Headers of the record last returned by Poll.
  virtual std::vector<std::pair<std::string, std::string>> CurrentHeaders() = 0;
  // Commits group offsets (the next offset to read per partition), asynchronously.
  // For lag tools only: the stored offsets are what counts.
  virtual void CommitOffsets(const std::map<int32_t, int64_t>& next_offsets) = 0;
  // The same, with a metadata string per partition stored beside the offset
  // (partitions missing from `metadata` get none).
  virtual void CommitOffsets(const std::map<int32_t, int64_t>& next_offsets,
                             const std::map<int32_t, std::string>& metadata) = 0;
  // The metadata the group last committed with each partition's offset (blocking; a
  // partition without a committed offset is left out).
  virtual absl::StatusOr<std::map<int32_t, std::string>> CommittedMetadata(
      const std::vector<int32_t>& partitions, int timeout_ms) = 0;
  // A tail only: reads exactly these partitions from these offsets from now on
  // (replacing what it read before; records fetched ahead for others are dropped).
  virtual absl::Status Assign(const std::map<int32_t, int64_t>& next_offsets) = 0;
  // The cached high watermark of a partition (-1 if not known yet).
  virtual int64_t HighWatermark(int32_t partition) = 0;
  // False while librdkafka reports every broker down.
  virtual bool BrokerUp() const = 0;
  // Leaves the group: revokes (listener->OnRevoked) and closes. Idempotent.
  virtual void Close() = 0;
  // Makes a Poll waiting on another thread return now (as a timeout). Safe from any
  // thread while the consumer exists.
  virtual void Wake() = 0;
};

// The partition a record keyed `key` goes to among `partitions`: Kafka's murmur2
// partitioner (the producers' "murmur2_random", the Java clients' default) for a
// non-empty key; -1 for an empty one (those are spread at random).
int32_t KeyPartition(std::string_view key, int partitions);

// A member of a consumer group, as its coordinator describes it.
struct GroupMember {
  std::string member_id;
  std::string client_id;
  std::string instance_id;          // group.instance.id when known (a static member's
                                    // member_id starts with it: "<instance id>-<uuid>")
  std::string host;
  std::vector<int32_t> partitions;  // of the topic asked about, assigned to this member
};

struct GroupDescription {
  std::string state;     // "Stable", "PreparingRebalance", "CompletingRebalance", "Empty", ...
  std::string assignor;  // the partition assignor the group runs ("range", "roundrobin", ...)
  std::vector<GroupMember> members;
};

// Describes consumer groups (one client kept open: call it as often as needed).
class GroupDescriber {
 public:
  static absl::StatusOr<std::unique_ptr<GroupDescriber>> Create(const std::string& brokers);
  virtual ~GroupDescriber() = default;
  // The group's state, assignor, members and their partitions of `topic`. Safe from
  // one thread at a time.
  virtual absl::StatusOr<GroupDescription> Describe(const std::string& group,
                                                    const std::string& topic,
                                                    int timeout_ms) = 0;
};

}  // namespace lifecycle::stream
