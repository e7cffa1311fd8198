// Nested savepoints rolled back by exceptions, from many tasks on a 2-thread io_context: every
// statement's outcome is checked, so a result read by the wrong task (a connection lent while
// a previous user's rollback was still in flight on it) fails the test.
#include "support.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <stdexcept>

namespace awaitdb::test {
namespace {

struct soak_case {
  std::string name;
  std::string options;
  friend void PrintTo(const soak_case& c, std::ostream* os) { *os << c.options; }
};

class savepoint_soak : public testing::TestWithParam<soak_case> {
 protected:
  std::string url() const {
    auto base = postgres_url();
    if (!base) return {};
    return *base + (base->find('?') == std::string::npos ? "?" : "&") + GetParam().options;
  }
};

struct business_rule : std::runtime_error {
  business_rule() : std::runtime_error("business rule") {}
};

// Expects `body` to fail with `state`; counts a wrong outcome.
template <class Body>
asio::awaitable<void> expect_failure(std::string_view state, std::atomic<int>& wrong, Body body) {
  try {
    co_await body();
  } catch (const awaitdb::error& e) {
    if (e.sqlstate() != state) {
      ADD_FAILURE() << "expected " << state << ", got " << e.what();
      ++wrong;
    }
    co_return;
  }
  ADD_FAILURE() << "a statement that must fail with " << state << " reported success";
  ++wrong;
}

// Statements outside transactions, on connections that transactions used before: each result
// must be its own.
asio::awaitable<void> checker(const database& db, int task, int rounds, std::atomic<int>& wrong) {
  for (int i = 0; i < rounds * 4; ++i) {
    const std::int32_t value = task * 100000 + i;
    result r = co_await db.query("SELECT $1::integer", value);
    if (r.size() != 1 || r[0].get<std::int32_t>(0) != value) {
      ADD_FAILURE() << "SELECT $1 returned " << r.size() << " rows";
      ++wrong;
    }
    co_await expect_failure("22012", wrong,
                            [&]() -> asio::awaitable<void> { co_await db.query("SELECT 1/0"); });
  }
}

asio::awaitable<void> one_task(const database& db, int task, int rounds, std::atomic<int>& wrong) {
  int committed = 0;
  for (int round = 0; round < rounds; ++round) {
    try {
      co_await db.transaction([&]() -> asio::awaitable<void> {
        std::uint64_t changed =
            co_await db.execute("UPDATE acct SET balance = balance + 1 WHERE id = $1", task);
        if (changed != 1) {
          ADD_FAILURE() << "UPDATE changed " << changed << " rows";
          ++wrong;
        }
        // A savepoint whose statement fails: the failure is reported, the savepoint undone.
        co_await expect_failure("22012", wrong, [&]() -> asio::awaitable<void> {
          co_await db.transaction([&]() -> asio::awaitable<void> {
            co_await db.execute("INSERT INTO marks (task, round) VALUES ($1, $2)", task, round);
            co_await db.execute("SELECT 1/0");
          });
        });
        // A duplicate key inside a savepoint inside a savepoint.
        co_await expect_failure("23505", wrong, [&]() -> asio::awaitable<void> {
          co_await db.transaction([&]() -> asio::awaitable<void> {
            co_await db.transaction([&]() -> asio::awaitable<void> {
              co_await db.execute("INSERT INTO acct (id, balance) VALUES ($1, 0)", task);
            });
          });
        });
        // Savepoints rolled back by a C++ exception, not by the database.
        try {
          co_await db.transaction([&]() -> asio::awaitable<void> {
            co_await db.execute("INSERT INTO marks (task, round) VALUES ($1, $2)", task, round);
            co_await db.transaction([&]() -> asio::awaitable<void> {
              co_await db.execute("INSERT INTO marks (task, round) VALUES ($1, $2)", task, -round);
              throw business_rule();
            });
          });
          ADD_FAILURE() << "the business rule did not propagate";
          ++wrong;
        } catch (const business_rule&) {
        }
        // A savepoint that commits.
        co_await db.transaction([&]() -> asio::awaitable<void> {
          co_await db.execute("INSERT INTO marks (task, round) VALUES ($1, $2)", task, round);
        });
        // Every third round ends in a rollback right after a savepoint's: two rollbacks in flight
        // as the connection goes back to the pool.
        if (round % 3 == 2) {
          try {
            co_await db.transaction([&]() -> asio::awaitable<void> {
              co_await db.execute("INSERT INTO marks (task, round) VALUES ($1, $2)", task, -round);
              throw business_rule();
            });
          } catch (const business_rule&) {
          }
          throw business_rule();
        }
        result r = co_await db.query("SELECT count(*) FROM marks WHERE task = $1", task);
        if (r.size() != 1 || r[0].get<std::int64_t>(0) != committed + 1) {
          ADD_FAILURE() << "task " << task << " round " << round << ": count(*) returned "
                        << r.size() << " rows"
                        << (r.size() == 1 ? ", value " + std::to_string(r[0].get<std::int64_t>(0))
                                          : std::string());
          ++wrong;
        }
      });
      ++committed;
    } catch (const business_rule&) {
    }
  }
}

TEST_P(savepoint_soak, every_result_belongs_to_its_statement) {
  ASSERT_TRUE(postgres_url()) << "AWAITDB_TEST_POSTGRES_URL is not set: run scripts/test";
  constexpr int tasks = 16, rounds = 25;
  std::atomic<int> wrong{0};
  run(
      [&]() -> asio::awaitable<void> {
        database db = co_await open(url());
        co_await db.execute("DROP TABLE IF EXISTS acct");
        co_await db.execute("DROP TABLE IF EXISTS marks");
        co_await db.execute("CREATE TABLE acct (id INTEGER PRIMARY KEY, balance BIGINT NOT NULL)");
        co_await db.execute("CREATE TABLE marks (task INTEGER NOT NULL, round INTEGER NOT NULL)");
        for (int t = 0; t < tasks; ++t)
          co_await db.execute("INSERT INTO acct VALUES ($1, 0)", t);
        auto ex = co_await asio::this_coro::executor;
        std::atomic<int> finished{0};
        std::exception_ptr failure;
        auto done = [&](std::exception_ptr e) {
          if (e && !failure) failure = e;
          ++finished;
        };
        for (int t = 0; t < tasks; ++t) {
          asio::co_spawn(ex, one_task(db, t, rounds, wrong), done);
          asio::co_spawn(ex, checker(db, t, rounds, wrong), done);
        }
        asio::steady_timer tick(ex);
        while (finished < 2 * tasks) {
          tick.expires_after(5ms);
          co_await tick.async_wait(asio::use_awaitable);
        }
        if (failure) std::rethrow_exception(failure);
        // Rounds 2, 5, 8 ... rolled back: 2 of every 3 committed.
        const int committed = rounds - (rounds + 1) / 3;
        result balances = co_await db.query("SELECT min(balance), max(balance) FROM acct");
        EXPECT_EQ(balances[0].get<std::int64_t>(0), committed);
        EXPECT_EQ(balances[0].get<std::int64_t>(1), committed);
        result marks = co_await db.query("SELECT count(*) FROM marks");
        EXPECT_EQ(marks[0].get<std::int64_t>(0), tasks * committed);
        pool_stats s = db.stats();
        EXPECT_EQ(s.in_flight, 0u);
        EXPECT_EQ(s.waiting, 0u);
        co_await db.close();
      },
      120s, 2);
  EXPECT_EQ(wrong.load(), 0);
}

INSTANTIATE_TEST_SUITE_P(postgres, savepoint_soak,
                         testing::Values(soak_case{"pipeline_on", "pipeline=on&pool_max_size=4"},
                                         soak_case{"pipeline_off", "pipeline=off&pool_max_size=4"}),
                         [](const testing::TestParamInfo<soak_case>& c) { return c.param.name; });

}  // namespace
}  // namespace awaitdb::test
