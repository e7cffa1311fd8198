#include "pg_socket.hpp"

#include <awaitdb/error.hpp>

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace awaitdb::detail {

namespace asio = boost::asio;
using boost::system::error_code;

pg_socket::~pg_socket() {
  // Nothing is armed any more: every armed handler holds a reference to the owner.
  close_watches();
}

void pg_socket::close_watches() noexcept {
  error_code ignored;
  if (read_watch_) read_watch_->close(ignored);
  if (write_watch_) write_watch_->close(ignored);
  read_watch_.reset();
  write_watch_.reset();
  fd_ = -1;
}

void pg_socket::watch(int fd) {
  error_code ec;
  close_watches();
  if (fd < 0) throw error(sqlstate::connection_failure, "the connection has no socket");
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  family_ =
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0 ? addr.ss_family : AF_INET;
  can_cork_ = family_ == AF_INET || family_ == AF_INET6;
  const int watched = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (watched < 0)
    throw error(sqlstate::connection_failure,
                "cannot watch the connection's socket: " + std::string(std::strerror(errno)));
  read_watch_.emplace(executor_);
  read_watch_->assign(asio::generic::stream_protocol(family_, 0), watched, ec);
  if (ec) {
    ::close(watched);
    read_watch_.reset();
    throw error(sqlstate::connection_failure,
                "cannot watch the connection's socket: " + ec.message());
  }
  fd_ = watched;
}

bool pg_socket::write_watch_ready() noexcept {
  if (write_watch_) return true;
  if (fd_ < 0) return false;
  const int fd = ::fcntl(fd_, F_DUPFD_CLOEXEC, 0);
  if (fd < 0) return false;
  error_code ec;
  try {
    write_watch_.emplace(executor_);
  } catch (...) {
    ::close(fd);
    return false;
  }
  write_watch_->assign(asio::generic::stream_protocol(family_, 0), fd, ec);
  if (ec) {
    ::close(fd);
    write_watch_.reset();
    return false;
  }
  return true;
}

asio::generic::stream_protocol::socket* pg_socket::ready_watch(bool readable,
                                                               bool connecting) noexcept {
  if (readable || connecting) return read_watch_ ? &*read_watch_ : nullptr;
  return write_watch_ready() ? &*write_watch_ : nullptr;
}

bool pg_socket::cork() noexcept {
  if (!can_cork_ || corked_ || fd_ < 0) return false;
  const int on = 1;
  if (::setsockopt(fd_, IPPROTO_TCP, TCP_CORK, &on, sizeof on) != 0) return false;
  corked_ = true;
  return true;
}

void pg_socket::uncork() noexcept {
  if (!corked_) return;
  corked_ = false;
  if (fd_ < 0) return;
  const int off = 0;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_CORK, &off, sizeof off);
}

void pg_socket::shut_down() noexcept {
  if (fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);
}

void pg_socket::close_read_watch() noexcept {
  error_code ignored;
  if (read_watch_) read_watch_->close(ignored);
  read_watch_.reset();
  fd_ = -1;
}

void pg_socket::release() noexcept {
  if (reading_ == reading::armed || writing_ == writing::flushing)
    shut_down();
  else
    close_read_watch();
}

void pg_socket::abandon() noexcept {
  close_watches();
  if (reading_ == reading::armed) reading_ = reading::idle;
  writing_ = writing::idle;
  corked_ = false;
}

}  // namespace awaitdb::detail
