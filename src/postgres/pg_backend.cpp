// The PostgreSQL engine: statements routed to a pooled connection (pipelined with other tasks'
// statements, or on one of their own) or to the connection their transaction pinned.
#include "pg_backend.hpp"

#include "../placeholders.hpp"
#include "../pool/pool.hpp"
#include "../sqlstates.hpp"
#include "pg_connection.hpp"
#include "pg_listener.hpp"
#include "pg_result.hpp"
#include "pg_streams.hpp"
#include "pg_transaction.hpp"
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

// The connection a statement outside a transaction runs on, when `try_acquire_shared` had
// none at once: a shared one to pipeline on, or (`shared` false: transaction control sent
// directly, or pipelining off) one of its own.
asio::awaitable<pool_lease> statement_lease(connection_pool& pool, bool shared,
                                            deadline_state* deadline, bool slow = false) {
  if (shared) co_return co_await pool.acquire_shared(deadline, slow);
  co_return co_await pool.acquire_exclusive(deadline);
}

pg_connection& as_pg(pooled_connection& c) {
  return static_cast<pg_connection&>(c);
}

// Waits, until `until` at most, for the first run of a statement to be measured (see
// statement_latency); within the task's deadline.
asio::awaitable<void> wait_for_first_run(pg_shared& shared, std::uint64_t key,
                                         pg_clock::time_point until, deadline_state* deadline) {
  if (deadline) {
    if (deadline->passed()) throw deadline->timed_out();
    until = std::min(until, deadline->at());
  }
  wait_list::ticket t = shared.first_runs.enqueue();
  // Measured between the first look and joining the list: no wait.
  if (shared.latency.classify(key, pg_clock::now()).how != statement_latency::route::wait) {
    shared.first_runs.abandon(t);
    co_return;
  }
  co_await wait_list::wait(std::move(t), until);
}

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
    co_return pg_copy_in_end(std::move(conn), std::move(lease));
  }

  asio::awaitable<std::unique_ptr<copy_source>> copy_out(statement& st, tx_state* tx) override {
    const std::string sql(st.sql);
    auto [conn, lease] = co_await copy_connection(tx);
    st.connection = static_cast<std::uint64_t>(conn->backend_pid());
    co_await conn->copy_start(sql, false);
    co_return pg_copy_out_end(std::move(conn), std::move(lease));
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

  void define_function(std::shared_ptr<const sql_function> f) override {
    throw error(sqlstate::feature_not_supported,
                "define_function and define_aggregate add functions to SQLite: on PostgreSQL, "
                "functions live in the server (CREATE FUNCTION, CREATE AGGREGATE); \"" +
                    f->name + "\" was not defined");
  }

  asio::awaitable<void> backup(std::string, backup_options, deadline_state*) override {
    throw error(sqlstate::feature_not_supported,
                "backup_to copies an SQLite database: back PostgreSQL up with pg_dump or "
                "pg_basebackup");
    co_return;
  }

  awaitdb::engine kind() const noexcept override { return awaitdb::engine::postgres; }

  bool try_run_inline(statement&, tx_state*) override { return false; }

  asio::awaitable<void> run(statement& st, tx_state* tx) override {
    if (tx) {
      pg_tx& top = pg_tx::of(*tx).top_level();
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
    const bool replica = st.replica && replica_pool_;
    connection_pool& pool = replica ? *replica_pool_ : *pool_;
    // Where the statement goes depends on what its recent runs took (statement_latency).
    pg_shared& timings = replica ? *replica_shared_ : *shared_;
    std::uint64_t key = 0;
    bool slow = false, fast = false, first = false;
    // (Only statements placed on shared connections are timed: nothing reads the others.)
    if (shared && timings.latency.enabled()) {
      using route = statement_latency::route;
      key = statement_latency::key(st.sql);
      statement_latency::advice a = timings.latency.classify(key, pg_clock::now());
      while (a.how == route::wait) {
        co_await wait_for_first_run(timings, key, a.until, st.deadline);
        a = timings.latency.classify(key, pg_clock::now());
      }
      slow = a.how == route::slow;
      fast = a.how == route::fast;
      first = a.how == route::first;
    }
    // A first run that is never sent hands the part on (statement_latency::not_sent).
    struct first_run {
      statement_latency* book;
      std::uint64_t key;
      ~first_run() {
        if (book) book->not_sent(key);
      }
    } unsent{first ? &timings.latency : nullptr, key};
    for (int attempt = 0;; ++attempt) {
      pool_lease lease = shared ? pool.try_acquire_shared(slow) : pool_lease();
      if (!lease) lease = co_await statement_lease(pool, shared, st.deadline, slow);
      pg_connection& conn = as_pg(*lease.get());
      st.connection = static_cast<std::uint64_t>(conn.backend_pid());
      pg_connection::request r = request_for(st);
      r.retryable = true;
      r.latency_key = key;
      r.placed_slow = slow;
      r.known_fast = fast;
      std::optional<pg_connection::exchange> x;
      try {
        x.emplace(conn, r, st.deadline);
      } catch (const error& e) {
        // Lost between the pool's look and the send: nothing was sent; once more elsewhere.
        if (attempt == 0 && e.is_connection_error() && conn.lost()) continue;
        throw;
      }
      if (unsent.book) {
        unsent.book->sent(key, pg_clock::now());
        unsent.book = nullptr;
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
    pg_tx* top = tx ? &pg_tx::of(*tx).top_level() : nullptr;
    pool_lease lease;
    std::shared_ptr<pg_connection> conn;
    if (top) {
      conn = top->conn;
    } else {
      bool shared = shared_->options.pipeline;
      for (const statement& st : sts)
        if (is_transaction_control(st.sql)) shared = false;
      if (shared) lease = pool_->try_acquire_shared();
      // (The batch is never empty: see database::run.)
      if (!lease) lease = co_await statement_lease(*pool_, shared, sts.front().deadline);
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
      pg_tx& top = pg_tx::of(*tx).top_level();
      r.tx = &top.book;
      st.connection = static_cast<std::uint64_t>(top.conn->backend_pid());
      pg_group_ptr g = top.conn->submit(r);
      co_return pg_stream_rows(top.conn, pool_lease(), std::move(g));
    }
    // A connection of its own: nothing else is sent on it while the reader reads.
    connection_pool& pool = st.replica && replica_pool_ ? *replica_pool_ : *pool_;
    pool_lease lease = co_await pool.acquire_exclusive(st.deadline);
    auto conn = std::static_pointer_cast<pg_connection>(lease.connection());
    st.connection = static_cast<std::uint64_t>(conn->backend_pid());
    pg_group_ptr g = conn->submit(r);
    co_return pg_stream_rows(std::move(conn), std::move(lease), std::move(g));
  }

  asio::awaitable<std::shared_ptr<tx_state>> begin(std::shared_ptr<tx_state> parent,
                                                   tx_state* enclosing,
                                                   const transaction_options& options,
                                                   deadline_state* deadline) override {
    return pg_begin(*this, *pool_, std::move(parent), enclosing, options, deadline);
  }

  asio::awaitable<void> commit(tx_state& tx) override { return pg_commit(pg_tx::of(tx)); }

  void rollback(tx_state& tx) noexcept override { pg_rollback(pg_tx::of(tx)); }

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
    return r;
  }

  // A COPY's connection: the transaction's, once what it sent has been answered (and BEGIN, if
  // still owed, has gone out), or one of its own.
  asio::awaitable<std::pair<std::shared_ptr<pg_connection>, pool_lease>> copy_connection(
      tx_state* tx) {
    if (tx) {
      pg_tx& top = pg_tx::of(*tx).top_level();
      co_await pg_send_and_wait(top, control_list());
      co_return std::make_pair(top.conn, pool_lease());
    }
    pool_lease lease = co_await pool_->acquire_exclusive();
    auto conn = std::static_pointer_cast<pg_connection>(lease.connection());
    co_return std::make_pair(std::move(conn), std::move(lease));
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
