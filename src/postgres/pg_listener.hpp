// LISTEN/NOTIFY: one connection per database, outside the pool, shared by every subscription.
#ifndef AWAITDB_SRC_POSTGRES_PG_LISTENER_HPP
#define AWAITDB_SRC_POSTGRES_PG_LISTENER_HPP

#include "../listen.hpp"
#include "../url.hpp"
#include "../util/wait_list.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace awaitdb::detail {

class pg_connection;
struct pg_shared;
struct pg_notification;

/// Keeps one listening connection (opened on the first `subscribe`) and hands each
/// notification to the subscriptions of its channel. When the connection is lost, every
/// subscription gets a gap, and the connection is opened again (with the connect backoff)
/// and listens again to every channel that still has a subscription.
class pg_listener : public std::enable_shared_from_this<pg_listener> {
 public:
  pg_listener(boost::asio::any_io_executor executor, const postgres_options& options);
  ~pg_listener();

  /// A subscription to `channel`, listening once this completes.
  boost::asio::awaitable<std::shared_ptr<subscription_state>> subscribe(std::string channel);
  /// Closes the connection; subscriptions then fail with 08003.
  void close() noexcept;

  /// `channel` as an SQL identifier, taken literally.
  static std::string quoted(const std::string& channel);

 private:
  boost::asio::awaitable<std::shared_ptr<pg_connection>> connection();
  boost::asio::awaitable<void> reconnect();
  void received(std::vector<pg_notification>& batch, bool lost, const pg_connection* from);
  void unsubscribe(const std::string& channel);
  std::vector<std::shared_ptr<subscription_state>> subscribers_locked(const std::string& channel);

  boost::asio::any_io_executor executor_;
  std::shared_ptr<pg_shared> shared_;
  std::mutex mutex_;
  std::shared_ptr<pg_connection> conn_;
  // When conn_ was opened, and how many connections in a row were lost within
  // connect_probation of their open: each counts as a failed open for the pause before opening
  // again (a connection that lived longer resets it).
  std::chrono::steady_clock::time_point connected_at_{};
  unsigned early_losses_ = 0;
  bool opening_ = false;
  bool closed_ = false;
  wait_list opened_;
  wait_list pausing_;  // reconnect's pause (close cuts it short)
  std::map<std::string, std::vector<std::weak_ptr<subscription_state>>> channels_;
};

}  // namespace awaitdb::detail

#endif  // AWAITDB_SRC_POSTGRES_PG_LISTENER_HPP
