// Which hosts a connection tries, in which order, with which target_session_attrs.
#include "postgres/pg_hosts.hpp"

#include "postgres/pg_resolve.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>

namespace awaitdb::detail {
namespace {

std::string value_of(const pg_host_attempt& a, std::string_view key) {
  auto it = std::find(a.keys.begin(), a.keys.end(), key);
  return it == a.keys.end() ? "<none>" : a.values[it - a.keys.begin()];
}

TEST(pg_hosts, one_host_is_one_attempt) {
  auto numeric = plan_host_attempts("postgresql://u:pw@127.0.0.1:5432/db");
  ASSERT_EQ(numeric.size(), 1u);
  EXPECT_EQ(value_of(numeric[0], "host"), "127.0.0.1");
  EXPECT_EQ(value_of(numeric[0], "dbname"), "db");
  EXPECT_EQ(numeric[0].lookup, "");
  EXPECT_EQ(numeric[0].label, "127.0.0.1:5432");
  auto named = plan_host_attempts("host=db.internal port=1 dbname=db");
  ASSERT_EQ(named.size(), 1u);
  EXPECT_EQ(named[0].lookup, "db.internal");
  EXPECT_EQ(value_of(named[0], "host"), "db.internal");
  EXPECT_EQ(value_of(named[0], "hostaddr"), "<none>");
}

TEST(pg_hosts, names_are_looked_up_but_addresses_and_sockets_are_not) {
  auto plan = plan_host_attempts(
      "postgresql://u@db.internal:1,[::1]:2,10.0.0.3:3,%2Fvar%2Frun%2Fpostgresql:4/app");
  ASSERT_EQ(plan.size(), 4u);
  EXPECT_EQ(plan[0].lookup, "db.internal");
  EXPECT_EQ(plan[1].lookup, "");
  EXPECT_EQ(value_of(plan[1], "host"), "::1");
  EXPECT_EQ(plan[2].lookup, "");
  EXPECT_EQ(plan[3].lookup, "");
  EXPECT_EQ(value_of(plan[3], "host"), "/var/run/postgresql");
  // hostaddr given: libpq connects to it and looks nothing up.
  auto given = plan_host_attempts("host=db.internal hostaddr=10.0.0.1 dbname=d");
  ASSERT_EQ(given.size(), 1u);
  EXPECT_EQ(given[0].lookup, "");
  EXPECT_TRUE(host_needs_lookup("localhost"));
  EXPECT_FALSE(host_needs_lookup("fe80::1"));
  EXPECT_FALSE(host_needs_lookup("@abstract"));
  EXPECT_FALSE(host_needs_lookup(""));
}

TEST(pg_hosts, no_host_takes_the_environments_as_libpq_would) {
  ::unsetenv("PGHOSTADDR");
  ::setenv("PGHOST", "env.example", 1);
  auto plan = plan_host_attempts("postgresql:///db");
  ::unsetenv("PGHOST");
  ASSERT_EQ(plan.size(), 1u);
  EXPECT_EQ(value_of(plan[0], "host"), "env.example");
  EXPECT_EQ(plan[0].lookup, "env.example");
  auto socket = plan_host_attempts("postgresql:///db");
  ASSERT_EQ(socket.size(), 1u);
  EXPECT_EQ(value_of(socket[0], "host"), "<none>");  // libpq's default socket
  EXPECT_EQ(socket[0].lookup, "");
}

TEST(pg_hosts, each_host_is_an_attempt_of_its_own_in_order) {
  auto plan = plan_host_attempts(
      "postgresql://u:pw@10.0.0.1:5433,10.0.0.2:5434/app?target_session_attrs=read-write"
      "&sslmode=disable&application_name=svc");
  ASSERT_EQ(plan.size(), 2u);
  EXPECT_EQ(value_of(plan[0], "host"), "10.0.0.1");
  EXPECT_EQ(value_of(plan[0], "port"), "5433");
  EXPECT_EQ(value_of(plan[1], "host"), "10.0.0.2");
  EXPECT_EQ(value_of(plan[1], "port"), "5434");
  for (const auto& a : plan) {
    EXPECT_EQ(value_of(a, "target_session_attrs"), "read-write");
    EXPECT_EQ(value_of(a, "dbname"), "app");
    EXPECT_EQ(value_of(a, "user"), "u");
    EXPECT_EQ(value_of(a, "password"), "pw");
    EXPECT_EQ(value_of(a, "sslmode"), "disable");
    EXPECT_EQ(value_of(a, "application_name"), "svc");
    EXPECT_EQ(std::count(a.keys.begin(), a.keys.end(), "host"), 1);
  }
  EXPECT_EQ(plan[0].label, "10.0.0.1:5433");
  EXPECT_EQ(plan[1].label.find("pw"), std::string::npos);
}

TEST(pg_hosts, one_port_serves_every_host_and_hostaddr_pairs_with_host) {
  auto plan = plan_host_attempts("host=a,b,c port=7 hostaddr=1.1.1.1,2.2.2.2,3.3.3.3 dbname=d");
  ASSERT_EQ(plan.size(), 3u);
  EXPECT_EQ(value_of(plan[2], "host"), "c");
  EXPECT_EQ(value_of(plan[2], "hostaddr"), "3.3.3.3");
  EXPECT_EQ(value_of(plan[2], "port"), "7");
  EXPECT_EQ(value_of(plan[0], "target_session_attrs"), "<none>");
}

TEST(pg_hosts, prefer_standby_looks_for_a_standby_everywhere_first) {
  auto plan = plan_host_attempts("postgresql://h1:1,h2:2/db?target_session_attrs=prefer-standby");
  ASSERT_EQ(plan.size(), 4u);
  EXPECT_EQ(value_of(plan[0], "host"), "h1");
  EXPECT_EQ(value_of(plan[0], "target_session_attrs"), "standby");
  EXPECT_EQ(value_of(plan[1], "host"), "h2");
  EXPECT_EQ(value_of(plan[1], "target_session_attrs"), "standby");
  EXPECT_EQ(value_of(plan[2], "host"), "h1");
  EXPECT_EQ(value_of(plan[2], "target_session_attrs"), "any");
  EXPECT_EQ(value_of(plan[3], "target_session_attrs"), "any");
}

TEST(pg_hosts, given_session_attrs_replace_the_urls) {
  auto plan = plan_host_attempts("postgresql://h1:1,h2:2/db?target_session_attrs=read-write",
                                 "prefer-standby");
  ASSERT_EQ(plan.size(), 4u);
  EXPECT_EQ(value_of(plan[0], "target_session_attrs"), "standby");
  // Even one host is rewritten then.
  auto one = plan_host_attempts("postgresql://h1:1/db", "read-write");
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(value_of(one[0], "target_session_attrs"), "read-write");
}

TEST(pg_hosts, what_libpq_would_refuse_is_left_to_libpq) {
  EXPECT_TRUE(plan_host_attempts("postgresql://h1:1,h2:2,h3:3/db?port=1,2").empty());
  EXPECT_TRUE(plan_host_attempts("host=a,b hostaddr=1.1.1.1 dbname=d").empty());
  EXPECT_TRUE(plan_host_attempts("not a conninfo at all = =").empty());
}

}  // namespace
}  // namespace awaitdb::detail
