#include "tests/projections/test_events.h"

#include <algorithm>
#include <random>

namespace lifecycle::testing {
namespace {

v1::Event Envelope(const std::string& event_id, const std::string& customer, int64_t at) {
  v1::Event e;
  e.set_event_id(event_id);
  e.set_customer_id(customer);
  e.mutable_occurred_at()->set_seconds(at);
  e.set_source("test");
  return e;
}

}  // namespace

v1::Event Registered(const std::string& event_id, const std::string& customer, int64_t at,
                     const std::string& region) {
  v1::Event e = Envelope(event_id, customer, at);
  auto* p = e.mutable_customer_registered()->mutable_profile();
  p->set_name("Customer " + customer);
  p->set_region(region);
  return e;
}

v1::Event Purchase(const std::string& event_id, const std::string& customer, int64_t at,
                   int64_t amount_minor) {
  v1::Event e = Envelope(event_id, customer, at);
  e.mutable_purchase()->set_order_id("o-" + event_id);
  e.mutable_purchase()->mutable_amount()->set_amount_minor(amount_minor);
  e.mutable_purchase()->mutable_amount()->set_currency("CNY");
  return e;
}

v1::Event Service(const std::string& event_id, const std::string& customer, int64_t at,
                  int64_t amount_minor, bool on_schedule) {
  v1::Event e = Envelope(event_id, customer, at);
  auto* s = e.mutable_service_visit();
  s->set_visit_id("v-" + event_id);
  s->set_kind(v1::SERVICE_KIND_MAINTENANCE);
  s->mutable_amount()->set_amount_minor(amount_minor);
  s->mutable_amount()->set_currency("CNY");
  s->set_on_schedule(on_schedule);
  return e;
}

v1::Event Refund(const std::string& event_id, const std::string& customer, int64_t at,
                 int64_t amount_minor) {
  v1::Event e = Envelope(event_id, customer, at);
  e.mutable_refund()->set_order_id("o-1");
  e.mutable_refund()->mutable_amount()->set_amount_minor(amount_minor);
  e.mutable_refund()->mutable_amount()->set_currency("CNY");
  return e;
}

v1::Event Tick(const std::string& event_id, int64_t at) {
  v1::Event e = Envelope(event_id, "", at);
  e.mutable_clock_tick()->mutable_now()->set_seconds(at);
  return e;
}

std::string Bytes(const v1::Event& e) { return e.SerializeAsString(); }



v1::Event Lead(const std::string& id, const std::string& c, int64_t at) {
  v1::Event e = Envelope(id, c, at);
  e.mutable_lead_captured()->set_lead_id("L-" + c);
  e.mutable_lead_captured()->set_test_drive(true);
  return e;
}

v1::Event Lost(const std::string& id, const std::string& c, int64_t at, v1::DealLostReason reason,
               const std::string& competitor) {
  v1::Event e = Envelope(id, c, at);
  e.mutable_deal_lost()->set_lead_id("L-" + c);
  e.mutable_deal_lost()->set_reason(reason);
  e.mutable_deal_lost()->set_competitor(competitor);
  return e;
}

v1::Event VehicleSale(const std::string& id, const std::string& c, int64_t at, int64_t amount,
                      const std::string& order_id) {
  v1::Event e = Purchase(id, c, at, amount);
  e.mutable_purchase()->set_order_id(order_id);
  e.mutable_purchase()->set_kind(v1::PURCHASE_KIND_VEHICLE);
  e.mutable_purchase()->set_vehicle_model("SUV X");
  return e;
}

v1::Event ComplaintOpened(const std::string& id, const std::string& c, int64_t at,
                          const std::string& complaint_id) {
  v1::Event e = Envelope(id, c, at);
  e.mutable_complaint()->set_complaint_id(complaint_id);
  e.mutable_complaint()->set_category("waiting time");
  e.mutable_complaint()->set_severity(v1::COMPLAINT_SEVERITY_MEDIUM);
  return e;
}

v1::Event ComplaintClosed(const std::string& id, const std::string& c, int64_t at,
                          const std::string& complaint_id, bool satisfied) {
  v1::Event e = Envelope(id, c, at);
  e.mutable_complaint_resolved()->set_complaint_id(complaint_id);
  e.mutable_complaint_resolved()->set_satisfied(satisfied);
  return e;
}

v1::Event Survey(const std::string& id, const std::string& c, int64_t at, int score) {
  v1::Event e = Envelope(id, c, at);
  e.mutable_satisfaction_survey()->set_score(score);
  return e;
}

v1::Event Campaign(const std::string& id, const std::string& c, int64_t at, bool brought) {
  v1::Event e = Envelope(id, c, at);
  e.mutable_campaign_participation()->set_campaign_id("CAMP");
  e.mutable_campaign_participation()->set_attended(!brought);
  e.mutable_campaign_participation()->set_brought_prospect(brought);
  return e;
}

v1::Event Referred(const std::string& id, const std::string& c, int64_t at, bool converted) {
  v1::Event e = Envelope(id, c, at);
  e.mutable_referral()->set_referred_customer_id("R-" + id);
  e.mutable_referral()->set_converted(converted);
  return e;
}

v1::Event Contact(const std::string& id, const std::string& c, int64_t at,
                  v1::FollowUpKind kind) {
  v1::Event e = Envelope(id, c, at);
  e.mutable_follow_up_contact()->set_kind(kind);
  e.mutable_follow_up_contact()->set_outcome(v1::FOLLOW_UP_OUTCOME_REACHED);
  return e;
}

v1::Event Redeem(const std::string& id, const std::string& c, int64_t at, int64_t points) {
  v1::Event e = Envelope(id, c, at);
  e.mutable_points_redeemed()->set_points(points);
  return e;
}

v1::Event Erase(const std::string& id, const std::string& c, int64_t at) {
  v1::Event e = Envelope(id, c, at);
  e.mutable_customer_erased()->set_reason("request");
  return e;
}

// A generator of messy logs: valid events of every kind, out of order, duplicated,
// absurd values, garbage bytes, and clock ticks.
std::vector<std::string> MessyLog(uint32_t seed, int n, int customers) {
  constexpr int64_t D = kDay;
  std::mt19937 rng(seed);
  std::vector<std::string> log;
  std::vector<v1::Event> sent;
  int64_t t = kT0;
  // The log spans about three years whatever its length (and never leaves 2000..2099).
  const int64_t step = std::max<int64_t>(60, std::min<int64_t>(6 * D, 2 * 1100 * D / std::max(n, 1)));
  for (int i = 0; i < n; ++i) {
    const std::string id = "e" + std::to_string(seed) + "-" + std::to_string(i);
    const std::string c = "c" + std::to_string(rng() % customers);
    t += static_cast<int64_t>(rng() % step);
    int64_t at = t - static_cast<int64_t>(rng() % 4 == 0 ? rng() % (60 * D) : 0);  // out of order
    const int64_t amount = rng() % 10 == 0 ? 900000000000LL : rng() % 300000;
    v1::Event e;
    switch (rng() % 16) {
      case 0: e = Registered(id, c, at, rng() % 2 ? "east" : "north"); break;
      case 1: e = Lead(id, c, at); break;
      case 2: e = Lost(id, c, at, static_cast<v1::DealLostReason>(rng() % 7)); break;
      case 3: e = Purchase(id, c, at, amount); break;
      case 4: e = VehicleSale(id, c, at, amount, "O" + std::to_string(rng() % 5)); break;
      case 5: e = Service(id, c, at, amount % 100000, rng() % 3 != 0); break;
      case 6: e = Refund(id, c, at, amount); break;
      case 7: e = ComplaintOpened(id, c, at, "K" + std::to_string(rng() % 3)); break;
      case 8: e = ComplaintClosed(id, c, at, "K" + std::to_string(rng() % 3)); break;
      case 9: e = Survey(id, c, at, static_cast<int>(rng() % 11)); break;
      case 10: e = Campaign(id, c, at, rng() % 2); break;
      case 11: e = Referred(id, c, at, rng() % 2); break;
      case 12: e = Contact(id, c, at, static_cast<v1::FollowUpKind>(rng() % 7)); break;
      case 13: e = Redeem(id, c, at, 1 + rng() % 5000); break;
      case 14: e = Tick("tick-" + id, t); break;
      default: e = rng() % 2 ? Erase(id, c, at) : Purchase(id, c, 4000000000LL, 5); break;
    }
    log.push_back(e.SerializeAsString());
    sent.push_back(e);
    if (rng() % 15 == 0) log.push_back(sent[rng() % sent.size()].SerializeAsString());  // dup
    if (rng() % 40 == 0) log.push_back(std::string("\x12\x34garbage", 9));
  }
  return log;
}

}  // namespace lifecycle::testing
