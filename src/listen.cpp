#include "listen.hpp"

#include <awaitdb/error.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/error.hpp>
#include <boost/system/system_error.hpp>

namespace awaitdb {

subscription::subscription(std::shared_ptr<detail::subscription_state> state) noexcept
    : state_(std::move(state)) {}
subscription::subscription(subscription&&) noexcept = default;
subscription& subscription::operator=(subscription&&) noexcept = default;
subscription::~subscription() = default;

boost::asio::awaitable<notification> subscription::next() {
  if (!state_) throw error(sqlstate::connection_does_not_exist, "not subscribed to a channel");
  co_return co_await state_->next();
}

namespace detail {

subscription_state::~subscription_state() {
  if (release_) release_();
}

void subscription_state::deliver(notification n) {
  waiter_ptr w;
  {
    std::lock_guard lock(mutex_);
    queue_.push_back(std::move(n));
    w = std::move(reader_);
  }
  if (w) w->notify();
}

void subscription_state::gap() {
  waiter_ptr w;
  {
    std::lock_guard lock(mutex_);
    if (!queue_.empty() && queue_.back().gap) return;
    notification n;
    n.gap = true;
    n.channel = channel_;
    queue_.push_back(std::move(n));
    w = std::move(reader_);
  }
  if (w) w->notify();
}

void subscription_state::fail(std::exception_ptr why) {
  waiter_ptr w;
  {
    std::lock_guard lock(mutex_);
    if (!failure_) failure_ = std::move(why);
    w = std::move(reader_);
  }
  if (w) w->notify();
}

boost::asio::awaitable<notification> subscription_state::next() {
  for (;;) {
    waiter_ptr w;
    {
      std::lock_guard lock(mutex_);
      if (!queue_.empty()) {
        notification n = std::move(queue_.front());
        queue_.pop_front();
        co_return n;
      }
      if (failure_) {
        try {
          std::rethrow_exception(failure_);
        } catch (const error& e) {
          throw error(e);  // a copy of its own for this thread
        }
      }
      w = std::make_shared<waiter>();
      reader_ = w;
    }
    auto [ec, outcome] = co_await w->async_wait(boost::asio::as_tuple(boost::asio::deferred));
    (void)outcome;
    if (ec == boost::asio::error::operation_aborted) {
      std::lock_guard lock(mutex_);
      if (reader_ == w) reader_.reset();
      throw boost::system::system_error(ec);
    }
  }
}

}  // namespace detail
}  // namespace awaitdb
