// Types of the user's own (type_mapping) and enums by name (BOOST_DESCRIBE_ENUM), on every
// engine: parameters, row::get, optionals, struct members, batches, streams, arrays, functions.
#include "postgres/pg_support.hpp"
#include <awaitdb/decimal.hpp>

#include <boost/asio/detached.hpp>
#include <boost/describe/class.hpp>
#include <boost/describe/enum.hpp>

#include <cstdint>
#include <limits>
#include <stdexcept>

namespace own {

struct user_id {
  std::int64_t value = 0;
  bool operator==(const user_id&) const = default;
};

// Checked both ways; no default constructor.
class email {
 public:
  explicit email(std::string text) : text_(std::move(text)) {
    if (text_.find('@') == std::string::npos) throw std::invalid_argument("no @ in it");
  }
  const std::string& text() const { return text_; }
  bool operator==(const email&) const = default;

 private:
  std::string text_;
};

// A refusal with an SQLSTATE of its own.
struct percent {
  int value = 0;
};

enum class status { active, banned, on_hold };
BOOST_DESCRIBE_ENUM(status, active, banned, on_hold)

struct account {
  user_id id;
  std::optional<email> contact;
  status state = status::active;
};

struct described_account {
  std::optional<email> contact;
  user_id id;
  std::vector<status> history;  // (PostgreSQL only)
};
BOOST_DESCRIBE_STRUCT(described_account, (), (contact, id, history))

}  // namespace own

template <>
struct awaitdb::type_mapping<own::user_id> {
  using db_type = std::int64_t;
  static std::int64_t to_db(const own::user_id& id) { return id.value; }
  static own::user_id from_db(std::int64_t v) { return own::user_id{v}; }
  static constexpr std::string_view name = "user_id";
};

template <>
struct awaitdb::type_mapping<own::email> {
  using db_type = std::string;
  static const std::string& to_db(const own::email& e) { return e.text(); }
  static own::email from_db(std::string text) { return own::email(std::move(text)); }
};

template <>
struct awaitdb::type_mapping<own::percent> {
  using db_type = std::int32_t;
  static std::int32_t to_db(own::percent p) { return p.value; }
  static own::percent from_db(std::int32_t v) {
    if (v < 0 || v > 100)
      throw awaitdb::error(awaitdb::sqlstate::numeric_value_out_of_range, "not a percentage");
    return own::percent{v};
  }
};

namespace awaitdb::test {
namespace {

using own::email;
using own::status;
using own::user_id;

TEST(own_types, mapped_types_and_described_enums_compile_as_parameters_and_columns) {
  static_assert(detail::is_bindable<user_id>);
  static_assert(detail::is_bindable<std::optional<email>>);
  static_assert(detail::is_bindable<std::vector<user_id>>);
  static_assert(detail::is_bindable<status>);
  static_assert(detail::is_bindable<std::vector<std::optional<status>>>);
  static_assert(detail::is_readable<user_id>);
  static_assert(detail::is_readable<email>);
  static_assert(detail::is_readable<status>);
  static_assert(detail::is_readable<std::vector<status>>);
  enum class undescribed { a };  // (a local enum cannot be described: refused, as before)
  static_assert(!detail::is_bindable<undescribed>);
  static_assert(!detail::is_readable<undescribed>);
}

// (Built outside the coroutines: g++ 12 rejects some initializer lists of non-trivial types in
// one.)
std::vector<std::optional<email>> two_mails() {
  std::vector<std::optional<email>> out;
  out.emplace_back(email("a@b.c"));
  out.emplace_back(std::nullopt);
  return out;
}

// Runs `body` on the database at `url` with a table own_accounts holding an enum column: a
// PostgreSQL ENUM type, SQLite text.
void with_accounts(const std::string& url, bool pg,
                   std::function<asio::awaitable<void>(database&)> body) {
  run([&]() -> asio::awaitable<void> {
    database db = co_await open(url);
    co_await db.execute("DROP TABLE IF EXISTS own_accounts");
    if (pg) {
      co_await db.execute("DROP TYPE IF EXISTS own_status");
      co_await db.execute("CREATE TYPE own_status AS ENUM ('active', 'banned', 'on_hold')");
    }
    co_await db.execute(std::string("CREATE TABLE own_accounts (id BIGINT PRIMARY KEY, ") +
                        "contact TEXT, state " + (pg ? "own_status" : "TEXT") +
                        " NOT NULL, note TEXT, share INT)");
    co_await body(db);
    co_await db.execute("DROP TABLE own_accounts");
    if (pg) co_await db.execute("DROP TYPE own_status");
    co_await db.close();
  });
}

class own_types : public engine_test {
 protected:
  void with_accounts(std::function<asio::awaitable<void>(database&)> body) {
    test::with_accounts(GetParam().url, pg(), std::move(body));
  }
};

TEST_P(own_types, values_go_in_as_parameters_and_come_out_of_columns) {
  with_accounts([&](database& db) -> asio::awaitable<void> {
    const user_id ada{1};
    const email ada_mail("ada@example.org");
    co_await db.execute("INSERT INTO own_accounts (id, contact, state) VALUES ($1, $2, $3)", ada,
                        ada_mail, status::banned);
    // Temporaries are converted when the statement is made and held by it.
    co_await db.execute("INSERT INTO own_accounts (id, contact, state) VALUES ($1, $2, $3)",
                        user_id{2}, std::optional<email>(), status::on_hold);
    const user_id biggest{std::numeric_limits<std::int64_t>::max()};
    co_await db.execute("INSERT INTO own_accounts (id, contact, state) VALUES ($1, $2, $3)",
                        biggest, email("max@example.org"), status::active);

    // `= $1` against the enum column (PostgreSQL: the name goes without a stated type).
    row r = co_await db.query_one("SELECT id, contact, state FROM own_accounts WHERE state = $1",
                                  status::banned);
    EXPECT_EQ(r.get<user_id>(0), ada);
    EXPECT_EQ(r.get<email>("contact"), ada_mail);
    EXPECT_EQ(r.get<status>(2), status::banned);
    EXPECT_EQ(r.get<std::optional<user_id>>(0), std::optional<user_id>(ada));

    row second =
        co_await db.query_one("SELECT id, contact FROM own_accounts WHERE id = $1", user_id{2});
    EXPECT_FALSE(second.get<std::optional<email>>(1).has_value());
    EXPECT_EQ(co_await db.query_scalar<user_id>("SELECT id FROM own_accounts WHERE contact = $1",
                                                email("max@example.org")),
              biggest);

    // Struct members, by position and by name.
    std::vector<own::account> all = co_await db.query_as<own::account>(
        "SELECT id, contact, state FROM own_accounts ORDER BY id");
    CO_ASSERT(all.size() == 3);
    EXPECT_EQ(all[0].id, ada);
    EXPECT_EQ(all[0].contact, std::optional<email>(ada_mail));
    EXPECT_EQ(all[1].state, status::on_hold);
    EXPECT_EQ(all[2].id, biggest);
    own::account one = co_await db.query_one_as<own::account>(
        "SELECT id, contact, state FROM own_accounts WHERE id = $1", ada);
    EXPECT_EQ(one.state, status::banned);

    // Batches and streams.
    batch b;
    b.add_execute("UPDATE own_accounts SET state = $1 WHERE id = $2", status::active, ada);
    b.add("SELECT state FROM own_accounts WHERE id = $1", user_id{1});
    std::vector<batch_result> results = co_await db.run(std::move(b));
    CO_ASSERT(results.size() == 2);
    EXPECT_EQ(results[0].affected(), 1u);
    EXPECT_EQ(results[1].rows()[0].get<status>(0), status::active);
    row_stream s =
        co_await db.stream("SELECT id FROM own_accounts WHERE id >= $1 ORDER BY id", user_id{2});
    std::vector<user_id> streamed;
    while (std::optional<row> each = co_await s.next())
      streamed.push_back(each->get<user_id>(0));
    EXPECT_EQ(streamed, (std::vector<user_id>{user_id{2}, biggest}));
  });
}

TEST_P(own_types, refusals_name_the_column_and_the_type) {
  with_accounts([&](database& db) -> asio::awaitable<void> {
    co_await db.execute(
        "INSERT INTO own_accounts (id, contact, state, note, share) VALUES (1, 'nobody', $1, "
        "'suspended-forever', 250)",
        status::active);
    // from_db throws a std::exception: 22000 naming the column and the type.
    std::string what = co_await expect_sqlstate("22000", [&]() -> asio::awaitable<void> {
      co_await db.query_scalar<email>("SELECT contact FROM own_accounts");
    });
    EXPECT_NE(what.find("column 0 (\"contact\") could not be read as own::email: no @ in it"),
              std::string::npos)
        << what;
    // from_db throws an awaitdb::error: its SQLSTATE stays.
    what = co_await expect_sqlstate("22003", [&]() -> asio::awaitable<void> {
      co_await db.query_scalar<own::percent>("SELECT share FROM own_accounts");
    });
    EXPECT_NE(what.find("could not be read as own::percent: not a percentage"), std::string::npos)
        << what;
    // The db_type cannot hold the value: its error, and the type named.
    what = co_await expect_sqlstate("42804", [&]() -> asio::awaitable<void> {
      co_await db.query_scalar<user_id>("SELECT note FROM own_accounts");
    });
    EXPECT_NE(what.find("could not be read as user_id"), std::string::npos) << what;
    // NULL into a non-optional: 22004.
    co_await expect_sqlstate("22004", [&]() -> asio::awaitable<void> {
      co_await db.query_scalar<user_id>("SELECT NULL");
    });
    // A struct member says which one.
    what = co_await expect_sqlstate("22000", [&]() -> asio::awaitable<void> {
      co_await db.query_as<own::account>("SELECT id, contact, state FROM own_accounts");
    });
    EXPECT_NE(what.find("struct member #1 from column 1"), std::string::npos) << what;
    // Text that names no enumerator: 22P02 with its length, never its text.
    what = co_await expect_sqlstate("22P02", [&]() -> asio::awaitable<void> {
      co_await db.query_scalar<status>("SELECT note FROM own_accounts");
    });
    EXPECT_NE(what.find("holds text of 17 bytes that names no value of the enum own::status"),
              std::string::npos)
        << what;
    EXPECT_EQ(what.find("suspended"), std::string::npos) << what;
    // An enum value without a name cannot be written.
    try {
      co_await db.execute("UPDATE own_accounts SET state = $1", static_cast<status>(42));
      ADD_FAILURE() << "an unnamed enum value was written";
    } catch (const error& e) {
      EXPECT_EQ(e.sqlstate(), "22023");
      EXPECT_NE(std::string(e.what()).find("the value 42 of the enum own::status has no name"),
                std::string::npos)
          << e.what();
    }
    EXPECT_EQ(co_await db.query_scalar<status>("SELECT state FROM own_accounts"), status::active);
  });
}

TEST_P(own_types, enums_are_names_in_text_columns_too) {
  run([&]() -> asio::awaitable<void> {
    database db = co_await open(GetParam().url);
    EXPECT_EQ(co_await db.query_scalar<std::string>("SELECT $1", status::on_hold), "on_hold");
    EXPECT_EQ(co_await db.query_scalar<status>("SELECT 'banned'"), status::banned);
    EXPECT_EQ(co_await db.query_scalar<std::optional<status>>("SELECT NULL"), std::nullopt);
    co_await db.close();
  });
}

// (SQLite has no arrays.)
TEST_F(postgres, arrays_of_own_types_and_enums) {
  with_accounts(url_, true, [&](database& db) -> asio::awaitable<void> {
    for (std::int64_t id = 1; id <= 4; ++id)
      co_await db.execute("INSERT INTO own_accounts (id, contact, state) VALUES ($1, $2, $3)",
                          user_id{id}, email("u" + std::to_string(id) + "@example.org"),
                          id % 2 == 0 ? status::banned : status::on_hold);
    const std::vector<user_id> wanted = {user_id{1}, user_id{2}, user_id{4}};
    const std::vector<status> states = {status::banned};
    std::vector<user_id> found = co_await db.query_scalar<std::vector<user_id>>(
        "SELECT array_agg(id ORDER BY id) FROM own_accounts WHERE id = ANY($1) AND state = "
        "ANY($2)",
        wanted, states);
    EXPECT_EQ(found, (std::vector<user_id>{user_id{2}, user_id{4}}));
    // An array of the enum type reads as a vector of it, NULL elements as optionals.
    std::vector<status> history = co_await db.query_scalar<std::vector<status>>(
        "SELECT array_agg(state ORDER BY id) FROM own_accounts");
    EXPECT_EQ(history, (std::vector<status>{status::on_hold, status::banned, status::on_hold,
                                            status::banned}));
    std::vector<std::optional<status>> with_null =
        co_await db.query_scalar<std::vector<std::optional<status>>>(
            "SELECT ARRAY['active'::own_status, NULL]");
    EXPECT_EQ(with_null, (std::vector<std::optional<status>>{status::active, std::nullopt}));
    const std::vector<std::optional<email>> mails = two_mails();
    EXPECT_EQ(co_await db.query_scalar<std::int64_t>("SELECT cardinality($1::text[])", mails), 2);
    // By name, into a described struct.
    own::described_account a = co_await db.query_one_as<own::described_account>(
        "SELECT contact, id, ARRAY[state, 'active'] AS history FROM own_accounts WHERE id = $1",
        user_id{2});
    EXPECT_EQ(a.id, user_id{2});
    EXPECT_EQ(a.history, (std::vector<status>{status::banned, status::active}));
  });
}

// (PostgreSQL: functions live in the server.)
TEST(own_types_on_sqlite, sql_functions_take_and_give_them) {
  run([&]() -> asio::awaitable<void> {
    database db = co_await open("sqlite::memory:");
    db.define_function("next_status", [](status s) -> status {
      return s == status::active ? status::on_hold : status::banned;
    });
    db.define_function("domain_of", [](email e) -> std::string {
      return e.text().substr(e.text().find('@') + 1);
    });
    EXPECT_EQ(co_await db.query_scalar<status>("SELECT next_status($1)", status::active),
              status::on_hold);
    EXPECT_EQ(co_await db.query_scalar<std::string>("SELECT domain_of('ada@example.org')"),
              "example.org");
    co_await expect_sqlstate("22000", [&]() -> asio::awaitable<void> {
      co_await db.query("SELECT domain_of('nobody')");
    });
    co_await db.close();
  });
}

TEST_P(own_types, exact_decimals_round_trip_with_nan_and_infinities) {
  using money = decimal<38>;
  run([&]() -> asio::awaitable<void> {
    database db = co_await open(GetParam().url);
    co_await db.execute("DROP TABLE IF EXISTS own_prices");
    // PostgreSQL: NUMERIC(38,10) and an unconstrained NUMERIC; SQLite: TEXT keeps every digit.
    co_await db.execute(pg() ? "CREATE TABLE own_prices (id INT, p NUMERIC(38,10), loose NUMERIC)"
                             : "CREATE TABLE own_prices (id INT, p TEXT, loose TEXT)");
    const money big("9999999999999999999999999999.9999999999");  // 38 digits
    const money tiny("-0.0000000001");
    const money third = money(1) / 3;
    co_await db.execute("INSERT INTO own_prices VALUES (1, $1, $2)", big, third);
    co_await db.execute("INSERT INTO own_prices VALUES (2, $1, $2)", tiny,
                        std::numeric_limits<money>::quiet_NaN());
    co_await db.execute("INSERT INTO own_prices VALUES (3, $1, $2)", money("0.1") + money("0.2"),
                        -std::numeric_limits<money>::infinity());
    result r = co_await db.query("SELECT p, loose FROM own_prices ORDER BY id");
    CO_ASSERT(r.size() == 3);
    EXPECT_EQ(r[0].get<money>(0), big);
    EXPECT_NE(r[0].get<money>(1), third);  // written rounded to its 38 digits:
    EXPECT_EQ(r[0].get<money>(1), money("0.33333333333333333333333333333333333333"));
    EXPECT_EQ(r[1].get<money>(0), tiny);
    EXPECT_TRUE(boost::multiprecision::isnan(r[1].get<money>(1)));
    EXPECT_EQ(r[2].get<money>(0), money("0.3"));
    EXPECT_EQ(r[2].get<money>(1), -std::numeric_limits<money>::infinity());
    if (pg()) {
      // Today's readers of NUMERIC keep their range checks: a double, an integer.
      EXPECT_NEAR(r[0].get<double>(0), 1e28, 1e13);
      co_await expect_sqlstate("22003", [&]() -> asio::awaitable<void> {
        co_await db.query_scalar<std::int64_t>("SELECT round(p) FROM own_prices WHERE id = 1");
      });
    }
    // More digits than the type holds: 22003, naming the column and the type.
    const std::string what = co_await expect_sqlstate("22003", [&]() -> asio::awaitable<void> {
      co_await db.query_scalar<decimal<10>>("SELECT p FROM own_prices WHERE id = 1");
    });
    EXPECT_NE(what.find("could not be read as awaitdb::decimal: a decimal number of 38"),
              std::string::npos)
        << what;
    co_await expect_sqlstate("22P02", [&]() -> asio::awaitable<void> {
      co_await db.query_scalar<money>("SELECT 'twelve'");
    });
    co_await db.execute("DROP TABLE own_prices");
    co_await db.close();
  });
}

INSTANTIATE_TEST_SUITE_P(engines, own_types, testing::ValuesIn(engine_cases()), engine_case_name);

}  // namespace
}  // namespace awaitdb::test
