// LISTEN/NOTIFY: every notification in order, a gap after the listening connection is lost,
// NOTIFY inside a transaction only after its commit, and several subscriptions on one channel.
#include "postgres/pg_support.hpp"
#include <awaitdb/timeout.hpp>

namespace awaitdb::test {
namespace {

using std::chrono::milliseconds;

TEST_F(postgres, ten_thousand_notifications_arrive_in_order) {
  run([&]() -> asio::awaitable<void> {
    database db = co_await open(url_);
    database sender = co_await open(url("pool_max_size=1"));
    subscription sub = co_await db.listen("awaitdb_orders");
    const auto pid = co_await sender.query_scalar<std::int32_t>("SELECT pg_backend_pid()");
    // One statement sends 5,000 (delivered at its commit), then 5,000 statements one each.
    co_await sender.execute(
        "SELECT pg_notify('awaitdb_orders', g::text) FROM generate_series(1, 5000) g");
    for (int i = 5001; i <= 10000; ++i)
      co_await sender.execute("SELECT pg_notify('awaitdb_orders', $1)", std::to_string(i));
    for (int i = 1; i <= 10000; ++i) {
      notification n = co_await sub.next();
      CO_ASSERT(!n.gap);
      if (n.payload != std::to_string(i)) {
        ADD_FAILURE() << "notification " << i << " was " << n.payload;
        co_return;
      }
      EXPECT_EQ(n.channel, "awaitdb_orders");
      EXPECT_EQ(n.sender_pid, pid);
    }
    // Nothing more.
    co_await expect_sqlstate("57014", [&]() -> asio::awaitable<void> {
      co_await with_timeout(milliseconds(100), sub.next());
    });
    co_await sender.close();
    co_await db.close();
  });
}

TEST_F(postgres, a_lost_listening_connection_gives_a_gap_then_what_came_after) {
  run([&]() -> asio::awaitable<void> {
    database db = co_await open(url("connect_backoff_ms=20"));
    database admin = co_await open(url_);
    subscription sub = co_await db.listen("awaitdb_gap");
    co_await admin.execute("SELECT pg_notify('awaitdb_gap', 'before')");
    EXPECT_EQ((co_await sub.next()).payload, "before");
    // The listening session: the one whose last statement was the LISTEN.
    const auto killed = co_await admin.query_scalar<std::int64_t>(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE query = 'LISTEN \"awaitdb_gap\"' AND pid <> pg_backend_pid()");
    EXPECT_EQ(killed, 1);
    notification first = co_await with_timeout(milliseconds(5000), sub.next());
    EXPECT_TRUE(first.gap);
    EXPECT_EQ(first.channel, "awaitdb_gap");
    // Listening again: notifications sent from now on arrive (those sent before it did are the
    // gap's).
    const auto start = clock::now();
    std::optional<notification> after;
    for (int i = 0; !after && clock::now() - start < std::chrono::seconds(10); ++i) {
      co_await admin.execute("SELECT pg_notify('awaitdb_gap', $1)", "after " + std::to_string(i));
      auto one = [&]() -> asio::awaitable<void> { after = co_await sub.next(); };
      co_await bounded(milliseconds(50), one);
    }
    CO_ASSERT(after);
    EXPECT_FALSE(after->gap);
    EXPECT_TRUE(after->payload.starts_with("after ")) << after->payload;
    std::printf("[ listen  ] listening again and receiving %lld ms after the connection was lost\n",
                static_cast<long long>(
                    std::chrono::duration_cast<milliseconds>(clock::now() - start).count()));
    co_await admin.close();
    co_await db.close();
  });
}

TEST_F(postgres,
       a_lost_listening_connection_dropped_right_after_its_open_is_opened_again_after_a_pause) {
  run([&]() -> asio::awaitable<void> {
    database admin = co_await open(url_);
    auto sessions = [&]() -> asio::awaitable<std::int64_t> {
      co_return co_await admin.query_scalar<std::int64_t>(
          "SELECT sessions FROM pg_stat_database WHERE datname = current_database()");
    };
    // The server ends every session of `db` 20 ms after its last statement: the listening
    // connection right after its LISTEN, again and again.
    database db =
        co_await open(url("connect_backoff_ms=50&connect_backoff_max_ms=400&"
                          "options=-c%20idle_session_timeout%3D20"));
    const auto before = co_await sessions();
    subscription sub = co_await db.listen("awaitdb_flap");
    co_await sleep_for(milliseconds(1500));
    co_await db.close();
    co_await sleep_for(milliseconds(300));  // (a session is counted in the statistics as it exits)
    const auto opened = co_await sessions() - before;
    std::printf(
        "[ listen  ] %lld listening sessions in 1.5 s, each dropped 20 ms after its LISTEN\n",
        static_cast<long long>(opened));
    EXPECT_GE(opened, 3);  // it did connect again, more than once
    // With the pause growing from 50 to 400 ms, about 6; without it, one about every 30 ms.
    EXPECT_LE(opened, 15);
    co_await admin.close();
  });
}

TEST_F(postgres, a_lost_listening_connection_s_pause_before_opening_again_ends_at_close) {
  clock::time_point closed_at;
  run([&]() -> asio::awaitable<void> {
    // Dropped 20 ms after its LISTEN: then a pause of 2 s before the listener opens again.
    database db =
        co_await open(url("connect_backoff_ms=2000&connect_backoff_max_ms=2000&"
                          "options=-c%20idle_session_timeout%3D20"));
    subscription sub = co_await db.listen("awaitdb_pause");
    co_await sleep_for(milliseconds(300));
    closed_at = clock::now();
    co_await db.close();
  });
  // run() returns once nothing is left on the io_context: the pause did not hold it.
  const auto after_close = clock::now() - closed_at;
  EXPECT_LT(after_close, milliseconds(1000))
      << std::chrono::duration_cast<milliseconds>(after_close).count() << " ms";
}

TEST_F(postgres, a_notification_from_a_transaction_arrives_after_its_commit) {
  run([&]() -> asio::awaitable<void> {
    database db = co_await open(url_);
    database sender = co_await open(url_);
    subscription sub = co_await db.listen("awaitdb_tx");
    co_await sender.transaction([&]() -> asio::awaitable<void> {
      co_await sender.execute("SELECT pg_notify('awaitdb_tx', 'committed')");
      co_await expect_sqlstate("57014", [&]() -> asio::awaitable<void> {
        co_await with_timeout(milliseconds(150), sub.next());
      });
    });
    EXPECT_EQ((co_await with_timeout(milliseconds(5000), sub.next())).payload, "committed");
    // A rolled-back transaction's notification never arrives.
    try {
      co_await sender.transaction([&]() -> asio::awaitable<void> {
        co_await sender.execute("SELECT pg_notify('awaitdb_tx', 'rolled back')");
        throw std::runtime_error("undo");
      });
    } catch (const std::runtime_error&) {
    }
    co_await sender.execute("SELECT pg_notify('awaitdb_tx', 'next')");
    EXPECT_EQ((co_await with_timeout(milliseconds(5000), sub.next())).payload, "next");
    co_await sender.close();
    co_await db.close();
  });
}

TEST_F(postgres, subscriptions_share_a_channel_and_leave_it_when_destroyed) {
  run([&]() -> asio::awaitable<void> {
    database db = co_await open(url_);
    database admin = co_await open(url_);
    subscription a = co_await db.listen("Awaitdb Mixed\"Case");
    std::optional<subscription> b = co_await db.listen("Awaitdb Mixed\"Case");
    subscription other = co_await db.listen("awaitdb_other");
    co_await admin.execute("SELECT pg_notify($1, 'both')", std::string("Awaitdb Mixed\"Case"));
    EXPECT_EQ((co_await a.next()).payload, "both");
    EXPECT_EQ((co_await b->next()).payload, "both");
    b.reset();
    co_await admin.execute("SELECT pg_notify($1, 'one')", std::string("Awaitdb Mixed\"Case"));
    EXPECT_EQ((co_await a.next()).payload, "one");
    // The other channel is untouched by it all.
    co_await admin.execute("SELECT pg_notify('awaitdb_other', 'x')");
    EXPECT_EQ((co_await other.next()).payload, "x");
    // Bad names, and the end.
    co_await expect_sqlstate(
        "42622", [&]() -> asio::awaitable<void> { co_await db.listen(std::string(64, 'x')); });
    co_await expect_sqlstate("22023", [&]() -> asio::awaitable<void> { co_await db.listen(""); });
    co_await db.close();
    co_await expect_sqlstate("08003", [&]() -> asio::awaitable<void> { co_await a.next(); });
    co_await admin.close();
  });
}

// Notifications read by tasks on a 2-thread io_context while another task sends them.
TEST_F(postgres, notifications_on_two_threads) {
  std::atomic<int> received{0};
  run(
      [&]() -> asio::awaitable<void> {
        database db = co_await open(url_);
        database sender = co_await open(url_);
        auto ex = co_await asio::this_coro::executor;
        constexpr int count = 2000;
        std::atomic<int> finished{0};
        auto reader = [&](subscription sub) -> asio::awaitable<void> {
          for (int i = 1; i <= count; ++i) {
            notification n = co_await sub.next();
            if (n.payload != std::to_string(i)) ADD_FAILURE() << "out of order at " << i;
            ++received;
          }
        };
        auto done = [&](std::exception_ptr e) {
          if (e) ADD_FAILURE() << "a reader failed";
          ++finished;
        };
        for (int r = 0; r < 3; ++r) {
          subscription sub = co_await db.listen("awaitdb_threads");
          asio::co_spawn(ex, reader(std::move(sub)), done);
        }
        co_await sender.execute(
            "SELECT pg_notify('awaitdb_threads', g::text) FROM generate_series(1, $1::int) g",
            count);
        while (finished < 3)
          co_await sleep_for(milliseconds(5));
        co_await sender.close();
        co_await db.close();
      },
      60s, 2);
  EXPECT_EQ(received, 3 * 2000);
}

TEST(sqlite_listen, is_refused_with_a_clear_error) {
  run([&]() -> asio::awaitable<void> {
    database db = co_await open("sqlite::memory:");
    const std::string message = co_await expect_sqlstate(
        "0A000", [&]() -> asio::awaitable<void> { co_await db.listen("anything"); });
    EXPECT_NE(message.find("PostgreSQL"), std::string::npos) << message;
  });
}

}  // namespace
}  // namespace awaitdb::test
