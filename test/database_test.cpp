// The public contract, proven identical on SQLite (memory and file) and PostgreSQL.
#include "support.hpp"

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <cmath>
#include <limits>

namespace awaitdb::test {
namespace {

class contract : public testing::TestWithParam<engine_case> {
 protected:
  void TearDown() override {
    if (!GetParam().file.empty()) remove_sqlite_file(GetParam().file);
  }

  // Opens the database and runs `body` with it; tables named here are dropped first.
  void with_db(std::function<asio::awaitable<void>(database&)> body,
               std::vector<std::string> tables = {"t"}) {
    run([&]() -> asio::awaitable<void> {
      database db = co_await open(GetParam().url);
      for (const auto& table : tables)
        co_await db.execute("DROP TABLE IF EXISTS " + table);
      co_await body(db);
      co_await db.close();
    });
  }
};

TEST_P(contract, the_mission_example) {
  with_db([](database& db) -> asio::awaitable<void> {
    co_await db.execute("CREATE TABLE t (id BIGINT PRIMARY KEY, name TEXT NOT NULL)");
    std::uint64_t changed = co_await db.execute("INSERT INTO t VALUES ($1, $2)", 1, "ada");
    EXPECT_EQ(changed, 1u);
    result r = co_await db.query("SELECT id, name FROM t WHERE id = $1", 1);
    CO_ASSERT(r.size() == 1u);
    EXPECT_FALSE(r.empty());
    EXPECT_EQ(r.column_count(), 2u);
    EXPECT_EQ(r.column_name(0), "id");
    EXPECT_EQ(r.column_name(1), "name");
    int rows = 0;
    for (const row& row : r) {
      EXPECT_EQ(row.get<std::int64_t>(0), 1);
      EXPECT_EQ(row.get<std::string>("name"), "ada");
      ++rows;
    }
    EXPECT_EQ(rows, 1);
    int v = co_await db.transaction([&]() -> asio::awaitable<int> {
      co_await db.execute("UPDATE t SET name = $1 WHERE id = $2", "grace", 1);
      co_return 7;
    });
    EXPECT_EQ(v, 7);
    EXPECT_EQ((co_await db.query("SELECT name FROM t"))[0].get<std::string>(0), "grace");
  });
}

TEST_P(contract, engine_matches_url) {
  with_db(
      [](database& db) -> asio::awaitable<void> {
        EXPECT_EQ(db.engine(), GetParam().name == "postgres" ? engine::postgres : engine::sqlite);
        co_return;
      },
      {});
}

TEST_P(contract, execute_counts_changed_rows_only) {
  with_db([](database& db) -> asio::awaitable<void> {
    EXPECT_EQ(co_await db.execute("CREATE TABLE t (id BIGINT PRIMARY KEY, v INTEGER)"), 0u);
    for (std::int64_t i = 1; i <= 5; ++i)
      EXPECT_EQ(co_await db.execute("INSERT INTO t VALUES ($1, $2)", i, std::int32_t(i % 2)), 1u);
    EXPECT_EQ(co_await db.execute("UPDATE t SET v = 7 WHERE v = $1", 1), 3u);
    EXPECT_EQ(co_await db.execute("SELECT * FROM t"), 0u);
    EXPECT_EQ(co_await db.execute("DELETE FROM t WHERE id > $1", std::int64_t(3)), 2u);
    EXPECT_EQ(co_await db.execute("UPDATE t SET v = 1 WHERE id = 99"), 0u);
    result empty = co_await db.query("SELECT id FROM t WHERE id = 99");
    EXPECT_TRUE(empty.empty());
    EXPECT_EQ(empty.begin(), empty.end());
    EXPECT_EQ(empty.column_count(), 1u);
  });
}

TEST_P(contract, values_round_trip) {
  with_db([](database& db) -> asio::awaitable<void> {
    co_await db.execute(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, b BOOLEAN, i2 SMALLINT, i4 INTEGER, i8 BIGINT,"
        " d DOUBLE PRECISION, s TEXT, bin BYTEA)");
    const blob bytes{std::byte{0}, std::byte{1}, std::byte{0xff}, std::byte{0}, std::byte{'x'}};
    co_await db.execute(
        "INSERT INTO t VALUES (1, $1, $2, $3, $4, $5, $6, $7)", true,
        std::numeric_limits<std::int16_t>::min(), std::numeric_limits<std::int32_t>::max(),
        std::numeric_limits<std::int64_t>::min(), -1234.5625, "grüße, 世界 🙂", bytes);
    co_await db.execute("INSERT INTO t VALUES (2, $1, $2, $3, $4, $5, $6, $7)", false,
                        std::numeric_limits<std::int16_t>::max(),
                        std::numeric_limits<std::int32_t>::min(),
                        std::numeric_limits<std::int64_t>::max(), 1e300, std::string(), blob{});
    co_await db.execute("INSERT INTO t VALUES (3, $1, $2, $3, $4, $5, $6, $7)", std::nullopt,
                        std::optional<std::int16_t>(), std::optional<std::int32_t>(),
                        std::optional<std::int64_t>(), std::optional<double>(),
                        std::optional<std::string>(), std::optional<blob>());
    result r = co_await db.query("SELECT b, i2, i4, i8, d, s, bin FROM t ORDER BY id");
    CO_ASSERT(r.size() == 3u);
    EXPECT_TRUE(r[0].get<bool>("b"));
    EXPECT_EQ(r[0].get<std::int16_t>("i2"), std::numeric_limits<std::int16_t>::min());
    EXPECT_EQ(r[0].get<std::int32_t>("i4"), std::numeric_limits<std::int32_t>::max());
    EXPECT_EQ(r[0].get<std::int64_t>("i8"), std::numeric_limits<std::int64_t>::min());
    EXPECT_EQ(r[0].get<double>("d"), -1234.5625);
    EXPECT_EQ(r[0].get<std::string>("s"), "grüße, 世界 🙂");
    EXPECT_EQ(r[0].get<blob>("bin"), bytes);
    EXPECT_FALSE(r[1].get<bool>(0));
    EXPECT_EQ(r[1].get<std::int16_t>(1), std::numeric_limits<std::int16_t>::max());
    EXPECT_EQ(r[1].get<std::int32_t>(2), std::numeric_limits<std::int32_t>::min());
    EXPECT_EQ(r[1].get<std::int64_t>(3), std::numeric_limits<std::int64_t>::max());
    EXPECT_EQ(r[1].get<double>(4), 1e300);
    EXPECT_EQ(r[1].get<std::string>(5), "");
    EXPECT_FALSE(r[1].is_null(5));  // an empty string is not NULL
    EXPECT_EQ(r[1].get<blob>(6), blob{});
    EXPECT_FALSE(r[1].is_null(6));
    for (std::size_t c = 0; c < 7; ++c)
      EXPECT_TRUE(r[2].is_null(c)) << c;
    EXPECT_EQ(r[2].get<std::optional<bool>>(0), std::nullopt);
    EXPECT_EQ(r[2].get<std::optional<std::string>>("s"), std::nullopt);
    EXPECT_EQ(r[0].get<std::optional<std::int64_t>>("i8"),
              std::numeric_limits<std::int64_t>::min());
  });
}

TEST_P(contract, wider_reads_work_and_narrowing_checks_range) {
  with_db([](database& db) -> asio::awaitable<void> {
    co_await db.execute("CREATE TABLE t (small INTEGER, big BIGINT)");
    co_await db.execute("INSERT INTO t VALUES ($1, $2)", 42, std::int64_t(1) << 40);
    row r = (co_await db.query("SELECT small, big FROM t"))[0];
    EXPECT_EQ(r.get<std::int64_t>("small"), 42);
    EXPECT_EQ(r.get<double>("small"), 42.0);
    EXPECT_EQ(r.get<std::int16_t>("small"), 42);
    try {
      (void)r.get<std::int32_t>("big");
      ADD_FAILURE() << "narrowing did not throw";
    } catch (const error& e) {
      EXPECT_EQ(e.sqlstate(), "22003");
      EXPECT_NE(std::string(e.what()).find("\"big\""), std::string::npos) << e.what();
    }
  });
}

TEST_P(contract, bad_reads_are_clear_errors_naming_the_column) {
  with_db([](database& db) -> asio::awaitable<void> {
    co_await db.execute("CREATE TABLE t (id INTEGER, name TEXT, missing TEXT)");
    co_await db.execute("INSERT INTO t VALUES (1, 'x', NULL)");
    row r = (co_await db.query("SELECT id, name, missing FROM t"))[0];
    auto expect_error = [](auto read, std::string_view state, std::string_view mention) {
      try {
        read();
        ADD_FAILURE() << "no error";
      } catch (const error& e) {
        EXPECT_EQ(e.sqlstate(), state) << e.what();
        EXPECT_NE(std::string(e.what()).find(mention), std::string::npos) << e.what();
      }
    };
    expect_error([&] { (void)r.get<std::string>("missing"); }, "22004", "\"missing\"");
    expect_error([&] { (void)r.get<std::int64_t>(2); }, "22004", "std::optional");
    expect_error([&] { (void)r.get<double>("name"); }, "42804", "\"name\"");
    expect_error([&] { (void)r.get<std::int64_t>("name"); }, "42804", "\"name\"");
    expect_error([&] { (void)r.get<blob>("id"); }, "42804", "\"id\"");
    expect_error([&] { (void)r.get<std::int64_t>("nope"); }, "42703", "\"nope\"");
    expect_error([&] { (void)r.get<std::int64_t>(3); }, "42703", "3");
    expect_error([&] { (void)r.is_null(7); }, "42703", "7");
    EXPECT_EQ(r.get<std::string>("id"), "1");  // any scalar reads as its text
  });
}

TEST_P(contract, placeholders_are_numbered_on_both_engines) {
  with_db(
      [](database& db) -> asio::awaitable<void> {
        row r = (co_await db.query("SELECT $2 AS b, $1 AS a, $2 AS c", "first", "second"))[0];
        EXPECT_EQ(r.get<std::string>("a"), "first");
        EXPECT_EQ(r.get<std::string>("b"), "second");
        EXPECT_EQ(r.get<std::string>("c"), "second");
        // A "$1" inside a literal is text, not a placeholder.
        row lit = (co_await db.query("SELECT '$1' AS s, $1 AS p", 5))[0];
        EXPECT_EQ(lit.get<std::string>("s"), "$1");
        EXPECT_EQ(lit.get<std::int64_t>("p"), 5);
      },
      {});
}

TEST_P(contract, wrong_parameter_count) {
  with_db([](database& db) -> asio::awaitable<void> {
    co_await db.execute("CREATE TABLE t (a INTEGER, b INTEGER)");
    // (SQL built at run time: a literal with these mistakes does not compile.)
    const std::string insert = "INSERT INTO t VALUES ($1, $2)", one = "SELECT $1";
    std::string m = co_await expect_sqlstate("07001", [&] { return db.execute(insert, 1); });
    EXPECT_NE(m.find("takes 2 parameters"), std::string::npos) << m;
    co_await expect_sqlstate("07001", [&] { return db.query(one, 1, 2); });
    co_await expect_sqlstate("07001", [&] { return db.query(std::string("SELECT 1"), 1); });
    // Nothing was lost: the database still works.
    EXPECT_EQ(co_await db.execute("INSERT INTO t VALUES ($1, $2)", 1, 2), 1u);
  });
}

TEST_P(contract, sqlstates_are_the_same_on_both_engines) {
  with_db(
      [](database& db) -> asio::awaitable<void> {
        co_await db.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)");
        co_await db.execute(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL, qty INTEGER CHECK (qty >= "
            "0),"
            " parent_id INTEGER REFERENCES parent(id))");
        co_await db.execute("INSERT INTO parent VALUES (1)");
        co_await db.execute("INSERT INTO t VALUES (1, 'a', 1, 1)");
        co_await expect_sqlstate(sqlstate::unique_violation,
                                 [&] { return db.execute("INSERT INTO t VALUES (1, 'b', 1, 1)"); });
        co_await expect_sqlstate(sqlstate::not_null_violation, [&] {
          return db.execute("INSERT INTO t VALUES (2, NULL, 1, 1)");
        });
        co_await expect_sqlstate(sqlstate::check_violation, [&] {
          return db.execute("INSERT INTO t VALUES (3, 'c', -1, 1)");
        });
        co_await expect_sqlstate(sqlstate::foreign_key_violation, [&] {
          return db.execute("INSERT INTO t VALUES (4, 'd', 1, 99)");
        });
        co_await expect_sqlstate(sqlstate::syntax_error, [&] { return db.query("SELEC 1"); });
        co_await expect_sqlstate(sqlstate::undefined_table,
                                 [&] { return db.query("SELECT * FROM no_such_table"); });
        co_await expect_sqlstate(sqlstate::undefined_column,
                                 [&] { return db.query("SELECT no_such_column FROM t"); });
        co_await expect_sqlstate(sqlstate::syntax_error,
                                 [&] { return db.execute("SELECT 1; SELECT 2"); });
        // After every failure the database is intact.
        EXPECT_EQ((co_await db.query("SELECT count(*) FROM t"))[0].get<std::int64_t>(0), 1);
      },
      {"t", "parent"});
}

TEST_P(contract, error_messages_hold_no_parameter_values) {
  with_db([](database& db) -> asio::awaitable<void> {
    co_await db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, secret TEXT)");
    co_await db.execute("INSERT INTO t VALUES (1, $1)", "hunter2-value");
    try {
      co_await db.execute("INSERT INTO t VALUES (1, $1)", "hunter2-value");
      ADD_FAILURE() << "no error";
    } catch (const error& e) {
      EXPECT_EQ(std::string(e.what()).find("hunter2"), std::string::npos) << e.what();
    }
  });
}

// A statement made now and awaited later owns the temporaries it was given: strings, blobs and
// the SQL text itself (ASan would catch a read of freed memory).
TEST_P(contract, temporaries_given_to_a_statement_live_as_long_as_it) {
  with_db([](database& db) -> asio::awaitable<void> {
    const bool pg = GetParam().name == "postgres";
    co_await db.execute(std::string("CREATE TABLE t (id BIGINT, name TEXT, data ") +
                        (pg ? "BYTEA)" : "BLOB)"));
    auto long_text = [](std::int64_t i) { return std::to_string(i) + std::string(200, 'x'); };
    auto bytes = [](std::int64_t i) { return blob(300, std::byte(i % 251)); };
    std::vector<asio::awaitable<std::uint64_t>> later;
    for (std::int64_t i = 0; i < 40; ++i)
      later.push_back(
          db.execute(std::string("INSERT INTO t VALUES ($1, $2, $3)"), i, long_text(i), bytes(i)));
    for (auto& statement : later)
      EXPECT_EQ(co_await std::move(statement), 1u);
    // The most natural line of Asio code: a detached statement with a temporary argument.
    auto ex = co_await asio::this_coro::executor;
    int done = 0;
    for (std::int64_t i = 40; i < 50; ++i)
      asio::co_spawn(ex, db.execute("INSERT INTO t VALUES ($1, $2, $3)", i, long_text(i), bytes(i)),
                     [&](std::exception_ptr e, std::uint64_t n) {
                       EXPECT_FALSE(e);
                       EXPECT_EQ(n, 1u);
                       ++done;
                     });
    asio::steady_timer tick(ex);
    while (done < 10) {
      tick.expires_after(1ms);
      co_await tick.async_wait(asio::use_awaitable);
    }
    result r = co_await db.query("SELECT id, name, data FROM t ORDER BY id");
    CO_ASSERT(r.size() == 50u);
    for (const row& row : r) {
      const auto id = row.get<std::int64_t>(0);
      EXPECT_EQ(row.get<std::string>(1), long_text(id));
      EXPECT_EQ(row.get<blob>(2), bytes(id));
    }
    // Optional temporaries too.
    co_await db.execute("INSERT INTO t VALUES ($1, $2, $3)", std::int64_t(99),
                        std::optional<std::string>(long_text(99)), std::optional<blob>());
    EXPECT_TRUE((co_await db.query("SELECT data FROM t WHERE id = 99"))[0].is_null(0));
  });
}

TEST_P(contract, text_of_any_length_and_content) {
  with_db(
      [](database& db) -> asio::awaitable<void> {
        std::string long_text(100000, 'x');
        long_text[500] = '\'';
        long_text[600] = '\\';
        row r = (co_await db.query("SELECT $1 AS s", long_text))[0];
        EXPECT_EQ(r.get<std::string>("s"), long_text);
      },
      {});
}

TEST_P(contract, result_is_independent_of_the_database) {
  result kept;
  with_db([&](database& db) -> asio::awaitable<void> {
    co_await db.execute("CREATE TABLE t (v TEXT)");
    co_await db.execute("INSERT INTO t VALUES ('kept')");
    kept = co_await db.query("SELECT v FROM t");
  });
  ASSERT_EQ(kept.size(), 1u);
  EXPECT_EQ(kept[0].get<std::string>("v"), "kept");
  result copy = kept;
  EXPECT_EQ(copy.at(0).get<std::string>(0), "kept");
  EXPECT_THROW((void)copy.at(1), error);
}

TEST_P(contract, closed_database_refuses_work) {
  run([]() -> asio::awaitable<void> {
    database db = co_await open(GetParam().url);
    database copy = db;
    co_await db.close();
    co_await expect_sqlstate("08003", [&] { return copy.query("SELECT 1"); });
    database never_opened;
    co_await expect_sqlstate("08003", [&] { return never_opened.query("SELECT 1"); });
  });
}

INSTANTIATE_TEST_SUITE_P(engines, contract, testing::ValuesIn(engine_cases()), engine_case_name);

TEST(environment, postgres_suite_is_not_skipped) {
  // The PostgreSQL cases exist only when the test command passes a server: running the suite
  // without one is a failure, not a silent pass.
  EXPECT_TRUE(postgres_url().has_value())
      << "AWAITDB_TEST_POSTGRES_URL is not set: run the tests with scripts/test, which starts "
         "a PostgreSQL server";
}

TEST(parameters, supported_types_compile_and_others_do_not) {
  static_assert(detail::is_bindable<std::int64_t>);
  static_assert(detail::is_bindable<long long>);
  static_assert(detail::is_bindable<unsigned>);
  static_assert(detail::is_bindable<std::uint64_t>);
  static_assert(detail::is_bindable<std::size_t>);
  static_assert(detail::is_bindable<std::optional<std::string>>);
  static_assert(detail::is_bindable<const char*>);
  static_assert(detail::is_bindable<blob>);
  static_assert(detail::is_bindable<std::chrono::system_clock::time_point>);
  static_assert(detail::is_bindable<std::chrono::sys_days>);
  static_assert(detail::is_bindable<std::chrono::year_month_day>);
  static_assert(detail::is_bindable<std::chrono::microseconds>);
  static_assert(detail::is_bindable<boost::uuids::uuid>);
  static_assert(!detail::is_bindable<char>);
  static_assert(!detail::is_bindable<std::int8_t>);  // a character type
  static_assert(!detail::is_bindable<long double>);
  static_assert(detail::is_bindable<std::vector<std::string>>);  // a PostgreSQL array
  static_assert(detail::is_bindable<std::vector<std::optional<std::int32_t>>>);
  static_assert(!detail::is_bindable<std::vector<std::vector<int>>>);  // one dimension only
  static_assert(!detail::is_bindable<std::vector<char>>);
  enum class colour { red };
  static_assert(!detail::is_bindable<colour>);
  static_assert(detail::is_readable<float>);
  static_assert(detail::is_readable<unsigned short>);
  static_assert(detail::is_readable<std::chrono::system_clock::time_point>);
  static_assert(detail::is_readable<boost::uuids::uuid>);
  static_assert(detail::is_readable<std::vector<std::optional<std::string>>>);
  static_assert(detail::is_readable<blob>);
  static_assert(!detail::is_readable<std::vector<std::vector<int>>>);
  static_assert(!detail::is_readable<std::string_view>);  // a view into nothing
  static_assert(!detail::is_readable<char>);
  SUCCEED();
}

}  // namespace
}  // namespace awaitdb::test
