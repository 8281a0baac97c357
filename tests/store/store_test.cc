#include "services/store/store.h"

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <fstream>
#include <thread>

#include "projections/fold.h"
#include "projections/names.h"
#include "rocksdb/db.h"
#include "rocksdb/merge_operator.h"
#include "rocksdb/perf_context.h"
#include "rocksdb/perf_level.h"
#include "rocksdb/table.h"
#include "projections/rules.h"
#include "services/lifecyclectl/simulate.h"
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
  // The store's RocksDB opened by the test itself (the store closed), with the merge
  // operator a program opening it must set; null if it does not open.
  std::unique_ptr<rocksdb::DB> OpenRaw() {
    store_.reset();
    rocksdb::DB* raw = nullptr;
    rocksdb::Options options;
    options.merge_operator = ProfileMergeOperator();
    rocksdb::Status s = rocksdb::DB::Open(options, dir_.string(), &raw);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return std::unique_ptr<rocksdb::DB>(s.ok() ? raw : nullptr);
  }
  void Reopen() {
    store_.reset();
    auto s = ViewStore::Open(dir_.string());
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = std::move(*s);
  }

  // Folds MessyLog(seed, records, customers) for seeds 1..logs, each into partition
  // `seed`, committing every commit_every(seed) records and at the end.
  void FoldMessyLogs(uint32_t logs, int records, int customers,
                     const std::function<int(uint32_t)>& commit_every) {
    StoreStateReader reader(store_.get());
    projections::DomainConfig config;
    for (uint32_t seed = 1; seed <= logs; ++seed) {
      v1::PartitionMeta m;
      m.set_partition(static_cast<int32_t>(seed));
      m.set_offset(-1);
      projections::PartitionProjector p(&config, m, &reader);
      int64_t offset = -1;
      int since = 0;
      for (const auto& rec : MessyLog(seed, records, customers)) {
        ASSERT_TRUE(p.Apply(++offset, rec).ok());
        if (++since >= commit_every(seed)) {
          ASSERT_TRUE(store_->Commit({p.Pending()}).ok());
          p.MarkCommitted();
          since = 0;
        }
      }
      ASSERT_TRUE(store_->Commit({p.Pending()}).ok());
      p.MarkCommitted();
    }
  }

  // Folds the simulated history of `customers` into partitions 0 and 1, committing
  // both every `commit_every` records and at the end.
  // `after_commit(n)`, when given, is called after the n-th commit (from 1).
  void FoldSimulated(int64_t customers, int64_t commit_every,
                     const std::function<void(int)>& after_commit = nullptr) {
    StoreStateReader reader(store_.get());
    projections::DomainConfig config;
    std::vector<std::unique_ptr<projections::PartitionProjector>> parts;
    for (int32_t p = 0; p < 2; ++p) {
      v1::PartitionMeta m;
      m.set_partition(p);
      m.set_offset(-1);
      parts.push_back(std::make_unique<projections::PartitionProjector>(&config, m, &reader));
    }
    sim::SimOptions sim;
    sim.customers = customers;
    int64_t offsets[2] = {0, 0};
    int64_t n = 0;
    sim::SimulateInTimeOrder(sim, [&](const sim::SerializedEvent& e) {
      const int p = static_cast<int>(projections::TextHash(e.customer_id) % 2);
      ASSERT_TRUE(parts[p]->Apply(offsets[p]++, e.bytes).ok());
      if (++n % commit_every == 0) {
        ASSERT_TRUE(store_->Commit({parts[0]->Pending(), parts[1]->Pending()}).ok());
        for (auto& part : parts) part->MarkCommitted();
        if (after_commit) after_commit(static_cast<int>(n / commit_every));
      }
    });
    ASSERT_TRUE(store_->Commit({parts[0]->Pending(), parts[1]->Pending()}).ok());
  }

  // The first 1000 customers ranked by `order` as of a time after the simulated
  // history (both partitions), with their scores.
  std::vector<std::pair<std::string, double>> Ranked(ListingIndex::Order order) {
    const std::vector<int64_t> times = {1'800'000'000, 1'800'000'000};
    ListingIndex::RankQuery q;
    q.order = order;
    q.stream_times = &times;
    q.limit = 1000;
    std::vector<std::pair<std::string, double>> out;
    auto ranked = store_->Rank(q);
    EXPECT_TRUE(ranked.ok()) << ranked.status();
    if (ranked.ok()) {
      for (const auto& r : *ranked) out.emplace_back(r.id, r.score);
    }
    return out;
  }

  // Customers whose stored record is behind its view: a stage only its deadlines
  // reached since it was written (the view reads the record caught up).
  int Stale() {
    int stale = 0;
    EXPECT_TRUE(store_->ForEachCustomer([&](const v1::CustomerView& v) {
                        auto raw = store_->ReadRecord(v.customer_id());
                        ASSERT_TRUE(raw.ok() && raw->has_value());
                        stale += (*raw)->stage != v.stage();
                      }).ok());
    return stale;
  }

  // A projector of partition 0 from its start, with the default rules.
  std::unique_ptr<projections::PartitionProjector> NewPartition0(StoreStateReader* reader) {
    v1::PartitionMeta m;
    m.set_partition(0);
    m.set_offset(-1);
    return std::make_unique<projections::PartitionProjector>(&config_, m, reader);
  }
  // Applies `events` to `p` at offsets from *offset on, and commits them.
  void ApplyAndCommit(projections::PartitionProjector* p, int64_t* offset,
                      const std::vector<v1::Event>& events) {
    for (const auto& e : events) ASSERT_TRUE(p->Apply((*offset)++, Bytes(e)).ok());
    ASSERT_TRUE(store_->Commit({p->Pending()}).ok());
    p->MarkCommitted();
  }
  // Folds `events` into partition 0 (offsets from 0) with the default rules, and
  // commits them.
  void FoldAndCommit(const std::vector<v1::Event>& events) {
    StoreStateReader reader(store_.get());
    int64_t offset = 0;
    ApplyAndCommit(NewPartition0(&reader).get(), &offset, events);
  }

  std::filesystem::path dir_;
  std::unique_ptr<ViewStore> store_;
  projections::DomainConfig config_;
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
  projections::DomainConfig config;
  projections::PartitionProjector p0(&config, m0, &reader), p1(&config, m1, &reader);
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
  EXPECT_EQ((*read)->view.activity().total_spend_minor(), 150);
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

// A profile is written as each commit's change and merged into the stored one when read
// or compacted (ProfileMerge): it reads as every event folded into one profile in log
// order — an erasure clears the personal fields for good — across commits, a reopen
// (the write-ahead log replayed) and a compaction of the whole store.
TEST_F(StoreTest, AProfileReadsAsItsChangesFoldedInOrderAcrossCommitsAndACompaction) {
  auto updated = [](const std::string& id, int64_t at, const std::string& name,
                    const std::string& region, const std::string& phone) {
    v1::Event e = Registered(id, "dora", at);
    v1::Profile* p = e.mutable_profile_updated()->mutable_profile();  // replaces the payload
    if (!name.empty()) p->set_name(name);
    if (!region.empty()) p->set_region(region);
    if (!phone.empty()) p->set_phone(phone);
    return e;
  };
  v1::Event registered = Registered("p1", "dora", kT0);
  registered.mutable_customer_registered()->mutable_profile()->set_phone("555");
  const std::vector<std::vector<v1::Event>> commits = {
      {registered},
      {updated("p2", kT0 + kDay, "", "", "556"), VehicleSale("p3", "dora", kT0 + 2 * kDay, 100, "o1")},
      {Erase("p4", "dora", kT0 + 3 * kDay)},
      {updated("p5", kT0 + 4 * kDay, "Dora Again", "west", "")}};
  v1::Profile want;
  bool erased = false;
  int64_t offset = 0;
  for (size_t i = 0; i < commits.size(); ++i) {
    auto meta = store_->ReadMeta(0);
    ASSERT_TRUE(meta.ok());
    StoreStateReader reader(store_.get());
    projections::PartitionProjector p(&config_, *meta, &reader);
    for (const auto& e : commits[i]) {
      ASSERT_TRUE(p.Apply(offset++, Bytes(e)).ok());
      projections::FoldProfile(e, erased, &want);
      erased = erased || e.has_customer_erased();
    }
    ASSERT_TRUE(store_->Commit({p.Pending()}).ok());
    p.MarkCommitted();
    auto read = store_->ReadProfile("dora");
    ASSERT_TRUE(read.ok()) << read.status();
    ASSERT_TRUE(read->has_value());
    EXPECT_EQ((*read)->SerializeAsString(), want.SerializeAsString()) << "commit " << i;
    if (i == 1) Reopen();
  }
  EXPECT_FALSE(want.has_name());
  EXPECT_FALSE(want.has_phone());
  EXPECT_EQ(want.region(), "west");
  EXPECT_EQ(want.vehicle_model(), "SUV X");

  // Compacted into one value by RocksDB itself, then read again.
  {
    std::unique_ptr<rocksdb::DB> db = OpenRaw();
    ASSERT_NE(db, nullptr);
    ASSERT_TRUE(db->CompactRange(rocksdb::CompactRangeOptions(), nullptr, nullptr).ok());
  }
  Reopen();
  auto read = store_->ReadProfile("dora");
  ASSERT_TRUE(read.ok()) << read.status();
  ASSERT_TRUE(read->has_value());
  EXPECT_EQ((*read)->SerializeAsString(), want.SerializeAsString());
  auto view = store_->ReadCustomer("dora");
  ASSERT_TRUE(view.ok());
  ASSERT_TRUE(view->has_value());
  EXPECT_EQ((*view)->profile().SerializeAsString(), want.SerializeAsString());
}

// A profile change that does not parse damages that customer's profile only: the
// merge does not fail, so compactions and writes go on; the customer's reads report
// it, and a change that drops the stored profile makes it whole again.
TEST_F(StoreTest, ADamagedProfileChangeStopsThatCustomersReadsNotTheStore) {
  ASSERT_FALSE(v1::Profile().ParseFromString(std::string(kDamagedProfile)));
  const v1::Profile fields = [] {
    v1::Profile p;
    p.set_name("Dora");
    return p;
  }();
  auto change = [&fields](bool reset) {
    projections::ProfileUpdate u;
    u.reset = reset;
    u.fields = fields;
    return projections::EncodeProfileUpdate(u);
  };
  StoreStateReader reader(store_.get());
  v1::PartitionMeta m;
  m.set_partition(0);
  m.set_offset(-1);
  projections::PartitionProjector p(&config_, m, &reader);
  ASSERT_TRUE(p.Apply(0, Bytes(Registered("r1", "dora", kT0))).ok());
  ASSERT_TRUE(p.Apply(1, Bytes(Registered("r2", "ed", kT0))).ok());
  ASSERT_TRUE(store_->Commit({p.Pending()}).ok());
  p.MarkCommitted();
  const std::string dora = CustomerKey("dora") + std::string(1, '\0') + "p";
  {
    std::unique_ptr<rocksdb::DB> db = OpenRaw();
    ASSERT_NE(db, nullptr);
    ASSERT_TRUE(db->Merge(rocksdb::WriteOptions(), dora, "\x80not a change").ok());
    ASSERT_TRUE(db->Merge(rocksdb::WriteOptions(), dora, change(false)).ok());
    rocksdb::CompactRangeOptions all;
    all.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
    ASSERT_TRUE(db->CompactRange(all, nullptr, nullptr).ok()) << "the compaction merged";
    std::string stored;
    ASSERT_TRUE(db->Get(rocksdb::ReadOptions(), dora, &stored).ok());
    EXPECT_EQ(stored, kDamagedProfile) << "a change after the damage does not mend it";
  }
  Reopen();
  auto damaged = store_->ReadProfile("dora");
  EXPECT_EQ(damaged.status().code(), absl::StatusCode::kDataLoss);
  auto view = store_->ReadCustomer("dora");
  EXPECT_EQ(view.status().code(), absl::StatusCode::kDataLoss);
  auto other = store_->ReadCustomer("ed");
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_TRUE(other->has_value());
  // The store still takes commits; a change that drops the stored profile mends it.
  {
    std::unique_ptr<rocksdb::DB> db = OpenRaw();
    ASSERT_NE(db, nullptr);
    ASSERT_TRUE(db->Merge(rocksdb::WriteOptions(), dora, change(true)).ok());
  }
  Reopen();
  auto mended = store_->ReadProfile("dora");
  ASSERT_TRUE(mended.ok()) << mended.status();
  ASSERT_TRUE(mended->has_value());
  EXPECT_EQ((*mended)->name(), "Dora");
  auto meta = store_->ReadMeta(0);
  ASSERT_TRUE(meta.ok());
  StoreStateReader reopened(store_.get());
  projections::PartitionProjector q(&config_, *meta, &reopened);
  ASSERT_TRUE(q.Apply(2, Bytes(Purchase("e1", "ed", kT0 + kDay, 100))).ok());
  EXPECT_TRUE(store_->Commit({q.Pending()}).ok());
}

// A read's partition meta is that of the state its view is from, while commits land
// (the metas kept in memory serve the reads no commit ran beside) and once they stop.
TEST_F(StoreTest, AReadsMetaIsThatOfTheStateItsViewIsFrom) {
  StoreStateReader reader(store_.get());
  v1::PartitionMeta m;
  m.set_partition(0);
  m.set_offset(-1);
  projections::PartitionProjector p(&config_, m, &reader);
  ASSERT_TRUE(p.Apply(0, Bytes(Purchase("e0", "ann", kT0, 100))).ok());
  ASSERT_TRUE(store_->Commit({p.Pending()}).ok());
  p.MarkCommitted();
  constexpr int kCommits = 3000;
  std::atomic<bool> done{false};
  std::atomic<int> reads{0}, mismatched{0};
  std::thread reader_thread([&] {
    while (!done.load()) {
      auto read = store_->ReadCustomerWithMeta("ann");
      if (!read.ok() || !read->has_value()) {
        ADD_FAILURE() << "a read failed: " << read.status();
        return;
      }
      // Each commit holds one event of ann's: the record's last offset is the partition's.
      if ((*read)->view.last_offset() != (*read)->meta.offset()) ++mismatched;
      ++reads;
    }
  });
  for (int i = 1; i <= kCommits; ++i) {
    ASSERT_TRUE(p.Apply(i, Bytes(Purchase(absl::StrCat("e", i), "ann", kT0 + i, 1))).ok());
    ASSERT_TRUE(store_->Commit({p.Pending()}).ok());
    p.MarkCommitted();
  }
  done.store(true);
  reader_thread.join();
  EXPECT_EQ(mismatched.load(), 0) << "of " << reads.load() << " reads";
  EXPECT_GT(reads.load(), 0);
  auto read = store_->ReadCustomerWithMeta("ann");
  ASSERT_TRUE(read.ok() && read->has_value());
  EXPECT_EQ((*read)->meta.offset(), kCommits);
  EXPECT_EQ((*read)->view.last_offset(), kCommits);
  EXPECT_EQ((*read)->meta.stream_time().seconds(), kT0 + kCommits);
  auto stored = store_->ReadMeta(0);
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->SerializeAsString(), (*read)->meta.SerializeAsString());
}

// P(alive) falls while a customer is silent: GetCustomer's read and the listing's read
// give it as of the partition's stream time, not as of the customer's last evaluation.
TEST_F(StoreTest, PAliveIsReadAsOfThePartitionsStreamTime) {
  const projections::DomainConfig& config = config_;
  std::vector<v1::Event> events;
  for (int i = 0; i < 3; ++i) {
    events.push_back(Purchase("a" + std::to_string(i), "ann", kT0 + i * 30 * kDay, 100));
  }
  // Someone else moves the stream on, before any of ann's deadlines (NEW ends on day
  // 90, her RFM recency drops on day 91).
  const int64_t later = kT0 + 75 * kDay;
  events.push_back(Purchase("b", "bob", later, 100));
  FoldAndCommit(events);

  auto read = store_->ReadCustomerWithMeta("ann");
  ASSERT_TRUE(read.ok() && read->has_value());
  const v1::CustomerView& v = (*read)->view;
  EXPECT_EQ(v.evaluated_at().seconds(), kT0 + 60 * kDay);
  EXPECT_EQ(v.p_alive_at().seconds(), later);
  EXPECT_NEAR(v.p_alive(), projections::rules::PAlive(config, 2, 60, 75), 1e-9);
  EXPECT_LT(v.p_alive(), projections::rules::PAlive(config, 2, 60, 60));

  auto stale = store_->ReadCustomer("ann");  // no stream time given: as evaluated
  ASSERT_TRUE(stale.ok() && stale->has_value());
  EXPECT_NEAR((*stale)->p_alive(), projections::rules::PAlive(config, 2, 60, 60), 1e-9);
  EXPECT_FALSE((*stale)->has_p_alive_at());
  const std::map<int32_t, int64_t> now = {{0, later}};
  auto listed = store_->ReadCustomer("ann", &now);
  ASSERT_TRUE(listed.ok() && listed->has_value());
  EXPECT_DOUBLE_EQ((*listed)->p_alive(), v.p_alive());
}

// GetCustomer's read seeks with the customer's prefix (the filters of the memtables and
// files skip those without it): a customer whose keys lie partly in a file and partly in
// the memtable, and one whose id begins with another's, read as a scan in key order
// reads them, with the partition's meta of the same state.
TEST_F(StoreTest, AViewIsReadWholeWhenItsKeysAreInFilesAndInTheMemtable) {
  FoldAndCommit({Registered("e1", "carol", kT0), Purchase("e2", "carol", kT0 + kDay, 100),
                 Registered("e3", "carol2", kT0), Purchase("e4", "carol2", kT0 + kDay, 70)});
  Reopen();  // the commit's keys are in a file now
  auto committed = store_->ReadMeta(0);
  ASSERT_TRUE(committed.ok());
  {
    StoreStateReader reader(store_.get());
    projections::PartitionProjector p(&config_, *committed, &reader);
    int64_t offset = committed->offset();
    ASSERT_TRUE(p.Apply(++offset, Bytes(Purchase("e5", "carol", kT0 + 40 * kDay, 250))).ok());
    ASSERT_TRUE(p.Apply(++offset, Bytes(Lead("e6", "carol", kT0 + 41 * kDay))).ok());
    ASSERT_TRUE(
        p.Apply(++offset, Bytes(Lost("e7", "carol", kT0 + 42 * kDay, v1::DEAL_LOST_REASON_PRICE)))
            .ok());
    ASSERT_TRUE(store_->Commit({p.Pending()}).ok());  // into the memtable
    p.MarkCommitted();
  }
  std::map<std::string, std::string> scanned;  // views read in key order
  ASSERT_TRUE(store_
                  ->ForEachCustomer([&](const v1::CustomerView& v) {
                    scanned[v.customer_id()] = v.SerializeAsString();
                  })
                  .ok());
  ASSERT_EQ(scanned.size(), 2u);
  for (const std::string id : {"carol", "carol2"}) {
    auto view = store_->ReadCustomer(id);
    ASSERT_TRUE(view.ok() && view->has_value()) << id;
    EXPECT_EQ((*view)->SerializeAsString(), scanned[id]) << id;
  }
  auto read = store_->ReadCustomerWithMeta("carol");
  ASSERT_TRUE(read.ok() && read->has_value());
  EXPECT_EQ((*read)->view.activity().total_spend_minor(), 350);
  EXPECT_EQ((*read)->view.lost_deals_size(), 1);
  EXPECT_EQ((*read)->meta.offset(), committed->offset() + 3);
  auto none = store_->ReadCustomerWithMeta("caro");
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  Reopen();  // the meta, too, only in files (it is not in the filters' domain)
  auto again = store_->ReadCustomerWithMeta("carol2");
  ASSERT_TRUE(again.ok() && again->has_value());
  EXPECT_EQ((*again)->meta.offset(), committed->offset() + 3);
  EXPECT_EQ((*again)->view.activity().total_spend_minor(), 70);
  auto view = store_->ReadCustomer("carol2");
  ASSERT_TRUE(view.ok() && view->has_value());
  EXPECT_EQ((*view)->SerializeAsString(), scanned["carol2"]);
}

// The counters a view belongs in (defined below).
std::vector<std::string> CounterKeysOfView(const v1::CustomerView& v);

TEST_F(StoreTest, ListingIndexesMovedByCommitsEqualThoseDerivedFromTheRecordsAtOpen) {
  // Two partitions fold a simulated history with commits every 300 records; the
  // listing indexes the commits moved in memory must read exactly as those the next
  // open derives from the stored records.
  ASSERT_NO_FATAL_FAILURE(FoldSimulated(400, 300));
  auto moved = store_->ScanKeys("x/", "", "", 1u << 20);
  ASSERT_TRUE(moved.ok()) << moved.status();
  // Every customer in each of the six dimensions (the simulated ones have advisors).
  EXPECT_EQ(moved->size(), 6u * 400);
  // An advisor's customer counters, summed from their records, equal a recount of the
  // views of their customers; their event counters are the ones kept per advisor.
  for (const std::string advisor : {"adv-01", "adv-07"}) {
    std::map<std::string, int64_t> recount;
    std::map<std::string, int64_t> revenue;
    ASSERT_TRUE(store_->ForEachCustomer([&](const v1::CustomerView& v) {
                        if (v.profile().advisor_id() != advisor) return;
                        for (const auto& k : CounterKeysOfView(v)) {
                          ++recount["@" + advisor + "/" + k];
                          revenue["@" + advisor + "/" + k] +=
                              k.rfind("prev/", 0) == 0 ? v.spend_prev_12m_minor() : v.spend_12m_minor();
                        }
                      }).ok());
    ASSERT_GT(recount["@" + advisor + "/customers/all"], 10);
    auto got = store_->ReadAdvisorAggregates(advisor);
    ASSERT_TRUE(got.ok()) << got.status();
    for (const auto& [k, n] : recount) {
      EXPECT_EQ((*got)[k].customers(), n) << k;
      EXPECT_EQ((*got)[k].revenue_minor(), revenue[k]) << k;
    }
    int64_t alerts = 0;
    for (const auto& [k, v] : *got) {
      if (k.rfind("@" + advisor + "/alert_kind/", 0) == 0) alerts += v.customers();
    }
    EXPECT_GT(alerts, 0) << "the advisor's alerts, counted as they were raised";
  }
  auto rank = [&](ListingIndex::Order order) { return Ranked(order); };
  const auto by_risk = rank(ListingIndex::Order::kChurnRisk);
  const auto by_value = rank(ListingIndex::Order::kExpectedValue);
  EXPECT_GT(by_risk.size(), 300u);
  // Many records only their deadlines changed since their last event were left as
  // stored: the views, the indexes and the advisor's counters above read them caught up.
  EXPECT_GT(Stale(), 20);
  Reopen();
  auto derived = store_->ScanKeys("x/", "", "", 1u << 20);
  ASSERT_TRUE(derived.ok()) << derived.status();
  EXPECT_EQ(*moved, *derived);
  EXPECT_EQ(rank(ListingIndex::Order::kChurnRisk), by_risk) << "moved = derived at open";
  EXPECT_EQ(rank(ListingIndex::Order::kExpectedValue), by_value);
  // Paging through one index by its last key reads the same entries.
  std::vector<std::string> paged;
  for (std::string after;;) {
    auto page = store_->ScanKeys("x/stage/", after, "", 37);
    ASSERT_TRUE(page.ok());
    if (page->empty()) break;
    paged.insert(paged.end(), page->begin(), page->end());
    after = page->back();
  }
  EXPECT_EQ(paged.size(), 400u);
}

TEST_F(StoreTest, ListingIndexesACatchUpDeferredReadAsThoseEachCommitMoved) {
  // Listings and rankings as moved by every commit, and after the fourth commit.
  auto listings = [&] {
    auto keys = store_->ScanKeys("x/", "", "", 1u << 20);
    EXPECT_TRUE(keys.ok()) << keys.status();
    std::vector<std::string> out = keys.ok() ? *keys : std::vector<std::string>{};
    for (auto order : {ListingIndex::Order::kChurnRisk, ListingIndex::Order::kExpectedValue}) {
      for (const auto& [id, score] : Ranked(order)) out.push_back(absl::StrCat(id, " ", score));
    }
    return out;
  };
  std::vector<std::string> at_fourth;
  ASSERT_NO_FATAL_FAILURE(FoldSimulated(400, 300, [&](int n) {
    if (n == 4) at_fourth = listings();
  }));
  const std::vector<std::string> moved = listings();
  ASSERT_GT(moved.size(), 6u * 400);

  // The same fold into stores that defer the moves as soon as a catch-up wrote a byte.
  std::mutex mu;
  std::condition_variable cv;
  std::vector<StoreOptions::ListingBuild> builds;
  bool builder_waits = false, release = false;
  auto open = [&] {
    store_.reset();
    std::filesystem::remove_all(dir_);
    StoreOptions o;
    o.defer_listing_after_bytes = 1;
    o.on_listing_build = [&](const StoreOptions::ListingBuild& b) {
      std::lock_guard<std::mutex> l(mu);
      builds.push_back(b);
      cv.notify_all();
    };
    o.listing_build_hook = [&] {
      std::unique_lock<std::mutex> l(mu);
      builder_waits = true;
      cv.notify_all();
      cv.wait(l, [&] { return release; });
    };
    auto s = ViewStore::Open(dir_.string(), o);
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = std::move(*s);
  };

  // 1. Caught up after the sixth commit: the build in the background waits until two
  // more commits have landed (it moves their entries after reading the records).
  ASSERT_NO_FATAL_FAILURE(open());
  ASSERT_NO_FATAL_FAILURE(FoldSimulated(400, 300, [&](int n) {
    if (n == 1) {
      ASSERT_TRUE(store_->SetCatchingUp(true).ok());
    }
    if (n == 6) {
      ASSERT_TRUE(store_->SetCatchingUp(false).ok());
      std::unique_lock<std::mutex> l(mu);
      cv.wait(l, [&] { return builder_waits; });
    }
    if (n == 8) {
      std::lock_guard<std::mutex> l(mu);
      release = true;
      cv.notify_all();
    }
  }));
  {
    std::unique_lock<std::mutex> l(mu);
    cv.wait(l, [&] { return !builds.empty(); });
  }
  ASSERT_EQ(builds.size(), 1u);
  EXPECT_TRUE(builds[0].status.ok()) << builds[0].status;
  EXPECT_EQ(builds[0].deferred_commits, 5u);  // the second to the sixth
  EXPECT_GT(builds[0].replayed, 0u);          // the seventh's and eighth's
  EXPECT_EQ(listings(), moved);

  // 2. A listing read during the catch-up builds them at once; the catch-up keeps them.
  builds.clear();
  ASSERT_NO_FATAL_FAILURE(open());
  ASSERT_NO_FATAL_FAILURE(FoldSimulated(400, 300, [&](int n) {
    if (n == 1) {
      ASSERT_TRUE(store_->SetCatchingUp(true).ok());
    }
    if (n == 4) {
      EXPECT_EQ(listings(), at_fourth);
    }
  }));
  ASSERT_TRUE(store_->SetCatchingUp(false).ok());
  EXPECT_EQ(listings(), moved);
  EXPECT_TRUE(builds.empty()) << "nothing left to build after the catch-up";

  // 3. A listing read before the catch-up wrote enough: nothing is deferred.
  ASSERT_NO_FATAL_FAILURE(open());
  ASSERT_NO_FATAL_FAILURE(FoldSimulated(400, 300, [&](int n) {
    if (n == 1) {
      ASSERT_TRUE(store_->SetCatchingUp(true).ok());
      (void)listings();
    }
  }));
  ASSERT_TRUE(store_->SetCatchingUp(false).ok());
  EXPECT_EQ(listings(), moved);
  EXPECT_TRUE(builds.empty());

  // 4. Closed while deferred: nothing to build, and the next open derives them.
  ASSERT_NO_FATAL_FAILURE(open());
  ASSERT_NO_FATAL_FAILURE(FoldSimulated(400, 300, [&](int n) {
    if (n == 1) {
      ASSERT_TRUE(store_->SetCatchingUp(true).ok());
    }
  }));
  Reopen();
  EXPECT_EQ(listings(), moved);
}

// A ranking looks at 7 customers a hold here. Between its first two slices a catch-up
// defers the indexes (a commit), and its next slice builds them again from the records
// (other customer numbers): it starts again, and answers as one ranking of the indexes
// as they then stand.
TEST_F(StoreTest, ARankingStartsAgainOnIndexesBuiltAgainBetweenItsSlices) {
  std::function<void()> between;
  store_.reset();
  std::filesystem::remove_all(dir_);
  StoreOptions o;
  o.defer_listing_after_bytes = 1;
  o.rank_slice = 7;
  o.between_rank_slices = [&] {
    if (between) between();
  };
  auto opened = ViewStore::Open(dir_.string(), o);
  ASSERT_TRUE(opened.ok()) << opened.status();
  store_ = std::move(*opened);
  StoreStateReader reader(store_.get());
  auto p = NewPartition0(&reader);
  int64_t offset = 0;
  auto fold = [&](const std::vector<v1::Event>& events) { ApplyAndCommit(p.get(), &offset, events); };
  std::vector<v1::Event> events;
  for (int c = 0; c < 40; ++c) {  // numbered in this order: not the ids' order
    const std::string id = absl::StrCat("r", 39 - c);
    events.push_back(Purchase(absl::StrCat("a", c), id, kT0 + c * kDay, 100 + c));
    events.push_back(Purchase(absl::StrCat("b", c), id, kT0 + (60 + c % 7 * 20) * kDay, 200));
  }
  ASSERT_NO_FATAL_FAILURE(fold(events));
  int calls = 0;
  between = [&] {
    if (++calls != 1) return;
    ASSERT_TRUE(store_->SetCatchingUp(true).ok());  // no listing read in it yet
    fold({Purchase("late", "r3", kT0 + 400 * kDay, 999)});  // its commit defers the indexes
  };
  const auto ranked = Ranked(ListingIndex::Order::kChurnRisk);
  between = nullptr;
  // One slice, then (started again) five more of 40 customers: 6. Going on in the new
  // indexes instead would have made 5.
  EXPECT_EQ(calls, 6);
  ASSERT_EQ(ranked.size(), 40u);
  EXPECT_EQ(ranked, Ranked(ListingIndex::Order::kChurnRisk));
  ASSERT_TRUE(store_->SetCatchingUp(false).ok());
}

TEST_F(StoreTest, IndexesDeadlinesCountersAndAlertsMoveWithTheViews) {
  StoreStateReader reader(store_.get());
  projections::DomainConfig config;
  v1::PartitionMeta m;
  m.set_partition(4);
  m.set_offset(-1);
  projections::PartitionProjector p(&config, m, &reader);
  auto commit = [&] {
    ASSERT_TRUE(store_->Commit({p.Pending()}).ok());
    p.MarkCommitted();
  };
  ASSERT_TRUE(p.Apply(0, Bytes(Registered("e1", "ann", kT0, "east"))).ok());
  ASSERT_TRUE(p.Apply(1, Bytes(Registered("e2", "bob", kT0, "west"))).ok());
  commit();
  auto prospects = store_->ReadIndex("stage", "PROSPECT", 10);
  ASSERT_TRUE(prospects.ok());
  EXPECT_EQ(*prospects, (std::vector<std::string>{"ann", "bob"}));
  EXPECT_EQ(*store_->ReadIndex("region", "east", 10), std::vector<std::string>{"ann"});

  ASSERT_TRUE(p.Apply(2, Bytes(Purchase("e3", "ann", kT0 + kDay, 100000))).ok());
  commit();
  EXPECT_EQ(*store_->ReadIndex("stage", "PROSPECT", 10), std::vector<std::string>{"bob"});
  EXPECT_EQ(*store_->ReadIndex("stage", "NEW", 10), std::vector<std::string>{"ann"});
  EXPECT_EQ(*store_->ReadIndex("grade", "C", 10), std::vector<std::string>{"ann"});
  EXPECT_EQ(*store_->ReadIndex("tier", "SILVER", 10), std::vector<std::string>{"ann"});

  // The deadlines read back from the records: ann's only (bob has none); a partition
  // asked for with no customers is there, empty.
  auto deadlines = store_->ReadDeadlines({4, 5});
  ASSERT_TRUE(deadlines.ok()) << deadlines.status();
  auto ann = store_->ReadCustomer("ann");
  ASSERT_TRUE(ann.ok() && ann->has_value());
  ASSERT_EQ(deadlines->size(), 2u);
  ASSERT_EQ((*deadlines)[4].size(), 1u);
  EXPECT_EQ((*deadlines)[4][0], std::make_pair((*ann)->next_deadline().seconds(), std::string("ann")));
  EXPECT_TRUE((*deadlines)[5].empty());

  auto counters = store_->ReadAggregates(-1);
  ASSERT_TRUE(counters.ok());
  EXPECT_EQ((*counters)["customers/all"].customers(), 2);
  EXPECT_EQ((*counters)["stage/NEW"].customers(), 1);
  EXPECT_EQ((*counters)["stage/NEW"].revenue_minor(), 100000);
  EXPECT_EQ((*counters)["stage/PROSPECT"].customers(), 1);
  EXPECT_EQ(counters->count("stage/LOYAL"), 0u);

  ASSERT_TRUE(p.Apply(3, Bytes(Lost("e4", "bob", kT0 + 2 * kDay, v1::DEAL_LOST_REASON_PRICE))).ok());
  commit();
  auto alerts = store_->ReadAlerts(4, 0, 10);
  ASSERT_TRUE(alerts.ok());
  ASSERT_EQ(alerts->size(), 1u);
  EXPECT_EQ((*alerts)[0].kind(), v1::ALERT_KIND_DEAL_LOST);
  EXPECT_EQ((*alerts)[0].sequence(), 0);
  EXPECT_TRUE(store_->ReadAlerts(4, 1, 10)->empty());

  int n = 0;
  ASSERT_TRUE(store_->ForEachCustomer([&](const v1::CustomerView&) { ++n; }).ok());
  EXPECT_EQ(n, 2);
}

// The counters a view belongs in, from the view's own fields (an independent recount
// of what the projector keeps incrementally).
std::vector<std::string> CounterKeysOfView(const v1::CustomerView& v) {
  using namespace projections;  // NOLINT: the short-name helpers
  auto or_unknown = [](const std::string& s) { return s.empty() ? std::string("unknown") : s; };
  auto bucket_of = [](int days) {
    return days >= 4 ? std::string("4+") : std::to_string(std::max(days, 0));
  };
  const std::string bucket = bucket_of(v.activity_days_12m());
  const std::string bucket_prev = bucket_of(v.activity_days_24m() - v.activity_days_12m());
  const std::string model = or_unknown(v.profile().vehicle_model());
  const std::string warranty = WarrantyStatusShort(v.warranty_status());
  std::vector<std::string> keys = {"customers/all",
          "stage/" + StageShort(v.stage()),
          "grade/" + (v.grade() == v1::VALUE_GRADE_UNSPECIFIED ? "NONE" : GradeShort(v.grade())),
          "value_class/" + ValueClassShort(v.value_class()),
          "tier/" + TierShort(v.points().tier()),
          "rfm_segment/" + (v.rfm().segment().empty() ? "none" : v.rfm().segment()),
          "region/" + or_unknown(v.profile().region()),
          "vehicle_model/" + or_unknown(v.profile().vehicle_model()),
          "industry/" + or_unknown(v.profile().industry()),
          "age_band/" + AgeBandShort(v.profile().age_band()),
          "warranty_status/" + WarrantyStatusShort(v.warranty_status()),
          "activity_bucket/" + bucket,
          "rfm_grid/" + (v.rfm().segment().empty()
                             ? std::string("none")
                             : absl::StrCat("R", v.rfm().recency(), "F", v.rfm().frequency())),
          "vehicle_model_by_activity/" + model + "|" + bucket,
          "warranty_by_activity/" + warranty + "|" + bucket,
          "prev/activity_bucket/" + bucket_prev,
          "prev/vehicle_model_by_activity/" + model + "|" + bucket_prev,
          "prev/warranty_by_activity/" + warranty + "|" + bucket_prev};
  return keys;
}

// After any event sequence, the stored stage counters sum to the number of stored
// customers and equal a full recount; the listing indexes agree with the views.
TEST_F(StoreTest, CountersAndIndexesEqualAFullRecountAfterMessyLogs) {
  ASSERT_NO_FATAL_FAILURE(
      FoldMessyLogs(5, 600, 30, [](uint32_t seed) { return static_cast<int>(seed * 7); }));
  std::map<std::string, int64_t> recount;
  int64_t customers = 0;
  ASSERT_TRUE(store_->ForEachCustomer([&](const v1::CustomerView& v) {
                      ++customers;
                      for (const auto& k : CounterKeysOfView(v)) ++recount[k];
                    }).ok());
  ASSERT_GT(customers, 0);
  auto stored = store_->ReadAggregates(-1);
  ASSERT_TRUE(stored.ok());
  int64_t stage_sum = 0;
  for (const auto& [k, v] : *stored) {
    if (k.rfind("stage/", 0) == 0) stage_sum += v.customers();
  }
  EXPECT_EQ(stage_sum, customers);
  for (const auto& [k, n] : recount) EXPECT_EQ((*stored)[k].customers(), n) << k;
  for (const auto& [k, v] : *stored) {
    const bool event_counter = k.rfind("alert_kind/", 0) == 0 ||
                               k.rfind("stage_transition/", 0) == 0 ||
                               k.rfind("lost_deal_reason/", 0) == 0 ||
                               k.rfind("lost_deals/", 0) == 0 ||
                               k.rfind("lost_prospects/", 0) == 0;
    if (!event_counter) {
      EXPECT_EQ(v.customers(), recount[k]) << k;
    }
  }
  int64_t indexed = 0;
  for (const char* stage : {"PROSPECT", "LOST_PROSPECT", "NEW", "ACTIVE", "LOYAL", "AT_RISK",
                            "CHURNED", "WON_BACK"}) {
    auto ids = store_->ReadIndex("stage", stage, 1000000);
    ASSERT_TRUE(ids.ok());
    indexed += ids->size();
    EXPECT_EQ(static_cast<int64_t>(ids->size()), recount[std::string("stage/") + stage]) << stage;
  }
  EXPECT_EQ(indexed, customers);
}

TEST_F(StoreTest, OpenFailsWithAMessageWhenThePathIsAFile) {
  const auto file = dir_.string() + "-file";
  { std::FILE* f = std::fopen(file.c_str(), "w"); std::fclose(f); }
  auto s = ViewStore::Open(file);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find(file), std::string::npos) << s.status();
  std::filesystem::remove(file);
}

// A key of layout 2 as layout 1 wrote it: a journal base under j/, numbers in
// customers' keys as digits (N as 10 decimal digits, H as 16 hex, P/S as 5 and 20).
std::string LayoutOneKey(const std::string& key) {
  const size_t nul = key.find('\0');
  if (nul == std::string::npos || nul + 1 >= key.size()) return key;
  const char family = key[nul + 1];
  const std::string rest = key.substr(nul + 2);
  auto number = [&](size_t from, size_t n) {
    uint64_t v = 0;
    for (size_t i = from; i < from + n; ++i) v = (v << 8) | static_cast<uint8_t>(rest[i]);
    return v;
  };
  auto digits = [](uint64_t v, int width, bool hex) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), hex ? "%0*llx" : "%0*llu", width,
                  static_cast<unsigned long long>(v));
    return std::string(buf);
  };
  std::string out = key.substr(0, nul + 2);
  if (family == 'b') {
    out[0] = 'j';
    return out + rest;
  }
  if (family == 't' || family == 'g' || family == 'e') return out + digits(number(0, 4), 10, false);
  if (family == 's') return out + digits(number(0, 8), 16, true);
  if (family == 'h') {
    return out + digits(number(0, 4), 5, false) + "/" + digits(number(4, 8), 20, false);
  }
  return key;
}

// A store of an earlier key layout (1: numbers in customers' keys as digits, journal
// bases under j/) is upgraded once when it opens: the same keys of layout 2 as a store
// written now, and the same views, alerts and journals read from them.
TEST_F(StoreTest, AStoreOfLayoutOneIsUpgradedAtOpen) {
  FoldMessyLogs(2, 600, 40, [](uint32_t) { return 50; });
  // Two windows (late.window_days) apart: the second event takes a base (slot 0).
  FoldAndCommit({Purchase("e1", "alice", kT0, 100), Purchase("e2", "alice", kT0 + 200 * kDay, 100)});
  auto keys = [&] {
    std::map<std::string, std::string> out;
    EXPECT_TRUE(store_->ForEachKey([&](std::string_view k, std::string_view v) {
                        out.emplace(std::string(k), std::string(v));
                      }).ok());
    return out;
  };
  auto views = [&] {
    std::vector<std::string> out;
    EXPECT_TRUE(store_->ForEachCustomer([&](const v1::CustomerView& v) {
                        out.push_back(v.SerializeAsString());
                      }).ok());
    for (int32_t partition : {1, 2}) {
      auto alerts = store_->ReadAlerts(partition, 0, 1u << 20);
      EXPECT_TRUE(alerts.ok());
      for (const auto& a : *alerts) {
        out.push_back(a.SerializeAsString());
        auto own = store_->ReadCustomerAlerts(a.customer_id());
        EXPECT_TRUE(own.ok());
        EXPECT_FALSE(own->empty());
      }
    }
    return out;
  };
  const auto written = keys();
  const auto seen = views();
  ASSERT_GT(seen.size(), 40u);
  const std::string base("c/alice\0b0", 10);
  ASSERT_EQ(written.count(base), 1u);
  ASSERT_EQ(written.count("v/layout"), 1u);
  EXPECT_EQ(written.at("v/layout"), "3");

  // The same store as layout 1 wrote it.
  size_t rewritten = 0;
  {
    std::unique_ptr<rocksdb::DB> db = OpenRaw();
    ASSERT_NE(db, nullptr);
    for (const auto& [k, v] : written) {
      const std::string old = LayoutOneKey(k);
      if (old == k) continue;
      ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), old, v).ok());
      ASSERT_TRUE(db->Delete(rocksdb::WriteOptions(), k).ok());
      ++rewritten;
    }
    ASSERT_TRUE(db->Delete(rocksdb::WriteOptions(), "v/layout").ok());
  }
  ASSERT_GT(rewritten, 100u);
  std::vector<std::string> told;
  store_.reset();
  StoreOptions o;
  o.on_upgrade = [&](const std::string& what) { told.push_back(what); };
  auto opened = ViewStore::Open(dir_.string(), o);
  ASSERT_TRUE(opened.ok()) << opened.status();
  store_ = std::move(*opened);
  EXPECT_FALSE(told.empty());
  EXPECT_EQ(keys(), written);
  EXPECT_EQ(views(), seen);
  auto journal = store_->ReadJournal("alice", 0, 0);
  ASSERT_TRUE(journal.ok()) << journal.status();
  ASSERT_TRUE(journal->snapshot.has_value());
  EXPECT_EQ(*journal->snapshot, written.at(base));
  EXPECT_EQ(journal->entries.size(), 2u);

  // Opened again: nothing to upgrade. A layout this build does not know is refused.
  told.clear();
  Reopen();
  EXPECT_EQ(keys(), written);
  {
    std::unique_ptr<rocksdb::DB> db = OpenRaw();
    ASSERT_NE(db, nullptr);
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), "v/layout", "4").ok());
  }
  auto later = ViewStore::Open(dir_.string());
  ASSERT_FALSE(later.ok());
  EXPECT_NE(later.status().message().find("layout 4"), std::string::npos) << later.status();
}

// The lines of RocksDB's newest OPTIONS file (written at open and by each SetOptions).
std::vector<std::string> NewestOptions(const std::filesystem::path& dir) {
  std::filesystem::path newest;
  uint64_t number = 0;
  for (const auto& f : std::filesystem::directory_iterator(dir)) {
    const std::string name = f.path().filename().string();
    if (name.rfind("OPTIONS-", 0) != 0 || name.find(".dbtmp") != std::string::npos) continue;
    const uint64_t n = std::stoull(name.substr(8));
    if (n >= number) {
      number = n;
      newest = f.path();
    }
  }
  std::ifstream in(newest);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// The number after `key` on the first line of that file that holds `line_key`; -1 if none.
int StoredNumber(const std::filesystem::path& dir, const std::string& line_key,
                 const std::string& key) {
  for (const std::string& line : NewestOptions(dir)) {
    if (line.find(line_key) == std::string::npos) continue;
    const size_t at = line.find(key);
    if (at != std::string::npos) return std::stoi(line.substr(at + key.size()));
  }
  return -1;
}

// The default column family's L0 compaction trigger, and its last level's ZSTD level
// (bottommost_compression_opts={...;level=N;...}).
int StoredL0Trigger(const std::filesystem::path& dir) {
  return StoredNumber(dir, "level0_file_num_compaction_trigger=",
                      "level0_file_num_compaction_trigger=");
}
int StoredZstdLevel(const std::filesystem::path& dir) {
  return StoredNumber(dir, "bottommost_compression_opts=", ";level=");
}
// Its data blocks' size, and the size of its last level's ZSTD dictionary.
int StoredBlockSize(const std::filesystem::path& dir) {
  return StoredNumber(dir, "  block_size=", "block_size=");
}
int StoredDictionaryBytes(const std::filesystem::path& dir) {
  return StoredNumber(dir, "bottommost_compression_opts=", ";max_dict_bytes=");
}

TEST_F(StoreTest, RocksDbOptionsOverTheStoresOwnAndTheCatchUpTrigger) {
  store_.reset();
  StoreOptions o;
  o.rocksdb_overrides = "level0_file_num_compaction_trigger=5;max_background_jobs=3";
  auto opened = ViewStore::Open(dir_.string(), o);
  ASSERT_TRUE(opened.ok()) << opened.status();
  store_ = std::move(*opened);
  EXPECT_EQ(StoredL0Trigger(dir_), 5);
  EXPECT_EQ(StoredZstdLevel(dir_), 6);
  EXPECT_EQ(StoredBlockSize(dir_), 4096);
  EXPECT_EQ(StoredDictionaryBytes(dir_), 65536);
  ASSERT_TRUE(store_->SetCatchingUp(true).ok());
  EXPECT_EQ(StoredL0Trigger(dir_), 8);  // StoreOptions' catch-up trigger, the larger
  EXPECT_EQ(StoredZstdLevel(dir_), 1);  // and its faster compression
  EXPECT_EQ(StoredBlockSize(dir_), 16384);     // the blocks a catch-up was tuned with
  EXPECT_EQ(StoredDictionaryBytes(dir_), 0);   // and no dictionary
  ASSERT_TRUE(store_->SetCatchingUp(false).ok());
  EXPECT_EQ(StoredL0Trigger(dir_), 5);
  EXPECT_EQ(StoredZstdLevel(dir_), 6);
  EXPECT_EQ(StoredBlockSize(dir_), 4096);
  EXPECT_EQ(StoredDictionaryBytes(dir_), 65536);
  store_.reset();

  // The store's own blocks and dictionary are what the overrides say.
  o.rocksdb_overrides =
      "block_based_table_factory={block_size=8192};"
      "bottommost_compression_opts={max_dict_bytes=0}";
  auto tuned = ViewStore::Open(dir_.string(), o);
  ASSERT_TRUE(tuned.ok()) << tuned.status();
  store_ = std::move(*tuned);
  EXPECT_EQ(StoredBlockSize(dir_), 8192);
  EXPECT_EQ(StoredDictionaryBytes(dir_), 0);
  EXPECT_EQ(StoredZstdLevel(dir_), 6);  // what the overrides leave alone stays
  ASSERT_TRUE(store_->SetCatchingUp(true).ok());
  EXPECT_EQ(StoredBlockSize(dir_), 16384);
  ASSERT_TRUE(store_->SetCatchingUp(false).ok());
  EXPECT_EQ(StoredBlockSize(dir_), 8192);
  EXPECT_EQ(StoredDictionaryBytes(dir_), 0);
  store_.reset();

  o.rocksdb_overrides = "level0_file_num_compaction_trigger=five";
  auto bad_value = ViewStore::Open(dir_.string(), o);
  ASSERT_FALSE(bad_value.ok());
  EXPECT_EQ(bad_value.status().code(), absl::StatusCode::kInvalidArgument);
  o.rocksdb_overrides = "no_such_option=1";
  auto unknown = ViewStore::Open(dir_.string(), o);
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("no_such_option"), std::string::npos) << unknown.status();
}

// A store whose catch-up leaves many L0 files of overwritten versions (the L0 trigger
// raised over the catch-up's), and which is told of its whole-store compactions.
class CatchUpCompactionTest : public StoreTest {
 protected:
  void OpenWith(uint64_t compact_after) {
    store_.reset();
    StoreOptions o;
    o.write_buffer_bytes = 64 << 10;
    o.rocksdb_overrides =
        "level0_file_num_compaction_trigger=100;level0_slowdown_writes_trigger=200;"
        "level0_stop_writes_trigger=300";
    o.compact_after_catchup_bytes = compact_after;
    o.on_full_compaction = [this](const StoreOptions::FullCompaction& fc) {
      std::lock_guard<std::mutex> lock(mu_);
      told_.push_back(fc);
      cv_.notify_all();
    };
    auto opened = ViewStore::Open(dir_.string(), o);
    ASSERT_TRUE(opened.ok()) << opened.status();
    store_ = std::move(*opened);
  }
  // Folds two messy logs, committing every few records, as a catch-up does.
  void CatchUp() {
    ASSERT_TRUE(store_->SetCatchingUp(true).ok());
    ASSERT_NO_FATAL_FAILURE(FoldMessyLogs(2, 3000, 150, [](uint32_t) { return 10; }));
  }
  std::vector<std::string> Views() {
    std::vector<std::string> out;
    EXPECT_TRUE(store_->ForEachCustomer([&](const v1::CustomerView& v) {
                        out.push_back(v.SerializeAsString());
                      }).ok());
    return out;
  }
  // Waits for the end of the whole-store compaction it was told of.
  void WaitForFullCompaction() {
    std::unique_lock<std::mutex> lock(mu_);
    ASSERT_TRUE(cv_.wait_for(lock, std::chrono::seconds(120), [&] {
      return !told_.empty() && told_.back().done;
    })) << "no end of the compaction told";
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<StoreOptions::FullCompaction> told_;
};

TEST_F(CatchUpCompactionTest, TheEndOfALargeCatchUpCompactsTheWholeStoreOnce) {
  OpenWith(/*compact_after=*/1);
  CatchUp();
  auto before = store_->Stats();
  ASSERT_TRUE(before.ok());
  ASSERT_GT(before->l0_files, 0u);  // the catch-up left files of overwritten versions in L0
  const std::vector<std::string> views = Views();
  ASSERT_GT(views.size(), 100u);

  ASSERT_TRUE(store_->SetCatchingUp(false).ok());
  {
    std::unique_lock<std::mutex> lock(mu_);
    ASSERT_TRUE(cv_.wait_for(lock, std::chrono::seconds(120), [&] {
      return !told_.empty() && told_.back().done;
    })) << "no end of the compaction told";
    ASSERT_EQ(told_.size(), 2u);  // its start and its end
    EXPECT_FALSE(told_[0].done);
    EXPECT_TRUE(told_[1].status.ok()) << told_[1].status;
    EXPECT_GT(told_[1].catchup_bytes, 0u);
    EXPECT_LT(told_[1].sst_bytes_after, told_[1].sst_bytes_before);
  }
  auto after = store_->Stats();
  ASSERT_TRUE(after.ok());
  EXPECT_FALSE(after->compacting);
  EXPECT_EQ(after->full_compactions, 1u);
  EXPECT_EQ(after->l0_files, 0u);
  EXPECT_EQ(after->levels_with_files, 1);  // one level holds the store
  EXPECT_LT(after->sst_bytes, before->sst_bytes);
  EXPECT_EQ(Views(), views);  // what it says is unchanged

  // Caught up again without writing: nothing more to compact.
  ASSERT_TRUE(store_->SetCatchingUp(true).ok());
  ASSERT_TRUE(store_->SetCatchingUp(false).ok());
  EXPECT_EQ(store_->Stats()->full_compactions, 1u);
  std::lock_guard<std::mutex> lock(mu_);
  EXPECT_EQ(told_.size(), 2u);
}

// The store ends its data blocks between customers (CustomerBlockPolicy): reading one
// customer's keys, as a view does (its prefix, up to the bound past it), reads one data
// block, never a second one where its keys go on or to see that they have ended.
TEST_F(CatchUpCompactionTest, ACustomersKeysAreReadFromOneDataBlock) {
  OpenWith(/*compact_after=*/1);
  ASSERT_TRUE(store_->SetCatchingUp(true).ok());
  ASSERT_NO_FATAL_FAILURE(FoldSimulated(400, 300));
  ASSERT_TRUE(store_->SetCatchingUp(false).ok());
  ASSERT_NO_FATAL_FAILURE(WaitForFullCompaction());
  std::vector<std::string> ids;  // the customers' record keys
  {
    auto db = OpenRaw();
    ASSERT_NE(db, nullptr);
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
    for (it->Seek("c/"); it->Valid() && it->key().starts_with("c/"); it->Next()) {
      if (std::memchr(it->key().data(), '\0', it->key().size()) == nullptr) {
        ids.push_back(it->key().ToString());
      }
    }
  }
  ASSERT_GT(ids.size(), 300u);
  // Opened without a block cache: every read of a block is counted.
  rocksdb::Options options;
  options.merge_operator = ProfileMergeOperator();
  rocksdb::BlockBasedTableOptions table;
  table.no_block_cache = true;
  options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  rocksdb::DB* raw = nullptr;
  ASSERT_TRUE(rocksdb::DB::Open(options, dir_.string(), &raw).ok());
  std::unique_ptr<rocksdb::DB> db(raw);
  rocksdb::SetPerfLevel(rocksdb::PerfLevel::kEnableCount);
  int one = 0;
  for (const std::string& key : ids) {
    const std::string past = key + '\x01';
    const rocksdb::Slice bound(past);
    rocksdb::ReadOptions ro;
    ro.iterate_upper_bound = &bound;
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(ro));
    rocksdb::get_perf_context()->Reset();
    int keys = 0;
    for (it->Seek(key); it->Valid(); it->Next()) ++keys;
    ASSERT_TRUE(it->status().ok()) << it->status().ToString();
    const rocksdb::PerfContext& pc = *rocksdb::get_perf_context();
    const uint64_t data_blocks = pc.block_read_count - pc.index_block_read_count -
                                 pc.filter_block_read_count - pc.compression_dict_block_read_count;
    EXPECT_LE(data_blocks, 1u) << key << " (" << keys << " keys)";
    if (data_blocks == 1) ++one;
  }
  rocksdb::SetPerfLevel(rocksdb::PerfLevel::kDisable);
  EXPECT_EQ(one, static_cast<int>(ids.size()));
}

// Records only their deadlines changed since their last event are stored as that
// event left them; the whole-store compaction writes them caught up, so a settled
// store's reads have few deadlines to run again. The views read the same.
TEST_F(CatchUpCompactionTest, TheWholeStoreCompactionWritesTheRecordsCaughtUp) {
  OpenWith(/*compact_after=*/1);
  ASSERT_TRUE(store_->SetCatchingUp(true).ok());
  ASSERT_NO_FATAL_FAILURE(FoldSimulated(400, 300));
  const std::vector<std::string> views = Views();
  EXPECT_GT(Stale(), 20);
  ASSERT_TRUE(store_->SetCatchingUp(false).ok());
  ASSERT_NO_FATAL_FAILURE(WaitForFullCompaction());
  EXPECT_EQ(Stale(), 0) << "written caught up";
  EXPECT_EQ(Views(), views);
}

TEST_F(CatchUpCompactionTest, ASmallCatchUpOrNoneLeavesCompactionToRocksDb) {
  OpenWith(/*compact_after=*/1u << 30);
  CatchUp();
  ASSERT_TRUE(store_->SetCatchingUp(false).ok());
  OpenWith(/*compact_after=*/0);  // never
  CatchUp();
  ASSERT_TRUE(store_->SetCatchingUp(false).ok());
  auto st = store_->Stats();
  ASSERT_TRUE(st.ok());
  EXPECT_FALSE(st->compacting);
  EXPECT_EQ(st->full_compactions, 0u);
  EXPECT_GT(st->l0_files, 0u);  // a whole-store compaction leaves none
  std::lock_guard<std::mutex> lock(mu_);
  EXPECT_TRUE(told_.empty());
}

}  // namespace
}  // namespace lifecycle::store
