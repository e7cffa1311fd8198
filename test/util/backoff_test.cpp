#include "util/backoff.hpp"

#include <gtest/gtest.h>

namespace awaitdb::detail {
namespace {

using std::chrono::milliseconds;

TEST(backoff, doubles_from_the_first_pause_up_to_the_cap) {
  EXPECT_EQ(backoff_pause(milliseconds(20), milliseconds(500), 0), milliseconds(0));
  EXPECT_EQ(backoff_pause(milliseconds(20), milliseconds(500), 1), milliseconds(20));
  EXPECT_EQ(backoff_pause(milliseconds(20), milliseconds(500), 2), milliseconds(40));
  EXPECT_EQ(backoff_pause(milliseconds(20), milliseconds(500), 5), milliseconds(320));
  EXPECT_EQ(backoff_pause(milliseconds(20), milliseconds(500), 6), milliseconds(500));
  // Many failures neither overflow nor pass the cap.
  EXPECT_EQ(backoff_pause(milliseconds(20), milliseconds(500), 4'000'000'000u), milliseconds(500));
}

TEST(backoff, a_first_pause_of_zero_never_pauses_and_the_cap_bounds_the_first) {
  EXPECT_EQ(backoff_pause(milliseconds(0), milliseconds(500), 7), milliseconds(0));
  EXPECT_EQ(backoff_pause(milliseconds(800), milliseconds(500), 1), milliseconds(500));
}

}  // namespace
}  // namespace awaitdb::detail
