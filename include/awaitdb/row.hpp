// awaitdb: one row of a result, and how its values are read into C++ types.
#ifndef AWAITDB_ROW_HPP
#define AWAITDB_ROW_HPP

#include <awaitdb/error.hpp>
#include <awaitdb/value.hpp>

#include <boost/describe/members.hpp>
#include <boost/describe/modifiers.hpp>
#include <boost/mp11/algorithm.hpp>
#include <boost/pfr/core.hpp>
#include <boost/pfr/tuple_size.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace awaitdb {
namespace detail {

/// How a backend presents one value of a result. Conversions to C++ types are the same for both
/// engines and live in one place (value.cpp).
enum class cell_kind : std::uint8_t {
  null,
  boolean,   // `integer` is 0 or 1
  integer,   // `integer`
  real,      // `real`
  numeric,   // `bytes` is a decimal number in text (PostgreSQL NUMERIC)
  text,      // `bytes`
  blob,      // `bytes`, raw
  hex_blob,  // `bytes`, PostgreSQL's "\x0a1b..." text form of BYTEA
  array      // `bytes`, PostgreSQL's "{...}" text form; `integer` is the elements' cell_kind,
             // plus `space_separated_array` for int2vector and oidvector ("1 2 3")
};

/// Added to an array cell's element kind (`cell::integer`): its text is "1 2 3", not "{1,2,3}".
inline constexpr std::int64_t space_separated_array = 0x100;

struct cell {
  cell_kind kind = cell_kind::null;
  std::int64_t integer = 0;
  double real = 0;
  std::string_view bytes;
};

/// The storage behind a `result`, provided by a backend.
class result_source {
 public:
  virtual ~result_source() = default;
  virtual std::size_t rows() const noexcept = 0;
  virtual std::size_t columns() const noexcept = 0;
  virtual std::string_view column_name(std::size_t column) const noexcept = 0;
  /// The value at (row, column); both indexes are already checked.
  virtual cell at(std::size_t row, std::size_t column) const = 0;
  /// The value at (row, column); throws `awaitdb::error` when either is out of range (42703 for
  /// the column, 22023 for the row). One virtual call where a reader of values would make three.
  virtual cell checked_at(std::size_t row, std::size_t column) const;

  /// The index of the column named `name`; throws `awaitdb::error` (42703) when there is none.
  std::size_t column_index(std::string_view name) const;
  /// Throws `awaitdb::error` (42703) when `column` is out of range.
  void check_column(std::size_t column) const;
  /// How errors name `column`: `column 2 ("name")`.
  virtual std::string describe_column(std::size_t column) const;
};

/// The elements of one PostgreSQL array value, one row each in column 0, so that they are read
/// by the same rules as any other value.
class array_cells final : public result_source {
 public:
  array_cells() = default;
  array_cells(array_cells&&) noexcept = default;  // cells_ keep viewing the moved texts_
  array_cells(const array_cells&) = delete;
  array_cells& operator=(const array_cells&) = delete;
  std::size_t rows() const noexcept override { return cells_.size(); }
  std::size_t columns() const noexcept override { return 1; }
  std::string_view column_name(std::size_t) const noexcept override { return name_; }
  cell at(std::size_t row, std::size_t) const override { return cells_[row]; }
  std::string describe_column(std::size_t) const override;

 private:
  friend array_cells read_array(const result_source& src, std::size_t row, std::size_t column);
  std::vector<cell> cells_;
  std::vector<std::string> texts_;  // unescaped element texts, viewed by cells_
  std::string name_;                // the array's column, described
};

/// The array at (row, column): 42804 when it is not an array (SQLite has none), 22004 when NULL,
/// 0A000 when it has more than one dimension.
array_cells read_array(const result_source& src, std::size_t row, std::size_t column);

void read_cell(const result_source& src, std::size_t row, std::size_t column, bool& out);
void read_cell(const result_source& src, std::size_t row, std::size_t column, double& out);
void read_cell(const result_source& src, std::size_t row, std::size_t column, float& out);
void read_cell(const result_source& src, std::size_t row, std::size_t column, std::string& out);
void read_cell(const result_source& src, std::size_t row, std::size_t column, blob& out);
void read_cell(const result_source& src, std::size_t row, std::size_t column,
               boost::uuids::uuid& out);

// The non-template halves of the readers below. `wanted` names the C++ type in errors.
std::int64_t read_signed(const result_source& src, std::size_t row, std::size_t column,
                         const char* wanted, std::int64_t min, std::int64_t max);
std::uint64_t read_unsigned(const result_source& src, std::size_t row, std::size_t column,
                            const char* wanted, std::uint64_t max);
std::int64_t read_timestamp(const result_source& src, std::size_t row, std::size_t column);
std::int64_t read_date(const result_source& src, std::size_t row, std::size_t column);
std::int64_t read_duration(const result_source& src, std::size_t row, std::size_t column);

/// Throws 22008: the time in `column` is outside what the asked C++ type can represent.
[[noreturn]] void time_out_of_range(const result_source& src, std::size_t column);

/// A time read as `micros` must fit `Duration` (a nanosecond `system_clock::time_point` holds
/// only the years 1678 to 2261), or converting it would overflow.
template <class Duration>
void check_time_range(const result_source& src, std::size_t column, std::int64_t micros) {
  using micro_units = std::chrono::duration<long double, std::micro>;
  constexpr long double lowest = micro_units(Duration::min()).count();
  constexpr long double highest = micro_units(Duration::max()).count();
  const auto value = static_cast<long double>(micros);
  if (value < lowest || value > highest) time_out_of_range(src, column);
}

template <database_integer I>
constexpr const char* integer_name() {
  if constexpr (std::is_signed_v<I>)
    return sizeof(I) == 2 ? "std::int16_t" : sizeof(I) == 4 ? "std::int32_t" : "std::int64_t";
  else
    return sizeof(I) == 2 ? "std::uint16_t" : sizeof(I) == 4 ? "std::uint32_t" : "std::uint64_t";
}

template <database_integer I>
void read_cell(const result_source& src, std::size_t row, std::size_t column, I& out) {
  if constexpr (std::is_signed_v<I>)
    out = static_cast<I>(read_signed(src, row, column, integer_name<I>(),
                                     std::numeric_limits<I>::min(), std::numeric_limits<I>::max()));
  else
    out = static_cast<I>(
        read_unsigned(src, row, column, integer_name<I>(), std::numeric_limits<I>::max()));
}

template <class Duration>
void read_cell(const result_source& src, std::size_t row, std::size_t column,
               std::chrono::time_point<std::chrono::system_clock, Duration>& out) {
  using point = std::chrono::time_point<std::chrono::system_clock, Duration>;
  if constexpr (std::is_same_v<Duration, std::chrono::days>) {
    out = point(std::chrono::days(read_date(src, row, column)));
  } else {
    const std::int64_t micros = read_timestamp(src, row, column);
    check_time_range<Duration>(src, column, micros);
    out = point(std::chrono::floor<Duration>(std::chrono::microseconds(micros)));
  }
}

inline void read_cell(const result_source& src, std::size_t row, std::size_t column,
                      std::chrono::year_month_day& out) {
  out = std::chrono::year_month_day(
      std::chrono::sys_days(std::chrono::days(read_date(src, row, column))));
}

template <class Rep, class Period>
void read_cell(const result_source& src, std::size_t row, std::size_t column,
               std::chrono::duration<Rep, Period>& out) {
  const std::int64_t micros = read_duration(src, row, column);
  check_time_range<std::chrono::duration<Rep, Period>>(src, column, micros);
  out = std::chrono::floor<std::chrono::duration<Rep, Period>>(std::chrono::microseconds(micros));
}

template <class T>
inline constexpr bool is_readable_builtin = requires(const result_source& s, T& out) {
  read_cell(s, 0, 0, out);
};

/// Throws for a mapped type's `from_db` that refused a value (or for a value its `db_type` could
/// not hold): `cause` (an `awaitdb::error`, kept with its SQLSTATE) or 22000 with `what`, naming
/// the column and the type.
[[noreturn]] void mapped_read_failed(const result_source& src, std::size_t column,
                                     std::string_view type, const error* cause, const char* what);
/// Throws 22P02: the text in `column` (of `length` bytes) names no enumerator of `type`.
[[noreturn]] void unknown_enum_name(const result_source& src, std::size_t column,
                                    std::string_view type, std::size_t length);

/// The value at (row, column) as `T` (not an optional): NULL throws 22004.
template <class T>
T read_value(const result_source& src, std::size_t row, std::size_t column);

template <class T>
inline constexpr bool is_readable = [] {
  if constexpr (mapped<T>)
    return is_readable_builtin<typename type_mapping<T>::db_type>;
  else
    return described_enum<T> || is_readable_builtin<T>;
}();

/// A PostgreSQL array as a `std::vector` of the elements `make_param` takes in an array, or of
/// `std::optional` of them when elements may be NULL.
template <class T>
requires(array_kind_of<typename array_element<T>::type>() !=
         array_kind::none) void read_cell(const result_source& src, std::size_t row,
                                          std::size_t column, std::vector<T>& out) {
  const array_cells elements = read_array(src, row, column);
  out.clear();
  out.reserve(elements.rows());
  for (std::size_t i = 0; i < elements.rows(); ++i) {
    if constexpr (is_optional<T>::value) {
      if (elements.at(i, 0).kind == cell_kind::null)
        out.emplace_back();
      else
        out.emplace_back(read_value<typename T::value_type>(elements, i, 0));
    } else {
      out.push_back(read_value<T>(elements, i, 0));
    }
  }
}

template <class T>
T read_value(const result_source& src, std::size_t row, std::size_t column) {
  if constexpr (mapped<T>) {
    using db_type = typename type_mapping<T>::db_type;
    try {
      return type_mapping<T>::from_db(read_value<db_type>(src, row, column));
    } catch (const error& e) {
      mapped_read_failed(src, column, type_name<T>(), &e, nullptr);
    } catch (const std::exception& e) {
      mapped_read_failed(src, column, type_name<T>(), nullptr, e.what());
    }
  } else if constexpr (described_enum<T>) {
    std::string name;
    read_cell(src, row, column, name);
    T out{};
    if (!boost::describe::enum_from_string(name.c_str(), out))
      unknown_enum_name(src, column, type_name<T>(), name.size());
    return out;
  } else {
    T out{};
    read_cell(src, row, column, out);
    return out;
  }
}

}  // namespace detail

/// One row of a `result`.
///
/// A row from `result::operator[]` or `result::at` shares ownership of the result's data, so
/// `row r = (co_await db.query(...))[0];` is safe. A row from iterating a result is a view, for
/// speed: it is valid while the result is alive (as it is for the whole of a range-for over
/// `co_await db.query(...)`).
class row {
 public:
  row() = default;
  row(const detail::result_source* src, std::size_t index) noexcept : src_(src), index_(index) {}
  row(std::shared_ptr<const detail::result_source> owner, std::size_t index) noexcept
      : src_(owner.get()), index_(index), owner_(std::move(owner)) {}

  /// The value of column `column` (0-based) as `T`.
  ///
  /// `T` is one of `bool`, any signed or unsigned integer type but the character types,
  /// `float`, `double`, `std::string` (any value, as the engine writes it as text),
  /// `awaitdb::blob`, `std::chrono::system_clock::time_point` (and any `sys_time`),
  /// `std::chrono::sys_days` and `std::chrono::year_month_day` (a date), a `std::chrono::duration`
  /// (a time of day, or an interval without days or months), `boost::uuids::uuid`, a
  /// `std::vector` of numbers, booleans, strings or UUIDs (a PostgreSQL array; its elements may
  /// be `std::optional`), or `std::optional` of one of them (see docs/usage.md for each engine's
  /// types). Reading a wider type from a narrower column works (an INTEGER column into
  /// `std::int64_t`); a value that does not fit the asked type (22003), a NULL read into a
  /// non-optional `T` (22004), a column index out of range (42703) and a value of an unrelated type
  /// (42804; a malformed time: 22007) throw `awaitdb::error` naming the column.
  template <class T>
  T get(std::size_t column) const {
    if constexpr (detail::is_optional<T>::value) {
      if (is_null(column)) return std::nullopt;
      return T(get<typename T::value_type>(column));
    } else {
      static_assert(detail::is_readable<T>,
                    "awaitdb::row::get<T>: T must be bool, an integer, float, double, std::string, "
                    "awaitdb::blob, a system_clock time point, a date, a duration, "
                    "boost::uuids::uuid or std::optional of one (see docs/usage.md)");
      return detail::read_value<T>(*src_, index_, column);
    }
  }

  /// The value of the column named `column`; throws `awaitdb::error` when there is none.
  template <class T>
  T get(std::string_view column) const {
    return get<T>(src_->column_index(column));
  }

  /// This row as a `T`, one column per member:
  /// - a struct described with `BOOST_DESCRIBE_STRUCT` maps its public members by name to the
  ///   columns of the same name;
  /// - any other aggregate maps its members by position (with Boost.PFR).
  /// Members are read as `get` reads them (`std::optional` members take NULL). A mismatch (the
  /// number of members and columns, a missing column, a value the member cannot hold) throws
  /// `awaitdb::error` naming the member and the column.
  template <class T>
  T as() const;

  /// True when column `column` is SQL NULL. Throws `awaitdb::error` when out of range.
  bool is_null(std::size_t column) const;
  bool is_null(std::string_view column) const { return is_null(src_->column_index(column)); }

  /// The number of columns.
  std::size_t size() const noexcept { return src_->columns(); }
  /// The name of column `column` (a view valid while this row, or its result, is). Throws
  /// `awaitdb::error` (42703) when out of range.
  std::string_view column_name(std::size_t column) const {
    src_->check_column(column);
    return src_->column_name(column);
  }
  /// This row's position in its result.
  std::size_t index() const noexcept { return index_; }

 private:
  const detail::result_source* src_ = nullptr;
  std::size_t index_ = 0;
  std::shared_ptr<const detail::result_source> owner_;  // set when the row keeps data alive
};

namespace detail {
/// Rethrows `cause` (from reading column `column`) naming the struct member it was read for.
[[noreturn]] void rethrow_for_member(const error& cause, std::string_view member,
                                     std::size_t column, std::string_view column_name);
[[noreturn]] void member_count_mismatch(std::size_t members, std::size_t columns);
[[noreturn]] void missing_member_column(std::string_view member);
}  // namespace detail

template <class T>
T row::as() const {
  static_assert(std::is_aggregate_v<T> || boost::describe::has_describe_members<T>::value,
                "awaitdb::row::as<T>: T must be an aggregate, or described with "
                "BOOST_DESCRIBE_STRUCT");
  T out{};
  auto read = [this](auto& member, std::size_t column, std::string_view name) {
    try {
      member = get<std::remove_cvref_t<decltype(member)>>(column);
    } catch (const error& e) {
      detail::rethrow_for_member(e, name, column, src_->column_name(column));
    }
  };
  if constexpr (boost::describe::has_describe_members<T>::value) {
    using members = boost::describe::describe_members<T, boost::describe::mod_public |
                                                             boost::describe::mod_inherited>;
    constexpr std::size_t count = boost::mp11::mp_size<members>::value;
    if (count != size()) detail::member_count_mismatch(count, size());
    boost::mp11::mp_for_each<members>([&](auto d) {
      std::size_t column = size();
      for (std::size_t c = 0; c < size(); ++c)
        if (src_->column_name(c) == d.name) column = c;
      if (column == size()) detail::missing_member_column(d.name);
      read(out.*d.pointer, column, d.name);
    });
  } else {
    constexpr std::size_t count = boost::pfr::tuple_size_v<T>;
    if (count != size()) detail::member_count_mismatch(count, size());
    boost::pfr::for_each_field(
        out, [&](auto& member, std::size_t i) { read(member, i, "#" + std::to_string(i)); });
  }
  return out;
}

}  // namespace awaitdb

#endif  // AWAITDB_ROW_HPP
