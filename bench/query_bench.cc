// Query benchmarks against a running lifecycled: GetCustomer at a fixed concurrency
// from an asynchronous gRPC client (QPS, p50, p99), then ListCustomers and GetSummary
// latency (sequential calls).
//   query_bench --server HOST:PORT --customers N [--concurrency 32] [--seconds 10]
//               [--channels 1] [--server-pid PID]
// --channels: the calls in flight spread over that many channels, each its own
// connection (as several dashboards' backends, or one with a pool of channels).
// With --server-pid (a lifecycled on this machine), also the CPU time both sides spent
// per GetCustomer call during that run: the server's from /proc/PID/stat, this
// client's from getrusage.
#include <grpcpp/grpcpp.h>

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "services/api/metrics.h"
#include "services/stream/kafka.h"
#include "bench/stats.h"
#include "lifecycle/v1/service.grpc.pb.h"

namespace v1 = lifecycle::v1;
using Clock = std::chrono::steady_clock;

namespace {

using lifecycle::bench::Percentile;

struct Call {
  grpc::ClientContext ctx;
  v1::GetCustomerRequest req;
  v1::GetCustomerResponse resp;
  grpc::Status status;
  Clock::time_point start;
  std::unique_ptr<grpc::ClientAsyncResponseReader<v1::GetCustomerResponse>> reader;
};

// CPU seconds (user + system, all threads) of process `pid` so far; -1 if unreadable.
double ProcessCpuSeconds(int pid) {
  const std::vector<std::string> f = lifecycle::api::ProcStatFields(std::to_string(pid));
  if (f.size() < 13) return -1;  // utime and stime are fields 14 and 15: f[11], f[12]
  return (std::stod(f[11]) + std::stod(f[12])) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

double OwnCpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  auto secs = [](const timeval& t) { return t.tv_sec + t.tv_usec / 1e6; };
  return secs(u.ru_utime) + secs(u.ru_stime);
}

}  // namespace

int main(int argc, char** argv) {
  std::string server = "127.0.0.1:50151";
  int64_t customers = 50000;
  int concurrency = 32;
  double seconds = 10;
  CLI::App app{"query_bench — GetCustomer QPS and latency; ListCustomers and GetSummary latency"};
  app.add_option("--server", server)->capture_default_str();
  app.add_option("--customers", customers, "Ids C100000.. to ask for")->capture_default_str();
  app.add_option("--concurrency", concurrency, "Requests in flight")->capture_default_str();
  app.add_option("--seconds", seconds, "Duration of the GetCustomer run")->capture_default_str();
  int channels = 1;
  app.add_option("--channels", channels,
                 "Connections the calls in flight are spread over (each its own channel)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  int server_pid = 0;
  app.add_option("--server-pid", server_pid,
                 "The server's process id (same machine): also print both sides' CPU time per "
                 "GetCustomer call");
  int partitions = 0;
  std::vector<int> only;
  app.add_option("--partitions", partitions,
                 "With --only-partitions: the events topic's partition count");
  app.add_option("--only-partitions", only,
                 "Ask only for customers of these partitions (e.g. those another instance of a "
                 "cluster holds: the forwarding cost)")
      ->delimiter(',');
  CLI11_PARSE(app, argc, argv);
  // The ids asked for: C100000.. (those of the chosen partitions only, when asked).
  std::vector<std::string> ids;
  for (int64_t i = 0; i < customers; ++i) {
    std::string id = absl::StrCat("C", 100000 + i);
    if (!only.empty() &&
        std::find(only.begin(), only.end(), lifecycle::stream::KeyPartition(id, partitions)) ==
            only.end()) {
      continue;
    }
    ids.push_back(std::move(id));
  }
  if (ids.empty()) {
    std::fprintf(stderr, "query_bench: no customer id of those partitions\n");
    return 1;
  }

  // Channels of the same target and arguments would share one connection (gRPC's
  // global subchannel pool): each gets a pool of its own.
  std::vector<std::unique_ptr<v1::CustomerService::Stub>> stubs;
  for (int i = 0; i < channels; ++i) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    stubs.push_back(v1::CustomerService::NewStub(
        grpc::CreateCustomChannel(server, grpc::InsecureChannelCredentials(), args)));
  }
  auto& stub = stubs.front();
  grpc::CompletionQueue cq;
  std::mt19937_64 rng(1);
  std::vector<double> latencies_ms;
  int64_t errors = 0;
  auto issue = [&](Call* c, size_t channel) {
    c->~Call();
    new (c) Call();
    c->req.set_customer_id(ids[rng() % ids.size()]);
    c->start = Clock::now();
    c->reader = stubs[channel]->AsyncGetCustomer(&c->ctx, c->req, &cq);
    c->reader->Finish(&c->resp, &c->status, c);
  };
  std::vector<Call> calls(concurrency);
  const double server_cpu0 = server_pid > 0 ? ProcessCpuSeconds(server_pid) : -1;
  const double own_cpu0 = OwnCpuSeconds();
  const auto t0 = Clock::now();
  const auto end = t0 + std::chrono::duration<double>(seconds);
  // Call i always goes over channel i % channels.
  for (size_t i = 0; i < calls.size(); ++i) issue(&calls[i], i % stubs.size());
  int in_flight = concurrency;
  void* tag;
  bool ok;
  while (in_flight > 0 && cq.Next(&tag, &ok)) {
    auto* c = static_cast<Call*>(tag);
    latencies_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - c->start).count());
    if (!c->status.ok()) ++errors;
    if (Clock::now() < end) {
      issue(c, static_cast<size_t>(c - calls.data()) % stubs.size());
    } else {
      --in_flight;
    }
  }
  const double s = std::chrono::duration<double>(Clock::now() - t0).count();
  const double server_cpu1 = server_pid > 0 ? ProcessCpuSeconds(server_pid) : -1;
  const double own_cpu1 = OwnCpuSeconds();
  std::printf("GetCustomer: %zu calls in %.1f s at concurrency %d over %d connection%s: %.0f QPS, "
              "p50 %.3f ms, p99 %.3f ms, %lld errors\n",
              latencies_ms.size(), s, concurrency, channels, channels == 1 ? "" : "s",
              latencies_ms.size() / s,
              Percentile(latencies_ms, 0.5), Percentile(latencies_ms, 0.99),
              static_cast<long long>(errors));
  if (server_pid > 0) {
    const double n = static_cast<double>(std::max<size_t>(latencies_ms.size(), 1));
    if (server_cpu0 < 0 || server_cpu1 < 0) {
      std::printf("CPU per GetCustomer call: no /proc/%d/stat to read\n", server_pid);
    } else {
      std::printf("CPU per GetCustomer call: server %.1f us, client %.1f us (%.1f s and %.1f s "
                  "over the run)\n",
                  1e6 * (server_cpu1 - server_cpu0) / n, 1e6 * (own_cpu1 - own_cpu0) / n,
                  server_cpu1 - server_cpu0, own_cpu1 - own_cpu0);
    }
  }

  auto timed = [&](const char* name, auto call) {
    std::vector<double> ms;
    for (int i = 0; i < 200; ++i) {
      const auto a = Clock::now();
      grpc::Status st = call();
      ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - a).count());
      if (!st.ok()) {
        std::printf("%s: %s\n", name, st.error_message().c_str());
        return;
      }
    }
    std::printf("%s: 200 sequential calls, p50 %.3f ms, p99 %.3f ms\n", name, Percentile(ms, 0.5),
                Percentile(ms, 0.99));
  };
  // One page of 50 from ListCustomers, the request set up by `with`.
  auto list = [&](const char* name, const std::function<void(v1::ListCustomersRequest*)>& with) {
    timed(name, [&] {
      grpc::ClientContext ctx;
      v1::ListCustomersRequest r;
      r.set_page_size(50);
      with(&r);
      v1::ListCustomersResponse resp;
      return stub->ListCustomers(&ctx, r, &resp);
    });
  };
  list("ListCustomers (stage AT_RISK, page 50)", [](auto* r) { r->set_stage(v1::STAGE_AT_RISK); });
  list("ListCustomers (min churn risk 0.5 as of now, riskiest first, page 50)",
       [](auto* r) { r->set_min_churn_risk(0.5); });
  list("ListCustomers (min churn risk 0.5, by expected value, page 50)", [](auto* r) {
    r->set_min_churn_risk(0.5);
    r->set_order_by(v1::CUSTOMER_ORDER_EXPECTED_VALUE);
  });
  timed("GetSummary (all dimensions)", [&] {
    grpc::ClientContext ctx;
    v1::GetSummaryResponse resp;
    return stub->GetSummary(&ctx, v1::GetSummaryRequest(), &resp);
  });
  return errors == 0 ? 0 : 1;
}
