#include "pg_connection.hpp"

#include "../param_check.hpp"
#include "../placeholders.hpp"
#include "pg_errors.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/recycling_allocator.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/socket_base.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>
#include <charconv>
#include <cmath>
#include <utility>

namespace awaitdb::detail {

namespace asio = boost::asio;
using namespace boost::asio::experimental::awaitable_operators;
using boost::system::error_code;

namespace {

namespace oid {
constexpr Oid unknown = 0, boolean = 16, bytea = 17, int8 = 20, int2 = 21, int4 = 23, float8 = 701;
}

bool is_operation_aborted(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const boost::system::system_error& s) {
    return s.code() == asio::error::operation_aborted;
  } catch (...) {
    return false;
  }
}

void no_notices(void*, const char*) {
  // Server notices (NOTICE, WARNING) are not printed: libpq's default writes them to stderr,
  // and a library must not write to its user's stderr.
}

}  // namespace

std::size_t pg_connection::key_hash::operator()(const key_view& k) const noexcept {
  std::size_t h = std::hash<std::string_view>()(k.sql);
  for (std::size_t i = 0; i < k.count; ++i)
    h = h * 31 + k.types[i];
  return h;
}

pg_connection::pg_connection(asio::any_io_executor executor, std::shared_ptr<pg_pool_state> pool)
    : executor_(std::move(executor))
    , pool_(std::move(pool))
    , options_(pool_->options)
    , socket_(executor_) {}

pg_connection::~pg_connection() {
  if (socket_.is_open()) {
    error_code ignored;
    socket_.release(ignored);  // libpq owns the descriptor and closes it in PQfinish
  }
  if (conn_) PQfinish(conn_);
}

void pg_connection::attach_socket() {
  // The descriptor can change while connecting (another host, another address, SSL retry):
  // re-register it every time rather than trust that a reused number is the same socket.
  error_code ec;
  if (socket_.is_open()) socket_.release(ec);
  int fd = PQsocket(conn_);
  if (fd < 0) fail_connection("the connection has no socket");
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  int family =
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0 ? addr.ss_family : AF_INET;
  can_cork_ = family == AF_INET || family == AF_INET6;
  socket_.assign(asio::generic::stream_protocol(family, 0), fd, ec);
  if (ec) fail_connection("cannot watch the connection's socket: " + ec.message());
}

void pg_connection::fail_connection(std::string_view context) {
  broken_ = true;
  throw connection_error(conn_, context, options_.secrets);
}

asio::awaitable<std::shared_ptr<pg_connection>> pg_connection::connect(
    asio::any_io_executor executor, std::shared_ptr<pg_pool_state> pool) {
  std::shared_ptr<pg_connection> self(new pg_connection(std::move(executor), std::move(pool)));
  const postgres_options& options = self->options_;
  const char* keys[] = {"dbname", nullptr};
  const char* values[] = {options.libpq_url.c_str(), nullptr};
  self->conn_ = PQconnectStartParams(keys, values, /*expand_dbname=*/1);
  if (!self->conn_) throw error(sqlstate::connection_not_established, "out of memory in libpq");
  if (PQstatus(self->conn_) == CONNECTION_BAD)
    throw error(sqlstate::connection_not_established,
                "cannot connect to " + options.display_name + ": " +
                    libpq_message(PQerrorMessage(self->conn_), options.secrets));
  PQsetNoticeProcessor(self->conn_, no_notices, nullptr);
  co_await self->connect_loop(std::chrono::steady_clock::now() + options.connect_timeout);

  if (PQsetnonblocking(self->conn_, 1) != 0 || PQenterPipelineMode(self->conn_) != 1)
    self->fail_connection("cannot enter pipeline mode");
  if (options.statement_timeout.count() > 0) {
    std::string set =
        "SET statement_timeout = " + std::to_string(options.statement_timeout.count());
    co_await self->exchange(control_list(set), nullptr);
  }
  co_return self;
}

asio::awaitable<void> pg_connection::connect_loop(std::chrono::steady_clock::time_point deadline) {
  // libpq: start as if PQconnectPoll had asked to wait for writability.
  PostgresPollingStatusType poll = PGRES_POLLING_WRITING;
  asio::steady_timer timer(executor_);
  for (;;) {
    if (poll == PGRES_POLLING_OK) break;
    if (poll == PGRES_POLLING_FAILED)
      throw error(sqlstate::connection_not_established,
                  "cannot connect to " + options_.display_name + ": " +
                      libpq_message(PQerrorMessage(conn_), options_.secrets));
    attach_socket();
    timer.expires_at(deadline);
    auto ready = poll == PGRES_POLLING_READING ? wait_readable() : wait_writable();
    auto which = co_await (std::move(ready) || timer.async_wait(asio::use_awaitable));
    if (which.index() == 1)
      throw error(sqlstate::connection_not_established,
                  "cannot connect to " + options_.display_name + ": timed out after " +
                      std::to_string(
                          std::chrono::duration_cast<std::chrono::seconds>(options_.connect_timeout)
                              .count()) +
                      " s");
    poll = PQconnectPoll(conn_);
  }
  attach_socket();
}

auto pg_connection::readable() {
  // A one-byte MSG_PEEK receive, not async_wait: Asio tries a receive speculatively under
  // the reactor's lock before it queues the wait, so data that arrived (and an edge that was
  // consumed by another thread's epoll_wait) since libpq last read cannot be missed. The byte
  // stays in the socket for libpq. Deferred: awaited directly, it costs no coroutine frame.
  return socket_.async_receive(asio::buffer(&peek_byte_, 1), asio::socket_base::message_peek,
                               asio::as_tuple(asio::deferred));
}

void pg_connection::check_wait(const error_code& ec) {
  if (ec == asio::error::operation_aborted) throw boost::system::system_error(ec);
  // EOF and errors: readable as far as libpq is concerned; it reports them itself.
}

asio::awaitable<void> pg_connection::wait_readable() {
  auto [ec, n] = co_await readable();
  check_wait(ec);
}

asio::awaitable<void> pg_connection::wait_writable() {
  auto [ec] =
      co_await socket_.async_wait(asio::socket_base::wait_write, asio::as_tuple(asio::deferred));
  check_wait(ec);
}

bool pg_connection::check_idle() noexcept {
  std::lock_guard lock(mutex_);
  if (broken()) return false;
  // An idle server sends nothing unasked but notices and, when it is about to close the
  // connection, a FATAL error. Peek without blocking: end of file means the connection is gone;
  // data means read it (libpq treats an error while idle as a notice) and look again.
  for (int attempt = 0; attempt < 4; ++attempt) {
    char byte;
    const ssize_t n = ::recv(PQsocket(conn_), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return !broken();
    if (n <= 0 || !PQconsumeInput(conn_)) {
      broken_ = true;
      return false;
    }
  }
  return !broken();
}

void pg_connection::encode_params(const statement& st) {
  const std::size_t n = st.param_count;
  const sql_scan scan = scan_sql(st.sql);
  check_statement_text(scan);
  const std::size_t placeholders = scan.highest_placeholder;
  if (n != placeholders)
    throw error(sqlstate::wrong_parameter_count,
                "the statement takes " + std::to_string(placeholders) +
                    " parameters ($1..$N) but " + std::to_string(n) + " were given");

  scratch_.clear();
  offsets_.assign(n, 0);
  values_.assign(n, nullptr);
  lengths_.assign(n, 0);
  formats_.assign(n, 0);
  types_.assign(n, oid::unknown);
  for (std::size_t i = 0; i < n; ++i) {
    const param& p = st.params[i];
    auto put_number = [&](auto value) {
      char buffer[32];
      auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value);
      offsets_[i] = scratch_.size();
      scratch_.append(buffer, ec == std::errc() ? end : buffer);
      scratch_.push_back('\0');
    };
    switch (p.kind) {
      case param_kind::null:
        offsets_[i] = std::string::npos;
        break;
      case param_kind::boolean:
        types_[i] = oid::boolean;
        offsets_[i] = scratch_.size();
        scratch_.append(p.integer ? "t" : "f", 2);
        break;
      case param_kind::int16:
        types_[i] = oid::int2;
        put_number(p.integer);
        break;
      case param_kind::int32:
        types_[i] = oid::int4;
        put_number(p.integer);
        break;
      case param_kind::int64:
        types_[i] = oid::int8;
        put_number(p.integer);
        break;
      case param_kind::real:
        types_[i] = oid::float8;
        if (std::isnan(p.real)) {
          offsets_[i] = scratch_.size();
          scratch_.append("NaN", 4);
        } else if (std::isinf(p.real)) {
          offsets_[i] = scratch_.size();
          scratch_.append(p.real > 0 ? "Infinity" : "-Infinity");
          scratch_.push_back('\0');
        } else {
          put_number(p.real);
        }
        break;
      case param_kind::text:
        // Text-format parameters are NUL-terminated C strings; PostgreSQL text cannot hold
        // a NUL byte anyway. Checked here, as SQLite checks it, so both report the same.
        check_text_parameter(p.bytes, i + 1);
        offsets_[i] = scratch_.size();
        scratch_.append(p.bytes);
        scratch_.push_back('\0');
        break;
      case param_kind::blob:
        types_[i] = oid::bytea;
        formats_[i] = 1;  // binary: the bytes as they are
        offsets_[i] = scratch_.size();
        scratch_.append(p.bytes);
        lengths_[i] = static_cast<int>(p.bytes.size());
        break;
    }
  }
  // Pointers only once scratch_ has stopped growing.
  for (std::size_t i = 0; i < n; ++i)
    values_[i] = offsets_[i] == std::string::npos ? nullptr : scratch_.data() + offsets_[i];
}

void pg_connection::send_control(const char* sql, sink& out) {
  if (!PQsendQueryParams(conn_, sql, 0, nullptr, nullptr, nullptr, nullptr, 0))
    fail_connection("cannot send the statement");
  out.expected.push_back(expect::control);
}

void pg_connection::send_statement(const statement& st, sink& out) {
  expect_list& expected = out.expected;
  const std::size_t n = st.param_count;
  const int count = static_cast<int>(n);
  if (options_.statement_cache_size == 0) {
    // Unnamed statements only: what PgBouncer's transaction mode needs.
    std::string sql(st.sql);
    if (!PQsendQueryParams(conn_, sql.c_str(), count, types_.data(), values_.data(),
                           lengths_.data(), formats_.data(), 0))
      fail_connection("cannot send the statement");
    expected.push_back(expect::statement);
    return;
  }

  key_view key{st.sql, types_.data(), n};
  auto found = prepared_.find(key);
  if (found == prepared_.end()) {
    if (prepared_.size() >= options_.statement_cache_size) {
      // Evict the least recently used statement, in this same round trip.
      auto victim = prepared_.find(lru_.back());
      const std::string deallocate = "DEALLOCATE " + victim->second.name;
      prepared_.erase(victim);
      lru_.pop_back();
      if (!PQsendQueryParams(conn_, deallocate.c_str(), 0, nullptr, nullptr, nullptr, nullptr, 0))
        fail_connection("cannot send the statement");
      expected.push_back(expect::deallocate);
    }
    out.prepared_name = "awaitdb_" + std::to_string(next_statement_id_++);
    std::string sql(st.sql);
    if (!PQsendPrepare(conn_, out.prepared_name.c_str(), sql.c_str(), count, types_.data()))
      fail_connection("cannot send the statement");
    expected.push_back(expect::prepare);
    if (!PQsendQueryPrepared(conn_, out.prepared_name.c_str(), count, values_.data(),
                             lengths_.data(), formats_.data(), 0))
      fail_connection("cannot send the statement");
    lru_.push_front(prepared_key{sql, std::vector<Oid>(types_.begin(), types_.end())});
    prepared_.emplace(lru_.front(), prepared_entry{out.prepared_name, lru_.begin()});
  } else {
    lru_.splice(lru_.begin(), lru_, found->second.lru);
    if (!PQsendQueryPrepared(conn_, found->second.name.c_str(), count, values_.data(),
                             lengths_.data(), formats_.data(), 0))
      fail_connection("cannot send the statement");
  }
  expected.push_back(expect::statement);
}

asio::awaitable<void> pg_connection::flush() {
  for (;;) {
    int rc = PQflush(conn_);
    if (rc == 0) co_return;
    if (rc < 0) fail_connection("cannot send to the server");
    co_await wait_writable();
  }
}

bool pg_connection::consume(sink& s, pg_result_ptr r) {
  if (!r) {
    // The end of one command's results.
    if (s.command_has_result) ++s.next;
    s.command_has_result = false;
    return false;
  }
  s.command_has_result = true;
  const ExecStatusType status = PQresultStatus(r.get());
  if (status == PGRES_PIPELINE_SYNC) return true;
  if (s.next >= s.expected.size()) {
    broken_ = true;  // libpq and this driver disagree on the protocol state
    if (!s.failure)
      s.failure =
          std::make_exception_ptr(error(sqlstate::internal_error, "unexpected server result"));
    return false;
  }
  const expect what = s.expected[s.next];
  if (status == PGRES_FATAL_ERROR) {
    error e = server_error(r.get(), conn_, options_.secrets);
    if (what == expect::prepare) {
      // Not prepared after all: forget it, so the next call prepares again.
      for (auto it = prepared_.begin(); it != prepared_.end(); ++it)
        if (it->second.name == s.prepared_name) {
          lru_.erase(it->second.lru);
          prepared_.erase(it);
          break;
        }
    }
    if (e.is_connection_error()) broken_ = true;
    if (!s.failure) s.failure = std::make_exception_ptr(std::move(e));
    return false;
  }
  if (status == PGRES_PIPELINE_ABORTED || what != expect::statement || !s.st) return false;
  statement& st = *s.st;
  if (status == PGRES_TUPLES_OK) {
    if (st.mode == result_mode::rows)
      // Asio's recycling allocator: a thread running query after query reuses the memory.
      st.rows = result(
          std::allocate_shared<pg_result>(asio::recycling_allocator<pg_result>(), std::move(r)));
    else
      st.affected = pg_affected_rows(r.get());
  } else if (status == PGRES_COMMAND_OK) {
    st.affected = pg_affected_rows(r.get());
    if (st.mode == result_mode::rows) st.rows = result();
  } else if (status == PGRES_COPY_IN || status == PGRES_COPY_OUT || status == PGRES_COPY_BOTH) {
    broken_ = true;
    if (!s.failure)
      s.failure = std::make_exception_ptr(
          error(sqlstate::feature_not_supported, "COPY is not supported through query()"));
  }
  return false;
}

asio::awaitable<void> pg_connection::read_results(sink& s) {
  for (;;) {
    while (PQisBusy(conn_)) {
      co_await wait_readable();
      if (!PQconsumeInput(conn_)) {
        broken_ = true;
        if (!s.failure)
          s.failure =
              std::make_exception_ptr(connection_error(conn_, "connection lost", options_.secrets));
        co_return;
      }
    }
    pg_result_ptr r(PQgetResult(conn_));
    if (!r && PQstatus(conn_) == CONNECTION_BAD) {
      broken_ = true;
      if (!s.failure)
        s.failure =
            std::make_exception_ptr(connection_error(conn_, "connection lost", options_.secrets));
      co_return;
    }
    if (consume(s, std::move(r))) co_return;
  }
}

asio::awaitable<void> pg_connection::exchange(control_list controls, statement* st) {
  if (broken()) throw connection_error(conn_, "connection lost", options_.secrets);
  // Everything that can fail for the caller's reasons (parameter count, values) fails here,
  // before anything is queued in libpq.
  if (st) encode_params(*st);
  sink out;
  out.st = st;
  for (std::string_view sql : controls)
    send_control(std::string(sql).c_str(), out);
  if (st) send_statement(*st, out);
  if (!PQpipelineSync(conn_)) fail_connection("cannot send the statement");
  pool_->in_flight.fetch_add(1, std::memory_order_relaxed);
  struct answered {
    pg_connection& c;
    ~answered() {
      c.pool_->in_flight.fetch_sub(1, std::memory_order_relaxed);
      c.idle_since_.store(std::chrono::steady_clock::now().time_since_epoch().count(),
                          std::memory_order_relaxed);
    }
  } counted{*this};

  bool cancelled = false;
  try {
    co_await flush();
    co_await read_results(out);
  } catch (...) {
    std::exception_ptr e = std::current_exception();
    if (!is_operation_aborted(e)) {
      broken_ = true;
      throw;
    }
    cancelled = true;
  }
  if (cancelled) {
    // A cancelled coroutine throws at every co_await (asio's throw_if_cancelled), this one
    // included: the cleanup's I/O must still happen, so switch that off around it.
    const bool throw_if_cancelled = co_await asio::this_coro::throw_if_cancelled();
    co_await asio::this_coro::throw_if_cancelled(false);
    co_await recover_after_cancel(1);
    co_await asio::this_coro::throw_if_cancelled(throw_if_cancelled);
    throw boost::system::system_error(asio::error::operation_aborted);
  }
  if (out.failure) std::rethrow_exception(out.failure);
}

asio::awaitable<void> pg_connection::recover_after_cancel(std::size_t expected_syncs) {
  try {
    co_await cancel_on_server();

    // Read what is left of this exchange (the cancelled statement's error, then the Sync),
    // within a bound: a connection that cannot be proven clean is not reused.
    asio::steady_timer timer(executor_, std::chrono::seconds(5));
    auto drain = [this, expected_syncs]() -> asio::awaitable<void> {
      for (std::size_t syncs = 0; syncs < expected_syncs;) {
        while (PQisBusy(conn_)) {
          co_await wait_readable();
          if (!PQconsumeInput(conn_)) co_return;
        }
        pg_result_ptr r(PQgetResult(conn_));
        if (r && PQresultStatus(r.get()) == PGRES_PIPELINE_SYNC) ++syncs;
        if (!r && PQstatus(conn_) == CONNECTION_BAD) co_return;
      }
    };
    auto which = co_await (drain() || timer.async_wait(asio::use_awaitable));
    if (which.index() == 1 || PQstatus(conn_) != CONNECTION_OK ||
        PQtransactionStatus(conn_) == PQTRANS_ACTIVE)
      broken_ = true;
  } catch (...) {
    broken_ = true;
  }
}

asio::awaitable<void> pg_connection::cancel_on_server() {
  // libpq 15's PQcancel blocks, so ask the server to cancel the statement from a second,
  // short-lived connection, driven by this same executor.
  auto canceller = co_await pg_connection::connect(executor_, pool_);
  statement cancel;
  cancel.sql = "SELECT pg_cancel_backend($1)";
  param pid{param_kind::int32, backend_pid(), 0, {}};
  cancel.params = &pid;
  cancel.param_count = 1;
  cancel.mode = result_mode::count;
  co_await canceller->exchange(control_list(), &cancel);
}

// ---- Shared use: pipelining across tasks
//
// Every task sends its statement and a Sync under mutex_, in the order they reach the server,
// and joins `inflight_`. One task at a time, the leader, reads: it hands each statement's
// results to its sink, wakes the owners whose Sync has arrived, and when its own has arrived
// passes the role to the oldest task still waiting (or, if only abandoned statements remain,
// to a detached drainer). Nobody reads on behalf of a statement nobody waits for except to
// drop its results, so a cancelled awaiter can leave at once.

struct pg_connection::pending : sink {
  wait_list::ticket ticket;  // the owner's wake-up, when it is not the leader
  bool done = false;         // results (or failure) complete
  bool abandoned = false;    // the owner left (cancelled): drop its results
  bool led = false;          // the owner started reading as the leader
};

std::chrono::steady_clock::duration pg_connection::idle_for() const noexcept {
  if (in_flight() > 0) return {};
  const auto since = std::chrono::steady_clock::time_point(
      std::chrono::steady_clock::duration(idle_since_.load(std::memory_order_relaxed)));
  return std::chrono::steady_clock::now() - since;
}

bool pg_connection::quiet() noexcept {
  std::lock_guard lock(mutex_);
  return claims_.load(std::memory_order_acquire) == 0 && inflight_.empty() && !leader_ &&
         !cancelling_;
}

bool pg_connection::finish(pinned_tx& pin) {
  std::lock_guard lock(mutex_);
  return !std::exchange(pin.finished, true);
}

rollback_step pg_connection::owe_rollback(pinned_tx& pin, std::string_view savepoint) {
  std::lock_guard lock(mutex_);
  if (pin.finished) return rollback_step::none;
  if (savepoint.empty()) {
    pin.finished = true;
    if (pin.begin_owed) return rollback_step::release;  // BEGIN never went out
    pin.owed.emplace_back("ROLLBACK");
  } else {
    pin.owed.push_back("ROLLBACK TO SAVEPOINT " + std::string(savepoint));
    pin.owed.push_back("RELEASE SAVEPOINT " + std::string(savepoint));
  }
  return rollback_step::flush;
}

asio::awaitable<void> pg_connection::pipelined(control_list controls, statement* st, pinned_tx* pin,
                                               pin_use use) {
  auto me = std::make_shared<pending>();
  me->st = st;
  bool lead_now = false;
  {
    std::unique_lock lock(mutex_);
    while (cancelling_) {
      // A group alone in flight is being cancelled on the server: sending now could put
      // another statement in the way of that cancel.
      co_await cancel_done_.wait(lock);
      lock.lock();
    }
    if (broken()) throw connection_error(conn_, "connection lost", options_.secrets);
    if (pin && use == pin_use::statement && pin->finished)
      throw error(sqlstate::no_active_transaction, "this task's transaction has ended");
    if (pin && use == pin_use::ending && pin->begin_owed) co_return;  // nothing to end
    if (st) encode_params(*st);  // the caller's errors surface here, before anything is sent
    if (!inflight_.empty()) cork_locked();
    if (pin) {
      if (pin->begin_owed) {
        send_control("BEGIN", *me);
        pin->begin_owed = false;
      }
      for (const std::string& sql : pin->owed)
        send_control(sql.c_str(), *me);
      pin->owed.clear();
    }
    for (std::string_view sql : controls)
      send_control(std::string(sql).c_str(), *me);
    if (st) send_statement(*st, *me);
    if (!PQpipelineSync(conn_)) fail_connection("cannot send the statement");
    inflight_.push_back(me);
    in_flight_.fetch_add(1, std::memory_order_relaxed);
    pool_->in_flight.fetch_add(1, std::memory_order_relaxed);
    if (!leader_)
      leader_ = lead_now = true;
    else
      me->ticket = wakeups_.enqueue();
  }
  if (!lead_now) {
    std::exception_ptr cancelled;
    try {
      co_await wakeups_.wait(me->ticket);
    } catch (...) {
      cancelled = std::current_exception();
    }
    bool drain = false;
    {
      std::lock_guard lock(mutex_);
      if (cancelled && !me->done) {
        me->abandoned = true;
        me->st = nullptr;  // the statement dies with its awaiter: its results are dropped
        // Leadership may have been handed over just as the wait was cancelled: pass it on.
        if (wakeups_.abandon(me->ticket)) drain = hand_over_locked();
      }
      lead_now = !me->done && !me->abandoned;
    }
    if (drain) start_drainer(false);
    if (cancelled && !me->done) std::rethrow_exception(cancelled);
  }
  if (lead_now) {
    try {
      co_await lead(me);
    } catch (...) {
      // A cancelled coroutine throws at `co_await` before the awaited coroutine starts: the
      // role must not be lost with it, or nobody would read for the others.
      if (!me->led) step_down(me);
      throw;
    }
  }
  if (me->failure) std::rethrow_exception(me->failure);
}

// libpq 15's PQpipelineSync always flushes: each statement is a send() and, left alone, a TCP
// segment of its own, which costs both ends a trip through their network stacks. While the
// connection is busy (statements already in flight), tasks resumed in the same round send one
// after another; the socket is corked for that round, and a handler posted behind them uncorks
// it, so the round leaves as one segment. An idle connection's statement goes out at once.
void pg_connection::cork_locked() {
  if (!can_cork_ || corked_) return;
  const int on = 1;
  if (::setsockopt(PQsocket(conn_), IPPROTO_TCP, TCP_CORK, &on, sizeof on) != 0) return;
  corked_ = true;
  auto uncork = [self = shared_from_this()] {
    std::lock_guard lock(self->mutex_);
    if (!self->corked_) return;
    const int off = 0;
    ::setsockopt(PQsocket(self->conn_), IPPROTO_TCP, TCP_CORK, &off, sizeof off);
    self->corked_ = false;
  };
  asio::post(executor_, std::move(uncork));
}

bool pg_connection::hand_over_locked() {
  for (const auto& p : inflight_)
    if (!p->done && !p->abandoned) {
      wakeups_.notify(p->ticket);  // leader_ stays set: the role passes to its owner
      return false;
    }
  if (inflight_.empty()) {
    leader_ = false;
    return false;
  }
  return true;  // only abandoned statements remain: a drainer reads them
}

void pg_connection::fail_all_locked(std::vector<std::shared_ptr<pending>>& wake,
                                    std::string_view context) {
  broken_ = true;
  for (const auto& p : inflight_) {
    if (!p->failure)
      p->failure = std::make_exception_ptr(connection_error(conn_, context, options_.secrets));
    p->done = true;
    wake.push_back(p);
  }
  pool_->in_flight.fetch_sub(inflight_.size(), std::memory_order_relaxed);
  inflight_.clear();
  in_flight_.store(0, std::memory_order_relaxed);
  leader_ = false;
}

void pg_connection::step_down(const std::shared_ptr<pending>& me) {
  // This task stops waiting now. Its group is dropped when its results come; if it is the only
  // one in flight, the drainer also cancels it on the server.
  bool drain = false, alone = false;
  {
    std::lock_guard lock(mutex_);
    if (!me->done) {
      me->abandoned = true;
      me->st = nullptr;  // the statement dies with its awaiter: its results are dropped
    }
    alone = inflight_.size() == 1 && inflight_.front() == me;
    drain = hand_over_locked();
    // Set now, not when the drainer starts: whatever this task sends next (a rollback, say)
    // must wait behind the cancel rather than stand in its way.
    if (drain && alone) cancelling_ = true;
  }
  if (drain) start_drainer(alone);
}

asio::awaitable<void> pg_connection::lead(std::shared_ptr<pending> me) {
  if (me) me->led = true;
  std::vector<std::shared_ptr<pending>> wake;
  auto wake_all = [&] {
    for (const auto& p : wake)
      if (p != me && !p->abandoned && p->ticket) wakeups_.notify(p->ticket);
    wake.clear();
  };
  for (;;) {
    bool want_write = false, finished = false, drain = false;
    {
      std::lock_guard lock(mutex_);
      const int flushed = PQflush(conn_);
      if (flushed < 0) {
        fail_all_locked(wake, "cannot send to the server");
      } else {
        want_write = flushed == 1;
        while (!inflight_.empty() && !PQisBusy(conn_)) {
          pg_result_ptr r(PQgetResult(conn_));
          if (!r && PQstatus(conn_) == CONNECTION_BAD) {
            fail_all_locked(wake, "connection lost");
            break;
          }
          std::shared_ptr<pending> front = inflight_.front();
          if (consume(*front, std::move(r))) {
            front->done = true;
            inflight_.pop_front();
            pool_->in_flight.fetch_sub(1, std::memory_order_relaxed);
            if (in_flight_.fetch_sub(1, std::memory_order_relaxed) == 1)
              idle_since_.store(std::chrono::steady_clock::now().time_since_epoch().count(),
                                std::memory_order_relaxed);
            if (front != me) wake.push_back(front);  // (this task needs no waking)
          }
        }
      }
      const bool mine_done = me ? me->done : true;
      if (mine_done || !leader_) {
        finished = true;
        if (leader_) {
          drain = hand_over_locked();
          // The drainer keeps the role while only abandoned statements remain.
          if (drain && !me) {
            drain = false;
            finished = false;
          }
        }
      }
    }
    wake_all();
    if (finished) {
      if (drain) start_drainer(false);
      co_return;
    }
    std::exception_ptr cancelled;
    try {
      if (want_write) {
        co_await (wait_writable() || wait_readable());
      } else {
        auto [ec, n] = co_await readable();
        check_wait(ec);
      }
    } catch (...) {
      cancelled = std::current_exception();
    }
    if (cancelled) {
      if (me) {
        step_down(me);
      } else {
        {
          std::lock_guard lock(mutex_);
          fail_all_locked(wake, "the connection could not be drained");
        }
        wake_all();
      }
      std::rethrow_exception(cancelled);
    }
    {
      std::lock_guard lock(mutex_);
      if (!PQconsumeInput(conn_)) fail_all_locked(wake, "connection lost");
    }
    wake_all();
  }
}

void pg_connection::start_drainer(bool cancel) {
  asio::co_spawn(executor_, drain(shared_from_this(), cancel), asio::detached);
}

asio::awaitable<void> pg_connection::drain(std::shared_ptr<pg_connection> self, bool cancel) {
  if (cancel) {
    {
      // The canceller set cancelling_, so nothing was sent since; the check is a safeguard:
      // a cancel must never hit another statement.
      std::lock_guard lock(self->mutex_);
      cancel = self->inflight_.size() == 1 && self->inflight_.front()->abandoned;
    }
    if (cancel) {
      try {
        co_await self->cancel_on_server();
      } catch (...) {
        // The statement runs to its end instead; the drain below still bounds the wait.
      }
    }
  }
  asio::steady_timer limit(self->executor_, std::chrono::seconds(cancel ? 5 : 3600));
  auto which = co_await (self->lead(nullptr) || limit.async_wait(asio::use_awaitable));
  std::vector<std::shared_ptr<pending>> wake;
  {
    std::lock_guard lock(self->mutex_);
    if (which.index() == 1) self->fail_all_locked(wake, "the connection could not be drained");
    self->cancelling_ = false;
  }
  for (const auto& p : wake)
    if (!p->abandoned && p->ticket) self->wakeups_.notify(p->ticket);
  self->cancel_done_.notify_all();
}

}  // namespace awaitdb::detail
