// The task context: which transactions the running task is inside.
//
// It is carried by the task's executor. `database::transaction` runs its body on the caller's
// executor wrapped in `tx_executor`, which holds the innermost transaction level. Everything
// started from the body with `co_await this_coro::executor` (called coroutines, `co_spawn`,
// the awaitable operators, timers) inherits it, on any thread, and nothing else sees it.
#ifndef AWAITDB_SRC_TASK_CONTEXT_HPP
#define AWAITDB_SRC_TASK_CONTEXT_HPP

#include <boost/asio/any_io_executor.hpp>

#include <memory>
#include <string>
#include <string_view>

namespace awaitdb::detail {

class backend;
class tx_state;
class deadline_state;

/// `current` with `innermost` as its task context (replacing any context it had).
boost::asio::any_io_executor with_transaction(const boost::asio::any_io_executor& current,
                                              std::shared_ptr<tx_state> innermost);

/// `current` with `label` as its task's label (awaitdb::with_label), keeping its transaction.
/// (Declared in <awaitdb/observer.hpp> too.)
boost::asio::any_io_executor with_label(const boost::asio::any_io_executor& current,
                                        std::string label);

/// `current` with `deadline` as its task's deadline (awaitdb::with_timeout), keeping the rest.
/// (The caller has made it the earlier of the new one and any the task had.)
boost::asio::any_io_executor with_deadline(const boost::asio::any_io_executor& current,
                                           std::shared_ptr<deadline_state> deadline);

/// The deadline of the task running on `ex`, or null.
deadline_state* task_deadline(const boost::asio::any_io_executor& ex) noexcept;

/// The executor `ex` runs its handlers on: the wrapped one when `ex` carries a task context,
/// else `ex` itself.
const boost::asio::any_io_executor& underlying_executor(
    const boost::asio::any_io_executor& ex) noexcept;

/// The label of the task running on `ex`, or empty.
std::string_view task_label(const boost::asio::any_io_executor& ex) noexcept;

/// The innermost transaction level of the task running on `ex`, of any backend, or null.
tx_state* innermost_transaction(const boost::asio::any_io_executor& ex) noexcept;

/// What the task running on `ex` carries (one look-up for a statement's start).
struct task_view {
  tx_state* innermost = nullptr;       // its innermost transaction level, of any backend
  deadline_state* deadline = nullptr;  // its deadline
};
task_view task_of(const boost::asio::any_io_executor& ex) noexcept;

/// The level of `innermost`'s chain that belongs to `owner`, or null.
tx_state* transaction_of(tx_state* innermost, const backend& owner) noexcept;

/// The innermost transaction level of the task running on `ex` that belongs to `owner`, or null.
tx_state* find_transaction(const boost::asio::any_io_executor& ex, const backend& owner) noexcept;

}  // namespace awaitdb::detail

#endif  // AWAITDB_SRC_TASK_CONTEXT_HPP
