// When RocksDB cannot write (injected "no space left"), the projector stops
// advancing, commits no group offset past what it stored, says so in status and
// health, and catches up when writes succeed again. lifecycled runs in-process here
// so the test can hand it a failing file system.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "rocksdb/env.h"
#include "rocksdb/file_system.h"
#include "services/lifecycled/daemon.h"
#include "tests/integration/harness.h"
#include "tests/projections/test_events.h"

namespace lifecycle::testing {
namespace {

class FailingFile : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  FailingFile(std::unique_ptr<rocksdb::FSWritableFile>&& f, const std::atomic<bool>* fail)
      : FSWritableFileOwnerWrapper(std::move(f)), fail_(fail) {}
  rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& o,
                           rocksdb::IODebugContext* dbg) override {
    if (fail_->load()) return rocksdb::IOStatus::NoSpace("injected: no space left on device");
    return FSWritableFileOwnerWrapper::Append(data, o, dbg);
  }
  rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& o,
                           const rocksdb::DataVerificationInfo& v,
                           rocksdb::IODebugContext* dbg) override {
    if (fail_->load()) return rocksdb::IOStatus::NoSpace("injected: no space left on device");
    return FSWritableFileOwnerWrapper::Append(data, o, v, dbg);
  }
  rocksdb::IOStatus Sync(const rocksdb::IOOptions& o, rocksdb::IODebugContext* dbg) override {
    if (fail_->load()) return rocksdb::IOStatus::IOError("injected: I/O error");
    return FSWritableFileOwnerWrapper::Sync(o, dbg);
  }

 private:
  const std::atomic<bool>* fail_;
};

class FailingFs : public rocksdb::FileSystemWrapper {
 public:
  FailingFs() : FileSystemWrapper(rocksdb::FileSystem::Default()) {}
  const char* Name() const override { return "FailingFs"; }
  rocksdb::IOStatus NewWritableFile(const std::string& fname, const rocksdb::FileOptions& o,
                                    std::unique_ptr<rocksdb::FSWritableFile>* result,
                                    rocksdb::IODebugContext* dbg) override {
    if (fail.load()) return rocksdb::IOStatus::NoSpace("injected: no space left on device");
    std::unique_ptr<rocksdb::FSWritableFile> f;
    rocksdb::IOStatus s = target()->NewWritableFile(fname, o, &f, dbg);
    if (s.ok()) result->reset(new FailingFile(std::move(f), &fail));
    return s;
  }
  std::atomic<bool> fail{false};
};

TEST(StoreFaultTest, AFailingStoreHoldsThePositionReportsItAndRecovers) {
  TempDir dir;
  auto fs = std::make_shared<FailingFs>();
  std::unique_ptr<rocksdb::Env> env = rocksdb::NewCompositeEnv(fs);
  daemon::DaemonConfig c;
  c.brokers = TestBrokers();
  c.events_topic = UniqueName("fault-events");
  c.alerts_topic = c.events_topic + ".alerts";
  c.group_id = UniqueName("fault");
  c.partitions = 1;
  c.data_dir = dir.path() + "/data";
  c.grpc_listen = "127.0.0.1:0";
  c.listen_file = dir.path() + "/listen";
  c.metrics_listen = "";
  c.http_listen = "";  // not the default port: a demo on this machine may hold it
  c.tick_interval_s = 0;
  c.commit_interval_ms = 20;
  c.store_env = env.get();
  daemon::Daemon d(c);
  std::atomic<bool> stop{false};
  absl::Status result;
  std::thread runner([&] { result = d.Run(&stop); });
  std::string address;
  for (int i = 0; i < 600 && address.empty(); ++i) {
    std::ifstream in(c.listen_file);
    std::getline(in, address);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_FALSE(address.empty());
  auto log_of = [](int from, int n) {
    std::vector<std::pair<std::string, std::string>> r;
    for (int i = from; i < from + n; ++i) {
      const std::string cust = absl::StrCat("c", i % 50);
      r.emplace_back(cust, Purchase(absl::StrCat("f", i), cust, kT0 + i * 60, 100).SerializeAsString());
    }
    return r;
  };
  ASSERT_TRUE(ProduceAll(c.events_topic, log_of(0, 500)).ok());
  ASSERT_TRUE(WaitForStoredRecords(address, 500, 60).ok());

  fs->fail = true;  // the disk is full
  ASSERT_TRUE(ProduceAll(c.events_topic, log_of(500, 500)).ok());
  std::string reported;
  for (int i = 0; i < 200 && reported.empty(); ++i) {
    auto st = GetStatus(address);
    ASSERT_TRUE(st.ok()) << "status keeps answering";
    reported = st->store_error();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_NE(reported.find("injected"), std::string::npos) << reported;
  std::this_thread::sleep_for(std::chrono::seconds(2));
  auto st = GetStatus(address);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->partitions(0).stored_offset(), 499) << "no progress while the store refuses";
  EXPECT_LE(GroupCommitted(c.group_id, c.events_topic, 0), 500)
      << "no group offset past what was stored";

  fs->fail = false;  // space again
  ASSERT_TRUE(WaitForStoredRecords(address, 1000, 60).ok());
  st = GetStatus(address);
  ASSERT_TRUE(st.ok());
  EXPECT_TRUE(st->store_error().empty());
  EXPECT_EQ(st->partitions(0).events_applied(), 1000);
  auto oracle = RunOracle(c.events_topic, 1000);
  ASSERT_TRUE(oracle.ok());
  auto compared = CompareWithOracle(address, *oracle);
  EXPECT_TRUE(compared.ok()) << compared.status();
  stop = true;
  runner.join();
  EXPECT_TRUE(result.ok()) << result;
}

}  // namespace
}  // namespace lifecycle::testing
