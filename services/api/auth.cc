#include "services/api/auth.h"

#include <grpcpp/grpcpp.h>

#include <fstream>
#include <sstream>
#include <toml++/toml.h>

#include "absl/strings/str_cat.h"

namespace lifecycle::api {
namespace {

// Compares without an early exit, so timing does not reveal how much matched.
bool SameSecret(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;  // the length is not the secret
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

}  // namespace

const char* RoleName(Role role) {
  switch (role) {
    case Role::kRead: return "read";
    case Role::kPublish: return "publish";
    case Role::kAdmin: return "admin";
  }
  return "?";
}

absl::StatusOr<std::vector<TokenSpec>> ParseTokens(const std::string& text,
                                                   const std::string& origin) {
  toml::table root;
  try {
    root = toml::parse(text, origin);
  } catch (const toml::parse_error& e) {
    return absl::InvalidArgumentError(absl::StrCat(origin, ":", e.source().begin.line, ": ",
                                                   std::string(e.description())));
  }
  std::vector<TokenSpec> out;
  for (const auto& [k, node] : root) {
    if (k.str() != "tokens") {
      return absl::InvalidArgumentError(absl::StrCat(origin, ": ", std::string(k.str()), ": unknown key"));
    }
  }
  const toml::array* arr = root["tokens"].as_array();
  if (!arr) return absl::InvalidArgumentError(absl::StrCat(origin, ": tokens: expected [[tokens]] tables"));
  int i = 0;
  for (const auto& el : *arr) {
    const std::string where = absl::StrCat(origin, ": tokens[", i++, "]");
    const toml::table* t = el.as_table();
    if (!t) return absl::InvalidArgumentError(absl::StrCat(where, ": must be a table"));
    TokenSpec spec;
    for (const auto& [key, value] : *t) {
      const std::string name(key.str());
      if (name == "name" && value.is_string()) {
        spec.name = *value.value<std::string>();
      } else if (name == "token" && value.is_string()) {
        spec.token = *value.value<std::string>();
      } else if (name == "roles" && value.is_array()) {
        for (const auto& r : *value.as_array()) {
          const std::string role = r.value<std::string>().value_or("");
          if (role == "read") {
            spec.roles.insert(Role::kRead);
          } else if (role == "publish") {
            spec.roles.insert(Role::kPublish);
          } else if (role == "admin") {
            spec.roles.insert(Role::kAdmin);
          } else {
            return absl::InvalidArgumentError(
                absl::StrCat(where, ".roles: unknown role \"", role, "\" (read, publish, admin)"));
          }
        }
      } else {
        return absl::InvalidArgumentError(absl::StrCat(where, ".", name, ": unknown key or wrong type"));
      }
    }
    if (spec.token.size() < 16) {
      return absl::InvalidArgumentError(absl::StrCat(where, ".token: at least 16 characters"));
    }
    if (spec.roles.empty()) return absl::InvalidArgumentError(absl::StrCat(where, ".roles: empty"));
    out.push_back(std::move(spec));
  }
  return out;
}

absl::StatusOr<std::vector<TokenSpec>> LoadTokens(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read the tokens file ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return ParseTokens(ss.str(), path);
}

absl::Status Authenticator::Check(const grpc::ServerContextBase* context, Role role) const {
  if (tokens_.empty()) return absl::OkStatus();
  const auto& md = context->client_metadata();
  auto it = md.find("authorization");
  if (it == md.end()) {
    return absl::UnauthenticatedError("missing \"authorization: Bearer <token>\" metadata");
  }
  const std::string value(it->second.data(), it->second.size());
  constexpr std::string_view kBearer = "Bearer ";
  if (value.rfind(kBearer, 0) != 0) {
    return absl::UnauthenticatedError("authorization metadata must be \"Bearer <token>\"");
  }
  const std::string token = value.substr(kBearer.size());
  for (const auto& t : tokens_) {
    if (!SameSecret(token, t.token)) continue;
    if (t.roles.count(role)) return absl::OkStatus();
    return absl::PermissionDeniedError(
        absl::StrCat("token \"", t.name, "\" lacks the ", RoleName(role), " role"));
  }
  return absl::UnauthenticatedError("unknown token");
}

}  // namespace lifecycle::api
