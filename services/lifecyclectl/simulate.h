#pragma once
// A seeded, deterministic generator of a dealership's customer base and its
// history, for demos and benchmarks (lifecyclectl simulate).

#include <cstdint>
#include <functional>
#include <string>

#include "lifecycle/v1/events.pb.h"

namespace lifecycle::sim {

struct SimOptions {
  int64_t customers = 20000;
  int years = 3;
  uint32_t seed = 1;
  int64_t end_seconds = 1793491200;  // 2026-11-01T00:00:00Z: the history ends here
};

// Calls `emit` for every event, customer by customer, each customer's events in time
// order. Returns the number of events.
int64_t Simulate(const SimOptions& options, const std::function<void(const v1::Event&)>& emit);

}  // namespace lifecycle::sim
