#pragma once
// Loads the domain configuration (thresholds and model parameters) from a TOML file.
// Every key must be one of projections::ConfigParams(); an unknown key, a wrong
// type or a value out of range is refused with a message naming the key.

#include <string>

#include "absl/status/statusor.h"
#include "projections/config.h"

namespace lifecycle::daemon {

absl::StatusOr<projections::DomainConfig> LoadDomainConfig(const std::string& path);
// The same, from text (`origin` names it in messages).
absl::StatusOr<projections::DomainConfig> ParseDomainConfig(const std::string& text,
                                                            const std::string& origin);

}  // namespace lifecycle::daemon
