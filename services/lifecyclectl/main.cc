// lifecyclectl: the command-line tool for publishing events and querying views.
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <chrono>
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

int Get(const Common& c, const std::string& id) {
  auto stub = v1::CustomerService::NewStub(Channel(c));
  grpc::ClientContext ctx;
  SetDeadline(&ctx, c);
  v1::GetCustomerRequest req;
  req.set_customer_id(id);
  v1::GetCustomerResponse resp;
  grpc::Status s = stub->GetCustomer(&ctx, req, &resp);
  if (!s.ok()) return ServerFailure("get " + id, s, c);
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
  app.add_option("--server", c.server, "lifecycled gRPC address (get, status)")->capture_default_str();
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
  auto* get = app.add_subcommand("get", "Print a customer's view as JSON, with the offset and "
                                        "stream time it reflects.");
  get->add_option("CUSTOMER_ID", id, "The customer id")->required();

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
  if (*get) return Get(c, id);
  if (*status) return Status(c, json);
  return kUsage;
}
