// Shared by the tests: engines to run against, and a bounded way to run a coroutine.
#ifndef AWAITDB_TEST_SUPPORT_HPP
#define AWAITDB_TEST_SUPPORT_HPP

#include <awaitdb/awaitdb.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

/// ASSERT_* returns from the function, which a coroutine cannot: this co_returns instead.
#define CO_ASSERT(condition)                            \
  do {                                                  \
    if (!(condition)) {                                 \
      ADD_FAILURE() << "assertion failed: " #condition; \
      co_return;                                        \
    }                                                   \
  } while (false)

namespace awaitdb::test {

namespace asio = boost::asio;
using namespace std::chrono_literals;

/// The PostgreSQL server the test command started (AWAITDB_TEST_POSTGRES_URL), if any.
inline std::optional<std::string> postgres_url() {
  const char* url = std::getenv("AWAITDB_TEST_POSTGRES_URL");
  if (!url || !*url) return std::nullopt;
  return std::string(url);
}

/// A fresh SQLite file path, removed (with its WAL files) by `remove_sqlite_file`.
inline std::string temp_sqlite_path() {
  static std::atomic<int> counter{0};
  const char* dir = std::getenv("TMPDIR");
  return std::string(dir && *dir ? dir : "/tmp") + "/awaitdb-test-" + std::to_string(::getpid()) +
         "-" + std::to_string(counter++) + ".db";
}

inline void remove_sqlite_file(const std::string& path) {
  for (const char* suffix : {"", "-wal", "-shm", "-journal"})
    std::remove((path + suffix).c_str());
}

/// One engine configuration the behavioural tests run against.
struct engine_case {
  std::string name;  // for test names
  std::string url;
  std::string file;  // an SQLite file to delete afterwards
};

inline std::vector<engine_case> engine_cases() {
  std::vector<engine_case> out;
  out.push_back({"sqlite_memory", "sqlite::memory:", ""});
  std::string path = temp_sqlite_path();
  out.push_back({"sqlite_file", "sqlite:" + path, path});
  if (auto url = postgres_url()) out.push_back({"postgres", *url, ""});
  return out;
}

inline std::string engine_case_name(const testing::TestParamInfo<engine_case>& info) {
  return info.param.name;
}

/// Runs `body()` to completion on a fresh io_context with `threads` threads, within `limit`.
/// Fails the test if it does not finish in time (a hang is a failure) or if it leaves work
/// behind; rethrows what the body threw.
inline void run(std::function<asio::awaitable<void>()> body, std::chrono::milliseconds limit = 30s,
                int threads = 1) {
  asio::io_context io(threads);
  std::exception_ptr failure;
  std::atomic<bool> done{false};
  asio::co_spawn(io, body(), [&](std::exception_ptr e) {
    failure = e;
    done = true;
  });
  std::vector<std::thread> extra;
  for (int i = 1; i < threads; ++i)
    extra.emplace_back([&] { io.run_for(limit); });
  io.run_for(limit);
  for (auto& t : extra)
    t.join();
  ASSERT_TRUE(done) << "the test coroutine did not finish within " << limit.count() << " ms";
  EXPECT_TRUE(io.stopped()) << "work was left behind on the io_context";
  if (failure) std::rethrow_exception(failure);
}

/// Expects `op` to throw `awaitdb::error` with `state`; returns the error's message.
template <class Op>
asio::awaitable<std::string> expect_sqlstate(std::string_view state, Op op) {
  try {
    co_await op();
  } catch (const awaitdb::error& e) {
    EXPECT_EQ(e.sqlstate(), state) << e.what();
    co_return std::string(e.what());
  }
  ADD_FAILURE() << "expected an awaitdb::error with SQLSTATE " << state;
  co_return std::string();
}

/// A test run once per engine case (SQLite memory, SQLite file, PostgreSQL), each on a
/// database with one table of its own.
class engine_test : public testing::TestWithParam<engine_case> {
 protected:
  void TearDown() override {
    if (!GetParam().file.empty()) remove_sqlite_file(GetParam().file);
  }
  bool pg() const { return GetParam().name == "postgres"; }
  /// Opens the database, creates `table` with `columns` (dropping an old one), runs `body`,
  /// drops the table and closes.
  void with_table(const std::string& table, const std::string& columns,
                  std::function<asio::awaitable<void>(database&)> body) {
    run([&]() -> asio::awaitable<void> {
      database db = co_await open(GetParam().url);
      co_await db.execute("DROP TABLE IF EXISTS " + table);
      co_await db.execute("CREATE TABLE " + table + " " + columns);
      co_await body(db);
      co_await db.execute("DROP TABLE IF EXISTS " + table);
      co_await db.close();
    });
  }
};

}  // namespace awaitdb::test

#endif  // AWAITDB_TEST_SUPPORT_HPP
