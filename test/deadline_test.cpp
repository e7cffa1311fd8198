// Ambient deadlines (awaitdb::with_timeout), on every engine: the deadline follows the task
// into helpers, child coroutines and nested deadlines; statements started after it never run;
// a transaction past it rolls back; and an SQLite statement running inline is interrupted at
// it, on the writer and on a reader, leaving the database usable.
#include "postgres/pg_support.hpp"
#include <awaitdb/timeout.hpp>

#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/thread_pool.hpp>

namespace awaitdb::test {
namespace {

using namespace boost::asio::experimental::awaitable_operators;
using std::chrono::milliseconds;

long long ms_since(clock::time_point start) {
  return std::chrono::duration_cast<milliseconds>(clock::now() - start).count();
}

class deadlines : public engine_test {
 protected:
  // A statement that runs for seconds: PostgreSQL sleeps; SQLite counts (a recursive CTE of
  // a few hundred million rows, which only an interrupt stops).
  std::string slow() const {
    return pg() ? "SELECT pg_sleep(5)"
                : "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < "
                  "300000000) SELECT count(*) FROM c";
  }
  void with_db(std::function<asio::awaitable<void>(database&)> body) {
    with_table("d", "(v INTEGER)", std::move(body));
  }
};

// An ordinary helper: it knows nothing of deadlines.
asio::awaitable<void> helper(const database& db, std::string sql) {
  co_await db.execute(sql);
}

asio::awaitable<void> handler(const database& db, std::string slow_sql) {
  co_await db.execute("INSERT INTO d VALUES (1)");
  co_await helper(db, slow_sql);  // stopped at the handler's deadline
  co_await db.execute("INSERT INTO d VALUES (2)");
}

TEST_P(deadlines, follow_the_task_into_helpers) {
  with_db([this](database& db) -> asio::awaitable<void> {
    const auto start = clock::now();
    const std::string message = co_await expect_sqlstate("57014", [&]() -> asio::awaitable<void> {
      co_await with_timeout(milliseconds(200), handler(db, slow()));
    });
    const long long took = ms_since(start);
    std::printf("[ deadline] %s: a helper's slow statement stopped after %lld ms (deadline 200)\n",
                GetParam().name.c_str(), took);
    EXPECT_GE(took, 190);
    EXPECT_LT(took, 250 + (pg() ? 500 : 50));
    EXPECT_NE(message.find("timed out after 200 ms"), std::string::npos) << message;
    // The database is usable at once; the statement after the slow one never ran.
    EXPECT_EQ(co_await db.query_scalar<std::int64_t>("SELECT count(*) FROM d"), 1);
  });
}

// A deadline that did not pass holds nothing once its operation is over: the io_context runs out
// of work at once, not when the deadline would have come.
TEST_P(deadlines, a_deadline_that_did_not_pass_does_not_keep_the_io_context_running) {
  asio::io_context io;
  bool done = false;
  auto body = [&]() -> asio::awaitable<void> {
    database db = co_await open(GetParam().url);
    co_await with_timeout(std::chrono::hours(1), db.query("SELECT 1"));
    for (int i = 0; i < 3; ++i)
      co_await with_timeout(std::chrono::hours(1), db.query("SELECT 2"));
    co_await db.close();
    done = true;
  };
  asio::co_spawn(io, body(), asio::detached);
  const auto start = clock::now();
  io.run_for(std::chrono::seconds(20));
  EXPECT_TRUE(done);
  EXPECT_TRUE(io.stopped()) << "something still waits on the io_context";
  EXPECT_LT(ms_since(start), 5000) << "run() returned only when the deadline's timer expired";
}

TEST_P(deadlines, reach_child_coroutines_and_the_earlier_of_nested_ones_wins) {
  with_db([this](database& db) -> asio::awaitable<void> {
    // A child awaited inside the operation (an operand of ||, on the task's executor).
    auto start = clock::now();
    co_await expect_sqlstate("57014", [&]() -> asio::awaitable<void> {
      co_await with_timeout(milliseconds(200), [&]() -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        co_await asio::co_spawn(ex, helper(db, slow()), asio::use_awaitable);
      }());
    });
    EXPECT_LT(ms_since(start), 250 + (pg() ? 500 : 50));
    // Nested: the inner, later deadline changes nothing; the inner, earlier one applies.
    start = clock::now();
    co_await expect_sqlstate("57014", [&]() -> asio::awaitable<void> {
      co_await with_timeout(milliseconds(150),
                            with_timeout(milliseconds(5000), helper(db, slow())));
    });
    const long long outer_wins = ms_since(start);
    start = clock::now();
    co_await expect_sqlstate("57014", [&]() -> asio::awaitable<void> {
      co_await with_timeout(milliseconds(5000),
                            with_timeout(milliseconds(150), helper(db, slow())));
    });
    const long long inner_wins = ms_since(start);
    EXPECT_LT(outer_wins, 200 + (pg() ? 500 : 50));
    EXPECT_LT(inner_wins, 200 + (pg() ? 500 : 50));
    EXPECT_GE(outer_wins, 140);
    EXPECT_GE(inner_wins, 140);
  });
}

TEST_P(deadlines, a_statement_started_after_the_deadline_never_runs) {
  with_db([](database& db) -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    bool child_done = false;
    std::string child_state;
    co_await expect_sqlstate("57014", [&]() -> asio::awaitable<void> {
      co_await with_timeout(milliseconds(100), [&]() -> asio::awaitable<void> {
        // A child started on the task's executor, which outlives the operation and writes
        // after the deadline.
        asio::co_spawn(
            co_await asio::this_coro::executor,
            [&db, &child_done, &child_state]() -> asio::awaitable<void> {
              asio::steady_timer t(co_await asio::this_coro::executor, milliseconds(200));
              co_await t.async_wait(asio::use_awaitable);
              try {
                co_await db.execute("INSERT INTO d VALUES (3)");
                child_state = "ran";
              } catch (const error& e) {
                child_state = e.sqlstate();
              }
              child_done = true;
            },
            asio::detached);
        asio::steady_timer t(co_await asio::this_coro::executor, milliseconds(5000));
        co_await t.async_wait(asio::use_awaitable);
      }());
    });
    for (int i = 0; i < 200 && !child_done; ++i) {
      asio::steady_timer t(ex, milliseconds(5));
      co_await t.async_wait(asio::use_awaitable);
    }
    EXPECT_TRUE(child_done);
    EXPECT_EQ(child_state, "57014");
    EXPECT_EQ(co_await db.query_scalar<std::int64_t>("SELECT count(*) FROM d"), 0);
    // A deadline already past when the operation starts: it fails at once, sending nothing.
    co_await expect_sqlstate("57014", [&]() -> asio::awaitable<void> {
      co_await with_timeout(clock::now() - milliseconds(1), db.execute("INSERT INTO d VALUES (4)"));
    });
    EXPECT_EQ(co_await db.query_scalar<std::int64_t>("SELECT count(*) FROM d"), 0);
  });
}

TEST_P(deadlines, a_transaction_past_its_deadline_rolls_back) {
  with_db([this](database& db) -> asio::awaitable<void> {
    const auto start = clock::now();
    co_await expect_sqlstate("57014", [&]() -> asio::awaitable<void> {
      co_await with_timeout(milliseconds(200), db.transaction([&]() -> asio::awaitable<void> {
        co_await db.execute("INSERT INTO d VALUES (1)");
        co_await db.execute(slow());
      }));
    });
    EXPECT_LT(ms_since(start), 250 + (pg() ? 500 : 50));
    EXPECT_EQ(co_await db.query_scalar<std::int64_t>("SELECT count(*) FROM d"), 0);
    // The next transaction commits.
    co_await db.transaction(
        [&]() -> asio::awaitable<void> { co_await db.execute("INSERT INTO d VALUES (2)"); });
    EXPECT_EQ(co_await db.query_scalar<std::int64_t>("SELECT count(*) FROM d"), 1);
  });
}

INSTANTIATE_TEST_SUITE_P(engines, deadlines, testing::ValuesIn(engine_cases()), engine_case_name);

// SQLite statements run inline: the deadline interrupts them (SQLite's progress handler), on
// the writer and on a reader, and the loop runs again right after.
TEST(sqlite_deadlines, an_inline_statement_is_interrupted_at_its_deadline_on_writer_and_reader) {
  const std::string path = temp_sqlite_path();
  const std::string counting =
      "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 300000000) "
      "SELECT count(*) FROM c";
  run([&]() -> asio::awaitable<void> {
    database db = co_await open("sqlite:" + path);
    co_await db.execute("CREATE TABLE d (v INTEGER)");
    auto ex = co_await asio::this_coro::executor;
    // A ticker on the same thread: how late it runs after the deadline.
    auto last_tick = std::make_shared<clock::time_point>(clock::now());
    auto ticking = std::make_shared<bool>(true);
    asio::co_spawn(
        ex,
        [last_tick, ticking]() -> asio::awaitable<void> {
          asio::steady_timer t(co_await asio::this_coro::executor);
          while (*ticking) {
            t.expires_after(milliseconds(5));
            co_await t.async_wait(asio::use_awaitable);
            *last_tick = clock::now();
          }
        },
        asio::detached);
    for (const char* where : {"a reader", "the writer, in a transaction"}) {
      const bool writer = std::string_view(where) != "a reader";
      const auto start = clock::now();
      co_await expect_sqlstate("57014", [&]() -> asio::awaitable<void> {
        if (writer)
          co_await with_timeout(milliseconds(100), db.transaction([&]() -> asio::awaitable<void> {
            co_await db.execute("INSERT INTO d VALUES (1)");
            co_await db.query(counting);
          }));
        else
          co_await with_timeout(milliseconds(100), db.query(counting));
      });
      const long long took = ms_since(start);
      const auto deadline = start + milliseconds(100);
      asio::steady_timer settle(ex, milliseconds(20));
      co_await settle.async_wait(asio::use_awaitable);
      const long long tick_after =
          std::chrono::duration_cast<milliseconds>(*last_tick - deadline).count();
      std::printf(
          "[ deadline] sqlite, %s: interrupted after %lld ms (deadline 100), the ticker "
          "ran again %lld ms after the deadline\n",
          where, took, tick_after);
      EXPECT_GE(took, 95);
      EXPECT_LT(took, 150);
      EXPECT_LT(tick_after, 50);
      // Usable at once; the transaction's insert was rolled back.
      EXPECT_EQ(co_await db.query_scalar<std::int64_t>("SELECT count(*) FROM d"), 0);
      EXPECT_EQ(co_await db.query_scalar<std::int64_t>("SELECT 40 + 2"), 42);
    }
    *ticking = false;
    co_await db.close();
  });
  remove_sqlite_file(path);
}

// Many tasks on four threads, each with its own deadline: the deadline's cancellation never
// races the operation (it runs on a strand), and every task ends on time.
TEST(deadlines_on_threads, many_tasks_with_deadlines_on_a_multi_threaded_executor) {
  std::vector<engine_case> cases = engine_cases();
  for (const engine_case& c : cases) {
    if (c.name == "sqlite_memory") continue;
    asio::thread_pool pool(4);
    std::atomic<int> ok{0}, timed_out{0}, other{0};
    const bool pg = c.name == "postgres";
    const std::string sleep_sql =
        pg ? "SELECT pg_sleep(0.02)"
           : "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < "
             "30000) SELECT count(*) FROM c";
    std::optional<database> db;
    std::atomic<bool> opened{false};
    asio::co_spawn(
        pool,
        [&]() -> asio::awaitable<void> {
          db = co_await open(c.url);
          opened = true;
        },
        asio::detached);
    for (int i = 0; i < 1000 && !opened; ++i)
      std::this_thread::sleep_for(milliseconds(5));
    ASSERT_TRUE(opened);
    for (int task = 0; task < 16; ++task) {
      asio::co_spawn(
          pool,
          [&, task]() -> asio::awaitable<void> {
            for (int round = 0; round < 10; ++round) {
              try {
                co_await with_timeout(milliseconds(task % 2 ? 1000 : 10), db->query(sleep_sql));
                ++ok;
              } catch (const error& e) {
                if (e.sqlstate() == "57014") {
                  ++timed_out;
                } else {
                  ++other;  // (said, so that a failure here says what it was)
                  std::fprintf(stderr, "[ deadline] %s: task %d: %s\n", c.name.c_str(), task,
                               e.what());
                }
              }
            }
          },
          asio::detached);
    }
    const auto start = clock::now();
    while (ok + timed_out + other < 160 && clock::now() - start < 60s)
      std::this_thread::sleep_for(milliseconds(10));
    EXPECT_EQ(ok + timed_out + other, 160) << c.name;
    EXPECT_EQ(other, 0) << c.name;
    EXPECT_GT(ok, 0) << c.name;
    std::printf("[ deadline] %s on 4 threads: %d ok, %d timed out\n", c.name.c_str(), ok.load(),
                timed_out.load());
    std::atomic<bool> closed{false};
    asio::co_spawn(
        pool,
        [&]() -> asio::awaitable<void> {
          co_await db->close();
          closed = true;
        },
        asio::detached);
    for (int i = 0; i < 1000 && !closed; ++i)
      std::this_thread::sleep_for(milliseconds(5));
    db.reset();
    pool.join();
    if (!c.file.empty()) remove_sqlite_file(c.file);
  }
}

}  // namespace
}  // namespace awaitdb::test
