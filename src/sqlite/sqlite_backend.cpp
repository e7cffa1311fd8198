// The SQLite engine: statements run inline, in the calling coroutine, without suspending.
//
// One connection per database. A mutex serializes the (short, synchronous) use of it across
// threads; a transaction additionally owns it from BEGIN to COMMIT, so that a statement from
// another task, arriving while the transaction's task is suspended, waits on a `wait_list`
// (suspending, never blocking the thread) instead of landing inside the transaction.
#include "sqlite_backend.hpp"

#include "../param_check.hpp"
#include "../text_forms.hpp"
#include "../util/wait_list.hpp"
#include "sqlite_errors.hpp"
#include "sqlite_statement_cache.hpp"
#include <awaitdb/error.hpp>

#include <boost/asio/recycling_allocator.hpp>

#include <sqlite3.h>

#include <algorithm>
#include <mutex>
#include <string>
#include <vector>

namespace awaitdb::detail {
namespace {

[[noreturn]] void throw_sqlite(sqlite3* db, int code, std::string_view context = {}) {
  throw sqlite_error(db, code, context);
}

/// A complete SQLite result, copied out of the statement (which is reset for reuse).
///
/// One allocation for a small result (a point lookup): this object, whose inline slots hold the
/// columns' descriptions followed by the cells; larger results move them to a vector. Text and
/// blobs go to an arena (a short string needs no allocation).
class sqlite_result final : public result_source {
 public:
  std::size_t rows() const noexcept override { return rows_; }
  std::size_t columns() const noexcept override { return columns_; }
  std::string_view column_name(std::size_t column) const noexcept override {
    const stored& c = slot(column);
    return std::string_view(arena_.data() + c.offset, c.size);
  }
  cell at(std::size_t row, std::size_t column) const override {
    const stored& s = slot(columns_ + row * columns_ + column);
    return cell{s.kind, s.integer, s.real, std::string_view(arena_.data() + s.offset, s.size)};
  }

  void read_columns(const sqlite_prepared& p) {
    columns_ = p.columns.size();
    for (const sqlite_prepared::column& c : p.columns) {
      stored d;
      d.offset = append(std::string_view(p.names).substr(c.name_offset, c.name_size));
      d.size = c.name_size;
      d.kind = c.boolean ? cell_kind::boolean : cell_kind::integer;
      push(d);
    }
  }

  void read_row(sqlite3_stmt* stmt) {
    for (std::size_t c = 0; c < columns_; ++c) {
      int col = static_cast<int>(c);
      stored s;
      switch (sqlite3_column_type(stmt, col)) {
        case SQLITE_INTEGER:
          s.integer = sqlite3_column_int64(stmt, col);
          s.kind = slot(c).kind == cell_kind::boolean && (s.integer == 0 || s.integer == 1)
                       ? cell_kind::boolean
                       : cell_kind::integer;
          break;
        case SQLITE_FLOAT:
          s.kind = cell_kind::real;
          s.real = sqlite3_column_double(stmt, col);
          break;
        case SQLITE_TEXT: {
          s.kind = cell_kind::text;
          const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, col));
          s.size = static_cast<std::size_t>(sqlite3_column_bytes(stmt, col));
          s.offset = append(std::string_view(text ? text : "", s.size));
          break;
        }
        case SQLITE_BLOB: {
          s.kind = cell_kind::blob;
          const auto* data = static_cast<const char*>(sqlite3_column_blob(stmt, col));
          s.size = static_cast<std::size_t>(sqlite3_column_bytes(stmt, col));
          s.offset = append(std::string_view(data ? data : "", s.size));
          break;
        }
        default:
          break;  // NULL
      }
      push(s);
    }
    ++rows_;
  }

 private:
  struct stored {
    cell_kind kind = cell_kind::null;
    std::int64_t integer = 0;
    double real = 0;
    std::size_t offset = 0;
    std::size_t size = 0;
  };

  std::size_t append(std::string_view bytes) {
    std::size_t offset = arena_.size();
    arena_.append(bytes);
    return offset;
  }

  const stored& slot(std::size_t i) const noexcept { return heap_.empty() ? inline_[i] : heap_[i]; }
  void push(const stored& s) {
    if (heap_.empty() && used_ < inline_capacity) {
      inline_[used_++] = s;
      return;
    }
    if (heap_.empty()) heap_.assign(inline_, inline_ + used_);
    heap_.push_back(s);
  }

  static constexpr std::size_t inline_capacity = 4;
  std::size_t rows_ = 0;
  std::size_t columns_ = 0;
  // The columns' descriptions, then rows_ * columns_ cells: inline while they fit.
  stored inline_[inline_capacity];
  std::size_t used_ = 0;
  std::vector<stored> heap_;
  std::string arena_;
};

class sqlite_tx final : public tx_state {
 public:
  using tx_state::tx_state;
  std::string savepoint_name() const { return "awaitdb_sp_" + std::to_string(depth()); }
};

class sqlite_backend final : public backend {
 public:
  explicit sqlite_backend(const sqlite_options& options)
      : watch_file_(!options.memory), cache_(options.statement_cache_size) {
    int flags = SQLITE_OPEN_NOMUTEX;  // the backend serializes every use of the connection
    switch (options.mode) {
      case sqlite_options::access::read_only:
        flags |= SQLITE_OPEN_READONLY;
        break;
      case sqlite_options::access::read_write:
        flags |= SQLITE_OPEN_READWRITE;
        break;
      case sqlite_options::access::read_write_create:
        flags |= SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
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
      sqlite3_busy_timeout(db_, static_cast<int>(options.busy_timeout.count()));
      exec_pragma(std::string("PRAGMA foreign_keys = ") + (options.foreign_keys ? "ON" : "OFF"));
      if (!options.memory && options.mode != sqlite_options::access::read_only) {
        exec_pragma("PRAGMA journal_mode = " + options.journal_mode);
        // With WAL, NORMAL is durable across application crashes and much faster than FULL.
        if (options.journal_mode == "wal") exec_pragma("PRAGMA synchronous = NORMAL");
      }
    } catch (...) {
      sqlite3_close_v2(db_);
      db_ = nullptr;
      throw;
    }
  }

  ~sqlite_backend() override {
    cache_.clear();
    if (db_) sqlite3_close_v2(db_);
  }

  awaitdb::engine kind() const noexcept override { return awaitdb::engine::sqlite; }

  bool try_run_inline(statement& st, tx_state* tx) override {
    std::unique_lock lock(mutex_);
    check_open();
    if (tx) {
      if (owner_ != &tx->top())
        throw error(sqlstate::no_active_transaction, "this task's transaction has ended");
    } else if (owner_) {
      return false;  // another task's transaction holds the connection: run() waits
    }
    execute(st);
    return true;
  }

  asio::awaitable<void> run(statement& st, tx_state* tx) override {
    for (;;) {
      std::unique_lock lock(mutex_);
      check_open();
      if (tx) {
        if (owner_ != &tx->top())
          throw error(sqlstate::no_active_transaction, "this task's transaction has ended");
        execute(st);
        co_return;
      }
      if (!owner_) {
        execute(st);
        co_return;
      }
      // Another task's transaction owns the connection: wait for it to end.
      co_await waiters_.wait(lock);
    }
  }

  asio::awaitable<std::shared_ptr<tx_state>> begin(std::shared_ptr<tx_state> parent,
                                                   tx_state* enclosing) override {
    if (enclosing) {
      auto level = std::make_shared<sqlite_tx>(*this, std::move(parent), enclosing);
      std::lock_guard lock(mutex_);
      check_open();
      if (owner_ != &enclosing->top())
        throw error(sqlstate::no_active_transaction, "this task's transaction has ended");
      exec_control("SAVEPOINT " + level->savepoint_name());
      co_return level;
    }
    for (;;) {
      std::unique_lock lock(mutex_);
      check_open();
      if (!owner_) {
        auto level = std::make_shared<sqlite_tx>(*this, std::move(parent), nullptr);
        check_file_in_place();
        exec_control("BEGIN");
        owner_ = level.get();
        co_return level;
      }
      co_await waiters_.wait(lock);
    }
  }

  asio::awaitable<void> commit(tx_state& tx) override {
    std::unique_lock lock(mutex_);
    check_open();
    auto& level = static_cast<sqlite_tx&>(tx);
    if (level.depth() > 0) {
      try {
        exec_control("RELEASE SAVEPOINT " + level.savepoint_name());
      } catch (...) {
        rollback_locked(level);
        throw;
      }
      co_return;
    }
    try {
      exec_control("COMMIT");
    } catch (...) {
      rollback_locked(level);
      lock.unlock();
      waiters_.notify_all();
      throw;
    }
    owner_ = nullptr;
    lock.unlock();
    waiters_.notify_all();
    co_return;
  }

  void rollback(tx_state& tx) noexcept override {
    std::unique_lock lock(mutex_);
    if (!db_) return;
    rollback_locked(static_cast<sqlite_tx&>(tx));
    lock.unlock();
    if (tx.depth() == 0) waiters_.notify_all();
  }

  pool_stats stats() const override {
    std::lock_guard lock(mutex_);
    pool_stats s;
    s.size = db_ ? 1 : 0;
    s.in_use = db_ && owner_ ? 1 : 0;
    s.idle = s.size - s.in_use;
    s.waiting = waiters_.size();
    return s;
  }

  asio::awaitable<void> close() override {
    {
      std::lock_guard lock(mutex_);
      if (!db_) co_return;
      cache_.clear();
      sqlite3_close_v2(db_);  // rolls back an open transaction
      db_ = nullptr;
      owner_ = nullptr;
    }
    waiters_.notify_all();  // they find the database closed
  }

 private:
  void check_open() const {
    if (!db_) throw error(sqlstate::connection_does_not_exist, "the database is closed");
    if (file_gone_) throw file_gone_error();
  }

  static error file_gone_error() {
    return error(sqlstate::connection_failure,
                 "the database file was deleted or replaced after it was opened: writes would go "
                 "to a file no other process sees; open the database again");
  }

  // A file deleted or renamed while open keeps accepting writes that go nowhere anyone will
  // find them. SQLite's unix VFS can tell (it compares the open file with what its path names
  // now): asked before a transaction begins and before a write outside one, so a write is never
  // lost silently. Once gone, the database refuses every statement. (Caller holds mutex_.)
  void check_file_in_place() {
    if (!watch_file_) return;
    int moved = 0;
    if (sqlite3_file_control(db_, "main", SQLITE_FCNTL_HAS_MOVED, &moved) == SQLITE_OK && moved) {
      file_gone_ = true;
      throw file_gone_error();
    }
  }

  void rollback_locked(sqlite_tx& level) noexcept {
    if (level.depth() > 0) {
      try {
        exec_control("ROLLBACK TO SAVEPOINT " + level.savepoint_name());
        exec_control("RELEASE SAVEPOINT " + level.savepoint_name());
      } catch (...) {
        // The savepoint is gone only if the whole transaction is: nothing left to undo here.
      }
      return;
    }
    if (owner_ != &level) return;
    if (!sqlite3_get_autocommit(db_)) {
      try {
        exec_control("ROLLBACK");
      } catch (...) {
        // SQLite rolls back by itself on the errors that make ROLLBACK fail.
      }
    }
    owner_ = nullptr;
  }

  void exec_pragma(const std::string& sql) {
    int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) throw_sqlite(db_, rc, sql);
  }

  // Transaction control statements, through the statement cache (they repeat).
  void exec_control(const std::string& sql) {
    statement st;
    st.sql = sql;
    st.mode = result_mode::count;
    execute(st);
  }

  static void bind(sqlite3* db, sqlite3_stmt* stmt, int index, const param& p, std::size_t number) {
    int rc = SQLITE_OK;
    switch (p.kind) {
      case param_kind::null:
        rc = sqlite3_bind_null(stmt, index);
        break;
      case param_kind::boolean:
      case param_kind::int16:
      case param_kind::int32:
      case param_kind::int64:
        rc = sqlite3_bind_int64(stmt, index, p.integer);
        break;
      case param_kind::real:
        rc = sqlite3_bind_double(stmt, index, p.real);
        break;
      case param_kind::text:
        check_text_parameter(p.bytes, number);
        // A null pointer would bind NULL: an empty string must stay an empty string.
        rc = sqlite3_bind_text64(stmt, index, p.bytes.data() ? p.bytes.data() : "", p.bytes.size(),
                                 SQLITE_STATIC, SQLITE_UTF8);
        break;
      case param_kind::uint64:
        throw error(sqlstate::numeric_value_out_of_range,
                    "parameter $" + std::to_string(number) +
                        " is an unsigned value above 9223372036854775807, which SQLite cannot "
                        "store as an integer");
      case param_kind::timestamp:
      case param_kind::date:
      case param_kind::duration:
      case param_kind::uuid: {
        // Times in UTC without an offset: the form SQLite's own date functions read.
        const std::string text = parameter_text(p, number, false);
        rc = sqlite3_bind_text64(stmt, index, text.data(), text.size(), SQLITE_TRANSIENT,
                                 SQLITE_UTF8);
        break;
      }
      case param_kind::array:
        throw error(sqlstate::feature_not_supported,
                    "parameter $" + std::to_string(number) +
                        " is an array, which SQLite does not have; bind its elements one by one "
                        "or join them into the SQL as a list of placeholders");
      case param_kind::blob:
        rc = p.bytes.empty()
                 ? sqlite3_bind_zeroblob(stmt, index, 0)
                 : sqlite3_bind_blob64(stmt, index, p.bytes.data(), p.bytes.size(), SQLITE_STATIC);
        break;
    }
    if (rc != SQLITE_OK) throw_sqlite(db, rc, "binding $" + std::to_string(number));
  }

  // Runs one statement to completion. Caller holds mutex_.
  void execute(statement& st) {
    sqlite_prepared& p = cache_.get(db_, st.sql);
    if (st.param_count != p.placeholder_count)
      throw error(sqlstate::wrong_parameter_count,
                  "the statement takes " + std::to_string(p.placeholder_count) +
                      " parameters ($1..$N) but " + std::to_string(st.param_count) + " were given");
    sqlite3_stmt* stmt = p.stmt;
    if (watch_file_ && sqlite3_get_autocommit(db_) && !sqlite3_stmt_readonly(stmt))
      check_file_in_place();
    reset_on_exit reset{stmt};
    for (std::size_t i = 0; i < p.number_of.size(); ++i)
      bind(db_, stmt, static_cast<int>(i + 1), st.params[p.number_of[i] - 1], p.number_of[i]);

    if (st.mode == result_mode::count) {
      const sqlite3_int64 before = sqlite3_total_changes64(db_);
      int rc;
      while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
      }
      if (rc != SQLITE_DONE) throw_sqlite(db_, rc);
      // sqlite3_changes64 keeps the count of the last INSERT/UPDATE/DELETE; a statement that
      // changed nothing (a SELECT, DDL) must report 0, not that stale count.
      st.affected = sqlite3_total_changes64(db_) != before
                        ? static_cast<std::uint64_t>(sqlite3_changes64(db_))
                        : 0;
      return;
    }

    // Asio's recycling allocator: a thread that runs one query after another reuses the
    // memory of the previous result instead of going to the heap each time.
    auto out = std::allocate_shared<sqlite_result>(asio::recycling_allocator<sqlite_result>());
    int rc = sqlite3_step(stmt);  // first: it re-prepares the statement if the schema changed
    p.describe();
    out->read_columns(p);
    for (; rc == SQLITE_ROW; rc = sqlite3_step(stmt))
      out->read_row(stmt);
    if (rc != SQLITE_DONE) throw_sqlite(db_, rc);
    st.rows = result(std::move(out));
  }

  sqlite3* db_ = nullptr;
  const bool watch_file_;   // a file database: watch that its file stays in place
  bool file_gone_ = false;  // under mutex_
  mutable std::mutex mutex_;
  tx_state* owner_ = nullptr;  // the transaction holding the connection, if any
  wait_list waiters_;
  sqlite_statement_cache cache_;
};

}  // namespace

std::shared_ptr<backend> open_sqlite(const sqlite_options& options) {
  return std::make_shared<sqlite_backend>(options);
}

}  // namespace awaitdb::detail
