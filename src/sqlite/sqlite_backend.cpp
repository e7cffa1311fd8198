// The SQLite engine: statements run inline, in the calling coroutine, without suspending.
//
// A writer connection runs statements that write, and transactions. A transaction owns it
// from BEGIN to COMMIT, so that a statement from another task, arriving while the
// transaction's task is suspended, waits on a `wait_list` (suspending, never blocking the
// thread, within `busy_timeout`) instead of landing inside the transaction. A mutex serializes
// the (short, synchronous) use of it across threads.
//
// Waiters are served in arrival order: when the writer comes free it is handed to the oldest
// waiter (`handed_off_`), and nobody else takes it until that task has had its turn (one
// statement, or a transaction from BEGIN to its end). So a task waits for the ones ahead of
// it, never for busy_timeout while later arrivals take the writer from under it.
//
// A file database in WAL mode also has reader connections: a query outside a transaction
// (`sqlite_prepared::only_reads`) runs on one of them and sees the last committed state, so it
// neither waits for another task's open transaction nor for a writer. A small bounded set
// rather than one per thread: a thread takes the first one free (an uncontended lock on a
// single-threaded io_context), and a thread pool of any size costs at most `readers`
// connections, each with its own page and statement caches.
//
// A lock held by another connection (another process, another database handle on the same
// file) makes a statement `busy`; it is retried after an Asio timer, never by sleeping in
// SQLite's busy handler, until `busy_timeout` has passed (55P03).
#include "sqlite_backend.hpp"

#include "../deadline.hpp"
#include "../sqlstates.hpp"
#include "../stream.hpp"
#include "../util/backoff.hpp"
#include "../util/file_sync.hpp"
#include "../util/light_mutex.hpp"
#include "../util/wait_list.hpp"
#include "sqlite_backup.hpp"
#include "sqlite_connection.hpp"
#include "sqlite_functions.hpp"
#include "sqlite_session.hpp"
#include "sqlite_streams.hpp"
#include "sqlite_waits.hpp"
#include <awaitdb/error.hpp>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

namespace awaitdb::detail {
namespace {

namespace asio = boost::asio;
using clock = std::chrono::steady_clock;
using outcome = sqlite_connection::outcome;

class sqlite_tx final : public tx_state {
 public:
  using tx_state::tx_state;
  std::string savepoint_name() const { return "awaitdb_sp_" + std::to_string(depth()); }
};

class sqlite_backend final : public backend {
 public:
  explicit sqlite_backend(const sqlite_options& options)
      : options_(options)
      , functions_(std::make_shared<sqlite_functions>())
      , writer_(open_sqlite_connection(options, sqlite_connection::role::writer, functions_)) {
    const bool readers = !options.memory && options.mode != sqlite_options::access::read_only &&
                         writer_->journal_mode() == "wal";
    if (readers) {
      for (std::size_t i = 0; i < options.readers; ++i) {
        readers_.push_back(std::make_unique<reader_slot>());
        readers_.back()->number = readers_.size();
      }
    }
  }

  awaitdb::engine kind() const noexcept override { return awaitdb::engine::sqlite; }

  [[gnu::hot]] bool try_run_inline(statement& st, tx_state* tx) override {
    std::unique_lock<std::mutex> held;
    return try_once(st, tx, held, false) == attempt::done;
  }

  asio::awaitable<void> run(statement& st, tx_state* tx) override {
    const clock::time_point deadline = wait_limit(options_.busy_timeout, st.deadline);
    const std::optional<clock::time_point> until = deadline;
    int attempts = 0;
    bool my_turn = false;  // the writer was handed to this task: it passes it on when done
    for (;;) {
      std::unique_lock<std::mutex> held;
      attempt a;
      try {
        a = try_once(st, tx, held, my_turn);
      } catch (...) {
        if (my_turn) pass_on(held);
        throw;
      }
      if (a == attempt::done) {
        if (my_turn) pass_on(held);
        co_return;
      }
      if (a == attempt::wait_for_transaction) {
        const wait_list::outcome o = co_await waiters_.wait(held, until, pass_on_unused_turn());
        if (o == wait_list::outcome::timed_out)
          waited_out(st.deadline, waited_for_transaction_error(options_.busy_timeout));
        my_turn = true;
        continue;
      }
      if (held) held.unlock();
      co_await keep_turn_while(
          my_turn, back_off_for_lock(attempts, deadline, options_.busy_timeout, st.deadline));
    }
  }

  asio::awaitable<std::unique_ptr<row_source>> open_stream(statement& st, tx_state* tx) override {
    if (!tx && !options_.memory) {
      check_open_unlocked();
      auto conn = open_sqlite_connection(options_, sqlite_connection::role::reader, functions_);
      bool started = false;
      try {
        started = conn->start_rows(st);
      } catch (const error& e) {
        // A statement only the writer can prepare (a TEMP table, an attached database) runs
        // whole below; anything else is the caller's mistake.
        if (e.sqlstate() != sqlstate::undefined_table) throw;
      }
      if (started) {
        auto hold = std::make_shared<stream_hold>();
        hold->conn = std::move(conn);
        {
          std::lock_guard lock(streams_mutex_);
          // (close() sets closed_ before it takes this lock: a stream it will not see fails.)
          check_open_unlocked();
          std::erase_if(streams_, [](const auto& w) { return w.expired(); });
          streams_.push_back(hold);
        }
        st.connection = readers_.size() + 1;  // (numbered after the pooled readers)
        co_return sqlite_stream_rows(std::move(hold), options_.busy_timeout);
      }
    }
    // Inside a transaction, on an in-memory database, or a statement that writes: run whole on
    // the writer, then read row by row.
    st.mode = result_mode::rows;
    if (!try_run_inline(st, tx)) co_await run(st, tx);
    co_return buffered_rows(std::move(st.rows));
  }

  asio::awaitable<std::unique_ptr<copy_sink>> copy_in(statement&, tx_state*) override {
    throw error(sqlstate::feature_not_supported, "COPY is a PostgreSQL statement: SQLite has none");
    co_return nullptr;
  }

  asio::awaitable<std::unique_ptr<copy_source>> copy_out(statement&, tx_state*) override {
    throw error(sqlstate::feature_not_supported, "COPY is a PostgreSQL statement: SQLite has none");
    co_return nullptr;
  }

  asio::awaitable<std::shared_ptr<subscription_state>> listen(std::string) override {
    throw error(sqlstate::feature_not_supported,
                "LISTEN/NOTIFY is a PostgreSQL feature: SQLite has no notifications");
    co_return nullptr;
  }

  void define_function(std::shared_ptr<const sql_function> f) override { functions_->add(f); }

  // Each step runs on the writer (so writes made through this database meanwhile reach the
  // copy, instead of starting it over), when no transaction holds it; between steps the thread
  // is free. A lock held by another connection is waited for with the back-off rule.
  asio::awaitable<void> backup(std::string path, backup_options options,
                               deadline_state* deadline) override {
    sqlite_backup_target copy(std::move(path));
    const auto executor = co_await asio::this_coro::executor;
    const std::optional<clock::time_point> until =
        deadline ? std::optional<clock::time_point>(deadline->at()) : std::nullopt;
    asio::steady_timer pause(executor);
    int busy = 0;
    for (;;) {
      if (deadline && deadline->passed()) throw deadline->timed_out();
      sqlite_backup_target::step_result r;
      {
        // Each step takes its turn on the writer like a statement.
        std::unique_lock lock(mutex_);
        bool my_turn = false;
        while (!writer_free_for(my_turn)) {
          if (co_await waiters_.wait(lock, until, pass_on_unused_turn()) ==
              wait_list::outcome::timed_out)
            waited_out(deadline, waited_for_transaction_error(options_.busy_timeout));
          my_turn = true;
          lock.lock();
        }
        try {
          check_open();
          r = on_writer([&] { return copy.step(writer_->handle(), options.pages_per_step); });
        } catch (...) {
          if (my_turn) pass_on(lock);
          throw;
        }
        if (my_turn) pass_on(lock);
      }
      if (options.on_progress) options.on_progress(copy.progress());
      if (r == sqlite_backup_target::step_result::done) break;
      // Free the thread (a timer: per-operation cancellation ends the backup here).
      pause.expires_after(r == sqlite_backup_target::step_result::busy
                              ? clock::duration(backoff_pause(std::chrono::milliseconds(1),
                                                              std::chrono::milliseconds(25),
                                                              static_cast<unsigned>(++busy)))
                              : clock::duration::zero());
      if (r != sqlite_backup_target::step_result::busy) busy = 0;
      co_await pause.async_wait(asio::use_awaitable);
    }
    // Written out 1 MiB at a time, the thread free between them, synced by the kernel while
    // the thread runs other tasks (a disk's cache flush can take 100 ms), then renamed.
    copy.complete();
    while (!copy.flush_some(std::uint64_t{1} << 20)) {
      if (deadline && deadline->passed()) throw deadline->timed_out();
      pause.expires_after(clock::duration::zero());
      co_await pause.async_wait(asio::use_awaitable);
    }
    copy.check_synced(co_await sync_file(copy.file_descriptor(), sync_kind::data));
    copy.publish();
    // The new name survives a crash once the directory is on disk too. (The copy is complete:
    // a failure here, or a cancellation, leaves it in place.)
    if (copy.directory_descriptor() >= 0) {
      try {
        co_await sync_file(copy.directory_descriptor(), sync_kind::everything);
      } catch (const boost::system::system_error&) {
      }
    }
  }

  asio::awaitable<std::shared_ptr<tx_state>> begin(std::shared_ptr<tx_state> parent,
                                                   tx_state* enclosing,
                                                   const transaction_options& options,
                                                   deadline_state* task_deadline) override {
    if (enclosing) {
      auto level = std::make_shared<sqlite_tx>(*this, std::move(parent), enclosing);
      std::lock_guard lock(mutex_);
      check_open();
      if (owner_ != &enclosing->top())
        throw error(sqlstate::no_active_transaction, "this task's transaction has ended");
      control("SAVEPOINT " + level->savepoint_name());
      co_return level;
    }
    // A transaction that may write takes the write lock at once (BEGIN IMMEDIATE): one that
    // read first and then found another connection's commit in its way could only fail
    // (40001). A read-only one takes no lock, and its connection refuses writes meanwhile.
    const clock::time_point deadline = wait_limit(options_.busy_timeout, task_deadline);
    const std::optional<clock::time_point> until = deadline;
    int attempts = 0;
    bool my_turn = false;  // the writer was handed to this task (see handed_off_)
    for (;;) {
      std::unique_lock lock(mutex_);
      if (writer_free_for(my_turn)) {
        std::shared_ptr<sqlite_tx> level;
        try {
          level = try_begin(parent, options);
        } catch (...) {
          if (my_turn) pass_on(lock);
          throw;
        }
        if (level) {
          // The turn lasts until the transaction ends (which passes the writer on).
          handed_off_ = false;
          co_return level;
        }
        // Another connection holds the write lock: wait for it on a timer, not holding ours
        // (and keeping this task's turn).
        lock.unlock();
        co_await keep_turn_while(
            my_turn, back_off_for_lock(attempts, deadline, options_.busy_timeout, task_deadline));
        continue;
      }
      const wait_list::outcome o = co_await waiters_.wait(lock, until, pass_on_unused_turn());
      if (o == wait_list::outcome::timed_out)
        waited_out(task_deadline, waited_for_transaction_error(options_.busy_timeout));
      my_turn = true;
    }
  }

  asio::awaitable<void> commit(tx_state& tx) override {
    auto& level = static_cast<sqlite_tx&>(tx);
    if (level.depth() > 0) {
      std::lock_guard lock(mutex_);
      check_open();
      try {
        control("RELEASE SAVEPOINT " + level.savepoint_name());
      } catch (...) {
        rollback_locked(level);
        throw;
      }
      co_return;
    }
    // COMMIT may find another connection's lock in its way (readers of a rollback-journal
    // database): retried like any statement; the transaction keeps the writer meanwhile.
    const clock::time_point deadline = clock::now() + options_.busy_timeout;
    int attempts = 0;
    for (;;) {
      std::unique_lock lock(mutex_);
      outcome o;
      try {
        check_open();
        o = on_writer([&] { return writer_->execute_control("COMMIT"); });
      } catch (...) {
        rollback_locked(level);
        throw;
      }
      if (o == outcome::done) {
        end_read_only_locked();
        owner_ = nullptr;
        pass_on(lock);
        co_return;
      }
      lock.unlock();
      std::exception_ptr failure;
      try {
        co_await back_off_for_lock(attempts, deadline, options_.busy_timeout);
      } catch (...) {
        failure = std::current_exception();
      }
      if (failure) {
        rollback(level);
        std::rethrow_exception(failure);
      }
    }
  }

  void rollback(tx_state& tx) noexcept override {
    std::lock_guard lock(mutex_);
    if (!writer_) return;
    rollback_locked(static_cast<sqlite_tx&>(tx));
  }

  pool_stats stats() const override {
    pool_stats s;
    {
      std::lock_guard lock(mutex_);
      s.size = writer_ ? 1 : 0;
      s.in_use = writer_ && owner_ ? 1 : 0;
    }
    for (const auto& r : readers_) {
      std::unique_lock lock(r->mutex, std::try_to_lock);
      if (!lock) {
        ++s.size;  // running a statement on another thread right now
        ++s.in_use;
      } else if (r->conn) {
        ++s.size;
      }
    }
    s.idle = s.size - s.in_use;
    s.waiting = waiters_.size();
    return s;
  }

  asio::awaitable<void> close() override {
    {
      std::lock_guard lock(mutex_);
      if (!writer_) co_return;
      closed_.store(true, std::memory_order_release);
      writer_.reset();  // rolls back an open transaction
      owner_ = nullptr;
    }
    for (const auto& r : readers_) {
      std::lock_guard lock(r->mutex);
      r->conn.reset();
    }
    std::vector<std::weak_ptr<stream_hold>> streams;
    {
      std::lock_guard lock(streams_mutex_);
      streams.swap(streams_);
    }
    for (const auto& w : streams) {
      if (auto hold = w.lock()) {
        std::lock_guard lock(hold->mutex);
        hold->conn.reset();  // ends its read transaction and closes its file
      }
    }
    waiters_.notify_all();  // they find the database closed
  }

 private:
  enum class attempt : std::uint8_t { done, busy, wait_for_transaction };

  struct reader_slot {
    light_mutex mutex;
    std::unique_ptr<sqlite_connection> conn;  // opened on first use
    std::size_t number = 0;                   // 1… (the writer is 0), for observers
  };

  // Runs `st` once, inline: on a reader if it is a query outside a transaction, else on the
  // writer. Returns with `held` (the writer's lock) locked when the answer is
  // wait_for_transaction, so that the caller joins the wait list before that transaction ends.
  // `my_turn`: the writer was handed to this task (it waited for it).
  [[gnu::hot]] attempt try_once(statement& st, tx_state* tx, std::unique_lock<std::mutex>& held,
                                bool my_turn) {
    if (!tx && !readers_.empty()) {
      std::unique_lock<light_mutex> lock;
      reader_slot& r = take_reader(lock);
      check_open_unlocked();  // (close() takes every reader's lock before it is done)
      if (!r.conn) [[unlikely]]
        r.conn = open_sqlite_connection(options_, sqlite_connection::role::reader, functions_);
      outcome o;
      st.connection = r.number;
      if (r.conn->try_read(st, o)) [[likely]]
        return o == outcome::done ? attempt::done : attempt::busy;
      st.connection = 0;
    }
    return try_on_writer(st, tx, held, my_turn);
  }

  // `try_once` on the writer (inside a transaction, or a statement a reader cannot run); out of
  // the way of the readers' path.
  [[gnu::noinline]] attempt try_on_writer(statement& st, tx_state* tx,
                                          std::unique_lock<std::mutex>& held, bool my_turn) {
    held = std::unique_lock(mutex_);
    check_open();
    if (tx) {
      if (owner_ != &tx->top())
        throw error(sqlstate::no_active_transaction, "this task's transaction has ended");
    } else if (!writer_free_for(my_turn)) {
      return attempt::wait_for_transaction;
    }
    return on_writer([&] { return writer_->execute(st); }) == outcome::done ? attempt::done
                                                                            : attempt::busy;
  }

  // The first reader free; when other threads use them all, the one this thread prefers (held
  // for one statement).
  [[gnu::hot]] reader_slot& take_reader(std::unique_lock<light_mutex>& lock) {
    for (const auto& r : readers_) {
      lock = std::unique_lock(r->mutex, std::try_to_lock);
      if (lock) return *r;
    }
    const std::size_t mine = std::hash<std::thread::id>()(std::this_thread::get_id());
    reader_slot& r = *readers_[mine % readers_.size()];
    lock = std::unique_lock(r.mutex);
    return r;
  }

  // Whether a task may use the writer outside a transaction now: no transaction holds it, and
  // it was not handed to a waiter that has yet to take its turn (unless `my_turn`: to this
  // task). Caller holds mutex_.
  bool writer_free_for(bool my_turn) const noexcept { return !owner_ && (!handed_off_ || my_turn); }

  // A turn on the writer ended (a statement, a transaction, a waiter that will not use it):
  // hands the writer to the oldest waiter, if any. Caller holds mutex_.
  void pass_on_locked() { handed_off_ = waiters_.notify_one(); }

  void pass_on(std::unique_lock<std::mutex>& lock) {
    if (!lock) lock.lock();
    pass_on_locked();
    lock.unlock();
  }

  // For a wait that ends in failure (cancelled) after the writer was handed to it.
  std::function<void()> pass_on_unused_turn() {
    return [this] {
      std::lock_guard lock(mutex_);
      pass_on_locked();
    };
  }

  // Awaits `pause` (a back-off) keeping this task's turn; passes the turn on if it throws.
  asio::awaitable<void> keep_turn_while(bool my_turn, asio::awaitable<void> pause) {
    try {
      co_await std::move(pause);
    } catch (...) {
      if (my_turn) {
        std::lock_guard lock(mutex_);
        pass_on_locked();
      }
      throw;
    }
  }

  // BEGIN on the free writer: the transaction's level, or null when another connection holds
  // the write lock (nothing begun). Caller holds mutex_.
  std::shared_ptr<sqlite_tx> try_begin(const std::shared_ptr<tx_state>& parent,
                                       const transaction_options& options) {
    check_open();
    auto level = std::make_shared<sqlite_tx>(*this, parent, nullptr);
    on_writer([&] { writer_->check_file_in_place(); });
    const outcome o = on_writer([&] {
      return writer_->execute_control(options.read_only ? "BEGIN DEFERRED" : "BEGIN IMMEDIATE");
    });
    if (o != outcome::done) return nullptr;
    if (options.read_only) {
      try {
        control("PRAGMA query_only = ON");
      } catch (...) {
        control("ROLLBACK");
        throw;
      }
    }
    read_only_tx_ = options.read_only;
    owner_ = level.get();
    return level;
  }

  [[gnu::hot]] void check_open_unlocked() const {
    if (closed_.load(std::memory_order_acquire))
      throw error(sqlstate::connection_does_not_exist, "the database is closed");
    if (file_gone_.load(std::memory_order_acquire)) throw sqlite_connection::file_gone_error();
  }

  // Caller holds mutex_.
  void check_open() const {
    if (!writer_) throw error(sqlstate::connection_does_not_exist, "the database is closed");
    if (writer_->file_gone()) throw sqlite_connection::file_gone_error();
  }

  // Runs `f` on the writer (caller holds mutex_); a file found gone closes the readers' way too.
  template <class F>
  std::invoke_result_t<F&> on_writer(F f) {
    struct note_gone {
      sqlite_backend& self;
      ~note_gone() {
        if (self.writer_->file_gone()) self.file_gone_.store(true, std::memory_order_release);
      }
    } note{*this};
    return f();
  }

  // Transaction control that must not wait for a lock (it never needs one). Caller holds mutex_.
  void control(const std::string& sql) {
    if (writer_->execute_control(sql) == outcome::busy)
      throw still_locked_error(options_.busy_timeout);
  }

  void rollback_locked(sqlite_tx& level) noexcept {
    if (level.depth() > 0) {
      try {
        control("ROLLBACK TO SAVEPOINT " + level.savepoint_name());
        control("RELEASE SAVEPOINT " + level.savepoint_name());
      } catch (...) {
        // The savepoint is gone only if the whole transaction is: nothing left to undo here.
      }
      return;
    }
    if (owner_ != &level) return;
    if (writer_->in_transaction()) {
      try {
        control("ROLLBACK");
      } catch (...) {
        // SQLite rolls back by itself on the errors that make ROLLBACK fail.
      }
    }
    end_read_only_locked();
    owner_ = nullptr;
    pass_on_locked();
  }

  // The writer refuses writes only for the read-only transaction that asked. Caller holds
  // mutex_.
  void end_read_only_locked() noexcept {
    if (!read_only_tx_) return;
    read_only_tx_ = false;
    try {
      control("PRAGMA query_only = OFF");
    } catch (...) {
      // Cannot fail on an open connection; a closed one is gone anyway.
    }
  }

  const sqlite_options options_;
  // Functions the application defined: every connection installs them before its next statement.
  const std::shared_ptr<sqlite_functions> functions_;
  mutable std::mutex mutex_;  // the writer, owner_
  std::unique_ptr<sqlite_connection> writer_;
  tx_state* owner_ = nullptr;  // the transaction holding the writer, if any
  bool handed_off_ = false;    // the writer is handed to the oldest waiter, not yet taken
  bool read_only_tx_ = false;  // owner_ is read-only: the writer has query_only on
  wait_list waiters_;
  std::vector<std::unique_ptr<reader_slot>> readers_;  // none unless a WAL file database
  std::mutex streams_mutex_;
  std::vector<std::weak_ptr<stream_hold>> streams_;  // open streams' own connections
  std::atomic<bool> closed_{false};
  std::atomic<bool> file_gone_{false};
};

}  // namespace

std::shared_ptr<backend> open_sqlite(const sqlite_options& options) {
  return std::make_shared<sqlite_backend>(options);
}

}  // namespace awaitdb::detail
