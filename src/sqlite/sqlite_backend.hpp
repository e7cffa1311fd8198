#ifndef AWAITDB_SRC_SQLITE_SQLITE_BACKEND_HPP
#define AWAITDB_SRC_SQLITE_SQLITE_BACKEND_HPP

#include "../backend.hpp"
#include "../url.hpp"

#include <memory>

namespace awaitdb::detail {

/// Opens an SQLite database (inline: opening a file does not wait on the network).
std::shared_ptr<backend> open_sqlite(const sqlite_options& options);

}  // namespace awaitdb::detail

#endif  // AWAITDB_SRC_SQLITE_SQLITE_BACKEND_HPP
