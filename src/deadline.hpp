// A task's deadline (awaitdb::with_timeout), carried by its task context like a transaction
// or a label: every statement started inside the operation, at any depth, finds it.
//
// At the deadline one timer ends every wait registered with it: a PostgreSQL statement's wait
// for its results (which then cancels it on the server), a wait for a pooled connection or for
// SQLite's writer; and it cancels the operation itself (anything else it awaits). A statement
// started after the deadline fails at once; an SQLite statement running inline checks it from
// SQLite's progress handler.
#ifndef AWAITDB_SRC_DEADLINE_HPP
#define AWAITDB_SRC_DEADLINE_HPP

#include "util/parking.hpp"
#include <awaitdb/error.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>

#include <atomic>
#include <chrono>
#include <list>
#include <memory>
#include <mutex>
#include <optional>

namespace awaitdb::detail {

class deadline_timers;

class deadline_state : public std::enable_shared_from_this<deadline_state> {
 public:
  using clock = std::chrono::steady_clock;

  /// `limit`: the duration the caller gave, for messages ("timed out after N ms").
  deadline_state(clock::time_point at, std::chrono::milliseconds limit) noexcept
      : at_(at), limit_(limit) {}
  ~deadline_state();
  deadline_state(const deadline_state&) = delete;
  deadline_state& operator=(const deadline_state&) = delete;

  clock::time_point at() const noexcept { return at_; }
  bool passed() const noexcept { return clock::now() >= at_; }
  /// 57014, "timed out after N ms".
  error timed_out() const;

  /// Starts watching the clock: at the deadline, on `executor` (the executor the operation
  /// runs on, so that the two never run at once), the registered waits end and a terminal
  /// cancellation is emitted on `operation` (until `release_operation`). The timer is one per
  /// execution context, shared by all its deadlines (see deadline_timers).
  void start(const boost::asio::any_io_executor& executor,
             boost::asio::cancellation_signal* operation);
  /// The operation is over: the signal is no longer there to emit on.
  void release_operation() noexcept;
  /// The operation's coroutine has started: from now on the deadline cancels it. False when
  /// the deadline came first (the operation must not run).
  bool operation_started() noexcept;
  /// Whether the deadline has cancelled the operation.
  bool fired() const noexcept;

  /// A wait that the deadline ends with `waiter::state::timed_out`, while registered.
  class watch {
   public:
    watch() = default;
    watch(deadline_state* d, const waiter_ptr& w);
    watch(watch&&) = delete;
    watch& operator=(watch&&) = delete;
    ~watch();

   private:
    std::shared_ptr<deadline_state> state_;
    std::list<std::weak_ptr<waiter>>::iterator at_;
  };

 private:
  friend class deadline_timers;
  void fire() noexcept;

  const clock::time_point at_;
  const std::chrono::milliseconds limit_;
  mutable std::mutex mutex_;  // waits_, operation_, fired_
  std::list<std::weak_ptr<waiter>> waits_;
  boost::asio::cancellation_signal* operation_ = nullptr;
  bool fired_ = false;
  bool started_ = false;  // the operation's coroutine runs: a cancellation may reach it
  boost::asio::any_io_executor executor_;  // where `fire` runs (set by `start`)
  // The shared timer's list (sorted by `at_`), guarded by its mutex. `timers_` is written
  // under that mutex only, and read without it once, by the destructor, to find the mutex
  // (remove() looks again under it): atomic, as the timer's thread may clear it meanwhile.
  std::atomic<deadline_timers*> timers_{nullptr};
  deadline_state* earlier_ = nullptr;
  deadline_state* later_ = nullptr;
};

}  // namespace awaitdb::detail

#endif  // AWAITDB_SRC_DEADLINE_HPP
