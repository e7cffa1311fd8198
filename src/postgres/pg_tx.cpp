#include "pg_tx.hpp"

#include <awaitdb/error.hpp>

namespace awaitdb::detail {

std::string_view pg_tx_book::before_group() {
  switch (status_) {
    case status::not_begun:
      status_ = status::open;
      return "BEGIN";
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
