// A process that owns its address and stops: a second lifecycled on a taken address
// exits with a message naming it; SIGTERM ends the daemon within its stop timeout
// whatever the broker does (down, restarted empty, frozen, fencing its static member),
// with the pending views committed first; a second signal ends it at once.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "absl/strings/str_cat.h"
#include "services/store/store.h"
#include "tests/integration/harness.h"
#include "tests/projections/test_events.h"

namespace lifecycle::testing {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kStopTimeoutS = 10;  // lifecycled's default --stop-timeout-s
constexpr double kSlackS = 1.5;    // process exit and polling on a loaded 2-core box

// Sends `sig` and waits (up to 60 s) for the process to exit; returns the seconds it
// took, and its wait status in `status`.
double SignalAndTime(DaemonProcess* d, int sig, int* status) {
  const auto start = Clock::now();
  d->Signal(sig);
  while (Clock::now() - start < std::chrono::seconds(60)) {
    if (d->Exited(status)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Records published by a test: `n` purchases over `customers` customers.
std::vector<std::pair<std::string, std::string>> Purchases(int n, int customers,
                                                           const std::string& tag) {
  std::vector<std::pair<std::string, std::string>> out;
  for (int i = 0; i < n; ++i) {
    const std::string id = absl::StrCat("c", i % customers);
    v1::Event e = testing::Purchase(absl::StrCat(tag, "-", i), id, 1714550400 + i * 3600, 10000);
    out.emplace_back(id, e.SerializeAsString());
  }
  return out;
}

// Sum over partitions of (stored offset + 1): how many records the store covers.
int64_t StoredRecords(const std::string& views_dir) {
  store::StoreOptions o;
  o.create_if_missing = false;
  auto s = store::ViewStore::Open(views_dir, o);
  if (!s.ok()) {
    ADD_FAILURE() << s.status();
    return -1;
  }
  auto metas = (*s)->ListMeta();
  if (!metas.ok()) return -1;
  int64_t n = 0;
  for (const auto& m : *metas) n += m.offset() + 1;
  return n;
}

std::vector<std::string> With(std::vector<std::string> args, const std::vector<std::string>& more) {
  args.insert(args.end(), more.begin(), more.end());
  return args;
}

// Commits only at the stop: whatever the daemon folded is pending until then.
const std::vector<std::string> kNoCommitsUntilStop = {
    "--commit-every", "10000000", "--commit-interval-ms", "600000",
    "--catchup-commit-every", "10000000", "--catchup-commit-interval-ms", "600000",
    "--alert-commit-ms", "0"};

TEST(StopTest, ASecondDaemonOnATakenAddressExitsNamingIt) {
  TempDir dir;
  const std::string topic = UniqueName("stop-addr");
  DaemonProcess first(dir.path() + "/a", TestDaemonArgs(dir.path() + "/a", topic, topic + "-a", 2));
  std::filesystem::create_directories(dir.path() + "/a");
  std::filesystem::create_directories(dir.path() + "/b");
  ASSERT_TRUE(first.Start().ok()) << first.LogTail();

  // Same gRPC address, another data dir and group.
  DaemonProcess second(dir.path() + "/b",
                       TestDaemonArgs(dir.path() + "/b", topic, topic + "-b", 2, TestBrokers(),
                                      first.address()));
  ASSERT_TRUE(second.Spawn().ok());
  const int status = second.Wait();
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_NE(WEXITSTATUS(status), 0);
  EXPECT_NE(second.LogTail().find(absl::StrCat("cannot listen for gRPC on ", first.address(),
                                               ": address already in use")),
            std::string::npos)
      << second.LogTail();

  // Same metrics address.
  DaemonProcess third(dir.path() + "/b",
                      With(TestDaemonArgs(dir.path() + "/b", topic, topic + "-b", 2),
                           {"--metrics-listen", first.metrics_address()}));
  ASSERT_TRUE(third.Spawn().ok());
  const int status3 = third.Wait();
  ASSERT_TRUE(WIFEXITED(status3));
  EXPECT_NE(WEXITSTATUS(status3), 0);
  EXPECT_NE(third.LogTail().find(absl::StrCat("cannot listen for metrics on ",
                                              first.metrics_address(), ": address already in use")),
            std::string::npos)
      << third.LogTail();

  // The first one still serves, alone.
  EXPECT_TRUE(GetStatus(first.address()).ok());
  int s = 0;
  SignalAndTime(&first, SIGTERM, &s);
  EXPECT_TRUE(WIFEXITED(s) && WEXITSTATUS(s) == 0) << first.LogTail();
}

// --consumer-config passes librdkafka properties through; one librdkafka does not know
// stops the start with a message naming it, and a good one is accepted.
TEST(StopTest, AConsumerPropertyLibrdkafkaDoesNotKnowStopsTheStartNamingIt) {
  TempDir dir;
  const std::string topic = UniqueName("stop-conf");
  std::filesystem::create_directories(dir.path() + "/a");
  DaemonProcess bad(dir.path() + "/a",
                    With(TestDaemonArgs(dir.path() + "/a", topic, topic, 1),
                         {"--consumer-config", "no.such.property=1"}));
  ASSERT_TRUE(bad.Spawn().ok());
  const int status = bad.Wait();
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_NE(WEXITSTATUS(status), 0);
  EXPECT_NE(bad.LogTail().find("no.such.property"), std::string::npos) << bad.LogTail();

  DaemonProcess good(dir.path() + "/a",
                     With(TestDaemonArgs(dir.path() + "/a", topic, topic, 1),
                          {"--consumer-config", "queued.max.messages.kbytes=8192"}));
  ASSERT_TRUE(good.Start().ok()) << good.LogTail();
  int s = 0;
  SignalAndTime(&good, SIGTERM, &s);
  EXPECT_TRUE(WIFEXITED(s) && WEXITSTATUS(s) == 0) << good.LogTail();
}

TEST(StopTest, SigtermEndsTheDaemonInBoundedTimeWhateverTheBrokerDoes) {
  TempDir dir;
  OwnBroker kafka(dir.path());
  ASSERT_TRUE(kafka.Start().ok());
  auto daemon_in = [&](const std::string& name, const std::string& topic,
                       std::vector<std::string> extra = {}) {
    const std::string d = dir.path() + "/" + name;
    std::filesystem::create_directories(d);
    return std::make_unique<DaemonProcess>(
        d, With(TestDaemonArgs(d, topic, topic, 2, kafka.brokers()), extra));
  };
  auto expect_bounded = [&](const char* state, DaemonProcess* d, double seconds, int status) {
    std::printf("stop with the broker %s: %.2f s (exit %d)\n", state, seconds,
                WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    EXPECT_LE(seconds, kStopTimeoutS + kSlackS) << state << "\n" << d->LogTail();
    EXPECT_TRUE(WIFEXITED(status)) << state;
  };

  {  // Down, with views pending: they are committed before anything else.
    const std::string topic = UniqueName("stop-down");
    auto d = daemon_in("down", topic, kNoCommitsUntilStop);
    ASSERT_TRUE(d->Start().ok()) << d->LogTail();
    ASSERT_TRUE(ProduceAll(topic, Purchases(300, 40, "down"), kafka.brokers()).ok());
    std::this_thread::sleep_for(std::chrono::seconds(4));  // folded, not committed
    ASSERT_TRUE(kafka.Stop().ok());
    std::this_thread::sleep_for(std::chrono::seconds(2));
    int status = 0;
    const double s = SignalAndTime(d.get(), SIGTERM, &status);
    expect_bounded("down", d.get(), s, status);
    EXPECT_EQ(WEXITSTATUS(status), 0) << d->LogTail();
    EXPECT_EQ(StoredRecords(dir.path() + "/down/data/views"), 300) << d->LogTail();
  }
  {  // Stopped, wiped and started again while the daemon runs.
    ASSERT_TRUE(kafka.Start().ok());
    const std::string topic = UniqueName("stop-wiped");
    auto d = daemon_in("wiped", topic);
    ASSERT_TRUE(d->Start().ok()) << d->LogTail();
    ASSERT_TRUE(ProduceAll(topic, Purchases(100, 20, "wiped"), kafka.brokers()).ok());
    ASSERT_TRUE(WaitForStoredRecords(d->address(), 100, 60).ok()) << d->LogTail();
    ASSERT_TRUE(kafka.Stop().ok());
    kafka.Wipe();
    ASSERT_TRUE(kafka.Start().ok());
    std::this_thread::sleep_for(std::chrono::seconds(5));
    int status = 0;
    const double s = SignalAndTime(d.get(), SIGTERM, &status);
    expect_bounded("restarted empty", d.get(), s, status);
  }
  {  // Frozen: connections open, nothing answers.
    const std::string topic = UniqueName("stop-frozen");
    auto d = daemon_in("frozen", topic, kNoCommitsUntilStop);
    ASSERT_TRUE(d->Start().ok()) << d->LogTail();
    ASSERT_TRUE(ProduceAll(topic, Purchases(200, 30, "frozen"), kafka.brokers()).ok());
    std::this_thread::sleep_for(std::chrono::seconds(4));
    kafka.Freeze();
    std::this_thread::sleep_for(std::chrono::seconds(2));
    int status = 0;
    const double s = SignalAndTime(d.get(), SIGTERM, &status);
    kafka.Thaw();
    expect_bounded("not answering", d.get(), s, status);
    EXPECT_EQ(WEXITSTATUS(status), 0) << d->LogTail();
    EXPECT_EQ(StoredRecords(dir.path() + "/frozen/data/views"), 200) << d->LogTail();
  }
  {  // A second member with the same group.instance.id fences the first.
    const std::string topic = UniqueName("stop-fenced");
    auto a = daemon_in("fenced-a", topic);
    ASSERT_TRUE(a->Start().ok()) << a->LogTail();
    auto b = daemon_in("fenced-b", topic);  // same group and --instance-id, own data dir
    ASSERT_TRUE(b->Start().ok()) << b->LogTail();
    std::this_thread::sleep_for(std::chrono::seconds(3));
    int status = 0;
    if (a->Exited(&status)) {  // fenced: the consumer's fatal error ends it by itself
      std::printf("the fenced member ended by itself (exit %d)\n",
                  WIFEXITED(status) ? WEXITSTATUS(status) : -1);
      EXPECT_NE(a->LogTail().find("fenced"), std::string::npos) << a->LogTail();
    } else {
      const double s = SignalAndTime(a.get(), SIGTERM, &status);
      expect_bounded("fencing the static member", a.get(), s, status);
    }
    const double sb = SignalAndTime(b.get(), SIGTERM, &status);
    expect_bounded("up (the member that fenced)", b.get(), sb, status);
  }
}

TEST(StopTest, TheWatchdogAndASecondSignalEndAStopThatHangs) {
  // A "broker" that takes connections into its backlog and never answers: lifecycled
  // waits in its start-up (creating topics) where nothing is pending.
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::listen(fd, 64), 0);
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  const std::string silent = absl::StrCat("127.0.0.1:", ntohs(addr.sin_port));
  TempDir dir;
  const std::string topic = UniqueName("stop-silent");

  {  // One SIGTERM: the watchdog ends it at --stop-timeout-s.
    DaemonProcess d(dir.path(),
                    With(TestDaemonArgs(dir.path(), topic, topic, 2, silent), {"--stop-timeout-s", "2"}));
    ASSERT_TRUE(d.Spawn().ok());
    std::this_thread::sleep_for(std::chrono::seconds(2));
    ASSERT_TRUE(d.Running());
    int status = 0;
    const double s = SignalAndTime(&d, SIGTERM, &status);
    std::printf("stop hanging in start-up, --stop-timeout-s 2: %.2f s (exit %d)\n", s,
                WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    EXPECT_GE(s, 1.5);
    EXPECT_LE(s, 2 + kSlackS) << d.LogTail();
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1) << d.LogTail();
    EXPECT_NE(d.LogTail().find("the stop took longer than 2000 ms"), std::string::npos)
        << d.LogTail();
  }
  {  // SIGTERM, then SIGINT: at once.
    DaemonProcess d(dir.path(), TestDaemonArgs(dir.path(), topic, topic, 2, silent));
    ASSERT_TRUE(d.Spawn().ok());
    std::this_thread::sleep_for(std::chrono::seconds(2));
    d.Signal(SIGTERM);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    int status = 0;
    const double s = SignalAndTime(&d, SIGINT, &status);
    std::printf("second signal: %.2f s (exit %d)\n", s, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    EXPECT_LE(s, 1.0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 128 + SIGINT) << d.LogTail();
  }
  ::close(fd);
}

}  // namespace
}  // namespace lifecycle::testing
