// A database and what it hands out (copies, streams, subscriptions, COPY ends) outliving the
// io_context they were made on, and an io_context destroyed with every kind of work pending:
// nothing touches the destroyed context, and every server session ends at once.
#include "pg_support.hpp"
#include <awaitdb/timeout.hpp>

#include <boost/asio/detached.hpp>

#include <optional>

namespace awaitdb::test {
namespace {

using std::chrono::milliseconds;

// Polls (on a context of its own) until no session of `application` is left, at most `limit`;
// returns how long it took, or `limit`.
milliseconds until_no_sessions(const std::string& url, const std::string& application,
                               milliseconds limit) {
  const auto start = clock::now();
  std::int64_t left = -1;
  run([&]() -> asio::awaitable<void> {
    database admin = co_await open(url);
    while (clock::now() - start < limit) {
      left = co_await admin.query_scalar<std::int64_t>(
          "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", application);
      if (left == 0) break;
      co_await sleep_for(milliseconds(10));
    }
    co_await admin.close();
  });
  EXPECT_EQ(left, 0) << "sessions of " << application << " still open";
  return std::chrono::duration_cast<milliseconds>(clock::now() - start);
}

// Declared before the io_context, so destroyed after it: what a plain
// `struct app { awaitdb::database db; asio::io_context io; };` does on exit.
struct held {
  std::optional<database> db;
  std::optional<row_stream> stream;
  std::optional<subscription> notifications;
  std::optional<copy_writer> copy;
};

TEST_F(postgres, handles_outliving_their_io_context_are_destroyed_without_touching_it) {
  const std::string app = "awaitdb-outlived";
  held h;
  {
    asio::io_context io;
    bool ready = false;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          database db = co_await open(url("application_name=" + app));
          co_await db.execute("DROP TABLE IF EXISTS outlived");
          co_await db.execute("CREATE TABLE outlived (v INTEGER)");
          h.stream.emplace(co_await db.stream("SELECT g FROM generate_series(1, 100000) g"));
          (void)co_await h.stream->next();
          h.notifications.emplace(co_await db.listen("awaitdb_outlived"));
          h.copy.emplace(co_await db.copy_in("COPY outlived FROM STDIN"));
          co_await h.copy->write("1\n2\n");
          h.db = db;
          ready = true;
        },
        asio::detached);
    for (const auto start = clock::now(); !ready && clock::now() - start < 10s;)
      io.run_for(milliseconds(10));
    ASSERT_TRUE(ready);
  }  // the io_context is gone; the handles are not
  const milliseconds gone = until_no_sessions(url_, app, milliseconds(3000));
  std::printf("[ context ] sessions of handles that outlived their io_context gone after %lld ms\n",
              static_cast<long long>(gone.count()));
  EXPECT_LT(gone, milliseconds(1000));
  // Used after their context is gone, they fail cleanly (connection closed); then destroyed.
  h.copy.reset();
  h.notifications.reset();
  h.stream.reset();
  h.db.reset();
}

TEST_F(postgres, a_context_destroyed_with_every_kind_of_work_pending_ends_every_session) {
  const std::string app = "awaitdb-abandoned";
  held h;
  {
    asio::io_context io;
    int started = 0;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          database db = co_await open(url("pool_max_size=6&application_name=" + app));
          h.db = db;
          auto ex = co_await asio::this_coro::executor;
          // Transactions in flight, statements pipelined behind each other, a statement being
          // cancelled, a stream and a listener, all running when the context goes.
          for (int i = 0; i < 2; ++i)
            asio::co_spawn(ex, db.transaction([&db]() -> asio::awaitable<void> {
              co_await db.execute("INSERT INTO pg_temp.t SELECT 1 WHERE false");
            }),
                           asio::detached);
          for (int i = 0; i < 2; ++i)
            asio::co_spawn(ex, db.transaction([&db]() -> asio::awaitable<void> {
              co_await db.execute("SELECT pg_sleep(30)");
            }),
                           asio::detached);
          for (int i = 0; i < 4; ++i)
            asio::co_spawn(ex, db.execute("SELECT pg_sleep(30)"), asio::detached);
          asio::co_spawn(ex, with_timeout(milliseconds(100), db.execute("SELECT pg_sleep(31)")),
                         asio::detached);
          h.stream.emplace(co_await db.stream("SELECT g FROM generate_series(1, 1000000) g"));
          (void)co_await h.stream->next();
          h.notifications.emplace(co_await db.listen("awaitdb_abandoned"));
          started = 1;
          (void)co_await h.notifications->next();
        },
        asio::detached);
    for (const auto start = clock::now(); !started && clock::now() - start < 10s;)
      io.run_for(milliseconds(10));
    io.run_for(milliseconds(100));  // the cancel of pg_sleep(31) is on its way now
    ASSERT_TRUE(started);
  }
  const milliseconds gone = until_no_sessions(url_, app, milliseconds(3000));
  std::printf(
      "[ context ] an io_context destroyed with transactions, pipelined and cancelled "
      "statements, a stream and a listener pending: every session gone after %lld ms\n",
      static_cast<long long>(gone.count()));
  EXPECT_LT(gone, milliseconds(1000));
}

}  // namespace
}  // namespace awaitdb::test
