// Checks of parameter values that both engines apply identically. Pure: no I/O.
#ifndef AWAITDB_SRC_PARAM_CHECK_HPP
#define AWAITDB_SRC_PARAM_CHECK_HPP

#include <cstddef>
#include <string_view>

namespace awaitdb::detail {

/// True when `text` is well-formed UTF-8 (no overlong forms, no surrogates, nothing above
/// U+10FFFF).
bool is_valid_utf8(std::string_view text) noexcept;

/// Throws `awaitdb::error` 22021 (character not in repertoire) when text parameter `$number`
/// holds a NUL byte (PostgreSQL text cannot) or is not valid UTF-8. The message names the
/// parameter, never its value.
void check_text_parameter(std::string_view text, std::size_t number);

}  // namespace awaitdb::detail

#endif  // AWAITDB_SRC_PARAM_CHECK_HPP
