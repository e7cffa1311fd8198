// Work after commit (awaitdb::after_commit), on every engine: registered from helpers without a
// handle, run once the outermost transaction commits, in order, after the connection is back;
// never on rollback; a savepoint rolled back drops its own; a retried transaction runs only the
// committed attempt's; a throwing action is reported and undoes nothing.
#include "support.hpp"
#include <awaitdb/observer.hpp>

#include <boost/asio/this_coro.hpp>

#include <stdexcept>

namespace awaitdb::test {
namespace {

class after_commit_actions : public engine_test {
 protected:
  void with_db(std::function<asio::awaitable<void>(database&)> body) {
    with_table("a", "(v INTEGER)", std::move(body));
  }
};

// A helper deep inside the transaction: it knows nothing of the transaction but the task.
asio::awaitable<void> record(const database& db, std::vector<std::string>& log, std::string what) {
  co_await db.execute("INSERT INTO a VALUES (1)");
  auto ex = co_await asio::this_coro::executor;
  after_commit(ex, [&log, what] { log.push_back(what); });
}

TEST_P(after_commit_actions, run_once_in_order_after_the_outermost_commit) {
  with_db([](database& db) -> asio::awaitable<void> {
    std::vector<std::string> log;
    pool_stats during{};
    co_await db.transaction([&]() -> asio::awaitable<void> {
      co_await record(db, log, "first");
      co_await db.transaction([&]() -> asio::awaitable<void> {  // a savepoint, released
        co_await record(db, log, "in a savepoint");
      });
      EXPECT_TRUE(log.empty());  // not when the savepoint is released
      auto ex = co_await asio::this_coro::executor;
      after_commit(ex, [&log, &db, &during] {
        during = db.stats();
        log.push_back("last");
      });
    });
    EXPECT_EQ(log, std::vector<std::string>({"first", "in a savepoint", "last"}));
    EXPECT_EQ(during.in_use, 0u);  // the connection was back when they ran
    // Rolled back: none runs.
    log.clear();
    try {
      co_await db.transaction([&]() -> asio::awaitable<void> {
        co_await record(db, log, "rolled back");
        throw std::runtime_error("undo");
      });
    } catch (const std::runtime_error&) {
    }
    EXPECT_TRUE(log.empty());
    // A savepoint rolled back drops its own, the transaction's others run.
    co_await db.transaction([&]() -> asio::awaitable<void> {
      co_await record(db, log, "kept");
      try {
        co_await db.transaction([&]() -> asio::awaitable<void> {
          co_await record(db, log, "dropped");
          throw std::runtime_error("undo the savepoint");
        });
      } catch (const std::runtime_error&) {
      }
    });
    EXPECT_EQ(log, std::vector<std::string>({"kept"}));
    // Outside a transaction: refused.
    auto ex = co_await asio::this_coro::executor;
    try {
      after_commit(ex, [] {});
      ADD_FAILURE() << "registered outside a transaction";
    } catch (const error& e) {
      EXPECT_EQ(e.sqlstate(), "25P01");
    }
  });
}

class failures_seen : public observer {
 public:
  void after_commit_failed(const after_commit_event& e) noexcept override {
    try {
      std::rethrow_exception(e.failure);
    } catch (const std::exception& x) {
      messages.push_back(x.what());
    }
  }
  std::vector<std::string> messages;
};

TEST_P(after_commit_actions, a_throwing_action_is_reported_and_undoes_nothing) {
  with_db([](database& db) -> asio::awaitable<void> {
    auto seen = std::make_shared<failures_seen>();
    db.set_observer(seen);
    std::vector<std::string> log;
    const int value = co_await db.transaction([&]() -> asio::awaitable<int> {
      co_await record(db, log, "before");
      auto ex = co_await asio::this_coro::executor;
      after_commit(ex, [] { throw std::runtime_error("the mail server is down"); });
      co_await record(db, log, "after");
      co_return 7;
    });
    EXPECT_EQ(value, 7);
    EXPECT_EQ(log, std::vector<std::string>({"before", "after"}));
    EXPECT_EQ(seen->messages, std::vector<std::string>({"the mail server is down"}));
    EXPECT_EQ(co_await db.query_scalar<std::int64_t>("SELECT count(*) FROM a"), 2);
    db.set_observer(nullptr);
  });
}

TEST_P(after_commit_actions, a_retried_transaction_runs_only_the_committed_attempts) {
  with_db([](database& db) -> asio::awaitable<void> {
    std::vector<std::string> log;
    int attempt = 0;
    transaction_options o;
    o.retries = 3;
    o.retry_delay = std::chrono::milliseconds(1);
    co_await db.transaction(o, [&]() -> asio::awaitable<void> {
      ++attempt;
      co_await record(db, log, "attempt " + std::to_string(attempt));
      // The first two attempts fail as a serialization failure would.
      if (attempt < 3) throw error("40001", "could not serialize access");
    });
    EXPECT_EQ(attempt, 3);
    EXPECT_EQ(log, std::vector<std::string>({"attempt 3"}));
  });
}

INSTANTIATE_TEST_SUITE_P(engines, after_commit_actions, testing::ValuesIn(engine_cases()),
                         engine_case_name);

}  // namespace
}  // namespace awaitdb::test
