// Opening an SQLite connection with the session set-up given to `open` (open_options::
// on_connect) run on it: the writer, each reader and each stream connection, when opened.
#ifndef AWAITDB_SRC_SQLITE_SQLITE_SESSION_HPP
#define AWAITDB_SRC_SQLITE_SQLITE_SESSION_HPP

#include "sqlite_connection.hpp"

#include <memory>

namespace awaitdb::detail {

/// A new connection of role `r`, set up. The set-up runs inline, to completion (its statements
/// complete without suspending); if it throws, or waits for anything else, the connection is
/// closed and this throws `awaitdb::error` 08001.
std::unique_ptr<sqlite_connection> open_sqlite_connection(
    const sqlite_options& options, sqlite_connection::role r,
    std::shared_ptr<const sqlite_functions> functions = nullptr);

}  // namespace awaitdb::detail

#endif  // AWAITDB_SRC_SQLITE_SQLITE_SESSION_HPP
