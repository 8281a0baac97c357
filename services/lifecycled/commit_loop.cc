#include "services/lifecycled/commit_loop.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace lifecycle::daemon {

using std::chrono::milliseconds;

CommitLoop::CommitLoop(CommitLoopOptions options, Projectors* projectors, RecordSource* source,
                       BatchSink* sink, Clock* clock, CommitListener* listener)
    : options_(options),
      projectors_(projectors),
      source_(source),
      sink_(sink),
      clock_(clock),
      listener_(listener),
      last_commit_(clock->Now()),
      writer_([this] { Writer(); }) {}

CommitLoop::~CommitLoop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  writer_.join();
}

bool CommitLoop::Behind() {
  int64_t lag = 0;
  for (const auto& [p, proj] : *projectors_) {
    const int64_t high = source_->HighWatermark(p);
    if (high > 0) lag += std::max<int64_t>(0, high - proj->meta().offset() - 1);
  }
  return lag > options_.commit_every;
}

bool CommitLoop::CommitDue(std::chrono::steady_clock::time_point now) {
  const auto since = now - last_commit_;
  bool commit = pending_ >= options_.commit_every ||
                (pending_ > 0 && since >= milliseconds(options_.commit_interval_ms)) ||
                (alert_waiting_ && options_.alert_commit_ms > 0 &&
                 since >= milliseconds(options_.alert_commit_ms));
  if (commit) {
    // Catching up (a rebuild, a restart after downtime): fewer, larger commits, and
    // no early commits for alerts; in a backlog the same customers come back within
    // seconds. Whether we are behind is asked once per commit, not per record.
    if (!behind_known_) {
      behind_ = Behind();
      behind_known_ = true;
      if (behind_ != told_behind_) {
        told_behind_ = behind_;
        sink_->CatchingUp(behind_);
      }
    }
    if (behind_) {
      commit = pending_ >= options_.catchup_commit_every ||
               since >= milliseconds(options_.catchup_commit_interval_ms);
    }
  }
  return commit;
}

absl::Status CommitLoop::NoneLost() {
  if (!lost_) return absl::OkStatus();
  for (const auto& [p, proj] : *projectors_) {
    if (proj->lost()) {
      return absl::DataLossError(absl::StrCat(
          "partition ", p, ": ", lost_reason_,
          "; stopping, so that a restart replays them from the store"));
    }
  }
  lost_ = false;  // the projectors it lost were all dropped
  return absl::OkStatus();
}

absl::Status CommitLoop::Step() {
  if (absl::Status s = NoneLost(); !s.ok()) return s;
  if (commit_now_) {
    // A deferred record waits for the deadlines run so far to be handed to the writer
    // (after the write in flight has landed): memory holds one such step at a time.
    if (job_ && !Reap(std::min(options_.commit_interval_ms, kMaxWaitMs))) {
      return absl::OkStatus();
    }
    return StartCommit();
  }
  // Only this thread sets or clears job_: it may look at the pointer without the lock.
  if (job_ && Reap(0) == false && (!options_.overlap || CommitDue(clock_->Now()))) {
    // The last write has not landed and the next is due (or writes do not overlap):
    // hold the position until it lands.
    Reap(std::min(options_.commit_interval_ms, kMaxWaitMs));
    return absl::OkStatus();
  }
  stream::Record rec;
  absl::StatusOr<bool> got = true;
  std::optional<Held> held = std::exchange(held_, std::nullopt);  // rec's bytes, if held
  if (held) {
    rec.partition = held->partition;
    rec.offset = held->offset;
    rec.key = held->key;
    rec.value = held->value;
  } else {
    got = Poll(&rec);
  }
  if (!got.ok()) return got.status();
  if (*got) {
    auto it = projectors_->find(rec.partition);
    if (it != projectors_->end()) {  // else: revoked meanwhile; its next owner reads it
      projections::PartitionProjector* proj = it->second.get();
      const size_t alerts_before = proj->PendingAlerts();
      absl::StatusOr<projections::RecordOutcome> out = proj->Apply(rec.offset, rec.value);
      if (!out.ok()) {
        // The record's deadlines may have run for some customers and not for the rest
        // (the partition's deadlines_through not moved): what the projector holds is not
        // a state the store may have. It is not committed, not even by Flush; a
        // projector made anew from the store replays the record.
        proj->MarkLost();
        lost_ = true;
        lost_reason_ = absl::StrCat("a read of its state failed while a record was applied (",
                                    out.status().message(),
                                    "), so what this process folded of its events since the "
                                    "last commit is not committed");
        return absl::UnavailableError(absl::StrCat("reading state for partition ", rec.partition,
                                                   ": ", out.status().message()));
      }
      if (proj->PendingAlerts() > alerts_before) alert_waiting_ = true;
      if (out->kind == projections::RecordOutcome::kDeferred) {
        held_ = held ? std::move(held)
                     : Held{rec.partition, rec.offset, std::string(rec.key), std::string(rec.value)};
        ++held_->steps;
        commit_now_ = true;
        listener_->OnDeadlineSteps(rec, held_->steps, /*applied=*/false);
        return absl::OkStatus();
      }
      if (held) listener_->OnDeadlineSteps(rec, held->steps, /*applied=*/true);
      if (out->kind == projections::RecordOutcome::kRejected) listener_->OnRejected(rec, out->reason);
      if (out->kind == projections::RecordOutcome::kSkipped) listener_->OnSkipped(rec, out->reason);
      ++pending_;
    }
  } else {
    if (told_behind_ && !Behind()) {
      // Caught up with nothing more to commit (no commit comes to ask): say so now.
      told_behind_ = false;
      sink_->CatchingUp(false);
    }
    listener_->OnQuiet();
  }
  if (!CommitDue(clock_->Now())) return absl::OkStatus();
  // One write in flight at most: the next starts once it has landed (next Step).
  if (job_ && !Reap(0)) return absl::OkStatus();
  return StartCommit();
}

absl::StatusOr<bool> CommitLoop::Poll(stream::Record* rec) {
  // With an alert waiting for its commit, wait no longer than the alert commit delay;
  // never longer than kMaxWaitMs, so the caller sees a stop request soon.
  const int poll_ms = std::min(alert_waiting_ && options_.alert_commit_ms > 0
                                   ? std::min(options_.alert_commit_ms, options_.commit_interval_ms)
                                   : options_.commit_interval_ms,
                               kMaxWaitMs);
  return source_->Poll(poll_ms, rec);
}

absl::Status CommitLoop::StartCommit() {
  if (absl::Status s = NoneLost(); !s.ok()) return s;
  auto job = std::make_unique<Job>();
  for (auto& [p, proj] : *projectors_) {
    if (!proj->HasPending()) continue;
    job->before.push_back(proj->committed_meta());
    job->batches.push_back(proj->Pending());
    job->owners.push_back(proj.get());
    proj->MarkInFlight();
  }
  pending_ = 0;
  commit_now_ = false;
  alert_waiting_ = false;
  last_commit_ = clock_->Now();
  behind_known_ = false;
  if (job->batches.empty()) return absl::OkStatus();
  {
    std::lock_guard<std::mutex> lock(mu_);
    job_ = std::move(job);
    job_ready_ = true;
  }
  cv_.notify_all();
  return absl::OkStatus();
}

void CommitLoop::Writer() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stop_ || (job_ready_ && !job_->done); });
    if (stop_) return;
    Job* job = job_.get();
    lock.unlock();
    const auto t0 = std::chrono::steady_clock::now();
    absl::Status s = sink_->Write(job->batches);
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    lock.lock();
    job->status = s;
    job->write_ms = ms;
    if (s.ok()) {
      job->done = true;
      // The loop's thread tells the commit (Reap) once its poll returns: now.
      source_->Wake();
    } else {
      if (job->failures++ == 0) job->first_failure = s;
      if (give_up_) job->done = true;
    }
    cv_.notify_all();
    if (!job->done) {
      // The same batch again after a pause: nothing later is written before it.
      cv_.wait_for(lock, milliseconds(options_.retry_ms), [&] { return stop_ || give_up_; });
      if (give_up_) {
        job->done = true;
        cv_.notify_all();
      }
    }
  }
}

bool CommitLoop::Reap(int ms) {
  std::unique_ptr<Job> job;
  absl::Status failing;  // a failure not told yet
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (!job_) return true;
    if (ms > 0) cv_.wait_for(lock, milliseconds(ms), [&] { return job_->done; });
    if (job_->failures > 0 && !job_->reported) {
      job_->reported = true;
      failing = job_->first_failure;
    }
    if (job_->done) {
      job = std::move(job_);
      job_ready_ = false;
    }
  }
  if (!failing.ok()) listener_->OnStoreStatus(failing);
  if (!job) return false;
  if (!job->status.ok()) {  // given up (Flush): the projectors are dropped after it
    std::lock_guard<std::mutex> lock(mu_);
    job_ = std::move(job);  // kept for Flush to see
    job_->done = true;
    return true;
  }
  for (auto* proj : job->owners) proj->MarkDurable();
  ++commits_;
  if (job->failures > 0 || std::exchange(failing_, false)) {
    listener_->OnStoreStatus(absl::OkStatus());
  }
  listener_->OnCommitted(job->batches, job->before, job->write_ms);
  return true;
}

absl::Status CommitLoop::Flush(int max_retries) {
  for (int round = 0; round < 2; ++round) {
    // Round 0 lands the write in flight; round 1 writes what is pending now.
    if (round == 1) {
      if (absl::Status s = StartCommit(); !s.ok()) return s;
    }
    for (;;) {
      if (Reap(options_.retry_ms)) break;
      std::lock_guard<std::mutex> lock(mu_);
      if (job_ && job_->failures >= max_retries) {
        give_up_ = true;
        cv_.notify_all();
      }
    }
    std::lock_guard<std::mutex> lock(mu_);
    // Also when the write landed after all as it was given up on: a later write gets
    // its retries.
    give_up_ = false;
    if (job_) {  // given up
      absl::Status s = job_->status;
      for (auto* proj : job_->owners) proj->MarkLost();
      lost_ = true;
      lost_reason_ = absl::StrCat("a commit was given up (", s.message(),
                                  "), so the store lacks events this process folded after it");
      failing_ = true;
      job_.reset();
      job_ready_ = false;
      return s;
    }
  }
  return absl::OkStatus();
}

}  // namespace lifecycle::daemon
