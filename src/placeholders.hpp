// Placeholder handling: pure, no I/O.
#ifndef AWAITDB_SRC_PLACEHOLDERS_HPP
#define AWAITDB_SRC_PLACEHOLDERS_HPP

#include <cstddef>
#include <string_view>

namespace awaitdb::detail {

/// What one lexical pass over an SQL text finds, following PostgreSQL's lexical rules:
/// placeholders inside string literals, quoted identifiers, comments and dollar-quoted strings
/// do not count, nor does `$` inside an identifier.
struct sql_scan {
  std::size_t highest_placeholder = 0;  // the highest `$N` (0 when there is none)
  bool blank = true;                    // nothing but white space, semicolons and comments
  bool has_nul = false;                 // a NUL byte anywhere (it would truncate the text)
};
sql_scan scan_sql(std::string_view sql) noexcept;

/// The highest `$N` placeholder in `sql` (0 when there is none): `scan_sql(sql)`'s.
std::size_t highest_placeholder(std::string_view sql) noexcept;

/// Throws `awaitdb::error` 42601 when `scan` describes a text that cannot be one statement:
/// blank, or holding a NUL byte. Both engines apply it, so both report the same.
void check_statement_text(const sql_scan& scan);

/// True when `sql` begins (after white space and comments) with a transaction-control
/// statement: BEGIN, START, COMMIT, END, ROLLBACK, ABORT, SAVEPOINT, RELEASE, PREPARE
/// TRANSACTION. Such statements must not share a pipelining connection with other tasks.
bool is_transaction_control(std::string_view sql) noexcept;

/// If `name` is a placeholder name as SQLite reports it ("$1", "$12", "$01"), its number, read
/// as PostgreSQL reads it; else (and for "$0") 0.
std::size_t placeholder_number(std::string_view name) noexcept;

}  // namespace awaitdb::detail

#endif  // AWAITDB_SRC_PLACEHOLDERS_HPP
