#include "projections/journal.h"

#include "projections/codec.h"

namespace lifecycle::projections {
namespace {
constexpr uint8_t kJournalVersion = 1;
}  // namespace

void EncodeJournalEntry(const JournalEntry& e, std::string* out) {
  out->push_back(static_cast<char>(kJournalVersion));
  codec::PutSigned(e.fold_at, out);
  codec::PutSigned(e.offset, out);
  codec::PutVarint(e.after_deadlines ? 1 : 0, out);
  out->append(e.event);
}

absl::Status DecodeJournalEntry(std::string_view bytes, JournalEntry* e) {
  if (bytes.empty() || static_cast<uint8_t>(bytes[0]) != kJournalVersion) {
    return absl::DataLossError("journal entry has an unknown layout version");
  }
  codec::Reader in(bytes.substr(1));
  e->fold_at = in.Signed();
  e->offset = in.Signed();
  e->after_deadlines = in.Varint() != 0;
  if (!in.ok()) return absl::DataLossError("journal entry is corrupt");
  e->event.assign(in.Rest());
  return absl::OkStatus();
}

}  // namespace lifecycle::projections
