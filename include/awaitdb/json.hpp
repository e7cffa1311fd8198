// awaitdb: JSON values as parameters and columns (the optional awaitdb::json component, which
// links Boost.JSON; nothing else in awaitdb needs it).
#ifndef AWAITDB_JSON_HPP
#define AWAITDB_JSON_HPP

#include <awaitdb/value.hpp>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <boost/json/value_from.hpp>
#include <boost/json/value_to.hpp>

#include <string>
#include <string_view>
#include <utility>

namespace awaitdb {

namespace detail {
/// The serialized text of `v`.
std::string json_text(const boost::json::value& v);
/// `text` parsed; malformed JSON throws `awaitdb::error` 22P02 (never quoting the text).
boost::json::value parse_json(std::string_view text);
/// Throws 42804: the JSON held is not a `wanted` ("an object", "an array").
[[noreturn]] void json_kind_mismatch(const char* wanted);
}  // namespace detail

/// A JSON value: PostgreSQL `json`/`jsonb` (sent as text of no stated type, so `doc @> $1` on a
/// jsonb column works) and SQLite text. Reading text that is not JSON throws 22P02.
template <>
struct type_mapping<boost::json::value> {
  using db_type = std::string;
  static std::string to_db(const boost::json::value& v) { return detail::json_text(v); }
  static boost::json::value from_db(const std::string& text) { return detail::parse_json(text); }
  static constexpr std::string_view name = "boost::json::value";
};

/// A JSON object; reading JSON that is not an object throws 42804.
template <>
struct type_mapping<boost::json::object> {
  using db_type = std::string;
  static std::string to_db(const boost::json::object& v) {
    return detail::json_text(boost::json::value(v));
  }
  static boost::json::object from_db(const std::string& text) {
    boost::json::value v = detail::parse_json(text);
    if (!v.is_object()) detail::json_kind_mismatch("an object");
    return std::move(v.as_object());
  }
  static constexpr std::string_view name = "boost::json::object";
};

/// A JSON array; reading JSON that is not an array throws 42804.
template <>
struct type_mapping<boost::json::array> {
  using db_type = std::string;
  static std::string to_db(const boost::json::array& v) {
    return detail::json_text(boost::json::value(v));
  }
  static boost::json::array from_db(const std::string& text) {
    boost::json::value v = detail::parse_json(text);
    if (!v.is_array()) detail::json_kind_mismatch("an array");
    return std::move(v.as_array());
  }
  static constexpr std::string_view name = "boost::json::array";
};

/// A value of yours stored as JSON through Boost.JSON's `value_from` / `value_to` (a struct
/// described with `BOOST_DESCRIBE_STRUCT`, a map, a vector ...):
///
///     co_await db.execute("UPDATE users SET settings = $1", awaitdb::as_json(settings));
///     prefs p = (co_await db.query_scalar<awaitdb::as_json<prefs>>("SELECT settings ...")).value;
///
/// JSON that does not fit `T` throws 22P02.
template <class T>
class as_json {
 public:
  // (A constructor, so not an aggregate: see g++ 12 in docs/usage.md.)
  explicit as_json(T v) : value(std::move(v)) {}
  T value;
};

namespace detail {
/// Throws 22P02: JSON that does not convert to the asked type (`why`: Boost.JSON's message).
[[noreturn]] void json_shape_mismatch(const char* why);
}  // namespace detail

template <class T>
struct type_mapping<as_json<T>> {
  using db_type = std::string;
  static std::string to_db(const as_json<T>& v) {
    return detail::json_text(boost::json::value_from(v.value));
  }
  static as_json<T> from_db(const std::string& text) {
    const boost::json::value v = detail::parse_json(text);
    auto converted = boost::json::try_value_to<T>(v);
    if (!converted) detail::json_shape_mismatch(converted.error().message().c_str());
    return as_json<T>(std::move(*converted));
  }
};

}  // namespace awaitdb

#endif  // AWAITDB_JSON_HPP
