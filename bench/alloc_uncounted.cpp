// awaitdb-bench's side of allocation counting: none. Its allocations go straight to the C
// library, as the reference programs' do; `--allocations` runs awaitdb-bench-allocs instead
// (alloc_counter.cpp), the same program with counting replacements.
#include "bench_common.hpp"

namespace awaitdb_bench {
bool counts_allocations() noexcept {
  return false;
}
void count_allocations() noexcept {}
std::uint64_t allocation_count() noexcept {
  return 0;
}
std::uint64_t heap_allocation_count() noexcept {
  return 0;
}
}  // namespace awaitdb_bench
