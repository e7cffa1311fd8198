// Following a channel with LISTEN/NOTIFY: prints what arrives, and says when notifications may
// have been missed (the listening connection was lost and awaitdb listened again).
//
//   follow POSTGRES_URL CHANNEL [COUNT]
//
// With COUNT, it stops after that many notifications, and sends them itself first (a
// demonstration without a second program).
#include <awaitdb/awaitdb.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

namespace asio = boost::asio;

asio::awaitable<void> follow(std::string url, std::string channel, long count) {
  awaitdb::database db = co_await awaitdb::open(url);
  awaitdb::subscription sub = co_await db.listen(channel);
  for (long i = 1; i <= count; ++i)
    co_await db.execute("SELECT pg_notify($1, $2)", channel, "hello " + std::to_string(i));
  for (long seen = 0; count == 0 || seen < count;) {
    awaitdb::notification n = co_await sub.next();
    if (n.gap) {
      std::printf("(reconnected: notifications may have been missed; read the state again)\n");
      continue;
    }
    std::printf("%s: %s (from server process %d)\n", n.channel.c_str(), n.payload.c_str(),
                static_cast<int>(n.sender_pid));
    std::fflush(stdout);
    ++seen;
  }
  co_await db.close();
}

int main(int argc, char** argv) {
  if (argc != 3 && argc != 4) {
    std::fprintf(stderr, "usage: follow POSTGRES_URL CHANNEL [COUNT]\n");
    return 2;
  }
  const long count = argc == 4 ? std::strtol(argv[3], nullptr, 10) : 0;
  asio::io_context io;
  int status = 0;
  auto done = [&](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      std::fprintf(stderr, "follow: %s\n", x.what());
      status = 1;
    }
  };
  asio::co_spawn(io, follow(argv[1], argv[2], count), done);
  io.run();
  return status;
}
