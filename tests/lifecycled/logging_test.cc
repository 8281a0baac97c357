#include "services/lifecycled/logging.h"

#include <gtest/gtest.h>

namespace lifecycle::daemon {
namespace {

TEST(JsonLogLineTest, EscapesTheMessageAndAddsPartitionAndOffsetOnlyWhenKnown) {
  EXPECT_EQ(JsonLogLine(1795651737930, "info", "stream", "plain", -1, -1),
            R"({"time":"2026-11-26T00:08:57.930Z","level":"info","logger":"stream","message":"plain"})");
  EXPECT_EQ(JsonLogLine(0, "warning", "projector", "a \"quoted\"\nline\\ with\ttab \x01 and 中文", 3, 17),
            R"({"time":"1970-01-01T00:00:00.000Z","level":"warning","logger":"projector",)"
            R"("message":"a \"quoted\"\nline\\ with\ttab \u0001 and 中文","partition":3,"offset":17})");
}

}  // namespace
}  // namespace lifecycle::daemon
