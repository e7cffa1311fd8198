// The channel that cancels statements on the server.
#ifndef AWAITDB_SRC_POSTGRES_PG_CANCELLER_HPP
#define AWAITDB_SRC_POSTGRES_PG_CANCELLER_HPP

#include "../url.hpp"
#include "../util/wait_list.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

namespace awaitdb::detail {

class pg_connection;
struct pg_shared;

/// What a cancel is aimed at: the session's process id, and, where cancels go by CancelRequest,
/// the cancel key the connection was given and the address it connected to.
struct pg_cancel_target {
  int pid = 0;
  std::int32_t key = 0;
  std::string host;  // numeric address, or a Unix socket directory; empty: no key known
  std::string port;
};

/// The protocol's CancelRequest for `target`: length 16, code 80877102, process id, key (all
/// big-endian). The receiver acts on it and closes the socket, with no answer.
std::array<unsigned char, 16> cancel_request_message(const pg_cancel_target& target);

/// Sends `target`'s CancelRequest now, on the calling thread, giving up at `deadline` (a
/// non-blocking connect waited for with poll): for the end of an io_context, when nothing can
/// be awaited any more. False when it could not be sent.
bool send_cancel_request_now(const pg_cancel_target& target,
                             std::chrono::steady_clock::time_point deadline) noexcept;

/// Cancels statements on the server. With one server: through one long-lived control
/// connection per pool (opened on first use, again after it is lost; never more than one),
/// with `SELECT pg_cancel_backend(pid)` (libpq 15's own PQcancel blocks the thread); the control
/// connection is not counted in `pool_max_size`. With several hosts (the control connection
/// might reach another), or through a transaction pooler (whose process ids are its own): with
/// the protocol's CancelRequest (process id and key) sent on a socket of its own to the host
/// the connection is on; a pooler forwards it to the server connection running the statement.
class pg_canceller {
 public:
  /// `by_request`: only with CancelRequest (see pg_shared::cancel_by_request).
  pg_canceller(boost::asio::any_io_executor executor, const postgres_options& options,
               bool by_request);
  ~pg_canceller();

  /// Asks the server to cancel what `target` runs. Throws when that cannot be sent.
  boost::asio::awaitable<void> cancel(const pg_cancel_target& target);
  /// The same without waiting for it (failures are ignored); `owner` keeps this object alive
  /// until it is done.
  void cancel_detached(pg_cancel_target target, std::shared_ptr<const void> owner);

  /// Lets cancels under way finish (up to `drain`), then closes the control connection.
  boost::asio::awaitable<void> close(std::chrono::milliseconds drain);
  void close_now() noexcept;

 private:
  boost::asio::awaitable<std::shared_ptr<pg_connection>> control();
  // `cancel`'s work, counted in `under_way_` by the caller.
  boost::asio::awaitable<void> counted_cancel(pg_cancel_target target);
  boost::asio::awaitable<void> cancel_request(const pg_cancel_target& target);

  boost::asio::any_io_executor executor_;
  std::chrono::milliseconds connect_timeout_;
  bool by_request_;
  std::shared_ptr<pg_shared> shared_;  // the control connection's own (without a canceller)
  std::mutex mutex_;
  std::shared_ptr<pg_connection> control_;
  bool opening_ = false;
  bool closed_ = false;
  std::size_t under_way_ = 0;
  wait_list opened_;
  wait_list idle_;  // `close` waiting for the cancels under way
};

}  // namespace awaitdb::detail

#endif  // AWAITDB_SRC_POSTGRES_PG_CANCELLER_HPP
