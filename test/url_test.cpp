#include "url.hpp"

#include <awaitdb/error.hpp>

#include <gtest/gtest.h>

namespace awaitdb::detail {
namespace {

sqlite_options sqlite(std::string_view url) {
  return std::get<sqlite_options>(parse_url(url));
}
postgres_options postgres(std::string_view url) {
  return std::get<postgres_options>(parse_url(url));
}

std::string error_of(std::string_view url) {
  try {
    parse_url(url);
  } catch (const error& e) {
    EXPECT_EQ(e.sqlstate().substr(0, 2), "08") << e.what();
    return e.what();
  }
  ADD_FAILURE() << "no error for " << url;
  return {};
}

TEST(url, sqlite_forms) {
  EXPECT_EQ(sqlite("sqlite:app.db").path, "app.db");
  EXPECT_EQ(sqlite("sqlite:/var/lib/app.db").path, "/var/lib/app.db");
  EXPECT_EQ(sqlite("sqlite:///var/lib/app.db").path, "/var/lib/app.db");
  EXPECT_TRUE(sqlite("sqlite::memory:").memory);
  EXPECT_FALSE(sqlite("sqlite:app.db").memory);
  EXPECT_EQ(sqlite("sqlite:my%20app.db").path, "my app.db");
}

TEST(url, sqlite_options) {
  auto o = sqlite(
      "sqlite:app.db?mode=ro&busy_timeout=250&statement_cache_size=3&foreign_keys=off"
      "&journal_mode=delete&readers=2");
  EXPECT_EQ(o.mode, sqlite_options::access::read_only);
  EXPECT_EQ(o.readers, 2u);
  EXPECT_EQ(o.busy_timeout, std::chrono::milliseconds(250));
  EXPECT_EQ(o.statement_cache_size, 3u);
  EXPECT_FALSE(o.foreign_keys);
  EXPECT_EQ(o.journal_mode, "delete");
  auto d = sqlite("sqlite:app.db");
  EXPECT_EQ(d.mode, sqlite_options::access::read_write_create);
  EXPECT_TRUE(d.foreign_keys);
  EXPECT_EQ(d.journal_mode, "wal");
  EXPECT_EQ(d.readers, 4u);
}

TEST(url, malformed_urls_are_clear_errors) {
  EXPECT_NE(error_of("").find("no scheme"), std::string::npos);
  EXPECT_NE(error_of("mysql://x").find("unsupported scheme \"mysql\""), std::string::npos);
  EXPECT_NE(error_of("sqlite:").find("file path"), std::string::npos);
  EXPECT_NE(error_of("sqlite:a.db?mode=xx").find("mode=xx"), std::string::npos);
  EXPECT_NE(error_of("sqlite:a.db?busy_timeout=-1").find("busy_timeout"), std::string::npos);
  EXPECT_NE(error_of("sqlite:a.db?readers=65").find("readers"), std::string::npos);
  EXPECT_NE(error_of("sqlite:a.db?colour=blue").find("unknown sqlite option \"colour\""),
            std::string::npos);
  EXPECT_NE(error_of("sqlite:a.db?mode").find("has no value"), std::string::npos);
  EXPECT_NE(error_of("sqlite:a%zz.db").find("percent"), std::string::npos);
  EXPECT_NE(error_of("sqlite::memory:?mode=ro").find("read-only"), std::string::npos);
  EXPECT_NE(error_of("postgresql://u@h/db?pool_max_size=0").find("pool_max_size"),
            std::string::npos);
  EXPECT_NE(error_of("postgresql://u@h/db?pool_max_size=2&pool_min_size=3")
                .find("pool_min_size (3) is above pool_max_size (2)"),
            std::string::npos);
}

TEST(url, postgres_pool_upkeep_options) {
  auto o = postgres(
      "postgresql://u@h/db?pool_min_size=2&pool_max_lifetime_ms=3600000"
      "&pool_idle_timeout_ms=600000&connect_backoff_ms=50&connect_backoff_max_ms=2000");
  EXPECT_EQ(o.libpq_url, "postgresql://u@h/db");
  EXPECT_EQ(o.pool_min_size, 2u);
  EXPECT_EQ(o.pool_max_lifetime, std::chrono::milliseconds(3'600'000));
  EXPECT_EQ(o.pool_idle_timeout, std::chrono::milliseconds(600'000));
  EXPECT_EQ(o.connect_backoff, std::chrono::milliseconds(50));
  EXPECT_EQ(o.connect_backoff_max, std::chrono::milliseconds(2000));
  // Off unless asked for; a short pause after failed connects.
  auto d = postgres("postgresql://u@h/db");
  EXPECT_EQ(d.pool_min_size, 0u);
  EXPECT_EQ(d.pool_max_lifetime.count(), 0);
  EXPECT_EQ(d.pool_idle_timeout.count(), 0);
  EXPECT_EQ(d.connect_backoff, std::chrono::milliseconds(20));
  EXPECT_EQ(d.connect_backoff_max, std::chrono::milliseconds(500));
}

TEST(url, postgres_options_are_stripped_before_libpq) {
  auto o = postgres(
      "postgresql://u:pw@127.0.0.1:5432/app?sslmode=disable&pool_max_size=4"
      "&pool_acquire_timeout_ms=1500&connect_timeout=3&statement_timeout_ms=250"
      "&named_statements=off&target_session_attrs=read-write&pipeline=off&pipeline_depth=8");
  EXPECT_EQ(o.libpq_url,
            "postgresql://u:pw@127.0.0.1:5432/app?sslmode=disable&target_session_attrs=read-write");
  EXPECT_EQ(o.pool_max_size, 4u);
  EXPECT_EQ(o.pool_acquire_timeout, std::chrono::milliseconds(1500));
  EXPECT_EQ(o.connect_timeout, std::chrono::seconds(3));
  EXPECT_EQ(o.statement_timeout, std::chrono::milliseconds(250));
  EXPECT_FALSE(o.named_statements);
  EXPECT_EQ(o.statement_cache_size, 0u);
  EXPECT_FALSE(o.pipeline);
  EXPECT_EQ(o.pipeline_depth, 8u);
  EXPECT_EQ(postgres("postgres://h/db").pipeline_depth, 32u);
  EXPECT_EQ(postgres("postgres://h/db").libpq_url, "postgres://h/db");
  // Several hosts pass through untouched.
  EXPECT_EQ(postgres("postgresql://h1:1,h2:2/db?pool_max_size=2").libpq_url,
            "postgresql://h1:1,h2:2/db");
}

TEST(url, a_transaction_pooler_gets_no_session_state_unless_asked) {
  auto d = postgres("postgresql://h:6432/db?pgbouncer=on");
  EXPECT_TRUE(d.pgbouncer);
  EXPECT_EQ(d.libpq_url, "postgresql://h:6432/db");
  EXPECT_FALSE(d.named_statements);
  EXPECT_EQ(d.statement_cache_size, 0u);
  EXPECT_FALSE(d.pipeline);
  EXPECT_FALSE(postgres("postgres://h/db").pgbouncer);
  // PgBouncer 1.21 and later can keep prepared statements and track pipelined Syncs: on request.
  auto newer = postgres("postgresql://h/db?pgbouncer=on&named_statements=on&pipeline=on");
  EXPECT_TRUE(newer.named_statements);
  EXPECT_GT(newer.statement_cache_size, 0u);
  EXPECT_TRUE(newer.pipeline);
  // A session SET would stay on one server connection: refused, saying what to do instead.
  std::string message = error_of("postgresql://h/db?pgbouncer=on&statement_timeout_ms=500");
  EXPECT_NE(message.find("ALTER ROLE"), std::string::npos) << message;
  EXPECT_NE(message.find("08000"), std::string::npos) << message;
  EXPECT_NE(error_of("postgresql://h/db?pgbouncer=maybe").find("on or off"), std::string::npos);
}

TEST(url, replica_reads_is_awaitdbs_own) {
  auto o = postgres("postgresql://h1:1,h2:2/db?target_session_attrs=read-write&replica_reads=on");
  EXPECT_TRUE(o.replica_reads);
  EXPECT_EQ(o.libpq_url, "postgresql://h1:1,h2:2/db?target_session_attrs=read-write");
  EXPECT_TRUE(o.session_attrs.empty());
  EXPECT_FALSE(postgres("postgresql://h/db").replica_reads);
}

TEST(url, passwords_never_reach_messages) {
  EXPECT_EQ(redact_url("postgresql://ann:s3cret@h:5432/db"), "postgresql://ann:***@h:5432/db");
  EXPECT_EQ(redact_url("postgresql://ann@h/db?password=s3cret&sslmode=require"),
            "postgresql://ann@h/db?password=***&sslmode=require");
  EXPECT_EQ(redact_url("postgresql://h/db"), "postgresql://h/db");
  EXPECT_EQ(postgres("postgresql://ann:s3cret@h/db").display_name, "postgresql://ann:***@h/db");
  std::string message = error_of("postgresql://ann:s3cret@h/db?pool_max_size=x");
  EXPECT_EQ(message.find("s3cret"), std::string::npos) << message;
  message = error_of("mongodb://ann:s3cret@h/db");
  EXPECT_EQ(message.find("s3cret"), std::string::npos) << message;
}

}  // namespace
}  // namespace awaitdb::detail
