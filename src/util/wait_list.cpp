#include "wait_list.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/system/system_error.hpp>

#include <algorithm>
#include <exception>

namespace awaitdb::detail {

namespace asio = boost::asio;
using boost::system::error_code;

wait_list::ticket wait_list::enqueue() {
  auto t = std::make_shared<waiter>();
  std::lock_guard lock(mutex_);
  queue_.push_back(t);
  return t;
}

asio::awaitable<wait_list::outcome> wait_list::wait(
    ticket t, std::optional<std::chrono::steady_clock::time_point> deadline) {
  std::optional<asio::steady_timer> timer;
  if (deadline) {
    timer.emplace(co_await asio::this_coro::executor, *deadline);
    std::weak_ptr<waiter> weak = t;
    timer->async_wait([weak](error_code ec) {
      if (auto w = weak.lock(); w && !ec) w->notify(waiter::state::timed_out);
    });
  }
  auto [ec, state] = co_await t->async_wait(asio::as_tuple(asio::deferred));
  if (timer) timer->cancel();
  if (ec) throw boost::system::system_error(ec);
  co_return state == waiter::state::timed_out ? outcome::timed_out : outcome::signalled;
}

asio::awaitable<wait_list::outcome> wait_list::wait(
    std::unique_lock<std::mutex>& held,
    std::optional<std::chrono::steady_clock::time_point> deadline,
    const std::function<void()>& unused_signal) {
  ticket t = enqueue();
  held.unlock();
  // A wait destroyed unfinished (its execution context went away) after its signal came passes
  // the signal on, as a cancelled one does.
  struct pass_on_if_dropped {
    wait_list& list;
    const ticket& t;
    const std::function<void()>& unused_signal;
    bool armed = true;
    ~pass_on_if_dropped() {
      if (armed && list.abandon(t) && unused_signal) unused_signal();
    }
  } dropped{*this, t, unused_signal};
  std::exception_ptr failure;
  outcome result = outcome::timed_out;
  try {
    result = co_await wait(t, deadline);
  } catch (...) {
    failure = std::current_exception();
  }
  dropped.armed = false;
  if (failure) {
    if (abandon(t) && unused_signal) unused_signal();
    std::rethrow_exception(failure);
  }
  if (result == outcome::timed_out) abandon(t);
  co_return result;
}

void wait_list::notify(const ticket& t) {
  {
    std::lock_guard lock(mutex_);
    auto it = std::find(queue_.begin(), queue_.end(), t);
    if (it != queue_.end()) queue_.erase(it);
  }
  t->notify();
}

bool wait_list::notify_one() {
  for (;;) {
    ticket t;
    {
      std::lock_guard lock(mutex_);
      if (queue_.empty()) return false;
      t = std::move(queue_.front());
      queue_.pop_front();
    }
    if (t->notify()) return true;  // (a ticket that timed out or was cancelled is skipped)
  }
}

void wait_list::notify_all() {
  while (notify_one()) {
  }
}

bool wait_list::abandon(const ticket& t) noexcept {
  {
    std::lock_guard lock(mutex_);
    auto it = std::find(queue_.begin(), queue_.end(), t);
    if (it != queue_.end()) queue_.erase(it);
  }
  return t->abandon();
}

std::size_t wait_list::size() const {
  std::lock_guard lock(mutex_);
  std::size_t n = 0;
  for (const ticket& t : queue_)
    if (t->current() == waiter::state::pending) ++n;
  return n;
}

}  // namespace awaitdb::detail
