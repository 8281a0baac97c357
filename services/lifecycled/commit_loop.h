#pragma once
// CommitLoop: the exactly-once loop of lifecycled, apart from its wiring. It polls
// records from a source, folds them through each partition's PartitionProjector, and
// commits the pending batches of all partitions in one write to a sink: every
// commit_every records or commit_interval_ms (soon after an alert, in larger steps
// while catching up). A write overlaps the fold of the next batch on a writer thread;
// a failed write is retried until it lands, and no further batch is started meanwhile
// (the position holds). Source, sink, clock and listener are interfaces, so tests run
// the loop against fakes.
//
// Step() and Flush() are called from one thread (the consumer's); the writer thread
// only writes.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "projections/projector.h"
#include "services/stream/kafka.h"

namespace lifecycle::daemon {

// Where records come from (the Kafka consumer).
class RecordSource {
 public:
  virtual ~RecordSource() = default;
  // Waits up to `timeout_ms`; false when no record came.
  virtual absl::StatusOr<bool> Poll(int timeout_ms, stream::Record* out) = 0;
  // The partition's next offset at the broker, or -1 when not known.
  virtual int64_t HighWatermark(int32_t partition) = 0;
  // Called on the writer thread when a write has landed: a Poll waiting on the loop's
  // thread should return now, so the commit is told (subscribers woken) without
  // waiting out the poll. Default: nothing (the poll's timeout bounds the wait).
  virtual void Wake() {}
};

// Where batches go (the view store). Writes all of them atomically or none.
class BatchSink {
 public:
  virtual ~BatchSink() = default;
  virtual absl::Status Write(const std::vector<projections::PendingBatch>& batches) = 0;
  // The loop is catching up (more than commit_every records behind), or no longer is;
  // told on the loop's thread when that changes. Default: nothing.
  virtual void CatchingUp(bool /*behind*/) {}
};

class Clock {
 public:
  virtual ~Clock() = default;
  virtual std::chrono::steady_clock::time_point Now() = 0;
};

// Told what the loop did, on the loop's thread.
class CommitListener {
 public:
  virtual ~CommitListener() = default;
  virtual void OnRejected(const stream::Record& rec, const std::string& reason) = 0;
  virtual void OnSkipped(const stream::Record& rec, const std::string& reason) = 0;
  // A commit landed: `batches` with the metas their partitions had before it.
  virtual void OnCommitted(const std::vector<projections::PendingBatch>& batches,
                           const std::vector<lifecycle::v1::PartitionMeta>& before,
                           double write_ms) = 0;
  // A write failed (ok: writes land again).
  virtual void OnStoreStatus(const absl::Status& status) = 0;
  // The record moved the stream so far ahead that its partition's deadlines run in
  // committed steps (RecordOutcome::kDeferred): told at each step (`applied` false) and
  // once the record is applied after `steps` of them.
  virtual void OnDeadlineSteps(const stream::Record& /*rec*/, int /*steps*/, bool /*applied*/) {}
  // A poll brought no record (told once for each such poll).
  virtual void OnQuiet() {}
};

struct CommitLoopOptions {
  int commit_every = 5000;
  int commit_interval_ms = 100;
  int alert_commit_ms = 10;  // 0: no early commit after an alert
  int catchup_commit_every = 10000;
  int catchup_commit_interval_ms = 1000;
  int retry_ms = 500;      // between retries of a failed write
  bool overlap = true;     // write on a writer thread while the next batch is folded
};

using Projectors = std::map<int32_t, std::unique_ptr<projections::PartitionProjector>>;

class CommitLoop {
 public:
  // All pointers must outlive the loop. `projectors` is the daemon's map of owned
  // partitions, changed only between calls (on assignment and revocation).
  CommitLoop(CommitLoopOptions options, Projectors* projectors, RecordSource* source,
             BatchSink* sink, Clock* clock, CommitListener* listener);
  ~CommitLoop();
  CommitLoop(const CommitLoop&) = delete;
  CommitLoop& operator=(const CommitLoop&) = delete;

  // The longest one Step waits for a record or a write (a stop is seen this soon).
  static constexpr int kMaxWaitMs = 100;

  // Polls one record (waiting up to the commit interval, at most kMaxWaitMs), applies it and commits
  // when a commit is due. An error is fatal: committed state could not be read, or a
  // projector of a commit given up by Flush is still held.
  absl::Status Step();
  // Commits everything pending and waits until it has landed (before a revocation,
  // at shutdown). Gives up after `max_retries` failed writes of one batch. The
  // projectors of a batch given up are marked lost (PartitionProjector::MarkLost):
  // Step, and Flush, fail while one of them is still in the map; the caller drops
  // them (a revocation) or stops.
  absl::Status Flush(int max_retries = 3);

  int64_t pending_records() const { return pending_; }
  int64_t commits() const { return commits_; }

 private:
  struct Job {
    std::vector<projections::PendingBatch> batches;
    std::vector<projections::PartitionProjector*> owners;
    std::vector<lifecycle::v1::PartitionMeta> before;
    double write_ms = 0;
    absl::Status status;
    int failures = 0;
    absl::Status first_failure;  // told to the listener once
    bool reported = false;
    bool done = false;
  };

  bool CommitDue(std::chrono::steady_clock::time_point now);
  // Waits for the next record (up to the commit interval, less with an alert waiting).
  absl::StatusOr<bool> Poll(stream::Record* rec);
  // More than commit_every records behind the high watermarks.
  bool Behind();
  // Starts writing everything pending (after the write in flight, if any, landed).
  absl::Status StartCommit();
  // An error while a projector of a batch given up is still in the map.
  absl::Status NoneLost();
  // Waits up to `ms` for the write in flight; finishes it when it landed. True when
  // nothing is in flight any more.
  bool Reap(int ms);
  void Finish();
  void Writer();

  // A record the projector deferred (RecordOutcome::kDeferred): offered again, before
  // any other, once the batch of the deadlines run for it has been handed to the writer.
  struct Held {
    int32_t partition = -1;
    int64_t offset = -1;
    std::string key, value;
    int steps = 0;  // deferred this many times
  };
  std::optional<Held> held_;
  bool commit_now_ = false;  // a deferred record waits for this commit

  const CommitLoopOptions options_;
  Projectors* projectors_;
  RecordSource* source_;
  BatchSink* sink_;
  Clock* clock_;
  CommitListener* listener_;

  int64_t pending_ = 0;  // records applied since the last commit started
  int64_t commits_ = 0;
  bool alert_waiting_ = false;
  bool behind_ = false, behind_known_ = false;
  bool told_behind_ = false;  // what the sink was last told
  std::chrono::steady_clock::time_point last_commit_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::unique_ptr<Job> job_;  // in flight (guarded by mu_ while the writer has it)
  bool job_ready_ = false;    // the writer may take job_
  bool stop_ = false;
  bool give_up_ = false;      // Flush: stop retrying the job in flight
  bool lost_ = false;          // a projector may be lost (NoneLost; loop's thread only)
  std::string lost_reason_;    // why (a write given up, a read failed mid-record)
  bool failing_ = false;       // a write was given up: the next that lands says so (loop's thread)
  std::thread writer_;
};

}  // namespace lifecycle::daemon
