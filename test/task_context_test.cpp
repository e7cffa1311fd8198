// The task context alone: the executor wrapper that carries a task's transactions.
#include "task_context.hpp"

#include "backend.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <gtest/gtest.h>

namespace awaitdb::detail {
namespace {

namespace asio = boost::asio;

// An engine that is never asked to do anything: the task context only needs an owner.
class idle_backend final : public backend {
 public:
  awaitdb::engine kind() const noexcept override { return awaitdb::engine::sqlite; }
  bool try_run_inline(statement&, tx_state*) override { return false; }
  asio::awaitable<void> run(statement&, tx_state*) override { co_return; }
  asio::awaitable<std::unique_ptr<row_source>> open_stream(statement&, tx_state*) override {
    co_return nullptr;
  }
  asio::awaitable<std::shared_ptr<tx_state>> begin(std::shared_ptr<tx_state>, tx_state*,
                                                   const transaction_options&,
                                                   deadline_state*) override {
    co_return nullptr;
  }
  asio::awaitable<std::unique_ptr<copy_sink>> copy_in(statement&, tx_state*) override {
    co_return nullptr;
  }
  asio::awaitable<std::unique_ptr<copy_source>> copy_out(statement&, tx_state*) override {
    co_return nullptr;
  }
  asio::awaitable<std::shared_ptr<subscription_state>> listen(std::string) override {
    co_return nullptr;
  }
  asio::awaitable<void> backup(std::string, backup_options, deadline_state*) override { co_return; }
  void define_function(std::shared_ptr<const sql_function>) override {}
  asio::awaitable<void> commit(tx_state&) override { co_return; }
  void rollback(tx_state&) noexcept override {}
  pool_stats stats() const override { return {}; }
  asio::awaitable<void> close() override { co_return; }
};

TEST(task_context, a_wrapped_executor_carries_the_innermost_level_and_its_chain) {
  asio::io_context io;
  idle_backend a, b;
  auto top_a = std::make_shared<tx_state>(a, nullptr, nullptr);
  auto top_b = std::make_shared<tx_state>(b, top_a, nullptr);
  auto savepoint_b = std::make_shared<tx_state>(b, top_b, top_b.get());
  EXPECT_EQ(savepoint_b->depth(), 1u);
  EXPECT_EQ(&savepoint_b->top(), top_b.get());

  asio::any_io_executor plain = io.get_executor();
  EXPECT_EQ(innermost_transaction(plain), nullptr);
  asio::any_io_executor inner = with_transaction(plain, savepoint_b);
  EXPECT_EQ(innermost_transaction(inner), savepoint_b.get());
  EXPECT_EQ(find_transaction(inner, b), savepoint_b.get());
  EXPECT_EQ(find_transaction(inner, a), top_a.get());  // through the chain of parents
  idle_backend c;
  EXPECT_EQ(find_transaction(inner, c), nullptr);
  // A wrapper is never wrapped: the new context replaces the old one.
  asio::any_io_executor again = with_transaction(inner, top_a);
  EXPECT_EQ(innermost_transaction(again), top_a.get());
  EXPECT_EQ(find_transaction(again, b), nullptr);
  // It is the same execution context, and work posted through it runs there.
  EXPECT_EQ(&asio::query(inner, asio::execution::context), &io);
  bool ran = false;
  asio::post(inner, [&] { ran = true; });
  io.run();
  EXPECT_TRUE(ran);
}

TEST(task_context, a_strand_stays_a_strand_when_it_carries_a_transaction) {
  asio::thread_pool threads(2);
  idle_backend owner;
  auto level = std::make_shared<tx_state>(owner, nullptr, nullptr);
  asio::any_io_executor strand = asio::make_strand(threads.get_executor());
  asio::any_io_executor wrapped = with_transaction(strand, level);
  int unguarded = 0;  // only the strand serializes these increments
  constexpr int n = 20000;
  for (int i = 0; i < n; ++i)
    asio::post(wrapped, [&] { ++unguarded; });
  threads.join();
  EXPECT_EQ(unguarded, n);
}

// The wrapper reports the blocking property of what it wraps, whatever that is: posting and
// dispatching through it depend on it (never-blocking executors must not run work inline).
TEST(task_context, a_wrapped_executor_reports_the_blocking_property_of_the_one_it_wraps) {
  namespace execution = asio::execution;
  asio::io_context io;
  asio::thread_pool threads(1);
  idle_backend owner;
  auto level = std::make_shared<tx_state>(owner, nullptr, nullptr);
  const auto plain = io.get_executor();
  {  // (the tracked executors keep `io` busy until they are gone)
    const auto tracked = asio::prefer(plain, execution::outstanding_work.tracked);
    const asio::any_io_executor executors[] = {
        plain,
        asio::require(plain, execution::blocking.never),
        tracked,
        asio::require(tracked, execution::blocking.never),
        threads.get_executor(),
        asio::require(threads.get_executor(), execution::blocking.never),
        asio::make_strand(plain)};
    for (const asio::any_io_executor& ex : executors) {
      const asio::any_io_executor wrapped = with_transaction(ex, level);
      EXPECT_EQ(asio::query(wrapped, execution::blocking), asio::query(ex, execution::blocking));
      const asio::any_io_executor never = asio::require(wrapped, execution::blocking.never);
      EXPECT_EQ(asio::query(never, execution::blocking), execution::blocking.never);
      EXPECT_EQ(innermost_transaction(never), level.get());
    }
  }
  // A never-blocking wrapper does not run work inline, even on its own thread.
  bool ran = false, ran_inline = true;
  auto check = [&] {
    asio::any_io_executor never =
        asio::require(with_transaction(plain, level), execution::blocking.never);
    never.execute([&] { ran = true; });
    ran_inline = ran;
  };
  io.restart();  // (the last tracked executor's end stopped it)
  asio::post(io, check);
  io.run();
  EXPECT_TRUE(ran);
  EXPECT_FALSE(ran_inline);
  threads.join();
}

asio::awaitable<void> observe(tx_state*& seen) {
  seen = innermost_transaction(co_await asio::this_coro::executor);
}

TEST(task_context, coroutines_started_on_the_wrapped_executor_inherit_it) {
  asio::io_context io;
  idle_backend owner;
  auto level = std::make_shared<tx_state>(owner, nullptr, nullptr);
  tx_state* seen = nullptr;
  tx_state* child_seen = nullptr;
  auto parent = [&]() -> asio::awaitable<void> {
    co_await observe(seen);
    co_await asio::co_spawn(co_await asio::this_coro::executor, observe(child_seen),
                            asio::use_awaitable);
  };
  asio::co_spawn(with_transaction(io.get_executor(), level), parent(), asio::detached);
  io.run();
  EXPECT_EQ(seen, level.get());
  EXPECT_EQ(child_seen, level.get());
}

}  // namespace
}  // namespace awaitdb::detail
