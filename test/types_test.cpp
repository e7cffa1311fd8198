// The types a service reads every day, rows mapped to structs, and the single-row helpers, proven
// on SQLite (memory and file) and PostgreSQL.
#include "support.hpp"

#include <boost/describe/class.hpp>
#include <boost/uuid/uuid_io.hpp>

#include <cmath>
#include <limits>

namespace awaitdb::test {

struct person {
  std::int64_t id;
  std::string name;
  std::optional<std::string> note;
};

// Described: mapped by name, whatever the column order.
struct account {
  std::string owner;
  std::int64_t balance;
  std::chrono::system_clock::time_point opened;
};
BOOST_DESCRIBE_STRUCT(account, (), (owner, balance, opened))

namespace {

using namespace std::chrono;
using sys_micros = time_point<system_clock, microseconds>;

class types : public testing::TestWithParam<engine_case> {
 protected:
  void TearDown() override {
    if (!GetParam().file.empty()) remove_sqlite_file(GetParam().file);
  }
  bool pg() const { return GetParam().name == "postgres"; }
  // The column type for a kind of value on this engine.
  std::string column(std::string_view postgres, std::string_view sqlite = "TEXT") const {
    return std::string(pg() ? postgres : sqlite);
  }
  void with_db(std::function<asio::awaitable<void>(database&)> body, std::string options = {}) {
    run([&]() -> asio::awaitable<void> {
      std::string url = GetParam().url;
      if (!options.empty()) url += (url.find('?') == std::string::npos ? "?" : "&") + options;
      database db = co_await open(url);
      co_await db.execute("DROP TABLE IF EXISTS v");
      co_await body(db);
      co_await db.execute("DROP TABLE IF EXISTS v");
      co_await db.close();
    });
  }
};

TEST_P(types, integers_of_every_width_and_sign) {
  with_db([this](database& db) -> asio::awaitable<void> {
    co_await db.execute("CREATE TABLE v (i BIGINT, n " + column("NUMERIC(30, 0)", "TEXT") + ")");
    co_await db.execute("INSERT INTO v (i) VALUES ($1)", 9'000'000'000LL);  // long long
    co_await db.execute("INSERT INTO v (i) VALUES ($1)", 4'000'000'000U);   // unsigned
    co_await db.execute("INSERT INTO v (i) VALUES ($1)", std::size_t(42));
    co_await db.execute("INSERT INTO v (i) VALUES ($1)", static_cast<unsigned short>(65535));
    co_await db.execute("INSERT INTO v (i) VALUES ($1)", std::int64_t(-5));
    result r = co_await db.query("SELECT i FROM v ORDER BY i");
    EXPECT_EQ(r[0].get<long long>(0), -5);
    EXPECT_EQ(r[1].get<std::size_t>(0), 42u);
    EXPECT_EQ(r[2].get<std::uint16_t>(0), 65535u);
    EXPECT_EQ(r[3].get<unsigned>(0), 4'000'000'000U);
    EXPECT_EQ(r[4].get<std::uint64_t>(0), 9'000'000'000ULL);
    // Out of the asked type's range: 22003, naming the column.
    co_await expect_sqlstate("22003", [&]() -> asio::awaitable<void> {
      (void)r[0].get<unsigned>(0);
      co_return;
    });
    co_await expect_sqlstate("22003", [&]() -> asio::awaitable<void> {
      (void)r[4].get<std::int32_t>(0);
      co_return;
    });
    // Above int64: a NUMERIC on PostgreSQL; SQLite cannot store it as an integer.
    const std::uint64_t huge = std::numeric_limits<std::uint64_t>::max();
    if (pg()) {
      co_await db.execute("INSERT INTO v (n) VALUES ($1)", huge);
      row big = co_await db.query_one("SELECT n FROM v WHERE n IS NOT NULL");
      EXPECT_EQ(big.get<std::uint64_t>(0), huge);
      EXPECT_EQ(big.get<std::string>(0), "18446744073709551615");  // exactly, as text
      EXPECT_DOUBLE_EQ(big.get<double>(0), 18446744073709551615.0);
      co_await expect_sqlstate("22003", [&]() -> asio::awaitable<void> {
        (void)big.get<std::int64_t>(0);
        co_return;
      });
    } else {
      co_await expect_sqlstate("22003",
                               [&] { return db.execute("INSERT INTO v (n) VALUES ($1)", huge); });
    }
  });
}

TEST_P(types, floats) {
  with_db([](database& db) -> asio::awaitable<void> {
    co_await db.execute("CREATE TABLE v (x DOUBLE PRECISION)");
    co_await db.execute("INSERT INTO v VALUES ($1), ($2)", 1.5f, 1e300);
    result r = co_await db.query("SELECT x FROM v ORDER BY x");
    EXPECT_EQ(r[0].get<float>(0), 1.5f);
    co_await expect_sqlstate("22003", [&]() -> asio::awaitable<void> {
      (void)r[1].get<float>(0);
      co_return;
    });
  });
}

TEST_P(types, time_points_round_trip_to_the_microsecond) {
  with_db([this](database& db) -> asio::awaitable<void> {
    co_await db.execute("CREATE TABLE v (id INTEGER, t " + column("TIMESTAMPTZ") + ")");
    const sys_micros epoch{};
    const sys_micros before_1970 = epoch - microseconds(1);
    const sys_micros first = sys_days(year(1) / 1 / 1);
    const sys_micros last = sys_days(year(9999) / 12 / 31) + hours(23) + minutes(59) + seconds(59) +
                            microseconds(999'999);
    const sys_micros now = floor<microseconds>(system_clock::now());
    const std::vector<sys_micros> values{epoch, before_1970, first, last, now};
    for (std::size_t i = 0; i < values.size(); ++i)
      co_await db.execute("INSERT INTO v VALUES ($1, $2)", static_cast<std::int32_t>(i), values[i]);
    result r = co_await db.query("SELECT t FROM v ORDER BY id");
    for (std::size_t i = 0; i < values.size(); ++i)
      EXPECT_EQ(r[i].get<sys_micros>(0), values[i]) << i;
    EXPECT_EQ(r[4].get<system_clock::time_point>(0), now);
    // A nanosecond time point holds only the years 1678..2261: year 1 is refused, not wrapped.
    const std::string what = co_await expect_sqlstate("22008", [&]() -> asio::awaitable<void> {
      (void)r[2].get<system_clock::time_point>(0);
      co_return;
    });
    EXPECT_NE(what.find("1678"), std::string::npos) << what;
    // Nanoseconds are cut to microseconds (PostgreSQL's precision), on both engines.
    const system_clock::time_point precise = system_clock::time_point(nanoseconds(1'234'567'891));
    co_await db.execute("INSERT INTO v VALUES (99, $1)", precise);
    EXPECT_EQ(co_await db.query_scalar<system_clock::time_point>("SELECT t FROM v WHERE id = 99"),
              system_clock::time_point(microseconds(1'234'567)));
    // Coarser time points too.
    EXPECT_EQ(co_await db.query_scalar<sys_seconds>("SELECT t FROM v WHERE id = 99"),
              sys_seconds(seconds(1)));
    // NULL, and outside years 1..9999: a clear error.
    co_await db.execute("INSERT INTO v VALUES (100, $1)", std::optional<sys_micros>());
    EXPECT_FALSE(
        (co_await db.query_scalar<std::optional<sys_micros>>("SELECT t FROM v WHERE id = 100")));
    co_await expect_sqlstate(
        "22008", [&] { return db.execute("INSERT INTO v VALUES (101, $1)", last + hours(24)); });
  });
}

TEST_P(types, time_zones_do_not_move_a_time_point) {
  if (!pg()) {
    // SQLite stores UTC text: its own functions read it as it is.
    with_db([](database& db) -> asio::awaitable<void> {
      const sys_micros t = sys_days(year(2024) / 2 / 29) + hours(13) + microseconds(250);
      EXPECT_EQ(co_await db.query_scalar<std::string>("SELECT $1", t),
                "2024-02-29 13:00:00.000250");
      EXPECT_EQ(co_await db.query_scalar<std::string>("SELECT datetime($1, '+1 day')", t),
                "2024-03-01 13:00:00");
      EXPECT_EQ(co_await db.query_scalar<std::string>("SELECT date($1)", t), "2024-02-29");
    });
    return;
  }
  // One connection, its session in a zone far from UTC.
  with_db(
      [](database& db) -> asio::awaitable<void> {
        co_await db.execute("SET TimeZone = 'Asia/Kolkata'");
        co_await db.execute("CREATE TABLE v (tz TIMESTAMPTZ, plain TIMESTAMP)");
        const sys_micros t = sys_days(year(2024) / 2 / 29) + hours(23) + microseconds(250);
        co_await db.execute("INSERT INTO v VALUES ($1, $2)", t, t);
        row r = co_await db.query_one("SELECT tz, plain, tz::text FROM v");
        EXPECT_EQ(r.get<sys_micros>(0), t);  // TIMESTAMPTZ: the instant
        EXPECT_EQ(r.get<sys_micros>(1), t);  // TIMESTAMP: read as UTC, written as UTC
        EXPECT_EQ(r.get<std::string>(2), "2024-03-01 04:30:00.00025+05:30");  // the server's
        // The server's text, with its offset, read by SQLite as the same instant.
        database lite = co_await open("sqlite::memory:");
        EXPECT_EQ(co_await lite.query_scalar<sys_micros>("SELECT $1", r.get<std::string>(2)), t);
        // SQLite's text, written by SQLite, read by PostgreSQL as the same instant.
        const std::string lite_text = co_await lite.query_scalar<std::string>("SELECT $1", t);
        EXPECT_EQ(
            co_await db.query_scalar<sys_micros>("SELECT ($1 || '+00')::timestamptz", lite_text),
            t);
        co_await lite.close();
        co_await db.execute("SET TimeZone = 'UTC'");
      },
      "pool_max_size=1");
}

TEST_P(types, dates_and_durations) {
  with_db([this](database& db) -> asio::awaitable<void> {
    co_await db.execute("CREATE TABLE v (d " + column("DATE") + ", t " + column("TIME") + ", i " +
                        column("INTERVAL") + ")");
    const year_month_day leap = year(2024) / 2 / 29;
    const auto time_of_day = hours(23) + minutes(59) + seconds(58) + microseconds(5);
    const auto long_interval = -(hours(100) + microseconds(1));
    co_await db.execute("INSERT INTO v VALUES ($1, $2, $3)", leap, time_of_day, long_interval);
    row r = co_await db.query_one("SELECT d, t, i FROM v");
    EXPECT_EQ(r.get<year_month_day>(0), leap);
    EXPECT_EQ(r.get<sys_days>(0), sys_days(leap));
    EXPECT_EQ(r.get<microseconds>(1), time_of_day);
    EXPECT_EQ(r.get<microseconds>(2), long_interval);
    EXPECT_EQ(r.get<seconds>(1), seconds(86398));  // coarser: cut
    co_await db.execute("DELETE FROM v");
    co_await db.execute("INSERT INTO v (d) VALUES ($1)", sys_days(year(1969) / 7 / 20));
    EXPECT_EQ(co_await db.query_scalar<year_month_day>("SELECT d FROM v"), year(1969) / 7 / 20);
    if (pg()) {
      // An interval with days or months is no duration.
      co_await expect_sqlstate("22015", [&] {
        return db.query_scalar<microseconds>("SELECT interval '1 day 02:00:00'");
      });
      co_await expect_sqlstate(
          "22008", [&] { return db.query_scalar<sys_micros>("SELECT 'infinity'::timestamptz"); });
    } else {
      co_await expect_sqlstate("22007",
                               [&] { return db.query_scalar<sys_micros>("SELECT 'soon'"); });
    }
  });
}

TEST_P(types, durations_too_long_for_the_asked_type) {
  // Three million hours fit microseconds, not nanoseconds (292 years): refused, not wrapped.
  const std::string huge = pg() ? "SELECT interval '3000000 hours'" : "SELECT '3000000:00:00'";
  with_db([&huge](database& db) -> asio::awaitable<void> {
    EXPECT_EQ(co_await db.query_scalar<hours>(huge), hours(3'000'000));
    co_await expect_sqlstate("22008", [&] { return db.query_scalar<nanoseconds>(huge); });
  });
}

TEST_P(types, uuids_and_json) {
  with_db([this](database& db) -> asio::awaitable<void> {
    co_await db.execute("CREATE TABLE v (u " + column("UUID") + ", j " + column("JSONB") + ")");
    const boost::uuids::uuid u = {{0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8, 0xbb, 0x6d, 0x6b,
                                   0xb9, 0xbd, 0x38, 0x0a, 0x11}};
    co_await db.execute("INSERT INTO v VALUES ($1, $2)", u, R"({"a": [1, 2]})");
    row r = co_await db.query_one("SELECT u, j FROM v WHERE u = $1", u);
    EXPECT_EQ(r.get<boost::uuids::uuid>(0), u);
    EXPECT_EQ(r.get<std::string>(0), "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
    EXPECT_EQ(r.get<std::string>(1), R"({"a": [1, 2]})");
    if (!pg()) {
      // SQLite: a UUID stored as 16 bytes reads too.
      blob bytes(16);
      for (std::size_t i = 0; i < 16; ++i)
        bytes[i] = std::byte(u.data[i]);
      EXPECT_EQ(co_await db.query_scalar<boost::uuids::uuid>("SELECT $1", bytes), u);
    }
    co_await expect_sqlstate(
        "22P02", [&] { return db.query_scalar<boost::uuids::uuid>("SELECT 'not-a-uuid'"); });
  });
}

// SQLite has no arrays: a vector parameter is refused before anything runs, naming the
// parameter. (PostgreSQL's arrays: test/postgres/pg_arrays_test.cpp.)
TEST(sqlite_arrays, are_refused_with_a_clear_error) {
  run([]() -> asio::awaitable<void> {
    database db = co_await open("sqlite::memory:");
    const std::string what = co_await expect_sqlstate("0A000", [&] {
      return db.query("SELECT $1", std::vector<std::int32_t>{1, 2});
    });
    EXPECT_NE(what.find("$1"), std::string::npos) << what;
    co_await expect_sqlstate(
        "42804", [&] { return db.query_scalar<std::vector<std::int32_t>>("SELECT '{1,2}'"); });
    co_await db.close();
  });
}

TEST_P(types, any_value_reads_as_text) {
  with_db([this](database& db) -> asio::awaitable<void> {
    const blob bytes{std::byte(1), std::byte(255)};
    row r = co_await db.query_one("SELECT 42, 1.5, $1, $2", true, bytes);
    EXPECT_EQ(r.get<std::string>(0), "42");
    EXPECT_EQ(r.get<std::string>(1), "1.5");
    if (pg()) {
      EXPECT_EQ(r.get<std::string>(2), "t");        // PostgreSQL's own text of a boolean
      EXPECT_EQ(r.get<std::string>(3), "\\x01ff");  // PostgreSQL's text form of BYTEA
    } else {
      EXPECT_EQ(r.get<std::string>(2), "1");  // SQLite stores booleans as integers
      EXPECT_EQ(r.get<std::string>(3), std::string("\x01\xff", 2));  // the bytes themselves
    }
  });
}

TEST_P(types, rows_map_to_structs) {
  with_db([this](database& db) -> asio::awaitable<void> {
    co_await db.execute("CREATE TABLE v (id BIGINT, name TEXT, note TEXT, opened " +
                        column("TIMESTAMPTZ") + ")");
    const sys_micros when = sys_days(year(2020) / 1 / 1) + microseconds(7);
    co_await db.execute("INSERT INTO v VALUES (1, 'ada', NULL, $1), (2, 'grace', 'hi', $1)", when);
    // By position (an aggregate).
    std::vector<person> people =
        co_await db.query_as<person>("SELECT id, name, note FROM v ORDER BY id");
    CO_ASSERT(people.size() == 2u);
    EXPECT_EQ(people[0].name, "ada");
    EXPECT_FALSE(people[0].note);
    EXPECT_EQ(people[1].note, "hi");
    // By name (described), whatever the order of the columns.
    account a = co_await db.query_one_as<account>(
        "SELECT opened, id AS balance, name AS owner FROM v WHERE id = 2");
    EXPECT_EQ(a.owner, "grace");
    EXPECT_EQ(a.balance, 2);
    EXPECT_EQ(a.opened, when);
    EXPECT_FALSE(co_await db.query_opt_as<person>("SELECT id, name, note FROM v WHERE id = 9"));
    // Mismatches name the member and the column.
    std::string m = co_await expect_sqlstate(
        "42804", [&] { return db.query_as<person>("SELECT id, name FROM v"); });
    EXPECT_NE(m.find("3 members"), std::string::npos) << m;
    m = co_await expect_sqlstate("42703", [&] {
      return db.query_one_as<account>("SELECT opened, id AS balance, name FROM v WHERE id = 1");
    });
    EXPECT_NE(m.find("owner"), std::string::npos) << m;
    m = co_await expect_sqlstate(
        "22004", [&] { return db.query_as<person>("SELECT id, note, name FROM v ORDER BY id"); });
    EXPECT_NE(m.find("#1"), std::string::npos) << m;
    EXPECT_NE(m.find("note"), std::string::npos) << m;
  });
}

TEST_P(types, single_row_helpers) {
  with_db([](database& db) -> asio::awaitable<void> {
    co_await db.execute("CREATE TABLE v (id INTEGER, name TEXT)");
    co_await db.execute("INSERT INTO v VALUES (1, 'a'), (2, 'b')");
    row one = co_await db.query_one("SELECT name FROM v WHERE id = $1", 2);
    EXPECT_EQ(one.get<std::string>(0), "b");
    co_await expect_sqlstate("P0002", [&] { return db.query_one("SELECT * FROM v WHERE id = 3"); });
    co_await expect_sqlstate("P0003", [&] { return db.query_one("SELECT * FROM v"); });
    EXPECT_FALSE(co_await db.query_opt("SELECT * FROM v WHERE id = 3"));
    EXPECT_TRUE(co_await db.query_opt("SELECT * FROM v WHERE id = 1"));
    co_await expect_sqlstate("P0003", [&] { return db.query_opt("SELECT * FROM v"); });
    EXPECT_EQ(co_await db.query_scalar<std::int64_t>("SELECT count(*) FROM v"), 2);
    EXPECT_EQ(co_await db.query_scalar<std::optional<std::string>>("SELECT NULL"), std::nullopt);
    co_await expect_sqlstate("42601", [&] { return db.query_scalar<int>("SELECT 1, 2"); });
    // Row checks: a column index out of range is an error, for get and is_null alike.
    co_await expect_sqlstate("42703", [&]() -> asio::awaitable<void> {
      (void)one.is_null(5);
      co_return;
    });
  });
}

// query_scalar reads its value where the engine holds the row (SQLite: from the statement
// itself, no result made): the same checks and conversions as query_one and row::get, and a
// failure to be one value of the asked type is the caller's, not the statement's.
TEST_P(types, scalars_are_read_straight_from_the_row) {
  with_db([](database& db) -> asio::awaitable<void> {
    co_await db.execute("CREATE TABLE v (id INTEGER PRIMARY KEY, name TEXT, flag BOOLEAN)");
    co_await db.execute("INSERT INTO v VALUES (1, 'ada', true), (2, NULL, false)");
    EXPECT_EQ(co_await db.query_scalar<std::string>("SELECT name FROM v WHERE id = $1", 1), "ada");
    EXPECT_TRUE(co_await db.query_scalar<bool>("SELECT flag FROM v WHERE id = 1"));
    EXPECT_FALSE(co_await db.query_scalar<bool>("SELECT flag FROM v WHERE id = 2"));
    EXPECT_EQ(
        co_await db.query_scalar<std::optional<std::string>>("SELECT name FROM v WHERE id = 2"),
        std::nullopt);
    // Not one value: no row, two rows, two columns.
    co_await expect_sqlstate(
        "P0002", [&] { return db.query_scalar<std::int64_t>("SELECT id FROM v WHERE id = 3"); });
    co_await expect_sqlstate("P0003",
                             [&] { return db.query_scalar<std::int64_t>("SELECT id FROM v"); });
    co_await expect_sqlstate("42601", [&] {
      return db.query_scalar<std::int64_t>("SELECT id, name FROM v WHERE id = 1");
    });
    // A value the asked type cannot hold: the error names the column.
    std::string m = co_await expect_sqlstate(
        "22004", [&] { return db.query_scalar<std::string>("SELECT name FROM v WHERE id = 2"); });
    EXPECT_NE(m.find("name"), std::string::npos) << m;
    co_await expect_sqlstate("22003",
                             [&] { return db.query_scalar<std::int16_t>("SELECT 100000"); });
    // The statement runs to its end all the same: every row of a RETURNING is written.
    co_await expect_sqlstate("P0003", [&] {
      return db.query_scalar<std::int64_t>("INSERT INTO v (id) VALUES (3), (4) RETURNING id");
    });
    EXPECT_EQ(co_await db.query_scalar<std::int64_t>("SELECT count(*) FROM v"), 4);
    EXPECT_EQ(
        co_await db.query_scalar<std::int64_t>("INSERT INTO v (id) VALUES ($1) RETURNING id", 5),
        5);
    // Inside a transaction such a failure does not abort it.
    co_await db.transaction([&]() -> asio::awaitable<void> {
      co_await expect_sqlstate(
          "22004", [&] { return db.query_scalar<std::string>("SELECT name FROM v WHERE id = 2"); });
      co_await expect_sqlstate(
          "P0002", [&] { return db.query_scalar<std::int64_t>("SELECT id FROM v WHERE id = 99"); });
      EXPECT_EQ(
          co_await db.query_scalar<std::int64_t>("DELETE FROM v WHERE id = $1 RETURNING id", 5), 5);
    });
    EXPECT_EQ(co_await db.query_scalar<std::int64_t>("SELECT count(*) FROM v"), 4);
    // The operation outlives the handle it was made from.
    auto handle = std::make_unique<database>(db);
    auto later = handle->query_scalar<std::int64_t>("SELECT max(id) FROM v");
    handle.reset();
    EXPECT_EQ(co_await std::move(later), 4);
  });
}

INSTANTIATE_TEST_SUITE_P(engines, types, testing::ValuesIn(engine_cases()), engine_case_name);

}  // namespace
}  // namespace awaitdb::test
