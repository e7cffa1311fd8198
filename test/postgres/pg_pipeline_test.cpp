// The pipeline record alone, fed synthetic libpq result sequences: no server, no socket.
#include "postgres/pg_pipeline.hpp"

#include <awaitdb/error.hpp>

#include <gtest/gtest.h>

namespace awaitdb::detail {
namespace {

using namespace std::chrono_literals;
const pg_clock::time_point t0 = pg_clock::now();

pg_group_ptr group(std::initializer_list<pg_command> commands, bool retryable = true,
                   pg_clock::time_point sent = t0) {
  auto g = std::make_shared<pg_group>();
  for (pg_command c : commands)
    g->commands.push_back(c);
  g->retryable = retryable;
  g->sent_at = sent;
  return g;
}

pg_event result(ExecStatusType status) {
  pg_event e;
  e.what = pg_event::kind::result;
  e.status = status;
  return e;
}
pg_event end() {
  return pg_event{};
}
pg_event sync() {
  return result(PGRES_PIPELINE_SYNC);
}
pg_event failure(std::string state) {
  pg_event e = result(PGRES_FATAL_ERROR);
  e.failure = std::make_exception_ptr(error(state, "from the server"));
  e.sqlstate = std::move(state);
  return e;
}

std::string sqlstate_of(const pg_group& g) {
  try {
    throw_failure(g);
  } catch (const error& e) {
    return e.sqlstate();
  }
}

// Feeds events in order; returns the groups completed, in order.
template <class... Events>
std::vector<pg_group_ptr> feed_at(pg_pipeline& p, pg_clock::time_point now, Events... events) {
  std::vector<pg_group_ptr> done;
  auto one = [&](pg_event e) {
    pg_pipeline::step s = p.feed(std::move(e), now);
    EXPECT_FALSE(s.protocol_error);
    if (s.completed) done.push_back(s.completed);
  };
  (one(std::move(events)), ...);
  return done;
}
template <class... Events>
std::vector<pg_group_ptr> feed(pg_pipeline& p, Events... events) {
  return feed_at(p, t0, std::move(events)...);
}

TEST(pg_pipeline, groups_complete_in_order_each_at_its_sync) {
  pg_pipeline p;
  auto a = group({pg_command::prepare, pg_command::statement});
  auto b = group({pg_command::statement});
  p.push(a);
  p.push(b);
  EXPECT_EQ(p.size(), 2u);
  EXPECT_EQ(p.busy_since(), t0);
  auto done = feed(p, result(PGRES_COMMAND_OK), end(), result(PGRES_TUPLES_OK), end(), sync());
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0], a);
  EXPECT_EQ(a->verdict, pg_verdict::ok);
  EXPECT_TRUE(a->answered);
  EXPECT_EQ(b->verdict, pg_verdict::pending);
  done = feed(p, result(PGRES_COMMAND_OK), end(), sync());
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0], b);
  EXPECT_TRUE(p.empty());
  EXPECT_EQ(p.busy_since(), pg_clock::time_point::max());
}

// The time a group runs on the server starts when it reaches the head: time queued behind
// others is not its own (what the pool's stall rule and statement timings read).
TEST(pg_pipeline, a_group_runs_from_when_it_reaches_the_head) {
  pg_pipeline p;
  auto a = group({pg_command::statement}, true, t0);
  auto b = group({pg_command::statement}, true, t0 + 1ms);
  auto c = group({pg_command::statement}, true, t0 + 2ms);
  p.push(a);
  p.push(b);
  p.push(c);
  EXPECT_EQ(p.busy_since(), t0);
  feed_at(p, t0 + 200ms, result(PGRES_TUPLES_OK), end(), sync());
  EXPECT_EQ(a->ran_for, 200ms);
  EXPECT_EQ(p.busy_since(), t0 + 200ms) << "b began when a ended, not when it was sent";
  feed_at(p, t0 + 201ms, result(PGRES_TUPLES_OK), end(), sync());
  EXPECT_EQ(b->ran_for, 1ms);
  feed_at(p, t0 + 205ms, result(PGRES_TUPLES_OK), end(), sync());
  EXPECT_EQ(c->ran_for, 4ms);
  // Sent to an idle connection later: it begins when sent.
  auto d = group({pg_command::statement}, true, t0 + 300ms);
  p.push(d);
  EXPECT_EQ(p.busy_since(), t0 + 300ms);
  feed_at(p, t0 + 302ms, result(PGRES_TUPLES_OK), end(), sync());
  EXPECT_EQ(d->ran_for, 2ms);
}

TEST(pg_pipeline, a_failure_fails_its_group_only) {
  pg_pipeline p;
  auto a = group({pg_command::control, pg_command::statement});  // BEGIN, statement
  auto b = group({pg_command::statement});
  p.push(a);
  p.push(b);
  auto done = feed(p, result(PGRES_COMMAND_OK), end(), failure("22012"), end(), sync(),
                   result(PGRES_TUPLES_OK), end(), sync());
  ASSERT_EQ(done.size(), 2u);
  EXPECT_EQ(a->verdict, pg_verdict::failed);
  EXPECT_EQ(sqlstate_of(*a), "22012");
  EXPECT_EQ(a->failed_command, pg_command::statement);
  EXPECT_EQ(b->verdict, pg_verdict::ok);
}

TEST(pg_pipeline, the_first_failure_of_a_group_is_kept_aborted_commands_ignored) {
  pg_pipeline p;
  auto g = group({pg_command::deallocate, pg_command::prepare, pg_command::statement}, false);
  p.push(g);
  feed(p, failure("26000"), end(), result(PGRES_PIPELINE_ABORTED), end(),
       result(PGRES_PIPELINE_ABORTED), end(), sync());
  EXPECT_EQ(g->verdict, pg_verdict::failed);
  EXPECT_EQ(sqlstate_of(*g), "26000");
  EXPECT_EQ(g->failed_command, pg_command::deallocate);
  EXPECT_EQ(g->rows, nullptr);
}

TEST(pg_pipeline, a_stale_cached_plan_is_sent_again_outside_a_transaction) {
  for (const char* state : {"0A000", "26000"}) {
    pg_pipeline p;
    auto out = group({pg_command::statement}, true);
    out->executed_name = "awaitdb_3";
    auto in = group({pg_command::statement}, false);  // inside a transaction
    in->executed_name = "awaitdb_3";
    auto fresh = group({pg_command::prepare, pg_command::statement}, true);
    fresh->prepared_name = "awaitdb_4";
    p.push(out);
    p.push(in);
    p.push(fresh);
    feed(p, failure(state), end(), sync(), failure(state), end(), sync(), result(PGRES_COMMAND_OK),
         end(), failure(state), end(), sync());
    EXPECT_EQ(out->verdict, pg_verdict::resend) << state;
    EXPECT_EQ(in->verdict, pg_verdict::failed) << state;
    // Only a statement executed from the cache is stale: one prepared now failed for itself.
    EXPECT_EQ(fresh->verdict, pg_verdict::failed) << state;
  }
}

TEST(pg_pipeline, results_that_match_nothing_sent_are_a_protocol_error) {
  pg_pipeline p;
  EXPECT_TRUE(p.feed(result(PGRES_TUPLES_OK), t0).protocol_error);  // nothing in flight
  p.push(group({pg_command::statement}));
  EXPECT_FALSE(p.feed(result(PGRES_TUPLES_OK), t0).protocol_error);
  EXPECT_FALSE(p.feed(end(), t0).protocol_error);
  EXPECT_TRUE(p.feed(result(PGRES_TUPLES_OK), t0).protocol_error);  // a second command's result
  pg_pipeline copy;
  copy.push(group({pg_command::statement}));
  auto s = copy.feed(result(PGRES_COPY_OUT), t0);
  EXPECT_TRUE(s.protocol_error);  // COPY cannot be driven inside the pipeline
}

TEST(pg_pipeline, an_abandoned_group_is_cancelled_when_it_runs) {
  pg_pipeline p;
  auto running = group({pg_command::statement});
  auto queued = group({pg_command::statement});
  auto after = group({pg_command::statement});
  p.push(running);
  p.push(queued);
  p.push(after);
  // The awaiter of a queued group leaves: nothing to cancel yet (another group runs).
  EXPECT_EQ(p.abandon(queued), nullptr);
  EXPECT_TRUE(queued->abandoned());
  pg_pipeline::step s;
  feed(p, result(PGRES_TUPLES_OK), end());
  s = p.feed(sync(), t0);
  EXPECT_EQ(s.completed, running);
  EXPECT_EQ(s.cancel, queued);  // it runs now: cancel it on the server
  EXPECT_EQ(queued->watch, pg_watch::cancel_sent);
  // The head's awaiter leaving: cancelled at once, and only once.
  pg_pipeline q;
  auto head = group({pg_command::statement});
  q.push(head);
  EXPECT_EQ(q.abandon(head), head);
  EXPECT_EQ(q.abandon(head), nullptr);
}

// Who waits for a group, as one state: a detached group is never cancelled; a left one is
// cancelled once, when it starts running (at once if it runs now).
TEST(pg_pipeline, the_watch_of_a_group_moves_from_awaited_to_cancel_sent_once) {
  pg_pipeline p;
  auto running = group({pg_command::statement});
  auto detached = group({pg_command::control});
  detached->watch = pg_watch::detached;
  auto left = group({pg_command::statement});
  p.push(running);
  p.push(detached);
  p.push(left);
  EXPECT_EQ(running->watch, pg_watch::awaited);
  EXPECT_FALSE(running->abandoned());
  EXPECT_TRUE(detached->abandoned());
  EXPECT_EQ(p.abandon(left), nullptr);
  EXPECT_EQ(left->watch, pg_watch::cancel_wanted);
  feed(p, result(PGRES_TUPLES_OK), end());
  pg_pipeline::step s = p.feed(sync(), t0);
  EXPECT_EQ(s.cancel, nullptr) << "a detached group is nobody's to cancel";
  EXPECT_EQ(detached->watch, pg_watch::detached);
  feed(p, result(PGRES_COMMAND_OK), end());
  s = p.feed(sync(), t0);
  EXPECT_EQ(s.cancel, left);
  EXPECT_EQ(left->watch, pg_watch::cancel_sent);
  EXPECT_EQ(p.abandon(left), nullptr) << "cancelled twice";
  EXPECT_EQ(left->watch, pg_watch::cancel_sent);
}

// What a completed group teaches the statement cache comes with it: the driver tests no code.
TEST(pg_pipeline, a_completed_group_says_what_the_statement_cache_must_do) {
  auto run = [](std::initializer_list<pg_command> commands, std::string executed,
                std::size_t failing, std::string state) {
    pg_pipeline p;
    auto g = group(commands, false);
    g->executed_name = std::move(executed);
    p.push(g);
    for (std::size_t i = 0; i < commands.size(); ++i) {
      if (i == failing)
        feed(p, failure(state), end());
      else
        feed(p, result(i < failing ? PGRES_COMMAND_OK : PGRES_PIPELINE_ABORTED), end());
    }
    feed(p, sync());
    return g->cache_action;
  };
  const auto none = std::size_t(-1);
  EXPECT_EQ(run({pg_command::statement}, "s1", none, ""), pg_cache_action::none);
  EXPECT_EQ(run({pg_command::statement}, "s1", 0, "0A000"), pg_cache_action::replan);
  EXPECT_EQ(run({pg_command::statement}, "s1", 0, "26000"), pg_cache_action::forget_executed);
  EXPECT_EQ(run({pg_command::prepare, pg_command::statement}, "", 0, "42601"),
            pg_cache_action::forget_prepared);
  // The statement's own failure, or an unnamed statement's: nothing to learn.
  EXPECT_EQ(run({pg_command::statement}, "s1", 0, "23505"), pg_cache_action::none);
  EXPECT_EQ(run({pg_command::statement}, "", 0, "0A000"), pg_cache_action::none);
  EXPECT_EQ(run({pg_command::control, pg_command::statement}, "s1", 0, "0A000"),
            pg_cache_action::none);
}

TEST(pg_pipeline, a_connection_left_only_abandoned_work_is_worth_dropping) {
  pg_pipeline p;
  std::vector<pg_group_ptr> sent;
  for (int i = 0; i < 4; ++i) {
    sent.push_back(group({pg_command::statement}));
    p.push(sent.back());
  }
  // A detached rollback is abandoned but nothing to stop; a live group keeps the connection.
  sent[0]->watch = pg_watch::detached;
  p.abandon(sent[1]);
  p.abandon(sent[2]);
  EXPECT_FALSE(p.only_abandoned_work()) << "a task still waits for the last group";
  p.abandon(sent[3]);
  EXPECT_TRUE(p.only_abandoned_work()) << "three statements to stop, nobody waiting";
  // Fewer than the threshold to stop: cancels are cheaper than a new connection.
  pg_pipeline q;
  auto rollback = group({pg_command::control});
  rollback->watch = pg_watch::detached;
  auto left = group({pg_command::statement});
  q.push(rollback);
  q.push(left);
  q.abandon(left);
  EXPECT_FALSE(q.only_abandoned_work());
}

TEST(pg_pipeline, a_stray_cancel_is_retried_only_where_it_may_have_hit) {
  pg_pipeline p;
  auto target = group({pg_command::statement}, true, t0);
  auto bystander = group({pg_command::statement}, true, t0 + 1ms);
  auto in_tx = group({pg_command::statement}, false, t0 + 2ms);
  p.push(target);
  p.push(bystander);
  p.push(in_tx);
  EXPECT_EQ(p.abandon(target), target);
  p.cancel_issued(t0 + 3ms);
  // The cancel arrives after the target finished and hits the next one.
  feed_at(p, t0 + 4ms, result(PGRES_TUPLES_OK), end(), sync());
  feed_at(p, t0 + 5ms, failure("57014"), end(), sync());
  p.cancel_finished(t0 + 6ms);
  feed_at(p, t0 + 7ms, failure("57014"), end(), sync());
  EXPECT_EQ(bystander->verdict, pg_verdict::resend);
  EXPECT_EQ(in_tx->verdict, pg_verdict::failed);  // inside a transaction: as the server says
  // Long after the window, a 57014 (a statement timeout, say) is the statement's own.
  auto late = group({pg_command::statement}, true, t0 + 1s);
  p.push(late);
  feed_at(p, t0 + 2s, failure("57014"), end(), sync());
  EXPECT_EQ(late->verdict, pg_verdict::failed);
  // And the cancelled statement's own 57014 is never re-sent.
  pg_pipeline q;
  auto own = group({pg_command::statement}, true, t0);
  q.push(own);
  q.abandon(own);
  q.cancel_issued(t0);
  feed_at(q, t0 + 1ms, failure("57014"), end(), sync());
  EXPECT_EQ(own->verdict, pg_verdict::failed);
}

TEST(pg_pipeline, losing_the_connection_fails_every_group) {
  pg_pipeline p;
  auto a = group({pg_command::statement});
  auto b = group({pg_command::statement});
  p.push(a);
  p.push(b);
  auto why = std::make_exception_ptr(error("08006", "connection lost"));
  auto lost = p.lose(why);
  ASSERT_EQ(lost.size(), 2u);
  EXPECT_TRUE(p.empty());
  // Nobody can tell what the server ran: nothing is sent again.
  EXPECT_EQ(a->verdict, pg_verdict::failed);
  EXPECT_EQ(b->verdict, pg_verdict::failed);
  EXPECT_EQ(sqlstate_of(*b), "08006");
}

TEST(pg_pipeline, groups_behind_one_the_server_terminated_on_are_sent_again) {
  pg_pipeline p;
  auto running = group({pg_command::statement});
  auto behind = group({pg_command::statement});
  auto behind_in_tx = group({pg_command::statement}, false);
  p.push(running);
  p.push(behind);
  p.push(behind_in_tx);
  feed(p, failure("57P01"), end());
  p.lose(std::make_exception_ptr(error("08006", "connection lost")));
  EXPECT_EQ(running->verdict, pg_verdict::failed);  // it was running: killed, not re-run
  EXPECT_EQ(sqlstate_of(*running), "57P01");
  EXPECT_EQ(behind->verdict, pg_verdict::resend_elsewhere);
  EXPECT_EQ(behind_in_tx->verdict, pg_verdict::failed);
}

}  // namespace
}  // namespace awaitdb::detail
