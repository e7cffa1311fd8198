// Reading result values into C++ types: one set of rules for both engines.
#include "error_text.hpp"
#include "sqlstates.hpp"
#include "text_forms.hpp"
#include <awaitdb/error.hpp>
#include <awaitdb/result.hpp>
#include <awaitdb/row.hpp>

#include <boost/core/demangle.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <string>

namespace awaitdb {
namespace detail {
namespace {

const char* kind_name(cell_kind kind) {
  switch (kind) {
    case cell_kind::null:
      return "NULL";
    case cell_kind::boolean:
      return "a boolean";
    case cell_kind::integer:
      return "an integer";
    case cell_kind::real:
      return "a floating-point number";
    case cell_kind::numeric:
      return "a numeric";
    case cell_kind::text:
      return "text";
    case cell_kind::blob:
    case cell_kind::hex_blob:
      return "binary data";
    case cell_kind::array:
      return "an array";
  }
  return "a value";
}

std::string column_label(const result_source& src, std::size_t column) {
  return src.describe_column(column);
}

[[noreturn]] void mismatch(const result_source& src, std::size_t column, const cell& c,
                           const char* wanted) {
  if (c.kind == cell_kind::null)
    throw error(sqlstate::null_value_not_allowed,
                column_label(src, column) + " is NULL; read it as std::optional<" + wanted + ">");
  throw error(sqlstate::datatype_mismatch, column_label(src, column) + " holds " +
                                               kind_name(c.kind) + ", which cannot be read as " +
                                               wanted);
}

[[noreturn]] void out_of_range(const result_source& src, std::size_t column, const char* wanted) {
  throw error(sqlstate::numeric_value_out_of_range,
              column_label(src, column) + " holds a value out of the range of " + wanted);
}

cell checked_cell(const result_source& src, std::size_t row, std::size_t column) {
  return src.checked_at(row, column);
}

// A NUMERIC's text that is a whole number ("42", "-7", "42.000") as an integer.
bool numeric_to_integer(std::string_view text, std::int64_t& out, bool& overflow) {
  overflow = false;
  std::size_t dot = text.find('.');
  std::string_view whole = text.substr(0, dot);
  if (dot != std::string_view::npos)
    for (char ch : text.substr(dot + 1))
      if (ch != '0') return false;
  auto [end, ec] = std::from_chars(whole.data(), whole.data() + whole.size(), out);
  if (ec == std::errc::result_out_of_range) {
    overflow = true;
    return false;
  }
  return ec == std::errc() && end == whole.data() + whole.size();
}

bool parse_double(std::string_view text, double& out) {
  if (text == "NaN") {
    out = std::numeric_limits<double>::quiet_NaN();
    return true;
  }
  if (text == "Infinity") {
    out = std::numeric_limits<double>::infinity();
    return true;
  }
  if (text == "-Infinity") {
    out = -std::numeric_limits<double>::infinity();
    return true;
  }
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size();
}

}  // namespace

std::size_t result_source::column_index(std::string_view name) const {
  const std::size_t n = columns();
  for (std::size_t i = 0; i < n; ++i)
    if (column_name(i) == name) return i;
  throw error(sqlstate::undefined_column,
              "the result has no column named \"" + std::string(name) + "\"");
}

std::string result_source::describe_column(std::size_t column) const {
  return "column " + std::to_string(column) + " (\"" + std::string(column_name(column)) + "\")";
}

std::string array_cells::describe_column(std::size_t) const {
  return "an element of " + name_;
}

namespace {

// One element of an array's text form, as PostgreSQL writes it (array_out): either unquoted
// (NULL, or text without special characters) or in double quotes with \ escaping " and \.
struct array_parser {
  std::string_view text;
  std::size_t at = 0;

  bool done() const { return at >= text.size(); }
  char peek() const { return text[at]; }

  // Reads one element into `out`; false for an unquoted NULL.
  bool element(std::string& out) {
    out.clear();
    if (!done() && peek() == '"') {
      ++at;
      while (!done() && peek() != '"') {
        if (peek() == '\\') ++at;
        if (done()) break;
        out += text[at++];
      }
      if (done()) {
        unterminated = true;
        return true;
      }
      ++at;  // the closing quote
      return true;
    }
    bool escaped = false;
    while (!done() && peek() != ',' && peek() != '}') {
      if (peek() == '\\') {
        escaped = true;
        ++at;
        if (done()) break;
      }
      out += text[at++];
    }
    if (!escaped && out.size() == 4 &&
        std::equal(out.begin(), out.end(), "NULL", [](char a, char b) {
          return (a & ~0x20) == b;  // NULL in any case
        }))
      return false;
    return true;
  }

  bool unterminated = false;
};

}  // namespace

array_cells read_array(const result_source& src, std::size_t row, std::size_t column) {
  cell c = checked_cell(src, row, column);
  // An array of a type the library does not know (an extension's, e.g. ltree[]) arrives as
  // text: its elements read as text.
  if (c.kind == cell_kind::text && (c.bytes.starts_with('{') || c.bytes.starts_with('['))) {
    c.kind = cell_kind::array;
    c.integer = static_cast<std::int64_t>(cell_kind::text);
  }
  if (c.kind != cell_kind::array) mismatch(src, column, c, "std::vector");
  array_cells out;
  out.name_ = column_label(src, column);
  std::string text_form;
  std::string_view text = c.bytes;
  // int2vector and oidvector are written as "1 2 3": read as the array "{1,2,3}".
  if ((c.integer & space_separated_array) != 0) {
    text_form = text.empty() ? "{}" : "{" + std::string(text) + "}";
    std::replace(text_form.begin(), text_form.end(), ' ', ',');
    text = text_form;
  }
  // A lower bound other than 1 comes first: "[0:2]={1,2,3}".
  if (text.starts_with('[')) text.remove_prefix(std::min(text.find('=') + 1, text.size()));
  auto malformed = [&] {
    return error(sqlstate::invalid_text_representation,
                 column_label(src, column) + " holds a malformed array");
  };
  if (text.size() < 2 || text.front() != '{' || text.back() != '}') throw malformed();
  if (text.size() > 1 && text[1] == '{')
    throw error(sqlstate::feature_not_supported,
                column_label(src, column) +
                    " holds an array of more than one dimension, which a std::vector does not "
                    "represent; unnest it in SQL");
  array_parser parse{text.substr(1, text.size() - 2)};
  std::vector<bool> nulls;
  if (!parse.text.empty()) {
    for (;;) {
      std::string element;
      nulls.push_back(!parse.element(element));
      out.texts_.push_back(std::move(element));
      if (parse.unterminated) throw malformed();
      if (parse.done()) break;
      if (parse.peek() != ',') throw malformed();
      ++parse.at;
    }
  }
  const auto element_kind = static_cast<cell_kind>(c.integer & ~space_separated_array);
  out.cells_.resize(out.texts_.size());
  for (std::size_t i = 0; i < out.texts_.size(); ++i) {
    cell& e = out.cells_[i];
    if (nulls[i]) continue;
    e.kind = element_kind;
    e.bytes = out.texts_[i];
    const char* begin = e.bytes.data();
    const char* end = begin + e.bytes.size();
    bool ok = true;
    switch (element_kind) {
      case cell_kind::boolean:
        e.integer = e.bytes == "t" ? 1 : 0;
        break;
      case cell_kind::integer: {
        auto r = std::from_chars(begin, end, e.integer);
        ok = r.ec == std::errc() && r.ptr == end;
        break;
      }
      case cell_kind::real:
        ok = parse_double(e.bytes, e.real);
        break;
      default:
        break;
    }
    if (!ok) throw malformed();
  }
  return out;
}

cell result_source::checked_at(std::size_t row, std::size_t column) const {
  check_column(column);
  if (row >= rows())
    throw error(sqlstate::invalid_parameter, "row " + std::to_string(row) +
                                                 " is out of range: the result has " +
                                                 std::to_string(rows()) + " rows");
  return at(row, column);
}

void result_source::check_column(std::size_t column) const {
  if (column >= columns())
    throw error(sqlstate::undefined_column, "column index " + std::to_string(column) +
                                                " is out of range: the result has " +
                                                std::to_string(columns()) + " columns");
}

void read_cell(const result_source& src, std::size_t row, std::size_t column, bool& out) {
  cell c = checked_cell(src, row, column);
  if ((c.kind == cell_kind::boolean || c.kind == cell_kind::integer) &&
      (c.integer == 0 || c.integer == 1)) {
    out = c.integer == 1;
    return;
  }
  if (c.kind == cell_kind::integer) out_of_range(src, column, "bool");
  mismatch(src, column, c, "bool");
}

[[gnu::hot]] std::int64_t read_signed(const result_source& src, std::size_t row, std::size_t column,
                                      const char* wanted, std::int64_t min, std::int64_t max) {
  cell c = checked_cell(src, row, column);
  std::int64_t value = 0;
  switch (c.kind) {
    case cell_kind::integer:
      value = c.integer;
      break;
    case cell_kind::numeric: {
      bool overflow = false;
      if (!numeric_to_integer(c.bytes, value, overflow)) {
        if (overflow) out_of_range(src, column, wanted);
        throw error(sqlstate::datatype_mismatch, column_label(src, column) +
                                                     " holds a numeric with a fractional part, " +
                                                     "which cannot be read as " + wanted);
      }
      break;
    }
    default:
      mismatch(src, column, c, wanted);
  }
  if (value < min || value > max) out_of_range(src, column, wanted);
  return value;
}

std::uint64_t read_unsigned(const result_source& src, std::size_t row, std::size_t column,
                            const char* wanted, std::uint64_t max) {
  cell c = checked_cell(src, row, column);
  if (c.kind == cell_kind::integer) {
    if (c.integer < 0 || static_cast<std::uint64_t>(c.integer) > max)
      out_of_range(src, column, wanted);
    return static_cast<std::uint64_t>(c.integer);
  }
  if (c.kind != cell_kind::numeric) mismatch(src, column, c, wanted);
  // A NUMERIC holds what BIGINT cannot: read its whole digits exactly.
  std::string_view text = c.bytes;
  const std::size_t dot = text.find('.');
  if (dot != std::string_view::npos)
    for (char ch : text.substr(dot + 1))
      if (ch != '0')
        throw error(sqlstate::datatype_mismatch, column_label(src, column) +
                                                     " holds a numeric with a fractional part, "
                                                     "which cannot be read as " +
                                                     wanted);
  text = text.substr(0, dot);
  if (text.starts_with('-')) {
    if (text.find_first_not_of('0', 1) == std::string_view::npos) return 0;  // "-0"
    out_of_range(src, column, wanted);
  }
  std::uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec == std::errc::result_out_of_range || (ec == std::errc() && value > max))
    out_of_range(src, column, wanted);
  if (ec != std::errc() || end != text.data() + text.size()) mismatch(src, column, c, wanted);
  return value;
}

void read_cell(const result_source& src, std::size_t row, std::size_t column, double& out) {
  cell c = checked_cell(src, row, column);
  switch (c.kind) {
    case cell_kind::real:
      out = c.real;
      return;
    case cell_kind::integer:
      out = static_cast<double>(c.integer);
      return;
    case cell_kind::numeric:
      if (parse_double(c.bytes, out)) return;
      break;
    default:
      break;
  }
  mismatch(src, column, c, "double");
}

void read_cell(const result_source& src, std::size_t row, std::size_t column, float& out) {
  // A REAL's own text ("3.4028235e+38") is the shortest that reads back as that float: parsed
  // as a float, not as a double (which would be just above FLT_MAX).
  const cell c = checked_cell(src, row, column);
  if (c.kind == cell_kind::real && !c.bytes.empty() && c.bytes != "NaN" && c.bytes != "Infinity" &&
      c.bytes != "-Infinity") {
    const char* end = c.bytes.data() + c.bytes.size();
    auto [at, ec] = std::from_chars(c.bytes.data(), end, out);
    if (ec == std::errc::result_out_of_range) out_of_range(src, column, "float");
    if (ec == std::errc() && at == end) return;
  }
  double wide = 0;
  read_cell(src, row, column, wide);
  if (std::isfinite(wide) && std::fabs(wide) > std::numeric_limits<float>::max())
    out_of_range(src, column, "float");
  out = static_cast<float>(wide);
}

void read_cell(const result_source& src, std::size_t row, std::size_t column, std::string& out) {
  cell c = checked_cell(src, row, column);
  switch (c.kind) {
    case cell_kind::text:
    case cell_kind::numeric:
    case cell_kind::array:     // PostgreSQL's own text form: "{1,2}", "[0:1]={a,b}", "1 2"
    case cell_kind::hex_blob:  // PostgreSQL's own text form of BYTEA: "\\x0a1b..."
    case cell_kind::blob:      // SQLite's: the bytes themselves, as CAST(x AS TEXT) gives them
      out.assign(c.bytes);
      return;
    case cell_kind::integer:
      out = std::to_string(c.integer);
      return;
    case cell_kind::boolean:  // (PostgreSQL's: "t" or "f")
      if (c.bytes.empty())
        out = c.integer ? "t" : "f";
      else
        out.assign(c.bytes);
      return;
    case cell_kind::real: {
      if (!c.bytes.empty()) {
        out.assign(c.bytes);  // the server's own text
        return;
      }
      char buffer[32];
      auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, c.real);
      out.assign(buffer, ec == std::errc() ? end : buffer);
      return;
    }
    default:
      mismatch(src, column, c, "std::string");
  }
}

void read_cell(const result_source& src, std::size_t row, std::size_t column, blob& out) {
  cell c = checked_cell(src, row, column);
  switch (c.kind) {
    case cell_kind::blob:
    case cell_kind::text: {
      const auto* p = reinterpret_cast<const std::byte*>(c.bytes.data());
      out.assign(p, p + c.bytes.size());
      return;
    }
    case cell_kind::hex_blob: {
      std::string_view hex = c.bytes;
      if (!hex.starts_with("\\x") || hex.size() % 2 != 0)
        throw error(sqlstate::invalid_text_representation,
                    column_label(src, column) + " holds binary data in an unexpected format");
      out.resize((hex.size() - 2) / 2);
      for (std::size_t i = 0; i < out.size(); ++i) {
        int hi = hex_value(hex[2 + 2 * i]), lo = hex_value(hex[3 + 2 * i]);
        if (hi < 0 || lo < 0)
          throw error(sqlstate::invalid_text_representation,
                      column_label(src, column) + " holds malformed hexadecimal binary data");
        out[i] = static_cast<std::byte>(hi * 16 + lo);
      }
      return;
    }
    default:
      mismatch(src, column, c, "awaitdb::blob");
  }
}

namespace {

// The text of a time, date, duration or UUID cell (both engines present them as text).
std::string_view text_of(const result_source& src, std::size_t column, const cell& c,
                         const char* wanted) {
  if (c.kind != cell_kind::text) mismatch(src, column, c, wanted);
  return c.bytes;
}

// A time PostgreSQL writes outside the years 1 to 9999: "0044-03-15 12:00:00 BC",
// "10000-01-01".
bool outside_years_1_to_9999(std::string_view text) {
  if (text.ends_with(" BC")) return true;
  std::size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9')
    ++digits;
  return digits > 4 && digits < text.size() && text[digits] == '-';
}

[[noreturn]] void bad_time(const result_source& src, std::size_t column, std::string_view text,
                           const char* wanted) {
  if (text == "infinity" || text == "-infinity")
    throw error(code::datetime_field_overflow, column_label(src, column) + " holds " +
                                                   std::string(text) + ", which " + wanted +
                                                   " cannot represent");
  if (outside_years_1_to_9999(text))
    throw error(code::datetime_field_overflow,
                column_label(src, column) + " holds a " + wanted +
                    " outside the years 1 to 9999, which awaitdb's time types cover");
  throw error(
      code::invalid_datetime_format,
      column_label(src, column) + " holds text that is not a " + wanted + " in ISO 8601 form");
}

}  // namespace

void time_out_of_range(const result_source& src, std::size_t column) {
  throw error(code::datetime_field_overflow,
              column_label(src, column) +
                  " holds a time outside the range of the asked C++ type (a nanosecond "
                  "std::chrono::system_clock::time_point holds the years 1678 to 2261; "
                  "read it as a microsecond time point)");
}

std::int64_t read_timestamp(const result_source& src, std::size_t row, std::size_t column) {
  const cell c = checked_cell(src, row, column);
  const std::string_view text = text_of(src, column, c, "time point");
  if (auto micros = parse_timestamp(text)) return *micros;
  bad_time(src, column, text, "time point");
}

std::int64_t read_date(const result_source& src, std::size_t row, std::size_t column) {
  const cell c = checked_cell(src, row, column);
  const std::string_view text = text_of(src, column, c, "date");
  if (auto days = parse_date(text)) return *days;
  bad_time(src, column, text, "date");
}

std::int64_t read_duration(const result_source& src, std::size_t row, std::size_t column) {
  const cell c = checked_cell(src, row, column);
  const std::string_view text = text_of(src, column, c, "duration");
  std::int64_t micros = 0;
  switch (parse_duration(text, micros)) {
    case duration_parse::ok:
      return micros;
    case duration_parse::has_days_or_months:
      throw error(code::interval_field_overflow,
                  column_label(src, column) +
                      " holds an interval with days, months or years, which a "
                      "std::chrono::duration cannot represent exactly");
    case duration_parse::malformed:
      break;
  }
  bad_time(src, column, text, "duration");
}

void read_cell(const result_source& src, std::size_t row, std::size_t column,
               boost::uuids::uuid& out) {
  const cell c = checked_cell(src, row, column);
  if (c.kind == cell_kind::blob && c.bytes.size() == 16) {  // SQLite: 16 bytes
    std::copy_n(reinterpret_cast<const std::uint8_t*>(c.bytes.data()), 16, out.data);
    return;
  }
  const std::string_view text = text_of(src, column, c, "boost::uuids::uuid");
  auto bytes = parse_uuid(text);
  if (!bytes)
    throw error(sqlstate::invalid_text_representation,
                column_label(src, column) + " holds text that is not a UUID");
  std::copy(bytes->begin(), bytes->end(), out.data);
}

}  // namespace detail

namespace detail {

void rethrow_for_member(const error& cause, std::string_view member, std::size_t column,
                        std::string_view column_name) {
  // The cause's text names the column; say which member it was read for.
  const std::string_view text = bare_message(cause);
  throw error(cause.sqlstate(), "struct member " + std::string(member) + " from column " +
                                    std::to_string(column) + " (\"" + std::string(column_name) +
                                    "\"): " + std::string(text));
}

void mapped_read_failed(const result_source& src, std::size_t column, std::string_view type,
                        const error* cause, const char* what) {
  const std::string context =
      column_label(src, column) + " could not be read as " + std::string(type) + ": ";
  if (cause) throw error(cause->sqlstate(), context + std::string(bare_message(*cause)));
  throw error(code::data_exception, context + what);
}

void unknown_enum_name(const result_source& src, std::size_t column, std::string_view type,
                       std::size_t length) {
  // (The text itself is not quoted: a column may hold anything, secrets included.)
  throw error(sqlstate::invalid_text_representation,
              column_label(src, column) + " holds text of " + std::to_string(length) +
                  " bytes that names no value of the enum " + std::string(type));
}

void unnamed_enum_value(std::string_view type, std::int64_t value) {
  throw error(sqlstate::invalid_parameter,
              "the value " + std::to_string(value) + " of the enum " + std::string(type) +
                  " has no name to be written as (BOOST_DESCRIBE_ENUM)");
}

std::string demangled_type_name(const char* mangled) {
  return boost::core::demangle(mangled);
}

void member_count_mismatch(std::size_t members, std::size_t columns) {
  throw error(sqlstate::datatype_mismatch, "the struct has " + std::to_string(members) +
                                               " members but the result has " +
                                               std::to_string(columns) + " columns");
}

void missing_member_column(std::string_view member) {
  throw error(sqlstate::undefined_column,
              "struct member " + std::string(member) + " has no column of its name in the result");
}

}  // namespace detail

bool row::is_null(std::size_t column) const {
  src_->check_column(column);
  return src_->at(index_, column).kind == detail::cell_kind::null;
}

row result::at(std::size_t index) const {
  if (index >= size())
    throw error(sqlstate::invalid_parameter, "row " + std::to_string(index) +
                                                 " is out of range: the result has " +
                                                 std::to_string(size()) + " rows");
  return (*this)[index];
}

std::string_view result::column_name(std::size_t index) const {
  if (!src_ || index >= src_->columns())
    throw error(sqlstate::undefined_column, "column index " + std::to_string(index) +
                                                " is out of range: the result has " +
                                                std::to_string(column_count()) + " columns");
  return src_->column_name(index);
}

}  // namespace awaitdb
