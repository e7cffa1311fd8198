// Host names as production meets them: a resolver that answers late, never, or "no such
// name", and a name whose first addresses refuse. The event loop must keep running meanwhile.
//
// Runs only through test/dns/run-isolated, which gives this process a private mount namespace
// whose /etc/resolv.conf points at the DNS server below (127.0.0.153:53), so that nothing else
// on the machine is affected.
#include "../postgres/pg_support.hpp"
#include "fake_dns.hpp"
#include <awaitdb/timeout.hpp>

#include <boost/asio/detached.hpp>

#include <fstream>
#include <sstream>

namespace awaitdb::test {
namespace {

constexpr const char* dns_address = "127.0.0.153";

// Ticks every 5 ms on the caller's io_context and records the largest lateness of a tick: how
// long the loop was kept from running anything else. Its coroutine holds it (it outlives the
// test's frame by one tick).
// A loop that waited for the lookup would show a gap as long as the resolver's delay; the
// loop's own work (a connection opened under a sanitizer, on a loaded machine) stays far
// below a third of it.
constexpr double largest_gap_ms(std::chrono::milliseconds resolver_delay) {
  return static_cast<double>(resolver_delay.count()) / 3;
}

class ticker : public std::enable_shared_from_this<ticker> {
 public:
  void start(const asio::any_io_executor& ex) {
    asio::co_spawn(ex, run(shared_from_this()), asio::detached);
  }
  void stop() { stop_ = true; }
  double largest_ms() const { return std::chrono::duration<double, std::milli>(largest_).count(); }

 private:
  static asio::awaitable<void> run(std::shared_ptr<ticker> self) {
    asio::steady_timer t(co_await asio::this_coro::executor);
    auto expected = clock::now();
    while (!self->stop_) {
      expected += std::chrono::milliseconds(5);
      t.expires_at(expected);
      co_await t.async_wait(asio::use_awaitable);
      const auto late = clock::now() - expected;
      self->largest_ = std::max(self->largest_, late);
      if (late > std::chrono::milliseconds(5)) expected = clock::now();
    }
  }
  bool stop_ = false;
  clock::duration largest_{};
};

// (The names share no four letters with the test server's password, which messages hide.)
class dns : public postgres {
 protected:
  void SetUp() override {
    postgres::SetUp();
    std::ifstream conf("/etc/resolv.conf");
    std::stringstream text;
    text << conf.rdbuf();
    ASSERT_NE(text.str().find(std::string("nameserver ") + dns_address), std::string::npos)
        << "/etc/resolv.conf does not point at the test's DNS server: run these tests through "
           "test/dns/run-isolated";
    server_ = std::make_unique<fake_dns>(dns_address);
  }
  // The test server's URL with `host` in place of its address.
  std::string url_for(const std::string& host, std::string_view options = {}) const {
    std::string u = url_;
    u.replace(u.find("127.0.0.1"), 9, host);
    return options.empty() ? u : with_options(u, options);
  }
  std::unique_ptr<fake_dns> server_;
};

TEST_F(dns, a_slow_resolver_does_not_stop_the_loop_during_open) {
  constexpr std::chrono::milliseconds delay(1500);
  server_->set("slow.corp.example", {{"127.0.0.1"}, delay});
  run([&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    auto tick = std::make_shared<ticker>();
    tick->start(ex);
    const auto start = clock::now();
    database db = co_await open(url_for("slow.corp.example"));
    const auto took = clock::now() - start;
    EXPECT_EQ(co_await db.query_scalar<std::int32_t>("SELECT 1"), 1);
    co_await db.close();
    tick->stop();
    std::printf(
        "open() through a resolver answering after 1500 ms: %.0f ms; largest gap of a "
        "5 ms ticker on the same thread: %.1f ms\n",
        std::chrono::duration<double, std::milli>(took).count(), tick->largest_ms());
    EXPECT_GE(took, std::chrono::milliseconds(1400));  // the lookup was really slow
    EXPECT_LT(tick->largest_ms(), largest_gap_ms(delay));
  });
}

TEST_F(dns, a_slow_resolver_does_not_stop_the_loop_while_the_pool_grows) {
  constexpr std::chrono::milliseconds delay(600);
  server_->set("grow.corp.example", {{"127.0.0.1"}, delay});
  run([&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    database db = co_await open(url_for("grow.corp.example", "pool_max_size=3"));
    auto tick = std::make_shared<ticker>();
    tick->start(ex);
    // Three transactions at once: two more connections, each looked up first.
    int done = 0;
    for (int i = 0; i < 3; ++i)
      asio::co_spawn(ex, db.transaction([&db]() -> asio::awaitable<void> {
        co_await db.execute("SELECT pg_sleep(0.3)");
      }),
                     [&](std::exception_ptr e) {
                       EXPECT_FALSE(e);
                       ++done;
                     });
    const auto start = clock::now();
    while (done < 3 && clock::now() - start < 20s)
      co_await sleep_for(10ms);
    EXPECT_EQ(done, 3);
    EXPECT_EQ(db.stats().size, 3u);
    tick->stop();
    std::printf(
        "the pool grown from 1 to 3 connections through a resolver answering after "
        "600 ms: largest gap of a 5 ms ticker on the same thread: %.1f ms\n",
        tick->largest_ms());
    EXPECT_LT(tick->largest_ms(), largest_gap_ms(delay));
    EXPECT_GE(server_->questions("grow.corp.example"), 3);
    co_await db.close();
  });
}

TEST_F(dns, a_name_that_never_answers_fails_within_the_connect_timeout) {
  server_->set("never.corp.example", {{}, {}, true});
  run([&]() -> asio::awaitable<void> {
    const auto start = clock::now();
    std::string message = co_await expect_sqlstate("08001", [&]() -> asio::awaitable<void> {
      co_await open(url_for("never.corp.example", "connect_timeout=1"));
    });
    const auto took = clock::now() - start;
    EXPECT_GE(took, 900ms);
    EXPECT_LT(took, 3s);
    EXPECT_NE(message.find("never.corp.example"), std::string::npos) << message;
    EXPECT_NE(message.find("timed out"), std::string::npos) << message;
    EXPECT_EQ(message.find("awaitdb-test-secret"), std::string::npos) << message;
  });
}

TEST_F(dns, a_name_that_does_not_exist_fails_at_once_naming_it) {
  server_->set("missing.corp.example", {{}, {}, false, true});
  run([&]() -> asio::awaitable<void> {
    const auto start = clock::now();
    std::string message = co_await expect_sqlstate("08001", [&]() -> asio::awaitable<void> {
      co_await open(url_for("missing.corp.example"));
    });
    EXPECT_LT(clock::now() - start, 2s);
    EXPECT_NE(message.find("missing.corp.example"), std::string::npos) << message;
    EXPECT_NE(message.find("no address"), std::string::npos) << message;
    EXPECT_EQ(message.find("awaitdb-test-secret"), std::string::npos) << message;
  });
}

TEST_F(dns, every_address_of_a_name_is_tried_in_turn) {
  // ::1 and 127.0.0.2 refuse (the server listens on 127.0.0.1 alone).
  server_->set("several.corp.example", {{"::1", "127.0.0.2", "127.0.0.1"}});
  server_->set("refusing.corp.example", {{"::1", "127.0.0.2"}});
  run([&]() -> asio::awaitable<void> {
    database db = co_await open(url_for("several.corp.example"));
    EXPECT_EQ(co_await db.query_scalar<std::string>("SELECT host(inet_server_addr())"),
              "127.0.0.1");
    co_await db.close();
    // None answers: the failure names each address.
    std::string message = co_await expect_sqlstate("08001", [&]() -> asio::awaitable<void> {
      co_await open(url_for("refusing.corp.example"));
    });
    EXPECT_NE(message.find("(::1)"), std::string::npos) << message;
    EXPECT_NE(message.find("(127.0.0.2)"), std::string::npos) << message;
  });
}

TEST_F(dns, a_cancelled_open_cancels_its_lookup) {
  server_->set("hangs.corp.example", {{}, {}, true});
  run([&]() -> asio::awaitable<void> {
    const auto start = clock::now();
    co_await expect_sqlstate("57014", [&]() -> asio::awaitable<void> {
      co_await with_timeout(200ms, open(url_for("hangs.corp.example", "connect_timeout=30")));
    });
    EXPECT_LT(clock::now() - start, 2s);
  });  // (run() fails if the lookup left work behind on the io_context)
}

}  // namespace
}  // namespace awaitdb::test
