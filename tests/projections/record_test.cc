#include "projections/record.h"

#include <gtest/gtest.h>

#include <limits>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "projections/codec.h"
#include "projections/history.h"
#include "projections/journal.h"
#include "tests/projections/test_events.h"
#include "projections/view.h"

namespace lifecycle::projections {
namespace {

// A record with every field and list set, so a round trip covers the whole layout.
CustomerRecord Full() {
  CustomerRecord r;
  r.partition = 3;
  r.last_offset = 123456;
  r.erased = true;
  r.has_vehicle = true;
  r.has_survey = true;
  r.churn_risk_raised = true;
  r.first_day_spend = -4200;
  r.last_service_here_at = 1700000123;
  r.region = TextHash("Yuci");
  r.vehicle_model = TextHash("Sail");
  r.industry = TextHash("retail");
  r.age_band = 3;
  r.warranty_status = 2;
  r.currency = PackCurrency("CNY");
  r.event_count = 9;
  r.purchases = 2;
  r.service_visits = 3;
  r.first_seen_ns = 1704067200000000001;
  r.last_event_ns = 1706745600500000000;
  r.first_activity_ns = 1704153600000000000;
  r.last_activity_ns = 1706745600000000000;
  r.total_spend = 2500000;
  r.activity_days = 4;
  r.recent_days = {19724, 19730, 19754};
  r.spend = {{19724, 2000000}, {19754, -1000}};
  r.services = {{19730, 2, 1}};
  r.campaigns = {{19740, 1, TextHash("spring")}};
  r.referrals = {{19741, 1, 0}};
  r.qualifying = {{19724, 20000, TextHash("o-1")}};
  r.lots = {{1704153600, 20000, TextHash("o-1")}};
  r.expired_total = 5;
  r.redeemed_total = 7;
  r.latest_survey = 9;
  r.latest_survey_at = 1705000000;
  r.last_lead_at = 1704000000;
  r.last_deal_lost_at = 1704100000;
  r.last_lost_reason = 2;
  r.won_back_at = 1706000000;
  r.last_sale_at = 1704153600;
  r.last_service_at = 1706745600;
  r.maintenance_alerted_due = 1720000000;
  r.tasks = {{1, 2, 1704412800, 1704400000, TextHash("o-1")}, {4, 1, 1706918400, 0, TextHash("v-9")}};
  r.complaints = {{TextHash("k-1"), TextHash("noise"), 2, true, true, 1705000000000000000,
                   1705500000000000000}};
  r.recent_events = {TextHash("e1"), TextHash("e2")};
  r.transitions = 4;
  r.lost_deals = 1;
  r.alerts = 6;
  r.evaluated_at = 1706745600;
  r.stage = 3;
  r.stage_since = 1704153600;
  r.stage_flags = kMaintenanceOverdue | kTierAtRisk;
  r.satisfaction = 2;
  r.regular_maintenance = 2;
  r.event_participation = 1;
  r.advocacy = 2;
  r.grade = 1;
  r.rfm_r = 5;
  r.rfm_f = 3;
  r.rfm_m = 5;
  r.tier = 3;
  r.balance = 20000;
  r.qualifying_12m = 20000;
  r.tier_drop_at = 1735689600;
  r.points_to_keep_tier = 100;
  r.spend_12m = 1999000;
  r.spend_prev_12m = 0;
  r.activity_days_12m = 3;
  r.activity_days_24m = 3;
  r.open_complaints = 0;
  r.due[kWindowsFamily] = 1735776000;
  r.due[kTasksFamily] = 1707091200;
  r.next_deadline = 1707091200;
  r.advisor = TextHash("adv-07");
  r.interest = TextHash("Sail");
  r.birthday = 229;
  r.greetings = {{1704067300, 5}, {1709200000, 9}};
  return r;
}

// The reader takes one path with ten bytes or more left and another near the end:
// both read every width the same; a varint cut short, or longer than ten bytes, fails.
TEST(CodecReaderTest, VarintsAndWordsReadTheSameAnywhereInTheInput) {
  const std::vector<uint64_t> values = {0,           1,          0x7f,      0x80,
                                        0x3fff,      0x4000,     300,       uint64_t{1} << 35,
                                        (uint64_t{1} << 63) - 1, uint64_t{1} << 63,
                                        std::numeric_limits<uint64_t>::max()};
  for (uint64_t v : values) {
    std::string bytes;
    codec::PutVarint(v, &bytes);
    codec::PutFixed64(v ^ 0x0123456789abcdefULL, &bytes);
    for (size_t padding : {size_t{0}, size_t{16}}) {
      const std::string in = bytes + std::string(padding, '\x01');
      codec::Reader r(in);
      EXPECT_EQ(r.Varint(), v) << v << " padding " << padding;
      EXPECT_EQ(r.Fixed64(), v ^ 0x0123456789abcdefULL) << v << " padding " << padding;
      EXPECT_TRUE(r.ok());
    }
    for (size_t cut = 0; cut + 8 < bytes.size(); ++cut) {  // the varint cut short
      codec::Reader r(std::string_view(bytes).substr(0, cut));
      r.Varint();
      EXPECT_FALSE(r.ok()) << v << " cut at " << cut;
    }
  }
  for (size_t padding : {size_t{0}, size_t{16}}) {
    const std::string overlong = std::string(11, '\x80') + "\x01" + std::string(padding, '\x01');
    codec::Reader r(overlong);
    EXPECT_EQ(r.Varint(), 0u);
    EXPECT_FALSE(r.ok()) << "padding " << padding;
  }
  codec::Reader r(std::string_view("\x01\x02\x03", 3));
  EXPECT_EQ(r.Fixed64(), 0u);
  EXPECT_FALSE(r.ok());
}

TEST(RecordCodecTest, RoundTripKeepsEveryField) {
  const CustomerRecord r = Full();
  std::string bytes;
  EncodeRecord(r, &bytes);
  CustomerRecord back;
  ASSERT_TRUE(DecodeRecord(bytes, &back).ok());
  EXPECT_EQ(back, r);
  EXPECT_LT(bytes.size(), 420u) << "compact: a busy customer fits in a few hundred bytes";
}

// Version 8 codes times relative to evaluated_at: times at it, far from it, negative,
// at the ends of int64 and nanoseconds before the epoch come back as they were.
TEST(RecordCodecTest, RoundTripKeepsTimesFarFromTheBase) {
  constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  for (int64_t base : {int64_t{0}, int64_t{1706745600}, int64_t{-5}, kMin, kMax}) {
    CustomerRecord r = Full();
    r.evaluated_at = base;
    r.stage_since = base;
    r.last_sale_at = kMin;
    r.last_service_at = kMax - 1;
    r.won_back_at = -1;
    r.first_seen_ns = -1;               // a nanosecond before the epoch
    r.last_event_ns = kMin;
    r.first_activity_ns = kMax;
    r.last_activity_ns = 999999999;     // under a second
    r.lots = {{kMin, 1, 1}, {0, 2, 2}, {base, 3, 3}};
    r.recent_days = {std::numeric_limits<int32_t>::min(), -1, 0, 20000,
                     std::numeric_limits<int32_t>::max()};
    r.due[kPointsFamily] = kMax - 1;
    r.hold_until = kMin + 1;
    r.journal_older = {JournalBase::kBeginning, kMin, kMin, 0, 0};
    r.journal_newer = {JournalBase::kSlot1, kMax, 1, 2, 3};
    std::string bytes;
    EncodeRecord(r, &bytes);
    CustomerRecord back;
    ASSERT_TRUE(DecodeRecord(bytes, &back).ok()) << base;
    EXPECT_EQ(back, r) << base;
  }
}

// The stored bytes of a small record, in layout version 1 (written by earlier builds)
// and version 2 (this build: version 1 and first_day_spend). If the version 2 test
// fails, the layout changed: stores written before cannot be read unless a new version
// is added (CustomerRecord::kVersion) and DecodeRecord keeps reading the old ones.
constexpr const char* kGoldenV1 =
    "01020e00000000000008070605040302010000000000000000000000000000000000000004000000000000000201"
    "c0b80201c0b802ac0200000000000000000000000000000000000001aa0000000000000000000080c0f9ef0c0300"
    "0000000000000000000000000000000000000000000000000080dcaef70c";
constexpr const char* kGoldenV2 =
    "02020e00000000000008070605040302010000000000000000000000000000000000000004000000000000000201"
    "c0b80201c0b802ac0200000000000000000000000000000000000001aa0000000000000000000080c0f9ef0c0300"
    "0000000000000000000000000000000000000000000000000080dcaef70c9601";
constexpr const char* kGoldenV3 =
    "03020e00000000000008070605040302010000000000000000000000000000000000000004000000000000000201"
    "c0b80201c0b802ac0200000000000000000000000000000000000001aa0000000000000000000080c0f9ef0c0300"
    "0000000000000000000000000000000000000000000000000080dcaef70c9601a0fff7ef0c";

CustomerRecord GoldenRecord() {
  CustomerRecord r;
  r.partition = 1;
  r.last_offset = 7;
  r.region = 0x0102030405060708ull;
  r.event_count = 2;
  r.activity_days = 1;
  r.recent_days = {20000};
  r.spend = {{20000, 150}};
  r.recent_events = {0xaaull};
  r.stage = 3;
  r.evaluated_at = 1728000000;
  r.next_deadline = 1735776000;
  return r;
}

// Version 4: each campaign entry has its campaign's hash (the golden record has one),
// then spend_prev2_12m and ever_lost_prospect come last.
constexpr const char* kGoldenV4 =
    "04020e00000000000008070605040302010000000000000000000000000000000000000004000000000000000201"
    "c0b80201c0b802ac020001c0b80201080706050403020100000000000000000000000000000000"
    "01aa0000000000000000000080c0f9ef0c0300000000000000000000000000000000000000000000"
    "0000000080dcaef70c9601a0fff7ef0c000000";

// Version 5: advisor and interest hashes, birthday and the greetings done, last.
constexpr const char* kGoldenV5 =
    "05020e00000000000008070605040302010000000000000000000000000000000000000004000000000000000201"
    "c0b80201c0b802ac020001c0b8020108070605040302010000000000000000000000000000000001aa00000000"
    "00000000000080c0f9ef0c03000000000000000000000000000000000000000000000000000080dcaef70c9601"
    "a0fff7ef0c00000018171615141312110000000000000000bb020180b7ffee0c09";

// Version 6: hold_until, last.
constexpr const char* kGoldenV6 =
    "06020e000000000000080706050403020100000000000000000000000000000000000000040000000000000002"
    "01c0b80201c0b802ac020001c0b8020108070605040302010000000000000000000000000000000001aa000000"
    "0000000000000080c0f9ef0c03000000000000000000000000000000000000000000000000000080dcaef70c96"
    "01a0fff7ef0c00000018171615141312110000000000000000bb020180b7ffee0c0980b7ffee0c";

// Version 7: the journal's two bases and next entry number, last.
constexpr const char* kGoldenV7 =
    "07020e000000000000080706050403020100000000000000000000000000000000000000040000000000000002"
    "01c0b80201c0b802ac020001c0b8020108070605040302010000000000000000000000000000000001aa000000"
    "0000000000000080c0f9ef0c03000000000000000000000000000000000000000000000000000080dcaef70c96"
    "01a0fff7ef0c00000018171615141312110000000000000000bb020180b7ffee0c0980b7ffee0c01ffffffffff"
    "ffffffff01ffffffffffffffffff0100000280b7ffee0c80b7ffee0c0e0305";

// Version 8: the fields of version 7, evaluated_at first and times relative to it, ring
// days as differences, absent profile hashes in one byte.
constexpr const char* kGoldenV8 =
    "0880c0f9ef0c020e000000000000010807060504030201000000000004000000000000000201000100ac0200"
    "01000108070605040302010000000000000000000000000000000001aa000000000000000000000300000000"
    "00000000000000000000000000000000000000000000839cb5079601e2c00100000001181716151413121100"
    "bb020182897a0982897a01020200000282897a82897a0e0305";

TEST(RecordCodecTest, GoldenBytesOfVersion8) {
  CustomerRecord r = GoldenRecord();
  r.first_day_spend = 75;
  r.last_service_here_at = 1727987664;
  r.campaigns = {{20000, 1, 0x0102030405060708ull}};
  r.advisor = 0x1112131415161718ull;
  r.birthday = 315;
  r.greetings = {{1727000000, 9}};
  r.hold_until = 1727000000;
  constexpr int64_t kFirst = std::numeric_limits<int64_t>::min();
  r.journal_older = {JournalBase::kBeginning, kFirst, kFirst, 0, 0};
  r.journal_newer = {JournalBase::kSlot0, 1727000000, 1727000000, 7, 3};
  r.journal_next = 5;
  std::string bytes;
  EncodeRecord(r, &bytes);
  EXPECT_EQ(absl::BytesToHexString(bytes), kGoldenV8);
  CustomerRecord back;
  ASSERT_TRUE(DecodeRecord(absl::HexStringToBytes(kGoldenV8), &back).ok());
  EXPECT_EQ(back, r);
  EXPECT_LT(bytes.size(), absl::HexStringToBytes(kGoldenV7).size());
  // Version 7 bytes: the same record.
  ASSERT_TRUE(DecodeRecord(absl::HexStringToBytes(kGoldenV7), &back).ok());
  EXPECT_EQ(back, r);
  // Version 6 bytes read with no journal (a late event is approximated until one starts).
  r.journal_older = r.journal_newer = JournalBase();
  r.journal_next = 0;
  ASSERT_TRUE(DecodeRecord(absl::HexStringToBytes(kGoldenV6), &back).ok());
  EXPECT_EQ(back, r);
  // Version 5 bytes read with no hold.
  r.hold_until = 0;
  ASSERT_TRUE(DecodeRecord(absl::HexStringToBytes(kGoldenV5), &back).ok());
  EXPECT_EQ(back, r);
}

TEST(RecordCodecTest, ReadsVersion4WithNoAdvisorBirthdayOrGreetings) {
  CustomerRecord r = GoldenRecord();
  r.first_day_spend = 75;
  r.last_service_here_at = 1727987664;
  r.campaigns = {{20000, 1, 0x0102030405060708ull}};
  CustomerRecord back;
  ASSERT_TRUE(DecodeRecord(absl::HexStringToBytes(kGoldenV4), &back).ok());
  EXPECT_EQ(back, r);
}

TEST(RecordCodecTest, ReadsVersion3) {
  CustomerRecord want = GoldenRecord();
  want.first_day_spend = 75;
  want.last_service_here_at = 1727987664;
  want.spend_complete_from = 20000 - 729;  // 24 months of spend days before layout 4
  CustomerRecord back;
  ASSERT_TRUE(DecodeRecord(absl::HexStringToBytes(kGoldenV3), &back).ok());
  EXPECT_EQ(back, want);
}

TEST(RecordCodecTest, ReadsVersion2WithTheServicesRingsNewestDayAsTheLastServiceHere) {
  CustomerRecord want = GoldenRecord();
  want.first_day_spend = 75;
  want.spend_complete_from = 20000 - 729;
  CustomerRecord back;
  ASSERT_TRUE(DecodeRecord(absl::HexStringToBytes(kGoldenV2), &back).ok());
  EXPECT_EQ(back, want);  // no service visits: none here
  // The golden record with two service days, {19990, 1, 1} and {20000, 1, 0}, in layout 2.
  ASSERT_TRUE(DecodeRecord(absl::HexStringToBytes(
                               "02020e0000000000000807060504030201000000000000000000000000000000"
                               "0000000004000000000000000201c0b80201c0b802ac0202acb8020101c0b802"
                               "0100000000000000000000000000000000000001aa0000000000000000000080"
                               "c0f9ef0c030000000000000000000000000000000000000000000000000000"
                               "80dcaef70c00"),
                           &back)
                  .ok());
  ASSERT_EQ(back.services.size(), 2u);
  EXPECT_EQ(back.last_service_here_at, 20000 * 86400);
}

TEST(RecordCodecTest, ReadsVersion1WithTheMeanDayStandingInForTheFirstDaysSpend) {
  CustomerRecord want = GoldenRecord();  // total_spend 0 over 1 activity day
  want.spend_complete_from = 20000 - 729;
  CustomerRecord back;
  ASSERT_TRUE(DecodeRecord(absl::HexStringToBytes(kGoldenV1), &back).ok());
  EXPECT_EQ(back, want);
  // With spend: total / activity days.
  // The golden record with total_spend 900 over 3 activity days, in layout 1.
  ASSERT_TRUE(DecodeRecord(absl::HexStringToBytes(
                               "01020e0000000000000807060504030201000000000000000000000000000000"
                               "0000000004000000000000880e0601c0b80201c0b802ac020000000000000000"
                               "0000000000000000000001aa0000000000000000000080c0f9ef0c0300000000"
                               "0000000000000000000000000000000000000000000080dcaef70c"),
                           &back)
                  .ok());
  EXPECT_EQ(back.first_day_spend, 300);
  EXPECT_EQ(back.total_spend, 900);
}

TEST(RecordCodecTest, RefusesUnknownVersionsAndDamagedBytes) {
  std::string bytes;
  EncodeRecord(Full(), &bytes);
  CustomerRecord out;
  std::string v9 = bytes;
  v9[0] = 9;
  EXPECT_EQ(DecodeRecord(v9, &out).code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(DecodeRecord(v9, &out).message().find("version 9"), std::string::npos);
  std::string v0 = bytes;
  v0[0] = 0;
  EXPECT_EQ(DecodeRecord(v0, &out).code(), absl::StatusCode::kDataLoss);
  EXPECT_FALSE(DecodeRecord(bytes.substr(0, bytes.size() - 1), &out).ok()) << "truncated";
  EXPECT_FALSE(DecodeRecord(bytes + "x", &out).ok()) << "trailing bytes";
  EXPECT_FALSE(DecodeRecord("", &out).ok());
  for (size_t cut = 1; cut < bytes.size(); cut += 7) {
    EXPECT_FALSE(DecodeRecord(bytes.substr(0, cut), &out).ok()) << cut;
  }
}

TEST(RecordCodecTest, TextHashAndCurrency) {
  EXPECT_EQ(TextHash(""), 0u);
  EXPECT_NE(TextHash("a"), 0u);
  EXPECT_NE(TextHash("a"), TextHash("b"));
  EXPECT_EQ(TextHash("order-17"), TextHash(std::string("order-") + "17"));
  EXPECT_EQ(UnpackCurrency(PackCurrency("CNY")), "CNY");
  EXPECT_EQ(PackCurrency(""), 0u);
  EXPECT_EQ(UnpackCurrency(0), "");
}

TEST(HistoryCodecTest, TransitionsLostDealsAndAlertsRoundTrip) {
  TransitionEntry t{3, 7, 1706745600, 99, {.code = ReasonCode::kInactive, .a = 366}};
  std::string bytes;
  EncodeTransition(t, &bytes);
  EXPECT_EQ(absl::BytesToHexString(bytes), "01030780fcd6db0cc6010301dc05");
  TransitionEntry t2;
  ASSERT_TRUE(DecodeTransition(bytes, &t2).ok());
  EXPECT_EQ(t2, t);

  LostDealEntry d{"lead-1", "Other Motors", 2, 1704067200000000005};
  bytes.clear();
  EncodeLostDeal(d, &bytes);
  LostDealEntry d2;
  ASSERT_TRUE(DecodeLostDeal(bytes, &d2).ok());
  EXPECT_EQ(d2, d);

  AlertEntry a;
  a.customer_id = "c-1";
  a.partition = 2;
  a.sequence = 41;
  a.fact.kind = 4;
  a.fact.severity = 2;
  a.fact.at = 1706745600;
  a.fact.offset = 1000;
  a.fact.p_alive = 0.4375;
  a.fact.loyalty = 6;
  a.fact.region = TextHash("Yuci");
  a.fact.advisor = TextHash("adv-07");
  a.fact.disc = {.kind = Discriminator::kNumber, .number = 1720000000};
  a.fact.reasons = {{.code = ReasonCode::kMaintenanceWasDue, .a = 33}};
  bytes.clear();
  EncodeAlert(a, &bytes);
  AlertEntry a2;
  ASSERT_TRUE(DecodeAlert(bytes, &a2).ok());
  EXPECT_EQ(a2.customer_id, a.customer_id);
  EXPECT_EQ(a2.sequence, 0) << "the log's key holds the sequence, not the bytes";
  EXPECT_EQ(a2.partition, 0);
  EXPECT_EQ(a2.fact, a.fact);
  EXPECT_FALSE(DecodeAlert(bytes.substr(0, bytes.size() - 2), &a2).ok());
  a.fact.late = true;
  bytes.clear();
  EncodeAlert(a, &bytes);
  ASSERT_TRUE(DecodeAlert(bytes, &a2).ok());
  EXPECT_EQ(a2.fact, a.fact) << "late";
  // Layout 3 held the partition and sequence after the customer id (byte 5 on: the
  // version, the id's length and "c-1"), as zigzag varints; 2 and 1 lack the late flag
  // and then the advisor too. Written by earlier builds.
  std::string v3 = bytes;
  v3[0] = 3;
  v3.insert(5, std::string("\x04\x52", 2));
  AlertEntry a3;
  ASSERT_TRUE(DecodeAlert(v3, &a3).ok());
  EXPECT_EQ(a3.partition, 2);
  EXPECT_EQ(a3.sequence, 41);
  EXPECT_EQ(a3.fact, a.fact);
  std::string v2 = v3.substr(0, v3.size() - 1);
  v2[0] = 2;
  ASSERT_TRUE(DecodeAlert(v2, &a2).ok());
  AlertFact older = a.fact;
  older.late = false;
  EXPECT_EQ(a2.fact, older);
  std::string v1 = v3.substr(0, v3.size() - 9);
  v1[0] = 1;
  ASSERT_TRUE(DecodeAlert(v1, &a2).ok());
  older.advisor = 0;
  EXPECT_EQ(a2.fact, older);
  EXPECT_EQ(a2.sequence, 41);
  std::string v5 = bytes;
  v5[0] = 5;
  EXPECT_FALSE(DecodeAlert(v5, &a2).ok()) << "a layout this build does not know";
}

// A journal entry keeps the event's bytes without the customer id the key names, and
// its fold instant as a difference from the event's time; reading gives both back.
TEST(JournalCodecTest, EntriesRoundTripWithoutTheCustomerId) {
  const std::string event =
      testing::Bytes(testing::Purchase("e-1", "c-42", testing::kT0 + 5, 1250));
  JournalEntry e{testing::kT0 + 5, 987654, true, event};
  std::string bytes;
  EncodeJournalEntry(e, "c-42", &bytes);
  EXPECT_EQ(bytes.find("c-42"), std::string::npos) << "the id is the key's";
  EXPECT_LE(bytes.size(), event.size()) << "a header of 8 bytes, 6 fewer for the id";
  JournalEntry back;
  ASSERT_TRUE(DecodeJournalEntry(bytes, "c-42", &back).ok());
  EXPECT_EQ(back.fold_at, e.fold_at);
  EXPECT_EQ(back.offset, e.offset);
  EXPECT_TRUE(back.after_deadlines);
  EXPECT_EQ(back.event, event) << "the same bytes as read from the log";
  // Folded at another instant than its own time (a late event in the customer's time).
  e.fold_at = testing::kT0 - 3 * testing::kDay;
  e.after_deadlines = false;
  bytes.clear();
  EncodeJournalEntry(e, "c-42", &bytes);
  ASSERT_TRUE(DecodeJournalEntry(bytes, "c-42", &back).ok());
  EXPECT_EQ(back.fold_at, e.fold_at);
  EXPECT_FALSE(back.after_deadlines);
  EXPECT_EQ(back.event, event);
}

TEST(JournalCodecTest, AnotherCustomersIdOrNoEventStaysAsItWas) {
  const std::string event =
      testing::Bytes(testing::Purchase("e-1", "c-42", testing::kT0 + 5, 1250));
  std::string bytes;
  EncodeJournalEntry({testing::kT0 + 5, 7, false, event}, "c-43", &bytes);
  JournalEntry back;
  ASSERT_TRUE(DecodeJournalEntry(bytes, "c-43", &back).ok());
  EXPECT_EQ(back.event, event);
  EXPECT_EQ(back.fold_at, testing::kT0 + 5);
  // Bytes that are not a message (no occurred_at, nothing to leave out).
  bytes.clear();
  EncodeJournalEntry({1234, 7, false, std::string("\xff\xff", 2)}, "c-43", &bytes);
  ASSERT_TRUE(DecodeJournalEntry(bytes, "c-43", &back).ok());
  EXPECT_EQ(back.event, std::string("\xff\xff", 2));
  EXPECT_EQ(back.fold_at, 1234);
}

TEST(JournalCodecTest, GoldenBytesOfLayout2AndLayout1StillReads) {
  v1::Event ev;
  ev.set_event_id("e");
  ev.set_customer_id("c");
  ev.mutable_occurred_at()->set_seconds(100);
  std::string bytes;
  EncodeJournalEntry({101, 3, true, ev.SerializeAsString()}, "c", &bytes);
  // Version 2, fold_at − occurred_at = 1 (zigzag 2), offset 3 (zigzag 6), flags 3, then
  // the event without field 2: event_id "e", occurred_at {seconds: 100}.
  EXPECT_EQ(absl::BytesToHexString(bytes), "02020603" "0a0165" "1a020864");
  JournalEntry back;
  const std::string v1 = std::string("\x01\xca\x01\x06\x01", 5) + ev.SerializeAsString();
  ASSERT_TRUE(DecodeJournalEntry(v1, "c", &back).ok());
  EXPECT_EQ(back.fold_at, 101);
  EXPECT_EQ(back.offset, 3);
  EXPECT_TRUE(back.after_deadlines);
  EXPECT_EQ(back.event, ev.SerializeAsString());
  EXPECT_FALSE(DecodeJournalEntry(std::string("\x03", 1), "c", &back).ok());
  EXPECT_FALSE(DecodeJournalEntry("", "c", &back).ok());
}

// Words are built when read, and are what they were when the fold formatted them.
TEST(ViewWordsTest, ReasonsAndAlertsInWords) {
  Texts texts{{TextHash("k-1"), "k-1"}, {TextHash("noise"), "noise"}, {TextHash("Yuci"), "Yuci"}};
  EXPECT_EQ(ReasonText({.code = ReasonCode::kInactive, .a = 400}, texts),
            "no purchase or service for 400 days");
  EXPECT_EQ(ReasonText({.code = ReasonCode::kPAliveBelowAtRisk, .a = 12, .p = 0.4321, .x = 0.5},
                       texts),
            "P(alive) 0.43 is below 0.50; last visit 12 days ago");
  EXPECT_EQ(ReasonText({.code = ReasonCode::kComplaintOpen,
                        .a = 9,
                        .b = 7,
                        .h = TextHash("k-1"),
                        .h2 = TextHash("noise")},
                       texts),
            "complaint k-1 (noise) open for 9 days, past the 7-day promise");
  EXPECT_EQ(ReasonText({.code = ReasonCode::kTaskOverdue, .a = 4, .b = 2}, texts),
            "satisfaction callback after the visit overdue (2)");
  EXPECT_EQ(ReasonText({.code = ReasonCode::kTierDrops, .a = 3, .b = 20, .c = 150}, texts),
            "GOLD tier drops in 20 days unless 150 more points are earned");

  AlertEntry a;
  a.customer_id = "c-1";
  a.partition = 2;
  a.sequence = 41;
  a.fact.kind = lifecycle::v1::ALERT_KIND_MAINTENANCE_OVERDUE;
  a.fact.severity = lifecycle::v1::SEVERITY_WARNING;
  a.fact.at = 1706745600;
  a.fact.offset = 1000;
  a.fact.region = TextHash("Yuci");
  a.fact.advisor = TextHash("adv-07");
  a.fact.disc = {.kind = Discriminator::kNumber, .number = 1720000000};
  a.fact.reasons = {{.code = ReasonCode::kMaintenanceWasDue, .a = 33}};
  const lifecycle::v1::Alert alert = BuildAlert(a, texts);
  EXPECT_EQ(alert.alert_id(),
            AlertId("c-1", lifecycle::v1::ALERT_KIND_MAINTENANCE_OVERDUE, 1000, "1720000000"));
  EXPECT_EQ(alert.reasons(0), "maintenance was due 33 days ago and the car has not been in");
  EXPECT_EQ(alert.suggested_action(), "service callback: book the maintenance visit");
  EXPECT_EQ(alert.region(), "Yuci");
  EXPECT_EQ(alert.sequence(), 41);
}

}  // namespace
}  // namespace lifecycle::projections
