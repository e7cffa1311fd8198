// Deadlines with awaitdb::with_timeout: a statement, and a whole transaction, stopped on the
// server when their time is up.
#include "postgres/pg_support.hpp"
#include <awaitdb/timeout.hpp>

#include <boost/asio/experimental/awaitable_operators.hpp>

namespace awaitdb::test {
namespace {

using namespace boost::asio::experimental::awaitable_operators;
using std::chrono::milliseconds;

long long ms(clock::duration d) {
  return std::chrono::duration_cast<milliseconds>(d).count();
}

TEST_F(postgres, a_statement_past_its_deadline_stops_on_the_server) {
  run([&]() -> asio::awaitable<void> {
    database db = co_await open(url_);
    database observer = co_await open(url_);
    auto start = clock::now();
    const std::string message = co_await expect_sqlstate("57014", [&]() -> asio::awaitable<void> {
      co_await with_timeout(milliseconds(200), db.query("SELECT pg_sleep(30)"));
    });
    const auto resumed = clock::now() - start;
    EXPECT_NE(message.find("timed out after 200 ms"), std::string::npos) << message;
    EXPECT_GE(ms(resumed), 190);
    EXPECT_LT(ms(resumed), 1000);
    const auto gone = co_await time_until_gone(observer, milliseconds(3000));
    std::printf(
        "[ deadline] statement: resumed after %lld ms, gone from the server %lld ms later\n",
        ms(resumed), ms(gone));
    EXPECT_LT(gone, std::chrono::seconds(1));
    // Before the deadline: the value, or the statement's own error at once.
    EXPECT_EQ(
        (co_await with_timeout(milliseconds(5000), db.query("SELECT 41 + 1")))[0].get<std::int32_t>(
            0),
        42);
    start = clock::now();
    co_await expect_sqlstate("22012", [&]() -> asio::awaitable<void> {
      co_await with_timeout(milliseconds(5000), db.query("SELECT 1/0"));
    });
    EXPECT_LT(clock::now() - start, std::chrono::seconds(1));
    co_await observer.close();
    co_await db.close();
  });
}

asio::awaitable<void> timed_out_sleep(const database& db, int& timed_out) {
  const std::string message = co_await expect_sqlstate("57014", [&]() -> asio::awaitable<void> {
    co_await with_timeout(milliseconds(50), db.query("SELECT pg_sleep(5)"));
  });
  if (!message.empty()) ++timed_out;
}

// A connection whose statements all timed out is closed by the library (one close stops them
// all); that is no failed open, so the next statement opens another at once and does not wait
// out the connect backoff, however young the closed connection was.
TEST_F(postgres, a_connection_closed_because_its_statements_timed_out_is_replaced_at_once) {
  run([&]() -> asio::awaitable<void> {
    database db = co_await open(
        with_options(url_, "connect_backoff_ms=3000&connect_backoff_max_ms=3000&pool_max_size=1"));
    std::int32_t last_pid = co_await db.query_scalar<std::int32_t>("SELECT pg_backend_pid()");
    for (int round = 0; round < 3; ++round) {
      // Four statements pipelined on the pool's one connection, all timed out.
      int timed_out = 0;
      co_await (timed_out_sleep(db, timed_out) && timed_out_sleep(db, timed_out) &&
                timed_out_sleep(db, timed_out) && timed_out_sleep(db, timed_out));
      EXPECT_EQ(timed_out, 4);
      const auto start = clock::now();
      const auto rows =
          co_await with_timeout(milliseconds(2000), db.query("SELECT pg_backend_pid()"));
      const std::int32_t pid = rows[0].get<std::int32_t>(0);
      // (Through PgBouncer the server's process may be the same for the new connection.)
      if (!through_pooler()) {
        EXPECT_NE(pid, last_pid) << "round " << round << ": the connection was not replaced";
      }
      last_pid = pid;
      EXPECT_LT(ms(clock::now() - start), 1000) << "round " << round;
    }
    co_await db.close();
  });
}

TEST_F(postgres, a_transaction_past_its_deadline_rolls_back_and_stops_on_the_server) {
  run([&]() -> asio::awaitable<void> {
    database db = co_await open(url_);
    database observer = co_await open(url_);
    co_await db.execute("DROP TABLE IF EXISTS deadline_t");
    co_await db.execute("CREATE TABLE deadline_t (v INTEGER)");
    auto body = [&]() -> asio::awaitable<void> {
      co_await db.execute("INSERT INTO deadline_t VALUES (1)");
      co_await db.query("SELECT pg_sleep(30)");
    };
    const auto start = clock::now();
    co_await expect_sqlstate("57014", [&]() -> asio::awaitable<void> {
      co_await with_timeout(milliseconds(300), db.transaction(body));
    });
    const auto resumed = clock::now() - start;
    EXPECT_LT(ms(resumed), 1000);
    const auto gone = co_await time_until_gone(observer, milliseconds(3000));
    std::printf(
        "[ deadline] transaction: resumed after %lld ms, gone from the server %lld ms later\n",
        ms(resumed), ms(gone));
    EXPECT_LT(gone, std::chrono::seconds(1));
    EXPECT_EQ((co_await db.query("SELECT count(*) FROM deadline_t"))[0].get<std::int64_t>(0), 0)
        << "the transaction was not rolled back";
    co_await db.execute("INSERT INTO deadline_t VALUES (2)");  // the database serves on
    co_await observer.close();
    co_await db.close();
  });
}

}  // namespace
}  // namespace awaitdb::test
