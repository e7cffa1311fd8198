// Placeholder handling: pure, no I/O.
#ifndef AWAITDB_SRC_PLACEHOLDERS_HPP
#define AWAITDB_SRC_PLACEHOLDERS_HPP

#include <cstddef>
#include <string_view>

namespace awaitdb::detail {

/// The highest `$N` placeholder in `sql` (0 when there is none), following PostgreSQL's lexical
/// rules: placeholders inside string literals, quoted identifiers, comments and dollar-quoted
/// strings do not count, nor does `$` inside an identifier.
std::size_t highest_placeholder(std::string_view sql) noexcept;

/// True when `sql` begins (after white space and comments) with a transaction-control
/// statement: BEGIN, START, COMMIT, END, ROLLBACK, ABORT, SAVEPOINT, RELEASE, PREPARE
/// TRANSACTION. Such statements must not share a pipelining connection with other tasks.
bool is_transaction_control(std::string_view sql) noexcept;

/// If `name` is a placeholder name as SQLite reports it ("$1", "$12"), its number; else 0.
std::size_t placeholder_number(std::string_view name) noexcept;

}  // namespace awaitdb::detail

#endif  // AWAITDB_SRC_PLACEHOLDERS_HPP
