#include "projections/projector.h"

#include <gtest/gtest.h>

#include <map>

#include "tests/projections/test_events.h"

namespace lifecycle::projections {
namespace {

using namespace lifecycle::testing;  // NOLINT

// An in-memory "store": what was committed, and a switch to make reads fail.
class MemoryStore : public StateReader {
 public:
  absl::StatusOr<std::optional<v1::CustomerState>> LoadCustomer(std::string_view id) override {
    ++loads;
    if (fail) return absl::UnavailableError("injected read failure");
    auto it = states.find(std::string(id));
    if (it == states.end()) return std::optional<v1::CustomerState>();
    return std::optional<v1::CustomerState>(it->second);
  }
  void Commit(const PendingBatch& b) {
    for (const auto* s : b.states) states[s->view().customer_id()] = *s;
    meta = b.meta;
  }
  std::map<std::string, v1::CustomerState> states;
  v1::PartitionMeta meta;
  bool fail = false;
  int loads = 0;
};

v1::PartitionMeta Fresh(int32_t p) {
  v1::PartitionMeta m;
  m.set_partition(p);
  m.set_offset(-1);
  return m;
}

TEST(ProjectorTest, BatchCarriesDirtyStatesAndOffset) {
  MemoryStore store;
  PartitionProjector proj({}, Fresh(2), &store);
  EXPECT_FALSE(proj.HasPending());
  ASSERT_TRUE(proj.Apply(0, Bytes(Purchase("e1", "a", kT0, 100))).ok());
  ASSERT_TRUE(proj.Apply(1, Bytes(Purchase("e2", "b", kT0 + 5, 200))).ok());
  ASSERT_TRUE(proj.Apply(2, Bytes(Purchase("e3", "a", kT0 + 9, 300))).ok());
  ASSERT_TRUE(proj.HasPending());
  PendingBatch b = proj.Pending();
  EXPECT_EQ(b.meta.offset(), 2);
  EXPECT_EQ(b.meta.partition(), 2);
  EXPECT_EQ(b.meta.events_applied(), 3);
  EXPECT_EQ(b.meta.stream_time().seconds(), kT0 + 9);
  ASSERT_EQ(b.states.size(), 2u);
  EXPECT_EQ(b.states[0]->view().customer_id(), "a");  // sorted
  EXPECT_EQ(b.states[0]->view().activity().total_spend_minor(), 400);
  store.Commit(b);
  proj.MarkCommitted();
  EXPECT_FALSE(proj.HasPending());
  EXPECT_EQ(proj.committed_meta().commits(), 1);
}

TEST(ProjectorTest, RejectedAndSkippedRecordsAdvanceOffsetWithoutChangingViews) {
  MemoryStore store;
  PartitionProjector proj({}, Fresh(0), &store);
  auto out = proj.Apply(0, "garbage\xff\xff");
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->kind, RecordOutcome::kRejected);
  out = proj.Apply(1, Bytes(Purchase("e1", "a", kT0, -1)));
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->kind, RecordOutcome::kRejected);
  EXPECT_NE(out->reason.find("amount_minor"), std::string::npos);
  PendingBatch b = proj.Pending();
  EXPECT_EQ(b.meta.offset(), 1);
  EXPECT_EQ(b.meta.events_rejected(), 2);
  EXPECT_EQ(b.meta.events_applied(), 0);
  EXPECT_TRUE(b.states.empty());
}

TEST(ProjectorTest, RecordsAtOrBelowTheAppliedOffsetAreIgnored) {
  MemoryStore store;
  v1::PartitionMeta m = Fresh(0);
  m.set_offset(10);
  PartitionProjector proj({}, m, &store);
  auto out = proj.Apply(10, Bytes(Purchase("e1", "a", kT0, 5)));
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->kind, RecordOutcome::kAlreadyApplied);
  EXPECT_FALSE(proj.HasPending());
}

TEST(ProjectorTest, ClockTickAdvancesStreamTimeOnly) {
  MemoryStore store;
  PartitionProjector proj({}, Fresh(0), &store);
  ASSERT_TRUE(proj.Apply(0, Bytes(Tick("t1", kT0 + 77))).ok());
  EXPECT_EQ(proj.meta().stream_time().seconds(), kT0 + 77);
  EXPECT_TRUE(proj.Pending().states.empty());
  EXPECT_EQ(store.loads, 0);
}

TEST(ProjectorTest, ReadFailureAppliesNothingAndCanBeRetried) {
  MemoryStore store;
  PartitionProjector proj({}, Fresh(0), &store);
  store.fail = true;
  EXPECT_FALSE(proj.Apply(0, Bytes(Purchase("e1", "a", kT0, 5))).ok());
  EXPECT_FALSE(proj.HasPending());
  store.fail = false;
  ASSERT_TRUE(proj.Apply(0, Bytes(Purchase("e1", "a", kT0, 5))).ok());
  EXPECT_EQ(proj.Pending().states[0]->view().activity().total_spend_minor(), 5);
}

TEST(ProjectorTest, CommittedStateIsReloadedAndContinued) {
  MemoryStore store;
  {
    PartitionProjector proj({}, Fresh(0), &store);
    ASSERT_TRUE(proj.Apply(0, Bytes(Purchase("e1", "a", kT0, 5))).ok());
    store.Commit(proj.Pending());
    proj.MarkCommitted();
  }
  PartitionProjector again({}, store.meta, &store);
  ASSERT_TRUE(again.Apply(1, Bytes(Purchase("e2", "a", kT0 + 1, 7))).ok());
  auto out = again.Apply(2, Bytes(Purchase("e1", "a", kT0, 5)));  // a duplicate of offset 0
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->kind, RecordOutcome::kDuplicate);
  EXPECT_EQ(again.Pending().states[0]->view().activity().total_spend_minor(), 12);
  EXPECT_EQ(again.meta().events_duplicate(), 1);
}

}  // namespace
}  // namespace lifecycle::projections
