// The PostgreSQL engine under faults: cancellation storms, lost and frozen backends, a server
// restart, close with work in flight. Each was a hang or a long stall once; each is bounded
// here, so a regression fails instead of hanging.
#include "postgres/pg_support.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/experimental/parallel_group.hpp>

#include <csignal>
#include <random>
#include <thread>

namespace awaitdb::test {
namespace {

using namespace boost::asio::experimental::awaitable_operators;
using std::chrono::milliseconds;

std::string elapsed_ms(clock::time_point since) {
  return std::to_string(std::chrono::duration_cast<milliseconds>(clock::now() - since).count()) +
         " ms";
}

// Waits (bounded) until nothing is in flight on `db`'s connections; returns how long it took.
asio::awaitable<clock::duration> until_quiet(const database& db, milliseconds limit) {
  const auto start = clock::now();
  while (db.stats().in_flight > 0 && clock::now() - start < limit)
    co_await sleep_for(milliseconds(5));
  co_return clock::now() - start;
}

// Runs `op`; false if it did not succeed within `limit` (then it is cancelled).
template <class Op>
asio::awaitable<bool> finishes_within(milliseconds limit, Op op) {
  std::exception_ptr failure;
  const outcome o = co_await bounded(limit, op, &failure);
  if (failure) std::rethrow_exception(failure);
  co_return o == outcome::done;
}

// One statement raced with a short timer: cancelled, or finished first.
asio::awaitable<void> cancelled_sleep(const database& db, milliseconds after, int& done) {
  try {
    co_await (db.query("SELECT pg_sleep(0.05)") || sleep_for(after));
  } catch (const error&) {
    // A statement hit by its own cancel on the server (57014): fine, it ended.
  }
  ++done;
}

// 1. Cancellations wedged a pipelined connection (a plain SELECT 1 hung afterwards, or
//    in_flight stayed near the number of cancelled statements).
TEST_F(postgres, a_storm_of_cancellations_leaves_the_pool_serving) {
  struct storm {
    int pool, statements;
  };
  for (storm s : {storm{1, 60}, storm{4, 2000}}) {
    run(
        [&]() -> asio::awaitable<void> {
          database db = co_await open(url("pool_max_size=" + std::to_string(s.pool)));
          auto ex = co_await asio::this_coro::executor;
          std::mt19937 random(42);
          int done = 0;
          for (int i = 0; i < s.statements; ++i)
            asio::co_spawn(ex, cancelled_sleep(db, milliseconds(1 + random() % 10), done),
                           asio::detached);
          while (done < s.statements)
            co_await sleep_for(milliseconds(5));
          const auto start = clock::now();
          EXPECT_TRUE(co_await finishes_within(milliseconds(1000), [&]() -> asio::awaitable<void> {
            EXPECT_EQ((co_await db.query("SELECT 1"))[0].get<std::int32_t>(0), 1);
          })) << "SELECT 1 after the storm";
          std::printf(
              "[ storm   ] %d cancelled statements on %d connection(s): SELECT 1 after "
              "%s, ",
              s.statements, s.pool, elapsed_ms(start).c_str());
          const auto quiet = co_await until_quiet(db, milliseconds(5000));
          std::printf(
              "in_flight 0 after %lld ms\n",
              static_cast<long long>(std::chrono::duration_cast<milliseconds>(quiet).count()));
          EXPECT_EQ(db.stats().in_flight, 0u);
          EXPECT_EQ(db.stats().waiting, 0u);
          co_await db.close();
        },
        60s, 1);
  }
}

// 2. After a connection of one database was lost, a statement of a second database opened on
//    the same URL hung (a descriptor number libpq closed and the system reused).
TEST_F(postgres, a_lost_connection_never_disturbs_another_database) {
  run([&]() -> asio::awaitable<void> {
    database admin = co_await open(url_);
    for (int round = 0; round < 5; ++round) {
      database first = co_await open(url("pool_max_size=1"));
      int pid = (co_await first.query("SELECT pg_backend_pid()"))[0].get<std::int32_t>(0);
      auto ex = co_await asio::this_coro::executor;
      bool failed = false;
      auto victim = [](database db, bool& flag) -> asio::awaitable<void> {
        try {
          co_await db.query("SELECT pg_sleep(5)");
        } catch (const error& e) {
          flag = e.is_connection_error();
        }
      };
      asio::co_spawn(ex, victim(first, failed), asio::detached);
      co_await sleep_for(milliseconds(30));
      co_await admin.query("SELECT pg_terminate_backend($1)", pid);
      // A database opened after the loss, whose socket may get the lost one's number.
      database second = co_await open(url_);
      const auto start = clock::now();
      EXPECT_TRUE(co_await finishes_within(
          milliseconds(2000),
          [&]() -> asio::awaitable<void> {
            for (int i = 0; i < 20; ++i)
              EXPECT_EQ((co_await second.query("SELECT $1::int", i))[0].get<std::int32_t>(0), i);
          }))
          << "round " << round;
      EXPECT_LT(clock::now() - start, milliseconds(1000)) << "round " << round;
      co_await sleep_for(milliseconds(20));
      EXPECT_TRUE(failed);
      co_await first.close();
      co_await second.close();
    }
  });
}

// 4. A transaction waiting for the only connection, held by a pipelined statement, waited for
//    its whole acquire timeout (53300) instead of starting when the statement ended.
TEST_F(postgres, a_waiting_transaction_starts_when_the_connection_is_free) {
  run([&]() -> asio::awaitable<void> {
    database db = co_await open(url("pool_max_size=1&pool_acquire_timeout_ms=3000"));
    auto ex = co_await asio::this_coro::executor;
    auto slow = [](database d) -> asio::awaitable<void> {
      co_await d.query("SELECT pg_sleep(0.25)");
    };
    asio::co_spawn(ex, slow(db), asio::detached);
    co_await sleep_for(milliseconds(20));
    const auto start = clock::now();
    clock::duration waited{};
    co_await db.transaction([&]() -> asio::awaitable<void> {
      waited = clock::now() - start;
      co_await db.query("SELECT 1");
    });
    std::printf("[ waiting ] the transaction started after %lld ms (the statement took 250)\n",
                static_cast<long long>(std::chrono::duration_cast<milliseconds>(waited).count()));
    EXPECT_LT(waited, milliseconds(600));
  });
}

// Sends SIGCONT to a stopped backend however the test ends.
struct resume_on_exit {
  int pid;
  ~resume_on_exit() { ::kill(pid, SIGCONT); }
};

// 5. With the backend frozen (SIGSTOP), a statement raced with a 300 ms timer resumed after
//    about 5 s, and the next statement on that connection failed 5 s later.
TEST_F(postgres, a_frozen_backend_holds_up_nobody_past_their_deadline) {
  for (std::string pipeline : {"on", "off"}) {
    run(
        [&]() -> asio::awaitable<void> {
          database db = co_await open(url("pool_max_size=2&pipeline=" + pipeline));
          const int pid = (co_await db.query("SELECT pg_backend_pid()"))[0].get<std::int32_t>(0);
          CO_ASSERT(::kill(pid, SIGSTOP) == 0);  // (the test runs as the server's owner or root)
          resume_on_exit resume{pid};
          auto start = clock::now();
          auto which = co_await (db.query("SELECT 1") || sleep_for(milliseconds(300)));
          EXPECT_EQ(which.index(), 1u);
          EXPECT_LT(clock::now() - start, milliseconds(400)) << "pipeline=" << pipeline;
          std::printf("[ frozen  ] pipeline=%s: the awaiter resumed after %s (deadline 300 ms)",
                      pipeline.c_str(), elapsed_ms(start).c_str());
          // The next statement does not queue behind the frozen one.
          start = clock::now();
          EXPECT_TRUE(co_await finishes_within(milliseconds(2000), [&]() -> asio::awaitable<void> {
            EXPECT_EQ((co_await db.query("SELECT 2"))[0].get<std::int32_t>(0), 2);
          }));
          std::printf(", the next statement took %s\n", elapsed_ms(start).c_str());
          EXPECT_LT(clock::now() - start, milliseconds(1000));
          ::kill(pid, SIGCONT);
          // The frozen connection comes back clean (or is dropped): nothing stays in flight.
          EXPECT_LT(co_await until_quiet(db, milliseconds(8000)), milliseconds(8000));
          EXPECT_EQ((co_await db.query("SELECT 3"))[0].get<std::int32_t>(0), 3);
          co_await db.close();
        },
        30s);
  }
}

asio::awaitable<void> short_sleep(const database& db, int& finished, int& closed_errors) {
  try {
    co_await db.query("SELECT pg_sleep(0.2)");
  } catch (const error& e) {
    if (e.sqlstate() == "08003") ++closed_errors;
  }
  ++finished;
}

// 6. close() with 20 pipelined statements in flight ended them, and the server connections,
//    about 14 s later.
TEST_F(postgres, close_ends_every_operation_promptly) {
  run([&]() -> asio::awaitable<void> {
    database observer = co_await open(url_);
    database db = co_await open(url("application_name=awaitdb-close-test"));
    auto ex = co_await asio::this_coro::executor;
    int finished = 0, closed_errors = 0;
    for (int i = 0; i < 20; ++i)
      asio::co_spawn(ex, short_sleep(db, finished, closed_errors), asio::detached);
    co_await sleep_for(milliseconds(50));
    EXPECT_GT(db.stats().in_flight, 0u);
    const auto start = clock::now();
    co_await db.close();
    while (finished < 20 && clock::now() - start < 5s)
      co_await sleep_for(milliseconds(5));
    EXPECT_EQ(finished, 20);
    EXPECT_LT(clock::now() - start, milliseconds(1000));
    std::printf("[ close   ] 20 statements in flight: close() and all of them done after %s",
                elapsed_ms(start).c_str());
    while (co_await connections_named(observer, "awaitdb-close-test") > 0 &&
           clock::now() - start < 5s)
      co_await sleep_for(milliseconds(5));
    std::printf(", server connections gone after %s\n", elapsed_ms(start).c_str());
    EXPECT_EQ(co_await connections_named(observer, "awaitdb-close-test"), 0);
    EXPECT_LT(clock::now() - start, milliseconds(1000));
    co_await expect_sqlstate("08003", [&] { return db.query("SELECT 1"); });
  });
}

// 7. An idle pooled connection terminated by the server failed the next statement (57P01),
//    although nothing had been sent on it.
TEST_F(postgres, an_idle_connection_the_server_killed_is_replaced_unseen) {
  run([&]() -> asio::awaitable<void> {
    database admin = co_await open(url_);
    for (std::string options : {"pool_max_size=1", "pool_max_size=1&pipeline=off"}) {
      database db = co_await open(url(options));
      const int pid = (co_await db.query("SELECT pg_backend_pid()"))[0].get<std::int32_t>(0);
      co_await admin.query("SELECT pg_terminate_backend($1)", pid);
      // Wait until the server has really let it go. (A statement sent within a millisecond of
      // the connection's previous use is not preceded by a look at it: a loop of statements
      // pays no system call for that. Such a statement fails with 57P01; see docs/usage.md.)
      while ((co_await admin.query("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid))[0]
                 .get<std::int64_t>(0) > 0)
        co_await sleep_for(milliseconds(2));
      co_await sleep_for(milliseconds(5));
      row r = (co_await db.query("SELECT 7, pg_backend_pid()"))[0];
      EXPECT_EQ(r.get<std::int32_t>(0), 7) << options;
      EXPECT_NE(r.get<std::int32_t>(1), pid) << options;
      co_await db.close();
    }
  });
}

// 8. The timeout pattern of docs/usage.md: a statement that fails before its timer surfaces
//    its error at once (Asio's `||` waits for the first *success*, so with it a failing
//    statement would look like a timeout after the timer's length).
TEST_F(postgres, the_documented_timeout_pattern_surfaces_errors_at_once) {
  run([&]() -> asio::awaitable<void> {
    database db = co_await open(url_);
    auto ex = co_await asio::this_coro::executor;
    // -- as in docs/usage.md
    asio::steady_timer timer(ex, std::chrono::seconds(5));
    const auto start = clock::now();
    auto [order, failure, rows, timer_ec] =
        co_await asio::experimental::make_parallel_group(
            asio::co_spawn(ex, db.query("SELECT 1/0"), asio::deferred),
            timer.async_wait(asio::deferred))
            .async_wait(asio::experimental::wait_for_one(), asio::use_awaitable);
    // --
    EXPECT_EQ(order[0], 0u);  // the statement ended first
    EXPECT_LT(clock::now() - start, milliseconds(500));
    CO_ASSERT(failure);
    try {
      std::rethrow_exception(failure);
    } catch (const error& e) {
      EXPECT_EQ(e.sqlstate(), "22012");
    }
    (void)rows;
    (void)timer_ec;
  });
}

}  // namespace
}  // namespace awaitdb::test
