// lifecyclectl: the command-line tool for publishing events and querying views.
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_format.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/time_util.h"
#include "lifecycle/v1/service.grpc.pb.h"
#include "projections/names.h"
#include "projections/validate.h"
#include "services/lifecyclectl/fit.h"
#include "services/lifecyclectl/simulate.h"
#include "services/stream/kafka.h"
#include "services/version/version.h"
#include "spdlog/sinks/stdout_sinks.h"
#include "spdlog/spdlog.h"

namespace {

namespace v1 = lifecycle::v1;
using lifecycle::projections::StripPrefix;  // the one enum-name helper (names.h)
using google::protobuf::util::JsonParseOptions;
using google::protobuf::util::JsonPrintOptions;

// Exit codes.
constexpr int kOk = 0;
constexpr int kUsage = 1;        // bad usage, bad input lines, unknown customer, invalid argument
constexpr int kServerError = 2;  // server or broker unreachable, refused or failing

struct Common {
  std::string brokers = "127.0.0.1:9092";
  std::string topic = "lifecycle.customer-events";
  std::string server = "127.0.0.1:50151";
  std::string token;   // bearer token (or $LIFECYCLE_TOKEN)
  std::string tls_ca;  // PEM roots: talk TLS to the server
  int timeout_s = 10;
};

std::string ToJson(const google::protobuf::Message& m, bool pretty = true) {
  std::string out;
  JsonPrintOptions o;
  o.add_whitespace = pretty;
  o.preserve_proto_field_names = true;
  auto s = google::protobuf::util::MessageToJsonString(m, &out, o);
  if (!s.ok()) return absl::StrCat("{\"error\": \"", s.ToString(), "\"}");
  return out;
}

int ServerFailure(const std::string& what, const grpc::Status& s, const Common& c) {
  std::string hint;
  switch (s.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
      hint = absl::StrCat(" (is lifecycled listening on ", c.server, "?)");
      break;
    case grpc::StatusCode::UNAUTHENTICATED:
      hint = " (pass --token or set LIFECYCLE_TOKEN)";
      break;
    case grpc::StatusCode::PERMISSION_DENIED:
      hint = " (the token lacks the role this needs)";
      break;
    default:
      break;
  }
  std::fprintf(stderr, "lifecyclectl: %s: %s%s\n", what.c_str(), s.error_message().c_str(),
               hint.c_str());
  return s.error_code() == grpc::StatusCode::NOT_FOUND ||
                 s.error_code() == grpc::StatusCode::INVALID_ARGUMENT
             ? kUsage
             : kServerError;
}

std::shared_ptr<grpc::Channel> Channel(const Common& c) {
  if (c.tls_ca.empty()) return grpc::CreateChannel(c.server, grpc::InsecureChannelCredentials());
  std::ifstream in(c.tls_ca);
  std::stringstream pem;
  pem << in.rdbuf();
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = pem.str();
  return grpc::CreateChannel(c.server, grpc::SslCredentials(ssl));
}

// Deadline and credentials of one call.
void Prepare(grpc::ClientContext* ctx, const Common& c, int timeout_s = -1) {
  ctx->set_deadline(std::chrono::system_clock::now() +
                    std::chrono::seconds(timeout_s < 0 ? c.timeout_s : timeout_s));
  if (!c.token.empty()) ctx->AddMetadata("authorization", absl::StrCat("Bearer ", c.token));
}

// --- publish

// A progress line on a terminal: bytes of a file read so far, or lines of a stream.
class Progress {
 public:
  explicit Progress(uint64_t total_bytes) : total_(total_bytes), on_(isatty(STDERR_FILENO)) {}
  void Update(uint64_t bytes, uint64_t lines) {
    if (!on_) return;
    const auto now = std::chrono::steady_clock::now();
    if (now - last_ < std::chrono::milliseconds(200)) return;
    last_ = now;
    if (total_ > 0) {
      const int pct = static_cast<int>(100.0 * bytes / total_);
      const int width = 30, fill = width * pct / 100;
      std::fprintf(stderr, "\r[%s%s] %3d%% %llu lines", std::string(fill, '#').c_str(),
                   std::string(width - fill, ' ').c_str(), pct, (unsigned long long)lines);
    } else {
      std::fprintf(stderr, "\r%llu lines", (unsigned long long)lines);
    }
    shown_ = true;
  }
  void Done() {
    if (shown_) std::fprintf(stderr, "\r\033[K");
  }

 private:
  uint64_t total_;
  bool on_;
  bool shown_ = false;
  std::chrono::steady_clock::time_point last_{};
};

// Where published events go: Kafka directly, or lifecycled's IngestService.
class Sink {
 public:
  virtual ~Sink() = default;
  virtual absl::Status Send(uint64_t line, const v1::Event& e) = 0;
  // Finishes; fills rejected lines (line -> reason); returns how many were accepted.
  virtual absl::StatusOr<uint64_t> Finish(std::map<uint64_t, std::string>* rejected) = 0;
};

class KafkaSink : public Sink {
 public:
  static absl::StatusOr<std::unique_ptr<Sink>> Create(const Common& c) {
    auto producer = lifecycle::stream::Producer::Create(c.brokers);
    if (!producer.ok()) return producer.status();
    // The topic must exist (lifecycled creates it); fail fast rather than time out.
    absl::StatusOr<int> partitions =
        lifecycle::stream::PartitionCount(c.brokers, c.topic, c.timeout_s * 1000);
    if (!partitions.ok()) {
      return absl::UnavailableError(absl::StrCat(
          partitions.status().message(),
          "\n(lifecycled creates its topics when it starts; check --brokers and --topic)"));
    }
    auto sink = std::make_unique<KafkaSink>();
    sink->c_ = c;
    sink->producer_ = std::move(*producer);
    sink->partitions_ = *partitions;
    return std::unique_ptr<Sink>(std::move(sink));
  }
  absl::Status Send(uint64_t line, const v1::Event& e) override {
    e.SerializeToString(&bytes_);
    ++queued_;
    if (!e.has_clock_tick()) return producer_->Produce(c_.topic, -1, e.customer_id(), bytes_, line);
    for (int p = 0; p < partitions_; ++p) {  // a tick goes to every partition
      if (absl::Status s = producer_->Produce(c_.topic, p, "", bytes_, line); !s.ok()) return s;
    }
    return absl::OkStatus();
  }
  absl::StatusOr<uint64_t> Finish(std::map<uint64_t, std::string>* rejected) override {
    absl::Status fs = producer_->Flush(c_.timeout_s * 1000 + 30000);
    std::set<uint64_t> failed;
    for (const auto& d : producer_->TakeDeliveries()) {
      if (!d.ok && failed.insert(d.tag).second) {
        (*rejected)[d.tag] = absl::StrCat("not delivered: ", d.error);
      }
    }
    if (!fs.ok()) return fs;
    return queued_ - failed.size();
  }

 private:
  Common c_;
  std::unique_ptr<lifecycle::stream::Producer> producer_;
  int partitions_ = 0;
  uint64_t queued_ = 0;
  std::string bytes_;
};

class GrpcSink : public Sink {
 public:
  explicit GrpcSink(const Common& c) : c_(c), stub_(v1::IngestService::NewStub(Channel(c))) {}
  absl::Status Send(uint64_t line, const v1::Event& e) override {
    *batch_.add_events() = e;
    lines_.push_back(line);
    if (batch_.events_size() >= 500) return Flush();
    return absl::OkStatus();
  }
  absl::StatusOr<uint64_t> Finish(std::map<uint64_t, std::string>* rejected) override {
    if (absl::Status s = Flush(); !s.ok()) return s;
    for (auto& [line, why] : rejected_) (*rejected)[line] = why;
    return accepted_;
  }

 private:
  absl::Status Flush() {
    if (batch_.events_size() == 0) return absl::OkStatus();
    grpc::ClientContext ctx;
    Prepare(&ctx, c_, c_.timeout_s + 60);
    v1::PublishEventsResponse resp;
    grpc::Status s = stub_->PublishEvents(&ctx, batch_, &resp);
    if (!s.ok()) {
      return absl::UnavailableError(absl::StrCat("PublishEvents: ", s.error_message(), " (code ",
                                                 static_cast<int>(s.error_code()), ")"));
    }
    for (const auto& r : resp.results()) {
      if (r.accepted()) {
        ++accepted_;
      } else {
        rejected_[lines_[r.index()]] = absl::StrCat("rejected by lifecycled: ", r.reason());
      }
    }
    batch_.Clear();
    lines_.clear();
    return absl::OkStatus();
  }

  Common c_;
  std::unique_ptr<v1::IngestService::Stub> stub_;
  v1::PublishEventsRequest batch_;
  std::vector<uint64_t> lines_;
  std::map<uint64_t, std::string> rejected_;
  uint64_t accepted_ = 0;
};

int Publish(const Common& c, const std::string& path, bool via_grpc) {
  std::ifstream file;
  std::istream* in = &std::cin;
  uint64_t total = 0;
  if (path != "-") {
    file.open(path, std::ios::binary | std::ios::ate);
    if (!file) {
      std::fprintf(stderr, "lifecyclectl: cannot open %s\n", path.c_str());
      return kUsage;
    }
    total = static_cast<uint64_t>(file.tellg());
    file.seekg(0);
    in = &file;
  }
  absl::StatusOr<std::unique_ptr<Sink>> sink =
      via_grpc ? absl::StatusOr<std::unique_ptr<Sink>>(std::make_unique<GrpcSink>(c))
               : KafkaSink::Create(c);
  if (!sink.ok()) {
    std::fprintf(stderr, "lifecyclectl: %s\n", std::string(sink.status().message()).c_str());
    return kServerError;
  }
  std::map<uint64_t, std::string> rejected;  // line -> reason
  uint64_t line_no = 0, bytes_read = 0;
  Progress progress(total);
  std::string line;
  JsonParseOptions jo;  // unknown fields are errors
  absl::Status failure;
  while (failure.ok() && std::getline(*in, line)) {
    ++line_no;
    bytes_read += line.size() + 1;
    progress.Update(bytes_read, line_no);
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
    failure = (*sink)->Send(line_no, ev);
  }
  progress.Done();
  absl::StatusOr<uint64_t> published = failure.ok() ? (*sink)->Finish(&rejected) : failure;
  std::printf("published %llu event(s) to %s%s; %zu line(s) rejected\n",
              (unsigned long long)(published.ok() ? *published : 0), c.topic.c_str(),
              via_grpc ? absl::StrCat(" through ", c.server).c_str() : "", rejected.size());
  for (const auto& [ln, why] : rejected) {
    std::fprintf(stderr, "line %llu: %s\n", (unsigned long long)ln, why.c_str());
  }
  if (!published.ok()) {
    std::fprintf(stderr, "lifecyclectl: %s\n", std::string(published.status().message()).c_str());
    return kServerError;
  }
  return rejected.empty() ? kOk : kUsage;
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
  std::printf("  %s%s%s | region %s | industry %s | age %s | vehicle %s | advisor %s\n",
              p.has_name() ? p.name().c_str() : "(no name)",
              p.has_phone() ? absl::StrCat(", ", p.phone()).c_str() : "", "",
              p.region().empty() ? "-" : p.region().c_str(),
              p.industry().empty() ? "-" : p.industry().c_str(),
              StripPrefix(v1::AgeBand_Name(p.age_band()), "AGE_BAND_").c_str(),
              p.vehicle_model().empty() ? "-" : p.vehicle_model().c_str(),
              p.advisor_id().empty() ? "-" : p.advisor_id().c_str());
  std::printf("\nStage      %s since %s\n", StripPrefix(v1::Stage_Name(v.stage()), "STAGE_").c_str(),
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
    std::printf("Next 12m   %.1f expected activity days x %s expected spend each = %s expected "
                "value\n",
                v.expected_activities_12m(),
                Money(v.expected_spend_per_activity_minor(), act.currency()).c_str(),
                Money(v.expected_value_12m_minor(), act.currency()).c_str());
  }
  const auto& l = v.loyalty();
  std::printf("Loyalty    %d/10  (satisfaction %d/2, regular maintenance %d/3, events %d/2, "
              "advocacy %d/3)\n",
              l.total(), l.satisfaction(), l.regular_maintenance(), l.event_participation(),
              l.advocacy());
  std::printf("Value      grade %s (%s); spend 12m %s, previous 12m %s, the 12m before %s, all "
              "time %s\n",
              v.grade() == v1::VALUE_GRADE_UNSPECIFIED
                  ? "-"
                  : StripPrefix(v1::ValueGrade_Name(v.grade()), "VALUE_GRADE_").c_str(),
              StripPrefix(v1::ValueClass_Name(v.value_class()), "VALUE_CLASS_").c_str(),
              Money(v.spend_12m_minor(), act.currency()).c_str(),
              Money(v.spend_prev_12m_minor(), act.currency()).c_str(),
              Money(v.spend_prev2_12m_minor(), act.currency()).c_str(),
              Money(act.total_spend_minor(), act.currency()).c_str());
  if (!v.rfm().score().empty()) {
    std::printf("RFM        %s %s\n", v.rfm().score().c_str(), v.rfm().segment().c_str());
  }
  const auto& pts = v.points();
  std::printf("Points     balance %lld, qualifying 12m %lld, tier %s", static_cast<long long>(pts.balance()),
              static_cast<long long>(pts.qualifying_12m()),
              StripPrefix(v1::Tier_Name(pts.tier()), "TIER_").c_str());
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
                StripPrefix(v1::WarrantyStatus_Name(v.warranty_status()), "WARRANTY_STATUS_").c_str());
  }
  if (v.follow_ups_size()) {
    std::printf("\nFollow-ups\n");
    for (const auto& t : v.follow_ups()) {
      std::printf("  %-8s %-28s due %s%s\n",
                  StripPrefix(v1::TaskStatus_Name(t.status()), "TASK_STATUS_").c_str(),
                  StripPrefix(v1::FollowUpKind_Name(t.kind()), "FOLLOW_UP_KIND_").c_str(),
                  Day(t.due_at()).c_str(),
                  t.has_closed_at() ? absl::StrCat(", done ", Day(t.closed_at())).c_str() : "");
    }
  }
  if (v.complaints_size()) {
    std::printf("\nComplaints\n");
    for (const auto& k : v.complaints()) {
      std::printf("  %-10s %-16s %-8s opened %s, %s\n", k.complaint_id().c_str(),
                  k.category().c_str(),
                  StripPrefix(v1::ComplaintSeverity_Name(k.severity()), "COMPLAINT_SEVERITY_").c_str(),
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
                  StripPrefix(v1::DealLostReason_Name(d.reason()), "DEAL_LOST_REASON_").c_str(),
                  d.competitor().empty() ? "" : absl::StrCat(" (", d.competitor(), ")").c_str());
    }
  }
  std::printf("\nStage history\n");
  for (const auto& t : history.transitions()) {
    std::printf("  %s  %-13s -> %-13s %s\n", Day(t.at()).c_str(),
                StripPrefix(v1::Stage_Name(t.from()), "STAGE_").c_str(),
                StripPrefix(v1::Stage_Name(t.to()), "STAGE_").c_str(), t.reason().c_str());
  }
  if (history.alerts_size()) {
    std::printf("\nAlerts\n");
    for (const auto& a : history.alerts()) {
      std::string reasons;
      for (const auto& r : a.reasons()) absl::StrAppend(&reasons, reasons.empty() ? "" : "; ", r);
      std::printf("  %s  %-20s %-8s %s -> %s\n", Day(a.at()).c_str(),
                  StripPrefix(v1::AlertKind_Name(a.kind()), "ALERT_KIND_").c_str(),
                  StripPrefix(v1::Severity_Name(a.severity()), "SEVERITY_").c_str(), reasons.c_str(),
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
    Prepare(&ctx, c);
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
    Prepare(&ctx, c);
    grpc::Status s = stub->GetHistory(&ctx, hreq, &history);
    if (!s.ok()) return ServerFailure("history " + id, s, c);
  }
  PrintCustomer(resp, history);
  return kOk;
}

int History(const Common& c, const std::string& id) {
  auto stub = v1::CustomerService::NewStub(Channel(c));
  grpc::ClientContext ctx;
  Prepare(&ctx, c);
  v1::GetHistoryRequest req;
  req.set_customer_id(id);
  v1::GetHistoryResponse resp;
  grpc::Status s = stub->GetHistory(&ctx, req, &resp);
  if (!s.ok()) return ServerFailure("history " + id, s, c);
  std::printf("%s\n", ToJson(resp).c_str());
  return kOk;
}

// Prints rows under headers, each column as wide as its widest cell.
void PrintTable(const std::vector<std::string>& headers,
                const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width(headers.size());
  for (size_t i = 0; i < headers.size(); ++i) width[i] = headers[i].size();
  for (const auto& r : rows) {
    for (size_t i = 0; i < r.size() && i < width.size(); ++i) width[i] = std::max(width[i], r[i].size());
  }
  auto line = [&](const std::vector<std::string>& cells) {
    std::string out;
    for (size_t i = 0; i < cells.size(); ++i) {
      out += cells[i];
      if (i + 1 < cells.size()) out += std::string(width[i] - cells[i].size() + 2, ' ');
    }
    std::printf("%s\n", out.c_str());
  };
  line(headers);
  for (const auto& r : rows) line(r);
}

// --- list

struct ListArgs {
  std::string stage, grade, tier, rfm_segment, region, advisor;
  double min_churn_risk = 0;
  std::string order;
  int page_size = 50;
  bool all = false;
  bool json = false;
};

template <typename Parse>
bool ParseEnum(const std::string& text, const char* prefix, Parse parse, int* out) {
  if (text.empty()) return true;
  std::string upper;
  for (char ch : text) upper += static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  return parse(absl::StrCat(prefix, upper), out);
}

int List(const Common& c, const ListArgs& a) {
  v1::ListCustomersRequest req;
  int stage = 0, grade = 0, tier = 0;
  auto parse_stage = [](const std::string& n, int* v) {
    v1::Stage x;
    if (!v1::Stage_Parse(n, &x)) return false;
    *v = x;
    return true;
  };
  auto parse_grade = [](const std::string& n, int* v) {
    v1::ValueGrade x;
    if (!v1::ValueGrade_Parse(n, &x)) return false;
    *v = x;
    return true;
  };
  auto parse_tier = [](const std::string& n, int* v) {
    v1::Tier x;
    if (!v1::Tier_Parse(n, &x)) return false;
    *v = x;
    return true;
  };
  if (!ParseEnum(a.stage, "STAGE_", parse_stage, &stage)) {
    std::fprintf(stderr, "lifecyclectl: --stage: unknown stage %s\n", a.stage.c_str());
    return kUsage;
  }
  if (!ParseEnum(a.grade, "VALUE_GRADE_", parse_grade, &grade)) {
    std::fprintf(stderr, "lifecyclectl: --grade: A, B or C\n");
    return kUsage;
  }
  if (!ParseEnum(a.tier, "TIER_", parse_tier, &tier)) {
    std::fprintf(stderr, "lifecyclectl: --tier: bronze, silver, gold or platinum\n");
    return kUsage;
  }
  req.set_stage(static_cast<v1::Stage>(stage));
  req.set_grade(static_cast<v1::ValueGrade>(grade));
  req.set_tier(static_cast<v1::Tier>(tier));
  req.set_rfm_segment(a.rfm_segment);
  req.set_region(a.region);
  req.set_advisor_id(a.advisor);
  req.set_min_churn_risk(a.min_churn_risk);
  if (a.order == "id") {
    req.set_order_by(v1::CUSTOMER_ORDER_ID);
  } else if (a.order == "churn-risk") {
    req.set_order_by(v1::CUSTOMER_ORDER_CHURN_RISK);
  } else if (a.order == "value") {
    req.set_order_by(v1::CUSTOMER_ORDER_EXPECTED_VALUE);
  }
  req.set_page_size(a.page_size);
  auto stub = v1::CustomerService::NewStub(Channel(c));
  std::vector<std::vector<std::string>> rows;
  for (;;) {
    grpc::ClientContext ctx;
    Prepare(&ctx, c);
    v1::ListCustomersResponse resp;
    grpc::Status s = stub->ListCustomers(&ctx, req, &resp);
    if (!s.ok()) return ServerFailure("list", s, c);
    for (const auto& v : resp.customers()) {
      if (a.json) {
        std::printf("%s\n", ToJson(v, false).c_str());
        continue;
      }
      rows.push_back({v.customer_id(), StripPrefix(v1::Stage_Name(v.stage()), "STAGE_"),
                      v.activity().activity_days() ? absl::StrFormat("%.2f", v.p_alive()) : "-",
                      v.activity().activity_days()
                          ? Money(v.expected_value_12m_minor(), v.activity().currency())
                          : "-",
                      absl::StrCat(v.loyalty().total()),
                      v.grade() ? StripPrefix(v1::ValueGrade_Name(v.grade()), "VALUE_GRADE_") : "-",
                      StripPrefix(v1::Tier_Name(v.points().tier()), "TIER_"),
                      v.rfm().segment().empty() ? "-" : v.rfm().segment(),
                      v.profile().region().empty() ? "-" : v.profile().region(),
                      Day(v.activity().last_activity())});
    }
    if (!a.all || resp.next_page_token().empty()) {
      if (!a.json) {
        PrintTable({"CUSTOMER", "STAGE", "P(ALIVE)", "VALUE 12M", "LOYALTY", "GRADE", "TIER", "RFM SEGMENT",
                    "REGION", "LAST ACTIVITY"},
                   rows);
        if (!resp.next_page_token().empty()) {
          std::printf("(more: --all pages through everything)\n");
        }
      }
      return kOk;
    }
    req.set_page_token(resp.next_page_token());
  }
}

// --- summary

struct SummaryArgs {
  std::string by;
  std::string advisor;
  bool year_earlier = false;  // the 12 months before the trailing 12
  bool yoy = false;           // both, side by side
  bool json = false;
};

int Summary(const Common& c, const SummaryArgs& a) {
  v1::GetSummaryRequest req;
  if (!a.by.empty()) {
    std::string upper;
    for (char ch : a.by) upper += static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    v1::Dimension d;
    if (!v1::Dimension_Parse(absl::StrCat("DIMENSION_", upper), &d)) {
      std::fprintf(stderr,
                   "lifecyclectl: --by: one of stage, grade, tier, rfm_segment, region, "
                   "vehicle_model, industry, age_band, warranty_status, activity_bucket, "
                   "lost_deal_reason, alert_kind, stage_transition, rfm_grid, lost_prospects, "
                   "vehicle_model_by_activity, warranty_by_activity, lost_deals\n");
      return kUsage;
    }
    req.set_group_by(d);
  }
  req.set_advisor_id(a.advisor);
  req.set_year_earlier(a.year_earlier && !a.yoy);
  auto stub = v1::CustomerService::NewStub(Channel(c));
  v1::GetSummaryResponse resp, earlier;
  {
    grpc::ClientContext ctx;
    Prepare(&ctx, c);
    grpc::Status s = stub->GetSummary(&ctx, req, &resp);
    if (!s.ok()) return ServerFailure("summary", s, c);
  }
  if (a.yoy) {
    req.set_year_earlier(true);
    grpc::ClientContext ctx;
    Prepare(&ctx, c);
    grpc::Status s = stub->GetSummary(&ctx, req, &earlier);
    if (!s.ok()) return ServerFailure("summary", s, c);
  }
  if (a.json) {
    std::printf("%s\n", ToJson(resp).c_str());
    if (a.yoy) std::printf("%s\n", ToJson(earlier).c_str());
    return kOk;
  }
  std::printf("%lld customers%s%s\n", static_cast<long long>(resp.customers()),
              a.advisor.empty() ? "" : absl::StrCat(" of advisor ", a.advisor).c_str(),
              req.year_earlier() && !a.yoy ? "; the 12 months before the trailing 12" : "");
  const char* period = req.year_earlier() && !a.yoy ? "YEAR BEFORE" : "12M";
  for (const auto& d : resp.dimensions()) {
    std::string name = StripPrefix(v1::Dimension_Name(d.dimension()), "DIMENSION_");
    for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    const bool events = d.dimension() == v1::DIMENSION_LOST_DEAL_REASON ||
                        d.dimension() == v1::DIMENSION_ALERT_KIND ||
                        d.dimension() == v1::DIMENSION_STAGE_TRANSITION ||
                        d.dimension() == v1::DIMENSION_LOST_PROSPECTS ||
                        d.dimension() == v1::DIMENSION_LOST_DEALS;
    if (req.year_earlier() && !a.yoy && d.counts().empty()) continue;
    // The year before, by key, for --yoy.
    std::map<std::string, v1::Count> before;
    for (const auto& e : earlier.dimensions()) {
      if (e.dimension() != d.dimension()) continue;
      for (const auto& cnt : e.counts()) before[cnt.key()] = cnt;
    }
    const bool yoy = a.yoy && !before.empty();
    std::printf("\nby %s\n", name.c_str());
    std::vector<std::vector<std::string>> rows;
    for (const auto& cnt : d.counts()) {
      std::vector<std::string> row = {"  " + cnt.key(), absl::StrCat(cnt.customers())};
      if (!events) {
        row.push_back(resp.customers() ? absl::StrFormat("%.1f%%", 100.0 * cnt.customers() / resp.customers())
                                       : "-");
        row.push_back(Money(cnt.revenue_minor(), ""));
        row.push_back(absl::StrCat(cnt.activity_days()));
        row.push_back(cnt.activity_days() ? Money(cnt.average_ticket_minor(), "") : "-");
      }
      if (yoy) {
        auto it = before.find(cnt.key());
        const v1::Count prev = it == before.end() ? v1::Count() : it->second;
        row.push_back(absl::StrCat(prev.customers()));
        row.push_back(Money(prev.revenue_minor(), ""));
        row.push_back(prev.revenue_minor() > 0
                          ? absl::StrFormat("%+.1f%%", 100.0 * (cnt.revenue_minor() - prev.revenue_minor()) /
                                                           prev.revenue_minor())
                          : "-");
      }
      rows.push_back(std::move(row));
    }
    if (events) {
      PrintTable({"  KEY", "COUNT"}, rows);
    } else {
      std::vector<std::string> head = {"  KEY", "CUSTOMERS", "SHARE", absl::StrCat("REVENUE ", period),
                                       "ACTIVITY DAYS", "AVG TICKET"};
      if (yoy) {
        for (const char* h : {"CUSTOMERS YEAR BEFORE", "REVENUE YEAR BEFORE", "REVENUE YOY"}) {
          head.push_back(h);
        }
      }
      PrintTable(head, rows);
    }
  }
  return kOk;
}

// --- alerts

struct AlertArgs {
  std::vector<std::string> kinds;
  std::string min_severity;
  std::string region;
  std::string advisor;
  std::string customer;
  bool include_late = false;  // --follow: also alerts raised late
  std::string cursor;       // resume after this cursor
  std::string cursor_file;  // remember the cursor here
  bool follow = false;
  bool json = false;
  int page_size = 100;
};

void PrintAlert(const v1::Alert& a, bool json) {
  if (json) {
    std::printf("%s\n", ToJson(a, false).c_str());
  } else {
    std::string reasons;
    for (const auto& r : a.reasons()) absl::StrAppend(&reasons, reasons.empty() ? "" : "; ", r);
    std::printf("%s%s  %-20s %-8s %-12s %s -> %s\n",
                google::protobuf::util::TimeUtil::ToString(a.at()).substr(0, 19).c_str(),
                a.late() ? " (late)" : "",
                StripPrefix(v1::AlertKind_Name(a.kind()), "ALERT_KIND_").c_str(),
                StripPrefix(v1::Severity_Name(a.severity()), "SEVERITY_").c_str(), a.customer_id().c_str(),
                reasons.c_str(), a.suggested_action().c_str());
  }
  std::fflush(stdout);
}

int Alerts(const Common& c, AlertArgs a) {
  std::vector<v1::AlertKind> kinds;
  for (const auto& k : a.kinds) {
    std::string upper;
    for (char ch : k) upper += static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    v1::AlertKind kind;
    if (!v1::AlertKind_Parse(absl::StrCat("ALERT_KIND_", upper), &kind)) {
      std::fprintf(stderr, "lifecyclectl: --kind: unknown alert kind %s\n", k.c_str());
      return kUsage;
    }
    kinds.push_back(kind);
  }
  v1::Severity severity = v1::SEVERITY_UNSPECIFIED;
  if (!a.min_severity.empty()) {
    std::string upper;
    for (char ch : a.min_severity) upper += static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    if (!v1::Severity_Parse(absl::StrCat("SEVERITY_", upper), &severity)) {
      std::fprintf(stderr, "lifecyclectl: --min-severity: info, warning or critical\n");
      return kUsage;
    }
  }
  auto stub = v1::AlertService::NewStub(Channel(c));
  if (!a.follow) {
    v1::ListAlertsRequest req;
    for (auto k : kinds) req.add_kinds(k);
    req.set_min_severity(severity);
    req.set_customer_id(a.customer);
    req.set_advisor_id(a.advisor);
    req.set_page_size(a.page_size);
    for (;;) {
      grpc::ClientContext ctx;
      Prepare(&ctx, c);
      v1::ListAlertsResponse resp;
      grpc::Status s = stub->ListAlerts(&ctx, req, &resp);
      if (!s.ok()) return ServerFailure("alerts", s, c);
      for (const auto& al : resp.alerts()) PrintAlert(al, a.json);
      if (resp.next_page_token().empty()) return kOk;
      req.set_page_token(resp.next_page_token());
    }
  }
  // --follow: stream; on a broken stream (daemon restart) resume from the last cursor.
  if (a.cursor.empty() && !a.cursor_file.empty()) {
    std::ifstream in(a.cursor_file);
    std::getline(in, a.cursor);
  }
  bool announced = false;
  for (;;) {
    grpc::ClientContext ctx;
    if (!c.token.empty()) ctx.AddMetadata("authorization", absl::StrCat("Bearer ", c.token));
    v1::SubscribeRequest req;
    for (auto k : kinds) req.add_kinds(k);
    req.set_min_severity(severity);
    req.set_region(a.region);
    req.set_advisor_id(a.advisor);
    req.set_include_late(a.include_late);
    req.set_cursor(a.cursor);
    auto reader = stub->Subscribe(&ctx, req);
    v1::AlertEnvelope env;
    while (reader->Read(&env)) {
      announced = false;
      PrintAlert(env.alert(), a.json);
      a.cursor = env.cursor();
      if (!a.cursor_file.empty()) {
        std::ofstream out(a.cursor_file, std::ios::trunc);
        out << a.cursor << "\n";
      }
    }
    grpc::Status s = reader->Finish();
    if (s.error_code() == grpc::StatusCode::INVALID_ARGUMENT ||
        s.error_code() == grpc::StatusCode::UNAUTHENTICATED ||
        s.error_code() == grpc::StatusCode::PERMISSION_DENIED) {
      return ServerFailure("alerts --follow", s, c);
    }
    if (!announced) {
      std::fprintf(stderr, "lifecyclectl: alert stream interrupted (%s); resuming...\n",
                   s.error_message().c_str());
      announced = true;
    }
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
}

// --- simulate

struct SimArgs {
  lifecycle::sim::SimOptions o;
  std::string end = "2026-11-01";
  std::string out = "-";
  std::string order = "time";
  bool publish = false;
};

int Simulate(const Common& c, SimArgs a) {
  google::protobuf::Timestamp end;
  if (!google::protobuf::util::TimeUtil::FromString(a.end + "T00:00:00Z", &end)) {
    std::fprintf(stderr, "lifecyclectl: --end: want YYYY-MM-DD\n");
    return kUsage;
  }
  a.o.end_seconds = end.seconds();
  std::unique_ptr<lifecycle::stream::Producer> producer;
  std::ofstream file;
  std::ostream* out = &std::cout;
  if (a.publish) {
    auto p = lifecycle::stream::Producer::Create(c.brokers);
    if (!p.ok()) {
      std::fprintf(stderr, "lifecyclectl: %s\n", p.status().ToString().c_str());
      return kServerError;
    }
    if (auto n = lifecycle::stream::PartitionCount(c.brokers, c.topic, c.timeout_s * 1000); !n.ok()) {
      std::fprintf(stderr, "lifecyclectl: %s\n(lifecycled creates its topics when it starts)\n",
                   std::string(n.status().message()).c_str());
      return kServerError;
    }
    producer = std::move(*p);
  } else if (a.out != "-") {
    file.open(a.out, std::ios::trunc);
    if (!file) {
      std::fprintf(stderr, "lifecyclectl: cannot write %s\n", a.out.c_str());
      return kUsage;
    }
    out = &file;
  }
  Progress progress(0);
  int64_t written = 0;
  std::string bytes, json;
  JsonPrintOptions jo;
  absl::Status failure;
  auto write_json = [&](const v1::Event& e) {
    json.clear();
    (void)google::protobuf::util::MessageToJsonString(e, &json, jo);  // cannot fail for a valid message
    *out << json << '\n';
  };
  auto write = [&](const v1::Event& e) {
    if (!failure.ok()) return;
    if (producer) {
      e.SerializeToString(&bytes);
      failure = producer->Produce(c.topic, -1, e.customer_id(), bytes, 0);
    } else {
      write_json(e);
    }
    progress.Update(0, static_cast<uint64_t>(++written));
  };
  if (a.order == "time") {
    // The history is generated first (kept serialized, ~130 bytes an event), then
    // sent in event-time order.
    if (a.o.customers >= 100000) {
      std::fprintf(stderr, "lifecyclectl: generating %lld customers' history before sending it "
                           "in time order…\n", static_cast<long long>(a.o.customers));
    }
    v1::Event parsed;
    const bool tty = isatty(STDERR_FILENO);
    auto generated = [tty](int64_t n) {
      if (tty) std::fprintf(stderr, "\rgenerated %lld events", static_cast<long long>(n));
    };
    lifecycle::sim::SimulateInTimeOrder(a.o, [&](const lifecycle::sim::SerializedEvent& e) {
      if (written == 0 && tty) std::fprintf(stderr, "\r\033[K");
      if (!failure.ok()) return;
      if (producer) {
        failure = producer->Produce(c.topic, -1, e.customer_id, e.bytes, 0);
      } else {
        parsed.ParseFromArray(e.bytes.data(), static_cast<int>(e.bytes.size()));
        write_json(parsed);
      }
      progress.Update(0, static_cast<uint64_t>(++written));
    }, generated);
  } else {
    lifecycle::sim::Simulate(a.o, write);
  }
  progress.Done();
  if (producer && failure.ok()) {
    failure = producer->Flush(c.timeout_s * 1000 + 60000);
    for (const auto& d : producer->TakeDeliveries()) {
      if (!d.ok && failure.ok()) failure = absl::UnavailableError(d.error);
    }
  }
  if (!failure.ok()) {
    std::fprintf(stderr, "lifecyclectl: %s\n", failure.ToString().c_str());
    return kServerError;
  }
  std::fprintf(stderr, "simulated %lld customers, %lld events%s\n",
               static_cast<long long>(a.o.customers), static_cast<long long>(written),
               producer ? absl::StrCat(" published to ", c.topic).c_str() : "");
  return kOk;
}

// --- status

// Every customer's (x, t_x, T) in days, from a running lifecycled: x = activity days - 1,
// t_x from the first to the last activity day, T from the first to the partition's
// stream time; and the mean spend of the repeat activity days (total less the first
// day's). With --holdout-days, each customer's activity days too (GetHistory: one call
// a customer).
int FitFromServer(const Common& c, const lifecycle::ctl::FitArgs& a) {
  auto stub = v1::CustomerService::NewStub(Channel(c));
  v1::ListCustomersRequest req;
  req.set_page_size(1000);
  lifecycle::ctl::FitData data;
  data.source = absl::StrCat("lifecycled at ", c.server);
  const bool tty = isatty(STDERR_FILENO) != 0;
  constexpr double kDaySeconds = 86400;
  for (;;) {
    grpc::ClientContext ctx;
    Prepare(&ctx, c);
    v1::ListCustomersResponse resp;
    grpc::Status s = stub->ListCustomers(&ctx, req, &resp);
    if (!s.ok()) return ServerFailure("fit", s, c);
    std::map<int32_t, int64_t> now;
    for (const auto& p : resp.freshness().partitions()) now[p.partition()] = p.stream_time().seconds();
    for (const auto& v : resp.customers()) {
      const auto& act = v.activity();
      if (act.activity_days() <= 0 || !now.count(v.partition())) continue;
      const double first = std::floor(static_cast<double>(act.first_activity().seconds()) / kDaySeconds);
      const double last = std::floor(static_cast<double>(act.last_activity().seconds()) / kDaySeconds);
      const double end = std::floor(static_cast<double>(now[v.partition()]) / kDaySeconds);
      lifecycle::projections::model::Rfm r;
      r.x = act.activity_days() - 1;
      r.t_x = last - first;
      r.T = std::max(r.t_x, end - first);
      data.rfm.push_back(r);
      const double repeat = static_cast<double>(act.total_spend_minor() - act.first_day_spend_minor());
      data.spend.push_back({.x = r.x > 0 && repeat > 0 ? r.x : 0, .m = r.x > 0 ? repeat / r.x : 0});
      if (a.holdout > 0) {
        grpc::ClientContext hctx;
        Prepare(&hctx, c);
        v1::GetHistoryRequest hreq;
        hreq.set_customer_id(v.customer_id());
        v1::GetHistoryResponse h;
        if (grpc::Status hs = stub->GetHistory(&hctx, hreq, &h); !hs.ok()) {
          return ServerFailure("fit", hs, c);
        }
        // The record keeps the activity days at most 730 days old (and the first).
        lifecycle::ctl::History hist{.first = first, .days = {}, .total = act.activity_days(),
                                     .end = std::max(end, last), .known_from = end - 730};
        for (const int32_t d : h.activity_days()) hist.days.push_back(d);
        data.histories.push_back(std::move(hist));
      }
    }
    if (tty) std::fprintf(stderr, "\rlifecyclectl: fit: %zu customers read", data.rfm.size());
    if (resp.next_page_token().empty()) break;
    req.set_page_token(resp.next_page_token());
  }
  if (tty) std::fprintf(stderr, "\n");
  if (data.rfm.empty()) {
    std::fprintf(stderr, "lifecyclectl: fit: no customer with activity at %s\n", c.server.c_str());
    return kUsage;
  }
  lifecycle::ctl::FitArgs days = a;
  days.unit_days = 1;
  return lifecycle::ctl::RunFit(data, days);
}

int Status(const Common& c, bool json) {
  auto stub = v1::AdminService::NewStub(Channel(c));
  grpc::ClientContext ctx;
  Prepare(&ctx, c);
  v1::GetStatusResponse resp;
  grpc::Status s = stub->GetStatus(&ctx, v1::GetStatusRequest(), &resp);
  if (!s.ok()) return ServerFailure("status", s, c);
  if (json) {
    std::printf("%s\n", ToJson(resp).c_str());
    return kOk;
  }
  std::printf("topic %s  group %s  version %s (commit %s)  config %s  uptime %llds  broker %s\n",
              resp.events_topic().c_str(), resp.group_id().c_str(), resp.version().c_str(),
              resp.git_commit().empty() ? "unknown" : resp.git_commit().c_str(),
              resp.config_version().c_str(), (long long)resp.uptime_seconds(),
              resp.broker_connected() ? "connected" : "DOWN");
  std::printf("%9s %8s %12s %12s %8s %10s %9s %8s %9s  %s\n", "partition", "assigned", "stored",
              "high-water", "lag", "applied", "rejected", "skipped", "duplicate", "stream time");
  int64_t applied = 0, rejected = 0, lag = 0;
  int64_t late = 0, out_of_order = 0, beyond = 0, alerts_late = 0;
  for (const auto& p : resp.partitions()) {
    late += p.events_late();
    out_of_order += p.events_out_of_order();
    beyond += p.events_beyond_window();
    alerts_late += p.alerts_late();
    const std::string st = p.has_stream_time()
                               ? google::protobuf::util::TimeUtil::ToString(p.stream_time())
                               : "-";
    std::printf("%9d %8s %12lld %12s %8s %10lld %9lld %8lld %9lld  %s\n", p.partition(),
                p.assigned() ? "yes" : p.replica() ? "replica" : "no", (long long)p.stored_offset(),
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
  if (resp.members_size() > 1 || resp.replicas() > 0) {
    // Several instances: who owns and who replicates each partition, and how far each is.
    std::printf("cluster: this instance %s; %d member(s): %s; %d replica(s) per partition\n",
                resp.address().c_str(), resp.members_size(),
                absl::StrJoin(resp.members(), " ").c_str(), resp.replicas());
    for (const auto& p : resp.partitions()) {
      if (p.holders().empty()) {
        std::printf("%9d  no owner known\n", p.partition());
        continue;
      }
      std::string line;
      for (const auto& h : p.holders()) {
        absl::StrAppend(&line, line.empty() ? "" : "; ", h.owner() ? "owner " : "replica ",
                        h.address(), " ",
                        h.error().empty() ? absl::StrCat("@", h.stored_offset())
                                          : absl::StrCat("(", h.error(), ")"));
      }
      std::printf("%9d  %s\n", p.partition(), line.c_str());
    }
  }
  if (late + out_of_order + alerts_late > 0) {
    std::printf("late: %lld events of late history, %lld out of order (re-derived in their "
                "place; %lld beyond late.window_days, approximated), %lld alerts raised late\n",
                (long long)late, (long long)out_of_order, (long long)beyond, (long long)alerts_late);
  }
  return kOk;
}

}  // namespace

int main(int argc, char** argv) {
  // Diagnostics (librdkafka's among them, through the "stream" logger) go to stderr,
  // warnings and worse only: stdout carries the command's output.
  {
    auto log = std::make_shared<spdlog::logger>(
        "stream", std::make_shared<spdlog::sinks::stderr_sink_mt>());
    log->set_pattern("lifecyclectl: %l: %v");
    log->set_level(spdlog::level::warn);
    spdlog::register_logger(log);
  }
  Common c;
  if (const char* t = std::getenv("LIFECYCLE_TOKEN")) c.token = t;
  CLI::App app{"lifecyclectl — publish customer events to Lifecycle, query its views and follow "
               "its alerts."};
  app.footer(
      "Exit codes: 0 ok; 1 usage error, rejected input lines, unknown customer or invalid "
      "argument; 2 server or broker error (unreachable, refused, failing).");
  app.set_version_flag("--version", lifecycle::VersionLine("lifecyclectl"),
                       "Print the version and git commit, and exit");
  app.require_subcommand(1);
  app.fallthrough();  // global options may also follow the subcommand
  app.add_option("--brokers", c.brokers, "Kafka bootstrap servers (publish)")->capture_default_str();
  app.add_option("--topic", c.topic, "Topic of customer events (publish)")->capture_default_str();
  app.add_option("--server", c.server, "lifecycled gRPC address")->capture_default_str();
  app.add_option("--token", c.token, "Bearer token for the gRPC API (default: $LIFECYCLE_TOKEN)");
  app.add_option("--tls-ca", c.tls_ca, "PEM file of the CA that signed the server's certificate: "
                                       "talk TLS")
      ->check(CLI::ExistingFile);
  app.add_option("--timeout", c.timeout_s, "Seconds to wait for the server or broker")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600));

  std::string file;
  bool via_grpc = false;
  auto* publish = app.add_subcommand(
      "publish",
      "Publish events from a JSON Lines file (protobuf JSON mapping of lifecycle.v1.Event, one "
      "per line) to Kafka with an idempotent producer, or through lifecycled with --via-grpc. "
      "Prints how many were published and, for each rejected line, its number and why; shows "
      "progress on a terminal.");
  publish->add_option("FILE", file, "File to read, or - for standard input")->required();
  publish->add_flag("--via-grpc", via_grpc,
                    "Publish through lifecycled's IngestService (needs the publish role) "
                    "instead of straight to Kafka");

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

  ListArgs la;
  auto* list = app.add_subcommand(
      "list", "List customers by stage, grade, tier, RFM segment, region or churn risk, as a table.");
  list->add_option("--stage", la.stage, "PROSPECT, LOST_PROSPECT, NEW, ACTIVE, LOYAL, AT_RISK, "
                                        "CHURNED or WON_BACK");
  list->add_option("--grade", la.grade, "A, B or C");
  list->add_option("--tier", la.tier, "BRONZE, SILVER, GOLD or PLATINUM");
  list->add_option("--rfm-segment", la.rfm_segment, "e.g. Champions, \"At Risk\", Lost");
  list->add_option("--region", la.region, "Region");
  list->add_option("--advisor", la.advisor, "Only this advisor's customers (profile advisor_id)");
  list->add_option("--min-churn-risk", la.min_churn_risk,
                   "Only customers whose 1 - P(alive), as of now, is at least this (riskiest first "
                   "unless --order says otherwise)")
      ->check(CLI::Range(0.0, 1.0));
  list->add_option("--order", la.order,
                   "id; churn-risk (riskiest first); value (expected 12-month value, highest "
                   "first: with --min-churn-risk, the most valuable customers at risk). Churn "
                   "risk and value are as of now; those two orders list customers with activity")
      ->check(CLI::IsMember({"id", "churn-risk", "value"}));
  list->add_option("--page-size", la.page_size, "Customers per page (the server caps it)")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  list->add_flag("--all", la.all, "Page through every match");
  list->add_flag("--json", la.json, "One JSON view per line");

  SummaryArgs sum;
  auto* summary = app.add_subcommand(
      "summary", "Dashboard counters: customers, 12-month revenue, activity days and average "
                 "ticket by stage, grade, tier, RFM segment, region, vehicle model, industry, age "
                 "band, warranty status, activity bucket, vehicle model x activity bucket, "
                 "warranty status x activity bucket; lost deals by reason and by reason x model x "
                 "advisor; lost prospects recovered; alerts by kind; stage transitions.");
  summary->add_option("--by", sum.by, "Only this dimension (e.g. stage, region, activity_bucket)");
  summary->add_option("--advisor", sum.advisor, "Only this advisor's customers and their events");
  summary->add_flag("--year-earlier", sum.year_earlier,
                    "The 12 months before the trailing 12 (activity bucket and the two "
                    "cross-tabs)");
  summary->add_flag("--yoy", sum.yoy,
                    "Year over year: the trailing 12 months beside the 12 before them");
  summary->add_flag("--json", sum.json, "Print JSON (with --yoy: two lines, this year's first)");

  AlertArgs aa;
  auto* alerts = app.add_subcommand(
      "alerts", "List stored alerts, or with --follow print alerts as they are raised (the stream "
                "resumes by itself across daemon restarts).");
  alerts->add_option("--kind", aa.kinds, "Only these kinds (repeatable): CHURN_RISK, CHURNED, "
                                         "COMPLAINT_UNRESOLVED, MAINTENANCE_OVERDUE, "
                                         "FOLLOWUP_OVERDUE, DEAL_LOST, TIER_DOWNGRADE_RISK, "
                                         "SERVICE_LEAKAGE");
  alerts->add_option("--min-severity", aa.min_severity, "info, warning or critical");
  alerts->add_option("--region", aa.region, "Only customers of this region (--follow)");
  alerts->add_option("--advisor", aa.advisor, "Only alerts about this advisor's customers");
  alerts->add_flag("--include-late", aa.include_late,
                   "With --follow, also the late alerts: conditions that became true more than "
                   "alerts.horizon_days before lifecycled learned of them (the listing always "
                   "shows them, marked (late))");
  alerts->add_option("--customer", aa.customer, "Only this customer's alerts (listing)");
  alerts->add_flag("--follow,-f", aa.follow, "Keep streaming new alerts");
  alerts->add_option("--cursor", aa.cursor, "Resume after this cursor (--follow)");
  alerts->add_option("--cursor-file", aa.cursor_file,
                     "Read the cursor to resume from, and keep it up to date, in this file "
                     "(--follow)");
  alerts->add_flag("--json", aa.json, "One JSON alert per line");

  SimArgs sa;
  auto* simulate = app.add_subcommand(
      "simulate",
      "Generate a dealership's customer base and its history (seeded, deterministic): "
      "registrations, leads and lost deals, vehicle sales with callbacks, service visits "
      "(on time, late, elsewhere), surveys, complaints, campaigns, referrals, customers who go "
      "quiet and some who come back. Writes JSON Lines, or publishes straight to Kafka.");
  simulate->add_option("--customers", sa.o.customers, "Customers")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{100000000}));
  simulate->add_option("--years", sa.o.years, "Years of history")
      ->capture_default_str()
      ->check(CLI::Range(1, 20));
  simulate->add_option("--seed", sa.o.seed, "Seed")->capture_default_str();
  simulate->add_option("--end", sa.end, "The history ends on this day (YYYY-MM-DD)")
      ->capture_default_str();
  simulate->add_option("--out", sa.out, "JSON Lines file, or - for standard output")
      ->capture_default_str();
  simulate->add_option("--order", sa.order,
                       "time: one stream in event-time order (generated first: about 1.3 GB of memory "
                       "per 1,000,000 customers); customer: customer by customer, streamed")
      ->capture_default_str()
      ->check(CLI::IsMember({"time", "customer"}));
  sa.o.population = lifecycle::sim::SimOptions::Population::kDropout;
  simulate->add_option("--population", sa.o.population,
                       "dropout: each customer has an own service cadence and an own "
                       "probability of leaving for good after each activity, so some really "
                       "leave; quiet-spells: 30% go quiet once (the benchmarks' population)")
      ->transform(CLI::CheckedTransformer(
          std::map<std::string, lifecycle::sim::SimOptions::Population>{
              {"dropout", lifecycle::sim::SimOptions::Population::kDropout},
              {"quiet-spells", lifecycle::sim::SimOptions::Population::kQuietSpells}}))
      ->default_str("dropout");
  simulate->add_flag("--greetings", sa.o.greetings,
                     "Also greetings done: about 60% of the birthday and holiday greetings "
                     "(01-01, 05-01, 10-01) due to customers with a sale, within two days");
  simulate->add_flag("--publish", sa.publish,
                     "Publish to Kafka (--brokers, --topic) instead of writing JSON");

  lifecycle::ctl::FitArgs fa;
  auto* fit = app.add_subcommand(
      "fit",
      "Fit the churn model (MBG/NBD: r, alpha, a, b) and the spend model (Gamma-Gamma: p, q, v) "
      "by maximum likelihood on every customer's (x, t_x, T): repeat activity days, days from "
      "the first to the last activity, days from the first activity to now; the spend model "
      "on the repeat activity days' mean spend. Reads them from the running lifecycled "
      "(--server), from --csv summaries, or from --activities. Prints the parameters, the "
      "log-likelihood, the iterations and whether it converged, the at_risk_p the fit suggests "
      "(95% of customers below it before silence makes them CHURNED) and the grade-A line (top "
      "20% of expected 12-month value), and with --holdout-days a calibration "
      "table; with --write, writes --config with the fitted parameters under a new version "
      "(lifecycled then needs a rebuild from the log to apply it everywhere).");
  fit->add_option("--csv", fa.csv,
                  "CSV of customer,x,t_x,T[,mean_spend] (a header line is skipped; any one time "
                  "unit, see --unit-days; mean_spend of the repeat activities, minor units)")
      ->check(CLI::ExistingFile);
  fit->add_option("--activities", fa.activities,
                  "CSV of customer,time[,spend], one line per activity (any one time unit, see "
                  "--unit-days; activities in the same unit are one activity day); every "
                  "customer is observed up to the file's latest time")
      ->check(CLI::ExistingFile)
      ->excludes("--csv");
  fit->add_option("--holdout-days", fa.holdout,
                  "Also fit on each customer's history up to this many days before its end and "
                  "compare predicted and actual activity days after it (from the server: at "
                  "most 700, the activity days a record keeps span 24 months)")
      ->check(CLI::Range(1.0, 100000.0));
  fit->add_option("--unit-days", fa.unit_days, "Days in one time unit of --csv or --activities")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  fit->add_option("--config", fa.config, "The domain config to start from (for --write)")
      ->check(CLI::ExistingFile);
  fit->add_option("--write", fa.write, "Write the fitted domain config here");
  fit->add_option("--new-version", fa.version,
                  "Version of the written config (default: today's date, then .fit)");

  bool json = false;
  auto* status = app.add_subcommand(
      "status", "Print per-partition stored offset, high watermark, lag and event counters "
                "(needs the admin role).");
  status->add_flag("--json", json, "Print JSON instead of a table");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? kOk : kUsage;
  }
  if (*publish) return Publish(c, file, via_grpc);
  if (*get) return Get(c, id, get_json);
  if (*history) return History(c, id);
  if (*list) return List(c, la);
  if (*summary) return Summary(c, sum);
  if (*alerts) return Alerts(c, aa);
  if (*simulate) return Simulate(c, sa);
  if (*status) return Status(c, json);
  if (*fit) {
    if (fa.csv.empty() && fa.activities.empty()) {
      if (fa.holdout > 700) {
        std::fprintf(stderr, "lifecyclectl: fit: --holdout-days: at most 700 from the server\n");
        return kUsage;
      }
      return FitFromServer(c, fa);
    }
    // --holdout-days is in days; the data's unit may differ.
    fa.holdout /= fa.unit_days;
    auto data = fa.csv.empty() ? lifecycle::ctl::ReadActivitiesCsv(fa.activities)
                               : lifecycle::ctl::ReadFitCsv(fa.csv);
    if (!data.ok()) {
      std::fprintf(stderr, "lifecyclectl: fit: %s\n", std::string(data.status().message()).c_str());
      return kUsage;
    }
    return lifecycle::ctl::RunFit(*data, fa);
  }
  return kUsage;
}
