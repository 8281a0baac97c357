#include "services/lifecycled/daemon.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <fstream>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "projections/names.h"
#include "services/lifecycled/logging.h"
#include "services/version/version.h"
#include "spdlog/spdlog.h"

namespace lifecycle::daemon {
namespace {

// Group offset metadata: "alerts_published=<next alert sequence>".
constexpr char kPublishedMetadata[] = "alerts_published=";

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

// The view store's options from the daemon's; its progress is logged on `log`.
store::StoreOptions StoreOptionsFor(const DaemonConfig& config,
                                    const std::shared_ptr<spdlog::logger>& log) {
  store::StoreOptions so;
  so.sync_writes = config.sync_writes;
  so.disable_wal = config.disable_wal;
  so.block_cache_bytes = static_cast<size_t>(config.block_cache_mb) << 20;
  so.rocksdb_overrides = config.rocksdb_options;
  so.catchup_l0_compaction_trigger = config.catchup_l0_compaction_trigger;
  so.catchup_zstd_level = config.catchup_zstd_level;
  so.catchup_compression = config.catchup_compression;
  so.low_priority_compactions = config.low_priority_compactions;
  so.compact_after_catchup_bytes = static_cast<uint64_t>(config.compact_after_catchup_mb) << 20;
  so.on_full_compaction = [log](const store::StoreOptions::FullCompaction& fc) {
    constexpr double kMB = 1e6;
    if (!fc.done) {
      log->info("view store: compacting the whole store after a catch-up that wrote {:.0f} MB "
                "({:.0f} MB of tables), in the background",
                fc.catchup_bytes / kMB, fc.sst_bytes_before / kMB);
    } else if (fc.status.ok()) {
      log->info("view store: compacted in {:.1f} s, {:.0f} MB -> {:.0f} MB of tables", fc.seconds,
                fc.sst_bytes_before / kMB, fc.sst_bytes_after / kMB);
    } else if (absl::IsCancelled(fc.status)) {
      log->info("view store: the compaction after the catch-up stopped after {:.1f} s (a new "
                "catch-up, a reopen or the stop); the next catch-up's end starts it again",
                fc.seconds);
    } else {
      log->warn("view store: the compaction after the catch-up ended after {:.1f} s: {}",
                fc.seconds, fc.status.ToString());
    }
  };
  so.defer_listing_after_bytes = static_cast<uint64_t>(config.defer_listing_after_mb) << 20;
  so.on_listing_build = [log](const store::StoreOptions::ListingBuild& b) {
    if (b.status.ok()) {
      log->info("view store: listing indexes built again after the catch-up in {:.1f} s: {} "
                "customers ({} commits deferred them; {} moves by commits meanwhile)",
                b.seconds, b.customers, b.deferred_commits, b.replayed);
    } else {
      log->warn("view store: building the listing indexes after the catch-up stopped after "
                "{:.1f} s ({}); the first listing read builds them",
                b.seconds, b.status.ToString());
    }
  };
  so.on_upgrade = [log](const std::string& what) { log->info("view store: {}", what); };
  so.env = config.store_env;
  so.config = &config.domain;
  return so;
}

}  // namespace

// The commit loop's seams over the real parts: records from the Kafka consumer,
// batches into the view store (with the fault-injection hook, when a test build set
// one), the steady clock.
class Daemon::Wiring : public RecordSource, public BatchSink, public Clock {
 public:
  Wiring(stream::Consumer* consumer, stream::Consumer* tail, store::ViewStore* store,
         const std::function<void(bool)>& hook)
      : consumer_(consumer), tail_(tail), store_(store), hook_(hook) {}
  // Records of owned partitions (the group's consumer) first, then of replicated ones
  // (the tail): a replica catching up does not hold back the owner's alerts. With
  // neither at hand, one of them (in turn) waits. The group's consumer is polled on
  // every call (rebalances).
  absl::StatusOr<bool> Poll(int timeout_ms, stream::Record* out) override {
    if (!tail_ || !tailing_) return consumer_->Poll(timeout_ms, out);
    absl::StatusOr<bool> got = consumer_->Poll(0, out);
    if (!got.ok() || *got) return got;
    got = tail_->Poll(0, out);
    if (!got.ok() || *got) return got;
    tail_waits_ = !tail_waits_;
    return (tail_waits_ ? tail_ : consumer_)->Poll(timeout_ms, out);
  }
  // Owned partitions only: how far replicas lag does not switch the loop to catch-up
  // commits (larger and later: alerts would wait).
  int64_t HighWatermark(int32_t partition) override { return consumer_->HighWatermark(partition); }
  void Wake() override {
    consumer_->Wake();
    if (tail_) tail_->Wake();
  }
  void SetTailing(bool tailing) { tailing_ = tailing; }
  absl::Status Write(const std::vector<projections::PendingBatch>& batches) override {
    if (hook_) hook_(/*after_write=*/false);
    absl::Status s = store_->Commit(batches);
    if (s.ok() && hook_) hook_(/*after_write=*/true);
    return s;
  }
  void CatchingUp(bool behind) override {
    if (absl::Status s = store_->SetCatchingUp(behind); !s.ok()) {
      Logger("lifecycled")->warn("view store: {}", s.ToString());  // only a tuning; go on
    }
  }
  std::chrono::steady_clock::time_point Now() override { return std::chrono::steady_clock::now(); }

 private:
  stream::Consumer* consumer_;
  stream::Consumer* tail_;  // null: no replicas
  bool tailing_ = false;
  bool tail_waits_ = false;
  store::ViewStore* store_;
  std::function<void(bool)> hook_;
};

Daemon::Daemon(DaemonConfig config)
    : config_(std::move(config)),
      log_(Logger("lifecycled")),
      log_projector_(Logger("projector")) {}

Daemon::~Daemon() = default;

absl::Status Daemon::Run(const std::atomic<bool>* stop) {
  if (absl::Status s = OpenStore(); !s.ok()) return s;
  if (absl::Status s = OpenKafkaClients(); !s.ok()) return s;
  if (absl::Status s = StartServers(); !s.ok()) return s;
  if (absl::Status s = JoinGroup(); !s.ok()) return s;
  return StopInOrder(Loop(stop));
}

absl::Status Daemon::OpenStore() {
  std::error_code ec;
  std::filesystem::create_directories(config_.data_dir, ec);
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create the data directory ", config_.data_dir, ": ", ec.message()));
  }
  auto opened = store::ViewStore::Open(config_.data_dir + "/views",
                                       StoreOptionsFor(config_, log_));
  if (!opened.ok()) return opened.status();
  store_ = std::move(*opened);
  reader_ = std::make_unique<store::StoreStateReader>(store_.get());
  log_->info("view store open at {}/views", config_.data_dir);
  return absl::OkStatus();
}

absl::Status Daemon::OpenKafkaClients() {
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
  return absl::OkStatus();
}

absl::Status Daemon::StartServers() {
  api::ApiOptions ao;
  ao.listen = config_.grpc_listen;
  ao.events_topic = config_.events_topic;
  ao.group_id = config_.group_id;
  ao.config_version = config_.domain.version;
  ao.version = Version();
  ao.git_commit = GitCommit();
  ao.tokens = config_.tokens;
  ao.tls_cert_file = config_.tls_cert_file;
  ao.tls_key_file = config_.tls_key_file;
  api::ApiDeps deps;
  deps.store = store_.get();
  deps.status = this;
  deps.producer = ingest_producer_.get();
  deps.metrics = &metrics_;
  deps.router = this;
  deps.log = Logger("api");
  auto api = api::ApiServer::Start(ao, deps);
  if (!api.ok()) return api.status();
  api_ = std::move(*api);
  // The projector's health is known from the start: NOT_SERVING until the watcher's
  // first look at the broker and the store (a check before it is not "unknown service").
  api_->SetServing("lifecycle.projector", false);
  std::string metrics_address = "off";
  if (!config_.metrics_listen.empty()) {
    AddCollectors();
    web::HttpOptions mo;
    mo.listen = config_.metrics_listen;
    mo.metrics_only = true;
    auto ms = web::HttpServer::Start(mo, nullptr, &metrics_, Logger("api"));
    if (!ms.ok()) return ms.status();
    metrics_server_ = std::move(*ms);
    metrics_address = absl::StrCat(
        config_.metrics_listen.substr(0, config_.metrics_listen.rfind(':')), ":",
        metrics_server_->port());
  }
  std::string http_address = "off";
  if (!config_.http_listen.empty()) {
    web::HttpOptions ho;
    ho.listen = config_.http_listen;
    ho.web_root = config_.web_root;
    ho.vendor_dir = config_.web_vendor;
    auto hs = web::HttpServer::Start(ho, api_->InProcessChannel(), &metrics_, Logger("api"));
    if (!hs.ok()) return hs.status();
    http_server_ = std::move(*hs);
    http_address = absl::StrCat(config_.http_listen.substr(0, config_.http_listen.rfind(':')), ":",
                                http_server_->port());
  }
  if (!config_.listen_file.empty()) {
    const std::string host = config_.grpc_listen.substr(0, config_.grpc_listen.rfind(':'));
    if (absl::Status s = WriteListenFile(
            config_.listen_file,
            absl::StrCat(host, ":", api_->port(), "\nmetrics ", metrics_address, "\nhttp ",
                         http_address));
        !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

absl::Status Daemon::JoinGroup() {
  auto partition_count = stream::PartitionCount(config_.brokers, config_.events_topic);
  if (!partition_count.ok()) return partition_count.status();
  topic_partitions_ = *partition_count;
  advertise_ = config_.advertise.empty()
                   ? absl::StrCat(config_.grpc_listen.substr(0, config_.grpc_listen.rfind(':')),
                                  ":", api_->port())
                   : config_.advertise;
  stream::ConsumerOptions co;
  co.brokers = config_.brokers;
  co.group_id = config_.group_id;
  co.topic = config_.events_topic;
  co.client_id = ClientIdFor(advertise_);
  if (!config_.instance_id.empty()) co.extra["group.instance.id"] = config_.instance_id;
  for (const auto& [k, v] : config_.consumer_config) co.extra[k] = v;
  auto consumer = stream::Consumer::Create(co, this, Logger("stream"));
  if (!consumer.ok()) return consumer.status();
  consumer_ = std::move(*consumer);
  live_consumer_.store(consumer_.get());
  if (config_.replicas > 0) {
    stream::ConsumerOptions to = co;
    to.tail = true;
    to.extra.erase("group.instance.id");
    auto tail = stream::Consumer::Create(to, nullptr, Logger("stream"));
    if (!tail.ok()) return tail.status();
    tail_ = std::move(*tail);
  }
  cluster_thread_ = std::thread([this] { RunCluster(); });
  log_->info("this instance is {} in group {}; {} replica(s) per partition", advertise_,
             config_.group_id, config_.replicas);

  if (config_.tick_interval_s > 0) ticker_ = std::thread([this] { RunTicker(); });
  if (config_.publish_alerts) alert_publisher_ = std::thread([this] { RunAlertPublisher(); });
  watcher_ = std::thread([this] { RunWatcher(); });
  return absl::OkStatus();
}

absl::Status Daemon::Loop(const std::atomic<bool>* stop) {
  CommitLoopOptions lo;
  lo.commit_every = config_.commit_every;
  lo.commit_interval_ms = config_.commit_interval_ms;
  lo.alert_commit_ms = config_.alert_commit_ms;
  lo.catchup_commit_every = config_.catchup_commit_every;
  lo.catchup_commit_interval_ms = config_.catchup_commit_interval_ms;
  wiring_ = std::make_unique<Wiring>(consumer_.get(), tail_.get(), store_.get(),
                                     config_.commit_hook);
  loop_ = std::make_unique<CommitLoop>(lo, &projectors_, wiring_.get(), wiring_.get(),
                                       wiring_.get(), this);
  while (!stop->load(std::memory_order_relaxed)) {
    if (replicas_changed_.exchange(false)) ApplyReplicas();
    if (absl::Status s = loop_->Step(); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status Daemon::StopInOrder(absl::Status result) {
  const auto stop_started = std::chrono::steady_clock::now();
  // 1. The views: what was folded is committed now (local disk, whatever Kafka does).
  if (absl::Status s = loop_->Flush(); !s.ok()) {
    log_->error("final commit failed: {}", s.ToString());
    if (result.ok()) result = s;
  } else {
    log_->info("stopping: views committed");
  }
  // 2. No new queries (Subscribe streams are ended), no scrapes.
  if (http_server_) http_server_->Stop();
  api_->Shutdown();
  if (metrics_server_) metrics_server_->Stop();
  // 3. Kafka: leave the group, deliver what is queued, within the budget left.
  //    With no broker answering, leaving the group and delivering cannot succeed:
  //    they get two seconds at most rather than the whole budget.
  const auto reserve = std::chrono::milliseconds(std::min(2000, config_.stop_timeout_ms / 4));
  auto kafka_deadline = stop_started + std::chrono::milliseconds(config_.stop_timeout_ms) - reserve;
  if (!broker_up_.load()) {
    kafka_deadline = std::min(kafka_deadline, std::chrono::steady_clock::now() + std::chrono::seconds(2));
  }
  CloseKafkaBy(kafka_deadline);
  // 4. The store (with --no-wal this flushes the memtables).
  {
    std::lock_guard<std::mutex> lock(teardown_mu_);
    if (absl::Status s = store_->Close(); !s.ok()) {
      log_->error("{}", s.ToString());
      if (result.ok()) result = s;
    }
  }
  log_->info("stopped in {} ms{}",
             std::chrono::duration_cast<std::chrono::milliseconds>(
                 std::chrono::steady_clock::now() - stop_started)
                 .count(),
             result.ok() ? "" : absl::StrCat(" on error: ", result.ToString()));
  return result;
}

void Daemon::CloseKafka() {
  {
    std::lock_guard<std::mutex> lock(ticker_mu_);
    ticker_stop_ = true;  // the ticker, the watcher and the alert publisher
  }
  ticker_cv_.notify_all();
  if (ticker_.joinable()) ticker_.join();
  if (watcher_.joinable()) watcher_.join();
  if (cluster_thread_.joinable()) cluster_thread_.join();
  log_->debug("stopping: ticker, watcher and cluster view stopped");
  live_consumer_.store(nullptr);
  {
    std::lock_guard<std::mutex> lock(teardown_mu_);
    closing_ = true;
  }
  if (tail_) tail_->Close();
  consumer_->Close();  // revokes: OnRevoked commits whatever is left (nothing, by now)
  log_->info("stopping: left the consumer group");
  if (absl::Status s = dlq_producer_->Flush(5000); !s.ok()) {
    log_->warn("DLQ records still undelivered at exit: {}", s.ToString());
  }
  if (alert_publisher_.joinable()) alert_publisher_.join();
  log_->debug("stopping: alert publisher stopped");
  consumer_.reset();
  tail_.reset();
  log_->debug("stopping: consumers destroyed");
  dlq_producer_.reset();
  ingest_producer_.reset();
  log_->debug("stopping: producers destroyed");
}

void Daemon::CloseKafkaBy(std::chrono::steady_clock::time_point deadline) {
  struct Done {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
  };
  auto done = std::make_shared<Done>();
  std::thread closer([this, done] {
    CloseKafka();
    std::lock_guard<std::mutex> lock(done->mu);
    done->done = true;
    done->cv.notify_all();
  });
  std::unique_lock<std::mutex> lock(done->mu);
  if (done->cv.wait_until(lock, deadline, [&] { return done->done; })) {
    lock.unlock();
    closer.join();
    return;
  }
  lock.unlock();
  {
    std::lock_guard<std::mutex> teardown(teardown_mu_);
    abandoned_ = true;
  }
  closer.detach();  // it may still be inside librdkafka; the process ends with _exit
  log_->warn(
      "stopping: the Kafka clients did not close in time (broker down or not answering?); "
      "abandoning them. The views and offsets are committed; the group notices this member "
      "is gone after its session timeout");
}

void Daemon::OnRejected(const stream::Record& rec, const std::string& reason) {
  LogRecordScope scope(rec.partition, rec.offset);
  log_projector_->info("partition {} offset {}: event rejected to the DLQ: {}", rec.partition,
                       rec.offset, reason);
  SendToDlq(rec, reason);
}

void Daemon::OnDeadlineSteps(const stream::Record& rec, int steps, bool applied) {
  LogRecordScope scope(rec.partition, rec.offset);
  if (applied) {
    log_projector_->info("partition {} offset {}: applied after its deadlines ran in {} steps",
                         rec.partition, rec.offset, steps);
  } else if (steps == 1) {
    log_projector_->info(
        "partition {} offset {}: the stream jumped ahead and more than {} customers came due; "
        "running their deadlines in committed steps (--max-deadlines-per-commit)",
        rec.partition, rec.offset, config_.max_deadlines_per_commit);
  }
}

void Daemon::OnSkipped(const stream::Record& rec, const std::string& reason) {
  LogRecordScope scope(rec.partition, rec.offset);
  log_projector_->info("partition {} offset {}: event skipped: {}", rec.partition, rec.offset,
                       reason);
}

void Daemon::OnStoreStatus(const absl::Status& s) {
  std::string was;
  {
    std::lock_guard<std::mutex> lock(live_mu_);
    was = store_error_;
    store_error_ = s.ok() ? "" : std::string(s.message());
    live_.store_error = store_error_;
  }
  if (s.ok() && !was.empty()) log_->info("the view store accepts writes again");
  if (!s.ok() && was != s.message()) log_->error("commit failing, holding position: {}", s.ToString());
}

void Daemon::AddCollectors() {
  // Counters an operator alerts on exist from the start, at 0.
  metrics_.Add("lifecycle_dlq_records_total", "", 0);
  metrics_.Add("lifecycle_dlq_failures_total", "", 0);
  metrics_.AddCollector(api::CollectProcessMetrics);
  metrics_.AddCollector([this](api::Metrics* m) {
    absl::StatusOr<store::StoreStats> st = store_->Stats();
    if (!st.ok()) return;
    m->Set("lifecycle_rocksdb_live_data_bytes", "", static_cast<double>(st->live_data_bytes));
    m->Set("lifecycle_rocksdb_sst_bytes", "", static_cast<double>(st->sst_bytes));
    m->Set("lifecycle_rocksdb_pending_compaction_bytes", "",
           static_cast<double>(st->pending_compaction_bytes));
    m->Set("lifecycle_rocksdb_write_stalls_total", "kind=\"stop\"",
           static_cast<double>(st->stalls_stop));
    m->Set("lifecycle_rocksdb_write_stalls_total", "kind=\"slowdown\"",
           static_cast<double>(st->stalls_slowdown));
    m->Set("lifecycle_rocksdb_write_stopped", "", st->write_stopped ? 1 : 0);
    m->Set("lifecycle_rocksdb_l0_files", "", static_cast<double>(st->l0_files));
    m->Set("lifecycle_rocksdb_full_compaction_running", "", st->compacting ? 1 : 0);
    m->Set("lifecycle_rocksdb_full_compactions_total", "",
           static_cast<double>(st->full_compactions));
  });
  metrics_.AddCollector([this](api::Metrics* m) {
    const double now = std::chrono::duration<double>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count();
    std::map<int32_t, int64_t> times;
    {
      std::lock_guard<std::mutex> lock(live_mu_);
      for (int32_t p : live_.assigned) {
        auto it = stream_times_.find(p);
        if (it != stream_times_.end()) times[p] = it->second;
      }
    }
    m->Reset("lifecycle_partition_lag_seconds");
    for (const auto& [p, t] : times) {
      m->Set("lifecycle_partition_lag_seconds", absl::StrCat("partition=\"", p, "\""),
             std::max(0.0, now - static_cast<double>(t)));
    }
  });
  if (config_.publish_alerts) {
    metrics_.AddCollector([this](api::Metrics* m) {
      auto metas = store_->ListMeta();
      if (!metas.ok()) return;
      m->Reset("lifecycle_alert_publisher_backlog");
      for (const auto& meta : *metas) {
        auto pos = store_->ReadPosition(absl::StrCat("alerts-published/", meta.partition()));
        if (!pos.ok()) continue;
        m->Set("lifecycle_alert_publisher_backlog",
               absl::StrCat("partition=\"", meta.partition(), "\""),
               static_cast<double>(std::max<int64_t>(0, meta.alerts_next_seq() - *pos)));
      }
    });
  }
}

void Daemon::OnCommitted(const std::vector<projections::PendingBatch>& batches,
                         const std::vector<lifecycle::v1::PartitionMeta>& before,
                         double write_ms) {
  metrics_.Observe("lifecycle_commit_latency_seconds", "", write_ms / 1000.0);
  int64_t records = 0;
  for (size_t i = 0; i < batches.size(); ++i) {
    records += batches[i].meta.offset() - before[i].offset();
  }
  metrics_.Observe("lifecycle_commit_batch_records", "", static_cast<double>(records));
  {
    std::lock_guard<std::mutex> lock(live_mu_);
    for (const auto& b : batches) {
      if (b.meta.has_stream_time()) stream_times_[b.meta.partition()] = b.meta.stream_time().seconds();
    }
  }
  for (size_t i = 0; i < batches.size(); ++i) {
    const auto& b = before[i];
    const auto& after = batches[i].meta;
    const std::string label = absl::StrCat("partition=\"", after.partition(), "\"");
    // The partition's event counters: what this commit added to each.
    using Counter = int64_t (v1::PartitionMeta::*)() const;
    static constexpr std::pair<const char*, Counter> kCounters[] = {
        {"lifecycle_events_applied_total", &v1::PartitionMeta::events_applied},
        {"lifecycle_events_rejected_total", &v1::PartitionMeta::events_rejected},
        {"lifecycle_events_skipped_total", &v1::PartitionMeta::events_skipped},
        {"lifecycle_events_duplicate_total", &v1::PartitionMeta::events_duplicate},
        {"lifecycle_events_late_total", &v1::PartitionMeta::events_late},
        {"lifecycle_events_out_of_order_total", &v1::PartitionMeta::events_out_of_order},
        {"lifecycle_events_beyond_window_total", &v1::PartitionMeta::events_beyond_window},
    };
    for (const auto& [name, counter] : kCounters) {
      metrics_.Add(name, label, static_cast<double>((after.*counter)() - (b.*counter)()));
    }
    for (const auto& a : batches[i].alerts) {
      metrics_.Add("lifecycle_alerts_raised_total",
                   absl::StrCat("kind=\"", projections::AlertKindShort(a.fact.kind), "\""), 1);
      if (a.fact.late) {
        metrics_.Add("lifecycle_alerts_late_total",
                     absl::StrCat("kind=\"", projections::AlertKindShort(a.fact.kind), "\""), 1);
      }
    }
    if (consumer_) {
      const int64_t high = consumer_->HighWatermark(after.partition());
      if (high >= 0) {
        metrics_.Set("lifecycle_consumer_lag", label,
                     static_cast<double>(std::max<int64_t>(0, high - after.offset() - 1)));
      }
    }
    if (owned_.count(after.partition())) group_next_[after.partition()] = after.offset() + 1;
  }
  last_commit_ms_ = write_ms;
  RefreshLive();
  CommitGroupOffsets(/*force=*/false);
  if (api_) api_->NotifyCommitted();
  {
    std::lock_guard<std::mutex> lock(ticker_mu_);
    ++commits_;
  }
  ticker_cv_.notify_all();
}

absl::StatusOr<std::map<int32_t, int64_t>> Daemon::AddProjectors(
    const std::vector<int32_t>& partitions) {
  std::map<int32_t, int64_t> starts;
  // The record cache's memory is shared out evenly over the partitions held here.
  const size_t held = projectors_.size() + partitions.size();
  const size_t cache_each =
      (static_cast<size_t>(config_.cache_mb) << 20) / std::max<size_t>(1, held);
  // The due index of these partitions, from one scan of the stored records.
  const auto scan_start = std::chrono::steady_clock::now();
  if (absl::Status s = reader_->PrimeDeadlines(partitions); !s.ok()) return s;
  if (const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                                        scan_start).count();
      took > 1.0) {
    log_->info("read the deadlines of {} partitions from the stored records in {:.1f} s",
               partitions.size(), took);
  }
  for (int32_t p : partitions) {
    absl::StatusOr<lifecycle::v1::PartitionMeta> meta = store_->ReadMeta(p);
    if (!meta.ok()) return meta.status();
    starts[p] = meta->offset() + 1;
    projectors_[p] = std::make_unique<projections::PartitionProjector>(
        &config_.domain, *meta, reader_.get(), cache_each);
    projectors_[p]->set_max_deadlines_per_batch(
        static_cast<size_t>(std::max(0, config_.max_deadlines_per_commit)));
  }
  return starts;
}

absl::StatusOr<std::map<int32_t, int64_t>> Daemon::OnAssigned(
    const std::vector<int32_t>& partitions) {
  std::lock_guard<std::mutex> teardown(teardown_mu_);
  if (abandoned_) return absl::CancelledError("stopping");
  // A partition replicated here until now: what its tail folded is committed, the tail
  // lets it go, and the group's consumer goes on from the stored offset.
  std::vector<int32_t> promoted;
  for (int32_t p : partitions) {
    if (replicated_.count(p)) promoted.push_back(p);
  }
  if (!promoted.empty()) {
    if (loop_) {
      if (absl::Status s = loop_->Flush(); !s.ok()) {
        log_->error("commit before taking over replicated partitions failed (replayed): {}",
                    s.ToString());
      }
    }
    std::map<int32_t, int64_t> keep;
    for (int32_t p : promoted) {
      replicated_.erase(p);
      projectors_.erase(p);
    }
    for (int32_t p : replicated_) {
      absl::StatusOr<lifecycle::v1::PartitionMeta> meta = store_->ReadMeta(p);
      if (!meta.ok()) return meta.status();
      keep[p] = meta->offset() + 1;
    }
    if (absl::Status s = tail_->Assign(keep); !s.ok()) return s;
    wiring_->SetTailing(!keep.empty());
    log_->info("taking over {} partition(s) this instance replicated", promoted.size());
  }
  absl::StatusOr<std::map<int32_t, int64_t>> starts = AddProjectors(partitions);
  if (!starts.ok()) return starts.status();
  owned_.insert(partitions.begin(), partitions.end());
  {
    std::lock_guard<std::mutex> lock(live_mu_);
    publish_ = owned_;
  }
  RefreshLive();
  WakeCluster();
  return starts;
}

void Daemon::OnRevoked(const std::vector<int32_t>& partitions) {
  std::lock_guard<std::mutex> teardown(teardown_mu_);
  if (abandoned_) return;
  if (loop_) {
    if (absl::Status s = loop_->Flush(); !s.ok()) {
      // Not stored: the next owner replays these events from the stored offset.
      log_->error("commit before revocation failed (the events will be replayed): {}",
                  s.ToString());
    }
  }
  // The next owner's lag and alert publisher start from the group's offsets: all of
  // what was stored goes there before the partitions do.
  CommitGroupOffsets(/*force=*/true);
  for (int32_t p : partitions) {
    projectors_.erase(p);
    owned_.erase(p);
  }
  if (!closing_) {
    // At a stop the alert publisher's last pass still sends what was committed.
    std::lock_guard<std::mutex> lock(live_mu_);
    publish_ = owned_;
  }
  // A partition this instance should go on holding as a replica is tailed again.
  if (tail_ && !closing_) replicas_changed_.store(true);
  RefreshLive();
}

void Daemon::WakeCluster() {
  {
    std::lock_guard<std::mutex> lock(ticker_mu_);
    cluster_wake_ = true;
  }
  ticker_cv_.notify_all();
}

void Daemon::ApplyReplicas() {
  std::set<int32_t> wanted;
  {
    std::lock_guard<std::mutex> lock(cluster_mu_);
    wanted = wanted_replicas_;
  }
  for (int32_t p : owned_) wanted.erase(p);
  if (wanted == replicated_ || !tail_) return;
  std::lock_guard<std::mutex> teardown(teardown_mu_);
  if (abandoned_ || closing_) return;
  if (absl::Status s = loop_->Flush(); !s.ok()) {
    log_->warn("replicas unchanged for now: commit failed: {}", s.ToString());
    replicas_changed_.store(true);
    return;
  }
  std::vector<int32_t> added;
  for (int32_t p : replicated_) {
    if (!wanted.count(p)) projectors_.erase(p);
  }
  for (int32_t p : wanted) {
    if (!replicated_.count(p)) added.push_back(p);
  }
  absl::StatusOr<std::map<int32_t, int64_t>> starts = AddProjectors(added);
  if (!starts.ok()) {
    log_->error("cannot replicate partitions {}: {}", absl::StrJoin(added, ","),
                starts.status().ToString());
    for (int32_t p : added) projectors_.erase(p);
    return;
  }
  std::map<int32_t, int64_t> next = *starts;
  for (int32_t p : wanted) {
    if (next.count(p)) continue;
    absl::StatusOr<lifecycle::v1::PartitionMeta> meta = store_->ReadMeta(p);
    if (!meta.ok()) {
      log_->error("cannot read partition {}'s position: {}", p, meta.status().ToString());
      return;
    }
    next[p] = meta->offset() + 1;
  }
  if (absl::Status s = tail_->Assign(next); !s.ok()) {
    log_->error("cannot tail replicated partitions: {}", s.ToString());
    replicas_changed_.store(true);
    return;
  }
  replicated_ = wanted;
  wiring_->SetTailing(!replicated_.empty());
  log_->info("replicating partitions [{}] (owned here: [{}])", absl::StrJoin(replicated_, ","),
             absl::StrJoin(owned_, ","));
  RefreshLive();
}

void Daemon::RunCluster() {
  auto log = Logger("lifecycled");
  auto describer = stream::GroupDescriber::Create(config_.brokers);
  if (!describer.ok()) {
    log->error("cluster view disabled: {}", describer.status().ToString());
    return;
  }
  std::string last_plan;
  bool warned_stale = false;
  std::unique_lock<std::mutex> lock(ticker_mu_);
  while (!ticker_stop_) {
    lock.unlock();
    auto group = (*describer)->Describe(config_.group_id, config_.events_topic, 5000);
    if (!group.ok()) {
      log->debug("describing the group: {}", group.status().ToString());
    } else {
      auto plan = std::make_shared<ClusterMap>(
          PlanCluster(*group, topic_partitions_, config_.replicas, config_.instance_id, advertise_));
      for (const auto& m : group->members) {
        if (IsInstance(m.member_id, m.instance_id, config_.instance_id) &&
            AddressOf(m.client_id) != advertise_ && !warned_stale) {
          warned_stale = true;
          log->warn("the group knows instance {} by its first client id ({}), not {}: the other "
                    "instances reach it there. With --instance-id keep --advertise the same "
                    "across restarts", config_.instance_id, m.client_id, advertise_);
        }
      }
      // Mid-rebalance some partitions have no owner: the last complete plan stands.
      if (plan->Complete()) {
        std::string desc;
        for (const auto& [p, hs] : plan->holders) {
          absl::StrAppend(&desc, desc.empty() ? "" : " ", p, ":", absl::StrJoin(hs, ","));
        }
        if (desc != last_plan) {
          log->info("cluster: {} member(s); partition:owner,replicas {}", plan->members.size(),
                    desc);
          last_plan = desc;
        }
        std::set<int32_t> wanted = plan->ReplicatedBy(advertise_);
        bool changed;
        {
          std::lock_guard<std::mutex> l(cluster_mu_);
          if (cluster_ && cluster_->holders != plan->holders) {
            // Who held each partition before: asked last for a customer a new holder
            // has not caught up with yet.
            former_holders_.clear();
            for (const auto& [p, hs] : cluster_->holders) {
              const auto& now = plan->holders[p];
              for (const std::string& h : hs) {
                if (std::find(now.begin(), now.end(), h) == now.end()) former_holders_[p].push_back(h);
              }
            }
          }
          cluster_ = plan;
          changed = wanted != wanted_replicas_;
          wanted_replicas_ = std::move(wanted);
        }
        if (changed) {
          replicas_changed_.store(true);
          if (stream::Consumer* c = live_consumer_.load()) c->Wake();
        }
      }
    }
    // While the group is rebalancing (or just did), look again soon.
    bool settled;
    {
      std::lock_guard<std::mutex> l(cluster_mu_);
      settled = cluster_ != nullptr;
    }
    lock.lock();
    ticker_cv_.wait_for(
        lock, std::chrono::milliseconds(settled ? config_.cluster_refresh_ms : 200),
        [this] { return ticker_stop_ || cluster_wake_.load(); });
    if (cluster_wake_.exchange(false)) {
      // A rebalance was just told: the group settles in a moment.
      lock.unlock();
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      lock.lock();
    }
  }
}

std::vector<std::string> Daemon::FormerHolders(int32_t partition) {
  std::lock_guard<std::mutex> lock(cluster_mu_);
  auto it = former_holders_.find(partition);
  return it == former_holders_.end() ? std::vector<std::string>() : it->second;
}

bool Daemon::Ready() {
  std::lock_guard<std::mutex> lock(cluster_mu_);
  return cluster_ != nullptr;
}

int32_t Daemon::PartitionOf(std::string_view customer_id) {
  return stream::KeyPartition(customer_id, topic_partitions_);
}

std::vector<std::string> Daemon::Holders(int32_t partition) {
  std::lock_guard<std::mutex> lock(cluster_mu_);
  if (!cluster_) return {};
  auto it = cluster_->holders.find(partition);
  return it == cluster_->holders.end() ? std::vector<std::string>() : it->second;
}

std::vector<std::string> Daemon::Members() {
  std::lock_guard<std::mutex> lock(cluster_mu_);
  std::vector<std::string> out;
  if (!cluster_) return {advertise_};
  for (const auto& m : cluster_->members) out.push_back(m.address);
  return out;
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
          metrics_.Add("lifecycle_dlq_failures_total", "", 1);
          log_->warn("DLQ record not delivered: {}", d.error);
        } else {
          metrics_.Add("lifecycle_dlq_records_total", "", 1);
        }
      });
  if (!s.ok()) {
    dlq_failures_.fetch_add(1);
    metrics_.Add("lifecycle_dlq_failures_total", "", 1);
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
    dlq_producer_->Poll(0);  // serves the DLQ's delivery reports (and its metrics)
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
  std::set<int32_t> taken;  // partitions whose takeover position has been settled
  while (!stop) {
    {
      std::unique_lock<std::mutex> lock(ticker_mu_);
      ticker_cv_.wait_for(lock, std::chrono::milliseconds(500),
                          [&] { return ticker_stop_ || commits_ != seen; });
      seen = commits_;
      stop = ticker_stop_;  // one last pass after the stop
    }
    std::set<int32_t> owned;
    {
      std::lock_guard<std::mutex> lock(live_mu_);
      owned = publish_;
    }
    // Only the owner publishes. A partition new to this instance starts where the
    // group's offsets say its last owner got to (at least once: a few may go again).
    std::vector<int32_t> fresh;
    for (int32_t p : owned) {
      if (!taken.count(p)) fresh.push_back(p);
    }
    for (auto it = taken.begin(); it != taken.end();) {
      it = owned.count(*it) ? std::next(it) : taken.erase(it);
    }
    if (stream::Consumer* c = live_consumer_.load(); c && !fresh.empty()) {
      auto md = c->CommittedMetadata(fresh, 5000);
      if (!md.ok()) {
        log->warn("alert publisher: cannot read the group's offsets yet: {}", md.status().ToString());
        for (int32_t p : fresh) owned.erase(p);
      } else {
        for (int32_t p : fresh) {
          taken.insert(p);
          auto it = md->find(p);
          int64_t theirs = 0;
          if (it == md->end() || it->second.rfind(kPublishedMetadata, 0) != 0 ||
              !absl::SimpleAtoi(it->second.substr(sizeof(kPublishedMetadata) - 1), &theirs)) {
            continue;
          }
          const std::string name = absl::StrCat("alerts-published/", p);
          auto mine = store_->ReadPosition(name);
          if (mine.ok() && *mine < theirs) {
            log->info("alert publisher: partition {}: its last owner published up to {}; "
                      "going on from there (this instance had {})", p, theirs, *mine);
            store_->WritePositions({{name, theirs}}).IgnoreError();  // read again below
          }
        }
      }
    }
    for (int32_t partition : owned) {
      const std::string name = absl::StrCat("alerts-published/", partition);
      auto pos = store_->ReadPosition(name);
      if (!pos.ok()) continue;
      {
        std::lock_guard<std::mutex> lock(live_mu_);
        published_[partition] = *pos;
      }
      auto alerts = store_->ReadAlerts(partition, *pos, 1000);
      if (!alerts.ok() || alerts->empty()) continue;
      auto failed = std::make_shared<std::atomic<int>>(0);
      int64_t published = 0;
      for (const auto& a : *alerts) {
        if (a.late()) continue;  // kept in the history; the topic carries news
        ++published;
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
        log->warn("alert publisher: partition {}: {} not delivered; will retry", partition,
                  flushed.ok() ? absl::StrCat(failed->load(), " alert(s)") : flushed.ToString());
        continue;
      }
      metrics_.Add("lifecycle_alerts_published_total",
                   absl::StrCat("partition=\"", partition, "\""),
                   static_cast<double>(published));
      const int64_t next = alerts->back().sequence() + 1;
      if (absl::Status s = store_->WritePositions({{name, next}}); !s.ok()) {
        log->warn("alert publisher: cannot store its position: {}", s.ToString());
      } else {
        std::lock_guard<std::mutex> lock(live_mu_);
        published_[partition] = next;
      }
    }
  }
}

void Daemon::OnQuiet() { CommitGroupOffsets(/*force=*/false); }

void Daemon::CommitGroupOffsets(bool force) {
  if (group_next_.empty() || !consumer_) return;
  const auto now = std::chrono::steady_clock::now();
  if (!force && group_committed_at_ &&
      now - *group_committed_at_ < std::chrono::milliseconds(config_.group_commit_interval_ms)) {
    return;  // the next store commit, or the stream going quiet, sends them
  }
  // The group's offsets carry how far this owner published each partition's alerts:
  // the member that takes a partition over starts publishing there.
  std::map<int32_t, std::string> published;
  {
    std::lock_guard<std::mutex> lock(live_mu_);
    for (const auto& [p, n] : group_next_) {
      if (auto it = published_.find(p); it != published_.end()) {
        published[p] = absl::StrCat(kPublishedMetadata, it->second);
      }
    }
  }
  consumer_->CommitOffsets(group_next_, published);
  metrics_.Add("lifecycle_group_offset_commits_total", "", 1);
  group_next_.clear();
  group_committed_at_ = now;
}

void Daemon::RefreshLive() {
  Live live;
  live.assigned = owned_;
  live.replicated = replicated_;
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
  stream::Consumer* tail = consumer ? tail_.get() : nullptr;
  for (int32_t p : live.replicated) {
    const int64_t high = tail ? tail->HighWatermark(p) : -1;
    live.high_watermarks[p] = high < 0 ? -1 : high;
  }
  live.broker_up = broker_up_.load();
  return live;
}

}  // namespace lifecycle::daemon
