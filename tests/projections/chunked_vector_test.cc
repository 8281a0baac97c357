#include "projections/chunked_vector.h"

#include <cstdint>
#include <vector>

#include "gtest/gtest.h"

namespace lifecycle::projections {
namespace {

// The projector's slots: addresses stay as the array grows past many chunks, and each
// element is where its number says, value-initialized.
TEST(ChunkedVectorTest, ElementsStayWhereTheyAreAsItGrows) {
  struct Item {
    uint64_t a;
    uint32_t b;
  };
  ChunkedVector<Item, 3> v;  // chunks of 8
  std::vector<const Item*> where;
  for (uint64_t n = 0; n < 100; ++n) {
    Item& it = v.emplace_back();
    EXPECT_EQ(it.a, 0u);
    EXPECT_EQ(it.b, 0u);
    it.a = n * 7;
    where.push_back(&it);
  }
  ASSERT_EQ(v.size(), 100u);
  for (size_t n = 0; n < 100; ++n) {
    EXPECT_EQ(&v[n], where[n]) << n;
    EXPECT_EQ(v[n].a, n * 7) << n;
  }
  uint64_t sum = 0;
  v.ForEach([&](Item& it) { sum += it.a; });
  EXPECT_EQ(sum, 7u * 99 * 100 / 2);
}

}  // namespace
}  // namespace lifecycle::projections
