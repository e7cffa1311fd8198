// What the pool asks of a PostgreSQL connection beyond its gauges: whether an idle one is still
// alive, and whether a quiet one is fit for its next user (or what makes it so).
#include "pg_connection.hpp"

#include <sys/socket.h>

#include <cerrno>

namespace awaitdb::detail {

PGTransactionStatusType pg_connection::transaction_status() const {
  std::lock_guard lock(mutex_);
  return state_ == state::open ? PQtransactionStatus(conn_) : PQTRANS_UNKNOWN;
}

std::string pg_connection::loss_reason() const {
  std::lock_guard lock(mutex_);
  return loss_reason_;
}

bool pg_connection::check_alive() noexcept {
  group_list done;
  {
    std::lock_guard lock(mutex_);
    if (state_ != state::open) return false;
    if (!pipeline_.empty()) return true;  // busy: its reads will tell
    // An idle server sends nothing unasked but notices, parameter changes, notifications and,
    // when it is about to close the session, a FATAL error. libpq (15) leaves what arrives
    // while a pipeline is idle unparsed, so look at the message type itself: an ErrorResponse
    // ('E') now means the server is ending the session. Under TLS the type cannot be seen; a
    // dead connection is still found at end of file.
    for (int attempt = 0; attempt < 4; ++attempt) {
      char type = 0;
      const ssize_t n = ::recv(PQsocket(conn_), &type, 1, MSG_PEEK | MSG_DONTWAIT);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && !server_ending_) {
        if (PQstatus(conn_) == CONNECTION_OK) return true;
        lose_locked("connection found broken while idle", done);  // (libpq marked it bad)
        break;
      }
      const bool fatal = n > 0 && type == 'E' && !PQsslInUse(conn_);
      if (n <= 0 || fatal || server_ending_ || !PQconsumeInput(conn_) ||
          PQstatus(conn_) != CONNECTION_OK) {
        lose_locked("connection lost while idle", done);
        break;
      }
    }
    if (state_ == state::open) return true;
    // Nothing was armed (idle): close the watch here.
    if (socket_.read_state() != pg_socket::reading::armed) socket_.close_read_watch();
  }
  // (The pool removes it itself: no report.)
  for (const pg_group_ptr& g : done)
    awaited(*g).notify();
  return false;
}

bool pg_connection::clean() const noexcept {
  try {
    return transaction_status() == PQTRANS_IDLE;
  } catch (...) {
    return false;
  }
}

bool pg_connection::make_clean() noexcept {
  try {
    const PGTransactionStatusType status = transaction_status();
    if (status == PQTRANS_IDLE) return true;
    if (status == PQTRANS_INTRANS || status == PQTRANS_INERROR) {
      // Left inside a transaction (a manual BEGIN, say): rolled back before anyone else gets it.
      request r;
      r.controls = control_list("ROLLBACK");
      r.detached = true;
      submit(r);
      return false;
    }
  } catch (...) {
  }
  return false;  // lost: the pool finds out
}

}  // namespace awaitdb::detail
