// An allocator that keeps a few freed blocks per thread for the next allocation of the same
// type: the per-statement objects (a group in flight, a result) of a task that runs statement
// after statement reuse their memory instead of going to the heap each time.
//
// Asio's recycling allocator does the same with two blocks per thread shared by every user,
// which a statement's own operations (its wait, its completion handler, the socket's wait)
// already fill; this cache is per type.
#ifndef AWAITDB_SRC_UTIL_THREAD_CACHE_HPP
#define AWAITDB_SRC_UTIL_THREAD_CACHE_HPP

#include <cstddef>
#include <new>

namespace awaitdb::detail {

/// Up to `Slots` freed blocks of one size, per thread. A block freed on another thread than
/// the one that allocated it joins that thread's cache (or the heap). When the thread ends, its
/// blocks go back to the heap, and a block freed after that (by the destructor of another
/// thread-local or static object) goes there directly.
template <std::size_t Size, std::size_t Align, std::size_t Slots = 8>
class block_cache {
 public:
  static void* take() {
    state& s = mine();
    if (s.count > 0 && s.count <= Slots) return s.blocks[--s.count];
    return ::operator new(Size, std::align_val_t(Align));
  }

  static void give(void* p) noexcept {
    state& s = mine();
    if (s.count < Slots) {
      s.blocks[s.count++] = p;
      return;
    }
    ::operator delete(p, std::align_val_t(Align));
  }

 private:
  static constexpr std::size_t closed = Slots + 1;

  // Trivially destructible: valid until the thread itself is gone.
  struct state {
    void* blocks[Slots];
    std::size_t count;
  };

  struct closer {
    state& s;
    ~closer() {
      for (std::size_t i = 0; i < s.count && i < Slots; ++i)
        ::operator delete(s.blocks[i], std::align_val_t(Align));
      s.count = closed;
    }
  };

  static state& mine() noexcept {
    thread_local state s{};
    thread_local closer c{s};
    (void)c;
    return s;
  }
};

/// For `std::allocate_shared`: single objects come from the thread's `block_cache`.
template <class T>
class thread_cache_allocator {
 public:
  using value_type = T;

  thread_cache_allocator() noexcept = default;
  template <class U>
  thread_cache_allocator(const thread_cache_allocator<U>&) noexcept {}

  T* allocate(std::size_t n) {
    if (n != 1) return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t(alignof(T))));
    return static_cast<T*>(cache::take());
  }

  void deallocate(T* p, std::size_t n) noexcept {
    if (n != 1) {
      ::operator delete(p, std::align_val_t(alignof(T)));
      return;
    }
    cache::give(p);
  }

  template <class U>
  bool operator==(const thread_cache_allocator<U>&) const noexcept {
    return true;
  }

 private:
  using cache = block_cache<sizeof(T), alignof(T)>;
};

}  // namespace awaitdb::detail

#endif  // AWAITDB_SRC_UTIL_THREAD_CACHE_HPP
