// Several hosts: a first host that never answers, a streaming standby that reads go to, and
// failover to it when the primary stops. The primary and the standby are clusters of each test's
// own, made with scripts/pg-cluster (AWAITDB_TEST_PG_CLUSTER).
#include "postgres/pg_support.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>

namespace awaitdb::test {
namespace {

using std::chrono::milliseconds;

long long ms_since(clock::time_point start) {
  return std::chrono::duration_cast<milliseconds>(clock::now() - start).count();
}

// "127.0.0.1:PORT" of a URL that scripts/pg-cluster printed.
std::string host_port_of(const std::string& url) {
  auto at = url.find('@');
  return url.substr(at + 1, url.find('/', at) - at - 1);
}

// A first host that accepts connections (the kernel completes them) and never answers, like a
// frozen server: the connect timeout applies to each host, so the next one is tried in time.
TEST_F(postgres, a_silent_first_host_costs_one_connect_timeout_not_the_connection) {
  run([&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    asio::ip::tcp::acceptor silent(ex, {asio::ip::make_address("127.0.0.1"), 0});
    const std::string silent_host = "127.0.0.1:" + std::to_string(silent.local_endpoint().port());
    std::string multi = url_;
    multi.replace(multi.find(host_port()), host_port().size(), silent_host + "," + host_port());
    const auto start = clock::now();
    database db = co_await open(with_options(multi, "connect_timeout=1&pool_max_size=2"));
    const long long took = ms_since(start);
    std::printf("[ hosts   ] a silent first host, connect_timeout=1: connected after %lld ms\n",
                took);
    EXPECT_GE(took, 900);
    EXPECT_LT(took, 3000);
    EXPECT_EQ(co_await db.query_scalar<std::int32_t>("SELECT 7"), 7);
    // With several hosts, a cancel goes by CancelRequest to the connection's own host.
    database observer = co_await open(url_);
    auto sleeper = [&]() -> asio::awaitable<void> { co_await db.query("SELECT pg_sleep(30)"); };
    const auto cancel_start = clock::now();
    EXPECT_EQ(co_await bounded(milliseconds(200), sleeper), outcome::timed_out);
    const auto gone = co_await time_until_gone(observer, milliseconds(5000));
    EXPECT_LT(gone, milliseconds(1000)) << "cancelled after " << ms_since(cancel_start) << " ms";
    EXPECT_EQ(co_await db.query_scalar<std::int32_t>("SELECT 8"), 8);
    co_await db.close();
    co_await observer.close();
  });
}

// A primary and a streaming standby of its own.
class replication : public testing::Test {
 protected:
  void SetUp() override {
    const char* script = std::getenv("AWAITDB_TEST_PG_CLUSTER");
    ASSERT_TRUE(script) << "AWAITDB_TEST_PG_CLUSTER is not set: run the tests with scripts/test";
    script_ = script;
    char pattern[] = "/tmp/awaitdb-replication.XXXXXX";
    ASSERT_TRUE(::mkdtemp(pattern));
    dir_ = pattern;
    // (The server runs as another user when the tests run as root.)
    std::filesystem::permissions(
        dir_, std::filesystem::perms::owner_all | std::filesystem::perms::group_read |
                  std::filesystem::perms::group_exec | std::filesystem::perms::others_read |
                  std::filesystem::perms::others_exec);
    primary_ = output_of("start " + dir_ + "/primary");
    ASSERT_FALSE(primary_.empty()) << "the primary did not start";
    standby_ = output_of("standby " + dir_ + "/standby " + dir_ + "/primary");
    ASSERT_FALSE(standby_.empty()) << "the standby did not start";
  }
  void TearDown() override {
    if (dir_.empty()) return;
    cluster("stop " + dir_ + "/standby");
    cluster("stop " + dir_ + "/primary");
    std::filesystem::remove_all(dir_);
  }

  // Blocking: call it off the event loop.
  int cluster(const std::string& args) const {
    return std::system((script_ + " " + args + " >/dev/null 2>&1").c_str());
  }
  // Its standard output; its error output goes to the test's (a failed start says why).
  std::string output_of(const std::string& args) const {
    std::string out;
    if (FILE* p = ::popen((script_ + " " + args).c_str(), "r")) {
      char buffer[512];
      while (std::fgets(buffer, sizeof buffer, p))
        out += buffer;
      ::pclose(p);
    }
    while (!out.empty() && (out.back() == '\n' || out.back() == '\r'))
      out.pop_back();
    return out;
  }
  // Both servers, primary first, with `options`.
  std::string pair_url(const std::string& options) const {
    std::string url = primary_;
    url.replace(url.find(host_port_of(primary_)), host_port_of(primary_).size(),
                host_port_of(primary_) + "," + host_port_of(standby_));
    return url + "?" + options;
  }

  std::string script_, dir_, primary_, standby_;
};

TEST_F(replication, reads_through_replica_go_to_the_standby_and_the_rest_to_the_primary) {
  run(
      [&]() -> asio::awaitable<void> {
        database db = co_await open(
            pair_url("target_session_attrs=read-write&replica_reads=on&connect_timeout=2"));
        database reads = db.replica();
        const char* in_recovery = "SELECT pg_is_in_recovery()";
        EXPECT_FALSE(co_await db.query_scalar<bool>(in_recovery));
        EXPECT_TRUE(co_await reads.query_scalar<bool>(in_recovery));
        EXPECT_TRUE((co_await reads.query(in_recovery))[0].get<bool>(0));

        // Writes reach the standby after a delay: a read through it may lag.
        co_await db.execute("CREATE TABLE replicated (id int)");
        co_await db.execute("INSERT INTO replicated SELECT generate_series(1, 100)");
        const auto start = clock::now();
        std::int64_t seen = -1;
        while (ms_since(start) < 10000) {
          try {
            seen = co_await reads.query_scalar<std::int64_t>("SELECT count(*) FROM replicated");
          } catch (const error& e) {
            EXPECT_EQ(e.sqlstate(), "42P01") << e.what();  // not replayed yet
          }
          if (seen == 100) break;
          co_await sleep_for(milliseconds(10));
        }
        EXPECT_EQ(seen, 100);
        std::printf("[ replica ] 100 rows visible on the standby after %lld ms\n", ms_since(start));

        // Outside a transaction a standby refuses writes; inside one, the replica handle runs
        // on the transaction's connection, on the primary.
        co_await expect_sqlstate("25006", [&]() -> asio::awaitable<void> {
          co_await reads.execute("INSERT INTO replicated VALUES (0)");
        });
        co_await db.transaction([&]() -> asio::awaitable<void> {
          EXPECT_FALSE(co_await reads.query_scalar<bool>(in_recovery));
          co_await reads.execute("INSERT INTO replicated VALUES (101)");
        });
        EXPECT_EQ(co_await db.query_scalar<std::int64_t>("SELECT count(*) FROM replicated"), 101);

        // Without replica_reads, the replica handle is the database itself.
        database plain = co_await open(pair_url("target_session_attrs=read-write"));
        EXPECT_FALSE(co_await plain.replica().query_scalar<bool>(in_recovery));
        co_await plain.close();
        co_await db.close();
      },
      60s);
}

// What eight writing tasks saw while the servers changed under them.
struct write_counts {
  std::atomic<int> ok{0}, hung{0};
  std::atomic<long long> first_ok_after_event_ms{-1};  // after the event's end
  std::mutex mutex;
  std::map<std::string, int> failures;  // by SQLSTATE
  std::string printed() {
    std::lock_guard lock(mutex);
    std::string out;
    for (const auto& [state, count] : failures)
      out += (out.empty() ? "" : ", ") + std::to_string(count) + " x " + state;
    return out.empty() ? "none" : out;
  }
};

// Eight tasks write while `event` (blocking: run on a thread of its own) changes the servers;
// then they write on until a write has succeeded after it, and stop. Returns how long the event
// itself took.
long long write_through(const std::string& url, write_counts& n,
                        const std::function<void()>& event) {
  long long event_ms = -1;
  run(
      [&]() -> asio::awaitable<void> {
        database db = co_await open(url);
        co_await db.execute("CREATE TABLE IF NOT EXISTS failover_t (id serial, task int)");
        auto ex = co_await asio::this_coro::executor;
        std::atomic<bool> stop{false}, over{false};
        std::atomic<int> finished{0};
        clock::time_point over_at;
        auto writer = [&](int task) -> asio::awaitable<void> {
          while (!stop) {
            auto insert = [&]() -> asio::awaitable<void> {
              co_await db.execute("INSERT INTO failover_t (task) VALUES ($1)", task);
            };
            std::exception_ptr failure;
            switch (co_await bounded(milliseconds(15000), insert, &failure)) {
              case outcome::done:
                ++n.ok;
                if (over) {
                  long long expected = -1;
                  n.first_ok_after_event_ms.compare_exchange_strong(expected, ms_since(over_at));
                }
                break;
              case outcome::failed: {
                std::string state = "not an awaitdb::error";
                try {
                  std::rethrow_exception(failure);
                } catch (const error& e) {
                  state = e.sqlstate();
                } catch (...) {
                }
                {
                  std::lock_guard lock(n.mutex);
                  ++n.failures[state];
                }
                co_await sleep_for(milliseconds(10));
                break;
              }
              case outcome::timed_out:
                ++n.hung;
                break;
            }
          }
          ++finished;
        };
        for (int t = 0; t < 8; ++t)
          asio::co_spawn(ex, writer(t), asio::detached);
        co_await sleep_for(milliseconds(300));
        std::atomic<bool> done{false};
        std::thread changing([&] {
          const auto start = clock::now();
          event();
          event_ms = ms_since(start);
          over_at = clock::now();
          over = true;
          done = true;
        });
        while (!done)
          co_await sleep_for(milliseconds(5));
        changing.join();
        while (n.first_ok_after_event_ms < 0 && ms_since(over_at) < 15000)
          co_await sleep_for(milliseconds(10));
        co_await sleep_for(milliseconds(200));
        stop = true;
        const auto stopping_tasks = clock::now();
        while (finished < 8 && ms_since(stopping_tasks) < 20000)
          co_await sleep_for(milliseconds(10));
        EXPECT_EQ(finished, 8);
        EXPECT_FALSE(co_await db.query_scalar<bool>("SELECT pg_is_in_recovery()"));
        EXPECT_GT(co_await db.query_scalar<std::int64_t>("SELECT count(*) FROM failover_t"), 0);
        co_await db.close();
      },
      90s);
  return event_ms;
}

// The primary crashes (stopped at once) and the standby is promoted while eight tasks write:
// with target_session_attrs=read-write the pool finds the new primary. Statements in flight on
// the lost connections fail (08006); none that had not been sent fails (no 08001: they wait
// through the failed attempts, within pool_acquire_timeout_ms), and nothing hangs.
TEST_F(replication, writes_resume_on_the_promoted_standby_and_none_unsent_fails) {
  write_counts n;
  long long promoting = -1;
  const long long event_ms = write_through(
      pair_url("target_session_attrs=read-write&connect_timeout=2&pool_max_size=4"), n, [&] {
        EXPECT_EQ(cluster("kill " + dir_ + "/primary"), 0);
        const auto start = clock::now();
        EXPECT_EQ(cluster("promote " + dir_ + "/standby"), 0);
        promoting = ms_since(start);
      });
  std::printf(
      "[ failover] primary killed, standby promoted (%lld ms, of which promoting %lld ms): "
      "writes served again %lld ms after the promotion; %d ok, failed: %s; %d hung\n",
      event_ms, promoting, n.first_ok_after_event_ms.load(), n.ok.load(), n.printed().c_str(),
      n.hung.load());
  EXPECT_EQ(n.hung, 0);
  EXPECT_EQ(n.failures.count("08001"), 0u) << n.printed();
  EXPECT_GE(n.first_ok_after_event_ms, 0);
  EXPECT_LT(n.first_ok_after_event_ms, 1000);
}

TEST_F(replication, writes_resume_when_the_primary_comes_back_and_none_unsent_fails) {
  write_counts n;
  const long long event_ms =
      write_through(pair_url("target_session_attrs=read-write&connect_timeout=2&pool_max_size=4"),
                    n, [&] { EXPECT_EQ(cluster("restart " + dir_ + "/primary"), 0); });
  std::printf(
      "[ restart ] primary restarted (pg_ctl restart -m fast, %lld ms): writes served again "
      "%lld ms after; %d ok, failed: %s; %d hung\n",
      event_ms, n.first_ok_after_event_ms.load(), n.ok.load(), n.printed().c_str(), n.hung.load());
  EXPECT_EQ(n.hung, 0);
  EXPECT_EQ(n.failures.count("08001"), 0u) << n.printed();
  EXPECT_GE(n.first_ok_after_event_ms, 0);
  EXPECT_LT(n.first_ok_after_event_ms, 1000);
}

}  // namespace
}  // namespace awaitdb::test
