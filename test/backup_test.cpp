// database::backup_to: SQLite's online backup, step by step on the caller's thread.
#include "support.hpp"
#include <awaitdb/timeout.hpp>

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <cstdlib>
#include <fstream>
#include <sstream>

namespace awaitdb::test {
namespace {

using namespace boost::asio::experimental::awaitable_operators;

bool file_exists(const std::string& path) {
  return std::ifstream(path).good();
}

std::string file_text(const std::string& path) {
  std::ostringstream out;
  out << std::ifstream(path).rdbuf();
  return out.str();
}

template <class T>
asio::awaitable<T> scalar(database& db, std::string sql) {
  row r = co_await db.query_one(sql);
  co_return r.get<T>(0);
}

// A database of `rows` rows of 1 KiB (three to a 4 KiB page).
asio::awaitable<void> fill(database& db, int rows) {
  co_await db.execute("CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, body TEXT)");
  co_await db.transaction([&]() -> asio::awaitable<void> {
    for (int i = 0; i < rows; ++i)
      co_await db.execute("INSERT INTO items (body) VALUES (printf('%.*c', 1024, 'x'))");
  });
}

struct backup_files {
  std::string source = temp_sqlite_path(), copy = temp_sqlite_path();
  ~backup_files() {
    remove_sqlite_file(source);
    remove_sqlite_file(copy);
    remove_sqlite_file(copy + ".partial");
  }
};

// While the copy runs (a few pages a step), another task writes and a ticker on the same thread
// keeps its pace; the copy is a sound database holding every row committed before it ended.
TEST(backup, a_file_database_is_copied_while_it_is_written_and_the_loop_stays_free) {
  backup_files files;
  run([&]() -> asio::awaitable<void> {
    database db = co_await open("sqlite:" + files.source);
    // About 6000 pages, 24 MiB; AWAITDB_TEST_BACKUP_ROWS sets another size (150000: 200 MB).
    const char* rows = std::getenv("AWAITDB_TEST_BACKUP_ROWS");
    co_await fill(db, rows ? std::atoi(rows) : 18000);
    const auto ex = co_await asio::this_coro::executor;
    bool copying = true;
    std::chrono::steady_clock::duration longest_gap{};
    int ticks = 0, written = 0;
    auto ticker = [&]() -> asio::awaitable<void> {
      asio::steady_timer t(ex);
      auto last = std::chrono::steady_clock::now();
      while (copying) {
        t.expires_after(2ms);
        co_await t.async_wait(asio::use_awaitable);
        const auto now = std::chrono::steady_clock::now();
        longest_gap = std::max(longest_gap, now - last);
        last = now;
        ++ticks;
      }
    };
    auto writer = [&]() -> asio::awaitable<void> {
      asio::steady_timer t(ex);
      while (copying) {
        co_await db.execute("INSERT INTO items (body) VALUES ('written during the backup')");
        ++written;
        t.expires_after(1ms);
        co_await t.async_wait(asio::use_awaitable);
      }
    };
    std::vector<backup_progress> seen;
    backup_options options;
    options.pages_per_step = 64;
    options.on_progress = [&](const backup_progress& p) { seen.push_back(p); };
    auto copy = [&]() -> asio::awaitable<void> {
      co_await db.backup_to(files.copy, options);
      copying = false;
    };
    co_await (copy() && ticker() && writer());
    CO_ASSERT(!seen.empty());
    EXPECT_GT(seen.size(), 20u) << "copied in steps";
    EXPECT_EQ(seen.back().pages_done, seen.back().pages_total);
    EXPECT_GT(seen.back().pages_total, 5000u);
    EXPECT_GT(written, 0);
    std::printf("[ backup ] %zu steps, %d rows written meanwhile, longest ticker gap %lld ms\n",
                seen.size(), written,
                static_cast<long long>(
                    std::chrono::duration_cast<std::chrono::milliseconds>(longest_gap).count()));
    EXPECT_LT(longest_gap, 200ms) << "the loop stalled during the backup";
    EXPECT_FALSE(file_exists(files.copy + ".partial"));
    const auto source_rows = co_await scalar<std::int64_t>(db, "SELECT count(*) FROM items");
    co_await db.close();

    database copy_db = co_await open("sqlite:" + files.copy);
    EXPECT_EQ(co_await scalar<std::string>(copy_db, "PRAGMA integrity_check"), "ok");
    const auto copied = co_await scalar<std::int64_t>(copy_db, "SELECT count(*) FROM items");
    EXPECT_LE(copied, source_rows);
    EXPECT_GT(copied, 18000) << "writes made during the copy are in it";
    co_await copy_db.close();
  });
}

TEST(backup, a_memory_database_is_copied_to_a_file) {
  backup_files files;
  run([&]() -> asio::awaitable<void> {
    database db = co_await open("sqlite::memory:");
    co_await fill(db, 100);
    co_await db.backup_to(files.copy);
    co_await db.close();
    database copy_db = co_await open("sqlite:" + files.copy);
    EXPECT_EQ(co_await scalar<std::int64_t>(copy_db, "SELECT count(*) FROM items"), 100);
    co_await copy_db.close();
  });
}

// A transaction of another task holds the writer: the copy waits for its end, and has its rows.
TEST(backup, a_transaction_under_way_is_waited_for_and_its_rows_are_copied) {
  backup_files files;
  run([&]() -> asio::awaitable<void> {
    database db = co_await open("sqlite:" + files.source);
    co_await fill(db, 2000);
    const auto ex = co_await asio::this_coro::executor;
    auto tx = [&]() -> asio::awaitable<void> {
      co_await db.transaction([&]() -> asio::awaitable<void> {
        co_await db.execute("INSERT INTO items (body) VALUES ('committed while copying')");
        asio::steady_timer t(ex, 50ms);
        co_await t.async_wait(asio::use_awaitable);
      });
    };
    auto copy = [&]() -> asio::awaitable<void> {
      asio::steady_timer t(ex, 10ms);  // the transaction begins first
      co_await t.async_wait(asio::use_awaitable);
      backup_options options;
      options.pages_per_step = 16;
      co_await db.backup_to(files.copy, options);
    };
    co_await (tx() && copy());
    co_await db.close();
    database copy_db = co_await open("sqlite:" + files.copy);
    EXPECT_EQ(co_await scalar<std::int64_t>(
                  copy_db, "SELECT count(*) FROM items WHERE body = 'committed while copying'"),
              1);
    co_await copy_db.close();
  });
}

// Cancelled, or past the task's deadline: nothing at the path changes, and no partial file
// remains.
TEST(backup, a_cancelled_backup_leaves_no_partial_file_and_the_old_copy_in_place) {
  backup_files files;
  { std::ofstream(files.copy) << "the previous copy"; }
  run([&]() -> asio::awaitable<void> {
    database db = co_await open("sqlite:" + files.source);
    co_await fill(db, 4000);
    const auto ex = co_await asio::this_coro::executor;
    backup_options slow;
    slow.pages_per_step = 1;
    asio::steady_timer t(ex, 20ms);
    auto outcome = co_await (db.backup_to(files.copy, slow) || t.async_wait(asio::use_awaitable));
    EXPECT_EQ(outcome.index(), 1u) << "the backup should still have been running";
    EXPECT_FALSE(file_exists(files.copy + ".partial"));
    EXPECT_EQ(file_text(files.copy), "the previous copy");

    const std::string message = co_await expect_sqlstate("57014", [&]() -> asio::awaitable<void> {
      co_await with_timeout(20ms, db.backup_to(files.copy, slow));
    });
    EXPECT_FALSE(file_exists(files.copy + ".partial"));
    EXPECT_EQ(file_text(files.copy), "the previous copy");
    co_await db.close();
  });
}

TEST(backup, postgresql_refuses_with_0a000) {
  const auto url = postgres_url();
  ASSERT_TRUE(url) << "AWAITDB_TEST_POSTGRES_URL is not set: run the tests with scripts/test";
  run([&]() -> asio::awaitable<void> {
    database db = co_await open(*url);
    const std::string message = co_await expect_sqlstate(
        "0A000", [&]() -> asio::awaitable<void> { co_await db.backup_to("/tmp/unused.db"); });
    EXPECT_NE(message.find("pg_dump"), std::string::npos) << message;
    co_await db.close();
  });
}

}  // namespace
}  // namespace awaitdb::test
