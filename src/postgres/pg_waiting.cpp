// Waiting on a PostgreSQL connection: a task's wait for its group (pg_connection::exchange),
// a stream's reader waiting for rows, and what a task that leaves does to its group (dropped,
// and cancelled on the server when it runs).
#include "../util/thread_cache.hpp"
#include "pg_connection.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/system/system_error.hpp>

namespace awaitdb::detail {

namespace asio = boost::asio;
using boost::system::error_code;

namespace {

// A cancel that the server did not act on within this long means the backend is not running
// (frozen, or the network is gone): the connection is given up.
constexpr std::chrono::seconds cancel_grace{5};

}  // namespace

// ---- streams

void pg_connection::resume_stream_locked() {
  if (!socket_.unpause() || state_ != state::open) return;
  // libpq may hold the rest of the results already: read them now, not on the next byte.
  socket_.read_posted();
  auto read = [self = shared_from_this()] { self->on_readable(); };
  asio::post(executor_, std::move(read));
}

asio::awaitable<pg_result_ptr> pg_connection::next_row(pg_group_ptr g, deadline_state* deadline) {
  // Below this many buffered rows, a paused stream is read again.
  static constexpr std::size_t stream_low_mark = 1024;
  for (;;) {
    waiter_ptr w;
    {
      std::lock_guard lock(mutex_);
      if (!g->stream_rows.empty()) {
        pg_result_ptr r = std::move(g->stream_rows.front());
        g->stream_rows.pop_front();
        if (g->stream_rows.size() <= stream_low_mark) resume_stream_locked();
        co_return r;
      }
      if (g->verdict != pg_verdict::pending) co_return nullptr;
      w = std::make_shared<waiter>();
      awaited(*g).row_waiter = w;
    }
    bool cancelled = false, timed_out = false;
    try {
      deadline_state::watch watch(deadline, w);
      auto [ec, outcome] = co_await w->async_wait(asio::as_tuple(asio::deferred));
      cancelled = ec == asio::error::operation_aborted;
      timed_out = outcome == waiter::state::timed_out;
    } catch (...) {
      cancelled = true;  // a cancelled coroutine throws at co_await, before the wait starts
    }
    if (cancelled || timed_out) {
      end_stream(g);
      if (timed_out && deadline) throw deadline->timed_out();
      throw boost::system::system_error(asio::error::operation_aborted);
    }
  }
}

void pg_connection::end_stream(const pg_group_ptr& g) {
  abandon(g);  // rows arriving from now on are dropped; cancelled on the server
  std::lock_guard lock(mutex_);
  g->stream_rows.clear();
  awaited(*g).row_waiter.reset();
  resume_stream_locked();
}

// ---- waiting

pg_connection::exchange::~exchange() {
  if (!waiting_ || settled_) return;
  try {
    conn_.abandon(g_);  // (nothing, if it completed meanwhile)
  } catch (...) {
    // Out of memory for the cancel: the group still completes, unobserved.
  }
}

void pg_connection::exchange::settle(const std::tuple<error_code, waiter::state>& outcome) {
  settled_ = true;
  const bool timed_out = std::get<1>(outcome) == waiter::state::timed_out;
  if (std::get<0>(outcome) != asio::error::operation_aborted && !timed_out) return;
  {
    std::lock_guard lock(conn_.mutex_);
    if (g_->verdict != pg_verdict::pending) return;  // it completed before the cancellation
  }
  conn_.abandon(g_);
  if (timed_out && deadline_) throw deadline_->timed_out();
  throw boost::system::system_error(asio::error::operation_aborted);
}

void pg_connection::abandon(const pg_group_ptr& g) {
  pg_group_ptr now;
  bool drop = false;
  {
    std::lock_guard lock(mutex_);
    if (g->verdict != pg_verdict::pending) return;
    now = pipeline_.abandon(g);
    drop = state_ == state::open && pipeline_.only_abandoned_work();
  }
  if (drop) {
    // Nobody waits for anything sent here: closing the connection (and cancelling what runs
    // now) stops it all, where a cancel per statement would hold the connection for as many
    // round trips, and every statement pipelined behind them. The pool opens another.
    close();
    report_dropped();
    return;
  }
  if (now) cancel_on_server(std::move(now));
}

void pg_connection::cancel_on_server(pg_group_ptr g) {
  {
    std::lock_guard lock(mutex_);
    if (state_ != state::open) return;
    pipeline_.cancel_issued(pg_clock::now());
    cancel_holds_.fetch_add(1, std::memory_order_acq_rel);  // see below
  }
  auto run = [](std::shared_ptr<pg_connection> self, pg_group_ptr target) -> asio::awaitable<void> {
    // Until the cancel can hit nothing more (its target has ended, and the signal has had
    // time to reach the backend), the connection is `settling`: the pool does not count it
    // quiet, so lends it to no transaction, whose statement a late cancel would fail (57014).
    struct hold {
      pg_connection& c;
      ~hold() { c.release_cancel_hold(); }
    } held{*self};
    bool delivered = false;
    try {
      co_await self->shared_->canceller->cancel(self->cancel_target_);
      delivered = true;
    } catch (...) {
      // The statement runs to its end instead; the bound below still applies.
    }
    {
      std::lock_guard lock(self->mutex_);
      self->pipeline_.cancel_finished(pg_clock::now());
    }
    (void)delivered;
    // A backend that does not stop a cancelled statement within the grace period is not
    // running (frozen, or unreachable): give the connection up rather than hold its slot.
    asio::steady_timer tick(self->executor_);
    const auto settled = pg_clock::now() + pg_pipeline::stray_cancel_grace;
    const auto give_up = pg_clock::now() + cancel_grace;
    for (;;) {
      {
        std::lock_guard lock(self->mutex_);
        if (self->state_ != state::open) co_return;
        if (target->verdict != pg_verdict::pending && pg_clock::now() >= settled) co_return;
      }
      if (pg_clock::now() >= give_up) break;
      tick.expires_after(std::chrono::milliseconds(20));
      co_await tick.async_wait(asio::as_tuple(asio::deferred));
    }
    group_list done, none;
    bool lost = false;
    {
      std::lock_guard lock(self->mutex_);
      if (target->verdict == pg_verdict::pending && self->state_ == state::open) {
        self->lose_locked("the server did not stop a cancelled statement within 5 s", done);
        lost = true;
      }
    }
    if (lost) self->finish(done, none, true);
  };
  asio::co_spawn(executor_, run(shared_from_this(), std::move(g)), asio::detached);
}

void pg_connection::release_cancel_hold() noexcept {
  if (cancel_holds_.fetch_sub(1, std::memory_order_acq_rel) != 1 || in_flight() != 0) return;
  bool open;
  {
    std::lock_guard lock(mutex_);
    open = state_ == state::open;
  }
  if (open) report_quiet();
}

void pg_connection::deliver(pg_group& g, statement& st) {
  if (g.failure) throw_failure(g);
  const bool tuples = g.rows && PQresultStatus(g.rows.get()) == PGRES_TUPLES_OK;
  if (st.mode != result_mode::count) {  // (scalar: the value is read from the rows above)
    // From the thread's cache: a thread running query after query reuses the memory.
    st.rows = tuples ? result(std::allocate_shared<pg_result>(thread_cache_allocator<pg_result>(),
                                                              std::move(g.rows)))
                     : result();
  } else {
    st.affected = g.rows ? pg_affected_rows(g.rows.get()) : 0;
  }
}

}  // namespace awaitdb::detail
