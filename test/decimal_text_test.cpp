// Exact decimals' text, both ways: no database.
#include <awaitdb/decimal.hpp>
#include <awaitdb/error.hpp>

#include <gtest/gtest.h>

namespace awaitdb::detail {
namespace {

std::string state_of(std::string_view text, unsigned digits) {
  try {
    check_decimal_text(text, digits);
  } catch (const error& e) {
    return e.sqlstate();
  }
  return "ok";
}

TEST(decimal_text, numeric_text_is_checked_and_its_digits_counted) {
  EXPECT_EQ(check_decimal_text("NaN", 10), decimal_class::nan);
  EXPECT_EQ(check_decimal_text("Infinity", 10), decimal_class::positive_infinity);
  EXPECT_EQ(check_decimal_text("-Infinity", 10), decimal_class::negative_infinity);
  EXPECT_EQ(check_decimal_text("-12.3400", 4), decimal_class::finite);  // trailing zeros: free
  EXPECT_EQ(check_decimal_text("0.000001", 1), decimal_class::finite);  // leading zeros too
  EXPECT_EQ(check_decimal_text("1000", 1), decimal_class::finite);
  EXPECT_EQ(check_decimal_text("1.5e-7", 2), decimal_class::finite);
  EXPECT_EQ(check_decimal_text(".5", 1), decimal_class::finite);
  EXPECT_EQ(state_of("12.345", 4), "22003");
  for (std::string_view bad : {"", "-", "1.2.3", "12abc", "1e", "1e+", "--1", "NaNa", "0x10", " 1"})
    EXPECT_EQ(state_of(bad, 40), "22P02") << bad;
}

TEST(decimal_text, numbers_are_written_as_plain_digits_without_trailing_zeros) {
  EXPECT_EQ(decimal_text_of("1.2345000000e+02"), "123.45");
  EXPECT_EQ(decimal_text_of("-1.5000e+00"), "-1.5");
  EXPECT_EQ(decimal_text_of("1.0000e-04"), "0.0001");
  EXPECT_EQ(decimal_text_of("1.2000e+05"), "120000");
  EXPECT_EQ(decimal_text_of("0.0000e+00"), "0");
  EXPECT_EQ(decimal_text_of("9.9999999999999999999999999999999999990e+25"),
            "99999999999999999999999999.99999999999");
  EXPECT_EQ(decimal_text_of("1.5e-2000"), "1.5e-2000");
}

TEST(decimal_text, a_decimal_round_trips_through_its_text) {
  using d38 = decimal<38>;
  using mapping = type_mapping<d38>;
  for (const char* text : {"123.45", "-0.0000000001", "99999999999999999999999999.9999999999",
                           "12345678901234567890123456789012345678", "0"}) {
    const d38 v = mapping::from_db(text);
    EXPECT_EQ(mapping::to_db(v), text);
  }
  EXPECT_TRUE(boost::multiprecision::isnan(mapping::from_db("NaN")));
  EXPECT_EQ(mapping::to_db(mapping::from_db("-Infinity")), "-Infinity");
  EXPECT_EQ(mapping::to_db(d38(1) / 3), "0.33333333333333333333333333333333333333");
  EXPECT_EQ(mapping::from_db("0.1") + mapping::from_db("0.2"), mapping::from_db("0.3"));
}

}  // namespace
}  // namespace awaitdb::detail
