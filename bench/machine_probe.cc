// machine_probe: how fast this machine is right now, apart from the project's code, so
// that benchmark figures taken at different times can be told apart from the machine's
// own drift (a shared virtual machine here runs the same binary 1.5-2.5 times slower on
// some hours than on others). On one thread:
//   - memory: dependent loads in a random cycle over a buffer far larger than the caches
//     (each load waits for the one before, as the fold's scattered reads of records do);
//   - compute: a chain of integer multiply-and-mix steps that stays in registers.
// Each is run --rounds times; the best round and the median are printed.
//
//   machine_probe [--mib 256] [--rounds 5]
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <numeric>
#include <random>
#include <vector>

#include "CLI/CLI.hpp"

namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// A single cycle through every slot in random order (Sattolo's shuffle), so each load's
// address is the value the one before returned and nothing can be fetched ahead.
std::vector<uint32_t> RandomCycle(size_t n) {
  std::vector<uint32_t> next(n);
  std::iota(next.begin(), next.end(), 0u);
  std::mt19937_64 rng(42);
  for (size_t i = n - 1; i > 0; --i) {
    std::uniform_int_distribution<size_t> pick(0, i - 1);
    std::swap(next[i], next[pick(rng)]);
  }
  return next;
}

// Nanoseconds a dependent load, over `loads` loads.
double MemoryRound(const std::vector<uint32_t>& next, size_t loads, uint32_t* sink) {
  uint32_t at = 0;
  const auto t0 = Clock::now();
  for (size_t i = 0; i < loads; ++i) at = next[at];
  const auto t1 = Clock::now();
  *sink += at;
  return Seconds(t0, t1) * 1e9 / static_cast<double>(loads);
}

// Nanoseconds a step of a dependent multiply-xorshift chain.
double ComputeRound(size_t steps, uint64_t* sink) {
  uint64_t x = 0x9E3779B97F4A7C15ull ^ *sink;
  const auto t0 = Clock::now();
  for (size_t i = 0; i < steps; ++i) {
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 31;
  }
  const auto t1 = Clock::now();
  *sink += x;
  return Seconds(t0, t1) * 1e9 / static_cast<double>(steps);
}

struct Summary {
  double best, median;
};

Summary Summarize(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return {v.front(), v[v.size() / 2]};
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"How fast this machine is now, apart from the project's code (one thread)"};
  int mib = 256;
  int rounds = 5;
  app.add_option("--mib", mib, "Memory the dependent loads range over")
      ->capture_default_str()
      ->check(CLI::Range(16, 8192));
  app.add_option("--rounds", rounds, "Rounds of each measurement")
      ->capture_default_str()
      ->check(CLI::Range(1, 100));
  CLI11_PARSE(app, argc, argv);

  const size_t slots = static_cast<size_t>(mib) << 20 >> 2;
  const std::vector<uint32_t> next = RandomCycle(slots);
  uint32_t sink32 = 0;
  uint64_t sink64 = 0;
  MemoryRound(next, slots / 4, &sink32);  // pages touched, the TLB warm
  std::vector<double> memory, compute;
  for (int r = 0; r < rounds; ++r) {
    memory.push_back(MemoryRound(next, 20'000'000, &sink32));
    compute.push_back(ComputeRound(200'000'000, &sink64));
  }
  const Summary m = Summarize(memory), c = Summarize(compute);
  std::printf(
      "machine probe (one thread, %d rounds): a dependent load over %d MiB %.1f ns (median "
      "%.1f), a multiply-xorshift step %.3f ns (median %.3f)\n",
      rounds, mib, m.best, m.median, c.best, c.median);
  volatile uint64_t keep = sink32 ^ sink64;  // the loops' results are used: not optimized out
  (void)keep;
  return 0;
}
