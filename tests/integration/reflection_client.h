#pragma once
// Asks a server for its services through gRPC server reflection (for tests that check
// reflection is on). Kept apart from harness.cc: binaries that link gRPC's own
// reflection library must not also link this copy of the reflection protocol.

#include <set>
#include <string>

#include "absl/status/statusor.h"

namespace lifecycle::testing {

absl::StatusOr<std::set<std::string>> ReflectedServices(const std::string& address);

}  // namespace lifecycle::testing
