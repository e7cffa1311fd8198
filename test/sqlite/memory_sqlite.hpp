// A raw in-memory SQLite database for the unit tests of the engine's parts (statement cache,
// program analysis), closed with its handle.
#ifndef AWAITDB_TEST_SQLITE_MEMORY_SQLITE_HPP
#define AWAITDB_TEST_SQLITE_MEMORY_SQLITE_HPP

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <memory>

namespace awaitdb::test {

struct close_sqlite {
  void operator()(sqlite3* db) const noexcept { sqlite3_close(db); }
};
using sqlite_handle = std::unique_ptr<sqlite3, close_sqlite>;

/// Opens ":memory:"; fails the test (and returns null) when SQLite cannot.
inline sqlite_handle open_memory_sqlite() {
  sqlite3* raw = nullptr;
  const int rc = sqlite3_open(":memory:", &raw);
  sqlite_handle db(raw);
  EXPECT_EQ(rc, SQLITE_OK);
  if (rc != SQLITE_OK) db.reset();
  return db;
}

}  // namespace awaitdb::test

#endif  // AWAITDB_TEST_SQLITE_MEMORY_SQLITE_HPP
