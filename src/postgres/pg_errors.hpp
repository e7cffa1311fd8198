// libpq failures to `awaitdb::error`.
#ifndef AWAITDB_SRC_POSTGRES_PG_ERRORS_HPP
#define AWAITDB_SRC_POSTGRES_PG_ERRORS_HPP

#include <awaitdb/error.hpp>

#include <libpq-fe.h>

#include <string>
#include <string_view>

namespace awaitdb::detail {

/// The error a failed result reports. `what()` holds the server's primary message, except for
/// class 22 (data exceptions), whose messages quote the offending value: there it holds a
/// description of the code, and the server's text stays in `server_message()`.
error server_error(const PGresult* result, PGconn* conn);

/// A failure of the connection itself (class 08), with libpq's message (which names the host
/// and port, never the password) after `context`.
error connection_error(PGconn* conn, std::string_view context);

/// libpq's message, trimmed of its trailing newline and of any password.
std::string libpq_message(const char* message);

}  // namespace awaitdb::detail

#endif  // AWAITDB_SRC_POSTGRES_PG_ERRORS_HPP
