// Explicit batches (database::run(batch)): one outcome per statement, failures kept apart
// outside a transaction, the transaction's rule inside one, arguments owned, cancellation.
#include "support.hpp"
#include <awaitdb/timeout.hpp>

namespace awaitdb::test {
namespace {

class batches : public engine_test {
 protected:
  void with_db(std::function<asio::awaitable<void>(database&)> body) {
    with_table("b", "(id INTEGER PRIMARY KEY, name TEXT NOT NULL)", std::move(body));
  }
};

std::string sqlstate(const batch_result& r) {
  try {
    std::rethrow_exception(r.failure());
  } catch (const error& e) {
    return e.sqlstate();
  } catch (...) {
    return "not an awaitdb::error";
  }
}

TEST_P(batches, each_statement_succeeds_or_fails_on_its_own) {
  with_db([](database& db) -> asio::awaitable<void> {
    batch b;
    b.add_execute("INSERT INTO b (id, name) VALUES ($1, $2), ($3, $4)", 1, "one", 2,
                  std::string("two"));
    b.add("SELECT name FROM b ORDER BY id");
    b.add("SELECT * FROM no_such_table");
    b.add_execute("INSERT INTO b (id, name) VALUES (1, 'again')");  // duplicate key
    b.add("SELECT count(*) FROM b WHERE id > $1", 0);
    EXPECT_EQ(b.size(), 5u);
    std::vector<batch_result> out = co_await db.run(std::move(b));
    CO_ASSERT(out.size() == 5u);
    EXPECT_EQ(out[0].affected(), 2u);
    CO_ASSERT(out[1].ok());
    CO_ASSERT(out[1].rows().size() == 2u);
    EXPECT_EQ(out[1].rows()[1].get<std::string>(0), "two");
    EXPECT_FALSE(out[2].ok());
    EXPECT_EQ(sqlstate(out[2]), "42P01");
    EXPECT_EQ(sqlstate(out[3]), "23505");
    EXPECT_THROW((void)out[3].affected(), error);
    EXPECT_EQ(out[4].rows()[0].get<std::int64_t>(0), 2);  // outside a transaction: goes on
    batch none;
    EXPECT_TRUE((co_await db.run(std::move(none))).empty());
  });
}

TEST_P(batches, inside_a_transaction_a_failure_aborts_it) {
  with_db([](database& db) -> asio::awaitable<void> {
    try {
      co_await db.transaction([&]() -> asio::awaitable<void> {
        co_await db.execute("INSERT INTO b (id, name) VALUES (1, 'before')");
        batch b;
        b.add_execute("INSERT INTO b (id, name) VALUES (2, 'in the batch')");
        b.add_execute("INSERT INTO b (id, name) VALUES (1, 'duplicate')");
        b.add("SELECT count(*) FROM b");
        std::vector<batch_result> out = co_await db.run(std::move(b));
        CO_ASSERT(out.size() == 3u);
        EXPECT_TRUE(out[0].ok());
        EXPECT_EQ(sqlstate(out[1]), "23505");
        EXPECT_EQ(sqlstate(out[2]), "25P02");
        co_await expect_sqlstate("25P02", [&] { return db.query("SELECT 1"); });
      });
      ADD_FAILURE() << "committed";
    } catch (const error& e) {
      EXPECT_EQ(e.sqlstate(), "25P02");
    }
    EXPECT_EQ(co_await db.query_scalar<std::int64_t>("SELECT count(*) FROM b"), 0);
    // A batch that succeeds commits with its transaction.
    co_await db.transaction([&]() -> asio::awaitable<void> {
      batch b;
      for (int i = 1; i <= 3; ++i)
        b.add_execute("INSERT INTO b (id, name) VALUES ($1, $2)", i, "row " + std::to_string(i));
      for (const batch_result& r : co_await db.run(std::move(b)))
        EXPECT_EQ(r.affected(), 1u);
    });
    EXPECT_EQ(co_await db.query_scalar<std::int64_t>("SELECT count(*) FROM b"), 3);
  });
}

TEST_P(batches, on_postgresql_the_batch_shares_one_connection_and_is_cancellable) {
  if (!pg()) {
    // SQLite runs a batch inline, in order, on its writer (or readers): nothing to share.
    with_db([](database& db) -> asio::awaitable<void> {
      batch b;
      b.add("SELECT 1");
      EXPECT_EQ((co_await db.run(std::move(b)))[0].rows()[0].get<std::int64_t>(0), 1);
    });
    return;
  }
  with_db([](database& db) -> asio::awaitable<void> {
    batch b;
    for (int i = 0; i < 5; ++i)
      b.add("SELECT pg_backend_pid()");
    std::vector<batch_result> out = co_await db.run(std::move(b));
    for (const batch_result& r : out)
      EXPECT_EQ(r.rows()[0].get<std::int32_t>(0), out[0].rows()[0].get<std::int32_t>(0));
    // Cancelled by a deadline: it stops waiting; the connection serves the next statement.
    batch slow;
    slow.add("SELECT pg_sleep(5)");
    slow.add("SELECT 1");
    const auto start = std::chrono::steady_clock::now();
    co_await expect_sqlstate("57014", [&] { return with_timeout(100ms, db.run(std::move(slow))); });
    EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
    EXPECT_EQ(co_await db.query_scalar<std::int32_t>("SELECT 3"), 3);
  });
}

INSTANTIATE_TEST_SUITE_P(engines, batches, testing::ValuesIn(engine_cases()), engine_case_name);

}  // namespace
}  // namespace awaitdb::test
