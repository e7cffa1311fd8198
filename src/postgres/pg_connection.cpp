#include "pg_connection.hpp"

#include "../placeholders.hpp"
#include "pg_errors.hpp"

#include <boost/asio/error.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/socket_base.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>

#include <sys/socket.h>

#include <cerrno>
#include <charconv>
#include <cmath>

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

pg_connection::pg_connection(asio::any_io_executor executor, const postgres_options& options)
    : executor_(std::move(executor)), options_(options), socket_(executor_) {}

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
  socket_.assign(asio::generic::stream_protocol(family, 0), fd, ec);
  if (ec) fail_connection("cannot watch the connection's socket: " + ec.message());
}

void pg_connection::fail_connection(std::string_view context) {
  broken_ = true;
  throw connection_error(conn_, context);
}

asio::awaitable<std::shared_ptr<pg_connection>> pg_connection::connect(
    asio::any_io_executor executor, const postgres_options& options) {
  std::shared_ptr<pg_connection> self(new pg_connection(std::move(executor), options));
  const char* keys[] = {"dbname", nullptr};
  const char* values[] = {options.libpq_url.c_str(), nullptr};
  self->conn_ = PQconnectStartParams(keys, values, /*expand_dbname=*/1);
  if (!self->conn_) throw error(sqlstate::connection_not_established, "out of memory in libpq");
  if (PQstatus(self->conn_) == CONNECTION_BAD)
    throw error(sqlstate::connection_not_established,
                "cannot connect to " + options.display_name + ": " +
                    libpq_message(PQerrorMessage(self->conn_)));
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
      throw error(sqlstate::connection_not_established, "cannot connect to " +
                                                            options_.display_name + ": " +
                                                            libpq_message(PQerrorMessage(conn_)));
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

asio::awaitable<void> pg_connection::wait_readable() {
  // A one-byte MSG_PEEK receive, not async_wait: Asio tries a receive speculatively under
  // the reactor's lock before it queues the wait, so data that arrived (and an edge that was
  // consumed by another thread's epoll_wait) since libpq last read cannot be missed. The byte
  // stays in the socket for libpq.
  char byte;
  error_code ec;
  co_await socket_.async_receive(asio::buffer(&byte, 1), asio::socket_base::message_peek,
                                 asio::redirect_error(asio::use_awaitable, ec));
  if (ec == asio::error::operation_aborted) throw boost::system::system_error(ec);
  // EOF and errors: readable as far as libpq is concerned; it reports them itself.
}

asio::awaitable<void> pg_connection::wait_writable() {
  error_code ec;
  co_await socket_.async_wait(asio::socket_base::wait_write,
                              asio::redirect_error(asio::use_awaitable, ec));
  if (ec == asio::error::operation_aborted) throw boost::system::system_error(ec);
}

bool pg_connection::check_idle() noexcept {
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
  const std::size_t placeholders = highest_placeholder(st.sql);
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
        // a NUL byte anyway.
        if (p.bytes.find('\0') != std::string_view::npos)
          throw error("22021", "text parameter $" + std::to_string(i + 1) +
                                   " contains a NUL byte; pass binary data as awaitdb::blob");
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

void pg_connection::send_statement(const statement& st, std::vector<expect>& expected) {
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
      pending_eviction_ = "DEALLOCATE " + victim->second.name;
      prepared_.erase(victim);
      lru_.pop_back();
      if (!PQsendQueryParams(conn_, pending_eviction_.c_str(), 0, nullptr, nullptr, nullptr,
                             nullptr, 0))
        fail_connection("cannot send the statement");
      expected.push_back(expect::deallocate);
    }
    pending_name_ = "awaitdb_" + std::to_string(next_statement_id_++);
    std::string sql(st.sql);
    if (!PQsendPrepare(conn_, pending_name_.c_str(), sql.c_str(), count, types_.data()))
      fail_connection("cannot send the statement");
    expected.push_back(expect::prepare);
    if (!PQsendQueryPrepared(conn_, pending_name_.c_str(), count, values_.data(), lengths_.data(),
                             formats_.data(), 0))
      fail_connection("cannot send the statement");
    lru_.push_front(prepared_key{sql, std::vector<Oid>(types_.begin(), types_.end())});
    prepared_.emplace(lru_.front(), prepared_entry{pending_name_, lru_.begin()});
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

asio::awaitable<void> pg_connection::read_results(const std::vector<expect>& expected,
                                                  statement* st, std::exception_ptr& failure) {
  std::size_t next = 0;  // index in `expected` of the command whose results come next
  bool command_has_result = false;
  for (;;) {
    while (PQisBusy(conn_)) {
      co_await wait_readable();
      if (!PQconsumeInput(conn_)) {
        broken_ = true;
        if (!failure) failure = std::make_exception_ptr(connection_error(conn_, "connection lost"));
        co_return;
      }
    }
    pg_result_ptr r(PQgetResult(conn_));
    if (!r) {
      // End of one command's results.
      if (command_has_result) ++next;
      command_has_result = false;
      if (PQstatus(conn_) == CONNECTION_BAD) {
        broken_ = true;
        if (!failure) failure = std::make_exception_ptr(connection_error(conn_, "connection lost"));
        co_return;
      }
      continue;
    }
    command_has_result = true;
    const ExecStatusType status = PQresultStatus(r.get());
    if (status == PGRES_PIPELINE_SYNC) co_return;
    if (next >= expected.size()) {
      broken_ = true;  // libpq and this driver disagree on the protocol state
      if (!failure)
        failure = std::make_exception_ptr(
            error(sqlstate::internal_error, "unexpected result from the server"));
      continue;
    }
    const expect what = expected[next];
    if (status == PGRES_FATAL_ERROR) {
      error e = server_error(r.get(), conn_);
      if (what == expect::prepare) {
        // Not prepared after all: forget it, so the next call prepares again.
        for (auto it = prepared_.begin(); it != prepared_.end(); ++it)
          if (it->second.name == pending_name_) {
            lru_.erase(it->second.lru);
            prepared_.erase(it);
            break;
          }
      }
      if (e.is_connection_error()) broken_ = true;
      if (!failure) failure = std::make_exception_ptr(std::move(e));
      continue;
    }
    if (status == PGRES_PIPELINE_ABORTED || what != expect::statement || !st) continue;
    if (status == PGRES_TUPLES_OK) {
      if (st->mode == result_mode::rows)
        st->rows = result(std::make_shared<pg_result>(std::move(r)));
      else
        st->affected = pg_affected_rows(r.get());
    } else if (status == PGRES_COMMAND_OK) {
      st->affected = pg_affected_rows(r.get());
      if (st->mode == result_mode::rows) st->rows = result();
    } else if (status == PGRES_COPY_IN || status == PGRES_COPY_OUT || status == PGRES_COPY_BOTH) {
      broken_ = true;
      if (!failure)
        failure = std::make_exception_ptr(
            error(sqlstate::feature_not_supported, "COPY is not supported through query()"));
    }
  }
}

asio::awaitable<void> pg_connection::exchange(control_list controls, statement* st) {
  if (broken()) throw connection_error(conn_, "connection lost");
  // Everything that can fail for the caller's reasons (parameter count, values) fails here,
  // before anything is queued in libpq.
  if (st) encode_params(*st);
  std::vector<expect> expected;
  expected.reserve(controls.size() + 3);
  for (std::string_view sql : controls) {
    std::string text(sql);
    if (!PQsendQueryParams(conn_, text.c_str(), 0, nullptr, nullptr, nullptr, nullptr, 0))
      fail_connection("cannot send the statement");
    expected.push_back(expect::control);
  }
  if (st) send_statement(*st, expected);
  if (!PQpipelineSync(conn_)) fail_connection("cannot send the statement");

  std::exception_ptr failure;
  bool cancelled = false;
  try {
    co_await flush();
    co_await read_results(expected, st, failure);
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
  pending_eviction_.clear();
  if (failure) std::rethrow_exception(failure);
}

asio::awaitable<void> pg_connection::recover_after_cancel(std::size_t expected_syncs) {
  try {
    // Stop the statement on the server. libpq 15's PQcancel blocks, so ask the server to
    // cancel it from a second, short-lived connection, driven by this same executor.
    auto canceller = co_await pg_connection::connect(executor_, options_);
    statement cancel;
    cancel.sql = "SELECT pg_cancel_backend($1)";
    param pid{param_kind::int32, backend_pid(), 0, {}};
    cancel.params = &pid;
    cancel.param_count = 1;
    cancel.mode = result_mode::count;
    co_await canceller->exchange(control_list(), &cancel);

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

}  // namespace awaitdb::detail
