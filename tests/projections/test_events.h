#pragma once
// Builders of events for tests.

#include <cstdint>
#include <string>
#include <vector>

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

namespace lifecycle::testing {

// More builders, for the domain rules.
v1::Event Lead(const std::string& event_id, const std::string& customer, int64_t at);
v1::Event Lost(const std::string& event_id, const std::string& customer, int64_t at,
               v1::DealLostReason reason, const std::string& competitor = "");
v1::Event VehicleSale(const std::string& event_id, const std::string& customer, int64_t at,
                      int64_t amount_minor, const std::string& order_id);
v1::Event ComplaintOpened(const std::string& event_id, const std::string& customer, int64_t at,
                          const std::string& complaint_id);
v1::Event ComplaintClosed(const std::string& event_id, const std::string& customer, int64_t at,
                          const std::string& complaint_id, bool satisfied = true);
v1::Event Survey(const std::string& event_id, const std::string& customer, int64_t at, int score);
v1::Event Campaign(const std::string& event_id, const std::string& customer, int64_t at,
                   bool brought_prospect = false);
v1::Event Referred(const std::string& event_id, const std::string& customer, int64_t at,
                   bool converted);
v1::Event Contact(const std::string& event_id, const std::string& customer, int64_t at,
                  v1::FollowUpKind kind);
v1::Event Redeem(const std::string& event_id, const std::string& customer, int64_t at,
                 int64_t points);
v1::Event Erase(const std::string& event_id, const std::string& customer, int64_t at);

// A messy log of serialized records: valid events of every kind, out of order,
// duplicated, absurd values, garbage bytes and clock ticks. Deterministic per seed.
std::vector<std::string> MessyLog(uint32_t seed, int n, int customers);

}  // namespace lifecycle::testing
