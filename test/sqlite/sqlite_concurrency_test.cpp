// SQLite under concurrency: readers beside an open transaction, locks held by another
// connection, waits that end (deadline, cancellation), work from a foreign executor.
#include "support.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <sqlite3.h>

#include <atomic>
#include <cstdlib>
#include <future>
#include <random>

namespace awaitdb::test {
namespace {

using namespace boost::asio::experimental::awaitable_operators;
using std::chrono::milliseconds;
using clock = std::chrono::steady_clock;

asio::awaitable<void> sleep_for(milliseconds d) {
  asio::steady_timer timer(co_await asio::this_coro::executor, d);
  co_await timer.async_wait(asio::use_awaitable);
}

long long ms_since(clock::time_point start) {
  return std::chrono::duration_cast<milliseconds>(clock::now() - start).count();
}

class sqlite_concurrency : public testing::TestWithParam<int> {
 protected:
  void TearDown() override { remove_sqlite_file(path_); }
  std::string url(std::string_view options = {}) const {
    return "sqlite:" + path_ + (options.empty() ? "" : "?" + std::string(options));
  }
  std::string path_ = temp_sqlite_path();
};

// 1. A transaction sleeps between two writes; meanwhile 1,000 reads of other tasks complete
//    without suspending and see the last committed state.
TEST_P(sqlite_concurrency, queries_run_beside_an_open_transaction_without_waiting) {
  const int threads = GetParam();
  run(
      [&]() -> asio::awaitable<void> {
        database db = co_await open(url());
        co_await db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER NOT NULL)");
        co_await db.execute("INSERT INTO t (id, v) VALUES (1, 1)");
        auto ex = co_await asio::this_coro::executor;
        std::atomic<bool> written{false}, open_tx{true}, tx_done{false};
        auto writer = [&]() -> asio::awaitable<void> {
          co_await db.transaction([&]() -> asio::awaitable<void> {
            co_await db.execute("UPDATE t SET v = 2 WHERE id = 1");
            written = true;
            co_await sleep_for(milliseconds(300));
            co_await db.execute("UPDATE t SET v = 3 WHERE id = 1");
            open_tx = false;
          });
          tx_done = true;
        };
        asio::co_spawn(ex, writer(), asio::detached);
        while (!written)
          co_await sleep_for(milliseconds(1));
        std::atomic<int> reads{0}, stale{0}, suspended{0};
        auto reader = [&](int count) -> asio::awaitable<void> {
          for (int i = 0; i < count; ++i) {
            auto marker = std::make_shared<std::atomic<bool>>(false);
            auto mark = [marker] { *marker = true; };  // (named: GCC 12)
            asio::post(co_await asio::this_coro::executor, std::move(mark));
            result r = co_await db.query("SELECT v FROM t WHERE id = $1", 1);
            // On one thread, the posted handler runs only if the query suspended.
            if (threads == 1 && *marker) ++suspended;
            if (r[0].get<std::int64_t>(0) != 1) ++stale;
            ++reads;
            co_await sleep_for(milliseconds(0));  // let the marker run before the next one
          }
        };
        for (int task = 0; task < 4; ++task)
          asio::co_spawn(ex, reader(250), asio::detached);
        while (reads < 1000)
          co_await sleep_for(milliseconds(1));
        EXPECT_TRUE(open_tx) << "the reads waited for the transaction";
        EXPECT_EQ(stale, 0) << "a read saw the open transaction's writes";
        EXPECT_EQ(suspended, 0) << "a read suspended";
        while (!tx_done)
          co_await sleep_for(milliseconds(1));
        EXPECT_EQ((co_await db.query("SELECT v FROM t WHERE id = 1"))[0].get<std::int64_t>(0), 3);
        co_await db.close();
      },
      30s, threads);
}

INSTANTIATE_TEST_SUITE_P(threads, sqlite_concurrency, testing::Values(1, 2),
                         [](const testing::TestParamInfo<int>& threads) {
                           return std::to_string(threads.param) + "_thread" +
                                  (threads.param > 1 ? "s" : "");
                         });

// Queries that only the writer can answer (a TEMP table is the writer's own) run there.
TEST_P(sqlite_concurrency, a_query_of_the_writers_temp_table_runs_on_the_writer) {
  run([&]() -> asio::awaitable<void> {
    database db = co_await open(url());
    co_await db.execute("CREATE TEMP TABLE scratch (v INTEGER)");
    co_await db.execute("INSERT INTO scratch VALUES (7)");
    EXPECT_EQ((co_await db.query("SELECT v FROM scratch"))[0].get<std::int64_t>(0), 7);
    co_await expect_sqlstate("42P01", [&]() -> asio::awaitable<void> {
      co_await db.query("SELECT v FROM no_such_table");
    });
    co_await db.close();
  });
}

class sqlite_locks : public testing::Test {
 protected:
  void TearDown() override { remove_sqlite_file(path_); }
  std::string url(std::string_view options = {}) const {
    return "sqlite:" + path_ + (options.empty() ? "" : "?" + std::string(options));
  }
  std::string path_ = temp_sqlite_path();
};

// Another connection (as another process would) holds the write lock for `hold`.
class lock_holder {
 public:
  lock_holder(const std::string& path, milliseconds hold) {
    std::promise<void> locked;
    auto ready = locked.get_future();
    thread_ = std::thread([this, path, hold, p = std::move(locked)]() mutable {
      sqlite3* db = nullptr;
      sqlite3_open(path.c_str(), &db);
      const bool ok = sqlite3_exec(db, "BEGIN EXCLUSIVE", nullptr, nullptr, nullptr) == SQLITE_OK;
      ok_ = ok;
      p.set_value();
      std::this_thread::sleep_for(hold);
      sqlite3_exec(db, "INSERT INTO t (v) VALUES ('held') ", nullptr, nullptr, nullptr);
      sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr);
      sqlite3_close(db);
    });
    ready.wait();
  }
  ~lock_holder() { thread_.join(); }
  bool locked() const { return ok_; }

 private:
  std::atomic<bool> ok_{false};
  std::thread thread_;
};

// A 10 ms timer's ticks, and the largest gap between two of them, until `stop`.
struct ticks {
  std::atomic<bool> stop{false}, done{false};
  long long worst_gap_ms = 0;
};

asio::awaitable<void> ticker(std::shared_ptr<ticks> t) {
  auto last = clock::now();
  while (!t->stop) {
    co_await sleep_for(milliseconds(10));
    t->worst_gap_ms = std::max(t->worst_gap_ms, ms_since(last));
    last = clock::now();
  }
  t->done = true;
}

// 2. A lock held by another connection never blocks the event loop; past busy_timeout, 55P03.
TEST_F(sqlite_locks, another_connections_lock_never_blocks_the_event_loop) {
  run([&]() -> asio::awaitable<void> {
    database db = co_await open(url());
    database impatient = co_await open(url("busy_timeout=200"));
    co_await db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)");
    auto ex = co_await asio::this_coro::executor;
    auto t = std::make_shared<ticks>();
    asio::co_spawn(ex, ticker(t), asio::detached);
    {
      lock_holder holder(path_, milliseconds(1000));
      CO_ASSERT(holder.locked());
      auto start = clock::now();
      const std::string message = co_await expect_sqlstate("55P03", [&]() -> asio::awaitable<void> {
        co_await impatient.execute("INSERT INTO t (v) VALUES ('impatient')");
      });
      EXPECT_GE(ms_since(start), 190);
      EXPECT_LT(ms_since(start), 900);
      EXPECT_NE(message.find("busy_timeout"), std::string::npos) << message;
      // Reads go on meanwhile (WAL readers never wait for a writer).
      EXPECT_EQ((co_await db.query("SELECT count(*) FROM t"))[0].get<std::int64_t>(0), 0);
      start = clock::now();
      co_await db.execute("INSERT INTO t (v) VALUES ('patient')");
      std::printf("[ locked  ] the insert succeeded %lld ms after it was sent (lock held 1000 ms)",
                  ms_since(start));
    }
    t->stop = true;
    while (!t->done)
      co_await sleep_for(milliseconds(1));
    std::printf("; largest gap between 10 ms ticks: %lld ms\n", t->worst_gap_ms);
    EXPECT_LT(t->worst_gap_ms, 50) << "the event loop was blocked";
    EXPECT_EQ((co_await db.query("SELECT count(*) FROM t"))[0].get<std::int64_t>(0), 2);
    co_await db.close();
    co_await impatient.close();
  });
}

// A transaction that may write takes the write lock at BEGIN (IMMEDIATE): another connection
// cannot slip a commit in between its reads and its writes. A read-only one takes none, and
// refuses writes.
TEST_F(sqlite_locks, transactions_take_the_write_lock_at_begin_unless_read_only) {
  run([&]() -> asio::awaitable<void> {
    database db = co_await open(url());
    co_await db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)");
    sqlite3* other = nullptr;
    sqlite3_open(path_.c_str(), &other);
    auto other_writes = [&] {
      return sqlite3_exec(other, "INSERT INTO t (v) VALUES ('other')", nullptr, nullptr, nullptr);
    };
    co_await db.transaction([&]() -> asio::awaitable<void> {
      (void)co_await db.query("SELECT count(*) FROM t");
      EXPECT_EQ(other_writes(), SQLITE_BUSY) << "the write lock was not taken at BEGIN";
      co_await db.execute("INSERT INTO t (v) VALUES ('mine')");
    });
    transaction_options read_only;
    read_only.read_only = true;
    co_await expect_sqlstate("25006", [&]() -> asio::awaitable<void> {
      co_await db.transaction(read_only, [&]() -> asio::awaitable<void> {
        EXPECT_EQ(other_writes(), SQLITE_OK) << "a read-only transaction held the write lock";
        co_await db.execute("INSERT INTO t (v) VALUES ('refused')");
      });
    });
    co_await db.execute("INSERT INTO t (v) VALUES ('after')");  // writes work again
    EXPECT_EQ((co_await db.query("SELECT count(*) FROM t"))[0].get<std::int64_t>(0), 3);
    sqlite3_close(other);
    co_await db.close();
  });
}

// 3. Waiting for another task's transaction ends at busy_timeout (55P03) or when cancelled.
TEST_F(sqlite_locks, waiting_for_another_tasks_transaction_is_bounded_and_cancellable) {
  run([&]() -> asio::awaitable<void> {
    database db = co_await open(url("busy_timeout=200"));
    co_await db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)");
    auto ex = co_await asio::this_coro::executor;
    std::atomic<bool> holding{false}, done{false};
    auto slow = [&]() -> asio::awaitable<void> {
      co_await db.transaction([&]() -> asio::awaitable<void> {
        co_await db.execute("INSERT INTO t (v) VALUES ('slow')");
        holding = true;
        co_await sleep_for(milliseconds(600));
      });
      done = true;
    };
    asio::co_spawn(ex, slow(), asio::detached);
    while (!holding)
      co_await sleep_for(milliseconds(1));
    auto start = clock::now();
    co_await expect_sqlstate("55P03", [&]() -> asio::awaitable<void> {
      co_await db.execute("INSERT INTO t (v) VALUES ('late')");
    });
    EXPECT_GE(ms_since(start), 190);
    EXPECT_LT(ms_since(start), 550);
    start = clock::now();
    auto which = co_await (db.execute("INSERT INTO t (v) VALUES ('cancelled')") ||
                           sleep_for(milliseconds(50)));
    EXPECT_EQ(which.index(), 1u);
    EXPECT_LT(ms_since(start), 150);
    EXPECT_EQ(db.stats().waiting, 0u);
    while (!done)
      co_await sleep_for(milliseconds(1));
    EXPECT_EQ((co_await db.query("SELECT count(*) FROM t"))[0].get<std::int64_t>(0), 1);
    co_await db.close();
  });
}

// 4. Tasks waiting for the writer are served in arrival order: 64 tasks on 4 threads run
//    transfer transactions on one file; none waits out busy_timeout while later arrivals
//    commit, and the longest wait for the writer stays short. (AWAITDB_TEST_FAIRNESS_SECONDS
//    sets the length: 10 s by default, less under the sanitizers.)
TEST_F(sqlite_locks, waiters_for_the_writer_are_served_in_arrival_order) {
  const char* length = std::getenv("AWAITDB_TEST_FAIRNESS_SECONDS");
  const auto seconds = std::chrono::seconds(length ? std::atoi(length) : 10);
  constexpr int tasks = 64, accounts = 100;
  std::atomic<long long> committed{0}, refused{0}, longest_wait_us{0};
  run(
      [&]() -> asio::awaitable<void> {
        database db = co_await open(url());
        co_await db.execute("CREATE TABLE account (id INTEGER PRIMARY KEY, balance INTEGER)");
        co_await db.transaction([&]() -> asio::awaitable<void> {
          for (int i = 0; i < accounts; ++i)
            co_await db.execute("INSERT INTO account (id, balance) VALUES ($1, 1000)", i);
        });
        auto ex = co_await asio::this_coro::executor;
        const auto end = clock::now() + seconds;
        std::atomic<int> running{tasks};
        auto transfers = [&](int task) -> asio::awaitable<void> {
          std::minstd_rand random(static_cast<unsigned>(task) + 1);
          while (clock::now() < end) {
            const int from = static_cast<int>(random() % accounts);
            const int to = (from + 1 + static_cast<int>(random() % (accounts - 1))) % accounts;
            const auto asked = clock::now();
            try {
              co_await db.transaction([&]() -> asio::awaitable<void> {
                const auto waited =
                    std::chrono::duration_cast<std::chrono::microseconds>(clock::now() - asked)
                        .count();
                long long seen = longest_wait_us.load();
                while (waited > seen && !longest_wait_us.compare_exchange_weak(seen, waited)) {
                }
                const auto have =
                    (co_await db.query("SELECT balance FROM account WHERE id = $1", from))[0]
                        .get<std::int64_t>(0);
                co_await db.execute("UPDATE account SET balance = $1 WHERE id = $2", have - 1,
                                    from);
                co_await db.execute("UPDATE account SET balance = balance + 1 WHERE id = $1", to);
              });
              ++committed;
            } catch (const error& e) {
              ++refused;
              ADD_FAILURE() << "task " << task << ": " << e.what();
            }
          }
          --running;
        };
        for (int task = 0; task < tasks; ++task)
          asio::co_spawn(ex, transfers(task), asio::detached);
        while (running > 0)
          co_await sleep_for(milliseconds(10));
        const auto total = (co_await db.query("SELECT sum(balance) FROM account"))[0];
        EXPECT_EQ(total.get<std::int64_t>(0), 1000 * accounts) << "a transfer was lost or torn";
        co_await db.close();
      },
      seconds + 60s, 4);
  std::printf(
      "[ fairness] %lld transactions committed by %d tasks on 4 threads in %lld s, %lld "
      "refused; longest wait for the writer %.1f ms\n",
      committed.load(), tasks, static_cast<long long>(seconds.count()), refused.load(),
      static_cast<double>(longest_wait_us.load()) / 1000.0);
  EXPECT_EQ(refused, 0);
  EXPECT_GT(committed, 0);
  EXPECT_LE(longest_wait_us.load(), 200'000) << "a task waited far longer than its turn";
}

// Work started inside a transaction on an executor that does not carry the task context cannot
// reach the transaction's connection: a write fails after busy_timeout with a message that
// says why, rather than waiting forever for the transaction that waits for it; a read runs.
// 5. The writer handed to a waiter whose io_context is then destroyed (before the waiter could
//    run) passes on to the next waiter: nobody is left waiting for a turn that never ends.
TEST_F(sqlite_locks, a_waiter_whose_io_context_is_destroyed_passes_the_writer_on) {
  asio::io_context io;
  // (Kept from running out of work, which would stop it: it is run in slices below.)
  auto keep_running = asio::make_work_guard(io);
  auto other = std::make_unique<asio::io_context>();
  database db;
  bool opened = false, holding = false, committed = false, last_done = false;
  auto run_until = [&](const bool& flag) {
    const auto limit = clock::now() + std::chrono::seconds(10);
    while (!flag && clock::now() < limit)
      io.run_for(milliseconds(5));
    return flag;
  };
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        db = co_await open(url());
        co_await db.execute("CREATE TABLE t (v TEXT)");
        opened = true;
      },
      asio::detached);
  ASSERT_TRUE(run_until(opened));
  // The first task holds the writer in a transaction for 100 ms.
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        co_await db.transaction([&]() -> asio::awaitable<void> {
          co_await db.execute("INSERT INTO t VALUES ('first')");
          holding = true;
          co_await sleep_for(milliseconds(100));
        });
        committed = true;
      },
      asio::detached);
  ASSERT_TRUE(run_until(holding));
  // The second waits for it on another io_context, which is never run again after this.
  asio::co_spawn(
      *other,
      [&]() -> asio::awaitable<void> {
        co_await db.execute("INSERT INTO t VALUES ('second')");
        ADD_FAILURE() << "the second task ran";
      },
      asio::detached);
  for (int i = 0; i < 1000 && db.stats().waiting == 0; ++i)
    other->poll();
  ASSERT_EQ(db.stats().waiting, 1u);
  // The third arrives after it.
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        co_await db.execute("INSERT INTO t VALUES ('third')");
        last_done = true;
      },
      asio::detached);
  ASSERT_TRUE(run_until(committed));  // the writer is now handed to the second
  io.run_for(milliseconds(50));
  EXPECT_FALSE(last_done);  // (its turn comes after the second's)
  other.reset();            // the second's context is gone with it: its turn passes on
  ASSERT_TRUE(run_until(last_done));
  bool counted = false;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        EXPECT_EQ(co_await db.query_scalar<std::string>(
                      "SELECT group_concat(v, ',') FROM (SELECT v FROM t ORDER BY rowid)"),
                  "first,third");
        EXPECT_EQ(db.stats().waiting, 0u);
        co_await db.close();
        counted = true;
      },
      asio::detached);
  ASSERT_TRUE(run_until(counted));
  keep_running.reset();
}

TEST_F(sqlite_locks, a_write_from_a_foreign_executor_inside_a_transaction_fails_clearly) {
  asio::thread_pool foreign(1);
  run([&]() -> asio::awaitable<void> {
    database db = co_await open(url("busy_timeout=200"));
    co_await db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)");
    co_await db.transaction([&]() -> asio::awaitable<void> {
      co_await db.execute("INSERT INTO t (v) VALUES ('inside')");
      auto read = [&]() -> asio::awaitable<std::int64_t> {
        co_return (co_await db.query("SELECT count(*) FROM t"))[0].get<std::int64_t>(0);
      };
      EXPECT_EQ(co_await asio::co_spawn(foreign, read(), asio::use_awaitable), 0)
          << "a read from outside the transaction sees only committed rows";
      const auto start = clock::now();
      auto write = [&]() -> asio::awaitable<void> {
        co_await db.execute("INSERT INTO t (v) VALUES ('foreign')");
      };
      const std::string message = co_await expect_sqlstate("55P03", [&]() -> asio::awaitable<void> {
        co_await asio::co_spawn(foreign, write(), asio::use_awaitable);
      });
      EXPECT_LT(ms_since(start), 1000);
      EXPECT_NE(message.find("executor"), std::string::npos) << message;
    });
    EXPECT_EQ((co_await db.query("SELECT count(*) FROM t"))[0].get<std::int64_t>(0), 1);
    co_await db.close();
  });
  foreign.join();
}

}  // namespace
}  // namespace awaitdb::test
