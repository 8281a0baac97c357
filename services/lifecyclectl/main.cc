// lifecyclectl: the command-line tool for publishing events and querying views.
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/time_util.h"
#include "lifecycle/v1/service.grpc.pb.h"
#include "projections/validate.h"
#include "services/stream/kafka.h"

namespace {

namespace v1 = lifecycle::v1;
using google::protobuf::util::JsonParseOptions;
using google::protobuf::util::JsonPrintOptions;

// Exit codes.
constexpr int kOk = 0;
constexpr int kUsage = 1;
constexpr int kServerError = 2;
constexpr int kRejected = 3;

struct Common {
  std::string brokers = "127.0.0.1:9092";
  std::string topic = "lifecycle.customer-events";
  std::string server = "127.0.0.1:50151";
  int timeout_s = 10;
};

std::string ToJson(const google::protobuf::Message& m) {
  std::string out;
  JsonPrintOptions o;
  o.add_whitespace = true;
  o.preserve_proto_field_names = true;
  auto s = google::protobuf::util::MessageToJsonString(m, &out, o);
  if (!s.ok()) return absl::StrCat("{\"error\": \"", s.ToString(), "\"}");
  return out;
}

int ServerFailure(const std::string& what, const grpc::Status& s, const Common& c) {
  std::fprintf(stderr, "lifecyclectl: %s: %s (%s)\n", what.c_str(), s.error_message().c_str(),
               s.error_code() == grpc::StatusCode::UNAVAILABLE
                   ? absl::StrCat("is lifecycled listening on ", c.server, "?").c_str()
                   : absl::StrCat("code ", static_cast<int>(s.error_code())).c_str());
  return s.error_code() == grpc::StatusCode::NOT_FOUND ||
                 s.error_code() == grpc::StatusCode::INVALID_ARGUMENT
             ? kUsage
             : kServerError;
}

std::shared_ptr<grpc::Channel> Channel(const Common& c) {
  return grpc::CreateChannel(c.server, grpc::InsecureChannelCredentials());
}

void SetDeadline(grpc::ClientContext* ctx, const Common& c) {
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(c.timeout_s));
}

// --- publish

int Publish(const Common& c, const std::string& path) {
  std::ifstream file;
  std::istream* in = &std::cin;
  if (path != "-") {
    file.open(path);
    if (!file) {
      std::fprintf(stderr, "lifecyclectl: cannot open %s\n", path.c_str());
      return kUsage;
    }
    in = &file;
  }
  auto producer = lifecycle::stream::Producer::Create(c.brokers);
  if (!producer.ok()) {
    std::fprintf(stderr, "lifecyclectl: %s\n", producer.status().ToString().c_str());
    return kServerError;
  }
  // The topic must exist (lifecycled creates it); fail fast rather than time out.
  absl::StatusOr<int> partition_count =
      lifecycle::stream::PartitionCount(c.brokers, c.topic, c.timeout_s * 1000);
  if (!partition_count.ok()) {
    std::fprintf(stderr,
                 "lifecyclectl: %s\n(lifecycled creates its topics when it starts; check "
                 "--brokers and --topic)\n",
                 std::string(partition_count.status().message()).c_str());
    return kServerError;
  }
  const int partitions = *partition_count;
  std::map<uint64_t, std::string> rejected;  // line -> reason
  uint64_t line_no = 0, queued = 0;
  const bool tty = isatty(STDERR_FILENO);
  auto last_progress = std::chrono::steady_clock::now();
  std::string line, bytes;
  JsonParseOptions jo;  // unknown fields are errors
  while (std::getline(*in, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    v1::Event ev;
    auto js = google::protobuf::util::JsonStringToMessage(line, &ev, jo);
    if (!js.ok()) {
      rejected[line_no] = absl::StrCat("invalid JSON: ", js.message().as_string());
      continue;
    }
    if (absl::Status s = lifecycle::projections::ValidateEvent(ev); !s.ok()) {
      rejected[line_no] = absl::StrCat("invalid event: ", s.message());
      continue;
    }
    ev.SerializeToString(&bytes);
    absl::Status ps;
    if (ev.has_clock_tick()) {
      for (int p = 0; p < partitions && ps.ok(); ++p) {
        ps = (*producer)->Produce(c.topic, p, "", bytes, line_no);
      }
    } else {
      ps = (*producer)->Produce(c.topic, -1, ev.customer_id(), bytes, line_no);
    }
    if (!ps.ok()) {
      rejected[line_no] = std::string(ps.message());
      continue;
    }
    ++queued;
    if (tty && std::chrono::steady_clock::now() - last_progress > std::chrono::seconds(1)) {
      std::fprintf(stderr, "\r%llu lines read, %llu queued", (unsigned long long)line_no,
                   (unsigned long long)queued);
      last_progress = std::chrono::steady_clock::now();
    }
  }
  if (tty && queued > 0) std::fprintf(stderr, "\r\033[K");
  absl::Status fs = (*producer)->Flush(c.timeout_s * 1000 + 30000);
  for (const auto& d : (*producer)->TakeDeliveries()) {
    if (!d.ok) rejected[d.tag] = absl::StrCat("not delivered: ", d.error);
  }
  uint64_t failed_deliveries = 0;
  for (const auto& [line, why] : rejected) {
    if (why.rfind("not delivered", 0) == 0) ++failed_deliveries;
  }
  const uint64_t published = queued - failed_deliveries;
  std::printf("published %llu event(s) to %s; %zu line(s) rejected\n",
              (unsigned long long)published, c.topic.c_str(), rejected.size());
  for (const auto& [ln, why] : rejected) {
    std::fprintf(stderr, "line %llu: %s\n", (unsigned long long)ln, why.c_str());
  }
  if (!fs.ok()) {
    std::fprintf(stderr, "lifecyclectl: %s\n", fs.ToString().c_str());
    return kServerError;
  }
  return rejected.empty() ? kOk : kRejected;
}

// --- get

std::string Day(const google::protobuf::Timestamp& t) {
  if (t.seconds() == 0 && t.nanos() == 0) return "-";
  return google::protobuf::util::TimeUtil::ToString(t).substr(0, 10);
}

std::string Money(int64_t minor, const std::string& currency) {
  const bool neg = minor < 0;
  uint64_t v = neg ? -static_cast<uint64_t>(minor) : minor;
  std::string units = std::to_string(v / 100);
  for (int i = static_cast<int>(units.size()) - 3; i > 0; i -= 3) units.insert(i, ",");
  char cents[8];
  std::snprintf(cents, sizeof(cents), ".%02llu", static_cast<unsigned long long>(v % 100));
  return absl::StrCat(neg ? "-" : "", units, cents, currency.empty() ? "" : " ", currency);
}

// Enum names without their prefix: STAGE_AT_RISK -> AT_RISK.
std::string Name(const std::string& full, const char* prefix) {
  return full.rfind(prefix, 0) == 0 ? full.substr(std::strlen(prefix)) : full;
}

void PrintCustomer(const v1::GetCustomerResponse& resp, const v1::GetHistoryResponse& history) {
  const v1::CustomerView& v = resp.customer();
  const auto& act = v.activity();
  const auto& pos = resp.freshness().partitions_size() ? resp.freshness().partitions(0)
                                                         : v1::PartitionPosition();
  std::printf("Customer %s%s\n", v.customer_id().c_str(), v.erased() ? "  [personal data erased]" : "");
  std::printf("  as of stream time %s (partition %d, offset %lld); config %s\n",
              google::protobuf::util::TimeUtil::ToString(pos.stream_time()).c_str(), pos.partition(),
              static_cast<long long>(pos.offset()), v.config_version().c_str());
  const auto& p = v.profile();
  std::printf("  %s%s%s | region %s | industry %s | age %s | vehicle %s\n",
              p.has_name() ? p.name().c_str() : "(no name)",
              p.has_phone() ? absl::StrCat(", ", p.phone()).c_str() : "", "",
              p.region().empty() ? "-" : p.region().c_str(),
              p.industry().empty() ? "-" : p.industry().c_str(),
              Name(v1::AgeBand_Name(p.age_band()), "AGE_BAND_").c_str(),
              p.vehicle_model().empty() ? "-" : p.vehicle_model().c_str());
  std::printf("\nStage      %s since %s\n", Name(v1::Stage_Name(v.stage()), "STAGE_").c_str(),
              Day(v.stage_since()).c_str());
  for (const auto& r : v.reasons()) std::printf("  why      %s\n", r.c_str());
  if (!v.suggested_action().empty()) std::printf("  to do    %s\n", v.suggested_action().c_str());
  if (act.activity_days() > 0) {
    std::string when;
    if (v.has_churn_risk_at()) {
      when = absl::StrCat(v.churn_risk_at().seconds() <= v.evaluated_at().seconds()
                              ? "; below the at-risk line since "
                              : "; falls below the at-risk line on ",
                          Day(v.churn_risk_at()));
    }
    std::printf("Churn risk P(alive) %.2f%s\n", v.p_alive(), when.c_str());
  }
  const auto& l = v.loyalty();
  std::printf("Loyalty    %d/10  (satisfaction %d/2, regular maintenance %d/3, events %d/2, "
              "advocacy %d/3)\n",
              l.total(), l.satisfaction(), l.regular_maintenance(), l.event_participation(),
              l.advocacy());
  std::printf("Value      grade %s (%s); spend 12m %s, previous 12m %s, all time %s\n",
              v.grade() == v1::VALUE_GRADE_UNSPECIFIED
                  ? "-"
                  : Name(v1::ValueGrade_Name(v.grade()), "VALUE_GRADE_").c_str(),
              Name(v1::ValueClass_Name(v.value_class()), "VALUE_CLASS_").c_str(),
              Money(v.spend_12m_minor(), act.currency()).c_str(),
              Money(v.spend_prev_12m_minor(), act.currency()).c_str(),
              Money(act.total_spend_minor(), act.currency()).c_str());
  if (!v.rfm().score().empty()) {
    std::printf("RFM        %s %s\n", v.rfm().score().c_str(), v.rfm().segment().c_str());
  }
  const auto& pts = v.points();
  std::printf("Points     balance %lld, qualifying 12m %lld, tier %s", static_cast<long long>(pts.balance()),
              static_cast<long long>(pts.qualifying_12m()),
              Name(v1::Tier_Name(pts.tier()), "TIER_").c_str());
  if (pts.points_to_keep_tier() > 0) {
    std::printf(" (drops on %s unless %lld more points)", Day(pts.tier_drop_at()).c_str(),
                static_cast<long long>(pts.points_to_keep_tier()));
  }
  std::printf("\nActivity   %d day(s), first %s, last %s; %d purchase(s), %d service visit(s); "
              "%lld events\n",
              act.activity_days(), Day(act.first_activity()).c_str(), Day(act.last_activity()).c_str(),
              act.purchases(), act.service_visits(), static_cast<long long>(act.event_count()));
  if (v.has_maintenance_due()) {
    std::printf("Maintenance due %s (warranty %s)\n", Day(v.maintenance_due()).c_str(),
                Name(v1::WarrantyStatus_Name(v.warranty_status()), "WARRANTY_STATUS_").c_str());
  }
  if (v.follow_ups_size()) {
    std::printf("\nFollow-ups\n");
    for (const auto& t : v.follow_ups()) {
      std::printf("  %-8s %-28s due %s%s\n",
                  Name(v1::TaskStatus_Name(t.status()), "TASK_STATUS_").c_str(),
                  Name(v1::FollowUpKind_Name(t.kind()), "FOLLOW_UP_KIND_").c_str(),
                  Day(t.due_at()).c_str(),
                  t.has_closed_at() ? absl::StrCat(", done ", Day(t.closed_at())).c_str() : "");
    }
  }
  if (v.complaints_size()) {
    std::printf("\nComplaints\n");
    for (const auto& k : v.complaints()) {
      std::printf("  %-10s %-16s %-8s opened %s, %s\n", k.complaint_id().c_str(),
                  k.category().c_str(),
                  Name(v1::ComplaintSeverity_Name(k.severity()), "COMPLAINT_SEVERITY_").c_str(),
                  Day(k.opened_at()).c_str(),
                  k.has_resolved_at()
                      ? absl::StrCat("resolved ", Day(k.resolved_at()),
                                     k.satisfied() ? " (satisfied)" : " (not satisfied)")
                            .c_str()
                      : "OPEN");
    }
  }
  if (v.lost_deals_size()) {
    std::printf("\nLost deals\n");
    for (const auto& d : v.lost_deals()) {
      std::printf("  %s  %s%s\n", Day(d.at()).c_str(),
                  Name(v1::DealLostReason_Name(d.reason()), "DEAL_LOST_REASON_").c_str(),
                  d.competitor().empty() ? "" : absl::StrCat(" (", d.competitor(), ")").c_str());
    }
  }
  std::printf("\nStage history\n");
  for (const auto& t : history.transitions()) {
    std::printf("  %s  %-13s -> %-13s %s\n", Day(t.at()).c_str(),
                Name(v1::Stage_Name(t.from()), "STAGE_").c_str(),
                Name(v1::Stage_Name(t.to()), "STAGE_").c_str(), t.reason().c_str());
  }
  if (history.alerts_size()) {
    std::printf("\nAlerts\n");
    for (const auto& a : history.alerts()) {
      std::string reasons;
      for (const auto& r : a.reasons()) absl::StrAppend(&reasons, reasons.empty() ? "" : "; ", r);
      std::printf("  %s  %-20s %-8s %s -> %s\n", Day(a.at()).c_str(),
                  Name(v1::AlertKind_Name(a.kind()), "ALERT_KIND_").c_str(),
                  Name(v1::Severity_Name(a.severity()), "SEVERITY_").c_str(), reasons.c_str(),
                  a.suggested_action().c_str());
    }
  }
  if (v.has_next_deadline()) {
    std::printf("\nNext re-evaluation without events: %s\n",
                google::protobuf::util::TimeUtil::ToString(v.next_deadline()).c_str());
  }
}

int Get(const Common& c, const std::string& id, bool json) {
  auto stub = v1::CustomerService::NewStub(Channel(c));
  v1::GetCustomerRequest req;
  req.set_customer_id(id);
  v1::GetCustomerResponse resp;
  {
    grpc::ClientContext ctx;
    SetDeadline(&ctx, c);
    grpc::Status s = stub->GetCustomer(&ctx, req, &resp);
    if (!s.ok()) return ServerFailure("get " + id, s, c);
  }
  if (json) {
    std::printf("%s\n", ToJson(resp).c_str());
    return kOk;
  }
  v1::GetHistoryRequest hreq;
  hreq.set_customer_id(id);
  v1::GetHistoryResponse history;
  {
    grpc::ClientContext ctx;
    SetDeadline(&ctx, c);
    grpc::Status s = stub->GetHistory(&ctx, hreq, &history);
    if (!s.ok()) return ServerFailure("history " + id, s, c);
  }
  PrintCustomer(resp, history);
  return kOk;
}

int History(const Common& c, const std::string& id) {
  auto stub = v1::CustomerService::NewStub(Channel(c));
  grpc::ClientContext ctx;
  SetDeadline(&ctx, c);
  v1::GetHistoryRequest req;
  req.set_customer_id(id);
  v1::GetHistoryResponse resp;
  grpc::Status s = stub->GetHistory(&ctx, req, &resp);
  if (!s.ok()) return ServerFailure("history " + id, s, c);
  std::printf("%s\n", ToJson(resp).c_str());
  return kOk;
}

// --- status

int Status(const Common& c, bool json) {
  auto stub = v1::AdminService::NewStub(Channel(c));
  grpc::ClientContext ctx;
  SetDeadline(&ctx, c);
  v1::GetStatusResponse resp;
  grpc::Status s = stub->GetStatus(&ctx, v1::GetStatusRequest(), &resp);
  if (!s.ok()) return ServerFailure("status", s, c);
  if (json) {
    std::printf("%s\n", ToJson(resp).c_str());
    return kOk;
  }
  std::printf("topic %s  group %s  version %s  config %s  uptime %llds  broker %s\n",
              resp.events_topic().c_str(), resp.group_id().c_str(), resp.version().c_str(),
              resp.config_version().c_str(), (long long)resp.uptime_seconds(),
              resp.broker_connected() ? "connected" : "DOWN");
  std::printf("%9s %8s %12s %12s %8s %10s %9s %8s %9s  %s\n", "partition", "assigned", "stored",
              "high-water", "lag", "applied", "rejected", "skipped", "duplicate", "stream time");
  int64_t applied = 0, rejected = 0, lag = 0;
  for (const auto& p : resp.partitions()) {
    const std::string st = p.has_stream_time()
                               ? google::protobuf::util::TimeUtil::ToString(p.stream_time())
                               : "-";
    std::printf("%9d %8s %12lld %12s %8s %10lld %9lld %8lld %9lld  %s\n", p.partition(),
                p.assigned() ? "yes" : "no", (long long)p.stored_offset(),
                p.high_watermark() < 0 ? "-" : std::to_string(p.high_watermark()).c_str(),
                p.lag() < 0 ? "-" : std::to_string(p.lag()).c_str(), (long long)p.events_applied(),
                (long long)p.events_rejected(), (long long)p.events_skipped(),
                (long long)p.events_duplicate(), st.c_str());
    applied += p.events_applied();
    rejected += p.events_rejected();
    if (p.lag() > 0) lag += p.lag();
  }
  std::printf("total: %lld applied, %lld rejected, lag %lld\n", (long long)applied,
              (long long)rejected, (long long)lag);
  return kOk;
}

}  // namespace

int main(int argc, char** argv) {
  Common c;
  CLI::App app{"lifecyclectl — publish customer events to Lifecycle and query its views."};
  app.footer(
      "Exit codes: 0 ok; 1 usage error, unknown customer or invalid argument; 2 server or "
      "broker error; 3 some input lines were rejected (publish).");
  app.require_subcommand(1);
  app.fallthrough();  // global options may also follow the subcommand
  app.add_option("--brokers", c.brokers, "Kafka bootstrap servers (publish)")->capture_default_str();
  app.add_option("--topic", c.topic, "Topic of customer events (publish)")->capture_default_str();
  app.add_option("--server", c.server, "lifecycled gRPC address (get, history, status)")->capture_default_str();
  app.add_option("--timeout", c.timeout_s, "Seconds to wait for the server or broker")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600));

  std::string file;
  auto* publish = app.add_subcommand(
      "publish",
      "Publish events from a JSON Lines file (protobuf JSON mapping of lifecycle.v1.Event, one "
      "per line) to Kafka with an idempotent producer. Prints how many were published and, for "
      "each rejected line, its number and why.");
  publish->add_option("FILE", file, "File to read, or - for standard input")->required();

  std::string id;
  bool get_json = false;
  auto* get = app.add_subcommand(
      "get",
      "Show a customer: stage and why, churn risk, loyalty parts, grade, RFM, points and tier, "
      "follow-ups, complaints, lost deals, stage history and alerts, with the offset and stream "
      "time it reflects.");
  get->add_option("CUSTOMER_ID", id, "The customer id")->required();
  get->add_flag("--json", get_json, "Print the view as JSON (protobuf JSON mapping)");
  auto* history = app.add_subcommand(
      "history", "Print a customer's stage transitions and alerts as JSON.");
  history->add_option("CUSTOMER_ID", id, "The customer id")->required();

  bool json = false;
  auto* status = app.add_subcommand(
      "status", "Print per-partition stored offset, high watermark, lag and event counters.");
  status->add_flag("--json", json, "Print JSON instead of a table");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? kOk : kUsage;
  }
  if (*publish) return Publish(c, file);
  if (*get) return Get(c, id, get_json);
  if (*history) return History(c, id);
  if (*status) return Status(c, json);
  return kUsage;
}
