#include "services/lifecycled/domain_config.h"

#include <gtest/gtest.h>

namespace lifecycle::daemon {
namespace {

void ExpectRefused(const std::string& text, const std::string& key) {
  auto c = ParseDomainConfig(text, "test.toml");
  ASSERT_FALSE(c.ok()) << text;
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(c.status().message().find(key), std::string::npos) << c.status().message();
}

TEST(DomainConfigTest, TheShippedFileLoadsAndMatchesTheBuiltInDefaults) {
  auto c = LoadDomainConfig(std::string(LIFECYCLE_SOURCE_DIR) + "/deploy/config/domain.toml");
  ASSERT_TRUE(c.ok()) << c.status();
  projections::DomainConfig d;
  EXPECT_EQ(c->version, "2026-11-26.5");
  EXPECT_EQ(c->new_days, d.new_days);
  EXPECT_EQ(c->at_risk_p, d.at_risk_p);
  EXPECT_EQ(c->churned_p, d.churned_p);
  EXPECT_EQ(c->r, d.r);
  EXPECT_EQ(c->grade_a_spend_minor, d.grade_a_spend_minor);
  EXPECT_EQ(c->rfm_monetary_minor, d.rfm_monetary_minor);
  EXPECT_EQ(c->tier_platinum, d.tier_platinum);
  EXPECT_EQ(c->followup_grace_days, d.followup_grace_days);
}

TEST(DomainConfigTest, ValuesOverrideDefaults) {
  auto c = ParseDomainConfig(
      "version = \"v9\"\n[stages]\nat_risk_p = 0.6\nnew_days = 30\n[rfm]\nfrequency = [1, 2, 3, 4]\n",
      "x.toml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->version, "v9");
  EXPECT_EQ(c->at_risk_p, 0.6);
  EXPECT_EQ(c->new_days, 30);
  EXPECT_EQ(c->rfm_frequency, (std::vector<int64_t>{1, 2, 3, 4}));
  EXPECT_EQ(c->churn_days, 365);  // untouched
}

TEST(DomainConfigTest, RefusesUnknownKeysWrongTypesAndValuesOutOfRange) {
  ExpectRefused("version = \"v\"\n[stages]\nnew_dayz = 3\n", "stages.new_dayz: unknown key");
  ExpectRefused("version = \"v\"\n[stagez]\nnew_days = 3\n", "stagez.new_days: unknown key");
  ExpectRefused("version = \"v\"\n[stages]\nnew_days = \"ninety\"\n",
                "stages.new_days: must be an integer");
  ExpectRefused("version = \"v\"\n[stages]\nat_risk_p = 1.5\n", "stages.at_risk_p: 1.5 is out of range");
  ExpectRefused("version = \"v\"\n[stages]\nchurn_days = -1\n", "stages.churn_days");
  ExpectRefused("version = \"v\"\n[rfm]\nfrequency = [1, \"x\"]\n", "rfm.frequency");
  ExpectRefused("version = \"v\"\n[stages]\nat_risk_p = 0.1\nchurned_p = 0.2\n", "stages.churned_p");
  ExpectRefused("version = \"v\"\n[points]\ntier_gold = 10\n", "points.tier_gold");
  ExpectRefused("version = \"v\"\n[rfm]\nrecency_days = [1, 2, 3, 4]\n", "rfm.recency_days");
  ExpectRefused("[stages]\nnew_days = 3\n", "version: is required");
  ExpectRefused("version = \"v\"\n[stages\n", "test.toml:2");
}

TEST(DomainConfigTest, MissingFileSaysWhich) {
  auto c = LoadDomainConfig("/nonexistent/domain.toml");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("/nonexistent/domain.toml"), std::string::npos);
}

}  // namespace
}  // namespace lifecycle::daemon
