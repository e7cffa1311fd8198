#include "placeholders.hpp"

#include <gtest/gtest.h>

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
