// The program at the top of README.md (a test keeps the two identical).
#include <awaitdb/awaitdb.hpp>

#include <boost/asio.hpp>

#include <cstdio>

namespace asio = boost::asio;

// An ordinary helper: inside a transaction, its statement joins it. No handle is passed.
asio::awaitable<void> audit(const awaitdb::database& db, std::string what) {
  co_await db.execute("INSERT INTO audit (what) VALUES ($1)", what);
}

asio::awaitable<void> run() {
  // "sqlite:app.db", "sqlite::memory:", "postgresql://user@127.0.0.1:5432/app"
  awaitdb::database db = co_await awaitdb::open("sqlite::memory:");
  co_await db.execute("CREATE TABLE t (id BIGINT PRIMARY KEY, name TEXT NOT NULL)");
  co_await db.execute("CREATE TABLE audit (what TEXT)");
  co_await db.execute("INSERT INTO t VALUES ($1, $2)", 1, "ada");

  int changed = co_await db.transaction([&]() -> asio::awaitable<int> {
    co_await db.execute("UPDATE t SET name = $1 WHERE id = $2", "grace", 1);
    co_await audit(db, "renamed 1");  // runs on the transaction's connection
    co_return 1;
  });  // committed; an exception would have rolled back

  for (const awaitdb::row& row : co_await db.query("SELECT id, name FROM t"))
    std::printf("%lld %s (%d changed)\n", static_cast<long long>(row.get<std::int64_t>("id")),
                row.get<std::string>("name").c_str(), changed);
  co_await db.close();
}

int main() {
  asio::io_context io;
  asio::co_spawn(io, run(), [](std::exception_ptr e) {
    if (e) std::rethrow_exception(e);
  });
  io.run();
}
