// awaitdb: a deadline for one operation — a statement, or a whole transaction.
//
// Kept apart from database.hpp: it brings in Asio's parallel group, which a translation unit
// that sets no deadline need not compile.
#ifndef AWAITDB_TIMEOUT_HPP
#define AWAITDB_TIMEOUT_HPP

#include <awaitdb/error.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <exception>
#include <string>
#include <type_traits>
#include <utility>

namespace awaitdb {

/// Runs `op` (`db.query(...)`, `db.transaction(...)`, any awaitable) with a deadline. When
/// `limit` passes first, `op` is cancelled — a statement is stopped on the server, a
/// transaction rolled back — and this throws `awaitdb::error` 57014 ("timed out after N ms").
/// A failure of `op` before the deadline is rethrown at once.
///
///     result r = co_await awaitdb::with_timeout(200ms, db.query("SELECT slow()"));
namespace detail {

// The race itself, run on a strand: Asio's cancellation is not thread-safe, and the group's
// branches would otherwise complete (and cancel each other) on different threads of a
// multi-threaded executor.
template <class T>
boost::asio::awaitable<T> race_deadline(std::chrono::milliseconds limit,
                                        boost::asio::awaitable<T> op) {
  namespace asio = boost::asio;
  auto ex = co_await asio::this_coro::executor;
  asio::steady_timer timer(ex, limit);
  // The first to complete wins; the other is cancelled.
  auto first = asio::experimental::make_parallel_group(
      asio::co_spawn(ex, std::move(op), asio::deferred), timer.async_wait(asio::deferred));
  auto settle = [&](const auto& order, const std::exception_ptr& failure) {
    if (order[0] == 1)
      throw error(sqlstate::query_canceled,
                  "timed out after " + std::to_string(limit.count()) + " ms");
    if (failure) std::rethrow_exception(failure);
  };
  if constexpr (std::is_void_v<T>) {
    auto [order, failure, timer_ec] = co_await std::move(first).async_wait(
        asio::experimental::wait_for_one(), asio::use_awaitable);
    (void)timer_ec;
    settle(order, failure);
  } else {
    auto [order, failure, value, timer_ec] = co_await std::move(first).async_wait(
        asio::experimental::wait_for_one(), asio::use_awaitable);
    (void)timer_ec;
    settle(order, failure);
    co_return std::move(value);
  }
}

}  // namespace detail

/// Runs `op` (`db.query(...)`, `db.transaction(...)`, any awaitable) with a deadline. When
/// `limit` passes first, `op` is cancelled — a statement is stopped on the server, a
/// transaction rolled back — and this throws `awaitdb::error` 57014 ("timed out after N ms").
/// A failure of `op` before the deadline is rethrown at once.
///
///     result r = co_await awaitdb::with_timeout(200ms, db.query("SELECT slow()"));
///
/// Safe on a multi-threaded executor: `op` and its timer run on a strand of the caller's
/// executor, so the cancellation the deadline sends never races with `op` itself.
template <class T>
boost::asio::awaitable<T> with_timeout(std::chrono::milliseconds limit,
                                       boost::asio::awaitable<T> op) {
  namespace asio = boost::asio;
  auto strand = asio::make_strand(co_await asio::this_coro::executor);
  co_return co_await asio::co_spawn(strand, detail::race_deadline(limit, std::move(op)),
                                    asio::use_awaitable);
}

}  // namespace awaitdb

#endif  // AWAITDB_TIMEOUT_HPP
