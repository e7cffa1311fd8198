// The per-thread block cache behind per-statement objects: no database.
#include "util/thread_cache.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <set>
#include <thread>
#include <vector>

namespace awaitdb::detail {
namespace {

struct payload {
  int values[24] = {};
};

TEST(thread_cache, a_freed_object_s_memory_is_reused_by_the_next_on_the_same_thread) {
  auto first = std::allocate_shared<payload>(thread_cache_allocator<payload>());
  const void* where = first.get();
  first.reset();
  auto second = std::allocate_shared<payload>(thread_cache_allocator<payload>());
  EXPECT_EQ(second.get(), where);
  EXPECT_EQ(second->values[0], 0);  // constructed afresh
}

TEST(thread_cache, it_keeps_a_few_blocks_and_gives_the_rest_back) {
  using cache = block_cache<64, alignof(std::max_align_t), 4>;
  std::vector<void*> blocks;
  for (int i = 0; i < 10; ++i)
    blocks.push_back(cache::take());
  const std::set<void*> distinct(blocks.begin(), blocks.end());
  EXPECT_EQ(distinct.size(), blocks.size());
  for (void* p : blocks)
    cache::give(p);  // the first 4 are kept, the other 6 go to the heap
  // The 4 kept come back, last kept first.
  std::vector<void*> again;
  for (std::size_t i = 0; i < 4; ++i) {
    again.push_back(cache::take());
    EXPECT_EQ(again.back(), blocks[3 - i]);
  }
  // The fifth is new memory (or a block the heap hands out again), never one still held.
  void* fifth = cache::take();
  for (void* p : again)
    EXPECT_NE(fifth, p);
  cache::give(fifth);
  for (void* p : again)
    cache::give(p);
}

TEST(thread_cache, an_object_freed_on_another_thread_and_a_thread_s_end_lose_nothing) {
  // Made here, freed on a thread that then ends: its cache returns the block to the heap (the
  // sanitizer steps see a leak or a double free if not).
  auto made_here = std::allocate_shared<payload>(thread_cache_allocator<payload>());
  std::thread([p = std::move(made_here)]() mutable { p.reset(); }).join();
  // Made on a thread that ended, freed here: joins this thread's cache.
  std::shared_ptr<payload> made_there;
  std::thread([&] {
    made_there = std::allocate_shared<payload>(thread_cache_allocator<payload>());
  }).join();
  const void* where = made_there.get();
  made_there.reset();
  auto next = std::allocate_shared<payload>(thread_cache_allocator<payload>());
  EXPECT_EQ(next.get(), where);
}

}  // namespace
}  // namespace awaitdb::detail
