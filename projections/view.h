#pragma once
// Views built when read: the protobuf answers of the API assembled from a customer's
// record, profile and history, with the words of reasons, actions and alerts. The
// one place where codes become words.

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "lifecycle/v1/view.pb.h"
#include "projections/config.h"
#include "projections/history.h"
#include "projections/record.h"

namespace lifecycle::projections {

// The dictionary texts a view or an alert needs, by TextHash (a missing one reads as "").
using Texts = std::unordered_map<uint64_t, std::string>;

// An alert of a customer as its history index keeps it: enough to give its id.
struct AlertRef {
  uint8_t kind = 0;
  int64_t offset = 0;
  Discriminator disc;
};
void EncodeAlertRef(const AlertRef& a, std::string* out);
bool DecodeAlertRef(std::string_view bytes, AlertRef* a);

// Everything a customer's view is made of.
struct CustomerParts {
  const std::string* id = nullptr;
  const CustomerRecord* record = nullptr;
  const lifecycle::v1::Profile* profile = nullptr;  // null: no profile event yet
  std::vector<TransitionEntry> transitions;         // the newest, oldest first
  std::vector<LostDealEntry> lost_deals;            // the newest, oldest first
  std::vector<AlertRef> alerts;                     // the newest, oldest first
};

// How many of the newest history entries a view shows.
inline constexpr int kViewAlerts = 20;

// The texts BuildView will look up.
std::vector<uint64_t> TextsOf(const CustomerParts& parts);
// Builds the view into `out` (empty; it may be on an arena, as GetCustomer's answer is).
void BuildView(const DomainConfig& config, const CustomerParts& parts, const Texts& texts,
               lifecycle::v1::CustomerView* out);
inline lifecycle::v1::CustomerView BuildView(const DomainConfig& config, const CustomerParts& parts,
                                             const Texts& texts) {
  lifecycle::v1::CustomerView v;
  BuildView(config, parts, texts, &v);
  return v;
}

// P(alive), expected value and greetings in `view` as of `stream_time` (seconds; the
// partition's), when that is later than the evaluation the view was built at: they
// change with time alone (P(alive) falls while the customer is silent; a greeting
// falls due, or is missed).
void PAliveAsOf(const DomainConfig& config, const CustomerRecord& record, int64_t stream_time,
                lifecycle::v1::CustomerView* view);

std::vector<uint64_t> TextsOf(const AlertEntry& alert);
lifecycle::v1::Alert BuildAlert(const AlertEntry& alert, const Texts& texts);

void BuildTransition(const TransitionEntry& t, const Texts& texts,
                     lifecycle::v1::StageTransition* out);

// A deterministic alert id from its parts (hex of a 64-bit FNV-1a hash).
std::string AlertId(const std::string& customer_id, lifecycle::v1::AlertKind kind, int64_t offset,
                    const std::string& discriminator);

// Words.
std::string ReasonText(const Reason& r, const Texts& texts);
const char* TaskWords(int kind);
const char* DealLostReasonWords(int reason);

}  // namespace lifecycle::projections
