#include "services/stream/kafka.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafkacpp.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"

namespace lifecycle::stream {
namespace {

absl::Status KafkaError(absl::string_view what, const std::string& detail) {
  return absl::UnavailableError(absl::StrCat(what, ": ", detail));
}

// librdkafka's own log lines go through the "stream" logger (spdlog's default logger
// where a program has none), not straight to stderr, and once per repeated condition:
// a broker that stays down makes librdkafka log the same failed connect again and
// again, with only counts and durations changing. A line whose text, with its digit
// runs blanked, was logged less than kRepeatWindow ago is counted instead (at debug),
// and the count is told with the next line logged for it.
class KafkaLogBridge {
 public:
  static KafkaLogBridge& Get() {
    static auto* bridge = new KafkaLogBridge;  // never destroyed: librdkafka threads may log late
    return *bridge;
  }

  // `level` is librdkafka's syslog level (0 emergency ... 7 debug).
  void Log(int level, const char* facility, const char* client, const char* message) {
    auto log = spdlog::get("stream");
    if (!log) log = spdlog::default_logger();
    if (!log) return;
    const spdlog::level::level_enum l = level <= 2   ? spdlog::level::err
                                        : level <= 4 ? spdlog::level::warn
                                        : level == 5 ? spdlog::level::info
                                        : level == 6 ? spdlog::level::debug
                                                     : spdlog::level::trace;
    if (!log->should_log(l)) return;
    // The key: facility and text without the thread prefix, the trailing "(after N ms
    // ..., N identical error(s) suppressed)" and digits.
    std::string_view text = message ? message : "";
    if (text.rfind("[thrd:", 0) == 0) {
      const size_t end = text.find("]: ");
      if (end != std::string_view::npos) text.remove_prefix(end + 3);
    }
    text = text.substr(0, text.find(" ("));
    std::string key = absl::StrCat(facility ? facility : "", "|");
    for (const char c : text) {
      if (std::isdigit(static_cast<unsigned char>(c))) {
        if (key.back() != '#') key.push_back('#');
      } else {
        key.push_back(c);
      }
    }
    const auto now = std::chrono::steady_clock::now();
    int64_t repeats = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (seen_.size() > 4096) seen_.clear();  // bounded; at worst a line is logged twice
      auto [it, fresh] = seen_.try_emplace(key, Seen{now, 0});
      if (!fresh) {
        if (now - it->second.logged < kRepeatWindow) {
          ++it->second.repeats;
          repeats = -1;
        } else {
          repeats = it->second.repeats;
          it->second = Seen{now, 0};
        }
      }
    }
    const std::string who = absl::StrCat("librdkafka", client && *client ? " " : "",
                                         client ? client : "", " ", facility ? facility : "");
    if (repeats < 0) {
      log->debug("{}: {} (repeated)", who, message ? message : "");
      return;
    }
    log->log(l, "{}: {}{}", who, message ? message : "",
             repeats > 0 ? absl::StrCat(" (", repeats, " more like this in the last ",
                                        std::chrono::duration_cast<std::chrono::seconds>(
                                            kRepeatWindow).count(),
                                        " s)")
                         : "");
  }

 private:
  static constexpr std::chrono::minutes kRepeatWindow{5};
  struct Seen {
    std::chrono::steady_clock::time_point logged;
    int64_t repeats;
  };
  std::mutex mu_;
  std::unordered_map<std::string, Seen> seen_;
};

// For the C++ clients: log lines arrive as EVENT_LOG events (on librdkafka's threads).
class LogEvents : public RdKafka::EventCb {
 public:
  void event_cb(RdKafka::Event& ev) override {
    if (ev.type() == RdKafka::Event::EVENT_LOG) {
      KafkaLogBridge::Get().Log(static_cast<int>(ev.severity()), ev.fac().c_str(), "",
                                ev.str().c_str());
    } else if (ev.type() == RdKafka::Event::EVENT_ERROR) {
      // Errors repeat what the log lines and delivery reports already say.
      auto log = spdlog::get("stream");
      if (log) log->debug("kafka: {} ({})", ev.str(), RdKafka::err2str(ev.err()));
    }
  }
};

LogEvents& SharedLogEvents() {
  static auto* events = new LogEvents;  // never destroyed, as the bridge
  return *events;
}

void CLogCallback(const rd_kafka_t* rk, int level, const char* facility, const char* message) {
  KafkaLogBridge::Get().Log(level, facility, rk ? rd_kafka_name(rk) : "", message);
}

absl::Status Set(RdKafka::Conf* conf, const std::string& key, const std::string& value) {
  std::string err;
  if (conf->set(key, value, err) != RdKafka::Conf::CONF_OK) {
    return absl::InvalidArgumentError(absl::StrCat("kafka setting ", key, "=", value, ": ", err));
  }
  return absl::OkStatus();
}

absl::Status ApplyAll(RdKafka::Conf* conf, const KafkaConfig& settings) {
  for (const auto& [k, v] : settings) {
    if (absl::Status s = Set(conf, k, v); !s.ok()) return s;
  }
  return absl::OkStatus();
}

// A plain C handle for admin and metadata requests.
struct CHandle {
  rd_kafka_t* rk = nullptr;
  ~CHandle() {
    if (rk) rd_kafka_destroy(rk);
  }
};

absl::Status OpenCHandle(const std::string& brokers, CHandle* h) {
  char errstr[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers.c_str(), errstr, sizeof(errstr)) !=
      RD_KAFKA_CONF_OK) {
    rd_kafka_conf_destroy(conf);
    return absl::InvalidArgumentError(errstr);
  }
  rd_kafka_conf_set_log_cb(conf, CLogCallback);
  rd_kafka_conf_set(conf, "log.connection.close", "false", errstr, sizeof(errstr));
  h->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
  if (!h->rk) {
    rd_kafka_conf_destroy(conf);  // rd_kafka_new owns conf only on success
    return KafkaError("creating a kafka client", errstr);
  }
  return absl::OkStatus();
}

class ProducerImpl : public Producer, public RdKafka::DeliveryReportCb {
 public:
  absl::Status Init(const std::string& brokers, const KafkaConfig& extra) {
    std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
    const KafkaConfig defaults = {
        {"bootstrap.servers", brokers},
        {"enable.idempotence", "true"},
        {"acks", "all"},
        {"partitioner", "murmur2_random"},  // the Java clients' choice: same key, same partition
        {"linger.ms", "5"},
        {"compression.type", "lz4"},
        {"log.connection.close", "false"},  // brokers close idle connections: not news
    };
    if (absl::Status s = ApplyAll(conf.get(), defaults); !s.ok()) return s;
    if (absl::Status s = ApplyAll(conf.get(), extra); !s.ok()) return s;
    std::string err;
    if (conf->set("dr_cb", static_cast<RdKafka::DeliveryReportCb*>(this), err) !=
            RdKafka::Conf::CONF_OK ||
        conf->set("event_cb", static_cast<RdKafka::EventCb*>(&SharedLogEvents()), err) !=
            RdKafka::Conf::CONF_OK) {
      return absl::InternalError(err);
    }
    producer_.reset(RdKafka::Producer::create(conf.get(), err));
    if (!producer_) return KafkaError("creating the producer", err);
    return absl::OkStatus();
  }

  ~ProducerImpl() override {
    if (producer_) producer_->flush(5000);
  }

  absl::Status Produce(const std::string& topic, int32_t partition, std::string_view key,
                       std::string_view value, uint64_t tag) override {
    auto* w = new Waiter{tag, nullptr};
    return Send(topic, partition, key, value, {}, w);
  }

  absl::Status ProduceWithCallback(const std::string& topic, int32_t partition,
                                   std::string_view key, std::string_view value,
                                   const std::vector<std::pair<std::string, std::string>>& headers,
                                   std::function<void(const Delivery&)> done) override {
    auto* w = new Waiter{0, std::move(done)};
    return Send(topic, partition, key, value, headers, w);
  }

  void Poll(int timeout_ms) override { producer_->poll(timeout_ms); }

  absl::Status Ping(int timeout_ms) override {
    RdKafka::Metadata* md = nullptr;
    RdKafka::ErrorCode err = producer_->metadata(false, nullptr, &md, timeout_ms);
    delete md;
    if (err != RdKafka::ERR_NO_ERROR) return KafkaError("broker metadata", RdKafka::err2str(err));
    return absl::OkStatus();
  }

  absl::Status Flush(int timeout_ms) override {
    RdKafka::ErrorCode err = producer_->flush(timeout_ms);
    if (err == RdKafka::ERR__TIMED_OUT) {
      return absl::DeadlineExceededError(absl::StrCat(
          producer_->outq_len(), " record(s) still undelivered after ", timeout_ms, " ms"));
    }
    if (err != RdKafka::ERR_NO_ERROR) return KafkaError("flushing", RdKafka::err2str(err));
    return absl::OkStatus();
  }

  std::vector<Delivery> TakeDeliveries() override {
    std::lock_guard<std::mutex> lock(mu_);
    return std::exchange(deliveries_, {});
  }

  void dr_cb(RdKafka::Message& m) override {
    std::unique_ptr<Waiter> w(static_cast<Waiter*>(m.msg_opaque()));
    Delivery d;
    d.tag = w->tag;
    d.ok = m.err() == RdKafka::ERR_NO_ERROR;
    if (!d.ok) d.error = m.errstr();
    d.partition = m.partition();
    d.offset = m.offset();
    if (w->done) {
      w->done(d);
      return;
    }
    std::lock_guard<std::mutex> lock(mu_);
    deliveries_.push_back(std::move(d));
  }

 private:
  // Travels with each record as its opaque pointer; freed by its delivery report.
  struct Waiter {
    uint64_t tag;
    std::function<void(const Delivery&)> done;
  };

  absl::Status Send(const std::string& topic, int32_t partition, std::string_view key,
                    std::string_view value,
                    const std::vector<std::pair<std::string, std::string>>& headers, Waiter* w) {
    for (;;) {
      RdKafka::Headers* hdrs = nullptr;
      if (!headers.empty()) {
        hdrs = RdKafka::Headers::create();
        for (const auto& [k, v] : headers) hdrs->add(k, v.data(), v.size());
      }
      RdKafka::ErrorCode err = producer_->produce(
          topic, partition < 0 ? RdKafka::Topic::PARTITION_UA : partition,
          RdKafka::Producer::RK_MSG_COPY, const_cast<char*>(value.data()), value.size(),
          key.empty() ? nullptr : key.data(), key.size(), 0, hdrs, w);
      if (err == RdKafka::ERR_NO_ERROR) {  // the headers now belong to the message
        producer_->poll(0);
        return absl::OkStatus();
      }
      delete hdrs;
      if (err != RdKafka::ERR__QUEUE_FULL) {
        delete w;
        return KafkaError(absl::StrCat("producing to ", topic), RdKafka::err2str(err));
      }
      producer_->poll(50);  // the local queue is full: serve delivery reports, then retry
    }
  }

  std::unique_ptr<RdKafka::Producer> producer_;
  std::mutex mu_;
  std::vector<Delivery> deliveries_;
};

class ConsumerImpl : public Consumer, public RdKafka::RebalanceCb, public RdKafka::EventCb {
 public:
  ConsumerImpl(RebalanceListener* listener, std::shared_ptr<spdlog::logger> log)
      : listener_(listener), log_(std::move(log)) {}

  absl::Status Init(const ConsumerOptions& o) {
    topic_ = o.topic;
    std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
    const KafkaConfig defaults = {
        {"bootstrap.servers", o.brokers},
        // A tail never joins a group; librdkafka still wants an id.
        {"group.id", o.tail ? o.group_id + ".tail" : o.group_id},
        {"client.id", o.client_id},
        {"enable.auto.commit", "false"},
        {"enable.auto.offset.store", "false"},
        {"auto.offset.reset", "earliest"},
        {"enable.partition.eof", "false"},
        {"isolation.level", "read_committed"},
        // Eager: whole revocations. Range moves fewest partitions between the members
        // that stay when one leaves (the cluster's replicas follow the assignor run).
        {"partition.assignment.strategy", "range,roundrobin"},
        {"session.timeout.ms", "10000"},
        {"heartbeat.interval.ms", "1000"},
        {"log.connection.close", "false"},
        // Records fetched ahead of the fold: 16 MiB is seconds of events at the fold's
        // rate; librdkafka's 64 MiB was resident memory for nothing.
        {"queued.max.messages.kbytes", "16384"},
    };
    if (absl::Status s = ApplyAll(conf.get(), defaults); !s.ok()) return s;
    if (absl::Status s = ApplyAll(conf.get(), o.extra); !s.ok()) return s;
    std::string err;
    if (conf->set("rebalance_cb", static_cast<RdKafka::RebalanceCb*>(this), err) !=
            RdKafka::Conf::CONF_OK ||
        conf->set("event_cb", static_cast<RdKafka::EventCb*>(this), err) !=
            RdKafka::Conf::CONF_OK) {
      return absl::InternalError(err);
    }
    consumer_.reset(RdKafka::KafkaConsumer::create(conf.get(), err));
    if (!consumer_) return KafkaError("creating the consumer", err);
    tail_ = o.tail;
    if (tail_) {
      log_->info("tail {} on topic {} (no group)", o.client_id, topic_);
      return absl::OkStatus();
    }
    RdKafka::ErrorCode e = consumer_->subscribe({topic_});
    if (e != RdKafka::ERR_NO_ERROR) {
      return KafkaError(absl::StrCat("subscribing to ", topic_), RdKafka::err2str(e));
    }
    log_->info("consumer {} joining group {} on topic {}", o.client_id, o.group_id, topic_);
    return absl::OkStatus();
  }

  ~ConsumerImpl() override { Close(); }

  absl::StatusOr<bool> Poll(int timeout_ms, Record* out) override {
    if (!fatal_.ok()) return fatal_;
    current_.reset(consumer_->consume(timeout_ms));
    if (!fatal_.ok()) return fatal_;  // set by a rebalance inside consume()
    if (!current_) return false;
    switch (current_->err()) {
      case RdKafka::ERR_NO_ERROR:
        broker_up_.store(true, std::memory_order_relaxed);
        out->partition = current_->partition();
        out->offset = current_->offset();
        out->key = current_->key_pointer()
                       ? std::string_view(static_cast<const char*>(current_->key_pointer()),
                                          current_->key_len())
                       : std::string_view();
        out->value = std::string_view(static_cast<const char*>(current_->payload()),
                                      current_->len());
        return true;
      case RdKafka::ERR__TIMED_OUT:
      case RdKafka::ERR__PARTITION_EOF:
        return false;
      case RdKafka::ERR__FATAL:
        return KafkaError("consumer", current_->errstr());
      default:
        log_->warn("consume: {}", current_->errstr());
        return false;
    }
  }

  std::vector<std::pair<std::string, std::string>> CurrentHeaders() override {
    std::vector<std::pair<std::string, std::string>> out;
    if (!current_) return out;
    RdKafka::Headers* h = current_->headers();
    if (!h) return out;
    for (const auto& hdr : h->get_all()) {
      out.emplace_back(hdr.key(), hdr.value() ? std::string(static_cast<const char*>(hdr.value()),
                                                            hdr.value_size())
                                              : std::string());
    }
    return out;
  }

  void CommitOffsets(const std::map<int32_t, int64_t>& next_offsets) override {
    CommitOffsets(next_offsets, {});
  }

  void CommitOffsets(const std::map<int32_t, int64_t>& next_offsets,
                     const std::map<int32_t, std::string>& metadata) override {
    if (next_offsets.empty() || !consumer_ || tail_) return;
    // The C API: this librdkafka's C++ TopicPartition carries no metadata.
    rd_kafka_topic_partition_list_t* list =
        rd_kafka_topic_partition_list_new(static_cast<int>(next_offsets.size()));
    for (const auto& [p, off] : next_offsets) {
      rd_kafka_topic_partition_t* tp = rd_kafka_topic_partition_list_add(list, topic_.c_str(), p);
      tp->offset = off;
      if (auto it = metadata.find(p); it != metadata.end() && !it->second.empty()) {
        tp->metadata = malloc(it->second.size());  // freed with the list
        memcpy(tp->metadata, it->second.data(), it->second.size());
        tp->metadata_size = it->second.size();
      }
    }
    rd_kafka_resp_err_t e = rd_kafka_commit(consumer_->c_ptr(), list, /*async=*/1);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) log_->debug("group offset commit: {}", rd_kafka_err2str(e));
    rd_kafka_topic_partition_list_destroy(list);
  }

  absl::StatusOr<std::map<int32_t, std::string>> CommittedMetadata(
      const std::vector<int32_t>& partitions, int timeout_ms) override {
    std::map<int32_t, std::string> out;
    if (partitions.empty() || !consumer_ || tail_) return out;
    rd_kafka_topic_partition_list_t* list =
        rd_kafka_topic_partition_list_new(static_cast<int>(partitions.size()));
    for (int32_t p : partitions) rd_kafka_topic_partition_list_add(list, topic_.c_str(), p);
    rd_kafka_resp_err_t e = rd_kafka_committed(consumer_->c_ptr(), list, timeout_ms);
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
      for (int i = 0; i < list->cnt; ++i) {
        const rd_kafka_topic_partition_t& tp = list->elems[i];
        if (tp.err != RD_KAFKA_RESP_ERR_NO_ERROR || tp.offset < 0) continue;
        out[tp.partition] = tp.metadata ? std::string(static_cast<const char*>(tp.metadata),
                                                      tp.metadata_size)
                                        : std::string();
      }
    }
    rd_kafka_topic_partition_list_destroy(list);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) return KafkaError("committed offsets", rd_kafka_err2str(e));
    return out;
  }

  absl::Status Assign(const std::map<int32_t, int64_t>& next_offsets) override {
    if (!tail_) return absl::FailedPreconditionError("Assign is for a tail, not a group member");
    std::vector<RdKafka::TopicPartition*> tps;
    std::string desc;
    for (const auto& [p, off] : next_offsets) {
      tps.push_back(RdKafka::TopicPartition::create(topic_, p, off));
      absl::StrAppend(&desc, desc.empty() ? "" : ", ", p, "@", off);
    }
    current_.reset();
    RdKafka::ErrorCode e = consumer_->assign(tps);
    RdKafka::TopicPartition::destroy(tps);
    if (e != RdKafka::ERR_NO_ERROR) return KafkaError("assign", RdKafka::err2str(e));
    log_->info("tailing {} partition(s) of {}: {}", next_offsets.size(), topic_,
               desc.empty() ? "none" : desc);
    return absl::OkStatus();
  }

  int64_t HighWatermark(int32_t partition) override {
    int64_t low = -1, high = -1;
    if (!consumer_ || consumer_->get_watermark_offsets(topic_, partition, &low, &high) !=
                          RdKafka::ERR_NO_ERROR) {
      return -1;
    }
    return high;
  }

  bool BrokerUp() const override { return broker_up_.load(std::memory_order_relaxed); }

  void Close() override {
    if (!consumer_ || closed_) return;
    closed_ = true;
    current_.reset();
    if (tail_) consumer_->unassign();
    RdKafka::ErrorCode e = consumer_->close();  // a member revokes through rebalance_cb
    if (e != RdKafka::ERR_NO_ERROR) log_->warn("closing the consumer: {}", RdKafka::err2str(e));
    log_->info("consumer closed");
  }

  void Wake() override {
    if (!consumer_) return;
    rd_kafka_queue_t* q = rd_kafka_queue_get_consumer(consumer_->c_ptr());
    if (!q) return;
    rd_kafka_queue_yield(q);
    rd_kafka_queue_destroy(q);
  }

  void rebalance_cb(RdKafka::KafkaConsumer* c, RdKafka::ErrorCode err,
                    std::vector<RdKafka::TopicPartition*>& parts) override {
    std::vector<int32_t> ids;
    for (auto* tp : parts) ids.push_back(tp->partition());
    if (err == RdKafka::ERR__ASSIGN_PARTITIONS) {
      absl::StatusOr<std::map<int32_t, int64_t>> starts = listener_->OnAssigned(ids);
      if (!starts.ok()) {
        fatal_ = starts.status();
        log_->error("assignment failed: {}", starts.status().ToString());
        c->unassign();
        return;
      }
      std::string desc;
      for (auto* tp : parts) {
        auto it = starts->find(tp->partition());
        const int64_t next = it == starts->end() ? 0 : it->second;
        tp->set_offset(next);
        absl::StrAppend(&desc, desc.empty() ? "" : ", ", tp->partition(), "@", next);
      }
      log_->info("assigned {} partition(s) of {}: {}", parts.size(), topic_, desc);
      RdKafka::ErrorCode e = c->assign(parts);
      if (e != RdKafka::ERR_NO_ERROR) {
        fatal_ = KafkaError("assign", RdKafka::err2str(e));
      }
    } else if (err == RdKafka::ERR__REVOKE_PARTITIONS) {
      log_->info("revoking {} partition(s) of {}", parts.size(), topic_);
      listener_->OnRevoked(ids);
      c->unassign();
    } else {
      log_->error("rebalance error: {}", RdKafka::err2str(err));
      listener_->OnRevoked(ids);
      c->unassign();
    }
  }

  void event_cb(RdKafka::Event& ev) override {
    switch (ev.type()) {
      case RdKafka::Event::EVENT_ERROR:
        if (ev.err() == RdKafka::ERR__ALL_BROKERS_DOWN) {
          if (broker_up_.exchange(false)) log_->warn("all brokers are down");
        } else if (ev.fatal()) {
          fatal_ = KafkaError("fatal consumer error", ev.str());
        } else {
          log_->debug("kafka: {} ({})", ev.str(), RdKafka::err2str(ev.err()));
        }
        break;
      case RdKafka::Event::EVENT_LOG:
        KafkaLogBridge::Get().Log(static_cast<int>(ev.severity()), ev.fac().c_str(), "",
                                  ev.str().c_str());
        break;
      default:
        break;
    }
  }

 private:
  RebalanceListener* listener_;
  std::shared_ptr<spdlog::logger> log_;
  std::string topic_;
  std::unique_ptr<RdKafka::KafkaConsumer> consumer_;
  std::unique_ptr<RdKafka::Message> current_;
  absl::Status fatal_;
  std::atomic<bool> broker_up_{true};
  bool closed_ = false;
  bool tail_ = false;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Producer>> Producer::Create(const std::string& brokers,
                                                           const KafkaConfig& extra) {
  auto p = std::make_unique<ProducerImpl>();
  if (absl::Status s = p->Init(brokers, extra); !s.ok()) return s;
  return std::unique_ptr<Producer>(std::move(p));
}

absl::StatusOr<std::unique_ptr<Consumer>> Consumer::Create(const ConsumerOptions& options,
                                                           RebalanceListener* listener,
                                                           std::shared_ptr<spdlog::logger> log) {
  if (!log) log = spdlog::default_logger();
  auto c = std::make_unique<ConsumerImpl>(listener, std::move(log));
  if (absl::Status s = c->Init(options); !s.ok()) return s;
  return std::unique_ptr<Consumer>(std::move(c));
}

namespace {

// True when the topic is in the metadata without error and every partition has a leader.
bool TopicReady(rd_kafka_t* rk, const std::string& topic, int timeout_ms) {
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
  const rd_kafka_metadata_t* md = nullptr;
  bool ready = rd_kafka_metadata(rk, 0, rkt, &md, timeout_ms) == RD_KAFKA_RESP_ERR_NO_ERROR &&
               md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR &&
               md->topics[0].partition_cnt > 0;
  for (int i = 0; ready && i < md->topics[0].partition_cnt; ++i) {
    ready = md->topics[0].partitions[i].leader >= 0 &&
            md->topics[0].partitions[i].err == RD_KAFKA_RESP_ERR_NO_ERROR;
  }
  if (md) rd_kafka_metadata_destroy(md);
  rd_kafka_topic_destroy(rkt);
  return ready;
}

}  // namespace

absl::Status EnsureTopics(const std::string& brokers, const std::vector<TopicSpec>& topics,
                          int timeout_ms) {
  if (topics.empty()) return absl::OkStatus();
  CHandle h;
  if (absl::Status s = OpenCHandle(brokers, &h); !s.ok()) return s;
  char errstr[512];
  std::vector<rd_kafka_NewTopic_t*> nts;
  absl::Status result;
  for (const auto& t : topics) {
    rd_kafka_NewTopic_t* nt = rd_kafka_NewTopic_new(t.name.c_str(), t.partitions,
                                                    t.replication_factor, errstr, sizeof(errstr));
    if (!nt) {
      result = absl::InvalidArgumentError(absl::StrCat("topic ", t.name, ": ", errstr));
      break;
    }
    nts.push_back(nt);
  }
  if (result.ok()) {
    rd_kafka_AdminOptions_t* opts = rd_kafka_AdminOptions_new(h.rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_AdminOptions_set_operation_timeout(opts, timeout_ms, errstr, sizeof(errstr));
    rd_kafka_AdminOptions_set_request_timeout(opts, timeout_ms, errstr, sizeof(errstr));
    rd_kafka_queue_t* q = rd_kafka_queue_new(h.rk);
    rd_kafka_CreateTopics(h.rk, nts.data(), nts.size(), opts, q);
    rd_kafka_event_t* ev = rd_kafka_queue_poll(q, timeout_ms + 5000);
    if (!ev) {
      result = absl::DeadlineExceededError(
          absl::StrCat("creating topics: no answer from ", brokers, " in ", timeout_ms, " ms"));
    } else if (rd_kafka_event_error(ev)) {
      result = KafkaError(absl::StrCat("creating topics on ", brokers),
                          rd_kafka_event_error_string(ev));
    } else {
      size_t n = 0;
      const rd_kafka_topic_result_t** trs =
          rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
      for (size_t i = 0; i < n && result.ok(); ++i) {
        rd_kafka_resp_err_t e = rd_kafka_topic_result_error(trs[i]);
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
          const char* why = rd_kafka_topic_result_error_string(trs[i]);
          result = KafkaError(absl::StrCat("creating topic ", rd_kafka_topic_result_name(trs[i])),
                              why ? why : rd_kafka_err2str(e));
        }
      }
    }
    if (ev) rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_AdminOptions_destroy(opts);
  }
  rd_kafka_NewTopic_destroy_array(nts.data(), nts.size());
  if (!result.ok()) return result;
  // A created topic reaches the brokers' metadata a little after CreateTopics answers; a
  // producer that looks it up in between is told "unknown topic". Return only once every
  // topic is in the metadata with a leader for each partition, so that "lifecycled has
  // started" means "its topics can be written".
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (const auto& t : topics) {
    for (;;) {
      if (TopicReady(h.rk, t.name, std::max(100, timeout_ms / 10))) break;
      if (std::chrono::steady_clock::now() >= deadline) {
        return absl::DeadlineExceededError(absl::StrCat(
            "topic ", t.name, " was created but has no leader for every partition after ",
            timeout_ms, " ms"));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<int> PartitionCount(const std::string& brokers, const std::string& topic,
                                   int timeout_ms) {
  CHandle h;
  if (absl::Status s = OpenCHandle(brokers, &h); !s.ok()) return s;
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(h.rk, topic.c_str(), nullptr);
  const rd_kafka_metadata_t* md = nullptr;
  rd_kafka_resp_err_t e = rd_kafka_metadata(h.rk, 0, rkt, &md, timeout_ms);
  absl::StatusOr<int> result;
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    result = KafkaError(absl::StrCat("metadata of ", topic, " from ", brokers), rd_kafka_err2str(e));
  } else if (md->topic_cnt != 1 || md->topics[0].err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    result = absl::NotFoundError(absl::StrCat(
        "topic ", topic, ": ",
        md->topic_cnt ? rd_kafka_err2str(md->topics[0].err) : "not in the metadata"));
  } else {
    result = md->topics[0].partition_cnt;
  }
  if (md) rd_kafka_metadata_destroy(md);
  rd_kafka_topic_destroy(rkt);
  return result;
}

int32_t KeyPartition(std::string_view key, int partitions) {
  if (key.empty() || partitions <= 0) return -1;
  // The function the "murmur2" partitioners call; it looks at nothing but its arguments.
  return rd_kafka_msg_partitioner_murmur2(nullptr, key.data(), key.size(), partitions, nullptr,
                                          nullptr);
}

namespace {

class GroupDescriberImpl : public GroupDescriber {
 public:
  absl::Status Init(const std::string& brokers) {
    brokers_ = brokers;
    return OpenCHandle(brokers, &h_);
  }

  // The classic ListGroups/DescribeGroups call (rd_kafka_list_groups), not the Admin
  // API's DescribeConsumerGroups: librdkafka 2.0's coordinator-targeted admin requests
  // abort the process (an assertion on a freed reference) when the coordinator's
  // connection is down at the moment of the request, as in a broker outage.
  absl::StatusOr<GroupDescription> Describe(const std::string& group, const std::string& topic,
                                            int timeout_ms) override {
    const struct rd_kafka_group_list* list = nullptr;
    rd_kafka_resp_err_t e = rd_kafka_list_groups(h_.rk, group.c_str(), &list, timeout_ms);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
      if (list) rd_kafka_group_list_destroy(list);
      return KafkaError(absl::StrCat("describing group ", group, " on ", brokers_),
                        rd_kafka_err2str(e));
    }
    GroupDescription out;
    absl::Status bad;
    for (int g = 0; list && g < list->group_cnt; ++g) {
      const rd_kafka_group_info& info = list->groups[g];
      if (group != info.group) continue;
      if (info.err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        bad = KafkaError(absl::StrCat("describing group ", group), rd_kafka_err2str(info.err));
        break;
      }
      out.state = info.state ? info.state : "";
      out.assignor = info.protocol ? info.protocol : "";
      for (int m = 0; m < info.member_cnt; ++m) {
        const rd_kafka_group_member_info& mi = info.members[m];
        GroupMember gm;
        gm.member_id = mi.member_id ? mi.member_id : "";
        gm.client_id = mi.client_id ? mi.client_id : "";
        gm.host = mi.client_host ? mi.client_host : "";
        if (absl::Status s = ParseAssignment(mi.member_assignment, mi.member_assignment_size,
                                             topic, &gm.partitions);
            !s.ok()) {
          bad = s;
          break;
        }
        std::sort(gm.partitions.begin(), gm.partitions.end());
        out.members.push_back(std::move(gm));
      }
    }
    rd_kafka_group_list_destroy(list);
    if (!bad.ok()) return bad;
    return out;
  }

 private:
  // The consumer protocol's assignment: int16 version; int32 count of (int16-length
  // topic, int32 count of int32 partitions); then user data. Big-endian.
  static absl::Status ParseAssignment(const void* data, int size, const std::string& topic,
                                      std::vector<int32_t>* out) {
    if (!data || size <= 0) return absl::OkStatus();  // none yet (mid-rebalance)
    const auto* b = static_cast<const unsigned char*>(data);
    size_t pos = 0;
    const size_t n = static_cast<size_t>(size);
    auto need = [&](size_t k) { return pos + k <= n; };
    auto i16 = [&] {
      const int v = (b[pos] << 8) | b[pos + 1];
      pos += 2;
      return static_cast<int16_t>(v);
    };
    auto i32 = [&] {
      const uint32_t v = (uint32_t{b[pos]} << 24) | (uint32_t{b[pos + 1]} << 16) |
                         (uint32_t{b[pos + 2]} << 8) | uint32_t{b[pos + 3]};
      pos += 4;
      return static_cast<int32_t>(v);
    };
    const absl::Status truncated = absl::DataLossError("a group member's assignment is truncated");
    if (!need(2 + 4)) return truncated;
    i16();  // version
    const int32_t topics = i32();
    for (int32_t t = 0; t < topics; ++t) {
      if (!need(2)) return truncated;
      const int16_t len = i16();
      if (len < 0 || !need(static_cast<size_t>(len) + 4)) return truncated;
      const std::string name(reinterpret_cast<const char*>(b + pos), static_cast<size_t>(len));
      pos += static_cast<size_t>(len);
      const int32_t count = i32();
      if (count < 0 || !need(static_cast<size_t>(count) * 4)) return truncated;
      for (int32_t k = 0; k < count; ++k) {
        const int32_t p = i32();
        if (name == topic) out->push_back(p);
      }
    }
    return absl::OkStatus();
  }

  std::string brokers_;
  CHandle h_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<GroupDescriber>> GroupDescriber::Create(const std::string& brokers) {
  auto d = std::make_unique<GroupDescriberImpl>();
  if (absl::Status s = d->Init(brokers); !s.ok()) return s;
  return std::unique_ptr<GroupDescriber>(std::move(d));
}

}  // namespace lifecycle::stream
