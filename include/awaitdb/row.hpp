// awaitdb: one row of a result, and how its values are read into C++ types.
#ifndef AWAITDB_ROW_HPP
#define AWAITDB_ROW_HPP

#include <awaitdb/value.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace awaitdb {
namespace detail {

/// How a backend presents one value of a result. Conversions to C++ types are the same for both
/// engines and live in one place (value.cpp).
enum class cell_kind : std::uint8_t {
  null,
  boolean,  // `integer` is 0 or 1
  integer,  // `integer`
  real,     // `real`
  numeric,  // `bytes` is a decimal number in text (PostgreSQL NUMERIC)
  text,     // `bytes`
  blob,     // `bytes`, raw
  hex_blob  // `bytes`, PostgreSQL's "\x0a1b..." text form of BYTEA
};

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

  /// The index of the column named `name`; throws `awaitdb::error` (42703) when there is none.
  std::size_t column_index(std::string_view name) const;
  /// Throws `awaitdb::error` (42703) when `column` is out of range.
  void check_column(std::size_t column) const;
};

void read_cell(const result_source& src, std::size_t row, std::size_t column, bool& out);
void read_cell(const result_source& src, std::size_t row, std::size_t column, std::int16_t& out);
void read_cell(const result_source& src, std::size_t row, std::size_t column, std::int32_t& out);
void read_cell(const result_source& src, std::size_t row, std::size_t column, std::int64_t& out);
void read_cell(const result_source& src, std::size_t row, std::size_t column, double& out);
void read_cell(const result_source& src, std::size_t row, std::size_t column, std::string& out);
void read_cell(const result_source& src, std::size_t row, std::size_t column, blob& out);

template <class T>
inline constexpr bool is_readable = requires(const result_source& s, T& out) {
  read_cell(s, 0, 0, out);
};

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
  /// `T` is one of `bool`, `std::int16_t`, `std::int32_t`, `std::int64_t`, `double`,
  /// `std::string`, `awaitdb::blob`, or `std::optional` of one of them. Reading a wider type
  /// from a narrower column works (an INTEGER column into `std::int64_t`); a value that does not
  /// fit the asked type, a NULL read into a non-optional `T`, a column index out of range and a
  /// value of an unrelated type (text into `double`) throw `awaitdb::error` naming the column.
  template <class T>
  T get(std::size_t column) const {
    if constexpr (detail::is_optional<T>::value) {
      if (is_null(column)) return std::nullopt;
      return T(get<typename T::value_type>(column));
    } else {
      static_assert(detail::is_readable<T>,
                    "awaitdb::row::get<T>: T must be bool, std::int16_t, std::int32_t, "
                    "std::int64_t, double, std::string, awaitdb::blob or std::optional of one");
      T out{};
      detail::read_cell(*src_, index_, column, out);
      return out;
    }
  }

  /// The value of the column named `column`; throws `awaitdb::error` when there is none.
  template <class T>
  T get(std::string_view column) const {
    return get<T>(src_->column_index(column));
  }

  /// True when column `column` is SQL NULL. Throws `awaitdb::error` when out of range.
  bool is_null(std::size_t column) const;
  bool is_null(std::string_view column) const { return is_null(src_->column_index(column)); }

  /// The number of columns.
  std::size_t size() const noexcept { return src_->columns(); }
  /// This row's position in its result.
  std::size_t index() const noexcept { return index_; }

 private:
  const detail::result_source* src_ = nullptr;
  std::size_t index_ = 0;
  std::shared_ptr<const detail::result_source> owner_;  // set when the row keeps data alive
};

}  // namespace awaitdb

#endif  // AWAITDB_ROW_HPP
