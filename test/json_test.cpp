// The awaitdb::json component: JSON values as parameters and columns, on every engine.
#include "postgres/pg_support.hpp"
#include <awaitdb/json.hpp>

#include <boost/describe/class.hpp>

namespace own_json {
struct prefs {
  std::string theme;
  int size = 0;
  std::vector<std::string> tags;
};
BOOST_DESCRIBE_STRUCT(prefs, (), (theme, size, tags))
}  // namespace own_json

namespace awaitdb::test {
namespace {

namespace json = boost::json;

// (Made outside the coroutines: g++ 12 mishandles initializer lists in one.)
json::value document() {
  return json::object{{"name", "ada"}, {"tags", json::array{"x", 1, nullptr}}, {"n", 1.5}};
}
json::object filter() {
  return json::object{{"name", "ada"}};
}
json::array one_two_three() {
  return json::array{1, 2, 3};
}
std::vector<std::string> a_b() {
  return {"a", "b"};
}
own_json::prefs some_prefs() {
  return own_json::prefs{"dark", 14, {"a", "b"}};
}

class json_values : public engine_test {};

TEST_P(json_values, values_objects_and_arrays_round_trip) {
  with_table(
      "json_docs", pg() ? "(id INT, doc JSONB, plain JSON)" : "(id INT, doc TEXT, plain TEXT)",
      [&](database& db) -> asio::awaitable<void> {
        const json::value doc = document();
        co_await db.execute("INSERT INTO json_docs VALUES (1, $1, $2)", doc, doc);
        co_await db.execute("INSERT INTO json_docs VALUES (2, $1, NULL)", one_two_three());
        row r = co_await db.query_one("SELECT doc, plain FROM json_docs WHERE id = 1");
        EXPECT_EQ(r.get<json::value>(0), doc);
        EXPECT_EQ(r.get<json::value>(1), doc);
        EXPECT_EQ(r.get<json::object>(0).at("name"), "ada");
        EXPECT_EQ(co_await db.query_scalar<json::array>("SELECT doc FROM json_docs WHERE id = 2"),
                  one_two_three());
        EXPECT_EQ(co_await db.query_scalar<std::optional<json::value>>(
                      "SELECT plain FROM json_docs WHERE id = 2"),
                  std::nullopt);
        if (pg()) {
          // jsonb containment against a parameter: it goes without a stated type.
          EXPECT_EQ(co_await db.query_scalar<std::int64_t>(
                        "SELECT id FROM json_docs WHERE doc @> $1", filter()),
                    1);
        }
      });
}

TEST_P(json_values, text_that_is_not_the_json_asked_for_is_refused) {
  run([&]() -> asio::awaitable<void> {
    database db = co_await open(GetParam().url);
    std::string what = co_await expect_sqlstate("22P02", [&]() -> asio::awaitable<void> {
      co_await db.query_scalar<json::value>("SELECT 'password: {hunter2' AS secret");
    });
    EXPECT_NE(what.find("column 0 (\"secret\") could not be read as boost::json::value"),
              std::string::npos)
        << what;
    EXPECT_EQ(what.find("hunter2"), std::string::npos) << what;
    co_await expect_sqlstate("42804", [&]() -> asio::awaitable<void> {
      co_await db.query_scalar<json::object>("SELECT '[1, 2]'");
    });
    co_await expect_sqlstate("42804", [&]() -> asio::awaitable<void> {
      co_await db.query_scalar<json::array>("SELECT '{\"a\": 1}'");
    });
    co_await db.close();
  });
}

TEST_P(json_values, described_structs_go_through_json) {
  run([&]() -> asio::awaitable<void> {
    database db = co_await open(GetParam().url);
    const own_json::prefs p = some_prefs();
    const as_json<own_json::prefs> back =
        co_await db.query_scalar<as_json<own_json::prefs>>("SELECT $1", as_json(p));
    EXPECT_EQ(back.value.theme, "dark");
    EXPECT_EQ(back.value.size, 14);
    EXPECT_EQ(back.value.tags, a_b());
    const std::string what = co_await expect_sqlstate("22P02", [&]() -> asio::awaitable<void> {
      co_await db.query_scalar<as_json<own_json::prefs>>("SELECT '{\"theme\": 3}'");
    });
    EXPECT_NE(what.find("does not fit the type"), std::string::npos) << what;
    co_await db.close();
  });
}

INSTANTIATE_TEST_SUITE_P(engines, json_values, testing::ValuesIn(engine_cases()), engine_case_name);

}  // namespace
}  // namespace awaitdb::test
