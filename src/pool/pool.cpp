#include "pool.hpp"

#include <awaitdb/database.hpp>
#include <awaitdb/error.hpp>

#include <boost/system/system_error.hpp>

#include <algorithm>
#include <cassert>

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
  ~after_unlock() {
    for (const auto& t : wake)
      t->notify();
    for (const auto& c : to_close)
      c->close();
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
                                 clock_function clock)
    : executor_(std::move(executor))
    , options_(options)
    , open_(std::move(open))
    , clock_(std::move(clock)) {}

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
    if (s.state != status::shared || s.conn->lost()) continue;
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
    if (s.conn->lost() || (looked_at_first && !s.conn->check_alive())) {
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
      std::shared_ptr<pooled_connection> dead = s.conn;
      remove_locked(*dead);
      dead->close();
      continue;
    }
    ++s.claims;
    return make_lease(s.conn, lease_kind::shared);
  }
}

asio::awaitable<pool_lease> connection_pool::acquire_shared() {
  return acquire(lease_kind::shared);
}

asio::awaitable<pool_lease> connection_pool::acquire_exclusive() {
  return acquire(lease_kind::exclusive);
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

asio::awaitable<pool_lease> connection_pool::acquire(lease_kind kind) {
  {
    // The steady state: nobody waits and something can be granted at once; no waiter needed.
    std::unique_lock lock(mutex_);
    if (closed_) throw error(sqlstate::connection_does_not_exist, "the database is closed");
    if (waiters_.empty()) {
      grant g = try_grant_locked(kind, true);
      if (g.conn) co_return make_lease(std::move(g.conn), kind);
      if (g.may_open) {
        ++opening_;
        if (kind == lease_kind::shared) ++opening_shared_;
        opening_claim claim(shared_from_this(), kind);
        lock.unlock();
        std::shared_ptr<pooled_connection> c = co_await open_new(std::move(claim));
        co_return make_lease(std::move(c), kind);
      }
    }
  }
  auto task = std::make_shared<waiting_task>();
  task->kind = kind;
  task->ticket = std::make_shared<waiter>();
  co_await wait_for_grant(task, pool_clock::now() + options_.acquire_timeout);
  if (task->granted) co_return make_lease(std::move(task->granted), kind);
  std::shared_ptr<pooled_connection> c = co_await open_new(opening_claim(shared_from_this(), kind));
  co_return make_lease(std::move(c), kind);
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

// Opens the connection a task was granted the slot for.
asio::awaitable<std::shared_ptr<pooled_connection>> connection_pool::open_new(opening_claim claim) {
  const lease_kind kind = claim.kind();
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
      slots_.push_back(std::move(s));
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
  if (closed_) {
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
  auto& [wake, to_close] = then;
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
      to_close.push_back(s->conn);
      remove_locked(c);
    } else if (quiet_locked(*s)) {
      became_quiet_locked(*s, to_close);
    }
    dispatch_locked(wake);
  }
}

void connection_pool::on_quiet(pooled_connection& c) noexcept {
  after_unlock then;
  auto& [wake, to_close] = then;
  {
    std::lock_guard lock(mutex_);
    slot* s = find_locked(c);
    if (!s || !quiet_locked(*s)) return;
    if (s->state == status::draining)
      became_quiet_locked(*s, to_close);
    else if (closed_ && s->state == status::shared)
      became_quiet_locked(*s, to_close);
    dispatch_locked(wake);
  }
}

void connection_pool::on_lost(pooled_connection& c) noexcept {
  after_unlock then;
  std::lock_guard lock(mutex_);
  slot* s = find_locked(c);
  if (!s) return;
  // Exclusive users still hold it (their next statement fails); everyone else loses it now.
  if (s->state == status::exclusive) return;
  remove_locked(c);
  dispatch_locked(then.wake);
}

void connection_pool::close_now() noexcept {
  std::vector<std::shared_ptr<pooled_connection>> to_close;
  std::vector<std::shared_ptr<waiting_task>> waiting;
  {
    std::lock_guard lock(mutex_);
    closed_ = true;
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
