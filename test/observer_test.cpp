// Observers: statements reported with their outcome on both engines, labels that follow the
// task, counters, and (PostgreSQL) server notices and waits for a connection.
#include "support.hpp"
#include <awaitdb/observer.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>

#include <mutex>

namespace awaitdb::test {
namespace {

// Everything reported, copied out of the views.
struct recorded_statement {
  std::string sql, label, sqlstate;
  bool in_transaction = false;
  std::uint64_t rows = 0, connection = 0;
  std::chrono::nanoseconds duration{0};
  std::size_t params = 0;
  std::vector<std::string> values;
};

class recorder : public observer {
 public:
  explicit recorder(bool parameters = false) : parameters_(parameters) {}
  bool wants_parameters() const noexcept override { return parameters_; }
  void statement_started(const statement_event& e) noexcept override {
    std::lock_guard lock(mutex);
    ++started;
    started_params.push_back(e.param_count);
  }
  void statement_finished(const statement_event& e) noexcept override {
    std::lock_guard lock(mutex);
    statements.push_back({std::string(e.sql),
                          std::string(e.label),
                          std::string(e.sqlstate),
                          e.in_transaction,
                          e.rows,
                          e.connection,
                          e.duration,
                          e.param_count,
                          {}});
    if (e.param_count > 0)
      for (std::size_t i = 0; i < e.param_count; ++i)
        statements.back().values.push_back(e.param_text(i));
  }
  void connection_acquired(const acquire_event& e) noexcept override {
    std::lock_guard lock(mutex);
    acquisitions.push_back(e);
    acquisitions.back().label = {};
    acquisitions.back().sqlstate = {};
  }
  void notice(const notice_event& e) noexcept override {
    std::lock_guard lock(mutex);
    notices.push_back(std::string(e.severity) + " " + std::string(e.sqlstate) + " " +
                      std::string(e.message));
  }

  std::mutex mutex;
  int started = 0;
  std::vector<std::size_t> started_params;  // each start's parameter count
  std::vector<recorded_statement> statements;
  std::vector<acquire_event> acquisitions;
  std::vector<std::string> notices;

 private:
  bool parameters_;
};

class observers : public engine_test {
 protected:
  void with_db(std::function<asio::awaitable<void>(database&)> body) {
    with_table("o", "(id INTEGER PRIMARY KEY, name TEXT)", std::move(body));
  }
};

asio::awaitable<void> labelled_work(const database& db) {
  co_await db.execute("INSERT INTO o (id, name) VALUES (10, 'labelled')");
  co_await db.transaction(
      [&]() -> asio::awaitable<void> { co_await db.query("SELECT name FROM o WHERE id = 10"); });
}

// A scalar query is reported as its statement: the rows it returned, and success when it ran,
// even when what it returned was not one value (the caller's error, not the statement's).
TEST_P(observers, scalar_queries_are_reported_with_their_rows) {
  with_db([](database& db) -> asio::awaitable<void> {
    co_await db.execute("INSERT INTO o (id, name) VALUES (1, 'a'), (2, 'b')");
    auto seen = std::make_shared<recorder>();
    db.set_observer(seen);
    EXPECT_EQ(co_await db.query_scalar<std::string>("SELECT name FROM o WHERE id = $1", 2), "b");
    co_await expect_sqlstate("P0003",
                             [&] { return db.query_scalar<std::int64_t>("SELECT id FROM o"); });
    co_await expect_sqlstate(
        "42P01", [&] { return db.query_scalar<std::int64_t>("SELECT id FROM no_such_table"); });
    db.set_observer(nullptr);

    std::lock_guard lock(seen->mutex);
    const auto& s = seen->statements;
    CO_ASSERT(s.size() == 3u);
    EXPECT_EQ(s[0].sql, "SELECT name FROM o WHERE id = $1");
    EXPECT_EQ(s[0].rows, 1u);
    EXPECT_TRUE(s[0].sqlstate.empty());
    EXPECT_EQ(s[1].rows, 2u);
    EXPECT_TRUE(s[1].sqlstate.empty());
    EXPECT_EQ(s[2].sqlstate, "42P01");
  });
}

TEST_P(observers, statements_are_reported_with_their_outcome) {
  with_db([](database& db) -> asio::awaitable<void> {
    auto seen = std::make_shared<recorder>();
    db.set_observer(seen);
    co_await db.execute("INSERT INTO o (id, name) VALUES (1, 'a'), (2, 'b')");
    result r = co_await db.query("SELECT id, name FROM o WHERE id >= $1", 1);
    EXPECT_EQ(r.size(), 2u);
    co_await expect_sqlstate("42P01", [&] { return db.query("SELECT * FROM no_such_table"); });
    co_await db.transaction([&]() -> asio::awaitable<void> {
      co_await db.execute("UPDATE o SET name = 'c' WHERE id = 1");
    });
    co_await with_label("request-7", labelled_work(db));
    db.set_observer(nullptr);
    co_await db.query("SELECT 1");  // not reported

    std::lock_guard lock(seen->mutex);
    const auto& s = seen->statements;
    EXPECT_EQ(seen->started, static_cast<int>(s.size()));
    CO_ASSERT(s.size() == 6u);
    EXPECT_EQ(s[0].rows, 2u);  // rows affected
    EXPECT_EQ(s[1].sql, "SELECT id, name FROM o WHERE id >= $1");
    EXPECT_EQ(s[1].rows, 2u);    // rows returned
    EXPECT_EQ(s[1].params, 0u);  // values only when asked for
    EXPECT_TRUE(s[1].sqlstate.empty());
    EXPECT_GT(s[1].duration.count(), 0);
    EXPECT_EQ(s[2].sqlstate, "42P01");
    EXPECT_FALSE(s[2].in_transaction);
    EXPECT_TRUE(s[3].in_transaction);
    EXPECT_EQ(s[3].rows, 1u);
    EXPECT_EQ(s[4].label, "request-7");
    EXPECT_FALSE(s[4].in_transaction);
    EXPECT_EQ(s[5].label, "request-7");  // kept inside the transaction
    EXPECT_TRUE(s[5].in_transaction);
    for (const auto& each : s) {
      if (each.label.empty()) {
        EXPECT_EQ(each.sql.find("labelled"), std::string::npos);
      }
    }
  });
}

TEST_P(observers, the_connection_that_ran_a_statement_is_named) {
  with_db([this](database& db) -> asio::awaitable<void> {
    auto seen = std::make_shared<recorder>();
    db.set_observer(seen);
    std::int64_t expected = 0;  // SQLite: the writer
    if (pg())
      expected = co_await db.query_scalar<std::int32_t>("SELECT pg_backend_pid()");
    else
      co_await db.query("SELECT 1");
    std::lock_guard lock(seen->mutex);
    CO_ASSERT(seen->statements.size() == 1u);
    // PostgreSQL: the server process; SQLite: the writer (0), or a reader (1…) for a file.
    if (pg() || GetParam().name == "sqlite_memory")
      EXPECT_EQ(seen->statements[0].connection, static_cast<std::uint64_t>(expected));
    else
      EXPECT_GE(seen->statements[0].connection, 1u);
  });
}

TEST_P(observers, parameter_values_are_reported_only_when_asked_for) {
  with_db([](database& db) -> asio::awaitable<void> {
    auto seen = std::make_shared<recorder>(true);
    db.set_observer(seen);
    const std::optional<std::int64_t> nothing;
    co_await db.query("SELECT id FROM o WHERE id = $1 OR name = $2 OR id = $3", 1, "secret",
                      nothing);
    std::lock_guard lock(seen->mutex);
    CO_ASSERT(seen->statements.size() == 1u);
    EXPECT_EQ(seen->statements[0].params, 3u);
    EXPECT_EQ(seen->statements[0].values, (std::vector<std::string>{"1", "secret", "NULL"}));
  });
}

TEST_P(observers, a_stream_is_reported_from_its_start_to_its_end) {
  with_db([this](database& db) -> asio::awaitable<void> {
    co_await db.execute("INSERT INTO o (id, name) VALUES (1, 'a'), (2, 'b'), (3, 'c')");
    auto seen = std::make_shared<recorder>(true);
    db.set_observer(seen);
    {
      row_stream s = co_await db.stream("SELECT id FROM o WHERE id >= $1 ORDER BY id", 1);
      {
        std::lock_guard lock(seen->mutex);
        EXPECT_EQ(seen->started, 1);
        EXPECT_TRUE(seen->statements.empty());  // not over before its last row
      }
      int n = 0;
      while (co_await s.next())
        ++n;
      EXPECT_EQ(n, 3);
    }
    {
      row_stream s = co_await db.stream("SELECT id FROM o ORDER BY id");
      CO_ASSERT(co_await s.next());
    }  // left after one row
    // A mistake, found when the statement is sent (SQLite) or at the first row (PostgreSQL).
    co_await expect_sqlstate("42601", [&]() -> asio::awaitable<void> {
      row_stream s = co_await db.stream("SELEC id FROM o");
      co_await s.next();
    });
    db.set_observer(nullptr);

    std::lock_guard lock(seen->mutex);
    const auto& s = seen->statements;
    EXPECT_EQ(seen->started, 3);
    CO_ASSERT(s.size() == 3u);
    EXPECT_EQ(s[0].sql, "SELECT id FROM o WHERE id >= $1 ORDER BY id");
    EXPECT_EQ(s[0].rows, 3u);
    EXPECT_TRUE(s[0].sqlstate.empty());
    EXPECT_GT(s[0].duration.count(), 0);
    // The values come with the start; the end, after the caller's arguments are gone, has none.
    EXPECT_EQ(seen->started_params[0], 1u);
    EXPECT_EQ(s[0].params, 0u);
    if (pg()) {
      EXPECT_GT(s[0].connection, 0u);  // the server process
    } else if (GetParam().name == "sqlite_file") {
      EXPECT_GE(s[0].connection, 1u);  // a reading connection, not the writer
    }
    EXPECT_EQ(s[1].rows, 1u);
    EXPECT_EQ(s[1].sqlstate, "57014");  // left before its end
    EXPECT_EQ(s[2].sqlstate, "42601");
    EXPECT_EQ(s[2].rows, 0u);
  });
}

TEST_P(observers, metrics_count_statements_failures_and_latency) {
  with_db([](database& db) -> asio::awaitable<void> {
    auto metrics = std::make_shared<statement_metrics>();
    db.set_observer(metrics);
    for (int i = 0; i < 10; ++i)
      co_await db.query("SELECT $1", i);
    co_await expect_sqlstate("42601", [&] { return db.query("SELEC 1"); });
    co_await expect_sqlstate("42P01", [&] { return db.query("SELECT * FROM no_such_table"); });
    co_await expect_sqlstate("23505",
                             [&] { return db.execute("INSERT INTO o (id) VALUES (1), (1)"); });
    const statement_metrics::snapshot s = metrics->read();
    EXPECT_EQ(s.statements, 13u);
    EXPECT_EQ(s.failures, 3u);
    EXPECT_EQ(s.failures_by_class, (std::map<std::string, std::uint64_t>{{"23", 1}, {"42", 2}}));
    EXPECT_EQ(s.latency.total(), 13u);
    EXPECT_GT(s.latency.quantile(0.5).count(), 0);
    EXPECT_LE(s.latency.quantile(0.5), s.latency.quantile(1.0));
    EXPECT_LT(s.latency.quantile(1.0), std::chrono::seconds(10));
  });
}

INSTANTIATE_TEST_SUITE_P(engines, observers, testing::ValuesIn(engine_cases()), engine_case_name);

// ---- PostgreSQL only

class pg_observers : public testing::Test {
 protected:
  void SetUp() override {
    auto u = postgres_url();
    ASSERT_TRUE(u) << "AWAITDB_TEST_POSTGRES_URL is not set: run the tests with scripts/test";
    url_ = *u;
  }
  std::string url_;
};

TEST_F(pg_observers, server_notices_reach_the_observer) {
  run([&]() -> asio::awaitable<void> {
    database db = co_await open(url_);
    auto seen = std::make_shared<recorder>();
    db.set_observer(seen);
    co_await db.execute("DO $$ BEGIN RAISE NOTICE 'hello %', 42; RAISE WARNING 'careful'; END $$");
    co_await db.execute("DROP TABLE IF EXISTS never_there_o");  // a NOTICE from the server itself
    std::lock_guard lock(seen->mutex);
    CO_ASSERT(seen->notices.size() == 3u);
    EXPECT_EQ(seen->notices[0], "NOTICE 00000 hello 42");
    EXPECT_EQ(seen->notices[1], "WARNING 01000 careful");
    EXPECT_EQ(seen->notices[2].substr(0, 13), "NOTICE 00000 ");
    co_await db.close();
  });
}

TEST_F(pg_observers, a_copy_is_reported_from_its_start_to_its_end) {
  run([&]() -> asio::awaitable<void> {
    database db = co_await open(url_);
    co_await db.execute("DROP TABLE IF EXISTS copied_o");
    co_await db.execute("CREATE TABLE copied_o (id bigint)");
    auto seen = std::make_shared<recorder>();
    db.set_observer(seen);
    {
      copy_writer w = co_await db.copy_in("COPY copied_o FROM STDIN");
      co_await w.write("1\n2\n3\n");
      EXPECT_EQ(co_await w.finish(), 3u);
    }
    {
      copy_reader r = co_await db.copy_out("COPY (SELECT * FROM copied_o ORDER BY id) TO STDOUT");
      int pieces = 0;
      while (co_await r.next())
        ++pieces;
      EXPECT_EQ(pieces, 3);
    }
    {
      copy_writer w = co_await db.copy_in("COPY copied_o FROM STDIN");
      co_await w.write("not a number\n");
      co_await expect_sqlstate("22P02", [&] { return w.finish(); });
    }
    {
      copy_reader r = co_await db.copy_out("COPY copied_o TO STDOUT");
      CO_ASSERT(co_await r.next());
    }  // left after one row
    db.set_observer(nullptr);
    co_await db.execute("DROP TABLE copied_o");
    co_await db.close();

    std::lock_guard lock(seen->mutex);
    const auto& s = seen->statements;
    EXPECT_EQ(seen->started, 4);
    CO_ASSERT(s.size() == 4u);
    EXPECT_EQ(s[0].sql, "COPY copied_o FROM STDIN");
    EXPECT_EQ(s[0].rows, 3u);
    EXPECT_TRUE(s[0].sqlstate.empty());
    EXPECT_GT(s[0].connection, 0u);
    EXPECT_GT(s[0].duration.count(), 0);
    EXPECT_EQ(s[1].rows, 3u);
    EXPECT_TRUE(s[1].sqlstate.empty());
    EXPECT_EQ(s[2].sqlstate, "22P02");
    EXPECT_EQ(s[3].rows, 1u);
    EXPECT_EQ(s[3].sqlstate, "57014");  // left before its end
  });
}

asio::awaitable<void> hold(const database& db, std::chrono::milliseconds d) {
  co_await db.transaction([&]() -> asio::awaitable<void> {
    co_await db.query("SELECT 1");
    asio::steady_timer t(co_await asio::this_coro::executor, d);
    co_await t.async_wait(asio::use_awaitable);
  });
}

TEST_F(pg_observers, waits_for_a_connection_are_reported_apart_from_connecting) {
  run([&]() -> asio::awaitable<void> {
    database db =
        co_await open(url_ + (url_.find('?') == std::string::npos ? "?" : "&") + "pool_max_size=2");
    auto seen = std::make_shared<recorder>();
    db.set_observer(seen);
    auto ex = co_await asio::this_coro::executor;
    // The first transaction takes the idle connection, the second opens one, the third waits.
    asio::co_spawn(ex, hold(db, std::chrono::milliseconds(150)), asio::detached);
    asio::co_spawn(ex, hold(db, std::chrono::milliseconds(150)), asio::detached);
    co_await hold(db, std::chrono::milliseconds(0));
    std::lock_guard lock(seen->mutex);
    CO_ASSERT(seen->acquisitions.size() == 3u);
    const auto& a = seen->acquisitions;
    EXPECT_TRUE(a[0].exclusive);
    EXPECT_EQ(a[0].connect.count(), 0);
    EXPECT_GT(a[1].connect.count(), 0);  // opened for it
    EXPECT_EQ(a[2].connect.count(), 0);
    EXPECT_GE(a[2].waited, std::chrono::milliseconds(100));  // until one was given back
    EXPECT_LT(a[2].waited, std::chrono::seconds(3));
    co_await db.close();
  });
}

}  // namespace
}  // namespace awaitdb::test
