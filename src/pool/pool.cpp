// The pool's lending: who waits and in what order, and what a connection's release, quiet or
// loss changes. Which connection a task is given: pool_placement.cpp. Opening and upkeep:
// pool_upkeep.cpp.
#include "pool.hpp"

#include "../deadline.hpp"
#include "../observe.hpp"
#include "../task_context.hpp"
#include "pool_internal.hpp"
#include <awaitdb/database.hpp>
#include <awaitdb/error.hpp>

#include <boost/asio/this_coro.hpp>

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

void pooled_connection::report_dropped() noexcept {
  if (auto pool = pool_.lock()) pool->on_lost(*this, false);
}

pool_lease& pool_lease::operator=(pool_lease&& other) noexcept {
  if (this != &other) {
    reset();
    pool_ = std::move(other.pool_);
    conn_ = std::move(other.conn_);
    kind_ = other.kind_;
    slow_ = other.slow_;
  }
  return *this;
}

void pool_lease::reset() noexcept {
  if (!conn_) return;
  std::shared_ptr<pooled_connection> c = std::move(conn_);
  std::shared_ptr<connection_pool> pool = std::move(pool_);
  pool->release(*c, kind_, slow_);
}

// ---- after the lock

connection_pool::after_unlock::~after_unlock() {
  for (const auto& t : wake)
    t->notify();
  for (const auto& c : to_look)
    if (!c->check_alive()) pool.on_lost(*c);
  for (const auto& c : to_clean)
    pool.cleaning_ended(*c, c->make_clean());
  for (const auto& c : to_close)
    c->close();
  if (refill) pool.start_filling();
}

// ---- connection_pool

connection_pool::connection_pool(asio::any_io_executor executor, pool_options options, opener open,
                                 clock_function clock, pool_reporting reporting)
    : executor_(std::move(executor))
    , options_(options)
    , open_(std::move(open))
    , clock_(std::move(clock))
    , reporting_(std::move(reporting)) {}

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

pool_lease connection_pool::make_lease(std::shared_ptr<pooled_connection> c, lease_kind kind,
                                       bool slow) {
  return pool_lease(shared_from_this(), std::move(c), kind, slow);
}

pool_lease connection_pool::try_acquire_shared(bool slow) {
  for (;;) {
    std::shared_ptr<pooled_connection> c;
    bool look = false;
    if (slow) {
      after_unlock then(*this);
      std::lock_guard lock(mutex_);
      if (closed_ || slow_waiting_ > 0) return {};
      grant g = try_grant_slow_locked(false, then);
      if (!g.conn) return {};
      c = std::move(g.conn);
      look = g.look;
    } else {
      std::lock_guard lock(mutex_);
      // (Tasks waiting for a slow statement's connection hold up no fast statement.)
      if (closed_ || waiters_.size() > slow_waiting_) return {};
      pooled_connection* best = pick_shared_locked(false, false, false);
      if (!best) return {};
      slot& s = *find_locked(*best);
      // Quiet for a while: look at it first (a non-blocking peek), here rather than on the slow
      // path, so that a statement every few milliseconds stays on the fast one.
      look = quiet_locked(s) && clock_() - best->idle_since() > options_.recheck_after;
      ++s.claims;
      c = s.conn;
    }
    if (!look || c->check_alive()) return make_lease(std::move(c), lease_kind::shared, slow);
    drop_dead(*c);
  }
}

asio::awaitable<pool_lease> connection_pool::acquire_shared(deadline_state* deadline, bool slow) {
  return acquire(lease_kind::shared, deadline, open_failures::wait, slow);
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
void connection_pool::dispatch_locked(after_unlock& then) {
  // (Each kind of waiter is served in order; a kind that nothing can serve holds up only its own.)
  bool shared_blocked = false, slow_blocked = false, exclusive_blocked = false;
  std::size_t exclusive_waiting = 0;
  for (auto it = waiters_.begin(); it != waiters_.end();) {
    waiting_task& w = **it;
    bool& blocked = w.kind == lease_kind::exclusive ? exclusive_blocked
                    : w.slow                        ? slow_blocked
                                                    : shared_blocked;
    if (!blocked) {
      grant g = try_grant_locked(w.kind, w.slow, true, then);
      if (g.conn || g.may_open) {
        if (g.may_open) {
          ++opening_;
          if (w.kind == lease_kind::shared) ++opening_shared_;
        }
        w.granted = std::move(g.conn);
        w.look = g.look;
        w.may_open = g.may_open;
        then.wake.push_back(w.ticket);
        if (w.slow) --slow_waiting_;
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
                                                     open_failures failures, bool slow) {
  auto deadline = pool_clock::now() + options_.acquire_timeout;
  if (task_deadline) deadline = std::min(deadline, task_deadline->at());
  // Reported only to an observer (connection waits apart from connect time).
  awaitdb::observer* const watcher = reporting_.observers ? reporting_.observers->get() : nullptr;
  const auto started = watcher ? pool_clock::now() : pool_clock::time_point{};
  pool_clock::duration connect{};
  std::string label;
  if (watcher) label = std::string(task_label(co_await asio::this_coro::executor));
  try {
    std::shared_ptr<pooled_connection> c;
    bool opens = false, look = false;
    {
      // The steady state: nobody waits and something can be granted at once; no waiter needed.
      after_unlock then(*this);
      std::lock_guard lock(mutex_);
      if (closed_) throw error(sqlstate::connection_does_not_exist, "the database is closed");
      // (Served before earlier waiters only where those hold up nobody of its kind.)
      const bool ahead = kind == lease_kind::shared && slow ? slow_waiting_ > 0
                         : kind == lease_kind::shared       ? waiters_.size() > slow_waiting_
                                                            : !waiters_.empty();
      if (!ahead) {
        grant g = try_grant_locked(kind, slow, true, then);
        c = std::move(g.conn);
        look = g.look;
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
        task->slow = kind == lease_kind::shared && slow;
        task->ticket = std::make_shared<waiter>();
        co_await wait_for_grant(task, deadline);
        c = std::move(task->granted);
        look = task->look;
      }
      if (c) {
        // Idle a while: looked at first (a peek at its socket), here, after the pool's lock.
        if (!look || c->check_alive()) break;
        drop_dead(*c);
        c.reset();
        look = false;
        continue;  // in line again
      }
      // (The claim is open_new's parameter: see opening_claim.)
      const auto opening = pool_clock::now();
      std::exception_ptr failed;
      try {
        c = co_await open_new(opening_claim(shared_from_this(), kind, slow), deadline);
      } catch (const error& e) {
        if (failures == open_failures::fail_at_once || !e.is_connection_error()) throw;
        failed = std::current_exception();
      }
      connect += pool_clock::now() - opening;
      if (c) break;
      // Given up before trying because the next attempt is due past the task's own deadline:
      // the task times out (an older failure, perhaps of a connection that has long been
      // replaced, is not this task's).
      if (!failed && task_deadline && deadline == task_deadline->at() && !closed())
        throw task_deadline->timed_out();
      if (!failed || pool_clock::now() >= deadline || closed()) throw_last_open_failure(failed);
      opens = false;
    }
    if (watcher) report_acquire(*watcher, kind, started, connect, label, {});
    co_return make_lease(std::move(c), kind, slow);
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
  e.engine = reporting_.engine;
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
    after_unlock then(*this);
    std::lock_guard lock(mutex_);
    if (closed_) throw error(sqlstate::connection_does_not_exist, "the database is closed");
    waiters_.push_back(task);
    if (task->slow) ++slow_waiting_;
    dispatch_locked(then);  // (perhaps served at once: then its own ticket is signalled)
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
    if (it != waiters_.end()) {
      waiters_.erase(it);
      if (task->slow) --slow_waiting_;
    }
  }
  if (served && failure) {
    // Served just as it was cancelled: pass what it was given on.
    if (task->granted) {
      pool_lease(shared_from_this(), std::move(task->granted), task->kind, task->slow).reset();
    } else {
      after_unlock then(*this);
      std::lock_guard lock(mutex_);
      opening_ended_locked(task->kind, then);
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

// ---- release, quiet, loss

// `cleaned`: make_clean said it is fit.
void connection_pool::became_quiet_locked(slot& s, after_unlock& then, bool cleaned) {
  if (s.conn->lost()) {
    lost_locked(s);
    then.to_close.push_back(s.conn);
    remove_locked(*then.to_close.back());
    return;
  }
  if (closed_ || (s.state == status::draining && expired_locked(s, clock_()))) {
    then.to_close.push_back(s.conn);
    remove_locked(*then.to_close.back());
    return;
  }
  if (s.state != status::draining) return;
  // Nothing of its previous user is left in flight: it may be lent again once clean (made so
  // after the lock, when it is not clean as it is).
  if (cleaned || s.conn->clean()) {
    s.state = status::idle;
  } else if (!s.cleaning) {
    s.cleaning = true;
    then.to_clean.push_back(s.conn);
  }
}

void connection_pool::cleaning_ended(pooled_connection& c, bool fit) noexcept {
  after_unlock then(*this);
  std::lock_guard lock(mutex_);
  slot* s = find_locked(c);
  if (!s) return;
  s->cleaning = false;
  // Still busy with what make_clean sent: it reports quiet when that is done.
  if (!quiet_locked(*s)) return;
  if (!fit && !c.clean()) {
    // Quiet, not fit and nothing sent to make it so: it cannot be lent again.
    then.to_close.push_back(s->conn);
    remove_locked(c);
  } else {
    became_quiet_locked(*s, then, true);
  }
  dispatch_locked(then);
  if (wants_filling_locked()) then.refill = true;
}

void connection_pool::release(pooled_connection& c, lease_kind kind, bool slow) noexcept {
  after_unlock then(*this);
  std::lock_guard lock(mutex_);
  slot* s = find_locked(c);
  if (!s) return;  // lost meanwhile
  if (kind == lease_kind::shared) {
    if (s->claims > 0) --s->claims;
    if (slow && s->slow_claims > 0) --s->slow_claims;
  } else if (s->state == status::exclusive) {
    s->state = status::draining;
  }
  if (s->conn->lost()) {
    lost_locked(*s);
    then.to_close.push_back(s->conn);
    remove_locked(c);
  } else if (quiet_locked(*s)) {
    became_quiet_locked(*s, then);
  }
  dispatch_locked(then);
  if (wants_filling_locked()) then.refill = true;
}

void connection_pool::on_quiet(pooled_connection& c) noexcept {
  after_unlock then(*this);
  std::lock_guard lock(mutex_);
  slot* s = find_locked(c);
  if (!s || !quiet_locked(*s)) return;
  if (s->state == status::draining || (closed_ && s->state == status::shared))
    became_quiet_locked(*s, then);
  dispatch_locked(then);
  if (wants_filling_locked()) then.refill = true;
}

void connection_pool::on_lost(pooled_connection& c, bool failure) noexcept {
  after_unlock then(*this);
  std::lock_guard lock(mutex_);
  slot* s = find_locked(c);
  if (!s) return;
  if (!failure) s->loss_counted = true;  // (dropped on purpose: never weighed as a failed open)
  lost_locked(*s);
  // Exclusive users still hold it (their next statement fails); everyone else loses it now.
  if (s->state == status::exclusive) return;
  remove_locked(c);
  dispatch_locked(then);
  if (wants_filling_locked()) then.refill = true;
}

void connection_pool::drop_dead(pooled_connection& c) noexcept {
  after_unlock then(*this);
  std::lock_guard lock(mutex_);
  slot* s = find_locked(c);
  if (!s) return;
  lost_locked(*s);
  then.to_close.push_back(s->conn);
  remove_locked(c);
  dispatch_locked(then);
  if (wants_filling_locked()) then.refill = true;
}

// ---- statistics

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
