// The connection's socket watch alone, on sockets made here (no server, no libpq): what each
// loss of the peer and a full send buffer do to the reads and flushes armed on it.
#include "postgres/pg_socket.hpp"

#include <boost/asio/io_context.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <vector>

namespace awaitdb::detail {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

struct socket_pair {
  int ours = -1, peer = -1;
  socket_pair() {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0) {
      ours = fds[0];
      peer = fds[1];
    }
  }
  ~socket_pair() {
    if (ours >= 0) ::close(ours);
    if (peer >= 0) ::close(peer);
  }
};

// A TCP connection over the loopback (TCP_CORK and resets need TCP).
struct tcp_pair {
  int ours = -1, peer = -1;
  tcp_pair() {
    const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
        ::listen(listener, 1) == 0 &&
        ::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      ours = ::socket(AF_INET, SOCK_STREAM, 0);
      if (::connect(ours, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0)
        peer = ::accept(listener, nullptr, nullptr);
    }
    ::close(listener);
  }
  ~tcp_pair() {
    if (ours >= 0) ::close(ours);
    if (peer >= 0) ::close(peer);
  }
};

// Runs the io_context until `done` or a bound that catches a hang.
template <class Pred>
bool run_until(asio::io_context& io, Pred done) {
  const auto until = std::chrono::steady_clock::now() + 5s;
  io.restart();
  while (!done() && std::chrono::steady_clock::now() < until)
    io.run_for(5ms);
  return done();
}

class pg_socket_modes : public ::testing::TestWithParam<bool> {};  // one thread, or several

TEST_P(pg_socket_modes, a_read_fires_when_data_arrives_and_leaves_it_for_libpq) {
  asio::io_context io;
  socket_pair p;
  pg_socket s(io.get_executor(), GetParam());
  s.watch(p.ours);
  int fired = 0;
  ASSERT_TRUE(s.arm_read([&] {
    s.read_fired();
    ++fired;
  }));
  EXPECT_FALSE(s.arm_read([] {})) << "one read at a time";
  io.run_for(20ms);
  EXPECT_EQ(fired, 0) << "fired with nothing to read";
  ASSERT_EQ(::write(p.peer, "Z", 1), 1);
  ASSERT_TRUE(run_until(io, [&] { return fired == 1; }));
  EXPECT_EQ(s.read_state(), pg_socket::reading::idle);
  char byte = 0;
  EXPECT_EQ(::recv(p.ours, &byte, 1, MSG_DONTWAIT), 1);
  EXPECT_EQ(byte, 'Z');
}

TEST_P(pg_socket_modes, a_read_fires_when_the_peer_closes) {
  asio::io_context io;
  socket_pair p;
  pg_socket s(io.get_executor(), GetParam());
  s.watch(p.ours);
  bool fired = false;
  s.arm_read([&] {
    s.read_fired();
    fired = true;
  });
  ::close(p.peer);
  p.peer = -1;
  ASSERT_TRUE(run_until(io, [&] { return fired; }));
  char byte = 0;
  EXPECT_EQ(::recv(p.ours, &byte, 1, MSG_DONTWAIT), 0);  // end of file, for libpq to see
}

TEST_P(pg_socket_modes, a_read_fires_when_the_peer_resets_the_connection) {
  asio::io_context io;
  tcp_pair p;
  ASSERT_GE(p.peer, 0);
  pg_socket s(io.get_executor(), GetParam());
  s.watch(p.ours);
  bool fired = false;
  s.arm_read([&] {
    s.read_fired();
    fired = true;
  });
  const linger reset{1, 0};  // close with a RST
  ::setsockopt(p.peer, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
  ::close(p.peer);
  p.peer = -1;
  ASSERT_TRUE(run_until(io, [&] { return fired; }));
  // libpq's next read still finds the loss: the reset itself, or (when the peek of the
  // several-threads mode took the socket's pending error) the end of the stream; never EAGAIN.
  char byte = 0;
  errno = 0;
  const ssize_t n = ::recv(p.ours, &byte, 1, MSG_DONTWAIT);
  EXPECT_TRUE(n == 0 || (n < 0 && errno == ECONNRESET)) << n << " " << errno;
}

INSTANTIATE_TEST_SUITE_P(pg_socket, pg_socket_modes, ::testing::Values(true, false),
                         [](const auto& mode) { return mode.param ? "one_thread" : "threads"; });

// libpq's socket is non-blocking; when the kernel's buffer is full libpq's sends return EAGAIN
// (a storm of them while the server does not read): one writability wait is armed, and it
// fires only once the peer has read.
TEST(pg_socket, a_full_send_buffer_arms_one_flush_that_fires_once_the_peer_reads) {
  asio::io_context io;
  socket_pair p;
  ::fcntl(p.ours, F_SETFL, ::fcntl(p.ours, F_GETFL) | O_NONBLOCK);
  const std::vector<char> block(64 * 1024, 'x');
  int eagain = 0;
  while (eagain < 100) {
    if (::send(p.ours, block.data(), block.size(), 0) < 0) {
      ASSERT_TRUE(errno == EAGAIN || errno == EWOULDBLOCK);
      ++eagain;
    }
  }
  pg_socket s(io.get_executor(), true);
  s.watch(p.ours);
  int fired = 0;
  ASSERT_TRUE(s.arm_write([&] {
    s.write_fired();
    ++fired;
  }));
  EXPECT_EQ(s.write_state(), pg_socket::writing::flushing);
  EXPECT_FALSE(s.arm_write([] {})) << "one flush at a time";
  io.run_for(30ms);
  EXPECT_EQ(fired, 0) << "writable while the buffer is full";
  std::vector<char> sink(1 << 20);
  while (::recv(p.peer, sink.data(), sink.size(), MSG_DONTWAIT) > 0) {
  }
  ASSERT_TRUE(run_until(io, [&] { return fired == 1; }));
  EXPECT_EQ(s.write_state(), pg_socket::writing::idle);
}

TEST(pg_socket, shutting_down_ends_what_is_armed_and_release_closes_an_idle_watch) {
  asio::io_context io;
  socket_pair p;
  pg_socket s(io.get_executor(), true);
  s.watch(p.ours);
  bool read = false, wrote = false;
  s.arm_read([&] {
    s.read_fired();
    read = true;
  });
  // Writable at once (an empty buffer): fires on its own; arm it again after.
  s.arm_write([&] {
    s.write_fired();
    wrote = true;
  });
  s.release();  // something armed: shut down, so the handlers run and see the owner's state
  ASSERT_TRUE(run_until(io, [&] { return read && wrote; }));
  EXPECT_TRUE(s.watching());
  s.release();  // nothing armed: the watch is closed
  EXPECT_FALSE(s.watching());
  EXPECT_FALSE(s.arm_read([] {}));
}

TEST(pg_socket, paused_reads_arm_nothing_until_unpaused) {
  asio::io_context io;
  socket_pair p;
  pg_socket s(io.get_executor(), true);
  s.watch(p.ours);
  s.pause_reads();
  EXPECT_FALSE(s.arm_read([] {}));
  EXPECT_TRUE(s.unpause());
  EXPECT_FALSE(s.unpause());
  bool fired = false;
  EXPECT_TRUE(s.arm_read([&] {
    s.read_fired();
    fired = true;
  }));
  ASSERT_EQ(::write(p.peer, "Z", 1), 1);
  EXPECT_TRUE(run_until(io, [&] { return fired; }));
}

// libpq may close its descriptor at any time, and the system may give the number to another
// socket: the watch is on a duplicate, so it still follows the connection it was made for.
TEST(pg_socket, the_watch_outlives_the_descriptor_it_was_made_from) {
  asio::io_context io;
  socket_pair p;
  pg_socket s(io.get_executor(), true);
  s.watch(p.ours);
  ::close(p.ours);
  socket_pair reuse;  // likely takes the closed number
  p.ours = -1;
  bool fired = false;
  s.arm_read([&] {
    s.read_fired();
    fired = true;
  });
  ASSERT_EQ(::write(reuse.peer, "Z", 1), 1);
  io.run_for(20ms);
  EXPECT_FALSE(fired) << "woken by another socket";
  ASSERT_EQ(::write(p.peer, "Z", 1), 1);
  EXPECT_TRUE(run_until(io, [&] { return fired; }));
}

TEST(pg_socket, only_a_tcp_socket_is_corked) {
  asio::io_context io;
  socket_pair local;
  pg_socket on_unix(io.get_executor(), true);
  on_unix.watch(local.ours);
  EXPECT_FALSE(on_unix.cork());
  tcp_pair tcp;
  ASSERT_GE(tcp.peer, 0);
  pg_socket on_tcp(io.get_executor(), true);
  on_tcp.watch(tcp.ours);
  EXPECT_TRUE(on_tcp.cork());
  EXPECT_FALSE(on_tcp.cork()) << "corked twice";
  int corked = 0;
  socklen_t len = sizeof corked;
  ::getsockopt(tcp.ours, IPPROTO_TCP, TCP_CORK, &corked, &len);
  EXPECT_EQ(corked, 1);
  on_tcp.uncork();
  ::getsockopt(tcp.ours, IPPROTO_TCP, TCP_CORK, &corked, &len);
  EXPECT_EQ(corked, 0);
}

}  // namespace
}  // namespace awaitdb::detail
