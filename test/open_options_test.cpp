// Code given to open(): the session set-up on every new connection (both engines), and a
// password provider asked for each new PostgreSQL connection (rotating credentials).
#include "postgres/pg_support.hpp"

#include <boost/asio/detached.hpp>

#include <atomic>
#include <memory>
#include <stdexcept>

namespace awaitdb::test {
namespace {

class session_setup : public engine_test {};

TEST_P(session_setup, runs_on_every_connection_before_any_task_gets_it) {
  auto calls = std::make_shared<std::atomic<int>>(0);
  open_options o;
  o.on_connect([calls](session& s) -> asio::awaitable<void> {
    ++*calls;
    if (s.engine() == engine::postgres) {
      co_await s.execute("SET application_name = 'set-up'");
      co_await s.execute("SET search_path = awaitdb_setup, public");
    } else {
      co_await s.execute("PRAGMA cache_size = -1234");
    }
  });
  run([&]() -> asio::awaitable<void> {
    database db = co_await open(GetParam().url, o);
    EXPECT_GE(calls->load(), 1);
    if (pg()) {
      co_await db.execute("DROP SCHEMA IF EXISTS awaitdb_setup CASCADE");
      co_await db.execute("CREATE SCHEMA awaitdb_setup");
      co_await db.execute("CREATE TABLE awaitdb_setup.only_here (v INTEGER)");
      co_await db.execute("INSERT INTO only_here VALUES (7)");  // found through search_path
      // Three connections at once, each set up: the unqualified name resolves on all of them.
      auto ex = co_await asio::this_coro::executor;
      int done = 0;
      for (int i = 0; i < 3; ++i)
        asio::co_spawn(ex, db.transaction([&db]() -> asio::awaitable<void> {
          EXPECT_EQ(
              co_await db.query_scalar<std::string>("SELECT current_setting('application_name')"),
              "set-up");
          EXPECT_EQ(co_await db.query_scalar<std::int32_t>("SELECT v FROM only_here"), 7);
          co_await db.execute("SELECT pg_sleep(0.1)");
        }),
                       [&](std::exception_ptr e) {
                         EXPECT_FALSE(e);
                         ++done;
                       });
      while (done < 3)
        co_await sleep_for(5ms);
      EXPECT_EQ(calls->load(), static_cast<int>(db.stats().size));
      co_await db.execute("DROP SCHEMA awaitdb_setup CASCADE");
    } else {
      // The writer (a transaction), a reader (a query outside one), a stream's connection.
      co_await db.transaction([&db]() -> asio::awaitable<void> {
        EXPECT_EQ(co_await db.query_scalar<std::int64_t>("PRAGMA cache_size"), -1234);
      });
      EXPECT_EQ(co_await db.query_scalar<std::int64_t>("PRAGMA cache_size"), -1234);
      row_stream rows = co_await db.stream("PRAGMA cache_size");
      std::optional<row> r = co_await rows.next();
      CO_ASSERT(r.has_value());
      EXPECT_EQ(r->get<std::int64_t>(0), -1234);
      if (!GetParam().file.empty()) {
        EXPECT_GE(calls->load(), 3);  // writer, reader, stream
      }
    }
    co_await db.close();
  });
}

TEST_P(session_setup, a_failing_set_up_fails_the_opening_with_its_reason) {
  open_options o;
  o.on_connect([](session& s) -> asio::awaitable<void> {
    co_await s.execute("SELECT * FROM no_such_table_for_set_up");
  });
  run([&]() -> asio::awaitable<void> {
    try {
      co_await open(GetParam().url, o);
      ADD_FAILURE() << "opened";
    } catch (const error& e) {
      const std::string message = e.what();
      EXPECT_EQ(e.sqlstate(), "08001") << message;
      EXPECT_NE(message.find("set-up"), std::string::npos) << message;
      EXPECT_NE(message.find("42P01"), std::string::npos) << message;  // the set-up's own
      EXPECT_NE(e.server_message().find("no_such_table_for_set_up"), std::string::npos)
          << e.server_message();
      EXPECT_EQ(message.find("awaitdb-test-secret"), std::string::npos) << message;
    }
  });
}

INSTANTIATE_TEST_SUITE_P(engines, session_setup, testing::ValuesIn(engine_cases()),
                         engine_case_name);

// A role whose password changes between connections, as a rotated secret or an expiring token.
class credentials : public postgres {
 protected:
  void SetUp() override {
    postgres::SetUp();
    if (HasFatalFailure()) return;
    run([&]() -> asio::awaitable<void> {
      database admin = co_await open(url_);
      co_await admin.execute(drop_role);
      co_await admin.execute("CREATE ROLE awaitdb_rotating LOGIN PASSWORD 'first-Secret-1'");
      co_await admin.close();
    });
    // The test server's URL for that role, without a password.
    const auto at = url_.find('@');
    rotating_url_ = "postgresql://awaitdb_rotating" + url_.substr(at);
  }
  void TearDown() override {
    run([&]() -> asio::awaitable<void> {
      database admin = co_await open(url_);
      co_await admin.execute(
          "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = "
          "'awaitdb_rotating'");
      co_await admin.execute(drop_role);
      co_await admin.close();
    });
  }
  static constexpr const char* drop_role =
      "DO $$BEGIN IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'awaitdb_rotating') THEN "
      "DROP OWNED BY awaitdb_rotating; DROP ROLE awaitdb_rotating; END IF; END$$";
  std::string rotating_url_;
};

TEST_F(credentials, each_new_connection_asks_the_provider) {
  struct vault {
    std::string current = "first-Secret-1";
    int asked = 0;
  };
  auto v = std::make_shared<vault>();
  open_options o;
  o.password([v]() -> asio::awaitable<std::string> {
    ++v->asked;
    co_return v->current;
  });
  run([&]() -> asio::awaitable<void> {
    database db = co_await open(rotating_url_, o);
    EXPECT_EQ(v->asked, 1);
    EXPECT_EQ(co_await db.query_scalar<std::string>("SELECT current_user"), "awaitdb_rotating");
    // The secret rotates; the open connection keeps its session, a new one logs in with the
    // new secret.
    {
      database admin = co_await open(url_);
      co_await admin.execute("ALTER ROLE awaitdb_rotating PASSWORD 'second-Secret-2'");
      co_await admin.close();
    }
    v->current = "second-Secret-2";
    // A transaction holds the first connection: the one beside it needs a second.
    auto ex = co_await asio::this_coro::executor;
    bool beside = false;
    co_await db.transaction([&]() -> asio::awaitable<void> {
      asio::co_spawn(
          ex,
          [&db, &beside]() -> asio::awaitable<void> {
            co_await db.transaction(
                [&db]() -> asio::awaitable<void> { co_await db.execute("SELECT 1"); });
            beside = true;
          },
          asio::detached);
      for (int i = 0; i < 500 && !beside; ++i)
        co_await sleep_for(5ms);
    });
    EXPECT_TRUE(beside);
    EXPECT_EQ(v->asked, 2);
    EXPECT_EQ(db.stats().size, 2u);
    // LISTEN's own connection asks too.
    subscription sub = co_await db.listen("awaitdb_rotating_channel");
    EXPECT_EQ(v->asked, 3);
    co_await db.close();
  });
}

TEST_F(credentials, a_failing_provider_or_a_wrong_password_fails_the_opening_without_the_secret) {
  open_options failing;
  failing.password([]() -> asio::awaitable<std::string> {
    throw std::runtime_error("the vault is sealed");
    co_return std::string();
  });
  open_options wrong;
  wrong.password([]() -> asio::awaitable<std::string> { co_return "Stale-Token-XYZ"; });
  run([&]() -> asio::awaitable<void> {
    std::string message = co_await expect_sqlstate(
        "08001", [&]() -> asio::awaitable<void> { co_await open(rotating_url_, failing); });
    EXPECT_NE(message.find("the vault is sealed"), std::string::npos) << message;
    message = co_await expect_sqlstate(
        "08001", [&]() -> asio::awaitable<void> { co_await open(rotating_url_, wrong); });
    EXPECT_NE(message.find("password authentication failed"), std::string::npos) << message;
    EXPECT_EQ(message.find("Stale-Token"), std::string::npos) << message;
  });
}

}  // namespace
}  // namespace awaitdb::test
