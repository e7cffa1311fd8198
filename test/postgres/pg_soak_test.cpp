// A soak: mixed operations (commits, rollbacks, failing statements, statements cancelled by short
// timers, savepoints) from 32 tasks on a 2-thread io_context with pipelining on. Afterwards the
// pool is idle, no server connection is left inside a transaction, and the rows are exactly what
// the committed transactions wrote. AWAITDB_TEST_SOAK_OPERATIONS sets the size (10,000 by default;
// fewer under ThreadSanitizer).
#include "postgres/pg_support.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/strand.hpp>

#include <cstdlib>
#include <stdexcept>

namespace awaitdb::test {
namespace {

using namespace boost::asio::experimental::awaitable_operators;
using std::chrono::milliseconds;

struct undo : std::runtime_error {
  undo() : std::runtime_error("undo") {}
};

// The op of rows written inside savepoints that are rolled back: never committed.
constexpr int undone = 1'000'000;

struct tally {
  std::atomic<int> committed{0}, wrong{0}, operations{0};
};

template <class Body>
asio::awaitable<void> must_fail(std::string_view state, tally& t, Body body) {
  try {
    co_await body();
  } catch (const error& e) {
    if (e.sqlstate() != state) {
      ADD_FAILURE() << "expected " << state << ", got " << e.what();
      ++t.wrong;
    }
    co_return;
  }
  ADD_FAILURE() << "a statement that must fail with " << state << " succeeded";
  ++t.wrong;
}

asio::awaitable<void> soak_task(const database& db, int task, int operations, tally& t) {
  for (int i = 0; i < operations; ++i) {
    ++t.operations;
    switch ((task * 7 + i) % 6) {
      case 0:  // a commit of two rows
        co_await db.transaction([&]() -> asio::awaitable<void> {
          co_await db.execute("INSERT INTO soak (task, op) VALUES ($1, $2)", task, i);
          co_await db.execute("INSERT INTO soak (task, op) VALUES ($1, $2)", task, -i);
        });
        ++t.committed;
        break;
      case 1:  // a rollback by exception
        try {
          co_await db.transaction([&]() -> asio::awaitable<void> {
            co_await db.execute("INSERT INTO soak (task, op) VALUES ($1, $2)", task, i);
            co_await db.execute("INSERT INTO soak (task, op) VALUES ($1, $2)", task, -i);
            throw undo();
          });
          ++t.wrong;
        } catch (const undo&) {
        }
        break;
      case 2:  // a savepoint whose statement fails; the transaction commits
        co_await db.transaction([&]() -> asio::awaitable<void> {
          co_await db.execute("INSERT INTO soak (task, op) VALUES ($1, $2)", task, i);
          co_await must_fail("22012", t, [&]() -> asio::awaitable<void> {
            co_await db.transaction([&]() -> asio::awaitable<void> {
              co_await db.execute("INSERT INTO soak (task, op) VALUES ($1, $2)", task, undone);
              co_await db.query("SELECT 1/0");
            });
          });
          co_await db.execute("INSERT INTO soak (task, op) VALUES ($1, $2)", task, -i);
        });
        ++t.committed;
        break;
      case 3:  // a failing statement outside a transaction
        co_await must_fail("22012", t,
                           [&]() -> asio::awaitable<void> { co_await db.query("SELECT 1/0"); });
        break;
      case 4: {  // a statement cancelled by a short timer (or finishing first)
        auto which = co_await (db.query("SELECT pg_sleep(0.005)") ||
                               sleep_for(milliseconds(1 + (task + i) % 5)));
        (void)which;
        break;
      }
      default:  // a nested savepoint undone by an exception; the transaction commits
        co_await db.transaction([&]() -> asio::awaitable<void> {
          co_await db.execute("INSERT INTO soak (task, op) VALUES ($1, $2)", task, i);
          try {
            co_await db.transaction([&]() -> asio::awaitable<void> {
              co_await db.execute("INSERT INTO soak (task, op) VALUES ($1, $2)", task, undone);
              throw undo();
            });
          } catch (const undo&) {
          }
          co_await db.execute("INSERT INTO soak (task, op) VALUES ($1, $2)", task, -i);
        });
        ++t.committed;
        break;
    }
  }
}

TEST_F(postgres, soak_of_mixed_operations_on_two_threads) {
  const char* size = std::getenv("AWAITDB_TEST_SOAK_OPERATIONS");
  const int total = size ? std::atoi(size) : 10000;
  constexpr int tasks = 32;
  tally t;
  const auto start = clock::now();
  run(
      [&]() -> asio::awaitable<void> {
        database db = co_await open(url("application_name=awaitdb-soak"));
        co_await db.execute("DROP TABLE IF EXISTS soak");
        co_await db.execute("CREATE TABLE soak (task INTEGER NOT NULL, op INTEGER NOT NULL)");
        auto ex = co_await asio::this_coro::executor;
        std::atomic<int> finished{0};
        std::exception_ptr failure;
        std::mutex failure_mutex;
        for (int task = 0; task < tasks; ++task)
          // Each task on its own strand: it cancels its statements with `||`, and Asio's
          // cancellation is not thread-safe.
          asio::co_spawn(asio::make_strand(ex), soak_task(db, task, total / tasks, t),
                         [&](std::exception_ptr e) {
                           if (e) {
                             std::lock_guard lock(failure_mutex);
                             if (!failure) failure = e;
                           }
                           ++finished;
                         });
        while (finished < tasks)
          co_await sleep_for(milliseconds(10));
        if (failure) std::rethrow_exception(failure);
        // The pool settles: nothing in flight, nobody waiting, every connection idle.
        const auto settle = clock::now();
        while ((db.stats().in_flight > 0 || db.stats().idle != db.stats().size) &&
               clock::now() - settle < std::chrono::seconds(5))
          co_await sleep_for(milliseconds(5));
        const pool_stats s = db.stats();
        EXPECT_EQ(s.in_flight, 0u);
        EXPECT_EQ(s.waiting, 0u);
        EXPECT_EQ(s.idle, s.size);
        // No server connection of ours is left inside a transaction.
        result open_tx = co_await db.query(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'awaitdb-soak' "
            "AND state LIKE 'idle in transaction%'");
        EXPECT_EQ(open_tx[0].get<std::int64_t>(0), 0);
        // Exactly two rows per committed transaction, none from anything rolled back.
        result rows =
            co_await db.query("SELECT count(*), count(*) FILTER (WHERE op = $1) FROM soak", undone);
        EXPECT_EQ(rows[0].get<std::int64_t>(0), 2 * static_cast<std::int64_t>(t.committed));
        EXPECT_EQ(rows[0].get<std::int64_t>(1), 0);
        co_await db.execute("DROP TABLE soak");
        co_await db.close();
      },
      600s, 2);
  std::printf(
      "[ soak    ] %d operations from %d tasks on 2 threads in %lld ms: %d transactions "
      "committed\n",
      t.operations.load(), tasks,
      static_cast<long long>(
          std::chrono::duration_cast<milliseconds>(clock::now() - start).count()),
      t.committed.load());
  EXPECT_EQ(t.wrong, 0);
}

}  // namespace
}  // namespace awaitdb::test
