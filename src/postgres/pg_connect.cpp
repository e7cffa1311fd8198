// Opening a PostgreSQL connection: libpq's non-blocking connect (PQconnectStartParams /
// PQconnectPoll), each step waiting on the socket with Asio, within the connect timeout; and
// ending one (closed by the pool, or with its io_context).
#include "../session_setup.hpp"
#include "pg_connection.hpp"
#include "pg_errors.hpp"
#include "pg_hosts.hpp"
#include "pg_resolve.hpp"
#include <awaitdb/session.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/system/system_error.hpp>

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>

namespace awaitdb::detail {

namespace asio = boost::asio;
using boost::system::error_code;

namespace {

// The cancel key a connection is given at start-up (BackendKeyData), which libpq 15 keeps to
// itself (PQgetCancel's object is opaque, and PQcancel blocks), read off libpq's protocol trace
// of the start-up (PQtrace; the line "B 12 BackendKeyData <pid> <key>"). Used only where
// cancels go by CancelRequest (pg_shared::cancel_by_request). The trace also passes the
// authentication exchange: it stays in memory and is wiped before it is freed.
class startup_key_reader {
 public:
  explicit startup_key_reader(PGconn* conn) : conn_(conn) {
    file_ = ::open_memstream(&text_, &size_);
    if (!file_) return;
    PQtrace(conn_, file_);
    PQsetTraceFlags(conn_, PQTRACE_SUPPRESS_TIMESTAMPS);
  }
  startup_key_reader(const startup_key_reader&) = delete;
  startup_key_reader& operator=(const startup_key_reader&) = delete;
  ~startup_key_reader() { stop(); }

  /// Stops tracing; the key, if the start-up held one.
  std::optional<std::int32_t> key() {
    stop();
    return key_;
  }

 private:
  void stop() noexcept {
    if (!file_) return;
    PQuntrace(conn_);
    std::fclose(file_);
    file_ = nullptr;
    static constexpr std::string_view marker = "\tBackendKeyData\t";
    const std::string_view text(text_ ? text_ : "", text_ ? size_ : 0);
    const std::size_t at = text.find(marker);
    if (at != std::string_view::npos) {
      long pid = 0, key = 0;
      if (std::sscanf(text_ + at + marker.size(), "%ld %ld", &pid, &key) == 2)
        key_ = static_cast<std::int32_t>(key);
    }
    if (text_) {
      ::explicit_bzero(text_, size_);
      std::free(text_);
      text_ = nullptr;
    }
  }

  PGconn* conn_;
  std::FILE* file_ = nullptr;
  char* text_ = nullptr;
  std::size_t size_ = 0;
  std::optional<std::int32_t> key_;
};

// Sets `key` in an attempt's keywords (replacing the URL's value).
void set_keyword(pg_host_attempt& a, const char* key, const std::string& value) {
  for (std::size_t i = 0; i < a.keys.size(); ++i)
    if (a.keys[i] == key) {
      a.values[i] = value;
      return;
    }
  a.keys.emplace_back(key);
  a.values.push_back(value);
}

bool cancelled(const boost::system::system_error& e) {
  return e.code() == asio::error::operation_aborted;
}

asio::awaitable<std::string> provided_password(const open_options& hooks,
                                               const postgres_options& options) {
  std::string why;
  try {
    co_return co_await hooks.password()();
  } catch (const boost::system::system_error& e) {
    if (cancelled(e)) throw;
    why = e.what();
  } catch (const std::exception& e) {
    why = e.what();
  }
  throw error(sqlstate::connection_not_established,
              "cannot connect to " + options.display_name +
                  ": the password provider failed: " + options.secrets.scrub(why));
}

}  // namespace

// Statements of the session set-up, on the connection being opened.
class pg_connection::session_statements final : public detail::session_target {
 public:
  explicit session_statements(pg_connection& c) noexcept : conn_(c) {}
  awaitdb::engine kind() const noexcept override { return awaitdb::engine::postgres; }
  asio::awaitable<result> query(const statement_args& args) override {
    statement st = of(args, result_mode::rows);
    co_await conn_.run_alone(st);
    co_return std::move(st.rows);
  }
  asio::awaitable<std::uint64_t> execute(const statement_args& args) override {
    statement st = of(args, result_mode::count);
    co_await conn_.run_alone(st);
    co_return st.affected;
  }

 private:
  static statement of(const statement_args& args, result_mode mode) {
    statement st;
    st.sql = args.sql;
    st.params = args.params.data();
    st.param_count = args.params.size();
    st.mode = mode;
    return st;
  }
  pg_connection& conn_;
};

asio::awaitable<void> pg_connection::run_alone(statement& st) {
  request r;
  r.has_statement = true;
  r.sql = st.sql;
  r.params = std::span<const param>(st.params, st.param_count);
  exchange x(*this, r);
  x.settle(co_await x.wait());
  x.deliver(st);
}

asio::awaitable<void> pg_connection::set_up_session() {
  session_statements target(*this);
  session s(target);
  std::exception_ptr failure;
  try {
    co_await options_.hooks->on_connect()(s);
    co_return;
  } catch (const boost::system::system_error& e) {
    if (cancelled(e)) throw;
    failure = std::current_exception();
  } catch (...) {
    failure = std::current_exception();
  }
  connect_failure_ = secrets_.scrub(set_up_failure(failure));
  throw set_up_error("cannot connect to " + options_.display_name + ": " + connect_failure_,
                     failure);
}

asio::awaitable<std::shared_ptr<pg_connection>> pg_connection::connect(
    asio::any_io_executor executor, std::shared_ptr<pg_shared> shared) {
  const std::vector<pg_host_attempt>& hosts = shared->hosts;
  if (hosts.empty()) {
    // A conninfo libpq must judge itself (it reports what is wrong with it).
    std::shared_ptr<pg_connection> self(new pg_connection(executor, shared));
    join_context(executor, self);
    co_await self->open(nullptr);
    co_return self;
  }
  // A password from the provider, fetched for this connection (a token may have expired since
  // the last one).
  std::string password;
  if (const auto& hooks = shared->options.hooks; hooks && hooks->password())
    password = co_await provided_password(*hooks, shared->options);
  // Host after host (and address after address of a name), each within the connect timeout; a
  // cancelled wait ends it all.
  std::string failures;
  auto failed = [&failures](const std::string& where, const std::string& why) {
    failures += failures.empty() ? "" : "; ";
    failures += where + ": " + why;
  };
  for (const pg_host_attempt& host : hosts) {
    std::vector<std::string> addresses;
    if (!host.lookup.empty()) {
      resolved_host found = co_await resolve_host(
          executor, host.lookup, pg_clock::now() + shared->options.connect_timeout);
      if (!found.failure.empty()) {
        failed(host.label, "cannot resolve the host name: " + found.failure);
        continue;
      }
      addresses = std::move(found.addresses);
    }
    const std::size_t tries = std::max<std::size_t>(addresses.size(), 1);
    for (std::size_t i = 0; i < tries; ++i) {
      pg_host_attempt one = host;
      if (!password.empty()) set_keyword(one, "password", password);
      if (!addresses.empty()) {
        one.keys.emplace_back("hostaddr");
        one.values.push_back(addresses[i]);
        one.label += " (" + addresses[i] + ")";
      }
      std::shared_ptr<pg_connection> self(new pg_connection(executor, shared));
      join_context(executor, self);
      if (!password.empty()) self->secrets_ = self->secrets_.with(password);
      try {
        co_await self->open(&one);
        co_return self;
      } catch (const error& e) {
        if (hosts.size() == 1 && tries == 1) throw;  // its own message says it all
        failed(one.label, self->connect_failure_.empty() ? e.what() : self->connect_failure_);
      }
    }
  }
  // (A label may quote what libpq took for a host or port in a malformed URL: a password.)
  throw error(sqlstate::connection_not_established, "cannot connect to " +
                                                        shared->options.display_name + ": " +
                                                        shared->options.secrets.scrub(failures));
}

void pg_connection::connect_failed(std::string why) {
  connect_failure_ = std::move(why);
  throw error(sqlstate::connection_not_established,
              "cannot connect to " + options_.display_name + ": " + connect_failure_);
}

asio::awaitable<void> pg_connection::open(const pg_host_attempt* host) {
  const postgres_options& options = options_;
  if (host) {
    std::vector<const char*> keys, values;
    for (std::size_t i = 0; i < host->keys.size(); ++i) {
      keys.push_back(host->keys[i].c_str());
      values.push_back(host->values[i].c_str());
    }
    keys.push_back(nullptr);
    values.push_back(nullptr);
    conn_ = PQconnectStartParams(keys.data(), values.data(), /*expand_dbname=*/0);
  } else {
    const char* keys[] = {"dbname", nullptr};
    const char* values[] = {options.libpq_url.c_str(), nullptr};
    conn_ = PQconnectStartParams(keys, values, /*expand_dbname=*/1);
  }
  if (!conn_) connect_failed("out of memory in libpq");
  if (PQstatus(conn_) == CONNECTION_BAD)
    connect_failed(libpq_message(PQerrorMessage(conn_), secrets_));
  PQsetNoticeReceiver(conn_, &pg_connection::on_notice, this);
  startup_key_reader key_reader(conn_);
  co_await connect_loop(pg_clock::now() + options.connect_timeout);
  {
    std::lock_guard lock(mutex_);
    state_ = state::open;
  }

  if (PQsetnonblocking(conn_, 1) != 0 || PQenterPipelineMode(conn_) != 1)
    throw connection_error(conn_, "cannot enter pipeline mode", secrets_);
  backend_pid_ = PQbackendPID(conn_);
  cancel_target_.pid = backend_pid_;
  // Without the key (a trace not as expected), a cancelled statement runs to its end.
  if (auto key = key_reader.key()) {
    const char* addr = PQhostaddr(conn_);
    const char* where = PQhost(conn_);
    session_key_.pid = backend_pid_;
    session_key_.key = *key;
    session_key_.host = addr && *addr ? addr : where ? where : "";
    session_key_.port = PQport(conn_) ? PQport(conn_) : "";
    if (shared_->cancel_by_request) cancel_target_ = session_key_;
  }
  if (options.statement_timeout.count() > 0) {
    const std::string set =
        "SET statement_timeout = " + std::to_string(options.statement_timeout.count());
    request r;
    r.controls = control_list(set);
    exchange x(*this, r);
    x.settle(co_await x.wait());
    x.check();
  }
  if (options.hooks && options.hooks->on_connect()) co_await set_up_session();
}

asio::awaitable<void> pg_connection::connect_loop(pg_clock::time_point deadline) {
  // libpq: start as if PQconnectPoll had asked to wait for writability.
  PostgresPollingStatusType poll = PGRES_POLLING_WRITING;
  // The deadline: a timer that shuts the socket down, which ends whatever wait is armed on it.
  // (Not Asio's `||` around each wait: its parallel group is unsafe under cancellation in Asio
  // 1.26.)
  asio::steady_timer timer(executor_, deadline);
  auto expire = [weak = weak_from_this()](error_code ec) {
    auto self = weak.lock();
    if (ec || !self) return;
    std::lock_guard lock(self->mutex_);
    if (self->state_ != state::connecting) return;
    self->connect_timed_out_ = true;
    self->socket_.shut_down();
  };
  timer.async_wait(std::move(expire));
  struct stop_timer {
    asio::steady_timer& t;
    ~stop_timer() { t.cancel(); }
  } stop{timer};
  for (;;) {
    if (poll == PGRES_POLLING_OK) break;
    if (poll == PGRES_POLLING_FAILED)
      connect_failed(libpq_message(PQerrorMessage(conn_), secrets_));
    // The descriptor can change while connecting (another host, another address, SSL retry).
    {
      std::lock_guard lock(mutex_);
      watch_socket();
    }
    co_await wait_socket(poll);
    poll = PQconnectPoll(conn_);
  }
  std::lock_guard lock(mutex_);
  watch_socket();
}

void pg_connection::watch_socket() {
  if (PQsocket(conn_) < 0) throw connection_error(conn_, "the connection has no socket", secrets_);
  socket_.watch(PQsocket(conn_));
}

asio::awaitable<void> pg_connection::wait_socket(PostgresPollingStatusType want) {
  asio::generic::stream_protocol::socket* watch = nullptr;
  {
    std::lock_guard lock(mutex_);
    watch = socket_.ready_watch(want == PGRES_POLLING_READING, true);
  }
  if (!watch) throw connection_error(conn_, "the connection has no socket", secrets_);
  auto [ec] = co_await watch->async_wait(
      want == PGRES_POLLING_READING ? asio::socket_base::wait_read : asio::socket_base::wait_write,
      asio::as_tuple(asio::deferred));
  std::lock_guard lock(mutex_);
  if (connect_timed_out_)
    connect_failed("timed out after " +
                   std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                      options_.connect_timeout)
                                      .count()) +
                   " ms");
  if (ec == asio::error::operation_aborted) throw boost::system::system_error(ec);
  // Other errors: libpq finds them itself in PQconnectPoll.
}

// ---- ending

void pg_connection::context_shutdown(pg_clock::time_point deadline) noexcept {
  std::lock_guard lock(mutex_);
  const bool running = state_ == state::open && !pipeline_.empty();
  if (state_ == state::open || state_ == state::connecting) {
    state_ = state::closed;
    lost_.store(true, std::memory_order_release);
  }
  // (What was armed on them was abandoned with the context's handlers.)
  socket_.abandon();
  // A backend notices a closed socket only when its statement ends: stop the statement first.
  if (running) send_cancel_request_now(session_key_, deadline);
  if (conn_) PQfinish(conn_);  // the Terminate message, and the socket closed
  conn_ = nullptr;
}

void pg_connection::close() noexcept {
  group_list done;
  bool was_busy = false;
  {
    std::lock_guard lock(mutex_);
    if (state_ == state::open) {
      was_busy = !pipeline_.empty();
      state_ = state::closed;
      lost_.store(true, std::memory_order_release);
      const std::exception_ptr failure = std::make_exception_ptr(
          error(sqlstate::connection_does_not_exist, "the database was closed while this ran"));
      for (pg_group_ptr& g : pipeline_.lose(failure)) {
        g->verdict = pg_verdict::failed;  // never re-sent: the database is closed
        in_flight_.fetch_sub(1, std::memory_order_acq_rel);
        done.push_back(std::move(g));
      }
      update_gauges_locked();
    }
    socket_.release();  // (what is armed completes now, and closes the watch)
  }
  for (const pg_group_ptr& g : done)
    awaited(*g).notify();
  // Closed with work running: stop it on the server too (a backend notices a closed socket only
  // when its statement ends).
  if (was_busy && shared_->canceller) shared_->canceller->cancel_detached(cancel_target_, shared_);
}

}  // namespace awaitdb::detail
