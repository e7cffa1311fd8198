// The client-side record of one transaction on its pinned connection. Pure: no I/O.
#ifndef AWAITDB_SRC_POSTGRES_PG_TX_HPP
#define AWAITDB_SRC_POSTGRES_PG_TX_HPP

#include <cstdint>
#include <string>
#include <string_view>

namespace awaitdb {
struct transaction_options;
}

namespace awaitdb::detail {

/// The BEGIN that starts a transaction run as `o` says ("BEGIN ISOLATION LEVEL SERIALIZABLE
/// READ ONLY DEFERRABLE", or plain "BEGIN").
std::string begin_statement(const transaction_options& o);

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
  /// What `before_group` sends first (before anything is sent).
  void set_begin(std::string begin) { begin_ = std::move(begin); }

 private:
  status status_ = status::not_begun;
  std::string begin_ = "BEGIN";
};

}  // namespace awaitdb::detail

#endif  // AWAITDB_SRC_POSTGRES_PG_TX_HPP
