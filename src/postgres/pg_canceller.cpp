// The channel that cancels statements on the server: one control connection per pool.
#include "pg_canceller.hpp"

#include "pg_connection.hpp"
#include <awaitdb/session.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace awaitdb::detail {

namespace asio = boost::asio;

std::array<unsigned char, 16> cancel_request_message(const pg_cancel_target& target) {
  std::array<unsigned char, 16> message{};
  auto put = [&](std::size_t at, std::uint32_t v) {
    for (int i = 0; i < 4; ++i)
      message[at + i] = static_cast<unsigned char>(v >> (24 - 8 * i));
  };
  put(0, 16);
  put(4, 80877102);
  put(8, static_cast<std::uint32_t>(target.pid));
  put(12, static_cast<std::uint32_t>(target.key));
  return message;
}

bool send_cancel_request_now(const pg_cancel_target& target,
                             std::chrono::steady_clock::time_point deadline) noexcept {
  if (target.host.empty()) return false;
  sockaddr_storage to{};
  socklen_t to_len = 0;
  const unsigned long port = std::strtoul(target.port.c_str(), nullptr, 10);
  if (target.host.front() == '/') {
    auto& un = reinterpret_cast<sockaddr_un&>(to);
    const std::string path = target.host + "/.s.PGSQL." + target.port;
    if (path.size() >= sizeof un.sun_path) return false;
    un.sun_family = AF_UNIX;
    std::memcpy(un.sun_path, path.c_str(), path.size() + 1);
    to_len = sizeof un;
  } else if (auto& in4 = reinterpret_cast<sockaddr_in&>(to);
             ::inet_pton(AF_INET, target.host.c_str(), &in4.sin_addr) == 1) {
    in4.sin_family = AF_INET;
    in4.sin_port = htons(static_cast<std::uint16_t>(port));
    to_len = sizeof in4;
  } else if (auto& in6 = reinterpret_cast<sockaddr_in6&>(to);
             ::inet_pton(AF_INET6, target.host.c_str(), &in6.sin6_addr) == 1) {
    in6.sin6_family = AF_INET6;
    in6.sin6_port = htons(static_cast<std::uint16_t>(port));
    to_len = sizeof in6;
  } else {
    return false;
  }
  const int fd = ::socket(to.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  bool sent = false;
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&to), to_len) == 0 || errno == EINPROGRESS) {
    const auto left =
        std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    pollfd p{fd, POLLOUT, 0};
    int error = 0;
    socklen_t error_len = sizeof error;
    if (::poll(&p, 1, static_cast<int>(std::max<std::int64_t>(left.count(), 0))) == 1 &&
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &error_len) == 0 && error == 0) {
      const auto message = cancel_request_message(target);
      sent = ::send(fd, message.data(), message.size(), MSG_NOSIGNAL | MSG_DONTWAIT) ==
             static_cast<ssize_t>(message.size());
    }
  }
  ::close(fd);  // the request, once sent, arrives before the end of the connection
  return sent;
}

pg_canceller::pg_canceller(asio::any_io_executor executor, const postgres_options& options,
                           bool by_request)
    : executor_(std::move(executor))
    , connect_timeout_(options.connect_timeout)
    , by_request_(by_request) {
  // The control connection's own shared state has no canceller of its own.
  postgres_options control_options = options;
  control_options.statement_timeout = std::chrono::milliseconds(0);
  // It logs in as the others do, but runs nothing of the application's.
  if (options.hooks && options.hooks->on_connect()) {
    auto password_only = std::make_shared<open_options>();
    password_only->password(options.hooks->password());
    control_options.hooks = password_only->password() ? std::move(password_only) : nullptr;
  }
  shared_ = std::make_shared<pg_shared>(executor_, control_options, false);
}

pg_canceller::~pg_canceller() {
  close_now();
}

asio::awaitable<void> pg_canceller::close(std::chrono::milliseconds drain) {
  std::unique_lock lock(mutex_);
  if (under_way_ > 0) {
    co_await idle_.wait(lock, std::chrono::steady_clock::now() + drain);
  } else {
    lock.unlock();
  }
  close_now();
}

void pg_canceller::cancel_detached(pg_cancel_target target, std::shared_ptr<const void> owner) {
  {
    std::lock_guard lock(mutex_);
    ++under_way_;  // now: a `close` that follows waits for it
  }
  auto run = [](pg_canceller& self, pg_cancel_target t,
                std::shared_ptr<const void>) -> asio::awaitable<void> {
    try {
      co_await self.counted_cancel(std::move(t));
    } catch (...) {
    }
  };
  asio::co_spawn(executor_, run(*this, std::move(target), std::move(owner)), asio::detached);
}

void pg_canceller::close_now() noexcept {
  std::shared_ptr<pg_connection> c;
  {
    std::lock_guard lock(mutex_);
    closed_ = true;
    c = std::move(control_);
  }
  if (c) c->close();
  opened_.notify_all();
}

asio::awaitable<std::shared_ptr<pg_connection>> pg_canceller::control() {
  for (;;) {
    std::unique_lock lock(mutex_);
    if (closed_) throw error(sqlstate::connection_does_not_exist, "the database is closed");
    if (control_ && !control_->lost()) co_return control_;
    if (!opening_) {
      opening_ = true;
      lock.unlock();
      std::shared_ptr<pg_connection> c;
      std::exception_ptr failure;
      try {
        c = co_await pg_connection::connect(executor_, shared_);
      } catch (...) {
        failure = std::current_exception();
      }
      lock.lock();
      opening_ = false;
      if (c) control_ = c;
      lock.unlock();
      opened_.notify_all();
      if (failure) std::rethrow_exception(failure);
      co_return c;
    }
    co_await opened_.wait(lock);
  }
}

asio::awaitable<void> pg_canceller::cancel(const pg_cancel_target& target) {
  {
    std::lock_guard lock(mutex_);
    ++under_way_;
  }
  co_await counted_cancel(target);
}

asio::awaitable<void> pg_canceller::counted_cancel(pg_cancel_target target) {
  struct done_on_exit {
    pg_canceller& self;
    ~done_on_exit() {
      std::unique_lock lock(self.mutex_);
      if (--self.under_way_ == 0) {
        lock.unlock();
        self.idle_.notify_all();
      }
    }
  } done{*this};
  if (!target.host.empty()) {
    co_await cancel_request(target);
    co_return;
  }
  // The control connection may be on another server (or the process id a pooler's):
  // pg_cancel_backend could stop a stranger.
  if (by_request_)
    throw error(sqlstate::connection_failure, "no cancel key was received for this connection");
  std::shared_ptr<pg_connection> c = co_await control();
  const param pid_param{param_kind::int32, target.pid, 0, {}};
  pg_connection::request r;
  r.has_statement = true;
  r.sql = "SELECT pg_cancel_backend($1)";
  r.params = std::span<const param>(&pid_param, 1);
  pg_connection::exchange x(*c, r);
  x.settle(co_await x.wait());
  x.check();
}

asio::awaitable<void> pg_canceller::cancel_request(const pg_cancel_target& target) {
  // A timer closes the socket at the connect timeout; both run on one strand, so the close
  // never races the socket's use.
  const std::array<unsigned char, 16> message = cancel_request_message(target);

  asio::generic::stream_protocol::endpoint endpoint;
  if (target.host.front() == '/') {
    endpoint = asio::local::stream_protocol::endpoint(target.host + "/.s.PGSQL." + target.port);
  } else {
    boost::system::error_code ec;
    const auto address = asio::ip::make_address(target.host, ec);
    const unsigned long port = std::strtoul(target.port.c_str(), nullptr, 10);
    if (ec || port == 0 || port > 65535)
      throw error(sqlstate::connection_failure, "cannot send a cancel request: no address");
    endpoint = asio::ip::tcp::endpoint(address, static_cast<unsigned short>(port));
  }

  struct channel {
    asio::generic::stream_protocol::socket socket;
    asio::steady_timer timer;
  };
  auto strand = asio::make_strand(executor_);
  auto ch = std::make_shared<channel>(channel{asio::generic::stream_protocol::socket(strand),
                                              asio::steady_timer(strand, connect_timeout_)});
  auto send = [](std::shared_ptr<channel> c, asio::generic::stream_protocol::endpoint to,
                 std::array<unsigned char, 16> m) -> asio::awaitable<void> {
    auto expire = [c](boost::system::error_code ec) {
      boost::system::error_code ignored;
      if (!ec) c->socket.close(ignored);
    };
    c->timer.async_wait(std::move(expire));
    struct stop_timer {
      asio::steady_timer& t;
      ~stop_timer() { t.cancel(); }
    } stop{c->timer};
    co_await c->socket.async_connect(to, asio::use_awaitable);
    co_await asio::async_write(c->socket, asio::buffer(m), asio::use_awaitable);
    // Until the receiver closes: then the request has been acted on.
    std::array<char, 16> sink;
    for (;;) {
      auto [ec, n] = co_await c->socket.async_read_some(asio::buffer(sink),
                                                        asio::as_tuple(asio::use_awaitable));
      (void)n;
      if (ec) break;
    }
  };
  auto sent = send(ch, endpoint, message);
  co_await asio::co_spawn(strand, std::move(sent), asio::use_awaitable);
}

}  // namespace awaitdb::detail
