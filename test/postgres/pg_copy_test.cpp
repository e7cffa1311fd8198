// COPY in and out: a million rows each way, a malformed row, a transaction, cancellation, and
// what is not a COPY.
#include "postgres/pg_support.hpp"
#include <awaitdb/timeout.hpp>

namespace awaitdb::test {
namespace {

using std::chrono::milliseconds;

std::string csv_row(std::int64_t i) {
  return std::to_string(i) + ",name " + std::to_string(i) + "\n";
}

TEST_F(postgres, a_million_rows_copy_in_and_out_unchanged) {
  constexpr std::int64_t rows = 1'000'000;
  long long in_ms = 0, out_ms = 0, insert_ms = 0;
  constexpr int inserts = 20'000;
  run(
      [&]() -> asio::awaitable<void> {
        database db = co_await open(url_);
        co_await db.execute("DROP TABLE IF EXISTS copied");
        co_await db.execute("CREATE TABLE copied (id bigint, name text)");
        auto start = clock::now();
        copy_writer w = co_await db.copy_in("COPY copied FROM STDIN (FORMAT csv)");
        std::string chunk;
        for (std::int64_t i = 1; i <= rows; ++i) {
          chunk += csv_row(i);
          if (chunk.size() > 64 * 1024) {
            co_await w.write(chunk);
            chunk.clear();
          }
        }
        co_await w.write(chunk);
        EXPECT_EQ(co_await w.finish(), static_cast<std::uint64_t>(rows));
        in_ms = std::chrono::duration_cast<milliseconds>(clock::now() - start).count();

        start = clock::now();
        copy_reader r =
            co_await db.copy_out("COPY (SELECT * FROM copied ORDER BY id) TO STDOUT (FORMAT csv)");
        std::int64_t n = 0;
        while (std::optional<std::string> line = co_await r.next()) {
          ++n;
          if (*line != csv_row(n)) {
            ADD_FAILURE() << "row " << n << " came back as " << *line;
            co_return;
          }
        }
        out_ms = std::chrono::duration_cast<milliseconds>(clock::now() - start).count();
        EXPECT_EQ(n, rows);
        EXPECT_FALSE(co_await r.next());

        // The same rows by INSERT, one statement each (pipelined from one task, awaited one by
        // one), for comparison.
        co_await db.execute("TRUNCATE copied");
        start = clock::now();
        for (int i = 1; i <= inserts; ++i)
          co_await db.execute("INSERT INTO copied VALUES ($1, $2)", std::int64_t{i},
                              "name " + std::to_string(i));
        insert_ms = std::chrono::duration_cast<milliseconds>(clock::now() - start).count();
        co_await db.execute("DROP TABLE copied");
        co_await db.close();
      },
      300s);
  std::printf(
      "[ copy    ] in: %lld rows in %lld ms (%.0f rows/s); out: %lld ms (%.0f rows/s); INSERT one "
      "by one: %.0f rows/s\n",
      static_cast<long long>(rows), in_ms, rows * 1000.0 / std::max(1LL, in_ms), out_ms,
      rows * 1000.0 / std::max(1LL, out_ms), inserts * 1000.0 / std::max(1LL, insert_ms));
}

TEST_F(postgres, a_malformed_row_fails_with_the_servers_sqlstate_and_the_connection_goes_on) {
  run([&]() -> asio::awaitable<void> {
    database db = co_await open(url("pool_max_size=1"));
    co_await db.execute("DROP TABLE IF EXISTS copied_bad");
    co_await db.execute("CREATE TABLE copied_bad (id int, name text)");
    co_await expect_sqlstate("22P02", [&]() -> asio::awaitable<void> {
      copy_writer w = co_await db.copy_in("COPY copied_bad FROM STDIN (FORMAT csv)");
      co_await w.write("1,one\n");
      co_await w.write("two,2\n");
      co_await w.write("3,three\n");
      co_await w.finish();
    });
    // Nothing was copied, and the one connection serves statements and COPYs again.
    EXPECT_EQ(co_await db.query_scalar<std::int64_t>("SELECT count(*) FROM copied_bad"), 0);
    copy_writer w = co_await db.copy_in("COPY copied_bad FROM STDIN");
    co_await w.write("1\tone\n2\ttwo\n");
    EXPECT_EQ(co_await w.finish(), 2u);
    EXPECT_EQ(co_await db.query_scalar<std::int64_t>("SELECT count(*) FROM copied_bad"), 2);
    // Not a COPY, or a COPY the other way, or a failing one: refused, and nothing breaks.
    co_await expect_sqlstate("0A000",
                             [&]() -> asio::awaitable<void> { co_await db.copy_in("SELECT 1"); });
    co_await expect_sqlstate("0A000", [&]() -> asio::awaitable<void> {
      co_await db.copy_out("COPY copied_bad FROM STDIN");
    });
    co_await expect_sqlstate("42P01", [&]() -> asio::awaitable<void> {
      co_await db.copy_out("COPY no_such_table TO STDOUT");
    });
    EXPECT_EQ(co_await db.query_scalar<std::int64_t>("SELECT count(*) FROM copied_bad"), 2);
    // A writer dropped before `finish`: its connection is closed, and what it sent is gone.
    {
      copy_writer dropped = co_await db.copy_in("COPY copied_bad FROM STDIN");
      co_await dropped.write("7\tseven\n");
    }
    EXPECT_EQ(co_await db.query_scalar<std::int64_t>("SELECT count(*) FROM copied_bad"), 2);
    co_await db.execute("DROP TABLE copied_bad");
    co_await db.close();
  });
}

TEST_F(postgres, a_copy_inside_a_transaction_commits_or_rolls_back_with_it) {
  run([&]() -> asio::awaitable<void> {
    database db = co_await open(url_);
    co_await db.execute("DROP TABLE IF EXISTS copied_tx");
    co_await db.execute("CREATE TABLE copied_tx (id int)");
    co_await db.transaction([&]() -> asio::awaitable<void> {
      copy_writer w = co_await db.copy_in("COPY copied_tx FROM STDIN");
      co_await w.write("1\n2\n3\n");
      EXPECT_EQ(co_await w.finish(), 3u);
      EXPECT_EQ(co_await db.query_scalar<std::int64_t>("SELECT count(*) FROM copied_tx"), 3);
    });
    try {
      co_await db.transaction([&]() -> asio::awaitable<void> {
        copy_writer w = co_await db.copy_in("COPY copied_tx FROM STDIN");
        co_await w.write("4\n");
        co_await w.finish();
        throw std::runtime_error("undo");
      });
    } catch (const std::runtime_error&) {
    }
    EXPECT_EQ(co_await db.query_scalar<std::int64_t>("SELECT count(*) FROM copied_tx"), 3);
    co_await db.execute("DROP TABLE copied_tx");
    co_await db.close();
  });
}

TEST_F(postgres, a_cancelled_copy_stops_on_the_server_and_the_pool_serves_on) {
  run([&]() -> asio::awaitable<void> {
    database db = co_await open(url("pool_max_size=1"));
    database observer = co_await open(url_);
    // (Rows of 10 kB: the server sends COPY data when its 8 kB buffer fills.)
    copy_reader r = co_await db.copy_out(
        "COPY (SELECT repeat('x', 10000) || g, pg_sleep(0.3) FROM generate_series(1, 1000) g) "
        "TO STDOUT");
    CO_ASSERT(co_await r.next());
    co_await expect_sqlstate("57014", [&]() -> asio::awaitable<void> {
      for (;;)
        co_await with_timeout(milliseconds(100), r.next());
    });
    EXPECT_LT(co_await time_until_none_running(observer, "COPY (SELECT repeat"),
              milliseconds(1000));
    EXPECT_EQ(co_await db.query_scalar<std::int32_t>("SELECT 5"), 5);
    co_await observer.close();
    co_await db.close();
  });
}

TEST(sqlite_copy, is_refused_with_a_clear_error) {
  run([&]() -> asio::awaitable<void> {
    database db = co_await open("sqlite::memory:");
    co_await expect_sqlstate(
        "0A000", [&]() -> asio::awaitable<void> { co_await db.copy_in("COPY t FROM STDIN"); });
    co_await expect_sqlstate(
        "0A000", [&]() -> asio::awaitable<void> { co_await db.copy_out("COPY t TO STDOUT"); });
  });
}

}  // namespace
}  // namespace awaitdb::test
