// Every documented type with its edge values, in both directions on every engine that has it:
// a literal of the engine read into the C++ type, and the C++ value sent as a parameter and
// read back. The edges an external corpus found wrong (REAL at its limits, times outside the
// years 1..9999, booleans and arrays as text, optional arrays) are rows of this table, so that
// such an edge cannot slip in again.
#include "support.hpp"

#include <boost/uuid/string_generator.hpp>

#include <cfloat>
#include <cmath>
#include <limits>
#include <sstream>

namespace awaitdb::test {
namespace {

using namespace std::chrono;
using sys_micros = time_point<system_clock, microseconds>;

template <class T>
std::string shown(const T& v) {
  std::ostringstream out;
  if constexpr (std::is_same_v<T, blob>) {
    out << v.size() << " bytes";
  } else if constexpr (std::is_same_v<T, sys_micros> || std::is_same_v<T, sys_days> ||
                       std::is_same_v<T, system_clock::time_point>) {
    out << v.time_since_epoch().count();
  } else if constexpr (std::is_same_v<T, year_month_day>) {
    out << static_cast<int>(v.year()) << '-' << static_cast<unsigned>(v.month()) << '-'
        << static_cast<unsigned>(v.day());
  } else if constexpr (requires { v.count(); }) {
    out << v.count();
  } else if constexpr (detail::is_vector_v<T>) {
    out << v.size() << " elements";
  } else if constexpr (detail::is_optional<T>::value) {
    if (v)
      out << shown(*v);
    else
      out << "nullopt";
  } else if constexpr (std::is_same_v<T, boost::uuids::uuid>) {
    out << "a uuid";
  } else {
    out << v;
  }
  return out.str();
}

template <class T>
bool same(const T& a, const T& b) {
  if constexpr (std::is_floating_point_v<T>) {
    if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
    return a == b && std::signbit(a) == std::signbit(b);
  } else {
    return a == b;
  }
}

// `literal` (SQL of the engine) read as T is `expected`; `expected` sent as a parameter (cast
// to `sql_type` where the engine has types) and read back is `expected` again.
template <class T>
asio::awaitable<void> both_ways(database& db, std::string sql_type, std::string literal,
                                T expected) {
  const std::string what = sql_type + " " + literal;
  try {
    const T read = co_await db.query_scalar<T>("SELECT " + literal);
    EXPECT_TRUE(same(read, expected))
        << what << ": read " << shown(read) << ", expected " << shown(expected);
  } catch (const std::exception& e) {
    ADD_FAILURE() << what << " as a literal: " << e.what();
  }
  const std::string param = sql_type.empty() ? "$1" : "$1::" + sql_type;
  try {
    const T back = co_await db.query_scalar<T>("SELECT " + param, expected);
    EXPECT_TRUE(same(back, expected))
        << what << ": sent " << shown(expected) << ", read " << shown(back);
  } catch (const std::exception& e) {
    ADD_FAILURE() << what << " as a parameter: " << e.what();
  }
}

// `literal` read as T fails with `state`.
template <class T>
asio::awaitable<void> refused(database& db, std::string literal, std::string_view state) {
  try {
    (void)co_await db.query_scalar<T>("SELECT " + literal);
    ADD_FAILURE() << literal << ": read, expected " << state;
  } catch (const error& e) {
    EXPECT_EQ(e.sqlstate(), state) << literal << ": " << e.what();
  }
}

// `literal` read as std::string is exactly `text` (the engine's own text form).
asio::awaitable<void> as_text(database& db, std::string literal, std::string text) {
  try {
    EXPECT_EQ(co_await db.query_scalar<std::string>("SELECT " + literal), text) << literal;
  } catch (const std::exception& e) {
    ADD_FAILURE() << literal << " as text: " << e.what();
  }
}

class type_table : public engine_test {};

TEST_P(type_table, numbers) {
  run([&]() -> asio::awaitable<void> {
    database db = co_await open(GetParam().url);
    const bool p = pg();
    auto cast = [&](std::string value, std::string type) {
      return p ? "(" + value + ")::" + type : value;
    };
    co_await both_ways<bool>(db, p ? "boolean" : "", p ? "true" : "1", true);
    co_await both_ways<bool>(db, p ? "boolean" : "", p ? "false" : "0", false);
    co_await both_ways<std::int16_t>(db, p ? "int2" : "", cast("32767", "int2"), 32767);
    co_await both_ways<std::int16_t>(db, p ? "int2" : "", cast("-32768", "int2"), -32768);
    co_await both_ways<std::int32_t>(db, p ? "int4" : "", cast("2147483647", "int4"), 2147483647);
    co_await both_ways<std::int32_t>(db, p ? "int4" : "", cast("-2147483648", "int4"),
                                     std::numeric_limits<std::int32_t>::min());
    co_await both_ways<std::int64_t>(db, p ? "int8" : "", cast("9223372036854775807", "int8"),
                                     std::numeric_limits<std::int64_t>::max());
    co_await both_ways<std::int64_t>(db, p ? "int8" : "", cast("-9223372036854775808", "int8"),
                                     std::numeric_limits<std::int64_t>::min());
    co_await both_ways<double>(db, p ? "float8" : "", cast("0.1", "float8"), 0.1);
    co_await both_ways<double>(db, p ? "float8" : "", cast("1.7976931348623157e308", "float8"),
                               DBL_MAX);
    co_await both_ways<double>(db, p ? "float8" : "", cast("-1.7976931348623157e308", "float8"),
                               -DBL_MAX);
    co_await both_ways<double>(db, p ? "float8" : "", cast("2.2250738585072014e-308", "float8"),
                               DBL_MIN);
    co_await both_ways<float>(db, p ? "float4" : "", cast("0.5", "float4"), 0.5f);
    if (p) {
      // REAL at its limits, written by the server as its shortest text.
      co_await both_ways<float>(db, "real", "'3.4028235e+38'::real", FLT_MAX);
      co_await both_ways<float>(db, "real", "'-3.4028235e+38'::real", -FLT_MAX);
      co_await both_ways<float>(db, "real", "'1.1754944e-38'::real", FLT_MIN);
      co_await both_ways<float>(db, "real", "'NaN'::real", std::numeric_limits<float>::quiet_NaN());
      co_await both_ways<float>(db, "real", "'Infinity'::real",
                                std::numeric_limits<float>::infinity());
      co_await both_ways<float>(db, "real", "'-0'::real", -0.0f);
      co_await both_ways<double>(db, "float8", "'-Infinity'::float8",
                                 -std::numeric_limits<double>::infinity());
      co_await both_ways<double>(db, "float8", "'-0'::float8", -0.0);
      co_await both_ways<std::int64_t>(db, "numeric", "12345678901234::numeric", 12345678901234);
      // A double precision too big for a float is out of its range.
      co_await refused<float>(db, "1e39::float8", "22003");
      co_await refused<std::int16_t>(db, "32768::int4", "22003");
    } else {
      co_await both_ways<float>(db, "", "3.4028234663852886e+38", FLT_MAX);
      co_await refused<float>(db, "1e39", "22003");
      co_await refused<std::int16_t>(db, "32768", "22003");
    }
    co_await db.close();
  });
}

TEST_P(type_table, text_and_bytes) {
  run([&]() -> asio::awaitable<void> {
    database db = co_await open(GetParam().url);
    const bool p = pg();
    co_await both_ways<std::string>(db, p ? "text" : "", "''", "");
    co_await both_ways<std::string>(db, p ? "text" : "", "'it''s \"quoted\" \\ 🙂'",
                                    "it's \"quoted\" \\ 🙂");
    blob every(256);
    for (std::size_t i = 0; i < every.size(); ++i)
      every[i] = static_cast<std::byte>(i);
    std::string hex;
    for (std::size_t i = 0; i < every.size(); ++i) {
      static constexpr char digits[] = "0123456789abcdef";
      hex += digits[i >> 4];
      hex += digits[i & 15];
    }
    // (Named first: g++ 12 destroys twice a class-type result of ?: in a co_await expression.)
    const std::string bytes_literal = p ? "'\\x" + hex + "'::bytea" : "x'" + hex + "'";
    co_await both_ways<blob>(db, p ? "bytea" : "", bytes_literal, every);
    co_await both_ways<std::optional<std::string>>(db, p ? "text" : "", "NULL", std::nullopt);
    co_await both_ways<std::optional<std::int64_t>>(db, p ? "int8" : "", "NULL", std::nullopt);
    // Any value reads as text, as the engine writes it.
    if (p) {
      co_await as_text(db, "true", "t");
      co_await as_text(db, "false", "f");
      co_await as_text(db, "ARRAY[1,2]", "{1,2}");
      co_await as_text(db, "ARRAY['a\"b', NULL]", "{\"a\\\"b\",NULL}");
      co_await as_text(db, "'[0:2]={1,2,3}'::int[]", "[0:2]={1,2,3}");
      co_await as_text(db, "'1 2'::int2vector", "1 2");
      co_await as_text(db, "'3.4028235e+38'::real", "3.4028235e+38");
      co_await as_text(db, "'\\x0aff'::bytea", "\\x0aff");
    } else {
      co_await as_text(db, "1", "1");
      co_await as_text(db, "0.5", "0.5");
    }
    co_await db.close();
  });
}

TEST_P(type_table, times) {
  run([&]() -> asio::awaitable<void> {
    database db = co_await open(GetParam().url);
    const bool p = pg();
    auto lit = [&](std::string text, std::string type) {
      return p ? "'" + text + "'::" + type : "'" + text + "'";
    };
    const sys_micros epoch{};
    const sys_micros first = sys_days(year(1) / 1 / 1);
    const sys_micros last = sys_days(year(9999) / 12 / 31) + hours(23) + minutes(59) + seconds(59) +
                            microseconds(999999);
    co_await both_ways<sys_micros>(db, p ? "timestamptz" : "",
                                   lit("1970-01-01 00:00:00+00", "timestamptz"), epoch);
    co_await both_ways<sys_micros>(db, p ? "timestamp" : "",
                                   lit("0001-01-01 00:00:00", "timestamp"), first);
    co_await both_ways<sys_micros>(db, p ? "timestamp" : "",
                                   lit("9999-12-31 23:59:59.999999", "timestamp"), last);
    co_await both_ways<sys_days>(db, p ? "date" : "", lit("0001-01-01", "date"),
                                 sys_days(year(1) / 1 / 1));
    co_await both_ways<year_month_day>(db, p ? "date" : "", lit("9999-12-31", "date"),
                                       year(9999) / 12 / 31);
    co_await both_ways<microseconds>(db, p ? "time" : "", lit("23:59:59.999999", "time"),
                                     hours(24) - microseconds(1));
    if (p) {
      co_await both_ways<microseconds>(db, "interval", "'-1:02:03.5'::interval",
                                       -(hours(1) + minutes(2) + seconds(3) + milliseconds(500)));
      // Outside the years 1..9999: out of the range of the C++ types (22008), never malformed.
      static constexpr const char* far_times[] = {
          "'0044-03-15 12:00:00 BC'::timestamp", "'10000-01-01 00:00:00'::timestamp",
          "'0044-03-15 12:00:00+00 BC'::timestamptz", "'10000-01-01 00:00:00+00'::timestamptz",
          "'infinity'::timestamp"};
      for (const char* t : far_times) {
        co_await refused<sys_micros>(db, t, "22008");
        co_await refused<system_clock::time_point>(db, t, "22008");
      }
      static constexpr const char* far_dates[] = {"'0001-12-31 BC'::date", "'10000-01-01'::date",
                                                  "'-infinity'::date"};
      for (const char* d : far_dates) {
        co_await refused<sys_days>(db, d, "22008");
        co_await refused<year_month_day>(db, d, "22008");
      }
      co_await refused<sys_micros>(db, "'not a time'::text", "22007");
    }
    co_await db.close();
  });
}

TEST_P(type_table, uuids_and_arrays) {
  run([&]() -> asio::awaitable<void> {
    database db = co_await open(GetParam().url);
    const bool p = pg();
    const auto id = boost::uuids::string_generator()("0f8fad5b-d9cb-469f-a165-70867728950e");
    co_await both_ways<boost::uuids::uuid>(db, p ? "uuid" : "",
                                           p ? "'0f8fad5b-d9cb-469f-a165-70867728950e'::uuid"
                                             : "'0f8fad5b-d9cb-469f-a165-70867728950e'",
                                           id);
    if (p) {
      // (Vectors made in statements of their own: g++ 12 cannot compile a braced list inside
      // a co_await expression.)
      const std::vector<std::int64_t> keys{1, std::numeric_limits<std::int64_t>::min()};
      co_await both_ways(db, "int8[]", "ARRAY[1, -9223372036854775808]::int8[]", keys);
      const std::vector<std::string> words{"a\"b", "c,d", ""};
      co_await both_ways(db, "text[]", "ARRAY['a\"b', 'c,d', '']", words);
      const std::vector<float> limits{FLT_MAX};
      co_await both_ways(db, "real[]", "ARRAY['3.4028235e+38'::real]", limits);
      const std::vector<std::optional<bool>> flags{true, std::nullopt};
      co_await both_ways(db, "bool[]", "ARRAY[true, NULL]", flags);
      // An optional array as a parameter, present and absent.
      const std::optional<std::vector<std::int32_t>> some = std::vector<std::int32_t>(2, 1);
      const std::optional<std::vector<std::int32_t>> none;
      co_await both_ways(db, "int4[]", "ARRAY[1, 1]::int4[]", some);
      co_await both_ways(db, "int4[]", "NULL::int4[]", none);
      // Arrays of other element types, read as vectors of what their elements read as.
      std::vector<std::string> names = co_await db.query_scalar<std::vector<std::string>>(
          "SELECT ARRAY['pg_class', 'pg_type']::name[]");
      EXPECT_EQ(names.size(), 2u);
      EXPECT_EQ(names.back(), "pg_type");
      std::vector<std::int64_t> numbers =
          co_await db.query_scalar<std::vector<std::int64_t>>("SELECT '1 2 3'::int2vector");
      EXPECT_EQ(numbers, std::vector<std::int64_t>({1, 2, 3}));
      numbers = co_await db.query_scalar<std::vector<std::int64_t>>("SELECT '23 25'::oidvector");
      EXPECT_EQ(numbers, std::vector<std::int64_t>({23, 25}));
      numbers = co_await db.query_scalar<std::vector<std::int64_t>>("SELECT ARRAY[16, 17]::oid[]");
      EXPECT_EQ(numbers, std::vector<std::int64_t>({16, 17}));
      names =
          co_await db.query_scalar<std::vector<std::string>>("SELECT ARRAY['a', 'b']::\"char\"[]");
      EXPECT_EQ(names, std::vector<std::string>({"a", "b"}));
      // A type the library does not know arrives as text; its array still reads element by
      // element (here a domain's array, as an extension's would).
      co_await db.execute("DROP DOMAIN IF EXISTS awaitdb_label CASCADE");
      co_await db.execute("CREATE DOMAIN awaitdb_label AS text");
      names = co_await db.query_scalar<std::vector<std::string>>(
          "SELECT ARRAY['x.y', 'z']::awaitdb_label[]");
      EXPECT_EQ(names, std::vector<std::string>({"x.y", "z"}));
      co_await db.execute("DROP DOMAIN awaitdb_label CASCADE");
      co_await refused<std::vector<std::int64_t>>(db, "'{{1,2},{3,4}}'::int[]", "0A000");
      co_await refused<std::vector<std::int16_t>>(db, "ARRAY[40000]", "22003");
    } else {
      co_await refused<std::vector<std::int64_t>>(db, "'1'", "42804");
    }
    co_await db.close();
  });
}

INSTANTIATE_TEST_SUITE_P(engines, type_table, testing::ValuesIn(engine_cases()), engine_case_name);

}  // namespace
}  // namespace awaitdb::test
