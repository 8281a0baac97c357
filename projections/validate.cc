#include "projections/validate.h"

#include "absl/strings/str_cat.h"

namespace lifecycle::projections {
namespace {

using lifecycle::v1::Event;
using lifecycle::v1::Money;

absl::Status Invalid(absl::string_view field, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", what));
}

absl::Status CheckMoney(const Money& money, absl::string_view field, bool required) {
  if (money.amount_minor() < 0) {
    return Invalid(absl::StrCat(field, ".amount_minor"),
                   absl::StrCat("must not be negative (got ", money.amount_minor(), ")"));
  }
  if (required && money.amount_minor() == 0 && money.currency().empty()) {
    return Invalid(field, "is missing");
  }
  const std::string& c = money.currency();
  if (!c.empty()) {
    bool ok = c.size() == 3;
    for (char ch : c) ok = ok && ch >= 'A' && ch <= 'Z';
    if (!ok) {
      return Invalid(absl::StrCat(field, ".currency"),
                     absl::StrCat("must be a 3-letter ISO 4217 code (got \"", c, "\")"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckPayload(const Event& e) {
  switch (e.payload_case()) {
    case Event::kPurchase:
      return CheckMoney(e.purchase().amount(), "purchase.amount", /*required=*/true);
    case Event::kRefund:
      return CheckMoney(e.refund().amount(), "refund.amount", /*required=*/true);
    case Event::kServiceVisit:
      if (e.service_visit().odometer_km() < 0) {
        return Invalid("service_visit.odometer_km", "must not be negative");
      }
      return CheckMoney(e.service_visit().amount(), "service_visit.amount", false);
    case Event::kSatisfactionSurvey:
      if (e.satisfaction_survey().score() < 0 || e.satisfaction_survey().score() > 10) {
        return Invalid("satisfaction_survey.score",
                       absl::StrCat("must be 0..10 (got ", e.satisfaction_survey().score(), ")"));
      }
      return absl::OkStatus();
    case Event::kPointsRedeemed:
      if (e.points_redeemed().points() <= 0) {
        return Invalid("points_redeemed.points", "must be positive");
      }
      return absl::OkStatus();
    case Event::kComplaint:
      if (e.complaint().complaint_id().empty()) {
        return Invalid("complaint.complaint_id", "is empty");
      }
      return absl::OkStatus();
    case Event::kComplaintResolved:
      if (e.complaint_resolved().complaint_id().empty()) {
        return Invalid("complaint_resolved.complaint_id", "is empty");
      }
      return absl::OkStatus();
    case Event::PAYLOAD_NOT_SET:
      return Invalid("payload", "is not set");
    default:
      return absl::OkStatus();
  }
}

}  // namespace

absl::Status ValidateCustomerId(absl::string_view id, absl::string_view field) {
  if (id.empty()) return Invalid(field, "is empty");
  if (id.size() > kMaxCustomerIdBytes) {
    return Invalid(field, absl::StrCat("is ", id.size(), " bytes; at most ",
                                       kMaxCustomerIdBytes, " are allowed"));
  }
  for (unsigned char c : id) {
    // The store keys a customer's history after its id and a NUL byte.
    if (c < 0x20 || c == 0x7f) return Invalid(field, "contains a control character");
  }
  return absl::OkStatus();
}

absl::Status ValidateEvent(const Event& e) {
  if (e.event_id().empty()) return Invalid("event_id", "is empty");
  if (e.event_id().size() > kMaxEventIdBytes) {
    return Invalid("event_id", absl::StrCat("is longer than ", kMaxEventIdBytes, " bytes"));
  }
  if (e.payload_case() == Event::kClockTick) {
    if (!e.customer_id().empty()) return Invalid("customer_id", "must be empty on a ClockTick");
  } else if (absl::Status s = ValidateCustomerId(e.customer_id()); !s.ok()) {
    return s;
  }
  if (!e.has_occurred_at()) return Invalid("occurred_at", "is missing");
  const int64_t secs = e.occurred_at().seconds();
  if (secs < kMinEventSeconds || secs >= kMaxEventSeconds) {
    return Invalid("occurred_at", absl::StrCat("is outside 2000..2099 (", secs, " s)"));
  }
  if (e.occurred_at().nanos() < 0 || e.occurred_at().nanos() > 999999999) {
    return Invalid("occurred_at.nanos", "is out of range");
  }
  return CheckPayload(e);
}

Decoded DecodeEvent(std::string_view bytes) {
  Decoded d;
  if (!d.event.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    d.outcome = DecodeOutcome::kUndecodable;
    d.reason = absl::StrCat("undecodable: ", bytes.size(), " bytes are not a lifecycle.v1.Event");
    return d;
  }
  if (d.event.payload_case() == lifecycle::v1::Event::PAYLOAD_NOT_SET &&
      !d.event.GetReflection()->GetUnknownFields(d.event).empty()) {
    d.outcome = DecodeOutcome::kUnknownPayload;
    d.reason = "unknown payload type (newer producer?)";
    return d;
  }
  if (absl::Status s = ValidateEvent(d.event); !s.ok()) {
    d.outcome = DecodeOutcome::kInvalid;
    d.reason = std::string(s.message());
    return d;
  }
  return d;
}

}  // namespace lifecycle::projections
