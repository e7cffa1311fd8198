#include "file_sync.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>

#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <ctime>
#include <linux/aio_abi.h>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

namespace awaitdb::detail {
namespace {

namespace asio = boost::asio;

int sync_inline(int fd, sync_kind kind) {
  const int rc = kind == sync_kind::data ? ::fdatasync(fd) : ::fsync(fd);
  return rc == 0 ? 0 : errno;
}

// The process's one AIO context, made on first use and kept until the process ends (io_destroy
// waits for an RCU grace period: tens of milliseconds). Requests are told apart by a number of
// their own; a completion collected for another request is kept for it.
class aio_queue {
 public:
  static aio_queue& instance() {
    static aio_queue queue;
    return queue;
  }

  /// Submits `fd`'s sync, signalled on `eventfd` when complete: its number, or 0 when the kernel
  /// refuses (no AIO, too many in flight, a file system without asynchronous fsync).
  std::uint64_t submit(int fd, sync_kind kind, int eventfd) {
    if (!context_) return 0;
    std::lock_guard lock(mutex_);
    const std::uint64_t id = ++last_id_;
    iocb request{};
    request.aio_data = id;
    request.aio_fildes = static_cast<std::uint32_t>(fd);
    request.aio_lio_opcode = kind == sync_kind::data ? IOCB_CMD_FDSYNC : IOCB_CMD_FSYNC;
    request.aio_flags = IOCB_FLAG_RESFD;
    request.aio_resfd = static_cast<std::uint32_t>(eventfd);
    iocb* list[1] = {&request};  // (the kernel copies it)
    return ::syscall(SYS_io_submit, context_, 1, list) == 1 ? id : 0;
  }

  /// The result of request `id` (0 or a negative errno), once its eventfd has been signalled:
  /// its completion is then in the ring. `wait`: block until it is (a cancelled wait).
  long take(std::uint64_t id, bool wait) {
    std::lock_guard lock(mutex_);
    for (;;) {
      if (auto it = done_.find(id); it != done_.end()) {
        const long result = it->second;
        done_.erase(it);
        return result;
      }
      io_event events[16];
      timespec now{};
      const long n =
          ::syscall(SYS_io_getevents, context_, wait ? 1 : 0, 16, events, wait ? nullptr : &now);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0 && !wait) wait = true;  // (signalled, so it is on its way)
      for (long i = 0; i < n; ++i) {
        if (abandoned_.erase(events[i].data) == 0)
          done_.emplace(events[i].data, static_cast<long>(events[i].res));
      }
    }
  }

  /// Request `id` will not be taken: its completion is dropped when collected.
  void abandon(std::uint64_t id) {
    std::lock_guard lock(mutex_);
    if (done_.erase(id) == 0) abandoned_.insert(id);
  }

 private:
  aio_queue() {
    if (::syscall(SYS_io_setup, 64, &context_) != 0) context_ = 0;
  }

  aio_context_t context_ = 0;
  std::mutex mutex_;
  std::uint64_t last_id_ = 0;
  std::unordered_map<std::uint64_t, long> done_;
  std::unordered_set<std::uint64_t> abandoned_;
};

}  // namespace

asio::awaitable<int> sync_file(int fd, sync_kind kind) {
  const int signal = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (signal < 0) co_return sync_inline(fd, kind);
  asio::posix::stream_descriptor done(co_await asio::this_coro::executor, signal);
  aio_queue& queue = aio_queue::instance();
  const std::uint64_t id = queue.submit(fd, kind, signal);
  if (id == 0) co_return sync_inline(fd, kind);
  // Dropped unfinished (its execution context went away), the request is forgotten.
  struct forget_if_dropped {
    aio_queue& queue;
    std::uint64_t id;
    bool armed = true;
    ~forget_if_dropped() {
      if (armed) queue.abandon(id);
    }
  } dropped{queue, id};
  // The eventfd becomes readable when the kernel has finished.
  auto [waited] = co_await done.async_wait(asio::posix::stream_descriptor::wait_read,
                                           asio::as_tuple(asio::use_awaitable));
  dropped.armed = false;
  // Cancelled: the caller's `fd` must stay open until the kernel is done with it.
  const long result = queue.take(id, static_cast<bool>(waited));
  if (waited) throw boost::system::system_error(waited);
  co_return result < 0 ? static_cast<int>(-result) : 0;
}

}  // namespace awaitdb::detail
