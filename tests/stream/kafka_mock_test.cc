// The Kafka adapters against librdkafka's mock cluster, with injected request
// errors and a broker going down and up (fault injection the real broker cannot do).
#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <chrono>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "services/stream/kafka.h"

namespace lifecycle::stream {
namespace {

// Kafka protocol API keys used for error injection.
constexpr int16_t kProduce = 0;
constexpr int16_t kFetch = 1;

class MockCluster {
 public:
  explicit MockCluster(int brokers) {
    char err[256];
    rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, rd_kafka_conf_new(), err, sizeof(err));
    mc_ = rd_kafka_mock_cluster_new(rk_, brokers);
    bootstraps_ = rd_kafka_mock_cluster_bootstraps(mc_);
  }
  ~MockCluster() {
    rd_kafka_mock_cluster_destroy(mc_);
    rd_kafka_destroy(rk_);
  }
  rd_kafka_mock_cluster_t* get() { return mc_; }
  const std::string& bootstraps() const { return bootstraps_; }

 private:
  rd_kafka_t* rk_;
  rd_kafka_mock_cluster_t* mc_;
  std::string bootstraps_;
};

class FromStart : public RebalanceListener {
 public:
  absl::StatusOr<std::map<int32_t, int64_t>> OnAssigned(const std::vector<int32_t>& ps) override {
    std::map<int32_t, int64_t> m;
    for (int32_t p : ps) m[p] = 0;
    assigned += ps.size();
    return m;
  }
  void OnRevoked(const std::vector<int32_t>& ps) override { revoked += ps.size(); }
  size_t assigned = 0, revoked = 0;
};

std::vector<std::string> ConsumeAll(const std::string& brokers, const std::string& topic, size_t n,
                                    FromStart* listener) {
  ConsumerOptions o;
  o.brokers = brokers;
  o.group_id = "mock-group";
  o.topic = topic;
  auto c = Consumer::Create(o, listener, nullptr);
  EXPECT_TRUE(c.ok()) << c.status();
  std::vector<std::string> values;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (values.size() < n && std::chrono::steady_clock::now() < deadline) {
    Record r;
    auto got = (*c)->Poll(100, &r);
    EXPECT_TRUE(got.ok());
    if (got.ok() && *got) values.emplace_back(r.value);
  }
  (*c)->Close();
  return values;
}

// (Topic creation itself is tested against the real broker: this librdkafka's mock
// cluster does not serve CreateTopics.)
TEST(KafkaMockTest, PartitionsAreCountedFromMetadata) {
  MockCluster mc(1);
  rd_kafka_mock_topic_create(mc.get(), "events", 4, 1);
  auto n = PartitionCount(mc.bootstraps(), "events");
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, 4);  // (the mock creates unknown topics on request, so no "missing" case here)
}

TEST(KafkaMockTest, TheIdempotentProducerRetriesInjectedErrorsWithoutDuplicates) {
  MockCluster mc(3);
  rd_kafka_mock_topic_create(mc.get(), "t", 2, 3);
  rd_kafka_mock_push_request_errors(mc.get(), kProduce, 4, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
                                    RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
                                    RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
                                    RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE);
  auto p = Producer::Create(mc.bootstraps());
  ASSERT_TRUE(p.ok()) << p.status();
  for (int i = 0; i < 200; ++i) {
    ASSERT_TRUE((*p)->Produce("t", -1, absl::StrCat("k", i % 7), absl::StrCat("v", i), i).ok());
  }
  ASSERT_TRUE((*p)->Flush(30000).ok());
  int ok = 0;
  for (const auto& d : (*p)->TakeDeliveries()) ok += d.ok;
  EXPECT_EQ(ok, 200);
  FromStart listener;
  auto values = ConsumeAll(mc.bootstraps(), "t", 200, &listener);
  EXPECT_EQ(values.size(), 200u);
  EXPECT_EQ(std::set<std::string>(values.begin(), values.end()).size(), 200u) << "no duplicates";
}

TEST(KafkaMockTest, RecordsProducedWhileTheBrokerIsDownAreDeliveredWhenItReturns) {
  MockCluster mc(1);
  rd_kafka_mock_topic_create(mc.get(), "t", 1, 1);
  auto p = Producer::Create(mc.bootstraps());
  ASSERT_TRUE(p.ok());
  ASSERT_TRUE((*p)->Ping(5000).ok());
  rd_kafka_mock_broker_set_down(mc.get(), 1);
  EXPECT_FALSE((*p)->Ping(1000).ok()) << "a down broker does not answer";
  for (int i = 0; i < 50; ++i) ASSERT_TRUE((*p)->Produce("t", 0, "k", absl::StrCat("v", i), i).ok());
  EXPECT_FALSE((*p)->Flush(1500).ok()) << "nothing can be delivered while it is down";
  rd_kafka_mock_broker_set_up(mc.get(), 1);
  ASSERT_TRUE((*p)->Flush(30000).ok());
  int ok = 0;
  for (const auto& d : (*p)->TakeDeliveries()) ok += d.ok;
  EXPECT_EQ(ok, 50);
}

TEST(KafkaMockTest, TheConsumerGetsEveryRecordThroughFetchErrorsAndReportsRebalances) {
  MockCluster mc(1);
  rd_kafka_mock_topic_create(mc.get(), "t", 3, 1);
  auto p = Producer::Create(mc.bootstraps());
  ASSERT_TRUE(p.ok());
  for (int i = 0; i < 300; ++i) ASSERT_TRUE((*p)->Produce("t", i % 3, "", absl::StrCat("v", i), i).ok());
  ASSERT_TRUE((*p)->Flush(10000).ok());
  rd_kafka_mock_push_request_errors(mc.get(), kFetch, 3, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
                                    RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART,
                                    RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT);
  FromStart listener;
  auto values = ConsumeAll(mc.bootstraps(), "t", 300, &listener);
  EXPECT_EQ(values.size(), 300u);
  EXPECT_EQ(std::set<std::string>(values.begin(), values.end()).size(), 300u);
  EXPECT_EQ(listener.assigned, 3u);
  EXPECT_EQ(listener.revoked, 3u) << "closing revokes through the listener";
}

}  // namespace
}  // namespace lifecycle::stream
