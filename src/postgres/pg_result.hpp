// A PostgreSQL result as a `result_source`: the PGresult itself, read in place.
#ifndef AWAITDB_SRC_POSTGRES_PG_RESULT_HPP
#define AWAITDB_SRC_POSTGRES_PG_RESULT_HPP

#include <awaitdb/row.hpp>

#include <boost/container/small_vector.hpp>

#include <libpq-fe.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

namespace awaitdb::detail {

struct pg_result_deleter {
  void operator()(PGresult* r) const noexcept { PQclear(r); }
};
using pg_result_ptr = std::unique_ptr<PGresult, pg_result_deleter>;

class pg_result final : public result_source {
 public:
  explicit pg_result(pg_result_ptr r);

  std::size_t rows() const noexcept override { return rows_; }
  std::size_t columns() const noexcept override { return kinds_.size(); }
  std::string_view column_name(std::size_t column) const noexcept override;
  cell at(std::size_t row, std::size_t column) const override;
  cell checked_at(std::size_t row, std::size_t column) const override {
    if (column >= kinds_.size() || row >= rows_) [[unlikely]]
      return result_source::checked_at(row, column);  // (throws)
    return pg_result::at(row, column);
  }

 private:
  pg_result_ptr result_;
  std::size_t rows_;
  struct column_kind {
    cell_kind kind;
    cell_kind element;  // of an array
  };
  // By column, from the type OID; held inline up to 16 columns (no allocation per result).
  boost::container::small_vector<column_kind, 16> kinds_;
};

/// How values of the type `oid` are presented (text format).
cell_kind pg_cell_kind(Oid oid) noexcept;
/// For an array type whose elements a `std::vector` can read, their kind; otherwise nullopt.
std::optional<cell_kind> pg_array_element_kind(Oid oid) noexcept;

/// The number of rows a command reports (its tag, e.g. "UPDATE 3"), 0 when it reports none.
std::uint64_t pg_affected_rows(const PGresult* r) noexcept;

}  // namespace awaitdb::detail

#endif  // AWAITDB_SRC_POSTGRES_PG_RESULT_HPP
