// The engine-neutral half of `database`: task context, transaction bookkeeping, dispatch.
#include "backend.hpp"
#include "deadline.hpp"
#include "listen.hpp"
#include "sqlstates.hpp"
#include "task_context.hpp"
#include "util/backoff.hpp"
#include <awaitdb/database.hpp>

#include <boost/asio/error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/system/system_error.hpp>

#include <algorithm>
#include <memory>
#include <optional>
#include <random>

namespace awaitdb {

namespace asio = boost::asio;
using detail::tx_state;

namespace {

void check_usable(const tx_state& tx) {
  if (!tx.is_open())
    throw error(sqlstate::no_active_transaction,
                "this task's transaction has already ended; a coroutine started inside a "
                "transaction must finish before it does");
  if (tx.aborted())
    throw error(sqlstate::in_failed_transaction,
                "current transaction is aborted, statements are refused until the end of the "
                "transaction or savepoint");
}

detail::backend& usable(detail::backend* b) {
  if (!b) throw error(sqlstate::connection_does_not_exist, "the database is not open");
  return *b;
}

// What every statement (a query, a batch, a stream, a COPY) finds in its task context before it
// starts: its transaction on this engine, refused when ended or aborted, and its deadline,
// refused when passed (the statement never reaches the server then).
struct statement_context {
  tx_state* tx = nullptr;
  detail::deadline_state* deadline = nullptr;

  [[gnu::hot]] static statement_context of(const detail::backend& b,
                                           const asio::any_io_executor& ex) {
    const detail::task_view task = detail::task_of(ex);
    statement_context c{detail::transaction_of(task.innermost, b), task.deadline};
    if (c.tx) check_usable(*c.tx);
    if (c.deadline && c.deadline->passed()) throw c.deadline->timed_out();
    return c;
  }
  /// The statement failed: inside a transaction that aborts it (PostgreSQL's rule, on both
  /// engines).
  void failed() const noexcept {
    if (tx) tx->set_aborted(true);
  }
};

// What the backend gets of a statement (views of `args`, which the caller keeps).
detail::statement statement_of(const detail::statement_args& args, bool replica) {
  detail::statement st;
  st.replica = replica;
  st.sql = args.sql;
  st.params = args.params.data();
  st.param_count = args.params.size();
  return st;
}

error no_row() {
  return error(sqlstate::no_data_found, "the query returned no row; one was expected");
}

error too_many_rows(std::size_t rows, const char* expected) {
  return error(sqlstate::too_many_rows,
               "the query returned " + std::to_string(rows) + " rows; " + expected);
}

template <class T>
constexpr detail::result_mode mode_of() {
  if constexpr (std::is_same_v<T, result>)
    return detail::result_mode::rows;
  else if constexpr (std::is_void_v<T>)
    return detail::result_mode::scalar;
  else
    return detail::result_mode::count;
}

// What a statement gives its awaiter: its rows, the number of rows it changed, or (scalar) its
// value, already in the caller's slot unless it failed to be one.
template <class T>
T outcome_of(detail::statement& st) {
  if constexpr (std::is_same_v<T, result>) {
    return std::move(st.rows);
  } else if constexpr (std::is_void_v<T>) {
    if (!st.scalar_read) {  // (an engine that made a result: PostgreSQL)
      if (!st.rows.empty() && st.rows.column_count() == 1) detail::read_scalar(st, st.rows[0]);
      detail::end_scalar(st, st.rows.size(), st.rows.column_count());
    }
    if (st.scalar_failure) [[unlikely]]
      std::rethrow_exception(st.scalar_failure);
  } else {
    return st.affected;
  }
}

// A statement watched by an observer: a frame of its own, so that an unwatched statement's
// frame holds no watch (the common case costs one atomic load).
template <class T>
asio::awaitable<T> run_watched(detail::backend& b, detail::statement& st,
                               const statement_context& context, awaitdb::observer& watcher,
                               std::string_view label) {
  detail::statement_watch watch;
  watch.start(watcher, b.kind(), st, context.tx != nullptr, label);
  try {
    if (!b.try_run_inline(st, context.tx)) co_await b.run(st, context.tx);
  } catch (...) {
    context.failed();
    watch.failed(st, std::current_exception());
    throw;
  }
  watch.finished(st);
  co_return outcome_of<T>(st);
}

// A statement's only coroutine frame when nobody watches (SQLite runs inline within it), with
// its arguments and a reference to its engine in it: a statement outlives the handle it was
// made from.
template <class T>
[[gnu::hot]] asio::awaitable<T> run_statement(std::shared_ptr<detail::backend> backend,
                                              detail::statement_args args, bool replica,
                                              detail::scalar_target target = {}) {
  detail::backend& b = usable(backend.get());
  detail::statement st = statement_of(args, replica);
  st.mode = mode_of<T>();
  st.target = &target;  // (a copy in this frame)
  const asio::any_io_executor ex = co_await asio::this_coro::executor;
  const statement_context context = statement_context::of(b, ex);
  st.deadline = context.deadline;
  // Observed only when an observer is installed: otherwise one atomic load.
  if (awaitdb::observer* const watcher = b.observers()->get()) [[unlikely]]
    co_return co_await run_watched<T>(b, st, context, *watcher, detail::task_label(ex));
  try {
    if (!b.try_run_inline(st, context.tx)) co_await b.run(st, context.tx);
  } catch (...) {
    context.failed();
    throw;
  }
  co_return outcome_of<T>(st);
}

}  // namespace

database::database(std::shared_ptr<detail::backend> backend) noexcept
    : backend_(std::move(backend)) {}

detail::backend& database::checked_backend() const {
  return usable(backend_.get());
}

awaitdb::engine database::engine() const {
  return checked_backend().kind();
}

database database::replica() const {
  database reads = *this;
  reads.replica_ = true;
  return reads;
}

// Not coroutines themselves: the frame is run_statement's (a closed handle still fails when
// the statement is awaited, not when it is created).
[[gnu::hot]] asio::awaitable<result> database::run_query(detail::statement_args args) const {
  return run_statement<result>(backend_, std::move(args), replica_);
}

[[gnu::hot]] asio::awaitable<std::uint64_t> database::run_execute(
    detail::statement_args args) const {
  return run_statement<std::uint64_t>(backend_, std::move(args), replica_);
}

namespace {

// A stream's or a COPY's watch, when someone watches (made only then).
std::unique_ptr<detail::stream_watch> watch_of(detail::backend& b, const detail::statement& st,
                                               const tx_state* tx,
                                               const asio::any_io_executor& ex) {
  awaitdb::observer* const watcher = b.observers()->get();
  if (!watcher) [[likely]]
    return nullptr;
  return std::make_unique<detail::stream_watch>(*watcher, b.kind(), st, tx != nullptr,
                                                detail::task_label(ex));
}

asio::awaitable<row_stream> open_stream(std::shared_ptr<detail::backend> backend,
                                        detail::statement_args args, bool replica) {
  detail::backend& b = usable(backend.get());
  detail::statement st = statement_of(args, replica);
  const asio::any_io_executor ex = co_await asio::this_coro::executor;
  const statement_context context = statement_context::of(b, ex);
  tx_state* const tx = context.tx;
  st.deadline = context.deadline;
  std::unique_ptr<detail::stream_watch> watch = watch_of(b, st, tx, ex);
  try {
    std::unique_ptr<detail::row_source> rows = co_await b.open_stream(st, tx);
    if (!watch) [[likely]]
      co_return row_stream(std::move(rows));
    watch->opened(st.connection);
    co_return row_stream(detail::watched_rows(std::move(rows), std::move(watch)));
  } catch (...) {
    context.failed();
    if (watch) [[unlikely]]
      watch->failed(std::current_exception());
    throw;
  }
}

// A COPY begun by the engine's `open` (copy_in or copy_out): `Front` over the engine's end,
// watched when someone watches. (Its frame holds the SQL and the engine.)
template <class Front, class Back>
asio::awaitable<Front> open_copy(
    std::shared_ptr<detail::backend> backend, std::string sql,
    asio::awaitable<std::unique_ptr<Back>> (detail::backend::*open)(detail::statement&, tx_state*),
    std::unique_ptr<Back> (*watched)(std::unique_ptr<Back>,
                                     std::unique_ptr<detail::stream_watch>)) {
  detail::backend& engine = usable(backend.get());
  const asio::any_io_executor ex = co_await asio::this_coro::executor;
  const statement_context context = statement_context::of(engine, ex);
  tx_state* const tx = context.tx;
  detail::statement st;
  st.sql = sql;
  st.deadline = context.deadline;
  std::unique_ptr<detail::stream_watch> watch = watch_of(engine, st, tx, ex);
  try {
    std::unique_ptr<Back> end = co_await (engine.*open)(st, tx);
    if (!watch) [[likely]]
      co_return Front(std::move(end));
    watch->opened(st.connection);
    co_return Front(watched(std::move(end), std::move(watch)));
  } catch (...) {
    context.failed();  // (a COPY that fails to start aborts the transaction, as any statement)
    if (watch) [[unlikely]]
      watch->failed(std::current_exception());
    throw;
  }
}

}  // namespace

asio::awaitable<copy_writer> database::copy_in(std::string sql) const {
  return open_copy<copy_writer>(backend_, std::move(sql), &detail::backend::copy_in,
                                &detail::watched_copy_in);
}

asio::awaitable<copy_reader> database::copy_out(std::string sql) const {
  return open_copy<copy_reader>(backend_, std::move(sql), &detail::backend::copy_out,
                                &detail::watched_copy_out);
}

asio::awaitable<subscription> database::listen(std::string channel) const {
  std::shared_ptr<detail::backend> b = backend_;  // (the frame keeps the engine alive)
  co_return subscription(co_await usable(b.get()).listen(std::move(channel)));
}

namespace {

// (Options by value in the frame: `backup_to` is a plain function that copies them here.)
asio::awaitable<void> run_backup(std::shared_ptr<detail::backend> backend, std::string path,
                                 backup_options options) {
  detail::backend& b = usable(backend.get());
  const auto ex = co_await asio::this_coro::executor;
  detail::deadline_state* deadline = detail::task_deadline(ex);
  if (deadline && deadline->passed()) throw deadline->timed_out();
  co_await b.backup(std::move(path), std::move(options), deadline);
}

}  // namespace

asio::awaitable<void> database::backup_to(std::string path, const backup_options& options) const {
  return run_backup(backend_, std::move(path), options);
}

void database::add_function(std::shared_ptr<const detail::sql_function> f) const {
  checked_backend().define_function(std::move(f));
}

asio::awaitable<row_stream> database::run_stream(detail::statement_args args) const {
  return open_stream(backend_, std::move(args), replica_);
}

namespace {

asio::awaitable<row> exactly_one(asio::awaitable<result> all) {
  result r = co_await std::move(all);
  if (r.empty()) throw no_row();
  if (r.size() > 1) throw too_many_rows(r.size(), "one was expected");
  co_return r[0];
}

asio::awaitable<std::optional<row>> at_most_one(asio::awaitable<result> all) {
  result r = co_await std::move(all);
  if (r.size() > 1) throw too_many_rows(r.size(), "at most one was expected");
  if (r.empty()) co_return std::nullopt;
  co_return r[0];
}

}  // namespace

void detail::read_scalar(statement& st, const row& first) noexcept {
  try {
    st.target->read(first, st.target->slot);
  } catch (...) {
    st.scalar_failure = std::current_exception();
  }
}

void detail::end_scalar(statement& st, std::size_t rows, std::size_t columns) noexcept {
  st.scalar_read = true;
  st.affected = rows;
  if (rows == 1 && columns == 1) [[likely]]
    return;
  try {
    st.scalar_failure = std::make_exception_ptr(
        rows == 0  ? no_row()
        : rows > 1 ? too_many_rows(rows, "one was expected")
                   : error(sqlstate::syntax_error, "the query returned " + std::to_string(columns) +
                                                       " columns; a scalar query returns one"));
  } catch (...) {  // (no memory for the message)
    st.scalar_failure = std::current_exception();
  }
}

[[gnu::hot]] bool database::scalar_at_once(detail::backend* backend, bool replica,
                                           const detail::statement_args& args,
                                           const asio::any_io_executor& executor,
                                           const detail::scalar_target& target) {
  detail::backend& b = usable(backend);
  if (b.observers()->get()) [[unlikely]]
    return false;
  const statement_context context = statement_context::of(b, executor);
  detail::statement st = statement_of(args, replica);
  st.mode = detail::result_mode::scalar;
  st.target = &target;
  st.deadline = context.deadline;
  try {
    if (!b.try_run_inline(st, context.tx)) return false;
  } catch (...) {
    context.failed();
    throw;
  }
  outcome_of<void>(st);
  return true;
}

[[gnu::hot]] asio::awaitable<void> database::run_scalar(std::shared_ptr<detail::backend> backend,
                                                        bool replica, detail::statement_args args,
                                                        detail::scalar_target target) {
  return run_statement<void>(std::move(backend), std::move(args), replica, target);
}

[[gnu::hot]] asio::awaitable<row> database::run_query_one(detail::statement_args args) const {
  return exactly_one(run_statement<result>(backend_, std::move(args), replica_));
}

[[gnu::hot]] asio::awaitable<std::optional<row>> database::run_query_opt(
    detail::statement_args args) const {
  return at_most_one(run_statement<result>(backend_, std::move(args), replica_));
}

asio::awaitable<detail::transaction_scope> database::begin_transaction(
    const transaction_options& options) const {
  detail::backend& b = checked_backend();
  auto ex = co_await asio::this_coro::executor;
  const statement_context context = statement_context::of(b, ex);
  tx_state* const enclosing = context.tx;
  if (enclosing) {
    const transaction_options defaults;
    if (options.isolation != defaults.isolation || options.read_only || options.deferrable ||
        options.retries > 0)
      throw error(detail::code::active_sql_transaction,
                  "transaction options apply to a top-level transaction; this one is nested in "
                  "another (a savepoint), which runs as its enclosing transaction does");
  }
  tx_state* innermost = detail::innermost_transaction(ex);
  std::shared_ptr<tx_state> parent = innermost ? innermost->shared_from_this() : nullptr;
  std::shared_ptr<tx_state> level =
      co_await b.begin(std::move(parent), enclosing, options, context.deadline);
  asio::any_io_executor inner = detail::with_transaction(ex, level);
  co_return detail::transaction_scope(std::move(level), std::move(inner));
}

asio::awaitable<bool> database::retry_after(const transaction_options& options, unsigned attempt,
                                            std::exception_ptr failure) {
  if (attempt >= options.retries || !failure) co_return false;
  try {
    std::rethrow_exception(failure);
  } catch (const error& e) {
    if (e.sqlstate() != detail::code::serialization_failure &&
        e.sqlstate() != detail::code::deadlock_detected)
      co_return false;
  } catch (...) {
    co_return false;
  }
  // Doubling pauses, each drawn between half and all of its step (two transactions that
  // collided should not collide again in step), at most a second.
  const auto step =
      detail::backoff_pause(options.retry_delay, std::chrono::seconds(1), attempt + 1);
  thread_local std::minstd_rand random(std::random_device{}());
  const auto half = step / 2;
  const auto pause =
      half + std::chrono::milliseconds(half.count() > 0 ? random() % (half.count() + 1) : 0);
  asio::steady_timer timer(co_await asio::this_coro::executor, pause);
  co_await timer.async_wait(asio::use_awaitable);
  co_return true;
}

namespace {

// A batch's only coroutine frame, holding its arguments and its engine.
// (`held` owns the arguments the statements view; moving it moves no element.)
asio::awaitable<std::vector<batch_result>> run_batch_statements(
    std::shared_ptr<detail::backend> backend, batch held, std::vector<detail::statement> sts) {
  (void)held;
  std::vector<std::exception_ptr> failures(sts.size());
  detail::backend& b = usable(backend.get());
  const asio::any_io_executor ex = co_await asio::this_coro::executor;
  const statement_context context = statement_context::of(b, ex);
  tx_state* const tx = context.tx;
  for (detail::statement& st : sts)
    st.deadline = context.deadline;
  std::vector<detail::statement_watch> watches;
  awaitdb::observer* const watcher = b.observers()->get();
  if (watcher) [[unlikely]] {
    watches.resize(sts.size());
    for (std::size_t i = 0; i < sts.size(); ++i)
      watches[i].start(*watcher, b.kind(), sts[i], tx != nullptr, detail::task_label(ex));
  }
  try {
    if (!sts.empty()) co_await b.run_batch(sts, failures, tx);
  } catch (...) {
    // Cancelled: as for one statement, the transaction is aborted; observers see the end.
    context.failed();
    if (watcher) [[unlikely]] {
      for (std::size_t i = 0; i < sts.size(); ++i)
        watches[i].failed(sts[i], failures[i] ? failures[i] : std::current_exception());
    }
    throw;
  }
  std::vector<batch_result> out;
  out.reserve(sts.size());
  for (std::size_t i = 0; i < sts.size(); ++i) {
    if (failures[i] && tx) tx->set_aborted(true);
    if (watcher) [[unlikely]] {
      if (failures[i])
        watches[i].failed(sts[i], failures[i]);
      else
        watches[i].finished(sts[i]);
    }
    out.emplace_back(std::move(sts[i].rows), sts[i].affected, failures[i]);
  }
  co_return out;
}

}  // namespace

// Not a coroutine itself (a batch outlives the handle it was made from, as a statement does).
asio::awaitable<std::vector<batch_result>> database::run(batch b) const {
  std::vector<detail::statement> sts(b.items_.size());
  for (std::size_t i = 0; i < sts.size(); ++i) {
    const batch::item& it = b.items_[i];
    sts[i].sql = it.args.sql;
    sts[i].params = it.args.params.data();
    sts[i].param_count = it.args.params.size();
    sts[i].mode = it.count ? detail::result_mode::count : detail::result_mode::rows;
  }
  return run_batch_statements(backend_, std::move(b), std::move(sts));
}

void after_commit(const asio::any_io_executor& executor, std::function<void()> action) {
  tx_state* level = detail::innermost_transaction(executor);
  if (!level || !level->is_open())
    throw error(sqlstate::no_active_transaction,
                "after_commit is for a task inside a transaction: this one is in none");
  level->add_after_commit(std::move(action));
}

namespace detail {

asio::awaitable<void> backend::run_batch(std::span<statement> sts,
                                         std::span<std::exception_ptr> failures, tx_state* tx) {
  for (std::size_t i = 0; i < sts.size(); ++i) {
    try {
      if (tx) check_usable(*tx);
      if (!try_run_inline(sts[i], tx)) co_await run(sts[i], tx);
    } catch (...) {
      failures[i] = std::current_exception();
    }
    if (failures[i] && detail::is_cancellation(failures[i])) std::rethrow_exception(failures[i]);
    if (failures[i] && tx) tx->set_aborted(true);
  }
}

}  // namespace detail

asio::awaitable<bool> database::in_transaction() const {
  detail::backend& b = checked_backend();
  auto ex = co_await asio::this_coro::executor;
  tx_state* tx = detail::find_transaction(ex, b);
  co_return tx && tx->is_open();
}

pool_stats database::stats() const {
  return checked_backend().stats();
}

void database::set_observer(std::shared_ptr<observer> o) const {
  checked_backend().observers()->set(std::move(o));
}

asio::awaitable<void> database::close() const {
  if (backend_) co_await backend_->close();
}

namespace detail {

transaction_scope::transaction_scope(std::shared_ptr<tx_state> state,
                                     asio::any_io_executor executor)
    : state_(std::move(state)), executor_(std::move(executor)) {}

transaction_scope::transaction_scope(transaction_scope&& other) noexcept
    : state_(std::move(other.state_))
    , committed_(std::move(other.committed_))
    , executor_(std::move(other.executor_)) {}

transaction_scope::~transaction_scope() {
  rollback();
}

asio::awaitable<void> transaction_scope::commit() {
  std::shared_ptr<tx_state> state = std::move(state_);
  if (state->aborted()) {
    state->owner().rollback(*state);
    state->close();
    throw error(sqlstate::in_failed_transaction,
                state->depth() == 0
                    ? "the transaction was aborted by a failed statement and has been rolled back"
                    : "the savepoint was aborted by a failed statement and has been rolled back");
  }
  try {
    co_await state->owner().commit(*state);
  } catch (...) {
    state->close();
    throw;
  }
  state->close();
  if (state->depth() > 0)
    state->pass_after_commit_up();  // a savepoint: they wait for the transaction around it
  else
    committed_ = std::move(state);
}

void transaction_scope::run_after_commit() noexcept {
  if (!committed_) return;
  const std::shared_ptr<tx_state> state = std::move(committed_);
  for (std::function<void()>& action : state->take_after_commit()) {
    try {
      action();
    } catch (...) {
      if (awaitdb::observer* o = state->owner().observers()->get()) {
        after_commit_event e;
        e.engine = state->owner().kind();
        e.label = task_label(executor_);
        e.failure = std::current_exception();
        o->after_commit_failed(e);
      }
    }
  }
}

void transaction_scope::rollback() noexcept {
  if (!state_) return;
  std::shared_ptr<tx_state> state = std::move(state_);
  state->owner().rollback(*state);
  state->close();
  // Rolling back a savepoint clears the failure it contained, as ROLLBACK TO SAVEPOINT does.
  if (state->depth() > 0) state->set_aborted(false);
}

}  // namespace detail
}  // namespace awaitdb
