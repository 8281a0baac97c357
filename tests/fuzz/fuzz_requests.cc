// Fuzz target: the gRPC request validation and the opaque tokens. The first byte
// picks a request type; the rest is parsed as that message (or as a token).
// Validation must never crash, and a plan it accepts must be usable.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "google/protobuf/stubs/logging.h"

#include "lifecycle/v1/service.pb.h"
#include "projections/validate.h"
#include "services/api/server.h"
#include "services/api/validation.h"

namespace v1 = lifecycle::v1;
using namespace lifecycle::api;  // NOLINT

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Malformed strings are expected here: keep protobuf's parse complaints quiet.
  static const bool quiet = [] {
    google::protobuf::SetLogHandler([](google::protobuf::LogLevel, const char*, int, const std::string&) {});
    return true;
  }();
  (void)quiet;
  if (size == 0) return 0;
  const std::string rest(reinterpret_cast<const char*>(data + 1), size - 1);
  static const ApiOptions options;
  switch (data[0] % 6) {
    case 0: {
      v1::ListCustomersRequest req;
      if (!req.ParseFromString(rest)) return 0;
      ListPlan plan;
      if (PlanListCustomers(req, options, &plan).ok()) {
        if (plan.page_size <= 0 || plan.page_size > options.max_page_size) std::abort();
        if (plan.ranked) {
          // A ranked listing: its position comes from the token, if any.
          if (!req.page_token().empty() && plan.rank.after_id.empty()) std::abort();
        } else {
          if (plan.listing.prefix.empty()) std::abort();
          if (!plan.after.empty() && plan.after.rfind(plan.listing.prefix, 0) != 0) std::abort();
        }
      }
      break;
    }
    case 1: {
      v1::SubscribeRequest req;
      if (!req.ParseFromString(rest)) return 0;
      CheckAlertFilters(req.kinds(), req.min_severity()).ok();
      CheckFilter("region", req.region()).ok();
      auto c = DecodeAlertCursor(req.cursor());
      if (c.ok()) {
        auto again = DecodeAlertCursor(EncodeAlertCursor(*c));
        if (!again.ok() || *again != *c) std::abort();  // a cursor round-trips
      }
      break;
    }
    case 2: {
      v1::ListAlertsRequest req;
      if (!req.ParseFromString(rest)) return 0;
      int page_size = 0;
      CheckAlertFilters(req.kinds(), req.min_severity()).ok();
      if (CheckPageSize(req.page_size(), options, &page_size).ok() &&
          (page_size <= 0 || page_size > options.max_page_size)) {
        std::abort();
      }
      lifecycle::projections::ValidateCustomerId(req.customer_id()).ok();
      break;
    }
    case 3: {
      v1::PublishEventsRequest req;
      if (!req.ParseFromString(rest)) return 0;
      for (const auto& e : req.events()) lifecycle::projections::ValidateEvent(e).ok();
      break;
    }
    case 4: {
      v1::GetCustomerRequest req;
      if (!req.ParseFromString(rest)) return 0;
      lifecycle::projections::ValidateCustomerId(req.customer_id()).ok();
      break;
    }
    default: {  // tokens straight from the wire
      std::vector<std::string> parts;
      DecodeToken(rest, 2, &parts);
      DecodeAlertCursor(rest).ok();
      break;
    }
  }
  return 0;
}
