#include "parking.hpp"

#include "../task_context.hpp"

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/query.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>

#include <atomic>
#include <vector>

namespace awaitdb::detail {

namespace asio = boost::asio;
using boost::system::error_code;

// The handlers parked by tasks of one execution context. Lock order: a waiter's mutex is never
// held while this one is taken, nor the other way round.
class parked_registry : public asio::execution_context::service {
 public:
  using key_type = parked_registry;
  static asio::execution_context::id id;

  explicit parked_registry(asio::execution_context& context)
      : asio::execution_context::service(context) {}
  ~parked_registry() override { generation.fetch_add(1, std::memory_order_relaxed); }

  // Links `w`; false (and nothing linked) when the context is shutting down.
  bool link(waiter& w) {
    std::lock_guard lock(mutex_);
    if (shut_down_) return false;
    if (w.registry_) return true;
    w.registry_ = this;
    w.prev_ = nullptr;
    w.next_ = head_;
    if (head_) head_->prev_ = &w;
    head_ = &w;
    return true;
  }

  void unlink(waiter& w) noexcept {
    std::lock_guard lock(mutex_);
    unlink_locked(w);
  }

  // The registry of the context that `executor` belongs to. use_service takes a lock and scans
  // the context's services; a per-thread memo skips that on the hot path. (A memo is dropped
  // whenever any registry is destroyed, since its context's address may be reused.)
  template <class Executor>
  static parked_registry& of(const Executor& executor) {
    asio::execution_context& context = asio::query(executor, asio::execution::context);
    thread_local asio::execution_context* memo_context = nullptr;
    thread_local parked_registry* memo_registry = nullptr;
    thread_local std::uint64_t memo_generation = 0;
    const std::uint64_t now = generation.load(std::memory_order_relaxed);
    if (memo_context != &context || memo_generation != now) {
      memo_registry = &asio::use_service<parked_registry>(context);
      memo_context = &context;
      memo_generation = now;
    }
    return *memo_registry;
  }

 private:
  void shutdown() override {
    std::vector<waiter_ptr> parked;
    {
      std::lock_guard lock(mutex_);
      shut_down_ = true;
      while (head_) {
        waiter& w = *head_;
        if (waiter_ptr alive = w.weak_from_this().lock()) parked.push_back(std::move(alive));
        unlink_locked(w);
      }
    }
    // Outside the lock: destroying a coroutine frame runs destructors that may unlink others.
    for (const waiter_ptr& w : parked)
      w->drop();
  }

  void unlink_locked(waiter& w) noexcept {
    if (w.registry_ != this) return;
    if (w.prev_) w.prev_->next_ = w.next_;
    if (w.next_) w.next_->prev_ = w.prev_;
    if (head_ == &w) head_ = w.next_;
    w.prev_ = w.next_ = nullptr;
    w.registry_ = nullptr;
  }

  static std::atomic<std::uint64_t> generation;

  std::mutex mutex_;
  waiter* head_ = nullptr;
  bool shut_down_ = false;
};

asio::execution_context::id parked_registry::id;
std::atomic<std::uint64_t> parked_registry::generation{1};

namespace {

void complete(waiter::handler_type& h, waiter::state final_state) {
  asio::get_associated_cancellation_slot(h).clear();
  const error_code ec = final_state == waiter::state::cancelled
                            ? error_code(asio::error::operation_aborted)
                            : error_code();
  std::move(h)(ec, final_state);
}

void resume(waiter::handler_type handler, const asio::any_io_executor& executor,
            waiter::state final_state) {
  auto later = [h = std::move(handler), final_state]() mutable { complete(h, final_state); };
  asio::post(executor, std::move(later));
}

// True when the calling thread runs `executor` for certain, so that a handler may be called
// here as `dispatch` would call it. Asks the executors Asio's contexts hand out, strands of them,
// and looks through the wrapper that carries a task's context (a transaction's body runs on
// one); any other executor gets false (and `dispatch` decides).
bool runs_here(const asio::any_io_executor& executor) {
  const asio::any_io_executor& ex = underlying_executor(executor);
  if (const auto* io = ex.target<asio::io_context::executor_type>())
    return io->running_in_this_thread();
  if (const auto* pool = ex.target<asio::thread_pool::executor_type>())
    return pool->running_in_this_thread();
  if (const auto* strand = ex.target<asio::strand<asio::any_io_executor>>())
    return strand->running_in_this_thread();
  return false;
}

}  // namespace

waiter::~waiter() {
  if (parked_registry* r = registry_) r->unlink(*this);
}

void waiter::park(handler_type handler, asio::any_io_executor executor) {
  // Once the handler is stored, another thread may resume the task, which may release this
  // waiter before this function returns: keep it, and link it first.
  const waiter_ptr keep = shared_from_this();
  if (!parked_registry::of(executor).link(*this)) return;  // shutting down: never resume
  std::unique_lock lock(mutex_);
  if (state_ != state::pending) {
    const state final_state = state_;
    lock.unlock();
    resume(std::move(handler), executor, final_state);
    return;
  }
  auto slot = asio::get_associated_cancellation_slot(handler);
  handler.swap(handler_);  // (Asio 1.26's move assignment of this type recurses forever)
  executor_ = std::move(executor);
  if (slot.is_connected()) {
    std::weak_ptr<waiter> weak = weak_from_this();
    slot.assign([weak](asio::cancellation_type) {
      if (waiter_ptr w = weak.lock()) {
        std::unique_lock guard(w->mutex_);
        if (w->state_ != state::pending) return;
        w->state_ = state::cancelled;
        handler_type h(std::move(w->handler_));
        asio::any_io_executor ex = std::move(w->executor_);
        guard.unlock();
        if (h) resume(std::move(h), ex, state::cancelled);
      }
    });
  }
}

bool waiter::notify(state final_state) {
  handler_type h;
  asio::any_io_executor ex;
  {
    std::lock_guard lock(mutex_);
    if (state_ != state::pending) return false;
    state_ = final_state;
    h.swap(handler_);
    ex = std::move(executor_);
  }
  if (h) resume(std::move(h), ex, final_state);
  return true;
}

bool waiter::notify_here(waiter_ptr self) {
  handler_type h;
  asio::any_io_executor ex;
  {
    std::lock_guard lock(self->mutex_);
    if (self->state_ != state::pending) return false;
    self->state_ = state::signalled;
    h.swap(self->handler_);
    ex = std::move(self->executor_);
  }
  self.reset();
  if (!h) return true;
  // Called directly when this thread runs the task's context: `dispatch` through an
  // any_io_executor would wrap the call in a function object first.
  if (runs_here(ex)) {
    complete(h, state::signalled);
    return true;
  }
  auto now = [h = std::move(h)]() mutable { complete(h, state::signalled); };
  asio::dispatch(ex, std::move(now));
  return true;
}

bool waiter::abandon() noexcept {
  handler_type h;
  asio::any_io_executor ex;
  bool was_signalled;
  {
    std::lock_guard lock(mutex_);
    was_signalled = state_ == state::signalled;
    if (state_ == state::pending) state_ = state::cancelled;
    h.swap(handler_);
    ex = std::move(executor_);
  }
  if (h) resume(std::move(h), ex, state::cancelled);
  return was_signalled;
}

waiter::state waiter::current() const {
  std::lock_guard lock(mutex_);
  return state_;
}

void waiter::drop() noexcept {
  handler_type h;
  asio::any_io_executor ex;
  {
    std::lock_guard lock(mutex_);
    if (state_ == state::pending) state_ = state::cancelled;
    h.swap(handler_);
    ex = std::move(executor_);
  }
  // `h` is destroyed here, unresumed.
}

}  // namespace awaitdb::detail
