// Notification subscriptions: the engine-neutral half (a queue per subscription).
#ifndef AWAITDB_SRC_LISTEN_HPP
#define AWAITDB_SRC_LISTEN_HPP

#include "util/parking.hpp"
#include <awaitdb/listen.hpp>

#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <string>

namespace awaitdb::detail {

/// One subscription's notifications, queued by the engine (from any thread) until read.
class subscription_state {
 public:
  explicit subscription_state(std::string channel) : channel_(std::move(channel)) {}
  ~subscription_state();
  subscription_state(const subscription_state&) = delete;
  subscription_state& operator=(const subscription_state&) = delete;

  const std::string& channel() const noexcept { return channel_; }
  /// Called once the subscription is gone (the engine stops listening when none is left).
  void on_release(std::function<void()> f) { release_ = std::move(f); }

  void deliver(notification n);
  /// Notifications may have been missed: a gap, unless the last one queued is a gap already.
  void gap();
  /// No more notifications: `next()` throws `why` once the queue is empty.
  void fail(std::exception_ptr why);

  boost::asio::awaitable<notification> next();

 private:
  const std::string channel_;
  std::function<void()> release_;
  std::mutex mutex_;
  std::deque<notification> queue_;
  std::exception_ptr failure_;
  waiter_ptr reader_;  // a `next()` waiting
};

}  // namespace awaitdb::detail

#endif  // AWAITDB_SRC_LISTEN_HPP
