// A FIFO mutex for coroutines: `lock` suspends (never blocks the thread) and ownership passes
// directly to the oldest waiter on `unlock`, so a late arrival cannot overtake a waiting task.
#ifndef AWAITDB_SRC_UTIL_ASYNC_MUTEX_HPP
#define AWAITDB_SRC_UTIL_ASYNC_MUTEX_HPP

#include "wait_list.hpp"

#include <boost/asio/awaitable.hpp>

#include <exception>
#include <mutex>

namespace awaitdb::detail {

class async_mutex {
 public:
  /// Takes the mutex if it is free (returns null) or joins the queue (returns the ticket to
  /// `wait_turn` on). Synchronous: the place in line is taken when this returns.
  wait_list::ticket lock_or_enqueue() {
    std::lock_guard guard(mutex_);
    if (!locked_) {
      locked_ = true;
      return nullptr;
    }
    return waiters_.enqueue();
  }

  /// Waits for a ticket from `lock_or_enqueue`; owns the mutex when it returns. If cancelled,
  /// throws and does not own it. Only for a coroutine that cannot have been cancelled before
  /// this call (a fresh detached one): otherwise use `lock`.
  boost::asio::awaitable<void> wait_turn(wait_list::ticket t) {
    if (!t) co_return;
    std::exception_ptr failure;
    try {
      co_await waiters_.wait(t);
    } catch (...) {
      failure = std::current_exception();
    }
    if (failure) {
      // Ownership may have been handed over just as the wait was cancelled: pass it on.
      if (waiters_.abandon(t)) unlock();
      std::rethrow_exception(failure);
    }
  }

  boost::asio::awaitable<void> lock() {
    // Enqueue and wait in the same frame: see wait_list::wait.
    wait_list::ticket t = lock_or_enqueue();
    if (!t) co_return;
    std::exception_ptr failure;
    try {
      co_await waiters_.wait(t);
    } catch (...) {
      failure = std::current_exception();
    }
    if (failure) {
      if (waiters_.abandon(t)) unlock();
      std::rethrow_exception(failure);
    }
  }

  void unlock() {
    std::lock_guard guard(mutex_);
    if (!waiters_.notify_one()) locked_ = false;  // else ownership passed on
  }

 private:
  std::mutex mutex_;
  bool locked_ = false;
  wait_list waiters_;
};

}  // namespace awaitdb::detail

#endif  // AWAITDB_SRC_UTIL_ASYNC_MUTEX_HPP
