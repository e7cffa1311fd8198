// Statement parameters in the form libpq takes them: values, lengths, formats and type OIDs.
// Pure: no I/O.
#ifndef AWAITDB_SRC_POSTGRES_PG_PARAMS_HPP
#define AWAITDB_SRC_POSTGRES_PG_PARAMS_HPP

#include "pg_types.hpp"
#include <awaitdb/value.hpp>

#include <libpq-fe.h>

#include <span>
#include <string>
#include <vector>

namespace awaitdb::detail {

/// The encoded parameters of one statement. Reused from statement to statement (its buffers
/// keep their capacity), so encoding allocates nothing in the steady state.
class pg_params {
 public:
  /// Encodes `params`: integers typed (int2/int4/int8, numeric above int8), floats float8,
  /// booleans bool, blobs bytea in binary, UUIDs uuid; text untyped (so it can fill dates, JSON,
  /// numeric), and so are times, dates and durations: a time stamp with "+00", which a
  /// TIMESTAMPTZ column reads as UTC and a TIMESTAMP column takes as written. Throws
  /// `awaitdb::error` 22021 for text that holds a NUL byte or is not UTF-8, 22008 for a time
  /// outside years 1..9999.
  void encode(std::span<const param> params);

  int count() const noexcept { return static_cast<int>(types_.size()); }
  std::span<const Oid> types() const noexcept { return types_; }
  const Oid* type_data() const noexcept { return types_.data(); }
  const char* const* values() const noexcept { return values_.data(); }
  const int* lengths() const noexcept { return lengths_.data(); }
  const int* formats() const noexcept { return formats_.data(); }

 private:
  std::string scratch_;
  std::vector<std::size_t> offsets_;
  std::vector<const char*> values_;
  std::vector<int> lengths_;
  std::vector<int> formats_;
  std::vector<Oid> types_;
};

}  // namespace awaitdb::detail

#endif  // AWAITDB_SRC_POSTGRES_PG_PARAMS_HPP
