// The PostgreSQL engine: a bounded pool of natively asynchronous connections, and transactions
// that pin one of them for the task that opened them.
#include "pg_backend.hpp"

#include "../placeholders.hpp"
#include "../util/wait_list.hpp"
#include "pg_connection.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

#include <algorithm>
#include <functional>
#include <mutex>
#include <vector>

namespace awaitdb::detail {
namespace {

class pg_pool : public std::enable_shared_from_this<pg_pool> {
 public:
  pg_pool(asio::any_io_executor executor, postgres_options options)
      : executor_(std::move(executor))
      , state_(std::make_shared<pg_pool_state>(std::move(options)))
      , options_(state_->options) {}

  const postgres_options& options() const noexcept { return options_; }

  /// An idle connection, a new one while the pool is below its maximum size, or the next one
  /// released, within the acquire timeout.
  asio::awaitable<std::shared_ptr<pg_connection>> acquire() {
    const auto deadline = std::chrono::steady_clock::now() + options_.pool_acquire_timeout;
    bool woken = false;  // signalled by a release: one connection (or slot) is ours
    for (;;) {
      std::unique_lock lock(mutex_);
      if (closed_) throw error(sqlstate::connection_does_not_exist, "the database is closed");
      if (woken) {
        woken = false;
        --woken_;
      } else if (woken_ > 0 || waiters_.size() > 0) {
        // Others are already waiting, or were woken and have not taken their connection yet:
        // queue behind them. Taking it here would starve them under load.
        co_await wait_for_release(lock, deadline);
        woken = true;
        continue;
      }
      while (!idle_.empty()) {
        std::shared_ptr<pg_connection> c = std::move(idle_.back());
        idle_.pop_back();
        // Idle for a while, the server may have dropped it: look first. (Not after every
        // use: that is a system call per transaction on a busy pool.)
        if (c->idle_for() <= recheck_after || c->check_idle()) {
          ++in_use_;
          co_return c;
        }
        --size_;  // it died while idle (server restart, terminated backend): replace it
      }
      for (auto it = shared_.begin(); it != shared_.end(); ++it)
        if ((*it)->quiet()) {
          // A pipelining connection with nothing in flight can be lent exclusively.
          std::shared_ptr<pg_connection> c = std::move(*it);
          shared_.erase(it);
          if (!c->check_idle()) {
            --size_;
            break;
          }
          ++in_use_;
          co_return c;
        }
      if (size_ < options_.pool_max_size) {
        ++in_use_;
        co_return co_await open_connection(lock, in_use_);
      }
      co_await wait_for_release(lock, deadline);
      woken = true;
    }
  }

  /// The steady state of `acquire_shared`, without a coroutine: a shared connection with room
  /// in its pipeline that needs no look at its socket first, claimed; null otherwise.
  std::shared_ptr<pg_connection> try_acquire_shared() {
    std::lock_guard lock(mutex_);
    if (closed_) return nullptr;
    pg_connection* best = least_busy_locked();
    if (!best || best->broken() || best->in_flight() >= options_.pipeline_depth ||
        best->idle_for() > recheck_after)
      return nullptr;
    best->claim();
    return best->shared_from_this();
  }

  /// A connection to pipeline a statement on (shared with other tasks' statements): the least
  /// busy one, unless all have `pipeline_depth` statements in flight and the pool may grow.
  asio::awaitable<std::shared_ptr<pg_connection>> acquire_shared() {
    const auto deadline = std::chrono::steady_clock::now() + options_.pool_acquire_timeout;
    bool woken = false;
    for (;;) {
      std::unique_lock lock(mutex_);
      if (closed_) throw error(sqlstate::connection_does_not_exist, "the database is closed");
      if (woken) {
        woken = false;
        --woken_;
      }
      std::erase_if(shared_, [this](const std::shared_ptr<pg_connection>& c) {
        if (!c->broken()) return false;
        --size_;
        return true;
      });
      pg_connection* least_busy = least_busy_locked();
      std::shared_ptr<pg_connection> best = least_busy ? least_busy->shared_from_this() : nullptr;
      if (best && best->in_flight() < options_.pipeline_depth) {
        // Idle for a while, the server may have dropped it: look before sending. (Not on
        // every statement: that would be a system call on the hot path. And only when nobody
        // uses it: reading its socket under a waiting leader would steal the leader's data.)
        if (best->idle_for() > recheck_after && best->quiet() && !best->check_idle()) continue;
        best->claim();
        co_return best;
      }
      if (!idle_.empty()) {
        std::shared_ptr<pg_connection> c = std::move(idle_.back());
        idle_.pop_back();
        if (!c->check_idle()) {
          --size_;
          continue;
        }
        shared_.push_back(c);
        c->claim();
        co_return c;
      }
      // While a connection is being opened, pipeline deeper rather than open more: a burst
      // of tasks would otherwise open the whole pool at once.
      if (best && opening_shared_ > 0) {
        best->claim();
        co_return best;
      }
      if (size_ < options_.pool_max_size) {
        ++opening_shared_;
        std::shared_ptr<pg_connection> c = co_await open_connection(lock, opening_shared_);
        --opening_shared_;
        shared_.push_back(c);
        c->claim();
        co_return c;
      }
      if (best) {  // the pool is full: pipeline deeper
        best->claim();
        co_return best;
      }
      // Every connection is pinned by a transaction: wait for one to come back.
      co_await wait_for_release(lock, deadline);
      woken = true;
    }
  }

  /// Takes a connection back. One left inside a transaction is rolled back first; one that is
  /// broken, or mid-statement, is closed (the pool opens a new one when needed).
  void release(std::shared_ptr<pg_connection> c) noexcept {
    std::unique_lock lock(mutex_);
    const bool usable = !closed_ && !c->broken() && c->quiet();
    const auto status = usable ? c->transaction_status() : PQTRANS_UNKNOWN;
    if (status == PQTRANS_INTRANS || status == PQTRANS_INERROR) {
      lock.unlock();
      asio::co_spawn(executor_, roll_back_and_release(shared_from_this(), std::move(c)),
                     asio::detached);
      return;
    }
    --in_use_;
    if (status == PQTRANS_IDLE) {
      idle_.push_back(std::move(c));
    } else {
      --size_;  // dropped: its slot lets a waiter open a new one
    }
    wake_one_locked();
    lock.unlock();
    c.reset();  // closes a dropped connection, outside the lock
  }

  pool_stats stats() const {
    std::lock_guard lock(mutex_);
    pool_stats s;
    s.size = size_;
    s.idle = idle_.size();
    for (const auto& c : shared_)
      if (c->in_flight() == 0) ++s.idle;
    s.in_use = s.size - s.idle;
    s.waiting = waiters_.size();
    s.in_flight = state_->in_flight.load(std::memory_order_relaxed);
    return s;
  }

  void close() noexcept {
    std::vector<std::shared_ptr<pg_connection>> idle;
    {
      std::lock_guard lock(mutex_);
      closed_ = true;
      idle.swap(idle_);
      idle.insert(idle.end(), shared_.begin(), shared_.end());
      shared_.clear();
      size_ -= idle.size();
    }
    idle.clear();
    waiters_.notify_all();
  }

 private:
  /// Opens one more connection (the caller checked the pool may grow; `lock` is held, and is
  /// held again on return). On failure undoes the caller's `counter` increment, gives the slot
  /// to a waiter, and throws.
  asio::awaitable<std::shared_ptr<pg_connection>> open_connection(
      std::unique_lock<std::mutex>& lock, std::size_t& counter) {
    ++size_;
    lock.unlock();
    std::exception_ptr failure;
    std::shared_ptr<pg_connection> c;
    try {
      c = co_await pg_connection::connect(executor_, state_);
    } catch (...) {
      failure = std::current_exception();
    }
    lock.lock();
    if (failure) {
      --size_;
      --counter;
      wake_one_locked();
      std::rethrow_exception(failure);
    }
    co_return c;
  }

  // A connection or a slot became free: hand it to the oldest waiter, who takes it before any
  // task arriving later.
  void wake_one_locked() {
    if (waiters_.notify_one()) ++woken_;
  }

  asio::awaitable<void> wait_for_release(std::unique_lock<std::mutex>& lock,
                                         std::chrono::steady_clock::time_point deadline) {
    // A waiter that was signalled but gives up (cancelled) passes its turn on.
    // (A named std::function, passed by reference: see wait_list.cpp on GCC 12.)
    const std::function<void()> pass_on = [this] {
      std::lock_guard guard(mutex_);
      --woken_;
      wake_one_locked();
    };
    if (co_await waiters_.wait(lock, deadline, pass_on) == wait_list::outcome::timed_out)
      throw error(sqlstate::too_many_connections,
                  "timed out after " + std::to_string(options_.pool_acquire_timeout.count()) +
                      " ms waiting for a connection: all " +
                      std::to_string(options_.pool_max_size) + " are in use");
  }

  static asio::awaitable<void> roll_back_and_release(std::shared_ptr<pg_pool> self,
                                                     std::shared_ptr<pg_connection> c) {
    try {
      co_await c->exchange(control_list("ROLLBACK"), nullptr);
    } catch (...) {
      // A connection that cannot roll back is broken; release() drops it.
    }
    self->release(std::move(c));
  }

  // The shared connection with the fewest statements in flight, or null.
  pg_connection* least_busy_locked() const {
    pg_connection* best = nullptr;
    for (const auto& c : shared_)
      if (!best || c->in_flight() < best->in_flight()) best = c.get();
    return best;
  }

  // How long a connection may sit idle before the pool looks at its socket before lending it.
  static constexpr std::chrono::milliseconds recheck_after{20};

  asio::any_io_executor executor_;
  const std::shared_ptr<pg_pool_state> state_;
  const postgres_options& options_;  // state_->options
  mutable std::mutex mutex_;
  std::vector<std::shared_ptr<pg_connection>> idle_;
  std::vector<std::shared_ptr<pg_connection>> shared_;  // pipelining statements of many tasks
  std::size_t opening_shared_ = 0;                      // connections being opened for pipelining
  std::size_t size_ = 0;                                // open or opening
  std::size_t in_use_ = 0;                              // lent out, opening, or being cleaned
  wait_list waiters_;
  std::size_t woken_ = 0;  // waiters signalled by a release that have not taken it yet
  bool closed_ = false;
};

/// Returns a borrowed connection to the pool however the borrower's scope ends.
struct lease {
  std::shared_ptr<pg_pool> pool;
  std::shared_ptr<pg_connection> conn;
  ~lease() {
    if (conn) pool->release(std::move(conn));
  }
};

class pg_tx final : public tx_state {
 public:
  pg_tx(backend& owner, std::shared_ptr<tx_state> parent, tx_state* enclosing,
        std::shared_ptr<pg_connection> connection)
      : tx_state(owner, std::move(parent), enclosing), conn(std::move(connection)) {}

  std::string savepoint_name() const { return "awaitdb_sp_" + std::to_string(depth()); }
  pg_tx& top_level() const noexcept { return static_cast<pg_tx&>(top()); }

  const std::shared_ptr<pg_connection> conn;
  pinned_tx pin;  // used on the top level only; guarded by the connection
};

class pg_backend final : public backend {
 public:
  explicit pg_backend(std::shared_ptr<pg_pool> pool) : pool_(std::move(pool)) {}
  ~pg_backend() override { pool_->close(); }

  awaitdb::engine kind() const noexcept override { return awaitdb::engine::postgres; }

  bool try_run_inline(statement&, tx_state*) override { return false; }

  asio::awaitable<void> run(statement& st, tx_state* tx) override {
    // Transaction control sent directly (not through db.transaction) gets a connection of its
    // own: on a shared one it would pull other tasks' statements into its transaction.
    if (!tx && pool_->options().pipeline && !is_transaction_control(st.sql)) {
      std::shared_ptr<pg_connection> conn = pool_->try_acquire_shared();
      if (!conn) conn = co_await pool_->acquire_shared();
      struct claim_guard {
        pg_connection& c;
        ~claim_guard() { c.unclaim(); }
      } claimed{*conn};
      co_await conn->pipelined(control_list(), &st);
      co_return;
    }
    if (!tx) {
      // (Not `lease borrowed{pool_, co_await ...}`: GCC 12 destroys co_await temporaries in
      // braced initializers twice.)
      std::shared_ptr<pg_connection> conn = co_await pool_->acquire();
      lease borrowed{pool_, std::move(conn)};
      co_await borrowed.conn->exchange(control_list(), &st);
      co_return;
    }
    // Inside a transaction: pipelined on its connection, in the order sent, so that
    // concurrent statements of the transaction share round trips.
    pg_tx& top = static_cast<pg_tx&>(*tx).top_level();
    co_await top.conn->pipelined(control_list(), &st, &top.pin);
  }

  asio::awaitable<std::shared_ptr<tx_state>> begin(std::shared_ptr<tx_state> parent,
                                                   tx_state* enclosing) override {
    if (!enclosing) {
      // Only the connection is taken now; BEGIN travels with the first statement.
      std::shared_ptr<pg_connection> conn = co_await pool_->acquire();
      lease borrowed{pool_, std::move(conn)};
      auto level = std::make_shared<pg_tx>(*this, std::move(parent), nullptr, borrowed.conn);
      borrowed.conn.reset();
      co_return level;
    }
    pg_tx& top = static_cast<pg_tx&>(*enclosing).top_level();
    auto level = std::make_shared<pg_tx>(*this, std::move(parent), enclosing, top.conn);
    const std::string savepoint = "SAVEPOINT " + level->savepoint_name();
    co_await top.conn->pipelined(control_list(savepoint), nullptr, &top.pin);
    co_return level;
  }

  asio::awaitable<void> commit(tx_state& tx) override {
    auto& level = static_cast<pg_tx&>(tx);
    pg_tx& top = level.top_level();
    pg_connection& conn = *top.conn;
    std::exception_ptr failure;
    if (level.depth() > 0) {
      const std::string release = "RELEASE SAVEPOINT " + level.savepoint_name();
      try {
        co_await conn.pipelined(control_list(release), nullptr, &top.pin);
      } catch (...) {
        failure = std::current_exception();
      }
      if (failure) {
        const std::string undo = "ROLLBACK TO SAVEPOINT " + level.savepoint_name();
        try {
          co_await conn.pipelined(control_list(undo, release), nullptr, &top.pin);
        } catch (...) {
          // The transaction itself is failing; its own rollback follows.
        }
        std::rethrow_exception(failure);
      }
      co_return;
    }
    if (!conn.finish(top.pin))
      throw error(sqlstate::no_active_transaction, "this task's transaction has ended");
    // From here on this call gives the connection back, whatever happens.
    try {
      co_await conn.pipelined(control_list("COMMIT"), nullptr, &top.pin, pin_use::ending);
    } catch (...) {
      failure = std::current_exception();
    }
    pool_->release(top.conn);  // rolls back first if COMMIT did not end the transaction
    if (failure) std::rethrow_exception(failure);
  }

  void rollback(tx_state& tx) noexcept override {
    auto& level = static_cast<pg_tx&>(tx);
    pg_tx& top = level.top_level();
    // Queued now, so that nothing the task sends afterwards overtakes the rollback: it goes
    // out ahead of the task's next statement, or on its own without the caller waiting.
    switch (top.conn->owe_rollback(top.pin, level.depth() > 0 ? level.savepoint_name() : "")) {
      case rollback_step::none:
        return;
      case rollback_step::release:
        pool_->release(top.conn);
        return;
      case rollback_step::flush:
        asio::co_spawn(
            top.conn->executor(),
            finish_rollback(pool_, std::static_pointer_cast<pg_tx>(level.shared_from_this())),
            asio::detached);
        return;
    }
  }

  pool_stats stats() const override { return pool_->stats(); }

  asio::awaitable<void> close() override {
    pool_->close();
    co_return;
  }

 private:
  // Sends what a rollback queued, unless a later statement of the task took it along, and
  // waits for it: its Sync answers after everything sent before it. A top-level rollback then
  // gives the connection back.
  static asio::awaitable<void> finish_rollback(std::shared_ptr<pg_pool> pool,
                                               std::shared_ptr<pg_tx> level) {
    pg_tx& top = level->top_level();
    try {
      co_await top.conn->pipelined(control_list(), nullptr, &top.pin, pin_use::flush_owed);
    } catch (...) {
      // A failed ROLLBACK leaves the connection broken or still in the transaction; the pool
      // drops it or rolls it back again.
    }
    if (level->depth() == 0) pool->release(top.conn);
  }

  std::shared_ptr<pg_pool> pool_;
};

}  // namespace

asio::awaitable<std::shared_ptr<backend>> open_postgres(asio::any_io_executor executor,
                                                        const postgres_options& options) {
  auto pool = std::make_shared<pg_pool>(std::move(executor), options);
  // Connect once now, so that a wrong URL, a refused connection or a bad password fails here.
  std::shared_ptr<pg_connection> first = co_await pool->acquire();
  pool->release(std::move(first));
  co_return std::make_shared<pg_backend>(std::move(pool));
}

}  // namespace awaitdb::detail
