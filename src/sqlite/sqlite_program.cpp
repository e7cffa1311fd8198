#include "sqlite_program.hpp"

#include <cstddef>
#include <string_view>

namespace awaitdb::detail {

bool returns_at_most_one_row(std::span<const vdbe_instruction> program) {
  const std::size_t n = program.size();
  std::size_t result_row = n;
  for (std::size_t i = 0; i < n; ++i) {
    if (program[i].opcode != "ResultRow") continue;
    if (result_row != n) return false;  // two places that return rows
    result_row = i;
  }
  if (result_row == n) return false;  // rows come some other way, or none: nothing to gain

  // Every instruction that can run after ResultRow: none of them may be ResultRow.
  std::vector<bool> reached(n, false);
  std::vector<std::size_t> next{result_row + 1};
  auto follow = [&](long long address) {
    if (address >= 0 && static_cast<unsigned long long>(address) < n)
      next.push_back(static_cast<std::size_t>(address));
  };
  while (!next.empty()) {
    const std::size_t i = next.back();
    next.pop_back();
    if (i >= n || reached[i]) continue;
    if (i == result_row) return false;
    reached[i] = true;
    const vdbe_instruction& op = program[i];
    if (op.opcode == "Halt") continue;
    if (op.opcode == "Return" || op.opcode == "Yield" || op.opcode == "EndCoroutine") return false;
    next.push_back(i + 1);
    follow(op.p1);
    follow(op.p2);
    follow(op.p3);
  }
  return true;
}

std::vector<vdbe_instruction> program_of(sqlite3* db, sqlite3_stmt* stmt) {
  std::vector<vdbe_instruction> program;
  const char* sql = sqlite3_sql(stmt);
  if (!sql || sqlite3_stmt_isexplain(stmt) != 0) return program;
  const std::string explain = std::string("EXPLAIN ") + sql;
  sqlite3_stmt* list = nullptr;
  if (sqlite3_prepare_v2(db, explain.c_str(), -1, &list, nullptr) != SQLITE_OK || !list) {
    sqlite3_finalize(list);
    return program;
  }
  int rc;
  while ((rc = sqlite3_step(list)) == SQLITE_ROW) {
    const auto* opcode = reinterpret_cast<const char*>(sqlite3_column_text(list, 1));
    program.push_back(vdbe_instruction{opcode ? opcode : "", sqlite3_column_int64(list, 2),
                                       sqlite3_column_int64(list, 3),
                                       sqlite3_column_int64(list, 4)});
  }
  sqlite3_finalize(list);
  if (rc != SQLITE_DONE) program.clear();
  return program;
}

}  // namespace awaitdb::detail
