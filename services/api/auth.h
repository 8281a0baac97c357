#pragma once
// Bearer-token authentication with roles. A request carries
// `authorization: Bearer <token>`; each token grants some of the roles read,
// publish and admin. With no tokens configured, authentication is off.
// Thread-safe (immutable after construction).

#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace grpc {
class ServerContextBase;
}

namespace lifecycle::api {

enum class Role { kRead, kPublish, kAdmin };

struct TokenSpec {
  std::string name;   // for logs, never the token itself
  std::string token;
  std::set<Role> roles;
};

// Parses a TOML tokens file:  [[tokens]] name = "..." token = "..." roles = ["read"].
absl::StatusOr<std::vector<TokenSpec>> LoadTokens(const std::string& path);
absl::StatusOr<std::vector<TokenSpec>> ParseTokens(const std::string& text,
                                                   const std::string& origin);

class Authenticator {
 public:
  explicit Authenticator(std::vector<TokenSpec> tokens) : tokens_(std::move(tokens)) {}
  bool enabled() const { return !tokens_.empty(); }
  // UNAUTHENTICATED when the token is missing or unknown, PERMISSION_DENIED when it
  // lacks `role`.
  absl::Status Check(const grpc::ServerContextBase* context, Role role) const;

 private:
  std::vector<TokenSpec> tokens_;
};

const char* RoleName(Role role);

}  // namespace lifecycle::api
