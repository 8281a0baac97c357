// Builds a view store from a simulated history without Kafka, and dumps a store's
// every view, alert, counter, listing-index entry and partition meta as JSON lines,
// so two builds of the fold can be compared on the same history (the lines come in one
// order — metas, customers by key, each partition's alerts by sequence, counters, index
// entries — so `cmp` or `diff` the two files).
//
//   view_dump build --dir D [--customers N] [--seed N] [--partitions P] [--commit-every N]
//                   [--catching-up] [--index-out FILE] [--rankers R --ranked-from N]
//   view_dump dump  --dir D --out FILE
//   view_dump stats --dir D
//   view_dump reads --dir D [--customers N] [--count N] [--seed N]
//
// reads: the store's side of GetCustomer without gRPC — random customers (ids C100000..,
// as bench/query_bench asks for) read one after another on one thread, as the API does
// (ViewStore::ReadCustomerWithMeta); prints the time and CPU time per read.
//
// build: the history of `lifecyclectl simulate --order time` is folded through the
// same PartitionProjector and ViewStore that lifecycled uses (one projector per
// partition; a customer's partition is an FNV-1a hash of its id), committing every
// --commit-every records in one batch, as lifecycled does while catching up.
// With --rankers, R threads list the riskiest customers (ViewStore::Rank, as
// ListCustomers with --min-churn-risk 0.5 --order churn-risk) back to back from the
// --ranked-from-th event on, and the commits made meanwhile are timed: what a dashboard
// listing churn risk costs the fold's commits.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <ctime>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "bench/stats.h"
#include "google/protobuf/util/json_util.h"
#include "projections/projector.h"
#include "services/lifecyclectl/simulate.h"
#include "services/store/store.h"

namespace {

namespace v1 = lifecycle::v1;
using lifecycle::projections::PartitionProjector;
using lifecycle::store::ViewStore;

int Fail(const std::string& what) {
  std::fprintf(stderr, "view_dump: %s\n", what.c_str());
  return 1;
}

uint32_t PartitionOf(std::string_view id, int partitions) {
  uint32_t h = 2166136261u;
  for (unsigned char c : id) {
    h ^= c;
    h *= 16777619u;
  }
  return h % static_cast<uint32_t>(partitions);
}

std::string Json(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::util::JsonPrintOptions o;
  o.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(m, &out, o);  // our own messages: always ok
  return out;
}

// Writes the listing indexes' entries (ScanKeys of x/) as JSON lines; how many.
absl::StatusOr<int64_t> WriteIndex(ViewStore& store, std::ostream& out) {
  int64_t n = 0;
  for (std::string after;;) {
    auto keys = store.ScanKeys("x/", after, "", 65536);
    if (!keys.ok()) return keys.status();
    for (const auto& k : *keys) out << "{\"index\":\"" << k << "\"}\n";
    n += static_cast<int64_t>(keys->size());
    if (keys->size() < 65536) return n;
    after = keys->back();
  }
}

// Threads ranking customers as a dashboard's churn-risk listing does, back to back,
// each call timed, until stopped.
class Rankers {
 public:
  Rankers(ViewStore* store, int threads) : times_(threads), ms_(threads) {
    for (int t = 0; t < threads; ++t) {
      threads_.emplace_back([this, store, t] {
        lifecycle::store::ListingIndex::RankQuery q;
        q.min_churn_risk = 0.5;
        // As of a moment after the simulated history, in every partition.
        times_[t].assign(1024, 1'800'000'000);
        q.stream_times = &times_[t];
        while (!stop_.load()) {
          const auto t0 = std::chrono::steady_clock::now();
          auto ranked = store->Rank(q);
          ms_[t].push_back(
              std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
          if (!ranked.ok()) failed_.store(true);
        }
      });
    }
  }
  // Stops and joins the threads; every call's time in ms, or an error.
  absl::StatusOr<std::vector<double>> Stop() {
    stop_.store(true);
    for (auto& t : threads_) t.join();
    if (failed_.load()) return absl::InternalError("a ranking failed");
    std::vector<double> all;
    for (const auto& m : ms_) all.insert(all.end(), m.begin(), m.end());
    return all;
  }

 private:
  std::vector<std::vector<int64_t>> times_;
  std::vector<std::vector<double>> ms_;
  std::atomic<bool> stop_{false}, failed_{false};
  std::vector<std::thread> threads_;
};

void PrintTimes(const char* what, const std::vector<double>& ms) {
  using lifecycle::bench::Percentile;
  std::printf("%s: %zu, p50 %.3f ms, p99 %.3f ms, max %.3f ms\n", what, ms.size(),
              Percentile(ms, 0.5), Percentile(ms, 0.99), Percentile(ms, 1.0));
}

int Build(const std::string& dir, const lifecycle::sim::SimOptions& sim, int partitions,
          int commit_every, bool catching_up, const std::string& index_out, int rankers,
          int64_t ranked_from) {
  auto store = ViewStore::Open(dir);
  if (!store.ok()) return Fail(std::string(store.status().message()));
  // As a daemon's rebuild: the store tuned for a catch-up, the listing indexes left
  // alone once it has written enough, and built again when it ends.
  if (catching_up) {
    if (absl::Status s = (*store)->SetCatchingUp(true); !s.ok()) return Fail(std::string(s.message()));
  }
  lifecycle::store::StoreStateReader reader(store->get());
  const lifecycle::projections::DomainConfig config;
  std::vector<std::unique_ptr<PartitionProjector>> proj;
  std::vector<int64_t> next_offset(partitions, 0);
  for (int p = 0; p < partitions; ++p) {
    auto meta = (*store)->ReadMeta(p);
    if (!meta.ok()) return Fail(std::string(meta.status().message()));
    if (meta->offset() >= 0) return Fail("the store is not empty: build into a new directory");
    proj.push_back(std::make_unique<PartitionProjector>(&config, *meta, &reader));
  }
  std::unique_ptr<Rankers> ranking;
  std::vector<double> commit_ms;  // of the commits from ranked_from on
  auto commit = [&]() -> bool {
    std::vector<lifecycle::projections::PendingBatch> batches;
    for (auto& pr : proj) {
      if (pr->HasPending()) batches.push_back(pr->Pending());
    }
    const auto c0 = std::chrono::steady_clock::now();
    if (absl::Status s = (*store)->Commit(batches); !s.ok()) {
      Fail(std::string(s.message()));
      return false;
    }
    if (ranked_from > 0 && ranking) {
      commit_ms.push_back(
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - c0).count());
    }
    for (auto& pr : proj) {
      if (pr->HasPending()) pr->MarkCommitted();
    }
    return true;
  };
  const auto t0 = std::chrono::steady_clock::now();
  int64_t n = 0;
  bool ok = true;
  lifecycle::sim::SimulateInTimeOrder(sim, [&](const lifecycle::sim::SerializedEvent& e) {
    if (!ok) return;
    const uint32_t p = PartitionOf(e.customer_id, partitions);
    auto r = proj[p]->Apply(next_offset[p]++, e.bytes);
    if (!r.ok()) {
      ok = false;
      Fail(std::string(r.status().message()));
      return;
    }
    if (++n % commit_every == 0) ok = commit();
    if (ranked_from > 0 && n == ranked_from) ranking = std::make_unique<Rankers>(store->get(), rankers);
    if (n % 1000000 == 0) std::fprintf(stderr, "view_dump: %lld events folded\n", (long long)n);
  });
  if (!ok || !commit()) return 1;
  if (ranking) {
    auto ranked_ms = ranking->Stop();
    if (!ranked_ms.ok()) return Fail(std::string(ranked_ms.status().message()));
    std::printf("view_dump: from event %lld on, %d thread(s) ranking the riskiest customers:\n",
                static_cast<long long>(ranked_from), rankers);
    PrintTimes("  commits (each of the partitions' batches)", commit_ms);
    PrintTimes("  rankings (min churn risk 0.5, first 50)", *ranked_ms);
  }
  if (catching_up) {
    if (absl::Status s = (*store)->SetCatchingUp(false); !s.ok()) return Fail(std::string(s.message()));
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("view_dump: %lld events of %lld customers into %d partitions in %.1f s\n",
              static_cast<long long>(n), static_cast<long long>(sim.customers), partitions, s);
  if (!index_out.empty()) {
    // The indexes as this store holds them in memory (a listing waits for a build under
    // way), to compare with those a later open derives from the records.
    std::ofstream out(index_out);
    auto entries = WriteIndex(**store, out);
    if (!entries.ok()) return Fail(std::string(entries.status().message()));
    out.close();
    if (!out) return Fail("write failed: " + index_out);
    std::printf("view_dump: %lld index entries, as held after the build -> %s\n",
                static_cast<long long>(*entries), index_out.c_str());
  }
  return 0;
}

int Dump(const std::string& dir, const std::string& out_path) {
  lifecycle::store::StoreOptions o;
  o.create_if_missing = false;
  auto store = ViewStore::Open(dir, o);
  if (!store.ok()) return Fail(std::string(store.status().message()));
  std::ofstream out(out_path);
  if (!out) return Fail("cannot write " + out_path);
  auto metas = (*store)->ListMeta();
  if (!metas.ok()) return Fail(std::string(metas.status().message()));
  int64_t customers = 0, alerts = 0, index = 0;
  for (const auto& m : *metas) out << "{\"meta\":" << Json(m) << "}\n";
  absl::Status s = (*store)->ForEachCustomer([&](const v1::CustomerView& view) {
    out << "{\"customer\":" << Json(view) << "}\n";
    ++customers;
  });
  if (!s.ok()) return Fail(std::string(s.message()));
  for (const auto& m : *metas) {
    for (int64_t seq = 0;;) {
      auto page = (*store)->ReadAlerts(m.partition(), seq, 4096);
      if (!page.ok()) return Fail(std::string(page.status().message()));
      for (const auto& a : *page) {
        out << "{\"alert\":" << Json(a) << "}\n";
        seq = a.sequence() + 1;
        ++alerts;
      }
      if (page->size() < 4096) break;
    }
    auto counters = (*store)->ReadAggregates(m.partition());
    if (!counters.ok()) return Fail(std::string(counters.status().message()));
    for (const auto& [k, v] : *counters) {
      out << "{\"counter\":{\"partition\":" << m.partition() << ",\"key\":\"" << k
          << "\",\"value\":" << Json(v) << "}}\n";
    }
  }
  auto entries = WriteIndex(**store, out);
  if (!entries.ok()) return Fail(std::string(entries.status().message()));
  index = *entries;
  out.close();
  std::printf("view_dump: %zu partitions, %lld customers, %lld alerts, %lld index entries -> %s\n",
              metas->size(), static_cast<long long>(customers), static_cast<long long>(alerts),
              static_cast<long long>(index), out_path.c_str());
  return out ? 0 : Fail("write failed: " + out_path);
}

// Keys and bytes (key + value) per key family (the first letter of the key).
int Stats(const std::string& dir) {
  lifecycle::store::StoreOptions o;
  o.create_if_missing = false;
  auto store = ViewStore::Open(dir, o);
  if (!store.ok()) return Fail(std::string(store.status().message()));
  std::map<std::string, std::pair<int64_t, int64_t>> families;
  absl::Status s = (*store)->ForEachKey([&](std::string_view k, std::string_view v) {
    // c/<id> NUL <x>: a customer's profile or history, by <x>.
    const size_t nul = k.find('\0');
    std::string family = k.empty() ? "?" : std::string(1, k[0]) + "/";
    if (nul != std::string_view::npos && nul + 1 < k.size()) family += std::string("<id>.") + k[nul + 1];
    auto& f = families[family];
    ++f.first;
    f.second += static_cast<int64_t>(k.size() + v.size());
  });
  if (!s.ok()) return Fail(std::string(s.message()));
  std::printf("family       keys        bytes (key + value, uncompressed)\n");
  for (const auto& [c, f] : families) {
    std::printf("%-10s %12lld %12lld\n", c.c_str(), static_cast<long long>(f.first),
                static_cast<long long>(f.second));
  }
  return 0;
}

// Random customers' views read one at a time, as GetCustomer reads them.
int Reads(const std::string& dir, int64_t customers, int64_t count, uint64_t seed) {
  lifecycle::store::StoreOptions o;
  o.create_if_missing = false;
  auto store = ViewStore::Open(dir, o);
  if (!store.ok()) return Fail(std::string(store.status().message()));
  std::mt19937_64 rng(seed);
  int64_t found = 0;
  auto one = [&] {
    const std::string id = "C" + std::to_string(100000 + static_cast<int64_t>(rng() % customers));
    auto read = (*store)->ReadCustomerWithMeta(id);
    if (!read.ok()) return Fail(std::string(read.status().message()));
    found += read->has_value() ? 1 : 0;
    return 0;
  };
  for (int64_t i = 0; i < std::min<int64_t>(count / 10, 20000); ++i) {  // warm-up
    if (one() != 0) return 1;
  }
  found = 0;
  const auto t0 = std::chrono::steady_clock::now();
  const std::clock_t c0 = std::clock();
  for (int64_t i = 0; i < count; ++i) {
    if (one() != 0) return 1;
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double cpu = static_cast<double>(std::clock() - c0) / CLOCKS_PER_SEC;
  std::printf("reads: %lld customers read (%lld found) of %lld, one thread: %.2f us per read, "
              "%.2f us CPU per read (all threads)\n",
              static_cast<long long>(count), static_cast<long long>(found),
              static_cast<long long>(customers), s * 1e6 / count, cpu * 1e6 / count);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"view_dump — fold a simulated history into a store; dump a store as JSON lines"};
  app.require_subcommand(1);
  std::string dir, out;
  lifecycle::sim::SimOptions sim;
  sim.customers = 50000;
  int partitions = 8, commit_every = 50000;
  auto* build = app.add_subcommand("build", "Fold a simulated history into a new store");
  build->add_option("--dir", dir, "Store directory (must not hold a store)")->required();
  build->add_option("--customers", sim.customers, "Simulated customers")->capture_default_str();
  build->add_option("--seed", sim.seed, "Simulation seed")->capture_default_str();
  build->add_option("--partitions", partitions, "Partitions")->capture_default_str()->check(
      CLI::Range(1, 1024));
  build->add_option("--commit-every", commit_every, "Records per commit")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  bool catching_up = false;
  std::string index_out;
  build->add_flag("--catching-up", catching_up,
                  "Fold as a daemon's catch-up: the store's catch-up tuning, and the listing "
                  "indexes left alone after 256 MiB and built again at the end");
  build->add_option("--index-out", index_out,
                    "Write the listing index entries as the store holds them after the build "
                    "(JSON lines, as dump writes them)");
  auto* dump = app.add_subcommand("dump", "Write every view, alert, counter and index entry");
  dump->add_option("--dir", dir, "Store directory")->required();
  dump->add_option("--out", out, "Output file (JSON lines)")->required();
  auto* stats = app.add_subcommand("stats", "Keys and bytes per key family");
  stats->add_option("--dir", dir, "Store directory")->required();
  auto* reads = app.add_subcommand("reads", "Time random customers' views read as GetCustomer reads them");
  reads->add_option("--dir", dir, "Store directory")->required();
  int64_t read_count = 200000;
  reads->add_option("--customers", sim.customers, "Customers to pick from (C100000..)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  reads->add_option("--count", read_count, "Reads")->capture_default_str()->check(CLI::PositiveNumber);
  reads->add_option("--seed", sim.seed, "Seed of the random choice")->capture_default_str();
  int rankers = 0;
  int64_t ranked_from = 0;
  build->add_option("--rankers", rankers,
                    "Threads listing the riskiest customers back to back from --ranked-from on "
                    "(the commits made meanwhile are timed; 0 times them with none)")
      ->capture_default_str()
      ->check(CLI::Range(0, 64));
  build->add_option("--ranked-from", ranked_from,
                    "The event from which --rankers rank and commits are timed (0: never)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  CLI11_PARSE(app, argc, argv);
  if (reads->parsed()) return Reads(dir, sim.customers, read_count, sim.seed);
  if (build->parsed()) return Build(dir, sim, partitions, commit_every, catching_up, index_out, rankers,
                                    ranked_from);
  if (stats->parsed()) return Stats(dir);
  return Dump(dir, out);
}
