// The boundary between the engine-neutral `database` and an engine. Everything above it is
// identical for SQLite and PostgreSQL; everything below it is one engine's business.
#ifndef AWAITDB_SRC_BACKEND_HPP
#define AWAITDB_SRC_BACKEND_HPP

#include "observe.hpp"
#include <awaitdb/database.hpp>

#include <boost/asio/awaitable.hpp>

#include <atomic>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string_view>

namespace awaitdb::detail {

class subscription_state;
class deadline_state;

namespace asio = boost::asio;

/// What a statement gives back: its rows, the number of rows it changed, or one value converted
/// into the caller's slot (query_scalar).
enum class result_mode : std::uint8_t { rows, count, scalar };

/// One statement on its way through a backend: the input, and where the output goes.
struct statement {
  std::string_view sql;
  const param* params = nullptr;
  std::size_t param_count = 0;
  result_mode mode = result_mode::rows;
  /// Made through `database::replica()`: outside a transaction, a standby may run it.
  bool replica = false;
  /// The task's deadline (awaitdb::with_timeout), or null: waits for it end there (57014).
  deadline_state* deadline = nullptr;

  result rows;  // mode == rows; also scalar, from an engine that does not read the value itself
  std::uint64_t affected = 0;  // mode == count; scalar: the rows returned, when `scalar_read`
  /// mode == scalar: where the value goes, and whether the engine has read it (`read_scalar`
  /// and `end_scalar`), with what that failed of (a conversion, no row, too many rows or
  /// columns: not a failure of the statement, which ran to its end).
  const scalar_target* target = nullptr;
  bool scalar_read = false;
  std::exception_ptr scalar_failure;
  /// Which connection ran it, for observers: PostgreSQL, the server process id; SQLite, 0 for
  /// the writer, 1… for the readers.
  std::uint64_t connection = 0;
};

/// Scalar mode, from an engine that holds the statement's first row: converts its value into
/// the caller's slot, keeping a failure in `st` (thrown once the statement has ended).
void read_scalar(statement& st, const row& first) noexcept;
/// Scalar mode, once the statement has ended having returned `rows` rows of `columns` columns:
/// keeps in `st` the error of a result that is not one value (P0002, P0003, 42601), which
/// takes the place of a conversion's. The engine has now read the value (`scalar_read`).
void end_scalar(statement& st, std::size_t rows, std::size_t columns) noexcept;

/// One level of a task's transaction on one backend: the transaction itself (depth 0) or a
/// savepoint inside it. Engines derive from it to hold the pinned connection.
///
/// Levels form a chain through `parent`, which is the innermost level (of any database) that
/// was active when this one began: that chain is the task context, carried by the executor.
class tx_state : public std::enable_shared_from_this<tx_state> {
 public:
  tx_state(backend& owner, std::shared_ptr<tx_state> parent, tx_state* enclosing);
  virtual ~tx_state();

  backend& owner() const noexcept { return owner_; }
  tx_state* parent() const noexcept { return parent_.get(); }
  /// The depth-0 level of this transaction.
  tx_state& top() const noexcept { return *top_; }
  unsigned depth() const noexcept { return depth_; }

  /// Open until committed or rolled back.
  bool is_open() const noexcept { return open_.load(std::memory_order_acquire); }
  void close() noexcept { open_.store(false, std::memory_order_release); }

  /// A statement failed inside the transaction: as on PostgreSQL, the transaction refuses
  /// further statements until a savepoint or the transaction is rolled back. Kept on the top.
  bool aborted() const noexcept { return top_->aborted_.load(std::memory_order_acquire); }
  void set_aborted(bool value) noexcept { top_->aborted_.store(value, std::memory_order_release); }

  /// Actions to run once the outermost transaction commits (awaitdb::after_commit), kept at
  /// the level they were registered in: a savepoint rolled back drops them, one released
  /// passes them to the level it was begun in (`pass_after_commit_up`), and the top level's are
  /// taken once it has committed.
  void add_after_commit(std::function<void()> action);
  void pass_after_commit_up();
  std::vector<std::function<void()>> take_after_commit();

 private:
  backend& owner_;
  tx_state* const enclosing_;  // the level this one was begun in (a savepoint's), or null
  std::shared_ptr<std::atomic<std::size_t>> owner_levels_;  // the owner's count of live levels
  std::shared_ptr<tx_state> parent_;
  tx_state* top_;  // kept alive through parent_ (the enclosing levels are on the chain)
  unsigned depth_;
  std::atomic<bool> open_{true};
  std::atomic<bool> aborted_{false};
  std::mutex after_commit_mutex_;  // (children of the transaction may register concurrently)
  std::vector<std::function<void()>> after_commit_;
};

/// An engine. Implementations live in src/sqlite and src/postgres.
class backend {
 public:
  virtual ~backend() = default;

  /// The observer (database::set_observer): shared with the engine's pool and connections.
  const std::shared_ptr<observer_slot>& observers() const noexcept { return observers_; }

  virtual awaitdb::engine kind() const noexcept = 0;

  /// How many transaction levels on this backend exist now. While it is 0, no task can be
  /// inside a transaction here, so a statement need not look for one in its task context.
  /// (Relaxed is enough: a level in the caller's own context was counted before the caller
  /// could see it, and the count cannot drop to 0 while that level lives.)
  bool has_transactions() const noexcept { return levels_->load(std::memory_order_relaxed) != 0; }

  /// Runs one statement at once if that needs no waiting (SQLite, uncontended); returns
  /// false, having done nothing, when it must be `run` instead.
  virtual bool try_run_inline(statement& st, tx_state* tx) = 0;
  /// Runs one statement; `tx` is the caller's transaction level on this backend, or null.
  /// The caller has checked that `tx` is open and not aborted.
  virtual asio::awaitable<void> run(statement& st, tx_state* tx) = 0;
  /// Runs several statements, each succeeding or failing on its own (into `failures`); inside
  /// a transaction a failure aborts it, and the statements after it fail with 25P02. Throws only
  /// when cancelled. This default runs them one after another (SQLite: inline).
  virtual asio::awaitable<void> run_batch(std::span<statement> sts,
                                          std::span<std::exception_ptr> failures, tx_state* tx);

  /// Sends `st` (its SQL and parameters are read before this completes) and gives its rows one
  /// at a time.
  virtual asio::awaitable<std::unique_ptr<row_source>> open_stream(statement& st, tx_state* tx) = 0;

  /// COPY FROM STDIN / TO STDOUT: `st.sql` (read before this completes; no parameters).
  /// SQLite: 0A000.
  virtual asio::awaitable<std::unique_ptr<copy_sink>> copy_in(statement& st, tx_state* tx) = 0;
  virtual asio::awaitable<std::unique_ptr<copy_source>> copy_out(statement& st, tx_state* tx) = 0;

  /// A subscription to notifications on `channel`.
  virtual asio::awaitable<std::shared_ptr<subscription_state>> listen(std::string channel) = 0;

  /// database::define_function and define_aggregate: present on every connection from the next
  /// statement on.
  virtual void define_function(std::shared_ptr<const sql_function> f) = 0;
  /// database::backup_to; `deadline`: the task's, if any.
  virtual asio::awaitable<void> backup(std::string path, backup_options options,
                                       deadline_state* deadline) = 0;

  /// Begins a transaction (`enclosing` null), run as `options` say, or a savepoint inside
  /// `enclosing` (the caller has checked that `options` are the defaults then). A wait for a
  /// connection or a lock ends at `deadline` (57014), if given.
  virtual asio::awaitable<std::shared_ptr<tx_state>> begin(std::shared_ptr<tx_state> parent,
                                                           tx_state* enclosing,
                                                           const transaction_options& options,
                                                           deadline_state* deadline) = 0;
  /// Commits (or releases the savepoint). On failure the level is rolled back, then it throws.
  virtual asio::awaitable<void> commit(tx_state& tx) = 0;
  /// Rolls back without waiting for the database: SQLite does it inline; PostgreSQL queues it
  /// on the pinned connection, ahead of anything the task sends later.
  virtual void rollback(tx_state& tx) noexcept = 0;

  virtual pool_stats stats() const = 0;
  virtual asio::awaitable<void> close() = 0;

 private:
  friend class tx_state;
  const std::shared_ptr<observer_slot> observers_ = std::make_shared<observer_slot>();
  // Shared with the levels, which may outlive the backend in a task context.
  const std::shared_ptr<std::atomic<std::size_t>> levels_ =
      std::make_shared<std::atomic<std::size_t>>(0);
};

inline tx_state::tx_state(backend& owner, std::shared_ptr<tx_state> parent, tx_state* enclosing)
    : owner_(owner)
    , enclosing_(enclosing)
    , owner_levels_(owner.levels_)
    , parent_(std::move(parent))
    , top_(enclosing ? &enclosing->top() : this)
    , depth_(enclosing ? enclosing->depth_ + 1 : 0) {
  owner_levels_->fetch_add(1, std::memory_order_relaxed);
}

inline tx_state::~tx_state() {
  owner_levels_->fetch_sub(1, std::memory_order_relaxed);
}

inline void tx_state::add_after_commit(std::function<void()> action) {
  std::lock_guard lock(after_commit_mutex_);
  after_commit_.push_back(std::move(action));
}

inline void tx_state::pass_after_commit_up() {
  std::vector<std::function<void()>> mine = take_after_commit();
  if (!enclosing_ || mine.empty()) return;
  std::lock_guard lock(enclosing_->after_commit_mutex_);
  for (auto& action : mine)
    enclosing_->after_commit_.push_back(std::move(action));
}

inline std::vector<std::function<void()>> tx_state::take_after_commit() {
  std::lock_guard lock(after_commit_mutex_);
  return std::move(after_commit_);
}

}  // namespace awaitdb::detail

#endif  // AWAITDB_SRC_BACKEND_HPP
