// Whether an executor's handlers can run on only one thread at a time, as its context promises.
#ifndef AWAITDB_SRC_UTIL_ONE_THREAD_HPP
#define AWAITDB_SRC_UTIL_ONE_THREAD_HPP

#include <boost/asio/any_io_executor.hpp>

namespace awaitdb::detail {

/// True when `ex` belongs to an `io_context` made with the concurrency hint 1 (or a hint that
/// turns Asio's locking off), or to a `thread_pool(1)`: contexts that, by Asio's documentation,
/// one thread runs. Then no other thread can run the reactor between a handler and this
/// thread's next wait. False for anything else (a default io_context, a larger thread_pool, a
/// context Asio does not make).
bool runs_on_one_thread(const boost::asio::any_io_executor& ex) noexcept;

}  // namespace awaitdb::detail

#endif
