// vault: a small team inventory over HTTP/JSON. Every handler co_awaits the database; the
// engine is chosen by configuration (DATABASE_URL or --database; default: an SQLite file).
#include "server.hpp"
#include "store.hpp"
#include <awaitdb/awaitdb.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <charconv>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;

namespace {

[[noreturn]] void usage(const char* problem) {
  std::fprintf(stderr,
               "vault: %s\n"
               "usage: vault [--database URL] [--address ADDRESS] [--port PORT] [--threads N]\n"
               "  --database  sqlite:PATH, sqlite::memory: or postgresql://... "
               "(default: $DATABASE_URL, else sqlite:vault.db)\n",
               problem);
  std::exit(2);
}

long number(const char* text, long min, long max, const char* what) {
  long v = 0;
  auto [end, ec] = std::from_chars(text, text + std::strlen(text), v);
  if (ec != std::errc() || *end || v < min || v > max) usage(what);
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  vault::server_options options;
  const char* env = std::getenv("DATABASE_URL");
  std::string url = env && *env ? env : "sqlite:vault.db";
  int threads = 1;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (i + 1 >= argc) usage("every option takes a value");
    const char* value = argv[++i];
    if (arg == "--database")
      url = value;
    else if (arg == "--address")
      options.address = value;
    else if (arg == "--port")
      options.port = static_cast<std::uint16_t>(number(value, 0, 65535, "bad --port"));
    else if (arg == "--threads")
      threads = static_cast<int>(number(value, 1, 256, "bad --threads"));
    else
      usage("unknown option");
  }

  asio::io_context io(threads);
  asio::signal_set signals(io, SIGINT, SIGTERM);
  int status = 0;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        awaitdb::database db = co_await awaitdb::open(url);
        co_await db.migrate(vault::schema());  // (each instance: applied once, by the first)
        vault::server server(io.get_executor(), db, options);
        std::uint16_t port = server.listen();
        std::printf("listening on http://%s:%u\n", options.address.c_str(), port);
        std::fflush(stdout);
        signals.async_wait([&](boost::system::error_code ec, int) {
          if (!ec) server.stop();
        });
        co_await server.run();  // returns once stopped and the requests in flight are done
        signals.cancel();
        co_await db.close();
        std::fprintf(stderr, "vault: stopped\n");
      },
      [&](std::exception_ptr e) {
        signals.cancel();
        if (!e) return;
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& x) {
          std::fprintf(stderr, "vault: %s\n", x.what());
        }
        status = 1;
      });
  std::vector<std::thread> pool;
  for (int i = 1; i < threads; ++i)
    pool.emplace_back([&] { io.run(); });
  io.run();
  for (auto& t : pool)
    t.join();
  return status;
}
