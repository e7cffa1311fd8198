#include "pg_tx.hpp"

#include <awaitdb/database.hpp>
#include <awaitdb/error.hpp>

namespace awaitdb::detail {

std::string begin_statement(const transaction_options& o) {
  using level = transaction_options::isolation_level;
  std::string out = "BEGIN";
  switch (o.isolation) {
    case level::server_default:
      break;
    case level::read_committed:
      out += " ISOLATION LEVEL READ COMMITTED";
      break;
    case level::repeatable_read:
      out += " ISOLATION LEVEL REPEATABLE READ";
      break;
    case level::serializable:
      out += " ISOLATION LEVEL SERIALIZABLE";
      break;
  }
  if (o.read_only) out += " READ ONLY";
  if (o.deferrable) out += " DEFERRABLE";
  return out;
}

std::string_view pg_tx_book::before_group() {
  switch (status_) {
    case status::not_begun:
      status_ = status::open;
      return begin_;
    case status::open:
      return {};
    case status::ended:
      break;
  }
  throw error(sqlstate::no_active_transaction,
              "this task's transaction has already ended; a coroutine started inside a "
              "transaction must finish before it does");
}

pg_tx_book::ending pg_tx_book::end() noexcept {
  const status was = status_;
  status_ = status::ended;
  switch (was) {
    case status::not_begun:
      return ending::nothing_sent;
    case status::open:
      return ending::send;
    case status::ended:
      break;
  }
  return ending::already_ended;
}

}  // namespace awaitdb::detail
