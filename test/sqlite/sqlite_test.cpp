// What is particular to SQLite: inline completion, file options, read-only mode, the cache.
#include "support.hpp"

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace awaitdb::test {
namespace {

using namespace boost::asio::experimental::awaitable_operators;

class sqlite_file : public testing::Test {
 protected:
  void TearDown() override { remove_sqlite_file(path_); }
  std::string path_ = temp_sqlite_path();
};

TEST(sqlite, queries_complete_inline_without_suspending) {
  run([]() -> asio::awaitable<void> {
    database db = co_await open("sqlite::memory:");
    co_await db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)");
    auto posted_ran = std::make_shared<bool>(false);
    // On a single-threaded io_context, a posted handler runs only when this coroutine
    // suspends. It must not have run after all these statements.
    auto mark = [posted_ran] { *posted_ran = true; };  // (named: see wait_list.cpp on GCC 12)
    auto ex = co_await asio::this_coro::executor;
    asio::post(ex, std::move(mark));
    for (int i = 0; i < 100; ++i) {
      co_await db.execute("INSERT INTO t (v) VALUES ($1)", "x");
      result r = co_await db.query("SELECT count(*) FROM t WHERE v = $1", "x");
      EXPECT_EQ(r[0].get<std::int64_t>(0), i + 1);
    }
    EXPECT_FALSE(*posted_ran) << "an SQLite statement suspended the coroutine";
  });
}

TEST(sqlite, a_cached_statement_follows_schema_changes) {
  run([]() -> asio::awaitable<void> {
    database db = co_await open("sqlite::memory:");
    co_await db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, flag INTEGER)");
    co_await db.execute("INSERT INTO t (flag) VALUES (1)");
    // The statement and its column descriptions are cached; after the table changes, SQLite
    // re-prepares it and the result must describe the new columns.
    result before = co_await db.query("SELECT * FROM t");
    EXPECT_EQ(before.column_count(), 2u);
    EXPECT_EQ(before.column_name(1), "flag");
    co_await db.execute("ALTER TABLE t RENAME COLUMN flag TO active");
    co_await db.execute("ALTER TABLE t ADD COLUMN ok BOOLEAN NOT NULL DEFAULT 1");
    result after = co_await db.query("SELECT * FROM t");
    CO_ASSERT(after.column_count() == 3u);
    EXPECT_EQ(after.column_name(1), "active");
    EXPECT_EQ(after.column_name(2), "ok");
    EXPECT_TRUE(after[0].get<bool>("ok"));  // declared BOOLEAN: reads as a boolean
    EXPECT_EQ(after[0].get<std::int64_t>("active"), 1);
    // The first result still reads as it was.
    EXPECT_EQ(before.column_name(1), "flag");
  });
}

// A query whose program returns at most one row stops at that row; once the schema lets it
// return more (its unique index dropped), SQLite re-prepares it and every row comes back.
TEST_F(sqlite_file, a_lookup_that_returned_one_row_returns_all_after_a_schema_change) {
  run([this]() -> asio::awaitable<void> {
    database db = co_await open("sqlite:" + path_);
    co_await db.execute("CREATE TABLE u (id INTEGER PRIMARY KEY, email TEXT)");
    co_await db.execute("CREATE UNIQUE INDEX u_email ON u (email)");
    co_await db.execute("INSERT INTO u (email) VALUES ('a'), ('b')");
    const std::string lookup = "SELECT id FROM u WHERE email = $1";
    for (int i = 0; i < 3; ++i) {  // (learnt on the second run)
      result r = co_await db.query(lookup, "a");
      CO_ASSERT(r.size() == 1u);
      EXPECT_EQ(r[0].get<std::int64_t>(0), 1);
      EXPECT_EQ((co_await db.query(lookup, "c")).size(), 0u);
    }
    co_await db.transaction([&]() -> asio::awaitable<void> {  // the same on the writer
      for (int i = 0; i < 3; ++i)
        EXPECT_EQ((co_await db.query(lookup, "a")).size(), 1u);
    });
    co_await db.execute("DROP INDEX u_email");
    co_await db.execute("INSERT INTO u (email) VALUES ('a')");
    for (int i = 0; i < 3; ++i) {
      result r = co_await db.query(lookup, "a");
      CO_ASSERT(r.size() == 2u);
      EXPECT_EQ(r[0].get<std::int64_t>(0) + r[1].get<std::int64_t>(0), 1 + 3);
    }
    co_await db.transaction([&]() -> asio::awaitable<void> {
      for (int i = 0; i < 3; ++i)
        EXPECT_EQ((co_await db.query(lookup, "a")).size(), 2u);
    });
  });
}

TEST_F(sqlite_file, file_databases_use_wal_and_foreign_keys) {
  run([this]() -> asio::awaitable<void> {
    database db = co_await open("sqlite:" + path_);
    EXPECT_EQ((co_await db.query("PRAGMA journal_mode"))[0].get<std::string>(0), "wal");
    EXPECT_EQ((co_await db.query("PRAGMA foreign_keys"))[0].get<std::int64_t>(0), 1);
    // SQLite's own busy handler, which sleeps in the thread, is not used (busy_timeout is
    // awaitdb's: see sqlite_concurrency_test.cpp).
    EXPECT_EQ((co_await db.query("PRAGMA busy_timeout"))[0].get<std::int64_t>(0), 0);
  });
}

TEST_F(sqlite_file, a_journal_mode_that_cannot_change_yet_does_not_fail_the_open) {
  run([this]() -> asio::awaitable<void> {
    database db = co_await open("sqlite:" + path_);
    co_await db.execute("CREATE TABLE t (v INTEGER)");
    // Asked to leave WAL while another handle has the file open (SQLite answers busy): it
    // opens all the same, and works.
    database plain = co_await open("sqlite:" + path_ + "?foreign_keys=off&journal_mode=delete");
    EXPECT_EQ((co_await plain.query("PRAGMA foreign_keys"))[0].get<std::int64_t>(0), 0);
    co_await plain.execute("INSERT INTO t VALUES (1)");
    EXPECT_EQ((co_await db.query("SELECT count(*) FROM t"))[0].get<std::int64_t>(0), 1);
    co_await db.close();
    co_await plain.close();
    database alone = co_await open("sqlite:" + path_ + "?journal_mode=delete");
    EXPECT_EQ((co_await alone.query("PRAGMA journal_mode"))[0].get<std::string>(0), "delete");
  });
}

TEST_F(sqlite_file, read_only_mode) {
  run([this]() -> asio::awaitable<void> {
    // A missing file in read-only mode: a clear connection error naming the file.
    try {
      co_await open("sqlite:" + path_ + "?mode=ro");
      ADD_FAILURE() << "opened a missing file read-only";
    } catch (const error& e) {
      EXPECT_EQ(e.sqlstate().substr(0, 2), "08") << e.what();
      EXPECT_NE(std::string(e.what()).find(path_), std::string::npos) << e.what();
    }
    {
      database rw = co_await open("sqlite:" + path_);
      co_await rw.execute("CREATE TABLE t (v INTEGER)");
      co_await rw.execute("INSERT INTO t VALUES (1)");
      co_await rw.close();
    }
    database ro = co_await open("sqlite:" + path_ + "?mode=ro");
    EXPECT_EQ((co_await ro.query("SELECT v FROM t"))[0].get<std::int64_t>(0), 1);
    co_await expect_sqlstate("25006", [&] { return ro.execute("INSERT INTO t VALUES (2)"); });
    // mode=rw does not create a file.
    remove_sqlite_file(path_);
    co_await expect_sqlstate(
        "08001", [&]() -> asio::awaitable<void> { co_await open("sqlite:" + path_ + "?mode=rw"); });
  });
}

TEST(sqlite, statement_cache_is_bounded_and_correct) {
  run([]() -> asio::awaitable<void> {
    database db = co_await open("sqlite::memory:?statement_cache_size=2");
    for (int round = 0; round < 3; ++round)
      for (int k = 0; k < 10; ++k) {
        std::string sql = "SELECT $1 + " + std::to_string(k);
        EXPECT_EQ((co_await db.query(sql, 100))[0].get<std::int64_t>(0), 100 + k);
      }
    database uncached = co_await open("sqlite::memory:?statement_cache_size=0");
    for (int k = 0; k < 3; ++k)
      EXPECT_EQ((co_await uncached.query("SELECT $1", k))[0].get<std::int64_t>(0), k);
  });
}

TEST(sqlite, a_statement_waiting_for_a_transaction_can_be_cancelled) {
  run([]() -> asio::awaitable<void> {
    database db = co_await open("sqlite::memory:");
    co_await db.execute("CREATE TABLE t (v INTEGER)");
    auto ex = co_await asio::this_coro::executor;
    asio::steady_timer hold(ex, std::chrono::seconds(10));
    bool in_tx = false;
    asio::co_spawn(ex, db.transaction([&]() -> asio::awaitable<void> {
      in_tx = true;
      co_await hold.async_wait(asio::use_awaitable);
    }),
                   [](std::exception_ptr) {});
    asio::steady_timer tick(ex, std::chrono::milliseconds(5));
    while (!in_tx) {
      co_await tick.async_wait(asio::use_awaitable);
      tick.expires_after(std::chrono::milliseconds(5));
    }
    asio::steady_timer limit(ex, std::chrono::milliseconds(30));
    auto which = co_await (db.query("SELECT 1") || limit.async_wait(asio::use_awaitable));
    EXPECT_EQ(which.index(), 1u);  // the query waited for the transaction, then was cancelled
    EXPECT_EQ(db.stats().waiting, 0u);
    EXPECT_EQ(db.stats().in_use, 1u);
    hold.cancel();  // the transaction ends (its timer wait throws: rolled back)
    co_await db.execute("INSERT INTO t VALUES (1)");
    EXPECT_EQ(db.stats().in_use, 0u);
  });
}

// A file deleted or renamed while open: writes would go to a file nobody sees. They fail instead,
// as does everything after them.
TEST_F(sqlite_file, writes_to_a_deleted_or_renamed_file_fail) {
  for (bool rename : {false, true}) {
    SCOPED_TRACE(rename ? "renamed" : "deleted");
    run([&]() -> asio::awaitable<void> {
      database db = co_await open("sqlite:" + path_);
      co_await db.execute("CREATE TABLE t (v INTEGER)");
      co_await db.execute("INSERT INTO t VALUES (1)");
      if (rename)
        EXPECT_EQ(std::rename(path_.c_str(), (path_ + ".moved").c_str()), 0);
      else
        EXPECT_EQ(std::remove(path_.c_str()), 0);
      std::string m =
          co_await expect_sqlstate("08006", [&] { return db.execute("INSERT INTO t VALUES (2)"); });
      EXPECT_NE(m.find("deleted or replaced"), std::string::npos) << m;
      co_await expect_sqlstate(
          "08006", [&] { return db.transaction([&]() -> asio::awaitable<void> { co_return; }); });
      co_await expect_sqlstate("08006", [&] { return db.query("SELECT count(*) FROM t"); });
      co_await db.close();
    });
    remove_sqlite_file(path_);
    remove_sqlite_file(path_ + ".moved");
  }
  // A transaction that begins after the file went away fails at its start.
  run([&]() -> asio::awaitable<void> {
    database db = co_await open("sqlite:" + path_);
    co_await db.execute("CREATE TABLE t (v INTEGER)");
    EXPECT_EQ(std::remove(path_.c_str()), 0);
    co_await expect_sqlstate("08006", [&] {
      return db.transaction(
          [&]() -> asio::awaitable<void> { co_await db.execute("INSERT INTO t VALUES (1)"); });
    });
    co_await db.close();
  });
}

}  // namespace
}  // namespace awaitdb::test
