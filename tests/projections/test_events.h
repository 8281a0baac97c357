#pragma once
// Builders of events for tests.

#include <cstdint>
#include <string>

#include "lifecycle/v1/events.pb.h"

namespace lifecycle::testing {

// 2024-01-01T00:00:00Z, a convenient origin for test timelines.
inline constexpr int64_t kT0 = 1704067200;
inline constexpr int64_t kDay = 86400;

v1::Event Registered(const std::string& event_id, const std::string& customer, int64_t at,
                     const std::string& region = "east");
v1::Event Purchase(const std::string& event_id, const std::string& customer, int64_t at,
                   int64_t amount_minor);
v1::Event Service(const std::string& event_id, const std::string& customer, int64_t at,
                  int64_t amount_minor, bool on_schedule = true);
v1::Event Refund(const std::string& event_id, const std::string& customer, int64_t at,
                 int64_t amount_minor);
v1::Event Tick(const std::string& event_id, int64_t at);

std::string Bytes(const v1::Event& e);

}  // namespace lifecycle::testing
