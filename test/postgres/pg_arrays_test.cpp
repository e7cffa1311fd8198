// PostgreSQL arrays as std::vector: parameters (= ANY($1)) and results, NULL elements, text
// that needs quoting, and what a vector cannot hold. (SQLite refuses them: types_test.cpp.)
#include "postgres/pg_support.hpp"

#include <boost/uuid/uuid.hpp>

#include <functional>
#include <limits>

namespace awaitdb::test {
namespace {

using namespace std::chrono;

class pg_arrays : public postgres {
 protected:
  void with_db(std::function<asio::awaitable<void>(database&)> body) {
    run([&]() -> asio::awaitable<void> {
      database db = co_await open(url_);
      co_await db.execute("DROP TABLE IF EXISTS arrays_v");
      co_await body(db);
      co_await db.execute("DROP TABLE IF EXISTS arrays_v");
      co_await db.close();
    });
  }
};

TEST_F(pg_arrays, of_keys_and_of_text_round_trip) {
  with_db([](database& db) -> asio::awaitable<void> {
    co_await db.execute("CREATE TABLE arrays_v (id INT, tags TEXT[])");
    for (std::int32_t id = 1; id <= 5; ++id)
      co_await db.execute("INSERT INTO arrays_v (id) VALUES ($1)", id);
    // The everyday use: a set of keys, as a temporary the statement keeps alive.
    // (A braced list written inside the co_await expression trips GCC 12: made by a function.)
    const auto keys = [] { return std::vector<std::int32_t>{4, 2, 9}; };
    result in = co_await db.query("SELECT id FROM arrays_v WHERE id = ANY($1) ORDER BY id", keys());
    EXPECT_EQ(in.size(), 2u);
    if (in.size() == 2) {
      EXPECT_EQ(in[0].get<std::int32_t>(0), 2);
      EXPECT_EQ(in[1].get<std::int32_t>(0), 4);
    }
    // Text that needs quoting survives the round trip: commas, quotes, backslashes, braces,
    // the word NULL, an empty string, spaces and non-ASCII letters.
    const std::vector<std::string> tags{"a,b",  "say \"hi\"", "back\\slash", "{braces}",
                                        "NULL", "",           " padded ",    "ünïcødé"};
    co_await db.execute("UPDATE arrays_v SET tags = $1 WHERE id = 1", tags);
    EXPECT_EQ(co_await db.query_scalar<std::vector<std::string>>(
                  "SELECT tags FROM arrays_v WHERE id = 1"),
              tags);
    EXPECT_EQ(co_await db.query_scalar<std::int32_t>(
                  "SELECT cardinality(tags) FROM arrays_v WHERE id = 1"),
              8);
    co_await expect_sqlstate("22021", [&] {
      return db.query("SELECT $1", std::vector<std::string>{std::string("a\0b", 3)});
    });
  });
}

TEST_F(pg_arrays, with_null_elements) {
  with_db([](database& db) -> asio::awaitable<void> {
    // std::optional elements take NULLs; plain elements refuse them (22004).
    const std::vector<std::optional<std::int64_t>> gaps{1, std::nullopt, -3};
    EXPECT_EQ(co_await db.query_scalar<std::vector<std::optional<std::int64_t>>>("SELECT $1", gaps),
              gaps);
    const std::vector<std::optional<std::string>> words{"NULL", std::nullopt};
    const auto back =
        co_await db.query_scalar<std::vector<std::optional<std::string>>>("SELECT $1", words);
    EXPECT_EQ(back, words);  // the text "NULL" is not a NULL
    const std::string what = co_await expect_sqlstate(
        "22004", [&] { return db.query_scalar<std::vector<std::int64_t>>("SELECT $1", gaps); });
    EXPECT_NE(what.find("an element of column 0"), std::string::npos) << what;
    EXPECT_FALSE(
        (co_await db.query_scalar<std::optional<std::vector<std::int32_t>>>("SELECT NULL::int[]"))
            .has_value());
  });
}

TEST_F(pg_arrays, of_other_element_types) {
  with_db([](database& db) -> asio::awaitable<void> {
    const std::vector<bool> flags{true, false, true};
    EXPECT_EQ(co_await db.query_scalar<std::vector<bool>>("SELECT $1", flags), flags);
    const std::vector<double> reals{1.5, -2.25, 1e300};
    EXPECT_EQ(co_await db.query_scalar<std::vector<double>>("SELECT $1", reals), reals);
    std::vector<boost::uuids::uuid> ids(2);  // one UUID and the nil UUID
    ids[0] = boost::uuids::uuid{{0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8, 0xbb, 0x6d, 0x6b,
                                 0xb9, 0xbd, 0x38, 0x0a, 0x11}};
    EXPECT_EQ(co_await db.query_scalar<std::vector<boost::uuids::uuid>>("SELECT $1", ids), ids);
    const std::vector<std::uint64_t> wide{std::numeric_limits<std::uint64_t>::max(), 0};
    EXPECT_EQ(co_await db.query_scalar<std::vector<std::uint64_t>>("SELECT $1", wide), wide);
    const std::vector<int> none;
    EXPECT_TRUE((co_await db.query_scalar<std::vector<std::int32_t>>("SELECT $1", none)).empty());
    const std::vector<std::int32_t> seven_eight{7, 8};
    EXPECT_EQ(co_await db.query_scalar<std::vector<std::int32_t>>("SELECT '[0:1]={7,8}'::int[]"),
              seven_eight);  // a lower bound other than 1
  });
}

TEST_F(pg_arrays, that_a_vector_cannot_hold_fail_clearly) {
  with_db([](database& db) -> asio::awaitable<void> {
    co_await expect_sqlstate("0A000", [&] {
      return db.query_scalar<std::vector<std::int32_t>>("SELECT ARRAY[[1, 2], [3, 4]]");
    });
    co_await expect_sqlstate(
        "22003", [&] { return db.query_scalar<std::vector<std::int16_t>>("SELECT ARRAY[70000]"); });
    co_await expect_sqlstate(
        "42804", [&] { return db.query_scalar<std::vector<std::int32_t>>("SELECT 1"); });
  });
}

}  // namespace
}  // namespace awaitdb::test
