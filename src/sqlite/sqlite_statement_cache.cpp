#include "sqlite_statement_cache.hpp"

#include "../placeholders.hpp"
#include "../sqlstates.hpp"
#include "sqlite_errors.hpp"
#include "sqlite_program.hpp"
#include <awaitdb/error.hpp>

#include <algorithm>
#include <cctype>

namespace awaitdb::detail {
namespace {

// Whether the statement's first keyword is SELECT, WITH or VALUES (after white space, comments
// and parentheses).
bool is_plain_query(std::string_view sql) {
  std::size_t i = 0;
  while (i < sql.size()) {
    const char c = sql[i];
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '(') {
      ++i;
    } else if (sql.substr(i, 2) == "--") {
      const std::size_t end = sql.find('\n', i);
      i = end == std::string_view::npos ? sql.size() : end + 1;
    } else if (sql.substr(i, 2) == "/*") {
      const std::size_t end = sql.find("*/", i + 2);
      i = end == std::string_view::npos ? sql.size() : end + 2;
    } else {
      break;
    }
  }
  auto starts = [&](std::string_view word) {
    if (sql.size() - i < word.size()) return false;
    for (std::size_t k = 0; k < word.size(); ++k)
      if ((sql[i + k] | 0x20) != word[k]) return false;
    const std::size_t after = i + word.size();
    return after == sql.size() ||
           !(std::isalnum(static_cast<unsigned char>(sql[after])) || sql[after] == '_');
  };
  return starts("select") || starts("with") || starts("values");
}

}  // namespace

bool sqlite_prepared::learn_row_limit(sqlite3* db) {
  if (limit == row_limit::unseen) {
    limit = row_limit::seen_once;
    return false;
  }
  limit = returns_at_most_one_row(program_of(db, stmt)) ? row_limit::one : row_limit::any;
  return limit == row_limit::one;
}

sqlite_prepared sqlite_statement_cache::prepare(sqlite3* db, std::string_view sql) {
  // SQLite would stop reading at a NUL byte and run what came before it.
  check_statement_text(scan_sql(sql));
  sqlite_prepared p;
  const char* tail = nullptr;
  int rc = sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()),
                              SQLITE_PREPARE_PERSISTENT, &p.stmt, &tail);
  if (rc != SQLITE_OK) throw sqlite_error(db, rc);
  if (!p.stmt) throw error(sqlstate::syntax_error, "the SQL text holds no statement");
  struct finalize_on_failure {
    sqlite_prepared& p;
    bool armed = true;
    ~finalize_on_failure() {
      if (armed) sqlite3_finalize(p.stmt);
    }
  } guard{p};
  const char* end = sql.data() + sql.size();
  if (tail && tail < end) {
    // Only white space, semicolons and comments may follow, as on PostgreSQL, whose extended
    // protocol runs one statement per call: anything else, even unparsable, is an error.
    sqlite3_stmt* next = nullptr;
    const int next_rc = sqlite3_prepare_v2(db, tail, static_cast<int>(end - tail), &next, nullptr);
    if (next || next_rc != SQLITE_OK) {
      sqlite3_finalize(next);
      throw error(sqlstate::syntax_error,
                  "the SQL text holds more than one statement; run them one at a time");
    }
  }
  const int count = sqlite3_bind_parameter_count(p.stmt);
  p.number_of.resize(static_cast<std::size_t>(count));
  for (int i = 1; i <= count; ++i) {
    const char* name = sqlite3_bind_parameter_name(p.stmt, i);
    const std::size_t n = name ? placeholder_number(name) : 0;
    if (n == 0 && name && name[0] == '$' &&
        std::string_view(name + 1).find_first_not_of('0') == std::string_view::npos)
      throw error(code::undefined_parameter,
                  "there is no parameter $0: placeholders are numbered from $1");
    if (n == 0)
      throw error(sqlstate::syntax_error,
                  std::string("placeholders are written $1, $2, ...; found \"") +
                      (name ? name : "?") + "\"");
    p.number_of[static_cast<std::size_t>(i - 1)] = n;
    p.placeholder_count = std::max(p.placeholder_count, n);
  }
  p.only_reads = sqlite3_stmt_readonly(p.stmt) != 0 && is_plain_query(sql);
  guard.armed = false;
  return p;
}

}  // namespace awaitdb::detail
