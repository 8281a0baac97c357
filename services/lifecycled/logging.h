#pragma once
// lifecycled's logs: named spdlog loggers on stderr, as text or as one JSON object per
// line (for log collectors), with the partition and offset of the record being handled
// on the logging thread where there is one.

#include <cstdint>
#include <string>

namespace lifecycle::daemon {

enum class LogFormat { kText, kJson };

// Registers the daemon's loggers ("lifecycled", "projector", "stream", "store", "api")
// at `level` (trace, debug, info, warn, error), writing to stderr in `format`.
void SetUpLogging(const std::string& level, LogFormat format);

// While one lives, log lines written on this thread carry "partition" and "offset"
// (JSON format; the text format leaves the message as it is).
class LogRecordScope {
 public:
  LogRecordScope(int32_t partition, int64_t offset);
  ~LogRecordScope();
  LogRecordScope(const LogRecordScope&) = delete;
  LogRecordScope& operator=(const LogRecordScope&) = delete;

 private:
  int32_t saved_partition_;
  int64_t saved_offset_;
};

// One log line as JSON, without the newline (exposed for tests).
std::string JsonLogLine(int64_t unix_ms, const std::string& level, const std::string& logger,
                        const std::string& message, int32_t partition, int64_t offset);

}  // namespace lifecycle::daemon
