#pragma once
// Who holds which partition when several lifecycled instances share a consumer group
// (ARCHITECTURE.md, "Scale beyond one machine"). Kafka's group decides the owners; the
// standby holders (replicas) are chosen from the member list by the assignor the group
// runs (its description names it: range, lifecycled's default, or round-robin), both of
// which sort the members by member id: a partition's holders are its owner, every
// member the assignor would give it to if any one member left (an eager assignor
// moves partitions between the members that stay as well as the leaver's), and, up to
// `replicas` besides the owner, the next it would pick. So when any one instance dies,
// every partition goes to a member that already holds it. replicas = 0: owners only.
//
// Each member's advertised gRPC address travels in its client id
// ("lifecycled@host:port"); DescribeConsumerGroups returns every member's client id and
// assignment. Nothing here talks to Kafka: the daemon describes the group and plans.

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "services/stream/kafka.h"

namespace lifecycle::daemon {

inline constexpr std::string_view kClientIdPrefix = "lifecycled@";

// The client id that carries `address`.
std::string ClientIdFor(std::string_view address);
// The address in a client id ("" when it carries none).
std::string AddressOf(std::string_view client_id);

struct ClusterMember {
  std::string member_id;
  std::string address;  // advertised gRPC address; "" when its client id has none
  std::string instance_id;
  std::vector<int32_t> owned;
};

struct ClusterMap {
  int partitions = 0;
  std::string state;                    // the group's, when described
  std::vector<ClusterMember> members;  // sorted by member id, as the assignor sorts them
  // Per partition: the holders' addresses, the owner first, then its replicas. A
  // partition no member owns (mid-rebalance) has none.
  std::map<int32_t, std::vector<std::string>> holders;

  // The group is stable and every partition has an owner.
  bool Complete() const;
  // Partitions `address` holds as a replica (not as the owner).
  std::set<int32_t> ReplicatedBy(std::string_view address) const;
  // The owner of `partition` ("" when none).
  std::string OwnerOf(int32_t partition) const;
};

// Plans the holders from the group's description. `replicas` is capped by the
// members available. A static member that restarted keeps, in the group's eyes, the
// client id it first joined with: the member with `self_instance_id` (when set) is
// given `self_address` whatever its client id says (so an instance always knows
// itself; the others must keep their addresses across restarts, as a StatefulSet's
// pods do).
ClusterMap PlanCluster(const stream::GroupDescription& group, int partitions, int replicas,
                       std::string_view self_instance_id = {},
                       std::string_view self_address = {});

// True when a member (its id, and its group.instance.id when known) is the static
// member `wanted`.
bool IsInstance(std::string_view member_id, std::string_view instance_id,
                std::string_view wanted);

enum class Assignor { kRange, kRoundRobin };
// The assignor named in a group's description (range unless it says roundrobin).
Assignor AssignorNamed(std::string_view name);

// The member (index among `member_count`, sorted by member id) that `assignor` gives
// `partition` of `partitions` to when the members in `without` are left out; -1 when
// none is left.
int AssignorPick(Assignor assignor, int partition, int partitions, int member_count,
                 const std::set<int>& without);

}  // namespace lifecycle::daemon
