// light_mutex: mutual exclusion under contention (threads that sleep and are woken), and
// try_lock's answer while it is held.
#include "util/light_mutex.hpp"

#include <gtest/gtest.h>

#include <mutex>
#include <thread>
#include <vector>

namespace awaitdb::detail {
namespace {

TEST(light_mutex, try_lock_fails_while_held_and_succeeds_after) {
  light_mutex m;
  ASSERT_TRUE(m.try_lock());
  EXPECT_FALSE(m.try_lock());
  m.unlock();
  EXPECT_TRUE(m.try_lock());
  m.unlock();
}

TEST(light_mutex, excludes_threads_that_contend) {
  light_mutex m;
  long long counter = 0;  // unprotected but by the mutex: a lost update shows in the total
  constexpr int threads = 4, rounds = 50'000;
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t)
    workers.emplace_back([&] {
      for (int i = 0; i < rounds; ++i) {
        std::lock_guard lock(m);
        const long long seen = counter;
        if (i % 1000 == 0) std::this_thread::yield();  // (held across a yield: others sleep)
        counter = seen + 1;
      }
    });
  for (auto& w : workers)
    w.join();
  EXPECT_EQ(counter, static_cast<long long>(threads) * rounds);
  EXPECT_TRUE(m.try_lock());  // nothing left holding it
  m.unlock();
}

}  // namespace
}  // namespace awaitdb::detail
