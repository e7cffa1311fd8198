// Which executors promise one thread: the contexts Asio documents as run by one thread.
#include "util/one_thread.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/system_executor.hpp>
#include <boost/asio/thread_pool.hpp>

#include <gtest/gtest.h>

namespace awaitdb::detail {
namespace {

namespace asio = boost::asio;

TEST(one_thread, only_contexts_made_for_one_thread_promise_it) {
  asio::io_context one(1);
  EXPECT_TRUE(runs_on_one_thread(one.get_executor()));
  EXPECT_TRUE(runs_on_one_thread(asio::make_strand(one)));
  asio::io_context unlocked(BOOST_ASIO_CONCURRENCY_HINT_UNSAFE);
  EXPECT_TRUE(runs_on_one_thread(unlocked.get_executor()));

  asio::io_context any;  // the default hint: any number of threads
  EXPECT_FALSE(runs_on_one_thread(any.get_executor()));
  asio::io_context two(2);
  EXPECT_FALSE(runs_on_one_thread(two.get_executor()));
  EXPECT_FALSE(runs_on_one_thread(asio::make_strand(two)));
  asio::thread_pool pool(2);
  EXPECT_FALSE(runs_on_one_thread(pool.get_executor()));
  pool.join();
  EXPECT_FALSE(runs_on_one_thread(asio::system_executor()));
  EXPECT_FALSE(runs_on_one_thread(asio::any_io_executor()));
}

}  // namespace
}  // namespace awaitdb::detail
