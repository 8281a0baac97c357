#include "services/store/handle_lock.h"

#include <array>
#include <thread>
#include <utility>

namespace lifecycle::store {
namespace {

// Each thread's number, handed out in turn: the first kCounters threads that read get
// counters of their own.
size_t ThreadNumber() {
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
thread_local int depth_overflow = 0;  // (more locks at once than kHeld: never expected)

}  // namespace

HandleLock::Counter& HandleLock::Mine() { return counters_[ThreadNumber() % kCounters]; }

int& HandleLock::Depth() {
  Held* free = nullptr;
  for (Held& h : held) {
    if (h.lock == this) return h.depth;
    if (free == nullptr && h.depth == 0) free = &h;
  }
  if (free == nullptr) return depth_overflow;
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
  for (Counter& c : counters_) {
    while (c.readers.load(std::memory_order_seq_cst) != 0) std::this_thread::yield();
  }
}

void HandleLock::unlock() {
  writing_.store(false, std::memory_order_release);
  writer_.unlock();
}

}  // namespace lifecycle::store
