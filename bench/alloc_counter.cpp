// Counts allocations (awaitdb-bench-allocs, which awaitdb-bench --allocations runs): the global
// operator new, replaced here, and every heap allocation of the process (the malloc family,
// interposed here and forwarded to glibc's own), which includes libpq's, SQLite's and Asio's
// coroutine frames (Asio gets those from aligned_alloc, not operator new). In a translation
// unit of its own, so that no caller sees the replacements inline. Nothing is counted until
// counting starts: a counter shared by every thread would make the threads of a multi-threaded run
// wait on each other.
#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>

extern "C" {
void* __libc_malloc(std::size_t);
void* __libc_calloc(std::size_t, std::size_t);
void* __libc_realloc(void*, std::size_t);
void* __libc_memalign(std::size_t, std::size_t);
}

namespace {
std::atomic<std::uint64_t> counter{0};
std::atomic<std::uint64_t> heap_counter{0};
std::atomic<bool> counting{false};
void count_heap() noexcept {
  if (counting.load(std::memory_order_relaxed))
    heap_counter.fetch_add(1, std::memory_order_relaxed);
}
}  // namespace

namespace awaitdb_bench {
bool counts_allocations() noexcept {
  return true;
}
void count_allocations() noexcept {
  counting.store(true, std::memory_order_relaxed);
}
std::uint64_t allocation_count() noexcept {
  return counter.load(std::memory_order_relaxed);
}
std::uint64_t heap_allocation_count() noexcept {
  return heap_counter.load(std::memory_order_relaxed);
}
}  // namespace awaitdb_bench

extern "C" {
void* malloc(std::size_t n) {
  count_heap();
  return __libc_malloc(n);
}
void* calloc(std::size_t count, std::size_t n) {
  count_heap();
  return __libc_calloc(count, n);
}
void* realloc(void* p, std::size_t n) {
  count_heap();
  return __libc_realloc(p, n);
}
void* aligned_alloc(std::size_t align, std::size_t n) {
  count_heap();
  return __libc_memalign(align, n);
}
void* memalign(std::size_t align, std::size_t n) {
  count_heap();
  return __libc_memalign(align, n);
}
int posix_memalign(void** out, std::size_t align, std::size_t n) {
  count_heap();
  void* p = __libc_memalign(align, n);
  if (!p) return ENOMEM;
  *out = p;
  return 0;
}
}

void* operator new(std::size_t n) {
  if (counting.load(std::memory_order_relaxed)) counter.fetch_add(1, std::memory_order_relaxed);
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
