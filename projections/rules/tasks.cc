// Follow-ups: maintenance falls due maintenance_interval_days after the last service
// visit or the sale and is overdue past the grace (MAINTENANCE_OVERDUE once per due
// date); a task open followup_grace_days past due is overdue (FOLLOWUP_OVERDUE once).
#include "projections/rules/families.h"

namespace lifecycle::projections::rules {

namespace v1 = lifecycle::v1;

int64_t MaintenanceDue(const DomainConfig& c, const CustomerRecord& r) {
  if (!r.has_vehicle) return 0;
  return std::max(r.last_service_at, r.last_sale_at) + c.maintenance_interval_days * kDay;
}

void RunMaintenance(Eval& ev) {
  CustomerRecord& r = ev.r;
  r.stage_flags &= ~kMaintenanceOverdue;
  r.due[kMaintenanceFamily] = kNever;
  if (!r.has_vehicle) return;
  const int64_t due = MaintenanceDue(ev.c, r);
  const int64_t grace_ends = due + ev.c.maintenance_grace_days * kDay;
  if (!IsPast(ev.now, grace_ends)) {
    r.due[kMaintenanceFamily] = FirstInstantPast(grace_ends);
    return;
  }
  r.stage_flags |= kMaintenanceOverdue;
  if (r.maintenance_alerted_due == due) return;
  r.maintenance_alerted_due = due;
  ev.raise.push_back(NewAlert(ev, v1::ALERT_KIND_MAINTENANCE_OVERDUE, v1::SEVERITY_WARNING,
                              {.kind = Discriminator::kNumber, .number = due},
                              {{.code = ReasonCode::kMaintenanceWasDue, .a = (ev.now - due) / kDay}}));
}

void RunTasks(Eval& ev) {
  NextDeadline next(ev.now);
  for (auto& t : ev.r.tasks) {
    if (t.status == v1::TASK_STATUS_DONE) continue;
    const int64_t grace_ends = t.due_at + ev.c.followup_grace_days * kDay;
    if (!IsPast(ev.now, grace_ends)) {
      next.Offer(FirstInstantPast(grace_ends));
      continue;
    }
    if (t.status == v1::TASK_STATUS_OVERDUE) continue;
    t.status = v1::TASK_STATUS_OVERDUE;
    ev.raise.push_back(NewAlert(
        ev, v1::ALERT_KIND_FOLLOWUP_OVERDUE, v1::SEVERITY_INFO,
        {.kind = Discriminator::kTask, .text = t.origin, .number = t.kind},
        {{.code = ReasonCode::kTaskDaysOverdue, .a = t.kind, .b = (ev.now - t.due_at) / kDay}}));
  }
  ev.r.due[kTasksFamily] = next.get();
}

}  // namespace lifecycle::projections::rules
