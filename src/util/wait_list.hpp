// A queue of suspended tasks waiting for a condition that another task will signal: SQLite's
// connection becoming free, a pooled connection becoming available. No thread is blocked;
// waiting is cancellable (per-operation cancellation) and may have a deadline. Built on
// `waiter`, so a task parked here is destroyed with its execution context (see parking.hpp).
#ifndef AWAITDB_SRC_UTIL_WAIT_LIST_HPP
#define AWAITDB_SRC_UTIL_WAIT_LIST_HPP

#include "parking.hpp"

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>

namespace awaitdb::detail {

class wait_list {
 public:
  using ticket = waiter_ptr;
  enum class outcome { signalled, timed_out };

  /// Joins the list. Call it while holding the lock that protects the condition, then release
  /// the lock and `wait`: a signal sent in between is not lost.
  ticket enqueue();

  /// Suspends until the ticket is signalled or the deadline passes; at once if it was signalled
  /// already. Throws `system_error(operation_aborted)` when the operation is cancelled; the
  /// ticket then leaves the list.
  static boost::asio::awaitable<outcome> wait(
      ticket t, std::optional<std::chrono::steady_clock::time_point> deadline = std::nullopt);

  /// Joins the list while `held` is locked, releases it, and waits, all in one step (a
  /// cancelled coroutine throws at its next `co_await`, so joining and waiting must not be split
  /// across two). On failure the ticket leaves the list, and if it had been signalled already,
  /// `unused_signal` is called (a `notify_one` user passes the signal on there).
  boost::asio::awaitable<outcome> wait(
      std::unique_lock<std::mutex>& held,
      std::optional<std::chrono::steady_clock::time_point> deadline = std::nullopt,
      const std::function<void()>& unused_signal = {});

  /// Signals this ticket (whether or not its owner is waiting yet).
  void notify(const ticket& t);
  /// Signals the oldest pending ticket; false when there was none.
  bool notify_one();
  /// Signals every ticket in the list.
  void notify_all();
  /// Removes a ticket that will not be waited on. Returns true when it had been signalled
  /// already, so that the caller can pass the signal on.
  bool abandon(const ticket& t) noexcept;

  /// Tickets still pending.
  std::size_t size() const;

 private:
  mutable std::mutex mutex_;
  std::deque<ticket> queue_;
};

}  // namespace awaitdb::detail

#endif  // AWAITDB_SRC_UTIL_WAIT_LIST_HPP
