#pragma once
// Asks a server for its services through gRPC server reflection (for tests that check
// reflection is on). Kept apart from harness.cc: binaries that link gRPC's own
// reflection library must not also link this copy of the reflection protocol.

#include <set>
#include <string>

#include "absl/status/statusor.h"

namespace lifecycle::testing {

absl::StatusOr<std::set<std::string>> ReflectedServices(const std::string& address);

// Calls a unary method the way grpcurl does, knowing nothing of it at compile time:
// asks reflection for the file that defines `service` (and the files it imports),
// builds the request from JSON with dynamic messages, calls
// /<service>/<method>, and returns the response as JSON.
absl::StatusOr<std::string> CallThroughReflection(const std::string& address,
                                                  const std::string& service,
                                                  const std::string& method,
                                                  const std::string& request_json);

}  // namespace lifecycle::testing
