// Suspended tasks whose handlers awaitdb keeps (not Asio): a task waiting for its statement's
// results, for a pooled connection, for another task's transaction, and a connection's idle
// reader.
//
// Asio's own operations are owned by their execution context, which destroys them when it is
// destroyed. A handler parked here is owned by awaitdb instead, and it must not outlive the
// context either: it is a coroutine frame, which may hold the very `database` whose connection
// holds the handler, and that cycle would keep connections open until the process ends. So
// every parked handler is also registered with a service of its context; when the context is
// destroyed, the service destroys them (never resuming them), which unwinds the frames,
// releases the databases and closes their connections.
#ifndef AWAITDB_SRC_UTIL_PARKING_HPP
#define AWAITDB_SRC_UTIL_PARKING_HPP

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/system/error_code.hpp>

#include <cstdint>
#include <memory>
#include <mutex>

namespace awaitdb::detail {

class parked_registry;

/// One waiter: a task to be woken once. Created pending; `notify` may come before or after the
/// task waits. Thread-safe. Held by `shared_ptr` (the registry and timers refer to it weakly).
class waiter : public std::enable_shared_from_this<waiter> {
 public:
  enum class state : std::uint8_t { pending, signalled, timed_out, cancelled };
  using signature = void(boost::system::error_code, state);
  using handler_type = boost::asio::any_completion_handler<signature>;

  waiter() = default;
  ~waiter();
  waiter(const waiter&) = delete;
  waiter& operator=(const waiter&) = delete;

  /// Completes when the waiter leaves `pending` (at once if it has): with its state, or with
  /// `operation_aborted` when per-operation cancellation came first. One wait per waiter.
  /// Awaited as `co_await w->async_wait(asio::as_tuple(asio::deferred))`, it costs no coroutine
  /// frame.
  template <class Token>
  auto async_wait(Token&& token) {
    auto initiation = [self = shared_from_this()](auto handler) {
      boost::asio::any_io_executor executor = boost::asio::get_associated_executor(handler);
      self->park(handler_type(std::move(handler)), std::move(executor));
    };
    return boost::asio::async_initiate<Token, signature>(std::move(initiation), token);
  }

  /// Moves a pending waiter to `final_state` (`signalled` or `timed_out`) and resumes its task,
  /// posted to the task's executor. False when it was no longer pending.
  bool notify(state final_state = state::signalled);
  /// Signals `self` like `notify`, but the task resumes inline when the calling thread already
  /// runs its executor (else it is dispatched there). The caller must hold no lock and do
  /// nothing after it that the task could disturb. `self` is released before the task runs, so
  /// that a task that starts its next wait at once can reuse the memory.
  static bool notify_here(std::shared_ptr<waiter> self);
  /// Moves a pending waiter to `cancelled`; a task waiting on it resumes with
  /// `operation_aborted`. Returns true when it had been signalled already (so that the caller
  /// can pass the signal on).
  bool abandon() noexcept;

  state current() const;

 private:
  friend class parked_registry;
  void park(handler_type handler, boost::asio::any_io_executor executor);
  // Destroys the parked handler without resuming it (the context is going away).
  void drop() noexcept;

  mutable std::mutex mutex_;
  state state_ = state::pending;
  handler_type handler_;                   // the suspended task, while it waits
  boost::asio::any_io_executor executor_;  // where it resumes
  // Registry membership, guarded by the registry's mutex.
  parked_registry* registry_ = nullptr;
  waiter* prev_ = nullptr;
  waiter* next_ = nullptr;
};

using waiter_ptr = std::shared_ptr<waiter>;

}  // namespace awaitdb::detail

#endif  // AWAITDB_SRC_UTIL_PARKING_HPP
