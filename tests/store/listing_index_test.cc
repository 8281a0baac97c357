#include "services/store/listing_index.h"

#include <gtest/gtest.h>

#include <random>
#include <set>
#include <string>
#include <vector>

namespace lifecycle::store {
namespace {

using Values = ListingIndex::Values;

// What the index must read like: the keys it stands for, as a sorted set of strings.
class Reference {
 public:
  void Move(const std::string& id, const Values& before, const Values& after) {
    for (int d = 0; d < ListingIndex::kDims; ++d) {
      const std::string dim = ListingIndex::DimName(static_cast<ListingIndex::Dim>(d));
      if (before.present) keys_.erase("x/" + dim + "/" + before.value[d] + "/" + id);
      if (after.present) keys_.insert("x/" + dim + "/" + after.value[d] + "/" + id);
    }
  }
  std::vector<std::string> Scan(const std::string& prefix, const std::string& start_after,
                                const std::string& end_before, size_t limit) const {
    std::vector<std::string> out;
    auto it = start_after.empty() ? keys_.lower_bound(prefix) : keys_.upper_bound(start_after);
    if (!start_after.empty() && start_after < prefix) it = keys_.lower_bound(prefix);
    for (; it != keys_.end() && out.size() < limit; ++it) {
      if (it->rfind(prefix, 0) != 0) {
        if (*it > prefix) break;
        continue;
      }
      if (!end_before.empty() && *it >= end_before) break;
      out.push_back(*it);
    }
    return out;
  }
  size_t size() const { return keys_.size(); }

 private:
  std::set<std::string> keys_;
};

Values Of(const std::string& grade, const std::string& region, const std::string& rfm,
          const std::string& risk, const std::string& stage, const std::string& tier) {
  Values v;
  v.present = true;
  v.value[ListingIndex::kGrade] = grade;
  v.value[ListingIndex::kRegion] = region;
  v.value[ListingIndex::kRfmSegment] = rfm;
  v.value[ListingIndex::kRisk] = risk;
  v.value[ListingIndex::kStage] = stage;
  v.value[ListingIndex::kTier] = tier;
  return v;
}

TEST(ListingIndexTest, ReadsAsTheStoredKeysInKeyOrder) {
  ListingIndex index;
  const Values none;
  // Regions where one name begins another ("Yu" and "Yu ci": the space sorts before
  // the '/' that follows a value in a key), risk values and "none".
  index.Move("bob", none, Of("A", "Yu ci", "Champions", "0000450", "LOYAL", "GOLD"));
  index.Move("ann", none, Of("A", "Yu", "Champions", "1000000", "LOYAL", "GOLD"));
  index.Move("cy", none, Of("C", "Yu", "none", "none", "PROSPECT", "STANDARD"));
  EXPECT_EQ(index.Scan("x/region/", "", "", 10),
            (std::vector<std::string>{"x/region/Yu ci/bob", "x/region/Yu/ann", "x/region/Yu/cy"}));
  EXPECT_EQ(index.Scan("x/region/Yu/", "", "", 10),
            (std::vector<std::string>{"x/region/Yu/ann", "x/region/Yu/cy"}));
  EXPECT_EQ(index.Scan("x/risk/", "", "x/risk/0500000/", 10),
            (std::vector<std::string>{"x/risk/0000450/bob"}));
  EXPECT_EQ(index.Scan("x/risk/", "x/risk/0000450/bob", "", 10),
            (std::vector<std::string>{"x/risk/1000000/ann", "x/risk/none/cy"}));
  EXPECT_EQ(index.Scan("x/stage/LOYAL/", "", "", 1), (std::vector<std::string>{"x/stage/LOYAL/ann"}));
  EXPECT_EQ(index.Scan("x/", "", "", 100).size(), 18u);

  // A move changes only the dimensions that differ; an erased customer leaves.
  index.Move("ann", Of("A", "Yu", "Champions", "1000000", "LOYAL", "GOLD"),
             Of("A", "Yu", "Champions", "0000001", "AT_RISK", "GOLD"));
  EXPECT_EQ(index.Scan("x/stage/", "", "", 10),
            (std::vector<std::string>{"x/stage/AT_RISK/ann", "x/stage/LOYAL/bob",
                                      "x/stage/PROSPECT/cy"}));
  index.Move("cy", Of("C", "Yu", "none", "none", "PROSPECT", "STANDARD"), none);
  EXPECT_EQ(index.Scan("x/", "", "", 100).size(), 12u);
  EXPECT_EQ(index.entries(), 12u);
}

TEST(ListingIndexTest, AnyScanReadsWhatTheSameKeysStoredInOrderWouldRead) {
  std::mt19937 rng(7);
  auto pick = [&](const std::vector<std::string>& from) { return from[rng() % from.size()]; };
  const std::vector<std::string> grades = {"A", "B", "C", "NONE"};
  const std::vector<std::string> regions = {"Yu", "Yu ci", "Yuci", "Taiyuan", "unknown", "a"};
  const std::vector<std::string> rfm = {"Champions", "At Risk", "none", "Lost"};
  const std::vector<std::string> stages = {"NEW", "ACTIVE", "LOYAL", "AT_RISK", "CHURNED"};
  const std::vector<std::string> tiers = {"STANDARD", "SILVER", "GOLD"};
  auto risk = [&] {
    if (rng() % 10 == 0) return std::string("none");
    char buf[16];
    std::snprintf(buf, sizeof(buf), "%07u", static_cast<unsigned>(rng() % 1000001));
    return std::string(buf);
  };
  ListingIndex index;
  Reference ref;
  std::vector<Values> current(300);
  for (int step = 0; step < 5000; ++step) {
    const size_t c = rng() % current.size();
    // Short ids, and long ones that share their first 8 bytes.
    const std::string id = (c % 2 ? "c" : "customer-") + std::to_string(c * 7919 % 1000);
    Values next;
    if (rng() % 20 != 0) {
      next = Of(pick(grades), pick(regions), pick(rfm), risk(), pick(stages), pick(tiers));
    }
    index.Move(id, current[c], next);
    ref.Move(id, current[c], next);
    current[c] = next;
  }
  ASSERT_EQ(index.entries(), ref.size());
  const std::vector<std::string> prefixes = {"x/", "x/stage/", "x/stage/LOYAL/", "x/risk/",
                                             "x/region/Yu/", "x/region/Yu ci/", "x/grade/A/",
                                             "x/tier/", "x/rfm_segment/At Risk/"};
  for (int q = 0; q < 2000; ++q) {
    const std::string prefix = pick(prefixes);
    const std::vector<std::string> all = ref.Scan(prefix, "", "", 1u << 20);
    std::string after, before;
    if (!all.empty() && rng() % 2) after = all[rng() % all.size()];
    if (prefix == "x/risk/" && rng() % 2) before = "x/risk/" + risk() + "/";
    const size_t limit = 1 + rng() % 60;
    ASSERT_EQ(index.Scan(prefix, after, before, limit), ref.Scan(prefix, after, before, limit))
        << prefix << " after " << after << " before " << before << " limit " << limit;
  }
}

}  // namespace
}  // namespace lifecycle::store
