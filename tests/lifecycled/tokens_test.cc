#include <gtest/gtest.h>

#include "services/api/auth.h"

namespace lifecycle::api {
namespace {

TEST(TokensTest, TheExampleFileLoads) {
  auto t = LoadTokens(std::string(LIFECYCLE_SOURCE_DIR) + "/deploy/config/tokens.example.toml");
  ASSERT_TRUE(t.ok()) << t.status();
  ASSERT_EQ(t->size(), 3u);
  EXPECT_EQ((*t)[0].name, "dashboard");
  EXPECT_EQ((*t)[0].roles, std::set<Role>{Role::kRead});
  EXPECT_EQ((*t)[2].roles, (std::set<Role>{Role::kRead, Role::kPublish, Role::kAdmin}));
}

TEST(TokensTest, RefusesBadFilesNamingWhatIsWrong) {
  auto bad = [](const std::string& text, const std::string& what) {
    auto t = ParseTokens(text, "t.toml");
    ASSERT_FALSE(t.ok()) << text;
    EXPECT_NE(t.status().message().find(what), std::string::npos) << t.status().message();
  };
  bad("[[tokens]]\nname = \"x\"\ntoken = \"short\"\nroles = [\"read\"]\n", "tokens[0].token");
  bad("[[tokens]]\nname = \"x\"\ntoken = \"0123456789abcdef\"\nroles = [\"root\"]\n", "unknown role");
  bad("[[tokens]]\nname = \"x\"\ntoken = \"0123456789abcdef\"\nroles = []\n", "tokens[0].roles");
  bad("[[tokens]]\nname = \"x\"\ntokn = \"0123456789abcdef\"\n", "tokens[0].tokn");
  bad("tokens = 3\n", "tokens");
  bad("other = 1\n", "other: unknown key");
}

}  // namespace
}  // namespace lifecycle::api
