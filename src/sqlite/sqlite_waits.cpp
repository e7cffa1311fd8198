#include "sqlite_waits.hpp"

#include "../deadline.hpp"
#include "../sqlstates.hpp"

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <iterator>
#include <string>

namespace awaitdb::detail {

namespace asio = boost::asio;
using clock = std::chrono::steady_clock;

clock::time_point wait_limit(std::chrono::milliseconds patience, const deadline_state* task) {
  const clock::time_point busy = clock::now() + patience;
  return task && task->at() < busy ? task->at() : busy;
}

asio::awaitable<void> back_off_for_lock(int& attempts, clock::time_point deadline,
                                        std::chrono::milliseconds patience,
                                        const deadline_state* task) {
  static constexpr int steps_ms[] = {1, 2, 5, 10, 15, 20, 25, 25, 25, 50};
  const clock::time_point now = clock::now();
  if (now >= deadline) waited_out(task, still_locked_error(patience));
  const auto step = std::chrono::milliseconds(
      steps_ms[std::min<std::size_t>(static_cast<std::size_t>(attempts), std::size(steps_ms) - 1)]);
  ++attempts;
  asio::steady_timer timer(co_await asio::this_coro::executor,
                           std::min<clock::duration>(step, deadline - now));
  co_await timer.async_wait(asio::use_awaitable);
}

void waited_out(const deadline_state* task, error busy) {
  if (task && task->passed()) throw task->timed_out();
  throw busy;
}

error still_locked_error(std::chrono::milliseconds patience) {
  return error(code::lock_not_available,
               "the database is locked by another connection (another process, or another "
               "database handle on the same file): still locked after " +
                   std::to_string(patience.count()) + " ms (busy_timeout)");
}

error waited_for_transaction_error(std::chrono::milliseconds patience) {
  return error(code::lock_not_available,
               "waited " + std::to_string(patience.count()) +
                   " ms (busy_timeout) for another task's transaction to end. Work started inside "
                   "a transaction on an executor that does not carry its task context waits for "
                   "that transaction: await it in the transaction's task, or spawn it on co_await "
                   "asio::this_coro::executor");
}

}  // namespace awaitdb::detail
