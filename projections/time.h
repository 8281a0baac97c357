#pragma once
// Time helpers every rule family uses. Times are seconds since the Unix epoch (UTC)
// unless a name says otherwise; days are whole days since the epoch.

#include <cmath>
#include <cstdint>

namespace lifecycle::projections {

inline constexpr int64_t kDay = 86400;
// No deadline.
inline constexpr int64_t kNever = INT64_MAX;

// Days since the epoch of a time in seconds (floored, also before 1970).
constexpr int64_t EpochDay(int64_t s) { return s >= 0 ? s / kDay : -((-s + kDay - 1) / kDay); }

// Seconds at which `days` (a possibly fractional number of days after `origin`) is
// reached, rounded up so that "at or after" holds exactly; kNever if absurd.
inline int64_t DeadlineAfter(int64_t origin, double days) {
  if (!std::isfinite(days) || days > 1e6) return kNever;
  return origin + static_cast<int64_t>(std::ceil(days * static_cast<double>(kDay)));
}

// Event times keep their nanoseconds: one int64 of nanoseconds since the epoch
// (events are validated to 2000..2100, well inside its range).
constexpr int64_t ToNanos(int64_t seconds, int32_t nanos) {
  return seconds * 1000000000 + nanos;
}
constexpr int64_t SecondsOf(int64_t ns) {
  return ns >= 0 ? ns / 1000000000 : -((-ns + 999999999) / 1000000000);
}
constexpr int32_t NanosOf(int64_t ns) {
  return static_cast<int32_t>(ns - SecondsOf(ns) * 1000000000);
}

// The earliest of the deadlines offered after `now`.
class NextDeadline {
 public:
  explicit NextDeadline(int64_t now) : now_(now) {}
  void Offer(int64_t t) {
    if (t > now_ && t < next_) next_ = t;
  }
  int64_t get() const { return next_; }

 private:
  int64_t now_;
  int64_t next_ = kNever;
};

}  // namespace lifecycle::projections
