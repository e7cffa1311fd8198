#include <awaitdb/error.hpp>

namespace awaitdb {

error::error(std::string_view sqlstate, const std::string& message)
    : std::runtime_error("awaitdb: " + message + " [SQLSTATE " + std::string(sqlstate) + "]")
    , sqlstate_(sqlstate) {}

bool error::is_connection_error() const noexcept {
  return sqlstate_.starts_with("08") || sqlstate_.starts_with("57P0");
}

error& error::with_server_fields(std::string server_message, std::string detail, std::string hint,
                                 std::string constraint) {
  server_message_ = std::move(server_message);
  detail_ = std::move(detail);
  hint_ = std::move(hint);
  constraint_ = std::move(constraint);
  return *this;
}

}  // namespace awaitdb
