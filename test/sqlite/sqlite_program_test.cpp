// Which programs return at most one row: SQLite's own programs for queries of every shape, and
// hand-made ones for the rules (a second ResultRow, a jump back, a jump through a register).
#include "sqlite/sqlite_program.hpp"

#include "sqlite/memory_sqlite.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <memory>
#include <string>
#include <vector>

namespace awaitdb::detail {
namespace {

class sqlite_program_test : public testing::Test {
 protected:
  void SetUp() override {
    db_ = test::open_memory_sqlite();
    ASSERT_NE(db_, nullptr);
    ASSERT_EQ(sqlite3_exec(db_.get(),
                           "CREATE TABLE kv (id INTEGER PRIMARY KEY, v INTEGER, email TEXT UNIQUE);"
                           "CREATE INDEX kv_v ON kv (v);"
                           "CREATE TABLE pair (a INTEGER, b INTEGER, PRIMARY KEY (a, b));",
                           nullptr, nullptr, nullptr),
              SQLITE_OK);
  }

  // What the analysis says of the statement's program; fails the test when the program cannot
  // be listed.
  bool one_row(const std::string& sql) {
    sqlite3_stmt* stmt = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db_.get(), sql.c_str(), -1, &stmt, nullptr), SQLITE_OK) << sql;
    const std::vector<vdbe_instruction> program = program_of(db_.get(), stmt);
    sqlite3_finalize(stmt);
    EXPECT_FALSE(program.empty()) << sql;
    return returns_at_most_one_row(program);
  }

  test::sqlite_handle db_;
};

TEST_F(sqlite_program_test, lookups_by_a_unique_key_and_plain_aggregates_return_one_row) {
  EXPECT_TRUE(one_row("SELECT v FROM kv WHERE id = $1"));
  EXPECT_TRUE(one_row("SELECT id, v FROM kv WHERE email = $1"));
  EXPECT_TRUE(one_row("SELECT * FROM pair WHERE a = $1 AND b = $2"));
  EXPECT_TRUE(one_row("SELECT count(*) FROM kv"));
  EXPECT_TRUE(one_row("SELECT max(id), sum(v) FROM kv WHERE v > $1"));
  EXPECT_TRUE(one_row("SELECT 1"));
  EXPECT_TRUE(one_row("SELECT $1 + 1, upper($2)"));
}

TEST_F(sqlite_program_test, anything_that_may_return_more_rows_is_stepped_to_the_end) {
  const char* many[] = {
      "SELECT v FROM kv",
      "SELECT id FROM kv WHERE v = $1",   // an index, but not unique
      "SELECT * FROM pair WHERE a = $1",  // part of a unique key
      "SELECT v FROM kv WHERE id IN ($1, $2)",
      "SELECT v FROM kv WHERE id = $1 OR id = $2",
      "SELECT v FROM kv WHERE id = $1 UNION ALL SELECT v FROM kv WHERE id = $2",
      "SELECT 1 UNION SELECT 2",
      "VALUES (1), (2)",
      "SELECT v, count(*) FROM kv GROUP BY v",
      "SELECT a.v FROM kv a JOIN kv b ON a.v = b.v WHERE a.id = $1",
      "SELECT v FROM kv ORDER BY v LIMIT 2",
      "SELECT id, row_number() OVER (ORDER BY v) FROM kv",
      ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 5) "
       "SELECT x FROM c"),
      "SELECT * FROM (SELECT v FROM kv ORDER BY v DESC)",
      "SELECT value FROM json_each('[1, 2, 3]')",
      "SELECT name FROM pragma_table_info('kv')",
      "PRAGMA table_info(kv)",
  };
  for (const char* sql : many)
    EXPECT_FALSE(one_row(sql)) << sql;
}

vdbe_instruction op(const char* opcode, long long p1 = 0, long long p2 = 0, long long p3 = 0) {
  vdbe_instruction i;
  i.opcode = opcode;
  i.p1 = p1;
  i.p2 = p2;
  i.p3 = p3;
  return i;
}

TEST(sqlite_program, the_rules_on_hand_made_programs) {
  // Init; ...; ResultRow; Halt: one row.
  std::vector<vdbe_instruction> program{op("Init", 0, 4), op("Integer", 1, 1),
                                        op("ResultRow", 1, 1), op("Halt"), op("Goto", 0, 1)};
  EXPECT_TRUE(returns_at_most_one_row(program));
  // A jump back over the ResultRow, through any operand.
  program[3] = op("Next", 0, 1);
  EXPECT_FALSE(returns_at_most_one_row(program));
  program[3] = op("Jump", 9, 9, 1);
  EXPECT_FALSE(returns_at_most_one_row(program));
  // A jump through a register can go anywhere.
  program[3] = op("Return", 5);
  EXPECT_FALSE(returns_at_most_one_row(program));
  program[3] = op("Yield", 5);
  EXPECT_FALSE(returns_at_most_one_row(program));
  // Falling through into a second ResultRow, or a second one anywhere.
  program[3] = op("ResultRow", 1, 1);
  EXPECT_FALSE(returns_at_most_one_row(program));
  // No ResultRow at all: nothing to say, the run is stepped to the end.
  EXPECT_FALSE(returns_at_most_one_row(std::vector<vdbe_instruction>{op("Init"), op("Halt")}));
  EXPECT_FALSE(returns_at_most_one_row(std::vector<vdbe_instruction>{}));
}

}  // namespace
}  // namespace awaitdb::detail
