#include "session_setup.hpp"

namespace awaitdb::detail {

std::string set_up_failure(const std::exception_ptr& failure) {
  std::string why = "an exception that is not a std::exception";
  try {
    std::rethrow_exception(failure);
  } catch (const std::exception& e) {
    why = e.what();
  } catch (...) {
  }
  return "the session set-up (on_connect) failed: " + why;
}

error set_up_error(const std::string& message, const std::exception_ptr& failure) {
  error out(sqlstate::connection_not_established, message);
  try {
    std::rethrow_exception(failure);
  } catch (const error& e) {
    out.with_server_fields(e.server_message(), e.detail(), e.hint(), e.constraint());
  } catch (...) {
  }
  return out;
}

}  // namespace awaitdb::detail
