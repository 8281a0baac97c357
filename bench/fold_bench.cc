// The pure fold in-process, one thread: decode -> validate -> fold -> evaluate, with a
// commit of the pending batch into an in-memory store every --commit-every records.
// Prints events/s (per core: it runs on one thread) and the settings.
//
//   fold_bench [--customers N] [--commit-every N] [--seed N]
#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "CLI/CLI.hpp"
#include "projections/projector.h"
#include "services/lifecyclectl/simulate.h"

namespace {

namespace v1 = lifecycle::v1;
using lifecycle::projections::PartitionProjector;

// Committed state in memory (what the RocksDB store holds, serialized, without RocksDB).
class MemoryReader : public lifecycle::projections::StateReader {
 public:
  absl::StatusOr<std::optional<v1::CustomerState>> LoadCustomer(std::string_view id) override {
    auto it = states.find(std::string(id));
    if (it == states.end()) return std::optional<v1::CustomerState>();
    std::optional<v1::CustomerState> state(std::in_place);
    if (!state->ParseFromString(it->second)) return absl::DataLossError("state does not parse");
    return state;
  }
  absl::Status ScanDue(int32_t, const std::pair<int64_t, std::string>& after, int64_t up_to,
                       std::vector<std::pair<int64_t, std::string>>* due,
                       int64_t* next_after) override {
    *next_after = lifecycle::projections::kNever;
    for (auto it = this->due.upper_bound(after); it != this->due.end(); ++it) {
      if (it->first > up_to) {
        *next_after = it->first;
        break;
      }
      due->push_back(*it);
    }
    return absl::OkStatus();
  }
  absl::StatusOr<std::map<std::string, v1::AggregateValue>> LoadAggregates(int32_t) override {
    return std::map<std::string, v1::AggregateValue>();
  }
  void Commit(const lifecycle::projections::PendingBatch& b) {
    for (const auto& c : b.customers) {
      const std::string& id = c.state->view().customer_id();
      c.state->SerializeToString(&states[id]);
      if (c.before.due != lifecycle::projections::kNever) due.erase({c.before.due, id});
      if (c.after.due != lifecycle::projections::kNever) due.insert({c.after.due, id});
    }
  }
  std::unordered_map<std::string, std::string> states;  // serialized, as the store keeps them
  std::set<std::pair<int64_t, std::string>> due;
};

}  // namespace

int main(int argc, char** argv) {
  lifecycle::sim::SimOptions sim;
  sim.customers = 50000;
  // As lifecycled replays a backlog: commits every 50,000 records (its catch-up
  // setting) and a state cache of 30,000 customers (its default).
  int commit_every = 50000;
  size_t cache = 30000;
  CLI::App app{"fold_bench — the pure fold's throughput on one core"};
  app.add_option("--customers", sim.customers, "Simulated customers")->capture_default_str();
  app.add_option("--commit-every", commit_every, "Records per commit")->capture_default_str();
  app.add_option("--seed", sim.seed, "Simulation seed")->capture_default_str();
  app.add_option("--cache", cache, "Customer states kept in memory across commits")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  // The records, serialized, in event-time order, in one buffer.
  std::string buffer;
  std::vector<std::pair<size_t, size_t>> spans;
  std::fprintf(stderr, "fold_bench: generating %lld customers...\n",
               static_cast<long long>(sim.customers));
  lifecycle::sim::SimulateInTimeOrder(sim, [&](const lifecycle::sim::SerializedEvent& e) {
    spans.emplace_back(buffer.size(), e.bytes.size());
    buffer.append(e.bytes);
  });
  std::vector<std::string_view> records;
  records.reserve(spans.size());
  for (const auto& [off, len] : spans) records.emplace_back(buffer.data() + off, len);
  std::fprintf(stderr, "fold_bench: folding %zu events...\n", records.size());
  const lifecycle::projections::DomainConfig config;
  MemoryReader reader;
  v1::PartitionMeta meta;
  meta.set_offset(-1);
  PartitionProjector proj(&config, meta, &reader, cache);
  const auto t0 = std::chrono::steady_clock::now();
  int64_t offset = 0;
  for (const auto& r : records) {
    if (!proj.Apply(offset++, r).ok()) return 1;
    if (offset % commit_every == 0) {
      reader.Commit(proj.Pending());
      proj.MarkCommitted();
    }
  }
  reader.Commit(proj.Pending());
  proj.MarkCommitted();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  utsname un{};
  uname(&un);
  std::printf("fold_bench: %zu events, %lld customers (time-ordered simulation), commit every %d, "
              "cache %zu, 1 thread; %u cores, %s %s\n",
              records.size(), static_cast<long long>(sim.customers), commit_every, cache,
              std::thread::hardware_concurrency(), un.sysname, un.release);
  std::printf("fold: %.2f s, %.0f events/s per core, %lld evaluations, cache hits %lld misses "
              "%lld, peak RSS %ld MiB\n",
              s, records.size() / s, static_cast<long long>(proj.evaluations()),
              static_cast<long long>(proj.cache_hits()), static_cast<long long>(proj.cache_misses()),
              ru.ru_maxrss / 1024);
  return 0;
}
