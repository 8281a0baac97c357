#include "projections/history.h"

#include "projections/codec.h"

namespace lifecycle::projections {
namespace {

// Transitions and lost deals are written in layout 1; alerts in layout 4: layout 2
// appended the advisor, layout 3 the late flag, layout 4 left out the partition and
// sequence (the alert log's key holds them).
constexpr uint8_t kHistoryVersion = 1;
constexpr uint8_t kAlertVersion = 4;

// A reason: its code, a byte saying which fields are not zero, then those fields.
void PutReason(const Reason& r, std::string* out) {
  codec::PutVarint(static_cast<uint8_t>(r.code), out);
  const uint8_t mask = (r.a != 0) | (r.b != 0) << 1 | (r.c != 0) << 2 | (r.h != 0) << 3 |
                       (r.h2 != 0) << 4 | (r.p != 0) << 5 | (r.x != 0) << 6;
  codec::PutVarint(mask, out);
  if (mask & 1) codec::PutSigned(r.a, out);
  if (mask & 2) codec::PutSigned(r.b, out);
  if (mask & 4) codec::PutSigned(r.c, out);
  if (mask & 8) codec::PutFixed64(r.h, out);
  if (mask & 16) codec::PutFixed64(r.h2, out);
  if (mask & 32) codec::PutDouble(r.p, out);
  if (mask & 64) codec::PutDouble(r.x, out);
}

Reason GetReason(codec::Reader& in) {
  Reason r;
  r.code = static_cast<ReasonCode>(in.Varint());
  const uint64_t mask = in.Varint();
  if (mask & 1) r.a = in.Signed();
  if (mask & 2) r.b = in.Signed();
  if (mask & 4) r.c = in.Signed();
  if (mask & 8) r.h = in.Fixed64();
  if (mask & 16) r.h2 = in.Fixed64();
  if (mask & 32) r.p = in.Double();
  if (mask & 64) r.x = in.Double();
  return r;
}

absl::Status Start(std::string_view bytes, const char* what, codec::Reader* in,
                   uint8_t newest = kHistoryVersion) {
  if (bytes.empty() || static_cast<uint8_t>(bytes[0]) < 1 ||
      static_cast<uint8_t>(bytes[0]) > newest) {
    return absl::DataLossError(std::string(what) + " has an unknown layout version");
  }
  *in = codec::Reader(bytes.substr(1));
  return absl::OkStatus();
}

absl::Status Finish(const codec::Reader& in, const char* what) {
  if (!in.ok() || !in.done()) return absl::DataLossError(std::string(what) + " is corrupt");
  return absl::OkStatus();
}

}  // namespace

void EncodeTransition(const TransitionEntry& t, std::string* out) {
  out->push_back(static_cast<char>(kHistoryVersion));
  codec::PutVarint(t.from, out);
  codec::PutVarint(t.to, out);
  codec::PutSigned(t.at, out);
  codec::PutSigned(t.offset, out);
  PutReason(t.reason, out);
}

absl::Status DecodeTransition(std::string_view bytes, TransitionEntry* t) {
  codec::Reader in({});
  if (auto s = Start(bytes, "stage transition", &in); !s.ok()) return s;
  t->from = static_cast<uint8_t>(in.Varint());
  t->to = static_cast<uint8_t>(in.Varint());
  t->at = in.Signed();
  t->offset = in.Signed();
  t->reason = GetReason(in);
  return Finish(in, "stage transition");
}

void EncodeLostDeal(const LostDealEntry& d, std::string* out) {
  out->push_back(static_cast<char>(kHistoryVersion));
  codec::PutBytes(d.lead_id, out);
  codec::PutBytes(d.competitor, out);
  codec::PutVarint(d.reason, out);
  codec::PutSigned(d.at_ns, out);
}

absl::Status DecodeLostDeal(std::string_view bytes, LostDealEntry* d) {
  codec::Reader in({});
  if (auto s = Start(bytes, "lost deal", &in); !s.ok()) return s;
  d->lead_id = std::string(in.Bytes());
  d->competitor = std::string(in.Bytes());
  d->reason = static_cast<uint8_t>(in.Varint());
  d->at_ns = in.Signed();
  return Finish(in, "lost deal");
}

void EncodeAlert(const AlertEntry& a, std::string* out) {
  out->push_back(static_cast<char>(kAlertVersion));
  codec::PutBytes(a.customer_id, out);
  const AlertFact& f = a.fact;
  codec::PutVarint(f.kind, out);
  codec::PutVarint(f.severity, out);
  codec::PutSigned(f.at, out);
  codec::PutSigned(f.offset, out);
  codec::PutDouble(f.p_alive, out);
  codec::PutSigned(f.loyalty, out);
  codec::PutFixed64(f.region, out);
  codec::PutVarint(f.disc.kind, out);
  codec::PutFixed64(f.disc.text, out);
  codec::PutSigned(f.disc.number, out);
  codec::PutVarint(f.reasons.size(), out);
  for (const auto& r : f.reasons) PutReason(r, out);
  codec::PutFixed64(f.advisor, out);
  codec::PutVarint(f.late ? 1 : 0, out);
}

absl::Status DecodeAlert(std::string_view bytes, AlertEntry* a) {
  codec::Reader in({});
  if (auto s = Start(bytes, "alert", &in, kAlertVersion); !s.ok()) return s;
  const uint8_t version = static_cast<uint8_t>(bytes[0]);
  a->customer_id = std::string(in.Bytes());
  if (version <= 3) {
    a->partition = static_cast<int32_t>(in.Signed());
    a->sequence = in.Signed();
  }
  AlertFact& f = a->fact;
  f = AlertFact();  // fields an older layout lacks stay at their defaults
  f.kind = static_cast<uint8_t>(in.Varint());
  f.severity = static_cast<uint8_t>(in.Varint());
  f.at = in.Signed();
  f.offset = in.Signed();
  f.p_alive = in.Double();
  f.loyalty = static_cast<int32_t>(in.Signed());
  f.region = in.Fixed64();
  f.disc.kind = static_cast<Discriminator::Kind>(in.Varint());
  f.disc.text = in.Fixed64();
  f.disc.number = in.Signed();
  f.reasons.resize(in.Count());
  for (auto& r : f.reasons) r = GetReason(in);
  if (version >= 2) f.advisor = in.Fixed64();
  if (version >= 3) f.late = in.Varint() != 0;
  return Finish(in, "alert");
}

}  // namespace lifecycle::projections
