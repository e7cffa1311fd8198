// libpq failures to `awaitdb::error`.
#ifndef AWAITDB_SRC_POSTGRES_PG_ERRORS_HPP
#define AWAITDB_SRC_POSTGRES_PG_ERRORS_HPP

#include "../secrets.hpp"
#include <awaitdb/error.hpp>

#include <libpq-fe.h>

#include <string>
#include <string_view>

namespace awaitdb::detail {

/// The error a failed result reports. `what()` holds only text the library wrote: the
/// condition the SQLSTATE names and, where the server says so, which parameter ($N) it concerns.
/// The server's own text, which may quote parameter values, goes to `server_message()`,
/// `detail()` and `hint()`.
error server_error(const PGresult* result, PGconn* conn, const secret_scrubber& secrets);

/// A failure of the connection itself (class 08), with libpq's message (which names the host
/// and port) after `context`, scrubbed of any password.
error connection_error(PGconn* conn, std::string_view context, const secret_scrubber& secrets);

/// libpq's message, on one line, scrubbed of any password.
std::string libpq_message(const char* message, const secret_scrubber& secrets);

/// "$N" when libpq's CONTEXT field says the error concerns parameter N ("... parameter $2 =
/// ..."), else "". Only the number is taken, never the value that follows it.
std::string parameter_in_context(std::string_view context);

}  // namespace awaitdb::detail

#endif  // AWAITDB_SRC_POSTGRES_PG_ERRORS_HPP
