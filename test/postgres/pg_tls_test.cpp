// TLS against a server that accepts nothing else (scripts/pg-cluster start-tls): verify-full
// works with pipelining and cancellation, a wrong authority, a host name the certificate does
// not name and a plain connection fail at once with 08001, and client certificates log in.
// (The whole PostgreSQL suite also runs once over this server: see scripts/test.)
#include "pg_support.hpp"
#include <awaitdb/timeout.hpp>

#include <boost/asio/experimental/awaitable_operators.hpp>

namespace awaitdb::test {
namespace {

using namespace boost::asio::experimental::awaitable_operators;

class tls : public testing::Test {
 protected:
  void SetUp() override {
    const char* u = std::getenv("AWAITDB_TEST_TLS_POSTGRES_URL");
    ASSERT_TRUE(u && *u) << "AWAITDB_TEST_TLS_POSTGRES_URL is not set: run the tests with "
                            "scripts/test";
    url_ = u;
    const std::string key = "sslrootcert=";
    const auto at = url_.find(key);
    ASSERT_NE(at, std::string::npos) << url_;
    const std::string ca = url_.substr(at + key.size(), url_.find('&', at) - at - key.size());
    dir_ = ca.substr(0, ca.rfind('/'));
    port_ = url_.substr(url_.find("localhost:") + 10);
    port_ = port_.substr(0, port_.find('/'));
  }
  // The URL with `from` replaced by `to`.
  std::string changed(const std::string& from, const std::string& to) const {
    std::string u = url_;
    u.replace(u.find(from), from.size(), to);
    return u;
  }
  // Expects opening `u` to fail with 08001 within a second; returns the message.
  void expect_refused(const std::string& u, std::string_view reason) {
    run([&]() -> asio::awaitable<void> {
      const auto start = clock::now();
      std::string message =
          co_await expect_sqlstate("08001", [&]() -> asio::awaitable<void> { co_await open(u); });
      EXPECT_LT(clock::now() - start, 2s);
      EXPECT_NE(message.find(reason), std::string::npos) << message;
      EXPECT_EQ(message.find("awaitdb-test-secret"), std::string::npos) << message;
    });
  }
  std::string url_, dir_, port_;
};

TEST_F(tls, verify_full_connects_pipelines_and_cancels) {
  run([&]() -> asio::awaitable<void> {
    database db = co_await open(url_);
    row r =
        co_await db.query_one("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()");
    EXPECT_TRUE(r.get<bool>(0));
    EXPECT_TRUE(r.get<std::string>(1).starts_with("TLS")) << r.get<std::string>(1);
    // Pipelined statements of several tasks on the encrypted connection.
    auto add = [&](int i) -> asio::awaitable<std::int32_t> {
      co_return co_await db.query_scalar<std::int32_t>("SELECT $1::int + 1", i);
    };
    auto [a, b, c] = co_await (add(1) && add(2) && add(3));
    EXPECT_EQ(a + b + c, 9);
    // A statement cancelled on the server.
    co_await expect_sqlstate("57014", [&]() -> asio::awaitable<void> {
      co_await with_timeout(100ms, db.execute("SELECT pg_sleep(30)"));
    });
    EXPECT_LT(co_await time_until_gone(db, 5000ms), 2s);
    EXPECT_EQ(co_await db.query_scalar<std::int32_t>("SELECT 1"), 1);
    co_await db.close();
  });
}

TEST_F(tls, a_wrong_authority_is_refused_at_once) {
  expect_refused(changed("ca.crt", "other-ca.crt"), "certificate verify failed");
}

TEST_F(tls, a_host_name_the_certificate_does_not_name_is_refused_at_once) {
  // Connected to the right address under a name the certificate does not carry.
  expect_refused(changed("localhost:", "elsewhere.invalid:") + "&hostaddr=127.0.0.1",
                 "does not match host name \"elsewhere.invalid\"");
}

TEST_F(tls, a_connection_without_tls_is_refused_at_once) {
  expect_refused(changed("sslmode=verify-full", "sslmode=disable"), "no encryption");
}

TEST_F(tls, a_client_certificate_logs_in) {
  const std::string base = "postgresql://awaitdb_cert@localhost:" + port_ +
                           "/awaitdb?sslmode=verify-full&sslrootcert=" + dir_ + "/ca.crt";
  run([&]() -> asio::awaitable<void> {
    database db =
        co_await open(base + "&sslcert=" + dir_ + "/client.crt&sslkey=" + dir_ + "/client.key");
    EXPECT_EQ(co_await db.query_scalar<std::string>("SELECT current_user"), "awaitdb_cert");
    EXPECT_TRUE(co_await db.query_scalar<bool>(
        "SELECT client_dn IS NOT NULL FROM pg_stat_ssl WHERE pid = pg_backend_pid()"));
    co_await db.close();
  });
  // Without it, the role has no other way in.
  expect_refused(base + "&sslcert=" + dir_ + "/none.crt&sslkey=" + dir_ + "/none.key",
                 "awaitdb_cert");
}

}  // namespace
}  // namespace awaitdb::test
