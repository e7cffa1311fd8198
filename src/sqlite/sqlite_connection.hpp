// One SQLite connection: its handle, its prepared statements, and one statement run to
// completion on it. Not thread-safe: its owner serializes every use.
//
// SQLite's busy handler would sleep inside sqlite3_step while another connection holds a lock,
// blocking the thread and every coroutine on it. The handler installed here never sleeps: it
// notes that waiting would help and lets sqlite3_step return SQLITE_BUSY at once, which
// `execute` reports as `outcome::busy` (nothing changed; the engine retries after an Asio
// timer). A SQLITE_BUSY for which SQLite did not call the handler is a lock that waiting cannot
// get (two connections each waiting for the other): an error at once.
#ifndef AWAITDB_SRC_SQLITE_SQLITE_CONNECTION_HPP
#define AWAITDB_SRC_SQLITE_SQLITE_CONNECTION_HPP

#include "../backend.hpp"
#include "../url.hpp"
#include "sqlite_functions.hpp"
#include "sqlite_statement_cache.hpp"

#include <memory>
#include <optional>
#include <string>
#include <string_view>

struct sqlite3;

namespace awaitdb::detail {

class sqlite_connection {
 public:
  enum class role : std::uint8_t {
    writer,  // statements that write, and transactions
    reader,  // queries outside transactions (a WAL database's readers never wait for writers)
  };
  enum class outcome : std::uint8_t {
    done,
    busy,  // another connection holds a lock that waiting may get: nothing changed, retry
  };

  /// Opens `options.path`, with the functions `functions` holds (and, before each statement,
  /// those defined since). Throws `awaitdb::error` (08001) naming the file.
  sqlite_connection(const sqlite_options& options, role r,
                    std::shared_ptr<const sqlite_functions> functions = nullptr);
  ~sqlite_connection();
  sqlite_connection(const sqlite_connection&) = delete;
  sqlite_connection& operator=(const sqlite_connection&) = delete;

  /// Runs `st` to completion: its rows or its count in `st`.
  outcome execute(statement& st);
  /// Runs `st` if it only reads (see `sqlite_prepared::only_reads`); false, having run nothing,
  /// when it does not or cannot be prepared here (it may name a TEMP table or an attached
  /// database of the writer: the writer prepares it and reports any error).
  bool try_read(statement& st, outcome& out);
  /// A stream's statement, on a connection that then runs nothing else: prepared and bound
  /// here, stepped by `step_row`. False, having started nothing, when it does not only read.
  bool start_rows(statement& st);
  /// The next row of the started statement (a result of one row) into `out`; `out` stays empty
  /// after the last. `busy`: another connection holds a lock; step again later.
  outcome step_row(std::optional<row>& out, const deadline_state* deadline = nullptr);

  /// A statement without parameters (transaction control), through the statement cache.
  outcome execute_control(std::string_view sql);

  bool in_transaction() const noexcept;
  /// The handle, for an online backup's steps (its owner serializes them with everything else).
  sqlite3* handle() const noexcept { return db_; }
  /// The database's journal mode as SQLite reports it ("wal", "delete", ...).
  const std::string& journal_mode() const noexcept { return journal_mode_; }

  /// A file deleted or renamed while open keeps accepting writes that go nowhere anyone will
  /// find them. SQLite's unix VFS can tell (it compares the open file with what its path names
  /// now): asked before a transaction begins and before a write outside one. Throws once gone.
  void check_file_in_place();
  bool file_gone() const noexcept { return file_gone_; }
  static error file_gone_error();

 private:
  static int on_busy(void* self, int attempts) noexcept;
  // SQLite's progress handler while a statement with a deadline runs: interrupts it once the
  // deadline has passed (sqlite3_step then returns SQLITE_INTERRUPT).
  static int on_progress(void* self) noexcept;
  class deadline_guard;
  [[noreturn]] void throw_failure(int rc, const deadline_state* deadline);
  outcome run(sqlite_prepared& p, statement& st);
  // The parts of `run` that a query's common path does not reach (kept out of its way).
  void bind_parameters(sqlite_prepared& p, const statement& st);
  void check_before_write(sqlite3_stmt* stmt);
  outcome run_for_count(sqlite3_stmt* stmt, statement& st);
  outcome run_for_scalar(sqlite_prepared& p, statement& st, int rc);
  bool failed(int rc, const deadline_state* deadline);
  void exec_pragma(const std::string& sql);
  // Installs the functions defined since the last statement (one atomic load when none were).
  void catch_up_functions() {
    if (functions_ && functions_->count() != functions_installed_)
      functions_->install_new(db_, functions_installed_);
  }

  sqlite3* db_ = nullptr;
  const bool watch_file_;
  bool file_gone_ = false;
  bool lock_wait_would_help_ = false;  // set by on_busy during one sqlite3_step
  std::string journal_mode_;
  sqlite_statement_cache cache_;
  std::shared_ptr<const sqlite_functions> functions_;
  std::size_t functions_installed_ = 0;
  sqlite_prepared* rows_ = nullptr;  // the started stream's statement
  bool rows_described_ = false;
};

}  // namespace awaitdb::detail

#endif  // AWAITDB_SRC_SQLITE_SQLITE_CONNECTION_HPP
