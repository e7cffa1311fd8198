#include "placeholders.hpp"

#include <awaitdb/sql_literal.hpp>

#include <gtest/gtest.h>

#include <string_view>
#include <vector>

namespace awaitdb::detail {
namespace {

TEST(placeholders, highest_number_counts) {
  EXPECT_EQ(highest_placeholder("SELECT 1"), 0u);
  EXPECT_EQ(highest_placeholder("SELECT $1"), 1u);
  EXPECT_EQ(highest_placeholder("SELECT $2, $1, $2"), 2u);
  EXPECT_EQ(highest_placeholder("UPDATE t SET a=$10 WHERE b=$3"), 10u);
}

TEST(placeholders, ignores_literals_comments_and_identifiers) {
  EXPECT_EQ(highest_placeholder("SELECT '$5', $1"), 1u);
  EXPECT_EQ(highest_placeholder("SELECT 'it''s $7', $1"), 1u);
  EXPECT_EQ(highest_placeholder("SELECT E'\\'$7', $2"), 2u);
  EXPECT_EQ(highest_placeholder("SELECT \"col$9\", $1"), 1u);
  EXPECT_EQ(highest_placeholder("SELECT a$3 FROM t -- $8\n WHERE x = $1"), 1u);
  EXPECT_EQ(highest_placeholder("SELECT /* $4 /* $5 */ */ $2"), 2u);
  EXPECT_EQ(highest_placeholder("SELECT $$ $3 $$, $tag$ $4 $tag$, $1"), 1u);
}

TEST(placeholders, a_number_right_before_a_placeholder_does_not_hide_it) {
  // PostgreSQL reads `1$2` as the number 1 and the placeholder $2; `a$2` is one name.
  EXPECT_EQ(highest_placeholder("SELECT 1$2"), 2u);
  EXPECT_EQ(highest_placeholder("SELECT a$2"), 0u);
  EXPECT_EQ(highest_placeholder("SELECT x$e'\\'$3', $1"),
            3u);  // (the e ends the name x$e: no escapes)
}

TEST(placeholders, blank_and_nul_texts_are_found) {
  EXPECT_TRUE(scan_sql("").blank);
  EXPECT_TRUE(scan_sql(" ;\n-- nothing\n/* at /* all */ */ ;").blank);
  EXPECT_FALSE(scan_sql("-- x\nSELECT 1").blank);
  EXPECT_FALSE(scan_sql("'x'").blank);
  EXPECT_FALSE(scan_sql("$1").blank);
  EXPECT_TRUE(scan_sql(std::string_view("SELECT 1\0", 9)).has_nul);
  EXPECT_FALSE(scan_sql("SELECT 1").has_nul);
}

// The lexer the compile-time check of SQL literals runs: the same pieces in a constant
// evaluation as at run time.
constexpr std::size_t pieces(std::string_view sql, sql_piece::kind what) {
  std::size_t count = 0;
  lex_sql(sql, [&](const sql_piece& p) {
    if (p.what == what) ++count;
  });
  return count;
}
static_assert(pieces("SELECT '$1', \"$2\", $3 -- $4", sql_piece::kind::placeholder) == 1);
static_assert(pieces("SELECT $$ $1 $$, $q$ $2 $q$, $3", sql_piece::kind::dollar_quoted) == 2);
static_assert(pieces("/* a /* b */ c */ -- d", sql_piece::kind::comment) == 2);
static_assert(pieces("SELECT a$1 FROM t", sql_piece::kind::word) == 4);

TEST(placeholders, pieces_cover_the_text_in_order) {
  const std::string_view sql = "SELECT E'a\\'b', \"q\"\"x\", $12::int8 /* c */ $$ d $$ ; -- e";
  std::size_t at = 0;
  std::vector<sql_piece::kind> kinds;
  lex_sql(sql, [&](const sql_piece& p) {
    EXPECT_EQ(p.from, at);
    EXPECT_GT(p.to, p.from);
    at = p.to;
    if (p.what != sql_piece::kind::other) kinds.push_back(p.what);
    if (p.what == sql_piece::kind::placeholder) {
      EXPECT_EQ(p.number, 12u);
    }
  });
  EXPECT_EQ(at, sql.size());
  using k = sql_piece::kind;
  const std::vector<k> expected = {k::word, k::word,    k::quoted,        k::quoted, k::placeholder,
                                   k::word, k::comment, k::dollar_quoted, k::comment};
  EXPECT_EQ(kinds, expected);
}

TEST(placeholders, transaction_control_is_recognized) {
  EXPECT_TRUE(is_transaction_control("BEGIN"));
  EXPECT_TRUE(is_transaction_control("  begin isolation level serializable"));
  EXPECT_TRUE(is_transaction_control("-- note\n/* x */ Commit"));
  EXPECT_TRUE(is_transaction_control("START TRANSACTION"));
  EXPECT_TRUE(is_transaction_control("rollback to savepoint a"));
  EXPECT_TRUE(is_transaction_control("SAVEPOINT a"));
  EXPECT_TRUE(is_transaction_control("PREPARE TRANSACTION 'x'"));
  EXPECT_FALSE(is_transaction_control("PREPARE q AS SELECT 1"));
  EXPECT_FALSE(is_transaction_control("SELECT 'BEGIN'"));
  EXPECT_FALSE(is_transaction_control("BEGINNING"));
  EXPECT_FALSE(is_transaction_control("UPDATE t SET a = 1"));
  EXPECT_FALSE(is_transaction_control(""));
  // The first-letters shortcut, both cases.
  EXPECT_TRUE(is_transaction_control("start transaction"));
  EXPECT_TRUE(is_transaction_control("savepoint b"));
  EXPECT_TRUE(is_transaction_control("end"));
  EXPECT_TRUE(is_transaction_control("abort"));
  EXPECT_TRUE(is_transaction_control("release b"));
  EXPECT_FALSE(is_transaction_control("select 1"));
  EXPECT_FALSE(is_transaction_control("SET search_path = x"));
  EXPECT_FALSE(is_transaction_control("with x as (select 1) select * from x"));
  EXPECT_FALSE(is_transaction_control("Insert into t values (1)"));
}

TEST(placeholders, sqlite_names) {
  EXPECT_EQ(placeholder_number("$1"), 1u);
  EXPECT_EQ(placeholder_number("$42"), 42u);
  EXPECT_EQ(placeholder_number("$0"), 0u);
  EXPECT_EQ(placeholder_number(":name"), 0u);
  EXPECT_EQ(placeholder_number("$a"), 0u);
  EXPECT_EQ(placeholder_number("?"), 0u);
}

}  // namespace
}  // namespace awaitdb::detail
