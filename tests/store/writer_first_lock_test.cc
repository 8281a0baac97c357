#include "services/store/writer_first_lock.h"

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
using Clock = std::chrono::steady_clock;

// Once a writer waits, a new reader is turned away until the writer has been in.
TEST(WriterFirstLockTest, AWaitingWriterKeepsNewReadersOut) {
  WriterFirstLock lock;
  lock.lock_shared();  // a read under way
  std::atomic<bool> wrote{false};
  std::thread writer([&] {
    std::unique_lock<WriterFirstLock> w(lock);
    wrote.store(true);
  });
  // A reader on another thread: let in until the writer waits, then turned away.
  std::atomic<bool> turned_away{false};
  std::thread reader([&] {
    for (const auto until = Clock::now() + 30s; Clock::now() < until;) {
      if (!lock.try_lock_shared()) {
        turned_away.store(true);
        return;
      }
      lock.unlock_shared();
      std::this_thread::sleep_for(1ms);
    }
  });
  reader.join();
  EXPECT_TRUE(turned_away.load());
  EXPECT_FALSE(wrote.load());  // the read under way still holds it
  lock.unlock_shared();
  writer.join();
  EXPECT_TRUE(wrote.load());
  EXPECT_TRUE(lock.try_lock_shared());  // and readers come in again
  lock.unlock_shared();
}

// Readers whose holds always overlap (each takes it again as soon as it lets go) do
// not keep a writer out: std::shared_mutex here lets the writer wait for as long as
// they read.
TEST(WriterFirstLockTest, OverlappingReadersDoNotKeepAWriterOut) {
  WriterFirstLock lock;
  int64_t a = 0, b = 0;  // equal whenever no writer is between its two writes
  std::atomic<bool> stop{false}, gave_up{false};
  std::atomic<int64_t> reads{0}, torn{0};
  // Liveness, not speed: 20 writes take milliseconds here. Kept out, the writer would
  // get in only when the readers give up, after 30 s.
  const auto give_up = Clock::now() + 30s;
  std::vector<std::thread> readers;
  for (int i = 0; i < 3; ++i) {
    readers.emplace_back([&, i] {
      std::this_thread::sleep_for(std::chrono::milliseconds(i));  // staggered holds
      while (!stop.load()) {
        if (Clock::now() > give_up) {
          gave_up.store(true);
          return;
        }
        std::shared_lock<WriterFirstLock> read(lock);
        const int64_t x = a;
        std::this_thread::sleep_for(2ms);
        if (x != b) torn.fetch_add(1);
        reads.fetch_add(1);
      }
    });
  }
  std::this_thread::sleep_for(20ms);  // the readers under way
  for (int i = 1; i <= 20; ++i) {
    std::unique_lock<WriterFirstLock> write(lock);
    a = i;
    b = i;
  }
  stop.store(true);
  for (auto& r : readers) r.join();
  EXPECT_FALSE(gave_up.load()) << "the writer got in only once the readers stopped";
  EXPECT_GT(reads.load(), 0);
  EXPECT_EQ(torn.load(), 0);
}

}  // namespace
}  // namespace lifecycle::store
