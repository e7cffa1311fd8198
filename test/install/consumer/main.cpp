// Built against the installed package: opens SQLite, writes, reads back, and checks it.
#include <awaitdb/awaitdb.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <cstdio>

int main() {
  boost::asio::io_context io;
  int status = 1;
  boost::asio::co_spawn(
      io,
      [&]() -> boost::asio::awaitable<void> {
        awaitdb::database db = co_await awaitdb::open("sqlite::memory:");
        co_await db.execute("CREATE TABLE t (v TEXT)");
        co_await db.execute("INSERT INTO t VALUES ($1)", "installed");
        auto r = co_await db.query("SELECT v FROM t");
        status = r[0].get<std::string>(0) == "installed" ? 0 : 2;
      },
      [&](std::exception_ptr e) {
        if (e) status = 3;
      });
  io.run();
  std::printf("consumer: %s\n", status == 0 ? "ok" : "failed");
  return status;
}
