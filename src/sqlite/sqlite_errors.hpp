// SQLite result codes to SQLSTATE and `awaitdb::error`.
#ifndef AWAITDB_SRC_SQLITE_SQLITE_ERRORS_HPP
#define AWAITDB_SRC_SQLITE_SQLITE_ERRORS_HPP

#include <awaitdb/error.hpp>

#include <string_view>

struct sqlite3;

namespace awaitdb::detail {

/// The error for SQLite result `code` on `db` (may be null). `what()` holds the condition the
/// SQLSTATE names and `context` (library text, e.g. "binding $2"); SQLite's own message, which
/// may quote data, goes to `server_message()`.
error sqlite_error(sqlite3* db, int code, std::string_view context = {});

/// The SQLSTATE PostgreSQL would report for the failure SQLite describes with an extended
/// result code and message.
std::string_view sqlite_sqlstate(int extended_code, std::string_view message) noexcept;

}  // namespace awaitdb::detail

#endif  // AWAITDB_SRC_SQLITE_SQLITE_ERRORS_HPP
