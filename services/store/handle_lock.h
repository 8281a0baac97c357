#pragma once
// HandleLock: guards the store's RocksDB handle, which readers use all the time and
// which is replaced only when the store is opened again after a failed write, or
// closed. A reader counts itself in a counter of its own thread's (one cache line per
// counter), so reads share no lock word: two reads on two threads touch nothing in
// common. Taking it exclusively (a reopen, a close) raises a flag and waits until
// every counter is zero; a reader that meets the flag steps back and waits for it to
// come down.
//
// A thread that holds it shared may take it shared again (a callback of
// ForEachCustomer that reads): the inner read is counted without looking at the flag,
// so a reopen waiting for the outer one cannot stall it. Unlike a reader-first lock,
// a new read on another thread waits while an exclusive holder waits: a thread that
// holds a read must not wait for another thread to take a fresh one. The exclusive
// holder must not read (as with std::shared_mutex). Has what std::shared_lock and
// std::unique_lock use (lock_shared / unlock_shared, lock / unlock; no try_ forms).

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>

namespace lifecycle::store {

class HandleLock {
 public:
  HandleLock() = default;
  HandleLock(const HandleLock&) = delete;
  HandleLock& operator=(const HandleLock&) = delete;

  void lock_shared();
  void unlock_shared();
  void lock();
  void unlock();

  // Counters: a thread takes one by its number, so up to this many threads read
  // without sharing a cache line; more share (correct, only slower).
  static constexpr size_t kCounters = 32;

 private:
  struct alignas(64) Counter {
    std::atomic<int64_t> readers{0};
  };
  // This thread's counter, and how many reads of this lock it holds (for reads taken
  // inside reads).
  Counter& Mine();
  int& Depth();

  Counter counters_[kCounters];
  std::atomic<bool> writing_{false};
  std::mutex writer_;  // held by the exclusive holder; readers that meet it wait here
};

}  // namespace lifecycle::store
