// Checks of parameter values and SQLSTATE names: no database.
#include "param_check.hpp"

#include "sqlstate_names.hpp"
#include <awaitdb/error.hpp>

#include <gtest/gtest.h>

namespace awaitdb::detail {
namespace {

TEST(param_check, utf8_validation) {
  EXPECT_TRUE(is_valid_utf8(""));
  EXPECT_TRUE(is_valid_utf8("plain ascii, long enough to take the eight-byte path"));
  EXPECT_TRUE(is_valid_utf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));  // é € 😀
  EXPECT_FALSE(is_valid_utf8("\xff"));
  EXPECT_FALSE(is_valid_utf8("\xc3"));                  // truncated
  EXPECT_FALSE(is_valid_utf8("\xc0\xaf"));              // overlong '/'
  EXPECT_FALSE(is_valid_utf8("\xe0\x80\xaf"));          // overlong
  EXPECT_FALSE(is_valid_utf8("\xed\xa0\x80"));          // a surrogate
  EXPECT_FALSE(is_valid_utf8("\xf4\x90\x80\x80"));      // above U+10FFFF
  EXPECT_FALSE(is_valid_utf8("abcdefgh\x80ijklmnop"));  // a stray continuation byte
}

TEST(param_check, text_parameters_name_the_parameter_never_the_value) {
  EXPECT_NO_THROW(check_text_parameter("fine", 1));
  try {
    check_text_parameter(std::string_view("se\0cret", 7), 3);
    ADD_FAILURE() << "no error";
  } catch (const error& e) {
    EXPECT_EQ(e.sqlstate(), "22021");
    EXPECT_NE(std::string(e.what()).find("$3"), std::string::npos);
    EXPECT_EQ(std::string(e.what()).find("cret"), std::string::npos);
  }
  EXPECT_THROW(check_text_parameter("bad \xff", 1), error);
}

TEST(sqlstate_names, codes_and_classes) {
  EXPECT_EQ(sqlstate_condition("22012"), "division by zero");
  EXPECT_EQ(sqlstate_condition("23505"), "unique violation");
  EXPECT_EQ(sqlstate_condition("22ZZZ"), "data exception");  // unknown code: its class
  EXPECT_EQ(sqlstate_condition("ZZ000"), "database error");
}

}  // namespace
}  // namespace awaitdb::detail
