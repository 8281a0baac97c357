// The crash harness: publishes a generated log (valid events of every kind, out of
// order, duplicated, garbage, clock ticks) while lifecycled is killed with SIGKILL
// again and again — at random moments, inside commits (before and after the RocksDB
// write, by fault injection), and during rebalances — and restarted. At the end
// every customer's view must be byte-equal to the pure fold of the same log run
// in-process, and the alert ids must equal the oracle's with no duplicates.
//
//   crash_harness --events N --customers N --kills N [--seed N] [--partitions N]
//
// Needs a broker ($LIFECYCLE_TEST_BROKERS). Prints its figures; exits 0 when
// everything matched.
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <string>
#include <thread>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "tests/integration/harness.h"
#include "tests/projections/test_events.h"

using namespace lifecycle::testing;  // NOLINT
namespace v1 = lifecycle::v1;

namespace {

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

// Every alert the daemon serves, page by page. UNAVAILABLE (a partition's other holder
// was just killed and the group has not rebalanced yet) is asked again, from the
// start, for up to a minute, as the API asks clients to.
absl::StatusOr<std::vector<std::string>> AllAlertIds(const std::string& address) {
  auto stub = v1::AlertService::NewStub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  for (;;) {
    std::vector<std::string> ids;
    v1::ListAlertsRequest req;
    req.set_page_size(1000);
    grpc::Status s;
    for (;;) {
      grpc::ClientContext ctx;
      v1::ListAlertsResponse resp;
      s = stub->ListAlerts(&ctx, req, &resp);
      if (!s.ok()) break;
      for (const auto& a : resp.alerts()) ids.push_back(a.alert_id());
      if (resp.next_page_token().empty()) return ids;
      req.set_page_token(resp.next_page_token());
    }
    if (s.error_code() != grpc::StatusCode::UNAVAILABLE ||
        std::chrono::steady_clock::now() > deadline) {
      return absl::UnavailableError(s.error_message());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
}

}  // namespace

int main(int argc, char** argv) {
  int events = 200000, customers = 5000, kills = 12, partitions = 4;
  uint32_t seed = 1;
  CLI::App app{"crash_harness — kill lifecycled mid-stream and compare with the pure fold"};
  app.add_option("--events", events, "Events to publish")->capture_default_str();
  app.add_option("--customers", customers, "Customers")->capture_default_str();
  app.add_option("--kills", kills, "SIGKILLs (at least 3: one of each kind)")->capture_default_str();
  app.add_option("--seed", seed, "Seed of the log and of the kill times")->capture_default_str();
  app.add_option("--partitions", partitions, "Partitions of the topic")->capture_default_str();
  bool expect_steps = false;
  app.add_flag("--expect-deadline-steps", expect_steps,
               "Fail unless the daemons logged deadlines run in committed steps (with a small "
               "--daemon-arg=--max-deadlines-per-commit=N: the steps themselves under kills)");
  std::vector<std::string> daemon_args;
  app.add_option("--daemon-arg", daemon_args,
                 "An argument for every lifecycled started (repeatable), e.g. "
                 "--daemon-arg=--compact-after-catchup-mb=1");
  CLI11_PARSE(app, argc, argv);

  const auto started = std::chrono::steady_clock::now();
  TempDir dir;
  const std::string topic = UniqueName("crash-events");
  const std::string group = UniqueName("crash");
  auto daemon = [&](bool static_member, std::vector<std::string> env) {
    std::vector<std::string> args = {"--brokers", TestBrokers(), "--events-topic", topic,
                                     "--alerts-topic", topic + ".alerts", "--group", group,
                                     "--data-dir", dir.path() + "/data", "--grpc-listen",
                                     "127.0.0.1:0", "--partitions", std::to_string(partitions),
                                     "--commit-interval-ms", "25", "--commit-every", "2000",
                                     "--tick-interval-s", "0", "--no-alert-publisher"};
    if (static_member) {
      args.push_back("--instance-id");
      args.push_back(group + "-static");
    }
    args.insert(args.end(), daemon_args.begin(), daemon_args.end());
    return std::make_unique<DaemonProcess>(dir.path(), args, std::move(env));
  };

  std::printf("crash harness: %d events over %d customers, %d partitions, %d kills, seed %u, broker %s\n",
              events, customers, partitions, kills, seed, TestBrokers().c_str());
  const std::vector<std::string> log = MessyLog(seed, events, customers);
  std::mt19937 rng(seed * 7919);

  auto d = daemon(true, {});
  if (!d->Start().ok()) {
    std::fprintf(stderr, "lifecycled did not start:\n%s\n", d->LogTail().c_str());
    return 1;
  }
  // Publish in the background, in chunks, so the kills land mid-ingest.
  std::atomic<bool> produce_failed{false};
  std::atomic<size_t> produced{0};
  std::thread producer([&] {
    const size_t chunk = std::max<size_t>(500, log.size() / 200);
    for (size_t i = 0; i < log.size(); i += chunk) {
      std::vector<std::pair<std::string, std::string>> part;
      for (size_t j = i; j < std::min(log.size(), i + chunk); ++j) {
        v1::Event e;
        std::string key = e.ParseFromString(log[j]) ? e.customer_id() : std::to_string(j % 97);
        part.emplace_back(std::move(key), log[j]);
      }
      if (!ProduceAll(topic, part).ok()) produce_failed = true;
      produced += part.size();
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  // An early failure below still waits for the producer, so it reports instead of
  // ending in std::terminate.
  struct JoinAtExit {
    std::thread& t;
    ~JoinAtExit() {
      if (t.joinable()) t.join();
    }
  } join_producer{producer};

  int random_kills = 0, commit_kills = 0, rebalance_kills = 0, restarts = 0;
  for (int k = 0; k < kills; ++k) {
    const int mode = k % 3;
    if (mode == 0) {  // at a random moment
      std::this_thread::sleep_for(std::chrono::milliseconds(200 + rng() % 1500));
      d->Signal(SIGKILL);
      d->Wait();
      ++random_kills;
      d = daemon(true, {});
    } else if (mode == 1) {  // inside a commit: the daemon kills itself there
      d->Signal(SIGKILL);
      d->Wait();
      d = daemon(true, {"LIFECYCLE_FAULT_KILL_IN_COMMIT_PERMILLE=150"});
      if (!d->Start().ok()) {
        std::fprintf(stderr, "restart failed:\n%s\n", d->LogTail().c_str());
        return 1;
      }
      ++restarts;
      const size_t produced_at_start = produced.load();
      const double started_at = Seconds(started);
      int status = 0;
      // Up to 60 s for a commit that kills it; once everything produced is stored there
      // is nothing left to commit (the log was produced before this round came), and
      // the wait ends.
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
      bool caught_up = false;
      for (int polls = 1; !d->Exited(&status) && std::chrono::steady_clock::now() < deadline;
           ++polls) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        if (polls % 50 == 0 && produced.load() == log.size() &&
            WaitForStoredRecords(d->address(), static_cast<int64_t>(log.size()), 1).ok()) {
          caught_up = true;
          break;
        }
      }
      if (d->Running()) {  // nothing left to commit: kill it anyway
        std::fprintf(stderr,
                     "commit-fault run %d (at %.1f s, %zu of %zu events produced then): no "
                     "kill %s; log tail:\n%s\n",
                     k, started_at, produced_at_start, log.size(),
                     caught_up ? "by the time it had stored the whole log" : "in 60 s",
                     d->LogTail().c_str());
        d->Signal(SIGKILL);
        d->Wait();
      } else if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) {
        ++commit_kills;
      } else {
        std::fprintf(stderr, "commit-fault run: exited with status %d; log tail:\n%s\n", status,
                     d->LogTail().c_str());
      }
      d = daemon(true, {});
    } else {  // during a rebalance: a dynamic member joins, and dies while joining
      d->Signal(SIGKILL);
      d->Wait();
      d = daemon(false, {});
      if (!d->Start().ok()) {
        std::fprintf(stderr, "restart failed:\n%s\n", d->LogTail().c_str());
        return 1;
      }
      ++restarts;
      std::this_thread::sleep_for(std::chrono::milliseconds(100 + rng() % 400));
      d->Signal(SIGKILL);
      d->Wait();
      ++rebalance_kills;
      d = daemon(false, {});
    }
    if (!d->Start().ok()) {
      std::fprintf(stderr, "restart failed:\n%s\n", d->LogTail().c_str());
      return 1;
    }
    ++restarts;
  }
  producer.join();
  if (produce_failed) {
    std::fprintf(stderr, "publishing failed\n");
    return 1;
  }
  // The topic's record count (ticks without a key landed on one partition each).
  const int64_t records = static_cast<int64_t>(log.size());
  absl::Status caught_up = WaitForStoredRecords(d->address(), records, 900);
  if (!caught_up.ok()) {
    std::fprintf(stderr, "did not catch up: %s\n%s\n", caught_up.ToString().c_str(), d->LogTail().c_str());
    return 1;
  }
  const double ingest_s = Seconds(started);
  auto oracle = RunOracle(topic, records);
  if (!oracle.ok()) {
    std::fprintf(stderr, "oracle: %s\n", oracle.status().ToString().c_str());
    return 1;
  }
  auto compared = CompareWithOracle(d->address(), *oracle);
  auto alert_ids = AllAlertIds(d->address());
  int64_t applied = 0, rejected = 0, skipped = 0, duplicate = 0;
  if (auto st = GetStatus(d->address()); st.ok()) {
    for (const auto& p : st->partitions()) {
      applied += p.events_applied();
      rejected += p.events_rejected();
      skipped += p.events_skipped();
      duplicate += p.events_duplicate();
    }
  }
  d->Signal(SIGTERM);
  d->Wait();

  std::set<std::string> served;
  if (alert_ids.ok()) {
    served.insert(alert_ids->begin(), alert_ids->end());
  } else {
    std::printf("listing the alerts failed: %s\n", std::string(alert_ids.status().message()).c_str());
  }
  const std::set<std::string> expected(oracle->alert_ids.begin(), oracle->alert_ids.end());
  const size_t dup_alerts = alert_ids.ok() ? alert_ids->size() - served.size() : 0;
  std::printf("records %lld (applied %lld, rejected %lld, skipped %lld, duplicate event ids %lld)\n",
              static_cast<long long>(records), static_cast<long long>(applied),
              static_cast<long long>(rejected), static_cast<long long>(skipped),
              static_cast<long long>(duplicate));
  std::printf("kills %d: %d at random moments, %d inside commits, %d during rebalances "
              "(%d commit-fault runs ended without a kill); %d restarts\n",
              random_kills + commit_kills + rebalance_kills, random_kills, commit_kills,
              rebalance_kills, (kills + 1) / 3 - commit_kills, restarts);
  std::printf("views compared %zu, differing %s\n", compared.ok() ? *compared : 0,
              compared.ok() ? "0" : std::string(compared.status().message()).substr(0, 400).c_str());
  std::printf("alerts: oracle %zu, served %zu, duplicates %zu, missing %zu, extra %zu\n",
              expected.size(), alert_ids.ok() ? alert_ids->size() : 0, dup_alerts,
              static_cast<size_t>(std::count_if(expected.begin(), expected.end(),
                                                [&](const std::string& id) { return !served.count(id); })),
              static_cast<size_t>(std::count_if(served.begin(), served.end(),
                                                [&](const std::string& id) { return !expected.count(id); })));
  // Jumps of the stream whose deadlines ran in committed steps, as the daemons logged
  // them (a restart may tell one jump again).
  int jumps = 0, applied_after_steps = 0;
  for (const auto& f : std::filesystem::directory_iterator(dir.path())) {
    if (f.path().filename().string().rfind("lifecycled-", 0) != 0) continue;
    std::ifstream in(f.path());
    for (std::string line; std::getline(in, line);) {
      if (line.find("running their deadlines in committed steps") != std::string::npos) ++jumps;
      if (line.find("applied after its deadlines ran in") != std::string::npos) ++applied_after_steps;
    }
  }
  std::printf("deadlines run in committed steps: %d jump(s) logged, %d record(s) applied after them\n",
              jumps, applied_after_steps);
  std::printf("time %.1f s (ingest and kills %.1f s)\n", Seconds(started), ingest_s);
  const bool ok = compared.ok() && alert_ids.ok() && dup_alerts == 0 && served == expected &&
                  applied + rejected + skipped + duplicate == records &&
                  (!expect_steps || (jumps > 0 && applied_after_steps > 0));
  std::printf("%s\n", ok ? "RESULT: exact" : "RESULT: MISMATCH");
  return ok ? 0 : 1;
}
