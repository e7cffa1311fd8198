// What a SQLSTATE means, in words the library can put in a message. Pure: no I/O.
#ifndef AWAITDB_SRC_SQLSTATE_NAMES_HPP
#define AWAITDB_SRC_SQLSTATE_NAMES_HPP

#include <string_view>

namespace awaitdb::detail {

/// PostgreSQL's condition name for `state` with spaces for underscores ("division by zero"),
/// or that of its class ("data exception") when the code itself is not in the table.
std::string_view sqlstate_condition(std::string_view state) noexcept;

}  // namespace awaitdb::detail

#endif  // AWAITDB_SRC_SQLSTATE_NAMES_HPP
