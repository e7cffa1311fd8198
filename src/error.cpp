#include "error_text.hpp"
#include "sqlstates.hpp"
#include <awaitdb/error.hpp>

namespace awaitdb {

error::error(std::string_view sqlstate, const std::string& message)
    : std::runtime_error("awaitdb: " + message + " [SQLSTATE " + std::string(sqlstate) + "]")
    , sqlstate_(sqlstate) {}

error::error(const error& other)
    : std::runtime_error(std::string(other.what()))
    , sqlstate_(other.sqlstate_)
    , server_message_(other.server_message_)
    , detail_(other.detail_)
    , hint_(other.hint_)
    , constraint_(other.constraint_) {}

error& error::operator=(const error& other) {
  if (this != &other) {
    std::runtime_error::operator=(std::runtime_error(std::string(other.what())));
    sqlstate_ = other.sqlstate_;
    server_message_ = other.server_message_;
    detail_ = other.detail_;
    hint_ = other.hint_;
    constraint_ = other.constraint_;
  }
  return *this;
}

bool error::is_connection_error() const noexcept {
  return sqlstate_.starts_with("08") || sqlstate_.starts_with(detail::code::server_shutdown_class);
}

error& error::with_server_fields(std::string server_message, std::string detail, std::string hint,
                                 std::string constraint) {
  server_message_ = std::move(server_message);
  detail_ = std::move(detail);
  hint_ = std::move(hint);
  constraint_ = std::move(constraint);
  return *this;
}

namespace detail {

std::string_view bare_message(const error& e) noexcept {
  std::string_view text = e.what();
  if (text.starts_with("awaitdb: ")) text.remove_prefix(9);
  if (const auto bracket = text.rfind(" [SQLSTATE "); bracket != std::string_view::npos)
    text = text.substr(0, bracket);
  return text;
}

}  // namespace detail

}  // namespace awaitdb
