#include "services/lifecycled/domain_config.h"

#include <fstream>
#include <map>
#include <sstream>
#include <toml++/toml.h>

#include "absl/strings/str_cat.h"

namespace lifecycle::daemon {
namespace {

using projections::ConfigParam;
using projections::DomainConfig;
using Value = std::variant<int64_t, double, std::string, std::vector<int64_t>>;

absl::Status Bad(const std::string& origin, const std::string& key, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(origin, ": ", key, ": ", what));
}

absl::StatusOr<Value> Convert(const toml::node& node, const ConfigParam& p,
                              const std::string& origin) {
  auto in_range = [&](double v) { return v >= p.min && v <= p.max; };
  auto range = [&] { return absl::StrCat("must be between ", p.min, " and ", p.max); };
  switch (p.type) {
    case ConfigParam::Type::kInt: {
      auto v = node.value<int64_t>();
      if (!node.is_integer() || !v) return Bad(origin, p.key, "must be an integer");
      if (!in_range(static_cast<double>(*v))) {
        return Bad(origin, p.key, absl::StrCat(*v, " is out of range: ", range()));
      }
      return Value(*v);
    }
    case ConfigParam::Type::kDouble: {
      if (!node.is_number()) return Bad(origin, p.key, "must be a number");
      const double v = *node.value<double>();
      if (!in_range(v)) return Bad(origin, p.key, absl::StrCat(v, " is out of range: ", range()));
      return Value(v);
    }
    case ConfigParam::Type::kString: {
      if (!node.is_string()) return Bad(origin, p.key, "must be a string");
      std::string v = *node.value<std::string>();
      if (v.size() < p.min || v.size() > p.max) {
        return Bad(origin, p.key, absl::StrCat("must be ", p.min, " to ", p.max, " characters"));
      }
      return Value(std::move(v));
    }
    case ConfigParam::Type::kIntList: {
      const toml::array* arr = node.as_array();
      if (!arr) return Bad(origin, p.key, "must be an array of integers");
      std::vector<int64_t> out;
      for (const auto& el : *arr) {
        if (!el.is_integer()) return Bad(origin, p.key, "must be an array of integers");
        const int64_t v = *el.value<int64_t>();
        if (!in_range(static_cast<double>(v))) {
          return Bad(origin, p.key, absl::StrCat(v, " is out of range: ", range()));
        }
        out.push_back(v);
      }
      return Value(std::move(out));
    }
  }
  return Bad(origin, p.key, "unsupported type");
}

}  // namespace

absl::StatusOr<DomainConfig> ParseDomainConfig(const std::string& text, const std::string& origin) {
  toml::table root;
  try {
    root = toml::parse(text, origin);
  } catch (const toml::parse_error& e) {
    const auto& where = e.source().begin;
    return absl::InvalidArgumentError(absl::StrCat(origin, ":", where.line, ":", where.column,
                                                   ": ", std::string(e.description())));
  }
  std::map<std::string, const ConfigParam*> params;
  for (const auto& p : projections::ConfigParams()) params[p.key] = &p;

  DomainConfig config;
  bool has_version = false;
  absl::Status status;
  auto visit = [&](const std::string& key, const toml::node& node) {
    auto it = params.find(key);
    if (it == params.end()) {
      status = Bad(origin, key, "unknown key");
      return;
    }
    auto value = Convert(node, *it->second, origin);
    if (!value.ok()) {
      status = value.status();
      return;
    }
    it->second->set(config, *value);
    if (key == "version") has_version = true;
  };
  for (const auto& [k, node] : root) {
    const std::string key(k.str());
    if (const toml::table* section = node.as_table()) {
      for (const auto& [k2, leaf] : *section) {
        if (!status.ok()) break;
        const std::string full = absl::StrCat(key, ".", std::string(k2.str()));
        if (leaf.is_table()) {
          status = Bad(origin, full, "unknown section");
          break;
        }
        visit(full, leaf);
      }
    } else {
      visit(key, node);
    }
    if (!status.ok()) return status;
  }
  if (!has_version) return Bad(origin, "version", "is required");
  if (absl::Status s = projections::ValidateConfig(config); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(origin, ": ", s.message()));
  }
  return config;
}

absl::StatusOr<DomainConfig> LoadDomainConfig(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read the domain config ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return ParseDomainConfig(ss.str(), path);
}

}  // namespace lifecycle::daemon
