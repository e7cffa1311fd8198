// How a failed session set-up (open_options::on_connect) is reported, on both engines: the
// connection's opening fails with 08001, saying why, with the server's fields of the statement
// that failed kept apart as usual.
#ifndef AWAITDB_SRC_SESSION_SETUP_HPP
#define AWAITDB_SRC_SESSION_SETUP_HPP

#include <awaitdb/error.hpp>

#include <exception>
#include <string>

namespace awaitdb::detail {

/// "the session set-up (on_connect) failed: " and what `failure` says.
std::string set_up_failure(const std::exception_ptr& failure);

/// 08001 with `message`, carrying the server's message, detail, hint and constraint when
/// `failure` is an `awaitdb::error`.
error set_up_error(const std::string& message, const std::exception_ptr& failure);

}  // namespace awaitdb::detail

#endif  // AWAITDB_SRC_SESSION_SETUP_HPP
