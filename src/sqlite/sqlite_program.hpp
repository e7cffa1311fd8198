// What a prepared statement's bytecode program says about its result: whether it can return
// more than one row. A query that cannot (a lookup by primary key or unique index, an
// aggregate without GROUP BY) is reset after its row instead of being stepped again to
// SQLITE_DONE, which is what a hand-written sqlite3 loop does.
#ifndef AWAITDB_SRC_SQLITE_SQLITE_PROGRAM_HPP
#define AWAITDB_SRC_SQLITE_SQLITE_PROGRAM_HPP

#include <sqlite3.h>

#include <span>
#include <string>
#include <vector>

namespace awaitdb::detail {

/// One instruction of a program, as EXPLAIN lists it.
struct vdbe_instruction {
  std::string opcode;
  long long p1 = 0, p2 = 0, p3 = 0;
};

/// Whether `program` returns at most one row: it has one ResultRow, and that instruction cannot
/// be reached again once it has run. Conservative: any operand that names an address is taken
/// as a possible jump, and an instruction that jumps to an address held in a register (Return,
/// Yield, EndCoroutine) as a jump anywhere. Only Halt ends the program.
bool returns_at_most_one_row(std::span<const vdbe_instruction> program);

/// The program of `stmt` (prepared on `db`), listed by EXPLAIN of its SQL text; empty when it
/// cannot be listed.
std::vector<vdbe_instruction> program_of(sqlite3* db, sqlite3_stmt* stmt);

}  // namespace awaitdb::detail

#endif
