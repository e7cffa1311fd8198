// A migration script: its statements and its directives. Pure: no I/O.
#ifndef AWAITDB_SRC_MIGRATE_SQL_SCRIPT_HPP
#define AWAITDB_SRC_MIGRATE_SQL_SCRIPT_HPP

#include <awaitdb/value.hpp>

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace awaitdb::detail {

struct script_statement {
  std::string_view sql;  // from its first token to before its semicolon
  std::size_t line = 0;  // the line of its first token, from 1
};

struct sql_script {
  std::vector<script_statement> statements;
  /// False when the script begins with `-- awaitdb:no-transaction`.
  bool transactional = true;
};

/// Splits `text` into its statements at the semicolons that end one, following `kind`'s
/// lexical rules: semicolons inside string literals, quoted names, comments (nested on
/// PostgreSQL), dollar quotes (PostgreSQL), and the BEGIN ... END body of a CREATE FUNCTION,
/// PROCEDURE or TRIGGER (SQL-standard bodies, SQLite triggers) do not count. Statements holding
/// nothing but comments are dropped. The views point into `text`.
///
/// Throws `awaitdb::error` 42601 naming the line for an unterminated literal, quoted name,
/// comment or body, for a directive it does not know (`-- awaitdb:...`) or one after the first
/// statement, and for a statement that controls transactions (BEGIN, COMMIT, ...).
sql_script parse_script(std::string_view text, engine kind);

/// The checksum recorded for a script: CRC-32 of its text with CR LF read as LF (a checkout
/// that converts line ends is not a change).
std::int64_t script_checksum(std::string_view text) noexcept;

}  // namespace awaitdb::detail

#endif  // AWAITDB_SRC_MIGRATE_SQL_SCRIPT_HPP
