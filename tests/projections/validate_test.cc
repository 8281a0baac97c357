#include "projections/validate.h"

#include <gtest/gtest.h>

#include "tests/projections/test_events.h"

namespace lifecycle::projections {
namespace {

using namespace lifecycle::testing;  // NOLINT

void ExpectInvalid(const v1::Event& e, const std::string& field) {
  absl::Status s = ValidateEvent(e);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find(field), std::string::npos) << s.message();
}

TEST(ValidateTest, AcceptsWellFormedEvents) {
  EXPECT_TRUE(ValidateEvent(Registered("e1", "c1", kT0)).ok());
  EXPECT_TRUE(ValidateEvent(Purchase("e1", "c1", kT0, 100)).ok());
  EXPECT_TRUE(ValidateEvent(Tick("t1", kT0)).ok());
}

TEST(ValidateTest, RejectsMissingIdCustomerOrTime) {
  v1::Event e = Purchase("e1", "c1", kT0, 100);
  e.clear_event_id();
  ExpectInvalid(e, "event_id");
  e = Purchase("e1", "", kT0, 100);
  ExpectInvalid(e, "customer_id");
  e = Purchase("e1", "c1", kT0, 100);
  e.clear_occurred_at();
  ExpectInvalid(e, "occurred_at");
  e = Purchase("e1", std::string(kMaxCustomerIdBytes + 1, 'x'), kT0, 100);
  ExpectInvalid(e, "customer_id");
}

TEST(ValidateTest, RejectsNegativeAmountsAndAbsurdValues) {
  ExpectInvalid(Purchase("e1", "c1", kT0, -5), "purchase.amount.amount_minor");
  ExpectInvalid(Refund("e1", "c1", kT0, -5), "refund.amount.amount_minor");
  ExpectInvalid(Service("e1", "c1", kT0, -1), "service_visit.amount.amount_minor");
  ExpectInvalid(Purchase("e1", "c1", 100, 5), "occurred_at");           // 1970
  ExpectInvalid(Purchase("e1", "c1", 5000000000LL, 5), "occurred_at");  // 2128
  v1::Event s = Registered("e1", "c1", kT0);
  s.mutable_satisfaction_survey()->set_score(11);
  ExpectInvalid(s, "satisfaction_survey.score");
  v1::Event p = Purchase("e1", "c1", kT0, 5);
  p.mutable_purchase()->mutable_amount()->set_currency("yuan");
  ExpectInvalid(p, "currency");
}

TEST(ValidateTest, RejectsMissingPayloadAndCustomerOnTick) {
  v1::Event e = Purchase("e1", "c1", kT0, 1);
  e.clear_purchase();
  ExpectInvalid(e, "payload");
  v1::Event t = Tick("t1", kT0);
  t.set_customer_id("c1");
  ExpectInvalid(t, "customer_id");
}

TEST(DecodeTest, ClassifiesBytes) {
  EXPECT_EQ(DecodeEvent(Bytes(Purchase("e1", "c1", kT0, 1))).outcome, DecodeOutcome::kOk);
  Decoded bad = DecodeEvent(std::string("\xff\xff\xff not protobuf", 16));
  EXPECT_EQ(bad.outcome, DecodeOutcome::kUndecodable);
  EXPECT_FALSE(bad.reason.empty());
  EXPECT_EQ(DecodeEvent(Bytes(Purchase("", "c1", kT0, 1))).outcome, DecodeOutcome::kInvalid);
}

TEST(DecodeTest, UnknownPayloadIsSkippedNotRejected) {
  v1::Event e = Registered("e1", "c1", kT0);
  e.clear_customer_registered();
  std::string bytes = Bytes(e);
  // Field 99 (a payload from a newer schema), length-delimited, 2 bytes.
  bytes += std::string("\x9a\x06\x02\x08\x01", 5);
  Decoded d = DecodeEvent(bytes);
  EXPECT_EQ(d.outcome, DecodeOutcome::kUnknownPayload) << d.reason;
}

}  // namespace
}  // namespace lifecycle::projections
