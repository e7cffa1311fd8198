// The pool's opening of connections (with the pause after failures), its upkeep (minimum size,
// lifetimes, idle timeout, dead idle connections) and its closing. Lending: pool.cpp.
#include "../util/backoff.hpp"
#include "../util/context_guard.hpp"
#include "pool.hpp"
#include "pool_internal.hpp"
#include <awaitdb/error.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/post.hpp>
#include <boost/system/system_error.hpp>

#include <algorithm>
#include <string>

namespace awaitdb::detail {

namespace asio = boost::asio;

// ---- opening

connection_pool::opening_claim::~opening_claim() {
  if (!pool_) return;
  after_unlock then(*pool_);
  std::lock_guard lock(pool_->mutex_);
  pool_->opening_ended_locked(kind_, then);
}

void connection_pool::opening_ended_locked(lease_kind kind, after_unlock& then) {
  --opening_;
  if (kind == lease_kind::shared) --opening_shared_;
  // The slot is free again (or taken by the new connection): others may use it.
  dispatch_locked(then);
  notify_if_all_gone_locked();
}

// Opens the connection a task was granted the slot for. After failed opens it first waits out
// the pause (pool_options::connect_backoff), or fails at once with the last failure when the
// pause outlasts the task's deadline.
asio::awaitable<std::shared_ptr<pooled_connection>> connection_pool::open_new(
    opening_claim claim, pool_clock::time_point deadline) {
  const lease_kind kind = claim.kind();
  pool_clock::duration pause{};
  {
    std::lock_guard lock(mutex_);
    if (open_failures_ > 0) pause = next_open_at_ - clock_();
    // The next attempt is due past this task's deadline: it gives up (the caller then fails
    // with the last attempt's error).
    if (pause > pool_clock::duration::zero() && deadline - pool_clock::now() < pause)
      co_return nullptr;
  }
  if (pause > pool_clock::duration::zero()) {
    // (Cut short by close, which signals every pause.)
    std::unique_lock lock(mutex_);
    if (!closed_) {
      co_await pausing_.wait(lock, pool_clock::now() + pause);
      lock.lock();
    }
    if (closed_) throw error(sqlstate::connection_does_not_exist, "the database is closed");
  }
  const auto attempt_at = clock_();
  std::shared_ptr<pooled_connection> c;
  std::exception_ptr failure;
  try {
    c = co_await open_();
  } catch (...) {
    failure = std::current_exception();
  }
  {
    after_unlock then(*this);
    std::lock_guard lock(mutex_);
    claim.settled();
    record_open_outcome_locked(failure, attempt_at);
    if (!failure && closed_) {
      failure = std::make_exception_ptr(
          error(sqlstate::connection_does_not_exist, "the database is closed"));
    }
    if (!failure) {
      c->pool_ = weak_from_this();
      slot s;
      s.conn = c;
      s.state = kind == lease_kind::exclusive ? status::exclusive : status::shared;
      s.claims = kind == lease_kind::shared ? 1 : 0;
      s.slow_claims = kind == lease_kind::shared && claim.slow() ? 1 : 0;
      s.opened_at = clock_();
      s.expires_at = lifetime_end_locked(s.opened_at);
      slots_.push_back(std::move(s));
      arm_upkeep_locked();
    }
    opening_ended_locked(kind, then);
  }
  if (failure) {
    if (c) c->close();
    std::rethrow_exception(failure);
  }
  co_return c;
}

// When a connection opened at `opened` retires: its lifetime shortened by up to 1/40
// (xorshift32), so that connections opened together do not all retire together.
pool_clock::time_point connection_pool::lifetime_end_locked(pool_clock::time_point opened) {
  if (options_.max_lifetime.count() == 0) return pool_clock::time_point::max();
  lifetime_jitter_ ^= lifetime_jitter_ << 13;
  lifetime_jitter_ ^= lifetime_jitter_ >> 17;
  lifetime_jitter_ ^= lifetime_jitter_ << 5;
  const auto lifetime = std::chrono::duration_cast<pool_clock::duration>(options_.max_lifetime);
  return opened + lifetime - lifetime / 40'000 * (lifetime_jitter_ % 1000);
}

// ---- upkeep

bool connection_pool::expired_locked(const slot& s, pool_clock::time_point now) const {
  return now >= s.expires_at;
}

void connection_pool::retire_locked(std::size_t index, after_unlock& then) {
  then.to_close.push_back(slots_[index].conn);
  slots_.erase(slots_.begin() + static_cast<std::ptrdiff_t>(index));
  notify_if_all_gone_locked();
}

void connection_pool::upkeep_locked(after_unlock& then) {
  const auto now = clock_();
  auto unused = [&](const slot& s) {
    return s.state == status::idle || (s.state == status::shared && quiet_locked(s));
  };
  // Idle connections the server has ended (a restart, an idle timeout, a terminated backend):
  // nothing reads an idle connection, so each is looked at (a non-blocking peek, after the
  // lock); the minimum is then opened again without waiting for a task to ask.
  for (std::size_t i = slots_.size(); i-- > 0;) {
    slot& s = slots_[i];
    if (!unused(s)) continue;
    if (!s.conn->lost()) {
      then.to_look.push_back(s.conn);
      continue;
    }
    lost_locked(s);
    then.to_close.push_back(s.conn);
    remove_locked(*then.to_close.back());
  }
  // Past their lifetime: closed now when unused; a shared one busy gets no new work and is
  // closed once quiet (an exclusive one, once its user gives it back and it is quiet).
  for (std::size_t i = slots_.size(); i-- > 0;) {
    slot& s = slots_[i];
    if (!expired_locked(s, now)) continue;
    if (unused(s))
      retire_locked(i, then);
    else if (s.state == status::shared)
      s.state = status::draining;
  }
  // Idle too long: the longest idle first, down to min_size.
  if (options_.idle_timeout.count() == 0) return;
  while (slots_.size() + opening_ > options_.min_size) {
    std::size_t oldest = slots_.size();
    for (std::size_t i = 0; i < slots_.size(); ++i) {
      const slot& s = slots_[i];
      if (!unused(s) || now - s.conn->idle_since() < options_.idle_timeout) continue;
      if (oldest == slots_.size() || s.conn->idle_since() < slots_[oldest].conn->idle_since())
        oldest = i;
    }
    if (oldest == slots_.size()) break;
    retire_locked(oldest, then);
  }
}

void connection_pool::arm_upkeep_locked() {
  const bool asked = options_.min_size > 0 || options_.max_lifetime.count() > 0 ||
                     options_.idle_timeout.count() > 0;
  if (!asked || closed_ || upkeep_armed_) return;
  // Nothing to watch: no timer, so that an io_context with no other work can run out of it.
  if (options_.min_size == 0 && slots_.empty() && opening_ == 0) return;
  std::chrono::milliseconds every{30'000};
  if (options_.idle_timeout.count() > 0) every = std::min(every, options_.idle_timeout / 4);
  if (options_.max_lifetime.count() > 0) every = std::min(every, options_.max_lifetime / 4);
  if (options_.min_size > 0) every = std::min(every, std::chrono::milliseconds(1000));
  every = std::max(every, std::chrono::milliseconds(10));
  upkeep_armed_ = true;
  if (!upkeep_timer_) upkeep_timer_.emplace(executor_);
  upkeep_timer_->expires_after(every);
  upkeep_timer_->async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
    auto pool = weak.lock();
    if (!pool) return;
    {
      std::lock_guard lock(pool->mutex_);
      pool->upkeep_armed_ = false;
    }
    if (!ec) pool->housekeep();
  });
}

void connection_pool::start() {
  join_context(executor_, shared_from_this());
  after_unlock then(*this);
  std::lock_guard lock(mutex_);
  arm_upkeep_locked();
  if (wants_filling_locked()) then.refill = true;
}

void connection_pool::context_shutdown(pool_clock::time_point) noexcept {
  // (The connections are members of the context themselves.)
  std::lock_guard lock(mutex_);
  closed_ = true;
  upkeep_timer_.reset();
}

void connection_pool::housekeep() {
  after_unlock then(*this);
  std::lock_guard lock(mutex_);
  if (closed_) return;
  upkeep_locked(then);
  dispatch_locked(then);  // a retired connection's slot may serve a waiter
  arm_upkeep_locked();
  if (wants_filling_locked()) then.refill = true;
}

bool connection_pool::wants_filling_locked() const {
  return !closed_ && !filling_ &&
         slots_.size() + opening_ < std::min(options_.min_size, options_.max_size);
}

void connection_pool::start_filling() {
  {
    std::lock_guard lock(mutex_);
    if (!wants_filling_locked()) return;
    filling_ = true;
  }
  try {
    // Posted: never run inline inside the release or loss that asked for it.
    asio::post(executor_, [self = shared_from_this()] {
      asio::co_spawn(self->executor_, self->fill_to_min_size(self), asio::detached);
    });
  } catch (...) {
    std::lock_guard lock(mutex_);
    filling_ = false;  // (out of memory: the next upkeep tries again)
  }
}

// Opens connections one at a time up to min_size; each becomes idle. A failure ends the round
// (counted in the pause before the next attempt); the upkeep timer starts another.
asio::awaitable<void> connection_pool::fill_to_min_size(std::shared_ptr<connection_pool> self) {
  for (;;) {
    {
      std::lock_guard lock(mutex_);
      filling_ = false;
      if (!wants_filling_locked()) co_return;
      filling_ = true;
      ++opening_;
    }
    std::shared_ptr<pooled_connection> c;
    try {
      c = co_await open_new(opening_claim(self, lease_kind::exclusive),
                            pool_clock::time_point::max());
    } catch (...) {
      std::lock_guard lock(mutex_);
      filling_ = false;
      co_return;
    }
    make_lease(std::move(c), lease_kind::exclusive).reset();  // idle once clean
  }
}

void connection_pool::record_open_outcome_locked(const std::exception_ptr& failure,
                                                 pool_clock::time_point attempt_at) {
  const auto now = clock_();
  if (!failure) {
    // The server answers: the next open need not wait. The failures before are forgotten once
    // the first success since them has stood through the probation (count_failure_locked).
    if (last_success_at_ <= last_failure_at_) last_success_at_ = now;
    next_open_at_ = std::min(next_open_at_, now);
    return;
  }
  try {
    std::rethrow_exception(failure);
  } catch (const error& e) {
    last_open_state_ = e.sqlstate();
    last_open_message_ = e.what();
    last_open_failure_ = failure;
  } catch (const boost::system::system_error& e) {
    if (e.code() == asio::error::operation_aborted) return;  // the opener gave up: no failure
    last_open_state_ = std::string(sqlstate::connection_failure);
    last_open_message_ = e.what();
  } catch (const std::exception& e) {
    last_open_state_ = std::string(sqlstate::connection_failure);
    last_open_message_ = e.what();
  } catch (...) {
    last_open_state_ = std::string(sqlstate::connection_failure);
    last_open_message_ = "connection failed";
  }
  count_failure_locked(attempt_at, now);
}

// One more failed open, or a connection lost within its probation (`attempt_at`: when it was
// opened). The pause before the next open doubles with each.
void connection_pool::count_failure_locked(pool_clock::time_point attempt_at,
                                           pool_clock::time_point now) {
  // A success with no failure since, standing for the probation: the earlier failures are over.
  if (last_success_at_ > last_failure_at_ && now - last_success_at_ >= options_.connect_probation)
    open_failures_ = 0;
  // Attempts made together (started before the last failure was known) count once.
  if (open_failures_ > 0 && attempt_at < last_failure_at_) return;
  last_failure_at_ = now;
  if (open_failures_ < 64) ++open_failures_;
  next_open_at_ = last_failure_at_ + backoff_pause(options_.connect_backoff,
                                                   options_.connect_backoff_max, open_failures_);
}

// A connection found lost (once per connection): lost within its probation, it counts as a
// failed open.
void connection_pool::lost_locked(slot& s) {
  if (s.loss_counted) return;
  s.loss_counted = true;
  const auto now = clock_();
  const auto lived = now - s.opened_at;
  if (lived >= options_.connect_probation) return;
  last_open_state_ = std::string(sqlstate::connection_failure);
  last_open_message_ =
      "the connection was lost " +
      std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(lived).count()) +
      " ms after it opened";
  try {
    if (const std::string why = s.conn->loss_reason(); !why.empty())
      last_open_message_ += " (" + why + ")";
  } catch (...) {
    // (the message without its reason)
  }
  count_failure_locked(s.opened_at, now);
}

// ---- closing

void connection_pool::close_now() noexcept {
  std::vector<std::shared_ptr<pooled_connection>> to_close;
  std::vector<std::shared_ptr<waiting_task>> waiting;
  {
    std::lock_guard lock(mutex_);
    closed_ = true;
    if (upkeep_timer_) upkeep_timer_->cancel();  // (its handler finds the pool closed)
    pausing_.notify_all();
    for (auto it = slots_.begin(); it != slots_.end();) {
      if (it->state == status::idle || (it->state != status::exclusive && quiet_locked(*it))) {
        to_close.push_back(it->conn);
        it = slots_.erase(it);
      } else {
        ++it;
      }
    }
    waiting.assign(waiters_.begin(), waiters_.end());
    waiters_.clear();
    notify_if_all_gone_locked();
  }
  for (const auto& w : waiting)
    w->ticket->notify();  // they find the pool closed
  for (const auto& c : to_close)
    c->close();
}

asio::awaitable<void> connection_pool::close(std::chrono::milliseconds grace) {
  close_now();
  std::vector<std::shared_ptr<pooled_connection>> to_close;
  std::unique_lock lock(mutex_);
  if (!slots_.empty() || opening_ > 0) {
    co_await closed_waiters_.wait(lock, pool_clock::now() + grace);
    lock.lock();
  }
  // Past the grace period: what is still busy is closed under its users.
  for (slot& s : slots_)
    to_close.push_back(s.conn);
  slots_.clear();
  lock.unlock();
  for (const auto& c : to_close)
    c->close();
}

}  // namespace awaitdb::detail
