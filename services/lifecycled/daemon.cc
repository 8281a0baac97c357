#include "services/lifecycled/daemon.h"

#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "projections/names.h"
#include "spdlog/spdlog.h"

namespace lifecycle::daemon {
namespace {

std::shared_ptr<spdlog::logger> Logger(const std::string& name) {
  auto log = spdlog::get(name);
  return log ? log : spdlog::default_logger();
}

absl::Status WriteListenFile(const std::string& path, const std::string& address) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << address << "\n";
    if (!out) return absl::UnavailableError(absl::StrCat("cannot write ", tmp));
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) return absl::UnavailableError(absl::StrCat("cannot rename ", tmp, ": ", ec.message()));
  return absl::OkStatus();
}

}  // namespace

Daemon::Daemon(DaemonConfig config) : config_(std::move(config)), log_(Logger("lifecycled")) {}

Daemon::~Daemon() = default;

absl::Status Daemon::Run(const std::atomic<bool>* stop) {
  std::error_code ec;
  std::filesystem::create_directories(config_.data_dir, ec);
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create the data directory ", config_.data_dir, ": ", ec.message()));
  }
  store::StoreOptions so;
  so.sync_writes = config_.sync_writes;
  so.block_cache_bytes = static_cast<size_t>(config_.block_cache_mb) << 20;
  so.env = config_.store_env;
  so.config = &config_.domain;
  auto opened = store::ViewStore::Open(config_.data_dir + "/views", so);
  if (!opened.ok()) return opened.status();
  store_ = std::move(*opened);
  reader_ = std::make_unique<store::StoreStateReader>(store_.get());
  log_->info("view store open at {}/views", config_.data_dir);

  if (absl::Status s = stream::EnsureTopics(
          config_.brokers, {{config_.events_topic, config_.partitions},
                            {config_.events_topic + ".dlq", config_.partitions},
                            {config_.alerts_topic, config_.partitions}});
      !s.ok()) {
    return absl::UnavailableError(
        absl::StrCat("cannot create or check topics on ", config_.brokers, ": ", s.message()));
  }

  auto ingest = stream::Producer::Create(config_.brokers);
  if (!ingest.ok()) return ingest.status();
  ingest_producer_ = std::move(*ingest);
  auto dlq = stream::Producer::Create(config_.brokers);
  if (!dlq.ok()) return dlq.status();
  dlq_producer_ = std::move(*dlq);
  dlq_topic_ = config_.events_topic + ".dlq";

  api::ApiOptions ao;
  ao.listen = config_.grpc_listen;
  ao.events_topic = config_.events_topic;
  ao.group_id = config_.group_id;
  ao.config_version = config_.domain.version;
  ao.version = "0.1.0";
  ao.tokens = config_.tokens;
  ao.tls_cert_file = config_.tls_cert_file;
  ao.tls_key_file = config_.tls_key_file;
  api::ApiDeps deps;
  deps.store = store_.get();
  deps.status = this;
  deps.producer = ingest_producer_.get();
  deps.metrics = &metrics_;
  deps.log = Logger("api");
  auto api = api::ApiServer::Start(ao, deps);
  if (!api.ok()) return api.status();
  api_ = std::move(*api);
  std::string metrics_address = "off";
  if (!config_.metrics_listen.empty()) {
    auto ms = api::MetricsServer::Start(config_.metrics_listen, &metrics_);
    if (!ms.ok()) return ms.status();
    metrics_server_ = std::move(*ms);
    metrics_address = absl::StrCat(
        config_.metrics_listen.substr(0, config_.metrics_listen.rfind(':')), ":",
        metrics_server_->port());
    log_->info("metrics at http://{}/metrics", metrics_address);
  }
  if (!config_.listen_file.empty()) {
    const std::string host = config_.grpc_listen.substr(0, config_.grpc_listen.rfind(':'));
    if (absl::Status s = WriteListenFile(
            config_.listen_file,
            absl::StrCat(host, ":", api_->port(), "\nmetrics ", metrics_address));
        !s.ok()) {
      return s;
    }
  }

  stream::ConsumerOptions co;
  co.brokers = config_.brokers;
  co.group_id = config_.group_id;
  co.topic = config_.events_topic;
  co.client_id = absl::StrCat("lifecycled@", config_.grpc_listen.substr(0, config_.grpc_listen.rfind(':')),
                              ":", api_->port());
  if (!config_.instance_id.empty()) co.extra["group.instance.id"] = config_.instance_id;
  auto consumer = stream::Consumer::Create(co, this, Logger("stream"));
  if (!consumer.ok()) return consumer.status();
  consumer_ = std::move(*consumer);
  live_consumer_.store(consumer_.get());

  if (config_.tick_interval_s > 0) ticker_ = std::thread([this] { RunTicker(); });
  if (config_.publish_alerts) alert_publisher_ = std::thread([this] { RunAlertPublisher(); });
  watcher_ = std::thread([this] { RunWatcher(); });

  auto log_projector = Logger("projector");
  auto last_commit = std::chrono::steady_clock::now();
  absl::Status result;
  int64_t pending = 0;
  bool alert_waiting = false;  // a pending record raised an alert
  bool behind = false, behind_known = false;  // more than commit_every records behind
  while (!stop->load(std::memory_order_relaxed)) {
    const auto now = std::chrono::steady_clock::now();
    if (!commit_error_.ok()) {
      // The store refused the last commit: do not read further; retry the commit.
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
      const std::string before(commit_error_.message());
      if (absl::Status s = CommitAll(); s.ok()) {
        log_->info("the view store accepts writes again");
        pending = 0;
        alert_waiting = false;
        last_commit = now;
      } else if (s.message() != before) {
        log_->error("commit still failing, holding position: {}", s.ToString());
      }
      continue;
    }
    stream::Record rec;
    // With an alert waiting for its commit, wait no longer than the alert commit delay.
    const int poll_ms = alert_waiting && config_.alert_commit_ms > 0
                            ? std::min(config_.alert_commit_ms, config_.commit_interval_ms)
                            : config_.commit_interval_ms;
    absl::StatusOr<bool> got = consumer_->Poll(poll_ms, &rec);
    if (!got.ok()) {
      result = got.status();
      break;
    }
    if (*got) {
      auto it = projectors_.find(rec.partition);
      if (it == projectors_.end()) {
        log_->warn("record from unassigned partition {} ignored", rec.partition);
      } else {
        const size_t alerts_before = it->second->PendingAlerts();
        absl::StatusOr<projections::RecordOutcome> out = it->second->Apply(rec.offset, rec.value);
        if (out.ok() && it->second->PendingAlerts() > alerts_before) alert_waiting = true;
        if (!out.ok()) {
          result = absl::UnavailableError(absl::StrCat("reading state for partition ",
                                                       rec.partition, ": ", out.status().message()));
          break;
        }
        switch (out->kind) {
          case projections::RecordOutcome::kRejected:
            log_projector->info("partition {} offset {}: event rejected to the DLQ: {}",
                                rec.partition, rec.offset, out->reason);
            SendToDlq(rec, out->reason);
            break;
          case projections::RecordOutcome::kSkipped:
            log_projector->info("partition {} offset {}: event skipped: {}", rec.partition,
                                rec.offset, out->reason);
            break;
          default:
            break;
        }
        ++pending;
      }
    }
    const auto after = std::chrono::steady_clock::now();
    const auto since = after - last_commit;
    bool commit =
        pending >= config_.commit_every ||
        (pending > 0 && since >= std::chrono::milliseconds(config_.commit_interval_ms)) ||
        (alert_waiting && config_.alert_commit_ms > 0 &&
         since >= std::chrono::milliseconds(config_.alert_commit_ms));
    if (commit) {
      // Catching up (a rebuild, a restart after downtime): fewer, larger commits, and no
      // early commits for alerts. Each commit rewrites every customer it touched, and in
      // a backlog the same customers come back within seconds. Whether we are behind is
      // asked once per commit, not per record.
      if (!behind_known) {
        behind = Behind();
        behind_known = true;
      }
      if (behind) {
        commit = pending >= config_.catchup_commit_every ||
                 since >= std::chrono::milliseconds(config_.catchup_commit_interval_ms);
      }
    }
    if (commit) {
      if (absl::Status s = CommitAll(); !s.ok()) {
        log_->error("commit failed, holding position: {}", s.ToString());
      } else {
        pending = 0;
        alert_waiting = false;
      }
      last_commit = after;
      behind_known = false;
    }
  }

  if (absl::Status s = CommitAll(); !s.ok()) {
    log_->error("final commit failed: {}", s.ToString());
    if (result.ok()) result = s;
  }
  {
    std::lock_guard<std::mutex> lock(ticker_mu_);
    ticker_stop_ = true;
  }
  ticker_cv_.notify_all();
  if (ticker_.joinable()) ticker_.join();
  if (watcher_.joinable()) watcher_.join();
  consumer_->Close();  // revokes: OnRevoked commits whatever is left
  if (absl::Status s = dlq_producer_->Flush(10000); !s.ok()) {
    log_->warn("DLQ records still undelivered at exit: {}", s.ToString());
  }
  if (alert_publisher_.joinable()) alert_publisher_.join();
  api_->Shutdown();
  if (metrics_server_) metrics_server_->Stop();
  log_->info("stopped{}", result.ok() ? "" : absl::StrCat(" on error: ", result.ToString()));
  return result;
}

namespace {

// Fault injection for the crash harness (tests/reliability): with
// LIFECYCLE_FAULT_KILL_IN_COMMIT_PERMILLE=N set, each commit kills the process with
// probability N/1000, half the time just before the RocksDB write and half the time
// just after it (before the Kafka group offsets are committed). Never set it in
// production.
int KillPermille() {
  static const int permille = [] {
    const char* v = std::getenv("LIFECYCLE_FAULT_KILL_IN_COMMIT_PERMILLE");
    return v ? std::atoi(v) : 0;
  }();
  return permille;
}

void MaybeKillInCommit(bool after_write) {
  if (KillPermille() <= 0) return;
  static std::mt19937 rng(static_cast<uint32_t>(::getpid()) ^
                          static_cast<uint32_t>(std::chrono::steady_clock::now().time_since_epoch().count()));
  if (static_cast<int>(rng() % 1000) < KillPermille() && (rng() % 2 == 0) == after_write) {
    spdlog::get("lifecycled")->warn("fault injection: killed {} the RocksDB write",
                                    after_write ? "after" : "before");
    spdlog::default_logger()->flush();
    std::raise(SIGKILL);
  }
}

}  // namespace

absl::Status Daemon::CommitAll() {
  std::vector<projections::PendingBatch> batches;
  std::vector<projections::PartitionProjector*> owners;
  for (auto& [p, proj] : projectors_) {
    if (!proj->HasPending()) continue;
    batches.push_back(proj->Pending());
    owners.push_back(proj.get());
  }
  if (batches.empty()) {
    commit_error_ = absl::OkStatus();
    return absl::OkStatus();
  }
  MaybeKillInCommit(/*after_write=*/false);
  const auto t0 = std::chrono::steady_clock::now();
  absl::Status s = store_->Commit(batches);
  if (s.ok()) MaybeKillInCommit(/*after_write=*/true);
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  commit_error_ = s;
  {
    std::lock_guard<std::mutex> lock(live_mu_);
    store_error_ = s.ok() ? "" : std::string(s.message());
    live_.store_error = store_error_;
  }
  if (!s.ok()) return s;
  std::map<int32_t, int64_t> next;
  metrics_.Observe("lifecycle_commit_latency_seconds", "", ms / 1000.0);
  for (size_t i = 0; i < owners.size(); ++i) {
    auto* proj = owners[i];
    const auto& before = proj->committed_meta();
    const auto& after = batches[i].meta;
    const std::string label = absl::StrCat("partition=\"", after.partition(), "\"");
    metrics_.Add("lifecycle_events_applied_total", label,
                 static_cast<double>(after.events_applied() - before.events_applied()));
    metrics_.Add("lifecycle_events_rejected_total", label,
                 static_cast<double>(after.events_rejected() - before.events_rejected()));
    metrics_.Add("lifecycle_events_skipped_total", label,
                 static_cast<double>(after.events_skipped() - before.events_skipped()));
    metrics_.Add("lifecycle_events_duplicate_total", label,
                 static_cast<double>(after.events_duplicate() - before.events_duplicate()));
    for (const auto& a : batches[i].alerts) {
      metrics_.Add("lifecycle_alerts_raised_total",
                   absl::StrCat("kind=\"", projections::AlertKindShort(a.fact.kind), "\""),
                   1);
    }
    if (consumer_) {
      const int64_t high = consumer_->HighWatermark(after.partition());
      if (high >= 0) {
        metrics_.Set("lifecycle_consumer_lag", label,
                     static_cast<double>(std::max<int64_t>(0, high - after.offset() - 1)));
      }
    }
    proj->MarkCommitted();
    next[proj->meta().partition()] = proj->meta().offset() + 1;
  }
  last_commit_ms_ = ms;
  RefreshLive();
  if (consumer_) consumer_->CommitOffsets(next);
  if (api_) api_->NotifyCommitted();
  {
    std::lock_guard<std::mutex> lock(ticker_mu_);
    ++commits_;
  }
  ticker_cv_.notify_all();
  return absl::OkStatus();
}

bool Daemon::Behind() const {
  if (!consumer_) return false;
  int64_t lag = 0;
  for (const auto& [p, proj] : projectors_) {
    const int64_t high = consumer_->HighWatermark(p);
    if (high > 0) lag += std::max<int64_t>(0, high - proj->meta().offset() - 1);
  }
  return lag > config_.commit_every;
}

absl::StatusOr<std::map<int32_t, int64_t>> Daemon::OnAssigned(
    const std::vector<int32_t>& partitions) {
  std::map<int32_t, int64_t> starts;
  // The record cache's memory is shared out evenly over the partitions this member owns.
  const size_t owned = projectors_.size() + partitions.size();
  const size_t cache_each =
      (static_cast<size_t>(config_.cache_mb) << 20) / std::max<size_t>(1, owned);
  for (int32_t p : partitions) {
    absl::StatusOr<lifecycle::v1::PartitionMeta> meta = store_->ReadMeta(p);
    if (!meta.ok()) return meta.status();
    starts[p] = meta->offset() + 1;
    projectors_[p] = std::make_unique<projections::PartitionProjector>(
        &config_.domain, *meta, reader_.get(), cache_each);
  }
  RefreshLive();
  return starts;
}

void Daemon::OnRevoked(const std::vector<int32_t>& partitions) {
  if (absl::Status s = CommitAll(); !s.ok()) {
    // Not stored: the next owner replays these events from the stored offset.
    log_->error("commit before revocation failed (the events will be replayed): {}",
                s.ToString());
  }
  for (int32_t p : partitions) projectors_.erase(p);
  RefreshLive();
}

void Daemon::SendToDlq(const stream::Record& rec, const std::string& reason) {
  // At least once: after a crash before the commit the record is rejected, and sent,
  // again. The original bytes and key are kept; the headers say why and from where.
  absl::Status s = dlq_producer_->ProduceWithCallback(
      dlq_topic_, -1, rec.key, rec.value,
      {{"lifecycle.dlq.reason", reason},
       {"lifecycle.dlq.source.topic", config_.events_topic},
       {"lifecycle.dlq.source.partition", std::to_string(rec.partition)},
       {"lifecycle.dlq.source.offset", std::to_string(rec.offset)}},
      [this](const stream::Delivery& d) {
        if (!d.ok) {
          dlq_failures_.fetch_add(1);
          log_->warn("DLQ record not delivered: {}", d.error);
        }
      });
  if (!s.ok()) {
    dlq_failures_.fetch_add(1);
    log_->warn("DLQ record not queued: {}", s.ToString());
  }
}

void Daemon::RunWatcher() {
  // Health: "lifecycle.projector" is SERVING while a broker answers and the store
  // accepts writes. Queries keep being served either way (the overall status "" stays
  // SERVING): they read committed state.
  bool reported_up = true;
  std::unique_lock<std::mutex> lock(ticker_mu_);
  while (!ticker_stop_) {
    lock.unlock();
    const bool up = ingest_producer_->Ping(1000).ok();
    broker_up_.store(up);
    bool store_ok;
    {
      std::lock_guard<std::mutex> l(live_mu_);
      store_ok = store_error_.empty();
    }
    const bool serving = up && store_ok;
    if (up != reported_up) {
      if (up) {
        log_->info("the broker answers again");
      } else {
        log_->warn("no broker answers at {}; serving committed views meanwhile", config_.brokers);
      }
      reported_up = up;
    }
    if (api_) api_->SetServing("lifecycle.projector", serving);
    lock.lock();
    ticker_cv_.wait_for(lock, std::chrono::seconds(1), [this] { return ticker_stop_; });
  }
}

void Daemon::RunTicker() {
  // Publishes ClockTick{now} to every partition, so time-driven rules fire without
  // customer events. Ticks are idempotent (stream time is a maximum).
  auto log = Logger("stream");
  auto producer = stream::Producer::Create(config_.brokers);
  if (!producer.ok()) {
    log->error("clock ticker disabled: {}", producer.status().ToString());
    return;
  }
  log->info("clock ticker: a tick to every partition every {}s", config_.tick_interval_s);
  std::unique_lock<std::mutex> lock(ticker_mu_);
  while (!ticker_stop_) {
    lock.unlock();
    auto partitions = stream::PartitionCount(config_.brokers, config_.events_topic);
    if (!partitions.ok()) {
      log->warn("clock tick skipped: {}", partitions.status().ToString());
    } else {
      const auto now = std::chrono::system_clock::now();
      const int64_t ms =
          std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
      lifecycle::v1::Event tick;
      tick.mutable_occurred_at()->set_seconds(ms / 1000);
      tick.mutable_occurred_at()->set_nanos(static_cast<int32_t>(ms % 1000) * 1000000);
      *tick.mutable_clock_tick()->mutable_now() = tick.occurred_at();
      tick.set_source("lifecycled");
      for (int p = 0; p < *partitions; ++p) {
        tick.set_event_id(absl::StrCat("tick-", config_.group_id, "-", ms, "-", p));
        absl::Status s = (*producer)->Produce(config_.events_topic, p, "", tick.SerializeAsString());
        if (!s.ok()) log->warn("clock tick to partition {}: {}", p, s.ToString());
      }
      (*producer)->Flush(5000).IgnoreError();  // deliberately ignored: the next tick retries
      for (const auto& d : (*producer)->TakeDeliveries()) {
        if (!d.ok) log->warn("clock tick not delivered: {}", d.error);
      }
    }
    lock.lock();
    ticker_cv_.wait_for(lock, std::chrono::seconds(config_.tick_interval_s),
                        [this] { return ticker_stop_; });
  }
}

void Daemon::RunAlertPublisher() {
  // Tails every partition's alert log into the alerts topic (key: customer id,
  // header alert_id), remembering how far it got in the store. At least once:
  // after a crash an alert may be sent again; consumers dedupe on alert_id.
  auto log = Logger("stream");
  auto producer = stream::Producer::Create(config_.brokers);
  if (!producer.ok()) {
    log->error("alert publisher disabled: {}", producer.status().ToString());
    return;
  }
  log->info("alert publisher: alert logs -> topic {}", config_.alerts_topic);
  uint64_t seen = 0;
  bool stop = false;
  while (!stop) {
    {
      std::unique_lock<std::mutex> lock(ticker_mu_);
      ticker_cv_.wait_for(lock, std::chrono::milliseconds(500),
                          [&] { return ticker_stop_ || commits_ != seen; });
      seen = commits_;
      stop = ticker_stop_;  // one last pass after the stop
    }
    auto metas = store_->ListMeta();
    if (!metas.ok()) continue;
    for (const auto& m : *metas) {
      const std::string name = absl::StrCat("alerts-published/", m.partition());
      auto pos = store_->ReadPosition(name);
      if (!pos.ok()) continue;
      auto alerts = store_->ReadAlerts(m.partition(), *pos, 1000);
      if (!alerts.ok() || alerts->empty()) continue;
      auto failed = std::make_shared<std::atomic<int>>(0);
      for (const auto& a : *alerts) {
        absl::Status s = (*producer)->ProduceWithCallback(
            config_.alerts_topic, -1, a.customer_id(), a.SerializeAsString(),
            {{"alert_id", a.alert_id()}, {"kind", lifecycle::v1::AlertKind_Name(a.kind())}},
            [failed](const stream::Delivery& d) {
              if (!d.ok) ++*failed;
            });
        if (!s.ok()) ++*failed;
      }
      absl::Status flushed = (*producer)->Flush(10000);
      if (!flushed.ok() || *failed > 0) {
        log->warn("alert publisher: partition {}: {} not delivered; will retry", m.partition(),
                  flushed.ok() ? absl::StrCat(failed->load(), " alert(s)") : flushed.ToString());
        continue;
      }
      if (absl::Status s = store_->WritePositions({{name, alerts->back().sequence() + 1}}); !s.ok()) {
        log->warn("alert publisher: cannot store its position: {}", s.ToString());
      }
    }
  }
}

void Daemon::RefreshLive() {
  Live live;
  for (const auto& [p, proj] : projectors_) live.assigned.insert(p);
  live.last_commit_ms = last_commit_ms_;
  std::lock_guard<std::mutex> lock(live_mu_);
  live.store_error = store_error_;
  live_ = std::move(live);
}

api::StatusSource::Live Daemon::Snapshot() {
  Live live;
  {
    std::lock_guard<std::mutex> lock(live_mu_);
    live = live_;
  }
  // Watermarks and broker state are read now, not when the loop last refreshed:
  // librdkafka's calls are thread-safe and the consumer outlives the API server.
  stream::Consumer* consumer = live_consumer_.load();
  for (int32_t p : live.assigned) {
    const int64_t high = consumer ? consumer->HighWatermark(p) : -1;
    live.high_watermarks[p] = high < 0 ? -1 : high;
  }
  live.broker_up = broker_up_.load();
  return live;
}

}  // namespace lifecycle::daemon
