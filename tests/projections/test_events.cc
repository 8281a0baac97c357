#include "tests/projections/test_events.h"

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

}  // namespace lifecycle::testing
