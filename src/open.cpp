// `open`: the one place that parses a URL and picks an engine, and so the only file that knows
// both.
#include "postgres/pg_backend.hpp"
#include "sqlite/sqlite_backend.hpp"
#include "url.hpp"
#include <awaitdb/database.hpp>

#include <boost/asio/this_coro.hpp>

namespace awaitdb {

namespace asio = boost::asio;

asio::awaitable<database> open(std::string_view url) {
  detail::database_options options = detail::parse_url(url);
  if (auto* sqlite = std::get_if<detail::sqlite_options>(&options))
    co_return database(detail::open_sqlite(*sqlite));
  auto ex = co_await asio::this_coro::executor;
  co_return database(
      co_await detail::open_postgres(ex, std::get<detail::postgres_options>(options)));
}

}  // namespace awaitdb
