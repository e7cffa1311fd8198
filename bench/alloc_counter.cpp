// Replaces the global operator new/delete to count allocations (awaitdb-bench --allocations).
// In a translation unit of its own, so that no caller sees the replacement inline.
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <new>

namespace {
std::atomic<std::uint64_t> counter{0};
}

namespace awaitdb_bench {
std::uint64_t allocation_count() noexcept {
  return counter.load(std::memory_order_relaxed);
}
}  // namespace awaitdb_bench

void* operator new(std::size_t n) {
  counter.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) {
  return ::operator new(n);
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete[](void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::size_t) noexcept {
  std::free(p);
}
