#include "services/web/http_server.h"

#include <grpcpp/grpcpp.h>
#include <httplib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <chrono>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/util/json_util.h"
#include "lifecycle/v1/service.grpc.pb.h"
#include "services/api/metrics.h"
#include "spdlog/spdlog.h"

namespace lifecycle::web {
namespace {

namespace pb = google::protobuf;
namespace v1 = lifecycle::v1;

int HttpStatus(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK: return 200;
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::OUT_OF_RANGE: return 400;
    case grpc::StatusCode::UNAUTHENTICATED: return 401;
    case grpc::StatusCode::PERMISSION_DENIED: return 403;
    case grpc::StatusCode::NOT_FOUND: return 404;
    case grpc::StatusCode::FAILED_PRECONDITION: return 412;
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return 429;
    case grpc::StatusCode::DEADLINE_EXCEEDED: return 504;
    case grpc::StatusCode::UNAVAILABLE: return 503;
    default: return 500;
  }
}

const char* CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case grpc::StatusCode::OUT_OF_RANGE: return "OUT_OF_RANGE";
    case grpc::StatusCode::UNAUTHENTICATED: return "UNAUTHENTICATED";
    case grpc::StatusCode::PERMISSION_DENIED: return "PERMISSION_DENIED";
    case grpc::StatusCode::NOT_FOUND: return "NOT_FOUND";
    case grpc::StatusCode::FAILED_PRECONDITION: return "FAILED_PRECONDITION";
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::UNAVAILABLE: return "UNAVAILABLE";
    case grpc::StatusCode::CANCELLED: return "CANCELLED";
    default: return "INTERNAL";
  }
}

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (const char c : s) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out.append(" ");
    } else {
      out.push_back(c);
    }
  }
  return out + "\"";
}

std::string ErrorJson(grpc::StatusCode code, const std::string& message) {
  return absl::StrCat("{\"code\":\"", CodeName(code), "\",\"message\":", JsonString(message), "}");
}

std::string ToJson(const pb::Message& m) {
  pb::util::JsonPrintOptions o;
  o.always_print_primitive_fields = true;  // zeros too: what a gRPC client reads as 0
  std::string out;
  if (!pb::util::MessageToJsonString(m, &out, o).ok()) out = "{}";  // not for our messages
  return out;
}

// The query string as the request message: each parameter is a field (JSON or proto
// name), repeated parameters fill repeated fields; unknown ones are an error.
grpc::Status QueryToMessage(const httplib::Request& r, pb::Message* m,
                            const std::set<std::string>& skip) {
  std::map<std::string, std::vector<std::string>> params;
  for (const auto& [k, v] : r.params) {
    if (!skip.count(k)) params[k].push_back(v);
  }
  std::string json = "{";
  const pb::Descriptor* d = m->GetDescriptor();
  for (const auto& [k, values] : params) {
    const pb::FieldDescriptor* f = d->FindFieldByName(k);
    if (!f) f = d->FindFieldByCamelcaseName(k);
    if (!f) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          absl::StrCat("unknown parameter ", k, " for ", d->name()));
    }
    if (json.size() > 1) json.push_back(',');
    absl::StrAppend(&json, JsonString(f->json_name()), ":");
    if (f->is_repeated()) {
      json.push_back('[');
      for (size_t i = 0; i < values.size(); ++i) {
        absl::StrAppend(&json, i ? "," : "", JsonString(values[i]));
      }
      json.push_back(']');
    } else {
      json += JsonString(values.back());
    }
  }
  json.push_back('}');
  pb::util::Status s = pb::util::JsonStringToMessage(json, m);
  if (!s.ok()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("query parameters: ", std::string(s.message())));
  }
  return grpc::Status::OK;
}

std::string TokenOf(const httplib::Request& r) {
  const std::string auth = r.get_header_value("Authorization");
  if (!auth.empty()) return auth;
  if (r.has_param("access_token")) return "Bearer " + r.get_param_value("access_token");
  return "";
}

class HttpServerImpl final : public HttpServer {
 public:
  HttpServerImpl(std::shared_ptr<grpc::Channel> channel, api::Metrics* metrics,
                 std::shared_ptr<spdlog::logger> log)
      : customers_(channel ? v1::CustomerService::NewStub(channel) : nullptr),
        alerts_(channel ? v1::AlertService::NewStub(channel) : nullptr),
        admin_(channel ? v1::AdminService::NewStub(channel) : nullptr),
        metrics_(metrics),
        log_(log ? std::move(log) : spdlog::default_logger()) {}

  ~HttpServerImpl() override { Stop(); }

  absl::Status Start(const HttpOptions& o) {
    // Event streams hold a thread each while they last: room for a few of them and for
    // requests; the metrics port needs next to none.
    const size_t threads = o.metrics_only ? 2 : 32;
    srv_.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
    // One process per address (httplib's default would set SO_REUSEPORT).
    srv_.set_socket_options([](int sock) {
      int yes = 1;
      ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    });
    if (o.metrics_only || !customers_) {
      MetricsRoute();
    } else {
      Routes();
    }
    // Missing files do not stop the daemon: the JSON API and /metrics still serve.
    // httplib compresses responses on the fly, with brotli when the client offers it:
    // 1.7 s for ECharts' 1.1 MB on this class of machine, against 40 ms for gzip. The
    // offer of brotli is dropped before routing, so gzip is chosen.
    srv_.set_pre_routing_handler([](const httplib::Request& req, httplib::Response&) {
      auto& headers = const_cast<httplib::Headers&>(req.headers);
      auto it = headers.find("Accept-Encoding");
      if (it != headers.end() && it->second.find("br") != std::string::npos) {
        std::string v;
        for (absl::string_view part : absl::StrSplit(it->second, ',')) {
          part = absl::StripAsciiWhitespace(part);
          if (part != "br" && !absl::StartsWith(part, "br;")) absl::StrAppend(&v, v.empty() ? "" : ", ", part);
        }
        it->second = v;
      }
      return httplib::Server::HandlerResponse::Unhandled;
    });
    // Versioned third-party files: a browser may keep them (and their compiled code).
    if (!o.vendor_dir.empty() &&
        !srv_.set_mount_point("/vendor", o.vendor_dir, {{"Cache-Control", "public, max-age=86400"}})) {
      log_->warn("--web-vendor {} is not a directory: the dashboard has no charts (run "
                 "deploy/local/install-tools.sh)", o.vendor_dir);
    }
    if (!o.web_root.empty() && !srv_.set_mount_point("/", o.web_root)) {
      log_->warn("--web-root {} is not a directory: no dashboard, JSON API only", o.web_root);
    }
    const auto colon = o.listen.rfind(':');
    if (colon == std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat("HTTP address ", o.listen, ": want host:port"));
    }
    const std::string host = o.listen.substr(0, colon);
    const int want = std::atoi(o.listen.substr(colon + 1).c_str());
    port_ = want == 0 ? srv_.bind_to_any_port(host) : (srv_.bind_to_port(host, want) ? want : -1);
    if (port_ <= 0) {
      absl::StatusOr<int> fd = api::ListenTcp(o.listen);  // says why (in use, not local)
      if (fd.ok()) ::close(*fd);
      return absl::UnavailableError(absl::StrCat(
          o.metrics_only ? "cannot listen for metrics on " : "cannot listen for HTTP on ",
          fd.ok() ? absl::StrCat(o.listen, ": refused") : std::string(fd.status().message())));
    }
    thread_ = std::thread([this] { srv_.listen_after_bind(); });
    // httplib's stop() does nothing until the listening loop has begun: a Stop() right
    // after Start() (a daemon failing to start) would then wait on it for ever.
    for (int i = 0; i < 5000 && !srv_.is_running(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    log_->info("{} on http://{}:{}/", o.metrics_only ? "metrics" : "HTTP (dashboard, JSON API, /metrics)",
               host, port_);
    return absl::OkStatus();
  }

  int port() const override { return port_; }

  void Stop() override {
    if (stopping_.exchange(true)) return;
    {
      std::lock_guard<std::mutex> lock(streams_mu_);
      for (auto* ctx : streams_) ctx->TryCancel();
    }
    srv_.stop();
    if (thread_.joinable()) thread_.join();
  }

 private:
  template <typename Req, typename Resp, typename Call>
  void Unary(const httplib::Request& hr, httplib::Response& res, Req req, Call call) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    const std::string token = TokenOf(hr);
    if (!token.empty()) ctx.AddMetadata("authorization", token);
    Resp resp;
    grpc::Status s = call(&ctx, req, &resp);
    Reply(res, s, resp);
  }

  static void Reply(httplib::Response& res, const grpc::Status& s, const pb::Message& m) {
    res.set_header("Cache-Control", "no-store");
    if (!s.ok()) {
      res.status = HttpStatus(s.error_code());
      res.set_content(ErrorJson(s.error_code(), s.error_message()), "application/json");
      return;
    }
    res.set_content(ToJson(m), "application/json");
  }

  template <typename Req>
  bool Parse(const httplib::Request& hr, httplib::Response& res, Req* req,
             const std::set<std::string>& skip = {"access_token"}) {
    grpc::Status s = QueryToMessage(hr, req, skip);
    if (s.ok()) return true;
    Reply(res, s, *req);
    return false;
  }

  // GET `pattern` as the unary RPC `call` of `stub`: the request's fields from the
  // query string, or (`id_from_path`) its customer_id from the path's first group.
  template <typename Stub, typename Req, typename Resp>
  void Route(const char* pattern, Stub* stub,
             grpc::Status (Stub::*call)(grpc::ClientContext*, const Req&, Resp*),
             bool id_from_path = false) {
    srv_.Get(pattern, [this, stub, call, id_from_path](const httplib::Request& hr, httplib::Response& res) {
      Req req;
      if constexpr (requires { req.set_customer_id(std::string()); }) {
        if (id_from_path) req.set_customer_id(hr.matches[1]);
      }
      if (!id_from_path && !Parse(hr, res, &req)) return;
      Unary<Req, Resp>(hr, res, req, [stub, call](auto* c, auto& q, auto* p) { return (stub->*call)(c, q, p); });
    });
  }

  void Routes() {
    using Customers = v1::CustomerService::Stub;
    Route(R"(/api/v1/customers/([^/]+)/history)", customers_.get(), &Customers::GetHistory, true);
    Route(R"(/api/v1/customers/([^/]+))", customers_.get(), &Customers::GetCustomer, true);
    Route("/api/v1/customers", customers_.get(), &Customers::ListCustomers);
    Route("/api/v1/summary", customers_.get(), &Customers::GetSummary);
    Route("/api/v1/alerts", alerts_.get(), &v1::AlertService::Stub::ListAlerts);
    Route("/api/v1/status", admin_.get(), &v1::AdminService::Stub::GetStatus);
    srv_.Get("/api/v1/alerts/stream", [this](const httplib::Request& hr, httplib::Response& res) {
      Stream(hr, res);
    });
    MetricsRoute();
  }

  void MetricsRoute() {
    srv_.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(metrics_ ? metrics_->Render() : "", "text/plain; version=0.0.4; charset=utf-8");
    });
  }

  // AlertService.Subscribe as Server-Sent Events: `id:` is the alert's cursor, so a
  // browser's EventSource resumes where it was (Last-Event-ID) after a reconnect. A
  // thread reads the gRPC stream into a queue; the response writes what is queued, or
  // a keep-alive comment every second, which is also how a client that went away
  // is noticed (the write fails) when no alert comes.
  void Stream(const httplib::Request& hr, httplib::Response& res) {
    v1::SubscribeRequest req;
    if (!Parse(hr, res, &req)) return;
    const std::string last = hr.get_header_value("Last-Event-ID");
    if (!last.empty()) req.set_cursor(last);
    // Answer a bad token or filter with its HTTP status before the stream opens (an
    // EventSource stops on an error status; on a 200 that ends it would retry forever):
    // a one-alert ListAlerts with the same token and filters says.
    {
      v1::ListAlertsRequest probe;
      *probe.mutable_kinds() = req.kinds();
      probe.set_min_severity(req.min_severity());
      probe.set_page_size(1);
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
      const std::string token = TokenOf(hr);
      if (!token.empty()) ctx.AddMetadata("authorization", token);
      v1::ListAlertsResponse ignored;
      grpc::Status s = alerts_->ListAlerts(&ctx, probe, &ignored);
      if (!s.ok()) {
        Reply(res, s, ignored);
        return;
      }
    }
    struct State {
      grpc::ClientContext ctx;
      std::thread reader;
      std::mutex mu;
      std::condition_variable cv;
      std::deque<std::string> queue;
      bool done = false;
      grpc::Status status;
      bool opened = false;
    };
    auto st = std::make_shared<State>();
    const std::string token = TokenOf(hr);
    if (!token.empty()) st->ctx.AddMetadata("authorization", token);
    {
      std::lock_guard<std::mutex> lock(streams_mu_);
      if (stopping_) {
        res.status = 503;
        return;
      }
      streams_.insert(&st->ctx);
    }
    st->reader = std::thread([this, st, req] {
      auto reader = alerts_->Subscribe(&st->ctx, req);
      v1::AlertEnvelope env;
      while (reader->Read(&env)) {
        std::string ev = absl::StrCat("id: ", env.cursor(), "\nevent: alert\ndata: ", ToJson(env), "\n\n");
        std::lock_guard<std::mutex> lock(st->mu);
        st->queue.push_back(std::move(ev));
        st->cv.notify_all();
      }
      grpc::Status s = reader->Finish();
      std::lock_guard<std::mutex> lock(st->mu);
      st->status = s;
      st->done = true;
      st->cv.notify_all();
    });
    res.set_header("Cache-Control", "no-store");
    res.set_header("X-Accel-Buffering", "no");
    res.set_chunked_content_provider(
        "text/event-stream",
        [st](size_t, httplib::DataSink& sink) {
          std::string out;
          bool done = false;
          grpc::Status status;
          if (!st->opened) {
            st->opened = true;
            out = ": lifecycled alert stream\nretry: 2000\n\n";
          } else {
            std::unique_lock<std::mutex> lock(st->mu);
            // A keep-alive every second: a browser that navigated away is noticed (the
            // write fails) within a second, and its thread goes back to the pool.
            st->cv.wait_for(lock, std::chrono::seconds(1), [&] { return !st->queue.empty() || st->done; });
            for (int i = 0; i < 256 && !st->queue.empty(); ++i) {
              out += st->queue.front();
              st->queue.pop_front();
            }
            done = st->done && st->queue.empty();
            status = st->status;
            if (out.empty() && !done) out = ": keep-alive\n\n";
          }
          if (done && !status.ok() && status.error_code() != grpc::StatusCode::CANCELLED) {
            out += absl::StrCat("event: error\ndata: ", ErrorJson(status.error_code(), status.error_message()),
                                "\n\n");
          }
          if (!out.empty() && !sink.write(out.data(), out.size())) return false;
          if (done) sink.done();
          return true;
        },
        [this, st](bool) {
          st->ctx.TryCancel();
          if (st->reader.joinable()) st->reader.join();
          std::lock_guard<std::mutex> lock(streams_mu_);
          streams_.erase(&st->ctx);
        });
  }

  httplib::Server srv_;
  std::thread thread_;
  int port_ = -1;
  std::unique_ptr<v1::CustomerService::Stub> customers_;
  std::unique_ptr<v1::AlertService::Stub> alerts_;
  std::unique_ptr<v1::AdminService::Stub> admin_;
  api::Metrics* metrics_;
  std::shared_ptr<spdlog::logger> log_;
  std::atomic<bool> stopping_{false};
  std::mutex streams_mu_;
  std::set<grpc::ClientContext*> streams_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(const HttpOptions& options,
                                                              std::shared_ptr<grpc::Channel> api,
                                                              api::Metrics* metrics,
                                                              std::shared_ptr<spdlog::logger> log) {
  auto s = std::make_unique<HttpServerImpl>(std::move(api), metrics, std::move(log));
  if (absl::Status st = s->Start(options); !st.ok()) return st;
  return std::unique_ptr<HttpServer>(std::move(s));
}

}  // namespace lifecycle::web
