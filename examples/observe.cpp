// Observing a database: every statement logged with its duration, rows and outcome, tagged with
// the request that ran it; counters read at the end. Runs on the database named by DATABASE_URL
// (default: an SQLite file); on PostgreSQL, server notices are logged too.
#include <awaitdb/awaitdb.hpp>
#include <awaitdb/observer.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace asio = boost::asio;

// Plain logging: one line per statement. (A real service would hand these to its logger, or
// record spans; keep the hooks short, they run on the task's thread.)
class log_observer : public awaitdb::statement_metrics {
 public:
  void statement_finished(const awaitdb::statement_event& e) noexcept override {
    statement_metrics::statement_finished(e);  // keep the counters too
    std::printf("[%.*s] %.*s: %lld us, %llu rows%s%.*s%s\n", static_cast<int>(e.label.size()),
                e.label.data(), static_cast<int>(e.sql.size()), e.sql.data(),
                static_cast<long long>(e.duration.count() / 1000),
                static_cast<unsigned long long>(e.rows), e.sqlstate.empty() ? "" : ", failed ",
                static_cast<int>(e.sqlstate.size()), e.sqlstate.data(),
                e.in_transaction ? " (in a transaction)" : "");
  }
  void notice(const awaitdb::notice_event& e) noexcept override {
    statement_metrics::notice(e);
    std::printf("server %.*s: %.*s\n", static_cast<int>(e.severity.size()), e.severity.data(),
                static_cast<int>(e.message.size()), e.message.data());
  }
};

// One "request": everything it runs carries its label, inside the transaction too.
asio::awaitable<void> handle(const awaitdb::database& db, int id) {
  co_await db.transaction([&]() -> asio::awaitable<void> {
    co_await db.execute("INSERT INTO visits (who) VALUES ($1)", "visitor " + std::to_string(id));
    co_await db.query("SELECT count(*) FROM visits");
  });
  try {
    co_await db.query("SELECT * FROM missing_table");
  } catch (const awaitdb::error&) {
    // (logged by the observer)
  }
}

asio::awaitable<void> observe(std::string url) {
  awaitdb::database db = co_await awaitdb::open(url);
  auto watcher = std::make_shared<log_observer>();
  db.set_observer(watcher);
  co_await db.execute("DROP TABLE IF EXISTS visits");
  co_await db.execute("CREATE TABLE visits (who TEXT NOT NULL)");
  for (int id = 1; id <= 2; ++id)
    co_await awaitdb::with_label("request-" + std::to_string(id), handle(db, id));
  const awaitdb::statement_metrics::snapshot m = watcher->read();
  std::printf("%llu statements, %llu failed; latency p50 <= %lld us, p99 <= %lld us\n",
              static_cast<unsigned long long>(m.statements),
              static_cast<unsigned long long>(m.failures),
              static_cast<long long>(m.latency.quantile(0.5).count() / 1000),
              static_cast<long long>(m.latency.quantile(0.99).count() / 1000));
  for (const auto& [sqlstate_class, count] : m.failures_by_class)
    std::printf("  class %s: %llu\n", sqlstate_class.c_str(),
                static_cast<unsigned long long>(count));
  co_await db.execute("DROP TABLE visits");
  co_await db.close();
}

int main(int argc, char** argv) {
  const char* env = std::getenv("DATABASE_URL");
  std::string url = argc > 1 ? argv[1] : env && *env ? env : "sqlite:observe.db";
  asio::io_context io;
  int status = 0;
  asio::co_spawn(io, observe(url), [&](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      std::fprintf(stderr, "observe: %s\n", x.what());
      status = 1;
    }
  });
  io.run();
  return status;
}
