// Database URLs: which engine, where, and awaitdb's own options. Pure: no I/O.
#ifndef AWAITDB_SRC_URL_HPP
#define AWAITDB_SRC_URL_HPP

#include "secrets.hpp"

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <variant>

namespace awaitdb {
class open_options;
}  // namespace awaitdb

namespace awaitdb::detail {

struct sqlite_options {
  enum class access { read_write_create, read_write, read_only };

  std::string path;  // file path, or ":memory:"
  bool memory = false;
  access mode = access::read_write_create;
  std::chrono::milliseconds busy_timeout{5000};
  std::size_t statement_cache_size = 128;
  bool foreign_keys = true;
  std::string journal_mode = "wal";  // file databases only
  std::size_t readers = 4;           // WAL file databases: reader connections at most
  // Not a URL option: code given to `open` (the session set-up), or null.
  std::shared_ptr<const open_options> hooks;
};

struct postgres_options {
  std::string libpq_url;     // the URL libpq sees: awaitdb's options removed
  std::string display_name;  // the URL with any password hidden, for messages
  secret_scrubber secrets;   // applied to every message that may quote the URL
  std::size_t pool_max_size = 10;
  std::chrono::milliseconds pool_acquire_timeout{10000};
  std::chrono::milliseconds connect_timeout{10000};
  std::chrono::milliseconds statement_timeout{0};  // 0: none
  bool named_statements = true;
  // Behind a transaction-pooling proxy (PgBouncer `pool_mode = transaction`): no session state
  // (named statements off unless asked for, no session `SET`), cancellation by CancelRequest
  // to the proxy, which knows which server connection runs the statement.
  bool pgbouncer = false;
  // db.replica() statements outside transactions go to a second pool, on a standby of the
  // URL's hosts (target_session_attrs=prefer-standby).
  bool replica_reads = false;
  // Not a URL option: stands for the URL's target_session_attrs (the replica pool's).
  std::string session_attrs;
  std::size_t statement_cache_size = 256;
  bool pipeline = true;
  std::size_t pipeline_depth = 32;  // statements in flight on one connection before another
  // A shared connection whose oldest statement has run this long gets no more statements while
  // another connection can be used or opened (0: never passed over).
  std::chrono::milliseconds stall_threshold{5};
  // Pool upkeep (see pool_options).
  std::size_t pool_min_size = 0;
  std::chrono::milliseconds pool_max_lifetime{0};
  std::chrono::milliseconds pool_idle_timeout{0};
  std::chrono::milliseconds connect_backoff{20};
  std::chrono::milliseconds connect_backoff_max{500};
  // Not in the URL: a connection lost within this long of its open counts as a failed one.
  std::chrono::milliseconds connect_probation{1000};
  // Not a URL option: code given to `open` (password provider, session set-up), or null.
  std::shared_ptr<const open_options> hooks;
};

using database_options = std::variant<sqlite_options, postgres_options>;

/// Parses a database URL. Throws `awaitdb::error` (08000) naming the problem; the message never
/// contains a password.
database_options parse_url(std::string_view url);

/// `url` with every spelling of a password in it replaced by "***" (see secret_scrubber).
std::string redact_url(std::string_view url);

}  // namespace awaitdb::detail

#endif  // AWAITDB_SRC_URL_HPP
