// Shared by the PostgreSQL tests: the server under test, and ways to watch it.
#ifndef AWAITDB_TEST_POSTGRES_PG_SUPPORT_HPP
#define AWAITDB_TEST_POSTGRES_PG_SUPPORT_HPP

#include "support.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace awaitdb::test {

using clock = std::chrono::steady_clock;

inline asio::awaitable<void> sleep_for(std::chrono::milliseconds d) {
  asio::steady_timer timer(co_await asio::this_coro::executor, d);
  co_await timer.async_wait(asio::use_awaitable);
}

inline std::string with_options(const std::string& url, std::string_view options) {
  return url + (url.find('?') == std::string::npos ? "?" : "&") + std::string(options);
}

enum class outcome { done, failed, timed_out };

template <class Op>
asio::awaitable<outcome> race_with_timer(std::chrono::milliseconds limit, Op op,
                                         std::exception_ptr* failure) {
  auto ex = co_await asio::this_coro::executor;
  asio::steady_timer timer(ex, limit);
  auto [order, e, timer_ec] =
      co_await asio::experimental::make_parallel_group(asio::co_spawn(ex, op(), asio::deferred),
                                                       timer.async_wait(asio::deferred))
          .async_wait(asio::experimental::wait_for_one(), asio::use_awaitable);
  (void)timer_ec;
  if (order[0] == 1) co_return outcome::timed_out;
  if (failure) *failure = e;
  co_return e ? outcome::failed : outcome::done;
}

/// Runs `op()` (an awaitable) against a timer: whichever ends first wins and the other is
/// cancelled. Unlike Asio's `||`, which waits for the first *success*, a failure ends it at
/// once (`failed`, the exception in `failure` if given). Runs on a strand of the caller's
/// executor, as Asio's cancellation asks on a multi-threaded one.
template <class Op>
asio::awaitable<outcome> bounded(std::chrono::milliseconds limit, Op op,
                                 std::exception_ptr* failure = nullptr) {
  auto strand = asio::make_strand(co_await asio::this_coro::executor);
  auto raced = race_with_timer(limit, std::move(op), failure);
  co_return co_await asio::co_spawn(strand, std::move(raced), asio::use_awaitable);
}

class postgres : public testing::Test {
 protected:
  void SetUp() override {
    auto u = postgres_url();
    ASSERT_TRUE(u) << "AWAITDB_TEST_POSTGRES_URL is not set: run the tests with scripts/test";
    url_ = *u;
  }
  std::string url(std::string_view options) const { return with_options(url_, options); }
  // Through PgBouncer (the suite's second run): server sessions are the pooler's, so a
  // statement's backend pid says nothing about which of our connections ran it.
  bool through_pooler() const { return url_.find("pgbouncer=on") != std::string::npos; }
  // "host:port" of the test server.
  std::string host_port() const {
    auto at = url_.find('@');
    return url_.substr(at + 1, url_.find('/', at) - at - 1);
  }
  std::string url_;
};

/// Statements whose text starts with `prefix` running on the server now.
inline asio::awaitable<std::int64_t> running(const database& observer, std::string prefix) {
  result r = co_await observer.query(
      "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND "
      "starts_with(query, $1)",
      prefix);
  co_return r[0].get<std::int64_t>(0);
}

inline asio::awaitable<std::int64_t> active_sleeps(const database& observer) {
  co_return co_await running(observer, "SELECT pg_sleep(30)");
}

/// Waits (up to `limit`) until no `SELECT pg_sleep(30)` runs on the server; returns how long.
inline asio::awaitable<clock::duration> time_until_gone(const database& observer,
                                                        std::chrono::milliseconds limit) {
  auto start = clock::now();
  while (co_await active_sleeps(observer) > 0 && clock::now() - start < limit)
    co_await sleep_for(std::chrono::milliseconds(10));
  co_return clock::now() - start;
}

/// Waits (up to `limit`) until no statement starting with `prefix` runs; returns how long.
inline asio::awaitable<clock::duration> time_until_none_running(
    const database& observer, std::string prefix, std::chrono::milliseconds limit = 5000ms) {
  auto start = clock::now();
  while (co_await running(observer, prefix) > 0 && clock::now() - start < limit)
    co_await sleep_for(std::chrono::milliseconds(10));
  co_return clock::now() - start;
}

/// Server connections whose application_name is `name`.
inline asio::awaitable<std::int64_t> connections_named(const database& observer, std::string name) {
  result r = co_await observer.query(
      "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", name);
  co_return r[0].get<std::int64_t>(0);
}

}  // namespace awaitdb::test

#endif  // AWAITDB_TEST_POSTGRES_PG_SUPPORT_HPP
