// The SQLite statement cache on an in-memory database: placeholders mapped to $N, SQL text
// refused as PostgreSQL refuses it, and least-recently-used eviction.
#include "sqlite/sqlite_statement_cache.hpp"

#include "sqlite/memory_sqlite.hpp"
#include <awaitdb/error.hpp>

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <memory>
#include <string>

namespace awaitdb::detail {
namespace {

class sqlite_statement_cache_test : public testing::Test {
 protected:
  void SetUp() override {
    db_ = test::open_memory_sqlite();
    ASSERT_NE(db_, nullptr);
  }
  std::string sqlstate_of(sqlite_statement_cache& cache, const std::string& sql) {
    try {
      cache.get(db_.get(), sql);
    } catch (const error& e) {
      return std::string(e.sqlstate());
    }
    return "no error";
  }
  test::sqlite_handle db_;
};

TEST_F(sqlite_statement_cache_test, placeholders_map_to_their_numbers) {
  sqlite_statement_cache cache(4);
  const sqlite_prepared& p = cache.get(db_.get(), "SELECT $2, $1, $2, $01");
  // SQLite numbers parameters by first appearance: $2 is its first, $1 its second; "$01" is a
  // parameter of its own that PostgreSQL reads as $1.
  ASSERT_EQ(p.number_of.size(), 3u);
  EXPECT_EQ(p.number_of[0], 2u);
  EXPECT_EQ(p.number_of[1], 1u);
  EXPECT_EQ(p.number_of[2], 1u);
  EXPECT_EQ(p.placeholder_count, 2u);
}

TEST_F(sqlite_statement_cache_test, refuses_what_postgresql_refuses) {
  sqlite_statement_cache cache(4);
  EXPECT_EQ(sqlstate_of(cache, "SELECT $0"), "42P02");
  EXPECT_EQ(sqlstate_of(cache, "SELECT ?"), "42601");
  EXPECT_EQ(sqlstate_of(cache, "SELECT 1; SELECT 2"), "42601");
  EXPECT_EQ(sqlstate_of(cache, "SELECT 1; garbage"), "42601");
  EXPECT_EQ(sqlstate_of(cache, "   "), "42601");
  EXPECT_EQ(sqlstate_of(cache, std::string("SELECT 1\0; DROP TABLE t", 24)), "42601");
  EXPECT_EQ(sqlstate_of(cache, "SELECT 1; -- a comment\n;"), "no error");
}

TEST_F(sqlite_statement_cache_test, keeps_the_most_recently_used) {
  sqlite_statement_cache cache(2);
  sqlite3_stmt* first = cache.get(db_.get(), "SELECT 1").stmt;
  cache.get(db_.get(), "SELECT 2");
  EXPECT_EQ(cache.get(db_.get(), "SELECT 1").stmt, first);  // a hit, now the most recent
  cache.get(db_.get(), "SELECT 3");                         // evicts SELECT 2
  EXPECT_EQ(cache.get(db_.get(), "SELECT 1").stmt, first);
  // SELECT 2 was finalized: one prepared anew (SQLite may reuse the address; count instead).
  int live = 0;
  for (sqlite3_stmt* s = sqlite3_next_stmt(db_.get(), nullptr); s;
       s = sqlite3_next_stmt(db_.get(), s))
    ++live;
  EXPECT_EQ(live, 2);
  cache.clear();
  EXPECT_EQ(sqlite3_next_stmt(db_.get(), nullptr), nullptr);
}

}  // namespace
}  // namespace awaitdb::detail
