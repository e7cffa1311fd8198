// The PostgreSQL engine: statements routed to a pooled connection (pipelined with other tasks'
// statements, or on one of their own) or to the connection their transaction pinned.
#include "pg_backend.hpp"

#include "../placeholders.hpp"
#include "../pool/pool.hpp"
#include "../sqlstates.hpp"
#include "pg_connection.hpp"
#include "pg_listener.hpp"
#include "pg_result.hpp"
#include <awaitdb/database.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/error.hpp>
#include <boost/system/system_error.hpp>

#include <span>
#include <vector>

namespace awaitdb::detail {
namespace {

// How long `close()` lets work in flight finish before closing connections under it (and
// cancelling their statements on the server), and how long it then waits for those cancels.
constexpr std::chrono::milliseconds close_grace{500};
constexpr std::chrono::milliseconds cancel_drain{300};

// A statement that failed for a reason not its own is sent once more (see pg_verdict).
bool sent_again(pg_verdict v) noexcept {
  return v == pg_verdict::resend || v == pg_verdict::resend_elsewhere;
}

class pg_tx final : public tx_state {
 public:
  pg_tx(backend& owner, std::shared_ptr<tx_state> parent, tx_state* enclosing,
        std::shared_ptr<pg_connection> connection, pool_lease borrowed)
      : tx_state(owner, std::move(parent), enclosing)
      , conn(std::move(connection))
      , lease(std::move(borrowed)) {}

  std::string savepoint_name() const { return "awaitdb_sp_" + std::to_string(depth()); }
  pg_tx& top_level() const noexcept { return static_cast<pg_tx&>(top()); }

  // The pinned connection. Kept by every level (a coroutine that outlives the transaction
  // still finds it, and is refused by `book`), while the pool's lease ends with the transaction.
  const std::shared_ptr<pg_connection> conn;
  pool_lease lease;  // the top level's, until commit or rollback
  pg_tx_book book;   // the top level's; used under the connection's lock
};

pg_connection& as_pg(pooled_connection& c) {
  return static_cast<pg_connection&>(c);
}

// A streamed statement's rows, each a result of one row (libpq's single-row mode). Holds the
// connection (its own lease outside a transaction) until the last row or until destroyed.
class pg_row_source final : public row_source {
 public:
  pg_row_source(std::shared_ptr<pg_connection> conn, pool_lease lease, pg_group_ptr g)
      : conn_(std::move(conn)), lease_(std::move(lease)), group_(std::move(g)) {}
  ~pg_row_source() override {
    if (group_) conn_->end_stream(group_);
  }

  asio::awaitable<std::optional<row>> next(deadline_state* deadline) override {
    if (buffered_) {
      // The rows came as one result (single-row mode was refused): read from it.
      if (rest_next_ < rest_.size()) co_return rest_[rest_next_++];
      co_return std::nullopt;
    }
    if (!group_) co_return std::nullopt;
    pg_result_ptr one = co_await conn_->next_row(group_, deadline);
    if (one) co_return row(std::make_shared<pg_result>(std::move(one)), 0);
    pg_group_ptr g = std::move(group_);
    lease_.reset();
    if (g->failure) throw_failure(*g);
    if (g->rows && PQntuples(g->rows.get()) > 0) {
      rest_ = result(std::make_shared<pg_result>(std::move(g->rows)));
      buffered_ = true;
      co_return co_await next(deadline);
    }
    co_return std::nullopt;
  }

 private:
  std::shared_ptr<pg_connection> conn_;
  pool_lease lease_;
  pg_group_ptr group_;  // null once complete
  bool buffered_ = false;
  result rest_;
  std::size_t rest_next_ = 0;
};

// What both ends of a COPY hold: the connection (its own lease outside a transaction) until
// the COPY is over; left before that, the connection is closed.
class pg_copy_hold {
 public:
  pg_copy_hold(std::shared_ptr<pg_connection> conn, pool_lease lease)
      : conn_(std::move(conn)), lease_(std::move(lease)) {}
  pg_copy_hold(const pg_copy_hold&) = delete;
  pg_copy_hold& operator=(const pg_copy_hold&) = delete;
  ~pg_copy_hold() {
    if (!over_) conn_->copy_abandon();
  }

  pg_connection& conn() const noexcept { return *conn_; }
  /// Runs one step of the COPY: the server's own failure ends it cleanly (the connection is
  /// back in pipeline mode, or lost already); a cancellation leaves it to be abandoned.
  template <class T>
  asio::awaitable<T> step(asio::awaitable<T> op) {
    try {
      co_return co_await std::move(op);
    } catch (const error&) {
      over_ = true;
      throw;
    }
  }
  void over() noexcept { over_ = true; }

 private:
  std::shared_ptr<pg_connection> conn_;
  pool_lease lease_;
  bool over_ = false;
};

class pg_copy_sink final : public copy_sink {
 public:
  pg_copy_sink(std::shared_ptr<pg_connection> conn, pool_lease lease)
      : hold_(std::move(conn), std::move(lease)) {}
  asio::awaitable<void> write(std::string_view data) override {
    co_await hold_.conn().copy_write(data);
  }
  asio::awaitable<std::uint64_t> finish() override {
    const std::uint64_t rows = co_await hold_.step(hold_.conn().copy_end());
    hold_.over();
    co_return rows;
  }

 private:
  pg_copy_hold hold_;
};

class pg_copy_source final : public copy_source {
 public:
  pg_copy_source(std::shared_ptr<pg_connection> conn, pool_lease lease)
      : hold_(std::move(conn), std::move(lease)) {}
  asio::awaitable<std::optional<std::string>> next() override {
    std::optional<std::string> piece = co_await hold_.step(hold_.conn().copy_read());
    if (!piece) hold_.over();
    co_return piece;
  }

 private:
  pg_copy_hold hold_;
};

class pg_backend final : public backend {
 public:
  pg_backend(asio::any_io_executor executor, const postgres_options& options)
      : shared_(std::make_shared<pg_shared>(executor, options, true, observers()))
      , pool_(make_pool(executor, shared_))
      , executor_(executor) {
    if (options.replica_reads) {
      postgres_options reads = options;
      reads.session_attrs = "prefer-standby";
      replica_shared_ = std::make_shared<pg_shared>(executor, std::move(reads), true, observers());
      replica_pool_ = make_pool(executor, replica_shared_);
    }
  }

  std::shared_ptr<connection_pool> make_pool(const asio::any_io_executor& executor,
                                             const std::shared_ptr<pg_shared>& shared) {
    const postgres_options& options = shared->options;
    pool_options p;
    p.max_size = options.pool_max_size;
    p.acquire_timeout = options.pool_acquire_timeout;
    p.pipeline_depth = options.pipeline_depth;
    p.stall_threshold = options.stall_threshold;
    p.min_size = options.pool_min_size;
    p.max_lifetime = options.pool_max_lifetime;
    p.idle_timeout = options.pool_idle_timeout;
    p.connect_backoff = options.connect_backoff;
    p.connect_backoff_max = options.connect_backoff_max;
    p.connect_probation = options.connect_probation;
    auto open = [executor, shared]() -> asio::awaitable<std::shared_ptr<pooled_connection>> {
      co_return co_await pg_connection::connect(executor, shared);
    };
    return std::make_shared<connection_pool>(
        executor, p, std::move(open), &pool_clock::now,
        pool_reporting{observers(), awaitdb::engine::postgres});
  }

  ~pg_backend() override {
    // Without waiting: idle connections close now, busy ones when they are quiet.
    pool_->close_now();
    shared_->canceller->close_now();
    if (replica_pool_) {
      replica_pool_->close_now();
      replica_shared_->canceller->close_now();
    }
    if (auto l = listener()) l->close();
  }

  asio::awaitable<std::unique_ptr<copy_sink>> copy_in(statement& st, tx_state* tx) override {
    const std::string sql(st.sql);
    auto [conn, lease] = co_await copy_connection(tx);
    st.connection = static_cast<std::uint64_t>(conn->backend_pid());
    co_await conn->copy_start(sql, true);
    co_return std::make_unique<pg_copy_sink>(std::move(conn), std::move(lease));
  }

  asio::awaitable<std::unique_ptr<copy_source>> copy_out(statement& st, tx_state* tx) override {
    const std::string sql(st.sql);
    auto [conn, lease] = co_await copy_connection(tx);
    st.connection = static_cast<std::uint64_t>(conn->backend_pid());
    co_await conn->copy_start(sql, false);
    co_return std::make_unique<pg_copy_source>(std::move(conn), std::move(lease));
  }

  asio::awaitable<std::shared_ptr<subscription_state>> listen(std::string channel) override {
    if (shared_->options.pgbouncer)
      throw error(sqlstate::feature_not_supported,
                  "LISTEN needs a session of its own, which a transaction pooler (pgbouncer=on) "
                  "does not give: listen through a URL to the server itself");
    std::shared_ptr<pg_listener> l;
    {
      std::lock_guard lock(listener_mutex_);
      if (!listener_) listener_ = std::make_shared<pg_listener>(executor_, shared_->options);
      l = listener_;
    }
    co_return co_await l->subscribe(std::move(channel));
  }

  awaitdb::engine kind() const noexcept override { return awaitdb::engine::postgres; }

  bool try_run_inline(statement&, tx_state*) override { return false; }

  asio::awaitable<void> run(statement& st, tx_state* tx) override {
    if (tx) {
      pg_tx& top = static_cast<pg_tx&>(*tx).top_level();
      pg_connection::request r = request_for(st);
      r.tx = &top.book;
      st.connection = static_cast<std::uint64_t>(top.conn->backend_pid());
      pg_connection::exchange x(*top.conn, r, st.deadline);
      x.settle(co_await x.wait());
      x.deliver(st);
      co_return;
    }
    // Transaction control sent directly (not through db.transaction) gets a connection of its
    // own: on a shared one it would pull other tasks' statements into its transaction.
    const bool shared = shared_->options.pipeline && !is_transaction_control(st.sql);
    connection_pool& pool = st.replica && replica_pool_ ? *replica_pool_ : *pool_;
    for (int attempt = 0;; ++attempt) {
      // (Not a conditional expression around co_await: GCC 12 destroys its result twice.)
      pool_lease lease;
      if (shared) lease = pool.try_acquire_shared();
      if (!lease && shared) lease = co_await pool.acquire_shared(st.deadline);
      if (!lease) lease = co_await pool.acquire_exclusive(st.deadline);
      pg_connection& conn = as_pg(*lease.get());
      st.connection = static_cast<std::uint64_t>(conn.backend_pid());
      pg_connection::request r = request_for(st);
      r.retryable = true;
      std::optional<pg_connection::exchange> x;
      try {
        x.emplace(conn, r, st.deadline);
      } catch (const error& e) {
        // Lost between the pool's look and the send: nothing was sent; once more elsewhere.
        if (attempt == 0 && e.is_connection_error() && conn.lost()) continue;
        throw;
      }
      x->settle(co_await x->wait());
      // A statement that failed for a reason not its own (a plan made stale by a migration, a
      // cancel meant for another statement, a connection lost before the server answered) is
      // sent once more, outside any transaction, where that changes no meaning.
      if (attempt == 0 && sent_again(x->group().verdict)) continue;
      x->deliver(st);
      co_return;
    }
  }

  // All sent before any is awaited: one round trip, each statement with its own Sync.
  asio::awaitable<void> run_batch(std::span<statement> sts, std::span<std::exception_ptr> failures,
                                  tx_state* tx) override {
    pg_tx* top = tx ? &static_cast<pg_tx&>(*tx).top_level() : nullptr;
    pool_lease lease;
    std::shared_ptr<pg_connection> conn;
    if (top) {
      conn = top->conn;
    } else {
      bool shared = shared_->options.pipeline;
      for (const statement& st : sts)
        if (is_transaction_control(st.sql)) shared = false;
      if (shared) lease = pool_->try_acquire_shared();
      deadline_state* const deadline = sts.front().deadline;  // (never empty: see database::run)
      if (!lease && shared) lease = co_await pool_->acquire_shared(deadline);
      if (!lease) lease = co_await pool_->acquire_exclusive(deadline);
      conn = std::static_pointer_cast<pg_connection>(lease.connection());
    }
    // (Made in place, never moved: no reallocation.)
    std::vector<std::optional<pg_connection::exchange>> sent(sts.size());
    for (std::size_t i = 0; i < sts.size(); ++i) {
      pg_connection::request r = request_for(sts[i]);
      if (top)
        r.tx = &top->book;
      else
        r.retryable = true;
      sts[i].connection = static_cast<std::uint64_t>(conn->backend_pid());
      try {
        sent[i].emplace(*conn, r, sts[i].deadline);
      } catch (...) {
        failures[i] = std::current_exception();
      }
    }
    for (std::size_t i = 0; i < sts.size(); ++i) {
      if (!sent[i] || !sent[i]->sent()) continue;
      // (Cancelled or past the deadline: throws; the rest run on, unobserved.)
      sent[i]->settle(co_await sent[i]->wait());
      if (!top && sent_again(sent[i]->group().verdict)) {
        // Failed for a reason not its own (see run): once more, alone.
        try {
          co_await run(sts[i], nullptr);
        } catch (const boost::system::system_error& e) {
          if (e.code() == asio::error::operation_aborted) throw;
          failures[i] = std::current_exception();
        } catch (...) {
          failures[i] = std::current_exception();
        }
        continue;
      }
      try {
        sent[i]->deliver(sts[i]);
      } catch (...) {
        failures[i] = std::current_exception();
      }
    }
  }

  asio::awaitable<std::unique_ptr<row_source>> open_stream(statement& st, tx_state* tx) override {
    pg_connection::request r = request_for(st);
    r.stream = true;
    if (tx) {
      pg_tx& top = static_cast<pg_tx&>(*tx).top_level();
      r.tx = &top.book;
      st.connection = static_cast<std::uint64_t>(top.conn->backend_pid());
      pg_group_ptr g = top.conn->submit(r);
      co_return std::make_unique<pg_row_source>(top.conn, pool_lease(), std::move(g));
    }
    // A connection of its own: nothing else is sent on it while the reader reads.
    connection_pool& pool = st.replica && replica_pool_ ? *replica_pool_ : *pool_;
    pool_lease lease = co_await pool.acquire_exclusive(st.deadline);
    auto conn = std::static_pointer_cast<pg_connection>(lease.connection());
    st.connection = static_cast<std::uint64_t>(conn->backend_pid());
    pg_group_ptr g = conn->submit(r);
    co_return std::make_unique<pg_row_source>(std::move(conn), std::move(lease), std::move(g));
  }

  asio::awaitable<std::shared_ptr<tx_state>> begin(std::shared_ptr<tx_state> parent,
                                                   tx_state* enclosing,
                                                   const transaction_options& options,
                                                   deadline_state* deadline) override {
    if (!enclosing) {
      // Only the connection is taken now; BEGIN travels with the first statement.
      pool_lease lease = co_await pool_->acquire_exclusive(deadline);
      auto conn = std::static_pointer_cast<pg_connection>(lease.connection());
      auto top = std::make_shared<pg_tx>(*this, std::move(parent), nullptr, std::move(conn),
                                         std::move(lease));
      top->book.set_begin(begin_statement(options));
      co_return top;
    }
    pg_tx& top = static_cast<pg_tx&>(*enclosing).top_level();
    auto level =
        std::make_shared<pg_tx>(*this, std::move(parent), enclosing, top.conn, pool_lease());
    const std::string savepoint = "SAVEPOINT " + level->savepoint_name();
    co_await send_and_wait(top, control_list(savepoint));
    co_return level;
  }

  asio::awaitable<void> commit(tx_state& tx) override {
    auto& level = static_cast<pg_tx&>(tx);
    pg_tx& top = level.top_level();
    if (level.depth() > 0) {
      const std::string release = "RELEASE SAVEPOINT " + level.savepoint_name();
      std::exception_ptr failure;
      try {
        co_await send_and_wait(top, control_list(release));
      } catch (...) {
        failure = std::current_exception();
      }
      if (failure) {
        roll_back_savepoint(level);
        std::rethrow_exception(failure);
      }
      co_return;
    }
    pg_connection::request r;
    r.controls = control_list("COMMIT");
    r.tx = &top.book;
    r.ends_tx = true;
    std::exception_ptr failure;
    bool sent = false;
    try {
      pg_connection::exchange x(*top.conn, r);
      if (x.sent()) {
        sent = true;
        x.settle(co_await x.wait());
        x.check();
      }
    } catch (const error& e) {
      // The connection ended while COMMIT was on its way: the server may have committed.
      const bool in_doubt = sent && (e.is_connection_error() ||
                                     e.sqlstate().starts_with(code::server_shutdown_class));
      failure = in_doubt ? std::make_exception_ptr(
                               error(code::transaction_resolution_unknown,
                                     "the connection was lost while COMMIT was in flight: the "
                                     "transaction may or may not have committed; check before "
                                     "running it again"))
                         : std::current_exception();
    } catch (...) {
      failure = std::current_exception();
    }
    // The connection goes back now; if the COMMIT is still in flight (a cancelled wait) the
    // pool lends it again only once it has been answered.
    top.lease.reset();
    if (failure) std::rethrow_exception(failure);
  }

  void rollback(tx_state& tx) noexcept override {
    auto& level = static_cast<pg_tx&>(tx);
    if (level.depth() > 0) {
      roll_back_savepoint(level);
      return;
    }
    pg_tx& top = level.top_level();
    // Sent now, before the connection goes back: nothing the task sends later can overtake it,
    // and the pool lends the connection again only once it has been answered.
    pg_connection::request r;
    r.controls = control_list("ROLLBACK");
    r.tx = &top.book;
    r.ends_tx = true;
    r.detached = true;
    try {
      top.conn->submit(r);
    } catch (...) {
      // A lost connection: the pool drops it.
    }
    top.lease.reset();
  }

  pool_stats stats() const override { return pool_->stats(); }

  // Connects once, then starts the pool's upkeep (min size, lifetimes, idle timeout).
  asio::awaitable<void> connect_first() {
    {
      pool_lease first =
          co_await pool_->acquire_exclusive(nullptr, connection_pool::open_failures::fail_at_once);
    }
    pool_->start();
    // The replica pool connects on its first statement.
    if (replica_pool_) replica_pool_->start();
  }

  asio::awaitable<void> close() override {
    if (auto l = listener()) l->close();
    co_await pool_->close(close_grace);
    if (replica_pool_) co_await replica_pool_->close(close_grace);
    co_await shared_->canceller->close(cancel_drain);
    if (replica_pool_) co_await replica_shared_->canceller->close(cancel_drain);
  }

 private:
  static pg_connection::request request_for(const statement& st) {
    pg_connection::request r;
    r.has_statement = true;
    r.sql = st.sql;
    r.params = std::span<const param>(st.params, st.param_count);
    r.mode = st.mode;
    return r;
  }

  // A COPY's connection: the transaction's, once what it sent has been answered (and BEGIN, if
  // still owed, has gone out), or one of its own.
  asio::awaitable<std::pair<std::shared_ptr<pg_connection>, pool_lease>> copy_connection(
      tx_state* tx) {
    if (tx) {
      pg_tx& top = static_cast<pg_tx&>(*tx).top_level();
      co_await send_and_wait(top, control_list());
      co_return std::make_pair(top.conn, pool_lease());
    }
    pool_lease lease = co_await pool_->acquire_exclusive();
    auto conn = std::static_pointer_cast<pg_connection>(lease.connection());
    co_return std::make_pair(std::move(conn), std::move(lease));
  }

  static asio::awaitable<void> send_and_wait(pg_tx& top, control_list controls) {
    pg_connection::request r;
    r.controls = controls;
    r.tx = &top.book;
    pg_connection::exchange x(*top.conn, r);
    x.settle(co_await x.wait());
    x.check();
  }

  static void roll_back_savepoint(pg_tx& level) noexcept {
    pg_tx& top = level.top_level();
    const std::string undo = "ROLLBACK TO SAVEPOINT " + level.savepoint_name();
    const std::string release = "RELEASE SAVEPOINT " + level.savepoint_name();
    pg_connection::request r;
    r.controls = control_list(undo, release);
    r.tx = &top.book;
    r.detached = true;
    try {
      top.conn->submit(r);
    } catch (...) {
      // The transaction has ended (25P01) or its connection is lost: nothing to undo.
    }
  }

  std::shared_ptr<pg_shared> shared_;
  std::shared_ptr<connection_pool> pool_;
  // With replica_reads: db.replica() statements outside transactions.
  std::shared_ptr<pg_shared> replica_shared_;
  std::shared_ptr<connection_pool> replica_pool_;
  asio::any_io_executor executor_;
  // LISTEN/NOTIFY: made on the first listen.
  std::mutex listener_mutex_;
  std::shared_ptr<pg_listener> listener_;

  std::shared_ptr<pg_listener> listener() {
    std::lock_guard lock(listener_mutex_);
    return listener_;
  }
};

}  // namespace

asio::awaitable<std::shared_ptr<backend>> open_postgres(asio::any_io_executor executor,
                                                        const postgres_options& options) {
  auto b = std::make_shared<pg_backend>(executor, options);
  // Connect once now, so that a wrong URL, a refused connection or a bad password fails here.
  co_await b->connect_first();
  co_return b;
}

}  // namespace awaitdb::detail
