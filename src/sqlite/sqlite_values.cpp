#include "sqlite_values.hpp"

#include "../sqlstates.hpp"
#include <awaitdb/error.hpp>

namespace awaitdb::detail {
namespace {

std::string what_is(std::size_t number) {
  return number == 0 ? "the function's result" : "parameter $" + std::to_string(number);
}

}  // namespace

void unsigned_beyond_sqlite(std::size_t number) {
  throw error(sqlstate::numeric_value_out_of_range,
              what_is(number) +
                  " is an unsigned value above 9223372036854775807, which SQLite cannot store "
                  "as an integer");
}

void array_beyond_sqlite(std::size_t number) {
  throw error(sqlstate::feature_not_supported,
              what_is(number) +
                  " is an array, which SQLite does not have; bind its elements one by one or "
                  "join them into the SQL as a list of placeholders");
}

}  // namespace awaitdb::detail
