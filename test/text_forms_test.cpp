// The text forms of times, dates, durations and UUIDs: no database.
#include "text_forms.hpp"

#include <gtest/gtest.h>

namespace awaitdb::detail {
namespace {

constexpr std::int64_t second = 1'000'000;

TEST(text_forms, time_stamps) {
  EXPECT_EQ(format_timestamp(0, false), "1970-01-01 00:00:00.000000");
  EXPECT_EQ(format_timestamp(-1, true), "1969-12-31 23:59:59.999999+00");
  EXPECT_EQ(*parse_timestamp("1970-01-01 00:00:00"), 0);
  EXPECT_EQ(*parse_timestamp("1970-01-01T00:00:01.5Z"), second + second / 2);
  EXPECT_EQ(*parse_timestamp("1970-01-01 05:30:00+05:30"), 0);
  EXPECT_EQ(*parse_timestamp("1970-01-01 00:00:00-01"), 3600 * second);
  EXPECT_EQ(*parse_timestamp("1970-01-01 00:00:00.1234569"), 123456);  // cut, not rounded
  EXPECT_EQ(*parse_timestamp("1970-01-02"), 86400 * second);
  for (std::int64_t t : {std::int64_t(0), std::int64_t(-1), std::int64_t(1'700'000'000'123'456)})
    EXPECT_EQ(*parse_timestamp(format_timestamp(t, true)), t);
  EXPECT_FALSE(parse_timestamp("2024-02-30 00:00:00"));
  EXPECT_FALSE(parse_timestamp("2024-01-01 25:00:00"));
  EXPECT_FALSE(parse_timestamp("2024-01-01 00:00:00 junk"));
  EXPECT_FALSE(parse_timestamp("infinity"));
  EXPECT_EQ(format_timestamp(253402300800LL * second, false), "");  // year 10000
}

TEST(text_forms, dates_and_durations) {
  EXPECT_EQ(format_date(0), "1970-01-01");
  EXPECT_EQ(format_date(-1), "1969-12-31");
  EXPECT_EQ(*parse_date("2024-02-29"), 19782);
  EXPECT_FALSE(parse_date("2023-02-29"));
  EXPECT_EQ(format_duration(-(100 * 3600 * second + 1)), "-100:00:00.000001");
  std::int64_t micros = 0;
  EXPECT_EQ(parse_duration("-100:00:00.000001", micros), duration_parse::ok);
  EXPECT_EQ(micros, -(100 * 3600 * second + 1));
  EXPECT_EQ(parse_duration("23:59", micros), duration_parse::ok);
  EXPECT_EQ(micros, (23 * 60 + 59) * 60 * second);
  EXPECT_EQ(parse_duration("1 day 02:00:00", micros), duration_parse::has_days_or_months);
  EXPECT_EQ(parse_duration("3 mons", micros), duration_parse::has_days_or_months);
  EXPECT_EQ(parse_duration("soon", micros), duration_parse::malformed);
}

TEST(text_forms, uuids) {
  const std::array<std::uint8_t, 16> bytes{0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8,
                                           0xbb, 0x6d, 0x6b, 0xb9, 0xbd, 0x38, 0x0a, 0x11};
  EXPECT_EQ(format_uuid(bytes), "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
  EXPECT_EQ(*parse_uuid("A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"), bytes);
  EXPECT_EQ(*parse_uuid("{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}"), bytes);
  EXPECT_FALSE(parse_uuid("a0eebc999c0b4ef8bb6d6bb9bd380a11"));
  EXPECT_FALSE(parse_uuid("g0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"));
}

}  // namespace
}  // namespace awaitdb::detail
