#ifndef AWAITDB_SRC_POSTGRES_PG_BACKEND_HPP
#define AWAITDB_SRC_POSTGRES_PG_BACKEND_HPP

#include "../backend.hpp"
#include "../url.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <memory>

namespace awaitdb::detail {

/// Opens a PostgreSQL pool on `executor`, connecting its first connection before returning.
boost::asio::awaitable<std::shared_ptr<backend>> open_postgres(
    boost::asio::any_io_executor executor, const postgres_options& options);

}  // namespace awaitdb::detail

#endif  // AWAITDB_SRC_POSTGRES_PG_BACKEND_HPP
