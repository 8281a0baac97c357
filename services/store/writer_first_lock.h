#pragma once
// WriterFirstLock: a reader/writer lock under which a writer that waits keeps new
// readers out. std::shared_mutex (glibc's default rwlock) lets new readers in while a
// writer waits, so readers whose holds overlap — two dashboards listing customers back
// to back — can keep a writer out indefinitely (a commit stalled for 30 s:
// docs/benchmarks.md). Here a writer waits only for the reads already under way.
//
// Not recursive for readers: a thread that holds a read must not take another (a
// writer waiting between the two would wait for the first while the second waits for
// it). Has what std::shared_lock and std::unique_lock use.

#include <pthread.h>

namespace lifecycle::store {

class WriterFirstLock {
 public:
  WriterFirstLock();
  ~WriterFirstLock();
  WriterFirstLock(const WriterFirstLock&) = delete;
  WriterFirstLock& operator=(const WriterFirstLock&) = delete;

  void lock();
  void unlock();
  void lock_shared();
  // False while a writer holds it or waits for it.
  bool try_lock_shared();
  void unlock_shared();

 private:
  pthread_rwlock_t rw_;
};

}  // namespace lifecycle::store
