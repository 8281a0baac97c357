// Alert latency against a running lifecycled: produces a steady stream of customer
// events to Kafka at a fixed rate (default 10,000 events/s) and, among them, every
// --alert-every-th event is a DealLost of a fresh customer, which raises a DEAL_LOST
// alert at once. A subscriber (AlertService.Subscribe over gRPC, kinds = DEAL_LOST)
// measures the time from the produce call to receiving that alert: producer
// batching, the broker, the projector's fetch, fold and commit, and the stream to the
// subscriber. Prints p50/p90/p99/max and how many alerts arrived.
//
//   alert_latency --brokers HOST:PORT --topic T --server HOST:PORT
//                 [--rate 10000] [--seconds 20] [--alert-every 100] [--customers 20000]
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "bench/stats.h"
#include "lifecycle/v1/service.grpc.pb.h"
#include "services/stream/kafka.h"

namespace v1 = lifecycle::v1;
using Clock = std::chrono::steady_clock;
using lifecycle::bench::Percentile;

namespace {

int64_t Nanos(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

void SetNow(v1::Event* e) {
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  const int64_t us = std::chrono::duration_cast<std::chrono::microseconds>(now).count();
  e->mutable_occurred_at()->set_seconds(us / 1000000);
  e->mutable_occurred_at()->set_nanos(static_cast<int32_t>(us % 1000000) * 1000);
}

}  // namespace

int main(int argc, char** argv) {
  std::string brokers = "127.0.0.1:9092";
  std::string topic = "lifecycle.customer-events";
  std::string server = "127.0.0.1:50151";
  double rate = 10000;
  double seconds = 20;
  double warmup = 3;
  int alert_every = 100;
  int64_t customers = 20000;
  CLI::App app{"alert_latency — from producing an event to a subscriber receiving its alert"};
  app.add_option("--brokers", brokers)->capture_default_str();
  app.add_option("--topic", topic)->capture_default_str();
  app.add_option("--server", server, "lifecycled's gRPC address")->capture_default_str();
  app.add_option("--rate", rate, "Events per second, alert-raising ones included")
      ->capture_default_str()
      ->check(CLI::Range(1.0, 1e7));
  app.add_option("--seconds", seconds, "How long to produce (measured)")->capture_default_str();
  app.add_option("--warmup", warmup,
                 "Produce the same stream this long first, unmeasured (group join, first fetches)")
      ->capture_default_str();
  app.add_option("--alert-every", alert_every, "Every Nth event raises an alert")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000000));
  app.add_option("--customers", customers, "Customers the other events are spread over")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  // A producer tuned for latency, as an upstream system that cares would set it.
  auto producer = lifecycle::stream::Producer::Create(brokers, {{"linger.ms", "1"}});
  if (!producer.ok()) {
    std::fprintf(stderr, "alert_latency: %s\n", producer.status().ToString().c_str());
    return 2;
  }
  const int64_t total = static_cast<int64_t>(rate * seconds);
  const int64_t expected = total / alert_every;
  const std::string run = absl::StrCat("LAT", Nanos(Clock::now()) % 1000000000, "-");
  std::vector<std::atomic<int64_t>> sent(static_cast<size_t>(expected) + 1);
  std::vector<double> latencies_ms;
  latencies_ms.reserve(static_cast<size_t>(expected));
  std::atomic<int64_t> received{0}, foreign{0};

  // The subscriber, connected before the first event is produced.
  auto channel = grpc::CreateChannel(server, grpc::InsecureChannelCredentials());
  auto stub = v1::AlertService::NewStub(channel);
  grpc::ClientContext ctx;
  v1::SubscribeRequest req;
  req.add_kinds(v1::ALERT_KIND_DEAL_LOST);
  auto stream = stub->Subscribe(&ctx, req);
  std::thread subscriber([&] {
    v1::AlertEnvelope env;
    while (stream->Read(&env)) {
      const int64_t at = Nanos(Clock::now());
      const std::string& id = env.alert().customer_id();
      int64_t i = -1;
      if (id.rfind(run, 0) != 0 || !absl::SimpleAtoi(id.substr(run.size()), &i) || i < 0 ||
          i >= expected) {
        ++foreign;
        continue;
      }
      latencies_ms.push_back(static_cast<double>(at - sent[static_cast<size_t>(i)].load()) / 1e6);
      if (getenv("ALERT_LATENCY_TRACE")) {
        const int64_t wall_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                    std::chrono::system_clock::now().time_since_epoch())
                                    .count();
        std::fprintf(stderr, "trace %lld partition %d latency_ms %.1f %s wall_ms %lld\n",
                     static_cast<long long>(at / 1000000 % 1000000), env.alert().partition(),
                     latencies_ms.back(), id.c_str(), static_cast<long long>(wall_ms));
      }
      if (++received == expected) break;
    }
  });

  std::printf("alert_latency: %.0f events/s for %.0f s (%lld events), every %dth a DealLost of a "
              "new customer (%lld alerts expected), the rest purchases and service visits of "
              "%lld customers; producer linger.ms=1; after %.0f s of warm-up\n",
              rate, seconds, static_cast<long long>(total), alert_every,
              static_cast<long long>(expected), static_cast<long long>(customers), warmup);
  std::fflush(stdout);
  v1::Event e;
  std::string bytes;
  const int64_t warm = static_cast<int64_t>(rate * warmup);
  auto start = Clock::now();
  int64_t alerts_sent = 0;
  for (int64_t n = -warm; n < total; ++n) {
    // Paced: event n leaves at start + n / rate.
    const auto due = start + std::chrono::nanoseconds(static_cast<int64_t>((n + warm) * 1e9 / rate));
    if (Clock::now() < due) std::this_thread::sleep_until(due);
    if (n == 0) start = Clock::now() - std::chrono::nanoseconds(static_cast<int64_t>(warm * 1e9 / rate));
    e.Clear();
    SetNow(&e);
    e.set_source("bench");
    if (n < 0 && (-n) % alert_every == 0) {  // warm-up alerts: raised, not measured
      e.set_customer_id(absl::StrCat("W", run, -n));
      e.set_event_id(absl::StrCat("W", run, "lost-", -n));
      e.mutable_deal_lost()->set_lead_id("L-warm");
    } else if (n >= 0 && n % alert_every == alert_every - 1 && alerts_sent < expected) {
      const int64_t i = alerts_sent++;
      e.set_customer_id(absl::StrCat(run, i));
      e.set_event_id(absl::StrCat(run, "lost-", i));
      e.mutable_deal_lost()->set_lead_id(absl::StrCat("L-", i));
      e.mutable_deal_lost()->set_reason(v1::DEAL_LOST_REASON_PRICE);
      sent[static_cast<size_t>(i)].store(Nanos(Clock::now()));
    } else {
      e.set_customer_id(absl::StrCat("B", (n + warm) % customers));
      e.set_event_id(absl::StrCat(run, "e-", n));
      if (n % 2 == 0) {
        auto* p = e.mutable_purchase();
        p->set_order_id(absl::StrCat("O", n));
        p->mutable_amount()->set_amount_minor(10000 + (n % 50000 + 50000) % 50000);  // n < 0 in the warm-up
        p->mutable_amount()->set_currency("CNY");
        p->set_kind(v1::PURCHASE_KIND_PARTS);
      } else {
        auto* s = e.mutable_service_visit();
        s->set_visit_id(absl::StrCat("V", n));
        s->set_kind(v1::SERVICE_KIND_MAINTENANCE);
        s->mutable_amount()->set_amount_minor(30000);
        s->mutable_amount()->set_currency("CNY");
        s->set_on_schedule(true);
      }
    }
    e.SerializeToString(&bytes);
    if (absl::Status s = (*producer)->Produce(topic, -1, e.customer_id(), bytes); !s.ok()) {
      std::fprintf(stderr, "alert_latency: produce: %s\n", s.ToString().c_str());
      return 2;
    }
    if (n % 1000 == 0) (*producer)->Poll(0);
  }
  const double produce_s =
      std::chrono::duration<double>(Clock::now() - start).count() - warm / rate;
  if (absl::Status s = (*producer)->Flush(30000); !s.ok()) {
    std::fprintf(stderr, "alert_latency: flush: %s\n", s.ToString().c_str());
  }
  // Wait for the last alerts (at most 30 s), then stop the stream.
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  while (received.load() < expected && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ctx.TryCancel();
  subscriber.join();
  std::printf("produced %lld events in %.2f s (%.0f events/s); alerts received %lld of %lld "
              "(other alerts ignored: %lld)\n",
              static_cast<long long>(total), produce_s, total / produce_s,
              static_cast<long long>(received.load()), static_cast<long long>(expected),
              static_cast<long long>(foreign.load()));
  std::printf("alert latency: p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms\n",
              Percentile(latencies_ms, 0.50), Percentile(latencies_ms, 0.90),
              Percentile(latencies_ms, 0.99), Percentile(latencies_ms, 1.0));
  return received.load() == expected ? 0 : 1;
}
