// A PostgreSQL transaction's levels on the connection it pinned: BEGIN (sent with the first
// statement), savepoints for nested levels, COMMIT and ROLLBACK.
#ifndef AWAITDB_SRC_POSTGRES_PG_TRANSACTION_HPP
#define AWAITDB_SRC_POSTGRES_PG_TRANSACTION_HPP

#include "../backend.hpp"
#include "../pool/pool.hpp"
#include "pg_connection.hpp"
#include "pg_tx.hpp"

#include <boost/asio/awaitable.hpp>

#include <memory>
#include <string>

namespace awaitdb::detail {

class pg_tx final : public tx_state {
 public:
  pg_tx(backend& owner, std::shared_ptr<tx_state> parent, tx_state* enclosing,
        std::shared_ptr<pg_connection> connection, pool_lease borrowed)
      : tx_state(owner, std::move(parent), enclosing)
      , conn(std::move(connection))
      , lease(std::move(borrowed)) {}

  static pg_tx& of(tx_state& t) noexcept { return static_cast<pg_tx&>(t); }
  std::string savepoint_name() const { return "awaitdb_sp_" + std::to_string(depth()); }
  pg_tx& top_level() const noexcept { return static_cast<pg_tx&>(top()); }

  // The pinned connection. Kept by every level (a coroutine that outlives the transaction
  // still finds it, and is refused by `book`), while the pool's lease ends with the transaction.
  const std::shared_ptr<pg_connection> conn;
  pool_lease lease;  // the top level's, until commit or rollback
  pg_tx_book book;   // the top level's; used under the connection's lock
};

/// A new level: the top one takes a connection of its own from `pool` (BEGIN goes out with its
/// first statement); a nested one is a savepoint on the top level's connection.
boost::asio::awaitable<std::shared_ptr<tx_state>> pg_begin(backend& owner, connection_pool& pool,
                                                           std::shared_ptr<tx_state> parent,
                                                           tx_state* enclosing,
                                                           const transaction_options& options,
                                                           deadline_state* deadline);
/// COMMIT (the top level; 08007 when the connection is lost while it is in flight) or RELEASE
/// SAVEPOINT (a nested one; rolled back to when that fails).
boost::asio::awaitable<void> pg_commit(pg_tx& level);
/// ROLLBACK or ROLLBACK TO SAVEPOINT, sent now without waiting.
void pg_rollback(pg_tx& level) noexcept;
/// Sends `controls` with the transaction (and BEGIN, if still owed) and awaits them.
boost::asio::awaitable<void> pg_send_and_wait(pg_tx& top, control_list controls);

}  // namespace awaitdb::detail

#endif  // AWAITDB_SRC_POSTGRES_PG_TRANSACTION_HPP
