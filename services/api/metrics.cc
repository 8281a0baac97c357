#include "services/api/metrics.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace lifecycle::api {

Metrics::Metrics() {
  auto add = [this](const char* name, const char* type, const char* help,
                    std::vector<double> bounds = {}) {
    Family f;
    f.type = type;
    f.help = help;
    f.bounds = std::move(bounds);
    families_[name] = std::move(f);
  };
  add("lifecycle_events_applied_total", "counter", "Events applied to the views, by partition.");
  add("lifecycle_events_rejected_total", "counter",
      "Events not applied: undecodable or invalid (sent to the DLQ), by partition.");
  add("lifecycle_events_skipped_total", "counter",
      "Events of a payload type this build does not know, by partition.");
  add("lifecycle_events_duplicate_total", "counter",
      "Events whose event_id was already applied, by partition.");
  add("lifecycle_events_late_total", "counter",
      "Events of late history (more than late.settle_minutes behind the stream time): their "
      "customer is folded in its own time and settles before its deadlines run, by partition.");
  add("lifecycle_events_out_of_order_total", "counter",
      "Events older than what their customer had already seen: the customer is re-derived "
      "with the event in its place (within late.window_days), by partition.");
  add("lifecycle_events_beyond_window_total", "counter",
      "Out-of-order events beyond late.window_days (or from before an erasure): folded at "
      "the customer's time, not in their place (an approximation), by partition.");
  add("lifecycle_consumer_lag", "gauge",
      "Records in the partition not yet applied (high watermark - stored offset - 1).");
  add("lifecycle_commit_latency_seconds", "histogram",
      "Time to write one commit (views, indexes, counters, alerts, offsets) to RocksDB.",
      {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5});
  add("lifecycle_alerts_raised_total", "counter", "Alerts raised, by kind.");
  add("lifecycle_alerts_late_total", "counter",
      "Alerts raised more than alerts.horizon_days after their condition became true (late "
      "or back-filled history): kept in the history, not streamed, by kind.");
  add("lifecycle_grpc_requests_total", "counter", "gRPC requests, by method and status code.");
  add("lifecycle_partition_lag_seconds", "gauge",
      "Wall clock minus the partition's stream time (the newest event or clock tick applied "
      "and committed), by partition.");
  add("lifecycle_dlq_records_total", "counter",
      "Rejected records delivered to the dead-letter topic <events-topic>.dlq.");
  add("lifecycle_dlq_failures_total", "counter",
      "Rejected records that could not be queued or delivered to the dead-letter topic.");
  add("lifecycle_alerts_published_total", "counter",
      "Alerts published to the alerts topic, by partition of the alert log.");
  add("lifecycle_alert_publisher_backlog", "gauge",
      "Alerts in the partition's alert log not yet published to the alerts topic.");
  add("lifecycle_group_offset_commits_total", "counter",
      "Commits of the consumer group's offsets to Kafka (at most one per "
      "--group-commit-interval-ms, and whenever partitions are given up).");
  add("lifecycle_commit_batch_records", "histogram",
      "Records (events, ticks, rejected, duplicates) covered by one commit.",
      {1, 10, 100, 1000, 5000, 10000, 25000, 50000, 100000});
  add("lifecycle_rocksdb_live_data_bytes", "gauge",
      "RocksDB's estimate of the live data in the view store.");
  add("lifecycle_rocksdb_sst_bytes", "gauge", "Size of the view store's SST files.");
  add("lifecycle_rocksdb_pending_compaction_bytes", "gauge",
      "RocksDB's estimate of the bytes compaction must rewrite to settle the view store.");
  add("lifecycle_rocksdb_write_stalls_total", "counter",
      "Writes RocksDB stopped or slowed down since the store was opened, by kind.");
  add("lifecycle_rocksdb_write_stopped", "gauge", "1 while RocksDB stops writes, else 0.");
  add("lifecycle_rocksdb_l0_files", "gauge", "Files in level 0 of the view store.");
  add("lifecycle_rocksdb_full_compaction_running", "gauge",
      "1 while the view store compacts itself whole after a catch-up, else 0.");
  add("lifecycle_rocksdb_full_compactions_total", "counter",
      "Whole-store compactions after a catch-up that ended (or were stopped) since start.");
  add("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.");
  add("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
  add("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
  add("process_open_fds", "gauge", "Number of open file descriptors.");
  add("process_max_fds", "gauge", "Maximum number of open file descriptors.");
  add("process_start_time_seconds", "gauge",
      "Start time of the process since unix epoch in seconds.");
}

void Metrics::AddCollector(Collector c) {
  std::lock_guard<std::mutex> lock(collectors_mu_);
  collectors_.push_back(std::move(c));
}

std::vector<std::string> ProcStatFields(const std::string& pid) {
  std::ifstream in("/proc/" + pid + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t close = stat.rfind(')');  // the command may hold spaces and parentheses
  std::vector<std::string> f;
  if (close == std::string::npos || close + 2 > stat.size()) return f;
  std::istringstream fields(stat.substr(close + 2));
  for (std::string x; fields >> x;) f.push_back(x);
  return f;
}

void CollectProcessMetrics(Metrics* m) {
  // utime and stime (14, 15) in clock ticks, starttime (22) in ticks since boot, vsize
  // (23) in bytes, rss (24) in pages; field N is f[N - 3].
  const std::vector<std::string> f = ProcStatFields();
  if (f.size() > 21) {
    const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
    const double page = static_cast<double>(::sysconf(_SC_PAGESIZE));
    m->Set("process_cpu_seconds_total", "",
           (std::stod(f[11]) + std::stod(f[12])) / ticks);
    m->Set("process_virtual_memory_bytes", "", std::stod(f[20]));
    m->Set("process_resident_memory_bytes", "", std::stod(f[21]) * page);
    std::ifstream up("/proc/stat");
    for (std::string line; std::getline(up, line);) {
      if (line.rfind("btime ", 0) == 0) {
        m->Set("process_start_time_seconds", "",
               std::stod(line.substr(6)) + std::stod(f[19]) / ticks);
        break;
      }
    }
  }
  std::error_code ec;
  double fds = 0;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    ++fds;
  }
  m->Set("process_open_fds", "", fds);
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    m->Set("process_max_fds", "", static_cast<double>(rl.rlim_cur));
  }
}

Metrics::Family* Metrics::Find(const std::string& name) {
  auto it = families_.find(name);
  return it == families_.end() ? nullptr : &it->second;
}

void Metrics::Add(const std::string& name, const std::string& labels, double delta) {
  std::lock_guard<std::mutex> lock(mu_);
  if (Family* f = Find(name)) f->values[labels] += delta;
}

void Metrics::Set(const std::string& name, const std::string& labels, double value) {
  std::lock_guard<std::mutex> lock(mu_);
  if (Family* f = Find(name)) f->values[labels] = value;
}

void Metrics::Reset(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  if (Family* f = Find(name)) f->values.clear();
}

void Metrics::Observe(const std::string& name, const std::string& labels, double value) {
  std::lock_guard<std::mutex> lock(mu_);
  Family* f = Find(name);
  if (!f) return;
  auto& h = f->hists[labels];
  if (h.buckets.empty()) h.buckets.assign(f->bounds.size(), 0);
  for (size_t i = 0; i < f->bounds.size(); ++i) {
    if (value <= f->bounds[i]) ++h.buckets[i];
  }
  h.sum += value;
  ++h.count;
}

std::string Metrics::Render() {
  {
    std::lock_guard<std::mutex> lock(collectors_mu_);
    for (const auto& c : collectors_) c(this);
  }
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  auto braces = [](const std::string& labels, const std::string& extra) {
    std::string all = labels;
    if (!extra.empty()) all = all.empty() ? extra : absl::StrCat(all, ",", extra);
    return all.empty() ? std::string() : absl::StrCat("{", all, "}");
  };
  for (const auto& [name, f] : families_) {
    absl::StrAppend(&out, "# HELP ", name, " ", f.help, "\n# TYPE ", name, " ", f.type, "\n");
    for (const auto& [labels, v] : f.values) {
      absl::StrAppend(&out, name, braces(labels, ""), " ", absl::StrFormat("%.17g", v), "\n");
    }
    for (const auto& [labels, h] : f.hists) {
      for (size_t i = 0; i < f.bounds.size(); ++i) {
        absl::StrAppend(&out, name, "_bucket",
                        braces(labels, absl::StrFormat("le=\"%g\"", f.bounds[i])), " ",
                        h.buckets[i], "\n");
      }
      absl::StrAppend(&out, name, "_bucket", braces(labels, "le=\"+Inf\""), " ", h.count, "\n");
      absl::StrAppend(&out, name, "_sum", braces(labels, ""), " ", absl::StrFormat("%.9g", h.sum),
                      "\n");
      absl::StrAppend(&out, name, "_count", braces(labels, ""), " ", h.count, "\n");
    }
  }
  return out;
}

absl::StatusOr<int> ListenTcp(const std::string& listen) {
  const auto colon = listen.rfind(':');
  if (colon == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(listen, ": want host:port"));
  }
  const std::string host = listen.substr(0, colon);
  const int port = std::atoi(listen.substr(colon + 1).c_str());
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, host == "localhost" ? "127.0.0.1" : host.c_str(), &addr.sin_addr) != 1) {
    return absl::InvalidArgumentError(absl::StrCat(listen, ": not an IPv4 host"));
  }
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::UnavailableError(absl::StrCat("socket: ", std::strerror(errno)));
  // SO_REUSEADDR lets a restart bind past connections in TIME_WAIT; it does not let
  // two processes listen on one port (SO_REUSEPORT would, and is not set).
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || ::listen(fd, 16) != 0) {
    const std::string err = errno == EADDRINUSE
                                ? "address already in use (is another lifecycled running?)"
                                : std::strerror(errno);
    ::close(fd);
    return absl::UnavailableError(absl::StrCat(listen, ": ", err));
  }
  return fd;
}

}  // namespace lifecycle::api
