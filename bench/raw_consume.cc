// The raw consume ceiling: a bare librdkafka consumer reads a whole topic from the
// beginning (no decoding, no store) and prints records/s.
//   raw_consume --brokers HOST:PORT --topic T
#include <librdkafka/rdkafkacpp.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"

int main(int argc, char** argv) {
  std::string brokers = "127.0.0.1:9092", topic = "lifecycle.customer-events";
  CLI::App app{"raw_consume — how fast a bare librdkafka consumer reads a topic"};
  app.add_option("--brokers", brokers)->capture_default_str();
  app.add_option("--topic", topic)->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  std::string err;
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  conf->set("bootstrap.servers", brokers, err);
  conf->set("group.id", "raw-consume-bench", err);
  conf->set("enable.auto.commit", "false", err);
  conf->set("enable.partition.eof", "false", err);
  std::unique_ptr<RdKafka::KafkaConsumer> c(RdKafka::KafkaConsumer::create(conf.get(), err));
  if (!c) {
    std::fprintf(stderr, "raw_consume: %s\n", err.c_str());
    return 1;
  }
  RdKafka::Metadata* md = nullptr;
  std::unique_ptr<RdKafka::Topic> t(RdKafka::Topic::create(c.get(), topic, nullptr, err));
  if (c->metadata(false, t.get(), &md, 10000) != RdKafka::ERR_NO_ERROR || md->topics()->empty()) {
    std::fprintf(stderr, "raw_consume: no metadata for %s\n", topic.c_str());
    return 1;
  }
  std::vector<RdKafka::TopicPartition*> parts;
  int64_t total = 0;
  for (const auto* p : *md->topics()->at(0)->partitions()) {
    int64_t lo = 0, hi = 0;
    c->query_watermark_offsets(topic, p->id(), &lo, &hi, 10000);
    total += hi - lo;
    parts.push_back(RdKafka::TopicPartition::create(topic, p->id(), RdKafka::Topic::OFFSET_BEGINNING));
  }
  delete md;
  c->assign(parts);
  const auto t0 = std::chrono::steady_clock::now();
  int64_t n = 0, bytes = 0;
  while (n < total) {
    std::unique_ptr<RdKafka::Message> m(c->consume(1000));
    if (m->err() == RdKafka::ERR_NO_ERROR) {
      ++n;
      bytes += static_cast<int64_t>(m->len());
    }
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("raw consume: %lld records (%.1f MB) in %.2f s: %.0f records/s\n",
              static_cast<long long>(n), bytes / 1e6, s, n / s);
  RdKafka::TopicPartition::destroy(parts);
  c->close();
  return 0;
}
