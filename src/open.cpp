// `open`: the one place that parses a URL and picks an engine, and so the only file that knows
// both.
#include "postgres/pg_backend.hpp"
#include "sqlite/sqlite_backend.hpp"
#include "url.hpp"
#include <awaitdb/database.hpp>

#include <boost/asio/this_coro.hpp>

namespace awaitdb {

namespace asio = boost::asio;

namespace {

asio::awaitable<database> open_database(std::string url,
                                        std::shared_ptr<const open_options> hooks) {
  detail::database_options options = detail::parse_url(url);
  if (auto* sqlite = std::get_if<detail::sqlite_options>(&options)) {
    sqlite->hooks = std::move(hooks);
    co_return database(detail::open_sqlite(*sqlite));
  }
  auto& postgres = std::get<detail::postgres_options>(options);
  postgres.hooks = std::move(hooks);
  auto ex = co_await asio::this_coro::executor;
  co_return database(co_await detail::open_postgres(ex, postgres));
}

}  // namespace

asio::awaitable<database> open(std::string_view url) {
  return open_database(std::string(url), nullptr);
}

asio::awaitable<database> open(std::string_view url, open_options options) {
  std::shared_ptr<const open_options> hooks;
  if (options.password() || options.on_connect())
    hooks = std::make_shared<const open_options>(std::move(options));
  return open_database(std::string(url), std::move(hooks));
}

}  // namespace awaitdb
