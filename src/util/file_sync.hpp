// Making a file's data durable without holding the thread for the disk: `fdatasync` and
// `fsync` submitted through Linux's native AIO (IOCB_CMD_FDSYNC / IOCB_CMD_FSYNC, which the
// kernel runs on its own workers), their completion signalled on an eventfd that the caller's
// executor watches. No thread of awaitdb's, no blocking call: a disk that takes 100 ms to flush
// its cache leaves the loop free meanwhile. Where the kernel refuses (no AIO, or a file system
// without asynchronous fsync), the call is made inline.
#ifndef AWAITDB_SRC_UTIL_FILE_SYNC_HPP
#define AWAITDB_SRC_UTIL_FILE_SYNC_HPP

#include <boost/asio/awaitable.hpp>

namespace awaitdb::detail {

enum class sync_kind : unsigned char {
  data,        // fdatasync: the data, and the metadata needed to read it
  everything,  // fsync: a directory's entries, for example
};

/// Completes once `fd`'s `kind` is on disk: 0, or the errno the kernel reported. `fd` must stay
/// open until this completes. Cancelled, it throws boost::system::system_error
/// (operation_aborted), after the kernel's answer (a submitted request cannot be withdrawn).
boost::asio::awaitable<int> sync_file(int fd, sync_kind kind);

}  // namespace awaitdb::detail

#endif  // AWAITDB_SRC_UTIL_FILE_SYNC_HPP
