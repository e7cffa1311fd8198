// Where the two engines used to disagree, or to say too much: one behaviour for each edge case
// (docs/usage.md has the table), and no parameter value in any `what()`.
#include "support.hpp"

namespace awaitdb::test {
namespace {

class edge_cases : public testing::TestWithParam<engine_case> {
 protected:
  void TearDown() override {
    if (!GetParam().file.empty()) remove_sqlite_file(GetParam().file);
  }
  bool is_postgres() const { return GetParam().name == "postgres"; }

  void with_db(std::function<asio::awaitable<void>(database&)> body) {
    run([&]() -> asio::awaitable<void> {
      database db = co_await open(GetParam().url);
      co_await db.execute("DROP TABLE IF EXISTS t");
      co_await body(db);
      co_await db.close();
    });
  }
};

constexpr std::string_view marker = "MARKER-7f3a9c";

// Runs `op`, which must fail with `state`; the marker may be in the server's text, never in
// `what()`.
template <class Op>
asio::awaitable<void> fails_without_marker(std::string_view state, Op op) {
  try {
    co_await op();
    ADD_FAILURE() << "no error; expected " << state;
  } catch (const error& e) {
    EXPECT_EQ(e.sqlstate(), state) << e.what();
    EXPECT_EQ(std::string_view(e.what()).find(marker), std::string_view::npos) << e.what();
    EXPECT_NE(std::string_view(e.what()).find("server_message()"), std::string_view::npos)
        << "what() should say where the server's text is: " << e.what();
  }
}

TEST_P(edge_cases, what_never_quotes_a_parameter_value) {
  with_db([this](database& db) -> asio::awaitable<void> {
    const std::string value(marker);
    co_await db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE)");
    co_await db.execute("INSERT INTO t VALUES (1, $1)", value);
    co_await fails_without_marker(
        "23505", [&] { return db.execute("INSERT INTO t VALUES (2, $1)", value); });
    if (is_postgres()) {
      co_await fails_without_marker("42704",
                                    [&] { return db.query("SELECT current_setting($1)", value); });
      co_await fails_without_marker("42P01",
                                    [&] { return db.query("SELECT $1::regclass", value); });
      co_await fails_without_marker("42P01", [&] { return db.query("SELECT nextval($1)", value); });
      // A value that does not fit its parameter's type: the message names the parameter.
      try {
        co_await db.query("SELECT $1::integer", value);
        ADD_FAILURE() << "no error";
      } catch (const error& e) {
        EXPECT_EQ(e.sqlstate(), "22P02");
        const std::string what = e.what();
        EXPECT_EQ(what.find(marker), std::string::npos) << what;
        EXPECT_NE(what.find("$1"), std::string::npos) << what;
        EXPECT_NE(e.server_message().find(marker), std::string::npos) << e.server_message();
      }
    } else {
      const std::string path = "$[" + value;
      try {
        co_await db.query("SELECT json_extract('{}', $1)", path);
        ADD_FAILURE() << "no error";
      } catch (const error& e) {
        EXPECT_EQ(std::string_view(e.what()).find(marker), std::string_view::npos) << e.what();
        EXPECT_NE(e.server_message().find(marker), std::string::npos) << e.server_message();
      }
    }
  });
}

TEST_P(edge_cases, text_after_the_statement_is_an_error) {
  with_db([](database& db) -> asio::awaitable<void> {
    co_await db.execute("CREATE TABLE t (id INTEGER)");
    co_await expect_sqlstate("42601", [&] { return db.query("SELECT 1; garbage here"); });
    co_await expect_sqlstate("42601",
                             [&] { return db.execute("SELECT 1; INSERT INTO t VALUES (1)"); });
    co_await expect_sqlstate("42601",
                             [&] { return db.execute("INSERT INTO t VALUES (1); DELETE FROM t"); });
    EXPECT_EQ((co_await db.query("SELECT count(*) FROM t"))[0].get<std::int64_t>(0), 0);
    // White space, semicolons and comments may follow.
    EXPECT_EQ((co_await db.query("SELECT 1;  -- done\n"))[0].get<std::int32_t>(0), 1);
    EXPECT_EQ((co_await db.query("SELECT 2;; /* done */"))[0].get<std::int32_t>(0), 2);
  });
}

TEST_P(edge_cases, one_behaviour_for_odd_statements_and_placeholders) {
  with_db([](database& db) -> asio::awaitable<void> {
    // Empty SQL, and SQL that is only a comment.
    co_await expect_sqlstate("42601", [&] { return db.query(""); });
    co_await expect_sqlstate("42601", [&] { return db.execute("  -- nothing\n ; "); });
    // A NUL byte would truncate the text on both engines: refused instead.
    const std::string with_nul("SELECT 1\0 garbage", 17);
    co_await expect_sqlstate("42601", [&] { return db.query(with_nul); });
    // $0 is no parameter; $01 is $1.
    co_await expect_sqlstate("42P02", [&] { return db.query("SELECT $0"); });
    EXPECT_EQ((co_await db.query("SELECT $01 + 1", 41))[0].get<std::int64_t>(0), 42);
    EXPECT_EQ((co_await db.query("SELECT $1 + $01", 20))[0].get<std::int64_t>(0), 40);
    // '?' is not a placeholder.
    co_await expect_sqlstate("42601", [&] { return db.query("SELECT ?"); });
  });
}

TEST_P(edge_cases, one_behaviour_for_odd_values) {
  with_db([this](database& db) -> asio::awaitable<void> {
    const std::string bad_utf8 = "bad \xff\xfe";
    // Text parameters must be UTF-8 without NUL bytes; the message names the parameter.
    std::string m = co_await expect_sqlstate(
        "22021", [&] { return db.query("SELECT $1, $2", "fine", bad_utf8); });
    EXPECT_NE(m.find("$2"), std::string::npos) << m;
    const std::string nul_text("a\0b", 3);
    m = co_await expect_sqlstate("22021", [&] { return db.query("SELECT $1", nul_text); });
    EXPECT_NE(m.find("$1"), std::string::npos) << m;
    // Division by zero: an error on PostgreSQL, NULL on SQLite (SQLite's own rule; documented).
    if (is_postgres()) {
      co_await expect_sqlstate("22012", [&] { return db.query("SELECT 1/0"); });
    } else {
      EXPECT_TRUE((co_await db.query("SELECT 1/0"))[0].is_null(0));
    }
    // After all of it, the database works.
    EXPECT_EQ((co_await db.query("SELECT 7"))[0].get<std::int32_t>(0), 7);
  });
}

INSTANTIATE_TEST_SUITE_P(engines, edge_cases, testing::ValuesIn(engine_cases()), engine_case_name);

}  // namespace
}  // namespace awaitdb::test
