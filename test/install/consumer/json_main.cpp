// Built against the installed package's json component: a JSON value written and read back.
#include <awaitdb/awaitdb.hpp>
#include <awaitdb/json.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <cstdio>

boost::json::value document() {
  return boost::json::object{{"installed", true}};
}

int main() {
  boost::asio::io_context io;
  int status = 1;
  boost::asio::co_spawn(
      io,
      [&]() -> boost::asio::awaitable<void> {
        awaitdb::database db = co_await awaitdb::open("sqlite::memory:");
        const boost::json::value doc = document();
        auto back = co_await db.query_scalar<boost::json::value>("SELECT $1", doc);
        status = back == doc ? 0 : 2;
      },
      [&](std::exception_ptr e) {
        if (e) status = 3;
      });
  io.run();
  std::printf("json consumer: %s\n", status == 0 ? "ok" : "failed");
  return status;
}
