// Row streams (db.stream) on every engine: order, end, failures, abandoning half-way, and
// transactions.
#include "support.hpp"

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace awaitdb::test {
namespace {

using streams = engine_test;

asio::awaitable<void> fill(database& db, int rows) {
  co_await db.transaction([&]() -> asio::awaitable<void> {
    for (int i = 1; i <= rows; ++i)
      co_await db.execute("INSERT INTO streamed (id, name) VALUES ($1, $2)", i,
                          "row " + std::to_string(i));
  });
}

asio::awaitable<void> pause(std::chrono::milliseconds d) {
  asio::steady_timer timer(co_await asio::this_coro::executor, d);
  co_await timer.async_wait(asio::use_awaitable);
}

TEST_P(streams, rows_arrive_in_order_and_then_the_end) {
  with_table("streamed", "(id INTEGER PRIMARY KEY, name TEXT)",
             [&](database& db) -> asio::awaitable<void> {
               co_await fill(db, 5000);
               row_stream s =
                   co_await db.stream("SELECT id, name FROM streamed WHERE id > $1 ORDER BY id", 0);
               int expected = 1;
               while (std::optional<row> r = co_await s.next()) {
                 EXPECT_EQ(r->get<std::int64_t>(0), expected);
                 EXPECT_EQ(r->get<std::string>("name"), "row " + std::to_string(expected));
                 ++expected;
               }
               EXPECT_EQ(expected, 5001);
               EXPECT_FALSE(co_await s.next());  // still the end
               // The database goes on as before.
               EXPECT_EQ(co_await db.query_scalar<std::int64_t>("SELECT count(*) FROM streamed"),
                         5000);
               row_stream none = co_await db.stream("SELECT id FROM streamed WHERE id < 0");
               EXPECT_FALSE(co_await none.next());
               row_stream empty;
               EXPECT_FALSE(co_await empty.next());
             });
}

TEST_P(streams, mistakes_are_reported_at_once_or_at_the_first_row) {
  with_table("streamed", "(id INTEGER PRIMARY KEY, name TEXT)",
             [&](database& db) -> asio::awaitable<void> {
               co_await expect_sqlstate("42601", [&]() -> asio::awaitable<void> {
                 row_stream s = co_await db.stream("SELEC id FROM streamed");
                 co_await s.next();
               });
               co_await expect_sqlstate("42P01", [&]() -> asio::awaitable<void> {
                 row_stream s = co_await db.stream("SELECT id FROM no_such_table");
                 co_await s.next();
               });
               co_await expect_sqlstate("07001", [&]() -> asio::awaitable<void> {
                 row_stream s =  // (built at run time: as a literal it does not compile)
                     co_await db.stream(std::string("SELECT id FROM streamed WHERE id = $1"));
                 co_await s.next();
               });
               EXPECT_EQ(co_await db.query_scalar<std::int64_t>("SELECT count(*) FROM streamed"),
                         0);
             });
}

TEST_P(streams, abandoned_half_way_the_database_stays_usable) {
  with_table("streamed", "(id INTEGER PRIMARY KEY, name TEXT)",
             [&](database& db) -> asio::awaitable<void> {
               co_await fill(db, 10000);
               for (int round = 0; round < 5; ++round) {
                 row_stream s = co_await db.stream("SELECT id, name FROM streamed ORDER BY id");
                 for (int i = 1; i <= 10; ++i) {
                   std::optional<row> r = co_await s.next();
                   CO_ASSERT(r);
                   EXPECT_EQ(r->get<std::int64_t>(0), i);
                 }
               }  // destroyed half-way, five times
               EXPECT_EQ(co_await db.query_scalar<std::int64_t>("SELECT count(*) FROM streamed"),
                         10000);
               co_await db.execute("INSERT INTO streamed (id, name) VALUES (10001, 'more')");
               // Every connection goes back to the pool once the server has answered.
               for (int i = 0; i < 200 && db.stats().in_use > 0; ++i)
                 co_await pause(std::chrono::milliseconds(10));
               EXPECT_EQ(db.stats().in_use, 0u);
             });
}

TEST_P(streams, inside_a_transaction_a_stream_sees_its_writes_and_shares_the_connection) {
  with_table(
      "streamed", "(id INTEGER PRIMARY KEY, name TEXT)",
      [&](database& db) -> asio::awaitable<void> {
        co_await fill(db, 10000);
        co_await db.transaction([&]() -> asio::awaitable<void> {
          co_await db.execute("DELETE FROM streamed WHERE id > 9000");
          row_stream s = co_await db.stream("SELECT id FROM streamed ORDER BY id");
          std::optional<row> first = co_await s.next();
          CO_ASSERT(first);
          EXPECT_EQ(first->get<std::int64_t>(0), 1);
          // The reader falls behind; another statement of the transaction still runs.
          co_await pause(std::chrono::milliseconds(50));
          EXPECT_EQ(co_await db.query_scalar<std::int64_t>("SELECT count(*) FROM streamed"), 9000);
          std::int64_t n = 1, last = 1;
          while (std::optional<row> r = co_await s.next()) {
            ++n;
            last = r->get<std::int64_t>(0);
          }
          EXPECT_EQ(n, 9000);
          EXPECT_EQ(last, 9000);
        });
        EXPECT_EQ(co_await db.query_scalar<std::int64_t>("SELECT count(*) FROM streamed"), 9000);
      });
}

TEST_P(streams, writers_go_on_while_a_stream_reads) {
  with_table("streamed", "(id INTEGER PRIMARY KEY, name TEXT)",
             [&](database& db) -> asio::awaitable<void> {
               co_await fill(db, 100);
               row_stream s = co_await db.stream("SELECT id FROM streamed ORDER BY id");
               CO_ASSERT(co_await s.next());
               // A write from another statement while the stream is open completes.
               co_await db.execute("INSERT INTO streamed (id, name) VALUES (500, 'later')");
               int n = 1;
               while (co_await s.next())
                 ++n;
               // What the stream saw was fixed when it began (a snapshot on PostgreSQL and on a
               // WAL file; on an in-memory database it read the whole result at once).
               EXPECT_EQ(n, 100);
               EXPECT_EQ(co_await db.query_scalar<std::int64_t>("SELECT count(*) FROM streamed"),
                         101);
             });
}

TEST_P(streams, closing_the_database_ends_a_stream_still_being_read) {
  // PostgreSQL: more rows than a stream buffers ahead of its reader (a few thousand), so that
  // the server is still sending when the database closes.
  constexpr std::int64_t total = 200000;
  run([&]() -> asio::awaitable<void> {
    database db = co_await open(GetParam().url);
    const std::string sql =
        pg() ? "SELECT g FROM generate_series(1, " + std::to_string(total) + ") g"
             : "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < " +
                   std::to_string(total) + ") SELECT n FROM g";
    row_stream s = co_await db.stream(sql);
    std::optional<row> first = co_await s.next();
    CO_ASSERT(first);
    EXPECT_EQ(first->get<std::int64_t>(0), 1);
    co_await db.close();
    std::int64_t n = 1;
    if (GetParam().name == "sqlite_memory") {
      // The whole result was read when the stream began (nothing is held open): the rest of it
      // is still there.
      while (co_await s.next())
        ++n;
      EXPECT_EQ(n, total);
      co_return;
    }
    // The stream's connection closed with the database. Rows it had received already may still
    // come (PostgreSQL reads a few thousand ahead), then it fails as a statement on a closed
    // database does; after that the stream is over, as after any failure.
    const std::string why = co_await expect_sqlstate("08003", [&]() -> asio::awaitable<void> {
      while (co_await s.next())
        ++n;
    });
    std::printf("[ stream  ] %s: %lld rows, then: %s\n", GetParam().name.c_str(),
                static_cast<long long>(n), why.c_str());
    EXPECT_LT(n, total);
    EXPECT_FALSE(co_await s.next());
  });
}

INSTANTIATE_TEST_SUITE_P(engines, streams, testing::ValuesIn(engine_cases()), engine_case_name);

}  // namespace
}  // namespace awaitdb::test
