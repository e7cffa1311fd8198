// The text of an awaitdb::error without what() wrapping: for errors that add context to another.
#ifndef AWAITDB_SRC_ERROR_TEXT_HPP
#define AWAITDB_SRC_ERROR_TEXT_HPP

#include <awaitdb/error.hpp>

#include <string_view>

namespace awaitdb::detail {

/// `e.what()` without the "awaitdb: " before and the " [SQLSTATE ...]" after (a view into it).
std::string_view bare_message(const error& e) noexcept;

}  // namespace awaitdb::detail

#endif  // AWAITDB_SRC_ERROR_TEXT_HPP
