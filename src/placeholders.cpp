#include "placeholders.hpp"

#include <awaitdb/error.hpp>
#include <awaitdb/sql_literal.hpp>

#include <string>

namespace awaitdb::detail {

std::size_t highest_placeholder(std::string_view sql) noexcept {
  return scan_sql(sql).highest_placeholder;
}

void check_statement_text(const sql_scan& scan) {
  if (scan.has_nul) throw error(sqlstate::syntax_error, "the SQL text contains a NUL byte");
  if (scan.blank) throw error(sqlstate::syntax_error, "the SQL text holds no statement");
}

sql_scan scan_sql(std::string_view sql) noexcept {
  sql_scan out;
  out.has_nul = sql.find('\0') != std::string_view::npos;
  lex_sql(sql, [&](const sql_piece& p) {
    using kind = sql_piece::kind;
    if (p.what == kind::placeholder && p.number > out.highest_placeholder)
      out.highest_placeholder = p.number;
    if (p.what == kind::comment) return;
    if (p.what == kind::other) {
      const char c = sql[p.from];
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == ';') return;
    }
    out.blank = false;
  });
  return out;
}

bool is_transaction_control(std::string_view sql) noexcept {
  // The common case first: a statement starting with a letter no control keyword starts with
  // (SELECT, INSERT, UPDATE, DELETE, WITH ...) is decided by its first two letters.
  if (!sql.empty()) {
    const char first = static_cast<char>(sql[0] & ~0x20);  // upper case, for letters
    const char second = sql.size() > 1 ? static_cast<char>(sql[1] & ~0x20) : '\0';
    if (first >= 'A' && first <= 'Z') {
      const bool possible = first == 'B' || first == 'C' || first == 'E' || first == 'R' ||
                            first == 'A' || first == 'P' ||
                            (first == 'S' && (second == 'T' || second == 'A'));
      if (!possible) return false;
    }
  }
  std::size_t i = 0;
  for (;;) {
    while (i < sql.size() && (sql[i] == ' ' || sql[i] == '\t' || sql[i] == '\n' || sql[i] == '\r'))
      ++i;
    if (sql.substr(i, 2) == "--") {
      while (i < sql.size() && sql[i] != '\n')
        ++i;
    } else if (sql.substr(i, 2) == "/*") {
      std::size_t end = sql.find("*/", i + 2);
      i = end == std::string_view::npos ? sql.size() : end + 2;
    } else {
      break;
    }
  }
  std::size_t j = i;
  while (j < sql.size() && is_sql_ident_start(sql[j]))
    ++j;
  std::string word(sql.substr(i, j - i));
  for (char& c : word)
    c = static_cast<char>(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
  static constexpr std::string_view keywords[] = {"BEGIN",    "START", "COMMIT",    "END",
                                                  "ROLLBACK", "ABORT", "SAVEPOINT", "RELEASE"};
  for (std::string_view k : keywords)
    if (word == k) return true;
  if (word == "PREPARE") {
    std::string_view rest = sql.substr(j);
    while (!rest.empty() && (rest[0] == ' ' || rest[0] == '\t' || rest[0] == '\n'))
      rest.remove_prefix(1);
    return rest.size() >= 11 &&
           (rest.substr(0, 11) == "TRANSACTION" || rest.substr(0, 11) == "transaction");
  }
  return false;
}

std::size_t placeholder_number(std::string_view name) noexcept {
  // "$01" is $1, as PostgreSQL reads it; "$0" and "$00" are no placeholder.
  if (name.size() < 2 || name[0] != '$') return 0;
  std::size_t number = 0;
  for (char c : name.substr(1)) {
    if (!is_sql_digit(c) || number > 100000) return 0;
    number = number * 10 + static_cast<std::size_t>(c - '0');
  }
  return number;
}

}  // namespace awaitdb::detail
