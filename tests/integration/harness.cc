#include "tests/integration/harness.h"

#include <grpcpp/grpcpp.h>
#include <librdkafka/rdkafkacpp.h>
#include <signal.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "projections/projector.h"
#include "services/stream/kafka.h"
#include "tests/projections/memory_store.h"

extern char** environ;

namespace lifecycle::testing {
namespace {

std::atomic<int> g_counter{0};

std::string RandomSuffix() {
  std::random_device rd;
  return std::to_string(rd() % 1000000);
}

}  // namespace

std::string TestBrokers() {
  const char* env = std::getenv("LIFECYCLE_TEST_BROKERS");
  return env && *env ? env : "127.0.0.1:9092";
}

std::string UniqueName(const std::string& prefix) {
  return absl::StrCat(prefix, "-", ::getpid(), "-", g_counter++, "-", RandomSuffix());
}

std::vector<std::string> OnePartitionDaemonArgs(const std::string& dir, const std::string& topic,
                                                const std::string& group) {
  return {"--brokers", TestBrokers(), "--events-topic", topic, "--alerts-topic",
          topic + ".alerts", "--group", group, "--data-dir", dir + "/data", "--grpc-listen",
          "127.0.0.1:0", "--partitions", "1", "--tick-interval-s", "0", "--domain-config",
          std::string(LIFECYCLE_SOURCE_DIR) + "/deploy/config/domain.toml"};
}

TempDir::TempDir() {
  path_ = (std::filesystem::temp_directory_path() / UniqueName("lifecycle-test")).string();
  std::filesystem::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ec;
  if (!std::getenv("LIFECYCLE_KEEP_TEST_DIRS")) std::filesystem::remove_all(path_, ec);
}

DaemonProcess::DaemonProcess(std::string dir, std::vector<std::string> args,
                             std::vector<std::string> env)
    : dir_(std::move(dir)), args_(std::move(args)), env_(std::move(env)) {}

bool DaemonProcess::Exited(int* status) {
  if (pid_ <= 0) return true;
  if (::waitpid(pid_, status, WNOHANG) == pid_) {
    pid_ = -1;
    return true;
  }
  return false;
}

DaemonProcess::~DaemonProcess() {
  if (pid_ > 0) {
    ::kill(-pid_, SIGKILL);
    Wait();
  }
}

absl::Status DaemonProcess::Start(int timeout_s) {
  const std::string listen_file = dir_ + "/listen-address";
  if (absl::Status s = Spawn(); !s.ok()) return s;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  while (std::chrono::steady_clock::now() < deadline) {
    std::ifstream in(listen_file);
    if (in && std::getline(in, address_) && !address_.empty()) {
      std::string line;
      if (std::getline(in, line) && line.rfind("metrics ", 0) == 0) metrics_address_ = line.substr(8);
      if (std::getline(in, line) && line.rfind("http ", 0) == 0) http_address_ = line.substr(5);
      return absl::OkStatus();
    }
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return absl::InternalError(absl::StrCat("lifecycled exited during start-up:\n", LogTail()));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return absl::DeadlineExceededError(
      absl::StrCat("lifecycled did not serve within ", timeout_s, "s:\n", LogTail()));
}

absl::Status DaemonProcess::Spawn() {
  const std::string listen_file = dir_ + "/listen-address";
  std::filesystem::remove(listen_file);
  address_.clear();
  metrics_address_.clear();
  log_path_ = absl::StrCat(dir_, "/lifecycled-", ++starts_, ".log");
  // Tests run side by side: metrics on a free port unless the test says otherwise.
  std::vector<std::string> argv = {LIFECYCLED_BIN, "--listen-file", listen_file,
                                   "--metrics-listen", "127.0.0.1:0", "--http-listen",
                                   "127.0.0.1:0"};
  argv.insert(argv.end(), args_.begin(), args_.end());
  std::vector<char*> cargv;
  for (auto& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, log_path_.c_str(),
                                   O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&fa, STDOUT_FILENO, STDERR_FILENO);
  std::vector<char*> envp;
  for (char** e = environ; *e; ++e) envp.push_back(*e);
  for (auto& e : env_) envp.push_back(e.data());
  envp.push_back(nullptr);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attr, 0);  // its own group, killed as one
  int rc = posix_spawn(&pid_, cargv[0], &fa, &attr, cargv.data(), envp.data());
  posix_spawnattr_destroy(&attr);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) {
    pid_ = -1;
    return absl::InternalError(absl::StrCat("posix_spawn ", LIFECYCLED_BIN, ": ", rc));
  }
  return absl::OkStatus();
}

void DaemonProcess::Signal(int sig) {
  if (pid_ > 0) ::kill(pid_, sig);
}

int DaemonProcess::Wait() {
  int status = 0;
  if (pid_ > 0) {
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }
  return status;
}

std::string DaemonProcess::LogTail(size_t bytes) const {
  std::ifstream in(log_path_);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string all = ss.str();
  return all.size() > bytes ? all.substr(all.size() - bytes) : all;
}

std::vector<std::string> TestDaemonArgs(const std::string& dir, const std::string& topic,
                                        const std::string& group, int partitions,
                                        const std::string& brokers, const std::string& listen) {
  return {"--brokers", brokers, "--events-topic", topic, "--alerts-topic", topic + ".alerts",
          "--group", group, "--instance-id", group + "-1", "--data-dir", dir + "/data",
          "--grpc-listen", listen, "--partitions", std::to_string(partitions),
          "--commit-interval-ms", "20", "--tick-interval-s", "0"};
}

std::string TickBytes(int64_t at) {
  v1::Event e;
  e.set_event_id("tick-" + std::to_string(at));
  e.mutable_occurred_at()->set_seconds(at);
  e.mutable_clock_tick()->mutable_now()->set_seconds(at);
  return e.SerializeAsString();
}

absl::StatusOr<v1::GetStatusResponse> GetStatus(const std::string& address) {
  auto stub = v1::AdminService::NewStub(
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  v1::GetStatusResponse resp;
  grpc::Status s = stub->GetStatus(&ctx, v1::GetStatusRequest(), &resp);
  if (!s.ok()) return absl::UnavailableError(s.error_message());
  return resp;
}

void StopProcessGroup(pid_t pid, int grace_ms) {
  if (pid <= 0) return;
  ::kill(-pid, SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(grace_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    if (::waitpid(pid, nullptr, WNOHANG) == pid) {
      ::kill(-pid, SIGKILL);  // whatever else is left in the group
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ::kill(-pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
}

BackgroundCommand::BackgroundCommand(const std::string& command) {
  std::vector<std::string> argv = {"/bin/sh", "-c", command};
  std::vector<char*> cargv;
  for (auto& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attr, 0);
  if (posix_spawn(&pid_, "/bin/sh", nullptr, &attr, cargv.data(), environ) != 0) pid_ = -1;
  posix_spawnattr_destroy(&attr);
}

BackgroundCommand::~BackgroundCommand() { Stop(); }

void BackgroundCommand::Stop(int grace_ms) {
  StopProcessGroup(pid_, grace_ms);
  pid_ = -1;
}

int FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

CommandResult RunCommand(const std::string& cmd, const std::string& dir) {
  const std::string err_path = dir + "/cmd.err";
  CommandResult r;
  FILE* p = ::popen((cmd + " 2>" + err_path).c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) r.out.append(buf, n);
  const int ws = ::pclose(p);
  r.exit_code = WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
  std::ifstream in(err_path);
  std::stringstream ss;
  ss << in.rdbuf();
  r.err = ss.str();
  return r;
}

absl::Status WaitForStoredRecords(const std::string& address, int64_t records, int timeout_s) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  int64_t seen = -1;
  while (std::chrono::steady_clock::now() < deadline) {
    auto st = GetStatus(address);
    if (st.ok()) {
      seen = 0;
      for (const auto& p : st->partitions()) seen += p.stored_offset() + 1;
      if (seen == records) return absl::OkStatus();
      if (seen > records) {
        return absl::InternalError(absl::StrCat("stored ", seen, " records, expected ", records));
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return absl::DeadlineExceededError(
      absl::StrCat("stored ", seen, " of ", records, " records after ", timeout_s, "s"));
}

int64_t GroupCommitted(const std::string& group, const std::string& topic, int32_t partition) {
  std::string err;
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  conf->set("bootstrap.servers", TestBrokers(), err);
  conf->set("group.id", group, err);
  std::unique_ptr<RdKafka::KafkaConsumer> c(RdKafka::KafkaConsumer::create(conf.get(), err));
  std::vector<RdKafka::TopicPartition*> tps = {RdKafka::TopicPartition::create(topic, partition)};
  c->committed(tps, 10000);
  const int64_t off = tps[0]->offset();
  RdKafka::TopicPartition::destroy(tps);
  c->close();
  return off;
}

absl::Status ProduceAll(const std::string& topic,
                        const std::vector<std::pair<std::string, std::string>>& records,
                        const std::string& brokers) {
  auto producer = stream::Producer::Create(brokers);
  if (!producer.ok()) return producer.status();
  for (size_t i = 0; i < records.size(); ++i) {
    if (absl::Status s = (*producer)->Produce(topic, -1, records[i].first, records[i].second, i);
        !s.ok()) {
      return s;
    }
  }
  if (absl::Status s = (*producer)->Flush(60000); !s.ok()) return s;
  for (const auto& d : (*producer)->TakeDeliveries()) {
    if (!d.ok) return absl::UnavailableError(absl::StrCat("record ", d.tag, ": ", d.error));
  }
  return absl::OkStatus();
}

namespace {

// Reads a topic from offset 0 of every partition.
class FromStart : public stream::RebalanceListener {
 public:
  absl::StatusOr<std::map<int32_t, int64_t>> OnAssigned(const std::vector<int32_t>& ps) override {
    std::map<int32_t, int64_t> m;
    for (int32_t p : ps) m[p] = 0;
    return m;
  }
  void OnRevoked(const std::vector<int32_t>&) override {}
};

}  // namespace

absl::StatusOr<std::vector<TopicRecord>> ReadTopic(const std::string& topic, int64_t records,
                                                   int timeout_s, const std::string& brokers) {
  FromStart listener;
  stream::ConsumerOptions o;
  o.brokers = brokers;
  o.group_id = UniqueName("reader");
  o.topic = topic;
  o.client_id = "test-reader";
  auto consumer = stream::Consumer::Create(o, &listener, nullptr);
  if (!consumer.ok()) return consumer.status();
  std::vector<TopicRecord> out;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  while (static_cast<int64_t>(out.size()) < records) {
    if (std::chrono::steady_clock::now() > deadline) {
      (*consumer)->Close();
      return absl::DeadlineExceededError(
          absl::StrCat("read ", out.size(), " of ", records, " records of ", topic));
    }
    stream::Record rec;
    auto got = (*consumer)->Poll(200, &rec);
    if (!got.ok()) return got.status();
    if (!*got) continue;
    TopicRecord r;
    r.partition = rec.partition;
    r.offset = rec.offset;
    r.key = std::string(rec.key);
    r.value = std::string(rec.value);
    r.headers = (*consumer)->CurrentHeaders();
    out.push_back(std::move(r));
  }
  (*consumer)->Close();
  return out;
}

absl::StatusOr<Oracle> RunOracle(const std::string& topic, int64_t records,
                                 const std::string& brokers) {
  auto recs = ReadTopic(topic, records, 300, brokers);
  if (!recs.ok()) return recs.status();
  std::sort(recs->begin(), recs->end(), [](const TopicRecord& a, const TopicRecord& b) {
    return a.partition != b.partition ? a.partition < b.partition : a.offset < b.offset;
  });
  MemoryStore reader;  // the oracle's store: one commit at the end
  const projections::DomainConfig config;
  std::map<int32_t, std::unique_ptr<projections::PartitionProjector>> projectors;
  for (const auto& rec : *recs) {
    auto& proj = projectors[rec.partition];
    if (!proj) {
      v1::PartitionMeta m;
      m.set_partition(rec.partition);
      m.set_offset(-1);
      proj = std::make_unique<projections::PartitionProjector>(&config, m, &reader);
    }
    auto out = proj->Apply(rec.offset, rec.value);
    if (!out.ok()) return out.status();
  }
  Oracle oracle;
  for (const auto& [p, proj] : projectors) {
    reader.Commit(proj->Pending());
    proj->MarkCommitted();
    for (const auto& a : reader.alerts[p]) oracle.alert_ids.push_back(a.alert_id());
  }
  for (const auto& [id, bytes] : reader.records) oracle.views[id] = reader.ServedView(id);
  return oracle;
}

absl::StatusOr<std::map<std::string, v1::CustomerView>> OracleViews(const std::string& topic,
                                                                    int64_t records) {
  auto oracle = RunOracle(topic, records);
  if (!oracle.ok()) return oracle.status();
  return std::move(oracle->views);
}

absl::StatusOr<size_t> CompareWithOracle(const std::string& address, const Oracle& oracle) {
  auto stub = v1::CustomerService::NewStub(
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  size_t compared = 0, mismatches = 0;
  std::string first;
  for (const auto& [id, expected] : oracle.views) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::GetCustomerRequest req;
    req.set_customer_id(id);
    v1::GetCustomerResponse resp;
    grpc::Status s = stub->GetCustomer(&ctx, req, &resp);
    if (!s.ok()) return absl::InternalError(absl::StrCat(id, ": ", s.error_message()));
    ++compared;
    if (resp.customer().SerializeAsString() != expected.SerializeAsString()) {
      if (++mismatches == 1) {
        first = absl::StrCat("customer ", id, " differs.\nserved:\n", resp.customer().DebugString(),
                             "\noracle:\n", expected.DebugString());
      }
    }
  }
  if (mismatches > 0) {
    return absl::InternalError(absl::StrCat(mismatches, " of ", compared, " views differ; ", first));
  }
  return compared;
}

OwnBroker::OwnBroker(const std::string& dir) : dir_(dir) { PickPorts(); }

void OwnBroker::PickPorts() {
  const int port = FreePort(), controller = FreePort();
  brokers_ = absl::StrCat("127.0.0.1:", port);
  env_ = absl::StrCat("KAFKA_PORT=", port, " KAFKA_CONTROLLER_PORT=", controller,
                      " KAFKA_DATA_DIR=", dir_, "/kafka KAFKA_HEAP=384m ");
}

OwnBroker::~OwnBroker() {
  Thaw();
  Stop().IgnoreError();  // deliberately ignored: best effort at teardown
}

void OwnBroker::Wipe() {
  std::error_code ec;
  std::filesystem::remove_all(dir_ + "/kafka", ec);
}

namespace {
void SignalPidFile(const std::string& path, int sig) {
  std::ifstream in(path);
  pid_t pid = 0;
  if (in >> pid && pid > 0) ::kill(pid, sig);
}
}  // namespace

void OwnBroker::Freeze() { SignalPidFile(dir_ + "/kafka/kafka.pid", SIGSTOP); }
void OwnBroker::Thaw() { SignalPidFile(dir_ + "/kafka/kafka.pid", SIGCONT); }

absl::Status OwnBroker::Start() {
  std::string why;
  // A free port can be taken by another test between the check and the bind: a
  // first start that fails that way is tried again on other ports. A restart keeps
  // its ports (clients know them).
  for (int attempt = 0; attempt < 3; ++attempt) {
    CommandResult r = RunCommand(
        absl::StrCat(env_, "bash ", LIFECYCLE_SOURCE_DIR, "/deploy/local/kafka.sh start"), dir_);
    if (r.exit_code == 0) {
      started_ = true;
      return absl::OkStatus();
    }
    why = absl::StrCat(r.out, r.err);
    if (started_) break;
    std::error_code ec;
    std::filesystem::remove_all(dir_ + "/kafka", ec);
    PickPorts();
  }
  return absl::UnavailableError(why);
}

absl::Status OwnBroker::Stop() {
  CommandResult r = RunCommand(
      absl::StrCat(env_, "bash ", LIFECYCLE_SOURCE_DIR, "/deploy/local/kafka.sh stop"), dir_);
  if (r.exit_code != 0) return absl::UnavailableError(absl::StrCat(r.out, r.err));
  return absl::OkStatus();
}

}  // namespace lifecycle::testing
