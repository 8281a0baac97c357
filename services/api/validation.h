#pragma once
// Validation of gRPC requests and the opaque tokens the API hands out. Pure
// functions (no store access), so they can be unit-tested and fuzzed; each error is
// INVALID_ARGUMENT with a message that starts with the field's name.

#include <grpcpp/grpcpp.h>

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "lifecycle/v1/service.pb.h"
#include "services/api/server.h"

namespace lifecycle::api {

grpc::Status Invalid(const std::string& field, const std::string& what);
// A filter value used in index keys: at most 128 bytes, no '/'.
grpc::Status CheckFilter(const std::string& field, const std::string& value);
// 0 means the default; larger than the cap is capped; negative is refused.
grpc::Status CheckPageSize(int32_t page_size, const ApiOptions& o, int* out);
grpc::Status CheckAlertFilters(const google::protobuf::RepeatedField<int>& kinds, int min_severity);

// Page tokens: parts joined by '|' in web-safe base64.
std::string EncodeToken(const std::vector<std::string>& parts);
bool DecodeToken(const std::string& token, size_t n, std::vector<std::string>* parts);

// How a ListCustomers request is served: which index (key prefix) drives it, where
// the page starts, and the page size.
struct ListPlan {
  store::ViewStore::Listing listing;  // which index keys list the customers
  std::string after;                  // the page token's last key
  int page_size = 0;
  // Ordered by churn risk or expected value (ViewStore::Rank) instead of an index;
  // the page token's position is rank.after_score / rank.after_id.
  bool ranked = false;
  store::ListingIndex::RankQuery rank;
};
// The page token of a ranked listing after `last`.
std::string RankToken(store::ListingIndex::Order order, const store::ListingIndex::Ranked& last);
grpc::Status PlanListCustomers(const lifecycle::v1::ListCustomersRequest& req, const ApiOptions& o,
                               ListPlan* plan);

}  // namespace lifecycle::api
