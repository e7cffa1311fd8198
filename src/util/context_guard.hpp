// Objects of awaitdb that hold Asio I/O objects (sockets, timers) beyond any handler: a pooled
// connection or a pool's timer, kept by a `database` that may outlive its io_context. Asio
// destroys handlers with their context, but not such objects; destroyed after the context,
// their sockets and timers would reach into its freed reactor. So each registers with a service
// of its context: when the context shuts down (its destructor), the service tells every member
// still alive to release them and to end its server connections at once.
#ifndef AWAITDB_SRC_UTIL_CONTEXT_GUARD_HPP
#define AWAITDB_SRC_UTIL_CONTEXT_GUARD_HPP

#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <memory>

namespace awaitdb::detail {

class context_member {
 public:
  virtual ~context_member() = default;
  /// The context is shutting down: release every Asio object of it (close sockets, destroy
  /// timers) and end what talks to a server, without posting anything (no thread runs the
  /// context any more). Later calls must not touch the context. `deadline` bounds anything
  /// this may wait for (a cancel sent to a server). Called once, if the member is alive then.
  virtual void context_shutdown(std::chrono::steady_clock::time_point deadline) noexcept = 0;
};

/// Registers `member` with the context `executor` belongs to. When that context is already
/// shutting down, calls `member->context_shutdown` at once.
void join_context(const boost::asio::any_io_executor& executor,
                  const std::shared_ptr<context_member>& member);

}  // namespace awaitdb::detail

#endif  // AWAITDB_SRC_UTIL_CONTEXT_GUARD_HPP
