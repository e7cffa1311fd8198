// A mutex whose uncontended lock, try_lock and unlock are one atomic instruction each, inline
// (std::mutex calls into the threads library for each). For a lock taken around every statement
// and rarely contended: a SQLite reader connection. A contended lock sleeps (a futex wait
// through std::atomic::wait), it does not spin.
#ifndef AWAITDB_SRC_UTIL_LIGHT_MUTEX_HPP
#define AWAITDB_SRC_UTIL_LIGHT_MUTEX_HPP

#include <atomic>

namespace awaitdb::detail {

class light_mutex {
 public:
  light_mutex() = default;
  light_mutex(const light_mutex&) = delete;
  light_mutex& operator=(const light_mutex&) = delete;

  bool try_lock() noexcept {
    int expected = free;
    return state_.compare_exchange_strong(expected, held, std::memory_order_acquire,
                                          std::memory_order_relaxed);
  }

  void lock() noexcept {
    if (try_lock()) return;
    // Contended: mark that someone sleeps, and sleep until the holder lets go.
    while (state_.exchange(held_with_sleepers, std::memory_order_acquire) != free)
      state_.wait(held_with_sleepers, std::memory_order_relaxed);
  }

  void unlock() noexcept {
    if (state_.exchange(free, std::memory_order_release) == held_with_sleepers) state_.notify_one();
  }

 private:
  static constexpr int free = 0, held = 1, held_with_sleepers = 2;
  std::atomic<int> state_{free};
};

}  // namespace awaitdb::detail

#endif
