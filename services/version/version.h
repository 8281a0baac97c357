#pragma once
// What this build is: the project version (CMakeLists.txt) and the git commit it was
// built from ("-dirty" when tracked files had changes; "unknown" outside a checkout).

#include <string>

namespace lifecycle {

const char* Version();
const char* GitCommit();

// "<program> <version> (commit <commit>)", for --version.
inline std::string VersionLine(const std::string& program) {
  return program + " " + Version() + " (commit " + GitCommit() + ")";
}

}  // namespace lifecycle
