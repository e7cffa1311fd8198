// SQLite result codes to SQLSTATE: pure, no I/O.
#ifndef AWAITDB_SRC_SQLITE_SQLITE_ERRORS_HPP
#define AWAITDB_SRC_SQLITE_SQLITE_ERRORS_HPP

#include <string_view>

namespace awaitdb::detail {

/// The SQLSTATE PostgreSQL would report for the failure SQLite describes with an extended
/// result code and message.
std::string_view sqlite_sqlstate(int extended_code, std::string_view message) noexcept;

}  // namespace awaitdb::detail

#endif  // AWAITDB_SRC_SQLITE_SQLITE_ERRORS_HPP
