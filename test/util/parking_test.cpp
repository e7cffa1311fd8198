// Parked tasks and the wait list alone: no database.
#include "util/parking.hpp"

#include "task_context.hpp"
#include "util/wait_list.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <thread>

namespace awaitdb::detail {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

struct sentinel {
  bool& destroyed;
  ~sentinel() { destroyed = true; }
};

asio::awaitable<void> park_on(waiter_ptr w, bool& destroyed, waiter::state& seen) {
  sentinel s{destroyed};
  auto [ec, state] = co_await w->async_wait(asio::as_tuple(asio::deferred));
  seen = ec ? waiter::state::cancelled : state;
}

TEST(waiter, a_notify_before_or_after_the_wait_resumes_the_task) {
  asio::io_context io;
  bool destroyed = false;
  waiter::state seen = waiter::state::pending;
  auto early = std::make_shared<waiter>();
  EXPECT_TRUE(early->notify());
  EXPECT_FALSE(early->notify());  // once
  asio::co_spawn(io, park_on(early, destroyed, seen), asio::detached);
  io.run();
  EXPECT_EQ(seen, waiter::state::signalled);

  auto late = std::make_shared<waiter>();
  seen = waiter::state::pending;
  asio::co_spawn(io, park_on(late, destroyed, seen), asio::detached);
  io.restart();
  io.run_for(10ms);
  EXPECT_EQ(seen, waiter::state::pending);
  late->notify();
  io.run_for(10ms);
  EXPECT_EQ(seen, waiter::state::signalled);
}

// Records, when the task resumes, how many owners its waiter has left.
asio::awaitable<void> park_and_count(waiter_ptr w, long& owners, waiter::state& seen) {
  auto [ec, state] = co_await w->async_wait(asio::as_tuple(asio::deferred));
  seen = ec ? waiter::state::cancelled : state;
  owners = w.use_count();
}

TEST(waiter, a_notify_here_resumes_inline_only_on_the_tasks_own_thread) {
  asio::io_context io;
  bool destroyed = false;
  waiter::state seen = waiter::state::pending;
  long owners = 0;
  auto w = std::make_shared<waiter>();
  asio::co_spawn(io, park_and_count(w, owners, seen), asio::detached);
  io.run_for(10ms);
  ASSERT_EQ(seen, waiter::state::pending);
  // From a handler of the task's own context: the task has run by the time notify returns, and
  // the notifier's reference was gone by then (the task held the only one).
  bool resumed_inside = false;
  auto notify_inline = [&] {
    EXPECT_TRUE(waiter::notify_here(std::move(w)));
    resumed_inside = seen == waiter::state::signalled;
  };
  asio::post(io, notify_inline);
  io.restart();
  io.run_for(10ms);
  EXPECT_TRUE(resumed_inside);
  EXPECT_EQ(owners, 1);

  // From a thread that does not run the context: posted, as with `notify`.
  auto other = std::make_shared<waiter>();
  seen = waiter::state::pending;
  asio::co_spawn(io, park_on(other, destroyed, seen), asio::detached);
  io.restart();
  io.run_for(10ms);
  std::thread([&] { waiter::notify_here(other); }).join();
  EXPECT_EQ(seen, waiter::state::pending);
  io.restart();
  io.run_for(10ms);
  EXPECT_EQ(seen, waiter::state::signalled);
  EXPECT_FALSE(waiter::notify_here(other));  // once
}

// Also when the task carries a task context (a transaction's body runs on such a wrapper) and
// when it runs on a strand: called directly, as `dispatch` would call it.
TEST(waiter, a_notify_here_runs_inline_on_a_thread_pool_and_through_a_strand) {
  asio::thread_pool pool(1);
  auto strand = asio::make_strand(pool.get_executor());
  for (const asio::any_io_executor& ex :
       {asio::any_io_executor(pool.get_executor()), asio::any_io_executor(strand),
        with_transaction(pool.get_executor(), nullptr), with_transaction(strand, nullptr)}) {
    std::atomic<waiter::state> seen = waiter::state::pending;
    std::atomic<bool> parking = false;
    auto w = std::make_shared<waiter>();
    auto park = [w, &seen, &parking]() -> asio::awaitable<void> {
      parking = true;  // parks within this same handler
      auto [ec, state] = co_await w->async_wait(asio::as_tuple(asio::deferred));
      seen = ec ? waiter::state::cancelled : state;
    };
    asio::co_spawn(ex, park, asio::detached);
    std::promise<bool> inside;
    auto notify_inline = [&] {
      waiter::notify_here(w);
      inside.set_value(seen == waiter::state::signalled);
    };
    // Posted once the task is parking: the pool's one thread runs it after the task parked.
    while (!parking)
      std::this_thread::sleep_for(1ms);
    asio::post(ex, notify_inline);
    auto result = inside.get_future();
    ASSERT_EQ(result.wait_for(5s), std::future_status::ready);
    EXPECT_TRUE(result.get());
  }
  pool.join();
}

TEST(waiter, per_operation_cancellation_completes_the_wait) {
  asio::io_context io;
  bool destroyed = false;
  waiter::state seen = waiter::state::pending;
  auto w = std::make_shared<waiter>();
  asio::cancellation_signal signal;
  asio::co_spawn(io, park_on(w, destroyed, seen),
                 asio::bind_cancellation_slot(signal.slot(), asio::detached));
  io.run_for(10ms);
  signal.emit(asio::cancellation_type::terminal);
  io.run_for(10ms);
  EXPECT_EQ(seen, waiter::state::cancelled);
  EXPECT_FALSE(w->notify());  // a cancelled waiter stays cancelled
}

// The task holds the only reference to its waiter, and the waiter holds the task: without the
// context's service, that cycle would never be freed.
TEST(waiter, a_task_parked_when_its_context_dies_is_destroyed_not_leaked) {
  bool destroyed = false;
  waiter::state seen = waiter::state::pending;
  std::weak_ptr<waiter> weak;
  {
    asio::io_context io;
    auto w = std::make_shared<waiter>();
    weak = w;
    asio::co_spawn(io, park_on(std::move(w), destroyed, seen), asio::detached);
    io.run_for(10ms);  // the task is parked: the context is left with it (say, stopped)
    EXPECT_FALSE(destroyed);
    EXPECT_FALSE(weak.expired());
  }
  EXPECT_TRUE(destroyed);
  EXPECT_TRUE(weak.expired());
  EXPECT_EQ(seen, waiter::state::pending);  // destroyed, never resumed
}

TEST(waiter, notifies_from_other_threads_race_safely_with_waits) {
  asio::thread_pool threads(2);
  std::atomic<int> resumed{0};
  constexpr int n = 2000;
  auto one = [&](waiter_ptr w) -> asio::awaitable<void> {
    co_await w->async_wait(asio::as_tuple(asio::deferred));
    ++resumed;
  };
  for (int i = 0; i < n; ++i) {
    auto w = std::make_shared<waiter>();
    asio::co_spawn(threads, one(w), asio::detached);
    asio::post(threads, [w] { w->notify(); });
  }
  threads.join();
  EXPECT_EQ(resumed.load(), n);
}

asio::awaitable<void> wait_in(wait_list& list, int id, std::vector<int>& order,
                              std::optional<std::chrono::steady_clock::time_point> deadline,
                              std::vector<wait_list::outcome>& outcomes) {
  std::mutex m;
  std::unique_lock lock(m);
  outcomes.push_back(co_await list.wait(lock, deadline));
  order.push_back(id);
}

TEST(wait_list, serves_in_order_with_deadlines) {
  asio::io_context io;
  wait_list list;
  std::vector<int> order;
  std::vector<wait_list::outcome> outcomes;
  for (int i = 0; i < 3; ++i)
    asio::co_spawn(io, wait_in(list, i, order, std::nullopt, outcomes), asio::detached);
  asio::co_spawn(io, wait_in(list, 9, order, std::chrono::steady_clock::now() + 20ms, outcomes),
                 asio::detached);
  io.run_for(5ms);
  EXPECT_EQ(list.size(), 4u);
  EXPECT_TRUE(list.notify_one());
  EXPECT_TRUE(list.notify_one());
  io.run_for(50ms);  // the one with a deadline times out meanwhile
  EXPECT_EQ(order, (std::vector<int>{0, 1, 9}));
  EXPECT_EQ(outcomes.back(), wait_list::outcome::timed_out);
  EXPECT_EQ(list.size(), 1u);
  list.notify_all();
  io.run_for(5ms);
  EXPECT_EQ(order, (std::vector<int>{0, 1, 9, 2}));
  EXPECT_FALSE(list.notify_one());
}

TEST(wait_list, an_abandoned_ticket_reports_a_signal_it_had_received) {
  wait_list list;
  auto t = list.enqueue();
  list.notify(t);
  EXPECT_TRUE(list.abandon(t));
  auto u = list.enqueue();
  EXPECT_FALSE(list.abandon(u));
  EXPECT_EQ(list.size(), 0u);
}

}  // namespace
}  // namespace awaitdb::detail
