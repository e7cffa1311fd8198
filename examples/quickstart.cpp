// A complete awaitdb program: schema, writes, reads and a transaction, on the database named
// by DATABASE_URL (default: an SQLite file). Prints what it does.
#include <awaitdb/awaitdb.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace asio = boost::asio;

// An ordinary function: inside a transaction its query joins it, with no handle passed.
asio::awaitable<void> audit(const awaitdb::database& db, std::string what) {
  co_await db.execute("INSERT INTO audit (what) VALUES ($1)", what);
}

asio::awaitable<void> quickstart(std::string url) {
  awaitdb::database db = co_await awaitdb::open(url);
  std::printf("opened %s (%s)\n", url.c_str(),
              db.engine() == awaitdb::engine::sqlite ? "sqlite" : "postgres");

  co_await db.execute("DROP TABLE IF EXISTS audit");
  co_await db.execute("DROP TABLE IF EXISTS people");
  co_await db.execute("CREATE TABLE people (id BIGINT PRIMARY KEY, name TEXT NOT NULL)");
  co_await db.execute("CREATE TABLE audit (what TEXT NOT NULL)");

  std::uint64_t added = 0;
  added += co_await db.execute("INSERT INTO people VALUES ($1, $2)", 1, "ada");
  added += co_await db.execute("INSERT INTO people VALUES ($1, $2)", 2, "alan");
  std::printf("inserted %llu people\n", static_cast<unsigned long long>(added));

  int renamed = co_await db.transaction([&]() -> asio::awaitable<int> {
    co_await db.execute("UPDATE people SET name = $1 WHERE id = $2", "grace", 1);
    co_await audit(db, "renamed 1 to grace");
    co_return 1;
  });
  std::printf("transaction committed: renamed %d\n", renamed);

  try {
    co_await db.transaction([&]() -> asio::awaitable<void> {
      co_await audit(db, "about to fail");
      co_await db.execute("INSERT INTO people VALUES ($1, $2)", 2, "duplicate");
    });
  } catch (const awaitdb::error& e) {
    std::printf("transaction rolled back: SQLSTATE %s\n", e.sqlstate().c_str());
  }

  for (const awaitdb::row& row : co_await db.query("SELECT id, name FROM people ORDER BY id"))
    std::printf("  person %lld: %s\n", static_cast<long long>(row.get<std::int64_t>("id")),
                row.get<std::string>("name").c_str());
  for (const awaitdb::row& row : co_await db.query("SELECT what FROM audit"))
    std::printf("  audit: %s\n", row.get<std::string>(0).c_str());
  co_await db.close();
}

int main(int argc, char** argv) {
  const char* env = std::getenv("DATABASE_URL");
  std::string url = argc > 1 ? argv[1] : env && *env ? env : "sqlite:quickstart.db";
  asio::io_context io;
  int status = 0;
  asio::co_spawn(io, quickstart(url), [&](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      std::fprintf(stderr, "quickstart: %s\n", x.what());
      status = 1;
    }
  });
  io.run();
  return status;
}
