// A server restarted, or down, under load: on a private cluster of the test's own, which the
// test command starts (AWAITDB_TEST_PRIVATE_POSTGRES_URL) and the test restarts with
// scripts/pg-cluster (AWAITDB_TEST_PG_CLUSTER, AWAITDB_TEST_PRIVATE_CLUSTER_DIR).
#include "postgres/pg_support.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>

#include <cstdlib>
#include <thread>

namespace awaitdb::test {
namespace {

using namespace boost::asio::experimental::awaitable_operators;
using std::chrono::milliseconds;

class private_cluster : public testing::Test {
 protected:
  void SetUp() override {
    const char* u = std::getenv("AWAITDB_TEST_PRIVATE_POSTGRES_URL");
    const char* script = std::getenv("AWAITDB_TEST_PG_CLUSTER");
    const char* dir = std::getenv("AWAITDB_TEST_PRIVATE_CLUSTER_DIR");
    ASSERT_TRUE(u && script && dir)
        << "the private cluster is not set up: run the tests with scripts/test";
    url_ = u;
    command_ = std::string(script) + " %s " + dir;
  }

 public:
  // Runs scripts/pg-cluster `what` on the private cluster (blocking: call it off the loop).
  int cluster(const char* what) const {
    char buffer[1024];
    std::snprintf(buffer, sizeof buffer, command_.c_str(), what);
    return std::system(buffer);
  }
  std::string url_, command_;
};

struct load_counts {
  std::atomic<int> ok{0}, failed{0}, hung{0};  // (two threads)
};

// One task's work until `stop`: statements, transactions, each bounded by a 10 s timer.
asio::awaitable<void> keep_busy(const database& db, int task, const std::atomic<bool>& stop,
                                load_counts& n, std::atomic<int>& finished) {
  for (int i = 0; !stop; ++i) {
    {
      auto op = [&]() -> asio::awaitable<void> {
        if ((task + i) % 2 == 0) {
          co_await db.query("SELECT $1::int", i);
        } else {
          co_await db.transaction([&]() -> asio::awaitable<void> {
            co_await db.execute("INSERT INTO restart_t (task) VALUES ($1)", task);
            co_await db.query("SELECT count(*) FROM restart_t");
          });
        }
      };
      // (A failure ends it at once: the server going away is expected while it restarts.)
      switch (co_await bounded(milliseconds(10000), op)) {
        case outcome::done:
          ++n.ok;
          break;
        case outcome::failed:
          ++n.failed;
          break;
        case outcome::timed_out:
          ++n.hung;
          break;
      }
    }
    if (n.failed > 0 && i % 8 == 0) co_await sleep_for(milliseconds(2));
  }
  ++finished;
}

// 3. `pg_ctl restart -m fast` while 16 tasks run statements and transactions hung 6-8
//    pipelined operations until a 10 s bound.
TEST_F(private_cluster, a_restart_under_load_hangs_nothing_and_the_pool_recovers) {
  struct mode {
    int threads;
    const char* pipeline;
  };
  for (mode m : {mode{1, "on"}, mode{2, "on"}, mode{2, "off"}}) {
    load_counts n;
    long long recovered_ms = -1;
    run(
        [&]() -> asio::awaitable<void> {
          database db = co_await open(with_options(
              url_, std::string("pool_max_size=4&connect_timeout=2&pipeline=") + m.pipeline));
          co_await db.execute("CREATE TABLE IF NOT EXISTS restart_t (id serial, task int)");
          auto ex = co_await asio::this_coro::executor;
          std::atomic<bool> stop{false};
          std::atomic<int> finished{0};
          constexpr int tasks = 16;
          for (int t = 0; t < tasks; ++t)
            asio::co_spawn(ex, keep_busy(db, t, stop, n, finished), asio::detached);
          co_await sleep_for(milliseconds(200));
          std::atomic<bool> restarted{false};
          int status = -1;
          std::thread restarter([&] {
            status = cluster("restart");
            restarted = true;
          });
          while (!restarted)
            co_await sleep_for(milliseconds(5));
          restarter.join();
          EXPECT_EQ(status, 0);
          // From the moment the server accepts connections again: how long until the pool
          // serves a statement?
          const auto up = clock::now();
          for (;;) {
            try {
              co_await db.query("SELECT 1");
              break;
            } catch (const error&) {
            }
            if (clock::now() - up > std::chrono::seconds(5)) break;
            co_await sleep_for(milliseconds(5));
          }
          recovered_ms = std::chrono::duration_cast<milliseconds>(clock::now() - up).count();
          co_await sleep_for(milliseconds(300));
          stop = true;
          const auto stopping = clock::now();
          while (finished < tasks && clock::now() - stopping < std::chrono::seconds(15))
            co_await sleep_for(milliseconds(5));
          EXPECT_EQ(finished, tasks);
          const auto quiet = clock::now();
          while (db.stats().in_flight > 0 && clock::now() - quiet < std::chrono::seconds(5))
            co_await sleep_for(milliseconds(5));
          EXPECT_EQ(db.stats().in_flight, 0u);
          co_await db.close();
        },
        60s, m.threads);
    std::printf(
        "[ restart ] %d thread(s), pipeline=%s: %d ok, %d failed, %d hung; serving "
        "again %lld ms after the server was up\n",
        m.threads, m.pipeline, n.ok.load(), n.failed.load(), n.hung.load(), recovered_ms);
    EXPECT_EQ(n.hung, 0);
    EXPECT_GT(n.ok, 0);
    EXPECT_GE(recovered_ms, 0);
    EXPECT_LT(recovered_ms, 1000);
  }
}

struct resume_cluster {
  const private_cluster& c;
  ~resume_cluster() { c.cluster("resume"); }
  const private_cluster* operator->() const { return &c; }
};

// 3 (second half). While the server is down, a connection attempt is refused at once: it
// fails promptly, not at the end of the connect timeout.
// Opening a database fails at once when the server refuses; a statement whose connection is
// gone waits through the refused attempts (a restart may be under way) until its own acquire
// deadline, then fails with the last refusal.
TEST_F(private_cluster, a_refused_connection_fails_open_at_once_and_a_statement_at_its_deadline) {
  run(
      [&]() -> asio::awaitable<void> {
        database db =
            co_await open(with_options(url_, "connect_timeout=10&pool_acquire_timeout_ms=400"));
        CO_ASSERT(cluster("pause") == 0);
        resume_cluster resume{*this};
        auto start = clock::now();
        try {
          database other = co_await open(with_options(url_, "connect_timeout=10"));
          ADD_FAILURE() << "connected to a stopped server";
        } catch (const error& e) {
          EXPECT_EQ(e.sqlstate().substr(0, 2), "08") << e.what();
        }
        const auto open_took = clock::now() - start;
        // A statement on a database whose connections the shutdown closed.
        start = clock::now();
        try {
          co_await db.query("SELECT 1");
          ADD_FAILURE() << "a statement succeeded on a stopped server";
        } catch (const error& e) {
          EXPECT_TRUE(e.is_connection_error()) << e.what();
        }
        const auto statement_took = clock::now() - start;
        std::printf(
            "[ refused ] open failed after %lld ms, a statement after %lld ms\n",
            static_cast<long long>(std::chrono::duration_cast<milliseconds>(open_took).count()),
            static_cast<long long>(
                std::chrono::duration_cast<milliseconds>(statement_took).count()));
        EXPECT_LT(open_took, milliseconds(500));
        // (It gives up once the next attempt, after the growing pause, would start past its
        // deadline: here after attempts at 0, 20, 60, 140 and 300 ms.)
        EXPECT_GE(statement_took, milliseconds(250));
        EXPECT_LT(statement_took, milliseconds(1500));
      },
      60s);
}

}  // namespace
}  // namespace awaitdb::test
