// Transaction options on PostgreSQL: isolation, read-only, deferrable; retries of real
// serialization failures and deadlocks; a COMMIT whose outcome is unknown.
#include "postgres/pg_support.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

#include <atomic>

namespace awaitdb::test {
namespace {

using std::chrono::milliseconds;
using level = transaction_options::isolation_level;

class pg_tx_options : public postgres {
 protected:
  void with_db(std::function<asio::awaitable<void>(database&)> body) {
    run([&]() -> asio::awaitable<void> {
      database db = co_await open(url_);
      co_await db.execute("DROP TABLE IF EXISTS txo");
      co_await db.execute("CREATE TABLE txo (id INTEGER PRIMARY KEY, k INTEGER, v INTEGER)");
      co_await body(db);
      co_await db.close();
    });
  }
};

asio::awaitable<std::string> show(const database& db, std::string_view setting) {
  result r = co_await db.query("SELECT current_setting($1)", setting);
  co_return r[0].get<std::string>(0);
}

TEST_F(pg_tx_options, isolation_read_only_and_deferrable_reach_the_server) {
  with_db([](database& db) -> asio::awaitable<void> {
    transaction_options o;
    o.isolation = level::serializable;
    o.read_only = true;
    o.deferrable = true;
    co_await db.transaction(o, [&]() -> asio::awaitable<void> {
      EXPECT_EQ(co_await show(db, "transaction_isolation"), "serializable");
      EXPECT_EQ(co_await show(db, "transaction_read_only"), "on");
      EXPECT_EQ(co_await show(db, "transaction_deferrable"), "on");
    });
    co_await expect_sqlstate("25006", [&]() -> asio::awaitable<void> {
      co_await db.transaction(o, [&]() -> asio::awaitable<void> {
        co_await db.execute("INSERT INTO txo VALUES (1, 1, 1)");
      });
    });
    transaction_options rr;
    rr.isolation = level::repeatable_read;
    co_await db.transaction(rr, [&]() -> asio::awaitable<void> {
      EXPECT_EQ(co_await show(db, "transaction_isolation"), "repeatable read");
      EXPECT_EQ(co_await show(db, "transaction_read_only"), "off");
    });
    co_await db.transaction([&]() -> asio::awaitable<void> {
      EXPECT_EQ(co_await show(db, "transaction_isolation"), "read committed");
    });
    // Options belong to the top level: a savepoint cannot have its own.
    co_await expect_sqlstate("25001", [&]() -> asio::awaitable<void> {
      co_await db.transaction([&]() -> asio::awaitable<void> {
        co_await db.transaction(rr, []() -> asio::awaitable<void> { co_return; });
      });
    });
  });
}

// Write skew: each transaction reads the rows of one key and inserts under the other. Under
// SERIALIZABLE one of the two fails with 40001 once both have read.
struct skew {
  std::atomic<int> reads{0}, attempts{0}, failures{0};
};

asio::awaitable<void> skewed(const database& db, transaction_options o, int mine, int other,
                             skew& s) {
  try {
    co_await db.transaction(o, [&]() -> asio::awaitable<void> {
      const int attempt = ++s.attempts;
      (void)attempt;
      (void)co_await db.query("SELECT coalesce(sum(v), 0) FROM txo WHERE k = $1", mine);
      // The first round of both waits until both have read (a real conflict), later rounds
      // go on.
      if (++s.reads <= 2)
        while (s.reads < 2)
          co_await sleep_for(milliseconds(2));
      co_await db.execute("INSERT INTO txo (id, k, v) VALUES ($1, $2, 1)",
                          mine * 1000 + s.attempts.load(), other);
    });
  } catch (const error& e) {
    EXPECT_EQ(e.sqlstate(), "40001") << e.what();
    ++s.failures;
  }
}

TEST_F(pg_tx_options, a_serialization_failure_is_retried_within_the_budget) {
  with_db([](database& db) -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    for (unsigned retries : {0u, 3u}) {
      co_await db.execute("DELETE FROM txo");
      transaction_options o;
      o.isolation = level::serializable;
      o.retries = retries;
      o.retry_delay = milliseconds(5);
      skew s;
      std::atomic<int> done{0};
      auto one = [&](int mine, int other) -> asio::awaitable<void> {
        co_await skewed(db, o, mine, other, s);
        ++done;
      };
      asio::co_spawn(ex, one(1, 2), asio::detached);
      asio::co_spawn(ex, one(2, 1), asio::detached);
      while (done < 2)
        co_await sleep_for(milliseconds(2));
      const auto rows = (co_await db.query("SELECT count(*) FROM txo"))[0].get<std::int64_t>(0);
      std::printf("[ retry   ] retries=%u: %d attempts, %d failed, %lld rows committed\n", retries,
                  s.attempts.load(), s.failures.load(), static_cast<long long>(rows));
      if (retries == 0) {
        EXPECT_EQ(s.failures, 1) << "one of the two must fail with 40001";
        EXPECT_EQ(rows, 1);
      } else {
        EXPECT_EQ(s.failures, 0);
        EXPECT_GE(s.attempts, 3) << "the loser ran again";
        EXPECT_EQ(rows, 2);
      }
    }
  });
}

TEST_F(pg_tx_options, a_deadlock_is_retried) {
  with_db([](database& db) -> asio::awaitable<void> {
    co_await db.execute("INSERT INTO txo VALUES (1, 0, 0), (2, 0, 0)");
    auto ex = co_await asio::this_coro::executor;
    transaction_options o;
    o.retries = 2;
    o.retry_delay = milliseconds(5);
    std::atomic<int> first_locks{0}, attempts{0}, done{0}, failures{0};
    auto cross = [&](int a, int b) -> asio::awaitable<void> {
      try {
        co_await db.transaction(o, [&]() -> asio::awaitable<void> {
          ++attempts;
          co_await db.execute("SET LOCAL deadlock_timeout = '50ms'");
          co_await db.execute("UPDATE txo SET v = v + 1 WHERE id = $1", a);
          if (++first_locks <= 2)
            while (first_locks < 2)
              co_await sleep_for(milliseconds(2));
          co_await db.execute("UPDATE txo SET v = v + 1 WHERE id = $1", b);
        });
      } catch (const error& e) {
        ADD_FAILURE() << "not retried: " << e.what();
        ++failures;
      }
      ++done;
    };
    asio::co_spawn(ex, cross(1, 2), asio::detached);
    asio::co_spawn(ex, cross(2, 1), asio::detached);
    while (done < 2)
      co_await sleep_for(milliseconds(2));
    EXPECT_EQ(failures, 0);
    EXPECT_GE(attempts, 3) << "the deadlock victim ran again";
    result r = co_await db.query("SELECT sum(v) FROM txo");
    EXPECT_EQ(r[0].get<std::int64_t>(0), 4);  // both transactions committed once each
  });
}

TEST_F(pg_tx_options, retrying_gives_up_past_the_budget_and_only_for_40001_and_40P01) {
  with_db([](database& db) -> asio::awaitable<void> {
    transaction_options o;
    o.retries = 2;
    o.retry_delay = milliseconds(1);
    int attempts = 0;
    co_await expect_sqlstate("40001", [&]() -> asio::awaitable<void> {
      co_await db.transaction(o, [&]() -> asio::awaitable<void> {
        ++attempts;
        co_await db.execute(
            "DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = 'serialization_failure'; "
            "END $$");
      });
    });
    EXPECT_EQ(attempts, 3);
    attempts = 0;
    co_await db.execute("INSERT INTO txo VALUES (1, 0, 0)");
    co_await expect_sqlstate("23505", [&]() -> asio::awaitable<void> {
      co_await db.transaction(o, [&]() -> asio::awaitable<void> {
        ++attempts;
        co_await db.execute("INSERT INTO txo VALUES (1, 0, 0)");
      });
    });
    EXPECT_EQ(attempts, 1);
  });
}

// The backend ends while COMMIT runs (a deferred trigger keeps it busy): the outcome is
// unknown, and said so (08007), never reported as a rollback, never retried.
TEST_F(pg_tx_options, a_connection_lost_during_commit_is_08007) {
  with_db([&](database& db) -> asio::awaitable<void> {
    co_await db.execute(
        "CREATE OR REPLACE FUNCTION txo_slow() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN PERFORM pg_sleep(2); RETURN NULL; END $$");
    co_await db.execute(
        "CREATE CONSTRAINT TRIGGER txo_slow AFTER INSERT ON txo DEFERRABLE INITIALLY DEFERRED "
        "FOR EACH ROW EXECUTE FUNCTION txo_slow()");
    database admin = co_await open(url_);
    auto ex = co_await asio::this_coro::executor;
    transaction_options o;
    o.retries = 3;
    int attempts = 0;
    std::atomic<std::int32_t> pid{0};
    auto killer = [&]() -> asio::awaitable<void> {
      while (pid == 0)
        co_await sleep_for(milliseconds(5));
      co_await sleep_for(milliseconds(300));  // COMMIT is running the trigger by now
      co_await admin.query("SELECT pg_terminate_backend($1)", pid.load());
    };
    asio::co_spawn(ex, killer(), asio::detached);
    const auto start = clock::now();
    co_await expect_sqlstate("08007", [&]() -> asio::awaitable<void> {
      co_await db.transaction(o, [&]() -> asio::awaitable<void> {
        ++attempts;
        co_await db.execute("INSERT INTO txo VALUES (1, 0, 0)");
        pid = (co_await db.query("SELECT pg_backend_pid()"))[0].get<std::int32_t>(0);
      });
    });
    EXPECT_EQ(attempts, 1);
    EXPECT_LT(clock::now() - start, std::chrono::seconds(2));
    co_await admin.close();
  });
}

}  // namespace
}  // namespace awaitdb::test
