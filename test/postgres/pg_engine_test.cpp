// What a busy service needs from the PostgreSQL engine: no head-of-line stall behind a slow
// statement, cancellation that stops the server's work, plans that heal after a migration,
// connections lost under two threads, a context destroyed with work pending, a connect timeout.
#include "postgres/pg_support.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <algorithm>
#include <map>

namespace awaitdb::test {
namespace {

using namespace boost::asio::experimental::awaitable_operators;
using std::chrono::milliseconds;

long long ms(clock::duration d) {
  return std::chrono::duration_cast<milliseconds>(d).count();
}

asio::awaitable<void> short_queries(const database& db, int task, int count,
                                    std::vector<clock::duration>& latencies) {
  for (int i = 0; i < count; ++i) {
    const auto start = clock::now();
    result r = co_await db.query("SELECT $1::int", task * 1000 + i);
    EXPECT_EQ(r[0].get<std::int32_t>(0), task * 1000 + i);
    latencies.push_back(clock::now() - start);
  }
}

// 11.4: while one task runs a 2 s statement, 20 others run 200 short ones between them: none
// waits behind the slow one.
TEST_F(postgres, short_statements_do_not_queue_behind_a_slow_one) {
  run([&]() -> asio::awaitable<void> {
    database db = co_await open(url_);
    co_await db.query("SELECT 1");  // one connection open, idle
    auto ex = co_await asio::this_coro::executor;
    bool slow_done = false;
    auto slow = [](database d, bool& done) -> asio::awaitable<void> {
      co_await d.query("SELECT pg_sleep(2)");
      done = true;
    };
    asio::co_spawn(ex, slow(db, slow_done), asio::detached);
    co_await sleep_for(milliseconds(20));  // it has been running past the stall threshold
    std::vector<clock::duration> latencies;
    int finished = 0;
    auto task = [](const database& d, int t, std::vector<clock::duration>& l,
                   int& f) -> asio::awaitable<void> {
      co_await short_queries(d, t, 10, l);
      ++f;
    };
    for (int t = 0; t < 20; ++t)
      asio::co_spawn(ex, task(db, t, latencies, finished), asio::detached);
    while (finished < 20)
      co_await sleep_for(milliseconds(2));
    EXPECT_FALSE(slow_done);
    std::sort(latencies.begin(), latencies.end());
    CO_ASSERT(latencies.size() == 200u);
    const auto p99 = latencies[197], worst = latencies.back();
    std::printf(
        "[ hol     ] 200 short statements beside a 2 s one: p50 %lld us, p99 %lld us, "
        "worst %lld ms\n",
        static_cast<long long>(latencies[100] / std::chrono::microseconds(1)),
        static_cast<long long>(p99 / std::chrono::microseconds(1)), ms(worst));
    EXPECT_LT(worst, milliseconds(500));
    while (!slow_done)
      co_await sleep_for(milliseconds(10));
  });
}

// 24 statements of 200 ms sent at once with a pool of 4: nothing knows their time when they
// are sent. The first runs at once; the others wait until it has run past the stall threshold
// (slow, then), and spread over the pool, one at a time on each connection: about 6 x 200 ms,
// where queuing them all on one connection took 4.8 s. Again with the pool's 4 connections
// idle and the statement known.
TEST_F(postgres, a_burst_of_slow_statements_spreads_over_the_pool) {
  run([&]() -> asio::awaitable<void> {
    database db = co_await open(url("pool_max_size=4"));
    auto burst = [&]() -> asio::awaitable<std::pair<clock::duration, std::map<int, int>>> {
      std::map<int, int> per_connection;
      int finished = 0;
      auto one = [&]() -> asio::awaitable<void> {
        result r = co_await db.query("SELECT pg_backend_pid() FROM pg_sleep(0.2)");
        ++per_connection[r[0].get<std::int32_t>(0)];
        ++finished;
      };
      auto ex = co_await asio::this_coro::executor;
      const auto start = clock::now();
      for (int i = 0; i < 24; ++i)
        asio::co_spawn(ex, one(), asio::detached);
      while (finished < 24 && clock::now() - start < std::chrono::seconds(10))
        co_await sleep_for(milliseconds(5));
      EXPECT_EQ(finished, 24);
      co_return std::make_pair(clock::now() - start, per_connection);
    };
    for (const char* round : {"unknown statement", "known, pool idle"}) {
      auto [took, per_connection] = co_await burst();
      std::printf("[ burst   ] 24 x pg_sleep(0.2), pool of 4, %s: %lld ms on %zu connections\n",
                  round, ms(took), per_connection.size());
      // 1.2 s at best; the bound is a stall catcher (the target, 2.0 s, is in the benchmarks).
      EXPECT_LT(took, milliseconds(3500)) << round;
      if (!through_pooler()) {
        EXPECT_EQ(per_connection.size(), 4u) << round;
        for (const auto& [pid, count] : per_connection)
          EXPECT_LE(count, 8) << round << ": connection " << pid;
      }
    }
    EXPECT_EQ(db.stats().size, 4u);
  });
}

// 11.5: a pipelined statement cancelled while ten others wait behind it on its connection
// stops on the server, and the ten succeed.
TEST_F(postgres, a_cancelled_pipelined_statement_stops_on_the_server_and_the_rest_succeed) {
  run([&]() -> asio::awaitable<void> {
    database observer = co_await open(url_);
    database db = co_await open(url("pool_max_size=1"));
    auto ex = co_await asio::this_coro::executor;
    int ok = 0;
    auto behind = [](const database& d, int i, int& n) -> asio::awaitable<void> {
      result r = co_await d.query("SELECT $1::int", i);
      EXPECT_EQ(r[0].get<std::int32_t>(0), i);
      ++n;
    };
    auto slow = [](const database& d) -> asio::awaitable<void> {
      co_await (d.query("SELECT pg_sleep(30)") || sleep_for(milliseconds(200)));
    };
    asio::co_spawn(ex, slow(db), asio::detached);
    co_await sleep_for(milliseconds(20));
    for (int i = 0; i < 10; ++i)
      asio::co_spawn(ex, behind(db, i, ok), asio::detached);
    co_await sleep_for(milliseconds(50));
    EXPECT_EQ(co_await active_sleeps(observer), 1);
    EXPECT_EQ(db.stats().in_flight, 11u);
    const auto cancelled_at = clock::now() + milliseconds(130);
    const auto gone = co_await time_until_gone(observer, milliseconds(5000));
    (void)gone;
    const auto left = clock::now() - cancelled_at;
    std::printf(
        "[ cancel  ] pg_sleep(30) with 10 statements behind it: gone from the server "
        "%lld ms after the cancel\n",
        ms(left));
    EXPECT_EQ(co_await active_sleeps(observer), 0);
    EXPECT_LT(left, milliseconds(1000));
    while (ok < 10 && clock::now() - cancelled_at < std::chrono::seconds(5))
      co_await sleep_for(milliseconds(2));
    EXPECT_EQ(ok, 10);
    EXPECT_EQ(db.stats().in_flight, 0u);
  });
}

asio::awaitable<void> cancel_round(const database& db, int round, int& lost) {
  auto ex = co_await asio::this_coro::executor;
  std::atomic<int> ok{0};  // (two threads)
  auto behind = [](const database& d, int v, std::atomic<int>& n) -> asio::awaitable<void> {
    if ((co_await d.query("SELECT $1::int", v))[0].get<std::int32_t>(0) == v) ++n;
  };
  auto slow = [](const database& d) -> asio::awaitable<void> {
    co_await (d.query("SELECT pg_sleep(0.05)") || sleep_for(milliseconds(5)));
  };
  // On a strand: it cancels with `||`, and Asio's cancellation is not thread-safe.
  asio::co_spawn(asio::make_strand(ex), slow(db), asio::detached);
  for (int i = 0; i < 5; ++i)
    asio::co_spawn(ex, behind(db, round * 10 + i, ok), asio::detached);
  const auto start = clock::now();
  while (ok < 5 && clock::now() - start < std::chrono::seconds(5))
    co_await sleep_for(milliseconds(1));
  lost += 5 - ok;
}

// 11.5: 200 rounds of a cancel while others are pipelined, on two threads: no statement is
// lost and nothing hangs (also run under ThreadSanitizer).
TEST_F(postgres, cancelling_while_pipelined_on_two_threads_loses_nothing) {
  run(
      [&]() -> asio::awaitable<void> {
        database db = co_await open(url("pool_max_size=1"));
        int lost = 0;
        for (int round = 0; round < 200; ++round)
          co_await cancel_round(db, round, lost);
        EXPECT_EQ(lost, 0);
        const auto start = clock::now();
        while (db.stats().in_flight > 0 && clock::now() - start < std::chrono::seconds(5))
          co_await sleep_for(milliseconds(2));
        EXPECT_EQ(db.stats().in_flight, 0u);
      },
      120s, 2);
}

asio::awaitable<std::int32_t> select_all_slowly(const database& db, std::size_t& columns) {
  result r = co_await db.query("SELECT *, pg_backend_pid() AS pid FROM plan_t, pg_sleep(0.3)");
  columns = r.column_count();
  co_return r[0].get<std::int32_t>("pid");
}

// 11.6: after ALTER TABLE ... ADD COLUMN, a cached `SELECT *` failed with 0A000 on every pooled
// connection. Now each connection prepares it again, once, and succeeds.
TEST_F(postgres, cached_plans_heal_after_a_migration) {
  for (std::string pipeline : {"on", "off"}) {
    run([&]() -> asio::awaitable<void> {
      database db = co_await open(url("pool_max_size=4&pipeline=" + pipeline));
      co_await db.execute("DROP TABLE IF EXISTS plan_t");
      co_await db.execute("CREATE TABLE plan_t (a INTEGER)");
      co_await db.execute("INSERT INTO plan_t VALUES (1)");
      // Four slow statements, started 60 ms apart: each finds the others busy past the stall
      // threshold (or, without pipelining, busy), so each runs on a connection of its own.
      auto round = [&]() -> asio::awaitable<std::pair<std::set<std::int32_t>, std::size_t>> {
        std::size_t c1 = 0, c2 = 0, c3 = 0, c4 = 0;
        auto later = [&](int n, std::size_t& c) -> asio::awaitable<std::int32_t> {
          co_await sleep_for(milliseconds(60 * n));
          co_return co_await select_all_slowly(db, c);
        };
        auto [p1, p2, p3, p4] =
            co_await (later(0, c1) && later(1, c2) && later(2, c3) && later(3, c4));
        EXPECT_TRUE(c1 == c2 && c2 == c3 && c3 == c4);
        co_return std::make_pair(std::set<std::int32_t>{p1, p2, p3, p4}, c1);
      };
      auto [before, columns_before] = co_await round();
      EXPECT_EQ(before.size(), 4u) << "four connections, each with the statement cached";
      EXPECT_EQ(columns_before, 3u);  // a, pg_sleep's, pid
      co_await db.execute("ALTER TABLE plan_t ADD COLUMN b TEXT DEFAULT 'new'");
      auto [after, columns_after] = co_await round();
      EXPECT_EQ(after, before) << "the same four connections";
      EXPECT_EQ(columns_after, 4u);
      // Inside a transaction the stale statement fails as the server says; the next one, on
      // the same connection, finds the cache healed.
      co_await db.execute("ALTER TABLE plan_t ADD COLUMN c INTEGER");
      co_await expect_sqlstate("25P02", [&] {
        return db.transaction([&]() -> asio::awaitable<void> {
          std::size_t columns = 0;
          co_await expect_sqlstate("0A000", [&] { return select_all_slowly(db, columns); });
        });
      });
      // (Every connection has the stale plan: the one the transaction used is healed, and the
      // others heal as they meet it, outside transactions.)
      auto [last, columns_last] = co_await round();
      EXPECT_EQ(columns_last, 5u);
      (void)last;
      co_await db.execute("DROP TABLE plan_t");
    });
  }
}

asio::awaitable<void> churn(const database& db, int task, const std::atomic<bool>& stop,
                            std::atomic<int>& ok, std::atomic<int>& connection_errors,
                            std::atomic<int>& running) {
  struct leaving {
    std::atomic<int>& running;
    ~leaving() { --running; }
  } on_exit{running};
  for (int i = 0; !stop; ++i) {
    try {
      EXPECT_EQ((co_await db.query("SELECT $1::int", i))[0].get<std::int32_t>(0), i);
      ++ok;
    } catch (const error& e) {
      if (e.is_connection_error())
        ++connection_errors;
      else
        ADD_FAILURE() << task << ": " << e.what();
    }
  }
}

// 11.7: connections lost (pg_terminate_backend) while two threads pipeline on them: every
// statement succeeds or fails with a connection error, nothing hangs, and the pool recovers
// (also run under ThreadSanitizer).
TEST_F(postgres, connections_lost_under_two_threads) {
  run(
      [&]() -> asio::awaitable<void> {
        database admin = co_await open(url_);
        database db = co_await open(url("pool_max_size=3&application_name=awaitdb-churn"));
        auto ex = co_await asio::this_coro::executor;
        std::atomic<bool> stop{false};
        std::atomic<int> ok{0}, connection_errors{0}, running{8};
        for (int t = 0; t < 8; ++t)
          asio::co_spawn(ex, churn(db, t, stop, ok, connection_errors, running), asio::detached);
        for (int kill = 0; kill < 15; ++kill) {
          co_await sleep_for(milliseconds(30));
          co_await admin.query(
              "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
              "WHERE application_name = 'awaitdb-churn' AND pid <> pg_backend_pid()");
        }
        stop = true;
        // Every task ends (some may be waiting out the pause before a connection is opened
        // again: the connections lived less than the pool's probation), and nothing is left in
        // flight.
        const auto start = clock::now();
        while ((running > 0 || db.stats().in_flight > 0) &&
               clock::now() - start < std::chrono::seconds(10))
          co_await sleep_for(milliseconds(5));
        CO_ASSERT(running == 0);
        EXPECT_EQ(db.stats().in_flight, 0u);
        EXPECT_GT(ok, 0);
        std::printf(
            "[ churn   ] 15 rounds of terminated backends under 2 threads: %d ok, %d "
            "connection errors\n",
            ok.load(), connection_errors.load());
        EXPECT_EQ((co_await db.query("SELECT 5"))[0].get<std::int32_t>(0), 5);
      },
      60s, 2);
}

// 16.6: an io_context destroyed with operations pending (statements in flight, tasks waiting
// for a connection) frees everything and closes its connections (run under LeakSanitizer too).
TEST_F(postgres, a_context_destroyed_with_work_pending_closes_its_connections) {
  {
    asio::io_context io;
    auto orphan = [](std::string u) -> asio::awaitable<void> {
      database db = co_await open(u);
      auto ex = co_await asio::this_coro::executor;
      auto sleeper = [](database d) -> asio::awaitable<void> {
        co_await d.query("SELECT pg_sleep(0.3)");
      };
      for (int i = 0; i < 6; ++i)
        asio::co_spawn(ex, sleeper(db), asio::detached);
      auto in_tx = [](database d) -> asio::awaitable<void> {
        co_await d.transaction(
            [&]() -> asio::awaitable<void> { co_await d.query("SELECT pg_sleep(0.3)"); });
      };
      for (int i = 0; i < 3; ++i)  // more than the pool holds: some wait for a connection
        asio::co_spawn(ex, in_tx(db), asio::detached);
      co_await db.query("SELECT pg_sleep(10)");
    };
    asio::co_spawn(io, orphan(url("pool_max_size=2&application_name=awaitdb-orphan")),
                   asio::detached);
    io.run_for(milliseconds(150));
    EXPECT_FALSE(io.stopped());
  }  // destroyed here, with all of it pending
  run([&]() -> asio::awaitable<void> {
    database observer = co_await open(url_);
    const auto start = clock::now();
    // (A backend that is running a statement notices its closed socket when the statement
    // ends: at most 0.3 s here, 10 s for the one whose awaiter held the database.)
    while (co_await connections_named(observer, "awaitdb-orphan") > 0 &&
           clock::now() - start < std::chrono::seconds(15))
      co_await sleep_for(milliseconds(20));
    EXPECT_EQ(co_await connections_named(observer, "awaitdb-orphan"), 0);
    co_await observer.query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE application_name = 'awaitdb-orphan'");
  });
}

// A server that accepts the TCP connection and never answers: the connect timeout applies.
TEST_F(postgres, a_server_that_never_answers_fails_at_the_connect_timeout) {
  run([&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    asio::ip::tcp::acceptor silent(ex, {asio::ip::make_address("127.0.0.1"), 0});
    const auto port = silent.local_endpoint().port();
    const auto start = clock::now();
    try {
      co_await open("postgresql://nobody@127.0.0.1:" + std::to_string(port) +
                    "/db?connect_timeout=1");
      ADD_FAILURE() << "connected to a silent server";
    } catch (const error& e) {
      EXPECT_EQ(e.sqlstate(), "08001") << e.what();
      EXPECT_NE(std::string(e.what()).find("timed out"), std::string::npos) << e.what();
    }
    EXPECT_GE(clock::now() - start, milliseconds(950));
    EXPECT_LT(clock::now() - start, milliseconds(2000));
  });
}

}  // namespace
}  // namespace awaitdb::test
