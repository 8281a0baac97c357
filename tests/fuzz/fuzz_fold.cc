// Fuzz target: bytes -> decode -> validate -> fold, through the PartitionProjector.
// The input is cut into records (a 1-byte length before each); the records are
// applied in order with commits in between, then every invariant is checked:
// scores within range, balances never negative, counters consistent.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "google/protobuf/stubs/logging.h"

#include "projections/projector.h"
#include "tests/projections/memory_store.h"

using lifecycle::testing::FreshMeta;
using lifecycle::testing::MemoryStore;

namespace {
void Check(bool ok) {
  if (!ok) std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Malformed strings are expected here: keep protobuf's parse complaints quiet.
  static const bool quiet = [] {
    google::protobuf::SetLogHandler([](google::protobuf::LogLevel, const char*, int, const std::string&) {});
    return true;
  }();
  (void)quiet;
  static const lifecycle::projections::DomainConfig config;
  MemoryStore store;
  lifecycle::projections::PartitionProjector proj(&config, FreshMeta(0), &store);
  int64_t offset = 0;
  size_t i = 0;
  while (i < size) {
    const size_t len = std::min<size_t>(data[i], size - i - 1);
    const std::string record(reinterpret_cast<const char*>(data + i + 1), len);
    i += 1 + len;
    Check(proj.Apply(offset++, record).ok());
    if (offset % 3 == 0) {
      store.Commit(proj.Pending());
      proj.MarkCommitted();
    }
  }
  store.Commit(proj.Pending());
  proj.MarkCommitted();
  int64_t customers = 0;
  for (const auto& [id, bytes] : store.records) {
    const lifecycle::v1::CustomerView v = store.View(id);
    ++customers;
    Check(v.loyalty().total() >= 0 && v.loyalty().total() <= 10);
    Check(v.loyalty().total() == v.loyalty().satisfaction() + v.loyalty().regular_maintenance() +
                                     v.loyalty().event_participation() + v.loyalty().advocacy());
    Check(v.points().balance() >= 0);
    for (const auto& lot : v.points().lots()) Check(lot.remaining() > 0);
    Check(v.p_alive() >= 0 && v.p_alive() <= 1);
  }
  Check(store.Counter("customers/all") == customers);
  return 0;
}
