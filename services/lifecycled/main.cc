// lifecycled: the Lifecycle daemon. Parses its configuration and wires the parts
// together; the work is in daemon.cc.
#include <unistd.h>

#include <csignal>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <thread>

#include "CLI/CLI.hpp"
#include "absl/synchronization/mutex.h"
#include "google/protobuf/stubs/logging.h"
#include "services/lifecycled/daemon.h"
#include "services/lifecycled/domain_config.h"
#include "services/lifecycled/logging.h"
#include "services/version/version.h"
#ifdef LIFECYCLE_FAULT_INJECTION
#include "services/lifecycled/fault_injection.h"
#endif
#include "spdlog/spdlog.h"

#ifdef LIFECYCLE_JEMALLOC
// jemalloc's own setting for lifecycled (the MALLOC_CONF environment variable still goes
// over it). Freed pages go back to the system after 10 s, both the dirty ones and those
// already given back lazily (muzzy): a catch-up frees a commit's batch every second or
// so and allocates the next one at once, and pages kept that long are reused instead
// of being faulted in again. Against a 1 s decay with no muzzy stage (this setting until
// 2026-11-29), a 1,000,000-customer rebuild took 3-5% less time and CPU for about
// 30 MiB more at its peak (docs/benchmarks.md, the fifth session of 2026-11-29).
// jemalloc's background thread gives the pages back, not the thread that frees: the
// fold's thread spent 2.5% of its time in madvise (a 1,000,000-customer rebuild 2.6%
// faster on average over five alternating pairs).
extern "C" {
const char* malloc_conf = "background_thread:true,dirty_decay_ms:10000,muzzy_decay_ms:10000";
}
#endif

namespace {

std::atomic<bool> g_stop{false};
std::atomic<int> g_signals{0};

// The first SIGTERM/SIGINT asks for a stop; a second one ends the process at once
// (committed views and offsets are consistent on disk whenever the process dies: the
// rest is replayed from Kafka at the next start).
void OnSignal(int sig) {
  if (g_signals.fetch_add(1) == 0) {
    g_stop.store(true);
    return;
  }
  static const char kMsg[] = "lifecycled: second signal, exiting now\n";
  ssize_t n = ::write(STDERR_FILENO, kMsg, sizeof(kMsg) - 1);
  (void)n;
  ::_exit(128 + sig);
}

// Ends the process if a stop takes longer than `timeout_ms` from the signal, whatever
// it is waiting for.
void StartStopWatchdog(int timeout_ms, const std::atomic<bool>* done) {
  std::thread([timeout_ms, done] {
    while (!g_stop.load()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (!done->load()) {
      if (std::chrono::steady_clock::now() >= deadline) {
        if (auto log = spdlog::get("lifecycled")) {
          log->critical("the stop took longer than {} ms (--stop-timeout-s); exiting now",
                        timeout_ms);
          log->flush();
        }
        ::_exit(1);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }).detach();
}

}  // namespace

int main(int argc, char** argv) {
  // Debian's Abseil is built without NDEBUG, so every absl::Mutex (gRPC locks with
  // them) keeps a lock graph and stack traces for deadlock detection: 2% of the daemon's
  // CPU under GetCustomer load (perf, docs/benchmarks.md). The tests keep it on.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  lifecycle::daemon::DaemonConfig c;
  std::string log_level = "info";

  CLI::App app{
      "lifecycled — projects customer events from Kafka into RocksDB views and serves them "
      "over gRPC.\nEvery option can also be set in a config file (--config), one `name = value` "
      "per line, using the long option names."};
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);  // last one wins
  app.set_version_flag("--version", lifecycle::VersionLine("lifecycled"),
                       "Print the version and git commit, and exit");
  app.set_config("--config", "", "Read options from this TOML/INI file");
  app.add_option("--brokers", c.brokers, "Kafka bootstrap servers")->capture_default_str();
  app.add_option("--events-topic", c.events_topic,
                 "Topic of customer events (the DLQ is <topic>.dlq)")
      ->capture_default_str();
  app.add_option("--alerts-topic", c.alerts_topic, "Topic alerts are published to")
      ->capture_default_str();
  app.add_option("--partitions", c.partitions,
                 "Partition count used when lifecycled creates missing topics")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  app.add_option("--group", c.group_id, "Kafka consumer group id")->capture_default_str();
  app.add_option("--instance-id", c.instance_id,
                 "Static group membership id (group.instance.id): a restart keeps the "
                 "partitions without a rebalance")
      ->capture_default_str();
  app.add_option("--advertise", c.advertise,
                 "host:port the other instances of the group reach this one's gRPC at "
                 "(default: the bound --grpc-listen address)");
  app.add_option("--replicas", c.replicas,
                 "Standby holders per partition among the group's other instances, at "
                 "least (more where the group's assignor would move a partition to them "
                 "if any one instance left): each tails the partition into its own store, "
                 "answers queries for it and takes it over without a rebuild (0: owners "
                 "only)")
      ->capture_default_str()
      ->check(CLI::Range(0, 16));
  app.add_option("--cluster-refresh-ms", c.cluster_refresh_ms,
                 "How often the group's members and assignment are described")
      ->capture_default_str()
      ->check(CLI::Range(100, 600000));
  std::vector<std::string> consumer_config;
  app.add_option("--consumer-config", consumer_config,
                 "A librdkafka property of the events consumer, KEY=VALUE (repeatable), over "
                 "lifecycled's defaults; e.g. queued.max.messages.kbytes=65536 (lifecycled's: 16384)")
      ->check([](const std::string& kv) {
        return kv.find('=') == std::string::npos || kv.front() == '='
                   ? std::string("expected KEY=VALUE, got '") + kv + "'"
                   : std::string();
      });
  app.add_option("--data-dir", c.data_dir, "Directory of the RocksDB view store")
      ->capture_default_str();
  app.add_option("--grpc-listen", c.grpc_listen, "gRPC listen address host:port (port 0: any free)")
      ->capture_default_str();
  std::string poll_strategy = "poll";
  app.add_option("--grpc-poll-strategy", poll_strategy,
                 "How gRPC waits for its sockets: poll, or epoll1 (gRPC's own default, for "
                 "thousands of connections). poll served 6-12% more GetCustomer calls a second "
                 "at 32 in flight here (docs/benchmarks.md). Without this option a "
                 "GRPC_POLL_STRATEGY in the environment is used as it is")
      ->capture_default_str()
      ->check(CLI::IsMember({"poll", "epoll1"}));
  app.add_option("--listen-file", c.listen_file,
                 "Once serving, write the bound gRPC address to this file (then "
                 "\"metrics HOST:PORT\" or \"metrics off\", and \"http HOST:PORT\" or "
                 "\"http off\")");
  app.add_option("--commit-every", c.commit_every, "Commit views and offsets every N events")
      ->capture_default_str()
      ->check(CLI::Range(1, 10000000));
  app.add_option("--commit-interval-ms", c.commit_interval_ms,
                 "... or every T milliseconds, whichever comes first")
      ->capture_default_str()
      ->check(CLI::Range(1, 600000));
  app.add_option("--alert-commit-ms", c.alert_commit_ms,
                 "After an event raises an alert, commit within T milliseconds so subscribers "
                 "hear of it soon (not while catching up); 0: wait for the regular commit")
      ->capture_default_str()
      ->check(CLI::Range(0, 600000));
  app.add_option("--group-commit-interval-ms", c.group_commit_interval_ms,
                 "Commit the consumer group's offsets to Kafka (what lag tools read, and where "
                 "a next owner's alert publisher starts) at most this often, and whenever "
                 "partitions are given up or the stream goes quiet; the store keeps where "
                 "the fold resumes. 0: at every commit")
      ->capture_default_str()
      ->check(CLI::Range(0, 600000));
  app.add_option("--catchup-commit-every", c.catchup_commit_every,
                 "While more than --commit-every records behind (a rebuild, a restart after "
                 "downtime): commit every N events ...")
      ->capture_default_str()
      ->check(CLI::Range(1, 10000000));
  app.add_option("--catchup-commit-interval-ms", c.catchup_commit_interval_ms,
                 "... or every T milliseconds while behind")
      ->capture_default_str()
      ->check(CLI::Range(1, 600000));
  app.add_option("--max-deadlines-per-commit", c.max_deadlines_per_commit,
                 "When the stream jumps ahead (live events after a replayed history, a restart "
                 "after downtime) and more customers of a partition come due at once than N, "
                 "run and commit their deadlines in steps of about N customers, earliest first, "
                 "so memory stays bounded; 0: all in one commit")
      ->capture_default_str()
      ->check(CLI::Range(0, 100000000));
  app.add_option("--cache-mb", c.cache_mb,
                 "Memory in MiB for customer records kept after a commit (over all assigned "
                 "partitions, least recently used dropped first), so customers seen again soon "
                 "are not read back from RocksDB; 0: none")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1048576}));
  app.add_option("--block-cache-mb", c.block_cache_mb, "RocksDB block cache size in MiB")
      ->capture_default_str()
      ->check(CLI::Range(1, 1048576));
  app.add_option("--rocksdb-options", c.rocksdb_options,
                 "RocksDB options over lifecycled's own, in RocksDB's option-string syntax, e.g. "
                 "\"level0_file_num_compaction_trigger=4;max_background_jobs=4\" (an unknown "
                 "option or a bad value stops the start with RocksDB's message)");
  app.add_option("--catchup-compaction-trigger", c.catchup_l0_compaction_trigger,
                 "While catching up (a rebuild, a restart after downtime), compact RocksDB's "
                 "level 0 into level 1 at this many files instead of the usual number (2, or "
                 "--rocksdb-options' level0_file_num_compaction_trigger; the larger of the two "
                 "applies): fewer, "
                 "larger compactions (a rebuild updates customers all over the key space, so "
                 "each one rewrites most of level 1); back to the usual once caught up. 0: "
                 "no switch")
      ->capture_default_str()
      ->check(CLI::Range(0, 64));
  using Compress = lifecycle::store::StoreOptions::CatchUpCompression;
  const std::map<std::string, Compress> compressions = {
      {"lz4", Compress::kLz4}, {"none", Compress::kNone}, {"zstd", Compress::kStoreOwn}};
  std::string catchup_compression = "lz4";
  for (const auto& [name, kind] : compressions) {
    if (kind == c.catchup_compression) catchup_compression = name;
  }
  app.add_option("--catchup-compression", catchup_compression,
                 "While catching up, compress nothing (`none`: a catch-up rewrites the lower "
                 "levels several times; no compression CPU, up to 1.5 times the disk until the "
                 "catch-up ends), compress every level below L0 with LZ4 (`lz4`: several "
                 "times faster than ZSTD), or keep the store's own compression, LZ4 in L1 and "
                 "ZSTD below (`zstd`, with --catchup-zstd-level). The compaction after the "
                 "catch-up writes the store in its own compression in every case")
      ->capture_default_str()
      ->check(CLI::IsMember({"lz4", "none", "zstd"}));
  std::string compaction_priority = c.low_priority_compactions ? "low" : "normal";
  app.add_option("--compaction-priority", compaction_priority,
                 "CPU priority of RocksDB's compaction threads: `low` (nice 19: they take the "
                 "time the fold and the queries leave; a 1,000,000-customer rebuild 3-4% "
                 "faster on two cores) or `normal`. Flushes keep the usual priority")
      ->capture_default_str()
      ->check(CLI::IsMember({"low", "normal"}));
  app.add_option("--catchup-zstd-level", c.catchup_zstd_level,
                 "With --catchup-compression zstd: while catching up, compress the store's "
                 "last level (most of its bytes) with this ZSTD level instead of the usual 6 "
                 "(or --rocksdb-options' bottommost_compression_opts): faster, the store a "
                 "few percent larger until the compaction after the catch-up rewrites it. 0: "
                 "no switch")
      ->capture_default_str()
      ->check(CLI::Range(0, 19));
  app.add_option("--compact-after-catchup-mb", c.compact_after_catchup_mb,
                 "After a catch-up that wrote at least this many MiB, compact the whole view "
                 "store once, in the background (queries and commits go on): a catch-up "
                 "leaves overwritten records and dropped journal entries in the lower levels "
                 "for a long time (a 1,000,000-customer rebuild settled at 1.62 GB without it, "
                 "1.29 GB with it, 28 s after catching up). A new catch-up stops it. 0: never")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 30));
  app.add_option("--defer-listing-after-mb", c.defer_listing_after_mb,
                 "Once a catch-up has written this many MiB and nobody has listed customers "
                 "during it, stop moving the listing indexes' entries at each commit; they "
                 "are built again from the records in the background when the catch-up "
                 "ends, or at once by the first ListCustomers before that (which waits for "
                 "it). A 1,000,000-customer rebuild is faster by what those moves cost. 0: "
                 "always keep them")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 30));
  app.add_flag("--sync-writes", c.sync_writes,
               "fsync every commit (survives power loss without a replay from Kafka)");
  app.add_flag("--no-wal", c.disable_wal,
               "commit without RocksDB's write-ahead log: faster; a crash replays from Kafka "
               "what was not yet flushed; a failing disk shows only at a flush");
  std::string domain_config;
  app.add_option("--domain-config", domain_config,
                 "TOML file of the domain thresholds and model parameters (e.g. "
                 "deploy/config/domain.toml); without it the built-in defaults apply")
      ->check(CLI::ExistingFile);
  std::string tokens_file;
  app.add_option("--tokens-file", tokens_file,
                 "TOML file of bearer tokens and their roles (read, publish, admin); without "
                 "it the gRPC API is open to anyone who can reach it")
      ->check(CLI::ExistingFile);
  app.add_option("--tls-cert", c.tls_cert_file, "PEM certificate chain: serve gRPC over TLS")
      ->check(CLI::ExistingFile);
  app.add_option("--tls-key", c.tls_key_file, "PEM private key for --tls-cert")
      ->check(CLI::ExistingFile);
  app.add_option("--metrics-listen", c.metrics_listen,
                 "Prometheus metrics at http://HOST:PORT/metrics (port 0: any free; empty: off)")
      ->capture_default_str();
  c.web_root = LIFECYCLE_WEB_ROOT;
  if (const char* home = std::getenv("HOME")) {
    c.web_vendor = std::string(home) + "/.cache/lifecycle/web/vendor";
  }
  app.add_option("--http-listen", c.http_listen,
                 "HTTP address of the dashboard, the JSON API (/api/v1/...), live alerts as "
                 "Server-Sent Events and /metrics (port 0: any free; empty: off)")
      ->capture_default_str();
  app.add_option("--web-root", c.web_root, "Directory of the dashboard's files")
      ->capture_default_str();
  app.add_option("--web-vendor", c.web_vendor,
                 "Directory of the browser libraries served at /vendor/ (ECharts; installed by "
                 "deploy/local/install-tools.sh)")
      ->capture_default_str();
  bool no_alert_publisher = false;
  app.add_flag("--no-alert-publisher", no_alert_publisher,
               "Do not copy the alert logs to the alerts topic");
  app.add_option("--tick-interval-s", c.tick_interval_s,
                 "Publish a ClockTick to every partition this often (0: off)")
      ->capture_default_str()
      ->check(CLI::Range(0, 86400));
  int stop_timeout_s = 10;
  app.add_option("--stop-timeout-s", stop_timeout_s,
                 "On SIGTERM/SIGINT: commit the views, then close the Kafka clients, and end "
                 "the process within this many seconds whatever the broker does (Kafka clients "
                 "still closing are abandoned); a second signal ends it at once")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600));
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")
      ->capture_default_str()
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
  std::string log_format = "text";
  app.add_option("--log-format", log_format,
                 "text, or json: one JSON object per line (time, level, logger, message, and "
                 "partition/offset where there is one), for log collectors")
      ->capture_default_str()
      ->check(CLI::IsMember({"text", "json"}));
  CLI11_PARSE(app, argc, argv);
  // Read by gRPC when it starts (the API server, the first channel): before either.
  if (app.count("--grpc-poll-strategy") > 0 || std::getenv("GRPC_POLL_STRATEGY") == nullptr) {
    setenv("GRPC_POLL_STRATEGY", poll_strategy.c_str(), /*overwrite=*/1);
  }

  lifecycle::daemon::SetUpLogging(log_level, log_format == "json"
                                                 ? lifecycle::daemon::LogFormat::kJson
                                                 : lifecycle::daemon::LogFormat::kText);
  c.publish_alerts = !no_alert_publisher;
  c.catchup_compression = compressions.at(catchup_compression);
  c.low_priority_compactions = compaction_priority == "low";
  for (const std::string& kv : consumer_config) {
    const size_t eq = kv.find('=');
    c.consumer_config[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  c.stop_timeout_ms = stop_timeout_s * 1000;
  if (!c.tls_cert_file.empty() != !c.tls_key_file.empty()) {
    std::fprintf(stderr, "lifecycled: --tls-cert and --tls-key go together\n");
    return 2;
  }
  if (!tokens_file.empty()) {
    auto tokens = lifecycle::api::LoadTokens(tokens_file);
    if (!tokens.ok()) {
      std::fprintf(stderr, "lifecycled: invalid tokens file: %s\n",
                   std::string(tokens.status().message()).c_str());
      return 2;
    }
    c.tokens = *tokens;
  }
  if (!domain_config.empty()) {
    auto loaded = lifecycle::daemon::LoadDomainConfig(domain_config);
    if (!loaded.ok()) {
      std::fprintf(stderr, "lifecycled: invalid domain config: %s\n",
                   std::string(loaded.status().message()).c_str());
      return 2;
    }
    c.domain = *loaded;
  }
  struct sigaction sa = {};
  sa.sa_handler = OnSignal;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  // Protobuf complains (at ERROR, on stderr) about every malformed string it parses;
  // bad events are data here, reported once each by the projector: keep those at debug.
  google::protobuf::SetLogHandler(
      [](google::protobuf::LogLevel level, const char* file, int line, const std::string& msg) {
        auto l = spdlog::get("projector");
        if (!l) return;
        if (level >= google::protobuf::LOGLEVEL_FATAL) {
          l->critical("protobuf {}:{}: {}", file, line, msg);
        } else {
          l->debug("protobuf {}:{}: {}", file, line, msg);
        }
      });
  auto log = spdlog::get("lifecycled");
  log->info("starting {}: brokers={} topic={} group={} data-dir={}",
            lifecycle::VersionLine("lifecycled"), c.brokers, c.events_topic, c.group_id,
            c.data_dir);
#ifdef LIFECYCLE_FAULT_INJECTION
  c.commit_hook = lifecycle::daemon::KillInCommitHookFromEnv();
#endif
  static std::atomic<bool> done{false};  // outlives main: the watchdog thread reads it
  StartStopWatchdog(c.stop_timeout_ms, &done);
  lifecycle::daemon::Daemon daemon(c);
  absl::Status s = daemon.Run(&g_stop);
  const int code = s.ok() ? 0 : 1;
  if (!s.ok()) {
    log->error("{}", s.ToString());
    std::fprintf(stderr, "lifecycled: %s\n", std::string(s.message()).c_str());
  }
  if (daemon.abandoned_kafka()) {
    // librdkafka threads may still run: no destructors, no exit handlers.
    spdlog::shutdown();
    std::fflush(nullptr);
    ::_exit(code);
  }
  done.store(true);
  return code;
}
