#include "services/store/handle_lock.h"

#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <utility>

namespace lifecycle::store {
namespace {

// Each thread's number, handed out in turn: the first kCounters threads that read get
// counters of their own.
size_t ThreadNumberOfThisThread() {
  static std::atomic<size_t> next{0};
  thread_local const size_t mine = next.fetch_add(1, std::memory_order_relaxed);
  return mine;
}

// The reads this thread holds, per lock (a few locks at a time: a store or two).
struct Held {
  const void* lock = nullptr;
  int depth = 0;
};
constexpr size_t kHeld = 8;
thread_local std::array<Held, kHeld> held;

}  // namespace

HandleLock::Counter& HandleLock::Mine() {
  return counters_[ThreadNumberOfThisThread() % kCounters];
}

int& HandleLock::Depth() {
  Held* free = nullptr;
  for (Held& h : held) {
    if (h.lock == this) return h.depth;
    if (free == nullptr && h.depth == 0) free = &h;
  }
  if (free == nullptr) {
    // Reads of more than kHeld locks at once on one thread: not counted apart, a read
    // could go past an exclusive holder. Nothing here holds more than two.
    std::fprintf(stderr, "HandleLock: one thread holds reads of more than %zu locks\n", kHeld);
    std::abort();
  }
  free->lock = this;
  free->depth = 0;
  return free->depth;
}

void HandleLock::lock_shared() {
  int& depth = Depth();
  Counter& c = Mine();
  if (depth > 0) {  // a read inside a read: the exclusive holder waits for the outer one
    c.readers.fetch_add(1, std::memory_order_relaxed);
    ++depth;
    return;
  }
  for (;;) {
    // Counted first, then the flag looked at; lock() raises the flag, then looks at the
    // counters. Both sequentially consistent: at least one of the two sees the other.
    c.readers.fetch_add(1, std::memory_order_seq_cst);
    if (!writing_.load(std::memory_order_seq_cst)) break;
    c.readers.fetch_sub(1, std::memory_order_release);
    std::lock_guard<std::mutex> wait(writer_);  // until the exclusive holder is done
  }
  ++depth;
}

void HandleLock::unlock_shared() {
  --Depth();
  Mine().readers.fetch_sub(1, std::memory_order_release);
}

void HandleLock::lock() {
  writer_.lock();
  writing_.store(true, std::memory_order_seq_cst);
  // Reads are short, except a listing build or a scan a reopen or close may meet:
  // after a few turns, wait in sleeps rather than keep a core busy.
  for (Counter& c : counters_) {
    for (int turns = 0; c.readers.load(std::memory_order_seq_cst) != 0; ++turns) {
      if (turns < 64) {
        std::this_thread::yield();
      } else {
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
    }
  }
}

void HandleLock::unlock() {
  writing_.store(false, std::memory_order_release);
  writer_.unlock();
}

}  // namespace lifecycle::store
