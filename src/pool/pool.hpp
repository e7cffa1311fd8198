// A bounded pool of connections, engine-agnostic: which connection a task gets, when one is
// opened, who waits and in what order, when a connection is quiet enough to be lent again.
//
// Each connection has a status with named transitions, all under one lock:
//
//   opening ──► exclusive ◄──────────── idle ◄──┐
//      │            │ release                ▲  │ quiet (nothing in flight,
//      │            ▼                        │  │ no task holds it)
//      └──► shared ─┴─► draining ────────────┴──┘
//
// - exclusive: lent to one task (a transaction, or a statement when pipelining is off);
// - shared: statements of many tasks are pipelined on it; a task holds a claim from the moment
//   it picks the connection until its statement completes or it leaves;
// - draining: no new work; becomes idle once quiet. An exclusive connection released with work
//   still in flight (a rollback on its way) drains first: a connection is never lent while
//   anything of a previous user is in flight on it. A shared connection drains when a task
//   waits for an exclusive one and none is free, so that shared traffic cannot starve it.
// - A lost connection leaves the pool at once, freeing its slot.
//
// Waiters are served first come, first served: a freed connection (or slot) is handed to the
// oldest waiter directly, before any task that arrives later can take it.
//
// Upkeep, when the options ask for it: a minimum size kept open, a maximum lifetime after which
// a connection is retired, an idle timeout that closes surplus connections, and a pause after
// failed opens that grows with each failure (so an unreachable server is not hammered).
#ifndef AWAITDB_SRC_POOL_POOL_HPP
#define AWAITDB_SRC_POOL_POOL_HPP

#include "../util/context_guard.hpp"
#include "../util/wait_list.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace awaitdb {
struct pool_stats;
class observer;
enum class engine;
}  // namespace awaitdb

namespace awaitdb::detail {

class connection_pool;
class deadline_state;
class observer_slot;
using pool_clock = std::chrono::steady_clock;

/// What the pool needs to know of a connection. Implemented by each engine's connection (and by
/// fakes in the pool's tests).
class pooled_connection {
 public:
  virtual ~pooled_connection() = default;

  /// Work sent and not yet answered.
  virtual std::size_t in_flight() const noexcept = 0;
  /// When the work now running began (on the server: it was sent, or what was ahead of it
  /// ended); max() when none.
  virtual pool_clock::time_point busy_since() const noexcept = 0;
  /// Work in flight that was placed as slow (`acquire_shared(..., slow)`): nothing fast is
  /// pipelined behind it while another connection will do.
  virtual std::size_t slow_in_flight() const noexcept { return 0; }
  /// The work now running is a statement known to be fast (see `stall_threshold`).
  virtual bool running_known_fast() const noexcept { return false; }
  /// When `in_flight` last dropped to zero.
  virtual pool_clock::time_point idle_since() const noexcept = 0;
  /// The connection can no longer be used.
  virtual bool lost() const noexcept = 0;
  /// Why it was lost, in the library's own words (never the server's), or empty: for the
  /// pool's message when a young connection is lost.
  virtual std::string loss_reason() const { return {}; }
  /// Nothing is in flight, but something aimed at the connection may still land (a cancel on
  /// its way to the server): not quiet yet. Reported with `report_quiet` when over.
  virtual bool settling() const noexcept { return false; }
  // The pool calls the three below (system calls, or work sent) never under its own lock.
  /// A cheap look at an idle connection that the server may have dropped; false when it is gone.
  virtual bool check_alive() noexcept = 0;
  /// Makes a quiet connection fit for its next user (e.g. rolls back a transaction left open):
  /// true when it is fit now, false when it sent work to become so (it reports quiet again).
  virtual bool make_clean() noexcept = 0;
  /// Ends the connection now; work in flight fails.
  virtual void close() noexcept = 0;
  /// A quiet connection is fit for its next user as it is, so `make_clean` need not be called
  /// (no system call: asked under the pool's lock). False when unsure.
  virtual bool clean() const noexcept { return false; }

 protected:
  /// To be called by the connection, without holding its own lock, when `in_flight` drops to
  /// zero, and when it is lost.
  void report_quiet() noexcept;
  void report_lost() noexcept;
  /// Lost because the connection closed itself on purpose (nobody waited for its work any
  /// more): unlike a loss, never counted as a failed open however young it is.
  void report_dropped() noexcept;

 private:
  friend class connection_pool;
  std::weak_ptr<connection_pool> pool_;
};

struct pool_options {
  std::size_t max_size = 10;
  std::chrono::milliseconds acquire_timeout{10000};
  /// Statements in flight on one shared connection before another is preferred.
  std::size_t pipeline_depth = 32;
  /// A shared connection whose running statement has run this long is passed over while another
  /// connection can be used or opened (0: never passed over); `fast_patience` times as long
  /// when that statement is known to be fast (on a busy host, a client thread not scheduled
  /// for a few milliseconds sees every statement late). The engine also counts statements
  /// whose recent runs took this long as slow (see statement_latency).
  std::chrono::milliseconds stall_threshold{5};
  static constexpr int fast_patience = 8;
  /// An idle connection is looked at (`check_alive`, a non-blocking peek at its socket) before
  /// it is lent after this long: one system call, paid only by a statement that finds the
  /// connection idle, and not by a loop of statements.
  std::chrono::milliseconds recheck_after{1};

  // Upkeep (all off by default; see connection_pool::housekeep).
  /// Connections kept open even while idle: opened in the background when the pool starts and
  /// again after losses.
  std::size_t min_size = 0;
  /// A connection older than this gets no new work and is closed once quiet (0: no limit).
  /// Each connection's limit is shortened at random by up to 1/40, so that connections opened
  /// together are not all renewed together.
  std::chrono::milliseconds max_lifetime{0};
  /// A connection idle this long is closed while the pool holds more than `min_size` (0: never).
  std::chrono::milliseconds idle_timeout{0};
  /// After a failed open the next attempt waits this long, doubling with each further failure
  /// up to `connect_backoff_max`; a success resets it (0: no pause). A task whose acquire
  /// timeout ends before the pause does fails at once with the last failure.
  std::chrono::milliseconds connect_backoff{20};
  std::chrono::milliseconds connect_backoff_max{500};
  /// A connection lost within this long of its open counts as a failed open, and until a
  /// connection has lived this long a success does not forget the failures before it: a server
  /// that accepts connections and drops them at once is met with the growing pause, not a
  /// tight loop of reconnections (0: a success forgets at once).
  std::chrono::milliseconds connect_probation{1000};
};

enum class lease_kind : std::uint8_t { exclusive, shared };

/// Where the pool reports waits for a connection (awaitdb::acquire_event), and for which engine.
struct pool_reporting {
  std::shared_ptr<observer_slot> observers;  // none: nothing is reported
  awaitdb::engine engine{};
};

/// A connection lent by the pool, given back when the lease ends.
class pool_lease {
 public:
  pool_lease() = default;
  /// `slow`: a shared lease for a statement placed as slow.
  pool_lease(std::shared_ptr<connection_pool> pool, std::shared_ptr<pooled_connection> c,
             lease_kind kind, bool slow = false) noexcept
      : pool_(std::move(pool)), conn_(std::move(c)), kind_(kind), slow_(slow) {}
  pool_lease(pool_lease&& other) noexcept = default;
  pool_lease& operator=(pool_lease&& other) noexcept;
  ~pool_lease() { reset(); }

  pooled_connection* get() const noexcept { return conn_.get(); }
  const std::shared_ptr<pooled_connection>& connection() const noexcept { return conn_; }
  explicit operator bool() const noexcept { return conn_ != nullptr; }
  lease_kind kind() const noexcept { return kind_; }
  /// Gives the connection back now.
  void reset() noexcept;

 private:
  std::shared_ptr<connection_pool> pool_;
  std::shared_ptr<pooled_connection> conn_;
  lease_kind kind_ = lease_kind::exclusive;
  bool slow_ = false;
};

class connection_pool : public context_member,
                        public std::enable_shared_from_this<connection_pool> {
 public:
  /// Opens one connection (on the pool's executor); throws on failure.
  using opener = std::function<boost::asio::awaitable<std::shared_ptr<pooled_connection>>()>;
  using clock_function = std::function<pool_clock::time_point()>;

  enum class status : std::uint8_t { opening, idle, exclusive, shared, draining };

  /// `clock`: what the pool reads the time of its bookkeeping from (ages, idle times, lifetimes,
  /// the pause after failed opens). Waits (an acquire's deadline, that pause) are timed by the
  /// executor's timers, in real time.
  connection_pool(boost::asio::any_io_executor executor, pool_options options, opener open,
                  clock_function clock = &pool_clock::now, pool_reporting reporting = {});
  ~connection_pool();

  /// Starts the upkeep the options ask for (min size, lifetimes, idle timeout). While the pool
  /// has connections to watch, a timer stays armed on the executor; it is cancelled by `close`.
  void start();
  /// The executor's context is going away: the pool closes and destroys its timer.
  void context_shutdown(pool_clock::time_point deadline) noexcept override;
  /// The upkeep, run by that timer and callable at any time: drops idle connections the server
  /// has ended, retires connections past their lifetime (at once when quiet, else once quiet),
  /// closes the longest idle ones past the idle timeout while above `min_size`, and opens
  /// connections in the background up to `min_size`.
  void housekeep();

  /// What a failed attempt to open a connection does to the task that made it.
  enum class open_failures : std::uint8_t {
    wait,          // wait in line for the next attempt (or another connection) until the
                   // acquire deadline, then fail with the last attempt's error
    fail_at_once,  // fail with it now (opening the database: a wrong URL says so at once)
  };

  /// A connection for the caller alone: idle, or quiet and shared, or newly opened while the
  /// pool is below its size; else the next one freed, within the acquire timeout (53300; or,
  /// when nothing could be opened meanwhile, the last attempt's error).
  /// `deadline`: the task's (awaitdb::with_timeout), if any: a wait past it throws 57014.
  boost::asio::awaitable<pool_lease> acquire_exclusive(
      deadline_state* deadline = nullptr, open_failures failures = open_failures::wait);

  /// A connection to pipeline a statement on, without suspending, in the steady state (an open
  /// shared connection with room); an empty lease when `acquire_shared` must be awaited.
  /// `slow`: see `acquire_shared`.
  pool_lease try_acquire_shared(bool slow = false);
  /// A connection to pipeline a statement on: the least busy shared one that is not stalled
  /// and runs nothing slow; an idle one; a new one while the pool may grow; else the least
  /// busy of all.
  /// `slow`: the statement is known to run long. It gets a connection with nothing in flight
  /// (a quiet shared one, an idle one, or a new one while the pool may grow), else one that
  /// runs nothing slow; else (once the connections being opened are open) the one that runs
  /// the fewest slow statements. Fast statements are not pipelined behind it while another
  /// connection will do, and its wait holds up no fast statement.
  boost::asio::awaitable<pool_lease> acquire_shared(deadline_state* deadline = nullptr,
                                                    bool slow = false);

  /// Refuses new work (08003), closes idle connections now and the others as they become
  /// quiet; waits up to `grace` for that, then closes what remains (its work fails).
  boost::asio::awaitable<void> close(std::chrono::milliseconds grace);
  /// The same without waiting: busy connections close when they are quiet.
  void close_now() noexcept;
  bool closed() const;

  awaitdb::pool_stats stats() const;
  /// The status of each connection, for tests and diagnostics.
  std::vector<status> statuses() const;

  const pool_options& options() const noexcept { return options_; }

 private:
  friend class pool_lease;
  friend class pooled_connection;

  struct slot {
    std::shared_ptr<pooled_connection> conn;  // null while opening
    status state = status::opening;
    std::size_t claims = 0;       // tasks holding a shared lease on it
    std::size_t slow_claims = 0;  // ... for a statement placed as slow (it may not be sent yet)
    pool_clock::time_point expires_at = pool_clock::time_point::max();  // max_lifetime
    pool_clock::time_point opened_at{};
    bool loss_counted = false;  // its loss was weighed against connect_probation
    bool cleaning = false;      // draining: make_clean is being called (after the lock)
  };
  struct waiting_task {
    lease_kind kind;
    bool slow = false;  // a shared lease for a slow statement
    wait_list::ticket ticket;
    // What it was given before being woken: a connection (to be looked at first, when `look`),
    // or the right to open one.
    std::shared_ptr<pooled_connection> granted;
    bool look = false;
    bool may_open = false;
  };
  struct after_unlock;
  class opening_claim;
  struct grant {
    std::shared_ptr<pooled_connection> conn;
    bool look = false;  // idle a while: its taker looks at it (check_alive) before use
    bool may_open = false;
  };

  void release(pooled_connection& c, lease_kind kind, bool slow) noexcept;
  void on_quiet(pooled_connection& c) noexcept;
  /// `failure`: false when the connection closed itself on purpose (see report_dropped).
  void on_lost(pooled_connection& c, bool failure = true) noexcept;
  // A connection lent with `look` was found dead by its taker: out of the pool.
  void drop_dead(pooled_connection& c) noexcept;
  // make_clean returned `fit` (called after the lock by became_quiet_locked's caller).
  void cleaning_ended(pooled_connection& c, bool fit) noexcept;

  slot* find_locked(const pooled_connection& c);
  bool quiet_locked(const slot& s) const;
  grant try_grant_locked(lease_kind kind, bool slow, bool may_open, after_unlock& then);
  grant try_grant_slow_locked(bool may_open, after_unlock& then);
  pooled_connection* pick_shared_locked(bool allow_full, bool allow_stalled, bool healthy_only);
  bool stalled_locked(const slot& s, pool_clock::time_point now) const;
  std::shared_ptr<pooled_connection> take_idle_locked(lease_kind kind, bool& look,
                                                      after_unlock& then);
  void became_quiet_locked(slot& s, after_unlock& then, bool cleaned = false);
  void dispatch_locked(after_unlock& then);
  void remove_locked(const pooled_connection& c);
  void notify_if_all_gone_locked();
  boost::asio::awaitable<pool_lease> acquire(lease_kind kind, deadline_state* deadline,
                                             open_failures failures, bool slow = false);
  // Throws `failure`, else the last failed open's error (or 08003 once closed).
  [[noreturn]] void throw_last_open_failure(std::exception_ptr failure) const;
  void report_acquire(awaitdb::observer& o, lease_kind kind, pool_clock::time_point started,
                      pool_clock::duration connect, std::string_view label,
                      std::string_view sqlstate) noexcept;
  boost::asio::awaitable<void> wait_for_grant(std::shared_ptr<waiting_task> task,
                                              pool_clock::time_point deadline);
  // `deadline`: when the task that opens gives up (it is not made to wait past it for the
  // pause after failures): then it returns null, having tried nothing.
  boost::asio::awaitable<std::shared_ptr<pooled_connection>> open_new(
      opening_claim claim, pool_clock::time_point deadline);
  void opening_ended_locked(lease_kind kind, after_unlock& then);
  bool expired_locked(const slot& s, pool_clock::time_point now) const;
  void retire_locked(std::size_t index, after_unlock& then);
  void upkeep_locked(after_unlock& then);
  void arm_upkeep_locked();
  bool wants_filling_locked() const;
  void start_filling();
  boost::asio::awaitable<void> fill_to_min_size(std::shared_ptr<connection_pool> self);
  void record_open_outcome_locked(const std::exception_ptr& failure,
                                  pool_clock::time_point attempt_at);
  void count_failure_locked(pool_clock::time_point attempt_at, pool_clock::time_point now);
  void lost_locked(slot& s);
  pool_clock::time_point lifetime_end_locked(pool_clock::time_point opened);
  pool_lease make_lease(std::shared_ptr<pooled_connection> c, lease_kind kind, bool slow = false);

  boost::asio::any_io_executor executor_;
  const pool_options options_;
  const opener open_;
  const clock_function clock_;
  const pool_reporting reporting_;

  // Lock order: this mutex, then a connection's own lock (the pool reads a connection's gauges
  // and `clean` under it). A connection never calls into the pool while it holds its own lock,
  // and the pool makes no system call and sends nothing under this one: closes, looks at idle
  // connections and rollbacks are done after it is released (after_unlock).
  mutable std::mutex mutex_;
  std::vector<slot> slots_;
  std::deque<std::shared_ptr<waiting_task>> waiters_;
  std::size_t slow_waiting_ = 0;    // waiters for a slow statement's connection (they hold up
                                    // no fast statement)
  std::size_t opening_ = 0;         // connections being opened (slots taken)
  std::size_t opening_shared_ = 0;  // ... of which for shared use
  bool closed_ = false;
  wait_list closed_waiters_;  // `close` waiting for the last connection to go

  // Upkeep.
  std::optional<boost::asio::steady_timer> upkeep_timer_;  // made when first armed
  bool upkeep_armed_ = false;
  bool filling_ = false;                        // fill_to_min_size is running
  std::uint32_t lifetime_jitter_ = 0x9e3779b9;  // a small generator's state
  // Failed opens in a row (and connections lost within their probation), when the next open may
  // start, the last success, and what the last failure said.
  unsigned open_failures_ = 0;
  pool_clock::time_point last_failure_at_{}, next_open_at_{}, last_success_at_{};
  wait_list pausing_;  // opens waiting out that pause (close cuts them short)
  std::string last_open_state_, last_open_message_;
  std::exception_ptr last_open_failure_;  // the last failed open's own error
};

}  // namespace awaitdb::detail

#endif  // AWAITDB_SRC_POOL_POOL_HPP
