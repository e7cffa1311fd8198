// awaitdb: PostgreSQL notifications (LISTEN/NOTIFY).
#ifndef AWAITDB_LISTEN_HPP
#define AWAITDB_LISTEN_HPP

#include <boost/asio/awaitable.hpp>

#include <cstdint>
#include <memory>
#include <string>

namespace awaitdb {

/// One notification, or a gap: the connection that listened was lost, and whatever was sent
/// on the channel until awaitdb listened again is missed (resynchronise from the tables).
struct notification {
  bool gap = false;
  std::string channel;
  std::string payload;
  std::int32_t sender_pid = 0;  // the notifying session's server process
};

namespace detail {
class subscription_state;
}

/// Notifications of one channel (see `database::listen`). Move-only; destroying it stops
/// listening (the last subscription of a channel sends UNLISTEN).
class subscription {
 public:
  subscription() = default;
  explicit subscription(std::shared_ptr<detail::subscription_state> state) noexcept;
  subscription(subscription&&) noexcept;
  subscription& operator=(subscription&&) noexcept;
  ~subscription();

  /// The next notification (or gap), in the order the server sent them; waits for one.
  /// Cancellable (nothing is lost: a notification that arrives meanwhile waits for the next
  /// call). Throws `awaitdb::error` 08003 once the database is closed.
  boost::asio::awaitable<notification> next();

 private:
  std::shared_ptr<detail::subscription_state> state_;
};

}  // namespace awaitdb

#endif  // AWAITDB_LISTEN_HPP
