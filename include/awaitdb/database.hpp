// awaitdb: the database handle, and `open`.
#ifndef AWAITDB_DATABASE_HPP
#define AWAITDB_DATABASE_HPP

#include <awaitdb/backup.hpp>
#include <awaitdb/copy.hpp>
#include <awaitdb/error.hpp>
#include <awaitdb/functions.hpp>
#include <awaitdb/listen.hpp>
#include <awaitdb/migrate.hpp>
#include <awaitdb/result.hpp>
#include <awaitdb/session.hpp>
#include <awaitdb/sql_literal.hpp>
#include <awaitdb/stream.hpp>
#include <awaitdb/value.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <concepts>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace awaitdb {

/// How a transaction runs: `database::transaction(options, fn)`.
struct transaction_options {
  enum class isolation_level : std::uint8_t {
    server_default,  // PostgreSQL: the session's default (READ COMMITTED unless configured)
    read_committed,  // SQLite: every level is SERIALIZABLE, which the standard allows
    repeatable_read,
    serializable,
  };
  isolation_level isolation = isolation_level::server_default;
  /// Statements that write fail with 25006. PostgreSQL: READ ONLY. SQLite: the transaction
  /// takes no write lock (BEGIN DEFERRED; others take the writer's lock at BEGIN IMMEDIATE).
  bool read_only = false;
  /// PostgreSQL: DEFERRABLE (with `serializable` and `read_only`: waits for a snapshot that
  /// cannot fail with 40001). SQLite: ignored.
  bool deferrable = false;
  /// Runs the whole transaction again, up to this many more times, when it fails with 40001
  /// (serialization failure) or 40P01 (deadlock), after a pause that doubles each time (with
  /// jitter). `fn` must be safe to run again. Never after a COMMIT whose outcome is unknown
  /// (08007). Top-level transactions only.
  unsigned retries = 0;
  std::chrono::milliseconds retry_delay{10};  // the first pause
};

/// Connection counts of a database's pool, read at one instant. SQLite has one connection.
struct pool_stats {
  std::size_t size = 0;     // connections open or being opened
  std::size_t idle = 0;     // open and unused
  std::size_t in_use = 0;   // running a statement or pinned by a transaction
  std::size_t waiting = 0;  // tasks waiting for a connection
  /// PostgreSQL: statements sent and awaiting their results, over all connections (more than
  /// `in_use` when statements are pipelined). SQLite: always 0 (statements run inline).
  std::size_t in_flight = 0;
};

class observer;

/// Statements to send together (`database::run(batch)`): on PostgreSQL in one round trip, each
/// with its own Sync, so that each succeeds or fails on its own; on SQLite one after another,
/// inline. Arguments are held as for `query` (temporaries are moved in).
class batch {
 public:
  /// A statement whose rows are wanted (as `query`).
  template <class... Params>
  batch& add(detail::sql_for<Params...> sql, Params&&... params) {
    items_.push_back({detail::make_args(sql, std::forward<Params>(params)...), false});
    return *this;
  }
  /// A statement run for its effect (as `execute`): its result gives the rows affected.
  template <class... Params>
  batch& add_execute(detail::sql_for<Params...> sql, Params&&... params) {
    items_.push_back({detail::make_args(sql, std::forward<Params>(params)...), true});
    return *this;
  }
  std::size_t size() const noexcept { return items_.size(); }
  bool empty() const noexcept { return items_.empty(); }

 private:
  friend class database;
  struct item {
    detail::statement_args args;
    bool count = false;  // add_execute
  };
  std::vector<item> items_;
};

/// The outcome of one statement of a batch.
class batch_result {
 public:
  batch_result(result rows, std::uint64_t affected, std::exception_ptr failure) noexcept
      : rows_(std::move(rows)), affected_(affected), failure_(std::move(failure)) {}
  /// Whether the statement succeeded.
  bool ok() const noexcept { return !failure_; }
  /// Its failure (an `awaitdb::error`, or a cancellation), or null.
  const std::exception_ptr& failure() const noexcept { return failure_; }
  /// Its rows (`add`); rethrows its failure.
  const result& rows() const {
    if (failure_) std::rethrow_exception(failure_);
    return rows_;
  }
  /// The rows it inserted, updated or deleted (`add_execute`); rethrows its failure.
  std::uint64_t affected() const {
    if (failure_) std::rethrow_exception(failure_);
    return affected_;
  }

 private:
  result rows_;
  std::uint64_t affected_ = 0;
  std::exception_ptr failure_;
};

namespace detail {
template <class T>
struct is_awaitable : std::false_type {};
template <class T, class Executor>
struct is_awaitable<boost::asio::awaitable<T, Executor>> : std::true_type {};

/// What `database::transaction(fn, args...)` runs: `fn(args...)` on the held copies (lvalues),
/// returning an awaitable.
template <class F, class... Args>
concept transaction_callable =
    !std::same_as<std::remove_cvref_t<F>, transaction_options> &&
    std::invocable<std::decay_t<F>&, std::decay_t<Args>&...> &&
    is_awaitable<std::invoke_result_t<std::decay_t<F>&, std::decay_t<Args>&...>>::value;

template <class F, class... Args>
using transaction_awaitable = std::invoke_result_t<std::decay_t<F>&, std::decay_t<Args>&...>;

#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13 && !defined(AWAITDB_NO_GCC12_WARNING)
// g++ 12 copies the members of a temporary aggregate or lambda closure written inside a
// `co_await` expression into a temporary of their own and destroys both (fixed in g++ 13). The
// callee cannot undo that, so what could be such a temporary draws a warning: a callable given as
// an rvalue that is not trivially copyable (a lambda capturing a `shared_ptr`, a `database`, a
// `std::string` by value), or an aggregate argument given as an rvalue that is not trivially
// copyable.
template <class F>
inline constexpr bool gcc12_risky_callable =
    !std::is_lvalue_reference_v<F> && !std::is_trivially_copyable_v<std::remove_cvref_t<F>>;
template <class A>
inline constexpr bool gcc12_risky_argument =
    !std::is_lvalue_reference_v<A> && std::is_aggregate_v<std::remove_cvref_t<A>> &&
    !std::is_trivially_copyable_v<std::remove_cvref_t<A>>;
#else
template <class F>
inline constexpr bool gcc12_risky_callable = false;
template <class A>
inline constexpr bool gcc12_risky_argument = false;
#endif
template <class F, class... Args>
inline constexpr bool gcc12_risky_call = gcc12_risky_callable<F> ||
                                         (gcc12_risky_argument<Args> || ...);

/// Where `query_scalar` wants its value: the engine calls `read` with the statement's first row
/// while that row is current (SQLite: before the statement is reset), and `read` converts its
/// one value into `*slot`, a `std::optional` of the asked type.
struct scalar_target {
  void (*read)(const row& first, void* slot);
  void* slot;
};
template <class T>
void read_scalar_into(const row& first, void* slot) {
  static_cast<std::optional<T>*>(slot)->emplace(first.get<T>(0));
}

template <class F, class... Args>
concept transaction_body = transaction_callable<F, Args...> && !gcc12_risky_call<F, Args...>;
template <class F, class... Args>
concept gcc12_risky_transaction_body =
    transaction_callable<F, Args...> && gcc12_risky_call<F, Args...>;
}  // namespace detail

#define AWAITDB_GCC12_CAPTURE_WARNING                                                         \
  "g++ 12 destroys twice the captures of a lambda written inside a co_await expression (and " \
  "the members of an aggregate temporary there): give the state as arguments, "               \
  "db.transaction([](awaitdb::database db, auto keep) -> awaitable<R> {...}, db, keep), or "  \
  "name the lambda first and pass it as an lvalue; see docs/usage.md. Define "                \
  "AWAITDB_NO_GCC12_WARNING to silence this"

namespace detail {
class backend;
class tx_state;

/// The open transaction of one `database::transaction` call (internal).
class transaction_scope {
 public:
  transaction_scope(std::shared_ptr<tx_state> state, boost::asio::any_io_executor executor);
  transaction_scope(transaction_scope&&) noexcept;
  transaction_scope& operator=(transaction_scope&&) = delete;
  /// Rolls back, without waiting, a transaction that was neither committed nor rolled back.
  ~transaction_scope();

  /// The caller's executor, carrying this transaction as task context.
  const boost::asio::any_io_executor& executor() const noexcept { return executor_; }
  boost::asio::awaitable<void> commit();
  /// Rolls back without suspending; the backend finishes any I/O on its own.
  void rollback() noexcept;
  /// Runs the actions registered with `after_commit`, once the outermost transaction has
  /// committed (a savepoint's pass to its enclosing level at `commit`).
  void run_after_commit() noexcept;

 private:
  std::shared_ptr<tx_state> state_;
  std::shared_ptr<tx_state> committed_;  // the outermost level, committed
  boost::asio::any_io_executor executor_;
};
}  // namespace detail

/// A handle to a database: an SQLite file or a PostgreSQL server's pool of connections.
///
/// Cheap to copy; copies share one backend, which lives until the last copy is gone (or until
/// `close`). Every operation is an awaitable run on the calling coroutine's executor.
///
/// Thread safety: a `database` (and its copies) may be used concurrently from several coroutines,
/// on several threads (a multi-threaded `io_context`, a `thread_pool`, strands).
///
/// Task context: inside `transaction(fn)`, every query made through this handle or a copy of it
/// runs in that transaction, on its connection, without passing anything around.
class database {
 public:
  /// A closed handle: every operation throws `awaitdb::error` (08003). Assign from `open`.
  database() = default;
  explicit database(std::shared_ptr<detail::backend> backend) noexcept;

  /// Which engine this database runs on.
  awaitdb::engine engine() const;

  /// A handle whose statements may read from a standby: on PostgreSQL with `replica_reads=on`
  /// in the URL, `query` and `execute` outside a transaction go to a second pool, connected to
  /// a standby among the URL's hosts (the primary when none is up). Inside a transaction they
  /// run on the transaction's connection, as through `*this`; transactions and batches begin on
  /// the primary. Without `replica_reads` (and on SQLite) it is `*this`.
  ///
  /// A standby replays the primary's changes with a delay: a read through it may not see a
  /// write that has just committed. Read what you have just written through `*this`.
  database replica() const;

  /// Runs `sql` with `params` bound to `$1 … $N`, and returns all its rows.
  ///
  /// Parameters are sent apart from the SQL, never spliced into it. Each is one of `bool`,
  /// `std::int16_t`, `std::int32_t`, `std::int64_t`, `float`, `double`, `std::string`,
  /// `std::string_view`, `const char*`, `awaitdb::blob`, `std::optional` of them, or
  /// `std::nullopt`; any other type does not compile.
  ///
  /// Lifetimes: a temporary `std::string` or `blob` (as a parameter, or the SQL itself) is moved
  /// into the operation and lives as long as it, so `co_spawn(ex, db.execute(sql,
  /// std::to_string(i)), detached)` is safe. Anything else that refers to memory (an lvalue
  /// string or blob, a `std::string_view`, a `const char*`) is read in place until the returned
  /// awaitable completes: keep it alive until then (as a `co_await` in the same expression does).
  ///
  /// Inside a transaction of this database, runs on the transaction's connection. On SQLite it
  /// runs inline: it completes without suspending unless a transaction of another task holds the
  /// database. On PostgreSQL it suspends on the socket, never blocking the thread.
  ///
  /// Throws `awaitdb::error` on any database failure (SQL error, wrong parameter count, lost
  /// connection). Cancellation (per-operation, a timer, or the statement timeout): throws
  /// `boost::system::system_error` with `boost::asio::error::operation_aborted`; on PostgreSQL
  /// the statement is also cancelled on the server.
  template <class... Params>
  boost::asio::awaitable<result> query(detail::sql_for<Params...> sql, Params&&... params) const {
    return run_query(detail::make_args(sql, std::forward<Params>(params)...));
  }

  /// Like `query`, for statements run for their effect: returns the number of rows the
  /// statement inserted, updated or deleted (0 for other statements).
  template <class... Params>
  boost::asio::awaitable<std::uint64_t> execute(detail::sql_for<Params...> sql,
                                                Params&&... params) const {
    return run_execute(detail::make_args(sql, std::forward<Params>(params)...));
  }

  /// Like `query`, for a statement that returns exactly one row: returns it (the row keeps the
  /// result alive). No row throws `awaitdb::error` P0002 (no_data_found), several P0003
  /// (too_many_rows).
  template <class... Params>
  boost::asio::awaitable<row> query_one(detail::sql_for<Params...> sql, Params&&... params) const {
    return run_query_one(detail::make_args(sql, std::forward<Params>(params)...));
  }

  /// Like `query_one`, for a statement that returns zero or one row: no row is `std::nullopt`.
  template <class... Params>
  boost::asio::awaitable<std::optional<row>> query_opt(detail::sql_for<Params...> sql,
                                                       Params&&... params) const {
    return run_query_opt(detail::make_args(sql, std::forward<Params>(params)...));
  }

  /// Starts `COPY ... FROM STDIN` (`sql`, text, CSV or binary format, as the statement says):
  /// write the data to the returned writer, then `finish()`. On a connection of its own, or
  /// the transaction's (which then runs nothing else until `finish`). Not a COPY FROM STDIN:
  /// 0A000 (and the statement is not run). SQLite: 0A000.
  boost::asio::awaitable<copy_writer> copy_in(std::string sql) const;
  /// Starts `COPY ... TO STDOUT` (`sql`): read the data from the returned reader. As
  /// `copy_in` otherwise.
  boost::asio::awaitable<copy_reader> copy_out(std::string sql) const;

  /// Listens on `channel` (PostgreSQL LISTEN; the name is taken as it is written, case
  /// included, as `pg_notify` takes it): notifications sent after this completes arrive through
  /// the subscription. Every subscription of a database shares one connection of its own,
  /// outside the pool; when that connection is lost, awaitdb connects again (with the pool's
  /// connect backoff), listens again, and each subscription's next `next()` gives a gap before
  /// anything received after it. Notifications wait in the subscription until read. SQLite:
  /// throws 0A000.
  boost::asio::awaitable<subscription> listen(std::string channel) const;

  /// SQLite: copies the database (a file or in memory) to the file `path` with SQLite's online
  /// backup API, `options.pages_per_step` pages at a time, other tasks running between steps.
  /// The copy is the database as it stands when the last step ends: writes made meanwhile
  /// through this database are in it (a step waits while a transaction holds the writer). The
  /// copy is written beside `path` and renamed to it once complete: cancelled, failed or past
  /// the task's deadline, the partial file is removed and a file already at `path` is left as
  /// it was. PostgreSQL: 0A000 (use pg_dump or pg_basebackup).
  boost::asio::awaitable<void> backup_to(std::string path,
                                         const backup_options& options = {}) const;

  /// Brings the database to the newest version of `set` (see <awaitdb/migrate.hpp>): applies,
  /// in order of version, each migration not yet recorded in `options.table`, each in a
  /// transaction of its own that also records it (version, name, checksum of its script, time).
  /// Several instances may start at once: each migration is applied exactly once (PostgreSQL: a
  /// transaction-scoped advisory lock; SQLite: the write lock), the others wait and then find it
  /// applied. Checks first that every applied migration's script is unchanged (its checksum),
  /// and stops with 55000 before changing anything when one changed, when the database holds a
  /// version the set lacks, or when a migration would apply below the newest applied one (see
  /// `migrate_options`). A failing statement stops the run with its SQLSTATE, its message
  /// naming the migration, the statement and its line; its migration is rolled back, so the
  /// version stays where it was. Waits for the lock as long as another run holds it, within
  /// the task's deadline (`with_timeout`) or cancellation.
  boost::asio::awaitable<migrate_result> migrate(migrations set,
                                                 const migrate_options& options = {}) const;

  /// SQLite: makes `body` callable from SQL as `name(arguments...)` on every connection of this
  /// database (the writer, the readers, stream connections, those opened later), from the next
  /// statement on. Its parameters are read as `row::get` reads values (`std::optional<T>` takes
  /// NULL; a value the parameter cannot hold fails the statement, naming the argument), its
  /// result is written as a statement parameter would be (an empty `std::optional` is NULL).
  /// `body` must not be overloaded (no `auto` parameters): its signature gives the number of
  /// arguments, and a name may be defined once per number of arguments (a later definition
  /// replaces an earlier one). An exception thrown by `body` fails the statement: an
  /// `awaitdb::error` as it is, anything else as 38000 with its `what()`. `body` runs on the
  /// thread running the statement, possibly several at once on different connections.
  /// PostgreSQL: 0A000 (functions live in the server: CREATE FUNCTION).
  template <class F>
  void define_function(std::string name, F body, const function_options& options = {}) const {
    add_function(detail::make_scalar(std::move(name), std::move(body), options));
  }

  /// SQLite: an aggregate function `name(arguments...)`: each group starts from a copy of
  /// `initial`, `step(State&, arguments...)` runs for each of its rows, and `finish(State&)`
  /// gives its result (also for a group of no rows). Arguments, results, errors and
  /// connections as `define_function`. PostgreSQL: 0A000 (CREATE AGGREGATE).
  template <class State, class Step, class Finish>
  void define_aggregate(std::string name, State initial, Step step, Finish finish,
                        const function_options& options = {}) const {
    add_function(detail::make_aggregate(std::move(name), std::move(initial), std::move(step),
                                        std::move(finish), options));
  }

  /// Runs `sql` and gives its rows one at a time (`co_await s.next()`), without holding the
  /// whole result: for results too big to buffer (exports, scans). Parameters and lifetimes
  /// as `query` (the SQL and parameters are sent before this completes).
  ///
  /// PostgreSQL: the statement runs on a connection of its own (outside a transaction) or the
  /// transaction's, in single-row mode; while the reader falls behind, awaitdb stops reading
  /// the socket, so the server waits (at most a few thousand rows are buffered). A statement
  /// sent on a transaction's connection while one of its streams is open waits for the
  /// stream's rows, which are then buffered whole. SQLite: each `next()` is one `sqlite3_step`,
  /// inline; outside a transaction a file database's stream reads on a connection of its own
  /// (a WAL database's snapshot: writers go on); an in-memory database, or a statement that
  /// writes, runs whole first and is then read row by row.
  template <class... Params>
  boost::asio::awaitable<row_stream> stream(detail::sql_for<Params...> sql,
                                            Params&&... params) const {
    return run_stream(detail::make_args(sql, std::forward<Params>(params)...));
  }

  /// The one value of a statement that returns exactly one row of one column, as `T` (as
  /// `row::get<T>` reads it; `std::optional<T>` for a value that may be NULL). Errors as
  /// `query_one`; more than one column throws 42601.
  ///
  /// No `result` is made: the engine hands the row to the conversion while it holds it (SQLite
  /// reads the value straight from the statement), so a point lookup of one value costs less
  /// than `query` and `row::get`.
  template <class T, class... Params>
  boost::asio::awaitable<T> query_scalar(detail::sql_for<Params...> sql, Params&&... params) const {
    return scalar<T>(backend_, replica_, detail::make_args(sql, std::forward<Params>(params)...));
  }

  /// Every row of the result as a `T` (see `row::as`).
  template <class T, class... Params>
  boost::asio::awaitable<std::vector<T>> query_as(detail::sql_for<Params...> sql,
                                                  Params&&... params) const {
    return all_as<T>(run_query(detail::make_args(sql, std::forward<Params>(params)...)));
  }

  /// The one row of the result as a `T` (see `query_one` and `row::as`).
  template <class T, class... Params>
  boost::asio::awaitable<T> query_one_as(detail::sql_for<Params...> sql, Params&&... params) const {
    return one_as<T>(run_query_one(detail::make_args(sql, std::forward<Params>(params)...)));
  }

  /// Zero or one row as a `T` (see `query_opt` and `row::as`).
  template <class T, class... Params>
  boost::asio::awaitable<std::optional<T>> query_opt_as(detail::sql_for<Params...> sql,
                                                        Params&&... params) const {
    return opt_as<T>(run_query_opt(detail::make_args(sql, std::forward<Params>(params)...)));
  }

  /// Runs `fn(args...)`, which returns `boost::asio::awaitable<R>`, inside a transaction, and
  /// returns its value.
  ///
  /// Commits when `fn` returns; rolls back and rethrows when it throws; rolls back when the
  /// operation is cancelled. Inside another transaction of this database (the task context
  /// says so), it is a savepoint instead.
  ///
  /// While `fn` runs, every query through this `database` or a copy of it runs on the
  /// transaction's connection: in `fn`, in functions it calls, in coroutines it starts on
  /// `co_await boost::asio::this_coro::executor` (including the operands of the
  /// `awaitable_operators`). Statements of other tasks never land inside it. A statement that
  /// fails inside the transaction aborts it, as on PostgreSQL, on both engines: later statements
  /// throw 25P02 until the enclosing savepoint or transaction is rolled back.
  ///
  /// `fn` and `args` are moved (rvalues) or copied (lvalues) into the operation and live until
  /// it completes; `fn` is called with the held `args` as lvalues, again on each retry. Its
  /// coroutine runs on the caller's executor (wrapped so that it carries the task context).
  ///
  /// g++ 12 destroys twice the by-value captures of a lambda written inside a `co_await`
  /// expression (a compiler bug, fixed in g++ 13; see docs/usage.md). Give such state as
  /// `args` instead (`db.transaction([](database db, auto keep) -> ..., db, keep)`), or name the
  /// lambda first; built by g++ 12, an rvalue callable that is not trivially copyable draws a
  /// deprecation warning naming this.
  template <class F, class... Args>
  requires detail::transaction_body<F, Args...>
  auto transaction(F&& fn, Args&&... args) const -> detail::transaction_awaitable<F, Args...> {
    return run_transaction(*this, transaction_options{}, std::decay_t<F>(std::forward<F>(fn)),
                           std::decay_t<Args>(std::forward<Args>(args))...);
  }
  template <class F, class... Args>
  requires detail::gcc12_risky_transaction_body<F, Args...>
  [[deprecated(AWAITDB_GCC12_CAPTURE_WARNING)]] auto transaction(F&& fn, Args&&... args) const
      -> detail::transaction_awaitable<F, Args...> {
    return run_transaction(*this, transaction_options{}, std::decay_t<F>(std::forward<F>(fn)),
                           std::decay_t<Args>(std::forward<Args>(args))...);
  }

  /// The same, with an isolation level, read-only, and retries (see `transaction_options`).
  /// Inside another transaction (a savepoint) only the defaults are accepted (25001).
  template <class F, class... Args>
  requires detail::transaction_body<F, Args...>
  auto transaction(transaction_options options, F&& fn, Args&&... args) const
      -> detail::transaction_awaitable<F, Args...> {
    return run_transaction(*this, options, std::decay_t<F>(std::forward<F>(fn)),
                           std::decay_t<Args>(std::forward<Args>(args))...);
  }
  template <class F, class... Args>
  requires detail::gcc12_risky_transaction_body<F, Args...>
  [[deprecated(AWAITDB_GCC12_CAPTURE_WARNING)]] auto transaction(transaction_options options,
                                                                 F&& fn, Args&&... args) const
      -> detail::transaction_awaitable<F, Args...> {
    return run_transaction(*this, options, std::decay_t<F>(std::forward<F>(fn)),
                           std::decay_t<Args>(std::forward<Args>(args))...);
  }

  /// Runs the statements of `b` and returns one outcome per statement, in order. A failing
  /// statement does not stop the others outside a transaction; inside one (where the batch runs
  /// on the transaction's connection) it aborts the transaction, as any failure does, and the
  /// statements after it fail with 25P02. Cancelled, it stops waiting and throws; statements
  /// already sent run to their end on the server (a transaction is rolled back as usual).
  boost::asio::awaitable<std::vector<batch_result>> run(batch b) const;

  /// True when the calling task is inside a transaction of this database.
  boost::asio::awaitable<bool> in_transaction() const;

  /// The pool's connection counts (for SQLite: its one connection).
  pool_stats stats() const;

  /// Installs `o` (see <awaitdb/observer.hpp>) for this database and every copy of it,
  /// replacing the previous one; null removes it. Statements started from now on are reported.
  /// Observers installed stay alive until the database is gone.
  void set_observer(std::shared_ptr<observer> o) const;

  /// Closes the database: idle connections now, busy ones when their statement or transaction
  /// ends. Later operations on any copy throw `awaitdb::error` (08003).
  boost::asio::awaitable<void> close() const;

 private:
  boost::asio::awaitable<result> run_query(detail::statement_args args) const;
  void add_function(std::shared_ptr<const detail::sql_function> f) const;
  boost::asio::awaitable<row> run_query_one(detail::statement_args args) const;
  boost::asio::awaitable<std::optional<row>> run_query_opt(detail::statement_args args) const;

  // The second halves of the typed helpers: coroutines of their own, which hold the awaitable
  // of the statement (not `this`), so a helper outlives the handle it was called on.
  // query_scalar's frame, the only one when the engine runs the statement at once (SQLite,
  // uncontended): it holds the arguments and the slot the engine converts the value into.
  // Otherwise the statement runs in run_scalar's frame, inside this one's lifetime.
  template <class T>
  static boost::asio::awaitable<T> scalar(std::shared_ptr<detail::backend> backend, bool replica,
                                          detail::statement_args args) {
    std::optional<T> value;
    const detail::scalar_target target{&detail::read_scalar_into<T>, &value};
    const auto executor = co_await boost::asio::this_coro::executor;
    if (!scalar_at_once(backend.get(), replica, args, executor, target)) {
      auto statement = run_scalar(std::move(backend), replica, std::move(args), target);
      co_await std::move(statement);
    }
    co_return std::move(*value);
  }
  // Runs a scalar statement at once when the engine can (nobody observes it either); false,
  // having done nothing, when it must go through run_scalar.
  static bool scalar_at_once(detail::backend* backend, bool replica,
                             const detail::statement_args& args,
                             const boost::asio::any_io_executor& executor,
                             const detail::scalar_target& target);
  static boost::asio::awaitable<void> run_scalar(std::shared_ptr<detail::backend> backend,
                                                 bool replica, detail::statement_args args,
                                                 detail::scalar_target target);
  template <class T>
  static boost::asio::awaitable<std::vector<T>> all_as(boost::asio::awaitable<result> all) {
    result r = co_await std::move(all);
    std::vector<T> out;
    out.reserve(r.size());
    for (const row& each : r)
      out.push_back(each.as<T>());
    co_return out;
  }
  template <class T>
  static boost::asio::awaitable<T> one_as(boost::asio::awaitable<row> one) {
    row r = co_await std::move(one);
    co_return r.as<T>();
  }
  template <class T>
  static boost::asio::awaitable<std::optional<T>> opt_as(
      boost::asio::awaitable<std::optional<row>> opt) {
    std::optional<row> r = co_await std::move(opt);
    if (!r) co_return std::nullopt;
    co_return r->as<T>();
  }
  boost::asio::awaitable<std::uint64_t> run_execute(detail::statement_args args) const;
  boost::asio::awaitable<row_stream> run_stream(detail::statement_args args) const;
  // The transaction itself: a coroutine whose frame holds a copy of the handle (so that the
  // operation outlives the handle it was started from), `fn` and `args`.
  template <class F, class... Args>
  static boost::asio::awaitable<typename std::invoke_result_t<F&, Args&...>::value_type>
  run_transaction(database self, transaction_options options, F fn, Args... args) {
    using value_type = typename std::invoke_result_t<F&, Args&...>::value_type;
    // (void: a monostate, so that one path serves both.)
    using held_type = std::conditional_t<std::is_void_v<value_type>, std::monostate, value_type>;
    for (unsigned attempt = 0;; ++attempt) {
      detail::transaction_scope scope = co_await self.begin_transaction(options);
      std::exception_ptr failure;
      std::optional<held_type> value;
      auto body = [&]() -> boost::asio::awaitable<void> {
        if constexpr (std::is_void_v<value_type>) {
          co_await std::invoke(fn, args...);
          value.emplace();
        } else {
          value.emplace(co_await std::invoke(fn, args...));
        }
      };
      try {
        co_await boost::asio::co_spawn(scope.executor(), body, boost::asio::use_awaitable);
        co_await scope.commit();
      } catch (...) {
        failure = std::current_exception();
      }
      if (!failure) {
        scope.run_after_commit();
        if constexpr (std::is_void_v<value_type>)
          co_return;
        else
          co_return std::move(*value);
      }
      scope.rollback();
      const bool again = co_await retry_after(options, attempt, failure);
      if (!again) std::rethrow_exception(failure);
    }
  }
  boost::asio::awaitable<detail::transaction_scope> begin_transaction(
      const transaction_options& options) const;
  /// Whether a transaction that failed with `failure` runs again (after a pause).
  static boost::asio::awaitable<bool> retry_after(const transaction_options& options,
                                                  unsigned attempt, std::exception_ptr failure);
  detail::backend& checked_backend() const;

  std::shared_ptr<detail::backend> backend_;
  bool replica_ = false;
};

/// Registers `action` to run once the outermost transaction that the task running on
/// `executor` is inside (of any database, found through the task context) has committed: after
/// its connection is returned, in registration order, once. It never runs when that transaction
/// rolls back, nor when a savepoint is released (only when the transaction around it commits);
/// a savepoint rolled back drops what was registered inside it; of a transaction retried after
/// a serialization failure, only the attempt that committed runs its actions. An action that
/// throws does not undo the commit: the exception is reported to the database's observer
/// (`observer::after_commit_failed`), never rethrown, and the next actions run.
///
///     auto ex = co_await asio::this_coro::executor;
///     awaitdb::after_commit(ex, [events, id] { events->publish("order-paid", id); });
///
/// (Write the two lines apart: see docs/usage.md on g++ 12.) Throws `awaitdb::error` 25P01
/// outside a transaction.
void after_commit(const boost::asio::any_io_executor& executor, std::function<void()> action);

/// Opens the database named by `url`, on the calling coroutine's executor.
///
/// - `sqlite:path/to/file.db`, `sqlite:/absolute/file.db`, `sqlite::memory:`; options as query
///   parameters, e.g. `sqlite:app.db?mode=ro&busy_timeout=2000` (see docs/usage.md).
/// - `postgresql://user:password@host:port/dbname?...` or `postgres://...`: libpq's URI, passed
///   through, plus awaitdb's own pool and statement options (see docs/usage.md).
///
/// Throws `awaitdb::error`: class 08 when the URL is malformed or the database cannot be opened.
/// The message never contains the password. `url` is copied before this returns.
boost::asio::awaitable<database> open(std::string_view url);

/// The same, with code run for every connection the database opens: a password provider and a
/// session set-up (see `open_options`).
boost::asio::awaitable<database> open(std::string_view url, open_options options);

}  // namespace awaitdb

#endif  // AWAITDB_DATABASE_HPP
