#pragma once
// Greetings (节日关怀, DOMAIN.md "Follow-ups"): a birthday greeting on the profile's
// birthday each year and a holiday greeting on each configured holiday, due 00:00 UTC
// on the day, for customers with activity by then. They are a calendar, not state:
// the record keeps only the greetings done (FollowUpContact of a greeting kind), and
// a view derives each greeting's status when it is read — done, open, or MISSED once
// more than greeting_expiry_days have passed without one (no alert). So greetings
// cost the fold nothing: no task is stored and no deadline wakes a customer for them.

#include <cstdint>
#include <string_view>
#include <vector>

#include "projections/config.h"
#include "projections/record.h"

namespace lifecycle::projections {

// month * 100 + day of a "YYYY-MM-DD" or "MM-DD" birthday; 0 when it is not a date.
uint16_t BirthdayOf(std::string_view text);

// Days since the epoch of a calendar date (proleptic Gregorian, UTC). 29 February in
// a year without one is 28 February (a birthday's rule).
int64_t DayOfDate(int64_t year, int month, int day);
// The calendar year of a day since the epoch.
int64_t YearOfDay(int64_t day);

bool IsGreeting(int follow_up_kind);

// Remembers a greeting done at `at` (seconds), oldest first, at most
// config.max_greetings.
void RecordGreeting(const DomainConfig& config, uint8_t kind, int64_t at, CustomerRecord* r);

struct Greeting {
  uint8_t kind = 0;    // lifecycle.v1.FollowUpKind
  int64_t due = 0;     // seconds: 00:00 UTC of the day
  uint8_t status = 0;  // lifecycle.v1.TaskStatus: OPEN, DONE or MISSED
  int64_t closed_at = 0;  // the contact (DONE) or the end of the expiry (MISSED)
};

// The customer's greetings as of `now` (seconds): those due in the 365 days up to
// `now` (a greeting shows from its day on), in due order. A contact of a greeting's kind
// done on its day or within greeting_expiry_days after it closes it (the earliest
// open one first). None for an erased customer or one without activity.
std::vector<Greeting> GreetingsOf(const DomainConfig& config, const CustomerRecord& r,
                                  int64_t now);

}  // namespace lifecycle::projections
