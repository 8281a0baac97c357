#include "services/store/handle_lock.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <shared_mutex>
#include <thread>
#include <vector>

namespace lifecycle::store {
namespace {

using namespace std::chrono_literals;

// What the exclusive holder changes is never seen half-changed by a reader, with
// readers on more threads than there are counters (some share one).
TEST(HandleLockTest, ReadersNeverSeeAnExclusiveChangeHalfDone) {
  HandleLock lock;
  int64_t a = 0, b = 0;  // equal whenever no exclusive holder is between the two writes
  std::atomic<bool> stop{false};
  std::atomic<int64_t> reads{0}, torn{0};
  std::vector<std::thread> readers;
  for (size_t i = 0; i < HandleLock::kCounters + 4; ++i) {
    readers.emplace_back([&] {
      while (!stop.load()) {
        std::shared_lock<HandleLock> read(lock);
        const int64_t x = a;
        std::this_thread::yield();
        if (x != b) torn.fetch_add(1);
        reads.fetch_add(1);
      }
    });
  }
  for (int64_t i = 1; i <= 300; ++i) {
    std::unique_lock<HandleLock> write(lock);
    a = i;
    std::this_thread::yield();
    b = i;
  }
  stop = true;
  for (auto& t : readers) t.join();
  EXPECT_EQ(torn.load(), 0);
  EXPECT_GT(reads.load(), 0);
  EXPECT_EQ(a, 300);
}

// The exclusive holder waits for the reads under way, and reads wait for it.
TEST(HandleLockTest, ExclusiveWaitsForReadsAndReadsWaitForIt) {
  HandleLock lock;
  std::atomic<bool> acquired{false}, released{false};
  std::shared_lock<HandleLock> read(lock);
  std::thread writer([&] {
    std::unique_lock<HandleLock> write(lock);
    acquired = true;
    std::this_thread::sleep_for(50ms);
    released = true;
  });
  std::this_thread::sleep_for(50ms);
  EXPECT_FALSE(acquired.load()) << "the exclusive holder went ahead of a read";
  read.unlock();
  for (int i = 0; i < 5000 && !acquired.load(); ++i) std::this_thread::sleep_for(1ms);
  ASSERT_TRUE(acquired.load());
  // A new read (on another thread) waits until the exclusive holder is done.
  bool after_release = false;
  std::thread reader([&] {
    std::shared_lock<HandleLock> r(lock);
    after_release = released.load();
  });
  reader.join();
  writer.join();
  EXPECT_TRUE(after_release);
}

// A read taken inside a read on the same thread goes ahead while an exclusive holder
// waits for the outer one (a reader-first lock would too; a writer-first one would
// deadlock here).
TEST(HandleLockTest, AReadInsideAReadDoesNotWaitForAWaitingExclusive) {
  HandleLock lock;
  std::atomic<bool> written{false};
  std::shared_lock<HandleLock> outer(lock);
  std::thread writer([&] {
    std::unique_lock<HandleLock> write(lock);
    written = true;
  });
  std::this_thread::sleep_for(30ms);  // the writer has raised its flag and waits
  {
    std::shared_lock<HandleLock> inner(lock);
    EXPECT_FALSE(written.load());
  }
  EXPECT_FALSE(written.load());
  outer.unlock();
  writer.join();
  EXPECT_TRUE(written.load());
  // And the thread reads again afterwards as usual.
  std::shared_lock<HandleLock> again(lock);
}

// Reads of two locks at once on one thread are counted apart.
TEST(HandleLockTest, ReadsOfTwoLocksAreCountedApart) {
  HandleLock first, second;
  std::shared_lock<HandleLock> a(first);
  {
    std::shared_lock<HandleLock> b(second);
  }
  // `second` is free although `first` is still read: its exclusive holder gets it.
  std::thread writer([&] { std::unique_lock<HandleLock> write(second); });
  writer.join();
  a.unlock();
  std::unique_lock<HandleLock> write(first);
}

}  // namespace
}  // namespace lifecycle::store
