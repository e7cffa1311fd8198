// The statement timings the pool places statements by: fed runs, asked for advice. No server.
#include "pool/statement_latency.hpp"

#include <gtest/gtest.h>

namespace awaitdb::detail {
namespace {

using namespace std::chrono_literals;
using route = statement_latency::route;
const statement_latency::clock::time_point t0 = statement_latency::clock::now();

TEST(statement_latency, a_new_statement_runs_at_once_and_others_wait_for_its_first_run) {
  statement_latency book(5ms);
  const auto k = statement_latency::key("SELECT pg_sleep(0.2)");
  EXPECT_EQ(book.classify(k, t0).how, route::first) << "the first run goes at once";
  // Its task waits for a connection: the others wait too, looking again now and then.
  auto a = book.classify(k, t0 + 1ms);
  EXPECT_EQ(a.how, route::wait);
  EXPECT_EQ(a.until, t0 + 6ms);
  EXPECT_EQ(book.classify(k, t0 + 30ms).how, route::wait) << "unsent, it proves nothing";
  // Sent: timed from then, until it has proved the statement slow (a first run may take a few
  // thresholds: it parses and plans too).
  book.sent(k, t0 + 2ms);
  a = book.classify(k, t0 + 3ms);
  EXPECT_EQ(a.how, route::wait);
  EXPECT_EQ(a.until, t0 + 2ms + statement_latency::first_run_patience * 5ms);
  EXPECT_FALSE(book.estimate(k));
  // Still running then: slow, without waiting for its end.
  EXPECT_EQ(book.classify(k, a.until).how, route::slow);
  EXPECT_TRUE(book.record(k, 200ms)) << "the first measured run";
  EXPECT_EQ(book.classify(k, t0 + 6ms).how, route::slow);
  EXPECT_FALSE(book.record(k, 200ms));
}

TEST(statement_latency, a_first_run_never_sent_hands_the_part_on) {
  statement_latency book(5ms);
  const auto k = statement_latency::key("SELECT 42");
  EXPECT_EQ(book.classify(k, t0).how, route::first);
  EXPECT_EQ(book.classify(k, t0).how, route::wait);
  book.not_sent(k);
  EXPECT_EQ(book.classify(k, t0 + 1ms).how, route::first) << "the next asker runs it";
  book.sent(k, t0 + 1ms);
  book.not_sent(k);  // (sent: a late call changes nothing)
  EXPECT_EQ(book.classify(k, t0 + 2ms).how, route::wait);
}

TEST(statement_latency, a_fast_statement_waits_less_than_its_first_run_then_pipelines) {
  statement_latency book(5ms);
  const auto k = statement_latency::key("SELECT abalance FROM pgbench_accounts WHERE aid = $1");
  EXPECT_EQ(book.classify(k, t0).how, route::first);
  EXPECT_EQ(book.classify(k, t0).how, route::wait);
  EXPECT_TRUE(book.record(k, 300us));
  EXPECT_EQ(book.classify(k, t0 + 1ms).how, route::fast);
  EXPECT_EQ(*book.estimate(k), 300us);
}

TEST(statement_latency, the_estimate_follows_recent_runs) {
  statement_latency book(5ms);
  const auto k = statement_latency::key("SELECT report()");
  book.classify(k, t0);
  book.record(k, 1ms);
  EXPECT_EQ(book.classify(k, t0).how, route::fast);
  book.record(k, 1ms);
  // It turns slow (a table grew): slow within a few runs.
  int runs = 0;
  while (book.classify(k, t0).how == route::fast && runs < 10) {
    book.record(k, 40ms);
    ++runs;
  }
  EXPECT_GE(runs, 1);
  EXPECT_LE(runs, 2);
  // And fast again.
  runs = 0;
  while (book.classify(k, t0).how == route::slow && runs < 20) {
    book.record(k, 100us);
    ++runs;
  }
  EXPECT_GE(runs, 2);
  EXPECT_LE(runs, 10);
  EXPECT_EQ(book.classify(k, t0).how, route::fast);
}

TEST(statement_latency, one_run_slowed_by_a_busy_host_does_not_make_a_statement_slow) {
  statement_latency book(5ms);
  const auto k = statement_latency::key("SELECT 1");
  book.classify(k, t0);
  book.record(k, 8ms);  // the first run also planned, on a busy host
  EXPECT_EQ(book.classify(k, t0).how, route::fast) << "a first run alone, within the patience";
  book.record(k, 100us);
  EXPECT_EQ(book.classify(k, t0).how, route::fast);
  book.record(k, 100us);
  book.record(k, 30ms);  // the client thread was not scheduled for a while
  EXPECT_EQ(book.classify(k, t0).how, route::fast);
  EXPECT_EQ(*book.estimate(k), 100us);
}

TEST(statement_latency, statements_are_told_apart_and_a_full_book_starts_again) {
  statement_latency book(5ms, 2);
  const auto a = statement_latency::key("SELECT 1"), b = statement_latency::key("SELECT 2"),
             c = statement_latency::key("SELECT 3");
  EXPECT_NE(a, b);
  book.classify(a, t0);
  book.record(a, 30ms);
  book.classify(b, t0);
  book.record(b, 1ms);
  EXPECT_EQ(book.classify(a, t0).how, route::slow);
  EXPECT_EQ(book.classify(b, t0).how, route::fast);
  book.classify(c, t0);  // a third: the book starts again with it
  EXPECT_FALSE(book.estimate(a));
  EXPECT_FALSE(book.estimate(b));
  EXPECT_EQ(book.classify(a, t0).how, route::first) << "new again";
  // A run recorded for a statement forgotten meanwhile is kept.
  book.record(b, 30ms);
  EXPECT_EQ(book.classify(b, t0).how, route::slow);
}

TEST(statement_latency, a_zero_threshold_places_everything_as_fast_and_records_nothing) {
  statement_latency book(0ms);
  const auto k = statement_latency::key("SELECT pg_sleep(1)");
  EXPECT_FALSE(book.enabled());
  EXPECT_EQ(book.classify(k, t0).how, route::fast);
  EXPECT_EQ(book.classify(k, t0).how, route::fast);
  EXPECT_FALSE(book.record(k, 1s));
  EXPECT_FALSE(book.estimate(k));
}

}  // namespace
}  // namespace awaitdb::detail
