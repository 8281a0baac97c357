// Fuzz target: bytes -> DecodeRecord. Damaged or hostile bytes are refused or read,
// never a crash or undefined behaviour (the libFuzzer build has ASan and UBSan); what is
// read is written back as the current layout, and those bytes read back to the same
// record and write the same bytes again. Seeds (tests/fuzz/corpus/record): the golden
// bytes of every layout version in tests/projections/record_test.cc.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "projections/record.h"

namespace {
void Check(bool ok) {
  if (!ok) std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using lifecycle::projections::CustomerRecord;
  CustomerRecord read;
  if (!lifecycle::projections::DecodeRecord(
           std::string_view(reinterpret_cast<const char*>(data), size), &read)
           .ok()) {
    return 0;
  }
  std::string bytes;
  lifecycle::projections::EncodeRecord(read, &bytes);
  Check(!bytes.empty() && static_cast<uint8_t>(bytes[0]) == CustomerRecord::kVersion);
  CustomerRecord back;
  Check(lifecycle::projections::DecodeRecord(bytes, &back).ok());
  Check(back == read);
  std::string again;
  lifecycle::projections::EncodeRecord(back, &again);
  Check(again == bytes);
  return 0;
}
