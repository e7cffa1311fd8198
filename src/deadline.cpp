#include "deadline.hpp"

#include "task_context.hpp"
#include "util/one_thread.hpp"
#include "util/thread_cache.hpp"
#include <awaitdb/timeout.hpp>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/query.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <atomic>
#include <vector>

namespace awaitdb::detail {

namespace asio = boost::asio;

// Every deadline of one execution context, on one timer. A timer per deadline costs a system
// call to arm and another to cancel (timerfd), more than an SQLite lookup itself; here a
// deadline is linked into a list sorted by time (appended at its end, as deadlines made "now +
// limit" come in order), and the timer is set again only when a deadline earlier than the one
// it waits for comes.
class deadline_timers : public asio::execution_context::service {
 public:
  using key_type = deadline_timers;
  static asio::execution_context::id id;

  explicit deadline_timers(asio::execution_context& context)
      : asio::execution_context::service(context) {}
  ~deadline_timers() override { generation.fetch_add(1, std::memory_order_relaxed); }

  // The service of `executor`'s context, looked up once per thread and context.
  static deadline_timers& of(const asio::any_io_executor& executor) {
    asio::execution_context& context = asio::query(executor, asio::execution::context);
    thread_local asio::execution_context* memo_context = nullptr;
    thread_local deadline_timers* memo = nullptr;
    thread_local std::uint64_t memo_generation = 0;
    const std::uint64_t now = generation.load(std::memory_order_relaxed);
    if (memo_context != &context || memo_generation != now) {
      memo = &asio::use_service<deadline_timers>(context);
      memo_context = &context;
      memo_generation = now;
    }
    return *memo;
  }

  // Links `d`; arms the timer if `d` comes first. `plain`: an executor of the context itself.
  void add(deadline_state& d, const asio::any_io_executor& plain) {
    std::lock_guard lock(mutex_);
    if (shut_down_) return;
    deadline_state* after = last_;
    while (after && after->at_ > d.at_)
      after = after->earlier_;
    d.earlier_ = after;
    d.later_ = after ? after->later_ : first_;
    (after ? after->later_ : first_) = &d;
    (d.later_ ? d.later_->earlier_ : last_) = &d;
    d.timers_.store(this, std::memory_order_relaxed);
    if (!timer_) timer_.emplace(plain);
    if (!armed_ || d.at_ < armed_at_) arm_locked(d.at_);
  }

  void remove(deadline_state& d) noexcept {
    std::lock_guard lock(mutex_);
    if (d.timers_.load(std::memory_order_relaxed) != this) return;
    (d.earlier_ ? d.earlier_->later_ : first_) = d.later_;
    (d.later_ ? d.later_->earlier_ : last_) = d.earlier_;
    d.earlier_ = d.later_ = nullptr;
    d.timers_.store(nullptr, std::memory_order_release);  // (d is not touched after this)
    // The timer stays armed for a deadline that has gone (it finds nothing then, and waits for
    // the next): cancelling it on every removal would cost a system call per operation. But
    // an armed timer is work that keeps `io_context::run()` from returning: once no deadline
    // is left, a posted sweep cancels it, unless a new deadline came meanwhile (the next
    // operation of a loop, before it yields).
    if (!first_ && armed_ && !sweep_posted_ && !shut_down_) {
      try {
        asio::post(timer_->get_executor(), [this] { sweep(); });
        sweep_posted_ = true;
      } catch (...) {
        // (Out of memory: the timer stays armed until its time, as before.)
      }
    }
  }

 private:
  void arm_locked(deadline_state::clock::time_point at) {
    armed_ = true;
    armed_at_ = at;
    timer_->expires_at(at);
    timer_->async_wait([this](boost::system::error_code ec) {
      if (!ec) expired();
    });
  }

  void sweep() {
    std::lock_guard lock(mutex_);
    sweep_posted_ = false;
    if (first_ || !armed_ || shut_down_) return;
    armed_ = false;
    timer_->cancel();
  }

  void expired() {
    std::vector<std::shared_ptr<deadline_state>> due;
    {
      std::lock_guard lock(mutex_);
      armed_ = false;
      const auto now = deadline_state::clock::now();
      while (first_ && first_->at_ <= now) {
        deadline_state& d = *first_;
        // (A deadline being destroyed waits for this lock to unlink itself: skipped.)
        if (auto alive = d.weak_from_this().lock()) due.push_back(std::move(alive));
        first_ = d.later_;
        (first_ ? first_->earlier_ : last_) = nullptr;
        d.earlier_ = d.later_ = nullptr;
        d.timers_.store(nullptr, std::memory_order_release);  // (d is not touched after this)
      }
      if (first_ && !shut_down_) arm_locked(first_->at_);
    }
    // Each on its operation's executor (a strand on a multi-threaded context).
    for (auto& d : due) {
      const asio::any_io_executor ex = d->executor_;
      asio::dispatch(ex, [d = std::move(d)] { d->fire(); });
    }
  }

  void shutdown() override {
    std::lock_guard lock(mutex_);
    shut_down_ = true;
    timer_.reset();
    for (deadline_state* d = first_; d;) {
      deadline_state* const next = d->later_;
      d->timers_.store(nullptr, std::memory_order_release);  // (d is not touched after this)
      d = next;
    }
    first_ = last_ = nullptr;
  }

  static std::atomic<std::uint64_t> generation;

  std::mutex mutex_;
  deadline_state* first_ = nullptr;
  deadline_state* last_ = nullptr;
  std::optional<asio::steady_timer> timer_;
  bool armed_ = false;
  bool sweep_posted_ = false;
  deadline_state::clock::time_point armed_at_{};
  bool shut_down_ = false;
};

asio::execution_context::id deadline_timers::id;
std::atomic<std::uint64_t> deadline_timers::generation{1};

deadline_state::~deadline_state() {
  // Null: unlinked by the timer, which no longer touches this deadline.
  if (deadline_timers* t = timers_.load(std::memory_order_acquire)) t->remove(*this);
}

error deadline_state::timed_out() const {
  return error(sqlstate::query_canceled,
               "timed out after " + std::to_string(limit_.count()) + " ms");
}

void deadline_state::start(const asio::any_io_executor& executor,
                           asio::cancellation_signal* operation) {
  {
    std::lock_guard lock(mutex_);
    operation_ = operation;
    executor_ = executor;
  }
  const asio::any_io_executor& plain = underlying_executor(executor);
  const auto* strand = plain.target<asio::strand<asio::any_io_executor>>();
  deadline_timers::of(executor).add(*this, strand ? strand->get_inner_executor() : plain);
}

void deadline_state::release_operation() noexcept {
  std::lock_guard lock(mutex_);
  operation_ = nullptr;
}

bool deadline_state::operation_started() noexcept {
  std::lock_guard lock(mutex_);
  started_ = true;
  return !fired_;
}

bool deadline_state::fired() const noexcept {
  std::lock_guard lock(mutex_);
  return fired_;
}

void deadline_state::fire() noexcept {
  std::vector<waiter_ptr> ended;
  {
    std::lock_guard lock(mutex_);
    fired_ = true;
    for (const auto& weak : waits_)
      if (waiter_ptr w = weak.lock()) ended.push_back(std::move(w));
    // (On the operation's own executor, or its strand: never while the operation runs. Under
    // the lock: the operation's frame, which holds the signal, cannot end meanwhile.)
    if (operation_ && started_) operation_->emit(asio::cancellation_type::terminal);
  }
  for (const waiter_ptr& w : ended)
    w->notify(waiter::state::timed_out);
}

deadline_state::watch::watch(deadline_state* d, const waiter_ptr& w) {
  if (!d) return;
  state_ = d->shared_from_this();
  std::lock_guard lock(d->mutex_);
  at_ = d->waits_.insert(d->waits_.end(), w);
  if (d->fired_) w->notify(waiter::state::timed_out);  // (registered just after it fired)
}

deadline_state::watch::~watch() {
  if (!state_) return;
  std::lock_guard lock(state_->mutex_);
  state_->waits_.erase(at_);
}

// ---- the public scope of with_timeout

deadline_scope::deadline_scope(const asio::any_io_executor& caller,
                               std::chrono::steady_clock::time_point at,
                               std::chrono::milliseconds limit) {
  if (deadline_state* ambient = task_deadline(caller); ambient && ambient->at() <= at) {
    inherited_ = true;  // an earlier deadline applies already
    return;
  }
  state_ =
      std::allocate_shared<deadline_state>(thread_cache_allocator<deadline_state>(), at, limit);
  if (state_->passed()) return;
  // Where the operation runs: the caller's executor carrying the deadline, on a strand of it
  // when several threads may run it (the deadline's cancellation must not race the operation).
  asio::any_io_executor inner =
      runs_on_one_thread(caller) ? caller : asio::any_io_executor(asio::make_strand(caller));
  executor_ = with_deadline(inner, state_);
  state_->start(inner, &signal_);
}

deadline_scope::~deadline_scope() {
  if (state_) state_->release_operation();
}

bool deadline_scope::passed() const noexcept {
  return state_ && state_->passed();
}

bool deadline_scope::fired() const noexcept {
  return state_ && state_->fired();
}

bool deadline_scope::operation_begins() noexcept {
  return !state_ || state_->operation_started();
}

void deadline_scope::throw_timed_out() const {
  throw state_->timed_out();
}

}  // namespace awaitdb::detail
