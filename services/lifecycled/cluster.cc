#include "services/lifecycled/cluster.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace lifecycle::daemon {

std::string ClientIdFor(std::string_view address) {
  return std::string(kClientIdPrefix) + std::string(address);
}

std::string AddressOf(std::string_view client_id) {
  if (client_id.substr(0, kClientIdPrefix.size()) != kClientIdPrefix) return "";
  return std::string(client_id.substr(kClientIdPrefix.size()));
}

bool ClusterMap::Complete() const {
  if (partitions <= 0 || members.empty() || (!state.empty() && state != "Stable")) return false;
  for (int p = 0; p < partitions; ++p) {
    auto it = holders.find(p);
    if (it == holders.end() || it->second.empty()) return false;
  }
  return true;
}

std::set<int32_t> ClusterMap::ReplicatedBy(std::string_view address) const {
  std::set<int32_t> out;
  if (address.empty()) return out;
  for (const auto& [p, hs] : holders) {
    for (size_t i = 1; i < hs.size(); ++i) {
      if (hs[i] == address) out.insert(p);
    }
  }
  return out;
}

std::string ClusterMap::OwnerOf(int32_t partition) const {
  auto it = holders.find(partition);
  return it == holders.end() || it->second.empty() ? "" : it->second.front();
}

Assignor AssignorNamed(std::string_view name) {
  return name == "roundrobin" ? Assignor::kRoundRobin : Assignor::kRange;
}

int AssignorPick(Assignor assignor, int partition, int partitions, int member_count,
                 const std::set<int>& without) {
  std::vector<int> left;
  for (int i = 0; i < member_count; ++i) {
    if (!without.count(i)) left.push_back(i);
  }
  if (left.empty() || partition < 0 || partition >= partitions) return -1;
  const int n = static_cast<int>(left.size());
  if (assignor == Assignor::kRoundRobin) return left[partition % n];
  // Range: each member a run of partitions / n, the first partitions % n one more.
  const int each = partitions / n, extra = partitions % n;
  const int long_runs = extra * (each + 1);
  const int index = partition < long_runs ? partition / (each + 1)
                                          : extra + (partition - long_runs) / std::max(1, each);
  return left[std::min(index, n - 1)];
}

bool IsInstance(std::string_view member_id, std::string_view instance_id,
                std::string_view wanted) {
  if (wanted.empty()) return false;
  if (!instance_id.empty()) return instance_id == wanted;
  // A static member's id is "<group.instance.id>-<uuid>".
  return member_id.size() > wanted.size() && member_id.substr(0, wanted.size()) == wanted &&
         member_id[wanted.size()] == '-';
}

ClusterMap PlanCluster(const stream::GroupDescription& group, int partitions, int replicas,
                       std::string_view self_instance_id, std::string_view self_address) {
  std::vector<stream::GroupMember> members = group.members;
  std::sort(members.begin(), members.end(),
            [](const auto& a, const auto& b) { return a.member_id < b.member_id; });
  const Assignor assignor = AssignorNamed(group.assignor);
  ClusterMap map;
  map.partitions = partitions;
  map.state = group.state;
  std::map<int32_t, int> owner;  // partition -> member index
  for (size_t i = 0; i < members.size(); ++i) {
    ClusterMember m;
    m.member_id = members[i].member_id;
    m.address = AddressOf(members[i].client_id);
    m.instance_id = members[i].instance_id;
    if (IsInstance(m.member_id, m.instance_id, self_instance_id)) {
      m.address = std::string(self_address);
    }
    m.owned = members[i].partitions;
    for (int32_t p : m.owned) owner.emplace(p, static_cast<int>(i));
    map.members.push_back(std::move(m));
  }
  const int n = static_cast<int>(map.members.size());
  for (const auto& [p, o] : owner) {
    std::vector<int> chosen = {o};
    if (replicas > 0) {
      // Whoever the assignor gives p to when any one member leaves: an eager assignor
      // moves partitions between the members that stay too, not only the leaver's.
      for (int d = 0; d < n; ++d) {
        const int next = AssignorPick(assignor, p, partitions, n, {d});
        if (next >= 0 && std::find(chosen.begin(), chosen.end(), next) == chosen.end()) {
          chosen.push_back(next);
        }
      }
    }
    // At least `replicas` besides the owner: the next the assignor would pick.
    for (std::set<int> without(chosen.begin(), chosen.end());
         static_cast<int>(chosen.size()) <= replicas;) {
      const int pick = AssignorPick(assignor, p, partitions, n, without);
      if (pick < 0) break;
      without.insert(pick);
      chosen.push_back(pick);
    }
    std::vector<std::string>& hs = map.holders[p];
    for (int i : chosen) hs.push_back(map.members[i].address);
  }
  return map;
}

}  // namespace lifecycle::daemon
