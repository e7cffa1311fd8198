// awaitdb: deadlines that follow the task — for one statement, a transaction, or a whole
// request handler and everything it calls.
#ifndef AWAITDB_TIMEOUT_HPP
#define AWAITDB_TIMEOUT_HPP

#include <awaitdb/error.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>

#include <chrono>
#include <exception>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>

namespace awaitdb {

namespace detail {
class deadline_state;

/// One `with_timeout` (internal): the deadline put on the task context, its timer, and the
/// cancellation it sends the operation.
class deadline_scope {
 public:
  deadline_scope(const boost::asio::any_io_executor& caller,
                 std::chrono::steady_clock::time_point at, std::chrono::milliseconds limit);
  ~deadline_scope();
  deadline_scope(const deadline_scope&) = delete;
  deadline_scope& operator=(const deadline_scope&) = delete;

  /// An earlier deadline of the task applies already: the operation runs under it as it is.
  bool inherited() const noexcept { return inherited_; }
  /// The deadline had passed before the operation started.
  bool passed() const noexcept;
  /// The deadline has come and cancelled the operation.
  bool fired() const noexcept;
  /// The operation's coroutine starts (the deadline cancels it from now on); false when the
  /// deadline came first.
  bool operation_begins() noexcept;
  [[noreturn]] void throw_timed_out() const;
  /// The executor the operation runs on (the caller's, carrying the deadline).
  const boost::asio::any_io_executor& executor() const noexcept { return executor_; }
  boost::asio::cancellation_slot slot() noexcept { return signal_.slot(); }

 private:
  std::shared_ptr<deadline_state> state_;
  boost::asio::any_io_executor executor_;
  boost::asio::cancellation_signal signal_;
  bool inherited_ = false;
};
// The operation, as the coroutine `with_timeout` spawns. Asio 1.26's co_spawn entry point
// awaits once before its coroutine and, when the coroutine ends without having suspended, once
// after it, both outside its own try: a cancellation pending there would throw out of the
// completion handler (std::terminate). So the deadline cancels the operation only once this
// has started, and a cancellation is not thrown from any later `co_await` once `op` is over.
template <class T>
boost::asio::awaitable<T> run_until_deadline(deadline_scope& scope, boost::asio::awaitable<T> op) {
  if (!scope.operation_begins()) scope.throw_timed_out();
  std::exception_ptr failure;
  if constexpr (std::is_void_v<T>) {
    try {
      co_await std::move(op);
    } catch (...) {
      failure = std::current_exception();
    }
    co_await boost::asio::this_coro::throw_if_cancelled(false);
    if (failure) std::rethrow_exception(failure);
  } else {
    std::optional<T> value;
    try {
      value.emplace(co_await std::move(op));
    } catch (...) {
      failure = std::current_exception();
    }
    co_await boost::asio::this_coro::throw_if_cancelled(false);
    if (failure) std::rethrow_exception(failure);
    co_return std::move(*value);
  }
}
}  // namespace detail

/// Runs `op` (`db.query(...)`, `db.transaction(...)`, a request handler, any awaitable) with a
/// deadline, which its task context carries: every statement, batch, stream `next()`, COPY
/// and transaction started inside `op` at any depth — in the functions it calls, in coroutines
/// it starts on `co_await this_coro::executor` — runs within it. Nested, the earlier deadline
/// wins.
///
/// At the deadline, the statements in flight are stopped on the server (SQLite: interrupted,
/// within a few milliseconds), a transaction rolls back, `op` itself is cancelled, and this
/// throws `awaitdb::error` 57014 ("timed out after N ms"); a statement started after it fails
/// at once with 57014, without reaching the server. A failure of `op` before the deadline is
/// rethrown as it is.
///
///     result r = co_await awaitdb::with_timeout(200ms, db.query("SELECT slow()"));
///     co_await awaitdb::with_timeout(2s, handle(request));  // its helpers' statements too
///
/// Safe on a multi-threaded executor (on one with several threads, `op` runs on a strand of the
/// caller's executor).
template <class T>
boost::asio::awaitable<T> with_timeout(std::chrono::steady_clock::time_point deadline,
                                       boost::asio::awaitable<T> op,
                                       std::chrono::milliseconds limit = {}) {
  namespace asio = boost::asio;
  if (limit.count() == 0)
    limit =
        std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  detail::deadline_scope scope(co_await asio::this_coro::executor, deadline, limit);
  if (scope.inherited()) co_return co_await std::move(op);
  if (scope.passed()) scope.throw_timed_out();
  try {
    co_return co_await asio::co_spawn(
        scope.executor(), detail::run_until_deadline(scope, std::move(op)),
        asio::bind_cancellation_slot(scope.slot(), asio::use_awaitable));
  } catch (const boost::system::system_error& e) {
    // Cancelled by the deadline (not by the caller): the operation timed out.
    if (e.code() == asio::error::operation_aborted && scope.fired()) scope.throw_timed_out();
    throw;
  }
}

/// The same, `limit` from now.
template <class T, class Rep, class Period>
boost::asio::awaitable<T> with_timeout(std::chrono::duration<Rep, Period> limit,
                                       boost::asio::awaitable<T> op) {
  const auto ms = std::chrono::ceil<std::chrono::milliseconds>(limit);
  return with_timeout(std::chrono::steady_clock::now() + ms, std::move(op),
                      ms.count() > 0 ? ms : std::chrono::milliseconds(1));
}

}  // namespace awaitdb

#endif  // AWAITDB_TIMEOUT_HPP
