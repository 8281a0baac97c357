#include "projections/due_index.h"

#include <random>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "gtest/gtest.h"

namespace lifecycle::projections {
namespace {

using Taken = std::vector<std::pair<int64_t, std::string>>;

Taken Take(DueIndex& index, const IdTable& ids, int64_t now) {
  Taken out;
  for (const DueIndex::Due& d : index.TakeThrough(now)) {
    out.emplace_back(d.at, std::string(ids.Id(d.slot)));
  }
  return out;
}

// CutFor: the instant to take through for about `limit` deadlines, never splitting one.
TEST(DueIndexTest, CutForStopsBeforeTheInstantOfTheFirstDeadlinePastTheLimit) {
  IdTable ids;
  DueIndex index(&ids);
  const int64_t bucket = int64_t{1} << DueIndex::kBucketShift;
  const int64_t now = 9 * bucket;
  EXPECT_EQ(index.CutFor(now, 2), now) << "none due";
  // Due at 100, 100, 200 (in another bucket), 300; 400 is past now.
  index.Insert(100, ids.Intern("a"));
  index.Insert(100, ids.Intern("b"));
  index.Insert(3 * bucket + 200, ids.Intern("c"));
  index.Insert(3 * bucket + 300, ids.Intern("d"));
  index.Insert(now + 400, ids.Intern("e"));
  EXPECT_EQ(index.CutFor(now, 4), now) << "four due: all";
  EXPECT_EQ(index.CutFor(now, 3), 3 * bucket + 299);
  EXPECT_EQ(index.CutFor(now, 2), 3 * bucket + 199);
  EXPECT_EQ(index.CutFor(now, 1), 100) << "an instant is not split";
  EXPECT_EQ(index.CutFor(50, 1), 50) << "none due by then";
  EXPECT_EQ(Take(index, ids, index.CutFor(now, 2)), (Taken{{100, "a"}, {100, "b"}}));
  EXPECT_EQ(index.size(), 3u);
}

TEST(DueIndexTest, TakesDeadlinesInDeadlineThenIdOrderAcrossBuckets) {
  IdTable ids;
  DueIndex index(&ids);
  const int64_t bucket = int64_t{1} << DueIndex::kBucketShift;
  // Ids that tie on their first 8 bytes order by the rest.
  const uint32_t a = ids.Intern("customer-b"), b = ids.Intern("customer-a2"),
                 c = ids.Intern("customer-a1"), d = ids.Intern("C9");
  index.Insert(5 * bucket + 7, a);
  index.Insert(5 * bucket + 7, b);
  index.Insert(5 * bucket + 7, c);
  index.Insert(2 * bucket, d);
  EXPECT_EQ(index.size(), 4u);
  EXPECT_TRUE(Take(index, ids, 2 * bucket - 1).empty());
  EXPECT_EQ(Take(index, ids, 2 * bucket), (Taken{{2 * bucket, "C9"}}));
  EXPECT_TRUE(Take(index, ids, 5 * bucket + 6).empty());
  EXPECT_EQ(Take(index, ids, 9 * bucket),
            (Taken{{5 * bucket + 7, "customer-a1"}, {5 * bucket + 7, "customer-a2"},
                   {5 * bucket + 7, "customer-b"}}));
  EXPECT_EQ(index.size(), 0u);
}

TEST(DueIndexTest, AMovedDeadlineIsTakenOnceAtItsNewTimeAndAnUnknownOneIsNotErased) {
  IdTable ids;
  DueIndex index(&ids);
  const uint32_t a = ids.Intern("A"), b = ids.Intern("B");
  index.Insert(1'000'000, a);
  index.Erase(1'000'000, a);
  index.Insert(3'000'000, a);
  index.Erase(1'000'000, a);  // not its deadline any more: nothing
  index.Erase(5, b);          // never indexed: nothing
  index.Insert(1'000'000, a);  // back where it was: one entry, not two
  index.Insert(2'000'000, b);
  EXPECT_EQ(index.size(), 2u);
  EXPECT_EQ(Take(index, ids, 4'000'000), (Taken{{1'000'000, "A"}, {2'000'000, "B"}}));
  // Into the bucket the stream has reached, behind what was taken.
  index.Insert(4'000'001, a);
  index.Insert(4'000'000, b);  // (at `now` itself: taken next time)
  EXPECT_EQ(Take(index, ids, 4'000'000), (Taken{{4'000'000, "B"}}));
  EXPECT_EQ(Take(index, ids, 4'000'001), (Taken{{4'000'001, "A"}}));
}

// Random moves, takes and re-inserts against an ordered set of (deadline, id).
TEST(DueIndexTest, AgreesWithAnOrderedSetThroughRandomMovesAndTakes) {
  IdTable ids;
  DueIndex index(&ids);
  std::set<std::pair<int64_t, std::string>> model;
  std::vector<int64_t> at;  // by slot; -1: none
  std::mt19937_64 rng(7);
  const int customers = 3000;
  for (int i = 0; i < customers; ++i) {
    ids.Intern("C" + std::to_string(rng() % 100000000) + "-" + std::to_string(i));
    at.push_back(-1);
  }
  int64_t now = 0;
  size_t taken = 0;
  for (int step = 0; step < 200000; ++step) {
    const uint32_t s = static_cast<uint32_t>(rng() % customers);
    const std::string id(ids.Id(s));
    if (rng() % 50 == 0) {
      now += static_cast<int64_t>(rng() % 40000);
      Taken expect;
      while (!model.empty() && model.begin()->first <= now) {
        expect.push_back(*model.begin());
        at[ids.Find(model.begin()->second).value()] = -1;
        model.erase(model.begin());
      }
      const Taken got = Take(index, ids, now);
      ASSERT_EQ(got, expect) << "step " << step;
      taken += got.size();
      continue;
    }
    if (at[s] >= 0) {
      index.Erase(at[s], s);
      model.erase({at[s], id});
      at[s] = -1;
    }
    if (rng() % 8 != 0) {
      // Mostly ahead, some within the bucket the stream is in, ties on purpose.
      const int64_t when = now + 1 + static_cast<int64_t>(rng() % (rng() % 4 == 0 ? 100 : 400000));
      index.Insert(when - when % 5, s);
      model.insert({when - when % 5, id});
      at[s] = when - when % 5;
    }
    ASSERT_EQ(index.size(), model.size());
  }
  EXPECT_GT(taken, 10000u);
  const Taken rest = Take(index, ids, std::numeric_limits<int64_t>::max());
  EXPECT_EQ(rest, Taken(model.begin(), model.end()));
}

// Deadlines moved many times between two buckets far ahead: their tombstones are
// compacted away again and again, and what is taken is still every live deadline once,
// in order.
TEST(DueIndexTest, DeadlinesMovedOftenWithinFarBucketsAreTakenOnceInOrder) {
  IdTable ids;
  DueIndex index(&ids);
  const int64_t bucket = int64_t{1} << DueIndex::kBucketShift;
  const int64_t base = 100 * bucket;
  std::set<std::pair<int64_t, std::string>> model;
  std::vector<int64_t> at;
  for (int i = 0; i < 1000; ++i) {
    ids.Intern("C" + std::to_string(i));
    at.push_back(-1);
  }
  std::mt19937_64 rng(11);
  for (int step = 0; step < 100000; ++step) {
    const uint32_t s = static_cast<uint32_t>(rng() % at.size());
    const std::string id(ids.Id(s));
    if (at[s] >= 0) {
      index.Erase(at[s], s);
      model.erase({at[s], id});
    }
    at[s] = base + static_cast<int64_t>(rng() % (2 * bucket));
    index.Insert(at[s], s);
    model.insert({at[s], id});
  }
  ASSERT_EQ(index.size(), model.size());
  Taken expect(model.begin(), model.end());
  Taken got = Take(index, ids, base + bucket + 100);
  const Taken rest = Take(index, ids, base + 2 * bucket);
  got.insert(got.end(), rest.begin(), rest.end());
  EXPECT_EQ(got, expect);
  EXPECT_EQ(index.size(), 0u);
}

}  // namespace
}  // namespace lifecycle::projections
