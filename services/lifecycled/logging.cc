#include "services/lifecycled/logging.h"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <memory>

#include "spdlog/pattern_formatter.h"
#include "spdlog/sinks/stdout_color_sinks.h"
#include "spdlog/sinks/stdout_sinks.h"
#include "spdlog/spdlog.h"

namespace lifecycle::daemon {
namespace {

thread_local int32_t t_partition = -1;
thread_local int64_t t_offset = -1;

void AppendJsonString(std::string_view s, std::string* out) {
  out->push_back('"');
  for (const char c : s) {
    switch (c) {
      case '"': out->append("\\\""); break;
      case '\\': out->append("\\\\"); break;
      case '\n': out->append("\\n"); break;
      case '\r': out->append("\\r"); break;
      case '\t': out->append("\\t"); break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", static_cast<unsigned char>(c));
          out->append(buf);
        } else {
          out->push_back(c);  // UTF-8 passes through as it is
        }
    }
  }
  out->push_back('"');
}

class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    const int64_t ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                           msg.time.time_since_epoch())
                           .count();
    const auto level = spdlog::level::to_string_view(msg.level);
    const std::string line =
        JsonLogLine(ms, std::string(level.data(), level.size()),
                    std::string(msg.logger_name.data(), msg.logger_name.size()),
                    std::string(msg.payload.data(), msg.payload.size()), t_partition, t_offset);
    dest.append(line.data(), line.data() + line.size());
    dest.push_back('\n');
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonFormatter>();
  }
};

}  // namespace

std::string JsonLogLine(int64_t unix_ms, const std::string& level, const std::string& logger,
                        const std::string& message, int32_t partition, int64_t offset) {
  const std::time_t secs = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char time_buf[96];
  std::snprintf(time_buf, sizeof(time_buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
                tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(unix_ms % 1000));
  std::string out = "{\"time\":\"";
  out.append(time_buf);
  out.append("\",\"level\":");
  AppendJsonString(level, &out);
  out.append(",\"logger\":");
  AppendJsonString(logger, &out);
  out.append(",\"message\":");
  AppendJsonString(message, &out);
  if (partition >= 0) {
    out.append(",\"partition\":" + std::to_string(partition));
    if (offset >= 0) out.append(",\"offset\":" + std::to_string(offset));
  }
  out.push_back('}');
  return out;
}

LogRecordScope::LogRecordScope(int32_t partition, int64_t offset)
    : saved_partition_(t_partition), saved_offset_(t_offset) {
  t_partition = partition;
  t_offset = offset;
}

LogRecordScope::~LogRecordScope() {
  t_partition = saved_partition_;
  t_offset = saved_offset_;
}

void SetUpLogging(const std::string& level, LogFormat format) {
  spdlog::sink_ptr sink;
  if (format == LogFormat::kJson) {
    sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    sink->set_formatter(std::make_unique<JsonFormatter>());
  } else {
    sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
    sink->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ [%n] %v");
  }
  for (const char* name : {"lifecycled", "projector", "stream", "store", "api"}) {
    auto log = std::make_shared<spdlog::logger>(name, sink);
    log->set_level(spdlog::level::from_str(level));
    spdlog::register_logger(log);
  }
  // Anything logged through the default logger (libraries) goes the same way.
  auto fallback = std::make_shared<spdlog::logger>("lifecycle", sink);
  fallback->set_level(spdlog::level::from_str(level));
  spdlog::set_default_logger(fallback);
}

}  // namespace lifecycle::daemon
