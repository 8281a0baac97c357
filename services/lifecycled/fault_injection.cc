#include "services/lifecycled/fault_injection.h"

#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <memory>
#include <random>

#include "spdlog/spdlog.h"

namespace lifecycle::daemon {

std::function<void(bool after_write)> KillInCommitHookFromEnv() {
  const char* v = std::getenv("LIFECYCLE_FAULT_KILL_IN_COMMIT_PERMILLE");
  const int permille = v ? std::atoi(v) : 0;
  if (permille <= 0) return nullptr;
  auto rng = std::make_shared<std::mt19937>(
      static_cast<uint32_t>(::getpid()) ^
      static_cast<uint32_t>(std::chrono::steady_clock::now().time_since_epoch().count()));
  return [permille, rng](bool after_write) {
    if (static_cast<int>((*rng)() % 1000) < permille && ((*rng)() % 2 == 0) == after_write) {
      spdlog::get("lifecycled")->warn("fault injection: killed {} the RocksDB write",
                                      after_write ? "after" : "before");
      spdlog::default_logger()->flush();
      std::raise(SIGKILL);
    }
  };
}

}  // namespace lifecycle::daemon
