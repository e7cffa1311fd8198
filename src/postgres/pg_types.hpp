// PostgreSQL's type OIDs (its catalog's pg_type), the one place the engine writes them, and the
// array type of each engine-neutral array element kind.
#ifndef AWAITDB_SRC_POSTGRES_PG_TYPES_HPP
#define AWAITDB_SRC_POSTGRES_PG_TYPES_HPP

#include <awaitdb/value.hpp>

#include <libpq-fe.h>

namespace awaitdb::detail {

namespace pg_oid {
inline constexpr Oid unknown = 0, boolean = 16, bytea = 17, int8 = 20, int2 = 21, int2vector = 22,
                     int4 = 23, oid = 26, oidvector = 30, float4 = 700, float8 = 701,
                     numeric = 1700, uuid = 2950;
// Arrays.
inline constexpr Oid boolean_array = 1000, bytea_array = 1001, char_array = 1002, name_array = 1003,
                     int2_array = 1005, int4_array = 1007, text_array = 1009, bpchar_array = 1014,
                     varchar_array = 1015, int8_array = 1016, float4_array = 1021,
                     float8_array = 1022, oid_array = 1028, timestamp_array = 1115,
                     date_array = 1182, time_array = 1183, timestamptz_array = 1185,
                     interval_array = 1187, numeric_array = 1231, uuid_array = 2951;
}  // namespace pg_oid

/// The PostgreSQL type of an array parameter whose elements are `kind`.
constexpr Oid pg_array_type(array_kind kind) noexcept {
  switch (kind) {
    case array_kind::boolean:
      return pg_oid::boolean_array;
    case array_kind::int2:
      return pg_oid::int2_array;
    case array_kind::int4:
      return pg_oid::int4_array;
    case array_kind::int8:
      return pg_oid::int8_array;
    case array_kind::numeric:
      return pg_oid::numeric_array;
    case array_kind::real:
      return pg_oid::float8_array;
    case array_kind::text:
      return pg_oid::text_array;
    case array_kind::uuid:
      return pg_oid::uuid_array;
    case array_kind::untyped:  // (no type: the server takes the one the statement needs)
    case array_kind::none:
      break;
  }
  return pg_oid::unknown;
}

}  // namespace awaitdb::detail

#endif  // AWAITDB_SRC_POSTGRES_PG_TYPES_HPP
