// lifecyclectl fit: reading a population from CSV, and the domain config it writes.
#include "services/lifecyclectl/fit.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "services/lifecycled/domain_config.h"

namespace lifecycle::ctl {
namespace {

namespace fs = std::filesystem;

class FitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("fit_test." + std::to_string(getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string Write(const std::string& name, const std::string& text) {
    const std::string path = (dir_ / name).string();
    std::ofstream(path) << text;
    return path;
  }
  static std::string Read(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  fs::path dir_;
};

TEST_F(FitTest, ACsvIsReadWithOrWithoutItsHeaderAndABadLineIsNamed) {
  auto data = ReadFitCsv(Write("a.csv", "customer,x,t_x,T,mean_spend\nC1,0,0,30,0\nC2,3,20,40,125.5\n"));
  ASSERT_TRUE(data.ok()) << data.status();
  ASSERT_EQ(data->rfm.size(), 2u);
  EXPECT_EQ(data->rfm[1].x, 3);
  EXPECT_EQ(data->rfm[1].t_x, 20);
  EXPECT_EQ(data->rfm[1].T, 40);
  EXPECT_EQ(data->spend[1].m, 125.5);
  EXPECT_EQ(data->spend[0].x, 0);  // no repeat activity: no spend to fit
  EXPECT_TRUE(ReadFitCsv(Write("b.csv", "C1,1,2,3\n")).ok());

  auto bad = ReadFitCsv(Write("c.csv", "C1,1,2,3\nC2,1,x,3\n"));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("c.csv:2:"), std::string::npos) << bad.status();
  auto late = ReadFitCsv(Write("d.csv", "C1,1,5,3\n"));  // t_x after T
  ASSERT_FALSE(late.ok());
  EXPECT_NE(late.status().message().find("d.csv:1:"), std::string::npos) << late.status();
  EXPECT_FALSE(ReadFitCsv(Write("e.csv", "customer,x,t_x,T\n")).ok());  // no customers
}

TEST_F(FitTest, TheWrittenConfigKeepsEveryOtherSectionAndLoadsWithTheFittedParameters) {
  const std::string base =
      "# a comment\nversion = \"v1\"\n\n[stages]\nnew_days = 60\n\n[churn_model]\n# old\n"
      "r = 0.6\nalpha = 45.0\na = 0.4\nb = 2.5\n\n[loyalty]\nsurvey_high = 8\n";
  const projections::model::MbgNbdParams churn{0.75, 52.5, 0.55, 2.75};
  const projections::model::GammaGammaParams spend{5.5, 3.5, 70000};
  const std::string out = WithFittedModels(base, "v2.fit", churn, &spend, "fitted here");
  auto config = daemon::ParseDomainConfig(out, "fitted");
  ASSERT_TRUE(config.ok()) << config.status() << "\n" << out;
  EXPECT_EQ(config->version, "v2.fit");
  EXPECT_EQ(config->new_days, 60);
  EXPECT_EQ(config->survey_high, 8);
  EXPECT_DOUBLE_EQ(config->r, 0.75);
  EXPECT_DOUBLE_EQ(config->alpha, 52.5);
  EXPECT_DOUBLE_EQ(config->a, 0.55);
  EXPECT_DOUBLE_EQ(config->b, 2.75);
  EXPECT_DOUBLE_EQ(config->spend_p, 5.5);
  EXPECT_DOUBLE_EQ(config->spend_v, 70000);
  EXPECT_EQ(out.find("# old"), std::string::npos);
  EXPECT_NE(out.find("# a comment"), std::string::npos);
}

TEST_F(FitTest, FittingACsvInWeeksWritesAlphaInDays) {
  // A population drawn from known parameters, its times in weeks.
  std::mt19937_64 rng(3);
  std::gamma_distribution<double> lambda(0.8, 1 / 60.0), ga(0.6, 1), gb(3.0, 1);
  std::uniform_real_distribution<double> age(180, 1095), u(0, 1);
  std::string csv = "customer,x,t_x,T\n";
  for (int i = 0; i < 20000; ++i) {
    const double l = lambda(rng), xa = ga(rng), drop = xa / (xa + gb(rng)), T = age(rng);
    std::exponential_distribution<double> gap(l);
    double t = 0, t_x = 0;
    int x = 0;
    while (u(rng) >= drop && (t += gap(rng)) <= T) ++x, t_x = t;
    csv += "C" + std::to_string(i) + "," + std::to_string(x) + "," + std::to_string(t_x / 7) +
           "," + std::to_string(T / 7) + "\n";
  }
  auto data = ReadFitCsv(Write("weeks.csv", csv));
  ASSERT_TRUE(data.ok()) << data.status();
  FitArgs args;
  args.unit_days = 7;
  args.config = Write("base.toml", "version = \"v1\"\n[churn_model]\nr = 0.6\n");
  args.write = (dir_ / "fitted.toml").string();
  args.version = "v1.fit";
  ASSERT_EQ(RunFit(*data, args), 0);
  auto config = daemon::ParseDomainConfig(Read(args.write), "fitted");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->version, "v1.fit");
  EXPECT_NEAR(config->alpha, 60.0, 6.0);  // days, though the data was in weeks
  EXPECT_NEAR(config->r, 0.8, 0.08);
}

TEST_F(FitTest, AnActivitiesCsvGivesSummariesRepeatSpendAndHistories) {
  // Two activities on day 3 are one activity day; the first day's spend is left out of
  // the mean; everyone is observed up to the latest time in the file (day 40).
  auto data = ReadActivitiesCsv(Write("act.csv",
                                      "customer,time,spend\n"
                                      "a,0.5,900\n"
                                      "a,3.2,100\n"
                                      "a,3.7,50\n"
                                      "a,10,300\n"
                                      "b,40.9,20\n"));
  ASSERT_TRUE(data.ok()) << data.status();
  ASSERT_EQ(data->rfm.size(), 2u);
  EXPECT_EQ(data->rfm[0].x, 2);
  EXPECT_EQ(data->rfm[0].t_x, 10);
  EXPECT_EQ(data->rfm[0].T, 40);
  EXPECT_EQ(data->spend[0].x, 2);
  EXPECT_EQ(data->spend[0].m, 225);  // (150 + 300) / 2
  EXPECT_EQ(data->rfm[1].x, 0);
  EXPECT_EQ(data->rfm[1].T, 0);
  EXPECT_EQ(data->spend[1].x, 0) << "no repeat days: not in the spend fit";
  ASSERT_EQ(data->histories.size(), 2u);
  EXPECT_EQ(data->histories[0].days, (std::vector<double>{0, 3, 10}));
  EXPECT_FALSE(ReadActivitiesCsv(Write("bad.csv", "a,1\nb,x\n")).ok());
}

// The holdout check on customers drawn from known parameters: fitted on the history
// before the cut-off, the model predicts the activity days after it (all customers
// together within 10%, the busy buckets too).
TEST_F(FitTest, TheHoldoutCheckPredictsTheActivityDaysAfterTheCutOff) {
  std::mt19937_64 rng(5);
  std::gamma_distribution<double> lambda(0.9, 1 / 50.0), ga(0.8, 1), gb(4.0, 1);
  std::uniform_real_distribution<double> start(0, 900), u(0, 1);
  const double end = 1200;
  std::vector<History> histories;
  for (int i = 0; i < 20000; ++i) {
    const double l = lambda(rng), xa = ga(rng), drop = xa / (xa + gb(rng));
    std::exponential_distribution<double> gap(l);
    History h;
    h.first = std::floor(start(rng));
    h.end = end;
    h.days.push_back(h.first);
    double t = h.first;
    while (u(rng) >= drop && (t += gap(rng)) <= end) {
      if (std::floor(t) != h.days.back()) h.days.push_back(std::floor(t));
    }
    h.total = static_cast<int64_t>(h.days.size());
    histories.push_back(std::move(h));
  }
  const Calibration c = Calibrate(histories, 180);
  EXPECT_TRUE(c.fit.converged) << c.fit.message;
  EXPECT_EQ(c.skipped, 0);
  ASSERT_EQ(c.rows.size(), 9u);
  const auto& all = c.rows.back();
  EXPECT_EQ(all.bucket, "all");
  EXPECT_GT(all.customers, 15000);
  EXPECT_NEAR(all.predicted / all.actual, 1.0, 0.1);
  EXPECT_NEAR(c.rows[0].predicted / c.rows[0].actual, 1.0, 0.15) << "no repeats before the cut";
  // Only what the days say: a history whose last day before the cut-off is not among
  // its days (the record's ring has aged it out) is left out and counted.
  History partial{.first = 0, .days = {1150}, .total = 5, .end = 1200};
  EXPECT_EQ(Calibrate({partial}, 180).skipped, 1);
  // As the server gives them: the first day, then the trailing 24 months (from day
  // 471). Three unknown days lie between day 0 and day 471: the last of them is taken at
  // 470 * 3/4 (day 352), not at day 0.
  History from_server{.first = 0, .days = {0, 1150}, .total = 5, .end = 1200, .known_from = 471};
  const Calibration estimated = Calibrate({from_server}, 180);
  EXPECT_EQ(estimated.skipped, 0);
  EXPECT_EQ(estimated.approximated, 1);
  History known{.first = 0, .days = {0, 900, 1150}, .total = 5, .end = 1200};
  EXPECT_EQ(Calibrate({known}, 180).skipped, 0) << "day 900 is in the known suffix";
}

TEST_F(FitTest, WritingNeedsABaseConfig) {
  auto data = ReadFitCsv(Write("a.csv", "C1,1,2,3\nC2,0,0,5\n"));
  ASSERT_TRUE(data.ok());
  FitArgs args;
  args.write = (dir_ / "out.toml").string();
  EXPECT_EQ(RunFit(*data, args), 1);
  EXPECT_FALSE(fs::exists(args.write));
}

}  // namespace
}  // namespace lifecycle::ctl
