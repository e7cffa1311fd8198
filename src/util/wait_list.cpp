#include "wait_list.hpp"

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>

#include <exception>
#include <list>
#include <mutex>

namespace awaitdb::detail {

namespace asio = boost::asio;
using boost::system::error_code;

namespace {
enum class node_state { pending, signalled, timed_out, cancelled };
using handler_type = asio::any_completion_handler<void(error_code, node_state)>;
}  // namespace

struct wait_list::node {
  node_state state = node_state::pending;
  bool linked = false;
  std::list<ticket>::iterator position;
  std::optional<handler_type> handler;
  asio::any_io_executor executor;  // where the waiting coroutine resumes
};

struct wait_list::impl {
  mutable std::mutex mutex;
  std::list<ticket> queue;

  void unlink(node& n) {
    if (n.linked) {
      queue.erase(n.position);
      n.linked = false;
    }
  }

  // Moves a pending ticket to its final state (lock held); returns its parked waiter, if any.
  std::optional<handler_type> take_locked(node& n, node_state final_state,
                                          asio::any_io_executor& executor) {
    std::optional<handler_type> handler;
    if (n.state != node_state::pending) return handler;
    n.state = final_state;
    unlink(n);
    handler.swap(n.handler);
    executor = n.executor;
    return handler;
  }

  void finish(const ticket& t, node_state final_state) {
    asio::any_io_executor executor;
    std::unique_lock lock(mutex);
    auto handler = take_locked(*t, final_state, executor);
    lock.unlock();
    if (handler) resume(executor, std::move(*handler), final_state);
  }

  static void resume(const asio::any_io_executor& executor, handler_type handler,
                     node_state state) {
    asio::post(executor, [h = std::move(handler), state]() mutable {
      asio::get_associated_cancellation_slot(h).clear();
      std::move(h)(error_code(), state);
    });
  }

  void park(const ticket& t, handler_type handler, asio::any_io_executor executor) {
    std::unique_lock lock(mutex);
    if (t->state != node_state::pending) {
      node_state state = t->state;
      lock.unlock();
      resume(executor, std::move(handler), state);
      return;
    }
    auto slot = asio::get_associated_cancellation_slot(handler);
    t->handler.emplace(std::move(handler));
    t->executor = std::move(executor);
    if (slot.is_connected()) {
      std::weak_ptr<node> weak = t;
      slot.assign([this, weak](asio::cancellation_type) {
        if (auto n = weak.lock()) finish(n, node_state::cancelled);
      });
    }
  }
};

wait_list::wait_list() : impl_(std::make_shared<impl>()) {}
wait_list::~wait_list() = default;

wait_list::ticket wait_list::enqueue() {
  auto t = std::make_shared<node>();
  std::lock_guard lock(impl_->mutex);
  t->position = impl_->queue.insert(impl_->queue.end(), t);
  t->linked = true;
  return t;
}

asio::awaitable<wait_list::outcome> wait_list::wait(
    ticket t, std::optional<std::chrono::steady_clock::time_point> deadline) {
  std::shared_ptr<impl> self = impl_;
  auto executor = co_await asio::this_coro::executor;
  std::optional<asio::steady_timer> timer;
  if (deadline) {
    timer.emplace(executor, *deadline);
    timer->async_wait([self, t](error_code ec) {
      if (!ec) self->finish(t, node_state::timed_out);
    });
  }
  // A named initiation: GCC 12 destroys the captures of a lambda written inside a co_await
  // expression twice.
  auto park = [self, t, executor](handler_type handler) {
    self->park(t, std::move(handler), executor);
  };
  node_state state =
      co_await asio::async_initiate<decltype(asio::use_awaitable), void(error_code, node_state)>(
          std::move(park), asio::use_awaitable);
  if (timer) timer->cancel();
  switch (state) {
    case node_state::signalled:
      co_return outcome::signalled;
    case node_state::timed_out:
      co_return outcome::timed_out;
    default:
      throw boost::system::system_error(asio::error::operation_aborted);
  }
}

asio::awaitable<wait_list::outcome> wait_list::wait(
    std::unique_lock<std::mutex>& held,
    std::optional<std::chrono::steady_clock::time_point> deadline,
    const std::function<void()>& unused_signal) {
  ticket t = enqueue();
  held.unlock();
  std::exception_ptr failure;
  outcome result = outcome::timed_out;
  try {
    result = co_await wait(t, deadline);
  } catch (...) {
    failure = std::current_exception();
  }
  if (failure) {
    if (abandon(t) && unused_signal) unused_signal();
    std::rethrow_exception(failure);
  }
  co_return result;
}

void wait_list::notify(const ticket& t) {
  impl_->finish(t, node_state::signalled);
}

bool wait_list::notify_one() {
  std::unique_lock lock(impl_->mutex);
  while (!impl_->queue.empty()) {
    ticket t = impl_->queue.front();
    if (t->state != node_state::pending) {
      impl_->unlink(*t);
      continue;
    }
    asio::any_io_executor executor;
    auto handler = impl_->take_locked(*t, node_state::signalled, executor);
    lock.unlock();
    if (handler) impl::resume(executor, std::move(*handler), node_state::signalled);
    return true;
  }
  return false;
}

void wait_list::notify_all() {
  while (notify_one()) {
  }
}

bool wait_list::abandon(const ticket& t) noexcept {
  std::lock_guard lock(impl_->mutex);
  impl_->unlink(*t);
  bool signalled = t->state == node_state::signalled;
  if (t->state == node_state::pending) t->state = node_state::cancelled;
  t->handler.reset();
  return signalled;
}

std::size_t wait_list::size() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->queue.size();
}

}  // namespace awaitdb::detail
