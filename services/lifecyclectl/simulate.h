#pragma once
// A seeded, deterministic generator of a dealership's customer base and its
// history, for demos and benchmarks (lifecyclectl simulate).

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "lifecycle/v1/events.pb.h"

namespace lifecycle::sim {

struct SimOptions {
  int64_t customers = 20000;
  int years = 3;
  uint32_t seed = 1;
  int64_t end_seconds = 1793491200;  // 2026-11-01T00:00:00Z: the history ends here
  // How customers stop coming:
  // - kQuietSpells: 30% go quiet once, 200-800 days after the sale, 15% of them come
  //   back once 400-700 days later. The benchmarks' population (their figures stay
  //   comparable across versions).
  // - kDropout: each customer has an own cadence (the seed's mix of yearly, twice-a-year
  //   and frequent service customers, spread ±35%) and an own probability of leaving for
  //   good after each activity (Beta(1.2, 6), mean 17%), as the MBG/NBD model assumes; 15%
  //   of those who left come back once, 400-700 days later. lifecyclectl simulate's.
  enum class Population { kQuietSpells, kDropout };
  Population population = Population::kQuietSpells;
  // Greetings done (birthday and the default holidays 01-01, 05-01, 10-01): about 60%
  // of those due to customers with a sale, within two days. Off by default: they add
  // about 7 events per customer (the benchmarks' history stays as it was).
  bool greetings = false;
};

// Calls `emit` for every event, customer by customer, each customer's events in time
// order. Returns the number of events.
int64_t Simulate(const SimOptions& options, const std::function<void(const v1::Event&)>& emit);

// One serialized event of a time-ordered history.
struct SerializedEvent {
  int64_t at;                    // occurred_at, seconds
  std::string_view customer_id;  // the Kafka key
  std::string_view bytes;        // lifecycle.v1.Event, serialized
};

// The whole history as one stream in event-time order (ties keep the customer order),
// as a broker would receive it from live systems. Events are kept serialized in one
// buffer, about 130 bytes each (roughly 1.3 GB for 1,000,000 customers); the views
// passed to `emit` are valid during the call only. `progress(generated)` is called
// every 100,000 generated events. Returns the number of events.
int64_t SimulateInTimeOrder(const SimOptions& options,
                            const std::function<void(const SerializedEvent&)>& emit,
                            const std::function<void(int64_t)>& progress = nullptr);

}  // namespace lifecycle::sim
