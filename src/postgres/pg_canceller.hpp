// The channel that cancels statements on the server.
#ifndef AWAITDB_SRC_POSTGRES_PG_CANCELLER_HPP
#define AWAITDB_SRC_POSTGRES_PG_CANCELLER_HPP

#include "../url.hpp"
#include "../util/wait_list.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <memory>
#include <mutex>

namespace awaitdb::detail {

class pg_connection;
struct pg_shared;

/// Cancels statements on the server through one long-lived control connection per pool (opened
/// on first use, again after it is lost; never more than one), with
/// `SELECT pg_cancel_backend(pid)`: libpq 15's own PQcancel blocks the thread. The control
/// connection is not counted in `pool_max_size`.
class pg_canceller {
 public:
  pg_canceller(boost::asio::any_io_executor executor, const postgres_options& options);
  ~pg_canceller();

  /// Asks the server to cancel what backend `pid` runs. Throws when the control connection
  /// cannot be opened or used.
  boost::asio::awaitable<void> cancel(int pid);
  /// The same without waiting for it (failures are ignored); `owner` keeps this object alive
  /// until it is done.
  void cancel_detached(int pid, std::shared_ptr<const void> owner);

  /// Lets cancels under way finish (up to `drain`), then closes the control connection.
  boost::asio::awaitable<void> close(std::chrono::milliseconds drain);
  void close_now() noexcept;

 private:
  boost::asio::awaitable<std::shared_ptr<pg_connection>> control();
  // `cancel`'s work, counted in `under_way_` by the caller.
  boost::asio::awaitable<void> counted_cancel(int pid);

  boost::asio::any_io_executor executor_;
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
