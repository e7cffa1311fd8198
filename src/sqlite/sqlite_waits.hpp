// How an SQLite statement waits for a lock that another connection holds, and what it says when
// it gives up: SQLite's own busy handler's steps, on an Asio timer (never sleeping inside
// SQLite), until busy_timeout or the task's deadline, whichever ends first.
#ifndef AWAITDB_SRC_SQLITE_SQLITE_WAITS_HPP
#define AWAITDB_SRC_SQLITE_SQLITE_WAITS_HPP

#include <awaitdb/error.hpp>

#include <boost/asio/awaitable.hpp>

#include <chrono>

namespace awaitdb::detail {

class deadline_state;

/// The end of a wait for a lock: `patience` (busy_timeout) from now, or the task's deadline
/// when that comes first.
std::chrono::steady_clock::time_point wait_limit(std::chrono::milliseconds patience,
                                                 const deadline_state* task);

/// Waits before the next attempt of a statement that found a lock taken (`attempts` counts
/// them). Once `deadline` has passed, throws instead: the task's deadline error when that is
/// what passed, else `still_locked_error(patience)`.
boost::asio::awaitable<void> back_off_for_lock(int& attempts,
                                               std::chrono::steady_clock::time_point deadline,
                                               std::chrono::milliseconds patience,
                                               const deadline_state* task = nullptr);

/// A wait ended at its limit: throws the task's deadline error when that is what passed, else
/// `busy`.
[[noreturn]] void waited_out(const deadline_state* task, error busy);

/// 55P03: another connection still holds the lock after `patience`.
error still_locked_error(std::chrono::milliseconds patience);
/// 55P03: another task's transaction still holds the writer after `patience`.
error waited_for_transaction_error(std::chrono::milliseconds patience);

}  // namespace awaitdb::detail

#endif  // AWAITDB_SRC_SQLITE_SQLITE_WAITS_HPP
