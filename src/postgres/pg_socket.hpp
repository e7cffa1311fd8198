// The connection's watch of libpq's socket: which waits are armed on it, corking, and ending
// them. Asio watches duplicates of libpq's descriptor, closed only here: libpq may close its own
// at any time (a lost connection), and a number it closed and the system reused is never
// confused with this connection's.
//
// Not locked: its owner (pg_connection) calls it under its own lock. It knows nothing of libpq,
// so a test drives it with any socket (a socketpair whose peer closes, resets, or stops reading).
#ifndef AWAITDB_SRC_POSTGRES_PG_SOCKET_HPP
#define AWAITDB_SRC_POSTGRES_PG_SOCKET_HPP

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/socket_base.hpp>
#include <boost/system/error_code.hpp>

#include <cstdint>
#include <optional>
#include <utility>

namespace awaitdb::detail {

class pg_socket {
 public:
  /// The read side: nothing armed; one read armed (or posted) whose handler reads for everyone;
  /// not read at all while a stream's reader catches up (the server then waits).
  enum class reading : std::uint8_t { idle, armed, paused };
  /// The write side: one writability wait armed while libpq holds data the socket did not take.
  enum class writing : std::uint8_t { idle, flushing };

  /// `one_thread`: the executor's context promises one thread (see `arm_read`).
  pg_socket(boost::asio::any_io_executor executor, bool one_thread) noexcept
      : executor_(std::move(executor)), one_thread_(one_thread) {}
  ~pg_socket();
  pg_socket(const pg_socket&) = delete;
  pg_socket& operator=(const pg_socket&) = delete;

  /// Watches `fd` (libpq's socket) through a duplicate, in place of any earlier watch. Throws
  /// `awaitdb::error` (08006) when it cannot.
  void watch(int fd);
  bool watching() const noexcept { return fd_ >= 0; }
  reading read_state() const noexcept { return reading_; }
  writing write_state() const noexcept { return writing_; }

  /// Arms one read, unless one is armed, reads are paused or nothing is watched (then false):
  /// `handler()` runs once the socket is readable, fails or is shut down, and must begin with
  /// `read_fired`. On an executor that more than one thread may run, a 1-byte MSG_PEEK receive
  /// rather than a readiness wait: Asio tries the receive speculatively under the reactor's
  /// lock before it queues the wait, so data that arrived (and an edge another thread's
  /// epoll_wait consumed) since libpq last read cannot be missed. The byte stays in the socket.
  /// With one thread, no other thread can take that edge: a plain readiness wait, which saves
  /// the two receives of the peek.
  template <class Handler>
  bool arm_read(Handler handler) {
    if (reading_ != reading::idle || !read_watch_) return false;
    reading_ = reading::armed;
    if (one_thread_) {
      read_watch_->async_wait(boost::asio::socket_base::wait_read,
                              [h = std::move(handler)](boost::system::error_code) mutable { h(); });
    } else {
      read_watch_->async_receive(
          boost::asio::buffer(&peek_byte_, 1), boost::asio::socket_base::message_peek,
          [h = std::move(handler)](boost::system::error_code, std::size_t) mutable { h(); });
    }
    return true;
  }
  /// A read is run without waiting (posted by the owner): armed until it fires.
  void read_posted() noexcept { reading_ = reading::armed; }
  void read_fired() noexcept {
    if (reading_ == reading::armed) reading_ = reading::idle;
  }
  /// From idle: the socket is not read until `unpause`.
  void pause_reads() noexcept { reading_ = reading::paused; }
  /// True when reads were paused (now idle).
  bool unpause() noexcept {
    if (reading_ != reading::paused) return false;
    reading_ = reading::idle;
    return true;
  }

  /// Arms one writability wait unless one is armed or nothing is watched (then false); the
  /// handler must begin with `write_fired`.
  template <class Handler>
  bool arm_write(Handler handler) {
    if (writing_ == writing::flushing || !write_watch_ready()) return false;
    writing_ = writing::flushing;
    write_watch_->async_wait(boost::asio::socket_base::wait_write,
                             [h = std::move(handler)](boost::system::error_code) mutable { h(); });
    return true;
  }
  void write_fired() noexcept { writing_ = writing::idle; }

  /// Holds back small sends until `uncork` (TCP_CORK; TCP only). True when it corked now (the
  /// owner then arranges the `uncork`).
  bool cork() noexcept;
  void uncork() noexcept;

  /// The watch on which to await readiness once, outside the armed reads and flushes
  /// (connecting, COPY): the read watch for reads, and for writes while `connecting`; else the
  /// write watch. Null when there is none. Awaited without the owner's lock.
  boost::asio::generic::stream_protocol::socket* ready_watch(bool readable,
                                                             bool connecting = false) noexcept;

  /// What is armed completes now (and finds its owner's state): the socket is shut down.
  void shut_down() noexcept;
  /// Stops watching for reads: the read watch is closed (nothing may be armed on it).
  void close_read_watch() noexcept;
  /// Nothing will be armed again: closes the read watch when nothing is armed, else shuts the
  /// socket down (the armed handlers then run, and close it with `close_read_watch`).
  void release() noexcept;
  /// The executor's handlers are gone (its context is ending): both watches closed at once.
  void abandon() noexcept;

 private:
  bool write_watch_ready() noexcept;
  void close_watches() noexcept;

  boost::asio::any_io_executor executor_;
  const bool one_thread_;
  std::optional<boost::asio::generic::stream_protocol::socket> read_watch_;
  std::optional<boost::asio::generic::stream_protocol::socket> write_watch_;  // made when needed
  int fd_ = -1;  // read_watch_'s descriptor while it is open
  int family_ = 0;
  reading reading_ = reading::idle;
  writing writing_ = writing::idle;
  bool can_cork_ = false;  // TCP (TCP_CORK means nothing to a Unix socket)
  bool corked_ = false;
  char peek_byte_ = 0;
};

}  // namespace awaitdb::detail

#endif  // AWAITDB_SRC_POSTGRES_PG_SOCKET_HPP
