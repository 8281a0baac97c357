#include "projections/record.h"

#include <algorithm>
#include <limits>
#include <memory>

#include "absl/strings/str_cat.h"
#include "projections/codec.h"

namespace lifecycle::projections {
namespace {

// One list of fields serves both directions: Encoder writes each field, Decoder
// reads it back in the same order. The version 1 layout, field by field, is the order
// of Fields() below; version 2 appends first_day_spend, version 3 last_service_here_at,
// version 4 a campaign hash to each campaign entry, version 5 advisor, interest,
// birthday and greetings, version 6 hold_until, version 7 the journal's bases
// and next entry number; integers are zigzag varints, hashes fixed 64-bit little-endian
// words, deadlines varints with 0 for none (kNever).
//
// Version 8 codes the same fields in fewer bytes. Times are relative to the record's
// own evaluated_at (written first, as the base): Time() codes 0 as 0, the smallest
// int64 (a journal base "from the beginning") as 2, a time t as zigzag(t − base) + 3,
// and anything else far from the base (beyond ±2^61 seconds) as 1 then t itself;
// TimeNs() the same for the whole seconds of a nanosecond time, then its nanoseconds. Days in a ring are each a
// zigzag varint of the difference to the entry before (the first, to the base's day).
// Hashes that are often absent (profile facts, the lead's interest) are a varint 0,
// or 1 then the hash. Before version 8 every time, day and hash was absolute.
constexpr int64_t kNear = int64_t{1} << 61;
constexpr int64_t kNanos = 1000000000;
constexpr int64_t kFirst = std::numeric_limits<int64_t>::min();
constexpr uint64_t kRelative = 3;  // the first code of a relative time
using codec::UnZigZag;
using codec::ZigZag;
// The difference `to` − `from`, when it is near enough to code relative to `from`.
inline bool Near(int64_t to, int64_t from, int64_t* d) {
  return !__builtin_sub_overflow(to, from, d) && *d > -kNear && *d < kNear;
}
inline int64_t FloorDiv(int64_t v, int64_t n) { return v / n - (v % n < 0 ? 1 : 0); }

// Writes into memory reserved beforehand (Bound), so no write checks for room.
struct Encoder {
  char* p;
  int64_t base = 0;      // the record's evaluated_at
  int64_t prev_day = 0;  // the day of the ring entry before (List resets it)
  void Varint(uint64_t v) {
    while (v >= 0x80) {
      *p++ = static_cast<char>(v | 0x80);
      v >>= 7;
    }
    *p++ = static_cast<char>(v);
  }
  void Signed(int64_t v) { Varint(ZigZag(v)); }
  void operator()(bool v) { *p++ = v ? 1 : 0; }
  void operator()(uint8_t v) { Varint(v); }
  void operator()(uint16_t v) { Varint(v); }
  void operator()(uint32_t v) { Varint(v); }
  void operator()(int32_t v) { Signed(v); }
  void operator()(int64_t v) { Signed(v); }
  void Hash(uint64_t v) {
    for (int i = 0; i < 8; ++i) *p++ = static_cast<char>(v >> (8 * i));
  }
  void OptionalHash(uint64_t v) {
    *p++ = v == 0 ? 0 : 1;
    if (v != 0) Hash(v);
  }
  void Base(int64_t) {}  // written first (EncodeRecord)
  void Time(int64_t v) {
    int64_t d;
    if (v == 0) {
      Varint(0);
    } else if (v == kFirst) {
      Varint(2);
    } else if (Near(v, base, &d)) {
      Varint(ZigZag(d) + kRelative);
    } else {
      Varint(1);
      Signed(v);
    }
  }
  void TimeNs(int64_t v) {
    const int64_t seconds = FloorDiv(v, kNanos);
    int64_t d;
    if (v == 0) {
      Varint(0);
    } else if (Near(seconds, base, &d)) {
      Varint(ZigZag(d) + kRelative);
      // (unsigned: seconds * kNanos is below INT64_MIN for the earliest nanoseconds)
      Varint(static_cast<uint64_t>(v) - static_cast<uint64_t>(seconds) * kNanos);
    } else {
      Varint(1);
      Signed(v);
    }
  }
  void Day(int32_t v) {
    Signed(static_cast<int64_t>(v) - prev_day);
    prev_day = v;
  }
  void Deadline(int64_t v) { Time(v == kNever ? 0 : v); }  // one byte for "none"
  template <typename L, typename Fn>
  void List(L& list, Fn each) {
    Varint(list.size());
    prev_day = FloorDiv(base, kDay);
    for (auto& e : list) each(e);
  }
};

// At most this many bytes: 10 a varint, 8 a hash.
size_t Bound(const CustomerRecord& r) {
  return 1536 + 10 * r.recent_days.size() + 20 * r.spend.size() + 30 * r.services.size() +
         28 * r.campaigns.size() + 30 * r.referrals.size() + 28 * r.qualifying.size() +
         32 * r.lots.size() + 48 * r.tasks.size() + 56 * r.complaints.size() +
         16 * r.greetings.size() + 8 * r.recent_events.size() + 16 + 2 * 45 + 5;
}

struct Decoder {
  codec::Reader* in;
  uint8_t version;
  int64_t base = 0;
  int64_t prev_day = 0;
  void operator()(bool& v) { v = in->Varint() != 0; }
  void operator()(uint8_t& v) { v = static_cast<uint8_t>(in->Varint()); }
  void operator()(uint16_t& v) { v = static_cast<uint16_t>(in->Varint()); }
  void operator()(uint32_t& v) { v = static_cast<uint32_t>(in->Varint()); }
  void operator()(int32_t& v) { v = static_cast<int32_t>(in->Signed()); }
  void operator()(int64_t& v) { v = in->Signed(); }
  void Hash(uint64_t& v) { v = in->Fixed64(); }
  void OptionalHash(uint64_t& v) { v = version < 8 || in->Varint() != 0 ? in->Fixed64() : 0; }
  void Base(int64_t& v) {
    if (version < 8) v = in->Signed();  // (version 8 has it first)
  }
  // Relative to the base (wrapping: damaged bytes give a wrong time, not undefined
  // behaviour).
  int64_t Relative(uint64_t code) {
    return static_cast<int64_t>(static_cast<uint64_t>(base) +
                                static_cast<uint64_t>(UnZigZag(code - kRelative)));
  }
  void Time(int64_t& v) {
    if (version < 8) {
      v = in->Signed();
      return;
    }
    const uint64_t code = in->Varint();
    v = code == 0 ? 0 : code == 1 ? in->Signed() : code == 2 ? kFirst : Relative(code);
  }
  void TimeNs(int64_t& v) {
    if (version < 8) {
      v = in->Signed();
      return;
    }
    const uint64_t code = in->Varint();
    if (code < kRelative) {  // (2 is not written for nanoseconds)
      v = code == 0 ? 0 : code == 1 ? in->Signed() : kFirst;
      return;
    }
    const uint64_t nanos = in->Varint();
    v = static_cast<int64_t>(static_cast<uint64_t>(Relative(code)) * kNanos + nanos);
  }
  void Day(int32_t& v) {
    if (version < 8) {
      v = static_cast<int32_t>(in->Signed());
      return;
    }
    prev_day = static_cast<int64_t>(static_cast<uint64_t>(prev_day) +
                                    static_cast<uint64_t>(in->Signed()));
    v = static_cast<int32_t>(prev_day);
  }
  void Deadline(int64_t& v) {
    Time(v);
    if (v == 0) v = kNever;
  }
  template <typename L, typename Fn>
  void List(L& list, Fn each) {
    list.resize(in->Count());
    prev_day = FloorDiv(base, kDay);  // (EpochDay, for any int64)
    for (auto& e : list) each(e);
  }
};

template <typename V>
void Fields(V& f, CustomerRecord& r, uint8_t version) {
  f(r.partition);
  f(r.last_offset);
  f(r.erased);
  f(r.has_vehicle);
  f(r.has_survey);
  f(r.churn_risk_raised);
  f(r.churned_raised);
  f(r.tier_warning_raised);
  f.OptionalHash(r.region);
  f.OptionalHash(r.vehicle_model);
  f.OptionalHash(r.industry);
  f(r.age_band);
  f(r.warranty_status);
  f(r.currency);
  f(r.event_count);
  f(r.purchases);
  f(r.service_visits);
  f.TimeNs(r.first_seen_ns);
  f.TimeNs(r.last_event_ns);
  f.TimeNs(r.first_activity_ns);
  f.TimeNs(r.last_activity_ns);
  f(r.total_spend);
  f(r.activity_days);
  f.List(r.recent_days, [&](int32_t& d) { f.Day(d); });
  f.List(r.spend, [&](SpendDay& e) { f.Day(e.day), f(e.amount); });
  f.List(r.services, [&](ServiceDay& e) { f.Day(e.day), f(e.visits), f(e.on_schedule); });
  f.List(r.campaigns, [&](CampaignDay& e) {
    f.Day(e.day), f(e.count);
    if (version >= 4) f.Hash(e.campaign);
  });
  f.List(r.referrals, [&](ReferralDay& e) { f.Day(e.day), f(e.converted), f(e.other); });
  f.List(r.qualifying, [&](QualifyingEntry& e) { f.Day(e.day), f(e.points), f.Hash(e.source); });
  f.List(r.lots, [&](PointsLot& e) { f.Time(e.earned_at), f(e.remaining), f.Hash(e.source); });
  f(r.expired_total);
  f(r.redeemed_total);
  f(r.latest_survey);
  f.Time(r.latest_survey_at);
  f.Time(r.last_lead_at);
  f.Time(r.last_deal_lost_at);
  f(r.last_lost_reason);
  f.Time(r.won_back_at);
  f.Time(r.last_sale_at);
  f.Time(r.last_service_at);
  f.Time(r.maintenance_alerted_due);
  f.List(r.tasks, [&](Task& t) {
    f(t.kind), f(t.status), f.Time(t.due_at), f.Time(t.closed_at), f.Hash(t.origin);
  });
  f.List(r.complaints, [&](Complaint& c) {
    f.Hash(c.id), f.Hash(c.category), f(c.severity), f(c.satisfied), f(c.sla_alerted);
    f.TimeNs(c.opened_ns), f.TimeNs(c.resolved_ns);
  });
  f.List(r.recent_events, [&](uint64_t& h) { f.Hash(h); });
  f(r.transitions);
  f(r.lost_deals);
  f(r.alerts);
  f.Base(r.evaluated_at);
  f(r.stage);
  f.Time(r.stage_since);
  f(r.stage_flags);
  f(r.satisfaction), f(r.regular_maintenance), f(r.event_participation), f(r.advocacy);
  f(r.grade);
  f(r.rfm_r), f(r.rfm_f), f(r.rfm_m);
  f(r.tier);
  f(r.balance);
  f(r.qualifying_12m);
  f.Time(r.tier_drop_at);
  f(r.points_to_keep_tier);
  f(r.spend_12m);
  f(r.spend_prev_12m);
  f(r.activity_days_12m);
  f(r.activity_days_24m);
  f(r.open_complaints);
  for (int64_t& d : r.due) f.Deadline(d);
  f.Deadline(r.next_deadline);
}

// Fields added by version 2, then 3.
template <typename V>
void FieldsOfVersion2(V& f, CustomerRecord& r) {
  f(r.first_day_spend);
}
template <typename V>
void FieldsOfVersion3(V& f, CustomerRecord& r) {
  f.Time(r.last_service_here_at);
}
template <typename V>
void FieldsOfVersion4(V& f, CustomerRecord& r) {
  f(r.spend_prev2_12m);
  f(r.ever_lost_prospect);
  f(r.spend_complete_from);
}
template <typename V>
void FieldsOfVersion6(V& f, CustomerRecord& r) {
  f.Time(r.hold_until);
}
template <typename V>
void FieldsOfVersion7(V& f, CustomerRecord& r) {
  for (JournalBase* b : {&r.journal_older, &r.journal_newer}) {
    f(b->kind), f.Time(b->at), f.Time(b->pos_at), f(b->pos_offset), f(b->first);
  }
  f(r.journal_next);
}
template <typename V>
void FieldsOfVersion5(V& f, CustomerRecord& r) {
  f.OptionalHash(r.advisor);
  f.OptionalHash(r.interest);
  f(r.birthday);
  f.List(r.greetings, [&](GreetingContact& g) { f.Time(g.at), f(g.kind); });
}

}  // namespace

uint64_t TextHash(std::string_view s) {
  if (s.empty()) return 0;
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h == 0 ? 1 : h;
}

void EncodeRecord(const CustomerRecord& record, std::string* out) {
  // Encoded into scratch memory of this thread, then copied once.
  thread_local std::unique_ptr<char[]> scratch;
  thread_local size_t scratch_size = 0;
  if (const size_t need = Bound(record); need > scratch_size) {
    scratch_size = std::max(need, size_t{64} << 10);
    scratch.reset(new char[scratch_size]);
  }
  scratch[0] = static_cast<char>(CustomerRecord::kVersion);
  Encoder e{scratch.get() + 1, record.evaluated_at};
  e.Signed(record.evaluated_at);
  Fields(e, const_cast<CustomerRecord&>(record), CustomerRecord::kVersion);  // Encoder only reads
  FieldsOfVersion2(e, const_cast<CustomerRecord&>(record));
  FieldsOfVersion3(e, const_cast<CustomerRecord&>(record));
  FieldsOfVersion4(e, const_cast<CustomerRecord&>(record));
  FieldsOfVersion5(e, const_cast<CustomerRecord&>(record));
  FieldsOfVersion6(e, const_cast<CustomerRecord&>(record));
  FieldsOfVersion7(e, const_cast<CustomerRecord&>(record));
  out->append(scratch.get(), static_cast<size_t>(e.p - scratch.get()));
}

absl::Status DecodeRecord(std::string_view bytes, CustomerRecord* record) {
  if (bytes.empty()) return absl::DataLossError("customer record is empty");
  const uint8_t version = static_cast<uint8_t>(bytes[0]);
  if (version < 1 || version > CustomerRecord::kVersion) {
    return absl::DataLossError(absl::StrCat("customer record has layout version ", version,
                                            "; this build reads 1 to ",
                                            CustomerRecord::kVersion));
  }
  codec::Reader in(bytes.substr(1));
  Decoder d{&in, version};
  *record = CustomerRecord();
  if (version >= 8) d.base = record->evaluated_at = in.Signed();
  Fields(d, *record, version);
  if (version >= 2) {
    FieldsOfVersion2(d, *record);
  } else if (record->activity_days > 0) {
    // Version 1 did not keep the first day's spend: the mean day's stands in for it
    // (a store rebuilt from the log has the exact figure).
    record->first_day_spend = record->total_spend / record->activity_days;
  }
  if (version >= 3) {
    FieldsOfVersion3(d, *record);
  } else if (!record->services.empty()) {
    // Before version 3 the services ring held visits here only: its newest day.
    record->last_service_here_at = static_cast<int64_t>(record->services.back().day) * kDay;
  }
  // Before version 4 the spend ring kept 24 months, complete from 729 days before the
  // last evaluation: the third year back is unknown until the ring has filled it (or
  // the store is rebuilt from the log).
  if (version >= 4) {
    FieldsOfVersion4(d, *record);
  } else if (record->evaluated_at > 0) {
    record->spend_complete_from = static_cast<int32_t>(EpochDay(record->evaluated_at) - 729);
  }
  // Before version 5 no advisor, interest, birthday or greeting was kept: a record of
  // layout 4 or older has none until its profile or a lead names them again.
  if (version >= 5) FieldsOfVersion5(d, *record);
  if (version >= 6) FieldsOfVersion6(d, *record);
  // Before version 7 there was no journal: a late event before the record's own time
  // is approximated until the journal has a base behind it.
  if (version >= 7) FieldsOfVersion7(d, *record);
  if (!in.ok() || !in.done()) return absl::DataLossError("customer record is truncated or corrupt");
  return absl::OkStatus();
}

uint32_t PackCurrency(std::string_view code) {
  if (code.size() != 3) return 0;
  return (static_cast<uint32_t>(static_cast<uint8_t>(code[0])) << 16) |
         (static_cast<uint32_t>(static_cast<uint8_t>(code[1])) << 8) |
         static_cast<uint32_t>(static_cast<uint8_t>(code[2]));
}

std::string UnpackCurrency(uint32_t packed) {
  if (packed == 0) return "";
  return std::string{static_cast<char>(packed >> 16), static_cast<char>((packed >> 8) & 0xff),
                     static_cast<char>(packed & 0xff)};
}

}  // namespace lifecycle::projections
