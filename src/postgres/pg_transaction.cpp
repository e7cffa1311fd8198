#include "pg_transaction.hpp"

#include "../sqlstates.hpp"
#include <awaitdb/error.hpp>

#include <exception>

namespace awaitdb::detail {

namespace asio = boost::asio;

namespace {

void roll_back_savepoint(pg_tx& level) noexcept {
  pg_tx& top = level.top_level();
  try {
    const std::string undo = "ROLLBACK TO SAVEPOINT " + level.savepoint_name();
    const std::string release = "RELEASE SAVEPOINT " + level.savepoint_name();
    pg_connection::request r;
    r.controls = control_list(undo, release);
    r.tx = &top.book;
    r.detached = true;
    top.conn->submit(r);
  } catch (...) {
    // The transaction has ended (25P01) or its connection is lost: nothing to undo.
  }
}

}  // namespace

asio::awaitable<void> pg_send_and_wait(pg_tx& top, control_list controls) {
  pg_connection::request r;
  r.controls = controls;
  r.tx = &top.book;
  pg_connection::exchange x(*top.conn, r);
  x.settle(co_await x.wait());
  x.check();
}

asio::awaitable<std::shared_ptr<tx_state>> pg_begin(backend& owner, connection_pool& pool,
                                                    std::shared_ptr<tx_state> parent,
                                                    tx_state* enclosing,
                                                    const transaction_options& options,
                                                    deadline_state* deadline) {
  if (!enclosing) {
    // Only the connection is taken now; BEGIN travels with the first statement.
    pool_lease lease = co_await pool.acquire_exclusive(deadline);
    auto conn = std::static_pointer_cast<pg_connection>(lease.connection());
    auto top = std::make_shared<pg_tx>(owner, std::move(parent), nullptr, std::move(conn),
                                       std::move(lease));
    top->book.set_begin(begin_statement(options));
    co_return top;
  }
  pg_tx& top = pg_tx::of(*enclosing).top_level();
  auto level = std::make_shared<pg_tx>(owner, std::move(parent), enclosing, top.conn, pool_lease());
  const std::string savepoint = "SAVEPOINT " + level->savepoint_name();
  co_await pg_send_and_wait(top, control_list(savepoint));
  co_return level;
}

asio::awaitable<void> pg_commit(pg_tx& level) {
  pg_tx& top = level.top_level();
  if (level.depth() > 0) {
    const std::string release = "RELEASE SAVEPOINT " + level.savepoint_name();
    std::exception_ptr failure;
    try {
      co_await pg_send_and_wait(top, control_list(release));
    } catch (...) {
      failure = std::current_exception();
    }
    if (failure) {
      roll_back_savepoint(level);
      std::rethrow_exception(failure);
    }
    co_return;
  }
  pg_connection::request r;
  r.controls = control_list("COMMIT");
  r.tx = &top.book;
  r.ends_tx = true;
  std::exception_ptr failure;
  bool sent = false;
  try {
    pg_connection::exchange x(*top.conn, r);
    if (x.sent()) {
      sent = true;
      x.settle(co_await x.wait());
      x.check();
    }
  } catch (const error& e) {
    // The connection ended while COMMIT was on its way: the server may have committed.
    const bool in_doubt =
        sent && (e.is_connection_error() || e.sqlstate().starts_with(code::server_shutdown_class));
    failure = in_doubt ? std::make_exception_ptr(
                             error(code::transaction_resolution_unknown,
                                   "the connection was lost while COMMIT was in flight: the "
                                   "transaction may or may not have committed; check before "
                                   "running it again"))
                       : std::current_exception();
  } catch (...) {
    failure = std::current_exception();
  }
  // The connection goes back now; if the COMMIT is still in flight (a cancelled wait) the
  // pool lends it again only once it has been answered.
  top.lease.reset();
  if (failure) std::rethrow_exception(failure);
}

void pg_rollback(pg_tx& level) noexcept {
  if (level.depth() > 0) {
    roll_back_savepoint(level);
    return;
  }
  pg_tx& top = level.top_level();
  // Sent now, before the connection goes back: nothing the task sends later can overtake it,
  // and the pool lends the connection again only once it has been answered.
  pg_connection::request r;
  r.controls = control_list("ROLLBACK");
  r.tx = &top.book;
  r.ends_tx = true;
  r.detached = true;
  try {
    top.conn->submit(r);
  } catch (...) {
    // A lost connection: the pool drops it.
  }
  top.lease.reset();
}

}  // namespace awaitdb::detail
