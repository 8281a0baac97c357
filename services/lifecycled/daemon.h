#pragma once
// The daemon: wires the store, the Kafka consumer, the per-partition projectors and
// the gRPC server into the exactly-once loop of ARCHITECTURE.md.
//
// One thread (the caller of Run) owns the consumers and the projectors: it polls the
// group's consumer (owned partitions) and the tail (partitions replicated here, a plain
// consumer), folds, and commits views + offsets in one RocksDB WriteBatch every
// `commit_every` events or `commit_interval_ms`, then commits group offsets (owned
// partitions only, with how far their alerts were published) for lag tools and a next
// owner, at most every `group_commit_interval_ms`. A cluster thread describes the group
// and plans who holds what (cluster.h); the loop applies the replicas it plans between
// steps. gRPC threads read committed state only, and ask the plan (api::Router) where
// a partition is held.

#include <atomic>
#include <functional>
#include <chrono>
#include <condition_variable>
#include <thread>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "projections/projector.h"
#include "services/api/server.h"
#include "services/lifecycled/cluster.h"
#include "services/lifecycled/commit_loop.h"
#include "services/store/store.h"
#include "services/stream/kafka.h"
#include "services/web/http_server.h"

namespace rocksdb {
class Env;
}

namespace lifecycle::daemon {

struct DaemonConfig {
  std::string brokers = "127.0.0.1:9092";
  std::string events_topic = "lifecycle.customer-events";
  std::string alerts_topic = "lifecycle.alerts";
  int partitions = 8;             // used when the daemon creates the topics
  std::string group_id = "lifecycled";
  std::string instance_id;        // static group membership when set
  // Several instances in one group: the address the others reach this one's gRPC at
  // (empty: the bound listen address), and standby holders per partition.
  std::string advertise;
  int replicas = 1;
  int cluster_refresh_ms = 2000;  // how often the group's members are described
  std::map<std::string, std::string> consumer_config;  // librdkafka properties, over the defaults
  std::string data_dir = "./data/lifecycled";
  std::string grpc_listen = "127.0.0.1:50151";
  std::string listen_file;        // where to write the bound address once serving
  int commit_every = 5000;        // events
  int commit_interval_ms = 100;
  int alert_commit_ms = 10;       // after an alert is raised, commit within this (0: off)
  // The group's offsets in Kafka (lag tools, and where a next owner's alert publisher
  // starts) are committed at most this often, and whenever partitions are given up or
  // the stream goes quiet; the store, not the group, holds where the fold resumes. Each
  // is a request the broker writes to its offsets topic: at every store commit (~80
  // a second in the alert benchmark at 10,000 events/s) they cost the alert latency's tail
  // (docs/benchmarks.md). 0: at every store commit.
  int group_commit_interval_ms = 1000;
  // While more than commit_every records behind the log's end: commit every N events
  // or T ms instead. Each event of a commit being folded or written holds ~10 KB until
  // it lands; 10,000 rebuilt as fast as 25,000 with 170 MiB less at the peak
  // (300,000 customers, docs/benchmarks.md).
  int catchup_commit_every = 10000;
  int catchup_commit_interval_ms = 1000;
  // When the stream jumps ahead (live events after a replayed history, a restart after
  // downtime) and more customers of a partition come due at once than this, their
  // deadlines are run and committed in steps of about this many customers, earliest
  // first: each customer of a batch holds a few KB until its commit lands, and a jump
  // of a month over 1,000,000 customers made ~55,000 of each of 8 partitions due at
  // once, each partition's in one batch (docs/benchmarks.md). 0: all at once.
  int max_deadlines_per_commit = 10000;
  // Customer records kept in memory across commits, all partitions; and RocksDB's block
  // cache (records are cached by the projector). With catch-up commits of 10,000 a
  // 1,000,000-customer rebuild peaked at 813 MiB with 80 and 913 MiB with 160, which
  // rebuilt 9% faster; since key layout 2, at 826/829 MiB with 160 and 916/926 MiB with
  // 240, which rebuilt 15% faster; since records only their deadlines changed are not
  // written (fewer bytes in flight), at 888/893 MiB with 240 and 963/964 MiB with 300,
  // which rebuilt 10% faster (docs/benchmarks.md, 2026-11-27). Since the fold keeps the
  // stored bytes of records only their deadlines changed and catch-ups compress with
  // LZ4, 300 peaked at 1,017/1,019 MiB and 260 at 959 MiB, 4% slower (2026-11-28).
  int64_t cache_mb = 320;
  int block_cache_mb = 32;
  bool sync_writes = false;
  bool disable_wal = false;
  std::string rocksdb_options;  // over the store's own (StoreOptions::rocksdb_overrides)
  int catchup_l0_compaction_trigger = 8;  // StoreOptions::catchup_l0_compaction_trigger
  int catchup_zstd_level = 1;             // StoreOptions::catchup_zstd_level
  store::StoreOptions::CatchUpCompression catchup_compression =
      store::StoreOptions::CatchUpCompression::kNone;  // StoreOptions::catchup_compression
  int64_t compact_after_catchup_mb = 256;  // StoreOptions::compact_after_catchup_bytes
  bool low_priority_compactions = true;    // StoreOptions::low_priority_compactions
  int64_t defer_listing_after_mb = 256;   // StoreOptions::defer_listing_after_bytes
  int tick_interval_s = 60;       // ClockTick period; 0 turns the ticker off
  bool publish_alerts = true;     // tail the alert logs into alerts_topic
  // How long a stop may take (main's watchdog ends the process after it). The views
  // are committed first; the Kafka clients get what is left, less a reserve for the
  // gRPC server and the store, and are abandoned if they do not close in it.
  int stop_timeout_ms = 10000;
  std::string metrics_listen = "127.0.0.1:9464";  // empty: no metrics endpoint
  // The HTTP side (dashboard, JSON API, SSE alerts, /metrics); empty: off.
  std::string http_listen = "127.0.0.1:8151";
  std::string web_root;    // the dashboard's files; empty: JSON API only
  std::string web_vendor;  // browser libraries (ECharts) served at /vendor/
  std::vector<api::TokenSpec> tokens;             // empty: no authentication
  std::string tls_cert_file;
  std::string tls_key_file;
  projections::DomainConfig domain;
  rocksdb::Env* store_env = nullptr;  // fault-injection tests only
  // Called just before and just after each write to the store (fault-injection
  // builds only: see main.cc); null in production.
  std::function<void(bool after_write)> commit_hook;
};

class Daemon : public stream::RebalanceListener,
               public api::StatusSource,
               public api::Router,
               public CommitListener {
 public:
  explicit Daemon(DaemonConfig config);
  ~Daemon() override;

  // Runs until `*stop` becomes true (then commits, leaves the group and returns OK)
  // or a fatal error (returned; what was committed stays consistent). Then stops:
  // the pending views are committed, the gRPC and metrics servers stop, the Kafka
  // clients close within the stop budget, and the store closes.
  absl::Status Run(const std::atomic<bool>* stop);

  // True when Run gave up on Kafka clients that did not close in time: their threads
  // may still run, so the process must end without running destructors (_exit).
  bool abandoned_kafka() const { return abandoned_; }

  // stream::RebalanceListener
  absl::StatusOr<std::map<int32_t, int64_t>> OnAssigned(
      const std::vector<int32_t>& partitions) override;
  void OnRevoked(const std::vector<int32_t>& partitions) override;

  // api::StatusSource
  Live Snapshot() override;

  // api::Router
  int32_t PartitionOf(std::string_view customer_id) override;
  std::vector<std::string> Holders(int32_t partition) override;
  std::vector<std::string> Members() override;
  std::vector<std::string> FormerHolders(int32_t partition) override;
  bool Ready() override;
  std::string Self() override { return advertise_; }
  int replicas() override { return config_.replicas; }
  int partitions() override { return topic_partitions_; }

  // CommitListener
  void OnRejected(const stream::Record& rec, const std::string& reason) override;
  void OnSkipped(const stream::Record& rec, const std::string& reason) override;
  void OnCommitted(const std::vector<projections::PendingBatch>& batches,
                   const std::vector<lifecycle::v1::PartitionMeta>& before,
                   double write_ms) override;
  void OnStoreStatus(const absl::Status& status) override;
  void OnDeadlineSteps(const stream::Record& rec, int steps, bool applied) override;
  void OnQuiet() override;

 private:
  class Wiring;  // the loop's source, sink and clock over the consumer and the store
  // Run's steps, in order. Start-up: the data directory and the view store; the topics
  // (created or checked) and the producers; the gRPC, metrics and HTTP servers and the
  // listen file; the group's consumer, the replicas' tail and the helper threads.
  absl::Status OpenStore();
  absl::Status OpenKafkaClients();
  absl::Status StartServers();
  absl::Status JoinGroup();
  // The commit loop until `*stop` or its first error (returned).
  absl::Status Loop(const std::atomic<bool>* stop);
  // The ordered stop: the final commit, the servers, the Kafka clients within the stop
  // budget, the store. Returns `result`, or the stop's first error when it is OK.
  absl::Status StopInOrder(absl::Status result);
  void RefreshLive();
  // Commits group_next_ to the group when `force` or group_commit_interval_ms has passed
  // since the last time (the loop's thread, or the stop's once the loop has ended).
  void CommitGroupOffsets(bool force);
  // Scrape-time metrics: process, RocksDB, lag in seconds, the publisher's backlog.
  void AddCollectors();
  void RunTicker();
  void RunAlertPublisher();
  void SendToDlq(const stream::Record& rec, const std::string& reason);
  void RunWatcher();
  // Describes the group every cluster_refresh_ms and plans who holds what.
  void RunCluster();
  // Describe the group again now (after a rebalance).
  void WakeCluster();
  // On the loop's thread: tails the partitions this instance should replicate now.
  void ApplyReplicas();
  // Projectors for `partitions`, from their stored state; the next offset of each.
  absl::StatusOr<std::map<int32_t, int64_t>> AddProjectors(const std::vector<int32_t>& partitions);
  // Joins the helper threads, closes the consumer (leaving the group) and destroys
  // every Kafka client; run on its own thread so a broker that never answers
  // cannot hold the stop.
  void CloseKafka();
  // Runs CloseKafka with a deadline; on a timeout abandons it (see abandoned_kafka).
  void CloseKafkaBy(std::chrono::steady_clock::time_point deadline);

  DaemonConfig config_;
  std::shared_ptr<spdlog::logger> log_;
  std::unique_ptr<store::ViewStore> store_;
  std::unique_ptr<store::StoreStateReader> reader_;
  std::unique_ptr<stream::Consumer> consumer_;
  std::atomic<stream::Consumer*> live_consumer_{nullptr};  // for gRPC threads
  std::unique_ptr<api::ApiServer> api_;
  std::unique_ptr<stream::Producer> ingest_producer_;
  std::unique_ptr<stream::Producer> dlq_producer_;
  std::string dlq_topic_;
  std::atomic<int64_t> dlq_failures_{0};
  api::Metrics metrics_;
  std::unique_ptr<web::HttpServer> metrics_server_;  // --metrics-listen: /metrics only
  std::unique_ptr<web::HttpServer> http_server_;
  std::thread alert_publisher_;
  std::thread watcher_;
  std::atomic<bool> broker_up_{true};
  Projectors projectors_;
  std::unique_ptr<Wiring> wiring_;
  std::unique_ptr<CommitLoop> loop_;
  std::shared_ptr<spdlog::logger> log_projector_;

  std::thread ticker_;
  std::mutex ticker_mu_;
  std::condition_variable ticker_cv_;
  bool ticker_stop_ = false;  // also stops the alert publisher
  uint64_t commits_ = 0;      // guarded by ticker_mu_; wakes the alert publisher

  // Held by rebalance callbacks while they touch the projectors and the store; set
  // under it when the Kafka clients are abandoned, after which callbacks do nothing.
  std::mutex teardown_mu_;
  bool abandoned_ = false;

  std::mutex live_mu_;
  Live live_;
  double last_commit_ms_ = 0;
  // Group offsets stored but not yet committed to the group (loop thread), and when the
  // group's offsets were last committed.
  std::map<int32_t, int64_t> group_next_;
  std::optional<std::chrono::steady_clock::time_point> group_committed_at_;  // none yet
  std::string store_error_;  // guarded by live_mu_
  std::map<int32_t, int64_t> stream_times_;  // committed stream time (s) by partition; live_mu_
  std::map<int32_t, int64_t> published_;     // alerts published (next sequence); live_mu_

  // The cluster. owned_ and replicated_ belong to the loop's thread (and the rebalance
  // callbacks on it); publish_ (live_mu_) is what the alert publisher sends: owned_,
  // kept as it was when the consumer closes at a stop.
  std::string advertise_;
  int topic_partitions_ = 0;
  std::unique_ptr<stream::Consumer> tail_;
  std::set<int32_t> owned_;
  std::set<int32_t> replicated_;
  std::set<int32_t> publish_;
  bool closing_ = false;  // teardown_mu_: the consumer is closing for a stop
  std::thread cluster_thread_;
  std::mutex cluster_mu_;
  std::shared_ptr<const ClusterMap> cluster_;  // the last complete plan
  // Per partition: holders of the plan before that no longer hold it (cluster_mu_).
  std::map<int32_t, std::vector<std::string>> former_holders_;
  std::atomic<bool> cluster_wake_{false};  // a rebalance: describe the group again now
  std::set<int32_t> wanted_replicas_;          // cluster_mu_
  std::atomic<bool> replicas_changed_{false};
};

}  // namespace lifecycle::daemon
