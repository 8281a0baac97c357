#include "services/store/store.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "tests/projections/test_events.h"

namespace lifecycle::store {
namespace {

using namespace lifecycle::testing;  // NOLINT

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("lifecycle-store-test-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    auto s = ViewStore::Open(dir_.string());
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = std::move(*s);
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  void Reopen() {
    store_.reset();
    auto s = ViewStore::Open(dir_.string());
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = std::move(*s);
  }

  std::filesystem::path dir_;
  std::unique_ptr<ViewStore> store_;
};

TEST_F(StoreTest, UnknownPartitionHasOffsetMinusOne) {
  auto m = store_->ReadMeta(5);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->offset(), -1);
  EXPECT_EQ(m->partition(), 5);
}

TEST_F(StoreTest, CommitWritesViewsAndOffsetsTogetherAndSurvivesReopen) {
  StoreStateReader reader(store_.get());
  v1::PartitionMeta m0;
  m0.set_partition(0);
  m0.set_offset(-1);
  v1::PartitionMeta m1 = m0;
  m1.set_partition(1);
  projections::PartitionProjector p0({}, m0, &reader), p1({}, m1, &reader);
  ASSERT_TRUE(p0.Apply(0, Bytes(Purchase("e1", "alice", kT0, 100))).ok());
  ASSERT_TRUE(p0.Apply(1, Bytes(Purchase("e2", "alice", kT0 + 1, 50))).ok());
  ASSERT_TRUE(p1.Apply(0, Bytes(Registered("e3", "bob", kT0))).ok());
  ASSERT_TRUE(store_->Commit({p0.Pending(), p1.Pending()}).ok());
  p0.MarkCommitted();
  p1.MarkCommitted();
  Reopen();

  auto read = store_->ReadCustomerWithMeta("alice");
  ASSERT_TRUE(read.ok());
  ASSERT_TRUE(read->has_value());
  EXPECT_EQ((*read)->state.view().activity().total_spend_minor(), 150);
  EXPECT_EQ((*read)->meta.partition(), 0);
  EXPECT_EQ((*read)->meta.offset(), 1);
  EXPECT_EQ((*read)->meta.stream_time().seconds(), kT0 + 1);

  auto metas = store_->ListMeta();
  ASSERT_TRUE(metas.ok());
  ASSERT_EQ(metas->size(), 2u);
  EXPECT_EQ((*metas)[1].partition(), 1);
  EXPECT_EQ((*metas)[1].offset(), 0);

  auto none = store_->ReadCustomer("nobody");
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
}

TEST_F(StoreTest, OpenFailsWithAMessageWhenThePathIsAFile) {
  const auto file = dir_.string() + "-file";
  { std::FILE* f = std::fopen(file.c_str(), "w"); std::fclose(f); }
  auto s = ViewStore::Open(file);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find(file), std::string::npos) << s.status();
  std::filesystem::remove(file);
}

}  // namespace
}  // namespace lifecycle::store
