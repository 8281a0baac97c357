#include "projections/journal.h"

#include "projections/codec.h"

namespace lifecycle::projections {
namespace {

// Layout 1: the fold instant, the offset, the flag, the event's bytes as read.
// Layout 2 (written since): the fold instant as its difference from the event's own
// occurred_at (most of the time 0: one byte, not five), the offset, flags, and the
// event's bytes without its customer_id when that is the journal's customer (the key
// names it) — the id goes back in when the entry is read.
constexpr uint8_t kJournalVersion = 2;
constexpr uint64_t kAfterDeadlines = 1;
constexpr uint64_t kIdLeftOut = 2;

// lifecycle.v1.Event's field numbers the entry's layout depends on.
constexpr uint64_t kCustomerIdField = 2;
constexpr uint64_t kOccurredAtField = 3;
constexpr uint64_t kSecondsField = 1;  // google.protobuf.Timestamp.seconds

// One top-level field of a protobuf message's wire bytes.
struct WireField {
  uint64_t number = 0;
  int wire_type = 0;
  std::string_view whole;  // tag, length and value
  std::string_view value;  // a length-delimited field's bytes; a varint's bytes
};

// A varint at `at` of `in`: its value, and `at` moved past it; false if it is cut off.
bool WireVarint(std::string_view in, size_t* at, uint64_t* v) {
  *v = 0;
  for (int shift = 0; shift < 64 && *at < in.size(); shift += 7) {
    const uint8_t b = static_cast<uint8_t>(in[(*at)++]);
    *v |= static_cast<uint64_t>(b & 0x7f) << shift;
    if (b < 0x80) return true;
  }
  return false;
}

// Reads the field at the start of `in`, advancing it; false at the end or on bytes
// this does not read (groups, a truncated field).
bool NextField(std::string_view* in, WireField* f) {
  size_t at = 0;
  uint64_t tag = 0;
  if (!WireVarint(*in, &at, &tag)) return false;
  f->number = tag >> 3;
  f->wire_type = static_cast<int>(tag & 7);
  size_t value_at = at, value_size = 0;
  switch (f->wire_type) {
    case 0: {
      uint64_t ignored = 0;
      if (!WireVarint(*in, &at, &ignored)) return false;
      value_size = at - value_at;
      break;
    }
    case 1: value_size = 8; break;
    case 5: value_size = 4; break;
    case 2: {
      uint64_t len = 0;
      if (!WireVarint(*in, &at, &len) || len > in->size() - at) return false;
      value_at = at;
      value_size = static_cast<size_t>(len);
      break;
    }
    default: return false;
  }
  if (value_size > in->size() - value_at) return false;
  f->value = in->substr(value_at, value_size);
  f->whole = in->substr(0, value_at + value_size);
  in->remove_prefix(f->whole.size());
  return true;
}

// The event's occurred_at seconds; 0 if it has none.
int64_t OccurredSeconds(std::string_view event) {
  WireField f;
  while (NextField(&event, &f)) {
    if (f.number != kOccurredAtField || f.wire_type != 2) continue;
    std::string_view ts = f.value;
    WireField s;
    while (NextField(&ts, &s)) {
      if (s.number == kSecondsField && s.wire_type == 0) {
        size_t at = 0;
        uint64_t v = 0;
        return WireVarint(s.value, &at, &v) ? static_cast<int64_t>(v) : 0;
      }
    }
    return 0;
  }
  return 0;
}

// The event's bytes without its customer_id field, if that is `customer_id` (once,
// and the bytes read to their end); otherwise false and `out` is not to be used.
bool WithoutId(std::string_view event, std::string_view customer_id, std::string* out) {
  WireField f;
  bool found = false;
  while (NextField(&event, &f)) {
    if (f.number == kCustomerIdField) {
      if (found || f.wire_type != 2 || f.value != customer_id) return false;
      found = true;
      continue;
    }
    out->append(f.whole);
  }
  return found && event.empty();
}

// `stripped` with the customer_id field put back where a serializer writes it (before
// the first field with a larger number).
std::string WithId(std::string_view stripped, std::string_view customer_id) {
  std::string field;
  codec::PutVarint(kCustomerIdField << 3 | 2, &field);
  codec::PutBytes(customer_id, &field);
  std::string out;
  out.reserve(stripped.size() + field.size());
  // The fields before it: those with smaller numbers at the start of the bytes.
  std::string_view rest = stripped;
  for (WireField f; !rest.empty();) {
    std::string_view next = rest;
    if (!NextField(&next, &f) || f.number > kCustomerIdField) break;
    out.append(f.whole);
    rest = next;
  }
  out.append(field);
  out.append(rest);
  return out;
}

}  // namespace

void EncodeJournalEntry(const JournalEntry& e, std::string_view customer_id, std::string* out) {
  out->push_back(static_cast<char>(kJournalVersion));
  codec::PutSigned(e.fold_at - OccurredSeconds(e.event), out);
  codec::PutSigned(e.offset, out);
  std::string stripped;
  const bool left_out = !customer_id.empty() && WithoutId(e.event, customer_id, &stripped);
  codec::PutVarint((e.after_deadlines ? kAfterDeadlines : 0) | (left_out ? kIdLeftOut : 0), out);
  out->append(left_out ? stripped : e.event);
}

absl::Status DecodeJournalEntry(std::string_view bytes, std::string_view customer_id,
                                JournalEntry* e) {
  const uint8_t version = bytes.empty() ? 0 : static_cast<uint8_t>(bytes[0]);
  if (version < 1 || version > kJournalVersion) {
    return absl::DataLossError("journal entry has an unknown layout version");
  }
  codec::Reader in(bytes.substr(1));
  e->fold_at = in.Signed();
  e->offset = in.Signed();
  const uint64_t flags = in.Varint();
  if (!in.ok()) return absl::DataLossError("journal entry is corrupt");
  e->after_deadlines = (flags & kAfterDeadlines) != 0;
  if (version == 1) {
    e->event.assign(in.Rest());
    return absl::OkStatus();
  }
  e->event = (flags & kIdLeftOut) ? WithId(in.Rest(), customer_id) : std::string(in.Rest());
  e->fold_at += OccurredSeconds(e->event);
  return absl::OkStatus();
}

}  // namespace lifecycle::projections
