// What is particular to PostgreSQL: no threads, the pool, cancellation on the server,
// connection loss, URL passthrough.
#include "postgres/pg_support.hpp"
#include "secret_helpers.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/multiple_exceptions.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>

#include <algorithm>
#include <cctype>
#include <dirent.h>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace awaitdb::test {
namespace {

using namespace boost::asio::experimental::awaitable_operators;

// The ids of this process's threads now.
std::set<std::string> thread_ids() {
  std::set<std::string> ids;
  if (DIR* dir = ::opendir("/proc/self/task")) {
    while (dirent* e = ::readdir(dir))
      if (e->d_name[0] != '.') ids.insert(e->d_name);
    ::closedir(dir);
  }
  return ids;
}

// Compared by id: a thread left by an earlier test may end meanwhile, which is not one created.
TEST_F(postgres, no_thread_is_created) {
  std::set<std::string> before, after;
  run([&]() -> asio::awaitable<void> {
    before = thread_ids();
    database db = co_await open(url_);
    auto ex = co_await asio::this_coro::executor;
    int done = 0;
    for (int task = 0; task < 10; ++task)
      asio::co_spawn(
          ex,
          [&, task]() -> asio::awaitable<void> {
            for (int i = 0; i < 100; ++i) {
              result r = co_await db.query("SELECT $1::int + $2", task, i);
              EXPECT_EQ(r[0].get<std::int32_t>(0), task + i);
            }
            ++done;
          },
          asio::detached);
    while (done < 10)
      co_await sleep_for(std::chrono::milliseconds(5));
    after = thread_ids();
    EXPECT_GE(db.stats().size, 1u);
  });
  std::printf("[ threads ] before open: %zu, after 1000 queries: %zu\n", before.size(),
              after.size());
  EXPECT_FALSE(after.empty());
  for (const std::string& id : after)
    EXPECT_TRUE(before.count(id)) << "thread " << id << " was created";
}

TEST_F(postgres, pool_is_bounded_and_reports_its_state) {
  run([&]() -> asio::awaitable<void> {
    // Exclusive use (pipeline=off): at most 2 statements at once, the others wait.
    database db = co_await open(url("pool_max_size=2&pipeline=off"));
    auto ex = co_await asio::this_coro::executor;
    int done = 0;
    std::size_t max_size = 0, max_waiting = 0;
    for (int task = 0; task < 8; ++task)
      asio::co_spawn(
          ex,
          [&]() -> asio::awaitable<void> {
            co_await db.query("SELECT pg_sleep(0.05)");
            ++done;
          },
          asio::detached);
    while (done < 8) {
      pool_stats s = db.stats();
      max_size = std::max(max_size, s.size);
      max_waiting = std::max(max_waiting, s.waiting);
      EXPECT_LE(s.in_use, 2u);
      co_await sleep_for(std::chrono::milliseconds(5));
    }
    EXPECT_EQ(max_size, 2u);
    EXPECT_GE(max_waiting, 1u);
    pool_stats s = db.stats();
    EXPECT_EQ(s.in_use, 0u);
    EXPECT_EQ(s.idle, 2u);
    EXPECT_EQ(s.waiting, 0u);
  });
}

TEST_F(postgres, the_pool_serves_waiting_tasks_in_order) {
  // A task that releases a connection and asks again at once must not overtake tasks already
  // waiting: with 8 tasks on a pool of 2, none starves.
  run([&]() -> asio::awaitable<void> {
    database db = co_await open(url("pool_max_size=2&pool_acquire_timeout_ms=5000"));
    auto ex = co_await asio::this_coro::executor;
    constexpr int tasks = 8;
    std::vector<int> done(tasks, 0);
    int finished = 0;
    const auto until = clock::now() + std::chrono::milliseconds(800);
    for (int t = 0; t < tasks; ++t)
      asio::co_spawn(
          ex,
          [&, t]() -> asio::awaitable<void> {
            while (clock::now() < until) {
              co_await db.query("SELECT 1");
              ++done[t];
            }
            ++finished;
          },
          asio::detached);
    while (finished < tasks)
      co_await sleep_for(std::chrono::milliseconds(5));
    const int least = *std::min_element(done.begin(), done.end());
    const int most = *std::max_element(done.begin(), done.end());
    EXPECT_GT(least, 0);
    EXPECT_GE(least * 2, most) << "some tasks were starved: " << least << " vs " << most;
  });
}

TEST_F(postgres, acquire_times_out_with_a_clear_error) {
  run([&]() -> asio::awaitable<void> {
    database db = co_await open(url("pool_max_size=1&pool_acquire_timeout_ms=200"));
    auto ex = co_await asio::this_coro::executor;
    asio::steady_timer hold(ex, std::chrono::seconds(10));
    asio::co_spawn(ex, db.transaction([&]() -> asio::awaitable<void> {
      co_await db.query("SELECT 1");  // pins the only connection
      co_await hold.async_wait(asio::use_awaitable);
    }),
                   [](std::exception_ptr) {});
    co_await sleep_for(std::chrono::milliseconds(50));
    auto start = clock::now();
    std::string m = co_await expect_sqlstate("53300", [&] { return db.query("SELECT 1"); });
    auto waited = clock::now() - start;
    EXPECT_GE(waited, std::chrono::milliseconds(150));
    EXPECT_LT(waited, std::chrono::seconds(2));
    EXPECT_NE(m.find("waiting for a connection"), std::string::npos) << m;
    hold.cancel();
    EXPECT_EQ((co_await db.query("SELECT 2"))[0].get<std::int32_t>(0), 2);
  });
}

TEST_F(postgres, a_connection_returned_inside_a_transaction_is_cleaned) {
  run([&]() -> asio::awaitable<void> {
    database db = co_await open(url("pool_max_size=1"));
    // A raw BEGIN outside db.transaction returns the connection to the pool inside a
    // transaction; the pool rolls it back before lending it again. SAVEPOINT fails (25P01)
    // outside a transaction block, so it tells where the next statement runs.
    int pid = (co_await db.query("SELECT pg_backend_pid()"))[0].get<std::int32_t>(0);
    co_await db.execute("BEGIN");
    co_await expect_sqlstate("25P01", [&] { return db.execute("SAVEPOINT probe"); });
    const int pid_now = (co_await db.query("SELECT pg_backend_pid()"))[0].get<std::int32_t>(0);
    if (!through_pooler()) {
      EXPECT_EQ(pid_now, pid);
    }
    EXPECT_EQ(db.stats().size, 1u);  // cleaned and reused, not replaced
  });
}

TEST_F(postgres, transactions_pin_one_connection_from_begin_to_commit) {
  run([&]() -> asio::awaitable<void> {
    database db = co_await open(url("pool_max_size=4"));
    auto ex = co_await asio::this_coro::executor;
    int done = 0;
    for (int task = 0; task < 6; ++task)
      asio::co_spawn(
          ex,
          [&]() -> asio::awaitable<void> {
            co_await db.transaction([&]() -> asio::awaitable<void> {
              row first = (co_await db.query("SELECT pg_backend_pid(), txid_current()"))[0];
              co_await sleep_for(std::chrono::milliseconds(20));
              row second = (co_await db.query("SELECT pg_backend_pid(), txid_current()"))[0];
              EXPECT_EQ(first.get<std::int32_t>(0), second.get<std::int32_t>(0));
              EXPECT_EQ(first.get<std::int64_t>(1), second.get<std::int64_t>(1));
            });
            ++done;
          },
          asio::detached);
    while (done < 6)
      co_await sleep_for(std::chrono::milliseconds(5));
    EXPECT_EQ(db.stats().in_use, 0u);
  });
}

TEST_F(postgres, cancellation_with_a_timer_stops_the_statement_on_the_server) {
  run([&]() -> asio::awaitable<void> {
    database db = co_await open(url("pool_max_size=1"));
    database observer = co_await open(url_);
    int pid = (co_await db.query("SELECT pg_backend_pid()"))[0].get<std::int32_t>(0);
    auto start = clock::now();
    auto which =
        co_await (db.query("SELECT pg_sleep(30)") || sleep_for(std::chrono::milliseconds(100)));
    auto resumed = clock::now() - start;
    EXPECT_EQ(which.index(), 1u);
    auto gone = co_await time_until_gone(observer, std::chrono::seconds(5));
    std::printf(
        "[ cancel  ] resumed %lld ms after the call (timer 100 ms); pg_sleep gone "
        "%lld ms later\n",
        static_cast<long long>(
            std::chrono::duration_cast<std::chrono::milliseconds>(resumed).count()),
        static_cast<long long>(
            std::chrono::duration_cast<std::chrono::milliseconds>(gone).count()));
    EXPECT_LT(resumed, std::chrono::seconds(2));
    EXPECT_EQ(co_await active_sleeps(observer), 0);
    EXPECT_LT(gone, std::chrono::seconds(1));
    // The connection was proven clean and is reused.
    const int pid_now = (co_await db.query("SELECT pg_backend_pid()"))[0].get<std::int32_t>(0);
    if (!through_pooler()) {
      EXPECT_EQ(pid_now, pid);
    }
    EXPECT_EQ(db.stats().size, 1u);
  });
}

TEST_F(postgres, cancellation_signal_gives_operation_aborted) {
  run([&]() -> asio::awaitable<void> {
    database db = co_await open(url("pool_max_size=1"));
    database observer = co_await open(url_);
    auto ex = co_await asio::this_coro::executor;
    asio::cancellation_signal signal;
    asio::steady_timer timer(ex, std::chrono::milliseconds(100));
    timer.async_wait(
        [&](boost::system::error_code) { signal.emit(asio::cancellation_type::terminal); });
    try {
      co_await asio::co_spawn(ex, db.query("SELECT pg_sleep(30)"),
                              asio::bind_cancellation_slot(signal.slot(), asio::use_awaitable));
      ADD_FAILURE() << "not cancelled";
    } catch (const boost::system::system_error& e) {
      EXPECT_EQ(e.code(), asio::error::operation_aborted);
    }
    EXPECT_LT(co_await time_until_gone(observer, std::chrono::seconds(5)), std::chrono::seconds(1));
    EXPECT_EQ((co_await db.query("SELECT 1"))[0].get<std::int32_t>(0), 1);
  });
}

TEST_F(postgres, cancellation_inside_a_transaction_rolls_it_back) {
  run([&]() -> asio::awaitable<void> {
    database db = co_await open(url("pool_max_size=1"));
    database observer = co_await open(url_);
    co_await db.execute("DROP TABLE IF EXISTS t");
    co_await db.execute("CREATE TABLE t (v INTEGER)");
    auto which = co_await (db.transaction([&]() -> asio::awaitable<void> {
      co_await db.execute("INSERT INTO t VALUES (1)");
      co_await db.query("SELECT pg_sleep(30)");
    }) || sleep_for(std::chrono::milliseconds(100)));
    EXPECT_EQ(which.index(), 1u);
    EXPECT_LT(co_await time_until_gone(observer, std::chrono::seconds(5)), std::chrono::seconds(1));
    EXPECT_EQ((co_await db.query("SELECT count(*) FROM t"))[0].get<std::int64_t>(0), 0);
  });
}

TEST_F(postgres, statement_timeout_stops_the_statement) {
  run([&]() -> asio::awaitable<void> {
    database db = co_await open(url("statement_timeout_ms=200"));
    auto start = clock::now();
    co_await expect_sqlstate("57014", [&] { return db.query("SELECT pg_sleep(30)"); });
    EXPECT_LT(clock::now() - start, std::chrono::seconds(2));
    EXPECT_EQ((co_await db.query("SELECT 1"))[0].get<std::int32_t>(0), 1);
  });
}

TEST_F(postgres, a_terminated_backend_fails_promptly_and_is_replaced) {
  run([&]() -> asio::awaitable<void> {
    database db = co_await open(url("pool_max_size=1"));
    database admin = co_await open(url_);
    int pid = (co_await db.query("SELECT pg_backend_pid()"))[0].get<std::int32_t>(0);
    auto ex = co_await asio::this_coro::executor;
    asio::co_spawn(
        ex,
        [&]() -> asio::awaitable<void> {
          co_await sleep_for(std::chrono::milliseconds(100));
          co_await admin.query("SELECT pg_terminate_backend($1)", pid);
        },
        asio::detached);
    auto start = clock::now();
    try {
      co_await db.query("SELECT pg_sleep(30)");
      ADD_FAILURE() << "no error";
    } catch (const error& e) {
      EXPECT_TRUE(e.is_connection_error()) << e.sqlstate() << " " << e.what();
    }
    EXPECT_LT(clock::now() - start, std::chrono::seconds(3));
    // The pool replaced the connection.
    int new_pid = (co_await db.query("SELECT pg_backend_pid()"))[0].get<std::int32_t>(0);
    EXPECT_NE(new_pid, pid);
    // Terminated while idle in the pool: the next query does not even notice.
    co_await admin.query("SELECT pg_terminate_backend($1)", new_pid);
    co_await sleep_for(std::chrono::milliseconds(100));
    EXPECT_EQ((co_await db.query("SELECT 3"))[0].get<std::int32_t>(0), 3);
  });
}

TEST_F(postgres, refused_connection_names_host_and_port_without_password) {
  run([&]() -> asio::awaitable<void> {
    try {
      co_await open("postgresql://someone:very-secret-pw@127.0.0.1:1/db?connect_timeout=5");
      ADD_FAILURE() << "connected to port 1";
    } catch (const error& e) {
      std::string m = e.what();
      EXPECT_EQ(e.sqlstate().substr(0, 2), "08") << m;
      EXPECT_NE(m.find("127.0.0.1"), std::string::npos) << m;
      EXPECT_NE(m.find("port 1"), std::string::npos) << m;
      EXPECT_EQ(m.find("very-secret-pw"), std::string::npos) << m;
    }
    // A wrong password: refused by the server; neither password in the message.
    std::string wrong = url_;
    wrong.replace(wrong.find("awaitdb-test-secret"), 19, "not-the-password");
    try {
      co_await open(wrong);
      ADD_FAILURE() << "logged in with a wrong password";
    } catch (const error& e) {
      std::string m = e.what();
      EXPECT_EQ(e.sqlstate().substr(0, 2), "08") << m;
      EXPECT_EQ(m.find("not-the-password"), std::string::npos) << m;
      EXPECT_EQ(m.find("awaitdb-test-secret"), std::string::npos) << m;
    }
  });
}

// Every spelling of a wrong password that libpq accepts, with characters that break naive URL
// parsing, against the real server: no run of 4 of its characters in any message.
TEST_F(postgres, no_spelling_of_a_password_reaches_an_error) {
  const std::string at_host = "@" + host_port() + "/awaitdb";
  run([&]() -> asio::awaitable<void> {
    for (std::string password : {"Wrong-Passw0rd", "pa/ss?wo@rd:xy", "with space & amp=1",
                                 "pct%41encoded", "test-secret/xyz"}) {
      for (const std::string& u :
           {"postgresql://awaitdb:" + password + at_host + "?connect_timeout=5",
            "postgresql://awaitdb:" + percent_encode(password) + at_host,
            "postgresql://awaitdb" + at_host + "?password=" + password,
            "postgresql://awaitdb" + at_host + "?pass%77ord=" + percent_encode(password),
            "postgresql://awaitdb" + at_host + "?%70assword=" + percent_encode(password) +
                "&application_name=x"}) {
        try {
          database db = co_await open(u);
          ADD_FAILURE() << "logged in with a wrong password";
        } catch (const error& e) {
          EXPECT_EQ(e.sqlstate().substr(0, 2), "08") << e.what();
          EXPECT_EQ(leaked_piece(e.what(), password), "") << e.what();
          EXPECT_EQ(leaked_piece(e.server_message(), password), "") << e.server_message();
          EXPECT_EQ(leaked_piece(e.detail(), password), "") << e.detail();
        }
      }
    }
  });
}

TEST_F(postgres, libpq_options_and_several_hosts_pass_through) {
  run([&]() -> asio::awaitable<void> {
    // The first host refuses; libpq moves on to the second.
    std::string multi = url_;
    multi.replace(multi.find(host_port()), host_port().size(), "127.0.0.1:1," + host_port());
    database db =
        co_await open(multi + "?target_session_attrs=read-write&application_name=awaitdb-test");
    row r = (co_await db.query("SELECT current_setting('application_name')"))[0];
    EXPECT_EQ(r.get<std::string>(0), "awaitdb-test");
  });
}

TEST_F(postgres, unnamed_statements_and_a_small_cache) {
  for (std::string options : {"named_statements=off", "statement_cache_size=2"}) {
    run([&]() -> asio::awaitable<void> {
      database db = co_await open(url(options));
      for (int round = 0; round < 3; ++round)
        for (int k = 0; k < 6; ++k) {
          std::string sql = "SELECT $1::int + " + std::to_string(k);
          EXPECT_EQ((co_await db.query(sql, 10))[0].get<std::int32_t>(0), 10 + k) << options;
        }
      result prepared = co_await db.query(
          "SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'awaitdb%'");
      EXPECT_LE(prepared[0].get<std::int64_t>(0), 2) << options;
    });
  }
}

TEST_F(postgres, postgres_types) {
  run([&]() -> asio::awaitable<void> {
    database db = co_await open(url_);
    row r =
        (co_await db.query("SELECT sum(x), avg(x), 2.5::numeric, 'NaN'::float8, "
                           "'{\"a\":1}'::jsonb, now() IS NOT NULL "
                           "FROM (VALUES (1::bigint), (2::bigint)) v(x)"))[0];
    EXPECT_EQ(r.get<std::int64_t>(0), 3);  // sum(bigint) is NUMERIC
    EXPECT_EQ(r.get<double>(1), 1.5);
    EXPECT_THROW((void)r.get<std::int64_t>(2), error);
    EXPECT_EQ(r.get<double>(2), 2.5);
    EXPECT_TRUE(std::isnan(r.get<double>(3)));
    EXPECT_EQ(r.get<std::string>(4), "{\"a\": 1}");
    EXPECT_TRUE(r.get<bool>(5));
    // Text cannot carry a NUL byte: a clear error, and the connection is unharmed.
    // (The argument must outlive the lazy awaitable the lambda returns: named, not temporary.)
    const std::string with_nul("a\0b", 3);
    co_await expect_sqlstate("22021", [&] { return db.query("SELECT $1::text", with_nul); });
    EXPECT_EQ((co_await db.query("SELECT $1::text", "ok"))[0].get<std::string>(0), "ok");
  });
}

}  // namespace
}  // namespace awaitdb::test

namespace awaitdb::test {
namespace {

// ---- Pipelining across tasks (one connection: every statement below shares it)

TEST_F(postgres, pipelined_statements_fail_only_their_own_awaiter) {
  run([&]() -> asio::awaitable<void> {
    database db = co_await open(url("pool_max_size=1"));
    auto ex = co_await asio::this_coro::executor;
    constexpr int tasks = 60;
    int ok = 0, failed = 0, finished = 0;
    std::set<std::int32_t> pids;
    for (int i = 0; i < tasks; ++i)
      asio::co_spawn(
          ex,
          [&, i]() -> asio::awaitable<void> {
            try {
              // Every third divides by zero; its neighbours, sent around it, must not care.
              row r = (co_await db.query("SELECT $1::int / $2::int, pg_backend_pid()", i,
                                         i % 3 == 1 ? 0 : 1))[0];
              EXPECT_EQ(r.get<std::int32_t>(0), i);
              pids.insert(r.get<std::int32_t>(1));
              ++ok;
            } catch (const error& e) {
              EXPECT_EQ(e.sqlstate(), "22012") << e.what();
              EXPECT_EQ(i % 3, 1);
              ++failed;
            }
            ++finished;
          },
          asio::detached);
    while (finished < tasks)
      co_await sleep_for(std::chrono::milliseconds(2));
    EXPECT_EQ(ok, 40);
    EXPECT_EQ(failed, 20);
    EXPECT_EQ(pids.size(), 1u);  // all on one connection, pipelined
  });
}

TEST_F(postgres, pipelined_statements_of_a_task_stay_in_order) {
  run([&]() -> asio::awaitable<void> {
    database db = co_await open(url("pool_max_size=1"));
    co_await db.execute("DROP TABLE IF EXISTS counters");
    co_await db.execute("CREATE TABLE counters (id INTEGER PRIMARY KEY, v INTEGER NOT NULL)");
    auto ex = co_await asio::this_coro::executor;
    constexpr int tasks = 16, steps = 25;
    int finished = 0;
    for (int t = 0; t < tasks; ++t)
      asio::co_spawn(
          ex,
          [&, t]() -> asio::awaitable<void> {
            co_await db.execute("INSERT INTO counters VALUES ($1, 0)", t);
            for (int k = 1; k <= steps; ++k) {
              co_await db.execute("UPDATE counters SET v = v + 1 WHERE id = $1", t);
              // Each statement sees every earlier one of its task, whatever others interleave.
              EXPECT_EQ((co_await db.query("SELECT v FROM counters WHERE id = $1", t))[0]
                            .get<std::int32_t>(0),
                        k);
            }
            ++finished;
          },
          asio::detached);
    while (finished < tasks)
      co_await sleep_for(std::chrono::milliseconds(2));
    row sum = (co_await db.query("SELECT sum(v) FROM counters"))[0];
    EXPECT_EQ(sum.get<std::int64_t>(0), tasks * steps);
  });
}

TEST_F(postgres, tasks_sharing_a_connection_resume_in_the_order_their_statements_completed) {
  run([&]() -> asio::awaitable<void> {
    database db = co_await open(url("pool_max_size=1"));
    co_await db.query("SELECT 1");  // the connection is open: every task below sends at once
    auto ex = co_await asio::this_coro::executor;
    constexpr int tasks = 40;
    for (int round = 0; round < 5; ++round) {
      std::vector<int> resumed;
      for (int i = 0; i < tasks; ++i)
        asio::co_spawn(
            ex,
            [&, i]() -> asio::awaitable<void> {
              EXPECT_EQ((co_await db.query("SELECT $1::int", i))[0].get<std::int32_t>(0), i);
              resumed.push_back(i);
            },
            asio::detached);
      // Let every task send (and the corked round go out), then keep this thread busy while
      // the answers arrive: one read of the socket then completes many statements at once.
      for (int yield = 0; yield < 3; ++yield)
        co_await asio::post(ex, asio::use_awaitable);
      std::this_thread::sleep_for(std::chrono::milliseconds(round % 2 ? 50 : 0));
      while (resumed.size() < static_cast<std::size_t>(tasks))
        co_await sleep_for(std::chrono::milliseconds(1));
      // Sent in this order on one connection and answered in it, however many answers one
      // read of the socket brings.
      for (int i = 0; i < tasks; ++i)
        EXPECT_EQ(resumed[static_cast<std::size_t>(i)], i) << "round " << round;
    }
  });
}

TEST_F(postgres, cancelling_one_pipelined_statement_leaves_the_others) {
  run([&]() -> asio::awaitable<void> {
    database db = co_await open(url("pool_max_size=1"));
    auto ex = co_await asio::this_coro::executor;
    int others_ok = 0, finished = 0;
    // A slow statement first, then others pipelined behind it on the same connection.
    auto slow = asio::co_spawn(
        ex, db.query("SELECT pg_sleep(0.4)") || sleep_for(std::chrono::milliseconds(50)),
        asio::use_awaitable);
    for (int i = 0; i < 5; ++i)
      asio::co_spawn(
          ex,
          [&, i]() -> asio::awaitable<void> {
            co_await sleep_for(std::chrono::milliseconds(10));
            EXPECT_EQ((co_await db.query("SELECT $1::int", i))[0].get<std::int32_t>(0), i);
            ++others_ok;
            ++finished;
          },
          asio::detached);
    auto start = clock::now();
    auto which = co_await std::move(slow);
    EXPECT_EQ(which.index(), 1u);
    EXPECT_LT(clock::now() - start, std::chrono::milliseconds(300));  // resumed at once
    while (finished < 5)
      co_await sleep_for(std::chrono::milliseconds(2));
    EXPECT_EQ(others_ok, 5);
    EXPECT_EQ((co_await db.query("SELECT 7"))[0].get<std::int32_t>(0), 7);
  });
}

TEST_F(postgres, a_task_cancelled_as_it_takes_over_reading_does_not_stall_the_connection) {
  run([&]() -> asio::awaitable<void> {
    database db = co_await open(url("pool_max_size=1"));
    // The failing middle statement makes `&&` cancel the third just as the role of reading for
    // the connection passes to it. Whoever reads next must still be found.
    auto one = [&]() { return db.query("SELECT 1"); };
    auto divide = [&]() { return db.query("SELECT 1 / 0"); };
    auto two = [&]() { return db.query("SELECT 2"); };
    for (int round = 0; round < 50; ++round) {
      std::exception_ptr failure;
      try {
        co_await (one() && divide() && two());
      } catch (...) {
        failure = std::current_exception();
      }
      // `&&` nests: the first exception of the first operand that failed, however deep.
      for (bool nested = true; failure && nested;) {
        nested = false;
        try {
          std::rethrow_exception(failure);
        } catch (const asio::multiple_exceptions& e) {
          failure = e.first_exception();
          nested = true;
        } catch (...) {
        }
      }
      try {
        if (failure) std::rethrow_exception(failure);
        ADD_FAILURE() << "1 / 0 did not fail";
      } catch (const error& e) {
        EXPECT_EQ(e.sqlstate(), "22012");
      } catch (const boost::system::system_error& e) {
        // The first statement was still running when 1 / 0 failed, and `&&` cancelled it too:
        // it can be sent again behind 1 / 0 when the cancel of the previous round's third
        // statement reaches it instead (the server cancels whatever runs when the request
        // arrives, and such a statement is re-sent).
        EXPECT_EQ(e.code(), asio::error::operation_aborted) << e.what();
      }
      EXPECT_EQ((co_await db.query("SELECT $1::int", round))[0].get<std::int32_t>(0), round);
    }
    EXPECT_EQ(db.stats().in_flight, 0u);
  });
}

// The server terminates the backend while ten statements are pipelined on it: the one running
// fails with a connection error, and those behind it, which the server never read, are sent
// again on a fresh connection, transparently.
TEST_F(postgres, losing_the_connection_fails_the_running_statement_and_resends_those_behind) {
  run([&]() -> asio::awaitable<void> {
    database db = co_await open(url("pool_max_size=1"));
    database admin = co_await open(url_);
    int pid = (co_await db.query("SELECT pg_backend_pid()"))[0].get<std::int32_t>(0);
    auto ex = co_await asio::this_coro::executor;
    constexpr int tasks = 10;
    int connection_errors = 0, answered = 0, finished = 0;
    for (int i = 0; i < tasks; ++i)
      asio::co_spawn(
          ex,
          [&, i]() -> asio::awaitable<void> {
            try {
              if (i == 0) {
                co_await db.query("SELECT pg_sleep(5)");
                ADD_FAILURE() << "survived a terminated backend";
              } else {
                result r = co_await db.query("SELECT $1::int, pg_backend_pid()", i);
                EXPECT_EQ(r[0].get<std::int32_t>(0), i);
                EXPECT_NE(r[0].get<std::int32_t>(1), pid);
                ++answered;
              }
            } catch (const error& e) {
              if (e.is_connection_error() && i == 0)
                ++connection_errors;
              else
                ADD_FAILURE() << i << ": " << e.what();
            }
            ++finished;
          },
          asio::detached);
    co_await sleep_for(std::chrono::milliseconds(100));
    EXPECT_EQ(db.stats().in_flight, std::size_t(tasks));
    auto start = clock::now();
    co_await admin.query("SELECT pg_terminate_backend($1)", pid);
    while (finished < tasks)
      co_await sleep_for(std::chrono::milliseconds(2));
    EXPECT_LT(clock::now() - start, std::chrono::seconds(2));  // none hung
    EXPECT_EQ(connection_errors, 1);
    EXPECT_EQ(answered, tasks - 1);
    EXPECT_EQ(db.stats().in_flight, 0u);
    EXPECT_NE((co_await db.query("SELECT pg_backend_pid()"))[0].get<std::int32_t>(0), pid);
  });
}

// ---- Pipelining inside a transaction (on its pinned connection)

TEST_F(postgres, concurrent_statements_of_a_transaction_are_pipelined_on_its_connection) {
  run([&]() -> asio::awaitable<void> {
    database db = co_await open(url("pool_max_size=2"));
    co_await db.transaction([&]() -> asio::awaitable<void> {
      // A slow statement, three sent behind it without waiting for it, and a look at what is
      // in flight while the slow one runs.
      auto slow = [&]() -> asio::awaitable<row> {
        co_return (
            co_await db.query("SELECT 0, pg_backend_pid(), txid_current() FROM pg_sleep(0.5)"))[0];
      };
      auto quick = [&](int i) -> asio::awaitable<row> {
        co_return (co_await db.query("SELECT $1::int, pg_backend_pid(), txid_current()", i))[0];
      };
      auto look = [&]() -> asio::awaitable<std::size_t> {
        co_await sleep_for(std::chrono::milliseconds(100));
        co_return db.stats().in_flight;
      };
      auto [r0, r1, r2, r3, seen] = co_await (slow() && quick(1) && quick(2) && quick(3) && look());
      EXPECT_EQ(seen, 4u);  // one at a time, it would be 1
      const row* rows[] = {&r0, &r1, &r2, &r3};
      for (int i = 0; i < 4; ++i) {
        EXPECT_EQ(rows[i]->get<std::int32_t>(0), i);
        EXPECT_EQ(rows[i]->get<std::int32_t>(1), r0.get<std::int32_t>(1));  // one connection
        EXPECT_EQ(rows[i]->get<std::int64_t>(2), r0.get<std::int64_t>(2));  // one transaction
      }
    });
    EXPECT_EQ(db.stats().in_flight, 0u);
  });
}

TEST_F(postgres, a_failure_among_pipelined_statements_of_a_transaction_rolls_it_all_back) {
  run([&]() -> asio::awaitable<void> {
    database db = co_await open(url("pool_max_size=1"));
    co_await db.execute("DROP TABLE IF EXISTS t");
    co_await db.execute("CREATE TABLE t (v INTEGER)");
    int pid = (co_await db.query("SELECT pg_backend_pid()"))[0].get<std::int32_t>(0);
    co_await expect_sqlstate("22012", [&] {
      return db.transaction([&]() -> asio::awaitable<void> {
        co_await db.execute("INSERT INTO t VALUES (1)");
        auto insert = [&](int v) { return db.execute("INSERT INTO t VALUES ($1)", v); };
        auto divide = [&]() { return db.query("SELECT 1 / 0"); };
        // Three in flight at once; the middle one fails, and the third, already sent behind
        // it, is refused by the server (25P02): asio reports both as multiple_exceptions.
        try {
          co_await (insert(2) && divide() && insert(3));
        } catch (const asio::multiple_exceptions& e) {
          std::rethrow_exception(e.first_exception());
        }
      });
    });
    EXPECT_EQ((co_await db.query("SELECT count(*) FROM t"))[0].get<std::int64_t>(0), 0);
    // The same connection, clean: a new transaction commits on it.
    co_await db.transaction(
        [&]() -> asio::awaitable<void> { co_await db.execute("INSERT INTO t VALUES (4)"); });
    EXPECT_EQ(
        (co_await db.query("SELECT sum(v), max(pg_backend_pid()) FROM t"))[0].get<std::int64_t>(0),
        4);
    EXPECT_EQ((co_await db.query("SELECT pg_backend_pid()"))[0].get<std::int32_t>(0), pid);
  });
}

TEST_F(postgres, cancelling_a_statement_inside_a_transaction_stops_it_and_aborts_the_transaction) {
  run([&]() -> asio::awaitable<void> {
    database db = co_await open(url("pool_max_size=1"));
    database observer = co_await open(url_);
    co_await db.execute("DROP TABLE IF EXISTS t");
    co_await db.execute("CREATE TABLE t (v INTEGER)");
    int pid = (co_await db.query("SELECT pg_backend_pid()"))[0].get<std::int32_t>(0);
    co_await expect_sqlstate("25P02", [&] {
      return db.transaction([&]() -> asio::awaitable<void> {
        co_await db.execute("INSERT INTO t VALUES (1)");
        auto which =
            co_await (db.query("SELECT pg_sleep(30)") || sleep_for(std::chrono::milliseconds(100)));
        EXPECT_EQ(which.index(), 1u);
        // Cancelled on the server, not left running on the transaction's connection.
        EXPECT_LT(co_await time_until_gone(observer, std::chrono::seconds(5)),
                  std::chrono::seconds(1));
        co_await expect_sqlstate("25P02", [&] { return db.query("SELECT 1"); });
      });  // returns normally: the commit refuses (25P02) and rolls back
    });
    EXPECT_EQ((co_await db.query("SELECT count(*) FROM t"))[0].get<std::int64_t>(0), 0);
    EXPECT_EQ((co_await db.query("SELECT pg_backend_pid()"))[0].get<std::int32_t>(0), pid);
  });
}

}  // namespace
}  // namespace awaitdb::test
