#include "sqlite_errors.hpp"

#include "../sqlstate_names.hpp"
#include "../sqlstates.hpp"
#include <awaitdb/error.hpp>

#include <sqlite3.h>

namespace awaitdb::detail {

std::string_view sqlite_sqlstate(int extended_code, std::string_view message) noexcept {
  switch (extended_code) {
    case SQLITE_CONSTRAINT_UNIQUE:
    case SQLITE_CONSTRAINT_PRIMARYKEY:
    case SQLITE_CONSTRAINT_ROWID:
      return sqlstate::unique_violation;
    case SQLITE_CONSTRAINT_NOTNULL:
      return sqlstate::not_null_violation;
    case SQLITE_CONSTRAINT_FOREIGNKEY:
      return sqlstate::foreign_key_violation;
    case SQLITE_CONSTRAINT_CHECK:
      return sqlstate::check_violation;
    case SQLITE_CONSTRAINT_TRIGGER:
      return code::raise_exception;  // raise_exception: RAISE() in a trigger
    case SQLITE_CONSTRAINT_DATATYPE:
      return sqlstate::datatype_mismatch;
    case SQLITE_READONLY_DBMOVED:
      return sqlstate::connection_failure;
    case SQLITE_BUSY_SNAPSHOT:
      // A transaction that read, then tried to write after another connection wrote: it can
      // only be run again from the start.
      return code::serialization_failure;  // serialization_failure
    default:
      break;
  }
  switch (extended_code & 0xff) {
    case SQLITE_ERROR:
      if (message.find("syntax error") != std::string_view::npos ||
          message.find("incomplete input") != std::string_view::npos ||
          message.find("unrecognized token") != std::string_view::npos)
        return sqlstate::syntax_error;
      if (message.starts_with("no such table")) return sqlstate::undefined_table;
      if (message.starts_with("no such column")) return sqlstate::undefined_column;
      if (message.find("already exists") != std::string_view::npos) {
        if (message.starts_with("index")) return sqlstate::duplicate_table;
        return sqlstate::duplicate_table;
      }
      // (PostgreSQL knows a function by its name and arguments: the wrong count is no such
      // function there.)
      if (message.starts_with("no such function") ||
          message.starts_with("wrong number of arguments to function"))
        return code::undefined_function;
      // (and "cannot VACUUM from within a transaction": PostgreSQL's "cannot run inside a
      // transaction block" for VACUUM, CREATE INDEX CONCURRENTLY)
      if (message.starts_with("cannot start a transaction within a transaction") ||
          message.starts_with("cannot VACUUM from within a transaction"))
        return code::active_sql_transaction;
      if (message.starts_with("cannot commit - no transaction is active") ||
          message.starts_with("cannot rollback - no transaction is active"))
        return sqlstate::no_active_transaction;
      if (message.starts_with("no such savepoint"))
        return code::invalid_savepoint_specification;      // invalid savepoint spec
      return code::syntax_error_or_access_rule_violation;  // syntax error or access rule violation
    case SQLITE_CONSTRAINT:
      return code::integrity_constraint_violation;  // integrity_constraint_violation
    case SQLITE_MISMATCH:
      return sqlstate::datatype_mismatch;
    case SQLITE_RANGE:
      return sqlstate::wrong_parameter_count;
    case SQLITE_READONLY:
      return sqlstate::read_only_transaction;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return code::lock_not_available;  // lock_not_available
    case SQLITE_INTERRUPT:
      return sqlstate::query_canceled;
    case SQLITE_TOOBIG:
      return code::program_limit_exceeded;  // program_limit_exceeded
    case SQLITE_NOMEM:
      return code::out_of_memory;  // out_of_memory
    case SQLITE_FULL:
      return code::disk_full;  // disk_full
    case SQLITE_IOERR:
      return code::io_error;  // io_error
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return code::data_corrupted;  // data_corrupted
    case SQLITE_CANTOPEN:
      return sqlstate::connection_not_established;
    case SQLITE_PERM:
    case SQLITE_AUTH:
      return code::insufficient_privilege;  // insufficient_privilege
    case SQLITE_ABORT:
      return code::transaction_rollback;  // transaction_rollback
    case SQLITE_MISUSE:
      return sqlstate::internal_error;
    default:
      return sqlstate::internal_error;
  }
}

error sqlite_error(sqlite3* db, int code, std::string_view context) {
  int extended = db ? sqlite3_extended_errcode(db) : code;
  if ((extended & 0xff) != (code & 0xff)) extended = code;
  const std::string server = db ? sqlite3_errmsg(db) : sqlite3_errstr(code);
  const std::string_view state = sqlite_sqlstate(extended, server);
  std::string message(sqlstate_condition(state));
  if (!context.empty()) message += " (" + std::string(context) + ")";
  message += "; SQLite's message is in server_message()";
  error e(state, message);
  e.with_server_fields(server, "", "", "");
  return e;
}

}  // namespace awaitdb::detail
