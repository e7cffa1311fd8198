// The client-side record of one transaction on its pinned connection. Pure: no I/O.
#ifndef AWAITDB_SRC_POSTGRES_PG_TX_HPP
#define AWAITDB_SRC_POSTGRES_PG_TX_HPP

#include <cstdint>
#include <string_view>

namespace awaitdb::detail {

/// Whether BEGIN has gone out (it travels with the first group the transaction sends, saving a
/// round trip) and whether the transaction has ended. Statements of one transaction may be sent
/// from several coroutines at once: the connection calls these under its lock.
class pg_tx_book {
 public:
  enum class status : std::uint8_t { not_begun, open, ended };
  enum class ending : std::uint8_t {
    nothing_sent,   // BEGIN never went out: there is nothing to commit or roll back
    send,           // send COMMIT or ROLLBACK
    already_ended,  // it ended before (by another path): send nothing
  };

  /// A group of the transaction is about to be sent: returns what must go ahead of it ("BEGIN"
  /// the first time, else ""). Throws `awaitdb::error` 25P01 once the transaction has ended.
  std::string_view before_group();
  /// The transaction ends now (COMMIT or ROLLBACK is about to be sent): says what to send.
  ending end() noexcept;

  status current() const noexcept { return status_; }

 private:
  status status_ = status::not_begun;
};

}  // namespace awaitdb::detail

#endif  // AWAITDB_SRC_POSTGRES_PG_TX_HPP
