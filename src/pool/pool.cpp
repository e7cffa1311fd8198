#include "pool.hpp"

#include "../deadline.hpp"
#include "../observe.hpp"
#include "../task_context.hpp"
#include "../util/backoff.hpp"
#include "../util/context_guard.hpp"
#include <awaitdb/database.hpp>
#include <awaitdb/error.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>

#include <algorithm>
#include <cassert>
#include <string>

namespace awaitdb::detail {

namespace asio = boost::asio;

// ---- pooled_connection and pool_lease

void pooled_connection::report_quiet() noexcept {
  if (auto pool = pool_.lock()) pool->on_quiet(*this);
}

void pooled_connection::report_lost() noexcept {
  if (auto pool = pool_.lock()) pool->on_lost(*this);
}

pool_lease& pool_lease::operator=(pool_lease&& other) noexcept {
  if (this != &other) {
    reset();
    pool_ = std::move(other.pool_);
    conn_ = std::move(other.conn_);
    kind_ = other.kind_;
  }
  return *this;
}

void pool_lease::reset() noexcept {
  if (!conn_) return;
  std::shared_ptr<pooled_connection> c = std::move(conn_);
  std::shared_ptr<connection_pool> pool = std::move(pool_);
  pool->release(*c, kind_);
}

// ---- connection_pool

// What a change of state leaves to do once the pool's lock is released (declared before the
// lock, so destroyed after it): wake the waiters it served, close the connections it dropped.
struct connection_pool::after_unlock {
  std::vector<wait_list::ticket> wake;
  std::vector<std::shared_ptr<pooled_connection>> to_close;
  connection_pool* refill = nullptr;  // below min_size: open connections in the background
  ~after_unlock() {
    for (const auto& t : wake)
      t->notify();
    for (const auto& c : to_close)
      c->close();
    if (refill) refill->start_filling();
  }
};

// A slot taken for a connection being opened (counted in opening_): open_new gives it back
// when the opening ends. A coroutine cancelled before it can run open_new throws at the
// co_await (Asio checks the cancellation state there) and never enters it: then the claim,
// owned by open_new's frame as its parameter, gives the slot back as the frame is destroyed.
class connection_pool::opening_claim {
 public:
  opening_claim(std::shared_ptr<connection_pool> pool, lease_kind kind) noexcept
      : pool_(std::move(pool)), kind_(kind) {}
  opening_claim(opening_claim&& other) noexcept
      : pool_(std::move(other.pool_)), kind_(other.kind_) {}
  opening_claim& operator=(opening_claim&&) = delete;
  ~opening_claim() {
    if (!pool_) return;
    after_unlock then;
    std::lock_guard lock(pool_->mutex_);
    pool_->opening_ended_locked(kind_, then.wake);
  }
  lease_kind kind() const noexcept { return kind_; }
  /// The opening ended and open_new accounted for it.
  void settled() noexcept { pool_.reset(); }

 private:
  std::shared_ptr<connection_pool> pool_;
  lease_kind kind_;
};

connection_pool::connection_pool(asio::any_io_executor executor, pool_options options, opener open,
                                 clock_function clock, std::shared_ptr<observer_slot> observers)
    : executor_(std::move(executor))
    , options_(options)
    , open_(std::move(open))
    , clock_(std::move(clock))
    , observers_(std::move(observers)) {}

connection_pool::~connection_pool() {
  for (slot& s : slots_)
    s.conn->close();
}

bool connection_pool::closed() const {
  std::lock_guard lock(mutex_);
  return closed_;
}

connection_pool::slot* connection_pool::find_locked(const pooled_connection& c) {
  for (slot& s : slots_)
    if (s.conn.get() == &c) return &s;
  return nullptr;
}

bool connection_pool::quiet_locked(const slot& s) const {
  return s.claims == 0 && s.conn->in_flight() == 0 && !s.conn->settling();
}

void connection_pool::remove_locked(const pooled_connection& c) {
  auto it =
      std::find_if(slots_.begin(), slots_.end(), [&](const slot& s) { return s.conn.get() == &c; });
  if (it != slots_.end()) slots_.erase(it);
  notify_if_all_gone_locked();
}

void connection_pool::notify_if_all_gone_locked() {
  if (closed_ && slots_.empty() && opening_ == 0) closed_waiters_.notify_all();
}

// The least busy shared connection: with room in its pipeline unless `allow_full`; not one whose
// oldest statement has run past the stall threshold (head-of-line blocking) unless
// `allow_stalled`; with `healthy_only`, not one idle for so long that it must be looked at first.
pooled_connection* connection_pool::pick_shared_locked(bool allow_full, bool allow_stalled,
                                                       bool healthy_only) {
  const auto now = clock_();
  pooled_connection* best = nullptr;
  std::size_t best_load = 0;
  for (slot& s : slots_) {
    if (s.state != status::shared || s.conn->lost() || expired_locked(s, now)) continue;
    const std::size_t in_flight = s.conn->in_flight();
    if (in_flight >= options_.pipeline_depth && !allow_full) continue;
    if (!allow_stalled && options_.stall_threshold.count() > 0 && in_flight > 0 &&
        now - s.conn->busy_since() > options_.stall_threshold)
      continue;
    if (healthy_only && in_flight == 0 && s.claims == 0 &&
        now - s.conn->idle_since() > options_.recheck_after)
      continue;
    const std::size_t load = in_flight + s.claims;
    if (!best || load < best_load) {
      best = s.conn.get();
      best_load = load;
    }
  }
  return best;
}

// An idle connection (or, for exclusive use, a quiet shared one), looked at first when it has
// been idle a while; dead ones found on the way leave the pool.
std::shared_ptr<pooled_connection> connection_pool::take_idle_locked(lease_kind kind) {
  const auto now = clock_();
  for (std::size_t i = slots_.size(); i-- > 0;) {
    slot& s = slots_[i];
    const bool candidate = s.state == status::idle || s.state == status::shared;
    if (!candidate) continue;
    // The pool's invariant: a connection is lent only when nothing of a previous user is in
    // flight on it (an idle one is quiet by construction; checked anyway, as it is cheap).
    if (!quiet_locked(s)) {
      assert(s.state != status::idle && "an idle connection with work in flight");
      continue;
    }
    const bool looked_at_first = now - s.conn->idle_since() > options_.recheck_after;
    const bool expired = expired_locked(s, now);
    const bool lost = s.conn->lost() || (!expired && looked_at_first && !s.conn->check_alive());
    if (lost || expired) {
      if (lost) lost_locked(s);
      std::shared_ptr<pooled_connection> dead = s.conn;
      slots_.erase(slots_.begin() + static_cast<std::ptrdiff_t>(i));
      dead->close();
      continue;
    }
    s.state = kind == lease_kind::exclusive ? status::exclusive : status::shared;
    if (kind == lease_kind::shared) ++s.claims;
    return s.conn;
  }
  return nullptr;
}

connection_pool::grant connection_pool::try_grant_locked(lease_kind kind, bool may_open) {
  grant g;
  // (Not computed once: looking at idle connections may remove dead ones.)
  auto can_grow = [&] { return may_open && slots_.size() + opening_ < options_.max_size; };
  auto claim = [&](pooled_connection* c) {
    slot& s = *find_locked(*c);
    ++s.claims;
    g.conn = s.conn;
  };
  if (kind == lease_kind::shared) {
    if (pooled_connection* best = pick_shared_locked(false, false, true)) {
      claim(best);
      return g;
    }
    if ((g.conn = take_idle_locked(kind))) return g;
    // While a connection is being opened, pipeline deeper rather than open more (a burst of
    // tasks would otherwise open the whole pool at once), but not behind a slow statement:
    // rather wait for the connection being opened.
    if (opening_shared_ > 0) {
      if (pooled_connection* best = pick_shared_locked(true, false, false)) claim(best);
      return g;
    }
    if (can_grow()) {
      g.may_open = true;
      return g;
    }
    // The pool is full: pipeline deeper, or behind a slow statement.
    if (pooled_connection* best = pick_shared_locked(true, true, false)) claim(best);
    return g;
  }
  if ((g.conn = take_idle_locked(kind))) return g;
  if (can_grow()) g.may_open = true;
  return g;
}

pool_lease connection_pool::make_lease(std::shared_ptr<pooled_connection> c, lease_kind kind) {
  return pool_lease(shared_from_this(), std::move(c), kind);
}

pool_lease connection_pool::try_acquire_shared() {
  std::lock_guard lock(mutex_);
  if (closed_ || !waiters_.empty()) return {};
  for (;;) {
    pooled_connection* best = pick_shared_locked(false, false, false);
    if (!best) return {};
    slot& s = *find_locked(*best);
    // Quiet for a while: look at it first (a non-blocking peek), here rather than on the slow
    // path, so that a statement every few milliseconds stays on the fast one.
    if (quiet_locked(s) && clock_() - best->idle_since() > options_.recheck_after &&
        !best->check_alive()) {
      lost_locked(s);
      std::shared_ptr<pooled_connection> dead = s.conn;
      remove_locked(*dead);
      dead->close();
      continue;
    }
    ++s.claims;
    return make_lease(s.conn, lease_kind::shared);
  }
}

asio::awaitable<pool_lease> connection_pool::acquire_shared(deadline_state* deadline) {
  return acquire(lease_kind::shared, deadline, open_failures::wait);
}

asio::awaitable<pool_lease> connection_pool::acquire_exclusive(deadline_state* deadline,
                                                               open_failures failures) {
  return acquire(lease_kind::exclusive, deadline, failures);
}

void connection_pool::throw_last_open_failure(std::exception_ptr failure) const {
  if (!failure) {
    std::lock_guard lock(mutex_);
    failure = last_open_failure_;
    if (!failure && !last_open_state_.empty())
      failure = std::make_exception_ptr(error(last_open_state_, last_open_message_));
  }
  if (closed()) throw error(sqlstate::connection_does_not_exist, "the database is closed");
  if (!failure)
    failure = std::make_exception_ptr(
        error(sqlstate::connection_not_established, "no connection could be opened"));
  std::rethrow_exception(failure);
}

// Serves waiters in order. An exclusive waiter that nothing can serve has a shared connection
// drain for it, so that shared traffic cannot keep every connection busy forever.
void connection_pool::dispatch_locked(std::vector<wait_list::ticket>& wake) {
  bool shared_blocked = false, exclusive_blocked = false;
  std::size_t exclusive_waiting = 0;
  for (auto it = waiters_.begin(); it != waiters_.end();) {
    waiting_task& w = **it;
    bool& blocked = w.kind == lease_kind::shared ? shared_blocked : exclusive_blocked;
    if (!blocked) {
      grant g = try_grant_locked(w.kind, true);
      if (g.conn || g.may_open) {
        if (g.may_open) {
          ++opening_;
          if (w.kind == lease_kind::shared) ++opening_shared_;
        }
        w.granted = std::move(g.conn);
        w.may_open = g.may_open;
        wake.push_back(w.ticket);
        it = waiters_.erase(it);
        continue;
      }
      blocked = true;
    }
    if (w.kind == lease_kind::exclusive) ++exclusive_waiting;
    ++it;
  }
  // One draining connection per exclusive waiter.
  std::size_t draining = 0;
  for (const slot& s : slots_)
    if (s.state == status::draining) ++draining;
  while (draining < exclusive_waiting) {
    slot* candidate = nullptr;
    for (slot& s : slots_)
      if (s.state == status::shared &&
          (!candidate ||
           s.conn->in_flight() + s.claims < candidate->conn->in_flight() + candidate->claims))
        candidate = &s;
    if (!candidate) break;
    candidate->state = status::draining;
    ++draining;
  }
}

asio::awaitable<pool_lease> connection_pool::acquire(lease_kind kind, deadline_state* task_deadline,
                                                     open_failures failures) {
  auto deadline = pool_clock::now() + options_.acquire_timeout;
  if (task_deadline) deadline = std::min(deadline, task_deadline->at());
  // Reported only to an observer (connection waits apart from connect time).
  awaitdb::observer* const watcher = observers_ ? observers_->get() : nullptr;
  const auto started = watcher ? pool_clock::now() : pool_clock::time_point{};
  pool_clock::duration connect{};
  std::string label;
  if (watcher) label = std::string(task_label(co_await asio::this_coro::executor));
  try {
    std::shared_ptr<pooled_connection> c;
    bool opens = false;
    {
      // The steady state: nobody waits and something can be granted at once; no waiter needed.
      std::lock_guard lock(mutex_);
      if (closed_) throw error(sqlstate::connection_does_not_exist, "the database is closed");
      if (waiters_.empty()) {
        grant g = try_grant_locked(kind, true);
        c = std::move(g.conn);
        if (!c && g.may_open) {
          ++opening_;
          if (kind == lease_kind::shared) ++opening_shared_;
          opens = true;
        }
      }
    }
    // A failed attempt to open fails nobody but the task that made it, and that one only when
    // its own deadline has come: until then it waits in line again (a failover, a restart:
    // the next attempt, after the connect backoff, may succeed).
    for (;;) {
      if (!c && !opens) {
        auto task = std::make_shared<waiting_task>();
        task->kind = kind;
        task->ticket = std::make_shared<waiter>();
        co_await wait_for_grant(task, deadline);
        c = std::move(task->granted);
      }
      if (c) break;
      // (The claim is open_new's parameter: see opening_claim.)
      const auto opening = pool_clock::now();
      std::exception_ptr failed;
      try {
        c = co_await open_new(opening_claim(shared_from_this(), kind), deadline);
      } catch (const error& e) {
        if (failures == open_failures::fail_at_once || !e.is_connection_error()) throw;
        failed = std::current_exception();
      }
      connect += pool_clock::now() - opening;
      if (c) break;
      if (!failed || pool_clock::now() >= deadline || closed()) throw_last_open_failure(failed);
      opens = false;
    }
    if (watcher) report_acquire(*watcher, kind, started, connect, label, {});
    co_return make_lease(std::move(c), kind);
  } catch (...) {
    // Given up at the task's own deadline: that is the reason.
    std::exception_ptr failure = std::current_exception();
    if (task_deadline && task_deadline->passed() && !is_cancellation(failure))
      failure = std::make_exception_ptr(task_deadline->timed_out());
    if (watcher) report_acquire(*watcher, kind, started, connect, label, sqlstate_of(failure));
    std::rethrow_exception(failure);
  }
}

void connection_pool::report_acquire(awaitdb::observer& o, lease_kind kind,
                                     pool_clock::time_point started, pool_clock::duration connect,
                                     std::string_view label, std::string_view sqlstate) noexcept {
  awaitdb::acquire_event e;
  e.label = label;
  e.engine = awaitdb::engine::postgres;
  e.exclusive = kind == lease_kind::exclusive;
  e.connect = connect;
  e.waited = pool_clock::now() - started - connect;
  e.sqlstate = sqlstate;
  o.connection_acquired(e);
}

// Queues `task` and waits until it is served (a connection, or a slot to open one: in `task`),
// the deadline passes (53300), the pool closes (08003) or the wait is cancelled.
asio::awaitable<void> connection_pool::wait_for_grant(std::shared_ptr<waiting_task> task,
                                                      pool_clock::time_point deadline) {
  {
    after_unlock then;
    std::lock_guard lock(mutex_);
    if (closed_) throw error(sqlstate::connection_does_not_exist, "the database is closed");
    waiters_.push_back(task);
    dispatch_locked(then.wake);  // (perhaps served at once: then its own ticket is signalled)
  }
  std::exception_ptr failure;
  try {
    co_await wait_list::wait(task->ticket, deadline);
  } catch (...) {
    failure = std::current_exception();
  }
  bool served, closed_meanwhile;
  {
    std::lock_guard lock(mutex_);
    auto it = std::find(waiters_.begin(), waiters_.end(), task);
    closed_meanwhile = closed_;
    served = it == waiters_.end() && (task->granted || task->may_open);  // dispatch removes it
    if (it != waiters_.end()) waiters_.erase(it);
  }
  if (served && failure) {
    // Served just as it was cancelled: pass what it was given on.
    if (task->granted) {
      pool_lease(shared_from_this(), std::move(task->granted), task->kind).reset();
    } else {
      after_unlock then;
      std::lock_guard lock(mutex_);
      opening_ended_locked(task->kind, then.wake);
    }
  }
  if (failure) std::rethrow_exception(failure);
  if (served) co_return;
  if (closed_meanwhile) throw error(sqlstate::connection_does_not_exist, "the database is closed");
  {
    // Nothing could be opened meanwhile: that is the reason, not a full pool.
    std::unique_lock lock(mutex_);
    if (open_failures_ > 0 && last_open_failure_) {
      const std::exception_ptr last = last_open_failure_;
      lock.unlock();
      std::rethrow_exception(last);
    }
  }
  throw error(sqlstate::too_many_connections,
              "timed out after " + std::to_string(options_.acquire_timeout.count()) +
                  " ms waiting for a connection: all " + std::to_string(options_.max_size) +
                  " are in use");
}

void connection_pool::opening_ended_locked(lease_kind kind, std::vector<wait_list::ticket>& wake) {
  --opening_;
  if (kind == lease_kind::shared) --opening_shared_;
  // The slot is free again (or taken by the new connection): others may use it.
  dispatch_locked(wake);
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
    after_unlock then;
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
      s.opened_at = clock_();
      if (options_.max_lifetime.count() > 0) {
        // Shortened by up to 1/40 (xorshift32), so that connections opened together do not
        // all retire together.
        lifetime_jitter_ ^= lifetime_jitter_ << 13;
        lifetime_jitter_ ^= lifetime_jitter_ >> 17;
        lifetime_jitter_ ^= lifetime_jitter_ << 5;
        const auto lifetime =
            std::chrono::duration_cast<pool_clock::duration>(options_.max_lifetime);
        s.expires_at = clock_() + lifetime - lifetime / 40'000 * (lifetime_jitter_ % 1000);
      }
      slots_.push_back(std::move(s));
      arm_upkeep_locked();
    }
    opening_ended_locked(kind, then.wake);
  }
  if (failure) {
    if (c) c->close();
    std::rethrow_exception(failure);
  }
  co_return c;
}

void connection_pool::became_quiet_locked(
    slot& s, std::vector<std::shared_ptr<pooled_connection>>& to_close) {
  if (closed_ || (s.state == status::draining && expired_locked(s, clock_()))) {
    to_close.push_back(s.conn);
    remove_locked(*s.conn);
    return;
  }
  if (s.state == status::draining) {
    // Nothing of its previous user is left in flight: it may be lent again once clean.
    s.state = s.conn->make_clean() ? status::idle : status::draining;
  }
}

void connection_pool::release(pooled_connection& c, lease_kind kind) noexcept {
  after_unlock then;
  auto& wake = then.wake;
  auto& to_close = then.to_close;
  {
    std::lock_guard lock(mutex_);
    slot* s = find_locked(c);
    if (!s) return;  // lost meanwhile
    if (kind == lease_kind::shared) {
      if (s->claims > 0) --s->claims;
    } else if (s->state == status::exclusive) {
      s->state = status::draining;
    }
    if (s->conn->lost()) {
      lost_locked(*s);
      to_close.push_back(s->conn);
      remove_locked(c);
    } else if (quiet_locked(*s)) {
      became_quiet_locked(*s, to_close);
    }
    dispatch_locked(wake);
    if (wants_filling_locked()) then.refill = this;
  }
}

void connection_pool::on_quiet(pooled_connection& c) noexcept {
  after_unlock then;
  auto& wake = then.wake;
  auto& to_close = then.to_close;
  {
    std::lock_guard lock(mutex_);
    slot* s = find_locked(c);
    if (!s || !quiet_locked(*s)) return;
    if (s->state == status::draining)
      became_quiet_locked(*s, to_close);
    else if (closed_ && s->state == status::shared)
      became_quiet_locked(*s, to_close);
    dispatch_locked(wake);
    if (wants_filling_locked()) then.refill = this;
  }
}

void connection_pool::on_lost(pooled_connection& c) noexcept {
  after_unlock then;
  std::lock_guard lock(mutex_);
  slot* s = find_locked(c);
  if (!s) return;
  lost_locked(*s);
  // Exclusive users still hold it (their next statement fails); everyone else loses it now.
  if (s->state == status::exclusive) return;
  remove_locked(c);
  dispatch_locked(then.wake);
  if (wants_filling_locked()) then.refill = this;
}

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

// ---- upkeep

bool connection_pool::expired_locked(const slot& s, pool_clock::time_point now) const {
  return now >= s.expires_at;
}

void connection_pool::retire_locked(std::size_t index,
                                    std::vector<std::shared_ptr<pooled_connection>>& to_close) {
  to_close.push_back(slots_[index].conn);
  slots_.erase(slots_.begin() + static_cast<std::ptrdiff_t>(index));
  notify_if_all_gone_locked();
}

void connection_pool::upkeep_locked(std::vector<std::shared_ptr<pooled_connection>>& to_close) {
  const auto now = clock_();
  auto unused = [&](const slot& s) {
    return s.state == status::idle || (s.state == status::shared && quiet_locked(s));
  };
  // Idle connections the server has ended (a restart, an idle timeout, a terminated backend):
  // nothing reads an idle connection, so look (a non-blocking peek); the minimum is then opened
  // again below without waiting for a task to ask.
  for (std::size_t i = slots_.size(); i-- > 0;) {
    slot& s = slots_[i];
    if (!unused(s) || (!s.conn->lost() && s.conn->check_alive())) continue;
    lost_locked(s);
    std::shared_ptr<pooled_connection> dead = s.conn;
    remove_locked(*dead);
    to_close.push_back(std::move(dead));
  }
  // Past their lifetime: closed now when unused; a shared one busy gets no new work and is
  // closed once quiet (an exclusive one, once its user gives it back and it is quiet).
  for (std::size_t i = slots_.size(); i-- > 0;) {
    slot& s = slots_[i];
    if (!expired_locked(s, now)) continue;
    if (unused(s))
      retire_locked(i, to_close);
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
    retire_locked(oldest, to_close);
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
  after_unlock then;
  std::lock_guard lock(mutex_);
  arm_upkeep_locked();
  if (wants_filling_locked()) then.refill = this;
}

void connection_pool::context_shutdown(pool_clock::time_point) noexcept {
  // (The connections are members of the context themselves.)
  std::lock_guard lock(mutex_);
  closed_ = true;
  upkeep_timer_.reset();
}

void connection_pool::housekeep() {
  after_unlock then;
  std::lock_guard lock(mutex_);
  if (closed_) return;
  upkeep_locked(then.to_close);
  dispatch_locked(then.wake);  // a retired connection's slot may serve a waiter
  arm_upkeep_locked();
  if (wants_filling_locked()) then.refill = this;
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
  count_failure_locked(s.opened_at, now);
}

awaitdb::pool_stats connection_pool::stats() const {
  std::lock_guard lock(mutex_);
  awaitdb::pool_stats out;
  out.size = slots_.size() + opening_;
  for (const slot& s : slots_) {
    const std::size_t in_flight = s.conn->in_flight();
    out.in_flight += in_flight;
    if (s.state == status::idle || (s.state == status::shared && s.claims == 0 && in_flight == 0))
      ++out.idle;
  }
  out.in_use = out.size - out.idle;
  out.waiting = waiters_.size();
  return out;
}

std::vector<connection_pool::status> connection_pool::statuses() const {
  std::lock_guard lock(mutex_);
  std::vector<status> out;
  for (const slot& s : slots_)
    out.push_back(s.state);
  out.insert(out.end(), opening_, status::opening);
  return out;
}

}  // namespace awaitdb::detail
