// What the pool's two source files share (pool.cpp: lending; pool_upkeep.cpp: opening and
// upkeep). Not for use outside src/pool.
#ifndef AWAITDB_SRC_POOL_POOL_INTERNAL_HPP
#define AWAITDB_SRC_POOL_POOL_INTERNAL_HPP

#include "pool.hpp"

#include <memory>
#include <vector>

namespace awaitdb::detail {

// What a change of state leaves to do once the pool's lock is released (declared before the
// lock, so destroyed after it): wake the waiters it served, look at idle connections, make
// quiet ones fit again, close the ones it dropped, open more in the background. Every system
// call the pool causes happens here, never under its lock.
struct connection_pool::after_unlock {
  explicit after_unlock(connection_pool& p) noexcept : pool(p) {}
  after_unlock(const after_unlock&) = delete;
  after_unlock& operator=(const after_unlock&) = delete;
  ~after_unlock();

  connection_pool& pool;
  std::vector<wait_list::ticket> wake;
  std::vector<std::shared_ptr<pooled_connection>> to_look;   // unused: dropped when dead
  std::vector<std::shared_ptr<pooled_connection>> to_clean;  // draining, quiet, not clean
  std::vector<std::shared_ptr<pooled_connection>> to_close;
  bool refill = false;  // below min_size: open connections in the background
};

// A slot taken for a connection being opened (counted in opening_): open_new gives it back
// when the opening ends. A coroutine cancelled before it can run open_new throws at the
// co_await (Asio checks the cancellation state there) and never enters it: then the claim,
// owned by open_new's frame as its parameter, gives the slot back as the frame is destroyed.
class connection_pool::opening_claim {
 public:
  opening_claim(std::shared_ptr<connection_pool> pool, lease_kind kind, bool slow = false) noexcept
      : pool_(std::move(pool)), kind_(kind), slow_(slow) {}
  opening_claim(opening_claim&& other) noexcept
      : pool_(std::move(other.pool_)), kind_(other.kind_), slow_(other.slow_) {}
  opening_claim& operator=(opening_claim&&) = delete;
  ~opening_claim();
  lease_kind kind() const noexcept { return kind_; }
  bool slow() const noexcept { return slow_; }
  /// The opening ended and open_new accounted for it.
  void settled() noexcept { pool_.reset(); }

 private:
  std::shared_ptr<connection_pool> pool_;
  lease_kind kind_;
  bool slow_;
};

}  // namespace awaitdb::detail

#endif  // AWAITDB_SRC_POOL_POOL_INTERNAL_HPP
