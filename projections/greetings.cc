#include "projections/greetings.h"

#include <algorithm>

#include "lifecycle/v1/events.pb.h"
#include "lifecycle/v1/view.pb.h"
#include "projections/time.h"

namespace lifecycle::projections {
namespace {

namespace v1 = lifecycle::v1;

bool Leap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int DaysIn(int64_t year, int month) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return month == 2 && Leap(year) ? 29 : kDays[month - 1];
}

// The greeting days of one year: (day since the epoch, kind).
void DaysOfYear(const DomainConfig& c, uint16_t birthday, int64_t year,
                std::vector<std::pair<int64_t, uint8_t>>* out) {
  if (birthday != 0) {
    out->emplace_back(DayOfDate(year, birthday / 100, birthday % 100),
                      v1::FOLLOW_UP_KIND_BIRTHDAY_GREETING);
  }
  for (int64_t h : c.greeting_holidays) {
    const int64_t only = h / 10000;
    if (only != 0 && only != year) continue;
    const int md = static_cast<int>(h % 10000);
    out->emplace_back(DayOfDate(year, md / 100, md % 100), v1::FOLLOW_UP_KIND_HOLIDAY_GREETING);
  }
}

}  // namespace

uint16_t BirthdayOf(std::string_view t) {
  if (t.size() == 10 && t[4] == '-') t.remove_prefix(5);
  if (t.size() != 5 || t[2] != '-') return 0;
  for (size_t i : {0, 1, 3, 4}) {
    if (t[i] < '0' || t[i] > '9') return 0;
  }
  const int month = (t[0] - '0') * 10 + (t[1] - '0');
  const int day = (t[3] - '0') * 10 + (t[4] - '0');
  if (month < 1 || month > 12 || day < 1 || day > DaysIn(2000, month)) return 0;
  return static_cast<uint16_t>(month * 100 + day);
}

int64_t DayOfDate(int64_t year, int month, int day) {
  day = std::min(day, DaysIn(year, month));
  // Days from 1970-01-01 of a civil date: count in 400-year eras starting in March.
  const int64_t y = month <= 2 ? year - 1 : year;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

int64_t YearOfDay(int64_t day) {
  int64_t year = 1970 + day / 366;
  while (DayOfDate(year + 1, 1, 1) <= day) ++year;
  while (DayOfDate(year, 1, 1) > day) --year;
  return year;
}

bool IsGreeting(int kind) {
  return kind == v1::FOLLOW_UP_KIND_HOLIDAY_GREETING || kind == v1::FOLLOW_UP_KIND_BIRTHDAY_GREETING;
}

void RecordGreeting(const DomainConfig& c, uint8_t kind, int64_t at, CustomerRecord* r) {
  auto& g = r->greetings;
  auto it = std::upper_bound(g.begin(), g.end(), at,
                             [](int64_t t, const GreetingContact& x) { return t < x.at; });
  g.insert(it, GreetingContact{.at = at, .kind = kind});
  if (static_cast<int>(g.size()) > c.max_greetings) {
    g.erase(g.begin(), g.end() - c.max_greetings);
  }
}

std::vector<Greeting> GreetingsOf(const DomainConfig& c, const CustomerRecord& r, int64_t now) {
  std::vector<Greeting> out;
  if (r.erased || !r.has_activity()) return out;
  const int64_t first_active = SecondsOf(r.first_activity_ns);
  const int64_t today = EpochDay(now);
  std::vector<std::pair<int64_t, uint8_t>> days;
  const int64_t year = YearOfDay(today);
  for (int64_t y = year - 1; y <= year; ++y) DaysOfYear(c, r.birthday, y, &days);
  std::sort(days.begin(), days.end());
  days.erase(std::unique(days.begin(), days.end()), days.end());
  const int64_t expiry = static_cast<int64_t>(c.greeting_expiry_days) * kDay;
  std::vector<bool> used(r.greetings.size(), false);
  for (const auto& [day, kind] : days) {
    const int64_t due = day * kDay;
    if (due >= now) break;  // strict: due once time is past its instant
    // For a customer with activity before the greeting's instant.
    if (due <= now - 365 * kDay || due <= first_active) continue;
    Greeting g{.kind = kind, .due = due, .status = v1::TASK_STATUS_OPEN};
    for (size_t i = 0; i < r.greetings.size(); ++i) {
      const GreetingContact& x = r.greetings[i];
      if (used[i] || x.kind != kind || x.at < due || x.at > due + expiry || x.at > now) continue;
      used[i] = true;
      g.status = v1::TASK_STATUS_DONE;
      g.closed_at = x.at;
      break;
    }
    // "Not done within" the expiry: missed once it is past (strict, as every deadline).
    if (g.status == v1::TASK_STATUS_OPEN && now > due + expiry) {
      g.status = v1::TASK_STATUS_MISSED;
      g.closed_at = due + expiry;
    }
    out.push_back(g);
  }
  return out;
}

}  // namespace lifecycle::projections
