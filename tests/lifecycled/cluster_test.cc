#include "services/lifecycled/cluster.h"

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>
#include <vector>

namespace lifecycle::daemon {
namespace {

// The owners an assignor gives `partitions` to `n` members (sorted), leaving some out.
std::map<int32_t, int> Assign(Assignor a, int partitions, int n, const std::set<int>& without) {
  std::map<int32_t, int> out;
  for (int p = 0; p < partitions; ++p) out[p] = AssignorPick(a, p, partitions, n, without);
  return out;
}

// A stable group of `n` members ("m0".."m<n-1>", addresses "h<i>:1") with the
// assignor's own assignment.
stream::GroupDescription Group(Assignor a, int partitions, int n, const std::set<int>& without = {}) {
  stream::GroupDescription g;
  g.state = "Stable";
  g.assignor = a == Assignor::kRange ? "range" : "roundrobin";
  std::map<int, int> index;  // original member -> position among those left
  for (int i = 0; i < n; ++i) {
    if (without.count(i)) continue;
    stream::GroupMember m;
    m.member_id = "m" + std::to_string(i) + "-uuid";
    m.client_id = ClientIdFor("h" + std::to_string(i) + ":1");
    index[i] = static_cast<int>(g.members.size());
    g.members.push_back(m);
  }
  for (const auto& [p, owner] : Assign(a, partitions, n, without)) {
    g.members[index.at(owner)].partitions.push_back(p);
  }
  return g;
}

TEST(ClusterTest, ClientIdsCarryTheAdvertisedAddress) {
  EXPECT_EQ(ClientIdFor("10.0.0.7:50151"), "lifecycled@10.0.0.7:50151");
  EXPECT_EQ(AddressOf("lifecycled@10.0.0.7:50151"), "10.0.0.7:50151");
  EXPECT_EQ(AddressOf("rdkafka"), "");
}

TEST(ClusterTest, TheAssignorsAsLibrdkafkaRunsThem) {
  // Range: runs of partitions / n, the first partitions % n members one more.
  EXPECT_EQ(Assign(Assignor::kRange, 8, 3, {}),
            (std::map<int32_t, int>{{0, 0}, {1, 0}, {2, 0}, {3, 1}, {4, 1}, {5, 1}, {6, 2}, {7, 2}}));
  // Without member 1, the same split over members 0 and 2.
  EXPECT_EQ(Assign(Assignor::kRange, 8, 3, {1}),
            (std::map<int32_t, int>{{0, 0}, {1, 0}, {2, 0}, {3, 0}, {4, 2}, {5, 2}, {6, 2}, {7, 2}}));
  EXPECT_EQ(Assign(Assignor::kRoundRobin, 5, 3, {0}),
            (std::map<int32_t, int>{{0, 1}, {1, 2}, {2, 1}, {3, 2}, {4, 1}}));
  EXPECT_EQ(AssignorPick(Assignor::kRange, 0, 8, 2, {0, 1}), -1);
  EXPECT_EQ(AssignorNamed("roundrobin"), Assignor::kRoundRobin);
  EXPECT_EQ(AssignorNamed("range"), Assignor::kRange);
}

// Whatever one member leaves, every partition's next owner already holds it: the
// property failover without a rebuild rests on. For both assignors and many shapes.
TEST(ClusterTest, AnyOneMemberLeavingMovesEveryPartitionToAHolder) {
  for (Assignor a : {Assignor::kRange, Assignor::kRoundRobin}) {
    for (int partitions : {1, 3, 6, 8, 12, 31}) {
      for (int n = 1; n <= 5; ++n) {
        const ClusterMap map = PlanCluster(Group(a, partitions, n), partitions, /*replicas=*/1);
        ASSERT_TRUE(map.Complete());
        for (int gone = 0; gone < n && n > 1; ++gone) {
          for (const auto& [p, next] : Assign(a, partitions, n, {gone})) {
            const std::vector<std::string>& hs = map.holders.at(p);
            const std::string next_address = "h" + std::to_string(next) + ":1";
            EXPECT_NE(std::find(hs.begin(), hs.end(), next_address), hs.end())
                << "assignor " << static_cast<int>(a) << ", " << partitions << " partitions, "
                << n << " members, member " << gone << " leaves: partition " << p << " goes to "
                << next_address;
          }
        }
        for (const auto& [p, hs] : map.holders) {
          // The owner first; a replica besides it whenever there is another member.
          EXPECT_EQ(hs.front(), map.OwnerOf(p));
          EXPECT_EQ(hs.size() > 1, n > 1);
          EXPECT_EQ(std::set<std::string>(hs.begin(), hs.end()).size(), hs.size());
        }
      }
    }
  }
}

TEST(ClusterTest, RangeWithThreeMembersNeedsOneReplicaPerPartition) {
  // 8 partitions over 3 instances, lifecycled's default assignor: each partition is
  // held twice (owner and one replica), so each instance folds 2/3 of the log.
  const ClusterMap map = PlanCluster(Group(Assignor::kRange, 8, 3), 8, 1);
  size_t held = 0;
  for (const auto& [p, hs] : map.holders) held += hs.size();
  EXPECT_LE(held, 8u * 3u);
  EXPECT_GE(held, 8u * 2u);
  EXPECT_EQ(map.ReplicatedBy("h1:1").count(0), 1u);  // partition 0: m0 owns, m1 next
}

TEST(ClusterTest, NoReplicasHoldsOwnersOnly) {
  const ClusterMap map = PlanCluster(Group(Assignor::kRange, 6, 3), 6, 0);
  for (const auto& [p, hs] : map.holders) EXPECT_EQ(hs.size(), 1u);
  EXPECT_TRUE(map.ReplicatedBy("h0:1").empty());
}

TEST(ClusterTest, MoreReplicasThanTheOneLeaverNeeds) {
  const ClusterMap map = PlanCluster(Group(Assignor::kRange, 6, 4), 6, 3);
  for (const auto& [p, hs] : map.holders) EXPECT_EQ(hs.size(), 4u);  // everyone
}

TEST(ClusterTest, MidRebalanceOrWithoutMembersThePlanIsNotComplete) {
  stream::GroupDescription g = Group(Assignor::kRange, 6, 3);
  g.state = "PreparingRebalance";
  EXPECT_FALSE(PlanCluster(g, 6, 1).Complete());
  g = Group(Assignor::kRange, 6, 3);
  g.members[0].partitions.clear();  // partitions 0 and 1 without an owner
  EXPECT_FALSE(PlanCluster(g, 6, 1).Complete());
  EXPECT_FALSE(PlanCluster(stream::GroupDescription(), 6, 1).Complete());
}

TEST(ClusterTest, AStaticMembersIdStartsWithItsInstanceId) {
  EXPECT_TRUE(IsInstance("lifecycled-1-2b3c", "", "lifecycled-1"));
  EXPECT_FALSE(IsInstance("lifecycled-10-2b3c", "", "lifecycled-1"));
  EXPECT_FALSE(IsInstance("lifecycled-1", "", "lifecycled-1"));
  EXPECT_FALSE(IsInstance("lifecycled-1-2b3c", "", ""));
  EXPECT_TRUE(IsInstance("x", "lifecycled-1", "lifecycled-1"));
}

TEST(ClusterTest, AStaticMemberKnowsItselfWhateverClientIdTheGroupKept) {
  stream::GroupDescription g = Group(Assignor::kRange, 6, 2);
  g.members[1].instance_id = "lifecycled-1";
  g.members[1].client_id = ClientIdFor("old-host:1");  // its first join's
  const ClusterMap map = PlanCluster(g, 6, 1, "lifecycled-1", "new-host:2");
  EXPECT_EQ(map.OwnerOf(5), "new-host:2");
  EXPECT_EQ(map.ReplicatedBy("new-host:2"), (std::set<int32_t>{0, 1, 2}));
}

}  // namespace
}  // namespace lifecycle::daemon
