#include "services/api/validation.h"

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "services/store/store.h"

namespace lifecycle::api {

namespace v1 = lifecycle::v1;
using grpc::Status;
using grpc::StatusCode;

namespace {
constexpr size_t kMaxFilterBytes = 128;
}  // namespace

Status Invalid(const std::string& field, const std::string& what) {
  return Status(StatusCode::INVALID_ARGUMENT, absl::StrCat(field, ": ", what));
}

Status CheckFilter(const std::string& field, const std::string& value) {
  if (value.size() > kMaxFilterBytes) {
    return Invalid(field, absl::StrCat("at most ", kMaxFilterBytes, " bytes"));
  }
  if (value.find('/') != std::string::npos) return Invalid(field, "must not contain '/'");
  return Status::OK;
}

Status CheckPageSize(int32_t page_size, const ApiOptions& o, int* out) {
  if (page_size < 0) return Invalid("page_size", "must not be negative");
  *out = page_size == 0 ? o.default_page_size : std::min(page_size, o.max_page_size);
  return Status::OK;
}

// Page tokens: "<kind>|<a>|<b>" in web-safe base64.
std::string EncodeToken(const std::vector<std::string>& parts) {
  std::string out;
  absl::WebSafeBase64Escape(absl::StrJoin(parts, "|"), &out);
  return out;
}
bool DecodeToken(const std::string& token, size_t n, std::vector<std::string>* parts) {
  std::string raw;
  if (!absl::WebSafeBase64Unescape(token, &raw)) return false;
  *parts = absl::StrSplit(raw, absl::MaxSplits('|', static_cast<int>(n) - 1));
  return parts->size() == n;
}

Status CheckAlertFilters(const google::protobuf::RepeatedField<int>& kinds, int min_severity) {
  for (int i = 0; i < kinds.size(); ++i) {
    if (!v1::AlertKind_IsValid(kinds[i]) || kinds[i] == v1::ALERT_KIND_UNSPECIFIED) {
      return Invalid(absl::StrCat("kinds[", i, "]"), absl::StrCat("unknown alert kind ", kinds[i]));
    }
  }
  if (!v1::Severity_IsValid(min_severity)) {
    return Invalid("min_severity", absl::StrCat("unknown severity ", min_severity));
  }
  return Status::OK;
}

Status PlanListCustomers(const v1::ListCustomersRequest& req, const ApiOptions& o,
                         ListPlan* plan) {
  if (Status s = CheckPageSize(req.page_size(), o, &plan->page_size); !s.ok()) return s;
  if (!v1::Stage_IsValid(req.stage())) return Invalid("stage", "unknown stage");
  if (!v1::ValueGrade_IsValid(req.grade())) return Invalid("grade", "unknown grade");
  if (!v1::Tier_IsValid(req.tier())) return Invalid("tier", "unknown tier");
  if (Status s = CheckFilter("region", req.region()); !s.ok()) return s;
  if (Status s = CheckFilter("rfm_segment", req.rfm_segment()); !s.ok()) return s;
  if (Status s = CheckFilter("advisor_id", req.advisor_id()); !s.ok()) return s;
  if (!(req.min_churn_risk() >= 0.0 && req.min_churn_risk() <= 1.0)) {
    return Invalid("min_churn_risk", "must be between 0 and 1");
  }
  if (!v1::CustomerOrder_IsValid(req.order_by())) return Invalid("order_by", "unknown order");
  const v1::CustomerOrder order =
      req.order_by() != v1::CUSTOMER_ORDER_UNSPECIFIED ? req.order_by()
      : req.min_churn_risk() > 0                         ? v1::CUSTOMER_ORDER_CHURN_RISK
                                                         : v1::CUSTOMER_ORDER_ID;
  if (order != v1::CUSTOMER_ORDER_ID) {
    plan->ranked = true;
    auto& q = plan->rank;
    q.order = order == v1::CUSTOMER_ORDER_CHURN_RISK ? store::ListingIndex::Order::kChurnRisk
                                                     : store::ListingIndex::Order::kExpectedValue;
    q.min_churn_risk = req.min_churn_risk();
    q.stage = static_cast<uint8_t>(req.stage());
    q.grade = static_cast<uint8_t>(req.grade());
    q.tier = static_cast<uint8_t>(req.tier());
    q.advisor = req.advisor_id();
    if (!req.page_token().empty()) {
      std::vector<std::string> parts;
      const std::string kind = absl::StrCat("rank:", static_cast<int>(q.order));
      std::pair<std::string, std::string> position;
      if (!DecodeToken(req.page_token(), 2, &parts) || parts[0] != kind) {
        return Invalid("page_token", "not a token of a listing with this order");
      }
      position = absl::StrSplit(parts[1], absl::MaxSplits('|', 1));
      if (!absl::SimpleAtod(position.first, &q.after_score) || position.second.empty()) {
        return Invalid("page_token", "not a token of a listing with this order");
      }
      q.after_id = position.second;
    }
    return Status::OK;
  }
  plan->listing = store::ViewStore::ListingFor(req.stage(), req.grade(), req.tier(), req.region(),
                                               req.rfm_segment(), req.advisor_id());
  const std::string& prefix = plan->listing.prefix;
  if (!req.page_token().empty()) {
    std::vector<std::string> parts;
    if (!DecodeToken(req.page_token(), 2, &parts) || parts[0] != prefix ||
        parts[1].rfind(prefix, 0) != 0) {
      return Invalid("page_token", "not a token of a listing with these filters");
    }
    plan->after = parts[1];
  }
  return Status::OK;
}

std::string RankToken(store::ListingIndex::Order order, const store::ListingIndex::Ranked& last) {
  return EncodeToken({absl::StrCat("rank:", static_cast<int>(order)),
                      absl::StrFormat("%.17g|%s", last.score, last.id)});
}

std::string EncodeAlertCursor(const std::map<int32_t, int64_t>& next_seq) {
  std::vector<std::string> parts = {"a1"};
  for (const auto& [p, s] : next_seq) parts.push_back(absl::StrCat(p, ":", s));
  return EncodeToken({absl::StrJoin(parts, ",")});
}

absl::StatusOr<std::map<int32_t, int64_t>> DecodeAlertCursor(const std::string& cursor) {
  std::string raw;
  if (!absl::WebSafeBase64Unescape(cursor, &raw)) {
    return absl::InvalidArgumentError("not a cursor from this service");
  }
  std::vector<std::string> parts = absl::StrSplit(raw, ',');
  if (parts.empty() || parts[0] != "a1") return absl::InvalidArgumentError("not a cursor from this service");
  std::map<int32_t, int64_t> out;
  for (size_t i = 1; i < parts.size(); ++i) {
    std::vector<std::string> kv = absl::StrSplit(parts[i], ':');
    int32_t p = 0;
    int64_t s = 0;
    if (kv.size() != 2 || !absl::SimpleAtoi(kv[0], &p) || !absl::SimpleAtoi(kv[1], &s) || p < 0 ||
        s < 0) {
      return absl::InvalidArgumentError("not a cursor from this service");
    }
    out[p] = s;
  }
  return out;
}

}  // namespace lifecycle::api
