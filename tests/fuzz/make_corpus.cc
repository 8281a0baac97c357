// Writes the seed corpora of the fuzz targets (committed under tests/fuzz/corpus/).
//   make_fuzz_corpus OUT_DIR
#include <filesystem>
#include <fstream>
#include <string>

#include "lifecycle/v1/service.pb.h"
#include "services/api/server.h"
#include "tests/projections/test_events.h"

using namespace lifecycle::testing;  // NOLINT
namespace v1 = lifecycle::v1;

namespace {
void Write(const std::filesystem::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary);
  out << bytes;
}
// A fold input: records, each behind a 1-byte length.
std::string Records(const std::vector<v1::Event>& events) {
  std::string out;
  for (const auto& e : events) {
    std::string b = e.SerializeAsString();
    if (b.size() > 255) continue;
    out.push_back(static_cast<char>(b.size()));
    out += b;
  }
  return out;
}
}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  const std::filesystem::path root(argv[1]);
  std::filesystem::create_directories(root / "fold");
  std::filesystem::create_directories(root / "requests");
  const int64_t D = kDay;
  Write(root / "fold" / "prospect", Records({Registered("e1", "c", kT0), Lead("e2", "c", kT0 + D),
                                             Lost("e3", "c", kT0 + 2 * D, v1::DEAL_LOST_REASON_PRICE)}));
  Write(root / "fold" / "buyer", Records({VehicleSale("e1", "c", kT0, 20000000, "O1"),
                                          Contact("e2", "c", kT0 + 3 * D, v1::FOLLOW_UP_KIND_CALLBACK_3_DAY),
                                          Service("e3", "c", kT0 + 190 * D, 50000),
                                          Survey("e4", "c", kT0 + 191 * D, 9),
                                          Tick("t1", kT0 + 400 * D)}));
  Write(root / "fold" / "points", Records({Purchase("e1", "c", kT0, 600000), Redeem("e2", "c", kT0 + D, 2000),
                                           Refund("e3", "c", kT0 + 2 * D, 1000), Tick("t", kT0 + 700 * D)}));
  Write(root / "fold" / "complaint", Records({Purchase("e1", "c", kT0, 100), ComplaintOpened("e2", "c", kT0, "K1"),
                                              Tick("t", kT0 + 9 * D), ComplaintClosed("e3", "c", kT0 + 10 * D, "K1"),
                                              Campaign("e4", "c", kT0 + 11 * D), Referred("e5", "c", kT0 + 12 * D, true),
                                              Erase("e6", "c", kT0 + 13 * D)}));
  int n = 0;
  for (const auto& rec : MessyLog(3, 40, 4)) {
    if (rec.size() > 255) continue;
    Write(root / "fold" / ("messy" + std::to_string(n++)), std::string(1, static_cast<char>(rec.size())) + rec);
  }
  auto request = [&](char kind, const google::protobuf::Message& m, const std::string& name) {
    Write(root / "requests" / name, std::string(1, kind) + m.SerializeAsString());
  };
  v1::ListCustomersRequest list;
  list.set_stage(v1::STAGE_AT_RISK);
  list.set_page_size(20);
  request(0, list, "list-stage");
  list.Clear();
  list.set_min_churn_risk(0.4);
  list.set_page_token(lifecycle::api::EncodeAlertCursor({{0, 3}}));
  request(0, list, "list-risk");
  v1::SubscribeRequest sub;
  sub.add_kinds(v1::ALERT_KIND_CHURNED);
  sub.set_region("east");
  sub.set_cursor(lifecycle::api::EncodeAlertCursor({{0, 10}, {3, 2}}));
  request(1, sub, "subscribe");
  v1::ListAlertsRequest la;
  la.set_customer_id("c1");
  la.set_page_size(5);
  request(2, la, "list-alerts");
  v1::PublishEventsRequest pub;
  *pub.add_events() = Purchase("e1", "c", kT0, 100);
  *pub.add_events() = Purchase("e2", "", kT0, -1);
  request(3, pub, "publish");
  v1::GetCustomerRequest get;
  get.set_customer_id("C1001");
  request(4, get, "get");
  Write(root / "requests" / "token", std::string(1, 5) + lifecycle::api::EncodeAlertCursor({{1, 1}}));
  return 0;
}
