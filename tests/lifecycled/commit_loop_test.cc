// The commit loop against fakes: an in-memory source, a sink that can fail or hold
// a write, and a clock the test moves.
#include "services/lifecycled/commit_loop.h"

#include <gtest/gtest.h>

#include <atomic>
#include <deque>
#include <thread>

#include "tests/projections/memory_store.h"
#include "tests/projections/test_events.h"

namespace lifecycle::daemon {
namespace {

using namespace lifecycle::testing;  // NOLINT

struct FakeSource : RecordSource {
  std::deque<std::pair<int32_t, std::string>> records;
  std::map<int32_t, int64_t> next_offset;
  std::string current;
  absl::StatusOr<bool> Poll(int, stream::Record* out) override {
    if (records.empty()) return false;
    auto [p, bytes] = std::move(records.front());
    records.pop_front();
    current = std::move(bytes);
    out->partition = p;
    out->offset = next_offset[p]++;
    out->value = current;
    return true;
  }
  std::map<int32_t, int64_t> high;  // the log's end per partition (unknown when absent)
  int64_t HighWatermark(int32_t p) override { return high.count(p) ? high[p] : -1; }
  std::atomic<int> wakes{0};
  void Wake() override { ++wakes; }
  void Add(int32_t p, const v1::Event& e) { records.emplace_back(p, Bytes(e)); }
};

// Writes into a MemoryStore; can fail the next writes or hold them until released.
struct FakeSink : BatchSink {
  MemoryStore* store;
  std::mutex mu;
  std::condition_variable cv;
  int fail_next = 0;
  bool hold = false;
  int hold_at = 0;  // > 0: the write with this number (1, 2, …) waits until released
  std::atomic<int> writes{0};
  std::vector<size_t> customers;  // per write that landed: the customers of its batches
  std::atomic<int> in_write{0};
  std::vector<bool> catching_up;  // what the loop told, in order
  explicit FakeSink(MemoryStore* s) : store(s) {}
  void CatchingUp(bool behind) override { catching_up.push_back(behind); }
  absl::Status Write(const std::vector<projections::PendingBatch>& batches) override {
    std::unique_lock<std::mutex> lock(mu);
    ++in_write;
    cv.wait(lock, [&] { return !hold && (hold_at == 0 || writes + 1 != hold_at); });
    --in_write;
    ++writes;
    if (fail_next > 0) {
      --fail_next;
      return absl::UnavailableError("injected write failure");
    }
    size_t n = 0;
    for (const auto& b : batches) {
      store->Commit(b);
      n += b.customers.size();
    }
    customers.push_back(n);
    return absl::OkStatus();
  }
  void Release() {
    {
      std::lock_guard<std::mutex> lock(mu);
      hold = false;
      hold_at = 0;
    }
    cv.notify_all();
  }
};

struct FakeClock : Clock {
  std::chrono::steady_clock::time_point now{};
  std::chrono::steady_clock::time_point Now() override { return now; }
};

struct Recorder : CommitListener {
  int committed = 0, rejected = 0;
  std::vector<std::string> store_status;
  void OnRejected(const stream::Record&, const std::string&) override { ++rejected; }
  void OnSkipped(const stream::Record&, const std::string&) override {}
  void OnCommitted(const std::vector<projections::PendingBatch>&,
                   const std::vector<v1::PartitionMeta>&, double) override {
    ++committed;
  }
  void OnStoreStatus(const absl::Status& s) override {
    store_status.push_back(s.ok() ? "ok" : std::string(s.message()));
  }
  std::vector<std::pair<int, bool>> deadline_steps;  // (steps, applied) as told
  void OnDeadlineSteps(const stream::Record&, int steps, bool applied) override {
    deadline_steps.emplace_back(steps, applied);
  }
  int quiet = 0;
  void OnQuiet() override { ++quiet; }
};

class CommitLoopTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int32_t p : {0, 1}) {
      projectors[p] = std::make_unique<projections::PartitionProjector>(&config, FreshMeta(p), &store);
    }
  }
  std::unique_ptr<CommitLoop> Loop(CommitLoopOptions o) {
    o.retry_ms = 5;
    return std::make_unique<CommitLoop>(o, &projectors, &source, &sink, &clock, &listener);
  }
  // A loop whose store fails its next `failures` writes, after one step that folds a
  // purchase (and, with commit_every 1, hands its batch to the writer).
  std::unique_ptr<CommitLoop> FoldOnePurchaseIntoAFailingStore(int commit_every, int failures) {
    CommitLoopOptions o;
    o.commit_every = commit_every;
    auto loop = Loop(o);
    sink.fail_next = failures;
    source.Add(0, Purchase("e1", "a", kT0, 100));
    Steps(loop.get(), 1);
    return loop;
  }
  void Steps(CommitLoop* loop, int n) {
    for (int i = 0; i < n; ++i) ASSERT_TRUE(loop->Step().ok());
  }

  projections::DomainConfig config;
  MemoryStore store;
  Projectors projectors;
  FakeSource source;
  FakeSink sink{&store};
  FakeClock clock;
  Recorder listener;
};

TEST_F(CommitLoopTest, CommitsEveryNRecordsAndFlushLandsTheRest) {
  CommitLoopOptions o;
  o.commit_every = 3;
  o.overlap = false;
  auto loop = Loop(o);
  for (int i = 0; i < 7; ++i) source.Add(i % 2, Purchase("e" + std::to_string(i), "c" + std::to_string(i), kT0 + i, 100));
  Steps(loop.get(), 12);
  EXPECT_EQ(listener.committed, 2);
  EXPECT_EQ(store.meta[0].offset() + store.meta[1].offset() + 2, 6) << "6 records committed";
  ASSERT_TRUE(loop->Flush().ok());
  EXPECT_EQ(listener.committed, 3);
  EXPECT_EQ(store.meta[0].offset(), 3);
  EXPECT_EQ(store.meta[1].offset(), 2);
  EXPECT_EQ(store.records.size(), 7u);
}

// A record the projector defers (more customers came due than it runs in one batch) is
// committed up to there and offered again, before any other record is polled: each
// write holds a step of about the limit, and nothing is lost or applied twice.
TEST_F(CommitLoopTest, ARecordDeferredForItsDeadlinesIsOfferedAgainAfterTheirCommit) {
  projectors[0]->set_max_deadlines_per_batch(5);
  CommitLoopOptions o;
  o.commit_every = 1000;  // no commit but those the steps ask for
  auto loop = Loop(o);
  for (int i = 0; i < 40; ++i) {
    source.Add(0, Purchase("e" + std::to_string(i), "c" + std::to_string(i),
                           kT0 + i * 3 * kDay + i * 61, 100));
  }
  Steps(loop.get(), 40);
  EXPECT_EQ(listener.committed, 0);
  // Two years later: every customer's deadlines come due at once.
  source.Add(0, Purchase("jump", "c0", kT0 + 800 * kDay, 100));
  source.Add(1, Purchase("other", "x", kT0 + 800 * kDay, 100));
  for (int i = 0; i < 400 && !source.records.empty(); ++i) {
    ASSERT_TRUE(loop->Step().ok());
    if (source.records.size() == 1) {  // the jump is polled; partition 1's record waits
      EXPECT_LE(projectors[0]->meta().offset(), 40);
    }
  }
  ASSERT_TRUE(source.records.empty());
  EXPECT_EQ(projectors[0]->meta().offset(), 40) << "the jump applied once it was its turn";
  ASSERT_TRUE(loop->Flush().ok());
  EXPECT_EQ(store.meta[0].offset(), 40);
  EXPECT_EQ(store.meta[1].offset(), 0);
  EXPECT_EQ(store.records.size(), 41u);
  ASSERT_GT(sink.customers.size(), 8u) << "a step per 5 customers due";
  EXPECT_EQ(sink.customers.front(), 40u) << "the history, and the first step's 5 among them";
  for (size_t i = 1; i < sink.customers.size(); ++i) EXPECT_LE(sink.customers[i], 6u) << i;
  EXPECT_EQ(loop->pending_records(), 0);
  // Told at each step, then once applied.
  ASSERT_GT(listener.deadline_steps.size(), 8u);
  const int steps = static_cast<int>(listener.deadline_steps.size()) - 1;
  for (int i = 0; i < steps; ++i) EXPECT_EQ(listener.deadline_steps[i], std::make_pair(i + 1, false));
  EXPECT_EQ(listener.deadline_steps.back(), std::make_pair(steps, true));
}

TEST_F(CommitLoopTest, TheIntervalCommitsAQuietStream) {
  CommitLoopOptions o;
  o.commit_every = 1000;
  o.commit_interval_ms = 100;
  o.overlap = false;
  auto loop = Loop(o);
  source.Add(0, Purchase("e1", "a", kT0, 100));
  Steps(loop.get(), 3);
  EXPECT_EQ(listener.committed, 0);
  clock.now += std::chrono::milliseconds(100);
  Steps(loop.get(), 3);
  EXPECT_EQ(listener.committed, 1);
}

// The listener hears of each poll that brought nothing (the daemon then sends the group
// offsets its interval held back), and of no other.
TEST_F(CommitLoopTest, TheListenerIsToldOfEachPollThatBroughtNothing) {
  CommitLoopOptions o;
  o.commit_every = 1;
  o.overlap = false;
  auto loop = Loop(o);
  source.Add(0, Purchase("e1", "a", kT0, 100));
  source.Add(1, Purchase("e2", "b", kT0, 100));
  while (!source.records.empty()) Steps(loop.get(), 1);
  ASSERT_TRUE(loop->Flush().ok());
  EXPECT_EQ(listener.quiet, 0) << "every poll so far brought a record";
  Steps(loop.get(), 3);
  EXPECT_EQ(listener.quiet, 3);
  source.Add(0, Purchase("e3", "a", kT0 + 60, 100));
  Steps(loop.get(), 1);
  EXPECT_EQ(listener.quiet, 3);
}

// The sink hears when the loop starts catching up and when it is done: from a commit,
// or, with nothing left to commit, from an idle poll.
TEST_F(CommitLoopTest, TheSinkIsToldWhenCatchingUpStartsAndEnds) {
  CommitLoopOptions o;
  o.commit_every = 2;
  o.catchup_commit_every = 4;
  o.overlap = false;
  auto loop = Loop(o);
  auto fold_all = [&] {
    for (int i = 0; i < 1000 && !source.records.empty(); ++i) ASSERT_TRUE(loop->Step().ok());
    ASSERT_TRUE(source.records.empty());
  };
  auto add = [&](int from, int to) {
    for (int i = from; i < to; ++i) {
      source.Add(0, Purchase("e" + std::to_string(i), "c" + std::to_string(i), kT0 + i, 100));
    }
  };
  source.high[0] = 20;  // twelve records more than it will be offered for now
  add(0, 8);
  fold_all();
  ASSERT_TRUE(loop->Flush().ok());
  EXPECT_EQ(sink.catching_up, std::vector<bool>{true});
  Steps(loop.get(), 3);  // idle, and still behind
  EXPECT_EQ(sink.catching_up, std::vector<bool>{true});
  source.high[0] = 8;  // the end of the log is where the loop is: no commit comes to ask
  Steps(loop.get(), 1);
  EXPECT_EQ(sink.catching_up, (std::vector<bool>{true, false}));
  // And again, told by a commit this time: records far behind the end, then the end.
  source.high[0] = 30;
  add(8, 18);
  fold_all();
  ASSERT_TRUE(loop->Flush().ok());
  EXPECT_EQ(sink.catching_up, (std::vector<bool>{true, false, true}));
  source.high[0] = 20;
  add(18, 20);
  Steps(loop.get(), 2);  // the second record makes a commit due: at the end now
  EXPECT_EQ(sink.catching_up, (std::vector<bool>{true, false, true, false}));
  EXPECT_EQ(loop->pending_records(), 0);
}

// A write that lands wakes the source (a poll waiting on the loop's thread returns, so
// the commit is told at once); a write that fails does not.
TEST_F(CommitLoopTest, ALandedWriteWakesThePollAFailedOneDoesNot) {
  auto loop = FoldOnePurchaseIntoAFailingStore(/*commit_every=*/1, /*failures=*/1);
  for (int i = 0; i < 2000 && sink.writes < 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ASSERT_EQ(sink.writes, 2) << "the failed write and its retry";
  for (int i = 0; i < 2000 && source.wakes == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_EQ(source.wakes, 1);
  Steps(loop.get(), 1);
  EXPECT_EQ(listener.committed, 1);
}

// The fold goes on while a write is held; a customer of the batch in flight is read
// from memory, not from the store that does not have it yet; the views end the same.
TEST_F(CommitLoopTest, AWriteOverlapsTheFoldOfTheNextBatch) {
  CommitLoopOptions o;
  o.commit_every = 2;
  auto loop = Loop(o);
  sink.hold = true;
  source.Add(0, Purchase("e1", "a", kT0, 100));
  source.Add(0, Purchase("e2", "b", kT0 + 1, 100));
  source.Add(0, Purchase("e3", "a", kT0 + 2, 250));  // "a" is in the batch being written
  Steps(loop.get(), 3);
  while (sink.in_write.load() == 0) std::this_thread::yield();
  EXPECT_EQ(store.records.size(), 0u) << "the first write is still held";
  EXPECT_EQ(projectors[0]->meta().offset(), 2) << "the third record was folded meanwhile";
  const int loads = store.loads;
  sink.Release();
  ASSERT_TRUE(loop->Flush().ok());
  EXPECT_EQ(store.loads, loads);
  EXPECT_EQ(store.View("a").activity().total_spend_minor(), 350);
  EXPECT_EQ(store.meta[0].offset(), 2);
  EXPECT_EQ(listener.committed, 2);
}

// A profile changed again while its last change is being written: the store merges both
// changes, in order (no profile is read to change it).
TEST_F(CommitLoopTest, AProfileChangedWhileItsLastChangeIsInFlightHasBoth) {
  CommitLoopOptions o;
  o.commit_every = 1;
  auto loop = Loop(o);
  sink.hold = true;
  source.Add(0, Registered("e1", "a", kT0));
  source.Add(0, VehicleSale("e2", "a", kT0 + 1, 100, "o-1"));
  Steps(loop.get(), 2);
  sink.Release();
  ASSERT_TRUE(loop->Flush().ok());
  const v1::CustomerView v = store.View("a");
  EXPECT_EQ(v.profile().name(), "Customer a");
  EXPECT_EQ(v.profile().vehicle_model(), "SUV X");
}

TEST_F(CommitLoopTest, AFailedWriteIsRetriedAndThePositionHolds) {
  CommitLoopOptions o;
  o.commit_every = 1;
  auto loop = Loop(o);
  sink.fail_next = 2;
  for (int i = 0; i < 5; ++i) source.Add(0, Purchase("e" + std::to_string(i), "a", kT0 + i, 100));
  Steps(loop.get(), 2);  // the first batch is being written (and failing); the second is due
  for (int i = 0; i < 200 && sink.writes.load() < 3; ++i) Steps(loop.get(), 1);
  EXPECT_GE(sink.writes.load(), 3);
  ASSERT_FALSE(listener.store_status.empty());
  EXPECT_EQ(listener.store_status.front(), "injected write failure");
  ASSERT_TRUE(loop->Flush().ok());
  EXPECT_EQ(listener.store_status.back(), "ok");
  EXPECT_EQ(store.meta[0].offset() + 1, projectors[0]->meta().offset() + 1);
  EXPECT_EQ(store.View("a").activity().event_count(), projectors[0]->meta().offset() + 1)
      << "nothing lost, nothing twice";
}

TEST_F(CommitLoopTest, FlushGivesUpOnAStoreThatKeepsFailing) {
  auto loop = FoldOnePurchaseIntoAFailingStore(/*commit_every=*/100, /*failures=*/1000);
  absl::Status s = loop->Flush(/*max_retries=*/3);
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.message(), "injected write failure");
  EXPECT_TRUE(store.records.empty());
}

// A write that lands just as Flush decides to give up on it: that Flush succeeds, and
// the next one tries a failing write as often as the first did (it is not given up at
// its first failure, nor dropped).
TEST_F(CommitLoopTest, AWriteThatLandsAsFlushGivesUpLeavesTheNextFlushItsRetries) {
  sink.hold_at = 4;  // the fourth try waits, after three failures
  auto loop = FoldOnePurchaseIntoAFailingStore(/*commit_every=*/1, /*failures=*/3);
  for (;;) {  // the writer is in its fourth try
    {
      std::lock_guard<std::mutex> lock(sink.mu);
      if (sink.in_write.load() == 1 && sink.writes.load() == 3) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  // Flush sees three failures and gives up on the write in flight, which then lands.
  std::thread release([this] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    sink.Release();
  });
  absl::Status first = loop->Flush(/*max_retries=*/3);
  release.join();
  ASSERT_TRUE(first.ok()) << first;
  EXPECT_EQ(store.View("a").activity().event_count(), 1);
  sink.fail_next = 2;
  source.Add(0, Purchase("e2", "a", kT0 + 1, 100));
  Steps(loop.get(), 1);
  absl::Status second = loop->Flush(/*max_retries=*/3);
  ASSERT_TRUE(second.ok()) << second;
  EXPECT_EQ(store.View("a").activity().event_count(), 2);
}

// A read of the state failing while a record is applied (its deadlines may have run for
// some customers and not for others) stops the loop, and what the projector folded since
// its last commit is not committed, not even by the final Flush: a restart replays it.
TEST_F(CommitLoopTest, AReadFailingWhileARecordIsAppliedCommitsNothingMoreOfItsPartition) {
  CommitLoopOptions o;
  o.commit_every = 100;
  auto loop = Loop(o);
  source.Add(0, Purchase("e1", "a", kT0, 100));
  Steps(loop.get(), 1);
  store.fail_reads = true;
  source.Add(0, Purchase("e2", "b", kT0 + 1, 100));
  absl::Status s = loop->Step();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  store.fail_reads = false;
  absl::Status f = loop->Flush();
  EXPECT_EQ(f.code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(f.message(),
            "partition 0: a read of its state failed while a record was applied (injected "
            "read failure), so what this process folded of its events since the last commit "
            "is not committed; stopping, so that a restart replays them from the store");
  EXPECT_TRUE(store.records.empty());
  EXPECT_FALSE(store.meta.count(0));
}

TEST_F(CommitLoopTest, AfterAGivenUpCommitNothingMoreIsCommittedUntilItsProjectorIsDropped) {
  auto loop = FoldOnePurchaseIntoAFailingStore(/*commit_every=*/100, /*failures=*/1000);
  ASSERT_FALSE(loop->Flush(/*max_retries=*/3).ok());
  sink.fail_next = 0;  // the store takes writes again
  // Partition 0's batch is not in the store: a later commit of partition 0 would record
  // an offset past the purchase the store never got.
  source.Add(0, Purchase("e2", "a", kT0 + 1, 100));
  absl::Status s = loop->Step();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(s.message(),
            "partition 0: a commit was given up (injected write failure), so the store lacks "
            "events this process folded after it; stopping, so that a restart replays them "
            "from the store");
  EXPECT_EQ(loop->Flush().code(), absl::StatusCode::kDataLoss);
  EXPECT_TRUE(store.records.empty());
  EXPECT_FALSE(store.meta.count(0));
  // Dropped (revoked, or a new projector from the store): the rest goes on.
  projectors.erase(0);
  source.Add(1, Purchase("e3", "b", kT0 + 2, 100));
  Steps(loop.get(), 3);
  ASSERT_TRUE(loop->Flush().ok());
  EXPECT_FALSE(store.meta.count(0));
  EXPECT_EQ(store.View("b").activity().event_count(), 1);
  ASSERT_FALSE(listener.store_status.empty());
  EXPECT_EQ(listener.store_status.back(), "ok") << "the store is told to be writable again";
}

}  // namespace
}  // namespace lifecycle::daemon
