// The vault's HTTP side: a Beast server whose handlers co_await the database.
#ifndef VAULT_SERVER_HPP
#define VAULT_SERVER_HPP

#include <awaitdb/awaitdb.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <cstdint>
#include <memory>
#include <string>

namespace vault {

struct server_options {
  std::string address = "127.0.0.1";
  std::uint16_t port = 8080;
  std::size_t body_limit = 64 * 1024;  // larger request bodies get 413
};

/// Accepts HTTP/1.1 connections and serves the vault's JSON API until `stop()`.
class server {
 public:
  server(boost::asio::any_io_executor executor, awaitdb::database db, server_options options);
  ~server();

  /// Binds and listens; returns the port actually bound (useful with port 0).
  std::uint16_t listen();
  /// Accepts connections until `stop`, then waits for the requests in flight to finish.
  boost::asio::awaitable<void> run();
  /// Stops accepting, closes idle connections; requests in flight finish. Thread-safe.
  void stop();

 private:
  struct impl;
  std::shared_ptr<impl> impl_;
};

}  // namespace vault

#endif  // VAULT_SERVER_HPP
