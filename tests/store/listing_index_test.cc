#include "services/store/listing_index.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
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
      // A customer without an advisor has no advisor key.
      auto listed = [d](const Values& v) {
        return v.present && (d != ListingIndex::kAdvisor || !v.value[d].empty());
      };
      if (listed(before)) keys_.erase("x/" + dim + "/" + before.value[d] + "/" + id);
      if (listed(after)) keys_.insert("x/" + dim + "/" + after.value[d] + "/" + id);
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
          const std::string& stage, const std::string& tier, const std::string& advisor = "") {
  Values v;
  v.present = true;
  v.value[ListingIndex::kAdvisor] = advisor;
  v.value[ListingIndex::kGrade] = grade;
  v.value[ListingIndex::kRegion] = region;
  v.value[ListingIndex::kRfmSegment] = rfm;
  v.value[ListingIndex::kStage] = stage;
  v.value[ListingIndex::kTier] = tier;
  return v;
}

// A move of the RFM segment alone (an RFM recency cut) leaves the customer's other
// entries and its ranking inputs as they were.
TEST(ListingIndexTest, ASegmentOnlyMoveMovesTheSegmentAndNothingElse) {
  ListingIndex index;
  Values v = Of("A", "north", "Champions", "LOYAL", "GOLD", "adv-1");
  v.partition = 3;
  v.churn.activity_days = 4;
  v.churn.first = 1'700'000'000;
  v.churn.last = 1'710'000'000;
  index.Move("ann", Values(), v);
  const std::vector<int64_t> stream_times(4, 1'720'000'000);
  ListingIndex::RankQuery q;
  q.stream_times = &stream_times;
  const auto ranked = index.Rank(projections::DomainConfig(), q);
  ASSERT_EQ(ranked.size(), 1u);

  Values from, to;
  from.present = to.present = true;
  from.segment_only = to.segment_only = true;
  from.value[ListingIndex::kRfmSegment] = "Champions";
  to.value[ListingIndex::kRfmSegment] = "Loyal";
  index.Move("ann", from, to);
  EXPECT_EQ(index.Scan("x/rfm_segment/", "", "", 10),
            (std::vector<std::string>{"x/rfm_segment/Loyal/ann"}));
  for (const char* dim : {"advisor/adv-1", "grade/A", "region/north", "stage/LOYAL", "tier/GOLD"}) {
    EXPECT_EQ(index.Scan(std::string("x/") + dim + "/", "", "", 10),
              (std::vector<std::string>{std::string("x/") + dim + "/ann"}));
  }
  const auto again = index.Rank(projections::DomainConfig(), q);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].score, ranked[0].score);
  EXPECT_EQ(index.ranked(), 1u);
}

TEST(ListingIndexTest, ReadsAsTheStoredKeysInKeyOrder) {
  ListingIndex index;
  const Values none;
  // Regions where one name begins another ("Yu" and "Yu ci": the space sorts before
  // the '/' that follows a value in a key) and "none".
  index.Move("bob", none, Of("A", "Yu ci", "Champions", "LOYAL", "GOLD"));
  index.Move("ann", none, Of("A", "Yu", "Champions", "LOYAL", "GOLD"));
  index.Move("cy", none, Of("C", "Yu", "none", "PROSPECT", "STANDARD"));
  EXPECT_EQ(index.Scan("x/region/", "", "", 10),
            (std::vector<std::string>{"x/region/Yu ci/bob", "x/region/Yu/ann", "x/region/Yu/cy"}));
  EXPECT_EQ(index.Scan("x/region/Yu/", "", "", 10),
            (std::vector<std::string>{"x/region/Yu/ann", "x/region/Yu/cy"}));
  EXPECT_EQ(index.Scan("x/region/", "", "x/region/Yu/b", 10),
            (std::vector<std::string>{"x/region/Yu ci/bob", "x/region/Yu/ann"}));
  EXPECT_EQ(index.Scan("x/region/", "x/region/Yu/ann", "", 10),
            (std::vector<std::string>{"x/region/Yu/cy"}));
  EXPECT_EQ(index.Scan("x/stage/LOYAL/", "", "", 1), (std::vector<std::string>{"x/stage/LOYAL/ann"}));
  EXPECT_EQ(index.Scan("x/", "", "", 100).size(), 15u);

  // A move changes only the dimensions that differ; an erased customer leaves.
  index.Move("ann", Of("A", "Yu", "Champions", "LOYAL", "GOLD"),
             Of("A", "Yu", "Champions", "AT_RISK", "GOLD"));
  EXPECT_EQ(index.Scan("x/stage/", "", "", 10),
            (std::vector<std::string>{"x/stage/AT_RISK/ann", "x/stage/LOYAL/bob",
                                      "x/stage/PROSPECT/cy"}));
  index.Move("cy", Of("C", "Yu", "none", "PROSPECT", "STANDARD"), none);
  EXPECT_EQ(index.Scan("x/", "", "", 100).size(), 10u);
  EXPECT_EQ(index.entries(), 10u);
}

TEST(ListingIndexTest, AnyScanReadsWhatTheSameKeysStoredInOrderWouldRead) {
  std::mt19937 rng(7);
  auto pick = [&](const std::vector<std::string>& from) { return from[rng() % from.size()]; };
  const std::vector<std::string> grades = {"A", "B", "C", "NONE"};
  const std::vector<std::string> regions = {"Yu", "Yu ci", "Yuci", "Taiyuan", "unknown", "a"};
  const std::vector<std::string> rfm = {"Champions", "At Risk", "none", "Lost"};
  const std::vector<std::string> stages = {"NEW", "ACTIVE", "LOYAL", "AT_RISK", "CHURNED"};
  const std::vector<std::string> tiers = {"STANDARD", "SILVER", "GOLD"};
  const std::vector<std::string> advisors = {"", "adv-1", "adv-10", "adv-2"};
  ListingIndex index;
  Reference ref;
  std::vector<Values> current(300);
  for (int step = 0; step < 5000; ++step) {
    const size_t c = rng() % current.size();
    // Short ids, and long ones that share their first 8 bytes.
    const std::string id = (c % 2 ? "c" : "customer-") + std::to_string(c * 7919 % 1000);
    Values next;
    if (rng() % 20 != 0) {
      next = Of(pick(grades), pick(regions), pick(rfm), pick(stages), pick(tiers), pick(advisors));
    }
    index.Move(id, current[c], next);
    ref.Move(id, current[c], next);
    current[c] = next;
  }
  ASSERT_EQ(index.entries(), ref.size());
  const std::vector<std::string> prefixes = {"x/", "x/advisor/", "x/advisor/adv-1/", "x/stage/", "x/stage/LOYAL/", "x/region/",
                                             "x/region/Yu/", "x/region/Yu ci/", "x/grade/A/",
                                             "x/tier/", "x/rfm_segment/At Risk/"};
  for (int q = 0; q < 2000; ++q) {
    const std::string prefix = pick(prefixes);
    const std::vector<std::string> all = ref.Scan(prefix, "", "", 1u << 20);
    std::string after, before;
    if (!all.empty() && rng() % 2) after = all[rng() % all.size()];
    if (prefix == "x/region/" && rng() % 2) before = "x/region/" + pick(regions) + "/";
    const size_t limit = 1 + rng() % 60;
    ASSERT_EQ(index.Scan(prefix, after, before, limit), ref.Scan(prefix, after, before, limit))
        << prefix << " after " << after << " before " << before << " limit " << limit;
  }
}

// Rank() against a sort of every customer's figures, computed with the views'
// arithmetic as of each partition's stream time: filters, order, ties by id, paging.
constexpr int64_t kDay = 86400;
constexpr int64_t kT0 = 1'700'000'000;

struct Customer {
  std::string id;
  Values v;
};

// 400 customers (customer c numbered c in `index`), every ninth a prospect (not ranked),
// every fifth with the same figures as the others of its kind (ties ordered by id).
std::vector<Customer> RankedCustomers(ListingIndex* index) {
  std::mt19937 rng(11);
  const int64_t t0 = kT0;
  std::vector<Customer> all;
  for (int c = 0; c < 400; ++c) {
    Customer k{"c" + std::to_string(c * 7919 % 1000),
               Of("A", "Yu", "none", "NEW", "GOLD", c % 4 == 0 ? "" : "adv-" + std::to_string(c % 4))};
    k.v.partition = static_cast<int32_t>(rng() % 3);
    k.v.stage = static_cast<uint8_t>(1 + rng() % 3);
    k.v.grade = static_cast<uint8_t>(rng() % 3);
    if (c % 9 != 0) {  // every ninth a prospect: not ranked
      const int64_t first = t0 + static_cast<int64_t>(rng() % 300) * kDay;
      // Some customers share their figures exactly, so ties are ordered by id.
      const int days = c % 5 == 0 ? 3 : 1 + static_cast<int>(rng() % 12);
      const int64_t last = c % 5 == 0 ? first + 100 * kDay
                                      : first + static_cast<int64_t>(rng() % 400) * kDay;
      k.v.churn = {.activity_days = days, .first = first, .last = last,
                   .repeat_spend = c % 5 == 0 ? 60000 : static_cast<int64_t>(rng() % 500000)};
      if (c % 5 == 0) k.v.partition = 0;
    }
    index->Move(k.id, Values{}, k.v);
    all.push_back(std::move(k));
  }
  return all;
}

TEST(ListingIndexTest, RanksByChurnRiskAndExpectedValueAsOfEachPartitionsStreamTime) {
  namespace rules = projections::rules;
  const projections::DomainConfig config;
  const int64_t t0 = kT0;
  const std::vector<int64_t> stream_times = {t0 + 800 * kDay, t0 + 900 * kDay, t0 + 1000 * kDay};
  ListingIndex index;
  const std::vector<Customer> all = RankedCustomers(&index);
  EXPECT_EQ(index.ranked(), 400u - 45u);
  for (auto order : {ListingIndex::Order::kChurnRisk, ListingIndex::Order::kExpectedValue}) {
    for (double min_risk : {0.0, 0.5, 0.9}) {
      for (uint8_t stage : {0, 2}) {
       for (const std::string advisor : {"", "adv-2"}) {
        std::vector<ListingIndex::Ranked> want;
        for (const auto& k : all) {
          if (k.v.churn.activity_days == 0 || (stage && k.v.stage != stage)) continue;
          if (!advisor.empty() && k.v.value[ListingIndex::kAdvisor] != advisor) continue;
          const int64_t now = stream_times[static_cast<size_t>(k.v.partition)];
          const double p = rules::PAliveOf(config, k.v.churn, now);
          if (min_risk > 0 && 1 - p < min_risk - 1e-9) continue;
          const double score =
              order == ListingIndex::Order::kChurnRisk
                  ? p
                  : -static_cast<double>(std::llround(rules::ExpectedOf(config, k.v.churn, now).value));
          want.push_back({k.id, score});
        }
        std::sort(want.begin(), want.end(), [](const auto& a, const auto& b) {
          return a.score != b.score ? a.score < b.score : a.id < b.id;
        });
        // Page through in pages of 17.
        ListingIndex::RankQuery q;
        q.order = order;
        q.min_churn_risk = min_risk;
        q.stage = stage;
        q.advisor = advisor;
        q.stream_times = &stream_times;
        q.limit = 17;
        std::vector<ListingIndex::Ranked> got;
        for (;;) {
          auto page = index.Rank(config, q);
          got.insert(got.end(), page.begin(), page.end());
          if (page.size() < q.limit) break;
          q.after_score = page.back().score;
          q.after_id = page.back().id;
        }
        ASSERT_EQ(got.size(), want.size()) << static_cast<int>(order) << " " << min_risk;
        for (size_t i = 0; i < got.size(); ++i) {
          ASSERT_EQ(got[i].id, want[i].id) << i;
          ASSERT_EQ(got[i].score, want[i].score) << i;
        }
        if (order == ListingIndex::Order::kExpectedValue && min_risk == 0 && stage == 0) {
          EXPECT_LT(want.front().score, want.back().score) << "highest value first";
        }
        if (min_risk == 0.9) {
          EXPECT_LT(want.size(), 355u) << "the floor filters";
        }
        if (!advisor.empty() && min_risk == 0 && stage == 0) {
          EXPECT_GT(want.size(), 50u) << "an advisor's customers";
          EXPECT_LT(want.size(), 120u) << "only an advisor's customers";
        }
       }
      }
    }
  }
  // A customer that leaves, or loses its activity, is no longer ranked.
  index.Move(all[1].id, all[1].v, Values{});
  EXPECT_EQ(index.ranked(), 400u - 46u);
}

// Ranked a slice at a time, customers come out as all at once; commits between slices
// count for the customers not yet looked at, and each customer is looked at once.
TEST(ListingIndexTest, RankedInSlicesEachCustomerIsRankedOnceAsItStoodWhenItsSliceWasRead) {
  const projections::DomainConfig config;
  const std::vector<int64_t> stream_times(3, kT0 + 900 * kDay);
  ListingIndex index;
  const std::vector<Customer> all = RankedCustomers(&index);
  ListingIndex::RankQuery q;
  q.stream_times = &stream_times;
  q.limit = 1000;  // every ranked customer
  auto ids = [](const std::vector<ListingIndex::Ranked>& ranked) {
    std::vector<std::string> out;
    for (const auto& r : ranked) out.push_back(r.id);
    return out;
  };
  const std::vector<ListingIndex::Ranked> whole = index.Rank(config, q);
  ASSERT_EQ(whole.size(), 355u);
  for (size_t slice : {size_t{1}, size_t{7}, size_t{400}, size_t{100000}}) {
    for (size_t limit : {size_t{0}, size_t{17}, size_t{1000}}) {
      q.limit = limit;
      ListingIndex::Ranking ranking(config, q);
      int steps = 1;
      while (ranking.Step(index, slice)) ++steps;
      EXPECT_EQ(ids(ranking.Finish(index)), ids(index.Rank(config, q))) << slice << " " << limit;
      EXPECT_EQ(steps, static_cast<int>((400 + slice - 1) / slice)) << slice;
    }
  }
  q.limit = 1000;
  // Customers 0..199 looked at; then customer 10 (looked at) and 300 (not yet) leave,
  // customer 301 comes back with no activity, and a new customer comes.
  ListingIndex::Ranking ranking(config, q);
  ASSERT_TRUE(ranking.Step(index, 200));
  index.Move(all[10].id, all[10].v, Values{});
  index.Move(all[300].id, all[300].v, Values{});
  Values idle = all[301].v;
  idle.churn = {};
  index.Move(all[301].id, all[301].v, idle);
  Values fresh = all[1].v;
  index.Move("new-customer", Values{}, fresh);
  while (ranking.Step(index, 200)) {
  }
  const std::vector<std::string> got = ids(ranking.Finish(index));
  auto has = [&got](const std::string& id) { return std::count(got.begin(), got.end(), id); };
  EXPECT_EQ(has(all[10].id), 1) << "as it stood when its slice was read";
  EXPECT_EQ(has(all[300].id), 0);
  EXPECT_EQ(has(all[301].id), 0);
  EXPECT_EQ(has("new-customer"), 1);
  EXPECT_EQ(got.size(), 355u - 2 + 1);
}

}  // namespace
}  // namespace lifecycle::store
