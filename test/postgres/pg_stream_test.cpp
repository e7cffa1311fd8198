// Row streams on PostgreSQL: memory stays bounded over millions of rows, a failure arrives
// after the rows before it, and a cancelled stream stops on the server.
#include "postgres/pg_support.hpp"
#include <awaitdb/timeout.hpp>

#include <fstream>

namespace awaitdb::test {
namespace {

using std::chrono::milliseconds;

#if defined(__SANITIZE_ADDRESS__)
constexpr bool address_sanitizer = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool address_sanitizer = true;
#else
constexpr bool address_sanitizer = false;
#endif
#else
constexpr bool address_sanitizer = false;
#endif

// A field of /proc/self/status, in kB.
long status_kb(const std::string& field) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.starts_with(field + ":")) return std::stol(line.substr(field.size() + 1));
  return -1;
}

TEST_F(postgres, five_million_rows_stream_in_bounded_memory) {
  // (AddressSanitizer keeps freed memory in quarantine, 256 MB by default, so the resident size
  // says nothing there; and it is 20 times slower: a million rows check the rest.)
  constexpr std::int64_t rows = address_sanitizer ? 1'000'000 : 5'000'000;
  long before_kb = 0, peak_kb = 0;
  std::int64_t seen = 0, sum = 0;
  const auto start = clock::now();
  run(
      [&]() -> asio::awaitable<void> {
        database db = co_await open(url_);
        // The peak resident size from here on (writing 5 resets it; Linux 4.0 and later).
        std::ofstream("/proc/self/clear_refs") << "5";
        before_kb = status_kb("VmRSS");
        row_stream s = co_await db.stream(
            "SELECT g, 'row number ' || g FROM generate_series(1, $1::bigint) g", rows);
        while (std::optional<row> r = co_await s.next()) {
          ++seen;
          sum += r->get<std::int64_t>(0);
          if (seen == 1) {
            EXPECT_EQ(r->get<std::string>(1), "row number 1");
          }
        }
        peak_kb = status_kb("VmHWM");
        co_await db.close();
      },
      600s);
  const long long took = std::chrono::duration_cast<milliseconds>(clock::now() - start).count();
  // The result whole would take several hundred MB in libpq (psql needs ~700 MB for it).
  std::printf("[ stream  ] %lld rows in %lld ms; peak resident size %ld kB above the start\n",
              static_cast<long long>(seen), took, peak_kb - before_kb);
  EXPECT_EQ(seen, rows);
  EXPECT_EQ(sum, rows * (rows + 1) / 2);
  EXPECT_GT(before_kb, 0);
  if (!address_sanitizer) {
    EXPECT_LT(peak_kb - before_kb, 64 * 1024);
  }
}

TEST_F(postgres, a_stream_fails_where_the_statement_fails) {
  run([&]() -> asio::awaitable<void> {
    database db = co_await open(url_);
    row_stream s = co_await db.stream("SELECT 10 / (5 - g) FROM generate_series(1, 10) g");
    int rows = 0;
    co_await expect_sqlstate("22012", [&]() -> asio::awaitable<void> {
      while (co_await s.next())
        ++rows;
    });
    EXPECT_EQ(rows, 4);
    EXPECT_FALSE(co_await s.next());  // over
    EXPECT_EQ(co_await db.query_scalar<std::int32_t>("SELECT 3"), 3);
    co_await db.close();
  });
}

TEST_F(postgres, a_cancelled_stream_stops_on_the_server) {
  run([&]() -> asio::awaitable<void> {
    database db = co_await open(url("pool_max_size=2"));
    database observer = co_await open(url_);
    row_stream s = co_await db.stream("SELECT pg_sleep(30)");
    co_await expect_sqlstate("57014", [&]() -> asio::awaitable<void> {
      co_await with_timeout(milliseconds(200), s.next());
    });
    EXPECT_LT(co_await time_until_gone(observer, milliseconds(5000)), milliseconds(1000));
    EXPECT_FALSE(co_await s.next());  // over
    // Both connections serve again.
    auto a = db.query_scalar<std::int32_t>("SELECT 1");
    auto b = db.query_scalar<std::int32_t>("SELECT 2");
    EXPECT_EQ(co_await std::move(a), 1);
    EXPECT_EQ(co_await std::move(b), 2);
    co_await observer.close();
    co_await db.close();
  });
}

// Streams read by tasks on a 2-thread io_context: each gets its own rows whole, in order; one
// abandoned half-way leaves the pool serving.
TEST_F(postgres, streams_read_on_two_threads) {
  std::atomic<int> complete{0};
  run(
      [&]() -> asio::awaitable<void> {
        database db = co_await open(url("pool_max_size=4"));
        auto ex = co_await asio::this_coro::executor;
        constexpr std::int64_t rows = 50'000;
        auto reader = [&](std::int64_t offset) -> asio::awaitable<void> {
          row_stream s = co_await db.stream(
              "SELECT g + $1::bigint FROM generate_series(1, $2::bigint) g", offset, rows);
          std::int64_t n = 0, sum = 0;
          while (std::optional<row> r = co_await s.next()) {
            ++n;
            if (r->get<std::int64_t>(0) != offset + n) ADD_FAILURE() << "out of order at " << n;
            sum += r->get<std::int64_t>(0);
          }
          EXPECT_EQ(n, rows);
          EXPECT_EQ(sum, rows * offset + rows * (rows + 1) / 2);
          ++complete;
        };
        auto quitter = [&]() -> asio::awaitable<void> {
          row_stream s = co_await db.stream("SELECT g FROM generate_series(1, 1000000) g");
          for (int i = 0; i < 100; ++i)
            co_await s.next();
          ++complete;
        };
        std::atomic<int> finished{0};
        auto count = [&](std::exception_ptr e) {
          if (e) ADD_FAILURE() << "a stream task failed";
          ++finished;
        };
        for (std::int64_t t = 0; t < 4; ++t)
          asio::co_spawn(ex, reader(t * 1'000'000), count);
        asio::co_spawn(ex, quitter(), count);
        while (finished < 5)
          co_await sleep_for(milliseconds(5));
        EXPECT_EQ(co_await db.query_scalar<std::int32_t>("SELECT 9"), 9);
        co_await db.close();
      },
      60s, 2);
  EXPECT_EQ(complete, 5);
}

}  // namespace
}  // namespace awaitdb::test
