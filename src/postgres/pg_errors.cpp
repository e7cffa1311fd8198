#include "pg_errors.hpp"

#include "../sqlstate_names.hpp"
#include "../sqlstates.hpp"

namespace awaitdb::detail {
namespace {

std::string field(const PGresult* r, int code) {
  const char* v = PQresultErrorField(r, code);
  return v ? v : "";
}

}  // namespace

std::string libpq_message(const char* message, const secret_scrubber& secrets) {
  std::string out = message ? message : "";
  while (!out.empty() && (out.back() == '\n' || out.back() == ' '))
    out.pop_back();
  for (auto& ch : out)
    if (ch == '\n' || ch == '\t') ch = ' ';
  return out.empty() ? std::string("unknown libpq error") : secrets.scrub(out);
}

std::string parameter_in_context(std::string_view context) {
  for (std::size_t p = context.find("parameter $"); p != std::string_view::npos;
       p = context.find("parameter $", p + 1)) {
    std::size_t digits = p + 11, end = digits;
    while (end < context.size() && end - digits < 6 && context[end] >= '0' && context[end] <= '9')
      ++end;
    if (end > digits) return "$" + std::string(context.substr(digits, end - digits));
  }
  return {};
}

error server_error(const PGresult* r, PGconn* conn, const secret_scrubber& secrets) {
  std::string state = field(r, PG_DIAG_SQLSTATE);
  if (state.empty()) {
    // libpq's own failure (lost connection, protocol error): no SQLSTATE from a server.
    const char* text = PQresultErrorMessage(r);
    std::string message = libpq_message(text && *text ? text : PQerrorMessage(conn), secrets);
    bool lost = PQstatus(conn) == CONNECTION_BAD;
    return error(lost ? sqlstate::connection_failure : std::string_view(code::protocol_violation),
                 (lost ? "connection lost: " : "protocol failure: ") + message);
  }
  std::string message(sqlstate_condition(state));
  if (std::string parameter = parameter_in_context(field(r, PG_DIAG_CONTEXT)); !parameter.empty())
    message += " in parameter " + parameter;
  message += "; the server's message is in server_message()";
  error e(state, message);
  e.with_server_fields(secrets.scrub(field(r, PG_DIAG_MESSAGE_PRIMARY)),
                       secrets.scrub(field(r, PG_DIAG_MESSAGE_DETAIL)),
                       secrets.scrub(field(r, PG_DIAG_MESSAGE_HINT)),
                       field(r, PG_DIAG_CONSTRAINT_NAME));
  return e;
}

error connection_error(PGconn* conn, std::string_view context, const secret_scrubber& secrets) {
  return error(
      sqlstate::connection_failure,
      std::string(context) + ": " + libpq_message(conn ? PQerrorMessage(conn) : "", secrets));
}

}  // namespace awaitdb::detail
