#include "pg_result.hpp"

#include "pg_types.hpp"
#include <awaitdb/error.hpp>

#include <charconv>
#include <cmath>
#include <limits>

namespace awaitdb::detail {

cell_kind pg_cell_kind(Oid type) noexcept {
  switch (type) {
    case pg_oid::boolean:
      return cell_kind::boolean;
    case pg_oid::int2:
    case pg_oid::int4:
    case pg_oid::int8:
    case pg_oid::oid:
      return cell_kind::integer;
    case pg_oid::float4:
    case pg_oid::float8:
      return cell_kind::real;
    case pg_oid::numeric:
      return cell_kind::numeric;
    case pg_oid::bytea:
      return cell_kind::hex_blob;
    default:
      return pg_array_element_kind(type) ? cell_kind::array : cell_kind::text;
  }
}

std::optional<cell_kind> pg_array_element_kind(Oid type) noexcept {
  switch (type) {
    case pg_oid::boolean_array:
      return cell_kind::boolean;
    case pg_oid::int2_array:
    case pg_oid::int4_array:
    case pg_oid::int8_array:
    case pg_oid::oid_array:
    case pg_oid::int2vector:  // ("1 2 3")
    case pg_oid::oidvector:   // ("1 2 3")
      return cell_kind::integer;
    case pg_oid::float4_array:
    case pg_oid::float8_array:
      return cell_kind::real;
    case pg_oid::numeric_array:
      return cell_kind::numeric;
    case pg_oid::bytea_array:
      return cell_kind::hex_blob;
    case pg_oid::text_array:
    case pg_oid::char_array:
    case pg_oid::name_array:
    case pg_oid::bpchar_array:
    case pg_oid::varchar_array:
    case pg_oid::uuid_array:
    case pg_oid::timestamp_array:
    case pg_oid::timestamptz_array:
    case pg_oid::date_array:
    case pg_oid::time_array:
    case pg_oid::interval_array:
      return cell_kind::text;
    default:
      return std::nullopt;
  }
}

pg_result::pg_result(pg_result_ptr r) : result_(std::move(r)) {
  rows_ = static_cast<std::size_t>(PQntuples(result_.get()));
  int n = PQnfields(result_.get());
  kinds_.reserve(static_cast<std::size_t>(n));
  for (int c = 0; c < n; ++c) {
    const Oid type = PQftype(result_.get(), c);
    const cell_kind kind = pg_cell_kind(type);
    kinds_.push_back({kind, kind == cell_kind::array ? *pg_array_element_kind(type) : kind});
  }
}

std::string_view pg_result::column_name(std::size_t column) const noexcept {
  return PQfname(result_.get(), static_cast<int>(column));
}

cell pg_result::at(std::size_t row, std::size_t column) const {
  const int r = static_cast<int>(row), c = static_cast<int>(column);
  cell out;
  if (PQgetisnull(result_.get(), r, c)) return out;
  out.kind = kinds_[column].kind;
  out.bytes = std::string_view(PQgetvalue(result_.get(), r, c),
                               static_cast<std::size_t>(PQgetlength(result_.get(), r, c)));
  const char* begin = out.bytes.data();
  const char* end = begin + out.bytes.size();
  switch (out.kind) {
    case cell_kind::boolean:
      out.integer = out.bytes == "t" ? 1 : 0;
      break;
    case cell_kind::integer:
      if (std::from_chars(begin, end, out.integer).ec != std::errc())
        throw error(sqlstate::invalid_text_representation, "malformed integer from the server");
      break;
    case cell_kind::real:
      if (out.bytes == "NaN")
        out.real = std::numeric_limits<double>::quiet_NaN();
      else if (out.bytes == "Infinity")
        out.real = std::numeric_limits<double>::infinity();
      else if (out.bytes == "-Infinity")
        out.real = -std::numeric_limits<double>::infinity();
      else if (std::from_chars(begin, end, out.real).ec != std::errc())
        throw error(sqlstate::invalid_text_representation, "malformed number from the server");
      break;
    case cell_kind::array: {
      out.integer = static_cast<std::int64_t>(kinds_[column].element);
      const Oid type = PQftype(result_.get(), c);
      if (type == pg_oid::int2vector || type == pg_oid::oidvector)
        out.integer |= space_separated_array;
      break;
    }
    default:
      break;
  }
  return out;
}

std::uint64_t pg_affected_rows(const PGresult* r) noexcept {
  // Rows changed: PQcmdTuples also counts the rows a SELECT (or FETCH, MOVE, CREATE TABLE AS)
  // returned, which SQLite does not; only INSERT, UPDATE, DELETE and MERGE count.
  std::string_view tag = PQcmdStatus(const_cast<PGresult*>(r));
  if (!tag.starts_with("INSERT") && !tag.starts_with("UPDATE") && !tag.starts_with("DELETE") &&
      !tag.starts_with("MERGE"))
    return 0;
  const char* text = PQcmdTuples(const_cast<PGresult*>(r));
  std::uint64_t n = 0;
  if (text && *text) std::from_chars(text, text + std::char_traits<char>::length(text), n);
  return n;
}

}  // namespace awaitdb::detail
