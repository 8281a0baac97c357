#include "services/store/writer_first_lock.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace lifecycle::store {
namespace {

// A lock call that fails is a bug here (a deadlock detected, a lock not held): stop.
void Check(int rc, const char* what) {
  if (rc == 0) return;
  std::fprintf(stderr, "WriterFirstLock: %s: %s\n", what, std::strerror(rc));
  std::abort();
}

}  // namespace

WriterFirstLock::WriterFirstLock() {
  pthread_rwlockattr_t attr;
  Check(pthread_rwlockattr_init(&attr), "pthread_rwlockattr_init");
  // glibc's writer-preferring kind: readers do not enter while a writer waits.
  Check(pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP),
        "pthread_rwlockattr_setkind_np");
  Check(pthread_rwlock_init(&rw_, &attr), "pthread_rwlock_init");
  pthread_rwlockattr_destroy(&attr);
}

WriterFirstLock::~WriterFirstLock() { pthread_rwlock_destroy(&rw_); }

void WriterFirstLock::lock() { Check(pthread_rwlock_wrlock(&rw_), "wrlock"); }
void WriterFirstLock::unlock() { Check(pthread_rwlock_unlock(&rw_), "unlock"); }
void WriterFirstLock::lock_shared() { Check(pthread_rwlock_rdlock(&rw_), "rdlock"); }
void WriterFirstLock::unlock_shared() { Check(pthread_rwlock_unlock(&rw_), "unlock"); }

bool WriterFirstLock::try_lock_shared() {
  const int rc = pthread_rwlock_tryrdlock(&rw_);
  if (rc == EBUSY) return false;
  Check(rc, "tryrdlock");
  return true;
}

}  // namespace lifecycle::store
