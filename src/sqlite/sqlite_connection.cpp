#include "sqlite_connection.hpp"

#include "../deadline.hpp"
#include "../sqlstates.hpp"
#include "../util/thread_cache.hpp"
#include "sqlite_errors.hpp"
#include "sqlite_functions.hpp"
#include "sqlite_values.hpp"
#include <awaitdb/error.hpp>

#include <sqlite3.h>

#include <string>

namespace awaitdb::detail {
namespace {

namespace asio = boost::asio;

[[noreturn]] void throw_sqlite(sqlite3* db, int code, std::string_view context = {}) {
  throw sqlite_error(db, code, context);
}

/// The value of column `c` of the row `stmt` stands on (text and blobs viewed where SQLite holds
/// them). An integer 0 or 1 in a column declared BOOL/BOOLEAN reads as a boolean, like
/// PostgreSQL's.
[[gnu::hot]] inline cell column_cell(sqlite3_stmt* stmt, const sqlite_columns& columns,
                                     std::size_t c) noexcept {
  // One look-up of the column for its type and its value (the connection is used by one thread
  // at a time, so the value needs no protection of its own).
  cell v = sqlite_cell(sqlite3_column_value(stmt, static_cast<int>(c)));
  if (v.kind == cell_kind::integer && columns.list[c].boolean && (v.integer == 0 || v.integer == 1))
    v.kind = cell_kind::boolean;
  return v;
}

/// The row a statement stands on, read where SQLite holds it: what query_scalar converts its
/// value from, before the statement moves on.
class sqlite_row_view final : public result_source {
 public:
  sqlite_row_view(sqlite3_stmt* stmt, const sqlite_columns& columns) noexcept
      : stmt_(stmt), columns_(columns) {}

  std::size_t rows() const noexcept override { return 1; }
  std::size_t columns() const noexcept override { return columns_.list.size(); }
  std::string_view column_name(std::size_t column) const noexcept override {
    return columns_.name(column);
  }
  cell at(std::size_t, std::size_t column) const override {
    return column_cell(stmt_, columns_, column);
  }
  [[gnu::hot]] cell checked_at(std::size_t row, std::size_t column) const override {
    if (column >= columns_.list.size() || row != 0) [[unlikely]]
      return result_source::checked_at(row, column);  // (throws)
    return column_cell(stmt_, columns_, column);
  }

 private:
  sqlite3_stmt* stmt_;
  const sqlite_columns& columns_;
};

/// A complete SQLite result, copied out of the statement (which is reset for reuse).
///
/// One allocation for a small result (a point lookup): this object, whose inline slots hold the
/// cells; larger results move them to a vector. The columns' description is the statement's,
/// shared. Text and blobs go to an arena (a short string needs no allocation).
class sqlite_result final : public result_source {
 public:
  explicit sqlite_result(std::shared_ptr<const sqlite_columns> columns) noexcept
      : columns_(std::move(columns)), width_(columns_->list.size()) {}

  std::size_t rows() const noexcept override { return rows_; }
  std::size_t columns() const noexcept override { return width_; }
  std::string_view column_name(std::size_t column) const noexcept override {
    return columns_->name(column);
  }
  cell at(std::size_t row, std::size_t column) const override {
    const stored& s = heap_.empty() ? inline_[row * width_ + column] : heap_[row * width_ + column];
    return cell{s.kind, s.integer, s.real, std::string_view(arena_.data() + s.offset, s.size)};
  }
  [[gnu::hot]] cell checked_at(std::size_t row, std::size_t column) const override {
    if (column >= width_ || row >= rows_) [[unlikely]]
      return result_source::checked_at(row, column);  // (throws)
    return sqlite_result::at(row, column);
  }

  [[gnu::hot]] void read_row(sqlite3_stmt* stmt) {
    for (std::size_t c = 0; c < width_; ++c) {
      stored& s = next_slot();
      const cell v = column_cell(stmt, *columns_, c);
      s.kind = v.kind;
      s.integer = v.integer;
      s.real = v.real;
      s.offset = 0;
      s.size = 0;
      if (v.kind == cell_kind::text || v.kind == cell_kind::blob) keep_bytes(s, v.bytes);
    }
    ++rows_;
  }

 private:
  // Trivial, so that the inline slots cost nothing until they are filled (read_row sets every
  // member).
  struct stored {
    cell_kind kind;
    std::int64_t integer;
    double real;
    std::size_t offset;
    std::size_t size;
  };

  // (Out of the way of read_row's path for numbers, as is the growth below.)
  [[gnu::noinline]] void keep_bytes(stored& s, std::string_view bytes) {
    s.size = bytes.size();
    s.offset = arena_.size();
    arena_.append(bytes);
  }

  // The slot of the next cell (read_row fills it).
  stored& next_slot() {
    if (heap_.empty() && used_ < inline_capacity) [[likely]]
      return inline_[used_++];
    return next_slot_on_heap();
  }

  [[gnu::noinline]] stored& next_slot_on_heap() {
    if (heap_.empty()) {
      heap_.reserve(2 * inline_capacity);
      heap_.assign(inline_, inline_ + used_);
    }
    return heap_.emplace_back();
  }

  static constexpr std::size_t inline_capacity = 4;
  std::shared_ptr<const sqlite_columns> columns_;
  std::size_t width_;
  std::size_t rows_ = 0;
  // rows_ * width_ cells: inline while they fit.
  stored inline_[inline_capacity];
  std::size_t used_ = 0;
  std::vector<stored> heap_;
  std::string arena_;
};

// Writes parameters with sqlite3_bind_*.
struct bind_sink {
  sqlite3_stmt* stmt;
  int index;
  int null() { return sqlite3_bind_null(stmt, index); }
  int integer(std::int64_t v) { return sqlite3_bind_int64(stmt, index, v); }
  int real(double v) { return sqlite3_bind_double(stmt, index, v); }
  int text(std::string_view v, bool transient) {
    return sqlite3_bind_text64(stmt, index, v.data(), v.size(),
                               transient ? SQLITE_TRANSIENT : SQLITE_STATIC, SQLITE_UTF8);
  }
  int blob(std::string_view v) {
    return v.empty() ? sqlite3_bind_zeroblob(stmt, index, 0)
                     : sqlite3_bind_blob64(stmt, index, v.data(), v.size(), SQLITE_STATIC);
  }
};

[[gnu::noinline]] void bind(sqlite3* db, sqlite3_stmt* stmt, int index, const param& p,
                            std::size_t number) {
  bind_sink sink{stmt, index};
  const int rc = write_sqlite_value(p, number, sink);
  if (rc != SQLITE_OK) throw_sqlite(db, rc, "binding $" + std::to_string(number));
}

}  // namespace

sqlite_connection::sqlite_connection(const sqlite_options& options, role r,
                                     std::shared_ptr<const sqlite_functions> functions)
    : watch_file_(!options.memory && r == role::writer)
    , cache_(options.statement_cache_size)
    , functions_(std::move(functions)) {
  int flags = SQLITE_OPEN_NOMUTEX;  // the engine serializes every use of the connection
  switch (options.mode) {
    case sqlite_options::access::read_only:
      flags |= SQLITE_OPEN_READONLY;
      break;
    case sqlite_options::access::read_write:
      flags |= SQLITE_OPEN_READWRITE;
      break;
    case sqlite_options::access::read_write_create:
      // A reader opens the file the writer created.
      flags |=
          r == role::writer ? SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE : SQLITE_OPEN_READWRITE;
      break;
  }
  int rc = sqlite3_open_v2(options.path.c_str(), &db_, flags, nullptr);
  if (rc != SQLITE_OK) {
    std::string message = "cannot open SQLite database \"" + options.path +
                          "\": " + (db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc));
    sqlite3_close_v2(db_);
    db_ = nullptr;
    throw error(sqlstate::connection_not_established, message);
  }
  try {
    sqlite3_extended_result_codes(db_, 1);
    sqlite3_busy_handler(db_, &sqlite_connection::on_busy, this);
    catch_up_functions();
    exec_pragma(std::string("PRAGMA foreign_keys = ") + (options.foreign_keys ? "ON" : "OFF"));
    if (r == role::reader) {
      exec_pragma("PRAGMA query_only = ON");  // a reader never writes, whatever it is given
    } else if (!options.memory && options.mode != sqlite_options::access::read_only) {
      // Leaving WAL needs the file to itself: while other connections have it open, SQLite
      // answers busy and the file keeps its mode (read back below).
      const std::string set_mode = "PRAGMA journal_mode = " + options.journal_mode;
      const int mode_rc = sqlite3_exec(db_, set_mode.c_str(), nullptr, nullptr, nullptr);
      if (mode_rc != SQLITE_OK && (mode_rc & 0xff) != SQLITE_BUSY)
        throw_sqlite(db_, mode_rc, set_mode);
      // With WAL, NORMAL is durable across application crashes and much faster than FULL.
      if (options.journal_mode == "wal") exec_pragma("PRAGMA synchronous = NORMAL");
    }
    sqlite3_stmt* mode = nullptr;
    if (sqlite3_prepare_v2(db_, "PRAGMA journal_mode", -1, &mode, nullptr) == SQLITE_OK &&
        sqlite3_step(mode) == SQLITE_ROW) {
      const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(mode, 0));
      journal_mode_ = text ? text : "";
    }
    sqlite3_finalize(mode);
  } catch (...) {
    sqlite3_close_v2(db_);
    db_ = nullptr;
    throw;
  }
}

sqlite_connection::~sqlite_connection() {
  cache_.clear();
  if (db_) sqlite3_close_v2(db_);  // rolls back an open transaction
}

// Statements with a deadline are interrupted by SQLite's progress handler: called every this
// many virtual machine instructions (a few microseconds of work), it reads the clock once.
constexpr int progress_period = 1000;

class sqlite_connection::deadline_guard {
 public:
  deadline_guard(sqlite3* db, const deadline_state* deadline) : db_(deadline ? db : nullptr) {
    if (db_)
      sqlite3_progress_handler(db_, progress_period, &sqlite_connection::on_progress,
                               const_cast<deadline_state*>(deadline));
  }
  ~deadline_guard() {
    if (db_) sqlite3_progress_handler(db_, 0, nullptr, nullptr);
  }
  deadline_guard(const deadline_guard&) = delete;
  deadline_guard& operator=(const deadline_guard&) = delete;

 private:
  sqlite3* db_;
};

int sqlite_connection::on_progress(void* deadline) noexcept {
  return static_cast<const deadline_state*>(deadline)->passed() ? 1 : 0;
}

void sqlite_connection::throw_failure(int rc, const deadline_state* deadline) {
  // Interrupted at the deadline (the connection stays usable; inside a transaction SQLite may
  // have rolled it back, which the failure aborting the transaction accounts for).
  if ((rc & 0xff) == SQLITE_INTERRUPT && deadline && deadline->passed())
    throw deadline->timed_out();
  // A function of the application failed: its own error, not SQLite's retelling of it.
  if (std::optional<error> failure = take_function_failure()) throw std::move(*failure);
  throw_sqlite(db_, rc);
}

int sqlite_connection::on_busy(void* self, int) noexcept {
  static_cast<sqlite_connection*>(self)->lock_wait_would_help_ = true;
  return 0;  // do not sleep: sqlite3_step returns SQLITE_BUSY now
}

bool sqlite_connection::in_transaction() const noexcept {
  return sqlite3_get_autocommit(db_) == 0;
}

error sqlite_connection::file_gone_error() {
  return error(sqlstate::connection_failure,
               "the database file was deleted or replaced after it was opened: writes would go "
               "to a file no other process sees; open the database again");
}

void sqlite_connection::check_file_in_place() {
  if (!watch_file_) return;
  int moved = 0;
  if (sqlite3_file_control(db_, "main", SQLITE_FCNTL_HAS_MOVED, &moved) == SQLITE_OK && moved) {
    file_gone_ = true;
    throw file_gone_error();
  }
}

void sqlite_connection::exec_pragma(const std::string& sql) {
  int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) throw_sqlite(db_, rc, sql);
}

sqlite_connection::outcome sqlite_connection::execute_control(std::string_view sql) {
  statement st;
  st.sql = sql;
  st.mode = result_mode::count;
  return execute(st);
}

sqlite_connection::outcome sqlite_connection::execute(statement& st) {
  catch_up_functions();
  return run(cache_.get(db_, st.sql), st);
}

[[gnu::hot]] bool sqlite_connection::try_read(statement& st, outcome& out) {
  catch_up_functions();
  sqlite_prepared* p = nullptr;
  try {
    p = &cache_.get(db_, st.sql);
  } catch (const error&) {
    return false;
  }
  if (!p->only_reads) return false;
  out = run(*p, st);
  return true;
}

bool sqlite_connection::start_rows(statement& st) {
  catch_up_functions();
  sqlite_prepared& p = cache_.get(db_, st.sql);
  if (!p.only_reads) return false;
  sqlite3_reset(p.stmt);
  bind_parameters(p, st);
  rows_ = &p;
  rows_described_ = false;
  return true;
}

sqlite_connection::outcome sqlite_connection::step_row(std::optional<row>& out,
                                                       const deadline_state* deadline) {
  out.reset();
  if (!rows_) return outcome::done;
  lock_wait_would_help_ = false;
  int rc;
  {
    deadline_guard guard(db_, deadline);
    rc = sqlite3_step(rows_->stmt);
  }
  if (rc == SQLITE_ROW) {
    if (!rows_described_) {
      rows_->describe();  // (after the first step: it re-prepares after a schema change)
      rows_described_ = true;
    }
    auto one = std::make_shared<sqlite_result>(rows_->columns);
    one->read_row(rows_->stmt);
    out.emplace(std::move(one), 0);
    return outcome::done;
  }
  if ((rc & 0xff) == SQLITE_BUSY && rc != SQLITE_BUSY_SNAPSHOT && lock_wait_would_help_)
    return outcome::busy;
  sqlite3_stmt* stmt = rows_->stmt;
  rows_ = nullptr;
  reset_on_exit reset{stmt};
  if (rc != SQLITE_DONE) throw_failure(rc, deadline);
  return outcome::done;
}

[[gnu::hot]] sqlite_connection::outcome sqlite_connection::run(sqlite_prepared& p, statement& st) {
  sqlite3_stmt* stmt = p.stmt;
  if (watch_file_) [[unlikely]]  // (the writer: a reader, the common path, never writes)
    check_before_write(stmt);
  reset_on_exit reset{stmt};
  bind_parameters(p, st);
  lock_wait_would_help_ = false;
  const deadline_guard guard(db_, st.deadline);
  if (st.mode == result_mode::count) return run_for_count(stmt, st);

  int rc = sqlite3_step(stmt);  // first: it re-prepares the statement if the schema changed
  p.describe();
  if (st.mode == result_mode::scalar) return run_for_scalar(p, st, rc);
  // From the thread's cache: a thread that runs one query after another reuses the
  // memory of the previous result instead of going to the heap each time.
  auto out =
      std::allocate_shared<sqlite_result>(thread_cache_allocator<sqlite_result>(), p.columns);
  if (rc == SQLITE_ROW && p.only_reads && p.stops_at_first_row(db_)) {
    out->read_row(stmt);
    rc = SQLITE_DONE;  // (the statement is reset below, as a second step would end it)
  }
  for (; rc == SQLITE_ROW; rc = sqlite3_step(stmt))
    out->read_row(stmt);
  if (rc != SQLITE_DONE && failed(rc, st.deadline)) [[unlikely]]
    return outcome::busy;
  st.rows = result(std::move(out));
  return outcome::done;
}

[[gnu::hot]] void sqlite_connection::bind_parameters(sqlite_prepared& p, const statement& st) {
  if (st.param_count != p.placeholder_count) [[unlikely]]
    throw error(sqlstate::wrong_parameter_count,
                "the statement takes " + std::to_string(p.placeholder_count) +
                    " parameters ($1..$N) but " + std::to_string(st.param_count) + " were given");
  for (std::size_t i = 0; i < p.number_of.size(); ++i) {
    const param& v = st.params[p.number_of[i] - 1];
    const int index = static_cast<int>(i + 1);
    // An integer, the most common parameter, without the call that handles every kind (which
    // binds again, to report a failure).
    if (v.kind == param_kind::int64 || v.kind == param_kind::int32) [[likely]] {
      const int rc = sqlite3_bind_int64(p.stmt, index, v.integer);
      if (rc == SQLITE_OK) [[likely]]
        continue;
    }
    bind(db_, p.stmt, index, v, p.number_of[i]);
  }
}

// query_scalar: the first row's value converted where SQLite holds it, no result made. `rc` is
// the first step's.
[[gnu::hot]] sqlite_connection::outcome sqlite_connection::run_for_scalar(sqlite_prepared& p,
                                                                          statement& st, int rc) {
  st.scalar_failure = nullptr;  // (from an attempt that then had to wait for a lock)
  const std::size_t columns = p.columns->list.size();
  std::size_t rows = 0;
  if (rc == SQLITE_ROW) {
    rows = 1;
    if (columns == 1) [[likely]] {
      const sqlite_row_view first(p.stmt, *p.columns);
      read_scalar(st, row(&first, 0));
    }
    if (p.only_reads && p.stops_at_first_row(db_))
      rc = SQLITE_DONE;  // (the statement is reset on the way out, as a second step would end it)
    else
      while ((rc = sqlite3_step(p.stmt)) == SQLITE_ROW)
        ++rows;  // (run to the end, as any statement: a write's RETURNING, an error)
  }
  if (rc != SQLITE_DONE && failed(rc, st.deadline)) [[unlikely]]
    return outcome::busy;
  end_scalar(st, rows, columns);
  return outcome::done;
}

void sqlite_connection::check_before_write(sqlite3_stmt* stmt) {
  if (sqlite3_get_autocommit(db_) && !sqlite3_stmt_readonly(stmt)) check_file_in_place();
}

sqlite_connection::outcome sqlite_connection::run_for_count(sqlite3_stmt* stmt, statement& st) {
  const sqlite3_int64 before = sqlite3_total_changes64(db_);
  int rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
  }
  if (rc != SQLITE_DONE && failed(rc, st.deadline)) return outcome::busy;
  // sqlite3_changes64 keeps the count of the last INSERT/UPDATE/DELETE; a statement that
  // changed nothing (a SELECT, DDL) must report 0, not that stale count.
  st.affected = sqlite3_total_changes64(db_) != before
                    ? static_cast<std::uint64_t>(sqlite3_changes64(db_))
                    : 0;
  return outcome::done;
}

// A step that ended in `rc`, neither a row nor done: true when waiting for a lock would help
// (SQLITE_BUSY: nothing was changed, as SQLite takes its locks before it writes); else throws.
bool sqlite_connection::failed(int rc, const deadline_state* deadline) {
  if ((rc & 0xff) == SQLITE_BUSY && rc != SQLITE_BUSY_SNAPSHOT && lock_wait_would_help_)
    return true;
  if (rc == SQLITE_BUSY)
    throw error(code::deadlock_detected,
                "SQLite refused to wait for a lock that another connection holds while it "
                "waits for one of this connection's (deadlock); run the transaction again");
  throw_failure(rc, deadline);
}

}  // namespace awaitdb::detail
