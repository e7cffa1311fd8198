// Task-context transactions, proven on both engines: each sentence of the contract has a test.
#include "support.hpp"
#include <awaitdb/timeout.hpp>

#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <stdexcept>

namespace awaitdb::test {
namespace {

using namespace boost::asio::experimental::awaitable_operators;

asio::awaitable<void> sleep_for(std::chrono::milliseconds d) {
  asio::steady_timer timer(co_await asio::this_coro::executor, d);
  co_await timer.async_wait(asio::use_awaitable);
}

asio::awaitable<std::int64_t> count(const database& db, std::string_view where = "1 = 1") {
  result r = co_await db.query("SELECT count(*) FROM t WHERE " + std::string(where));
  co_return r[0].get<std::int64_t>(0);
}

// An ordinary helper: takes the database like any function would, knows nothing of
// transactions.
asio::awaitable<void> audit(const database& db, std::string what) {
  co_await db.execute("INSERT INTO t (name) VALUES ($1)", what);
}

class transactions : public testing::TestWithParam<engine_case> {
 protected:
  void TearDown() override {
    if (!GetParam().file.empty()) remove_sqlite_file(GetParam().file);
  }
  bool is_postgres() const { return GetParam().name == "postgres"; }

  void with_db(std::function<asio::awaitable<void>(database&)> body, int threads = 1) {
    run(
        [&]() -> asio::awaitable<void> {
          database db = co_await open(GetParam().url);
          co_await db.execute("DROP TABLE IF EXISTS t");
          co_await db.execute(is_postgres()
                                  ? "CREATE TABLE t (id SERIAL PRIMARY KEY, name TEXT UNIQUE)"
                                  : "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE)");
          co_await body(db);
          co_await db.close();
        },
        60s, threads);
  }
};

TEST_P(transactions, commit_on_return_with_the_value_of_fn) {
  with_db([](database& db) -> asio::awaitable<void> {
    std::string v = co_await db.transaction([&]() -> asio::awaitable<std::string> {
      co_await db.execute("INSERT INTO t (name) VALUES ('a')");
      EXPECT_TRUE(co_await db.in_transaction());
      co_return "done";
    });
    EXPECT_EQ(v, "done");
    EXPECT_FALSE(co_await db.in_transaction());
    EXPECT_EQ(co_await count(db), 1);
    // A void transaction, and one that sends nothing.
    co_await db.transaction([&]() -> asio::awaitable<void> {
      co_await db.execute("INSERT INTO t (name) VALUES ('b')");
    });
    co_await db.transaction([&]() -> asio::awaitable<void> { co_return; });
    EXPECT_EQ(co_await count(db), 2);
  });
}

TEST_P(transactions, rollback_and_rethrow_on_exception) {
  with_db([](database& db) -> asio::awaitable<void> {
    try {
      co_await db.transaction([&]() -> asio::awaitable<void> {
        co_await db.execute("INSERT INTO t (name) VALUES ('a')");
        throw std::logic_error("business rule");
      });
      ADD_FAILURE() << "no exception";
    } catch (const std::logic_error& e) {
      EXPECT_STREQ(e.what(), "business rule");
    }
    EXPECT_EQ(co_await count(db), 0);
    // And with a database error inside.
    co_await db.execute("INSERT INTO t (name) VALUES ('x')");
    co_await expect_sqlstate("23505", [&]() -> asio::awaitable<void> {
      co_await db.transaction([&]() -> asio::awaitable<void> {
        co_await db.execute("INSERT INTO t (name) VALUES ('y')");
        co_await db.execute("INSERT INTO t (name) VALUES ('x')");
      });
    });
    EXPECT_EQ(co_await count(db), 1);
  });
}

TEST_P(transactions, queries_in_called_functions_and_child_coroutines_are_pinned) {
  with_db([this](database& db) -> asio::awaitable<void> {
    database copy = db;  // copies share the backend and the context
    try {
      co_await db.transaction([&]() -> asio::awaitable<void> {
        co_await audit(copy, "called");
        auto ex = co_await asio::this_coro::executor;
        co_await asio::co_spawn(ex, audit(db, "spawned"), asio::use_awaitable);
        co_await (audit(db, "and-left") && audit(copy, "and-right"));
        auto either = co_await (audit(db, "or") || sleep_for(10s));
        EXPECT_EQ(either.index(), 0u);
        EXPECT_EQ(co_await count(db), 5);  // the transaction sees its own work
        throw std::runtime_error("undo");
      });
    } catch (const std::runtime_error&) {
    }
    // All of it was in the transaction: the rollback removed everything.
    EXPECT_EQ(co_await count(db), 0);
    if (is_postgres()) {
      // One connection, one transaction id, across all of them.
      co_await db.transaction([&]() -> asio::awaitable<void> {
        row outer = (co_await db.query("SELECT pg_backend_pid(), txid_current()"))[0];
        auto ex = co_await asio::this_coro::executor;
        row child = (co_await asio::co_spawn(
            ex, db.query("SELECT pg_backend_pid(), txid_current()"), asio::use_awaitable))[0];
        auto [a, b] = co_await (db.query("SELECT pg_backend_pid(), txid_current()") &&
                                db.query("SELECT pg_backend_pid(), txid_current()"));
        for (const row& r : {child, a[0], b[0]}) {
          EXPECT_EQ(r.get<std::int32_t>(0), outer.get<std::int32_t>(0));
          EXPECT_EQ(r.get<std::int64_t>(1), outer.get<std::int64_t>(1));
        }
      });
    }
  });
}

// On a multi-threaded executor, Asio's cancellation asks for a strand: a strand made of the
// task's executor, and with_timeout (which runs its operation on one), keep the transaction.
TEST_P(transactions, strands_and_deadlines_inside_a_transaction_stay_pinned) {
  with_db([](database& db) -> asio::awaitable<void> {
    try {
      co_await db.transaction([&]() -> asio::awaitable<void> {
        auto strand = asio::make_strand(co_await asio::this_coro::executor);
        co_await asio::co_spawn(strand, audit(db, "on-a-strand"), asio::use_awaitable);
        co_await with_timeout(std::chrono::seconds(10), audit(db, "with-a-deadline"));
        EXPECT_EQ(co_await with_timeout(std::chrono::seconds(10), count(db)), 2);
        throw std::runtime_error("undo");
      });
    } catch (const std::runtime_error&) {
    }
    EXPECT_EQ(co_await count(db), 0);
  });
}

TEST_P(transactions, other_tasks_never_land_inside) {
  with_db([this](database& db) -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    bool outsider_done = false;
    try {
      co_await db.transaction([&]() -> asio::awaitable<void> {
        co_await db.execute("INSERT INTO t (name) VALUES ('inside')");
        // Another task (not started from the transaction) writes while this one sleeps.
        asio::co_spawn(
            ex,
            [&]() -> asio::awaitable<void> {
              EXPECT_FALSE(co_await db.in_transaction());
              co_await db.execute("INSERT INTO t (name) VALUES ('outside')");
              outsider_done = true;
            },
            asio::detached);
        co_await sleep_for(100ms);  // the thread is free meanwhile: this timer fires
        if (is_postgres()) {
          // It runs elsewhere: on another pooled connection (opened for it, which can take a
          // while under a sanitizer), in its own transaction, while this one is still open.
          for (int i = 0; i < 500 && !outsider_done; ++i)
            co_await sleep_for(10ms);
          EXPECT_TRUE(outsider_done);
        } else {
          // SQLite has one connection: the outsider waits (suspended) for this transaction.
          EXPECT_FALSE(outsider_done);
          EXPECT_EQ(co_await count(db, "name = 'outside'"), 0);
        }
        throw std::runtime_error("roll back");
      });
    } catch (const std::runtime_error&) {
    }
    while (!outsider_done)
      co_await sleep_for(5ms);
    // The rollback removed the transaction's work and nothing else.
    EXPECT_EQ(co_await count(db, "name = 'inside'"), 0);
    EXPECT_EQ(co_await count(db, "name = 'outside'"), 1);
  });
}

TEST_P(transactions, concurrent_transactions_are_isolated) {
  with_db([](database& db) -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    constexpr int tasks = 12;
    int finished = 0;
    for (int i = 0; i < tasks; ++i) {
      asio::co_spawn(
          ex,
          [&, i]() -> asio::awaitable<void> {
            std::string name = "task-" + std::to_string(i);
            try {
              co_await db.transaction([&]() -> asio::awaitable<void> {
                co_await db.execute("INSERT INTO t (name) VALUES ($1)", name);
                co_await sleep_for(std::chrono::milliseconds(5 + i % 4 * 5));
                // Sees its own row, none of the others' uncommitted ones.
                EXPECT_EQ(co_await count(db, "name = '" + name + "'"), 1);
                if (i % 3 == 0) throw std::runtime_error("abort " + name);
              });
            } catch (const std::runtime_error&) {
            }
            ++finished;
          },
          asio::detached);
    }
    while (finished < tasks)
      co_await sleep_for(5ms);
    EXPECT_EQ(co_await count(db), tasks - 4);  // tasks 0, 3, 6, 9 rolled back
    EXPECT_EQ(co_await count(db, "name = 'task-3'"), 0);
    EXPECT_EQ(co_await count(db, "name = 'task-4'"), 1);
  });
}

TEST_P(transactions, nested_transactions_are_savepoints) {
  with_db([](database& db) -> asio::awaitable<void> {
    co_await db.transaction([&]() -> asio::awaitable<void> {
      co_await db.execute("INSERT INTO t (name) VALUES ('outer')");
      try {
        co_await db.transaction([&]() -> asio::awaitable<void> {
          co_await db.execute("INSERT INTO t (name) VALUES ('inner-1')");
          co_await db.execute("INSERT INTO t (name) VALUES ('outer')");  // 23505
        });
        ADD_FAILURE() << "no error";
      } catch (const error& e) {
        EXPECT_EQ(e.sqlstate(), "23505");
      }
      // The savepoint rolled back: the outer transaction goes on.
      int depth2 = co_await db.transaction([&]() -> asio::awaitable<int> {
        co_await db.execute("INSERT INTO t (name) VALUES ('inner-2')");
        co_return co_await db.transaction([&]() -> asio::awaitable<int> {
          co_await db.execute("INSERT INTO t (name) VALUES ('inner-3')");
          co_return 2;
        });
      });
      EXPECT_EQ(depth2, 2);
    });
    EXPECT_EQ(co_await count(db), 3);
    EXPECT_EQ(co_await count(db, "name = 'inner-1'"), 0);
  });
}

TEST_P(transactions, a_failed_statement_aborts_the_transaction) {
  with_db([](database& db) -> asio::awaitable<void> {
    co_await db.execute("INSERT INTO t (name) VALUES ('x')");
    co_await expect_sqlstate("25P02", [&]() -> asio::awaitable<void> {
      co_await db.transaction([&]() -> asio::awaitable<void> {
        co_await db.execute("INSERT INTO t (name) VALUES ('y')");
        try {
          co_await db.execute("INSERT INTO t (name) VALUES ('x')");
        } catch (const error&) {
          // Swallowed: the transaction is aborted all the same, as on PostgreSQL.
        }
        co_await expect_sqlstate("25P02", [&] { return db.query("SELECT 1"); });
      });
    });
    EXPECT_EQ(co_await count(db), 1);  // 'y' was rolled back
  });
}

TEST_P(transactions, cancellation_rolls_back) {
  with_db([](database& db) -> asio::awaitable<void> {
    auto result = co_await (db.transaction([&]() -> asio::awaitable<void> {
      co_await db.execute("INSERT INTO t (name) VALUES ('cancelled')");
      co_await sleep_for(10s);
    }) || sleep_for(50ms));
    EXPECT_EQ(result.index(), 1u);
    EXPECT_EQ(co_await count(db), 0);
    // The connection is usable again, outside and inside transactions.
    co_await db.transaction([&]() -> asio::awaitable<void> {
      co_await db.execute("INSERT INTO t (name) VALUES ('after')");
    });
    EXPECT_EQ(co_await count(db), 1);
  });
}

TEST_P(transactions, a_coroutine_outliving_its_transaction_gets_a_clear_error) {
  with_db([](database& db) -> asio::awaitable<void> {
    bool checked = false;
    co_await db.transaction([&]() -> asio::awaitable<void> {
      auto ex = co_await asio::this_coro::executor;
      asio::co_spawn(
          ex,
          [&]() -> asio::awaitable<void> {
            co_await sleep_for(50ms);
            co_await expect_sqlstate("25P01", [&] { return db.query("SELECT 1"); });
            checked = true;
          },
          asio::detached);
      co_return;
    });
    while (!checked)
      co_await sleep_for(5ms);
  });
}

TEST_P(transactions, two_threads_many_tasks) {
  // Run under ThreadSanitizer by the test command: one database, a 2-thread io_context.
  with_db(
      [](database& db) -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        constexpr int tasks = 16, rounds = 10;
        std::atomic<int> finished{0};
        for (int i = 0; i < tasks; ++i) {
          asio::co_spawn(
              ex,
              [&, i]() -> asio::awaitable<void> {
                for (int k = 0; k < rounds; ++k) {
                  std::string name = std::to_string(i) + "-" + std::to_string(k);
                  if (k % 2 == 0) {
                    co_await db.transaction([&]() -> asio::awaitable<void> {
                      co_await db.execute("INSERT INTO t (name) VALUES ($1)", name);
                      co_await (db.query("SELECT count(*) FROM t") && db.query("SELECT 1"));
                    });
                  } else {
                    co_await db.execute("INSERT INTO t (name) VALUES ($1)", name);
                  }
                }
                ++finished;
              },
              asio::detached);
        }
        while (finished < tasks)
          co_await sleep_for(5ms);
        EXPECT_EQ(co_await count(db), tasks * rounds);
      },
      2);
}

INSTANTIATE_TEST_SUITE_P(engines, transactions, testing::ValuesIn(engine_cases()),
                         engine_case_name);

}  // namespace
}  // namespace awaitdb::test
