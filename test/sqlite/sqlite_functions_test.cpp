// SQL functions written in C++ (database::define_function, define_aggregate) on real SQLite:
// every connection of the database has them, arguments and results go through the library's
// value mapping, and what a function throws fails the statement, never the process.
#include "support.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <cctype>
#include <stdexcept>

namespace awaitdb::test {
namespace {

class sqlite_functions : public testing::Test {
 protected:
  void TearDown() override { remove_sqlite_file(path_); }
  std::string url() const { return "sqlite:" + path_; }
  std::string path_ = temp_sqlite_path();
};

std::string lower_trimmed(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  const auto first = s.find_first_not_of(' ');
  const auto last = s.find_last_not_of(' ');
  return first == std::string::npos ? std::string() : s.substr(first, last - first + 1);
}

template <class T>
asio::awaitable<T> scalar(const database& db, std::string sql) {
  const row r = co_await db.query_one(sql);
  co_return r.get<T>(0);
}

asio::awaitable<void> sleep_for(std::chrono::milliseconds d) {
  asio::steady_timer timer(co_await asio::this_coro::executor, d);
  co_await timer.async_wait(asio::use_awaitable);
}

// A deterministic function in an index: the planner uses the index, and every write keeps it.
TEST_F(sqlite_functions, a_deterministic_function_can_be_indexed) {
  run([&]() -> asio::awaitable<void> {
    database db = co_await open(url());
    function_options deterministic;
    deterministic.deterministic = true;
    db.define_function(
        "normalize", [](std::string s) { return lower_trimmed(std::move(s)); }, deterministic);
    db.define_function("shout", [](std::string s) { return s + "!"; });  // not deterministic
    co_await db.execute("CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT)");
    co_await db.execute("CREATE INDEX people_normalized ON people (normalize(name))");
    for (const char* name : {"  Ada ", "GRACE", "alan  "})
      co_await db.execute("INSERT INTO people (name) VALUES ($1)", name);
    const result found = co_await db.query(
        "SELECT id, name FROM people WHERE normalize(name) = normalize($1)", " grace");
    CO_ASSERT(found.size() == 1);
    EXPECT_EQ(found[0].get<std::string>(1), "GRACE");
    const result plan = co_await db.query(
        "EXPLAIN QUERY PLAN SELECT id FROM people WHERE normalize(name) = $1", "ada");
    std::string steps;
    for (const row& r : plan)
      steps += r.get<std::string>("detail") + "; ";
    EXPECT_NE(steps.find("people_normalized"), std::string::npos) << steps;
    // SQLite refuses a function not declared deterministic in an index.
    co_await expect_sqlstate("42000", [&]() -> asio::awaitable<void> {
      co_await db.execute("CREATE INDEX people_shouted ON people (shout(name))");
    });
    EXPECT_EQ(co_await scalar<std::string>(db, "SELECT shout('hi')"), "hi!");
    co_await db.close();
  });
}

// NULL in and out through std::optional; values of every kind SQLite has.
TEST_F(sqlite_functions, nulls_and_values_go_through_the_librarys_mapping) {
  run([&]() -> asio::awaitable<void> {
    database db = co_await open(url());
    db.define_function("twice", [](std::optional<std::int64_t> v) -> std::optional<std::int64_t> {
      if (!v) return std::nullopt;
      return *v * 2;
    });
    db.define_function("half", [](double v) { return v / 2; });
    db.define_function("reversed", [](const blob& b) { return blob(b.rbegin(), b.rend()); });
    db.define_function("is_even", [](std::int64_t v) { return v % 2 == 0; });
    db.define_function("big", []() { return std::int64_t{9'223'372'036'854'775'807}; });
    db.define_function("too_big", []() { return std::uint64_t{18'446'744'073'709'551'615u}; });
    db.define_function("count_args", [](std::int64_t, std::int64_t, std::int64_t) { return 3; });
    db.define_function("length_of", [](std::int32_t v) { return v; });
    const row r = co_await db.query_one(
        "SELECT twice(21), twice(NULL), half(5), reversed(x'010203'), is_even(4), big(), "
        "count_args(1, 2, 3), typeof(is_even(3))");
    EXPECT_EQ(r.get<std::int64_t>(0), 42);
    EXPECT_TRUE(r.is_null(1));
    EXPECT_DOUBLE_EQ(r.get<double>(2), 2.5);
    EXPECT_EQ(r.get<blob>(3), (blob{std::byte{3}, std::byte{2}, std::byte{1}}));
    EXPECT_TRUE(r.get<bool>(4));
    EXPECT_EQ(r.get<std::int64_t>(5), 9'223'372'036'854'775'807);
    EXPECT_EQ(r.get<std::int64_t>(6), 3);
    EXPECT_EQ(r.get<std::string>(7), "integer");
    // Empty values stay empty values, not NULL.
    const row empty =
        co_await db.query_one("SELECT reversed(x''), typeof(reversed(x'')), twice(0)");
    EXPECT_FALSE(empty.is_null(0));
    EXPECT_TRUE(empty.get<blob>(0).empty());
    EXPECT_EQ(empty.get<std::string>(1), "blob");
    EXPECT_EQ(empty.get<std::int64_t>(2), 0);
    // A NULL into a parameter that cannot hold it, a value out of its range, a value of another
    // type, a result SQLite cannot store: each fails the statement, naming the argument.
    std::string message = co_await expect_sqlstate(
        "22004", [&]() -> asio::awaitable<void> { co_await db.query("SELECT half(NULL)"); });
    EXPECT_NE(message.find("argument 1 of half()"), std::string::npos) << message;
    message = co_await expect_sqlstate("22003", [&]() -> asio::awaitable<void> {
      co_await db.query("SELECT length_of(5000000000)");
    });
    EXPECT_NE(message.find("argument 1 of length_of()"), std::string::npos) << message;
    message = co_await expect_sqlstate(
        "42804", [&]() -> asio::awaitable<void> { co_await db.query("SELECT is_even('x')"); });
    EXPECT_NE(message.find("argument 1 of is_even()"), std::string::npos) << message;
    co_await expect_sqlstate(
        "22003", [&]() -> asio::awaitable<void> { co_await db.query("SELECT too_big()"); });
    // The wrong number of arguments: SQLite knows the function only by name and count.
    co_await expect_sqlstate(
        "42883", [&]() -> asio::awaitable<void> { co_await db.query("SELECT half()"); });
    co_await db.close();
  });
}

// An aggregate: a state per group, a result also for a group of no rows.
TEST_F(sqlite_functions, an_aggregate_keeps_a_state_per_group) {
  run([&]() -> asio::awaitable<void> {
    database db = co_await open(url());
    db.define_aggregate(
        "product", std::int64_t{1}, [](std::int64_t& acc, std::int64_t v) { acc *= v; },
        [](std::int64_t& acc) { return acc; });
    // A state that owns memory, and NULLs skipped by the step.
    db.define_aggregate(
        "joined", std::vector<std::string>{},
        [](std::vector<std::string>& parts, std::optional<std::string> v, std::string sep) {
          if (v) parts.push_back(*v + sep);
        },
        [](std::vector<std::string>& parts) -> std::optional<std::string> {
          if (parts.empty()) return std::nullopt;
          std::string out;
          for (const auto& p : parts)
            out += p;
          return out;
        });
    co_await db.execute("CREATE TABLE t (g TEXT, v INTEGER, s TEXT)");
    co_await db.execute(
        "INSERT INTO t VALUES ('a', 2, 'x'), ('a', 3, NULL), ('a', 7, 'y'), ('b', 5, 'z')");
    const result groups =
        co_await db.query("SELECT g, product(v), joined(s, ';') FROM t GROUP BY g ORDER BY g");
    CO_ASSERT(groups.size() == 2);
    EXPECT_EQ(groups[0].get<std::int64_t>(1), 42);
    EXPECT_EQ(groups[0].get<std::string>(2), "x;y;");
    EXPECT_EQ(groups[1].get<std::int64_t>(1), 5);
    EXPECT_EQ(groups[1].get<std::string>(2), "z;");
    const row none = co_await db.query_one("SELECT product(v), joined(s, ',') FROM t WHERE 0");
    EXPECT_EQ(none.get<std::int64_t>(0), 1);
    EXPECT_TRUE(none.is_null(1));
    // As a window function's frame it is not offered (SQLite would need an inverse step).
    co_await expect_sqlstate("42000", [&]() -> asio::awaitable<void> {
      co_await db.query("SELECT product(v) OVER (ORDER BY v) FROM t");
    });
    co_await db.close();
  });
}

// What a function throws fails the statement with a clear error; the database goes on.
TEST_F(sqlite_functions, an_exception_fails_the_statement_not_the_process) {
  run([&]() -> asio::awaitable<void> {
    database db = co_await open(url());
    function_options deterministic;  // (SQLite takes no other kind in a CHECK constraint)
    deterministic.deterministic = true;
    db.define_function(
        "check_positive",
        [](std::int64_t v) {
          if (v <= 0) throw std::invalid_argument("not positive: " + std::to_string(v));
          return v;
        },
        deterministic);
    db.define_function("refuse", [](std::int64_t) -> std::int64_t {
      throw error("22023", "refuse() refuses everything");
    });
    db.define_aggregate(
        "fragile", 0,
        [](int& n, std::int64_t v) { n += v < 0 ? throw std::runtime_error("x") : 1; },
        [](int& n) { return n; });
    co_await db.execute("CREATE TABLE t (v INTEGER CHECK (check_positive(v) > 0))");
    std::string message = co_await expect_sqlstate("38000", [&]() -> asio::awaitable<void> {
      co_await db.execute("INSERT INTO t VALUES (-4)");
    });
    EXPECT_NE(message.find("check_positive() failed: not positive: -4"), std::string::npos)
        << message;
    message = co_await expect_sqlstate(
        "22023", [&]() -> asio::awaitable<void> { co_await db.query("SELECT refuse(1)"); });
    EXPECT_NE(message.find("refuse() refuses everything"), std::string::npos) << message;
    co_await expect_sqlstate("38000", [&]() -> asio::awaitable<void> {
      co_await db.query("SELECT fragile(column1) FROM (VALUES (1), (-1))");
    });
    // Inside a transaction it aborts the transaction, as any failure does.
    co_await expect_sqlstate("38000", [&]() -> asio::awaitable<void> {
      co_await db.transaction([&]() -> asio::awaitable<void> {
        co_await db.execute("INSERT INTO t VALUES (1)");
        co_await db.execute("INSERT INTO t VALUES (0)");
      });
    });
    co_await db.execute("INSERT INTO t VALUES (5)");
    EXPECT_EQ(co_await scalar<std::int64_t>(db, "SELECT count(*) FROM t"), 1);
    // A later error of SQLite's own is not mistaken for the function's.
    co_await expect_sqlstate(
        "42P01", [&]() -> asio::awaitable<void> { co_await db.query("SELECT * FROM missing"); });
    co_await db.close();
  });
}

// Every connection has the functions: the writer, the readers (a read beside another task's
// open transaction), a stream's own connection, and those opened before the definition.
TEST_F(sqlite_functions, every_connection_has_them_including_readers_beside_a_transaction) {
  run([&]() -> asio::awaitable<void> {
    database db = co_await open(url());
    co_await db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER)");
    co_await db.execute("INSERT INTO t (v) VALUES (1), (2), (3)");
    // A reader exists before the function is defined: it installs it before its next query.
    EXPECT_EQ(co_await scalar<std::int64_t>(db, "SELECT count(*) FROM t"), 3);
    db.define_function("plus_ten", [](std::int64_t v) { return v + 10; });
    auto ex = co_await asio::this_coro::executor;
    bool holding = false, release = false, done = false;
    auto writer = [&]() -> asio::awaitable<void> {
      co_await db.transaction([&]() -> asio::awaitable<void> {
        co_await db.execute("UPDATE t SET v = plus_ten(v)");
        holding = true;
        while (!release)
          co_await sleep_for(std::chrono::milliseconds(1));
      });
      done = true;
    };
    asio::co_spawn(ex, writer(), asio::detached);
    while (!holding)
      co_await sleep_for(std::chrono::milliseconds(1));
    // The writer is in a transaction: this read runs on a reader, inline, and sees the last
    // committed state.
    EXPECT_EQ(co_await scalar<std::int64_t>(db, "SELECT sum(plus_ten(v)) FROM t"), 36);
    EXPECT_EQ(db.stats().in_use, 1u);
    row_stream s = co_await db.stream("SELECT plus_ten(v) FROM t ORDER BY id");
    std::int64_t streamed = 0;
    while (std::optional<row> r = co_await s.next())
      streamed += r->get<std::int64_t>(0);
    EXPECT_EQ(streamed, 36);
    release = true;
    while (!done)
      co_await sleep_for(std::chrono::milliseconds(1));
    EXPECT_EQ(co_await scalar<std::int64_t>(db, "SELECT sum(v) FROM t"), 36);
    co_await db.close();
  });
}

TEST(sqlite_functions_names, a_name_sqlite_refuses_is_refused_at_once) {
  run([&]() -> asio::awaitable<void> {
    database db = co_await open("sqlite::memory:");
    co_await expect_sqlstate("42602", [&]() -> asio::awaitable<void> {
      db.define_function(std::string(300, 'f'), []() { return 1; });
      co_return;
    });
    co_await expect_sqlstate("42602", [&]() -> asio::awaitable<void> {
      db.define_function("", []() { return 1; });
      co_return;
    });
    // An in-memory database has one connection: it has the function too.
    db.define_function("one", []() { return 1; });
    EXPECT_EQ(co_await scalar<std::int64_t>(db, "SELECT one()"), 1);
    co_await db.close();
  });
}

TEST(sqlite_functions_names, postgresql_refuses_with_0a000) {
  const auto url = postgres_url();
  ASSERT_TRUE(url) << "AWAITDB_TEST_POSTGRES_URL is not set: run the tests with scripts/test";
  run([&]() -> asio::awaitable<void> {
    database db = co_await open(*url);
    const std::string message = co_await expect_sqlstate("0A000", [&]() -> asio::awaitable<void> {
      db.define_function("f", [](std::int64_t v) { return v; });
      co_return;
    });
    EXPECT_NE(message.find("CREATE FUNCTION"), std::string::npos) << message;
    co_await expect_sqlstate("0A000", [&]() -> asio::awaitable<void> {
      db.define_aggregate(
          "g", 0, [](int& n, std::int64_t) { ++n; }, [](int& n) { return n; });
      co_return;
    });
    co_await db.close();
  });
}

}  // namespace
}  // namespace awaitdb::test
