#pragma once
// Short names of the schema's enums, as counters, index keys and summaries use them:
// "STAGE_NEW" -> "NEW". The one place that strips enum prefixes.

#include <string>
#include <string_view>

#include "lifecycle/v1/view.pb.h"

namespace lifecycle::projections {

// `name` without `prefix` (unchanged if it does not start with it).
inline std::string StripPrefix(const std::string& name, std::string_view prefix) {
  if (name.compare(0, prefix.size(), prefix) == 0) return name.substr(prefix.size());
  return name;
}

inline std::string StageShort(int v) {
  return StripPrefix(lifecycle::v1::Stage_Name(static_cast<lifecycle::v1::Stage>(v)), "STAGE_");
}
inline std::string GradeShort(int v) {
  return StripPrefix(lifecycle::v1::ValueGrade_Name(static_cast<lifecycle::v1::ValueGrade>(v)),
                     "VALUE_GRADE_");
}
inline std::string ValueClassShort(int v) {
  return StripPrefix(lifecycle::v1::ValueClass_Name(static_cast<lifecycle::v1::ValueClass>(v)),
                     "VALUE_CLASS_");
}
inline std::string TierShort(int v) {
  return StripPrefix(lifecycle::v1::Tier_Name(static_cast<lifecycle::v1::Tier>(v)), "TIER_");
}
inline std::string AlertKindShort(int v) {
  return StripPrefix(lifecycle::v1::AlertKind_Name(static_cast<lifecycle::v1::AlertKind>(v)),
                     "ALERT_KIND_");
}
inline std::string DealLostReasonShort(int v) {
  return StripPrefix(
      lifecycle::v1::DealLostReason_Name(static_cast<lifecycle::v1::DealLostReason>(v)),
      "DEAL_LOST_REASON_");
}
inline std::string AgeBandShort(int v) {
  return StripPrefix(lifecycle::v1::AgeBand_Name(static_cast<lifecycle::v1::AgeBand>(v)),
                     "AGE_BAND_");
}
inline std::string WarrantyStatusShort(int v) {
  return StripPrefix(
      lifecycle::v1::WarrantyStatus_Name(static_cast<lifecycle::v1::WarrantyStatus>(v)),
      "WARRANTY_STATUS_");
}

}  // namespace lifecycle::projections
