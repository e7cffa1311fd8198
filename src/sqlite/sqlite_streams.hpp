// An SQLite stream outside a transaction, on a file database: a read-only connection of its own,
// so that the statement's read transaction (a WAL snapshot) keeps nothing else waiting or stale.
// Each `next()` is one step, inline; a lock held by another connection is waited for on a timer.
#ifndef AWAITDB_SRC_SQLITE_SQLITE_STREAMS_HPP
#define AWAITDB_SRC_SQLITE_SQLITE_STREAMS_HPP

#include "../stream.hpp"
#include "sqlite_connection.hpp"

#include <chrono>
#include <memory>
#include <mutex>

namespace awaitdb::detail {

/// A stream's own connection, shared with the database so that `close()` closes it too.
struct stream_hold {
  std::mutex mutex;
  std::unique_ptr<sqlite_connection> conn;  // null once the database closed it
};

/// The rows of the statement started on `hold`'s connection (`start_rows`); a lock is waited for
/// within `patience` (busy_timeout) or the task's deadline.
std::unique_ptr<row_source> sqlite_stream_rows(std::shared_ptr<stream_hold> hold,
                                               std::chrono::milliseconds patience);

}  // namespace awaitdb::detail

#endif  // AWAITDB_SRC_SQLITE_SQLITE_STREAMS_HPP
