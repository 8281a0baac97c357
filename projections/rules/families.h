#pragma once
// The rule families of DOMAIN.md, one small unit each, run over a CustomerRecord at
// stream time `now`. An event or a due deadline says which families run (Mask);
// Evaluate (fold.h) runs them in this order, which is also the order of the alerts
// they raise: windows, points, complaints, maintenance, tasks, churn, loyalty,
// value, stage, alerts.
//
// A family with deadlines keeps its next one in record.due[family]; a family runs
// when an event can change its inputs, when its deadline has come, or when a family
// it depends on ran. A family that does not run would compute what it computed last.

#include <cstdint>
#include <vector>

#include "lifecycle/v1/view.pb.h"
#include "projections/config.h"
#include "projections/history.h"
#include "projections/record.h"
#include "projections/rules.h"

namespace lifecycle::projections::rules {

enum Run : uint16_t {
  kRunWindows = 1 << 0,
  kRunPoints = 1 << 1,
  kRunComplaints = 1 << 2,
  kRunMaintenance = 1 << 3,
  kRunTasks = 1 << 4,
  kRunChurn = 1 << 5,
  kRunLoyalty = 1 << 6,
  kRunValue = 1 << 7,
  kRunStage = 1 << 8,
  kRunAlerts = 1 << 9,
  kRunAll = (1 << 10) - 1,
};

// The families that depend on those in `mask`, added to it.
uint16_t WithDependents(uint16_t mask);

// One evaluation: the config, the moment, the record and where alerts go. Alerts are
// collected in `raise` and handed out at the end, carrying the P(alive) and loyalty
// of this evaluation.
struct Eval {
  const DomainConfig& c;
  int64_t now;
  int64_t today;
  int64_t offset;
  CustomerRecord& r;
  Effects& fx;
  std::vector<AlertFact> raise;
};

void RunWindows(Eval& ev);
void RunPoints(Eval& ev);
void RunComplaints(Eval& ev);
void RunMaintenance(Eval& ev);
void RunTasks(Eval& ev);
void RunChurn(Eval& ev);
void RunLoyalty(Eval& ev);
void RunValue(Eval& ev);
void RunStage(Eval& ev);
void RunAlerts(Eval& ev);

// DOMAIN.md: "older than", "more than" and "after N days" are strict. A condition
// due at instant t holds once stream time is past t — from t + 1 (seconds) on, the
// instant its deadline in the due index fires at and its transition or alert carries.
inline bool IsPast(int64_t now, int64_t t) { return now > t; }
inline int64_t FirstInstantPast(int64_t t) { return t == kNever ? kNever : t + 1; }
// Trailing windows are kept per day (days since the epoch): an entry of `day` is in a
// window of `days` while it is at most that many days old — "older than" is strict —
// and leaves it at 00:00 UTC of the day after that.
inline bool InWindow(int64_t day, int64_t today, int64_t days) { return today - day <= days; }
inline int64_t LeavesWindowAt(int64_t day, int64_t days) { return (day + days + 1) * kDay; }

// The record's inputs of P(alive) and expected value.
ChurnInputs ChurnInputsOf(const CustomerRecord& r);
// P(alive) of the record at `now` (0 without activity), in closed form.
double PAliveAt(const DomainConfig& c, const CustomerRecord& r, int64_t now);
// P(alive) over the trailing 24 months up to `now`, from the record's activity days:
// every 7 days and on each activity day, (time in seconds, P(alive)); the last point
// is PAliveAt(now). Times whose last activity lies before the 24-month ring (and is
// not the first activity) are left out: the record does not know it.
std::vector<std::pair<int64_t, double>> PAliveSeries(const DomainConfig& c, const CustomerRecord& r,
                                                     int64_t now);
// When P(alive) falls below `theta` (kNever if it never does, or without activity).
int64_t CrossingAt(const DomainConfig& c, const CustomerRecord& r, double theta);

// Maintenance due time (0 without a vehicle).
int64_t MaintenanceDue(const DomainConfig& c, const CustomerRecord& r);

// Why the customer is where they are at `now` (the record evaluated at `now`): the
// stage's reasons, then one per kind of overdue task, then the tier warning. With
// `first_only`, the first reason only.
std::vector<Reason> StageReasons(const DomainConfig& c, const CustomerRecord& r, int64_t now,
                                 bool first_only = false);

// What to do about the stage (view.h has the words).
enum class Action : uint8_t {
  kNone = 0,
  kReContactNewOffer,
  kFollowUpLead,
  kWinBack,
  kEscalateComplaint,
  kBookMaintenance,
  kPersonalCall,
  kKeepInTouch,
  kReferralProgramme,
  kCompleteCallbacks,
  kRoutineCare,
};
Action StageAction(const DomainConfig& c, const CustomerRecord& r, int64_t now);

// An alert raised now, with the record's region.
AlertFact NewAlert(const Eval& ev, uint8_t kind, uint8_t severity, Discriminator disc,
                   std::vector<Reason> reasons);

}  // namespace lifecycle::projections::rules
