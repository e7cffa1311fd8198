// The pool's placement: which connection a task is given (a statement to pipeline, a slow one,
// a transaction), or whether it may open one. Called under the pool's lock, by the lending in
// pool.cpp.
#include "pool.hpp"
#include "pool_internal.hpp"

#include <cassert>

namespace awaitdb::detail {

// The least busy shared connection: with room in its pipeline unless `allow_full`; not one whose
// running statement has run past the stall threshold, or that runs a statement placed as slow
// (head-of-line blocking), unless `allow_stalled`; with `healthy_only`, not one idle for so long
// that it must be looked at first.
pooled_connection* connection_pool::pick_shared_locked(bool allow_full, bool allow_stalled,
                                                       bool healthy_only) {
  const auto now = clock_();
  pooled_connection* best = nullptr;
  std::size_t best_load = 0;
  for (slot& s : slots_) {
    if (s.state != status::shared || s.conn->lost() || expired_locked(s, now)) continue;
    const std::size_t in_flight = s.conn->in_flight();
    if (in_flight >= options_.pipeline_depth && !allow_full) continue;
    if (!allow_stalled && (s.slow_claims > 0 || (in_flight > 0 && stalled_locked(s, now))))
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

// An idle connection (or, for exclusive use, a quiet shared one); `look` when it has been idle
// a while (its taker looks at it first, after the lock). Lost and expired ones found on the way
// leave the pool.
std::shared_ptr<pooled_connection> connection_pool::take_idle_locked(lease_kind kind, bool& look,
                                                                     after_unlock& then) {
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
    const bool lost = s.conn->lost();
    if (lost || expired_locked(s, now)) {
      if (lost) lost_locked(s);
      then.to_close.push_back(s.conn);
      slots_.erase(slots_.begin() + static_cast<std::ptrdiff_t>(i));
      continue;
    }
    look = now - s.conn->idle_since() > options_.recheck_after;
    s.state = kind == lease_kind::exclusive ? status::exclusive : status::shared;
    if (kind == lease_kind::shared) ++s.claims;
    return s.conn;
  }
  return nullptr;
}

// A slow statement's connection: one with nothing in flight; a new one while the pool may grow;
// else one that runs nothing slow and is not stalled (the fast work ahead of it ends soon, and
// fast statements keep off it from then on); else, once no connection is being opened (it
// waits for those), the one that runs the fewest slow statements, so that a burst of them
// spreads evenly over the pool.
connection_pool::grant connection_pool::try_grant_slow_locked(bool may_open, after_unlock& then) {
  grant g;
  if ((g.conn = take_idle_locked(lease_kind::shared, g.look, then))) {
    ++find_locked(*g.conn)->slow_claims;
    return g;
  }
  if (slots_.size() + opening_ < options_.max_size) {
    g.may_open = may_open;  // (else nothing now: the caller takes the path that may open)
    return g;
  }
  const auto now = clock_();
  slot* best = nullptr;
  for (slot& s : slots_) {
    if (s.state != status::shared || s.conn->lost() || expired_locked(s, now)) continue;
    const std::size_t in_flight = s.conn->in_flight();
    if (s.slow_claims > 0 || in_flight >= options_.pipeline_depth || stalled_locked(s, now))
      continue;
    if (!best || in_flight + s.claims < best->conn->in_flight() + best->claims) best = &s;
  }
  if (!best && opening_ == 0) {
    auto slow_load = [](const slot& s) { return s.conn->slow_in_flight() + s.slow_claims; };
    auto load = [](const slot& s) { return s.conn->in_flight() + s.claims; };
    for (slot& s : slots_) {
      if (s.state != status::shared || s.conn->lost() || expired_locked(s, now)) continue;
      if (!best || slow_load(s) < slow_load(*best) ||
          (slow_load(s) == slow_load(*best) && load(s) < load(*best)))
        best = &s;
    }
  }
  if (best) {
    ++best->claims;
    ++best->slow_claims;
    g.conn = best->conn;
  }
  return g;
}

connection_pool::grant connection_pool::try_grant_locked(lease_kind kind, bool slow, bool may_open,
                                                         after_unlock& then) {
  if (kind == lease_kind::shared && slow) return try_grant_slow_locked(may_open, then);
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
    if ((g.conn = take_idle_locked(kind, g.look, then))) return g;
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
  if ((g.conn = take_idle_locked(kind, g.look, then))) return g;
  if (can_grow()) g.may_open = true;
  return g;
}

// Runs work placed as slow, or work that has run past the stall threshold.
bool connection_pool::stalled_locked(const slot& s, pool_clock::time_point now) const {
  if (s.conn->slow_in_flight() > 0) return true;
  if (options_.stall_threshold.count() == 0) return false;
  const auto running = now - s.conn->busy_since();
  return s.conn->running_known_fast() ? running > options_.stall_threshold * options_.fast_patience
                                      : running > options_.stall_threshold;
}

}  // namespace awaitdb::detail
