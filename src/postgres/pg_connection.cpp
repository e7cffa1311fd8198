#include "pg_connection.hpp"

#include "../placeholders.hpp"
#include "../sqlstates.hpp"
#include "../util/one_thread.hpp"
#include "../util/thread_cache.hpp"
#include "pg_errors.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/socket_base.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>

#include <algorithm>
#include <cstring>

namespace awaitdb::detail {

namespace asio = boost::asio;
using namespace boost::asio::experimental::awaitable_operators;
using boost::system::error_code;

namespace {

pg_clock::rep ticks(pg_clock::time_point t) {
  return t.time_since_epoch().count();
}

pg_clock::time_point from_ticks(pg_clock::rep r) {
  return pg_clock::time_point(pg_clock::duration(r));
}

}  // namespace

// ---- shared state

pg_shared::pg_shared(asio::any_io_executor executor, postgres_options o, bool with_canceller,
                     std::shared_ptr<observer_slot> observer)
    : options(std::move(o))
    , hosts(plan_host_attempts(options.libpq_url, options.session_attrs))
    , cancel_by_request(options.pgbouncer || hosts.size() > 1 || !options.session_attrs.empty())
    , observers(std::move(observer))
    , canceller(with_canceller
                    ? std::make_unique<pg_canceller>(executor, options, cancel_by_request)
                    : nullptr)
    , latency(options.stall_threshold) {}

pg_shared::~pg_shared() = default;

// ---- lifetime

pg_connection::pg_connection(asio::any_io_executor executor, std::shared_ptr<pg_shared> shared)
    : executor_(std::move(executor))
    , one_thread_(runs_on_one_thread(executor_))
    , shared_(std::move(shared))
    , options_(shared_->options)
    , secrets_(options_.secrets)
    , cache_(options_.statement_cache_size, options_.named_statements)
    , socket_(executor_, one_thread_) {
  idle_since_.store(ticks(pg_clock::now()), std::memory_order_relaxed);
}

pg_connection::~pg_connection() {
  if (conn_) PQfinish(conn_);
}

// ---- sending

pg_group_ptr pg_connection::submit(const request& r) {
  pg_group_ptr g =
      std::allocate_shared<pg_awaited_group>(thread_cache_allocator<pg_awaited_group>());
  std::lock_guard lock(mutex_);
  if (state_ != state::open) {
    if (state_ == state::closed)
      throw error(sqlstate::connection_does_not_exist, "the database is closed");
    throw connection_error(conn_, "connection lost", secrets_);
  }
  if (in_copy_)
    throw error(code::object_not_in_prerequisite_state,
                "a COPY is under way on this transaction's connection: finish it first");
  // Everything that can fail for the caller's reasons fails here, before anything is sent.
  pg_statement_cache::entry* e = nullptr;
  if (r.has_statement) {
    e = &cache_.find_or_add(r.sql);
    check_statement_text(e->scan);
    if (e->scan.highest_placeholder != r.params.size())
      throw error(sqlstate::wrong_parameter_count,
                  "the statement takes " + std::to_string(e->scan.highest_placeholder) +
                      " parameters ($1..$N) but " + std::to_string(r.params.size()) +
                      " were given");
    params_.encode(r.params);
  }
  std::string_view begin;
  if (r.tx) {
    if (r.ends_tx) {
      if (r.tx->end() != pg_tx_book::ending::send) return nullptr;
    } else {
      begin = r.tx->before_group();
    }
  }

  // The statement's prepared name, settled first: a new one may make the cache give up an old
  // one, whose DEALLOCATE then goes out in this same round trip.
  if (e && cache_.named()) {
    if (const std::string* name = cache_.prepared_name(*e, params_.types()))
      g->executed_name = *name;
    else
      g->prepared_name = cache_.add_prepared(*e, params_.types());
  }

  // From here on, a failure means the connection cannot go on.
  const bool was_busy = !pipeline_.empty();
  // Behind a stream whose reader fell behind: its rows are read (and buffered) again, or this
  // group's answer would wait for a reader who may be waiting for it.
  resume_stream_locked();
  if (was_busy) cork_locked();
  // DEALLOCATEs owed by the statement cache travel with groups outside transactions: inside
  // one, a failure of theirs would abort it.
  if (!r.tx && cache_.has_owed())
    for (const std::string& sql : cache_.take_owed())
      send_control_locked(sql, pg_command::deallocate, *g);
  if (!begin.empty()) send_control_locked(begin, pg_command::control, *g);
  for (std::string_view sql : r.controls)
    send_control_locked(sql, pg_command::control, *g);
  if (e) send_statement_locked(*e, *g, r);
  if (r.stream && e) {
    g->streamed = true;
    g->stream_command = g->commands.size() - 1;
  }
  if (!PQpipelineSync(conn_)) fail_send_locked();
  g->retryable = r.retryable;
  if (r.detached) g->watch = pg_watch::detached;
  g->sent_at = pg_clock::now();
  if (e && !g->streamed) g->latency_key = r.latency_key;
  g->placed_slow = r.placed_slow;
  g->known_fast = r.known_fast;
  pipeline_.push(g);
  if (g->streamed) set_single_row_mode_locked();
  if (g->placed_slow) slow_in_flight_.fetch_add(1, std::memory_order_acq_rel);
  in_flight_.fetch_add(1, std::memory_order_acq_rel);
  update_gauges_locked();
  after_send_locked(was_busy);
  return g;
}

void pg_connection::send_control_locked(std::string_view sql, pg_command kind, pg_group& g) {
  // Controls are short: a NUL-terminated copy on the stack (or in a small string).
  const std::string text(sql);
  if (!PQsendQueryParams(conn_, text.c_str(), 0, nullptr, nullptr, nullptr, nullptr, 0))
    fail_send_locked();
  g.commands.push_back(kind);
}

void pg_connection::send_statement_locked(pg_statement_cache::entry& e, pg_group& g,
                                          const request& r) {
  (void)r;
  const int count = params_.count();
  if (!cache_.named()) {
    // Unnamed statements only: what PgBouncer's transaction mode needs.
    if (!PQsendQueryParams(conn_, e.sql.c_str(), count, params_.type_data(), params_.values(),
                           params_.lengths(), params_.formats(), 0))
      fail_send_locked();
    g.commands.push_back(pg_command::statement);
    return;
  }
  if (!g.prepared_name.empty()) {
    if (!PQsendPrepare(conn_, g.prepared_name.c_str(), e.sql.c_str(), count, params_.type_data()))
      fail_send_locked();
    g.commands.push_back(pg_command::prepare);
  }
  const std::string& name = g.executed_name.empty() ? g.prepared_name : g.executed_name;
  if (!PQsendQueryPrepared(conn_, name.c_str(), count, params_.values(), params_.lengths(),
                           params_.formats(), 0))
    fail_send_locked();
  g.commands.push_back(pg_command::statement);
}

void pg_connection::fail_send_locked() {
  // libpq could not queue the command: the connection is unusable. What was queued before in
  // this group never reaches a Sync; the pipeline record ends with the connection.
  group_list done;
  lose_locked("cannot send to the server", done);
  const std::exception_ptr why =
      std::make_exception_ptr(connection_error(conn_, "cannot send to the server", secrets_));
  // Wake the others from a posted handler: this thread holds the lock.
  auto wake = [self = shared_from_this(), done = std::move(done)]() mutable {
    group_list none;
    self->finish(done, none, true);
  };
  asio::post(executor_, std::move(wake));
  std::rethrow_exception(why);
}

// libpq 15's PQpipelineSync always flushes: each group is a send() and, left alone, a TCP
// segment of its own, which costs both ends a trip through their network stacks. While the
// connection is busy, tasks resumed in the same round send one after another; the socket is
// corked for that round, so the round leaves as one segment. The round is the read that
// resumed them (it uncorks when they have all sent: see on_readable), or else, for a send from
// elsewhere, the handlers queued before one posted here. An idle connection's group goes out
// at once.
void pg_connection::cork_locked() {
  if (!socket_.cork() || in_read_round_) return;
  auto uncork = [self = shared_from_this()] {
    std::lock_guard lock(self->mutex_);
    self->socket_.uncork();
  };
  asio::post(executor_, std::move(uncork));
}

void pg_connection::after_send_locked(bool was_busy) {
  (void)was_busy;
  // PQpipelineSync sent what it could; what the socket did not take waits for writability.
  const int flushed = PQflush(conn_);
  if (flushed < 0) {
    group_list done;
    lose_locked("cannot send to the server", done);
    auto wake = [self = shared_from_this(), done = std::move(done)]() mutable {
      group_list none;
      self->finish(done, none, true);
    };
    asio::post(executor_, std::move(wake));
    return;
  }
  if (flushed == 1) start_flusher_locked();
  arm_read_locked();
}

void pg_connection::start_flusher_locked() {
  // (Nothing armed when the socket cannot be watched: the next read's PQconsumeInput finds the
  // connection's state.)
  socket_.arm_write([self = shared_from_this()] { self->on_writable(); });
}

void pg_connection::on_writable() {
  group_list done, cancels;
  {
    std::lock_guard lock(mutex_);
    socket_.write_fired();
    if (state_ != state::open) return;
    const int flushed = PQflush(conn_);
    if (flushed < 0) {
      lose_locked("cannot send to the server", done);
    } else if (flushed == 1) {
      start_flusher_locked();
      return;
    }
  }
  if (!done.empty()) finish(done, cancels, true);
}

// ---- reading

// One read at a time, armed while anything is in flight (see pg_socket::arm_read).
void pg_connection::arm_read_locked() {
  if (socket_.read_state() != pg_socket::reading::idle || (pipeline_.empty() && !sink_)) return;
  socket_.arm_read([self = shared_from_this()] { self->on_readable(); });
}

void pg_connection::on_readable() {
  group_list done, cancels;
  bool was_lost = false;
  std::vector<notice> notices;
  std::vector<waiter_ptr> wakes;
  std::vector<pg_notification> notified;
  notification_sink sink;
  {
    std::lock_guard lock(mutex_);
    socket_.read_fired();
    if (state_ == state::open) {
      if (!PQconsumeInput(conn_)) {
        lose_locked("connection lost", done);
      } else {
        read_results_locked(done, cancels);
        if (sink_) {
          while (PGnotify* n = PQnotifies(conn_)) {
            notifications_.push_back({n->relname, n->extra ? n->extra : "", n->be_pid});
            PQfreemem(n);
          }
        }
      }
    }
    was_lost = state_ == state::lost;
    if (state_ == state::open)
      arm_read_locked();
    else
      socket_.close_read_watch();  // lost or closed: nothing will be armed again
    notices.swap(notices_);
    wakes.swap(row_wakes_);
    // One thread at a time hands notifications over, in the order read (the next read may
    // complete on another thread while this one delivers).
    if (!notifications_.empty() && !delivering_) {
      delivering_ = true;
      sink = sink_;
    }
  }
  // Outside the lock: an observer may use the database.
  if (!notices.empty()) report_notices(notices);
  for (const waiter_ptr& w : wakes)
    w->notify();
  while (sink) {
    {
      std::lock_guard lock(mutex_);
      notified.clear();
      notified.swap(notifications_);
      if (notified.empty()) {
        delivering_ = false;
        break;
      }
    }
    sink(notified, false);
  }
  {
    std::lock_guard lock(mutex_);
    in_read_round_ = true;
  }
  finish(done, cancels, was_lost, true);
  // The tasks resumed here have sent what they had: out as one segment.
  std::lock_guard lock(mutex_);
  in_read_round_ = false;
  socket_.uncork();
}

void pg_connection::listen_with(notification_sink sink) {
  std::lock_guard lock(mutex_);
  sink_ = std::move(sink);
  if (state_ == state::open) arm_read_locked();
}

void pg_connection::report_notices(const std::vector<notice>& notices) noexcept {
  awaitdb::observer* watcher = shared_->observers ? shared_->observers->get() : nullptr;
  if (!watcher) return;
  for (const notice& n : notices) {
    awaitdb::notice_event e;
    e.engine = awaitdb::engine::postgres;
    e.connection = static_cast<std::uint64_t>(backend_pid_);
    e.severity = n.severity;
    e.sqlstate = n.sqlstate;
    e.message = n.message;
    watcher->notice(e);
  }
}

// libpq's single-row mode applies to the command whose results come next, and must be set
// before libpq parses any of them: when the streamed statement is sent first, or as soon as the
// command before it has ended.
void pg_connection::set_single_row_mode_locked() {
  pg_group* head = pipeline_.head();
  if (!head || !head->streamed || head->single_row_set) return;
  if (head->next != head->stream_command || head->command_has_result) return;
  // libpq refuses while the command is not yet the one it reads, and once it has parsed rows
  // of it: tried again after each event until then. (Too late, the rows come as one result at
  // the end: still correct, only not bounded.)
  head->single_row_set = PQsetSingleRowMode(conn_) == 1;
}

void pg_connection::read_results_locked(group_list& done, group_list& cancels) {
  // Rows buffered for a stream's reader before the socket is left unread.
  static constexpr std::size_t stream_high_mark = 4096;
  while (state_ == state::open && !pipeline_.empty() &&
         socket_.read_state() != pg_socket::reading::paused && !PQisBusy(conn_)) {
    PGresult* raw = PQgetResult(conn_);
    pg_event e;
    if (!raw) {
      if (PQstatus(conn_) == CONNECTION_BAD) {
        lose_locked("connection lost", done);
        return;
      }
      e.what = pg_event::kind::end_of_command;
    } else {
      e.what = pg_event::kind::result;
      e.status = PQresultStatus(raw);
      if (e.status == PGRES_FATAL_ERROR) {
        const char* code = PQresultErrorField(raw, PG_DIAG_SQLSTATE);
        e.sqlstate = code ? code : "";
        e.failure = std::make_exception_ptr(server_error(raw, conn_, secrets_));
      }
      e.result.reset(raw);
      pg_group& head = *pipeline_.head();
      if (e.status == PGRES_SINGLE_TUPLE && head.streamed) {
        if (!head.abandoned()) {
          head.stream_rows.push_back(std::move(e.result));
          if (waiter_ptr& reader = awaited(head).row_waiter)
            row_wakes_.push_back(std::move(reader));
          if (head.stream_rows.size() >= stream_high_mark && pipeline_.size() == 1)
            socket_.pause_reads();
        }
        e.result.reset();
      }
    }
    pg_pipeline::step s = pipeline_.feed(std::move(e), pg_clock::now());
    if (s.cancel) cancels.push_back(std::move(s.cancel));
    if (s.completed) {
      completed_locked(*s.completed);
      done.push_back(std::move(s.completed));
    }
    if (s.protocol_error) {
      lose_locked("the server's answers do not match what was sent", done,
                  code::protocol_violation);
      return;
    }
    set_single_row_mode_locked();
  }
}

// A group's Sync has arrived: what it teaches the statement cache, and the gauges.
void pg_connection::completed_locked(pg_group& g) {
  switch (g.cache_action) {
    case pg_cache_action::none:
      break;
    case pg_cache_action::forget_prepared:
      cache_.forget(g.prepared_name);
      break;
    case pg_cache_action::replan:
      cache_.invalidate(g.executed_name, true);
      break;
    case pg_cache_action::forget_executed:
      cache_.invalidate(g.executed_name, false);
      break;
  }
  if (g.latency_key != 0 && shared_->latency.record(g.latency_key, g.ran_for))
    awaited(g).first_measured = true;
  if (g.placed_slow) slow_in_flight_.fetch_sub(1, std::memory_order_acq_rel);
  in_flight_.fetch_sub(1, std::memory_order_acq_rel);
  update_gauges_locked();
}

void pg_connection::update_gauges_locked() {
  busy_since_.store(ticks(pipeline_.busy_since()), std::memory_order_release);
  const pg_group* head = pipeline_.head();
  head_known_fast_.store(head && head->known_fast, std::memory_order_release);
  if (pipeline_.empty()) idle_since_.store(ticks(pg_clock::now()), std::memory_order_release);
}

void pg_connection::lose_locked(std::string_view why, group_list& done, std::string_view code) {
  if (state_ != state::open) return;
  state_ = state::lost;
  lost_.store(true, std::memory_order_release);
  try {
    loss_reason_ = why;
  } catch (...) {
    // (no reason to give)
  }
  const std::exception_ptr failure = std::make_exception_ptr(
      code == sqlstate::connection_failure ? connection_error(conn_, why, secrets_)
                                           : error(code, std::string(why)));
  for (pg_group_ptr& g : pipeline_.lose(failure)) {
    if (g->placed_slow) slow_in_flight_.fetch_sub(1, std::memory_order_acq_rel);
    in_flight_.fetch_sub(1, std::memory_order_acq_rel);
    done.push_back(std::move(g));
  }
  update_gauges_locked();
  // A read or a writability wait armed on the socket completes now and sees the state.
  socket_.shut_down();
}

// Outside the lock: wake the tasks whose groups completed, cancel on the server what must be,
// and tell the pool.
void pg_connection::finish(group_list& done, group_list& cancels, bool was_lost, bool resume_here) {
  // A statement's first run measured: the tasks waiting to place it go on.
  for (const pg_group_ptr& g : done)
    if (awaited(*g).first_measured) {
      shared_->first_runs.notify_all();
      break;
    }
  // Tasks may resume inline, once everything else here is done, in the order their statements
  // completed (each runs until it waits again): no trip through the executor's queue, nor the
  // reactor poll that comes with it, and what they send goes out together at the end of the
  // read. On a context that one thread runs, all of them; where several threads run it, the
  // first, and the others are posted (other threads may take them). A stream's groups are
  // posted.
  // (By hand: std::stable_partition allocates a buffer.)
  group_list here;
  if (resume_here && !was_lost) {
    std::size_t kept = 0;
    for (pg_group_ptr& g : done) {
      if (!g->streamed && (one_thread_ || here.empty()))
        here.push_back(std::move(g));
      else
        done[kept++] = std::move(g);
    }
    done.resize(kept);
  }
  for (const pg_group_ptr& g : done) {
    awaited(*g).notify();
    if (g->streamed) {
      waiter_ptr reader;
      {
        std::lock_guard lock(mutex_);
        reader = std::move(awaited(*g).row_waiter);
      }
      if (reader) reader->notify();
    }
  }
  for (pg_group_ptr& g : cancels)
    cancel_on_server(std::move(g));
  if (was_lost) {
    report_lost();
    notification_sink sink;
    {
      std::lock_guard lock(mutex_);
      sink = std::move(sink_);  // told once
    }
    if (sink) {
      std::vector<pg_notification> none;
      sink(none, true);
    }
  } else if ((!here.empty() || !done.empty()) && in_flight() == 0) {
    report_quiet();
  }
  for (pg_group_ptr& g : here)
    waiter::notify_here(awaited(std::move(g)));
}

// ---- the pool's view

pool_clock::time_point pg_connection::busy_since() const noexcept {
  return from_ticks(busy_since_.load(std::memory_order_acquire));
}

pool_clock::time_point pg_connection::idle_since() const noexcept {
  return from_ticks(idle_since_.load(std::memory_order_acquire));
}

void pg_connection::on_notice(void* self, const PGresult* message) {
  auto& c = *static_cast<pg_connection*>(self);
  const char* severity = PQresultErrorField(message, PG_DIAG_SEVERITY_NONLOCALIZED);
  if (severity && (std::strcmp(severity, "FATAL") == 0 || std::strcmp(severity, "PANIC") == 0)) {
    c.server_ending_ = true;
    return;
  }
  // Kept for the observer, if there is one (delivered after the read, outside the lock); a
  // bounded number between two reads.
  if (!c.shared_->observers || !c.shared_->observers->get() || c.notices_.size() >= 1000) return;
  auto field = [&](int code) {
    const char* v = PQresultErrorField(message, code);
    return std::string(v ? v : "");
  };
  try {
    c.notices_.push_back(notice{field(PG_DIAG_SEVERITY_NONLOCALIZED), field(PG_DIAG_SQLSTATE),
                                field(PG_DIAG_MESSAGE_PRIMARY)});
  } catch (...) {
    // (Out of memory: the notice is dropped, as it was before observers.)
  }
}

}  // namespace awaitdb::detail
