// A list of suspended tasks waiting for a condition that another task will signal: SQLite's
// connection becoming free, a pooled PostgreSQL connection becoming idle, a pinned connection's
// turn. No thread is blocked; waiting is cancellable (per-operation cancellation) and may have a
// deadline.
#ifndef AWAITDB_SRC_UTIL_WAIT_LIST_HPP
#define AWAITDB_SRC_UTIL_WAIT_LIST_HPP

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>

namespace awaitdb::detail {

class wait_list {
 public:
  struct node;
  using ticket = std::shared_ptr<node>;

  enum class outcome { signalled, timed_out };

  wait_list();
  ~wait_list();
  wait_list(const wait_list&) = delete;
  wait_list& operator=(const wait_list&) = delete;

  /// Joins the list. Call it while holding the lock that protects the condition, then release
  /// the lock and `wait`: a signal sent in between is not lost.
  ticket enqueue();

  /// Suspends until the ticket is signalled (`signalled`) or the deadline passes (`timed_out`).
  /// Completes at once if it was signalled already. Throws `system_error(operation_aborted)`
  /// when the operation is cancelled; the ticket then leaves the list.
  boost::asio::awaitable<outcome> wait(
      ticket t, std::optional<std::chrono::steady_clock::time_point> deadline = std::nullopt);

  /// Joins the list while `held` is locked, releases it, and waits, all in one step (a
  /// cancelled coroutine throws at its next `co_await`, so joining and waiting must not be
  /// split across two). On failure the ticket leaves the list, and if it had been signalled
  /// already, `unused_signal` is called (a `notify_one` user passes the signal on there).
  boost::asio::awaitable<outcome> wait(
      std::unique_lock<std::mutex>& held,
      std::optional<std::chrono::steady_clock::time_point> deadline = std::nullopt,
      const std::function<void()>& unused_signal = {});

  /// Signals this ticket (whether or not its owner is waiting yet).
  void notify(const ticket& t);
  /// Signals the oldest waiting ticket; false when there was none.
  bool notify_one();
  /// Signals every ticket in the list.
  void notify_all();
  /// Removes a ticket that will not be waited on (its wait threw, possibly before it started:
  /// a cancelled coroutine throws at its next `co_await`). Returns true when the ticket had
  /// been signalled already, so that the caller can pass the signal on.
  bool abandon(const ticket& t) noexcept;

  std::size_t size() const;

 private:
  struct impl;
  std::shared_ptr<impl> impl_;
};

}  // namespace awaitdb::detail

#endif  // AWAITDB_SRC_UTIL_WAIT_LIST_HPP
