// SQLite values in and out: a value SQLite holds (a column, a function's argument) as a `cell`,
// and a `param` written to SQLite (a statement's parameter, a function's result).
#ifndef AWAITDB_SRC_SQLITE_SQLITE_VALUES_HPP
#define AWAITDB_SRC_SQLITE_SQLITE_VALUES_HPP

#include "../param_check.hpp"
#include "../text_forms.hpp"
#include <awaitdb/row.hpp>
#include <awaitdb/value.hpp>

#include <sqlite3.h>

#include <cstddef>
#include <string>
#include <string_view>

namespace awaitdb::detail {

/// `v` as a cell (text and blobs viewed where SQLite holds them: valid until `v` changes).
/// SQLite has no boolean: an integer is an integer.
inline cell sqlite_cell(sqlite3_value* v) noexcept {
  switch (sqlite3_value_type(v)) {
    case SQLITE_INTEGER:
      return {cell_kind::integer, sqlite3_value_int64(v), 0, {}};
    case SQLITE_FLOAT:
      return {cell_kind::real, 0, sqlite3_value_double(v), {}};
    case SQLITE_TEXT: {
      // (The text first, then its length: asking for the text may convert it.)
      const auto* text = reinterpret_cast<const char*>(sqlite3_value_text(v));
      const auto size = static_cast<std::size_t>(sqlite3_value_bytes(v));
      return {cell_kind::text, 0, 0, std::string_view(text ? text : "", size)};
    }
    case SQLITE_BLOB: {
      const auto* data = static_cast<const char*>(sqlite3_value_blob(v));
      const auto size = static_cast<std::size_t>(sqlite3_value_bytes(v));
      return {cell_kind::blob, 0, 0, std::string_view(data ? data : "", size)};
    }
    default:
      return {};
  }
}

// The values SQLite cannot hold; `number` names the parameter ($number), 0 a function's result.
[[noreturn]] void unsigned_beyond_sqlite(std::size_t number);
[[noreturn]] void array_beyond_sqlite(std::size_t number);

/// Writes `p` through `sink`, which has `null()`, `integer(i)`, `real(d)`, `text(bytes,
/// transient)` and `blob(bytes)` returning SQLite's result code (sqlite3_bind_* for parameter
/// `$number`, sqlite3_result_* for a function's result when `number` is 0). `transient`: the
/// bytes die when this returns (SQLite must copy them). A text parameter must be UTF-8 without
/// NUL (as PostgreSQL's text); times, dates, durations and UUIDs are written as text, in UTC.
template <class Sink>
int write_sqlite_value(const param& p, std::size_t number, Sink& sink) {
  switch (p.kind) {
    case param_kind::null:
      return sink.null();
    case param_kind::boolean:
    case param_kind::int16:
    case param_kind::int32:
    case param_kind::int64:
      return sink.integer(p.integer);
    case param_kind::real:
      return sink.real(p.real);
    case param_kind::text:
      if (number != 0) check_text_parameter(p.bytes, number);
      // (A null pointer would write NULL: an empty string must stay an empty string.)
      return sink.text(p.bytes.data() ? p.bytes : std::string_view(""), false);
    case param_kind::uint64:
      unsigned_beyond_sqlite(number);
    case param_kind::timestamp:
    case param_kind::date:
    case param_kind::duration:
    case param_kind::uuid: {
      const std::string text = parameter_text(p, number, false);
      return sink.text(text, true);
    }
    case param_kind::array:
      array_beyond_sqlite(number);
    case param_kind::blob:
      return sink.blob(p.bytes);
  }
  return SQLITE_OK;
}

}  // namespace awaitdb::detail

#endif  // AWAITDB_SRC_SQLITE_SQLITE_VALUES_HPP
