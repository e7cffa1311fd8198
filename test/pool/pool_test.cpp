// The pool alone, with fake connections and an injected clock: no server, milliseconds.
#include "pool/pool.hpp"

#include "deadline.hpp"
#include <awaitdb/database.hpp>
#include <awaitdb/error.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>
#include <string_view>
#include <thread>

namespace awaitdb::detail {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using namespace boost::asio::experimental::awaitable_operators;
using status = connection_pool::status;

struct manual_clock {
  pool_clock::time_point now = pool_clock::now();
};

// Holds a thread inside one of a fake connection's calls (check_alive, make_clean or close: the
// pool's system calls) until opened, as a slow system call would.
struct gate {
  explicit gate(std::string_view which) : call(which) {}
  void pass(std::string_view c) {
    if (c != call) return;
    std::unique_lock lock(mutex);
    entered = true;
    changed.notify_all();
    changed.wait_for(lock, 5s, [&] { return opened; });
  }
  bool wait_entered() {
    std::unique_lock lock(mutex);
    return changed.wait_for(lock, 5s, [&] { return entered; });
  }
  void open() {
    std::lock_guard lock(mutex);
    opened = true;
    changed.notify_all();
  }
  const std::string_view call;
  std::mutex mutex;
  std::condition_variable changed;
  bool entered = false, opened = false;
};

class fake_connection final : public pooled_connection {
 public:
  explicit fake_connection(manual_clock& clock, int number) : clock_(clock), id(number) {
    idle_since_ = clock_.now;
  }
  std::size_t in_flight() const noexcept override { return in_flight_; }
  pool_clock::time_point busy_since() const noexcept override {
    return in_flight_ ? busy_since_ : pool_clock::time_point::max();
  }
  std::size_t slow_in_flight() const noexcept override { return slow_; }
  pool_clock::time_point idle_since() const noexcept override { return idle_since_; }
  bool lost() const noexcept override { return lost_; }
  std::string loss_reason() const override { return why; }
  bool settling() const noexcept override { return settling_now; }
  bool check_alive() noexcept override {
    if (held) held->pass("check_alive");
    ++checks;
    return alive;
  }
  bool make_clean() noexcept override {
    if (held) held->pass("make_clean");
    return true;
  }
  void close() noexcept override {
    if (held) held->pass("close");
    closed = true;
  }

  // Work sent on it (a statement, a rollback on its way; `slow`: placed as a slow statement) ...
  void start_work(bool slow = false) {
    if (in_flight_++ == 0) busy_since_ = clock_.now;
    if (slow) ++slow_;
  }
  // ... and answered.
  void finish_work() {
    in_flight_ = 0;
    slow_ = 0;
    idle_since_ = clock_.now;
    report_quiet();
  }
  void die() {
    lost_ = true;
    report_lost();
  }
  // Closed by itself on purpose (all its work abandoned).
  void drop() {
    lost_ = true;
    report_dropped();
  }
  // A cancel aimed at it is no longer on its way.
  void settle() {
    settling_now = false;
    report_quiet();
  }
  bool settling_now = false;
  std::string why;  // loss_reason

  bool alive = true;
  bool closed = false;
  int checks = 0;
  gate* held = nullptr;

 private:
  manual_clock& clock_;
  std::size_t in_flight_ = 0;
  std::size_t slow_ = 0;
  bool lost_ = false;
  pool_clock::time_point busy_since_{}, idle_since_{};

 public:
  const int id;
};

struct fixture {
  asio::io_context io;
  manual_clock clock;
  std::vector<std::shared_ptr<fake_connection>> opened;
  int failures_to_come = 0;
  std::shared_ptr<connection_pool> pool;

  int attempts = 0;  // calls of the opener

  explicit fixture(pool_options o) {
    auto open = [this]() -> asio::awaitable<std::shared_ptr<pooled_connection>> {
      ++attempts;
      if (failures_to_come > 0) {
        --failures_to_come;
        throw error("08001", "refused");
      }
      auto c = std::make_shared<fake_connection>(clock, static_cast<int>(opened.size()));
      opened.push_back(c);
      co_return c;
    };
    pool = std::make_shared<connection_pool>(io.get_executor(), o, std::move(open),
                                             [this] { return clock.now; });
  }

  // Runs `body` to completion within a bound (then stops: the pool's upkeep timer may be
  // armed).
  void run(std::function<asio::awaitable<void>()> body) {
    bool done = false;
    std::exception_ptr failure;
    asio::co_spawn(io, body(), [&](std::exception_ptr e) {
      failure = e;
      done = true;
      io.stop();
    });
    io.restart();
    io.run_for(5s);
    ASSERT_TRUE(done) << "did not finish";
    if (failure) std::rethrow_exception(failure);
  }
};

pool_options small(std::size_t max) {
  pool_options o;
  o.max_size = max;
  o.acquire_timeout = 100ms;
  return o;
}

fake_connection& fake(const pool_lease& l) {
  return static_cast<fake_connection&>(*l.get());
}

asio::awaitable<void> sleep_for(std::chrono::milliseconds d) {
  asio::steady_timer t(co_await asio::this_coro::executor, d);
  co_await t.async_wait(asio::use_awaitable);
}

TEST(pool, grows_to_its_maximum_then_times_out_with_53300) {
  fixture f(small(2));
  f.run([&]() -> asio::awaitable<void> {
    pool_lease a = co_await f.pool->acquire_exclusive();
    pool_lease b = co_await f.pool->acquire_exclusive();
    EXPECT_NE(a.get(), b.get());
    EXPECT_EQ(f.opened.size(), 2u);
    EXPECT_EQ(f.pool->stats().in_use, 2u);
    const auto start = pool_clock::now();
    try {
      pool_lease c = co_await f.pool->acquire_exclusive();
      ADD_FAILURE() << "a third connection";
    } catch (const error& e) {
      EXPECT_EQ(e.sqlstate(), "53300");
    }
    EXPECT_GE(pool_clock::now() - start, 100ms);
    EXPECT_EQ(f.pool->stats().waiting, 0u);
    a.reset();
    pool_lease again = co_await f.pool->acquire_exclusive();
    EXPECT_EQ(f.opened.size(), 2u);  // reused, not opened
  });
}

// (A coroutine function, not a lambda: a coroutine lambda's captures die with the lambda.)
asio::awaitable<void> take_in_turn(connection_pool& pool, int i, std::vector<int>& order) {
  pool_lease l = co_await pool.acquire_exclusive();
  order.push_back(i);
  co_await sleep_for(1ms);
}

TEST(pool, waiters_are_served_in_order) {
  fixture f(small(1));
  f.run([&]() -> asio::awaitable<void> {
    pool_lease held = co_await f.pool->acquire_exclusive();
    std::vector<int> order;
    auto ex = co_await asio::this_coro::executor;
    for (int i = 0; i < 4; ++i)
      asio::co_spawn(ex, take_in_turn(*f.pool, i, order), asio::detached);
    co_await sleep_for(5ms);
    EXPECT_EQ(f.pool->stats().waiting, 4u);
    held.reset();
    co_await sleep_for(30ms);
    EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3}));
  });
}

// A connection given back with work of its previous user still in flight (a rollback on its
// way) is never lent until that work is answered.
TEST(pool, a_connection_is_lent_again_only_once_quiet) {
  fixture f(small(1));
  f.run([&]() -> asio::awaitable<void> {
    pool_lease first = co_await f.pool->acquire_exclusive();
    fake_connection& c = fake(first);
    c.start_work();
    first.reset();
    EXPECT_EQ(f.pool->statuses(), std::vector<status>{status::draining});
    bool got = false;
    auto ex = co_await asio::this_coro::executor;
    auto next = [&]() -> asio::awaitable<void> {
      pool_lease l = co_await f.pool->acquire_exclusive();
      EXPECT_EQ(l.get()->in_flight(), 0u);
      got = true;
    };
    asio::co_spawn(ex, next(), asio::detached);
    co_await sleep_for(20ms);
    EXPECT_FALSE(got);
    c.finish_work();
    co_await sleep_for(5ms);
    EXPECT_TRUE(got);
  });
}

// Pool of one, shared by pipelined statements: a transaction waiting for it gets it as soon as
// it is quiet, not at its acquire timeout; shared work does not keep it busy meanwhile.
TEST(pool, a_waiting_exclusive_task_gets_a_shared_connection_once_quiet) {
  pool_options o = small(1);
  o.acquire_timeout = 2s;
  fixture f(o);
  f.run([&]() -> asio::awaitable<void> {
    pool_lease shared = co_await f.pool->acquire_shared();
    fake(shared).start_work();
    auto ex = co_await asio::this_coro::executor;
    pool_clock::time_point granted{};
    auto tx = [&]() -> asio::awaitable<void> {
      pool_lease l = co_await f.pool->acquire_exclusive();
      granted = pool_clock::now();
    };
    asio::co_spawn(ex, tx(), asio::detached);
    co_await sleep_for(5ms);
    EXPECT_EQ(f.pool->statuses(), std::vector<status>{status::draining});
    // New shared work waits rather than landing on the draining connection.
    EXPECT_FALSE(f.pool->try_acquire_shared());
    const auto quiet_at = pool_clock::now();
    fake(shared).finish_work();
    shared.reset();
    co_await sleep_for(10ms);
    EXPECT_NE(granted, pool_clock::time_point{});
    if (granted != pool_clock::time_point{}) {
      EXPECT_LT(granted - quiet_at, 5ms);
    }
  });
}

TEST(pool, shared_statements_avoid_a_stalled_connection_while_another_can_open) {
  pool_options o = small(2);
  o.stall_threshold = 5ms;
  fixture f(o);
  f.run([&]() -> asio::awaitable<void> {
    pool_lease slow = co_await f.pool->acquire_shared();
    fake(slow).start_work();
    // Fresh: no stall yet, statements pipeline behind it.
    pool_lease behind = f.pool->try_acquire_shared();
    EXPECT_TRUE(behind);
    EXPECT_EQ(behind.get(), slow.get());
    behind.reset();
    f.clock.now += 10ms;  // the slow statement has now run past the threshold
    EXPECT_FALSE(f.pool->try_acquire_shared());
    pool_lease other = co_await f.pool->acquire_shared();
    EXPECT_NE(other.get(), slow.get());
    EXPECT_EQ(f.opened.size(), 2u);
    // With no room to open another, statements queue behind the stalled one after all.
    fake(other).start_work();
    f.clock.now += 10ms;
    pool_lease last = co_await f.pool->acquire_shared();
    EXPECT_TRUE(last);
  });
}

// A statement known to be slow runs where nothing is in flight: a quiet connection, else a new
// one; with the pool full, behind fast work on a connection that runs nothing slow; else on the
// connection that runs the fewest slow statements.
TEST(pool, a_slow_statement_gets_a_connection_with_nothing_in_flight) {
  pool_options o = small(3);
  o.acquire_timeout = 2s;
  fixture f(o);
  f.run([&]() -> asio::awaitable<void> {
    pool_lease fast = co_await f.pool->acquire_shared();
    fake(fast).start_work();
    // Fresh, so a fast statement would pipeline on it; a slow one does not.
    EXPECT_FALSE(f.pool->try_acquire_shared(true)) << "nothing quiet: it must open one";
    pool_lease s1 = co_await f.pool->acquire_shared(nullptr, true);
    EXPECT_NE(s1.get(), fast.get());
    fake(s1).start_work(true);
    pool_lease s2 = co_await f.pool->acquire_shared(nullptr, true);
    fake(s2).start_work(true);
    EXPECT_EQ(f.opened.size(), 3u);
    EXPECT_NE(s2.get(), s1.get());
    EXPECT_NE(s2.get(), fast.get());
    // Full: behind the fast work, on the connection that runs nothing slow.
    pool_lease s3 = f.pool->try_acquire_shared(true);
    EXPECT_EQ(s3.get(), fast.get());
    if (!s3) co_return;
    fake(s3).start_work(true);
    // Every connection runs something slow: the next ones spread, one more on each, the least
    // busy first.
    pool_lease s4 = co_await f.pool->acquire_shared(nullptr, true);
    EXPECT_NE(s4.get(), fast.get());
    fake(s4).start_work(true);
    pool_lease s5 = co_await f.pool->acquire_shared(nullptr, true);
    EXPECT_NE(s5.get(), fast.get());
    EXPECT_NE(s5.get(), s4.get());
    fake(s5).start_work(true);
    pool_lease s6 = f.pool->try_acquire_shared(true);
    EXPECT_EQ(s6.get(), fast.get());
    // Once one is quiet again, the next takes it.
    fake(s2).finish_work();
    s2.reset();
    if (s4.get() == f.opened[2].get()) s4.reset();
    if (s5.get() == f.opened[2].get()) s5.reset();
    pool_lease s7 = f.pool->try_acquire_shared(true);
    EXPECT_EQ(s7.get(), f.opened[2].get());
  });
}

// Fast statements keep off a connection that runs a slow one while another can be opened.
TEST(pool, fast_statements_keep_off_a_connection_running_a_slow_one) {
  pool_options o = small(2);
  o.acquire_timeout = 2s;
  fixture f(o);
  f.run([&]() -> asio::awaitable<void> {
    pool_lease slow = co_await f.pool->acquire_shared(nullptr, true);
    fake(slow).start_work(true);
    EXPECT_FALSE(f.pool->try_acquire_shared()) << "not pipelined behind the slow statement";
    pool_lease fast = co_await f.pool->acquire_shared();
    EXPECT_NE(fast.get(), slow.get());
    EXPECT_EQ(f.opened.size(), 2u);
    fake(fast).start_work(true);  // it turned out slow too
    // The pool is full and every connection runs something slow: behind one, at once.
    const auto start = pool_clock::now();
    pool_lease now = co_await f.pool->acquire_shared();
    EXPECT_TRUE(now);
    EXPECT_LT(pool_clock::now() - start, 50ms);
    // Once the slow statement ends, fast ones pipeline on its connection again.
    now.reset();
    fake(slow).finish_work();
    pooled_connection* freed = slow.get();
    slow.reset();
    pool_lease again = f.pool->try_acquire_shared();
    EXPECT_EQ(again.get(), freed);
  });
}

TEST(pool, a_lost_connection_frees_its_slot_and_a_dead_idle_one_is_replaced) {
  fixture f(small(1));
  f.run([&]() -> asio::awaitable<void> {
    pool_lease l = co_await f.pool->acquire_shared();
    fake_connection& c = fake(l);
    c.die();
    l.reset();
    EXPECT_EQ(f.pool->stats().size, 0u);
    pool_lease next = co_await f.pool->acquire_shared();
    EXPECT_NE(next.get(), &c);
    next.reset();
    // Idle for a while and found dead when looked at: replaced, not lent.
    pool_lease second = co_await f.pool->acquire_exclusive();
    fake(second).alive = false;
    second.reset();
    f.clock.now += 1s;
    pool_lease fresh = co_await f.pool->acquire_exclusive();
    EXPECT_EQ(f.opened.size(), 3u);
    EXPECT_TRUE(f.opened[1]->closed);
    EXPECT_EQ(fake(fresh).id, 2);
  });
}

TEST(pool, an_idle_connection_is_looked_at_only_after_a_while) {
  fixture f(small(1));
  f.run([&]() -> asio::awaitable<void> {
    (void)co_await f.pool->acquire_exclusive();
    for (int i = 0; i < 10; ++i)
      (void)co_await f.pool->acquire_exclusive();
    EXPECT_EQ(f.opened[0]->checks, 0);  // a loop of statements pays no system call
    f.clock.now += 5ms;
    (void)co_await f.pool->acquire_exclusive();
    EXPECT_EQ(f.opened[0]->checks, 1);
  });
}

TEST(pool, a_failed_open_gives_the_slot_back_and_its_task_tries_again) {
  pool_options o = small(1);
  o.connect_backoff = 5ms;
  o.acquire_timeout = 1s;
  fixture f(o);
  f.failures_to_come = 1;
  f.run([&]() -> asio::awaitable<void> {
    pool_lease l = co_await f.pool->acquire_exclusive();
    EXPECT_TRUE(l);
    EXPECT_EQ(f.attempts, 2);
    EXPECT_EQ(f.pool->stats().size, 1u);
  });
}

// (A coroutine function, not a lambda: see take_in_turn.)
asio::awaitable<void> use_once(connection_pool& pool, int& served, int& failed, std::string& why) {
  try {
    pool_lease l = co_await pool.acquire_exclusive();
    co_await sleep_for(1ms);
    ++served;
  } catch (const error& e) {
    ++failed;
    why = e.what();
  }
}

// A failover or a restart: attempts fail for a while. Nobody fails because of an attempt that
// failed while their own deadline was still ahead.
TEST(pool, a_failed_open_fails_no_waiter_before_its_deadline) {
  pool_options o = small(2);
  o.connect_backoff = 5ms;
  o.connect_backoff_max = 10ms;
  o.acquire_timeout = 2s;
  fixture f(o);
  f.failures_to_come = 6;
  f.run([&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    int served = 0, failed = 0;
    std::string why;
    for (int i = 0; i < 5; ++i)
      asio::co_spawn(ex, use_once(*f.pool, served, failed, why), asio::detached);
    for (int i = 0; i < 1000 && served + failed < 5; ++i)
      co_await sleep_for(2ms);
    EXPECT_EQ(served, 5);
    EXPECT_EQ(failed, 0) << why;
    EXPECT_GE(f.attempts, 7);
  });
}

TEST(pool, with_every_open_failing_each_task_fails_at_its_own_deadline_with_the_last_error) {
  pool_options o = small(2);
  o.connect_backoff = 5ms;
  o.connect_backoff_max = 10ms;
  o.acquire_timeout = 150ms;
  fixture f(o);
  f.failures_to_come = 1'000'000;
  f.run([&]() -> asio::awaitable<void> {
    for (int i = 0; i < 2; ++i) {
      const auto start = pool_clock::now();
      try {
        pool_lease l = co_await f.pool->acquire_exclusive();
        ADD_FAILURE() << "opened";
      } catch (const error& e) {
        EXPECT_EQ(e.sqlstate(), "08001");
        EXPECT_NE(std::string(e.what()).find("refused"), std::string::npos) << e.what();
      }
      const auto took = pool_clock::now() - start;
      EXPECT_GE(took, 130ms);  // not before its deadline (less a last pause)
      EXPECT_LT(took, 1s);
    }
    EXPECT_GE(f.attempts, 6);
    EXPECT_EQ(f.pool->stats().size, 0u);
  });
}

TEST(pool, a_cancelled_waiter_leaves_no_trace) {
  pool_options o = small(1);
  o.acquire_timeout = 10s;
  fixture f(o);
  f.run([&]() -> asio::awaitable<void> {
    pool_lease held = co_await f.pool->acquire_exclusive();
    asio::steady_timer timer(co_await asio::this_coro::executor, 10ms);
    auto which = co_await (f.pool->acquire_exclusive() || timer.async_wait(asio::use_awaitable));
    EXPECT_EQ(which.index(), 1u);
    EXPECT_EQ(f.pool->stats().waiting, 0u);
    held.reset();
    pool_lease l = co_await f.pool->acquire_exclusive();
    EXPECT_EQ(f.opened.size(), 1u);
  });
}

// A waiter granted a free slot and cancelled before it resumes never runs the opening (the
// coroutine throws at its next co_await): the slot must come back all the same.
TEST(pool, a_waiter_cancelled_as_it_is_given_a_slot_gives_the_slot_back) {
  fixture f(small(1));
  f.run([&]() -> asio::awaitable<void> {
    pool_lease held = co_await f.pool->acquire_exclusive();
    auto ex = co_await asio::this_coro::executor;
    asio::cancellation_signal stop;
    bool done = false;
    std::exception_ptr failure;
    auto wait = [&]() -> asio::awaitable<void> {
      pool_lease l = co_await f.pool->acquire_exclusive();
      ADD_FAILURE() << "the cancelled waiter got a connection";
    };
    auto on_done = [&](std::exception_ptr e) {
      done = true;
      failure = e;
    };
    asio::co_spawn(ex, wait(), asio::bind_cancellation_slot(stop.slot(), on_done));
    asio::steady_timer timer(ex, 1ms);
    co_await timer.async_wait(asio::use_awaitable);
    EXPECT_EQ(f.pool->stats().waiting, 1u);
    // The held connection is lost: its slot goes to the waiter, cancelled in the same breath.
    fake(held).die();
    held.reset();
    stop.emit(asio::cancellation_type::terminal);
    while (!done) {
      timer.expires_after(1ms);
      co_await timer.async_wait(asio::use_awaitable);
    }
    EXPECT_TRUE(failure);
    EXPECT_EQ(f.pool->stats().size, 0u);
    pool_lease l = co_await f.pool->acquire_exclusive();  // 53300 if the slot leaked
    EXPECT_TRUE(l);
  });
}

// A cancel sent for the previous user's statement may still land: the connection is lent to
// nobody else until it has settled.
TEST(pool, a_connection_a_cancel_may_still_reach_is_lent_only_once_settled) {
  pool_options o = small(1);
  o.acquire_timeout = 10s;
  fixture f(o);
  f.run([&]() -> asio::awaitable<void> {
    pool_lease first = co_await f.pool->acquire_exclusive();
    fake_connection& c = fake(first);
    c.settling_now = true;
    first.reset();
    auto ex = co_await asio::this_coro::executor;
    bool got = false;
    auto next = [&]() -> asio::awaitable<void> {
      pool_lease l = co_await f.pool->acquire_exclusive();
      got = true;
    };
    asio::co_spawn(ex, next(), asio::detached);
    asio::steady_timer timer(ex, 5ms);
    co_await timer.async_wait(asio::use_awaitable);
    EXPECT_FALSE(got) << "lent while a cancel could still reach it";
    c.settle();
    timer.expires_after(5ms);
    co_await timer.async_wait(asio::use_awaitable);
    EXPECT_TRUE(got);
    EXPECT_EQ(f.opened.size(), 1u);
  });
}

TEST(pool, close_ends_idle_connections_now_and_busy_ones_when_quiet_or_after_grace) {
  fixture f(small(3));
  f.run([&]() -> asio::awaitable<void> {
    pool_lease a = co_await f.pool->acquire_exclusive();
    pool_lease b = co_await f.pool->acquire_exclusive();
    pool_lease c = co_await f.pool->acquire_exclusive();
    c.reset();  // idle
    fake(b).start_work();
    auto ex = co_await asio::this_coro::executor;
    auto give_back = [&]() -> asio::awaitable<void> {
      co_await sleep_for(10ms);
      a.reset();
    };
    asio::co_spawn(ex, give_back(), asio::detached);
    const auto start = pool_clock::now();
    co_await f.pool->close(50ms);
    EXPECT_GE(pool_clock::now() - start, 50ms);  // b never became quiet: the grace ran out
    EXPECT_TRUE(f.opened[0]->closed);
    EXPECT_TRUE(f.opened[1]->closed);
    EXPECT_TRUE(f.opened[2]->closed);
    try {
      pool_lease l = co_await f.pool->acquire_exclusive();
      ADD_FAILURE() << "acquired from a closed pool";
    } catch (const error& e) {
      EXPECT_EQ(e.sqlstate(), "08003");
    }
  });
}

}  // namespace
}  // namespace awaitdb::detail

namespace awaitdb::detail {
namespace {

// ---- upkeep (issue: pool lifetime settings)

asio::awaitable<void> until(std::function<bool()> condition) {
  for (int i = 0; i < 1000 && !condition(); ++i)
    co_await sleep_for(1ms);
  EXPECT_TRUE(condition()) << "not within 1 s";
}

std::size_t closed_count(const fixture& f) {
  return static_cast<std::size_t>(
      std::count_if(f.opened.begin(), f.opened.end(), [](const auto& c) { return c->closed; }));
}

TEST(pool, a_connection_past_its_lifetime_is_not_lent_again) {
  pool_options o = small(2);
  o.max_lifetime = 1000ms;
  fixture f(o);
  f.run([&]() -> asio::awaitable<void> {
    (void)co_await f.pool->acquire_exclusive();
    f.clock.now += 970ms;  // within the limit, however it was shortened (by 1/40 at most)
    {
      pool_lease l = co_await f.pool->acquire_exclusive();
      EXPECT_EQ(fake(l).id, 0);
    }
    f.clock.now += 30ms;  // 1000 ms: past it
    pool_lease l = co_await f.pool->acquire_exclusive();
    EXPECT_EQ(fake(l).id, 1);
    EXPECT_TRUE(f.opened[0]->closed);
    EXPECT_EQ(f.pool->stats().size, 1u);
  });
}

TEST(pool, a_busy_connection_past_its_lifetime_gets_no_new_work_and_closes_once_quiet) {
  pool_options o = small(2);
  o.max_lifetime = 1000ms;
  fixture f(o);
  f.run([&]() -> asio::awaitable<void> {
    pool_lease busy = co_await f.pool->acquire_shared();
    fake_connection& old = fake(busy);
    old.start_work();
    f.clock.now += 1000ms;
    f.pool->housekeep();
    EXPECT_FALSE(old.closed);  // its statement goes on
    EXPECT_EQ(f.pool->statuses(), std::vector<status>{status::draining});
    pool_lease next = co_await f.pool->acquire_shared();
    EXPECT_NE(next.get(), &old);
    old.finish_work();
    busy.reset();
    EXPECT_TRUE(old.closed);
    EXPECT_EQ(f.pool->stats().size, 1u);
  });
}

TEST(pool, idle_connections_above_the_minimum_close_after_the_idle_timeout) {
  pool_options o = small(4);
  o.min_size = 1;
  o.idle_timeout = 1000ms;
  fixture f(o);
  f.run([&]() -> asio::awaitable<void> {
    f.pool->start();  // opens the minimum in the background
    co_await until([&] { return f.pool->statuses() == std::vector<status>{status::idle}; });
    {
      pool_lease a = co_await f.pool->acquire_exclusive();
      pool_lease b = co_await f.pool->acquire_exclusive();
      pool_lease c = co_await f.pool->acquire_exclusive();
    }
    EXPECT_EQ(f.opened.size(), 3u);
    f.clock.now += 500ms;
    f.pool->housekeep();
    EXPECT_EQ(f.pool->stats().size, 3u);
    f.clock.now += 500ms;
    f.pool->housekeep();
    EXPECT_EQ(f.pool->stats().size, 1u);  // down to the minimum, not below
    EXPECT_EQ(closed_count(f), 2u);
    f.clock.now += 10s;
    f.pool->housekeep();
    EXPECT_EQ(f.pool->stats().size, 1u);
  });
}

TEST(pool, the_minimum_is_opened_again_after_a_loss) {
  pool_options o = small(4);
  o.min_size = 2;
  fixture f(o);
  f.run([&]() -> asio::awaitable<void> {
    f.pool->start();
    co_await until([&] { return f.pool->stats().idle == 2; });
    EXPECT_EQ(f.opened.size(), 2u);
    f.opened[0]->die();
    co_await until([&] { return f.opened.size() == 3 && f.pool->stats().idle == 2; });
    // A failed open is tried again by the upkeep (after the pause that follows failures).
    f.failures_to_come = 1;
    f.opened[1]->die();
    co_await until([&] { return f.attempts == 4; });
    EXPECT_EQ(f.pool->stats().size, 1u);
    f.pool->housekeep();  // (what the upkeep timer does)
    co_await until([&] { return f.attempts == 5 && f.pool->stats().idle == 2; });
  });
}

TEST(pool, failed_opens_are_spaced_by_a_pause_that_grows) {
  pool_options o = small(2);
  o.connect_backoff = 1000ms;
  o.connect_backoff_max = 4000ms;
  o.acquire_timeout = 100ms;  // shorter than every pause: refused at once
  fixture f(o);
  f.failures_to_come = 3;
  f.run([&]() -> asio::awaitable<void> {
    auto refused = [&](std::string_view what) -> asio::awaitable<void> {
      const auto start = pool_clock::now();
      try {
        pool_lease l = co_await f.pool->acquire_exclusive();
        ADD_FAILURE() << what << ": opened";
      } catch (const error& e) {
        EXPECT_EQ(e.sqlstate(), "08001") << what;
        EXPECT_NE(std::string(e.what()).find("refused"), std::string::npos) << e.what();
      }
      EXPECT_LT(pool_clock::now() - start, 50ms) << what;
    };
    co_await refused("first attempt");
    EXPECT_EQ(f.attempts, 1);
    co_await refused("within the first pause");
    EXPECT_EQ(f.attempts, 1);  // not tried
    f.clock.now += 1000ms;
    co_await refused("second attempt");
    EXPECT_EQ(f.attempts, 2);
    f.clock.now += 1000ms;  // the pause doubled: 1000 ms of it left
    co_await refused("within the second pause");
    EXPECT_EQ(f.attempts, 2);
    f.clock.now += 1000ms;
    co_await refused("third attempt");
    EXPECT_EQ(f.attempts, 3);
    f.clock.now += 4000ms;  // doubled again, up to the maximum
    pool_lease first = co_await f.pool->acquire_exclusive();
    EXPECT_EQ(f.attempts, 4);
    // A success that has stood through the probation (1 s) starts the count again: the next
    // failure pauses for the first step only.
    f.clock.now += 1000ms;
    f.failures_to_come = 1;
    co_await refused("after a success");
    f.clock.now += 1000ms;
    pool_lease second = co_await f.pool->acquire_exclusive();
    EXPECT_EQ(f.attempts, 6);
    EXPECT_EQ(f.pool->stats().size, 2u);
  });
}

TEST(pool, a_connection_lost_right_after_its_open_counts_as_a_failed_open) {
  pool_options o = small(2);
  o.connect_backoff = 1000ms;
  o.connect_backoff_max = 4000ms;
  o.connect_probation = 500ms;
  o.acquire_timeout = 100ms;  // shorter than every pause: refused at once
  fixture f(o);
  f.run([&]() -> asio::awaitable<void> {
    auto refused = [&](std::string_view what, std::string_view message) -> asio::awaitable<void> {
      try {
        pool_lease l = co_await f.pool->acquire_exclusive();
        ADD_FAILURE() << what << ": opened";
      } catch (const error& e) {
        EXPECT_EQ(e.sqlstate(), "08006") << what;
        EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << e.what();
      }
    };
    {
      pool_lease l = co_await f.pool->acquire_exclusive();
      f.clock.now += 10ms;
      fake(l).why = "connection lost while idle";
      fake(l).die();
    }
    // A server that accepts and drops at once is not reconnected to in a loop; the message says
    // why the connection was found lost.
    co_await refused("after a loss 10 ms after the open",
                     "lost 10 ms after it opened (connection lost while idle)");
    EXPECT_EQ(f.attempts, 1);
    f.clock.now += 1000ms;
    {
      pool_lease l = co_await f.pool->acquire_exclusive();
      fake(l).die();
    }
    EXPECT_EQ(f.attempts, 2);
    f.clock.now += 1000ms;  // the pause doubled: 1000 ms of it left
    co_await refused("within the second pause", "lost 0 ms after it opened");
    EXPECT_EQ(f.attempts, 2);
    f.clock.now += 1000ms;
    {
      // Lives through its probation: its loss is no failure, and the next open goes at once.
      pool_lease l = co_await f.pool->acquire_exclusive();
      f.clock.now += 500ms;
      fake(l).die();
    }
    pool_lease next = co_await f.pool->acquire_exclusive();
    EXPECT_EQ(f.attempts, 4);
    // The failures before are forgotten: a failed open now pauses for the first step only.
    f.failures_to_come = 1;
    try {
      pool_lease l = co_await f.pool->acquire_exclusive();
      ADD_FAILURE() << "opened";
    } catch (const error& e) {
      EXPECT_EQ(e.sqlstate(), "08001");
    }
    f.clock.now += 1000ms;
    pool_lease last = co_await f.pool->acquire_exclusive();
    EXPECT_EQ(f.attempts, 6);
  });
}

TEST(pool, a_young_connection_dropped_on_purpose_is_no_failed_open) {
  pool_options o = small(2);
  o.connect_backoff = 1000ms;
  o.connect_probation = 500ms;
  fixture f(o);
  f.run([&]() -> asio::awaitable<void> {
    for (int i = 0; i < 3; ++i) {
      // Its statements all timed out and it closed itself, 10 ms after its open: the next
      // task gets a new connection at once, with no pause.
      pool_lease l = co_await f.pool->acquire_exclusive();
      f.clock.now += 10ms;
      fake(l).drop();
    }
    pool_lease next = co_await f.pool->acquire_exclusive();
    EXPECT_EQ(f.attempts, 4);
    EXPECT_EQ(f.pool->stats().size, 1u);
    // A real loss that young still counts.
    fake(next).die();
    next.reset();
    try {
      pool_lease l = co_await f.pool->acquire_exclusive();
      ADD_FAILURE() << "opened within the pause";
    } catch (const error& e) {
      EXPECT_EQ(e.sqlstate(), "08006");
    }
    EXPECT_EQ(f.attempts, 4);
  });
}

TEST(pool, a_task_whose_deadline_ends_before_the_next_open_times_out) {
  pool_options o = small(1);
  o.connect_backoff = 1000ms;
  o.acquire_timeout = 10s;  // the task's own deadline binds
  fixture f(o);
  f.failures_to_come = 1;
  f.run([&]() -> asio::awaitable<void> {
    try {
      pool_lease l =
          co_await f.pool->acquire_exclusive(nullptr, connection_pool::open_failures::fail_at_once);
      ADD_FAILURE() << "opened";
    } catch (const error& e) {
      EXPECT_EQ(e.sqlstate(), "08001");
    }
    // The next attempt is due in 1000 ms; this task has 100 ms: it times out, and does not
    // fail with the refusal above, which was not its own.
    deadline_state task(deadline_state::clock::now() + 100ms, 100ms);
    try {
      pool_lease l = co_await f.pool->acquire_exclusive(&task);
      ADD_FAILURE() << "opened";
    } catch (const error& e) {
      EXPECT_EQ(e.sqlstate(), "57014") << e.what();
    }
    EXPECT_EQ(f.attempts, 1);
    // Without a deadline of its own, the pool's acquire timeout binds (10 s > the pause): the
    // task waits out the pause and opens.
    f.clock.now += 1000ms;
    pool_lease l = co_await f.pool->acquire_exclusive();
    EXPECT_EQ(f.attempts, 2);
  });
}

TEST(pool, a_task_waits_out_a_pause_shorter_than_its_deadline) {
  pool_options o = small(1);
  o.connect_backoff = 30ms;
  o.acquire_timeout = 1s;
  fixture f(o);
  f.failures_to_come = 1;
  f.run([&]() -> asio::awaitable<void> {
    // The first attempt fails; the task waits out the pause and the next one opens.
    const auto start = pool_clock::now();
    pool_lease l = co_await f.pool->acquire_exclusive();
    EXPECT_GE(pool_clock::now() - start, 25ms);
    EXPECT_EQ(f.attempts, 2);
  });
}

// The pool makes its system calls (a look at an idle connection, the rollback that makes one
// fit again, a close) after releasing its lock: while one thread is held inside such a call,
// a task on another thread still gets a connection.
void another_task_acquires_while_held_in(std::string_view call) {
  SCOPED_TRACE(std::string(call));
  pool_options o = small(2);
  o.acquire_timeout = 5s;
  fixture f(o);
  f.run([&]() -> asio::awaitable<void> {
    pool_lease a = co_await f.pool->acquire_exclusive();
    pool_lease b = co_await f.pool->acquire_exclusive();
  });
  ASSERT_EQ(f.opened.size(), 2u);
  // Both idle for a while: looked at before they are lent. The last one is taken first.
  f.clock.now += 1s;
  gate g(call);
  fake_connection& slow = *f.opened[1];
  slow.held = &g;
  if (call != "make_clean") slow.alive = false;  // found dead, then closed

  auto guard = asio::make_work_guard(f.io);
  f.io.restart();
  std::thread first([&] { f.io.run(); });
  std::thread second([&] { f.io.run(); });
  std::atomic<bool> got_other{false};
  auto first_task = [&]() -> asio::awaitable<void> {
    // Exclusive use given back: made fit again (make_clean) once quiet.
    pool_lease l = co_await f.pool->acquire_exclusive();
  };
  auto second_task = [&]() -> asio::awaitable<void> {
    pool_lease l = co_await f.pool->acquire_exclusive();
    got_other = fake(l).id == 0;
  };
  asio::co_spawn(f.io, first_task(), asio::detached);
  ASSERT_TRUE(g.wait_entered()) << "the pool never called " << call;
  asio::co_spawn(f.io, second_task(), asio::detached);
  const auto until = std::chrono::steady_clock::now() + 2s;
  while (!got_other && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(1ms);
  const bool served_while_held = got_other;
  g.open();
  guard.reset();
  first.join();
  second.join();
  slow.held = nullptr;
  EXPECT_TRUE(served_while_held) << "another task waited for " << call << " to return";
}

TEST(pool, no_system_call_is_made_under_the_lock) {
  another_task_acquires_while_held_in("check_alive");
  another_task_acquires_while_held_in("close");
  another_task_acquires_while_held_in("make_clean");
}

}  // namespace
}  // namespace awaitdb::detail
