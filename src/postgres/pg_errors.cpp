#include "pg_errors.hpp"

namespace awaitdb::detail {
namespace {

std::string field(const PGresult* r, int code) {
  const char* v = PQresultErrorField(r, code);
  return v ? v : "";
}

}  // namespace

std::string libpq_message(const char* message) {
  std::string out = message ? message : "";
  while (!out.empty() && (out.back() == '\n' || out.back() == ' '))
    out.pop_back();
  for (auto& ch : out)
    if (ch == '\n' || ch == '\t') ch = ' ';
  // libpq does not print passwords; a password given in a URL could only leak through an
  // echoed URL, which libpq does not do either. Keep it that way if that ever changes.
  if (auto pos = out.find("password="); pos != std::string::npos) out.erase(pos);
  return out.empty() ? std::string("unknown libpq error") : out;
}

error server_error(const PGresult* r, PGconn* conn) {
  std::string state = field(r, PG_DIAG_SQLSTATE);
  std::string primary = field(r, PG_DIAG_MESSAGE_PRIMARY);
  if (state.empty()) {
    // libpq's own failure (lost connection, protocol error): no SQLSTATE from a server.
    const char* text = PQresultErrorMessage(r);
    std::string message = libpq_message(text && *text ? text : PQerrorMessage(conn));
    bool lost = PQstatus(conn) == CONNECTION_BAD;
    return error(lost ? sqlstate::connection_failure : std::string_view("08P01"),
                 (lost ? "connection lost: " : "protocol failure: ") + message);
  }
  std::string message;
  if (state.starts_with("22")) {
    message =
        "invalid data (a value does not fit its type or format); the server's message "
        "is in server_message()";
  } else {
    message = primary;
  }
  error e(state, message);
  e.with_server_fields(primary, field(r, PG_DIAG_MESSAGE_DETAIL), field(r, PG_DIAG_MESSAGE_HINT),
                       field(r, PG_DIAG_CONSTRAINT_NAME));
  return e;
}

error connection_error(PGconn* conn, std::string_view context) {
  return error(sqlstate::connection_failure,
               std::string(context) + ": " + libpq_message(conn ? PQerrorMessage(conn) : ""));
}

}  // namespace awaitdb::detail
