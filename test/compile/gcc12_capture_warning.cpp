// Compiled (not run) by the test `gcc12_capture_warning` (see gcc12_capture_warning.cmake):
// the spelling g++ 12 miscompiles draws a warning naming the bug from g++ 12 alone.
#include <awaitdb/awaitdb.hpp>

#include <memory>

namespace asio = boost::asio;

asio::awaitable<int> risky(awaitdb::database db) {
  auto keep = std::make_shared<int>(1);
  co_return co_await db.transaction([db, keep]() -> asio::awaitable<int> {
    co_await db.execute("SELECT $1", *keep);
    co_return *keep;
  });
}
