#include "sqlite/sqlite_errors.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>

namespace awaitdb::detail {
namespace {

TEST(sqlite_errors, constraints_map_to_postgres_codes) {
  EXPECT_EQ(sqlite_sqlstate(SQLITE_CONSTRAINT_UNIQUE, ""), "23505");
  EXPECT_EQ(sqlite_sqlstate(SQLITE_CONSTRAINT_PRIMARYKEY, ""), "23505");
  EXPECT_EQ(sqlite_sqlstate(SQLITE_CONSTRAINT_NOTNULL, ""), "23502");
  EXPECT_EQ(sqlite_sqlstate(SQLITE_CONSTRAINT_FOREIGNKEY, ""), "23503");
  EXPECT_EQ(sqlite_sqlstate(SQLITE_CONSTRAINT_CHECK, ""), "23514");
}

TEST(sqlite_errors, messages_of_generic_errors) {
  EXPECT_EQ(sqlite_sqlstate(SQLITE_ERROR, "near \"SELEC\": syntax error"), "42601");
  EXPECT_EQ(sqlite_sqlstate(SQLITE_ERROR, "incomplete input"), "42601");
  EXPECT_EQ(sqlite_sqlstate(SQLITE_ERROR, "no such table: t"), "42P01");
  EXPECT_EQ(sqlite_sqlstate(SQLITE_ERROR, "no such column: x"), "42703");
  EXPECT_EQ(sqlite_sqlstate(SQLITE_ERROR, "table t already exists"), "42P07");
  EXPECT_EQ(sqlite_sqlstate(SQLITE_ERROR, "no such function: f"), "42883");
  EXPECT_EQ(sqlite_sqlstate(SQLITE_ERROR, "wrong number of arguments to function f()"), "42883");
  EXPECT_EQ(sqlite_sqlstate(SQLITE_ERROR, "cannot VACUUM from within a transaction"), "25001");
}

TEST(sqlite_errors, other_classes) {
  EXPECT_EQ(sqlite_sqlstate(SQLITE_CANTOPEN, "unable to open database file").substr(0, 2), "08");
  EXPECT_EQ(sqlite_sqlstate(SQLITE_READONLY, ""), "25006");
  EXPECT_EQ(sqlite_sqlstate(SQLITE_BUSY, ""), "55P03");
  // A transaction that read, then wrote after another connection committed.
  EXPECT_EQ(sqlite_sqlstate(SQLITE_BUSY_SNAPSHOT, ""), "40001");
  EXPECT_EQ(sqlite_sqlstate(SQLITE_INTERRUPT, ""), "57014");
}

}  // namespace
}  // namespace awaitdb::detail
