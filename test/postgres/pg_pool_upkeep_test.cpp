// The pool's upkeep against a real server: the minimum opened at start and kept, surplus idle
// connections closed after the idle timeout, a connection past its lifetime replaced. (The
// rules themselves, and the pause between failed connection attempts, are unit-tested with a
// fake clock in test/pool/pool_test.cpp; a restart of the server in pg_restart_test.cpp.)
#include "postgres/pg_support.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

#include <atomic>

namespace awaitdb::test {
namespace {

using std::chrono::milliseconds;

// Server sessions opened by databases whose URL names `application`.
asio::awaitable<std::int64_t> sessions(const database& admin, std::string_view application) {
  co_return co_await admin.query_scalar<std::int64_t>(
      "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", application);
}

// Polls until `sessions` is `expected` (at most `limit`); returns how long it took.
asio::awaitable<milliseconds> until_sessions(const database& admin, std::string_view application,
                                             std::int64_t expected, milliseconds limit) {
  const auto start = clock::now();
  while (co_await sessions(admin, application) != expected && clock::now() - start < limit)
    co_await sleep_for(milliseconds(10));
  EXPECT_EQ(co_await sessions(admin, application), expected);
  co_return std::chrono::duration_cast<milliseconds>(clock::now() - start);
}

asio::awaitable<void> hold_a_connection(const database& db, std::atomic<int>& done) {
  co_await db.transaction(
      [&]() -> asio::awaitable<void> { co_await db.query("SELECT pg_sleep(0.1)"); });
  ++done;
}

TEST_F(postgres, the_pool_keeps_its_minimum_and_closes_idle_surplus) {
  run([&]() -> asio::awaitable<void> {
    database admin = co_await open(url_);
    const std::string app = "awaitdb-upkeep";
    database db =
        co_await open(url("application_name=" + app + "&pool_min_size=2&pool_idle_timeout_ms=300"));
    co_await until_sessions(admin, app, 2, milliseconds(2000));
    // The server counts a session before the pool has read the end of its start-up: wait until
    // both are idle in the pool too (else a task would open a connection of its own meanwhile).
    for (const auto start = clock::now();
         db.stats().idle < 2 && clock::now() - start < milliseconds(2000);)
      co_await sleep_for(milliseconds(5));
    EXPECT_EQ(db.stats().idle, 2u);
    // Four transactions at once: four connections.
    auto ex = co_await asio::this_coro::executor;
    std::atomic<int> done{0};
    for (int i = 0; i < 4; ++i)
      asio::co_spawn(ex, hold_a_connection(db, done), asio::detached);
    while (done < 4)
      co_await sleep_for(milliseconds(5));
    EXPECT_EQ(co_await sessions(admin, app), 4);
    const milliseconds closed = co_await until_sessions(admin, app, 2, milliseconds(3000));
    std::printf(
        "[ upkeep  ] 2 surplus idle connections closed %lld ms after their last use "
        "(idle timeout 300 ms)\n",
        static_cast<long long>(closed.count()));
    EXPECT_GE(closed, milliseconds(250));
    // Still serving, with the minimum kept.
    EXPECT_EQ(co_await db.query_scalar<std::int32_t>("SELECT 7"), 7);
    co_await sleep_for(milliseconds(500));
    EXPECT_EQ(co_await sessions(admin, app), 2);
    co_await db.close();
  });
}

// The server ends both idle connections (pg_terminate_backend, as an idle timeout or a restart
// would): the pool notices within its upkeep period and opens the minimum again, with no task
// asking for a connection.
TEST_F(postgres, the_minimum_is_opened_again_after_the_server_ends_idle_connections) {
  run([&]() -> asio::awaitable<void> {
    database admin = co_await open(url_);
    const std::string app = "awaitdb-refill";
    database db = co_await open(url("application_name=" + app + "&pool_min_size=2"));
    co_await until_sessions(admin, app, 2, milliseconds(2000));
    for (const auto start = clock::now();
         db.stats().idle < 2 && clock::now() - start < milliseconds(2000);)
      co_await sleep_for(milliseconds(5));
    const auto before = co_await admin.query_scalar<std::int64_t>(
        "SELECT sum(pid) FROM pg_stat_activity WHERE application_name = $1", app);
    co_await admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1", app);
    const auto start = clock::now();
    co_await until_sessions(admin, app, 0, milliseconds(2000));
    // Back to two, each a new session, while nobody uses the database.
    co_await until_sessions(admin, app, 2, milliseconds(3000));
    const auto back = std::chrono::duration_cast<milliseconds>(clock::now() - start);
    std::printf("[ upkeep  ] the minimum of 2 open again %lld ms after the server ended both\n",
                static_cast<long long>(back.count()));
    EXPECT_LT(back, milliseconds(2500));  // the upkeep period is 1 s with a minimum
    EXPECT_NE(co_await admin.query_scalar<std::int64_t>(
                  "SELECT sum(pid) FROM pg_stat_activity WHERE application_name = $1", app),
              before);
    for (const auto wait = clock::now();
         db.stats().size != 2 && clock::now() - wait < milliseconds(2000);)
      co_await sleep_for(milliseconds(5));
    EXPECT_EQ(db.stats().size, 2u);
    EXPECT_EQ(co_await db.query_scalar<std::int32_t>("SELECT 7"), 7);
    co_await db.close();
  });
}

TEST_F(postgres, a_connection_past_its_lifetime_is_replaced) {
  run([&]() -> asio::awaitable<void> {
    database db = co_await open(url("pool_max_size=1&pool_max_lifetime_ms=200"));
    const auto first = co_await db.query_scalar<std::int32_t>("SELECT pg_backend_pid()");
    EXPECT_EQ(co_await db.query_scalar<std::int32_t>("SELECT pg_backend_pid()"), first);
    co_await sleep_for(milliseconds(300));
    const auto later = co_await db.query_scalar<std::int32_t>("SELECT pg_backend_pid()");
    EXPECT_NE(later, first);
    // The old session ends on the server (closed, not merely left idle).
    database admin = co_await open(url_);
    const auto start = clock::now();
    std::int64_t left = 1;
    while (left > 0 && clock::now() - start < milliseconds(3000)) {
      left = co_await admin.query_scalar<std::int64_t>(
          "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", first);
      if (left > 0) co_await sleep_for(milliseconds(10));
    }
    EXPECT_EQ(left, 0);
    co_await db.close();
  });
}

}  // namespace
}  // namespace awaitdb::test
